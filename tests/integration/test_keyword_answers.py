"""Keyword answers through webhook -> processor -> send Lambda on moto: a STOP to a team's own number
is confirmed from that number, in the team's conversation; a STOP Twilio answered itself is recorded
and not answered twice."""

from __future__ import annotations

from typing import Any

import pytest

from functions.inbound import processor
from functions.send import app as send_app
from parley.adapters.dynamo import DynamoNumbers, DynamoOptOuts
from parley.carriers.base import OutboundText, SendAccepted, SendOutcome
from parley.carriers.twilio import TwilioCarrier
from parley.domain.models import Direction, MessageStatus, OurNumber
from parley.wiring import container, reset_container
from tests.integration.test_handlers import (
    CONTEXT,
    CUSTOMER,
    Stack,
    call_webhook,
    inbound_form,
    sqs_event,
    webhook_event,
)
from tests.integration.test_handlers import stack as stack  # noqa: F401 - the moto stack fixture

SALES = "+15005550007"


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[OutboundText]:
    """Twilio accepts every text (no request leaves the test)."""
    texts: list[OutboundText] = []

    def accept(self: TwilioCarrier, text: OutboundText) -> SendOutcome:
        texts.append(text)
        return SendAccepted(carrier_message_id=f"SM{len(texts):032d}", carrier_status="queued")

    monkeypatch.setattr(TwilioCarrier, "send", accept)
    return texts


def text_in(stack: Stack, body: str, *, to: str) -> list[dict[str, Any]]:
    """The customer texts `to`; returns the send-queue jobs the processor left."""
    assert call_webhook(webhook_event({**inbound_form(body=body), "To": to}))["statusCode"] == 200
    queued = stack.queue_messages(stack.settings.inbound_queue_url)
    assert processor.handler(sqs_event(queued), CONTEXT) == {"batchItemFailures": []}
    return stack.queue_messages(stack.settings.send_queue_url)


def test_stop_to_a_teams_number_is_confirmed_from_it_as_the_teams(
    stack: Stack, sent: list[OutboundText], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARLEY_TWILIO_SELF_MANAGED_OPT_OUTS", "true")  # Twilio leaves keywords to us
    reset_container()
    DynamoNumbers().save(OurNumber(number=SALES, carrier="twilio", team="sales", is_default=True))

    jobs = text_in(stack, "STOP", to=SALES)
    assert [j["Body"][:14] for j in jobs] == ['{"compliance":']
    assert send_app.handler(sqs_event(jobs, queue="send"), CONTEXT) == {"batchItemFailures": []}

    (confirmation,) = sent
    assert (confirmation.from_number, confirmation.to_number) == (SALES, CUSTOMER)
    assert confirmation.body.startswith("You're unsubscribed")
    opt_out = DynamoOptOuts().get(CUSTOMER)
    assert opt_out is not None and opt_out.opted_out
    conversation = container().conversations.get(CUSTOMER)
    assert conversation is not None and conversation.team == "sales"
    thread = container().messages.list_for_conversation(CUSTOMER, limit=10, cursor=None).items
    assert sorted((m.direction, m.team, m.our_number) for m in thread) == [
        (Direction.INBOUND, "sales", SALES),
        (Direction.OUTBOUND, "sales", SALES),
    ]
    (reply,) = [m for m in thread if m.direction is Direction.OUTBOUND]
    assert reply.compliance and reply.status is MessageStatus.ACCEPTED


def test_a_stop_twilio_answered_is_recorded_and_not_answered_again(
    stack: Stack, sent: list[OutboundText]
) -> None:
    jobs = text_in(stack, "STOP", to="+15005550006")

    assert jobs == [] and sent == []  # Twilio confirmed it and blocks the pair itself
    opt_out = DynamoOptOuts().get(CUSTOMER)
    assert opt_out is not None and opt_out.opted_out
    assert [c.source for c in opt_out.history] == ["twilio:keyword"]
