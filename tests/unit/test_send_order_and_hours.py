"""Sending under failure: a text waiting to go is not overtaken by later ones to the same person however
many there are, nor while its send is in flight; a text held back for that order spends no stale rate
turn; quiet hours hold a retry or a wait that reaches the evening; a resend repeated after its queue
write failed queues the job; and a text waiting for an earlier one backs off and doesn't look lost."""

from __future__ import annotations

import heapq
from collections import Counter, deque
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from parley.carriers.base import FailureKind, OutboundText, SendFailed, SendOutcome
from parley.domain.keywords import Keyword
from parley.domain.models import MessageStatus, OurNumber, SendRequest
from parley.domain.retry import RetryPolicy
from parley.services.sending import SendService
from tests.fakes import FakeCarrier, World
from tests.unit.test_send_service import message

LONG = "+15005550006"
QUIET = "+15005550010"  # quiet hours 21:00-08:00 in the recipient's zone
X = "+14155550100"  # a +1 415 number: America/Los_Angeles
LA = ZoneInfo("America/Los_Angeles")
THROTTLED = SendFailed(FailureKind.TRANSIENT, "the carrier is rate limiting us", "20429", 429)
PERMANENT = SendFailed(FailureKind.PERMANENT, "the carrier refused the text", "30007", 400)


class PickyCarrier(FakeCarrier):
    """Fails the texts with a given body as scripted for that body; accepts the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.failures: dict[str, deque[SendOutcome]] = {}

    def send(self, text: OutboundText) -> SendOutcome:
        scripted = self.failures.get(text.body)
        if scripted:
            self.sent.append(text)
            return scripted.popleft()
        return super().send(text)


class Player:
    """Both queues played on the simulated clock, each job when due, as SQS with its delays would."""

    def __init__(self, world: World, sender: SendService) -> None:
        self.world, self.sender = world, sender
        self.start = world.clock()
        self.due: list[tuple[datetime, int, str]] = []
        self.seq = 0
        self.deliveries: Counter[str] = Counter()
        self.sent_at: list[tuple[float, str]] = []  # seconds from the start, body

    def collect(self) -> None:
        now = self.world.clock()
        for job in [*self.world.send_queue.take(), *self.world.retry_queue.take()]:
            self.seq += 1
            due = now + timedelta(seconds=job.delay_seconds)
            heapq.heappush(self.due, (due, self.seq, job.body["message_id"]))

    def run(self, seconds: float) -> None:
        """Deliver every job due within `seconds` from now, in due order."""
        until = self.world.clock() + timedelta(seconds=seconds)
        self.collect()
        while self.due and self.due[0][0] <= until:
            at, _, message_id = heapq.heappop(self.due)
            self.world.clock.set(max(at, self.world.clock()))
            before = len(self.world.carrier.sent)
            self.sender.deliver(message_id)
            self.deliveries[message_id] += 1
            for text in self.world.carrier.sent[before:]:
                self.sent_at.append(((self.world.clock() - self.start).total_seconds(), text.body))
            self.collect()
        self.world.clock.set(max(until, self.world.clock()))


@pytest.fixture
def world() -> World:
    w = World(carrier=PickyCarrier())
    w.numbers.save(OurNumber(number=LONG, carrier="fake", is_default=True))
    w.numbers.save(OurNumber(number=QUIET, carrier="fake", quiet_hours="21:00-08:00"))
    return w


def carrier(world: World) -> PickyCarrier:
    assert isinstance(world.carrier, PickyCarrier)
    return world.carrier


def submit(sender: SendService, key: str, *to: str, body: str, sender_number: str = LONG) -> str:
    request = SendRequest.model_validate({"to": list(to), "body": body, "from": sender_number})
    return sender.submit(request, key)[0].message_id


def bodies(world: World) -> list[str]:
    return [t.body for t in world.carrier.sent]


# -- order to one recipient ---------------------------------------------------------------------------


def test_a_waiting_text_is_not_overtaken_once_twenty_later_ones_to_the_same_person_exist(
    world: World,
) -> None:
    carrier(world).failures["A first"] = deque([THROTTLED])
    sender = world.sender(rate_limited=True, policy=RetryPolicy(base_seconds=60))
    play = Player(world, sender)
    first = submit(sender, "a", X, body="A first")
    play.run(0)
    assert message(world, first).status is MessageStatus.RETRYING
    later = []
    for i in range(25):
        world.clock.advance(seconds=0.1)
        later.append(submit(sender, f"b{i}", X, body=f"B {i:02d}"))

    play.run(20)  # A's retry is at least 30 s off: everything to X waits for it
    assert bodies(world) == ["A first"]
    assert {message(world, m).status for m in later} == {MessageStatus.QUEUED}

    play.run(600)
    assert bodies(world) == ["A first", "A first"] + [f"B {i:02d}" for i in range(25)]


def test_a_text_waits_behind_an_earlier_one_whose_send_is_in_flight(world: World) -> None:
    sender = world.sender(rate_limited=True)
    first = submit(sender, "a", X, body="A first")
    world.send_queue.take()
    stored = message(world, first)  # a worker has claimed A and is calling the carrier
    world.messages.update(
        stored.model_copy(update={"status": MessageStatus.SENDING}), expected_version=stored.version
    )
    world.clock.advance(seconds=2)
    second = submit(sender, "b", X, body="B next")
    (job,) = world.send_queue.take()

    sender.deliver(job.body["message_id"])

    assert world.carrier.sent == []
    assert message(world, second).status is MessageStatus.QUEUED
    assert [j.body for j in world.retry_queue.jobs] == [{"message_id": second}]


# -- the rate, with texts held back for order ----------------------------------------------------------


def test_texts_held_back_for_order_do_not_go_in_a_cluster_above_the_number_s_rate(world: World) -> None:
    rate = 2.0
    world.numbers.save(OurNumber(number=LONG, carrier="fake", is_default=True, rate_per_second=rate))
    carrier(world).failures["to X 0"] = deque([THROTTLED] * 3)
    sender = world.sender(rate_limited=True, policy=RetryPolicy(base_seconds=1))
    play = Player(world, sender)
    first = submit(sender, "x0", X, body="to X 0")
    for i in range(1, 9):
        world.clock.advance(seconds=0.01)
        submit(sender, f"x{i}", X, body=f"to X {i}")
    submit(sender, "others", *(f"+1415555{i:04d}" for i in range(200, 230)), body="to someone else")
    while message(world, first).status is not MessageStatus.ACCEPTED:
        play.run(0.25)
    # more traffic from the number just as the texts to X may go
    submit(sender, "more", *(f"+1415555{i:04d}" for i in range(300, 330)), body="to someone else")

    play.run(900)

    assert len(play.sent_at) == 4 + 8 + 60  # X 0 three times refused, then sent
    assert [b for _, b in play.sent_at if b.startswith("to X")] == ["to X 0"] * 4 + [
        f"to X {i}" for i in range(1, 9)
    ]
    window = 3.0
    times = [t for t, _ in play.sent_at]
    busiest = max(sum(1 for u in times if t <= u < t + window) for t in times)
    assert busiest <= rate + rate * window  # the bucket's capacity plus what it refills meanwhile


def test_a_text_held_back_for_order_gives_up_the_turn_it_had_reserved(world: World) -> None:
    sender = world.sender(rate_limited=True)
    submit(sender, "other", "+14155550199", body="to someone else")  # the bucket is spent
    second = submit(sender, "b", X, body="B next")  # waits a second for its turn
    for job in world.send_queue.take():
        sender.deliver(job.body["message_id"])
    world.retry_queue.take()
    assert message(world, second).rate_turn_at is not None
    world.clock.advance(seconds=0.5)
    # meanwhile an earlier text to X has come back on its way (a failed one, resent)
    first = message(world, second).model_copy(
        update={
            "message_id": "out_earlier",
            "body": "A first",
            "created_at": world.clock() - timedelta(minutes=1),
            "rate_turn_at": None,
            "next_attempt_at": world.clock() + timedelta(seconds=40),
            "version": 0,
        }
    )
    world.messages.items[first.message_id] = first
    world.clock.advance(seconds=0.5)

    sender.deliver(second)  # its turn has come, but A goes first

    held = message(world, second)
    assert world.carrier.sent[1:] == [] and held.rate_turn_at is None
    (job,) = [j for j in world.retry_queue.take() if j.body == {"message_id": second}]
    assert job.delay_seconds == 40  # back when A is due


# -- quiet hours at delivery ------------------------------------------------------------------------


def _evening(hour: int, minute: int, second: float = 0.0) -> datetime:
    return datetime(2026, 11, 27, hour, minute, tzinfo=LA) + timedelta(seconds=second)


def test_a_retry_that_falls_due_in_the_recipient_s_quiet_hours_is_held_until_morning(world: World) -> None:
    world.clock.set(_evening(20, 59, 50))
    stop_answer = "You're unsubscribed. Reply START to resubscribe."
    carrier(world).failures.update({"evening text": deque([THROTTLED]), stop_answer: deque([THROTTLED])})
    sender = world.sender(policy=RetryPolicy(base_seconds=30))
    text = submit(sender, "e", X, body="evening text", sender_number=QUIET)
    assert message(world, text).status is MessageStatus.QUEUED  # before 21:00
    for job in world.send_queue.take():
        sender.deliver(job.body["message_id"])
    answer = sender.send_compliance_reply(Keyword.OPT_OUT, "+14155550199", QUIET, "in_1")
    assert answer is not None and answer.status is MessageStatus.RETRYING
    latest = max(j.delay_seconds for j in world.retry_queue.take())
    world.clock.advance(seconds=latest)  # past 21:00 now

    sender.deliver(text)
    answered = sender.deliver(answer.message_id)

    assert answered is not None and answered.status is MessageStatus.ACCEPTED  # the answer is never held

    held = message(world, text)
    morning = datetime(2026, 11, 28, 8, 0, tzinfo=LA)
    assert held.status is MessageStatus.HELD and held.next_attempt_at == morning
    assert held.history[-1].detail == "quiet hours" and len(held.attempts) == 1
    assert bodies(world).count("evening text") == 1  # the first attempt, before 21:00
    assert world.retry_queue.jobs == [] and world.send_queue.jobs == []

    world.clock.set(morning + timedelta(minutes=1))
    assert sender.release_due([held]) == 1
    (job,) = world.send_queue.take()
    sent = sender.deliver(job.body["message_id"])
    assert sent is not None and sent.status is MessageStatus.ACCEPTED
    assert bodies(world).count("evening text") == 2


def test_a_text_whose_rate_turn_falls_in_quiet_hours_is_held(world: World) -> None:
    world.clock.set(_evening(20, 59, 59.5))
    sender = world.sender(rate_limited=True)
    submit(sender, "first", "+14155550199", body="one", sender_number=QUIET)
    text = submit(sender, "second", X, body="two", sender_number=QUIET)  # waits a second: 21:00:00.5
    for queued in world.send_queue.take():
        sender.deliver(queued.body["message_id"])
    (job,) = world.retry_queue.take()
    world.clock.advance(seconds=job.delay_seconds)

    sender.deliver(text)

    held = message(world, text)
    assert held.status is MessageStatus.HELD and held.rate_turn_at is None
    assert bodies(world) == ["one"]


# -- a repeated resend ------------------------------------------------------------------------------


def test_a_resend_repeated_after_its_queue_write_failed_queues_the_job(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    sender = world.sender()
    text = submit(sender, "r", X, body="resend me")
    world.send_queue.take()
    carrier(world).failures["resend me"] = deque([PERMANENT])
    sender.deliver(text)
    assert message(world, text).status is MessageStatus.FAILED

    def unavailable(body: dict[str, object], *, delay_seconds: int = 0) -> None:
        raise ConnectionError("the queue is unavailable")

    with monkeypatch.context() as patched:
        patched.setattr(world.send_queue, "send", unavailable)
        with pytest.raises(ConnectionError):
            sender.resend(message(world, text), by="alice")
    assert message(world, text).status is MessageStatus.QUEUED and world.send_queue.jobs == []

    _, resent_now = sender.resend(message(world, text), by="alice")  # "send the same request again"

    assert resent_now is False
    assert [j.body for j in world.send_queue.jobs] == [{"message_id": text}]
    for job in world.send_queue.take():
        sender.deliver(job.body["message_id"])
    sender.deliver(text)  # a second job for it changes nothing
    assert bodies(world) == ["resend me", "resend me"]
    assert message(world, text).status is MessageStatus.ACCEPTED


# -- what waiting for order costs -----------------------------------------------------------------------


def test_a_text_waiting_for_an_earlier_one_comes_back_when_that_one_is_due_and_is_not_taken_for_lost(
    world: World,
) -> None:
    carrier(world).failures["A first"] = deque([THROTTLED, THROTTLED])
    sender = world.sender(rate_limited=True, policy=RetryPolicy(base_seconds=900))
    play = Player(world, sender)
    first = submit(sender, "a", X, body="A first")
    play.run(0)
    world.clock.advance(seconds=1)
    second = submit(sender, "b", X, body="B next")
    play.run(0)
    a_due = message(world, first).next_attempt_at
    assert a_due is not None
    b_back = next(at for at, _, m in play.due if m == second)
    assert b_back >= a_due  # back when A is due, not a second later

    world.clock.set(b_back - timedelta(seconds=10))  # well past five minutes since B last changed
    assert sender.recover_stuck([message(world, second)]) == 0  # its job is not lost
    assert world.send_queue.jobs == [] and world.retry_queue.jobs == []

    play.run(3 * 3600)
    assert bodies(world) == ["A first"] * 3 + ["B next"]
    assert play.deliveries[second] <= 4  # not once a second for the hour A takes
