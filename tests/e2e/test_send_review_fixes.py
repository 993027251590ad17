"""Sends over HTTP that keep teams and consent apart: a request can't mark itself as a keyword answer,
idempotency keys are per team and refuse a different request, merge fields come from the sending
team's records only, and metadata, deleted messages and our own numbers have their limits.

This file's customers are +14155550870 to +14155550879.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests

from local.process import wait_until
from tests.e2e.conftest import OUR_NUMBER, Stack

pytestmark = pytest.mark.e2e

CONSENT = "+14155550870"
SHARED_KEY = "+14155550871"
MERGE = "+14155550872"
REUSED = "+14155550873"
DELETED = "+14155550874"
LATE = "+14155550875"


def text_in(stack: Stack, customer: str, body: str) -> None:
    payload = {"from": customer, "to": OUR_NUMBER, "body": body}
    response = requests.post(stack.url("/_sim/twilio/_inbound"), json=payload, timeout=15)
    assert response.status_code == 200, response.text


def test_metadata_compliance_does_not_let_a_text_reach_an_opted_out_customer(
    stack: Stack, move_clock: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    tag = uuid.uuid4().hex[:8]
    at = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2)).isoformat()
    tagged = stack.api(
        "POST",
        "/v1/messages",
        json={"to": [CONSENT], "body": f"promo A {tag}", "send_at": at, "metadata": {"compliance": "STOP"}},
    )
    assert tagged.status_code == 202, tagged.text
    (message,) = tagged.json()["messages"]
    assert message["status"] == "scheduled" and not message.get("compliance")

    text_in(stack, CONSENT, "STOP")  # the customer opts out while the text waits
    # the keyword's own answer still reaches them: it is the one marked text
    answer = wait_until(
        lambda: next((m for m in stack.sim_messages(CONSENT) if "unsubscribed" in m["body"].lower()), None)
    )
    assert answer is not None
    move_clock({"advance_seconds": 180})
    stack.fire("Sweep")

    suppressed = stack.wait_status(message["message_id"], "suppressed")
    assert "opted out" in (suppressed["error_reason"] or "")
    assert not [m for m in stack.sim_messages(CONSENT) if tag in m["body"]]
    refused = stack.api(
        "POST", "/v1/messages", json={"to": [CONSENT], "body": "x", "compliance": True}
    )  # and the mark itself is no field of a request
    assert refused.status_code == 400, refused.text


def test_two_teams_reusing_one_key_each_send_their_own_text(stack: Stack) -> None:
    sales, support = (
        stack.issue_token("--user", "alice", "--teams", "sales"),
        stack.issue_token("--user", "bob", "--teams", "support"),
    )
    key = f"order-{uuid.uuid4().hex[:8]}"
    first = stack.as_(
        sales,
        "POST",
        "/v1/messages",
        json={"to": [SHARED_KEY], "body": f"SECRET offer {key}", "idempotency_key": key},
    )
    second = stack.as_(
        support,
        "POST",
        "/v1/messages",
        json={"to": [SHARED_KEY], "body": f"hello from support {key}", "idempotency_key": key},
    )

    assert first.status_code == second.status_code == 202, (first.text, second.text)
    (theirs,), (ours,) = first.json()["messages"], second.json()["messages"]
    assert ours["message_id"] != theirs["message_id"]
    assert (ours["team"], ours["body"]) == ("support", f"hello from support {key}")
    assert "SECRET" not in second.text
    assert stack.as_(support, "GET", f"/v1/messages/{ours['message_id']}").status_code == 200
    wait_until(
        lambda: (
            {m["body"] for m in stack.sim_messages(SHARED_KEY)}
            >= {f"SECRET offer {key}", f"hello from support {key}"}
        )
    )

    again = stack.as_(
        support,
        "POST",
        "/v1/messages",
        json={"to": [SHARED_KEY], "body": f"hello from support {key}", "idempotency_key": key},
    )
    assert again.status_code == 202, again.text
    assert again.json()["messages"][0]["message_id"] == ours["message_id"]  # the same team: once


def test_another_team_s_record_fills_no_merge_field_in_a_preview_or_a_send(stack: Stack) -> None:
    sales, support = (
        stack.issue_token("--user", "alice", "--teams", "sales"),
        stack.issue_token("--user", "bob", "--teams", "support"),
    )
    record = stack.as_(
        support,
        "POST",
        "/v1/records",
        json={
            "name": "Victor Secret",
            "phones": [MERGE],
            "email": "victor@private.example",
            "fields": {"deal": "$2M"},
        },
    )
    assert record.status_code in (200, 201), record.text
    made = stack.as_(
        sales,
        "POST",
        "/v1/templates",
        json={
            "name": f"probe {uuid.uuid4().hex[:6]}",
            "shared": False,
            "body": "{{name|-}} / {{email|-}} / {{deal|-}}",
        },
    )
    assert made.status_code == 201, made.text
    template_id = made.json()["template_id"]

    preview = stack.as_(sales, "POST", "/v1/messages/preview", json={"template_id": template_id, "to": MERGE})
    assert preview.status_code == 200, preview.text
    assert preview.json()["text"] == "- / - / -"
    sent = stack.as_(sales, "POST", "/v1/messages", json={"to": [MERGE], "template_id": template_id})
    assert sent.status_code == 202, sent.text
    assert sent.json()["messages"][0]["body"] == "- / - / -"
    found = stack.as_(sales, "GET", "/v1/conversations", params={"q": "victor"})
    assert found.status_code == 200, found.text
    assert [c for c in found.json()["conversations"] if c["customer_number"] == MERGE] == []

    # the record's own team does get it
    theirs = stack.as_(
        support,
        "POST",
        "/v1/templates",
        json={"name": f"probe {uuid.uuid4().hex[:6]}", "shared": False, "body": "{{name|-}} / {{deal|-}}"},
    )
    assert theirs.status_code == 201, theirs.text
    mine = stack.as_(
        support,
        "POST",
        "/v1/messages/preview",
        json={"template_id": theirs.json()["template_id"], "to": MERGE},
    )
    assert mine.status_code == 200, mine.text
    assert mine.json()["text"] == "Victor Secret / $2M"


def test_a_key_reused_for_a_different_text_is_refused_with_409(stack: Stack) -> None:
    key = f"order-{uuid.uuid4().hex[:8]}"
    first = stack.api(
        "POST", "/v1/messages", json={"to": [REUSED], "body": "SECRET sales offer", "idempotency_key": key}
    )
    assert first.status_code == 202, first.text

    different = stack.api(
        "POST", "/v1/messages", json={"to": [REUSED], "body": "different", "idempotency_key": key}
    )
    assert different.status_code == 409, different.text
    (error,) = different.json()["errors"]
    assert error["field"] == "idempotency_key" and "different request" in error["reason"]
    assert "SECRET" not in different.text
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)).isoformat()
    moved = stack.api(
        "POST",
        "/v1/messages",
        json={"to": [REUSED], "body": "SECRET sales offer", "send_at": later, "idempotency_key": key},
    )
    assert moved.status_code == 409, moved.text

    same = stack.api(
        "POST", "/v1/messages", json={"to": [REUSED], "body": "SECRET sales offer", "idempotency_key": key}
    )
    assert same.status_code == 202, same.text
    assert same.json()["messages"][0]["message_id"] == first.json()["messages"][0]["message_id"]


def test_oversized_metadata_and_our_own_number_are_refused_with_a_reason(stack: Stack) -> None:
    big = stack.api(
        "POST", "/v1/messages", json={"to": [REUSED], "body": "x", "metadata": {"pad": "p" * 5000}}
    )
    assert big.status_code == 400, big.text
    assert [e["field"] for e in big.json()["errors"]] == ["metadata"]
    assert "4096" in big.json()["errors"][0]["reason"]

    ours = stack.api("POST", "/v1/messages", json={"to": [REUSED, OUR_NUMBER], "body": "hello me"})
    assert ours.status_code == 400, ours.text
    (error,) = ours.json()["errors"]
    assert error["field"] == "to" and OUR_NUMBER in error["reason"]


def test_a_deleted_failed_message_is_not_resent_until_restored(stack: Stack) -> None:
    fault = requests.post(
        stack.url("/_sim/twilio/_faults"),
        json={"kind": "undelivered", "count": 1, "to": DELETED, "error_code": "30006"},
        timeout=10,
    )
    assert fault.status_code == 201, fault.text
    sent = stack.api(
        "POST", "/v1/messages", json={"to": [DELETED], "body": f"deleted {uuid.uuid4().hex[:6]}"}
    )
    assert sent.status_code == 202, sent.text
    message_id = sent.json()["messages"][0]["message_id"]
    stack.wait_status(message_id, "undelivered", "failed", timeout=30)
    assert stack.api("POST", "/v1/messages/delete", json={"ids": [message_id]}).status_code == 200

    one = stack.api("POST", f"/v1/messages/{message_id}/resend")
    assert one.status_code == 409, one.text
    assert "restore it first" in one.json()["error"]
    bulk = stack.api("POST", "/v1/messages/resend", json={"ids": [message_id]})
    assert bulk.status_code == 200, bulk.text
    (result,) = bulk.json()["results"]
    assert result["result"] == "refused" and "restore it first" in result["reason"]

    assert stack.api("POST", "/v1/messages/restore", json={"ids": [message_id]}).status_code == 200
    again = stack.api("POST", f"/v1/messages/{message_id}/resend")
    assert again.status_code == 200, again.text


def test_a_send_at_in_the_past_or_as_a_number_is_refused_with_the_reason(stack: Stack) -> None:
    yesterday = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
    for send_at, reason in ((yesterday, "24 hours in the past"), (1764320400, "not a number")):
        refused = stack.api("POST", "/v1/messages", json={"to": [LATE], "body": "late", "send_at": send_at})
        assert refused.status_code == 400, refused.text
        (error,) = refused.json()["errors"]
        assert error["field"] == "send_at" and reason in error["reason"], error
    assert stack.thread(LATE) == [] and stack.sim_messages(LATE) == []  # nothing stored, nothing sent
