"""Access control over HTTP on the local stack, with real dev tokens from `parley token`.

The local front hands the function the claims as API Gateway's HTTP API does (the `teams` list as
"[sales support]" text), so this also checks that the API reads them as a gateway would give them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.conftest import Stack, wait_until

pytestmark = pytest.mark.e2e

CUSTOMER = "+14155550391"
SECRET = "e2e-sales-secret"


def test_an_outsider_gets_404_or_nothing_and_members_and_admins_see_it(stack: Stack) -> None:
    sales = stack.issue_token("--user", "ana", "--teams", "sales")
    outsider = stack.issue_token("--user", "cy", "--team", "support")
    both = stack.issue_token("--user", "di", "--teams", "support,sales")
    admin = stack.issue_token("--user", "root", "--teams", "ops", "--admin")

    sent = stack.as_(sales, "POST", "/v1/messages", json={"to": [CUSTOMER], "body": f"{SECRET} text"})
    assert sent.status_code == 202, sent.text
    message = sent.json()["messages"][0]
    assert message["team"] == "sales"
    template = stack.as_(sales, "POST", "/v1/templates", json={"name": "T", "body": f"{SECRET} tpl"})
    assert template.status_code == 201, template.text
    record = stack.as_(sales, "POST", "/v1/records", json={"name": f"{SECRET} rec", "phones": [CUSTOMER]})
    assert record.status_code == 201, record.text
    things = [
        ("GET", f"/v1/messages/{message['message_id']}"),
        ("GET", f"/v1/conversations/{CUSTOMER}/messages"),
        ("GET", f"/v1/templates/{template.json()['template_id']}"),
        ("GET", f"/v1/records/{record.json()['contact_id']}"),
    ]

    for method, path in things:
        assert stack.as_(outsider, method, path).status_code == 404, path
        for who in (sales, both, admin):
            seen = stack.as_(who, method, path)
            assert seen.status_code == 200 and SECRET in seen.text, (path, seen.text)

    cancel = stack.as_(outsider, "POST", f"/v1/messages/{message['message_id']}/cancel")
    assert cancel.status_code == 404
    lists = ["/v1/conversations", "/v1/messages?view=all", "/v1/templates", f"/v1/records?phone={CUSTOMER}"]
    for path in lists:
        answer = stack.as_(outsider, "GET", path)
        assert answer.status_code == 200, (path, answer.text)
        assert SECRET not in answer.text and CUSTOMER not in json.dumps(answer.json()), (path, answer.text)
    named = stack.as_(outsider, "POST", "/v1/messages", json={"to": [CUSTOMER], "body": "x", "team": "sales"})
    assert named.status_code == 400 and named.json()["errors"][0]["field"] == "team"


def test_a_team_texting_from_the_pool_owns_its_customers_answer(stack: Stack) -> None:
    """Sales has no number of its own and sends from the pool's (team default); the customer's reply
    is sales' to read, answer and delete, and not in the pool team's Received view."""
    customer = "+14155550392"
    sales = stack.issue_token("--user", "ana", "--teams", "sales")
    pool = stack.issue_token("--user", "dee", "--teams", "default")
    sent = stack.as_(sales, "POST", "/v1/messages", json={"to": [customer], "body": "Your quote is ready"})
    assert sent.status_code == 202, sent.text
    our_number = sent.json()["messages"][0]["our_number"]

    texted = stack.cli("sim", "sms", "--from", customer, "--to", our_number, "--body", "Looks good")
    assert texted.returncode == 0, texted.stderr

    def reply() -> dict[str, Any] | None:
        thread = stack.as_(sales, "GET", f"/v1/conversations/{customer}/messages").json()["messages"]
        return next((m for m in thread if m["direction"] == "inbound"), None)

    answer = wait_until(reply)
    assert answer["team"] == "sales"
    assert stack.as_(sales, "GET", f"/v1/messages/{answer['message_id']}").status_code == 200
    replied = stack.as_(sales, "POST", f"/v1/messages/{answer['message_id']}/reply", json={"body": "Great"})
    assert replied.status_code == 202, replied.text
    received = stack.as_(sales, "GET", "/v1/messages", params={"view": "received", "limit": 100}).json()
    assert answer["message_id"] in {m["message_id"] for m in received["messages"]}
    pool_view = stack.as_(pool, "GET", "/v1/messages", params={"view": "received", "limit": 100}).json()
    assert answer["message_id"] not in {m["message_id"] for m in pool_view["messages"]}
    assert stack.as_(pool, "GET", f"/v1/messages/{answer['message_id']}").status_code == 404
