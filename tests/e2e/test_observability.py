"""One text's correlation id in the logs of every function it passed through; no number or body at INFO.

Reads the local stack's own output (every function's JSON lines go to it), as one would read
CloudWatch Logs: by `function_name` and `correlation_id`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from local.process import wait_until
from tests.e2e.conftest import OUR_NUMBER, Stack

pytestmark = pytest.mark.e2e

CUSTOMER = "+14155550187"
REPLY_CUSTOMER = "+14155550188"
INBOUND_BODY = "Observability check: the heron flies at dawn"
OUTBOUND_BODY = "Observability check: the lantern is lit"


def function_lines(stack: Stack) -> list[dict[str, Any]]:
    """The functions' JSON log lines so far (the stack's own lines are plain text)."""
    assert stack.log_path is not None
    found = []
    for line in stack.log_path.read_text().splitlines():
        if line.startswith("{") and '"service":"parley"' in line.replace(" ", ""):
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
    return found


def functions_with(stack: Stack, correlation_id: str) -> set[str]:
    """The logical ids (e.g. SendFunction) of the functions that logged a line with this id."""
    return {
        str(line.get("function_name", "")).rsplit("-", 1)[-1]
        for line in function_lines(stack)
        if line.get("correlation_id") == correlation_id
    }


def wait_for_functions(stack: Stack, correlation_id: str, expected: set[str]) -> set[str]:
    return wait_until(lambda: (seen := functions_with(stack, correlation_id)) >= expected and seen)


def inbound(stack: Stack, customer: str, body: str) -> dict[str, Any]:
    sim = stack.cli("sim", "sms", "--from", customer, "--to", OUR_NUMBER, "--body", body)
    assert sim.returncode == 0, sim.stderr

    def stored() -> dict[str, Any] | None:
        response = stack.api("GET", f"/v1/conversations/{customer}/messages")
        messages = response.json().get("messages", []) if response.status_code == 200 else []
        return next((m for m in messages if m["direction"] == "inbound" and m["body"] == body), None)

    return wait_until(stored)


def test_one_text_s_correlation_id_follows_it_through_every_function_and_info_lines_hide_numbers_and_bodies(
    stack: Stack, carrier_fault: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    # In: webhook -> inbound queue -> processor. The webhook's id is kept as the message's request id.
    received = inbound(stack, CUSTOMER, INBOUND_BODY)
    inbound_id = received["request_id"]
    assert inbound_id
    # The bus's MessageReceived event reaches the digest (auto-log) on the same id.
    assert wait_for_functions(
        stack, inbound_id, {"WebhookFunction", "InboundProcessorFunction", "DigestFunction"}
    )

    # Out: API -> send queue -> send worker -> carrier (a 500) -> retry queue -> retry worker -> carrier
    # -> receipt webhook -> processor, all on the request key.
    carrier_fault({"kind": "500", "count": 1, "to": CUSTOMER})
    key = f"obs-{uuid.uuid4().hex}"
    sent = stack.api(
        "POST",
        "/v1/messages",
        json={"to": [CUSTOMER], "body": OUTBOUND_BODY},
        headers={"Idempotency-Key": key},
    )
    assert sent.status_code == 202, sent.text
    (message,) = sent.json()["messages"]
    delivered = stack.wait_status(message["message_id"], "delivered", timeout=40)
    assert delivered["request_id"] == key and len(delivered["attempts"]) == 2
    seen = wait_for_functions(stack, key, {"ApiFunction", "SendFunction", "RetryFunction", "DigestFunction"})

    # The receipts join the journey: the processor applies them, or, when one raced ahead of the send's
    # write and was parked, the send or retry worker does as it records the carrier's id.
    def receipts() -> list[dict[str, Any]]:
        return [
            line
            for line in function_lines(stack)
            if line.get("correlation_id") == key and line.get("message") == "receipt applied"
        ]

    applied = wait_until(
        lambda: (found := receipts()) and any(r["status"] == "delivered" for r in found) and found
    )
    by_processor = [r for r in applied if r["function_name"].endswith("InboundProcessorFunction")]
    assert all(r.get("receipt_correlation_id") for r in by_processor), by_processor  # names its webhook
    assert {r["function_name"].rsplit("-", 1)[-1] for r in applied} <= seen | {"InboundProcessorFunction"}
    assert "WebhookFunction" not in seen  # a receipt's webhook can't know the message yet

    # A keyword's reply: processor -> send queue -> send worker, still on the inbound text's id.
    help_text = inbound(stack, REPLY_CUSTOMER, "HELP")
    reply_journey = help_text["request_id"]
    assert wait_for_functions(
        stack, reply_journey, {"WebhookFunction", "InboundProcessorFunction", "SendFunction"}
    )

    # Nothing at INFO or above shows a full number or a message's words.
    secrets = (
        CUSTOMER,
        REPLY_CUSTOMER,
        OUR_NUMBER,
        CUSTOMER[1:],
        OUR_NUMBER[1:],
        INBOUND_BODY,
        OUTBOUND_BODY,
    )
    lines = function_lines(stack)
    informative = [line for line in lines if line.get("level") in ("INFO", "WARNING", "ERROR", "CRITICAL")]
    assert len(informative) > 10
    leaks = [line for line in informative if any(s in json.dumps(line, ensure_ascii=False) for s in secrets)]
    assert leaks == [], json.dumps(leaks, indent=1)
    masked = [line for line in informative if "+1********87" in json.dumps(line)]
    assert masked  # the numbers are there, masked: people can still tell texts apart
