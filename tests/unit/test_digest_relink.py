"""A conversation's day stays with the CRM record it was posted to when the conversation is linked to
another record; conflicts of a linked conversation are settled by its link; a day tied again after
its conflict was resolved is held again; two resolves of one conflict at once: the first one wins."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from parley.access import Caller
from parley.domain.models import ContactRecord, InboundMessage, OurNumber, SendRequest
from parley.ports import ConflictEntry, DigestEntry
from parley.services.digest import (
    BY_LINK,
    ConflictAlreadyResolved,
    conflict_id,
    digest_key,
    external_id,
)
from tests.fakes import T0, World

MEMBER = Caller("u", frozenset({"default"}))

OURS = "+15005550006"
DAY = T0.date()
D = DAY.isoformat()
NEXT_DAY = DAY + timedelta(days=1)
N = NEXT_DAY.isoformat()

LEAD_NUMBER = "+14155550600"  # unknown: its text makes a lead
LEAD = "lead-14155550600"
SHARED = "+14155550220"  # c-sam and c-kim, of equal rank


@pytest.fixture
def world() -> World:
    w = World()
    w.numbers.save(OurNumber(number=OURS, carrier="fake", is_default=True))
    w.contacts.save(ContactRecord(contact_id="c-sam", name="Sam Lee", phone=SHARED, owner="u-sam"))
    w.contacts.save(ContactRecord(contact_id="c-kim", name="Kim Park", phone=SHARED, owner="u-kim"))
    return w


def text_in(world: World, sid: str, frm: str, at: datetime, body: str = "hello") -> None:
    world.processor().store_inbound(
        InboundMessage(
            carrier="fake", carrier_message_id=sid, from_number=frm, to_number=OURS, body=body, received_at=at
        )
    )


def link(world: World, number: str, record: ContactRecord, reason: str = "added by u") -> None:
    """What add contact does: a record with the number, linked to the conversation."""
    world.contacts.save(record)
    world.conversations.link(number, contact_id=record.contact_id, owner=record.owner, reason=reason)


def records_for(world: World, number: str) -> dict[str, dict[str, Any]]:
    return {key: record for key, record in world.crm.records.items() if number in record["customer_numbers"]}


def bodies(record: dict[str, Any]) -> list[str]:
    return [m["body"] for m in record["messages"]]


# -- 1. the day keeps its CRM record ----------------------------------------------------------------


def test_a_day_posted_under_a_lead_is_updated_not_posted_again_after_add_contact(world: World) -> None:
    text_in(world, "SM1", LEAD_NUMBER, T0, "first text")
    assert world.digest().run(DAY).created == 1
    lead_record = external_id(LEAD, D)
    assert list(records_for(world, LEAD_NUMBER)) == [lead_record]

    link(world, LEAD_NUMBER, ContactRecord(contact_id="r-real", name="Real Person", phone=LEAD_NUMBER))
    report = world.digest().run(DAY)

    assert (report.created, report.updated) == (0, 1)
    assert list(records_for(world, LEAD_NUMBER)) == [lead_record]  # one record for the day
    posted = world.crm.records[lead_record]
    assert (posted["contact_id"], posted["subject"]) == ("r-real", f"SMS with Real Person on {D}")
    assert bodies(posted) == ["first text"]
    entry = world.digests.get(digest_key(LEAD_NUMBER, D))
    assert entry is not None and (entry.external_id, entry.version) == (lead_record, 2)

    again = world.digest().run(DAY)  # nothing changed: nothing posted
    assert (again.created, again.updated, again.unchanged) == (0, 0, 1)

    text_in(world, "SM2", LEAD_NUMBER, T0 + timedelta(hours=1), "a late text")
    late = world.digest().run(DAY)
    assert (late.created, late.updated) == (0, 1)
    assert list(records_for(world, LEAD_NUMBER)) == [lead_record]
    assert bodies(world.crm.records[lead_record]) == ["first text", "a late text"]


def test_a_day_posted_under_the_bare_number_by_an_earlier_version_stays_there(world: World) -> None:
    """An entry written before external ids were kept: under the number's key, it can only be a day
    posted under the number."""
    number = "+14155550601"
    world.sender().submit(SendRequest.model_validate({"to": [number], "body": "hi"}), "req-1")  # no record
    world.digest().run(DAY)
    bare = external_id(number, D)
    assert list(records_for(world, number)) == [bare]
    entry = world.digests.get(digest_key(number, D))
    assert entry is not None
    world.digests.save(DigestEntry(**{**entry.__dict__, "external_id": None}))  # as it was stored then

    link(world, number, ContactRecord(contact_id="r-new", name="New Person", phone=number))
    report = world.digest().run(DAY)

    assert (report.created, report.updated) == (0, 1)
    assert list(records_for(world, number)) == [bare]
    assert world.crm.records[bare]["contact_id"] == "r-new"


def test_a_record_entry_written_before_external_ids_were_kept_is_kept_and_followed(world: World) -> None:
    text_in(world, "SM1", LEAD_NUMBER, T0, "first text")
    world.digest().run(DAY)
    del world.digests.items[digest_key(LEAD_NUMBER, D)]  # only the record's entry, as stored then
    calls = len(world.crm.calls)

    report = world.digest().run(DAY)

    assert (report.unchanged, len(world.crm.calls)) == (1, calls)  # no CRM call for an unchanged day
    entry = world.digests.get(digest_key(LEAD_NUMBER, D))
    assert entry is not None and entry.external_id == external_id(LEAD, D)
    link(world, LEAD_NUMBER, ContactRecord(contact_id="r-real", name="Real Person", phone=LEAD_NUMBER))
    assert world.digest().run(DAY).updated == 1
    assert list(records_for(world, LEAD_NUMBER)) == [external_id(LEAD, D)]


def test_a_record_of_two_numbers_keeps_its_day_and_a_number_that_moves_takes_only_its_texts(
    world: World,
) -> None:
    one, two = "+14155550610", "+14155550611"
    jo = ContactRecord(contact_id="c-jo", name="Jo", phones=[one, two])
    world.contacts.save(jo)
    text_in(world, "SM1", one, T0, "from one")
    text_in(world, "SM2", two, T0 + timedelta(minutes=1), "from two")
    assert world.digest().run(DAY).created == 1
    merged = external_id("c-jo", D)
    assert bodies(world.crm.records[merged]) == ["from one", "from two"]

    # the second number becomes another person's: Jo keeps the first, Max gets the second
    world.contacts.save(jo.model_copy(update={"phones": [one]}))
    link(world, two, ContactRecord(contact_id="c-max", name="Max", phone=two))
    report = world.digest().run(DAY)

    assert (report.created, report.updated) == (1, 1)
    assert bodies(world.crm.records[merged]) == ["from one"]
    assert world.crm.records[merged]["contact_id"] == "c-jo"
    moved = external_id("c-max", D)
    assert bodies(world.crm.records[moved]) == ["from two"]
    assert sorted(world.crm.records) == sorted([merged, moved])
    again = world.digest().run(DAY)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)

    # and Jo's number linked to another record (Jo's CRM contact) later: the same record is updated
    link(world, one, ContactRecord(contact_id="crm-jo", name="Jo Park", phone=one))
    assert world.digest().run(DAY).updated == 1
    assert sorted(world.crm.records) == sorted([merged, moved])
    assert world.crm.records[merged]["contact_id"] == "crm-jo"


def test_a_number_posted_alone_keeps_its_record_when_it_joins_another_numbers_record(world: World) -> None:
    one, two = "+14155550620", "+14155550621"
    text_in(world, "SM1", one, T0, "from one")
    world.digest().run(DAY)
    alone = external_id("lead-14155550620", D)
    assert list(records_for(world, one)) == [alone]

    jo = ContactRecord(contact_id="c-jo2", name="Jo", phones=[one, two])
    link(world, one, jo)
    text_in(world, "SM2", two, T0 + timedelta(minutes=1), "from two")  # routed to Jo: its only record
    report = world.digest().run(DAY)

    assert (report.created, report.updated, report.merged) == (0, 1, 1)
    assert list(world.crm.records) == [alone]
    assert bodies(world.crm.records[alone]) == ["from one", "from two"]
    assert world.crm.records[alone]["contact_id"] == "c-jo2"


# -- 3. a linked conversation's conflicts are settled by its link ---------------------------------


def held_on_two_days(world: World) -> None:
    text_in(world, "SM1", SHARED, T0, "day one")
    text_in(world, "SM2", SHARED, T0 + timedelta(days=1), "day two")
    world.digest().run(DAY)
    world.digest().run(NEXT_DAY)
    open_ = world.digest().open_conflicts({"default"}, limit=50, cursor=None).items
    assert sorted(c.conflict_id for c in open_) == sorted([conflict_id(SHARED, D), conflict_id(SHARED, N)])


def test_resolving_one_day_resolves_the_conversations_other_days_and_posts_them(world: World) -> None:
    held_on_two_days(world)

    outcome = world.digest().resolve(conflict_id(SHARED, N), "c-sam", user="u-ana", caller=MEMBER)

    assert outcome.logged
    assert world.digest().open_conflicts({"default"}, limit=50, cursor=None).items == []
    other = world.conflicts.get(conflict_id(SHARED, D))
    assert other is not None and (other.resolved, other.record_id, other.resolved_by) == (
        True,
        "c-sam",
        "u-ana",
    )
    assert sorted(world.crm.records) == sorted([external_id("c-sam", D), external_id("c-sam", N)])
    with pytest.raises(ConflictAlreadyResolved, match="c-sam"):
        world.digest().resolve(conflict_id(SHARED, D), "c-kim", user="u-bo", caller=MEMBER)
    assert sorted(world.crm.records) == sorted([external_id("c-sam", D), external_id("c-sam", N)])
    conversation = world.conversations.get(SHARED)
    assert conversation is not None and conversation.contact_id == "c-sam"
    rerun = world.digest().run(DAY)
    assert (rerun.conflicts, rerun.created, rerun.unchanged) == (0, 0, 1)


def test_a_day_posted_after_routing_linked_the_conversation_closes_its_conflict(world: World) -> None:
    text_in(world, "SM1", SHARED, T0, "held")
    world.digest().run(DAY)
    link(world, SHARED, ContactRecord(contact_id="r-new", name="Someone New", phone=SHARED))

    report = world.digest().run(DAY)

    assert (report.conflicts, report.created) == (0, 1)
    held = world.conflicts.get(conflict_id(SHARED, D))
    assert held is not None and (held.resolved, held.record_id, held.resolved_by) == (True, "r-new", BY_LINK)
    assert world.digest().open_conflicts({"default"}, limit=50, cursor=None).items == []


def test_a_resolve_against_the_conversations_link_is_refused_and_settles_the_conflict(world: World) -> None:
    text_in(world, "SM1", SHARED, T0, "held")
    world.digest().run(DAY)
    world.conversations.link(SHARED, contact_id="c-sam", owner="u-sam", reason="chosen by u-ana")

    with pytest.raises(ConflictAlreadyResolved, match="linked to 'c-sam'.*chosen by u-ana"):
        world.digest().resolve(conflict_id(SHARED, D), "c-kim", user="u-bo", caller=MEMBER)

    conversation = world.conversations.get(SHARED)
    assert conversation is not None and conversation.contact_id == "c-sam"
    held = world.conflicts.get(conflict_id(SHARED, D))
    assert held is not None and (held.resolved, held.record_id) == (True, "c-sam")
    assert list(world.crm.records) == [external_id("c-sam", D)]  # the day is logged to the link
    assert world.digest().open_conflicts({"default"}, limit=50, cursor=None).items == []
    # with the linked record, it answers as resolved
    assert world.digest().resolve(conflict_id(SHARED, D), "c-sam", user="u-bo", caller=MEMBER).logged


def test_a_resolve_with_the_record_the_conversation_is_linked_to_logs_the_day(world: World) -> None:
    text_in(world, "SM1", SHARED, T0, "held")
    world.digest().run(DAY)
    world.conversations.link(SHARED, contact_id="c-kim", owner="u-kim", reason="the only record")

    outcome = world.digest().resolve(conflict_id(SHARED, D), "c-kim", user="u-bo", caller=MEMBER)

    assert (outcome.logged, outcome.conflict.record_id) == (True, "c-kim")
    assert list(world.crm.records) == [external_id("c-kim", D)]
    conversation = world.conversations.get(SHARED)
    assert conversation is not None and conversation.routing_reason == "the only record"  # left as it was


# -- 4. a day tied again is held again --------------------------------------------------------------


def test_a_day_tied_again_after_its_conflict_was_resolved_is_held_again_and_can_be_resolved(
    world: World,
) -> None:
    text_in(world, "SM1", SHARED, T0, "first")
    world.digest().run(DAY)
    world.digest().resolve(conflict_id(SHARED, D), "c-sam", user="u-ana", caller=MEMBER)
    posted = external_id("c-sam", D)
    assert list(world.crm.records) == [posted]

    # Sam's record loses the number, Lee's gets it: Kim and Lee tie now
    world.contacts.save(
        ContactRecord(contact_id="c-sam", name="Sam Lee", phone="+14155550699", owner="u-sam")
    )
    world.contacts.save(ContactRecord(contact_id="c-lee", name="Lee Park", phone=SHARED, owner="u-lee"))
    world.clock.set(T0 + timedelta(hours=5))
    text_in(world, "SM2", SHARED, T0 + timedelta(hours=4), "second")
    conversation = world.conversations.get(SHARED)
    assert conversation is not None and conversation.conflict_candidates == ["c-kim", "c-lee"]

    report = world.digest().run(DAY)

    assert report.conflicts == 1
    (held,) = world.digest().open_conflicts({"default"}, limit=50, cursor=None).items
    assert held.conflict_id == conflict_id(SHARED, D)
    assert [c.record_id for c in held.candidates] == ["c-kim", "c-lee"]
    assert (held.found_at, held.resolved_by, held.record_id) == (T0 + timedelta(hours=5), None, None)
    assert world.digest().log_day(SHARED, DAY).conflicts == 1

    outcome = world.digest().resolve(held.conflict_id, "c-lee", user="u-ana", caller=MEMBER)

    assert (outcome.logged, outcome.conflict.record_id) == (True, "c-lee")
    assert list(world.crm.records) == [posted]  # the day's one record, now Lee's with both texts
    assert world.crm.records[posted]["contact_id"] == "c-lee"
    assert bodies(world.crm.records[posted]) == ["first", "second"]


# -- 17. two resolves at once: the first one stored wins ------------------------------------------


@pytest.fixture
def raced(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """A conflict resolved with c-sam by one person, while a second resolve had already read it open."""
    text_in(world, "SM1", SHARED, T0, "held")
    world.digest().run(DAY)
    seen_open = world.conflicts.get(conflict_id(SHARED, D))
    world.digest().resolve(conflict_id(SHARED, D), "c-sam", user="u-ana", caller=MEMBER)
    real_get, reads = world.conflicts.get, iter([seen_open])

    def get(key: str) -> ConflictEntry | None:
        return next(reads, None) or real_get(key)

    monkeypatch.setattr(world.conflicts, "get", get)
    # what the second resolve read before the first one stored its choice: the conversation unlinked
    real_conversation = world.conversations.get
    stale = world.conversations.items[SHARED].model_copy(
        update={"contact_id": None, "conflict_candidates": ["c-kim", "c-sam"]}
    )
    stale_reads = iter([stale])
    monkeypatch.setattr(
        world.conversations, "get", lambda number: next(stale_reads, None) or real_conversation(number)
    )
    yield world


def test_the_second_of_two_simultaneous_resolves_with_another_record_is_refused(raced: World) -> None:
    with pytest.raises(ConflictAlreadyResolved, match="already resolved with 'c-sam' by u-ana"):
        raced.digest().resolve(conflict_id(SHARED, D), "c-kim", user="u-bo", caller=MEMBER)

    conversation = raced.conversations.get(SHARED)
    assert conversation is not None and conversation.contact_id == "c-sam"
    stored = raced.conflicts.items[conflict_id(SHARED, D)]
    assert (stored.record_id, stored.resolved_by) == ("c-sam", "u-ana")
    assert list(raced.crm.records) == [external_id("c-sam", D)]


def test_the_second_of_two_simultaneous_resolves_with_the_same_record_answers_the_first(raced: World) -> None:
    outcome = raced.digest().resolve(conflict_id(SHARED, D), "c-sam", user="u-bo", caller=MEMBER)

    assert outcome.logged
    assert (outcome.conflict.record_id, outcome.conflict.resolved_by) == ("c-sam", "u-ana")
    assert list(raced.crm.records) == [external_id("c-sam", D)]
