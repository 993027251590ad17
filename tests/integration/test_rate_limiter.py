"""The DynamoDB token buckets on moto: one item per number, charged with a conditional write."""

from __future__ import annotations

from datetime import timedelta

import pytest

from parley.adapters.dynamo import DynamoRateLimiter, RateLimitItem
from parley.config import Settings
from tests.fakes import T0

OURS = "+15005550006"
HORIZON = 900.0


def test_burst_turns_and_the_stored_item(aws_settings: Settings) -> None:
    limiter = DynamoRateLimiter()
    assert [limiter.reserve(OURS, T0, 1, 3.0, horizon=HORIZON) for _ in range(3)] == [(0, True)] * 3
    wait, reserved = limiter.reserve(OURS, T0, 1, 3.0, horizon=HORIZON)
    assert reserved and wait == pytest.approx(1 / 3)
    assert limiter.reserve("+15005550007", T0, 1, 3.0, horizon=HORIZON) == (0, True)  # its own bucket
    item = RateLimitItem.get(OURS, consistent_read=True)
    assert float(item.tokens) == pytest.approx(-1.0)  # the waiting text holds its turn
    assert int(item.version) == 3
    assert limiter.reserve(OURS, T0 + timedelta(seconds=1), 2, 3.0, horizon=HORIZON) == (0, True)
    assert float(RateLimitItem.get(OURS, consistent_read=True).tokens) == pytest.approx(0.0)  # 3 in, 1+2 out


def test_a_turn_beyond_the_horizon_writes_nothing(aws_settings: Settings) -> None:
    limiter = DynamoRateLimiter()
    limiter.reserve(OURS, T0, 1, 1.0, horizon=HORIZON)
    wait, reserved = limiter.reserve(OURS, T0, 5, 1.0, horizon=0.5)
    assert (wait, reserved) == (pytest.approx(1.0), False)
    assert int(RateLimitItem.get(OURS, consistent_read=True).version) == 0


def test_a_lost_race_is_retried_on_the_fresh_state(
    aws_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    limiter = DynamoRateLimiter()
    limiter.reserve(OURS, T0, 1, 2.0, horizon=HORIZON)
    real_get = RateLimitItem.get
    raced: list[bool] = []

    def get_then_race(*args: object, **kwargs: object) -> RateLimitItem:
        item = real_get(*args, **kwargs)  # type: ignore[arg-type]
        if not raced:  # another worker takes the last token between our read and our write
            raced.append(True)
            DynamoRateLimiter().reserve(OURS, T0, 1, 2.0, horizon=HORIZON)
        return item

    monkeypatch.setattr(RateLimitItem, "get", get_then_race)
    wait, reserved = limiter.reserve(OURS, T0, 1, 2.0, horizon=HORIZON)
    assert reserved and wait == pytest.approx(0.5)  # re-read: the bucket was empty, our turn is next
    assert int(real_get(OURS, consistent_read=True).version) == 2


def test_endless_conflicts_reserve_nothing_and_say_when_to_ask_again(
    aws_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    limiter = DynamoRateLimiter()
    limiter.reserve(OURS, T0, 1, 4.0, horizon=HORIZON)
    real_get = RateLimitItem.get

    def always_raced(*args: object, **kwargs: object) -> RateLimitItem:
        item = real_get(*args, **kwargs)  # type: ignore[arg-type]
        item.version = int(item.version) - 1  # what we read is always one write behind
        return item

    monkeypatch.setattr(RateLimitItem, "get", always_raced)
    assert limiter.reserve(OURS, T0, 1, 4.0, horizon=HORIZON) == (pytest.approx(0.25), False)
