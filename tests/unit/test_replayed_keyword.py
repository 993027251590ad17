"""A keyword text the carrier delivers again (same carrier id) changes no consent and is not answered
again, even when the repeat carries no time of its own and is stamped with its later arrival (Twilio,
Plivo): a STOP posted again after the customer's START must not opt them out."""

from __future__ import annotations

from datetime import timedelta

import pytest

from parley.domain.models import InboundMessage, Message, OurNumber
from tests.fakes import T0, World

OURS = "+15005550006"
ANA = "+14155550100"


@pytest.fixture
def world() -> World:
    w = World()
    w.carrier.name = "twilio"
    w.numbers.save(OurNumber(number=OURS, carrier="twilio", team="t", owner="o", is_default=True))
    return w


def text(world: World, sid: str, body: str, seconds: int) -> Message | None:
    """A text as the webhook stamps it: at the time it arrived."""
    event = InboundMessage(
        carrier="twilio",
        carrier_message_id=sid,
        from_number=ANA,
        to_number=OURS,
        body=body,
        received_at=T0 + timedelta(seconds=seconds),
    )
    return world.processor().store_inbound(event)


def opted_out(world: World) -> bool:
    current = world.opt_outs.get(ANA)
    return current is not None and current.is_opted_out(None)


def test_a_stop_posted_again_after_start_keeps_the_customer_opted_in(world: World) -> None:
    text(world, "SM-stop", "STOP", 0)
    text(world, "SM-start", "START", 30)
    assert not opted_out(world)
    replies = len(world.compliance_replies)

    assert text(world, "SM-stop", "STOP", 120) is None  # Plivo retries after 60, 120, 240 s

    assert not opted_out(world)
    assert len(world.compliance_replies) == replies  # not answered again either


def test_a_start_posted_again_after_a_later_stop_keeps_the_customer_opted_out(world: World) -> None:
    text(world, "SM-start0", "STOP", 0)
    text(world, "SM-start", "START", 30)
    text(world, "SM-stop", "STOP", 60)
    assert opted_out(world)

    text(world, "SM-start", "START", 240)

    assert opted_out(world)


def test_a_new_stop_after_start_still_opts_out(world: World) -> None:
    text(world, "SM-stop", "STOP", 0)
    text(world, "SM-start", "START", 30)
    replies = len(world.compliance_replies)

    text(world, "SM-stop-2", "STOP", 60)

    assert opted_out(world)
    assert len(world.compliance_replies) == replies + 1


def test_help_posted_again_is_not_answered_again(world: World) -> None:
    text(world, "SM-help", "HELP", 0)
    assert len(world.compliance_replies) == 1

    text(world, "SM-help", "HELP", 60)

    assert len(world.compliance_replies) == 1


def test_an_ordinary_text_reads_no_message_first(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []
    get = world.messages.get

    def counting_get(message_id: str) -> Message | None:
        reads.append(message_id)
        return get(message_id)

    monkeypatch.setattr(world.messages, "get", counting_get)

    assert text(world, "SM-hello", "Is my order ready?", 0) is not None
    assert reads == []
    text(world, "SM-stop", "STOP", 10)
    assert len(reads) == 1  # a keyword text alone pays one read
