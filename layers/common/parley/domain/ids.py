"""Deterministic identifiers: the same request or webhook always maps to the same record."""

from __future__ import annotations

import hashlib
import uuid


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:26]


def inbound_message_id(carrier: str, carrier_message_id: str) -> str:
    """A carrier may post the same webhook many times; one id means one stored message."""
    return "in_" + _digest("inbound", carrier, carrier_message_id)


def outbound_message_id(request_key: str, recipient: str, team: str | None = None) -> str:
    """The same send request delivered twice yields the same message ids, so it sends once.

    Keys are per team: two teams that happen to use the same key send two messages. The default
    team's ids (and those of callers that name no team) derive as they did before keys were per
    team, so a request stored earlier still finds its messages when it is delivered again.
    """
    if team is None or team == "default":
        return "out_" + _digest("outbound", request_key, recipient)
    return "out_" + _digest("outbound-team", team, request_key, recipient)


def new_request_key() -> str:
    return "req_" + uuid.uuid4().hex


def carrier_ref(carrier: str, carrier_message_id: str) -> str:
    return f"{carrier}#{carrier_message_id}"
