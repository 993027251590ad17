"""Backoff: exponential ceiling, full jitter in [ceiling/2, ceiling], capped at 900 s, bounded attempts."""

from __future__ import annotations

import random

import pytest

from parley.domain.retry import RetryPolicy


class EdgeRng(random.Random):
    """Always picks one end of the jitter range, to pin the exact bounds."""

    def __init__(self, end: str) -> None:
        super().__init__(0)
        self.end = end
        self.ranges: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.ranges.append((a, b))
        return a if self.end == "low" else b


def expected_ceiling(attempts_made: int, base: float = 30.0, cap: int = 900) -> float:
    return min(float(cap), base * 2.0 ** max(attempts_made - 1, 0))


@pytest.mark.parametrize(
    ("attempts_made", "low", "high"),
    [(1, 15, 30), (2, 30, 60), (3, 60, 120), (4, 120, 240), (5, 240, 480), (6, 450, 900), (7, 450, 900)],
)
def test_the_jitter_range_doubles_then_stops_at_the_cap(attempts_made: int, low: int, high: int) -> None:
    policy = RetryPolicy()
    assert policy.delay_seconds(attempts_made, EdgeRng("low")) == low
    assert policy.delay_seconds(attempts_made, EdgeRng("high")) == high


@pytest.mark.parametrize("attempts_made", range(0, 15))
def test_every_delay_is_within_half_ceiling_and_ceiling(attempts_made: int) -> None:
    policy = RetryPolicy()
    ceiling = expected_ceiling(attempts_made)
    rng = random.Random(attempts_made)
    for _ in range(200):
        delay = policy.delay_seconds(attempts_made, rng)
        assert isinstance(delay, int)
        assert ceiling / 2 <= delay <= ceiling
        assert 1 <= delay <= 900


def test_delays_are_actually_jittered() -> None:
    policy = RetryPolicy()
    rng = random.Random(7)
    assert len({policy.delay_seconds(4, rng) for _ in range(50)}) > 10


def test_never_longer_than_sqs_allows_even_after_very_many_attempts() -> None:
    policy = RetryPolicy(max_attempts=10_000)
    for attempts_made in (20, 64, 1_100, 5_000):
        assert 450 <= policy.delay_seconds(attempts_made, random.Random(1)) <= 900


def test_a_smaller_cap_is_respected() -> None:
    policy = RetryPolicy(base_seconds=10, max_delay_seconds=60)
    assert policy.delay_seconds(10, EdgeRng("high")) == 60
    assert policy.delay_seconds(10, EdgeRng("low")) == 30


def test_at_least_one_second_even_with_a_tiny_base() -> None:
    assert RetryPolicy(base_seconds=0.1).delay_seconds(1, EdgeRng("low")) == 1


def test_the_rng_is_asked_for_exactly_the_jitter_range() -> None:
    rng = EdgeRng("low")
    RetryPolicy(base_seconds=30).delay_seconds(3, rng)
    assert rng.ranges == [(60.0, 120.0)]


@pytest.mark.parametrize(("made", "again"), [(0, True), (1, True), (4, True), (5, False), (6, False)])
def test_attempts_are_bounded(made: int, again: bool) -> None:
    assert RetryPolicy(max_attempts=5).should_retry(made) is again


def test_a_single_attempt_policy_never_retries() -> None:
    assert not RetryPolicy(max_attempts=1).should_retry(1)
