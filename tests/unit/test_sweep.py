"""The sweep reads waiting texts by when they are due: however many later texts wait, the due ones are
reached, oldest due first, within a bounded number of reads per run."""

from __future__ import annotations

from datetime import timedelta

from parley.domain.models import Message, MessageStatus, OurNumber, SendRequest
from parley.services.sending import SendService
from parley.services.sweep import DueSweep
from tests.fakes import World

OURS = "+15005550006"


def _world() -> tuple[World, SendService]:
    world = World()
    world.numbers.save(OurNumber(number=OURS, carrier="fake", is_default=True))
    return world, world.sender()


def _sweep(world: World, sender: SendService, **kwargs: int) -> DueSweep:
    return DueSweep(messages=world.messages, sender=sender, clock=world.clock, **kwargs)


def _to(i: int) -> str:
    return f"+1415555{i:04d}"


def _schedule(sender: SendService, world: World, i: int, minutes: float) -> Message:
    at = world.clock() + timedelta(minutes=minutes)
    request = SendRequest.model_validate({"to": [_to(i)], "body": f"text {i}", "send_at": at.isoformat()})
    (message,) = sender.submit(request, f"req-{i}")
    assert message.status is MessageStatus.SCHEDULED
    return message


def _queue(sender: SendService, i: int) -> Message:
    (message,) = sender.submit(SendRequest.model_validate({"to": [_to(i)], "body": f"now {i}"}), f"now-{i}")
    return message


def _status(world: World, message: Message) -> MessageStatus:
    stored = world.messages.get(message.message_id)
    assert stored is not None
    return stored.status


def test_a_due_scheduled_text_is_released_behind_many_later_ones() -> None:
    world, sender = _world()
    due = _schedule(sender, world, 0, minutes=1.5)
    later = [_schedule(sender, world, i, minutes=7 * 24 * 60) for i in range(1, 151)]  # newer, next week
    world.clock.advance(minutes=3)

    report = _sweep(world, sender, page=20).run()

    assert report.released == 1 and report.read == 1 and report.complete
    assert _status(world, due) is MessageStatus.QUEUED
    assert [j.body["message_id"] for j in world.send_queue.take()] == [due.message_id]
    assert {_status(world, m) for m in later} == {MessageStatus.SCHEDULED}


def test_a_held_text_whose_window_opened_and_a_stuck_text_are_reached_behind_newer_waiting_ones() -> None:
    world, sender = _world()
    stuck = _queue(sender, 0)
    world.messages.update(
        stuck.model_copy(update={"status": MessageStatus.SENDING}), expected_version=stuck.version
    )
    held = _queue(sender, 1)
    world.messages.update(
        held.model_copy(
            update={"status": MessageStatus.HELD, "next_attempt_at": world.clock() + timedelta(minutes=2)}
        ),
        expected_version=held.version,
    )
    world.clock.advance(seconds=30)
    for i in range(2, 152):  # newer: held until tomorrow morning
        newer = _queue(sender, i)
        world.messages.update(
            newer.model_copy(
                update={"status": MessageStatus.HELD, "next_attempt_at": world.clock() + timedelta(hours=12)}
            ),
            expected_version=newer.version,
        )
    world.send_queue.take()
    world.clock.advance(minutes=6)

    report = _sweep(world, sender, page=20).run()

    assert (report.released, report.recovered) == (1, 1)
    assert _status(world, held) is MessageStatus.QUEUED
    assert _status(world, stuck) is MessageStatus.RETRYING  # an ambiguous attempt: the carrier is asked
    assert [j.body["message_id"] for j in world.send_queue.take()] == [held.message_id]
    assert [j.body["message_id"] for j in world.retry_queue.take()] == [stuck.message_id]


def test_each_run_reads_a_bounded_number_and_the_next_run_goes_on_oldest_due_first() -> None:
    world, sender = _world()
    texts = [_schedule(sender, world, i, minutes=10 + i / 60) for i in range(120)]  # due over 2 minutes
    world.clock.advance(minutes=12.5)
    sweep = _sweep(world, sender, page=20, max_per_partition=50)

    first, second, third = sweep.run(), sweep.run(), sweep.run()

    assert [(r.released, r.read, r.complete) for r in (first, second, third)] == [
        (50, 50, False),
        (50, 50, False),
        (20, 20, True),
    ]
    released = [j.body["message_id"] for j in world.send_queue.take()]
    assert released == [m.message_id for m in texts]  # oldest due first


def test_a_text_requeued_as_lost_is_not_read_again_until_it_could_be_lost_again() -> None:
    world, sender = _world()
    lost = _queue(sender, 0)
    world.send_queue.take()  # its job is lost
    sweep = _sweep(world, sender)
    world.clock.advance(minutes=6)

    assert sweep.run().recovered == 1
    assert [j.body["message_id"] for j in world.send_queue.take()] == [lost.message_id]
    world.clock.advance(minutes=1)
    assert sweep.run().read == 0
    world.clock.advance(minutes=5)
    assert sweep.run().recovered == 1


def test_a_run_short_of_time_stops_and_leaves_the_due_texts_for_the_next() -> None:
    world, sender = _world()
    due = _schedule(sender, world, 0, minutes=1)
    world.clock.advance(minutes=2)
    sweep = _sweep(world, sender)

    short = sweep.run(time_left=lambda: 5.0)
    assert (short.released, short.read, short.complete) == (0, 0, False)
    assert sweep.run(time_left=lambda: 100.0).released == 1
    assert _status(world, due) is MessageStatus.QUEUED
