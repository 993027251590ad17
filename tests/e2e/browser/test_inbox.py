"""The web inbox in a browser, as a person on the team uses it, against the local stack.

A text from the simulated phone shows up in the list with its unread badge without a reload; a
reply with a template is delivered and shows its tick; a send the carrier fails shows why and is
resent; messages are deleted and restored in bulk from a view; and someone outside the team sees
none of it. The list, a thread and compose are photographed on the way (conftest `screenshots`).

This module's customers are +14155550900 to +14155550909.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Locator, Page, expect

from local.process import wait_until
from tests.e2e.browser.conftest import DESKTOP, PHONE, Browse, Person, person, sign_in
from tests.e2e.conftest import OUR_NUMBER, Stack

pytestmark = pytest.mark.e2e

TEXTER = "+14155550900"
REPLIED = "+14155550901"
FAILING = "+14155550902"
BULK = ("+14155550903", "+14155550904")
PRIVATE = "+14155550905"
PICTURE = "+14155550906"
ELSEWHERE = "+14155550907"
LATE = "+14155550908"
# Whether an image loads from a URL: the page's policy lets images (not fetch) read blob: URLs.
LOADS = """url => new Promise((done) => {
  const probe = new Image();
  probe.onload = () => done(true);
  probe.onerror = () => done(false);
  probe.src = url;
})"""
VIEWS = ("All", "Received", "Sent", "Failed", "Pending", "Scheduled", "Did not trigger", "Deleted")


def _conversation(page: Page, number: str) -> Locator:
    return page.get_by_test_id("conversation-list").locator(
        f'[data-testid=conversation][data-number="{number}"]'
    )


def _message(page: Page, message_id: str) -> Locator:
    return page.get_by_test_id("thread").locator(f'[data-testid=message][data-id="{message_id}"]')


def _row(page: Page, message_id: str) -> Locator:
    return page.locator(f'[data-testid=message-row][data-id="{message_id}"]')


def _nav(page: Page, view: str) -> None:
    page.get_by_role("navigation", name="Views").get_by_role("button", name=view, exact=True).click()
    expect(page.get_by_role("heading", name=view, exact=True)).to_be_visible()


def _text_us(stack: Stack, customer: str, body: str) -> None:
    sim = stack.cli("sim", "sms", "--from", customer, "--to", OUR_NUMBER, "--body", body)
    assert sim.returncode == 0, sim.stderr


def _stored(who: Person, customer: str, tag: str) -> str:
    """The id of the customer's message carrying `tag`, once the stack has stored it."""

    def find() -> str | None:
        answer = who.api("GET", f"/v1/conversations/{customer}/messages")
        messages = answer.json().get("messages", []) if answer.status_code == 200 else []
        return next((m["message_id"] for m in messages if tag in m["body"]), None)

    return wait_until(find, timeout=30)


def test_a_text_from_a_phone_appears_in_the_list_with_an_unread_badge(
    stack: Stack, browse: Browse, screenshots: Path
) -> None:
    ana = person(stack, "web-ana", "default")
    page = browse()
    sign_in(page, stack, ana)
    expect(_conversation(page, TEXTER)).to_have_count(0)

    body = f"Is my order ready? ({uuid.uuid4().hex[:6]})"
    _text_us(stack, TEXTER, body)

    # The page polls: the conversation arrives while it is open, no reload.
    row = _conversation(page, TEXTER)
    expect(row).to_be_visible()
    expect(row).to_contain_text(body)
    badge = row.get_by_test_id("unread-badge")
    expect(badge).to_be_visible()
    expect(badge).to_have_text("1")
    page.screenshot(path=screenshots / "list.png")
    page.set_viewport_size(PHONE)
    expect(badge).to_be_visible()
    page.screenshot(path=screenshots / "list-phone.png")

    # Reading the thread clears the badge.
    page.set_viewport_size(DESKTOP)
    row.get_by_role("button").first.click()
    thread = page.get_by_test_id("thread")
    expect(thread.get_by_test_id("message").filter(has_text=body)).to_have_attribute(
        "data-direction", "inbound"
    )
    expect(badge).to_be_hidden()


def test_a_picture_a_customer_sends_is_shown_in_the_thread(stack: Stack, browse: Browse) -> None:
    """An MMS's picture, copied to our bucket, is loaded with the token and shown in the bubble."""
    pia = person(stack, "web-pia", "default")
    tag = uuid.uuid4().hex[:6]
    payload = {"from": PICTURE, "to": OUR_NUMBER, "body": f"The damage, see photo {tag}", "media": True}
    sent = requests.post(stack.url("/_sim/twilio/_inbound"), json=payload, timeout=15)
    assert sent.status_code == 200, sent.text

    def copied() -> str | None:
        answer = pia.api("GET", f"/v1/conversations/{PICTURE}/messages")
        messages = answer.json().get("messages", []) if answer.status_code == 200 else []
        found = [m for m in messages if tag in m["body"] and m["media"] and m["media"][0].get("stored_at")]
        return found[0]["message_id"] if found else None

    message_id = wait_until(copied, timeout=30)

    page = browse()
    sign_in(page, stack, pia)
    _conversation(page, PICTURE).get_by_role("button").first.click()
    medium = _message(page, message_id).locator("[data-testid=media]")
    expect(medium).to_have_attribute("data-loaded", "true")
    picture = medium.locator("img")
    expect(picture).to_have_attribute("alt", f"Picture 1 from {PICTURE}")
    expect(picture).to_have_attribute("src", re.compile(r"^blob:"))
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=picture.element_handle())

    # Its object URL lives as long as the message is on the page: another thread revokes it.
    src = picture.get_attribute("src")
    assert page.evaluate(LOADS, src) is True
    _text_us(stack, ELSEWHERE, f"Another customer {tag}")
    _conversation(page, ELSEWHERE).get_by_role("button").first.click()
    expect(_message(page, message_id)).to_have_count(0)
    page.wait_for_function(f"url => ({LOADS})(url).then((loaded) => !loaded)", arg=src)

    # The route keeps to the message's visibility: another team's person gets 404, no token 401.
    path = f"/v1/messages/{message_id}/media/0"
    assert person(stack, "web-oscar", "web-outsiders").api("GET", path).status_code == 404
    assert requests.get(stack.url(path), timeout=10).status_code == 401


def test_a_reply_with_a_template_is_delivered_and_shows_its_tick(
    stack: Stack, browse: Browse, screenshots: Path
) -> None:
    bo = person(stack, "web-bo", "default")
    tag = uuid.uuid4().hex[:6]
    template_body = "Hi {{first_name|there}}, your order {{order}} is ready for pickup at the front desk."
    created = bo.api("POST", "/v1/templates", json={"name": f"Order ready {tag}", "body": template_body})
    assert created.status_code == 201, created.text
    template_id = created.json()["template_id"]
    _text_us(stack, REPLIED, f"Any news on my order? {tag}")
    _stored(bo, REPLIED, tag)

    page = browse()
    sign_in(page, stack, bo)
    _conversation(page, REPLIED).get_by_role("button").first.click()
    thread = page.get_by_test_id("thread")
    expect(thread.get_by_test_id("message")).to_have_count(1)
    thread.get_by_role("button", name="Reply", exact=True).click()
    compose = page.get_by_test_id("compose")
    expect(compose).to_be_visible()
    expect(compose.get_by_label("To", exact=True)).to_have_value(REPLIED)
    compose.get_by_label("Template", exact=True).select_option(label=f"Order ready {tag}")
    expect(compose.get_by_label("Message", exact=True)).to_have_value(template_body)
    compose.get_by_label("order", exact=True).fill(f"A-{tag}")

    # The counter says what the server's preview says for this template, these values and this customer.
    preview = bo.api(
        "POST",
        "/v1/messages/preview",
        json={"template_id": template_id, "merge_values": {"order": f"A-{tag}"}, "to": REPLIED},
    ).json()
    expected_text = f"Hi there, your order A-{tag} is ready for pickup at the front desk."
    assert preview["text"] == expected_text
    counter = compose.get_by_test_id("counter")
    expect(counter).to_have_attribute("data-chars", str(preview["characters"]))
    expect(counter).to_have_attribute("data-encoding", preview["encoding"])
    expect(counter).to_have_attribute("data-segments", str(preview["segments"]))
    expect(counter).to_have_attribute("data-units", str(preview["units"]))
    page.screenshot(path=screenshots / "compose.png")

    compose.get_by_role("button", name="Send").click()
    expect(compose).to_be_hidden()
    reply = thread.get_by_test_id("message").filter(has_text=expected_text)
    expect(reply).to_have_attribute("data-direction", "outbound")
    expect(reply.get_by_test_id("tick")).to_have_attribute("data-status", "delivered")
    expect(reply).to_have_attribute("data-status", "delivered")
    # The "Sending 1 text." note fades after a few seconds: wait it out for a clean picture.
    expect(page.get_by_role("status").get_by_text("Sending 1 text")).to_be_hidden()
    page.screenshot(path=screenshots / "thread.png")

    (at_carrier,) = [m for m in stack.sim_messages(REPLIED) if tag in m["body"]]
    assert (at_carrier["body"], at_carrier["from"]) == (expected_text, OUR_NUMBER)


def test_a_failed_send_shows_its_reason_and_resend_delivers_it(
    stack: Stack, browse: Browse, carrier_fault: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    cy = person(stack, "web-cy", "default")
    # The carrier takes the next text to this customer and reports it undelivered (30006, a
    # landline: a permanent failure, not retried by itself); the fault is then spent.
    fault = carrier_fault({"kind": "undelivered", "count": 1, "to": FAILING, "error_code": "30006"})
    assert fault["to"] == FAILING
    body = f"Your table is ready ({uuid.uuid4().hex[:6]})"

    page = browse()
    sign_in(page, stack, cy)
    page.get_by_role("button", name="New message").click()
    compose = page.get_by_test_id("compose")
    compose.get_by_label("To", exact=True).fill(FAILING)
    compose.get_by_label("Message", exact=True).fill(body)
    compose.get_by_role("button", name="Send").click()
    expect(compose).to_be_hidden()
    expect(page.get_by_role("status")).to_contain_text("Sending 1 text")

    _conversation(page, FAILING).get_by_role("button").first.click()
    message = page.get_by_test_id("thread").get_by_test_id("message").filter(has_text=body)
    expect(message).to_have_attribute("data-status", "undelivered")
    reason = message.get_by_test_id("failure-reason")
    expect(reason).to_contain_text("landline")
    message_id = message.get_attribute("data-id")
    assert message_id

    message.get_by_role("button", name="Resend").click()
    resent = _message(page, message_id)
    expect(resent).to_have_attribute("data-status", "delivered")
    expect(resent.get_by_test_id("failure-reason")).to_have_count(0)
    expect(resent.get_by_test_id("tick")).to_have_attribute("data-status", "delivered")
    assert [m["status"] for m in stack.sim_messages(FAILING) if m["body"] == body] == [
        "undelivered",
        "delivered",
    ]
    history = [h["detail"] or "" for h in cy.api("GET", f"/v1/messages/{message_id}").json()["history"]]
    assert any(d.startswith("resent by web-cy") for d in history), history


def test_a_send_at_that_has_passed_is_refused_in_compose(stack: Stack, browse: Browse) -> None:
    di = person(stack, "web-di", "default")
    page = browse()
    sign_in(page, stack, di)
    page.get_by_role("button", name="New message").click()
    compose = page.get_by_test_id("compose")
    compose.get_by_label("To", exact=True).fill(LATE)
    compose.get_by_label("Message", exact=True).fill("See you at nine")
    compose.get_by_label("Send at", exact=True).fill("2020-01-01T09:00")
    compose.get_by_role("button", name="Send").click()

    expect(compose.get_by_role("alert")).to_contain_text("that time has passed")
    expect(compose).to_be_visible()
    assert di.api("GET", f"/v1/conversations/{LATE}/messages").status_code == 404  # nothing was sent


def test_messages_are_deleted_and_restored_in_bulk_from_a_view(stack: Stack, browse: Browse) -> None:
    dee = person(stack, "web-dee", "default")
    tag = uuid.uuid4().hex[:6]
    sent = dee.api(
        "POST", "/v1/messages", json={"to": list(BULK), "body": f"Your parcel left the depot {tag}"}
    )
    assert sent.status_code == 202, sent.text
    ids = [m["message_id"] for m in sent.json()["messages"]]
    for message_id in ids:
        stack.wait_status(message_id, "delivered")

    page = browse()
    sign_in(page, stack, dee)
    _nav(page, "Sent")
    for message_id in ids:
        _row(page, message_id).get_by_label("Select", exact=True).check()
    expect(page.get_by_text("2 selected", exact=True)).to_be_visible()
    bulk = page.get_by_role("toolbar", name="Bulk actions")
    bulk.get_by_role("button", name="Delete", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Deleted 2 of 2")
    for message_id in ids:
        expect(_row(page, message_id)).to_have_count(0)

    _nav(page, "Deleted")
    for message_id in ids:
        expect(_row(page, message_id)).to_be_visible()
        _row(page, message_id).get_by_label("Select", exact=True).check()
    bulk.get_by_role("button", name="Restore", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Restored 2 of 2")
    for message_id in ids:
        expect(_row(page, message_id)).to_have_count(0)

    _nav(page, "Sent")
    for message_id in ids:
        expect(_row(page, message_id)).to_be_visible()
        expect(_row(page, message_id)).to_contain_text(tag)
    deleted_view = dee.api("GET", "/v1/messages", params={"view": "deleted", "limit": 200}).json()["messages"]
    assert not {m["message_id"] for m in deleted_view} & set(ids)


def test_an_outsider_sees_nothing_of_another_team(stack: Stack, browse: Browse) -> None:
    eve = person(stack, "web-eve", "default")
    mallory = person(stack, "web-mallory", "web-outsiders")
    tag = uuid.uuid4().hex[:8]
    _text_us(stack, PRIVATE, f"My account number is {tag}")
    received = _stored(eve, PRIVATE, tag)
    template = eve.api("POST", "/v1/templates", json={"name": f"Private {tag}", "body": f"Private {tag}"})
    assert template.status_code == 201, template.text

    # A member sees it all in the page (so the outsider's empty page below is not empty by accident).
    member = browse()
    sign_in(member, stack, eve)
    expect(_conversation(member, PRIVATE)).to_contain_text(tag)
    member.get_by_role("button", name="New message").click()
    member_templates = member.get_by_test_id("compose").get_by_label("Template", exact=True).locator("option")
    expect(member_templates.filter(has_text=f"Private {tag}")).to_have_count(1)
    member.get_by_role("button", name="Discard").click()
    _nav(member, "Received")
    expect(_row(member, received)).to_contain_text(tag)

    page = browse()
    sign_in(page, stack, mallory)
    expect(page.get_by_text("No conversations.")).to_be_visible()
    expect(page.get_by_test_id("conversation")).to_have_count(0)
    page.get_by_label("Search conversations", exact=True).fill(PRIVATE)
    expect(page.get_by_text("No conversations.")).to_be_visible()
    expect(_conversation(page, PRIVATE)).to_have_count(0)
    expect(page.get_by_test_id("thread")).to_be_hidden()
    for view in VIEWS:
        _nav(page, view)
        expect(page.get_by_text("Nothing here.")).to_be_visible()
        expect(page.get_by_test_id("message-row")).to_have_count(0)
    page.get_by_role("button", name="New message").click()
    templates = page.get_by_test_id("compose").get_by_label("Template", exact=True).locator("option")
    expect(templates.filter(has_text="Welcome")).to_have_count(1)  # a seeded template for everyone
    expect(templates.filter(has_text=tag)).to_have_count(0)
    expect(page.locator("body")).not_to_contain_text(tag)
    expect(page.locator("body")).not_to_contain_text(PRIVATE)
    expect(page.locator("body")).not_to_contain_text(received)

    # What the page would ask for that message, it is refused with the outsider's token.
    for path in (f"/v1/messages/{received}", f"/v1/conversations/{PRIVATE}/messages"):
        assert mallory.api("GET", path).status_code == 404, path
    assert requests.get(stack.url(f"/v1/messages/{received}"), timeout=10).status_code == 401
