"""The token bucket behind per-number send rates: burst, refill, reserved turns, segments, odd clocks."""

from __future__ import annotations

from datetime import timedelta

import pytest

from parley.domain.models import OurNumber
from parley.domain.rate import DEFAULT_RATES, BucketState, NumberType, rate_for, reserve
from tests.fakes import T0

HORIZON = 900.0


def test_a_fresh_bucket_allows_one_second_of_burst_then_hands_out_turns_at_the_rate() -> None:
    state = None
    waits = []
    for _ in range(8):
        state, wait = reserve(state, T0, 1, 5.0, horizon=HORIZON)
        waits.append(wait)
    assert waits[:5] == [0.0] * 5
    assert waits[5:] == pytest.approx([0.2, 0.4, 0.6])  # each waiting text charged: turns queue up
    assert state is not None and state.tokens == pytest.approx(-3.0)


def test_the_bucket_refills_at_the_rate_and_never_beyond_capacity() -> None:
    state = BucketState(tokens=0.0, at=T0)
    state, wait = reserve(state, T0 + timedelta(seconds=0.5), 1, 1.0, horizon=HORIZON)
    assert wait == pytest.approx(0.5) and state.tokens == pytest.approx(-0.5)
    state, wait = reserve(state, T0 + timedelta(seconds=2), 1, 1.0, horizon=HORIZON)
    assert wait == 0 and state.tokens == pytest.approx(0.0)
    idle, wait = reserve(state, T0 + timedelta(hours=1), 1, 3.0, horizon=HORIZON)  # refills 3, not 10800
    assert wait == 0 and idle.tokens == pytest.approx(2.0)


def test_segments_weigh_and_a_text_longer_than_the_bucket_goes_when_full_leaving_debt() -> None:
    state, wait = reserve(None, T0, 2, 3.0, horizon=HORIZON)
    assert wait == 0 and state.tokens == pytest.approx(1.0)
    _, wait = reserve(state, T0, 2, 3.0, horizon=HORIZON)
    assert wait == pytest.approx(1 / 3)  # one more token at 3/s

    long_text, wait = reserve(None, T0, 3, 1.0, horizon=HORIZON)  # 3 segments on a 1/s long code
    assert wait == 0 and long_text.tokens == pytest.approx(-2.0)
    _, wait = reserve(long_text, T0 + timedelta(seconds=1), 1, 1.0, horizon=HORIZON)
    assert wait == pytest.approx(2.0)  # the debt is paid back before the next text


def test_a_turn_beyond_the_horizon_is_not_reserved() -> None:
    state = BucketState(tokens=-10.0, at=T0)
    same, wait = reserve(state, T0, 1, 1.0, horizon=5.0)
    assert same == state and wait == pytest.approx(11.0)


def test_fractional_refills_are_not_short_by_a_rounding_error() -> None:
    state = BucketState(tokens=0.0, at=T0)
    at = T0
    for _ in range(30):  # a third of a second at a time, at 3/s: each refill is one token exactly
        at += timedelta(microseconds=333_334)
        state, wait = reserve(state, at, 1, 3.0, horizon=HORIZON)
        assert wait == 0


def test_a_clock_running_backwards_refills_nothing_and_never_moves_time_back() -> None:
    state, _ = reserve(None, T0, 1, 1.0, horizon=HORIZON)
    earlier = T0 - timedelta(seconds=30)
    charged, wait = reserve(state, earlier, 1, 1.0, horizon=HORIZON)
    assert wait == pytest.approx(1.0) and charged.at == T0 and charged.tokens == pytest.approx(-1.0)


def test_a_charge_from_a_lagging_clock_keeps_the_latest_time() -> None:
    state = BucketState(tokens=1.0, at=T0)
    charged, wait = reserve(state, T0 - timedelta(seconds=5), 1, 1.0, horizon=HORIZON)
    assert wait == 0 and charged.at == T0 and charged.tokens == pytest.approx(0.0)


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        reserve(None, T0, 1, 0, horizon=HORIZON)


def test_defaults_by_number_type_and_a_number_s_own_rate() -> None:
    assert DEFAULT_RATES == {
        NumberType.LONG_CODE: 1.0,
        NumberType.TOLL_FREE: 3.0,
        NumberType.SHORT_CODE: 100.0,
    }
    assert rate_for(None, None) == 1.0
    assert rate_for(NumberType.TOLL_FREE, None) == 3.0
    assert rate_for(NumberType.SHORT_CODE, 50.0) == 50.0
    number = OurNumber(number="+18005550100", carrier="fake", number_type=NumberType.TOLL_FREE)
    assert rate_for(number.number_type, number.rate_per_second) == 3.0
    with pytest.raises(ValueError):
        OurNumber(number="+18005550100", carrier="fake", rate_per_second=0)
