"""Which conversations a day's CRM record holds: a record's numbers with different auto-log settings,
a conversation no record is linked to while several match its number, and a conversation whose
record dropped its number."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from parley.access import Caller
from parley.domain.models import AutoLog, ContactRecord, InboundMessage, OurNumber, SendRequest
from parley.services.digest import conflict_id, external_id
from tests.fakes import T0, World

MEMBER = Caller("u", frozenset({"default"}))

NIGHTLY = "+15005550006"
OFF = "+15005550007"  # auto-log off
DAY = T0.date()
D = DAY.isoformat()
LOW, HIGH = "+14155550700", "+14155550701"  # one record's two numbers, LOW sorting first


@pytest.fixture
def world() -> World:
    w = World()
    w.numbers.save(OurNumber(number=NIGHTLY, carrier="fake", is_default=True))
    w.numbers.save(OurNumber(number=OFF, carrier="fake", auto_log=AutoLog.OFF))
    return w


def text_in(world: World, sid: str, frm: str, to: str, at: datetime, body: str) -> None:
    world.processor().store_inbound(
        InboundMessage(
            carrier="fake", carrier_message_id=sid, from_number=frm, to_number=to, body=body, received_at=at
        )
    )


def text_out(world: World, key: str, to: str, body: str) -> None:
    world.clock.set(T0)
    world.sender().submit(SendRequest.model_validate({"to": [to], "body": body}), key)


def bodies(record: dict[str, Any]) -> list[str]:
    return [m["body"] for m in record["messages"]]


def every_body(world: World) -> list[str]:
    return sorted(body for record in world.crm.records.values() for body in bodies(record))


@pytest.fixture
def two_numbers(world: World) -> ContactRecord:
    record = ContactRecord(contact_id="c-two", name="Two Numbers", phones=[LOW, HIGH])
    world.contacts.save(record)
    return record


# -- a record's numbers with different auto-log settings ------------------------------------------


def test_a_lower_number_whose_auto_log_is_off_does_not_take_the_others_day_with_it(
    world: World, two_numbers: ContactRecord
) -> None:
    text_in(world, "SM1", LOW, OFF, T0, "low, to the number not logged")
    text_in(world, "SM2", HIGH, NIGHTLY, T0 + timedelta(minutes=1), "high, to the nightly number")

    report = world.digest().run(DAY)

    assert (report.skipped, report.merged, report.created) == (1, 0, 1)
    posted = world.crm.records[external_id("c-two", D)]
    assert (bodies(posted), posted["customer_numbers"]) == (["high, to the nightly number"], [HIGH])


def test_a_number_whose_auto_log_is_off_stays_out_of_its_records_day(
    world: World, two_numbers: ContactRecord
) -> None:
    text_in(world, "SM1", LOW, NIGHTLY, T0, "low, to the nightly number")
    text_in(world, "SM2", HIGH, OFF, T0 + timedelta(minutes=1), "high, to the number not logged")

    report = world.digest().run(DAY)

    assert (report.skipped, report.merged, report.created) == (1, 0, 1)
    posted = world.crm.records[external_id("c-two", D)]
    assert (bodies(posted), posted["customer_numbers"]) == (["low, to the nightly number"], [LOW])


def test_a_day_logged_on_request_keeps_the_off_numbers_texts_on_the_next_run(
    world: World, two_numbers: ContactRecord
) -> None:
    text_in(world, "SM1", LOW, OFF, T0, "low, asked for")
    text_in(world, "SM2", HIGH, NIGHTLY, T0 + timedelta(minutes=1), "high")

    asked = world.digest().log_day(LOW, DAY)  # a person logs the off conversation's day

    assert asked.created == 1
    assert bodies(world.crm.records[external_id("c-two", D)]) == ["low, asked for", "high"]
    report = world.digest().run(DAY)
    assert (report.skipped, report.unchanged, report.updated) == (1, 1, 0)


# -- several records match a conversation no record is linked to ----------------------------------


def test_an_outbound_only_conversation_matching_two_records_that_tie_is_held_as_a_conflict(
    world: World,
) -> None:
    number = "+14155550710"
    text_out(world, "req-1", number, "outbound first")
    world.contacts.save(ContactRecord(contact_id="c-dup1", name="Dup One", phone=number))
    world.contacts.save(ContactRecord(contact_id="c-dup2", name="Dup Two", phone=number))

    report = world.digest().run(DAY)

    assert (report.conflicts, report.created) == (1, 0)
    assert world.crm.records == {}  # not posted under the bare number
    held = world.conflicts.get(conflict_id(number, D))
    assert held is not None and [c.record_id for c in held.candidates] == ["c-dup1", "c-dup2"]
    assert world.digest().log_day(number, DAY).conflicts == 1

    outcome = world.digest().resolve(held.conflict_id, "c-dup2", user="u-ana", caller=MEMBER)

    assert outcome.logged
    assert list(world.crm.records) == [external_id("c-dup2", D)]
    assert bodies(world.crm.records[external_id("c-dup2", D)]) == ["outbound first"]


def test_an_outbound_only_conversation_goes_to_the_record_the_routing_rules_pick(world: World) -> None:
    number = "+14155550711"
    text_out(world, "req-1", number, "outbound first")
    world.contacts.save(ContactRecord(contact_id="c-acct", name="Acme", phone=number, record_type="account"))
    world.contacts.save(ContactRecord(contact_id="c-pers", name="Pat", phone=number, record_type="contact"))

    report = world.digest().run(DAY)

    assert (report.conflicts, report.created) == (0, 1)
    assert list(world.crm.records) == [external_id("c-pers", D)]  # a contact ranks before an account


# -- a record drops one of its numbers -------------------------------------------------------------


def test_a_number_its_record_dropped_keeps_its_texts_in_the_crm(
    world: World, two_numbers: ContactRecord
) -> None:
    text_in(world, "SM1", LOW, NIGHTLY, T0, "from low")
    text_in(world, "SM2", HIGH, NIGHTLY, T0 + timedelta(minutes=1), "from high")
    world.digest().run(DAY)
    assert bodies(world.crm.records[external_id("c-two", D)]) == ["from low", "from high"]

    world.contacts.save(two_numbers.model_copy(update={"phones": [LOW], "phone": LOW}))  # still linked
    report = world.digest().run(DAY)

    assert (report.updated, report.created, report.merged) == (1, 1, 0)
    assert bodies(world.crm.records[external_id("c-two", D)]) == ["from low"]
    assert bodies(world.crm.records[external_id(HIGH, D)]) == ["from high"]  # no record has it now
    assert every_body(world) == ["from high", "from low"]
    again = world.digest().run(DAY)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)


def test_a_dropped_number_another_record_has_goes_to_that_record(
    world: World, two_numbers: ContactRecord
) -> None:
    text_in(world, "SM1", LOW, NIGHTLY, T0, "from low")
    text_in(world, "SM2", HIGH, NIGHTLY, T0 + timedelta(minutes=1), "from high")
    world.digest().run(DAY)

    world.contacts.save(two_numbers.model_copy(update={"phones": [LOW], "phone": LOW}))
    world.contacts.save(ContactRecord(contact_id="c-max", name="Max", phone=HIGH))
    world.digest().run(DAY)

    assert bodies(world.crm.records[external_id("c-two", D)]) == ["from low"]
    moved = world.crm.records[external_id("c-max", D)]
    assert (moved["contact_id"], bodies(moved)) == ("c-max", ["from high"])


def test_a_dropped_number_two_records_tie_for_is_held_and_resolving_it_links_the_conversation(
    world: World, two_numbers: ContactRecord
) -> None:
    text_in(world, "SM1", LOW, NIGHTLY, T0, "from low")
    text_in(world, "SM2", HIGH, NIGHTLY, T0 + timedelta(minutes=1), "from high")
    world.digest().run(DAY)

    world.contacts.save(two_numbers.model_copy(update={"phones": [LOW], "phone": LOW}))
    world.contacts.save(ContactRecord(contact_id="c-kim", name="Kim", phone=HIGH))
    world.contacts.save(ContactRecord(contact_id="c-sam", name="Sam", phone=HIGH))
    report = world.digest().run(DAY)

    assert (report.conflicts, report.updated) == (1, 1)
    outcome = world.digest().resolve(conflict_id(HIGH, D), "c-sam", user="u-ana", caller=MEMBER)

    assert outcome.logged
    conversation = world.conversations.get(HIGH)
    assert conversation is not None and conversation.contact_id == "c-sam"
    assert bodies(world.crm.records[external_id("c-sam", D)]) == ["from high"]
    assert bodies(world.crm.records[external_id("c-two", D)]) == ["from low"]
