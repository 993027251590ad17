"""The message views, delete and restore, reply and forward: the `by-team` index and the merged
listing on moto, then the real API handler."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from parley.adapters.dynamo import DynamoMessages, DynamoNumbers, DynamoTemplates, InvalidCursor, MessageItem
from parley.domain.models import Direction, Message, MessageStatus, OurNumber, Template
from tests.integration.test_dynamo_adapters import ANA, BO, T0, msg
from tests.integration.test_dynamo_adapters import fresh_clients as fresh_clients  # noqa: F401
from tests.integration.test_dynamo_adapters import messages as messages  # noqa: F401
from tests.integration.test_handlers import OURS, Stack, get, post_json
from tests.integration.test_handlers import stack as stack  # noqa: F401 - the moto stack fixture

SALES = {"sub": "u-sales", "teams": "[sales]"}
BOTH = {"sub": "u-both", "teams": "[sales support]"}
OUTSIDER = {"sub": "u-out", "team": "support"}
SALES_NUMBER = "+15005550010"
CY = "+14155550102"


def outbound(message_id: str, *, minutes: int, team: str = "sales", **fields: Any) -> Message:
    return msg(
        message_id,
        at=T0 + timedelta(minutes=minutes),
        direction=Direction.OUTBOUND,
        status=fields.pop("status", MessageStatus.DELIVERED),
        team=team,
        **fields,
    )


def inbound(message_id: str, *, minutes: int, team: str = "sales", **fields: Any) -> Message:
    return msg(message_id, at=T0 + timedelta(minutes=minutes), team=team, **fields)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many index keys each listing read, per Query."""
    reads: list[int] = []
    for index in (MessageItem.by_team, MessageItem.by_view):
        original = index.query

        def query(*args: Any, _original: Any = original, **kwargs: Any) -> Iterator[Any]:
            found = list(_original(*args, **kwargs))
            reads.append(len(found))
            return iter(found)

        monkeypatch.setattr(index, "query", query)
    yield reads


# -- the adapter ----------------------------------------------------------------------------------------


def test_partitions_merge_newest_first_and_page_with_one_cursor(messages: DynamoMessages) -> None:  # noqa: F811
    for i in range(7):
        messages.insert(outbound(f"s{i}", minutes=2 * i, team="sales"))
        messages.insert(inbound(f"r{i}", minutes=2 * i + 1, team="support"))
    messages.insert(outbound("same-a", minutes=3, team="sales"))  # a tie with r1
    partitions = [
        ("team_box", "sales#sent"),
        ("team_box", "support#received"),
        ("team_box", "sales#received"),
    ]

    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = messages.list_merged(partitions, limit=4, cursor=cursor)
        seen += [m.message_id for m in page.items]
        cursor = page.cursor
        if cursor is None:
            break
    assert len(seen) == 15 and len(set(seen)) == 15
    created = [messages.get(i).created_at for i in seen]  # type: ignore[union-attr]
    assert created == sorted(created, reverse=True)

    window = messages.list_merged(
        partitions, limit=50, cursor=None, since=T0 + timedelta(minutes=4), until=T0 + timedelta(minutes=6)
    )
    assert [m.message_id for m in window.items] == ["s3", "r2", "s2"] and window.cursor is None


def test_a_page_reads_a_bounded_number_of_keys_whatever_the_table_holds(
    messages: DynamoMessages,  # noqa: F811
    counted: list[int],
) -> None:
    for i in range(300):
        messages.insert(outbound(f"m{i:03}", minutes=i, team="sales" if i % 2 else "support"))
    page = messages.list_merged(
        [("team_box", "sales#sent"), ("team_box", "sales#received")], limit=5, cursor=None
    )
    assert len(page.items) == 5 and page.cursor
    assert sum(counted) <= 2 * (5 + 1)


@pytest.mark.parametrize(
    "cursor",
    [
        "%%%",
        base64.urlsafe_b64encode(b"[1]").decode(),
        base64.urlsafe_b64encode(json.dumps({"at": {"team_box:support#sent": None}}).encode()).decode(),
        base64.urlsafe_b64encode(
            json.dumps({"at": {"team_box:sales#sent": ["yesterday", "x"]}}).encode()
        ).decode(),
    ],
)
def test_a_cursor_for_another_listing_or_not_ours_is_refused(messages: DynamoMessages, cursor: str) -> None:  # noqa: F811
    with pytest.raises(InvalidCursor):
        messages.list_merged([("team_box", "sales#sent")], limit=5, cursor=cursor)


def test_a_deleted_failure_leaves_by_view_but_a_deleted_scheduled_text_stays(
    messages: DynamoMessages,
) -> None:  # noqa: F811
    failed = outbound("f1", minutes=1, status=MessageStatus.FAILED)
    scheduled = outbound("sc1", minutes=2, status=MessageStatus.SCHEDULED)
    for message in (failed, scheduled):
        messages.insert(message)
        messages.update(message.model_copy(update={"deleted_at": T0, "deleted_by": "u"}), expected_version=0)

    assert messages.list_view("failed", limit=10, cursor=None).items == []
    assert [m.message_id for m in messages.list_view("scheduled", limit=10, cursor=None).items] == ["sc1"]
    deleted = messages.list_merged([("team_box", "sales#deleted")], limit=10, cursor=None)
    assert [m.message_id for m in deleted.items] == ["sc1", "f1"]
    assert messages.list_merged([("team_box", "sales#sent")], limit=10, cursor=None).items == []


# -- the API --------------------------------------------------------------------------------------------


def _send(to: str, claims: dict[str, str], **fields: Any) -> dict[str, Any]:
    status, body = post_json("/v1/messages", {"to": [to], "body": "hello", **fields}, claims=claims)
    assert status == 202, body
    message: dict[str, Any] = body["messages"][0]
    return message


@pytest.fixture
def sales(stack: Stack) -> Stack:  # noqa: F811
    DynamoNumbers().save(OurNumber(number=SALES_NUMBER, carrier="twilio", team="sales", is_default=True))
    DynamoTemplates().save(Template(template_id="thanks", name="Thanks", body="Thanks, we got it!"))
    return stack


def test_views_over_http_keep_to_the_callers_teams(sales: Stack) -> None:
    mine = _send(ANA, SALES)
    theirs = _send(BO, OUTSIDER)

    status, page = get("/v1/messages", claims=SALES)
    assert status == 200 and [m["message_id"] for m in page["messages"]] == [mine["message_id"]]
    assert page["view"] == "all"
    assert [
        m["message_id"] for m in get("/v1/messages", claims=SALES, query={"view": "pending"})[1]["messages"]
    ] == [mine["message_id"]]
    assert (
        get("/v1/messages", claims=OUTSIDER, query={"view": "sent"})[1]["messages"][0]["message_id"]
        == (theirs["message_id"])
    )
    both = get("/v1/messages", claims=BOTH, query={"limit": "1"})[1]
    assert len(both["messages"]) == 1 and both["cursor"]
    assert get("/v1/messages", claims=SALES, query={"our_number": SALES_NUMBER})[1]["messages"]
    assert get("/v1/messages", claims=SALES, query={"our_number": OURS})[1]["messages"] == []


@pytest.mark.parametrize(
    "query",
    [
        {"view": "trash"},
        {"since": "yesterday"},
        {"since": "2026-01-01T00:00:00"},
        {"until": "2026-01-01T00:00:00Z", "since": "2026-02-01T00:00:00Z"},
        {"our_number": "not a number"},
        {"limit": "0"},
        {"cursor": "%%%"},
    ],
)
def test_bad_view_queries_are_400(sales: Stack, query: dict[str, str]) -> None:
    status, body = get("/v1/messages", claims=SALES, query=query)
    assert status == 400 and body["error"]


def test_another_teams_cursor_is_400(sales: Stack) -> None:
    _send(ANA, SALES)
    _send(BO, SALES)
    cursor = get("/v1/messages", claims=SALES, query={"limit": "1"})[1]["cursor"]
    assert get("/v1/messages", claims=OUTSIDER, query={"cursor": cursor})[0] == 400


def test_delete_and_restore_over_http(sales: Stack) -> None:
    mine = _send(ANA, SALES)["message_id"]
    theirs = _send(BO, OUTSIDER)["message_id"]

    status, body = post_json("/v1/messages/delete", {"ids": [mine, theirs, "nope"]}, claims=SALES)
    assert status == 200
    assert [(r["message_id"], r["result"]) for r in body["results"]] == [
        (mine, "ok"),
        (theirs, "not_found"),
        ("nope", "not_found"),
    ]
    assert get("/v1/messages", claims=SALES)[1]["messages"] == []
    (deleted,) = get("/v1/messages", claims=SALES, query={"view": "deleted"})[1]["messages"]
    assert (deleted["message_id"], deleted["status"], deleted["deleted_by"]) == (mine, "queued", "u-sales")
    assert get(f"/v1/messages/{theirs}", claims=OUTSIDER)[1]["deleted_at"] is None

    assert post_json("/v1/messages/restore", {"ids": [mine]}, claims=SALES)[1]["results"][0]["result"] == "ok"
    assert [m["message_id"] for m in get("/v1/messages", claims=SALES)[1]["messages"]] == [mine]


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"ids": []},
        {"ids": "m1"},
        {"ids": [1]},
        {"ids": ["m"] * 501},
        {"ids": ["m"], "colour": "red"},
        "[]",
    ],
)
def test_bad_bulk_bodies_are_400_and_write_nothing(sales: Stack, payload: Any) -> None:
    mine = _send(ANA, SALES)["message_id"]
    for path in ("/v1/messages/delete", "/v1/messages/restore", "/v1/messages/reply"):
        body = (
            payload if isinstance(payload, str) else {**payload, "body": "x"} if "reply" in path else payload
        )
        status, answer = post_json(path, body, claims=SALES)
        assert status == 400, (path, answer)
    assert get(f"/v1/messages/{mine}", claims=SALES)[1]["deleted_at"] is None


def test_reply_one_and_many_over_http(sales: Stack) -> None:
    first = _send(ANA, SALES)["message_id"]
    second = _send(CY, SALES)["message_id"]

    status, body = post_json(
        f"/v1/messages/{first}/reply",
        {"template_id": "thanks"},
        claims=SALES,
        headers={"idempotency-key": "r-1"},
    )
    assert status == 202, body
    (reply,) = body["messages"]
    assert (reply["customer_number"], reply["our_number"], reply["body"]) == (
        ANA,
        SALES_NUMBER,
        "Thanks, we got it!",
    )
    again = post_json(
        f"/v1/messages/{first}/reply",
        {"template_id": "thanks"},
        claims=SALES,
        headers={"idempotency-key": "r-1"},
    )
    assert again[1]["messages"][0]["message_id"] == reply["message_id"]
    assert post_json(f"/v1/messages/{first}/reply", {"body": "x"}, claims=OUTSIDER)[0] == 404
    assert (
        post_json(f"/v1/messages/{first}/reply", {"body": "x", "template_id": "thanks"}, claims=SALES)[0]
        == 400
    )
    assert post_json(f"/v1/messages/{first}/reply", {"template_id": "nope"}, claims=SALES)[0] == 400

    payload = {"ids": [first, second], "body": "We're on it", "idempotency_key": "bulk-1"}
    status, body = post_json("/v1/messages/reply", payload, claims=SALES)
    assert status == 200 and [r["result"] for r in body["results"]] == ["ok", "ok"]
    replies = [r["reply_id"] for r in body["results"]]
    assert [
        r["reply_id"] for r in post_json("/v1/messages/reply", payload, claims=SALES)[1]["results"]
    ] == replies
    assert {get(f"/v1/messages/{r}", claims=SALES)[1]["customer_number"] for r in replies} == {ANA, CY}


def test_forward_over_http(sales: Stack) -> None:
    original = _send(ANA, SALES, body="Your table is booked for 8pm")["message_id"]

    status, body = post_json(f"/v1/messages/{original}/forward", {"to": [BO, CY]}, claims=SALES)
    assert status == 202, body
    assert [(m["customer_number"], m["body"]) for m in body["messages"]] == [
        (BO, "Your table is booked for 8pm"),
        (CY, "Your table is booked for 8pm"),
    ]
    status, body = post_json(f"/v1/messages/{original}/forward", {"to": BO, "body": "FYI"}, claims=SALES)
    assert status == 202 and body["messages"][0]["body"] == "FYI"
    assert post_json(f"/v1/messages/{original}/forward", {"to": BO}, claims=OUTSIDER)[0] == 404
    bads: list[dict[str, Any]] = [
        {},
        {"to": []},
        {"to": "12"},
        {"to": BO, "body": ""},
        {"to": [BO] * 101},
        {"to": BO, "cc": BO},
    ]
    for bad in bads:
        assert post_json(f"/v1/messages/{original}/forward", bad, claims=SALES)[0] == 400, bad


def test_a_deleted_message_leaves_its_thread_unless_asked_for(sales: Stack) -> None:
    kept = _send(ANA, SALES)["message_id"]
    gone = _send(ANA, SALES, body="oops")["message_id"]
    post_json("/v1/messages/delete", {"ids": [gone]}, claims=SALES)

    thread = f"/v1/conversations/{ANA}/messages"
    assert [m["message_id"] for m in get(thread, claims=SALES)[1]["messages"]] == [kept]
    shown = get(thread, claims=SALES, query={"include_deleted": "true"})[1]["messages"]
    assert {m["message_id"] for m in shown} == {kept, gone}
    assert get(thread, claims=SALES, query={"include_deleted": "yes"})[0] == 400
