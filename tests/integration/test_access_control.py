"""Every route of the inbox API tried as an outsider, through the real handler on moto.

The sales team has a conversation, messages (sent, failed, scheduled, and a customer's MMS with its
picture in the media bucket), a shared template, a record, a held CRM conflict and its own number.
A user of the support team calls each operation in `OPERATIONS` (so a route added later is covered
without touching this file) with path, query and body values that point at the sales team's things.
They get 4xx, or a 2xx that carries none of the sales team's data, never a 5xx; and the sales team's
things are as they were. An admin, calling the read routes, sees them.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, get_args, get_origin

import boto3
import pytest
from pydantic import BaseModel

from functions.api import app as api
from parley import clock, wiring
from parley.adapters.dynamo import (
    ConversationItem,
    DynamoConflicts,
    DynamoContacts,
    DynamoMessages,
    DynamoNumbers,
    DynamoTemplates,
)
from parley.domain.models import ContactRecord, Direction, Media, Message, MessageStatus, OurNumber, Template
from parley.openapi import OPERATIONS, Operation
from tests.integration.test_crm_api import FakeCrm, today
from tests.integration.test_crm_api import crm as crm  # noqa: F401 - the fake CRM fixture
from tests.integration.test_handlers import CONTEXT, REGION, Stack, fail, http_event
from tests.integration.test_handlers import stack as stack  # noqa: F401 - the moto stack fixture

# Claims as API Gateway's HTTP API hands them over: lists become "[a b]" text.
SALES = {"sub": "ana", "teams": "[sales]"}
OUTSIDER = {"sub": "cy", "teams": "[support]"}
ADMIN = {"sub": "root", "teams": "[ops]", "roles": "[admin]"}

SALES_NUMBER = "+15005550007"
CUSTOMER = "+14155550100"
RECORD_PHONE = "+14155550177"
SECRET = "sales-secret"  # in every text, name and body the sales team has: must never reach the outsider
MEDIA_BUCKET = "parley-access-media"


@dataclass(frozen=True)
class SalesWorld:
    sent: str  # a queued text to CUSTOMER
    failed: str
    scheduled: str
    template_id: str
    record_id: str
    conflict_id: str
    day: str
    picture: str  # a customer's MMS, its picture in the media bucket

    def message_for(self, operation_id: str) -> str:
        """The message an operation likely acts on: a scheduled one to move, a failed one to resend."""
        if "media" in operation_id:
            return self.picture
        if "reschedule" in operation_id or "cancel" in operation_id:
            return self.scheduled
        if "resend" in operation_id:
            return self.failed
        return self.sent


def call(
    method: str,
    path: str,
    *,
    claims: dict[str, str],
    body: Any = None,
    query: dict[str, str] | None = None,
) -> tuple[int, Any]:
    raw = None if body is None else json.dumps(body)
    headers = {"content-type": "application/json"} if raw is not None else None
    event = http_event(method.upper(), path, body=raw, headers=headers, query=query, claims=claims)
    result: dict[str, Any] = api.handler(event, CONTEXT)
    status, answer = int(result["statusCode"]), result.get("body") or "null"
    if result.get("isBase64Encoded"):  # a file's bytes (an attachment), not JSON
        return status, base64.b64decode(answer)
    return status, json.loads(answer)


def shown(answer: Any) -> str:
    """An answer as text, to look for what the outsider must not get: JSON, or a file's bytes."""
    return answer.decode("utf-8", "replace") if isinstance(answer, bytes) else json.dumps(answer)


def mms(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> str:
    """An inbound MMS to the sales team, its picture copied to the media bucket (which the stack then
    names, as template.yaml's Globals do)."""
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=MEDIA_BUCKET)
    monkeypatch.setenv("PARLEY_MEDIA_BUCKET", MEDIA_BUCKET)
    wiring.reset_container()
    key = "media/in-sales-mms/0"
    boto3.client("s3", region_name=REGION).put_object(
        Bucket=MEDIA_BUCKET, Key=key, Body=f"{SECRET} picture".encode(), ContentType="image/png"
    )
    now = clock.utc_now()
    picture = Media(
        url="https://api.twilio.com/media/ME1",
        content_type="image/png",
        stored_at=f"s3://{MEDIA_BUCKET}/{key}",
        size=len(f"{SECRET} picture"),
    )
    message = Message(
        message_id="in-sales-mms",
        direction=Direction.INBOUND,
        customer_number=CUSTOMER,
        our_number=SALES_NUMBER,
        body=f"{SECRET} photo",
        status=MessageStatus.RECEIVED,
        carrier="twilio",
        carrier_message_id="MM-sales",
        created_at=now,
        updated_at=now,
        team="sales",
        media=[picture],
    )
    DynamoMessages(stack.settings).insert(message)
    return message.message_id


@pytest.fixture
def sales(stack: Stack, crm: FakeCrm, monkeypatch: pytest.MonkeyPatch) -> Iterator[SalesWorld]:
    picture = mms(stack, monkeypatch)
    DynamoNumbers().save(OurNumber(number=SALES_NUMBER, carrier="twilio", team="sales", is_default=True))

    def send(payload: dict[str, Any]) -> str:
        status, answer = call("post", "/v1/messages", claims=SALES, body=payload)
        assert status == 202, answer
        message: dict[str, Any] = answer["messages"][0]
        assert (message["team"], message["our_number"]) == ("sales", SALES_NUMBER)
        return str(message["message_id"])

    sent = send({"to": [CUSTOMER], "body": f"{SECRET} text"})
    failed = send({"to": [CUSTOMER], "body": f"{SECRET} failed"})
    fail(stack, failed)
    later = (clock.utc_now() + timedelta(days=2)).isoformat()
    scheduled = send({"to": [CUSTOMER], "body": f"{SECRET} later", "send_at": later})
    stack.queue_messages(stack.settings.send_queue_url)  # nothing delivers here

    status, template = call(
        "post", "/v1/templates", claims=SALES, body={"name": f"{SECRET} tpl", "body": f"{SECRET} body"}
    )
    assert status == 201 and template["team"] == "sales", template
    status, record = call(
        "post",
        "/v1/records",
        claims=SALES,
        body={"record_id": "r-sales", "name": f"{SECRET} record", "phones": [RECORD_PHONE]},
    )
    assert status == 201 and record["team"] == "sales", record

    # two sales records have the customer's number and the conversation is linked to neither
    for record_id in ("c-kim", "c-sam"):
        DynamoContacts().save(
            ContactRecord(contact_id=record_id, name=f"{SECRET} {record_id}", phone=CUSTOMER, team="sales")
        )
    item = ConversationItem.get(CUSTOMER)
    item.contact_id = None
    item.conflict_candidates = {"c-kim", "c-sam"}
    item.save()
    day = today().isoformat()
    status, held = call("post", "/v1/crm/log", claims=SALES, body={"customer_number": CUSTOMER, "day": day})
    assert status == 409, held
    status, started = call("post", "/v1/crm/digest", claims=SALES, body={"day": day})  # a run to look at
    assert status == 202, started

    yield SalesWorld(
        sent, failed, scheduled, template["template_id"], "r-sales", held["conflict_id"], day, picture
    )


# -- plausible requests, from the names of the parameters and fields ----------------------------------


def path_for(op: Operation, world: SalesWorld) -> str:
    values = {
        "number": CUSTOMER,
        "message_id": world.message_for(op.operation_id),
        "template_id": world.template_id,
        "record_id": world.record_id,
        "conflict_id": world.conflict_id,
        "day": world.day,
        "index": "0",
    }

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in values, f"{op.operation_id}: no sales value for the path parameter {name!r}"
        return values[name]

    return re.sub(r"\{(\w+)\}", value, op.path)


def query_for(op: Operation, world: SalesWorld) -> dict[str, str]:
    values = {
        "phone": RECORD_PHONE,
        "team": "sales",
        "our_number": SALES_NUMBER,
        "owner": "ana",
        "q": CUSTOMER[:8],
        "view": "all",
    }
    return {name: values[name] for name in op.query if name in values}


def field_value(name: str, annotation: Any, op: Operation, world: SalesWorld) -> Any:
    """What the outsider would put in a field to reach the sales team's things."""
    many = get_origin(annotation) is list or any(get_origin(a) is list for a in get_args(annotation))
    single: Any = {
        "to": CUSTOMER,
        "customer_number": CUSTOMER,
        "number": CUSTOMER,
        "from": SALES_NUMBER,
        "from_number": SALES_NUMBER,
        "our_number": SALES_NUMBER,
        "ids": world.message_for(op.operation_id),
        "message_ids": world.message_for(op.operation_id),
        "message_id": world.message_for(op.operation_id),
        "template_id": world.template_id,
        "record_id": world.record_id if op.operation_id != "resolve_crm_conflict" else "c-sam",
        "day": world.day,
        "team": "sales",
        "view": "failed",
        "auto_log": "off",
        "send_at": (clock.utc_now() + timedelta(days=3)).isoformat(),
        "body": "from the outsider",
        "name": "Outsider",
        "phones": [CUSTOMER],
    }.get(name)
    if single is None:
        return None
    return [single] if many and not isinstance(single, list) else single


def body_for(op: Operation, world: SalesWorld) -> dict[str, Any] | None:
    if op.body is None:
        return None if op.method == "get" or op.method == "delete" else {}
    model: type[BaseModel] = op.body
    body: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        key = info.alias or name
        value = field_value(key, info.annotation, op, world)
        if value is None and key != name:
            value = field_value(name, info.annotation, op, world)
        if value is not None:
            body[key] = value
    if op.operation_id == "resend_messages":
        body.pop("view", None)  # by ids: the failed sales message
    if op.operation_id in ("send_messages", "preview_message", "reply_to_message", "reply_to_messages"):
        body.pop("template_id", None)  # a body, not a template: exactly one of them
        body.pop("team", None)  # from the sales number as their own team (naming sales: see below)
    if op.operation_id == "create_record":
        body.pop("record_id", None)  # the outsider's own record: its answer must not be the sales one
    return body


# -- what the sales team has, to see that nothing changed ---------------------------------------------


def sales_state(world: SalesWorld) -> dict[str, Any]:
    def dump(model: BaseModel | None) -> Any:
        return model.model_dump(mode="json") if model is not None else None

    messages = DynamoMessages(wiring.container().settings)
    conflict = DynamoConflicts().get(world.conflict_id)
    return {
        "messages": [dump(messages.get(m)) for m in (world.sent, world.failed, world.scheduled)],
        "conversation": dump(wiring.container().conversations.get(CUSTOMER)),
        "number": dump(DynamoNumbers().get(SALES_NUMBER)),
        "template": dump(DynamoTemplates().get(world.template_id)),
        "record": dump(DynamoContacts().get(world.record_id)),
        "conflict": (conflict.resolved, conflict.record_id) if conflict else None,
    }


PROTECTED = [op for op in OPERATIONS if not op.public]


@pytest.mark.parametrize("op", PROTECTED, ids=[op.operation_id for op in PROTECTED])
def test_an_outsider_gets_nothing_of_the_sales_team(sales: SalesWorld, op: Operation) -> None:
    before = sales_state(sales)
    path, query, body = path_for(op, sales), query_for(op, sales), body_for(op, sales)

    status, answer = call(op.method, path, claims=OUTSIDER, body=body, query=query)

    assert status < 500, (status, answer)
    assert status != 401, answer
    if 200 <= status < 300:
        assert SECRET not in shown(answer), (status, answer)
        assert SALES_NUMBER not in shown(answer), (status, answer)
    assert sales_state(sales) == before, f"{op.operation_id} as an outsider changed the sales team's things"


READS = [op for op in PROTECTED if op.method == "get"]
ADMIN_SEES = {  # what an admin's answer has of the sales team's, by operation
    "list_conversations": CUSTOMER,
    "list_messages": SECRET,
    "get_message": SECRET,
    "get_message_media": SECRET,
    "list_message_view": SECRET,
    "list_templates": SECRET,
    "get_template": SECRET,
    "find_records": SECRET,
    "get_record": SECRET,
    "list_numbers": SALES_NUMBER,
    "list_crm_conflicts": CUSTOMER,
    "get_crm_auto_log": SALES_NUMBER,
}


@pytest.mark.parametrize("op", READS, ids=[op.operation_id for op in READS])
def test_an_admin_sees_the_sales_team(sales: SalesWorld, op: Operation) -> None:
    path = path_for(op, sales)
    query = {k: v for k, v in query_for(op, sales).items() if k in ("phone", "view")}

    status, answer = call(op.method, path, claims=ADMIN, query=query)

    assert status == op.status, (status, answer)
    if op.operation_id in ADMIN_SEES:
        assert ADMIN_SEES[op.operation_id] in shown(answer), answer


def test_the_sales_team_itself_sees_its_things(sales: SalesWorld) -> None:
    """The outsider's 404s are about who asks: the same requests as sales answer."""
    assert call("get", f"/v1/messages/{sales.sent}", claims=SALES)[0] == 200
    assert call("get", f"/v1/messages/{sales.picture}/media/0", claims=SALES) == (
        200,
        f"{SECRET} picture".encode(),
    )
    assert call("get", f"/v1/templates/{sales.template_id}", claims=SALES)[0] == 200
    assert call("get", f"/v1/records/{sales.record_id}", claims=SALES)[0] == 200
    conflicts = call("get", "/v1/crm/conflicts", claims=SALES)[1]["conflicts"]
    assert [c["conflict_id"] for c in conflicts] == [sales.conflict_id]
    numbers = [n["number"] for n in call("get", "/v1/numbers", claims=SALES)[1]["numbers"]]
    assert SALES_NUMBER in numbers
    outsider_numbers = [n["number"] for n in call("get", "/v1/numbers", claims=OUTSIDER)[1]["numbers"]]
    assert SALES_NUMBER not in outsider_numbers


def test_a_member_of_two_teams_sends_as_either_and_not_as_a_third(sales: SalesWorld) -> None:
    both = {"sub": "di", "teams": "[support sales]"}
    payload = {"to": ["+14155550188"], "body": "hi"}

    home = call("post", "/v1/messages", claims=both, body=payload)
    chosen = call("post", "/v1/messages", claims=both, body={**payload, "team": "sales"})
    other = call("post", "/v1/messages", claims=both, body={**payload, "team": "ops"})

    assert home[0] == 202 and home[1]["messages"][0]["team"] == "support"  # their first, as the token lists
    assert chosen[0] == 202 and chosen[1]["messages"][0]["team"] == "sales"
    assert other[0] == 400 and [e["field"] for e in other[1]["errors"]] == ["team"]


def test_another_teams_template_is_as_absent_to_a_send_or_a_preview(sales: SalesWorld) -> None:
    preview = {"template_id": sales.template_id}
    send = {**preview, "to": ["+14155550188"]}

    for path, payload in (("/v1/messages/preview", preview), ("/v1/messages", send)):
        status, answer = call("post", path, claims=OUTSIDER, body=payload)
        assert status == 400, answer
        assert [e["field"] for e in answer["errors"]] == ["template_id"]
        assert SECRET not in json.dumps(answer)
    assert call("post", "/v1/messages/preview", claims=SALES, body=preview)[0] == 200


def test_another_teams_template_is_as_absent_to_a_reply_or_a_bulk_reply(sales: SalesWorld) -> None:
    status, mine = call("post", "/v1/messages", claims=OUTSIDER, body={"to": ["+14155550188"], "body": "hi"})
    assert status == 202, mine
    message_id = mine["messages"][0]["message_id"]

    for path, payload in (
        (f"/v1/messages/{message_id}/reply", {"template_id": sales.template_id}),
        ("/v1/messages/reply", {"ids": [message_id], "template_id": sales.template_id}),
    ):
        status, answer = call("post", path, claims=OUTSIDER, body=payload)
        assert status == 400, answer
        assert [e["field"] for e in answer["errors"]] == ["template_id"]
        assert SECRET not in json.dumps(answer)
    thread = call("get", "/v1/conversations/+14155550188/messages", claims=OUTSIDER)[1]["messages"]
    assert [m["body"] for m in thread] == ["hi"]  # nothing was sent


def test_a_personal_template_of_a_teammate_is_as_absent_to_a_reply(sales: SalesWorld) -> None:
    teammate = {"sub": "bo", "teams": "[sales]"}
    status, private = call(
        "post", "/v1/templates", claims=teammate, body={"name": "mine", "body": "private", "shared": False}
    )
    assert status == 201, private
    status, answer = call(
        "post", f"/v1/messages/{sales.sent}/reply", claims=SALES, body={"template_id": private["template_id"]}
    )
    assert status == 400 and [e["field"] for e in answer["errors"]] == ["template_id"], answer
    status, answer = call(
        "post",
        f"/v1/messages/{sales.sent}/reply",
        claims=teammate,
        body={"template_id": private["template_id"]},
    )
    assert status == 202 and answer["messages"][0]["body"] == "private", answer


def test_an_org_wide_template_is_changed_or_deleted_by_an_admin_only(sales: SalesWorld) -> None:
    DynamoTemplates().save(Template(template_id="welcome", name="Welcome", body="Hello from us"))

    for claims in (SALES, OUTSIDER):
        status, answer = call(
            "put", "/v1/templates/welcome", claims=claims, body={"name": "W", "body": "PWNED"}
        )
        assert status == 403 and "only an admin" in answer["error"], answer
        status, answer = call("delete", "/v1/templates/welcome", claims=claims)
        assert status == 403 and "only an admin" in answer["error"], answer
    assert call("get", "/v1/templates/welcome", claims=OUTSIDER)[1]["body"] == "Hello from us"

    status, answer = call("put", "/v1/templates/welcome", claims=ADMIN, body={"name": "W", "body": "Hi all"})
    assert (status, answer["body"]) == (200, "Hi all")
    assert call("delete", "/v1/templates/welcome", claims=ADMIN)[0] == 204


def test_a_token_that_names_no_team_is_403_and_an_admins_still_works(sales: SalesWorld) -> None:
    for claims in ({"sub": "nobody"}, {"sub": "nobody", "teams": "[]"}):
        for method, path in (("get", "/v1/conversations"), ("get", f"/v1/messages/{sales.sent}")):
            status, answer = call(method, path, claims=claims)
            assert (status, answer) == (
                403,
                {"error": "the token names no team: ask for a team (the 'teams' or 'team' claim)"},
            )
        status, answer = call(
            "post", "/v1/messages", claims=claims, body={"to": ["+14155550188"], "body": "hi"}
        )
        assert status == 403, answer
    admin = {"sub": "root", "roles": "[admin]"}
    assert call("get", f"/v1/messages/{sales.sent}", claims=admin)[0] == 200
