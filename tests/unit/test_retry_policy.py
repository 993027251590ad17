"""Backoff: exponential ceiling, full jitter in [ceiling/2, ceiling], capped at 900 s, at least the
carrier's Retry-After, bounded by age and (as a backstop) attempts."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from parley.domain.retry import RetryPolicy, parse_retry_after, without_retry_promise


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


# -- the carrier's own wait (Retry-After) ---------------------------------------------------------


def test_a_longer_wait_the_carrier_asked_for_wins_over_the_backoff() -> None:
    policy = RetryPolicy()
    assert policy.delay_seconds(1, EdgeRng("high"), at_least=300) == 300
    assert policy.delay_seconds(1, EdgeRng("high"), at_least=0.2) == 30  # the backoff is longer
    assert policy.delay_seconds(1, EdgeRng("high"), at_least=12.1) == 30
    assert policy.delay_seconds(6, EdgeRng("low"), at_least=600.5) == 601  # rounded up, never shorter


@pytest.mark.parametrize("asked", [10_000.0, float("inf"), float("nan"), -5.0, 0.0, None])
def test_the_carriers_wait_never_passes_the_cap_nor_breaks_the_backoff(asked: float | None) -> None:
    policy = RetryPolicy()
    delay = policy.delay_seconds(2, EdgeRng("low"), at_least=asked)
    assert delay == (900 if asked == 10_000.0 else 30)
    assert RetryPolicy(max_delay_seconds=60).delay_seconds(1, EdgeRng("low"), at_least=300) == 60


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("901", 900.0),
        ("1e400", None),  # inf
        ("inf", None),
        ("nan", None),
        ("-3", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("Sat, 28 Nov 2026 20:05:00 GMT", 300.0),
        ("Sat, 28 Nov 2026 20:05:00 -0000", 300.0),
        ("Sat, 28 Nov 2026 19:00:00 GMT", 0.0),  # already past: no extra wait
        ("Fri, 31 Dec 9999 23:59:59 GMT", 900.0),
        ("Sat, 99 Foo 2026 25:61:00 GMT", None),
    ],
)
def test_retry_after_is_read_as_seconds_or_an_http_date(header: str | None, seconds: float | None) -> None:
    now = datetime(2026, 11, 28, 20, 0, tzinfo=UTC).timestamp()
    assert parse_retry_after(header, now=now) == seconds


# -- bounded by age, with attempts only as a backstop ---------------------------------------------


def spent(policy: RetryPolicy, end: str) -> tuple[int, float]:
    """Attempts made and the age of the last, retrying at every delay as long as the policy allows."""
    made, age = 1, 0.0
    while policy.should_retry(made, age):
        age += policy.delay_seconds(made, EdgeRng(end))
        made += 1
    return made, age


@pytest.mark.parametrize("end", ["low", "high"])
def test_with_the_defaults_the_age_limit_ends_a_transient_failure_not_the_attempts(end: str) -> None:
    policy = RetryPolicy()
    made, age = spent(policy, end)
    assert made < policy.max_attempts
    assert policy.max_age_seconds <= age < policy.max_age_seconds + 900


def test_a_carrier_asking_for_short_waits_still_gets_bounded_attempts() -> None:
    policy = RetryPolicy(max_age_seconds=10 * 24 * 3600.0)
    made, _ = spent(policy, "low")
    assert made == policy.max_attempts


# -- a reason once the text has been given up on ------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "final"),
    [
        ("the carrier is rate limiting us; it will be retried", "the carrier is rate limiting us"),
        (
            "Bandwidth had a temporary problem and did not send it (HTTP 503); will retry",
            "Bandwidth had a temporary problem and did not send it (HTTP 503)",
        ),
        ("our AWS credentials expired; it will be retried with fresh ones", "our AWS credentials expired"),
        ("carrier server error (HTTP 502); checking before any retry", "carrier server error (HTTP 502)"),
        ("the carrier timed out; it will be retried later", "the carrier timed out"),
        (
            "the carrier did not answer; it may have the text",
            "the carrier did not answer; it may have the text",
        ),
        ("the number is a landline", "the number is a landline"),
        ("a; Retrying soon; b", "a; b"),
    ],
)
def test_without_retry_promise_drops_only_the_clauses_about_a_retry(reason: str, final: str) -> None:
    assert without_retry_promise(reason) == final
