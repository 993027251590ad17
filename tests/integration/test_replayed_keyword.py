"""A STOP Twilio posts again (same MessageSid) after the customer's START, through webhook -> processor
on moto: the customer stays opted in and the repeat is not answered (Twilio's texts carry no time of
their own, so the repeat is stamped with its later arrival)."""

from __future__ import annotations

import pytest

from functions.inbound import processor
from parley.adapters.dynamo import DynamoOptOuts
from parley.wiring import reset_container
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

STOP_SID = "SM" + "5" * 32
START_SID = "SM" + "6" * 32


def text_in(stack: Stack, sid: str, body: str) -> int:
    """The customer's text reaches the webhook and the processor; returns the keyword answers queued."""
    assert call_webhook(webhook_event(inbound_form(sid=sid, body=body)))["statusCode"] == 200
    queued = stack.queue_messages(stack.settings.inbound_queue_url)
    assert len(queued) == 1
    assert processor.handler(sqs_event(queued), CONTEXT) == {"batchItemFailures": []}
    return len(stack.queue_messages(stack.settings.send_queue_url))


def test_a_stop_posted_again_after_start_does_not_opt_the_customer_out(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARLEY_TWILIO_SELF_MANAGED_OPT_OUTS", "true")  # Twilio leaves keywords to us
    reset_container()

    assert text_in(stack, STOP_SID, "STOP") == 1
    assert text_in(stack, START_SID, "START") == 1
    opt_out = DynamoOptOuts().get(CUSTOMER)
    assert opt_out is not None and not opt_out.is_opted_out(None)

    assert text_in(stack, STOP_SID, "STOP") == 0  # the same text, posted again

    opt_out = DynamoOptOuts().get(CUSTOMER)
    assert opt_out is not None and not opt_out.is_opted_out(None)
    assert len(opt_out.history) == 2
