"""The one interface every carrier plugin implements.

A carrier module keeps together everything that is specific to it: the signature check, the
payload parser, the status map, the send call and the error classification. Adding a carrier is
one module plus one registration in `parley.carriers.registry`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from parley.domain.models import InboundMessage, StatusUpdate


class WebhookKind(StrEnum):
    MESSAGE = "messages"
    STATUS = "status"


@dataclass(frozen=True)
class WebhookRequest:
    """A carrier's HTTP request exactly as it reached us: raw bytes, not a parsed body."""

    method: str
    url: str  # the exact public URL the carrier called (configured, with the query string)
    headers: dict[str, str]  # lower-cased names
    body: bytes
    query: dict[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class WebhookAck:
    """What the carrier expects back so it stops retrying."""

    status_code: int
    body: str
    content_type: str


class SignatureError(Exception):
    """The request is not provably from the carrier (forged, altered, stale or unsigned)."""


class PayloadError(ValueError):
    """The request is authentic but not a payload we understand."""


class FailureKind(StrEnum):
    TRANSIENT = "transient"  # safe to retry after backing off
    PERMANENT = "permanent"  # retrying won't help; a person must act
    AMBIGUOUS = "ambiguous"  # the carrier may have accepted it; reconcile before any retry


@dataclass(frozen=True)
class OutboundText:
    message_id: str
    from_number: str
    to_number: str
    body: str
    status_callback_url: str | None = None
    media_urls: tuple[str, ...] = ()


@dataclass(frozen=True)
class SendAccepted:
    carrier_message_id: str
    carrier_status: str
    segments: int | None = None


@dataclass(frozen=True)
class SendFailed:
    kind: FailureKind
    reason: str  # plain words for a person
    error_code: str | None = None  # the carrier's own code, shown beside the reason
    http_status: int | None = None


SendOutcome = SendAccepted | SendFailed


class Carrier(Protocol):
    """A carrier plugin. Implementations hold their own credentials and HTTP session."""

    name: str

    def verify(self, request: WebhookRequest) -> None:
        """Raise SignatureError unless the request carries the carrier's valid signature."""
        ...

    def parse(self, kind: WebhookKind, request: WebhookRequest) -> list[InboundMessage | StatusUpdate]:
        """Turn a verified webhook into canonical events; raise PayloadError if it isn't one."""
        ...

    def ack(self, kind: WebhookKind) -> WebhookAck:
        """The response that tells the carrier we have it."""
        ...

    def send(self, text: OutboundText) -> SendOutcome:
        """Hand one text to the carrier; never raises for carrier or network failures."""
        ...
