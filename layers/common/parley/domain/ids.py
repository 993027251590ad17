"""Deterministic identifiers: the same request or webhook always maps to the same record."""

from __future__ import annotations

import hashlib
import uuid


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:26]


def inbound_message_id(carrier: str, carrier_message_id: str) -> str:
    """A carrier may post the same webhook many times; one id means one stored message."""
    return "in_" + _digest("inbound", carrier, carrier_message_id)


def outbound_message_id(request_key: str, recipient: str) -> str:
    """The same send request delivered twice yields the same message ids, so it sends once."""
    return "out_" + _digest("outbound", request_key, recipient)


def new_request_key() -> str:
    return "req_" + uuid.uuid4().hex


def carrier_ref(carrier: str, carrier_message_id: str) -> str:
    return f"{carrier}#{carrier_message_id}"
