"""A reply from the inbox, on the local stack, to a customer whose conversation is one team's but who
texted another team's number: it goes out from a number the conversation's team may use."""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest

from tests.e2e.conftest import Stack, wait_until

pytestmark = pytest.mark.e2e

CUSTOMER = "+14155552700"
ORCHARD_LINE = "+14155552748"  # team orchard's own number (its default)
HARBOR_LINE = "+14155552749"  # team harbor's own number


def _add_number(stack: Stack, number: str, team: str) -> None:
    """Put one of our numbers in the stack's table by hand, as docs/deploy.md does, with a new version
    token so warm functions read the list again."""
    table = stack.control("GET", "/_local/resources")["NumbersTable"]["name"]
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=stack.control("GET", "/_local/health")["moto"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    doc = {"number": number, "carrier": "twilio", "team": team, "is_default": True}
    dynamodb.put_item(TableName=table, Item={"number": {"S": number}, "doc": {"S": json.dumps(doc)}})
    token = json.dumps({"token": uuid.uuid4().hex})
    dynamodb.put_item(TableName=table, Item={"number": {"S": "#version"}, "doc": {"S": token}})


def _delivered(stack: Stack, token: str, message_id: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        message: dict[str, Any] = stack.as_(token, "GET", f"/v1/messages/{message_id}").json()
        return message if message.get("status") == "delivered" else None

    found: dict[str, Any] = wait_until(reached, timeout=20.0)
    return found


def test_a_reply_to_a_text_on_another_teams_number_goes_from_the_teams_own(stack: Stack) -> None:
    _add_number(stack, ORCHARD_LINE, "orchard")
    _add_number(stack, HARBOR_LINE, "harbor")
    orchard = stack.issue_token("--user", "olive", "--teams", "orchard")
    first = stack.as_(
        orchard, "POST", "/v1/messages", json={"to": [CUSTOMER], "body": "Your table is booked"}
    )
    assert first.status_code == 202, first.text
    assert first.json()["messages"][0]["our_number"] == ORCHARD_LINE

    # The customer answers on harbor's number: the conversation, and so the text, stay orchard's.
    texted = stack.cli("sim", "sms", "--from", CUSTOMER, "--to", HARBOR_LINE, "--body", "Can we make it 8?")
    assert texted.returncode == 0, texted.stderr

    def answer() -> dict[str, Any] | None:
        thread = stack.as_(orchard, "GET", f"/v1/conversations/{CUSTOMER}/messages").json()["messages"]
        return next((m for m in thread if m["direction"] == "inbound"), None)

    received = wait_until(answer)
    assert (received["team"], received["our_number"]) == ("orchard", HARBOR_LINE)

    replied = stack.as_(
        orchard, "POST", f"/v1/messages/{received['message_id']}/reply", json={"body": "8 is fine"}
    )
    assert replied.status_code == 202, replied.text
    (reply,) = replied.json()["messages"]
    assert (reply["team"], reply["our_number"]) == ("orchard", ORCHARD_LINE)
    assert _delivered(stack, orchard, reply["message_id"])["our_number"] == ORCHARD_LINE

    many = stack.as_(
        orchard, "POST", "/v1/messages/reply", json={"ids": [received["message_id"]], "body": "See you then"}
    )
    assert many.status_code == 200, many.text
    (result,) = many.json()["results"]
    assert result["result"] == "ok", result
    assert _delivered(stack, orchard, result["reply_id"])["our_number"] == ORCHARD_LINE

    texts = [(t["from"], t["body"]) for t in stack.sim_messages(CUSTOMER)]
    assert texts == [
        (ORCHARD_LINE, "Your table is booked"),
        (ORCHARD_LINE, "8 is fine"),
        (ORCHARD_LINE, "See you then"),
    ]
