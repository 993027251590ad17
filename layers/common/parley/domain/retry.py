"""Backoff for transient failures: exponential with full jitter, capped, and bounded both in attempts
and in total age (so a text isn't still being retried long after anyone wants it)."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_seconds: float = 30.0
    max_delay_seconds: int = 900  # SQS DelaySeconds can't exceed 15 minutes
    max_age_seconds: float = 4 * 3600.0  # from the first attempt: past this, a transient failure is final

    def should_retry(self, attempts_made: int, age_seconds: float = 0.0) -> bool:
        """Whether to try again after `attempts_made` attempts, the first `age_seconds` ago."""
        return attempts_made < self.max_attempts and age_seconds < self.max_age_seconds

    def delay_seconds(self, attempts_made: int, rng: random.Random | None = None) -> int:
        """Delay before attempt number `attempts_made + 1`; full jitter spreads a burst of failures."""
        exponent = min(max(attempts_made - 1, 0), 32)  # bounded: 2 ** 1024 no longer fits in a float
        ceiling = min(float(self.max_delay_seconds), self.base_seconds * (2**exponent))
        jittered = (rng or random).uniform(ceiling / 2, ceiling)
        return max(1, min(self.max_delay_seconds, round(jittered)))


def describe_span(seconds: float) -> str:
    """A duration as a person reads it in a reason: "40 seconds", "12 minutes", "3.5 hours"."""
    if seconds < 120:
        return f"{max(0, round(seconds))} seconds"
    if seconds < 2 * 3600:
        return f"{round(seconds / 60)} minutes"
    return f"{seconds / 3600:.1f}".removesuffix(".0") + " hours"
