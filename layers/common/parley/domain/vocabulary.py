"""Parley's words for direction and status: stdlib only, so the webhook path can use them cheaply."""

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


__all__ = ["Direction", "MessageStatus"]
