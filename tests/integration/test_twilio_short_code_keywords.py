"""Keywords Twilio does not answer, through webhook -> processor -> send Lambda on moto, with Twilio's
keyword handling on: a STOP to a short code, and a YES to a toll-free number (whose network layer opts
back in on START and UNSTOP alone), are confirmed by Parley from the number texted."""

from __future__ import annotations

from typing import Any

import pytest

from functions.inbound import processor
from functions.send import app as send_app
from parley.adapters.dynamo import DynamoNumbers, DynamoOptOuts
from parley.carriers.base import OutboundText, SendAccepted, SendOutcome
from parley.carriers.twilio import TwilioCarrier
from parley.domain.models import OurNumber
from parley.domain.rate import NumberType
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

SHORT = "12345"
TOLL_FREE = "+18005550142"


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[OutboundText]:
    """Twilio accepts every text (no request leaves the test)."""
    texts: list[OutboundText] = []

    def accept(self: TwilioCarrier, text: OutboundText) -> SendOutcome:
        texts.append(text)
        return SendAccepted(carrier_message_id=f"SM{len(texts):032d}", carrier_status="queued")

    monkeypatch.setattr(TwilioCarrier, "send", accept)
    return texts


def text_in(stack: Stack, sid: str, body: str, *, to: str) -> list[dict[str, Any]]:
    """The customer texts `to`; the send Lambda runs whatever the processor queued, which is returned."""
    assert call_webhook(webhook_event({**inbound_form(sid=sid, body=body), "To": to}))["statusCode"] == 200
    queued = stack.queue_messages(stack.settings.inbound_queue_url)
    assert processor.handler(sqs_event(queued), CONTEXT) == {"batchItemFailures": []}
    jobs = stack.queue_messages(stack.settings.send_queue_url)
    if jobs:
        assert send_app.handler(sqs_event(jobs, queue="send"), CONTEXT) == {"batchItemFailures": []}
    return jobs


def test_stop_to_a_short_code_is_confirmed_by_parley(stack: Stack, sent: list[OutboundText]) -> None:
    DynamoNumbers().save(OurNumber(number=SHORT, carrier="twilio", number_type=NumberType.SHORT_CODE))

    jobs = text_in(stack, "SM" + "1" * 32, "STOP", to=SHORT)

    assert [j["Body"][:14] for j in jobs] == ['{"compliance":']
    (confirmation,) = sent
    assert (confirmation.from_number, confirmation.to_number) == (SHORT, CUSTOMER)
    assert confirmation.body.startswith("You're unsubscribed")
    opt_out = DynamoOptOuts().get(CUSTOMER)
    assert opt_out is not None and opt_out.opted_out
    assert [c.source for c in opt_out.history] == ["keyword"]


def test_yes_to_a_toll_free_number_is_confirmed_by_parley_and_stop_is_not(
    stack: Stack, sent: list[OutboundText]
) -> None:
    DynamoNumbers().save(OurNumber(number=TOLL_FREE, carrier="twilio", number_type=NumberType.TOLL_FREE))

    assert text_in(stack, "SM" + "2" * 32, "STOP", to=TOLL_FREE) == []  # the network layer answered
    text_in(stack, "SM" + "3" * 32, "Yes", to=TOLL_FREE)

    (confirmation,) = sent
    assert (confirmation.from_number, confirmation.to_number) == (TOLL_FREE, CUSTOMER)
    opt_out = DynamoOptOuts().get(CUSTOMER)
    assert opt_out is not None and not opt_out.opted_out
    assert [(c.opted_out, c.source) for c in opt_out.history] == [
        (True, "twilio:keyword"),
        (False, "keyword"),
    ]
