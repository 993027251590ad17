"""Parley's one "now": what every service (through wiring) and every model default reads.

Deployed, it is the system clock and nothing ever moves it. The local runtime can run it ahead of or
behind real time (`POST /_local/clock`), so a test can put the whole system at 23:00 in a customer's
time zone. It is an offset, not a frozen instant: the clock keeps ticking, so rate buckets refill and
timestamps keep their order. Standard library only: the webhook may import it on a cold start.

Signature windows (carriers, dev JWTs) and the simulators stay on real time: they stand for the
outside world, which a test can't move.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_offset = timedelta(0)


def utc_now() -> datetime:
    """Now, in UTC, as Parley sees it."""
    return datetime.now(UTC) + _offset


def offset() -> timedelta:
    """How far Parley's clock runs from real time: zero unless the local runtime moved it."""
    return _offset


def set_offset(value: timedelta) -> None:
    """Run Parley's clock `value` away from real time (timedelta(0): real time). The local runtime's."""
    global _offset
    _offset = value
