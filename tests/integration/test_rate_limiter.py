"""The DynamoDB token buckets on moto: one item per number, charged with a conditional write."""

from __future__ import annotations

from datetime import timedelta

import pytest

from parley.adapters.dynamo import DynamoRateLimiter, RateLimitItem
from parley.config import Settings
from tests.fakes import T0


def test_burst_refill_and_the_stored_item(aws_settings: Settings) -> None:
    limiter = DynamoRateLimiter()
    assert [limiter.take("+15005550006", T0, 1, 3.0) for _ in range(3)] == [0, 0, 0]
    assert limiter.take("+15005550006", T0, 1, 3.0) == pytest.approx(1 / 3)
    assert limiter.take("+15005550007", T0, 1, 3.0) == 0  # another number, another bucket
    item = RateLimitItem.get("+15005550006", consistent_read=True)
    assert float(item.tokens) == pytest.approx(0.0)
    assert int(item.version) == 2  # three charges; the wait wrote nothing
    assert limiter.take("+15005550006", T0 + timedelta(seconds=1), 2, 3.0) == 0


def test_a_lost_race_is_retried_on_the_fresh_state(
    aws_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    limiter = DynamoRateLimiter()
    limiter.take("+15005550006", T0, 1, 2.0)
    real_get = RateLimitItem.get
    raced: list[bool] = []

    def get_then_race(*args: object, **kwargs: object) -> RateLimitItem:
        item = real_get(*args, **kwargs)  # type: ignore[arg-type]
        if not raced:  # another worker charges the last token between our read and our write
            raced.append(True)
            DynamoRateLimiter().take("+15005550006", T0, 1, 2.0)
        return item

    monkeypatch.setattr(RateLimitItem, "get", get_then_race)
    assert limiter.take("+15005550006", T0, 1, 2.0) == pytest.approx(0.5)  # re-read: now empty
    assert int(real_get("+15005550006", consistent_read=True).version) == 1


def test_endless_conflicts_read_as_a_wait_not_an_error(
    aws_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    limiter = DynamoRateLimiter()
    limiter.take("+15005550006", T0, 1, 4.0)
    real_get = RateLimitItem.get

    def always_raced(*args: object, **kwargs: object) -> RateLimitItem:
        item = real_get(*args, **kwargs)  # type: ignore[arg-type]
        item.version = int(item.version) - 1  # what we read is always one write behind
        return item

    monkeypatch.setattr(RateLimitItem, "get", always_raced)
    assert limiter.take("+15005550006", T0, 1, 4.0) == pytest.approx(0.25)
