"""A run's progress stays true: retries that log a failed day, runs started again, jobs delivered
twice, jobs that run out of time, and days whose texts retention has blanked."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from parley.domain.models import OurNumber
from parley.services.digest import DayPastRetention, external_id
from parley.services.digest_jobs import DigestJobs
from parley.services.retention import RetentionSweep
from tests.fakes import QueuedJob, World
from tests.unit.test_digest_runs import DAY, OURS, customers, text_in


@pytest.fixture
def world() -> World:
    w = World()
    w.numbers.save(OurNumber(number=OURS, carrier="fake", is_default=True, owner="u-ana"))
    return w


def batch(jobs: list[QueuedJob]) -> list[dict[str, Any]]:
    return [{"messageId": f"j{i}", "body": json.dumps(j.body)} for i, j in enumerate(jobs)]


def drain(world: World, jobs: DigestJobs, *, kinds: tuple[str, ...] = ("digest-shard",)) -> int:
    """Deliver queued jobs of `kinds` until none is left; answer how many were delivered."""
    delivered = 0
    while True:
        mine = [j for j in world.digest_queue.jobs if j.body.get("kind") in kinds]
        if not mine:
            return delivered
        world.digest_queue.jobs = [j for j in world.digest_queue.jobs if j not in mine]
        assert jobs.handle(batch(mine), json.loads) == []
        delivered += len(mine)


def counts(world: World) -> dict[str, int]:
    run = world.digest_runs.get(DAY.isoformat())
    assert run is not None
    return {k: v for k, v in run.counts.items() if v}


# -- 12: a retry that logs the day -------------------------------------------------------------------


def test_a_retry_that_logs_a_failed_day_moves_it_from_failed_to_created_once(world: World) -> None:
    down, fine = "+14155550600", "+14155550601"
    text_in(world, "SM1", down)
    text_in(world, "SM2", fine)
    target = external_id("lead-14155550600", DAY.isoformat())
    world.crm.fail(target, "CRM answered 429: slow down")
    jobs = world.digest_jobs()
    jobs.start([DAY])
    drain(world, jobs)
    assert counts(world) == {"conversations": 2, "created": 1, "failed": 1}
    run = world.digest_runs.get(DAY.isoformat())
    assert run is not None and [f["customer_number"] for f in run.failures] == [down]
    (retry,) = world.digest_queue.take()
    assert retry.body["kind"] == "digest-log" and retry.body["run"] == run.run_id

    assert jobs.handle(batch([retry]), json.loads) == ["j0"]  # still down: back to the queue
    assert counts(world) == {"conversations": 2, "created": 1, "failed": 1}

    world.crm.recover(target)
    assert jobs.handle(batch([retry]), json.loads) == []
    assert jobs.handle(batch([retry]), json.loads) == []  # the queue delivers it again

    assert counts(world) == {"conversations": 2, "created": 2}
    run = world.digest_runs.get(DAY.isoformat())
    assert run is not None and run.failures == () and run.finished
    assert world.crm.versions[target] == 1


def test_a_retry_of_a_run_started_again_changes_nothing_in_the_new_run(world: World) -> None:
    down = "+14155550603"
    text_in(world, "SM1", down)
    target = external_id("lead-14155550603", DAY.isoformat())
    world.crm.fail(target)
    jobs = world.digest_jobs()
    jobs.start([DAY])
    drain(world, jobs)
    (old_retry,) = world.digest_queue.take()
    jobs.start([DAY])  # the next night's lookback starts the day again: it fails again
    drain(world, jobs)
    (new_retry,) = world.digest_queue.take()
    world.crm.recover(target)

    assert jobs.handle(batch([old_retry]), json.loads) == []
    assert counts(world) == {"conversations": 1, "failed": 1}  # the earlier run's retry: not this run's
    assert jobs.handle(batch([new_retry]), json.loads) == []  # logged already by the earlier retry
    assert counts(world) == {"conversations": 1, "unchanged": 1}


# -- 13: runs started again, jobs delivered twice ----------------------------------------------------


def test_two_starts_of_a_day_at_once_count_each_conversation_once(world: World) -> None:
    world.digest_page_size = 2
    for n, number in enumerate(customers(9, 700)):
        text_in(world, f"SM{n}", number)
    jobs = world.digest_jobs()
    jobs.start([DAY])
    first_run = world.digest_queue.take()
    jobs.start([DAY])  # a person starts the day while the nightly run's jobs are still queued

    world.digest_queue.jobs = first_run + world.digest_queue.jobs
    drain(world, jobs)

    run = world.digest_runs.get(DAY.isoformat())
    assert run is not None and run.run_id == "run-2"
    assert run.shards_done == world.shards and run.finished
    assert counts(world) == {"conversations": 9, "created": 9}


def test_a_shard_job_delivered_twice_counts_once_and_hands_on_once(world: World) -> None:
    world.digest_page_size = 1
    for n, number in enumerate(customers(12, 720)):
        text_in(world, f"SM{n}", number)
    jobs = world.digest_jobs()
    jobs.start([DAY])

    delivered = 0
    while world.digest_queue.jobs:
        taken = world.digest_queue.take()
        assert jobs.handle(batch(taken + taken), json.loads) == []  # every job comes twice
        delivered += 2 * len(taken)
        assert len(world.digest_queue.jobs) <= world.shards  # one next job per shard, never two

    assert delivered >= 2 * 12
    run = world.digest_runs.get(DAY.isoformat())
    assert run is not None and run.shards_done == world.shards
    assert counts(world) == {"conversations": 12, "created": 12}


def test_a_job_delivered_again_after_its_page_was_counted_sends_the_next_job_if_it_was_not(
    world: World,
) -> None:
    world.digest_page_size = 1
    numbers = customers(40, 740)
    for n, number in enumerate(numbers):
        text_in(world, f"SM{n}", number)
    digest = world.digest()
    (job, *_) = [j for j in digest.start(DAY) if len(world.messages.day_conversations(
        DAY.isoformat(), j.shard, after=None, limit=9)[0]) > 1]  # fmt: skip

    _, following = digest.work(job)  # counted; then the worker died before queueing `following`
    assert following is not None
    again, resent = digest.work(job)

    assert again.conversations == 0 and resent == following
    digest.handed_on(job)
    assert digest.work(job) == (again, None)  # once handed on, nothing more
    assert counts(world) == {"conversations": 1, "created": 1}


# -- 14: a job bounded by the time left --------------------------------------------------------------


class Countdown:
    """The Lambda context's remaining time: each call costs `step` ms."""

    def __init__(self, start: int, step: int) -> None:
        self.left, self.step = start, step

    def __call__(self) -> int:
        self.left -= self.step
        return self.left


def test_a_job_out_of_time_counts_what_it_did_and_hands_on_the_rest() -> None:
    world = World(shards=1)
    world.numbers.save(OurNumber(number=OURS, carrier="fake", is_default=True, owner="u-ana"))
    numbers = customers(10, 760)
    for n, number in enumerate(numbers):
        text_in(world, f"SM{n}", number)
    jobs = DigestJobs(world.digest(), world.digest_queue, timezone="UTC", lookback_days=2, reserve_seconds=60)
    jobs.start([DAY])

    # 300 s at the start; each conversation costs 50 s: 4 fit before 60 s are left
    first = batch(world.digest_queue.take())
    assert jobs.handle(first, json.loads, remaining_ms=Countdown(300_000, 50_000)) == []

    assert counts(world) == {"conversations": 4, "created": 4}
    (following,) = world.digest_queue.jobs
    assert following.body["after"] == sorted(numbers)[3] and following.body["seq"] == 1
    while world.digest_queue.jobs:  # the next invocations, each with its own time
        taken = world.digest_queue.take()
        assert jobs.handle(batch(taken), json.loads, remaining_ms=Countdown(300_000, 50_000)) == []
    assert counts(world) == {"conversations": 10, "created": 10}
    assert sorted(payload["customer_number"] for _, payload in world.crm.calls) == sorted(numbers)
    run = world.digest_runs.get(DAY.isoformat())
    assert run is not None and run.finished


def test_jobs_left_in_a_batch_with_no_time_hand_themselves_on_untouched(world: World) -> None:
    for n, number in enumerate(customers(8, 780)):
        text_in(world, f"SM{n}", number)
    jobs = world.digest_jobs()
    jobs.start([DAY])
    first = world.digest_queue.take()

    assert jobs.handle(batch(first), json.loads, remaining_ms=lambda: 1_000) == []

    assert world.crm.calls == [] and counts(world) == {}
    assert sorted((j.body["shard"], j.body["after"], j.body["seq"]) for j in world.digest_queue.jobs) == [
        (s, None, 1) for s in range(world.shards)
    ]
    drain(world, jobs)
    assert counts(world) == {"conversations": 8, "created": 8}


# -- 7: retention ------------------------------------------------------------------------------------


def test_a_day_whose_texts_retention_blanked_is_not_posted_again(world: World) -> None:
    customer = "+14155550800"
    text_in(world, "SM1", customer, body="the only copy")
    assert world.digest().run(DAY).created == 1
    target = external_id("lead-14155550800", DAY.isoformat())
    world.clock.advance(days=8)
    RetentionSweep(
        messages=world.messages, conversations=world.conversations, previews=world.conversations,
        clock=world.clock, retention_days=7, timezone="UTC", shards=world.shards,
    ).run()  # fmt: skip

    again = world.digest().run(DAY)
    asked = world.digest().log_day(customer, DAY)

    assert (again.expired, again.updated, asked.expired, asked.updated) == (1, 0, 1, 0)
    assert [m["body"] for m in world.crm.records[target]["messages"]] == ["the only copy"]
    assert world.crm.versions[target] == 1


def test_a_day_past_the_retention_the_sweep_runs_with_is_refused(world: World) -> None:
    digest = world.digest()
    digest.check_kept(DAY - timedelta(days=400))  # no sweep yet: nothing is blanked
    digest.keep_retention(7)

    digest.check_kept(DAY - timedelta(days=6))
    with pytest.raises(DayPastRetention, match=r"kept 7 days \(RetentionDays\).*oldest day .* 2024-04-30"):
        digest.check_kept(DAY - timedelta(days=7))
    digest.keep_retention(0)  # kept forever
    digest.check_kept(DAY - timedelta(days=4000))


# -- 20: a day with no texts -------------------------------------------------------------------------


def test_logging_a_day_with_no_texts_says_so(world: World) -> None:
    text_in(world, "SM1", "+14155550810")

    report = world.digest().log_day("+14155550810", DAY - timedelta(days=1))

    assert report.as_dict() | {"failed": []} == {
        "day": (DAY - timedelta(days=1)).isoformat(),
        "conversations": 1,
        "created": 0,
        "updated": 0,
        "unchanged": 0,
        "conflicts": 0,
        "skipped": 0,
        "merged": 0,
        "no_texts": 1,
        "expired": 0,
        "failed": [],
    }
