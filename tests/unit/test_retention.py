"""Retention (parley.services.retention) on the fakes: bodies and media go, the status history stays."""

from __future__ import annotations

from datetime import timedelta

import pytest

from parley.domain.models import InboundMessage, Media, Message, MessageStatus, OurNumber, SendRequest
from parley.services.retention import RetentionSweep, expiring_days, retention_days
from tests.fakes import T0, World

OURS = "+15005550006"
ANA = "+14155550100"
BO = "+14155550101"


@pytest.fixture
def world() -> World:
    w = World()
    w.numbers.save(OurNumber(number=OURS, carrier="fake", is_default=True))
    return w


def sweep(world: World, days: int = 30, **kwargs: object) -> RetentionSweep:
    return RetentionSweep(
        messages=world.messages,
        conversations=world.conversations,
        previews=world.conversations,
        clock=world.clock,
        retention_days=days,
        timezone="UTC",
        shards=world.shards,
        **kwargs,  # type: ignore[arg-type]
    )


def receive(world: World, frm: str, *, sid: str, media: bool = False) -> Message:
    attachments = (Media(url="https://m.example/1.png", stored_at="s3://b/media/x/0"),) if media else ()
    event = InboundMessage(
        carrier="fake", carrier_message_id=sid, from_number=frm, to_number=OURS, body=f"secret {sid}",
        media=attachments, received_at=world.clock(),
    )  # fmt: skip
    stored = world.processor().store_inbound(event)
    assert stored is not None
    return stored


def test_expiring_days_are_the_day_that_reached_the_age_and_a_few_before() -> None:
    assert expiring_days(T0, 30, "UTC", catch_up=2) == ["2024-04-06", "2024-04-05", "2024-04-04"]
    assert expiring_days(T0, 0, "UTC") == []
    with pytest.raises(ValueError, match="at least 7"):
        expiring_days(T0, 3, "UTC")


def test_old_bodies_and_media_go_and_the_status_history_stays(world: World) -> None:
    old = receive(world, ANA, sid="old", media=True)
    (reply,) = world.sender().submit(SendRequest.model_validate({"to": [ANA], "body": "our reply"}), "k1")
    world.sender().deliver(reply.message_id)
    world.clock.advance(days=29)
    recent = receive(world, BO, sid="recent")
    world.clock.advance(days=1, hours=1)

    result = sweep(world).run()

    assert result.done and result.expired == 2
    for message_id in (old.message_id, reply.message_id):
        expired = world.messages.get(message_id)
        assert expired is not None and expired.body == "" and expired.media == []
        assert expired.expired_at == world.clock()
    sent = world.messages.get(reply.message_id)
    assert sent is not None and sent.status is MessageStatus.ACCEPTED and sent.carrier_message_id
    assert [c.status for c in sent.history] == [  # what happened to it stays
        MessageStatus.QUEUED,
        MessageStatus.SENDING,
        MessageStatus.ACCEPTED,
    ]
    kept = world.messages.get(recent.message_id)
    assert kept is not None and kept.body == "secret recent"
    conversation = world.conversations.get(ANA)
    assert conversation is not None and conversation.last_message_preview == ""
    assert conversation.message_count == 2  # the conversation stays
    assert result.previews == 1


def test_a_second_night_changes_nothing(world: World) -> None:
    receive(world, ANA, sid="old")
    world.clock.advance(days=31)
    assert sweep(world).run().expired == 1
    updates = world.messages.updates

    again = sweep(world).run()

    assert (again.expired, world.messages.updates) == (0, updates)


def test_a_text_still_waiting_keeps_its_body(world: World) -> None:
    send_at = (world.clock() + timedelta(days=60)).isoformat()
    (later,) = world.sender().submit(
        SendRequest.model_validate({"to": [ANA], "body": "much later", "send_at": send_at}), "k2"
    )
    world.clock.advance(days=31)

    result = sweep(world).run()

    waiting = world.messages.get(later.message_id)
    assert waiting is not None and waiting.body == "much later" and result.unsent == 1


def test_zero_keeps_everything(world: World) -> None:
    old = receive(world, ANA, sid="old")
    world.clock.advance(days=400)

    result = sweep(world, days=0).run()

    kept = world.messages.get(old.message_id)
    assert result.days == [] and kept is not None and kept.body == "secret old"


def test_out_of_time_says_so(world: World) -> None:
    receive(world, ANA, sid="old")
    world.clock.advance(days=31)
    ticks = iter(range(100))

    result = sweep(world, budget_seconds=1, monotonic=lambda: float(next(ticks))).run()

    assert not result.done


@pytest.mark.parametrize(("given", "days"), [(365, 365), ("30", 30), (0, 0), ("7", 7)])
def test_retention_days_from_the_schedule(given: object, days: int) -> None:
    assert retention_days(given) == days


@pytest.mark.parametrize("given", [None, 3, "6", -1, "x", True, 7.5])
def test_retention_days_refuses_what_the_template_would(given: object) -> None:
    with pytest.raises(ValueError, match="retention"):
        retention_days(given)
