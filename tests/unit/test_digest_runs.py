"""A digest run in shard jobs with progress, one record per contact per day, and auto-log."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from parley.domain.models import AutoLog, ContactRecord, InboundMessage, OurNumber, effective_auto_log
from parley.services.digest import ShardJob, external_id
from tests.fakes import T0, World

OURS = "+15005550006"
DAY = T0.date()


@pytest.fixture
def world() -> World:
    w = World()
    w.numbers.save(OurNumber(number=OURS, carrier="fake", is_default=True, owner="u-ana"))
    return w


def text_in(world: World, sid: str, frm: str, at: datetime = T0, body: str = "hello") -> str:
    stored = world.processor().store_inbound(
        InboundMessage(
            carrier="fake", carrier_message_id=sid, from_number=frm, to_number=OURS, body=body, received_at=at
        )
    )
    assert stored is not None
    return next(m.message_id for m in world.messages.items.values() if m.carrier_message_id == sid)


def customers(count: int, base: int = 0) -> list[str]:
    return [f"+1415555{base + n:04d}" for n in range(count)]


def test_a_run_pages_through_every_shard_and_counts_its_progress(world: World) -> None:
    world.digest_page_size = 2
    numbers = customers(11)
    for n, number in enumerate(numbers):
        text_in(world, f"SM{n}", number)
    jobs = world.digest_jobs()

    started = jobs.start([DAY])

    assert started == {"days": [DAY.isoformat()], "jobs": world.shards, "queued": True}
    run = world.digest_runs.get(DAY.isoformat())
    assert run is not None and (run.shards_done, run.finished) == (0, False)
    handled = 0
    while world.digest_queue.jobs:  # the queue delivers; each page hands on the next
        batch = [
            {"messageId": f"j{i}", "body": json.dumps(j.body)}
            for i, j in enumerate(world.digest_queue.take())
        ]
        assert jobs.handle(batch, json.loads) == []
        handled += len(batch)

    run = world.digest_runs.get(DAY.isoformat())
    assert run is not None and run.finished and run.shards_done == world.shards
    assert run.counts["conversations"] == 11 and run.counts["created"] == 11
    assert sorted(payload["customer_number"] for _, payload in world.crm.calls) == numbers  # once each
    # pages of at most two conversations: at least ceil(11 / 2) jobs, each reading one page
    assert handled >= 6 and len(world.messages.day_pages) == handled
    assert ("DigestRecordsPosted", 2) in world.metrics


def test_a_page_goes_on_after_the_last_conversation_it_did(world: World) -> None:
    world.digest_page_size = 1
    numbers = sorted(n for n in customers(40) if n.endswith(("0", "4", "8")))
    for n, number in enumerate(numbers):
        text_in(world, f"SM{n}", number)
    digest = world.digest()
    shard = next(
        s
        for s in range(world.shards)
        if len(world.messages.day_conversations(DAY.isoformat(), s, after=None, limit=99)[0]) > 1
    )

    report, following = digest.work(ShardJob(DAY.isoformat(), shard))

    assert report.conversations == 1 and following is not None
    assert following.after == world.crm.calls[0][1]["customer_number"]
    second, _ = digest.work(following)
    assert second.conversations == 1
    assert world.crm.calls[1][1]["customer_number"] > world.crm.calls[0][1]["customer_number"]


def test_a_contact_with_two_numbers_gets_one_record_a_day(world: World) -> None:
    mobile, office = "+14155550300", "+14155550301"
    world.contacts.save(ContactRecord(contact_id="c-lin", name="Lin Wu", phones=[mobile, office]))
    text_in(world, "SM1", mobile, T0, "from my mobile")
    text_in(world, "SM2", office, T0 + timedelta(hours=2), "now from the office")

    report = world.digest().run(DAY)

    assert (report.conversations, report.created, report.merged) == (2, 1, 1)
    (key,) = world.crm.records
    assert key == external_id("c-lin", DAY.isoformat())
    record = world.crm.records[key]
    assert record["customer_numbers"] == [mobile, office]
    assert [m["body"] for m in record["messages"]] == ["from my mobile", "now from the office"]
    # and again: nothing new
    again = world.digest().run(DAY)
    assert (again.created, again.updated, len(world.crm.calls)) == (0, 0, 1)


def test_a_number_linked_to_another_record_stays_out_of_the_contact_s_day(world: World) -> None:
    mine, shared = "+14155550310", "+14155550311"
    world.contacts.save(ContactRecord(contact_id="c-max", name="Max", phones=[mine, shared]))
    world.contacts.save(ContactRecord(contact_id="c-eve", name="Eve", phones=[shared]))
    text_in(world, "SM1", mine)
    text_in(world, "SM2", shared)
    world.conversations.link(shared, contact_id="c-eve", owner=None, reason="chosen by u-ana")

    world.digest().run(DAY)

    assert [m["body"] for m in world.crm.records[external_id("c-max", DAY.isoformat())]["messages"]] == [
        "hello"
    ]
    assert world.crm.records[external_id("c-eve", DAY.isoformat())]["customer_numbers"] == [shared]


def test_auto_log_off_wins_then_immediate_then_nightly() -> None:
    off, now, nightly = AutoLog.OFF, AutoLog.IMMEDIATE, AutoLog.NIGHTLY
    assert effective_auto_log([now, off], nightly) is off
    assert effective_auto_log([None, now], nightly) is now
    assert effective_auto_log([None, None], now) is now  # the organisation's default
    assert effective_auto_log([nightly], now) is nightly


def test_auto_log_off_for_the_user_skips_the_nightly_run_until_a_person_asks(world: World) -> None:
    text_in(world, "SM1", "+14155550400")
    world.auto_log.set_user("u-ana", "off")  # the owner of our number, so of the new lead

    report = world.digest().run(DAY)

    assert (report.conversations, report.skipped, report.created) == (1, 1, 0)
    assert world.crm.calls == []
    asked = world.digest().log_day("+14155550400", DAY)
    assert asked.created == 1 and len(world.crm.calls) == 1


def test_auto_log_off_on_our_number_skips_it_too(world: World) -> None:
    text_in(world, "SM1", "+14155550401")
    number = world.numbers.get(OURS)
    assert number is not None
    world.numbers.save(number.model_copy(update={"auto_log": AutoLog.OFF}))

    assert world.digest().run(DAY).skipped == 1


def test_immediate_auto_log_logs_the_day_as_each_message_comes(world: World) -> None:
    world.auto_log.set_user("u-ana", "immediate")
    jobs = world.digest_jobs()
    first = text_in(world, "SM1", "+14155550402", T0, "first")
    event = {"detail-type": "MessageReceived", "detail": {"message_id": first}}

    assert jobs.handle([{"messageId": "e1", "body": json.dumps(event)}], json.loads) == []
    assert [m["body"] for _, p in world.crm.calls for m in p["messages"]] == ["first"]

    second = text_in(world, "SM2", "+14155550402", T0 + timedelta(minutes=1), "second")
    assert world.digest().on_activity(second) == "logged"
    (key,) = world.crm.records  # the same record, updated
    assert [m["body"] for m in world.crm.records[key]["messages"]] == ["first", "second"]
    assert world.digest().on_activity(second) == "unchanged"  # a repeated event posts nothing


def test_nightly_auto_log_leaves_message_events_to_the_nightly_run(world: World) -> None:
    message_id = text_in(world, "SM1", "+14155550403")
    assert world.digest().on_activity(message_id) == "not immediate"
    assert world.digest().on_activity("no-such-message") == "unknown message"
    assert world.crm.calls == []


def test_the_nightly_run_looks_again_at_the_days_late_texts_may_change() -> None:
    jobs = World().digest_jobs(lookback_days=2)
    now = datetime(2024, 5, 9, 0, 15, tzinfo=UTC)
    assert jobs.nightly_days(now) == [date(2024, 5, 6), date(2024, 5, 7), date(2024, 5, 8)]


def test_a_job_that_makes_no_sense_is_handed_back_not_dropped(world: World) -> None:
    jobs = world.digest_jobs()
    batch = [
        {"messageId": "a", "body": json.dumps({"kind": "digest-shard", "day": "not a day", "shard": 0})},
        {"messageId": "b", "body": json.dumps({"kind": "something else"})},
        {"messageId": "c", "body": json.dumps([1, 2])},
        {"messageId": "d", "body": json.dumps({"kind": "digest-shard", "day": DAY.isoformat(), "shard": 0})},
    ]
    assert jobs.handle(batch, json.loads) == ["a", "b", "c"]  # to the DLQ after its tries


def test_without_a_queue_a_run_is_worked_through_in_process(world: World) -> None:
    world.digest_page_size = 1
    for n, number in enumerate(customers(5)):
        text_in(world, f"SM{n}", number)

    started = world.digest_jobs(queued=False).start([DAY])

    assert started["queued"] is False and world.digest_queue.jobs == []
    run = world.digest_runs.get(DAY.isoformat())
    assert run is not None and run.finished and run.counts["created"] == 5


def test_a_crm_outage_in_a_run_queues_the_day_again_and_a_refusal_is_only_reported(world: World) -> None:
    down, refused = "+14155550500", "+14155550501"
    text_in(world, "SM1", down)
    text_in(world, "SM2", refused)
    world.crm.fail(external_id("lead-14155550500", DAY.isoformat()), "CRM answered 503: maintenance")
    world.crm.fail(
        external_id("lead-14155550501", DAY.isoformat()), "CRM answered 400: bad field", transient=False
    )

    report = world.digest().run(DAY)

    assert sorted(f["reason"] for f in report.failed) == [
        "CRM answered 400: bad field",
        "CRM answered 503: maintenance",
    ]
    (job,) = world.digest_queue.take()  # the outage only: retrying a refusal can't help
    run = world.digest_runs.get(DAY.isoformat())
    assert run is not None
    assert job.body == {
        "kind": "digest-log",
        "customer_number": down,
        "day": DAY.isoformat(),
        "run": run.run_id,
    }
    assert job.delay_seconds > 0
    assert run.counts["failed"] == 2 and len(run.failures) == 2


def test_a_rate_limited_day_waits_as_long_as_the_crm_asked(world: World) -> None:
    text_in(world, "SM1", "+14155550502")
    world.crm.fail(external_id("lead-14155550502", DAY.isoformat()), "CRM answered 429", retry_after=300.0)

    world.digest().run(DAY)

    (job,) = world.digest_queue.take()
    assert job.delay_seconds == 300
