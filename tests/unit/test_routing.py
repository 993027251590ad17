"""Routing an incoming text to a record: each rule decides in turn, ties fall through, and a tie at
every rule is a conflict. Then the processor: the decision on the conversation, leads made once."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest

from parley.domain import routing as r
from parley.domain.models import ContactRecord, InboundMessage, OurNumber
from parley.domain.routing import lead_id_for, route
from tests.fakes import T0, World

CUSTOMER = "+14155550100"
OURS = "+15005550006"
NUMBER = OurNumber(number=OURS, carrier="fake", owner="ana", team="sales")


def rec(contact_id: str, **kw: Any) -> ContactRecord:
    """A record that ties with any other made here unless told otherwise."""
    defaults: dict[str, Any] = {"name": contact_id, "phone": CUSTOMER, "owner": "zed", "team": "other"}
    return ContactRecord(contact_id=contact_id, **{**defaults, **kw})


# -- the model --------------------------------------------------------------------------------------


def test_a_record_keeps_phone_as_its_primary_among_phones() -> None:
    assert rec("a").phones == [CUSTOMER]
    several = ContactRecord(contact_id="b", name="B", phones=["+14155550001", "+14155550002"])
    assert several.phone == "+14155550001"
    moved = ContactRecord(contact_id="c", name="C", phone="+14155550002", phones=["+14155550001"])
    assert moved.phones == ["+14155550002", "+14155550001"]
    assert ContactRecord.model_validate(moved.model_dump(mode="json")) == moved
    with pytest.raises(ValueError, match="at least one phone"):
        ContactRecord(contact_id="d", name="D")


# -- each rule deciding -----------------------------------------------------------------------------


def test_no_candidates_chooses_nothing() -> None:
    decision = route([], number=NUMBER)
    assert (decision.record, decision.reason, decision.conflict) == (None, r.NO_RECORD, False)


def test_the_only_record_is_chosen() -> None:
    decision = route([rec("a", active=False, record_type="lead")], number=NUMBER)
    assert decision.record is not None and decision.record.contact_id == "a"
    assert decision.reason == r.ONLY


def test_the_linked_record_wins_over_every_other_rule() -> None:
    linked = rec("linked", record_type="lead", active=False)
    better = rec("better", owner="ana", team="sales")
    decision = route([better, linked], linked_id="linked", number=NUMBER)
    assert decision.record == linked and decision.reason == r.LINKED
    assert [c.contact_id for c in decision.candidates] == ["better", "linked"]


def test_a_linked_record_that_lost_the_number_falls_through() -> None:
    decision = route([rec("a", owner="ana"), rec("b")], linked_id="gone", number=NUMBER)
    assert decision.record is not None and decision.record.contact_id == "a"
    assert decision.reason == r.OWNER


def test_the_numbers_owner_wins_over_team_type_active_and_recency() -> None:
    owned = rec("owned", owner="ana", record_type="lead", active=False)
    team = rec("team", team="sales", updated_at=T0)
    decision = route([team, owned], number=NUMBER)
    assert decision.record == owned and decision.reason == r.OWNER


def test_the_numbers_team_wins_over_type_active_and_recency() -> None:
    mine = rec("mine", team="sales", record_type="lead", active=False)
    decision = route([rec("theirs", updated_at=T0), mine], number=NUMBER)
    assert decision.record == mine and decision.reason == r.TEAM


@pytest.mark.parametrize(
    ("winner", "loser"),
    [("contact", "account"), ("account", "opportunity"), ("opportunity", "lead"), ("contact", "lead")],
)
def test_record_type_order(winner: str, loser: str) -> None:
    decision = route(
        [rec("l", record_type=loser, updated_at=T0), rec("w", record_type=winner)], number=NUMBER
    )
    assert decision.record is not None and decision.record.contact_id == "w"
    assert decision.reason == f"its type ({winner}) ranks first: contact, account, opportunity, lead"


def test_active_wins_over_inactive() -> None:
    decision = route([rec("old", active=False, updated_at=T0), rec("live")], number=NUMBER)
    assert decision.record is not None and decision.record.contact_id == "live"
    assert decision.reason == r.ACTIVE


def test_the_most_recently_updated_wins_last() -> None:
    records = [rec("a", updated_at=T0), rec("b", updated_at=T0 + timedelta(hours=1)), rec("c")]
    decision = route(records, number=NUMBER)
    assert decision.record is not None and decision.record.contact_id == "b"
    assert decision.reason == r.RECENT


# -- ties falling through ---------------------------------------------------------------------------


def test_a_tie_on_owner_is_broken_by_team_among_the_owners_records_only() -> None:
    records = [
        rec("a", owner="ana"),
        rec("b", owner="ana", team="sales"),
        rec("c", team="sales"),  # the team's, but not the owner's: out at rule 2
    ]
    decision = route(records, number=NUMBER)
    assert decision.record is not None and decision.record.contact_id == "b"
    assert decision.reason == r.TEAM


def test_a_tie_on_owner_and_team_is_broken_by_type_then_active_then_recency() -> None:
    base = {"owner": "ana", "team": "sales"}
    by_type = route([rec("a", record_type="account", **base), rec("b", **base)], number=NUMBER)
    assert by_type.record is not None and by_type.record.contact_id == "b"
    by_active = route([rec("a", active=False, **base), rec("b", **base)], number=NUMBER)
    assert by_active.record is not None and (by_active.record.contact_id, by_active.reason) == ("b", r.ACTIVE)
    by_recency = route([rec("a", updated_at=T0, **base), rec("b", **base)], number=NUMBER)
    assert by_recency.record is not None and (by_recency.record.contact_id, by_recency.reason) == (
        "a",
        r.RECENT,
    )


def test_without_our_number_the_owner_and_team_rules_are_skipped() -> None:
    decision = route([rec("a", owner="ana", record_type="lead"), rec("b", team="sales")], number=None)
    assert decision.record is not None and decision.record.contact_id == "b"
    assert decision.reason.startswith("its type (contact)")


def test_a_number_with_no_owner_skips_the_owner_rule() -> None:
    unowned = NUMBER.model_copy(update={"owner": None})
    decision = route([rec("a", owner=None), rec("b", owner=None, team="sales")], number=unowned)
    assert decision.record is not None and (decision.record.contact_id, decision.reason) == ("b", r.TEAM)


# -- conflicts --------------------------------------------------------------------------------------


def test_a_tie_at_every_rule_is_a_conflict() -> None:
    records = [rec("a", updated_at=T0), rec("b", updated_at=T0), rec("c", record_type="lead", updated_at=T0)]
    decision = route(records, number=NUMBER)
    assert decision.record is None and decision.conflict
    assert decision.tied_ids == ["a", "b"]
    assert [c.contact_id for c in decision.candidates] == ["a", "b", "c"]
    assert decision.reason.startswith("conflict: 2 records tie on every rule (a, b)")


def test_records_with_no_updated_time_tie() -> None:
    assert route([rec("a"), rec("b")], number=NUMBER).conflict


def test_the_same_record_twice_is_one_candidate() -> None:
    decision = route([rec("a"), rec("a")], number=NUMBER)
    assert decision.record is not None and decision.reason == r.ONLY


# -- the processor ----------------------------------------------------------------------------------


@pytest.fixture
def world() -> World:
    w = World()
    w.numbers.save(NUMBER)
    return w


def text(sid: str, frm: str = CUSTOMER, minutes: int = 0) -> InboundMessage:
    return InboundMessage(
        carrier="fake",
        carrier_message_id=sid,
        from_number=frm,
        to_number=OURS,
        body="hi",
        received_at=T0 + timedelta(minutes=minutes),
    )


def test_the_decision_is_recorded_on_the_conversation_and_in_the_log(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.contacts.save(rec("lead", record_type="lead", owner="bo"))
    world.contacts.save(rec("contact", owner="cy"))
    with caplog.at_level(logging.INFO):
        world.processor().store_inbound(text("SM1"))
    conversation = world.conversations.get(CUSTOMER)
    assert conversation is not None
    assert (conversation.contact_id, conversation.owner) == ("contact", "cy")
    assert conversation.routing_reason is not None and conversation.routing_reason.startswith("its type")
    assert conversation.conflict_candidates == []
    (line,) = [entry for entry in caplog.records if entry.getMessage() == "inbound text stored"]
    assert line.__dict__["record"] == "contact" and line.__dict__["candidates"] == ["contact", "lead"]


def test_a_conflict_leaves_the_conversation_unlinked_with_the_candidates(world: World) -> None:
    world.contacts.save(rec("a"))
    world.contacts.save(rec("b"))
    world.processor().store_inbound(text("SM1"))
    conversation = world.conversations.get(CUSTOMER)
    assert conversation is not None and conversation.contact_id is None
    assert conversation.conflict_candidates == ["a", "b"]
    assert conversation.owner == "ana"  # the number's owner, for now
    assert conversation.routing_reason is not None and conversation.routing_reason.startswith("conflict")


def test_the_linked_record_stays_when_a_better_one_appears(world: World) -> None:
    world.contacts.save(rec("first"))
    world.processor().store_inbound(text("SM1"))
    world.contacts.save(rec("owned", owner="ana"))
    world.processor().store_inbound(text("SM2", minutes=1))
    conversation = world.conversations.get(CUSTOMER)
    assert conversation is not None and conversation.contact_id == "first"
    assert conversation.routing_reason == r.LINKED


def test_a_conflict_resolves_once_a_rule_can_decide(world: World) -> None:
    world.contacts.save(rec("a"))
    world.contacts.save(rec("b"))
    world.processor().store_inbound(text("SM1"))
    world.contacts.save(rec("b", updated_at=T0))
    world.processor().store_inbound(text("SM2", minutes=1))
    conversation = world.conversations.get(CUSTOMER)
    assert conversation is not None
    assert (conversation.contact_id, conversation.conflict_candidates) == ("b", [])
    assert conversation.routing_reason == r.RECENT


def test_an_unknown_number_gets_one_lead_however_often_it_texts(world: World) -> None:
    processor = world.processor()
    processor.store_inbound(text("SM1"))
    processor.store_inbound(text("SM1"))  # the same text again
    processor.store_inbound(text("SM2", minutes=1))  # and the next one
    leads = world.contacts.find_by_phone(CUSTOMER)
    assert [c.contact_id for c in leads] == [lead_id_for(CUSTOMER)]
    (lead,) = leads
    assert (lead.record_type, lead.owner, lead.team, lead.name) == ("lead", "ana", "sales", CUSTOMER)
    conversation = world.conversations.get(CUSTOMER)
    assert conversation is not None and conversation.contact_id == lead.contact_id
    assert conversation.message_count == 2


def test_a_lead_created_by_a_racing_text_is_the_one_linked(world: World) -> None:
    """Another worker created the lead after this one looked the number up (and found nothing)."""
    processor = world.processor()
    found_nothing = world.contacts.find_by_phone
    calls = {"n": 0}

    def lagging(phone: str) -> list[ContactRecord]:
        calls["n"] += 1
        if calls["n"] == 1:
            world.contacts.create(r.new_lead(phone, NUMBER, T0 - timedelta(seconds=1)))
            return []
        return found_nothing(phone)

    world.contacts.find_by_phone = lagging  # type: ignore[method-assign]
    processor.store_inbound(text("SM1"))
    conversation = world.conversations.get(CUSTOMER)
    assert conversation is not None and conversation.contact_id == lead_id_for(CUSTOMER)
    assert len(world.contacts.items) == 1
    assert world.contacts.items[lead_id_for(CUSTOMER)].updated_at == T0 - timedelta(seconds=1)


def test_a_short_code_gets_no_lead(world: World) -> None:
    world.processor().store_inbound(text("SM1", frm="72345"))
    assert world.contacts.items == {}
    conversation = world.conversations.get("72345")
    assert conversation is not None and conversation.contact_id is None
    assert conversation.routing_reason == r.NO_RECORD


def test_a_record_found_by_its_second_number(world: World) -> None:
    world.contacts.save(ContactRecord(contact_id="c1", name="Cy", phones=["+14155550001", CUSTOMER]))
    world.processor().store_inbound(text("SM1"))
    conversation = world.conversations.get(CUSTOMER)
    assert conversation is not None and conversation.contact_id == "c1"
    assert conversation.routing_reason == r.ONLY
