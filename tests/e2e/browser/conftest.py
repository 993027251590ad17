"""Browser tests of the web inbox: Playwright driving Debian's headless Chromium against the e2e stack.

Chromium comes from Debian (`make browser` installs /usr/bin/chromium); Playwright's own browser
download is never used. Each browser gets a fresh profile (user-data dir) in the test's tmp dir, so no
sign-in, cache or storage leaks from one test into another. The stack is tests/e2e/conftest.py's one
per session; each test here uses its own customer numbers (+1415555 09xx).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import BrowserContext, Page, Playwright, ViewportSize, expect, sync_playwright

from tests.e2e.conftest import OUR_NUMBER, Stack

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
# The pipeline (webhook -> queue -> processor, send -> carrier -> status callback) takes a few seconds on
# the local stack; every auto-waiting expectation gets this long.
EXPECT_TIMEOUT_MS = 30_000
SCREENSHOTS_ENV = "PARLEY_SCREENSHOTS_DIR"

expect.set_options(timeout=EXPECT_TIMEOUT_MS)


@dataclass(frozen=True)
class Person:
    """Someone who signs in to the web inbox, with the dev token the stack's sign-in gives them too."""

    user: str
    teams: tuple[str, ...]
    token: str
    stack: Stack

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return requests.request(method, self.stack.url(path), headers=headers, timeout=15, **kwargs)


def person(stack: Stack, user: str, *teams: str) -> Person:
    """A person and their token, from the same local sign-in endpoint the page's form posts to."""
    answer = stack.control("POST", "/_local/token", json={"user": user, "teams": list(teams)})
    return Person(user=user, teams=teams, token=str(answer["token"]), stack=stack)


@pytest.fixture(scope="session")
def playwright_session() -> Iterator[Playwright]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium", pytrace=False)
    with sync_playwright() as playwright:
        yield playwright


Browse = Callable[..., Page]


@pytest.fixture
def browse(playwright_session: Playwright, tmp_path: Path) -> Iterator[Browse]:
    """Open a page in a new browser with a fresh profile: `browse()` or `browse(viewport=PHONE)`.

    An uncaught script error or a 5xx answer to the page fails the test, so a broken page can't pass
    by luck."""
    contexts: list[BrowserContext] = []
    errors: list[str] = []

    def open_page(viewport: ViewportSize = DESKTOP) -> Page:
        profile = tmp_path / f"profile-{len(contexts)}"
        context = playwright_session.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=viewport,
            locale="en-US",
            timezone_id="UTC",
        )
        contexts.append(context)
        page = context.pages[0] if context.pages else context.new_page()
        page.on("pageerror", lambda error: errors.append(f"{page.url}: {error}"))
        page.on(
            "response",
            lambda r: errors.append(f"{r.request.method} {r.url}: {r.status}") if r.status >= 500 else None,
        )
        return page

    try:
        yield open_page
    finally:
        for context in contexts:
            context.close()
    assert errors == [], f"the page met errors: {errors}"


def sign_in(page: Page, stack: Stack, who: Person, *, admin: bool = False, path: str = "/") -> None:
    """Sign in through the page's local (dev) sign-in form and wait for the inbox to show. `path`: the
    address opened first, e.g. a link to a thread ("/#/c/%2B14155550100")."""
    page.goto(stack.url(path))
    form = page.get_by_test_id("signin-form")
    expect(form).to_be_visible()
    form.get_by_label("User", exact=True).fill(who.user)
    form.get_by_label("Teams", exact=True).fill(",".join(who.teams))
    if admin:
        form.get_by_label("Admin", exact=True).check()
    form.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("conversation-list")).to_be_visible()
    # The inbox is ready once it has our numbers (it fills the number filter, then shows the list):
    # a click before that could be undone when it lands on the conversation list.
    expect(
        page.get_by_label("Our number", exact=True).locator(f'option[value="{OUR_NUMBER}"]')
    ).to_have_count(1)


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where the tests leave their screenshots: $PARLEY_SCREENSHOTS_DIR (`make screenshots` points it at
    docs/screenshots for the README), else the test's tmp dir, so a plain run dirties nothing."""
    configured = os.environ.get(SCREENSHOTS_ENV)
    folder = Path(configured) if configured else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
