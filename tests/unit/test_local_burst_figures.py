"""The arithmetic behind `make bench`'s burst through the local stack, so its verdict can't silently lie."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bench.local_burst import HEADROOM, achieved_rate, longest_gap, summarize, throughput

START = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
FAST = 20.0  # the stack's own pace in these runs: well over HEADROOM x 5/s


def ideal(texts: int, rate: float) -> list[float]:
    """A full bucket lets `rate` texts go at once; each later one goes when a token has refilled."""
    burst = int(rate)
    return [0.0] * burst + [(i + 1) / rate for i in range(texts - burst)]


def received(arrivals: list[float], recipients: list[str] | None = None) -> list[tuple[str, datetime]]:
    names = recipients or [f"+1415555{3000 + i:04d}" for i in range(len(arrivals))]
    return [(to, START + timedelta(seconds=t)) for to, t in zip(names, arrivals, strict=True)]


def test_a_perfect_limiter_scores_exactly_the_configured_rate() -> None:
    span, rate = achieved_rate(ideal(60, 5.0), burst=5.0)
    assert span == pytest.approx(11.0)
    assert rate == pytest.approx(5.0)


def test_order_does_not_matter_and_a_late_text_lowers_the_rate() -> None:
    arrivals = ideal(60, 5.0)
    arrivals[-1] += 1.0  # the last text slept a whole extra second
    span, rate = achieved_rate(list(reversed(arrivals)), burst=5.0)
    assert span == pytest.approx(12.0)
    assert rate == pytest.approx(55 / 12)


def test_no_texts_or_one_text_give_no_rate_to_speak_of() -> None:
    assert achieved_rate([], burst=5.0) == (0.0, 0.0)
    assert achieved_rate([3.0], burst=5.0) == (0.0, float("inf"))
    assert longest_gap([]) == longest_gap([1.0]) == 0.0
    assert longest_gap([0.0, 0.2, 1.4, 1.5]) == pytest.approx(1.2)


def test_the_perfect_run_passes() -> None:
    report = summarize(
        texts=60, rate=5.0, accepted=60, failed=0, received=received(ideal(60, 5.0)), capacity=FAST
    )
    assert (report.received, report.duplicates, report.failed) == (60, 0, 0)
    assert report.ratio == pytest.approx(1.0)
    assert report.ok


def test_a_duplicate_is_counted_and_fails_the_run_but_does_not_inflate_the_rate() -> None:
    copies = received(ideal(60, 5.0))
    copies.append((copies[10][0], START + timedelta(seconds=30)))  # a second copy, much later
    report = summarize(texts=60, rate=5.0, accepted=60, failed=0, received=copies, capacity=FAST)
    assert (report.received, report.duplicates) == (60, 1)
    assert report.span_seconds == pytest.approx(11.0)  # each text's first copy sets its time
    assert not report.ok


def test_a_dropped_or_failed_text_fails_the_run() -> None:
    arrivals = ideal(60, 5.0)
    dropped = summarize(
        texts=60, rate=5.0, accepted=60, failed=0, received=received(arrivals[:-1]), capacity=FAST
    )
    assert dropped.received == 59 and not dropped.ok
    failed = summarize(texts=60, rate=5.0, accepted=60, failed=1, received=received(arrivals), capacity=FAST)
    assert not failed.ok


def test_six_percent_slow_is_outside_the_tolerance_and_four_percent_is_inside() -> None:
    for stretch, ok in ((1 / 0.94, False), (1 / 0.96, True)):
        arrivals = [t * stretch for t in ideal(60, 5.0)]
        report = summarize(
            texts=60, rate=5.0, accepted=60, failed=0, received=received(arrivals), capacity=FAST
        )
        assert report.ok is ok, report


def test_the_stacks_own_pace_is_the_texts_after_the_first_over_the_time_they_took() -> None:
    assert throughput(received([0.0, 0.1, 0.2, 0.3, 0.4])) == pytest.approx(10.0)
    copies = received([0.0, 0.5, 1.0])
    copies.append((copies[0][0], START + timedelta(seconds=9)))  # a late second copy changes nothing
    assert throughput(copies) == pytest.approx(2.0)
    assert throughput([]) == throughput(received([1.0])) == 0.0


def test_a_perfect_limiter_on_a_stack_too_slow_for_its_rate_is_not_judged_a_pass() -> None:
    """At a limit near the stack's own pace, the run measures the machine: the verdict must say no."""
    arrivals = received(ideal(60, 5.0))
    slow = summarize(texts=60, rate=5.0, accepted=60, failed=0, received=arrivals, capacity=6.0)
    assert slow.ratio == pytest.approx(1.0)
    assert not slow.machine_fast_enough and not slow.ok
    just = summarize(texts=60, rate=5.0, accepted=60, failed=0, received=arrivals, capacity=HEADROOM * 5.0)
    assert just.machine_fast_enough and just.ok
