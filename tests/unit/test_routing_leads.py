"""The lead Parley made for an unknown number stands in only until a real record has the number: one
from the CRM, or one a person made. The conversation then moves to the real record (several tied:
a conflict), and a day already posted to the CRM under the lead stays in the same CRM record, now
with the real contact."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from parley.domain import routing as r
from parley.domain.models import ContactRecord, InboundMessage, OurNumber
from parley.domain.routing import lead_id_for, made_by_parley, new_lead, route
from parley.services.digest import digest_key, external_id
from tests.fakes import T0, World

CUSTOMER = "+14155550700"
LEAD = lead_id_for(CUSTOMER)
OURS = "+15005550006"
NUMBER = OurNumber(number=OURS, carrier="fake", owner="ana", team="default")
DAY = T0.date()
D = DAY.isoformat()


def lead() -> ContactRecord:
    return new_lead(CUSTOMER, NUMBER, T0 + timedelta(hours=1))  # newer than any record below


def real(contact_id: str, **kw: Any) -> ContactRecord:
    defaults: dict[str, Any] = {"name": contact_id, "phone": CUSTOMER, "crm_id": f"crm-{contact_id}"}
    return ContactRecord(contact_id=contact_id, **{**defaults, **kw})


# -- the rule ---------------------------------------------------------------------------------------


def test_only_the_lead_routing_made_counts_as_parleys() -> None:
    assert made_by_parley(lead())
    assert not made_by_parley(real("c-1"))
    assert not made_by_parley(real("c-1", record_type="lead"))  # a lead from the CRM
    assert not made_by_parley(real("p-1", crm_id=None, record_type="lead"))  # a lead a person made
    assert not made_by_parley(lead().model_copy(update={"crm_id": "00Q1"}))  # given a CRM id
    assert not made_by_parley(lead().model_copy(update={"record_type": "contact"}))  # made a contact


def test_a_linked_lead_yields_to_a_real_record() -> None:
    alone = route([lead()], linked_id=LEAD, number=NUMBER)
    assert alone.record == lead() and alone.reason == r.ONLY  # until one has the number
    decision = route([lead(), real("c-1")], linked_id=LEAD, number=NUMBER)
    assert decision.record is not None and decision.record.contact_id == "c-1"
    assert decision.reason == r.OVER_LEAD
    assert sorted(c.contact_id for c in decision.candidates) == ["c-1", LEAD]


def test_a_lead_yields_to_a_real_lead_even_when_it_is_newer() -> None:
    decision = route(
        [lead(), real("l-crm", record_type="lead", updated_at=T0)], linked_id=LEAD, number=NUMBER
    )
    assert decision.record is not None and decision.record.contact_id == "l-crm"


def test_a_lead_yields_to_a_record_a_person_made() -> None:
    person = real("p-1", crm_id=None, owner="bo", team="default")
    decision = route([lead(), person], linked_id=LEAD, number=NUMBER)
    assert decision.record == person and decision.reason == r.OVER_LEAD


def test_real_records_that_tie_are_a_conflict_without_the_lead() -> None:
    decision = route([lead(), real("c-1"), real("c-2")], linked_id=LEAD, number=NUMBER)
    assert decision.record is None and decision.conflict
    assert decision.tied_ids == ["c-1", "c-2"]


def test_the_rules_rank_the_real_records_and_a_real_linked_record_stays() -> None:
    owned = real("c-own", owner="ana", record_type="lead")
    decision = route([lead(), real("c-1"), owned], linked_id=LEAD, number=NUMBER)
    assert decision.record == owned and decision.reason == r.OWNER
    kept = route([lead(), real("c-1"), owned], linked_id="c-1", number=NUMBER)
    assert kept.record is not None and (kept.record.contact_id, kept.reason) == ("c-1", r.LINKED)


# -- the processor and the digest -------------------------------------------------------------------


@pytest.fixture
def world() -> World:
    w = World()
    w.numbers.save(NUMBER.model_copy(update={"is_default": True}))
    return w


def text(world: World, sid: str, minutes: int, body: str = "hi") -> None:
    world.processor().store_inbound(
        InboundMessage(
            carrier="fake",
            carrier_message_id=sid,
            from_number=CUSTOMER,
            to_number=OURS,
            body=body,
            received_at=T0 + timedelta(minutes=minutes),
        )
    )


def test_the_next_text_moves_the_conversation_from_the_lead_to_the_crm_contact(world: World) -> None:
    text(world, "SM1", 0)
    conversation = world.conversations.get(CUSTOMER)
    assert conversation is not None and conversation.contact_id == LEAD

    world.contacts.save(real("crm-7", name="Known Later", owner="bo"))  # the CRM sync brings the contact
    text(world, "SM2", 1)

    conversation = world.conversations.get(CUSTOMER)
    assert conversation is not None
    assert (conversation.contact_id, conversation.owner) == ("crm-7", "bo")
    assert conversation.routing_reason == r.OVER_LEAD and conversation.conflict_candidates == []


def test_two_crm_records_arriving_make_a_conflict(world: World) -> None:
    text(world, "SM1", 0)
    world.contacts.save(real("crm-1"))
    world.contacts.save(real("crm-2"))
    text(world, "SM2", 1)
    conversation = world.conversations.get(CUSTOMER)
    assert conversation is not None and conversation.contact_id is None
    assert conversation.conflict_candidates == ["crm-1", "crm-2"]


def test_a_day_posted_under_the_lead_stays_in_its_crm_record_with_the_crm_contact(world: World) -> None:
    text(world, "SM1", 0, "before the CRM knew me")
    assert world.digest().run(DAY).created == 1
    under_lead = external_id(LEAD, D)
    assert world.crm.records[under_lead]["crm_contact_id"] is None

    world.contacts.save(real("crm-7", name="Known Later", crm_id="003XYZ"))
    text(world, "SM2", 1, "after the CRM knew me")
    report = world.digest().run(DAY)

    assert (report.created, report.updated) == (0, 1)
    days = [key for key, posted in world.crm.records.items() if CUSTOMER in posted["customer_numbers"]]
    assert days == [under_lead]  # the same CRM record, not a second one for the day
    posted = world.crm.records[under_lead]
    assert (posted["contact_id"], posted["crm_contact_id"]) == ("crm-7", "003XYZ")
    assert [m["body"] for m in posted["messages"]] == ["before the CRM knew me", "after the CRM knew me"]
    entry = world.digests.get(digest_key(CUSTOMER, D))
    assert entry is not None and entry.external_id == under_lead
