"""A worker that dies after the carrier took the text, before recording it: the sweep finds the text stuck in
`sending`, and the retry must find it at the carrier rather than send it again (issue 5, found by
tests/e2e/test_faults.py: the carrier search started at the sweep's attempt, minutes after the text went)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

import pytest

from parley.carriers.base import OutboundText, SendAccepted, SendOutcome
from parley.domain.models import MessageStatus, OurNumber, SendRequest
from tests.fakes import FakeLookupCarrier, SettableClock, World

OURS = "+15005550006"
ANA = "+14155550100"


class WorkerDied(BaseException):
    """The function's process ending mid-invocation (nothing in the service may catch it)."""


class TwilioLikeCarrier(FakeLookupCarrier):
    """Keeps what it accepted with the time it did, and searches as Twilio's `find_sent` does: texts to the
    same number, from the same number, with the same body, created no earlier than a minute before `since`.
    `die_after_send` makes the next send accept the text and then kill the worker."""

    def __init__(self, clock: SettableClock) -> None:
        super().__init__()
        self.clock = clock
        self.accepted: list[tuple[OutboundText, datetime, SendAccepted]] = []
        self.die_after_send = False

    def send(self, text: OutboundText) -> SendOutcome:
        outcome = super().send(text)
        assert isinstance(outcome, SendAccepted)
        self.accepted.append((text, self.clock(), outcome))
        if self.die_after_send:
            self.die_after_send = False
            raise WorkerDied
        return outcome

    def find_sent(
        self, text: OutboundText, since: datetime, skip: Collection[str] = ()
    ) -> SendAccepted | None:
        self.lookups.append((text, since))
        for sent, at, accepted in self.accepted:
            key = (sent.to_number, sent.from_number, sent.body)
            same = key == (text.to_number, text.from_number, text.body)
            if same and at >= since - timedelta(minutes=1) and accepted.carrier_message_id not in skip:
                return accepted
        return None


def test_a_text_stuck_in_sending_after_the_carrier_took_it_is_found_there_not_sent_again() -> None:
    world = World()
    world.carrier = carrier = TwilioLikeCarrier(world.clock)
    world.numbers.save(OurNumber(number=OURS, carrier="fake", is_default=True))
    sender = world.sender()
    (queued,) = sender.submit(
        SendRequest.model_validate({"to": [ANA], "body": "Your order is ready."}), "req-1"
    )
    claimed_at = world.clock()

    carrier.die_after_send = True
    with pytest.raises(WorkerDied):
        sender.deliver(queued.message_id)
    stuck = world.messages.get(queued.message_id)
    assert stuck is not None and stuck.status is MessageStatus.SENDING and stuck.attempts == []

    world.clock.advance(minutes=6)  # the sweep's turn: the text has been `sending` too long
    assert sender.recover_stuck([stuck]) == 1
    for job in world.retry_queue.take():
        sender.deliver(job.body["message_id"])

    final = world.messages.get(queued.message_id)
    assert final is not None and final.status is MessageStatus.ACCEPTED
    assert [a.outcome for a in final.attempts] == ["ambiguous", "reconciled"]
    assert final.carrier_message_id == carrier.accepted[0][2].carrier_message_id
    assert len(carrier.sent) == 1  # never sent twice
    (_, since), *_ = carrier.lookups
    assert since <= claimed_at  # searched from when the text may first have gone, not from the sweep
