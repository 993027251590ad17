"""Records created, found and edited through the real API handler against moto; then routing uses them."""

from __future__ import annotations

import json
from typing import Any

from parley.adapters.dynamo import DynamoContacts
from tests.integration.test_handlers import CLAIMS, Stack, call_api, get, http_event, post_json
from tests.integration.test_handlers import stack as stack  # noqa: F401 - the moto stack fixture

OUTSIDER = {"sub": "u-out", "team": "support"}


def put_json(path: str, payload: Any, *, claims: dict[str, str] = CLAIMS) -> tuple[int, Any]:
    event = http_event(
        "PUT", path, body=json.dumps(payload), headers={"content-type": "application/json"}, claims=claims
    )
    return call_api(event)


def test_a_record_is_created_with_its_numbers_in_e164_and_found_by_any_of_them(stack: Stack) -> None:
    status, record = post_json(
        "/v1/records",
        {"record_id": "c-rita", "name": "Rita Moreno", "phones": ["(415) 555-0170", "+1 415 555 0171"]},
    )

    assert status == 201, record
    assert record["contact_id"] == "c-rita"
    assert record["phones"] == ["+14155550170", "+14155550171"]
    assert (record["team"], record["owner"], record["record_type"]) == ("default", "user-1", "contact")
    assert record["updated_at"]
    for typed in ("+14155550171", "415-555-0170"):
        status, found = get("/v1/records", query={"phone": typed})
        assert status == 200 and [r["contact_id"] for r in found["records"]] == ["c-rita"]
    stored = DynamoContacts().get("c-rita")
    assert stored is not None and stored.phones == ["+14155550170", "+14155550171"]


def test_editing_a_record_replaces_its_numbers(stack: Stack) -> None:
    post_json(
        "/v1/records", {"record_id": "c-tom", "name": "Tom", "phones": ["+14155550172", "+14155550173"]}
    )

    status, record = put_json(
        "/v1/records/c-tom", {"name": "Tom Hanks", "phones": ["+14155550173"], "record_type": "lead"}
    )

    assert status == 200, record
    assert (record["name"], record["phones"], record["record_type"]) == (
        "Tom Hanks",
        ["+14155550173"],
        "lead",
    )
    assert get("/v1/records", query={"phone": "+14155550172"})[1]["records"] == []  # the dropped number
    assert get("/v1/records/c-tom")[1]["name"] == "Tom Hanks"


def test_bad_input_gets_a_reason_per_field_and_writes_nothing(stack: Stack) -> None:
    status, answer = post_json(
        "/v1/records", {"record_id": "c-x", "name": "", "phones": ["12"], "colour": "red"}
    )

    assert status == 400
    reasons = {e["field"]: e["reason"] for e in answer["errors"]}
    assert set(reasons) == {"name", "phones", "colour"}
    assert reasons["phones"] == "'12' has the wrong number of digits"
    assert DynamoContacts().get("c-x") is None
    assert post_json("/v1/records", {"name": "No numbers", "phones": []})[0] == 400
    assert get("/v1/records")[0] == 400  # a phone to look for is required
    assert get("/v1/records", query={"phone": "not a number"})[0] == 400


def test_an_id_in_use_is_a_409_and_leaves_the_first_record(stack: Stack) -> None:
    post_json("/v1/records", {"record_id": "c-dup", "name": "First", "phones": ["+14155550174"]})
    status, answer = post_json(
        "/v1/records", {"record_id": "c-dup", "name": "Second", "phones": ["+14155550175"]}
    )
    assert status == 409 and "exists" in answer["error"]
    assert get("/v1/records/c-dup")[1]["name"] == "First"


def test_another_team_sees_and_changes_nothing(stack: Stack) -> None:
    post_json("/v1/records", {"record_id": "c-mine", "name": "Mine", "phones": ["+14155550176"]})

    assert get("/v1/records/c-mine", claims=OUTSIDER)[0] == 404
    assert get("/v1/records", claims=OUTSIDER, query={"phone": "+14155550176"})[1]["records"] == []
    assert (
        put_json("/v1/records/c-mine", {"name": "Taken", "phones": ["+14155550176"]}, claims=OUTSIDER)[0]
        == 404
    )
    assert get("/v1/records/c-mine")[1]["name"] == "Mine"
    assert get("/v1/records/c-nobody")[0] == 404
