"""Backoff for transient failures: exponential with full jitter, capped, and bounded in attempts."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_seconds: float = 30.0
    max_delay_seconds: int = 900  # SQS DelaySeconds can't exceed 15 minutes

    def should_retry(self, attempts_made: int) -> bool:
        return attempts_made < self.max_attempts

    def delay_seconds(self, attempts_made: int, rng: random.Random | None = None) -> int:
        """Delay before attempt number `attempts_made + 1`; full jitter spreads a burst of failures."""
        exponent = min(max(attempts_made - 1, 0), 32)  # bounded: 2 ** 1024 no longer fits in a float
        ceiling = min(float(self.max_delay_seconds), self.base_seconds * (2**exponent))
        jittered = (rng or random).uniform(ceiling / 2, ceiling)
        return max(1, min(self.max_delay_seconds, round(jittered)))
