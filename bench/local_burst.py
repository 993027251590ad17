"""A rate-limited burst through the whole local stack: the HTTP API, the queues, the limiter in DynamoDB
(moto), the send and retry functions and the simulated Twilio, all as `parley local` runs them.

The in-memory burst in bench/__main__.py plays the limiter on a simulated clock; this one runs in real
time, so it also shows what the machinery costs: a text that must wait goes back on the retry queue
with a whole-second SQS delay, and every re-check takes real reads.

The burst is one POST naming every recipient, so all of it is queued at once and the figure measures
the limiter, not how fast the local API accepts texts. It is read from the carrier's side: the times
at which the simulated Twilio accepted each text. The bucket starts full (one second of the rate), so
the first `rate` texts go at once; the achieved rate is the rest over the time they took.

The local stack runs each function one batch at a time, so it has a throughput of its own (about six
texts a second on a small machine): a limit near it measures the machine, not the limiter. So the
same run first sends a burst from a number with no practical limit, and that throughput is the
baseline; the limited burst's rate must sit well inside it (`HEADROOM`) for the verdict to count.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import requests

from local.process import stack_process, wait_until

BASELINE_NUMBER = "+14155550164"  # seeded with rate_per_second=1000: no practical limit (local/seed.py)
BURST_NUMBER = "+14155550165"  # seeded with rate_per_second=2
BURST_RATE = 2.0
TOLERANCE = 0.05
HEADROOM = 2.5  # the stack's own throughput must be at least this many times the limit under test
MAX_RECIPIENTS = 100  # a send request names at most this many
TERMINAL = {"accepted", "sent", "delivered", "undelivered", "failed", "partially_delivered", "read"}


@dataclass(frozen=True)
class BurstReport:
    texts: int
    rate: float  # configured, segments (here texts) per second
    accepted: int  # 202s from POST /v1/messages
    received: int  # distinct texts the carrier got
    failed: int  # messages that ended failed
    duplicates: int  # extra copies the carrier got of a text it already had
    span_seconds: float  # first to last text at the carrier
    longest_gap: float  # seconds without a text: past the bucket's one second, refill is lost
    achieved: float  # texts per second after the initial bucket burst
    ratio: float  # achieved / rate
    capacity: float  # texts per second the stack sent from the unlimited number, in the same run

    @property
    def machine_fast_enough(self) -> bool:
        """Whether the stack's own throughput leaves the limit room to show: else the run measures it."""
        return self.capacity >= HEADROOM * self.rate

    @property
    def ok(self) -> bool:
        """Within 5% of the rate, every text reached the carrier exactly once, on a stack fast enough."""
        return (
            self.machine_fast_enough
            and abs(self.ratio - 1) <= TOLERANCE
            and self.accepted == self.received == self.texts
            and self.failed == 0
            and self.duplicates == 0
        )


def longest_gap(arrivals: Sequence[float]) -> float:
    """The longest quiet spell between consecutive arrivals (0 for fewer than two)."""
    ordered = sorted(arrivals)
    return max((b - a for a, b in pairwise(ordered)), default=0.0)


def achieved_rate(arrivals: Sequence[float], burst: float) -> tuple[float, float]:
    """(span, rate) of arrival times in seconds: the texts after the first `burst` (which a full bucket
    lets through at once) over the time from the first arrival to the last. No span: rate is inf."""
    if not arrivals:
        return 0.0, 0.0
    ordered = sorted(arrivals)
    span = ordered[-1] - ordered[0]
    return span, ((len(ordered) - burst) / span if span > 0 else float("inf"))


def throughput(received: Sequence[tuple[str, datetime]]) -> float:
    """Texts per second from the first arrival to the last (each text's first copy): the stack's pace
    with nothing holding it back. Fewer than two texts, or no time between them: 0."""
    first_copy: dict[str, datetime] = {}
    for to, at in sorted(received, key=lambda r: r[1]):
        first_copy.setdefault(to, at)
    times = sorted(first_copy.values())
    span = (times[-1] - times[0]).total_seconds() if len(times) > 1 else 0.0
    return (len(times) - 1) / span if span > 0 else 0.0


def summarize(
    *,
    texts: int,
    rate: float,
    accepted: int,
    failed: int,
    received: Sequence[tuple[str, datetime]],
    capacity: float,
) -> BurstReport:
    """The report from what the carrier received: (recipient, when) per copy, duplicates included."""
    copies = Counter(to for to, _ in received)
    first_copy: dict[str, datetime] = {}
    for to, at in sorted(received, key=lambda r: r[1]):
        first_copy.setdefault(to, at)
    start = min(first_copy.values(), default=None)
    arrivals = [(at - start).total_seconds() for at in first_copy.values()] if start else []
    span, achieved = achieved_rate(arrivals, burst=rate)  # the bucket's capacity is one second of rate
    return BurstReport(
        texts=texts,
        rate=rate,
        accepted=accepted,
        received=len(first_copy),
        failed=failed,
        duplicates=sum(n - 1 for n in copies.values()),
        span_seconds=span,
        longest_gap=longest_gap(arrivals),
        achieved=achieved,
        ratio=achieved / rate if rate else 0.0,
        capacity=capacity,
    )


def _burst(
    base_url: str, headers: dict[str, str], sender: str, recipients: list[str], timeout: float
) -> tuple[int, int, list[tuple[str, datetime]]]:
    """POST one text from `sender` to each recipient, wait until the carrier has them all and the send
    and retry queues are empty: (accepted, failed, (recipient, when) per copy at the carrier)."""
    message_ids: list[str] = []
    for start in range(0, len(recipients), MAX_RECIPIENTS):  # as few requests as a request may name
        body = {
            "to": recipients[start : start + MAX_RECIPIENTS],
            "from": sender,
            "body": "Your order is ready.",
        }
        response = requests.post(f"{base_url}/v1/messages", json=body, headers=headers, timeout=60)
        accepted = response.json()["messages"] if response.status_code == 202 else []
        message_ids += [str(m["message_id"]) for m in accepted]
    wanted = set(recipients)

    def carrier_copies() -> list[dict[str, Any]]:
        messages = requests.get(f"{base_url}/_sim/twilio/_messages", timeout=10).json()["messages"]
        return [m for m in messages if m["from"] == sender and m["to"] in wanted]

    def settled() -> bool:
        """Cheap to ask (one call to the carrier, one for the queues), so the check itself does not
        compete with the stack for the machine; the statuses are read once, at the end."""
        if len(carrier_copies()) < len(message_ids):
            return False
        depths = requests.get(f"{base_url}/_local/queues", timeout=10).json()
        return sum(sum(depths[q].values()) for q in ("SendQueue", "RetryQueue")) == 0

    with contextlib.suppress(AssertionError):  # out of patience: the figures say what is missing
        wait_until(settled, timeout=timeout, interval=1.0)
    statuses = [
        requests.get(f"{base_url}/v1/messages/{m}", headers=headers, timeout=10).json()["status"]
        for m in message_ids
    ]
    received = [(str(m["to"]), datetime.fromisoformat(str(m["received_at"]))) for m in carrier_copies()]
    return len(message_ids), statuses.count("failed"), received


def run_local_burst(
    texts: int = 30, *, rate: float = BURST_RATE, baseline_texts: int = 60, timeout: float = 60.0
) -> BurstReport:
    """Start `parley local`; send `baseline_texts` from the unlimited number (the stack's own pace),
    then `texts` from the number limited to `rate`, each to distinct recipients; judge the second."""
    # `make dev`'s defaults: not the settings the other benchmarks leave in this process's environment.
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "AWS_", "TWILIO_"))}
    with (
        tempfile.TemporaryDirectory() as tmp,
        stack_process(Path(tmp) / "parley-local.log", base_env=clean) as stack,
    ):
        headers = {"Authorization": f"Bearer {stack.token('bench', 'default')}"}
        baseline = [f"+1415555{2000 + i:04d}" for i in range(baseline_texts)]
        _, _, unlimited = _burst(stack.base_url, headers, BASELINE_NUMBER, baseline, timeout)
        recipients = [f"+1415555{3000 + i:04d}" for i in range(texts)]
        accepted, failed, received = _burst(stack.base_url, headers, BURST_NUMBER, recipients, timeout)
    return summarize(
        texts=texts,
        rate=rate,
        accepted=accepted,
        failed=failed,
        received=received,
        capacity=throughput(unlimited),
    )


def print_report(report: BurstReport) -> None:
    print(
        f"\nRate-limited burst through the local stack: {report.texts} one-segment texts from one number "
        f"at {report.rate:g}/s (real time)\n"
    )
    print(f"{'measure':<44} {'value':>8}")
    rows: list[tuple[str, Any]] = [
        ("baseline: the stack unlimited (texts/s)", f"{report.capacity:.2f}"),
        ("baseline / configured rate", f"{report.capacity / report.rate:.2f}" if report.rate else "-"),
        ("accepted / received by carrier / failed", f"{report.accepted}/{report.received}/{report.failed}"),
        ("span, first to last at the carrier (s)", f"{report.span_seconds:.2f}"),
        ("longest gap between texts (s)", f"{report.longest_gap:.2f}"),
        ("achieved rate past the burst (/s)", f"{report.achieved:.2f}"),
        ("ratio to the configured rate", f"{report.ratio:.3f}"),
        ("duplicates at the carrier", report.duplicates),
        ("within 5% and nothing dropped", "yes" if report.ok else "NO"),
    ]
    if not report.machine_fast_enough:
        rows.append((f"stack under {HEADROOM:g}x the rate: unjudged", "NO"))
    for label, value in rows:
        print(f"{label:<44} {value!s:>8}")


if __name__ == "__main__":
    result = run_local_burst()
    print_report(result)
    raise SystemExit(0 if result.ok else 1)
