"""Quiet hours in the recipient's own time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from parley.domain.quiet_hours import InvalidQuietHours, parse_window, recipient_zone

LA = ZoneInfo("America/Los_Angeles")
NIGHT = parse_window("21:00-08:00")


@pytest.mark.parametrize(
    ("utc", "opens"),
    [
        (datetime(2026, 11, 28, 7, 0, tzinfo=UTC), datetime(2026, 11, 28, 16, 0, tzinfo=UTC)),  # 23:00 PST
        (datetime(2026, 11, 28, 5, 0, tzinfo=UTC), datetime(2026, 11, 28, 16, 0, tzinfo=UTC)),  # 21:00 PST
        (datetime(2026, 11, 28, 15, 59, tzinfo=UTC), datetime(2026, 11, 28, 16, 0, tzinfo=UTC)),  # 07:59
        (datetime(2026, 11, 28, 16, 0, tzinfo=UTC), None),  # 08:00: open
        (datetime(2026, 11, 28, 20, 0, tzinfo=UTC), None),  # noon
        (datetime(2026, 11, 28, 4, 59, tzinfo=UTC), None),  # 20:59
    ],
)
def test_a_window_that_wraps_midnight(utc: datetime, opens: datetime | None) -> None:
    assert NIGHT is not None
    assert NIGHT.opens_at(utc, LA) == opens


def test_the_morning_after_a_daylight_saving_change_is_at_the_local_hour() -> None:
    assert NIGHT is not None
    # 2026-03-08: US clocks spring forward; 23:00 PST on the 7th -> 08:00 PDT on the 8th (15:00 UTC).
    assert NIGHT.opens_at(datetime(2026, 3, 8, 7, 0, tzinfo=UTC), LA) == datetime(
        2026, 3, 8, 15, 0, tzinfo=UTC
    )


def test_a_daytime_window_does_not_wrap() -> None:
    lunch = parse_window("12:00-13:00")
    assert lunch is not None
    assert lunch.opens_at(datetime(2026, 11, 28, 12, 30, tzinfo=UTC), ZoneInfo("UTC")) == datetime(
        2026, 11, 28, 13, 0, tzinfo=UTC
    )
    assert lunch.opens_at(datetime(2026, 11, 28, 23, 30, tzinfo=UTC), ZoneInfo("UTC")) is None


@pytest.mark.parametrize("text", ["", "  ", None, "08:00-08:00"])
def test_no_window(text: str | None) -> None:
    assert parse_window(text) is None


@pytest.mark.parametrize("text", ["9pm-8am", "25:00-08:00", "21:00", "21:60-08:00"])
def test_a_malformed_window_is_refused_with_the_reason(text: str) -> None:
    with pytest.raises(InvalidQuietHours, match="quiet hours"):
        parse_window(text)


def test_the_recipients_zone_comes_from_their_number_with_a_fallback() -> None:
    assert recipient_zone("+14155550100", "UTC") == LA
    assert recipient_zone("+442071838750", "UTC") == ZoneInfo("Europe/London")
    assert recipient_zone("+15005550006", "Europe/Paris") == ZoneInfo("Europe/Paris")  # not one zone
