"""Parley's words for direction, status and consent scope: stdlib only, so the webhook path can use
them cheaply."""

from __future__ import annotations

from enum import StrEnum


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class MessageStatus(StrEnum):
    """Parley's one vocabulary for where a message is; carriers' words are mapped onto it."""

    # outbound, before the carrier
    QUEUED = "queued"
    SCHEDULED = "scheduled"
    HELD = "held"
    SUPPRESSED = "suppressed"
    SENDING = "sending"
    RETRYING = "retrying"
    # outbound, reported by the carrier
    ACCEPTED = "accepted"
    SENT = "sent"
    DELIVERED = "delivered"
    PARTIALLY_DELIVERED = "partially_delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    READ = "read"
    CANCELED = "canceled"
    # inbound
    RECEIVED = "received"


class OptOutScope(StrEnum):
    """What a STOP sent to one of our numbers opts the customer out of (the number's own setting)."""

    ALL = "all"  # every one of our numbers, on every carrier
    NUMBER = "number"  # only the number the customer texted (or the carrier reported for)


__all__ = ["Direction", "MessageStatus", "OptOutScope"]
