"""Conversations in the inbox (parley.services.conversations) on the fakes: merged lists, filters,
read state, close and reopen, add contact, search."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest

from parley.access import Caller
from parley.domain.models import ContactRecord, Conversation, OurNumber
from parley.domain.routing import lead_id_for
from parley.domain.search import parse_query, terms_for
from parley.ports import ConversationDelta, ConversationFilter
from parley.services.conversations import AlreadyLinked, ConversationService, conversation_filter
from parley.services.inbox import NotFound
from parley.services.records import RecordService
from tests.fakes import (
    T0,
    InMemoryContacts,
    InMemoryConversations,
    InMemoryNumbers,
    InMemoryOptOuts,
    InMemorySearch,
)

SALES = Caller("ann", frozenset({"sales"}))
BOTH = Caller("bea", frozenset({"sales", "support"}))
OUTSIDER = Caller("eve", frozenset({"marketing"}))
ADMIN = Caller("root", frozenset({"ops"}), admin=True)


class Setup:
    def __init__(self) -> None:
        self.conversations = InMemoryConversations()
        self.search = InMemorySearch()
        self.contacts = InMemoryContacts()
        self.numbers = InMemoryNumbers()
        self.opt_outs = InMemoryOptOuts()
        self.numbers.save(OurNumber(number="+14155550001", carrier="fake", team="sales"))
        self.numbers.save(OurNumber(number="+14155550002", carrier="fake", team="support"))
        self.service = ConversationService(
            conversations=self.conversations,
            browser=self.conversations,
            search=self.search,
            numbers=self.numbers,
            contacts=self.contacts,
            linker=self.conversations,
            records=RecordService(self.contacts, lambda: T0),
            opt_outs=self.opt_outs,
        )
        self.minute = 0

    def text(self, number: str, team: str, *, our: str = "+14155550001", inbound: bool = True) -> None:
        self.minute += 1
        self.conversations.fold(
            ConversationDelta(
                customer_number=number,
                team=team,
                our_number=our,
                at=T0 + timedelta(minutes=self.minute),
                message_id=f"m{self.minute}",
                preview="hi",
                direction="inbound" if inbound else "outbound",
                unread_increment=1 if inbound else 0,
            )
        )
        self.search.index(number, team, None)


def _numbers(page_items: list[Conversation]) -> list[str]:
    return [c.customer_number for c in page_items]


def _all(s: Setup, caller: Caller, where: ConversationFilter, limit: int) -> tuple[list[str], int]:
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = s.service.list(caller, where, limit=limit, cursor=cursor)
        seen += _numbers(page.conversations)
        pages += 1
        cursor = page.cursor
        if cursor is None:
            return seen, pages


def test_a_caller_with_two_teams_gets_both_merged_newest_first_across_pages() -> None:
    s = Setup()
    for i in range(7):
        s.text(f"+1415555{1000 + i}", "sales" if i % 3 else "support")
    s.text("+14155559999", "elsewhere")
    seen, _ = _all(s, BOTH, ConversationFilter(), limit=2)
    assert seen == [f"+1415555{1000 + i}" for i in reversed(range(7))]
    assert _all(s, SALES, ConversationFilter(), limit=3)[0] == [
        f"+1415555{1000 + i}" for i in reversed(range(7)) if i % 3
    ]
    assert _all(s, OUTSIDER, ConversationFilter(), limit=3)[0] == []


def test_an_admin_sees_every_team_that_has_a_number_and_the_pool() -> None:
    s = Setup()
    s.text("+14155551000", "sales")
    s.text("+14155551001", "support")
    s.text("+14155551002", "default")
    assert sorted(_all(s, ADMIN, ConversationFilter(), limit=5)[0]) == [
        "+14155551000",
        "+14155551001",
        "+14155551002",
    ]


def test_filters_keep_only_what_they_say_and_pages_may_be_short_but_go_on() -> None:
    s = Setup()
    for i in range(10):
        s.text(f"+1415555{2000 + i}", "sales", our="+14155550001" if i % 2 else "+14155550003")
    s.conversations.items["+14155552003"].owner = "ann"
    for i in (1, 3):
        s.conversations.items[f"+1415555{2000 + i}"].unread_count = 0
    where = ConversationFilter(our_number="+14155550001")
    seen, pages = _all(s, SALES, where, limit=2)
    assert seen == [f"+1415555{2000 + i}" for i in (9, 7, 5, 3, 1)]
    assert pages >= 5
    assert _all(s, SALES, ConversationFilter(owner="ann"), limit=4)[0] == ["+14155552003"]
    unread = _all(s, SALES, ConversationFilter(our_number="+14155550001", unread=True), limit=4)[0]
    assert unread == ["+14155552009", "+14155552007", "+14155552005"]


def test_every_conversation_shown_says_whether_its_customer_opted_out_and_of_which_numbers() -> None:
    """Consent lives in the opt-out record, not the conversation: lists, search and the one-conversation
    answers all read it, so a STOP shows wherever the thread does, and START clears it."""
    s = Setup()
    for number in ("+14155554000", "+14155554001", "+14155554002"):
        s.text(number, "sales")
    s.opt_outs.record("+14155554000", opted_out=True, source="keyword", at=T0, detail="STOP")
    s.opt_outs.record(
        "+14155554001", opted_out=True, source="keyword", at=T0, detail="STOP", number="+14155550001"
    )
    page = s.service.list(SALES, ConversationFilter(), limit=10, cursor=None)
    shown = {c.customer_number: (c.opted_out, c.opted_out_of) for c in page.conversations}
    assert shown == {
        "+14155554000": (True, []),
        "+14155554001": (False, ["+14155550001"]),
        "+14155554002": (False, []),
    }
    found = s.service.search(SALES, "4155554000", limit=10, cursor=None).conversations
    assert [(c.customer_number, c.opted_out) for c in found] == [("+14155554000", True)]
    assert s.service.close(SALES, "+14155554000").opted_out
    assert s.service.mark_read(SALES, "+14155554001").opted_out_of == ["+14155550001"]
    s.opt_outs.record("+14155554000", opted_out=False, source="keyword", at=T0, detail="START")
    assert not s.service.reopen(SALES, "+14155554000").opted_out


def test_closed_conversations_are_hidden_by_default_and_a_new_text_reopens_them() -> None:
    s = Setup()
    s.text("+14155553000", "sales")
    s.text("+14155553001", "sales")
    closed = s.service.close(SALES, "+14155553000")
    assert closed.closed
    assert _all(s, SALES, ConversationFilter(), limit=5)[0] == ["+14155553001"]
    assert _all(s, SALES, ConversationFilter(status="closed"), limit=5)[0] == ["+14155553000"]
    assert len(_all(s, SALES, ConversationFilter(status="all"), limit=5)[0]) == 2
    s.text("+14155553000", "sales", inbound=False)  # our own text reopens it too
    assert not s.conversations.items["+14155553000"].closed
    s.service.close(SALES, "+14155553000")
    assert not s.service.reopen(SALES, "+14155553000").closed
    with pytest.raises(NotFound):
        s.service.close(OUTSIDER, "+14155553000")


def test_mark_read_and_mark_all_read_bounded_with_a_cursor() -> None:
    s = Setup()
    for i in range(9):
        s.text(f"+1415555{4000 + i}", "sales" if i < 6 else "support", our=f"+1415555000{1 + i % 2}")
    assert s.service.mark_read(SALES, "+14155554000").unread_count == 0
    assert s.conversations.items["+14155554000"].unread_count == 0
    with pytest.raises(NotFound):
        s.service.mark_read(OUTSIDER, "+14155554000")
    only = s.service.mark_all_read(SALES, our_number="+14155550002")
    assert only.marked == 3 and only.cursor is None  # 1, 3, 5
    done = s.service.mark_all_read(BOTH, pages=1, page_size=2)
    assert done.marked >= 1 and done.cursor is not None
    total = done.marked
    while done.cursor is not None:
        done = s.service.mark_all_read(BOTH, cursor=done.cursor, pages=1, page_size=2)
        total += done.marked
    assert total == 5
    assert all(c.unread_count == 0 for c in s.conversations.items.values())


def test_add_contact_creates_a_record_for_the_number_and_links_it() -> None:
    s = Setup()
    s.text("+14155555000", "sales")
    record = s.service.add_contact(SALES, "+14155555000", {"name": "Jo Bloggs", "phones": ["+14155550123"]})
    assert record.phones == ["+14155555000", "+14155550123"] and record.team == "sales"
    assert record.owner == "ann"
    assert s.conversations.items["+14155555000"].contact_id == record.contact_id
    with pytest.raises(AlreadyLinked):
        s.service.add_contact(SALES, "+14155555000", {"name": "Again"})
    with pytest.raises(NotFound):
        s.service.add_contact(OUTSIDER, "+14155555000", {"name": "Eve"})


def test_add_contact_replaces_a_lead_the_routing_made() -> None:
    s = Setup()
    s.text("+14155555001", "sales")
    lead_id = lead_id_for("+14155555001")
    lead = ContactRecord(
        contact_id=lead_id, name="Lead", phone="+14155555001", record_type="lead", team="sales"
    )
    s.contacts.save(lead)
    s.conversations.link("+14155555001", contact_id=lead_id, owner=None, reason="lead")
    record = s.service.add_contact(SALES, "+14155555001", {"name": "Real Person"})
    assert s.conversations.items["+14155555001"].contact_id == record.contact_id


def test_search_by_partial_number_and_name_prefix_once_each_and_only_visible() -> None:
    s = Setup()
    s.text("+14155551415", "sales")
    s.text("+14155556000", "sales")
    s.text("+14155551416", "marketing")
    s.search.index("+14155556000", "sales", "Joanna Johnson")
    every = _numbers(s.service.search(SALES, "1415", limit=10, cursor=None).conversations)
    assert sorted(every) == ["+14155551415", "+14155556000"]  # each once: 1415 is twice in the first
    assert _numbers(s.service.search(SALES, "51415", limit=10, cursor=None).conversations) == ["+14155551415"]
    assert _numbers(s.service.search(SALES, "555 6000", limit=10, cursor=None).conversations) == [
        "+14155556000"
    ]
    for q in ("jo", "JOHN", "joanna jo", "john joa"):
        assert _numbers(s.service.search(SALES, q, limit=10, cursor=None).conversations) == ["+14155556000"]
    assert s.service.search(SALES, "smith", limit=10, cursor=None).conversations == []
    assert s.service.search(OUTSIDER, "1416", limit=10, cursor=None).conversations != []
    assert s.service.search(SALES, "1416", limit=10, cursor=None).conversations == []


def test_search_pages_through_many_hits_without_repeating_one() -> None:
    s = Setup()
    for i in range(12):
        s.text(f"+1415555{7000 + i}", "sales" if i % 2 else "support")
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = s.service.search(BOTH, "5557", limit=3, cursor=cursor)
        seen += _numbers(page.conversations)
        cursor = page.cursor
        if cursor is None:
            break
    assert sorted(seen) == sorted(f"+1415555{7000 + i}" for i in range(12))


@pytest.mark.parametrize("q", ["", "  ", "12", "+1 (4)", "!!!", "x" * 101])
def test_a_search_that_cant_be_made_is_refused_with_the_reason(q: str) -> None:
    with pytest.raises(ValueError, match="'q'"):
        parse_query(q)


def test_a_cursor_not_issued_for_this_list_or_naming_another_team_is_refused() -> None:
    s = Setup()
    for i in range(4):
        s.text(f"+1415555{8000 + i}", "sales")
    page = s.service.list(SALES, ConversationFilter(), limit=1, cursor=None)
    with pytest.raises(ValueError, match="cursor"):
        s.service.list(OUTSIDER, ConversationFilter(), limit=1, cursor=page.cursor)
    with pytest.raises(ValueError, match="cursor"):
        s.service.search(SALES, "555", limit=1, cursor=page.cursor)
    with pytest.raises(ValueError, match="cursor"):
        s.service.list(SALES, ConversationFilter(), limit=1, cursor="not-a-cursor")
    forged = base64.urlsafe_b64encode(json.dumps({"k": "activity", "p": {"sales": 5}}).encode()).decode()
    with pytest.raises(ValueError, match="cursor"):
        s.service.list(SALES, ConversationFilter(), limit=1, cursor=forged)


def test_query_parameters_become_a_filter_or_a_reason() -> None:
    params = {"our_number": "(415) 555-0001", "unread": "true", "status": "all", "owner": "ann"}
    where = conversation_filter(params.get)
    assert where == ConversationFilter(our_number="+14155550001", owner="ann", unread=True, status="all")
    for bad in ({"status": "gone"}, {"unread": "yes"}, {"our_number": "abc"}, {"owner": ""}):
        with pytest.raises(ValueError):
            conversation_filter(bad.get)


def test_terms_are_every_digit_suffix_and_every_name_word() -> None:
    assert terms_for("+14155", "Ann-Marie O'Neil") == {
        "n#14155",
        "n#4155",
        "n#155",
        "w#ann",
        "w#marie",
        "w#o",
        "w#neil",
    }
