"""The nightly digest: one CRM record per conversation per day, idempotent, and a late message updates it."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import pytest

from parley.adapters.dynamo import shard_of
from parley.domain.models import ContactRecord, InboundMessage, OurNumber, SendRequest
from parley.services.digest import digest_key, external_id
from tests.fakes import T0, World

OURS = "+15005550006"
ANA = "+14155550100"
BO = "+14155550101"
DAY = T0.date()
# A text from an unknown number creates its lead (see routing); the day is logged to that record.
ANA_LEAD, BO_LEAD = "lead-14155550100", "lead-14155550101"
ANA_ID = external_id(ANA_LEAD, DAY.isoformat())
BO_ID = external_id(BO_LEAD, DAY.isoformat())


@pytest.fixture
def world() -> World:
    w = World()
    w.numbers.save(OurNumber(number=OURS, carrier="fake", is_default=True))
    return w


def text_in(world: World, sid: str, frm: str, at: datetime, body: str) -> None:
    world.processor().store_inbound(
        InboundMessage(
            carrier="fake", carrier_message_id=sid, from_number=frm, to_number=OURS, body=body, received_at=at
        )
    )


def text_out(world: World, key: str, to: str, at: datetime, body: str) -> None:
    world.clock.set(at)
    world.sender().submit(SendRequest.model_validate({"to": [to], "body": body}), key)


def a_day_of_texts(world: World) -> None:
    # stored out of order on purpose; the digest orders by time
    text_out(world, "req-reply", ANA, T0 + timedelta(minutes=5), "Yes, until 6pm.")
    text_in(world, "SM1", ANA, T0, "Are you open today?")
    text_in(world, "SM2", ANA, T0 + timedelta(minutes=9), "Thanks!")
    text_in(world, "SM3", BO, T0 + timedelta(hours=1), "Call me")
    text_in(world, "SM0", ANA, T0 - timedelta(days=1), "yesterday's text")


def test_the_customers_land_in_different_shards() -> None:
    # so the tests below also show that the digest reads every shard
    assert shard_of(ANA, 4) != shard_of(BO, 4)


def test_one_record_per_conversation_per_day_with_both_directions_in_order(world: World) -> None:
    a_day_of_texts(world)

    report = world.digest().run(DAY)

    assert (report.conversations, report.created, report.updated, report.unchanged) == (2, 2, 0, 0)
    assert report.failed == []
    assert sorted(world.crm.records) == sorted([ANA_ID, BO_ID])
    ana = world.crm.records[ANA_ID]
    assert ana["day"] == DAY.isoformat()
    assert ana["message_count"] == 3
    assert [(m["direction"], m["body"]) for m in ana["messages"]] == [
        ("inbound", "Are you open today?"),
        ("outbound", "Yes, until 6pm."),
        ("inbound", "Thanks!"),
    ]
    first, reply = ana["messages"][0], ana["messages"][1]
    assert (first["from"], first["to"]) == (ANA, OURS)
    assert (reply["from"], reply["to"]) == (OURS, ANA)
    assert [m["body"] for m in world.crm.records[BO_ID]["messages"]] == ["Call me"]
    entry = world.digests.get(digest_key(ANA_LEAD, DAY.isoformat()))
    assert entry is not None and (entry.version, entry.message_count) == (1, 3)


def test_external_ids_are_stable_and_url_safe() -> None:
    assert external_id("+14155550100", "2024-05-06") == "parley-sms-14155550100-2024-05-06"
    assert external_id("c-lin", "2024-05-06") == "parley-sms-c-lin-2024-05-06"
    hashed = external_id("003/Ab cd", "2024-05-06")  # a CRM's id with characters a URL won't take
    assert hashed == external_id("003/Ab cd", "2024-05-06")
    assert re.fullmatch(r"parley-sms-h[0-9a-f]{24}-2024-05-06", hashed)


def test_a_rerun_changes_nothing_and_posts_nothing(world: World) -> None:
    a_day_of_texts(world)
    digest = world.digest()
    digest.run(DAY)
    calls = len(world.crm.calls)

    report = digest.run(DAY)

    assert (report.created, report.updated, report.unchanged) == (0, 0, 2)
    assert len(world.crm.calls) == calls
    entry = world.digests.get(digest_key(ANA_LEAD, DAY.isoformat()))
    assert entry is not None and entry.version == 1


def test_a_late_message_updates_the_same_record_and_leaves_the_others(world: World) -> None:
    a_day_of_texts(world)
    digest = world.digest()
    digest.run(DAY)
    bo_calls = [c for c in world.crm.calls if c[0] == BO_ID]

    text_in(world, "SM4", ANA, T0 + timedelta(hours=8), "One more thing")
    report = digest.run(DAY)

    assert (report.created, report.updated, report.unchanged) == (0, 1, 1)
    assert sorted(world.crm.records) == sorted([ANA_ID, BO_ID])  # no second record for Ana's day
    assert world.crm.versions[ANA_ID] == 2
    assert [m["body"] for m in world.crm.records[ANA_ID]["messages"]][-1] == "One more thing"
    entry = world.digests.get(digest_key(ANA_LEAD, DAY.isoformat()))
    assert entry is not None and (entry.version, entry.message_count) == (2, 4)
    assert [c for c in world.crm.calls if c[0] == BO_ID] == bo_calls


def test_a_status_change_after_posting_updates_the_record(world: World) -> None:
    text_out(world, "req-1", ANA, T0, "Your order shipped")  # no record: logged by the number
    digest = world.digest()
    digest.run(DAY)
    (message,) = world.messages.items.values()
    world.sender().deliver(message.message_id)

    report = digest.run(DAY)

    assert report.updated == 1
    by_number = external_id(ANA, DAY.isoformat())
    assert world.crm.records[by_number]["messages"][0]["status"] == "accepted"


def test_a_crm_failure_is_reported_the_others_still_post_and_the_next_run_retries(world: World) -> None:
    a_day_of_texts(world)
    world.crm.fail(ANA_ID, "CRM answered 503: maintenance")
    digest = world.digest()

    report = digest.run(DAY)

    assert report.failed == [
        {"customer_number": ANA, "day": DAY.isoformat(), "reason": "CRM answered 503: maintenance"}
    ]
    assert report.created == 1
    assert list(world.crm.records) == [BO_ID]
    assert world.digests.get(digest_key(ANA_LEAD, DAY.isoformat())) is None  # not marked as posted

    world.crm.recover(ANA_ID)
    again = digest.run(DAY)

    assert again.failed == []
    assert (again.created, again.unchanged) == (1, 1)
    assert ANA_ID in world.crm.records


def test_a_day_without_texts_posts_nothing(world: World) -> None:
    a_day_of_texts(world)
    report = world.digest().run(date(2024, 1, 1))
    assert report.conversations == 0
    assert world.crm.calls == []


def test_a_linked_contact_names_the_record(world: World) -> None:
    world.contacts.save(ContactRecord(contact_id="c1", name="Ana Silva", phone=ANA, crm_id="003XYZ"))
    text_in(world, "SM1", ANA, T0, "hi")

    world.digest().run(DAY)

    record = world.crm.records[external_id("c1", DAY.isoformat())]
    assert (record["contact_id"], record["crm_contact_id"]) == ("c1", "003XYZ")
    assert record["subject"] == f"SMS with Ana Silva on {DAY.isoformat()}"


def test_without_a_record_the_day_names_the_number(world: World) -> None:
    text_out(world, "req-1", ANA, T0, "Your order shipped")  # outbound only: no lead is made
    world.digest().run(DAY)
    record = world.crm.records[external_id(ANA, DAY.isoformat())]
    assert record["contact_id"] is None
    assert record["subject"] == f"SMS with {ANA} on {DAY.isoformat()}"
