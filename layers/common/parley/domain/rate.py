"""Per-number send rate: a token bucket, counted in segments. Pure: no clock, no storage.

Capacity is one second of the number's rate (the burst a carrier tolerates), the bucket refills at
the rate, and a text costs its segment count. A text longer than the whole bucket may go when the
bucket is full and leaves it in debt, so a 3-segment text on a 1/s long code still goes, and the
next one waits 3 seconds: the long-run rate in segments holds either way. A text that must wait
reserves its turn (the bucket goes further into debt), so waiting texts are not re-checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

# Float refills (0.2 s at 5/s, a third of a second at 3/s) land a hair under a whole token; a shortfall
# smaller than this is no shortfall, or a text would wait a whole re-queue second for nothing.
_EPSILON = 1e-9


class NumberType(StrEnum):
    LONG_CODE = "long_code"
    TOLL_FREE = "toll_free"
    SHORT_CODE = "short_code"


# Messages (segments) per second by number type, when a number sets no rate of its own.
DEFAULT_RATES: dict[NumberType, float] = {
    NumberType.LONG_CODE: 1.0,
    NumberType.TOLL_FREE: 3.0,
    NumberType.SHORT_CODE: 100.0,
}


def rate_for(number_type: NumberType | None, rate_per_second: float | None) -> float:
    """The number's own rate if set, else its type's default; an unknown type is treated as a long code."""
    if rate_per_second is not None:
        return rate_per_second
    return DEFAULT_RATES[number_type or NumberType.LONG_CODE]


@dataclass(frozen=True)
class BucketState:
    tokens: float  # may be negative: a text longer than the bucket leaves it in debt
    at: datetime  # when `tokens` was last brought up to date


def reserve(
    state: BucketState | None, now: datetime, cost: float, rate: float, *, horizon: float
) -> tuple[BucketState, float]:
    """Reserve `cost` tokens: returns (new_state, wait), wait being the seconds until the turn (0: now).

    A text that must wait is charged now all the same, leaving the bucket in debt, so the next text's
    turn comes after it: turns are handed out in the order asked, exactly at the rate. A turn more
    than `horizon` seconds ahead is not reserved: (state, wait), unchanged. `None` is a full bucket.
    A clock that runs backwards (another worker's clock, a skewed host) refills nothing and never
    moves `at` back.
    """
    if rate <= 0:
        raise ValueError("rate must be positive")
    capacity = rate
    if state is None:
        state = BucketState(tokens=capacity, at=now)
    elapsed = max(0.0, (now - state.at).total_seconds())
    tokens = min(capacity, state.tokens + elapsed * rate)
    need = min(cost, capacity)  # a text longer than the whole bucket goes once it is full
    shortfall = need - tokens
    wait = shortfall / rate if shortfall > _EPSILON else 0.0
    if wait > horizon:
        return state, wait
    return BucketState(tokens=tokens - cost, at=max(now, state.at)), wait
