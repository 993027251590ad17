"""The message views, delete and restore, reply (one, and many with one key) and forward, over HTTP
on the local stack, as a member of the team and as an outsider.

This test's customers are +14155550850 to +14155550854.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests

from local.process import wait_until
from tests.e2e.conftest import OUR_NUMBER, Stack

pytestmark = pytest.mark.e2e

ANA, BO, CY, DEE, EVE = (f"+1415555{850 + i:04d}" for i in range(5))


def _ids(response: requests.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [m["message_id"] for m in response.json()["messages"]]


def _view(stack: Stack, view: str, since: str, token: str | None = None, **params: str) -> list[str]:
    """Every page of a view since `since`, following the cursor."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    out: list[str] = []
    cursor: str | None = None
    while True:
        query = {
            "view": view,
            "since": since,
            "limit": "3",
            **params,
            **({"cursor": cursor} if cursor else {}),
        }
        response = stack.api("GET", "/v1/messages", params=query, headers=headers)
        out += _ids(response)
        cursor = response.json()["cursor"]
        if cursor is None:
            return out


def _texts_to(stack: Stack, number: str) -> list[str]:
    return [m["body"] for m in stack.sim_messages(number)]


def test_views_delete_restore_reply_and_forward(stack: Stack) -> None:
    outsider = stack.cli("token", "--user", "mallory", "--team", "outsiders").stdout.strip()
    tag = uuid.uuid4().hex[:6]

    # A customer texts us; we text two others.
    sim = stack.cli(
        "sim", "sms", "--from", ANA, "--to", OUR_NUMBER, "--body", f"Can I change my booking? {tag}"
    )
    assert sim.returncode == 0, sim.stderr
    received = wait_until(
        lambda: next(
            (m for m in stack.api("GET", f"/v1/conversations/{ANA}/messages").json().get("messages", [])
             if tag in m["body"]),
            None,
        )
    )  # fmt: skip
    since = received["created_at"]
    sent = stack.api(
        "POST", "/v1/messages", json={"to": [BO, CY], "body": f"Your order shipped {tag}", "from": OUR_NUMBER}
    )
    assert sent.status_code == 202, sent.text
    bo_id, cy_id = (m["message_id"] for m in sent.json()["messages"])
    for message_id in (bo_id, cy_id):
        stack.wait_status(message_id, "delivered", "sent")

    # Views: newest first, each its own kind, filtered by our number and time; an outsider sees none.
    everything = _view(stack, "all", since)
    assert {received["message_id"], bo_id, cy_id} <= set(everything)
    assert everything.index(bo_id) < everything.index(received["message_id"])  # newer first
    assert received["message_id"] in _view(stack, "received", since)
    assert {bo_id, cy_id} <= set(_view(stack, "sent", since)) and received["message_id"] not in _view(
        stack, "sent", since
    )
    assert bo_id in _view(stack, "all", since, our_number=OUR_NUMBER)
    assert bo_id not in _view(stack, "all", since, our_number="+14155550143")
    assert bo_id not in _view(stack, "failed", since)
    assert not {received["message_id"], bo_id, cy_id} & set(_view(stack, "all", since, token=outsider))
    as_outsider = {"Authorization": f"Bearer {outsider}"}
    assert stack.api("GET", f"/v1/messages/{bo_id}", headers=as_outsider).status_code == 404
    assert stack.api("GET", "/v1/messages", params={"view": "trash"}).status_code == 400

    # Delete (soft) and restore, idempotent, per id; an outsider's ids are not found.
    deleted = stack.api("POST", "/v1/messages/delete", json={"ids": [received["message_id"], cy_id, "nope"]})
    assert deleted.status_code == 200, deleted.text
    assert [r["result"] for r in deleted.json()["results"]] == ["ok", "ok", "not_found"]
    assert (
        stack.api("POST", "/v1/messages/delete", json={"ids": [cy_id]}).json()["results"][0]["result"] == "ok"
    )
    assert {received["message_id"], cy_id} <= set(_view(stack, "deleted", since))
    assert not {received["message_id"], cy_id} & set(_view(stack, "all", since))
    assert stack.message(cy_id)["status"] in ("delivered", "sent")  # status kept
    thread = _ids(stack.api("GET", f"/v1/conversations/{ANA}/messages"))
    assert received["message_id"] not in thread
    shown = _ids(stack.api("GET", f"/v1/conversations/{ANA}/messages", params={"include_deleted": "true"}))
    assert received["message_id"] in shown
    refused = stack.api("POST", "/v1/messages/restore", json={"ids": [cy_id]}, headers=as_outsider)
    assert refused.json()["results"][0]["result"] == "not_found"
    restored = stack.api("POST", "/v1/messages/restore", json={"ids": [received["message_id"], cy_id]})
    assert [r["result"] for r in restored.json()["results"]] == ["ok", "ok"]
    assert {received["message_id"], cy_id} <= set(_view(stack, "all", since))
    assert stack.api("POST", "/v1/messages/delete", json={"ids": []}).status_code == 400

    # Reply to one, with a template: to the customer, from the number they texted.
    reply = stack.api(
        "POST",
        f"/v1/messages/{received['message_id']}/reply",
        json={"template_id": "welcome", "idempotency_key": f"reply-{tag}"},
    )
    assert reply.status_code == 202, reply.text
    (answer,) = reply.json()["messages"]
    assert (answer["customer_number"], answer["our_number"]) == (ANA, OUR_NUMBER)
    stack.wait_status(answer["message_id"], "delivered", "sent")
    assert any(text.startswith("Hi there, thanks for reaching out") for text in _texts_to(stack, ANA))
    outsider_reply = stack.api(
        "POST", f"/v1/messages/{received['message_id']}/reply", json={"body": "x"}, headers=as_outsider
    )
    assert outsider_reply.status_code == 404

    # Reply to many at once: each in its own conversation, once each, even when the request is retried.
    bulk = {"ids": [bo_id, cy_id], "body": f"Thanks for your order {tag}", "idempotency_key": f"bulk-{tag}"}
    first = stack.api("POST", "/v1/messages/reply", json=bulk)
    assert first.status_code == 200, first.text
    assert [r["result"] for r in first.json()["results"]] == ["ok", "ok"]
    again = stack.api("POST", "/v1/messages/reply", json=bulk)
    assert [r["reply_id"] for r in again.json()["results"]] == [
        r["reply_id"] for r in first.json()["results"]
    ]
    for result in first.json()["results"]:
        stack.wait_status(result["reply_id"], "delivered", "sent")
    for customer in (BO, CY):
        assert _texts_to(stack, customer).count(f"Thanks for your order {tag}") == 1

    # Forward, with the text edited, to two new recipients: each its own conversation.
    forwarded = stack.api(
        "POST",
        f"/v1/messages/{received['message_id']}/forward",
        json={"to": [DEE, EVE], "body": f"FYI: Ana wants to change her booking {tag}"},
    )
    assert forwarded.status_code == 202, forwarded.text
    messages: list[dict[str, Any]] = forwarded.json()["messages"]
    assert [m["customer_number"] for m in messages] == [DEE, EVE]
    for message in messages:
        stack.wait_status(message["message_id"], "delivered", "sent")
    assert f"FYI: Ana wants to change her booking {tag}" in _texts_to(stack, DEE)
    assert stack.api("GET", f"/v1/conversations/{EVE}/messages").status_code == 200
    assert (
        stack.api("POST", f"/v1/messages/{bo_id}/forward", json={"to": DEE}, headers=as_outsider).status_code
        == 404
    )
