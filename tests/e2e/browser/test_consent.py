"""The customer's consent in the web inbox, as the API says it (`opted_out`, `opted_out_of`).

A STOP texted in marks the conversation's row and its thread header while the page is open (polling,
no reload) and START clears both; a STOP to the per-number support line marks it as that line's
alone; and compose warns, before sending, when the number a text would go from is one the customer
opted out of, without blocking the send (the server suppresses it).

This module's customers are +14155550910 to +14155550914.
"""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.browser.conftest import Browse, person, sign_in
from tests.e2e.conftest import OUR_NUMBER, Stack

pytestmark = pytest.mark.e2e

STOPPING = "+14155550910"
PER_LINE = "+14155550911"
SUPPORT = "+14155550142"  # the seeded support line: opt-outs kept per number (local/seed.py)


def _conversation(page: Page, number: str) -> Locator:
    return page.get_by_test_id("conversation-list").locator(
        f'[data-testid=conversation][data-number="{number}"]'
    )


def _text_us(stack: Stack, customer: str, body: str, our_number: str = OUR_NUMBER) -> None:
    sim = stack.cli("sim", "sms", "--from", customer, "--to", our_number, "--body", body)
    assert sim.returncode == 0, sim.stderr


def _thread_sub(page: Page) -> Locator:
    return page.get_by_test_id("thread").locator("#thread-sub")


def test_stop_marks_the_row_and_the_thread_without_a_reload_and_start_clears_them(
    stack: Stack, browse: Browse
) -> None:
    fay = person(stack, "web-fay", "default")
    tag = uuid.uuid4().hex[:6]
    page = browse()
    sign_in(page, stack, fay)
    _text_us(stack, STOPPING, f"Where is my parcel? {tag}")
    row = _conversation(page, STOPPING)
    expect(row).to_contain_text(tag)
    expect(row.get_by_test_id("opt-out-marker")).to_have_count(0)
    row.get_by_role("button").first.click()
    thread = page.get_by_test_id("thread")
    expect(thread.get_by_test_id("message").filter(has_text=tag)).to_be_visible()
    expect(_thread_sub(page)).not_to_contain_text("opted out")

    # STOP: the next poll brings the API's flag to the row and to the open thread's header.
    _text_us(stack, STOPPING, "STOP")
    marker = row.get_by_test_id("opt-out-marker")
    expect(marker).to_have_text("Opted out")
    expect(_thread_sub(page)).to_contain_text("opted out")
    expect(_thread_sub(page)).not_to_contain_text("opted out of")

    # Compose names it, whichever number the text would go from (the opt-out covers them all).
    thread.get_by_role("button", name="Reply", exact=True).click()
    compose = page.get_by_test_id("compose")
    warning = compose.get_by_test_id("opt-out-warning")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text(f"{STOPPING} has opted out of all our texts")
    expect(warning).to_contain_text("suppressed")
    compose.get_by_label("From", exact=True).select_option(SUPPORT)
    expect(warning).to_be_visible()
    compose.get_by_role("button", name="Discard").click()
    expect(compose).to_be_hidden()

    # START: both clear, again without a reload.
    _text_us(stack, STOPPING, "START")
    expect(marker).to_have_count(0)
    expect(_thread_sub(page)).not_to_contain_text("opted out")
    thread.get_by_role("button", name="Reply", exact=True).click()
    expect(compose).to_be_visible()
    expect(compose.get_by_label("To", exact=True)).to_have_value(STOPPING)
    expect(warning).to_be_hidden()


def test_a_stop_to_the_per_number_line_is_that_lines_alone_and_compose_warns_only_from_it(
    stack: Stack, browse: Browse
) -> None:
    gus = person(stack, "web-gus", "default")
    tag = uuid.uuid4().hex[:6]
    page = browse()
    sign_in(page, stack, gus)
    _text_us(stack, PER_LINE, f"Ticket question {tag}", SUPPORT)
    row = _conversation(page, PER_LINE)
    expect(row).to_contain_text(tag)

    _text_us(stack, PER_LINE, "STOP", SUPPORT)
    expect(row.get_by_test_id("opt-out-marker")).to_have_text(f"Opted out of {SUPPORT}")
    row.get_by_role("button").first.click()
    expect(_thread_sub(page)).to_contain_text(f"opted out of {SUPPORT}")

    # A reply goes from the line they last talked to, the support line: compose says it is suppressed.
    page.get_by_test_id("thread").get_by_role("button", name="Reply", exact=True).click()
    compose = page.get_by_test_id("compose")
    sender = compose.get_by_label("From", exact=True)
    expect(sender).to_have_value(SUPPORT)
    warning = compose.get_by_test_id("opt-out-warning")
    expect(warning).to_have_text(
        f"{PER_LINE} has opted out of texts from {SUPPORT}: this text to them will be suppressed, not sent."
    )

    # From our default number the text goes: no warning. Automatic means the support line again.
    sender.select_option(OUR_NUMBER)
    expect(warning).to_be_hidden()
    sender.select_option("")
    expect(warning).to_be_visible()

    # The warning does not block: the text is sent, and the server suppresses it.
    sender.select_option(SUPPORT)
    expect(warning).to_be_visible()
    compose.get_by_label("Message", exact=True).fill(f"Your ticket is closed {tag}")
    compose.get_by_role("button", name="Send").click()
    expect(compose).to_be_hidden()
    expect(page.get_by_role("status")).to_contain_text(f"Not sent to {PER_LINE}")
    suppressed = page.get_by_test_id("thread").get_by_test_id("message").filter(has_text=f"closed {tag}")
    expect(suppressed).to_have_attribute("data-status", "suppressed")

    # A new message from the default number to them: no warning; from the support line: the warning.
    page.get_by_role("button", name="New message").click()
    expect(compose).to_be_visible()
    compose.get_by_label("To", exact=True).fill(PER_LINE)
    sender.select_option(OUR_NUMBER)
    expect(warning).to_be_hidden()
    sender.select_option(SUPPORT)
    expect(warning).to_contain_text(f"opted out of texts from {SUPPORT}")
