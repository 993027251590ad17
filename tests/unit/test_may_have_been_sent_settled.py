"""The carrier's word that it has an ambiguously sent text settles `may_have_been_sent`: a receipt
naming the text, or a search that finds it, clears the flag so a filter resend may judge it again."""

from __future__ import annotations

from parley.carriers.base import FailureKind, SendAccepted, SendFailed
from parley.domain.models import Message, MessageStatus, OurNumber, SendRequest, StatusUpdate
from tests.fakes import FakeLookupCarrier, World

OURS = "+15005550006"
ANA = "+14155550100"
TIMEOUT = SendFailed(FailureKind.AMBIGUOUS, "the carrier's answer never came (read timeout)")


def stored(world: World, message_id: str) -> Message:
    found = world.messages.get(message_id)
    assert found is not None, message_id
    return found


def flagged_after_a_timeout(world: World) -> Message:
    """An ambiguous send, marked as one the customer may already have."""
    world.numbers.save(OurNumber(number=OURS, carrier="fake", is_default=True))
    sender = world.sender()
    (queued,) = sender.submit(SendRequest.model_validate({"to": [ANA], "body": "Hi"}), "k")
    world.carrier.script(TIMEOUT)
    sender.deliver(queued.message_id)
    world.send_queue.jobs.clear()
    world.retry_queue.jobs.clear()
    message = stored(world, queued.message_id)
    assert message.attempts[-1].outcome == "ambiguous"
    return world.messages.update(
        message.model_copy(update={"may_have_been_sent": True}), expected_version=message.version
    )


def test_a_receipt_proving_the_carrier_had_it_clears_the_flag() -> None:
    world = World()
    message = flagged_after_a_timeout(world)

    world.processor().apply_receipt(
        StatusUpdate(
            carrier="fake",
            carrier_message_id="FK-late",
            client_ref=message.message_id,
            status=MessageStatus.DELIVERED,
            carrier_status="delivered",
        )
    )

    after = stored(world, message.message_id)
    assert after.carrier_message_id == "FK-late"
    assert [a.outcome for a in after.attempts] == ["ambiguous", "reconciled"]
    assert after.may_have_been_sent is False


def test_a_search_finding_the_text_clears_the_flag() -> None:
    carrier = FakeLookupCarrier()
    world = World(carrier=carrier)
    message = flagged_after_a_timeout(world)
    carrier.known[ANA] = SendAccepted("SM-already-there", "sent")
    world.clock.advance(seconds=30)

    after = world.sender().deliver(message.message_id)

    assert after is not None and after.status is MessageStatus.ACCEPTED
    assert [a.outcome for a in after.attempts] == ["ambiguous", "reconciled"]
    assert after.may_have_been_sent is False
    assert len(carrier.sent) == 1
