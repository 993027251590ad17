"""The CRM digest's API routes through the real API handler against moto: runs, one conversation's
day, conflicts resolved when the CRM refuses, auto-log. The CRM itself is a fake (the CRM adapters
have their own tests); everything else is the deployed code path."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import pytest

from parley import clock, wiring
from parley.adapters.dynamo import ConversationItem, DynamoContacts, DynamoDigests, DynamoNumbers
from parley.crm import registry
from parley.domain.models import AutoLog, ContactRecord, OurNumber
from parley.services.digest import conflict_id, digest_key
from tests.integration.test_handlers import (
    CLAIMS,
    CUSTOMER,
    OURS,
    REGION,
    Stack,
    call_api,
    get,
    http_event,
    post_json,
)
from tests.integration.test_handlers import stack as stack  # noqa: F401 - the moto stack fixture

OTHER_TEAM = {"sub": "u-other", "team": "support"}


class CrmDown(Exception):
    reason = "HTTP 503 from the CRM: try later"


@dataclass
class Upserted:
    crm_id: str
    created: bool


@dataclass
class FakeCrm:
    """Takes every upsert, or refuses them all while `down`."""

    down: bool = False
    posted: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def upsert(self, external_id: str, payload: dict[str, Any]) -> Upserted:
        if self.down:
            raise CrmDown(CrmDown.reason)
        self.posted.append((external_id, payload))
        return Upserted(crm_id=f"crm-{len(self.posted)}", created=True)


@pytest.fixture
def crm(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCrm]:
    fake = FakeCrm()
    monkeypatch.setattr(registry, "build_crm", lambda _name, _settings: fake)
    wiring.reset_container()
    yield fake


@pytest.fixture
def digest_queue(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> str:
    url: str = boto3.client("sqs", region_name=REGION).create_queue(QueueName="digest")["QueueUrl"]
    monkeypatch.setenv("PARLEY_DIGEST_QUEUE_URL", url)
    wiring.reset_container()
    return url


def today() -> date:
    return clock.utc_now().astimezone(ZoneInfo(wiring.container().settings.org_timezone)).date()


def texted(number: str = CUSTOMER) -> str:
    """A text to `number` today (team default): one conversation with one day to log."""
    day = today().isoformat()  # before sending, so a midnight just after the send cannot move it
    status, _ = post_json("/v1/messages", {"to": [number], "body": "Your order is ready"})
    assert status == 202
    return day


def put_json(path: str, payload: Any, *, claims: dict[str, str] = CLAIMS) -> tuple[int, Any]:
    body = payload if isinstance(payload, str) else json.dumps(payload)
    event = http_event("PUT", path, body=body, headers={"content-type": "application/json"}, claims=claims)
    return call_api(event)


def hold_as_conflict(number: str = CUSTOMER) -> None:
    """Two records have the number and the conversation is linked to neither."""
    for record_id, name in (("c-kim", "Kim"), ("c-sam", "Sam")):
        DynamoContacts().save(ContactRecord(contact_id=record_id, name=name, phone=number, owner=f"u-{name}"))
    item = ConversationItem.get(number)
    item.contact_id = None
    item.conflict_candidates = {"c-kim", "c-sam"}
    item.save()


# -- POST /v1/crm/digest, GET /v1/crm/digest/{day} ----------------------------------------------------


def test_a_run_without_a_queue_finishes_in_the_call_and_its_progress_is_final(
    stack: Stack, crm: FakeCrm
) -> None:
    day = texted()

    status, started = post_json("/v1/crm/digest", {"day": day})
    assert (status, started) == (202, {"days": [day], "jobs": 4, "queued": False})

    status, run = get(f"/v1/crm/digest/{day}")
    assert status == 200
    assert (run["day"], run["shards"], run["shards_done"], run["finished"]) == (day, 4, 4, True)
    assert run["counts"] == {
        "conversations": 1,
        "created": 1,
        "updated": 0,
        "unchanged": 0,
        "conflicts": 0,
        "skipped": 0,
        "merged": 0,
        "no_texts": 0,
        "expired": 0,
        "failed": 0,
    }
    assert run["failures"] == []
    assert datetime.fromisoformat(run["started_at"]).tzinfo is not None
    assert len(crm.posted) == 1


def test_a_run_with_the_queue_queues_one_job_per_shard_and_answers_at_once(
    stack: Stack, crm: FakeCrm, digest_queue: str
) -> None:
    day = texted()

    status, started = post_json("/v1/crm/digest", {"day": day})

    assert (status, started) == (202, {"days": [day], "jobs": 4, "queued": True})
    jobs = [json.loads(m["Body"]) for m in stack.queue_messages(digest_queue)]
    assert sorted(j["shard"] for j in jobs) == [0, 1, 2, 3]
    assert {j["kind"] for j in jobs} == {"digest-shard"}
    status, run = get(f"/v1/crm/digest/{day}")
    assert (status, run["shards_done"], run["finished"], run["counts"]["conversations"]) == (200, 0, False, 0)
    assert crm.posted == []


def test_a_run_that_the_crm_refuses_counts_and_lists_the_failures(stack: Stack, crm: FakeCrm) -> None:
    day = texted()
    crm.down = True

    post_json("/v1/crm/digest", {"day": day})

    _, run = get(f"/v1/crm/digest/{day}")
    assert run["counts"]["failed"] == 1
    assert run["failures"] == [{"customer_number": CUSTOMER, "day": day, "reason": CrmDown.reason}]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({}, "'day' must be a date as YYYY-MM-DD"),
        ({"day": None}, "'day' must be a date as YYYY-MM-DD"),
        ({"day": 20240531}, "'day' must be a date as YYYY-MM-DD"),
        ({"day": "20240531"}, "'day' must be a date as YYYY-MM-DD"),
        ({"day": "2024-5-1"}, "'day' must be a date as YYYY-MM-DD"),
        ({"day": "2024-02-30"}, "is not a real date"),
        ({"day": "2024-05-31", "shards": 2}, "unknown field(s) 'shards'"),
        ("[1]", "the body must be a JSON object"),
        ("{", "the body is not valid JSON"),
    ],
)
def test_a_bad_day_to_start_is_400_with_the_reason(stack: Stack, body: Any, reason: str) -> None:
    status, answer = post_json("/v1/crm/digest", body)
    assert status == 400
    assert reason in answer["error"]


def test_a_day_after_tomorrow_is_in_the_future_but_tomorrow_is_allowed(stack: Stack, crm: FakeCrm) -> None:
    status, answer = post_json("/v1/crm/digest", {"day": (today() + timedelta(days=2)).isoformat()})
    assert status == 400
    assert "is in the future" in answer["error"]
    assert post_json("/v1/crm/digest", {"day": (today() + timedelta(days=1)).isoformat()})[0] == 202


def test_progress_of_a_day_without_a_run_is_404_and_a_malformed_day_400(stack: Stack, crm: FakeCrm) -> None:
    status, answer = get("/v1/crm/digest/2024-05-31")
    assert status == 404
    assert "no digest run for 2024-05-31" in answer["error"]
    for bad in ("yesterday", "2024-13-01", "2024-05-31x"):
        status, answer = get(f"/v1/crm/digest/{bad}")
        assert status == 400, bad
        assert "'day'" in answer["error"]


# -- POST /v1/crm/log -----------------------------------------------------------------------------------


def test_logging_a_day_posts_it_once_and_again_changes_nothing(stack: Stack, crm: FakeCrm) -> None:
    day = texted()

    status, report = post_json("/v1/crm/log", {"customer_number": CUSTOMER, "day": day})
    assert status == 200
    assert (report["day"], report["conversations"], report["created"], report["failed"]) == (day, 1, 1, [])

    status, again = post_json("/v1/crm/log", {"customer_number": "(415) 555-0100", "day": day})
    assert (status, again["created"], again["unchanged"]) == (200, 0, 1)
    assert len(crm.posted) == 1


def test_logging_a_day_ignores_auto_log_off(stack: Stack, crm: FakeCrm) -> None:
    day = texted()
    assert put_json("/v1/crm/auto-log", {"auto_log": "off", "our_number": OURS})[0] == 200
    post_json("/v1/crm/digest", {"day": day})
    assert get(f"/v1/crm/digest/{day}")[1]["counts"]["skipped"] == 1

    status, report = post_json("/v1/crm/log", {"customer_number": CUSTOMER, "day": day})

    assert (status, report["created"]) == (200, 1)


def test_a_day_the_crm_refuses_is_502_and_nothing_is_half_written(stack: Stack, crm: FakeCrm) -> None:
    day = texted()
    crm.down = True

    status, answer = post_json("/v1/crm/log", {"customer_number": CUSTOMER, "day": day})

    assert status == 502
    assert CrmDown.reason in answer["error"]
    assert answer["report"]["failed"] == [{"customer_number": CUSTOMER, "day": day, "reason": CrmDown.reason}]
    assert answer["report"]["created"] == 0
    assert DynamoDigests().get(digest_key(CUSTOMER, day)) is None
    crm.down = False
    status, report = post_json("/v1/crm/log", {"customer_number": CUSTOMER, "day": day})
    assert (status, report["created"]) == (200, 1)


def test_a_crm_configured_wrong_fails_each_record_with_the_reason_and_progress_still_reads(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARLEY_CRM", "webhook")
    monkeypatch.setenv("PARLEY_CRM_WEBHOOK_URL", "")  # no endpoint: the CRM can't be built
    wiring.reset_container()
    day = texted()

    status, started = post_json("/v1/crm/digest", {"day": day})
    assert status == 202, started
    status, run = get(f"/v1/crm/digest/{day}")
    assert status == 200 and run["finished"] and run["counts"]["failed"] == 1
    assert "webhook" in run["failures"][0]["reason"].lower()
    status, answer = post_json("/v1/crm/log", {"customer_number": CUSTOMER, "day": day})
    assert status == 502 and answer["report"]["failed"]


def test_a_day_held_as_a_conflict_is_409_with_the_conflict_id(stack: Stack, crm: FakeCrm) -> None:
    day = texted()
    hold_as_conflict()

    status, answer = post_json("/v1/crm/log", {"customer_number": CUSTOMER, "day": day})

    assert status == 409
    assert answer["conflict_id"] == conflict_id(CUSTOMER, day)
    assert answer["conflict_id"] in answer["error"]
    assert crm.posted == []
    _, listed = get("/v1/crm/conflicts")
    assert [c["conflict_id"] for c in listed["conflicts"]] == [answer["conflict_id"]]


def test_another_teams_conversation_or_none_is_404(stack: Stack, crm: FakeCrm) -> None:
    day = texted()
    status, _ = post_json("/v1/crm/log", {"customer_number": CUSTOMER, "day": day}, claims=OTHER_TEAM)
    assert status == 404
    status, _ = post_json("/v1/crm/log", {"customer_number": "+14155550199", "day": day})
    assert status == 404
    assert crm.posted == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"day": "2024-05-31"}, "'customer_number' is required"),
        ({"customer_number": 14155550100, "day": "2024-05-31"}, "'customer_number' is required"),
        ({"customer_number": "not a number", "day": "2024-05-31"}, "'customer_number': "),
        ({"customer_number": "+1415", "day": "2024-05-31"}, "'customer_number': "),
        ({"customer_number": CUSTOMER}, "'day' must be a date"),
        ({"customer_number": CUSTOMER, "day": "2024-02-30"}, "is not a real date"),
        ({"customer_number": CUSTOMER, "day": "2024-05-31", "record": "x"}, "unknown field(s) 'record'"),
    ],
)
def test_a_bad_log_request_is_400_with_the_reason(stack: Stack, body: dict[str, Any], reason: str) -> None:
    status, answer = post_json("/v1/crm/log", body)
    assert status == 400
    assert reason in answer["error"]


# -- POST /v1/crm/conflicts/{id}/resolve --------------------------------------------------------------


def test_resolving_logs_the_day_and_says_so(stack: Stack, crm: FakeCrm) -> None:
    day = texted()
    hold_as_conflict()
    held = post_json("/v1/crm/log", {"customer_number": CUSTOMER, "day": day})[1]["conflict_id"]

    status, answer = post_json(f"/v1/crm/conflicts/{held}/resolve", {"record_id": "c-sam"})

    assert status == 200
    assert (answer["logged"], answer["error"], answer["resolved"], answer["record_id"]) == (
        True,
        None,
        True,
        "c-sam",
    )
    assert len(crm.posted) == 1


def test_resolving_when_the_crm_refuses_saves_the_choice_and_queues_the_day(
    stack: Stack, crm: FakeCrm, digest_queue: str
) -> None:
    day = texted()
    hold_as_conflict()
    held = post_json("/v1/crm/log", {"customer_number": CUSTOMER, "day": day})[1]["conflict_id"]
    crm.down = True

    status, answer = post_json(f"/v1/crm/conflicts/{held}/resolve", {"record_id": "c-sam"})

    assert status == 202
    assert (answer["logged"], answer["resolved"], answer["record_id"]) == (False, True, "c-sam")
    assert CrmDown.reason in answer["error"]
    assert answer["conflict_id"] == held
    delayed = boto3.client("sqs", region_name=REGION).get_queue_attributes(
        QueueUrl=digest_queue, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    assert delayed == {"ApproximateNumberOfMessagesDelayed": "1"}  # the day, retried after a minute
    assert get("/v1/crm/conflicts")[1]["conflicts"] == []
    # picking the same record again is still fine: nobody has to choose twice
    assert post_json(f"/v1/crm/conflicts/{held}/resolve", {"record_id": "c-sam"})[0] == 200


# -- GET and PUT /v1/crm/auto-log ---------------------------------------------------------------------


def test_auto_log_starts_at_the_organisations_default(stack: Stack) -> None:
    status, state = get("/v1/crm/auto-log")
    assert status == 200
    assert state == {
        "default": "nightly",
        "user": None,
        "effective_for_user": "nightly",
        "numbers": [{"number": OURS, "auto_log": None}],
    }


def test_a_user_sets_and_clears_their_own_auto_log(stack: Stack) -> None:
    status, state = put_json("/v1/crm/auto-log", {"auto_log": "immediate"})
    assert (status, state["user"], state["effective_for_user"]) == (200, "immediate", "immediate")
    assert get("/v1/crm/auto-log")[1]["user"] == "immediate"
    assert get("/v1/crm/auto-log", claims={"sub": "u-2", "team": "default"})[1]["user"] is None

    status, state = put_json("/v1/crm/auto-log", {"auto_log": None, "our_number": None})
    assert (status, state["user"], state["effective_for_user"]) == (200, None, "nightly")


def test_a_number_of_the_team_gets_its_own_auto_log_and_other_teams_do_not_see_it(stack: Stack) -> None:
    DynamoNumbers().save(OurNumber(number="+15005550010", carrier="twilio", team="support"))

    status, state = put_json("/v1/crm/auto-log", {"auto_log": "off", "our_number": "(500) 555-0006"})

    assert status == 200
    assert state["numbers"] == [{"number": OURS, "auto_log": "off"}]
    assert state["user"] is None
    saved = DynamoNumbers().get(OURS)
    assert saved is not None and saved.auto_log is AutoLog.OFF and saved.carrier == "twilio"
    other = get("/v1/crm/auto-log", claims=OTHER_TEAM)[1]
    assert other["numbers"] == [{"number": "+15005550010", "auto_log": None}]


def test_another_teams_number_or_an_unknown_one_is_404(stack: Stack) -> None:
    status, _ = put_json("/v1/crm/auto-log", {"auto_log": "off", "our_number": OURS}, claims=OTHER_TEAM)
    assert status == 404
    status, _ = put_json("/v1/crm/auto-log", {"auto_log": "off", "our_number": "+15005550099"})
    assert status == 404
    saved = DynamoNumbers().get(OURS)
    assert saved is not None and saved.auto_log is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({}, "'auto_log' is required"),
        ({"auto_log": "sometimes"}, "'auto_log' must be 'nightly', 'immediate', 'off'"),
        ({"auto_log": "OFF"}, "'auto_log' must be"),
        ({"auto_log": 1}, "'auto_log' must be"),
        ({"auto_log": ["off"]}, "'auto_log' must be"),
        ({"auto_log": "off", "our_number": 5}, "'our_number' must be"),
        ({"auto_log": "off", "our_number": "nope"}, "'our_number': "),
        ({"auto_log": "off", "our_numbr": OURS}, "unknown field(s) 'our_numbr'"),
    ],
)
def test_a_bad_auto_log_request_is_400_with_the_reason(
    stack: Stack, body: dict[str, Any], reason: str
) -> None:
    status, answer = put_json("/v1/crm/auto-log", body)
    assert status == 400
    assert reason in answer["error"]
    assert get("/v1/crm/auto-log")[1]["user"] is None
