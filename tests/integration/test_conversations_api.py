"""Conversations through the real API handler against moto: filtered lists across teams, read state,
close and reopen (a new text reopens), add contact, search, and the search terms the adapters keep."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from parley.adapters.dynamo import (
    DynamoContacts,
    DynamoConversations,
    DynamoMessages,
    DynamoNumbers,
    SearchItem,
)
from parley.config import Settings
from parley.domain.models import ContactRecord, Direction, Message, MessageStatus, OurNumber
from parley.ports import ConversationDelta
from tests.integration.test_handlers import OURS, Stack, get, post_json
from tests.integration.test_handlers import stack as stack  # noqa: F401 - the moto stack fixture

SALES = {"sub": "ann", "teams": "[sales]"}
BOTH = {"sub": "bea", "teams": "[sales support]"}
OUTSIDER = {"sub": "eve", "teams": "[marketing]"}
ADMIN = {"sub": "root", "team": "ops", "roles": "[admin]"}
OTHER = "+15005550007"
T0 = datetime(2026, 5, 6, 9, 0, tzinfo=UTC)
_ids = itertools.count()


def text(
    settings: Settings,
    number: str,
    team: str,
    *,
    minutes: int,
    inbound: bool = True,
    our: str = OURS,
    contact_id: str | None = None,
) -> None:
    """One text folded into its conversation exactly as the inbound and send paths do it."""
    n = next(_ids)
    at = T0 + timedelta(minutes=minutes)
    message = Message(
        message_id=f"m-{n}",
        direction=Direction.INBOUND if inbound else Direction.OUTBOUND,
        customer_number=number,
        our_number=our,
        body="hello",
        status=MessageStatus.RECEIVED if inbound else MessageStatus.QUEUED,
        carrier="twilio",
        created_at=at,
        updated_at=at,
        team=team,
    )
    delta = ConversationDelta(
        customer_number=number,
        team=team,
        our_number=our,
        at=at,
        message_id=message.message_id,
        preview="hello",
        direction=message.direction.value,
        unread_increment=1 if inbound else 0,
        contact_id=contact_id,
        routed=inbound,
    )
    assert DynamoMessages(settings).insert_with_conversation(message, delta)


def numbers(answer: dict[str, Any]) -> list[str]:
    return [c["customer_number"] for c in answer["conversations"]]


def every_page(query: dict[str, str], claims: dict[str, str]) -> list[str]:
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(100):
        status, answer = get(
            "/v1/conversations", claims=claims, query={**query, **({"cursor": cursor} if cursor else {})}
        )
        assert status == 200, answer
        seen += numbers(answer)
        cursor = answer["cursor"]
        if cursor is None:
            return seen
    raise AssertionError("the pages never ended")


def path(number: str, action: str) -> str:
    return f"/v1/conversations/{number}/{action}"


def test_the_list_merges_a_callers_teams_newest_first_with_filters(stack: Stack) -> None:
    s = stack.settings
    for i in range(6):
        text(
            s, f"+1415555{1100 + i}", "sales" if i % 2 else "support", minutes=i, our=OURS if i < 3 else OTHER
        )
    text(s, "+14155551199", "marketing", minutes=10)
    DynamoNumbers().save(OurNumber(number=OTHER, carrier="twilio", team="support"))

    assert every_page({"limit": "2"}, BOTH) == [f"+1415555{1100 + i}" for i in reversed(range(6))]
    assert every_page({"limit": "2"}, SALES) == ["+14155551105", "+14155551103", "+14155551101"]
    assert every_page({"limit": "3", "our_number": OTHER}, BOTH) == [
        "+14155551105",
        "+14155551104",
        "+14155551103",
    ]
    assert every_page({}, OUTSIDER) == ["+14155551199"]
    # an admin sees every team that has one of our numbers (and the pool's, "default")
    assert every_page({"limit": "4"}, ADMIN) == ["+14155551104", "+14155551102", "+14155551100"]
    assert every_page({"team": "support"}, BOTH) == ["+14155551104", "+14155551102", "+14155551100"]
    assert every_page({"team": "support"}, SALES) == []


def test_read_state_close_reopen_and_a_new_text_reopening(stack: Stack) -> None:
    s = stack.settings
    text(s, "+14155551200", "sales", minutes=1)
    text(s, "+14155551201", "sales", minutes=2, our=OTHER)
    text(s, "+14155551202", "sales", minutes=3)

    assert get(path("+14155551200", "messages"), claims=SALES)[0] == 200
    assert DynamoConversations().get("+14155551200").unread_count == 1  # type: ignore[union-attr]
    status, read = post_json(path("+14155551200", "read"), {}, claims=SALES)
    assert status == 200 and read["unread_count"] == 0
    assert every_page({"unread": "true"}, SALES) == ["+14155551202", "+14155551201"]
    assert post_json(path("+14155551200", "read"), {}, claims=OUTSIDER)[0] == 404

    status, marked = post_json("/v1/conversations/read", {"our_number": OTHER}, claims=SALES)
    assert (status, marked) == (200, {"marked": 1, "cursor": None})
    assert every_page({"unread": "true"}, SALES) == ["+14155551202"]
    assert post_json("/v1/conversations/read", {}, claims=OUTSIDER)[1]["marked"] == 0
    assert every_page({"unread": "true"}, SALES) == ["+14155551202"]
    assert post_json("/v1/conversations/read", {}, claims=SALES)[1] == {"marked": 1, "cursor": None}

    status, closed = post_json(path("+14155551202", "close"), {}, claims=SALES)
    assert status == 200 and closed["closed"] is True
    assert every_page({}, SALES) == ["+14155551201", "+14155551200"]
    assert every_page({"status": "closed"}, SALES) == ["+14155551202"]
    text(s, "+14155551202", "sales", minutes=9, inbound=False)  # our own text reopens it
    assert every_page({}, SALES)[0] == "+14155551202"
    post_json(path("+14155551202", "close"), {}, claims=SALES)
    assert post_json(path("+14155551202", "reopen"), {}, claims=SALES)[1]["closed"] is False
    assert post_json(path("+14155551202", "close"), {}, claims=OUTSIDER)[0] == 404
    assert post_json(path("+19995550000", "reopen"), {}, claims=SALES)[0] == 404
    assert post_json(path("not-a-number", "reopen"), {}, claims=SALES)[0] == 404


def test_bad_filters_cursors_and_bodies_are_400_with_a_reason(stack: Stack) -> None:
    text(stack.settings, "+14155551300", "sales", minutes=1)
    text(stack.settings, "+14155551301", "sales", minutes=2)
    for query in (
        {"status": "gone"},
        {"unread": "yes"},
        {"our_number": "abc"},
        {"cursor": "nope"},
        {"q": "12"},
        {"q": ""},
        {"limit": "0"},
    ):
        status, answer = get("/v1/conversations", claims=SALES, query=query)
        assert status == 400 and answer["error"], query
    for body in ({"our_number": 5}, {"cursor": 3}, {"colour": "red"}, {"our_number": "x"}):
        status, answer = post_json("/v1/conversations/read", body, claims=SALES)
        assert status == 400 and answer["error"], body
    status, answer = post_json("/v1/conversations/read", "[1]", claims=SALES)
    assert status == 400
    for q in ("日本", "ßtraße", "o'neil", "x" * 100, "+1 (415)"):  # odd but fair: answered, not failed
        assert get("/v1/conversations", claims=SALES, query={"q": q})[0] == 200, q
    for query in ({"q": "😀"}, {"q": "+"}, {"team": ""}, {"owner": ""}, {"team": "x" * 101}):
        assert get("/v1/conversations", claims=SALES, query=query)[0] == 400, query
    list_cursor = get("/v1/conversations", claims=SALES, query={"limit": "1"})[1]["cursor"]
    assert get("/v1/conversations", claims=SALES, query={"q": "1415", "cursor": list_cursor})[0] == 400


def test_add_contact_links_a_new_record_and_makes_the_conversation_searchable(stack: Stack) -> None:
    s = stack.settings
    text(s, "+14155551400", "sales", minutes=1)
    assert get("/v1/conversations", claims=SALES, query={"q": "joanna"})[1]["conversations"] == []
    status, bad = post_json(path("+14155551400", "contact"), {"name": "", "colour": 1}, claims=SALES)
    assert status == 400 and {e["field"] for e in bad["errors"]} == {"name", "colour"}
    assert post_json(path("+14155551400", "contact"), {"name": "X", "phones": "+1"}, claims=SALES)[0] == 400

    status, added = post_json(path("+14155551400", "contact"), {"name": "Joanna Smith-Jones"}, claims=SALES)
    assert status == 201, added
    record = added["record"]
    assert record["phones"] == ["+14155551400"] and record["team"] == "sales" and record["owner"] == "ann"
    assert added["conversation"]["contact_id"] == record["contact_id"]
    for q in ("joanna", "SMITH", "jon", "jo sm", "1400", "555140"):
        status, found = get("/v1/conversations", claims=SALES, query={"q": q})
        assert status == 200 and numbers(found) == ["+14155551400"], q
    assert get("/v1/conversations", claims=OUTSIDER, query={"q": "joanna"})[1]["conversations"] == []

    status, again = post_json(path("+14155551400", "contact"), {"name": "Someone Else"}, claims=SALES)
    assert status == 409 and "linked" in again["error"]
    assert post_json(path("+14155551400", "contact"), {"name": "Eve"}, claims=OUTSIDER)[0] == 404

    # the record's new name replaces its words in the search terms
    DynamoContacts().save(
        ContactRecord.model_validate({**record, "name": "Joanna Brown", "updated_at": record["updated_at"]})
    )
    assert numbers(get("/v1/conversations", claims=SALES, query={"q": "brown"})[1]) == ["+14155551400"]
    assert get("/v1/conversations", claims=SALES, query={"q": "smith"})[1]["conversations"] == []


def test_add_contact_over_a_lead_the_routing_made(stack: Stack) -> None:
    s = stack.settings
    DynamoContacts().save(
        ContactRecord(
            contact_id="lead-14155551401",
            name="Walk In",
            phone="+14155551401",
            record_type="lead",
            team="sales",
        )
    )
    text(s, "+14155551401", "sales", minutes=1, contact_id="lead-14155551401")
    assert numbers(get("/v1/conversations", claims=SALES, query={"q": "walk"})[1]) == ["+14155551401"]
    status, added = post_json(path("+14155551401", "contact"), {"name": "Real Name"}, claims=SALES)
    assert status == 201, added
    assert added["conversation"]["contact_id"] == added["record"]["contact_id"]
    assert get("/v1/conversations", claims=SALES, query={"q": "walk"})[1]["conversations"] == []
    assert numbers(get("/v1/conversations", claims=SALES, query={"q": "real"})[1]) == ["+14155551401"]


def test_search_pages_merge_teams_and_list_each_conversation_once(stack: Stack) -> None:
    s = stack.settings
    for i in range(9):
        text(s, f"+1415555{1515 + i}", "sales" if i % 2 else "support", minutes=i)
    found = every_page({"q": "555151", "limit": "2"}, BOTH)
    assert sorted(found) == sorted(f"+1415555{1515 + i}" for i in range(5))
    assert len(found) == len(set(found))
    assert sorted(every_page({"q": "555151", "limit": "3"}, SALES)) == ["+14155551516", "+14155551518"]
    # only the closed ones, when asked
    post_json(path("+14155551516", "close"), {}, claims=SALES)
    assert every_page({"q": "555151", "status": "closed"}, SALES) == ["+14155551516"]


def test_a_text_to_a_conversation_with_the_same_record_writes_no_search_terms(stack: Stack) -> None:
    s = stack.settings
    text(s, "+14155551600", "sales", minutes=1)
    written = _search_items()
    text(s, "+14155551600", "sales", minutes=2)
    text(s, "+14155551600", "sales", minutes=3, inbound=False)
    assert _search_items() == written
    assert DynamoConversations().get("s#sales#m#+14155551600") is None  # never a conversation


def _search_items() -> list[str]:
    return sorted(i.customer_number for i in SearchItem.scan() if i.customer_number.startswith("s#"))


def test_a_threads_messages_are_found_by_the_number_in_any_format_the_other_routes_take(stack: Stack) -> None:
    customer = "+14155550140"
    text(stack.settings, customer, "default", minutes=1)

    for written in ("4155550140", "(415) 555-0140", "14155550140", "+1 415 555 0140"):
        assert post_json(f"/v1/conversations/{written}/close", {})[0] == 200
        status, body = get(f"/v1/conversations/{written}/messages")
        assert status == 200, (written, body)
        assert [m["customer_number"] for m in body["messages"]] == [customer]
    status, body = get("/v1/conversations/not-a-number/messages")
    assert status == 404 and body["error"].startswith("no conversation with not-a-number: "), body
    assert get("/v1/conversations/4155550140/messages", claims=OUTSIDER)[0] == 404
