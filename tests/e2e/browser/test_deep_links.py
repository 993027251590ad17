"""Links to a thread: the open conversation is in the address (#/c/<number, URL-encoded>), so a reload
lands on it again, Back and Forward move between threads and the list, an address typed in opens its
thread, a view has its own address (#/view/failed), a link to a conversation the person can't see
says so, and a link survives the OIDC sign-in's round trip to the identity provider.

This module's customers are +14155550915 to +14155550918.
"""

from __future__ import annotations

import json
import re
import uuid
from urllib.parse import parse_qs, quote, urlparse

import pytest
from playwright.sync_api import Locator, Page, Route, expect

from local.process import wait_until
from tests.e2e.browser.conftest import PHONE, Browse, person, sign_in
from tests.e2e.conftest import OUR_NUMBER, Stack

pytestmark = pytest.mark.e2e

FIRST = "+14155550915"
SECOND = "+14155550916"
THIRD = "+14155550917"
HIDDEN = "+14155550918"  # another team's customer


def _link(number: str) -> str:
    return f"#/c/{quote(number, safe='')}"


def _conversation(page: Page, number: str) -> Locator:
    return page.get_by_test_id("conversation-list").locator(
        f'[data-testid=conversation][data-number="{number}"]'
    )


def _in_thread(page: Page, text: str) -> Locator:
    return page.get_by_test_id("thread").get_by_test_id("message").filter(has_text=text)


def _text_us(stack: Stack, customer: str, body: str) -> None:
    sim = stack.cli("sim", "sms", "--from", customer, "--to", OUR_NUMBER, "--body", body)
    assert sim.returncode == 0, sim.stderr


def _texted(stack: Stack, token: str, customer: str, tag: str) -> None:
    """Text us from `customer` and wait until the stack has stored it, seen with `token`."""
    _text_us(stack, customer, f"Hello from {customer} {tag}")

    def stored() -> bool:
        answer = stack.api(
            "GET", f"/v1/conversations/{customer}/messages", headers={"Authorization": f"Bearer {token}"}
        )
        return answer.status_code == 200 and any(tag in m["body"] for m in answer.json()["messages"])

    wait_until(stored, timeout=30)


def _expect_thread(page: Page, number: str, tag: str) -> None:
    expect(page).to_have_url(re.compile(re.escape(_link(number)) + "$"))
    _expect_thread_open(page, number, tag)


def _expect_thread_open(page: Page, number: str, tag: str) -> None:
    expect(page.get_by_test_id("thread")).to_be_visible()
    expect(page.locator("#thread-title")).to_contain_text(number)
    expect(_in_thread(page, f"Hello from {number} {tag}")).to_be_visible()
    expect(_conversation(page, number)).to_have_attribute("aria-current", "true")


def _expect_list(page: Page) -> None:
    expect(page.get_by_test_id("thread")).to_be_hidden()
    expect(page.get_by_test_id("conversation-list")).to_be_visible()
    expect(page.locator('[data-testid=conversation][aria-current="true"]')).to_have_count(0)


def test_a_thread_is_in_the_address_through_reloads_back_forward_and_typed_links(
    stack: Stack, browse: Browse
) -> None:
    hal = person(stack, "web-hal", "default")
    tag = uuid.uuid4().hex[:6]
    for customer in (FIRST, SECOND, THIRD):
        _texted(stack, hal.token, customer, tag)
    page = browse()
    sign_in(page, stack, hal)
    _expect_list(page)

    # A click puts the thread in the address; a reload lands on it again.
    _conversation(page, FIRST).get_by_role("button").first.click()
    _expect_thread(page, FIRST, tag)
    assert page.url.endswith("#/c/%2B14155550915")
    page.reload()
    _expect_thread(page, FIRST, tag)

    # Another thread, then Back and Forward between the two and the list.
    _conversation(page, SECOND).get_by_role("button").first.click()
    _expect_thread(page, SECOND, tag)
    page.go_back()
    _expect_thread(page, FIRST, tag)
    page.go_back()
    _expect_list(page)
    expect(page.get_by_text("Pick a conversation to read it.")).to_be_visible()
    page.go_forward()
    _expect_thread(page, FIRST, tag)

    # An address typed in (a same-page navigation, no reload) opens its thread.
    page.evaluate("window.parleyProbe = 'same page'")
    page.goto(stack.url("/" + _link(THIRD)))
    _expect_thread(page, THIRD, tag)
    assert page.evaluate("window.parleyProbe") == "same page"
    page.go_back()
    _expect_thread(page, FIRST, tag)

    # A view has its own address too; Back returns to the thread.
    page.get_by_role("navigation", name="Views").get_by_role("button", name="Failed", exact=True).click()
    expect(page.get_by_role("heading", name="Failed", exact=True)).to_be_visible()
    expect(page).to_have_url(re.compile("#/view/failed$"))
    page.reload()
    expect(page.get_by_role("heading", name="Failed", exact=True)).to_be_visible()
    expect(page.get_by_test_id("conversation-list")).to_be_hidden()
    page.go_back()
    _expect_thread(page, FIRST, tag)

    # A hash that is no route of the page's (the skip link's #main) leaves the thread open.
    page.get_by_role("link", name="Skip to the inbox").focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile("#main$"))
    expect(page.locator("#main")).to_be_focused()
    _expect_thread_open(page, FIRST, tag)


def test_on_a_phone_back_returns_from_the_thread_to_the_list(stack: Stack, browse: Browse) -> None:
    ivy = person(stack, "web-ivy", "default")
    tag = uuid.uuid4().hex[:6]
    _texted(stack, ivy.token, FIRST, tag)
    page = browse(viewport=PHONE)
    sign_in(page, stack, ivy)
    row = _conversation(page, FIRST)

    # The browser's Back.
    row.get_by_role("button").first.click()
    _expect_thread(page, FIRST, tag)
    expect(page.get_by_test_id("conversation-list")).to_be_hidden()
    page.go_back()
    _expect_list(page)
    expect(page).not_to_have_url(re.compile("#/c/"))

    # The page's own "Back to the list" button, which goes back in the history too.
    row.get_by_role("button").first.click()
    _expect_thread(page, FIRST, tag)
    page.get_by_role("button", name="Back to the list").click()
    _expect_list(page)
    expect(row.get_by_role("button").first).to_be_focused()
    page.go_forward()
    _expect_thread(page, FIRST, tag)

    # A thread opened from an address typed in (no list to go back to): the button goes on to the
    # list, as a new step in the history.
    page.go_back()
    _expect_list(page)
    page.goto(stack.url("/" + _link(FIRST)))
    _expect_thread(page, FIRST, tag)
    page.get_by_role("button", name="Back to the list").click()
    _expect_list(page)
    expect(page).to_have_url(re.compile("#/$"))
    page.go_back()
    _expect_thread(page, FIRST, tag)


def test_a_link_to_a_conversation_one_cant_see_says_not_found(stack: Stack, browse: Browse) -> None:
    jo = person(stack, "web-jo", "default")
    outsider = person(stack, "web-kit", "web-outsiders")
    tag = uuid.uuid4().hex[:6]
    _texted(stack, jo.token, HIDDEN, tag)

    # The team's member follows the link to the thread.
    member = browse()
    sign_in(member, stack, jo, path="/" + _link(HIDDEN))
    _expect_thread(member, HIDDEN, tag)

    # Someone outside the team gets the list and a clear message in the status region.
    page = browse()
    sign_in(page, stack, outsider, path="/" + _link(HIDDEN))
    status = page.get_by_role("status")
    expect(status).to_contain_text(f"Conversation not found: {HIDDEN}")
    expect(page.get_by_test_id("thread")).to_be_hidden()
    expect(page.get_by_text("No conversations.")).to_be_visible()
    expect(page).not_to_have_url(re.compile("#/c/"))
    expect(page.locator("body")).not_to_contain_text(tag)

    # The same for a link typed in after sign-in, and for one that is no phone number at all.
    page.goto(stack.url("/#/c/not-a-number"))
    expect(status).to_contain_text("Conversation not found: not-a-number")
    expect(page.get_by_test_id("thread")).to_be_hidden()


def test_a_link_survives_the_oidc_sign_in_round_trip(stack: Stack, browse: Browse) -> None:
    """Deployed, sign-in leaves for the identity provider and comes back to "/?code=&state="; the thread
    the link named is open afterwards. The provider is played here by intercepted requests: the page's
    config says "oidc", the authorize URL redirects straight back, the token endpoint answers a token."""
    lee = person(stack, "web-lee", "default")
    tag = uuid.uuid4().hex[:6]
    _texted(stack, lee.token, SECOND, tag)
    authorize, token_url = stack.url("/_idp/authorize"), stack.url("/_idp/token")
    config = {
        "mode": "oidc",
        "client_id": "inbox",
        "authorization_endpoint": authorize,
        "token_endpoint": token_url,
    }
    asked: list[dict[str, list[str]]] = []
    exchanged: list[dict[str, list[str]]] = []

    def provider(route: Route) -> None:
        query = parse_qs(urlparse(route.request.url).query)
        asked.append(query)
        back = f"{query['redirect_uri'][0]}?code=the-code&state={query['state'][0]}"
        route.fulfill(status=302, headers={"Location": back})

    def token(route: Route) -> None:
        exchanged.append(parse_qs(route.request.post_data or ""))
        route.fulfill(
            status=200, content_type="application/json", body=json.dumps({"access_token": lee.token})
        )

    page = browse()
    page.route(re.compile(r"/ui/config\.json$"), lambda route: route.fulfill(json=config))
    page.route(re.compile(r"/_idp/authorize\?"), provider)
    page.route(re.compile(r"/_idp/token$"), token)

    page.goto(stack.url("/" + _link(SECOND)))
    expect(page.get_by_text("Sign in with your organisation's account.")).to_be_visible()
    page.get_by_test_id("signin-form").get_by_role("button", name="Sign in").click()

    _expect_thread(page, SECOND, tag)
    assert "code=" not in page.url and "state=" not in page.url
    assert len(asked) == 1 and asked[0]["redirect_uri"] == [stack.url("/")]
    assert len(exchanged) == 1 and exchanged[0]["code"] == ["the-code"]
    assert page.evaluate("sessionStorage.getItem('parley.pkce')") is None
