"""A customer who opted out of all our numbers and then texted START to the per-number support line
may be texted from that line again: the API names it in `opted_in_to`, compose warns only when the
text would go from another number, and a text from the line is sent, not suppressed.

This module's customer is +14155553020.
"""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import expect

from local.process import wait_until
from tests.e2e.browser.conftest import Browse, person, sign_in
from tests.e2e.conftest import OUR_NUMBER, Stack

pytestmark = pytest.mark.e2e

CUSTOMER = "+14155553020"
SUPPORT = "+14155550142"  # the seeded support line: opt-outs kept per number (local/seed.py)


def _text_us(stack: Stack, body: str, our_number: str) -> None:
    sim = stack.cli("sim", "sms", "--from", CUSTOMER, "--to", our_number, "--body", body)
    assert sim.returncode == 0, sim.stderr


def test_a_start_to_the_support_line_after_stop_to_all_lets_that_line_text_them(
    stack: Stack, browse: Browse
) -> None:
    hal = person(stack, "web-hal", "default")
    tag = uuid.uuid4().hex[:6]

    def consent() -> tuple[bool, list[str], list[str]] | None:
        answer = hal.api("GET", "/v1/conversations", params={"q": CUSTOMER})
        assert answer.status_code == 200, answer.text
        found = [c for c in answer.json()["conversations"] if c["customer_number"] == CUSTOMER]
        return (found[0]["opted_out"], found[0]["opted_out_of"], found[0]["opted_in_to"]) if found else None

    # One after the other: a START handled before the STOP would have nothing to lift.
    _text_us(stack, "STOP", OUR_NUMBER)
    wait_until(lambda: consent() == (True, [], []))
    _text_us(stack, "START", SUPPORT)
    # The API says what sending decides: opted out of all, but the support line may text them.
    wait_until(lambda: consent() == (True, [], [SUPPORT]))

    page = browse()
    sign_in(page, stack, hal)
    row = page.get_by_test_id("conversation-list").locator(
        f'[data-testid=conversation][data-number="{CUSTOMER}"]'
    )
    expect(row.get_by_test_id("opt-out-marker")).to_have_text("Opted out")
    row.get_by_role("button").first.click()
    thread = page.get_by_test_id("thread")
    thread.get_by_role("button", name="Reply", exact=True).click()
    compose = page.get_by_test_id("compose")
    sender = compose.get_by_label("From", exact=True)
    warning = compose.get_by_test_id("opt-out-warning")

    # From the pool's number the text would be suppressed; from the support line it goes.
    sender.select_option(OUR_NUMBER)
    expect(warning).to_have_text(
        f"{CUSTOMER} has opted out of all our texts: this text to them will be suppressed, not sent."
    )
    sender.select_option(SUPPORT)
    expect(warning).to_be_hidden()

    compose.get_by_label("Message", exact=True).fill(f"Your ticket is open again {tag}")
    compose.get_by_role("button", name="Send").click()
    expect(compose).to_be_hidden()
    sent = thread.get_by_test_id("message").filter(has_text=f"open again {tag}")
    expect(sent).to_have_attribute("data-status", "delivered")
