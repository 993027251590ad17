"""What a digest record holds, on the local stack: a picture-only text names its picture (and no
carrier link), while texts that never reached the customer and texts a person deleted stay out."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import requests

from local.process import wait_until
from tests.e2e.conftest import OUR_NUMBER, Stack

pytestmark = pytest.mark.e2e


def _today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def _records_for(stack: Stack, number: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = requests.get(stack.url("/_sim/crm/records"), timeout=10).json()["records"]
    return [r for r in records if number in r["payload"].get("customer_numbers", [])]


def _phone_texts(stack: Stack, frm: str, body: str, *, media: bool = False) -> None:
    sent = requests.post(
        stack.url("/_sim/twilio/_inbound"),
        json={"from": frm, "to": OUR_NUMBER, "body": body, "media": media},
        timeout=15,
    )
    assert sent.status_code < 300, sent.text


def _all_messages(stack: Stack, number: str, count: int) -> list[dict[str, Any]]:
    def stored() -> list[dict[str, Any]] | None:
        response = stack.api(
            "GET", f"/v1/conversations/{number}/messages", params={"limit": 50, "include_deleted": "true"}
        )
        found: list[dict[str, Any]] = (
            response.json().get("messages", []) if response.status_code == 200 else []
        )
        return found if len(found) >= count else None

    return wait_until(stored)


def test_a_picture_is_named_and_suppressed_or_deleted_texts_stay_out(stack: Stack) -> None:
    customer = "+14155550570"
    _phone_texts(stack, customer, "", media=True)
    _phone_texts(stack, customer, "oops, wrong person")
    _phone_texts(stack, customer, "STOP")
    _all_messages(stack, customer, 3)
    sent = stack.api("POST", "/v1/messages", json={"to": [customer], "body": "are you there?"})
    assert sent.status_code in (200, 201, 202), sent.text
    messages = _all_messages(stack, customer, 4)
    wait_until(
        lambda: any(
            m["body"] == "are you there?" and m["status"] == "suppressed" for m in stack.thread(customer)
        )
    )
    wrong = next(m["message_id"] for m in messages if m["body"] == "oops, wrong person")
    deleted = stack.api("POST", "/v1/messages/delete", json={"ids": [wrong]})
    assert deleted.json()["results"][0]["result"] == "ok", deleted.text

    run = stack.cli("digest", "--day", _today())
    assert run.returncode == 0, run.stderr

    (record,) = _records_for(stack, customer)
    logged = record["payload"]["messages"]
    bodies = [m["body"] for m in logged]
    assert "are you there?" not in bodies  # suppressed: it never left
    assert "oops, wrong person" not in bodies  # deleted by a person
    assert "STOP" in bodies
    (picture,) = [m for m in logged if m.get("media")]
    assert picture["body"] == "" and picture["direction"] == "inbound"
    assert [medium["content_type"] for medium in picture["media"]] == ["image/png"]
    assert set(picture["media"][0]) == {"content_type"}  # no link: the carrier's expire
    assert record["payload"]["message_count"] == len(logged)


def test_a_day_whose_only_text_was_deleted_posts_no_record(stack: Stack) -> None:
    customer = "+14155550571"
    _phone_texts(stack, customer, "please ignore")
    (message,) = _all_messages(stack, customer, 1)
    deleted = stack.api("POST", "/v1/messages/delete", json={"ids": [message["message_id"]]})
    assert deleted.json()["results"][0]["result"] == "ok", deleted.text

    asked = stack.api("POST", "/v1/crm/log", json={"customer_number": customer, "day": _today()})
    assert asked.status_code == 200, asked.text
    assert (asked.json()["created"], asked.json()["updated"]) == (0, 0)
    run = stack.cli("digest", "--day", _today())
    assert run.returncode == 0, run.stderr
    assert _records_for(stack, customer) == []
