"""CRM conflicts in the web inbox: a day held over records of another team shows its team that other
records share the number, and who can resolve it, without naming them; an admin sees and picks them.

This module's customer is +14155550228."""

from __future__ import annotations

import datetime as dt

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser.conftest import Browse, person, sign_in
from tests.e2e.conftest import OUR_NUMBER, Stack
from tests.e2e.test_crm_conflict_visibility import SECRET, sales_contacts

pytestmark = pytest.mark.e2e

CUSTOMER = "+14155550228"


def _held_day(stack: Stack) -> str:
    """The customer's day, held as a conflict over two sales records."""
    sales_contacts(stack, CUSTOMER)
    sim = stack.cli("sim", "sms", "--from", CUSTOMER, "--to", OUR_NUMBER, "--body", "Who is this?")
    assert sim.returncode == 0, sim.stderr

    stack.tied_conversation(CUSTOMER)
    day = dt.datetime.now(dt.UTC).date().isoformat()
    digest = stack.cli("digest", "--day", day)
    assert digest.returncode == 0, digest.stderr
    return day


def _open_conflicts(page: Page) -> None:
    page.get_by_role("button", name="CRM conflicts", exact=True).click()
    expect(page.get_by_role("heading", name="CRM conflicts", exact=True)).to_be_visible()


def test_a_conflict_over_another_team_s_records_says_who_resolves_it(stack: Stack, browse: Browse) -> None:
    _held_day(stack)
    fay = person(stack, "web-fay", "default")
    page = browse()
    sign_in(page, stack, fay)
    _open_conflicts(page)

    mine = page.locator(f'[data-testid=conflict][data-number="{CUSTOMER}"]')
    expect(mine.get_by_test_id("hidden-candidates")).to_have_text(
        "2 records of other teams also have this number."
        " Someone in that team, or an admin, resolves this one."
    )
    expect(mine.get_by_role("radio")).to_have_count(0)
    expect(mine.get_by_role("button", name="Resolve")).to_have_count(0)
    expect(page.locator("body")).not_to_contain_text(SECRET)

    root = person(stack, "web-root", "ops")
    admin_page = browse()
    sign_in(admin_page, stack, root, admin=True)
    _open_conflicts(admin_page)
    theirs = admin_page.locator(f'[data-testid=conflict][data-number="{CUSTOMER}"]')
    expect(theirs.get_by_role("radio")).to_have_count(2)
    expect(theirs).to_contain_text(SECRET)
    expect(theirs.get_by_test_id("hidden-candidates")).to_have_count(0)
    expect(theirs.get_by_role("button", name="Resolve")).to_be_visible()
