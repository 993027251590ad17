"""A text whose webhook never reached us (Twilio does not retry it) is found at the carrier by the
MissedInbound schedule and stored once, as the webhook would have stored it; a text that did arrive
is not stored again. This test's customers are +14155550770 to +14155550779."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import OUR_NUMBER, Stack, wait_until

pytestmark = pytest.mark.e2e

LOST = "+14155550770"
ARRIVED = "+14155550771"


def test_a_lost_webhook_is_recovered_from_the_carrier_once_and_an_arrived_one_is_not_repeated(
    stack: Stack,
) -> None:
    arrived = stack.cli("sim", "sms", "--from", ARRIVED, "--to", OUR_NUMBER, "--body", "Got my order, thanks")
    assert arrived.returncode == 0, arrived.stderr
    wait_until(lambda: stack.thread(ARRIVED))

    lost = stack.cli("sim", "sms", "--from", LOST, "--to", OUR_NUMBER, "--body", "Is anyone there?", "--lost")
    assert lost.returncode == 0, lost.stderr
    assert "no webhook was posted" in lost.stdout
    assert stack.thread(LOST) == []  # the carrier has it; we don't

    report = stack.fire("MissedInbound")
    assert report["recovered"] >= 1 and report["numbers_failed"] == []

    (recovered,) = wait_until(lambda: stack.thread(LOST))
    assert (recovered["direction"], recovered["body"]) == ("inbound", "Is anyone there?")
    assert (recovered["our_number"], recovered["carrier"]) == (OUR_NUMBER, "twilio")
    listed = stack.api("GET", "/v1/conversations", params={"q": LOST[1:]}).json()["conversations"]
    assert [(c["customer_number"], c["unread_count"]) for c in listed] == [(LOST, 1)]

    # Whatever else the first run queued (other tests' refused or failed webhooks) is processed first.
    wait_until(lambda: sum(stack.control("GET", "/_local/queues")["InboundQueue"].values()) == 0)
    again = stack.fire("MissedInbound")  # everything the carrier holds is ours now: nothing queued
    assert (again["recovered"], again["numbers_failed"]) == (0, [])
    assert len(stack.thread(LOST)) == 1 and len(stack.thread(ARRIVED)) == 1


def test_a_lost_webhook_can_only_be_simulated_for_a_carrier_that_does_not_retry(stack: Stack) -> None:
    refused = stack.cli(
        "sim", "sms", "--carrier", "telnyx", "--from", LOST, "--to", "+14155550143", "--body", "hi", "--lost"
    )
    assert refused.returncode != 0
    assert "retries them" in refused.stderr
