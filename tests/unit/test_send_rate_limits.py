"""Per-number send rates: excess texts wait their turn on the retry queue, never fail, keep their order."""

from __future__ import annotations

from datetime import timedelta

import pytest

from parley.domain.models import MessageStatus, OurNumber, SendRequest
from parley.domain.rate import BucketState, NumberType
from parley.services.sending import SendService
from tests.fakes import World

LONG_CODE = "+15005550006"
SHORT_CODE = "+15005550009"
ANA = "+14155550100"
BO = "+14155550101"


@pytest.fixture
def world() -> World:
    w = World()
    w.numbers.save(OurNumber(number=LONG_CODE, carrier="fake", is_default=True))
    w.numbers.save(OurNumber(number=SHORT_CODE, carrier="fake", number_type=NumberType.SHORT_CODE))
    return w


def recipient(i: int) -> str:
    return f"+1415555{i:04d}"


def send(sender: SendService, key: str, *to: str, body: str = "Your order is ready.", **extra: str) -> None:
    sender.handle_request(SendRequest.model_validate({"to": list(to), "body": body, **extra}), key)


def test_a_burst_from_one_long_code_sends_one_and_gives_the_rest_turns(world: World) -> None:
    sender = world.sender(rate_limited=True)
    send(sender, "burst", *(recipient(i) for i in range(5)))

    statuses = sorted(m.status.value for m in world.messages.items.values())
    assert statuses == ["accepted"] + ["queued"] * 4
    assert len(world.carrier.sent) == 1
    assert [j.delay_seconds for j in world.retry_queue.jobs] == [1, 2, 3, 4]  # one turn a second
    turns = sorted(m.rate_turn_at for m in world.messages.items.values() if m.rate_turn_at)
    assert turns == [world.clock.now + timedelta(seconds=s) for s in (1, 2, 3, 4)]
    waiting = [m for m in world.messages.items.values() if m.status is MessageStatus.QUEUED]
    assert all(m.attempts == [] and m.error_reason is None for m in waiting)
    assert world.events.of("MessageFailed") == [] and world.events.of("MessageRetried") == []

    seconds = 0
    while len(world.carrier.sent) < 5 and seconds < 10:  # play the retry queue, a second at a time
        seconds += 1
        world.clock.advance(seconds=1)
        for job in world.retry_queue.take():
            sender.deliver(job.body["message_id"])
    assert seconds == 4  # one a second
    assert all(m.status is MessageStatus.ACCEPTED for m in world.messages.items.values())
    assert all(len(m.attempts) == 1 for m in world.messages.items.values())
    assert all(m.rate_turn_at is None for m in world.messages.items.values())  # used up when sent
    assert len(world.rate_limiter.waits) == 4  # each waiting text asked once, not once a second


def test_a_text_back_before_its_turn_waits_without_asking_again(world: World) -> None:
    sender = world.sender(rate_limited=True)
    send(sender, "burst", ANA, BO, recipient(3))
    waiting = sorted(world.retry_queue.take(), key=lambda j: j.delay_seconds)[-1]  # turn in 2 s
    world.clock.advance(seconds=0.5)
    sender.deliver(waiting.body["message_id"])  # delivered early (a redelivery, a clock skew)
    (again,) = world.retry_queue.take()
    assert again.delay_seconds == 2  # the rest of its wait, rounded up
    assert len(world.rate_limiter.waits) == 2 and len(world.carrier.sent) == 1


def test_a_text_whose_turn_is_beyond_the_horizon_reserves_nothing(world: World) -> None:
    sender = world.sender(rate_limited=True)
    send(sender, "first", ANA)
    world.rate_limiter.buckets[LONG_CODE] = BucketState(tokens=-2000.0, at=world.clock.now)
    send(sender, "far", BO)
    (job,) = world.retry_queue.take()
    assert job.delay_seconds == 900  # SQS's longest delay; it asks again then
    stored = world.messages.get(job.body["message_id"])
    assert stored is not None and stored.rate_turn_at is None
    assert world.rate_limiter.buckets[LONG_CODE].tokens == -2000.0


def test_a_long_text_costs_its_segments(world: World) -> None:
    sender = world.sender(rate_limited=True)
    send(sender, "long", ANA, body="x" * 400)  # 3 segments in GSM-7
    send(sender, "next", BO)
    assert len(world.carrier.sent) == 1
    assert [j.delay_seconds for j in world.retry_queue.jobs] == [3]


def test_a_short_code_has_its_own_bucket_and_a_higher_default(world: World) -> None:
    sender = world.sender(rate_limited=True)
    send(sender, "lc", ANA)
    send(sender, "sc", *(recipient(i) for i in range(50)), **{"from": SHORT_CODE})
    assert len(world.carrier.sent) == 51
    assert world.retry_queue.jobs == []


def test_a_number_s_own_rate_wins(world: World) -> None:
    world.numbers.save(OurNumber(number=LONG_CODE, carrier="fake", is_default=True, rate_per_second=2.0))
    sender = world.sender(rate_limited=True)
    send(sender, "two", ANA, BO, recipient(7))
    assert len(world.carrier.sent) == 2


def test_a_later_text_to_the_same_recipient_waits_behind_an_earlier_one(world: World) -> None:
    sender = world.sender(rate_limited=True)
    send(sender, "first", BO)
    send(sender, "earlier", ANA, body="one")  # waits for the rate
    world.clock.advance(seconds=0.5)
    send(sender, "later", ANA, body="two")
    world.clock.advance(seconds=1)  # a token is free: the later text must still not take it
    jobs = world.retry_queue.take()
    for job in reversed(jobs):  # the queue hands them back in the wrong order
        sender.deliver(job.body["message_id"])
    assert [t.body for t in world.carrier.sent] == ["Your order is ready.", "one"]
    world.clock.advance(seconds=1)
    for job in world.retry_queue.take():
        sender.deliver(job.body["message_id"])
    assert [t.body for t in world.carrier.sent] == ["Your order is ready.", "one", "two"]


def test_a_long_forgotten_earlier_text_does_not_hold_later_ones_forever(world: World) -> None:
    sender = world.sender(rate_limited=True)
    send(sender, "first", BO)
    send(sender, "stuck", ANA, body="one")  # waits; pretend its job is lost
    world.retry_queue.take()
    world.clock.advance(hours=2)
    send(sender, "later", ANA, body="two")
    assert [t.body for t in world.carrier.sent] == ["Your order is ready.", "two"]


def test_without_a_limiter_nothing_waits(world: World) -> None:
    send(world.sender(), "burst", *(recipient(i) for i in range(5)))
    assert len(world.carrier.sent) == 5
    assert world.retry_queue.jobs == []


def test_a_waiting_retry_keeps_its_status_and_attempts(world: World) -> None:
    sender = world.sender(rate_limited=True)
    send(sender, "first", BO)
    send(sender, "second", ANA)
    (job,) = world.retry_queue.take()
    stored = world.messages.get(job.body["message_id"])
    assert stored is not None
    world.messages.items[stored.message_id] = stored.model_copy(update={"status": MessageStatus.RETRYING})
    sender.deliver(stored.message_id)  # still within the same second: waits again
    after = world.messages.get(stored.message_id)
    assert after is not None and after.status is MessageStatus.RETRYING and after.attempts == []
    assert [j.delay_seconds for j in world.retry_queue.jobs] == [1]
    world.clock.advance(timedelta(seconds=1))
    sender.deliver(stored.message_id)
    assert len(world.carrier.sent) == 2


def test_a_wait_under_a_second_is_slept_in_place(world: World) -> None:
    world.numbers.save(OurNumber(number=LONG_CODE, carrier="fake", is_default=True, rate_per_second=2.0))
    sender = world.sender(rate_limited=True, sleeps=True)
    send(sender, "burst", *(recipient(i) for i in range(5)))  # 2 at once, then one every half second

    assert len(world.carrier.sent) == 5
    assert world.slept == [pytest.approx(0.5)] * 3
    assert world.retry_queue.jobs == []


def test_a_longer_wait_comes_back_early_and_sleeps_the_rest(world: World) -> None:
    sender = world.sender(rate_limited=True, sleeps=True)
    send(sender, "first", ANA, body="x" * 200)  # 2 segments on a 1/s long code: the next waits 2 s
    world.clock.advance(seconds=0.5)
    send(sender, "next", BO)

    (job,) = world.retry_queue.take()
    assert job.delay_seconds == 1  # 1.5 s off: back after 1 s
    world.clock.advance(seconds=1)
    sender.deliver(job.body["message_id"])
    assert world.slept == [pytest.approx(0.5)]
    assert len(world.carrier.sent) == 2
