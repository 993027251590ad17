"""The books a failure scenario must balance once it has settled (issue 5, "Failures that lose nothing").

`count_check` waits until the work queues are empty and every message named has a final status, then
checks three things and returns the figures:

* every message sent ended somewhere: sent = delivered + failed + suppressed (+ canceled), where delivered
  counts `read` and failed counts `undelivered`; nothing is left queued, retrying or sending;
* the carrier has exactly one text per message it accepted and none for the rest: for each (to, from,
  body) the simulator's texts equal our messages that carry a carrier message id, whose ids are the
  simulator's. A text sent twice, or one we claim was sent but the carrier never got, fails here;
* nothing reached a dead-letter queue unseen: each DLQ holds what it held at `baseline` plus what the
  test says it expects (`expect_dead`), nothing more.

Reuse it from any e2e test on the session stack: take `dlq_depths(stack)` before the scenario, then
`count_check(stack, message_ids, baseline=before)`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from tests.e2e.conftest import Stack

FINAL = {"delivered", "read", "failed", "undelivered", "suppressed", "canceled"}
DELIVERED = {"delivered", "read"}
FAILED = {"failed", "undelivered"}


@dataclass
class Accounting:
    sent: int
    by_status: dict[str, int]
    carrier_texts: int  # the simulator's texts for the (to, from, body) of the messages checked
    at_carrier: int  # our messages that carry a carrier message id
    dead_letters: dict[str, int]  # per DLQ: how many arrived since the baseline
    messages: list[dict[str, Any]] = field(repr=False, default_factory=list)

    @property
    def delivered(self) -> int:
        return sum(self.by_status.get(s, 0) for s in DELIVERED)

    @property
    def failed(self) -> int:
        return sum(self.by_status.get(s, 0) for s in FAILED)

    @property
    def suppressed(self) -> int:
        return self.by_status.get("suppressed", 0)

    @property
    def canceled(self) -> int:
        return self.by_status.get("canceled", 0)


def queue_depths(stack: Stack, *, patience: float = 60.0) -> dict[str, int]:
    """Messages per queue (visible + in flight + delayed), by logical id, from /_local/queues.

    A slow answer (a busy machine) is asked again until `patience` runs out, so one slow poll inside
    a wait does not end the wait.
    """
    deadline = time.monotonic() + patience
    while True:
        try:
            response = requests.get(stack.url("/_local/queues"), timeout=10)
            break
        except requests.Timeout:
            if time.monotonic() > deadline:
                raise
    assert response.status_code == 200, response.text
    return {name: sum(int(v) for v in depth.values()) for name, depth in response.json().items()}


def dlq_depths(stack: Stack) -> dict[str, int]:
    """The dead-letter queues' depths: take it before a scenario and pass it to count_check."""
    return {name: n for name, n in queue_depths(stack).items() if name.endswith("DLQ")}


def work_drained(stack: Stack) -> bool:
    """No work queue holds anything, visible, in flight or delayed (DLQs aside)."""
    return not any(n for name, n in queue_depths(stack).items() if not name.endswith("DLQ"))


def count_check(
    stack: Stack,
    message_ids: Sequence[str],
    *,
    baseline: Mapping[str, int] | None = None,
    expect_dead: Mapping[str, int] | None = None,
    carrier: str = "twilio",
    timeout: float = 60.0,
) -> Accounting:
    """Wait for `message_ids` to settle, then assert the books balance (module docstring); the figures."""
    assert message_ids, "nothing to check"
    messages = _settled(stack, message_ids, timeout)
    by_status = Counter(str(m["status"]) for m in messages)
    unsettled = {m["message_id"]: m["status"] for m in messages if m["status"] not in FINAL}
    assert not unsettled, f"messages not in a final status: {unsettled}"

    # Every message ended somewhere.
    accounting = Accounting(
        sent=len(messages),
        by_status=dict(by_status),
        carrier_texts=0,
        at_carrier=0,
        dead_letters={},
        messages=messages,
    )
    total = accounting.delivered + accounting.failed + accounting.suppressed + accounting.canceled
    assert accounting.sent == total, f"sent {accounting.sent} != {dict(by_status)}"

    # One carrier text per message the carrier accepted, none for the others.
    response = requests.get(stack.url(f"/_sim/{carrier}/_messages"), timeout=30)
    assert response.status_code == 200, response.text
    ours = {_key(m) for m in messages}
    texts = [t for t in response.json()["messages"] if (t.get("to"), t.get("from"), t.get("body")) in ours]
    accounting.carrier_texts = len(texts)
    accepted = [m for m in messages if m.get("carrier_message_id")]
    accounting.at_carrier = len(accepted)
    per_key_texts = Counter((t["to"], t["from"], t["body"]) for t in texts)
    per_key_ours = Counter(_key(m) for m in accepted)
    mismatched = {
        key: {"carrier": per_key_texts.get(key, 0), "ours": per_key_ours.get(key, 0)}
        for key in set(per_key_texts) | set(per_key_ours)
        if per_key_texts.get(key, 0) != per_key_ours.get(key, 0)
    }
    assert not mismatched, f"carrier texts != messages the carrier accepted (duplicate or lost): {mismatched}"
    sids = {t.get("sid") for t in texts}
    unknown = {
        m["message_id"]: m["carrier_message_id"] for m in accepted if m["carrier_message_id"] not in sids
    }
    assert not unknown, f"carrier ids the carrier doesn't know: {unknown}"
    not_at_carrier = [
        m["message_id"] for m in messages if m["status"] in DELIVERED and not m.get("carrier_message_id")
    ]
    assert not not_at_carrier, f"delivered without a carrier id: {not_at_carrier}"

    # Nothing dead-lettered unseen.
    before = dict(baseline or {})
    after = dlq_depths(stack)
    accounting.dead_letters = {name: n - before.get(name, 0) for name, n in after.items()}
    expected = {name: (expect_dead or {}).get(name, 0) for name in after}
    assert accounting.dead_letters == expected, (
        f"dead letters since the baseline {accounting.dead_letters}, expected {expected}"
    )
    return accounting


def _key(message: Mapping[str, Any]) -> tuple[str, str, str]:
    return (str(message["customer_number"]), str(message["our_number"]), str(message["body"]))


def _settled(stack: Stack, message_ids: Sequence[str], timeout: float) -> list[dict[str, Any]]:
    """The messages once the work queues are empty and all of them are final (or at the deadline)."""
    deadline = time.monotonic() + timeout
    messages: list[dict[str, Any]] = []
    while True:
        if work_drained(stack):
            messages = [stack.message(m) for m in message_ids]
            if all(m["status"] in FINAL for m in messages) and work_drained(stack):
                return messages
        if time.monotonic() > deadline:
            busy = {name: n for name, n in queue_depths(stack).items() if n and not name.endswith("DLQ")}
            assert not busy, f"work queues not drained within {timeout}s: {busy}"
            return messages or [stack.message(m) for m in message_ids]
        time.sleep(0.25)
