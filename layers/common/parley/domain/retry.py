"""Backoff for transient failures: exponential with jitter (half to all of each step), capped, and
bounded in total age (so a text isn't still being retried long after anyone wants it) and, as a
backstop, in attempts."""

from __future__ import annotations

import math
import random
import re
import time
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Final

MAX_WAIT_SECONDS: Final = 900  # SQS DelaySeconds can't exceed 15 minutes


@dataclass(frozen=True)
class RetryPolicy:
    # A backstop so nothing retries forever: with the default backoff the age limit comes first (a
    # throttled or briefly down carrier gets the whole window, not a few minutes).
    max_attempts: int = 40
    base_seconds: float = 30.0
    max_delay_seconds: int = MAX_WAIT_SECONDS
    max_age_seconds: float = 4 * 3600.0  # from the first attempt: past this, a transient failure is final

    def should_retry(self, attempts_made: int, age_seconds: float = 0.0) -> bool:
        """Whether to try again after `attempts_made` attempts, the first `age_seconds` ago."""
        return attempts_made < self.max_attempts and age_seconds < self.max_age_seconds

    def delay_seconds(
        self, attempts_made: int, rng: random.Random | None = None, *, at_least: float | None = None
    ) -> int:
        """Delay before attempt number `attempts_made + 1`; jitter spreads a burst of failures.

        `at_least` is the carrier's own wait (its Retry-After): the delay is the longer of the two,
        still capped at `max_delay_seconds`.
        """
        exponent = min(max(attempts_made - 1, 0), 32)  # bounded: 2 ** 1024 no longer fits in a float
        ceiling = min(float(self.max_delay_seconds), self.base_seconds * (2**exponent))
        jittered = (rng or random).uniform(ceiling / 2, ceiling)
        delay = round(jittered)
        if at_least is not None and math.isfinite(at_least) and at_least > 0:
            delay = max(delay, math.ceil(min(at_least, float(MAX_WAIT_SECONDS))))
        return max(1, min(self.max_delay_seconds, delay))


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """A ``Retry-After`` header as seconds to wait, uncapped (inf stays inf): a number of seconds or
    an HTTP date (RFC 9110 §10.2.3); None when absent or unreadable (garbage, negative, NaN)."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)  # "-0000": RFC 9110 dates are GMT anyway
        seconds = max(0.0, when.timestamp() - (time.time() if now is None else now))
    if math.isnan(seconds) or seconds < 0:
        return None
    return seconds


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """A carrier's ``Retry-After`` as seconds to wait, at most MAX_WAIT_SECONDS; None when absent or
    unreadable, and for an endless wait (inf), which no carrier means: the backoff decides then."""
    seconds = retry_after_seconds(value, now=now)
    if seconds is None or not math.isfinite(seconds):
        return None
    return min(seconds, float(MAX_WAIT_SECONDS))


# A clause of a carrier's reason that speaks of a retry to come ("it will be retried", "will retry",
# "checking before any retry"): true while the text is retrying, false once it has been given up on.
_RETRY_CLAUSE: Final = re.compile(r"\bretr(?:y|ies|ied|ying)\b", re.IGNORECASE)


def without_retry_promise(reason: str) -> str:
    """The reason without its clauses about a retry, for a text that will not be tried again."""
    first, *rest = reason.split(";")
    kept = [first.strip(), *(c.strip() for c in rest if not _RETRY_CLAUSE.search(c))]
    return "; ".join(c for c in kept if c)


def describe_span(seconds: float) -> str:
    """A duration as a person reads it in a reason: "40 seconds", "12 minutes", "3.5 hours"."""
    if seconds < 120:
        return f"{max(0, round(seconds))} seconds"
    if seconds < 2 * 3600:
        return f"{round(seconds / 60)} minutes"
    return f"{seconds / 3600:.1f}".removesuffix(".0") + " hours"
