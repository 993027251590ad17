"""Erasing a customer on the local stack: they text in with a picture (the simulated Twilio), we
reply, they text STOP; an admin erases them. Their messages, the picture in S3, the conversation and
their record are gone, a shared record keeps its other number, and the opt-out is still there: a
text to them is still suppressed."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
import requests

from local.process import wait_until
from tests.e2e.conftest import OUR_NUMBER, Stack

pytestmark = pytest.mark.e2e

CUSTOMER = "+14155550960"
COLLEAGUE = "+14155550961"  # shares a record with the customer


def text_in(stack: Stack, body: str, *, media: bool = False) -> None:
    payload = {"from": CUSTOMER, "to": OUR_NUMBER, "body": body, "media": media}
    response = requests.post(stack.url("/_sim/twilio/_inbound"), json=payload, timeout=15)
    assert response.status_code == 200, response.text


def thread(stack: Stack) -> list[dict[str, Any]]:
    response = stack.api("GET", f"/v1/conversations/{CUSTOMER}/messages")
    if response.status_code == 404:
        return []
    assert response.status_code == 200, response.text
    messages: list[dict[str, Any]] = response.json()["messages"]
    return messages


def s3_keys(stack: Stack, prefix: str) -> list[str]:
    s3 = boto3.client(
        "s3",
        endpoint_url=stack.control("GET", "/_local/health")["moto"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    bucket = stack.control("GET", "/_local/resources")["MediaBucket"]["name"]
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for o in listed.get("Contents", [])]


def admin(stack: Stack) -> dict[str, str]:
    made = stack.cli("token", "--user", "privacy-officer", "--team", "ops", "--admin")
    assert made.returncode == 0, made.stderr
    return {"Authorization": f"Bearer {made.stdout.strip()}"}


def test_erasing_a_customer_removes_their_texts_and_media_and_keeps_the_opt_out(stack: Stack) -> None:
    text_in(stack, "Here is the photo of the damage", media=True)
    picture = wait_until(
        lambda: next((m for m in thread(stack) if m["media"] and m["media"][0].get("stored_at")), None),
        timeout=30,
    )
    prefix = f"media/{picture['message_id']}/"
    assert s3_keys(stack, prefix) == [f"{prefix}0"]
    reply = stack.api("POST", "/v1/messages", json={"to": [CUSTOMER], "body": "Thanks, we are on it"})
    assert reply.status_code == 202, reply.text
    reply_id = reply.json()["messages"][0]["message_id"]
    stack.wait_status(reply_id, "sent", "delivered")
    text_in(stack, "STOP")
    wait_until(lambda: len(thread(stack)) >= 4, timeout=30)  # the STOP and its confirmation too
    shared = stack.api("POST", "/v1/records", json={"name": "Household", "phones": [COLLEAGUE, CUSTOMER]})
    assert shared.status_code == 201, shared.text
    ids = [m["message_id"] for m in thread(stack)]

    erased = stack.api("POST", "/v1/erasures", json={"number": CUSTOMER}, headers=admin(stack))

    assert erased.status_code == 200, erased.text
    counts = erased.json()
    assert counts["done"] is True and counts["messages"] == len(ids) and counts["media"] == 1
    assert counts["conversations"] == 1 and counts["records_updated"] == 1
    for message_id in ids:
        assert stack.api("GET", f"/v1/messages/{message_id}").status_code == 404
    assert stack.api("GET", f"/v1/conversations/{CUSTOMER}/messages").status_code == 404
    assert s3_keys(stack, prefix) == []
    found = stack.api("GET", "/v1/records", params={"phone": CUSTOMER})
    assert found.status_code == 200 and found.json()["records"] == []
    household = stack.api("GET", f"/v1/records/{shared.json()['contact_id']}").json()
    assert household["phones"] == [COLLEAGUE]
    searched = stack.api("GET", "/v1/conversations", params={"q": CUSTOMER[-7:]}).json()
    assert [c for c in searched["conversations"] if c["customer_number"] == CUSTOMER] == []

    again = stack.api("POST", "/v1/erasures", json={"number": CUSTOMER}, headers=admin(stack))
    assert again.status_code == 200 and again.json()["messages"] == 0

    # the opt-out stayed: a new text to them is suppressed, not sent
    after = stack.api("POST", "/v1/messages", json={"to": [CUSTOMER], "body": "One more thing"})
    assert after.status_code == 202, after.text
    (message,) = after.json()["messages"]
    assert message["status"] == "suppressed", message
    assert [m for m in stack.sim_messages(CUSTOMER) if m["body"] == "One more thing"] == []


def test_only_an_admin_may_erase(stack: Stack) -> None:
    refused = stack.api("POST", "/v1/erasures", json={"number": CUSTOMER})

    assert refused.status_code == 403 and "admin" in refused.json()["error"]
