"""Quiet hours: no texts to a customer at night in *their* time zone; held ones go when it opens."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as number_timezones

_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


class InvalidQuietHours(ValueError):
    """The window isn't "HH:MM-HH:MM"."""


@dataclass(frozen=True)
class QuietHours:
    """From `start` (evening) until `end` (morning), local time; a window may wrap midnight."""

    start: time
    end: time

    def opens_at(self, now: datetime, zone: ZoneInfo) -> datetime | None:
        """When sending may start again if `now` is inside the window, else None (send now)."""
        local = now.astimezone(zone)
        at = local.time()
        quiet = self.start <= at < self.end if self.start < self.end else at >= self.start or at < self.end
        if not quiet:
            return None
        opens = local.replace(hour=self.end.hour, minute=self.end.minute, second=0, microsecond=0)
        if opens <= local:
            opens += timedelta(days=1)
        # Re-localise: adding a day across a DST change keeps the wall-clock time, not 24 hours.
        opens = datetime.combine(opens.date(), self.end, tzinfo=zone)
        return opens.astimezone(UTC)


def parse_window(text: str | None) -> QuietHours | None:
    """ "21:00-08:00" → QuietHours; empty → None (no quiet hours)."""
    if not text or not text.strip():
        return None
    match = _WINDOW.match(text)
    if match is None:
        raise InvalidQuietHours(f"quiet hours must look like 21:00-08:00, not {text!r}")
    sh, sm, eh, em = (int(g) for g in match.groups())
    if sh > 23 or eh > 23 or sm > 59 or em > 59:
        raise InvalidQuietHours(f"quiet hours {text!r} name a time that doesn't exist")
    window = QuietHours(time(sh, sm), time(eh, em))
    return None if window.start == window.end else window


@cache
def recipient_zone(number: str, fallback: str) -> ZoneInfo:
    """The recipient's time zone from their number, when the number names exactly one."""
    try:
        zones = number_timezones.time_zones_for_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        zones = ()
    if len(zones) == 1 and zones[0] != "Etc/Unknown":
        try:
            return ZoneInfo(zones[0])
        except ZoneInfoNotFoundError:
            pass
    return ZoneInfo(fallback)
