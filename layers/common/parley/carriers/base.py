"""The one interface every carrier plugin implements.

A carrier module keeps together everything that is specific to it: the signature check, the
payload parser, the status map, the send call and the error classification. Adding a carrier is
one module plus one registration in `parley.carriers.registry`.

This module and everything a webhook needs (verify, parse, ack) use the standard library only:
the webhook must answer within the carrier's deadline (Telnyx: 2 s) from a cold start, so pydantic,
phonenumbers and requests stay off that path. A carrier imports `requests` inside `send`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from typing import Any, Literal, Protocol, runtime_checkable

from parley.domain.retry import without_retry_promise
from parley.domain.vocabulary import MessageStatus


class WebhookKind(StrEnum):
    MESSAGES = "messages"  # inbound texts
    STATUS = "status"  # delivery receipts
    EVENTS = "events"  # one URL for both (Telnyx, Bandwidth, SNS)


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

    @cached_property
    def memo(self) -> dict[str, Any]:
        """Per-request scratch space, so verify and parse decode the body once between them."""
        return {}


@dataclass(frozen=True)
class WebhookAck:
    """What the carrier expects back so it stops retrying."""

    status_code: int
    body: str
    content_type: str


class SignatureError(Exception):
    """The request is not provably from the carrier (forged, altered, stale or unsigned).

    `retryable` marks a request the carrier will send again, signed, if we answer 5xx (Vonage
    occasionally sends a callback unsigned first); a 4xx would lose that event.
    """

    retryable = False


class PayloadError(ValueError):
    """The request is authentic but not a payload we understand."""


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ParsedMedia:
    url: str
    content_type: str | None = None


@dataclass(frozen=True)
class ParsedConcat:
    """One part of a long inbound text that the carrier delivers in pieces."""

    ref: str
    part: int
    total: int


@dataclass(frozen=True)
class ParsedInbound:
    """An inbound text as a carrier plugin reads it; becomes `InboundMessage` in the processor.

    Numbers are passed as the carrier wrote them, except that a plugin adds the "+" a carrier
    leaves off (Plivo, Vonage): ten bare digits would otherwise read as a North American number.
    The processor normalises them to E.164.
    """

    carrier: str
    carrier_message_id: str
    from_number: str
    to_number: str
    body: str = ""
    media: tuple[ParsedMedia, ...] = ()
    segments: int | None = None
    received_at: datetime = field(default_factory=utc_now)
    concat: ParsedConcat | None = None
    opt_out: Literal["STOP", "START", "HELP"] | None = None  # a keyword the carrier itself acted on
    raw: dict[str, Any] = field(default_factory=dict)
    kind: Literal["inbound_message"] = "inbound_message"

    def to_wire(self) -> dict[str, Any]:
        return _wire(self)


@dataclass(frozen=True)
class ParsedStatus:
    """A delivery receipt as a carrier plugin reads it; becomes `StatusUpdate` in the processor."""

    carrier: str
    carrier_message_id: str
    status: MessageStatus
    carrier_status: str
    error_code: str | None = None
    error_message: str | None = None
    occurred_at: datetime = field(default_factory=utc_now)
    part: int | None = None  # per-segment receipts: which part (1-based), of how many
    parts: int | None = None
    opted_out: bool = False
    client_ref: str | None = None  # our message id, where the carrier echoes it back
    # A failure the carrier calls passing (an unreachable phone, throttling): worth another attempt.
    retryable: bool = False
    raw: dict[str, Any] = field(default_factory=dict)
    kind: Literal["status_update"] = "status_update"

    def to_wire(self) -> dict[str, Any]:
        return _wire(self)


ParsedEvent = ParsedInbound | ParsedStatus


def _wire(event: ParsedInbound | ParsedStatus) -> dict[str, Any]:
    """JSON-ready dict with the same field names as the pydantic models in parley.domain.models.

    Built field by field rather than with dataclasses.asdict, which deep-copies `raw`: this runs
    on every webhook, inside the carrier's ack deadline.
    """
    data: dict[str, Any] = {}
    for name in event.__dataclass_fields__:
        value = getattr(event, name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, StrEnum):
            value = value.value
        elif isinstance(value, ParsedConcat):
            value = {"ref": value.ref, "part": value.part, "total": value.total}
        elif name == "media":
            value = [{"url": m.url, "content_type": m.content_type} for m in value]
        data[name] = value
    return data


class FailureKind(StrEnum):
    TRANSIENT = "transient"  # safe to retry after backing off
    PERMANENT = "permanent"  # retrying won't help; a person must act
    AMBIGUOUS = "ambiguous"  # the carrier may have accepted it; reconcile before any retry


def receipt_failure(kind: FailureKind, reason: str) -> tuple[bool, str]:
    """(retryable, reason) for a failure a delivery receipt reports: the reason without the send
    path's promise of a retry, since whether one follows is decided when the receipt is applied."""
    return kind is FailureKind.TRANSIENT, without_retry_promise(reason).split("; it can be sent again")[0]


@dataclass(frozen=True)
class OutboundText:
    message_id: str  # also the idempotency key, for carriers that take one
    from_number: str
    to_number: str
    body: str
    status_callback_url: str | None = None
    media_urls: tuple[str, ...] = ()
    # Attempts made before a person's latest resend (0: never resent). A resend is a new text, so a
    # carrier's idempotency key must change with this, and only with this: a retry keeps the key.
    attempts_before_resend: int = 0


@dataclass(frozen=True)
class SendAccepted:
    carrier_message_id: str
    carrier_status: str
    segments: int | None = None
    # Carriers that give each part of a long text its own id (Vonage's SMS API), in part order;
    # receipts for any of them then count as that part of this message.
    part_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class SendFailed:
    kind: FailureKind
    reason: str  # plain words for a person
    error_code: str | None = None  # the carrier's own code, shown beside the reason
    http_status: int | None = None
    opted_out: bool = False  # the carrier refused because the recipient opted out
    # Seconds the carrier asked us to wait (its Retry-After, at most 900): the next try waits at
    # least this long, however short the backoff would be.
    retry_after: float | None = None


SendOutcome = SendAccepted | SendFailed


class Carrier(Protocol):
    """A carrier plugin. Implementations hold their own credentials and HTTP session."""

    name: str

    def verify(self, request: WebhookRequest) -> None:
        """Raise SignatureError unless the request carries the carrier's valid signature."""
        ...

    def parse(self, kind: WebhookKind, request: WebhookRequest) -> list[ParsedEvent]:
        """Turn a verified webhook into canonical events; raise PayloadError if it isn't one.

        An empty list is a valid answer for a webhook that carries nothing for us (a carrier's
        test ping, an event type we don't use): it is acknowledged and nothing is stored.
        """
        ...

    def ack(self, kind: WebhookKind) -> WebhookAck:
        """The response that tells the carrier we have it."""
        ...

    def send(self, text: OutboundText) -> SendOutcome:
        """Hand one text to the carrier; never raises for carrier or network failures."""
        ...

    def classify(self, error_code: str | None, http_status: int | None) -> tuple[FailureKind, str]:
        """Class and plain reason for a carrier error code (from a send response or a receipt)."""
        ...


@dataclass(frozen=True)
class FetchedMedia:
    """One MMS attachment as downloaded from the carrier."""

    content: bytes
    content_type: str | None = None  # as the carrier's server labelled it, parameters dropped


class MediaRejected(ValueError):
    """This attachment can't be fetched, and trying again won't change that.

    The URL is not on one of the carrier's hosts (or not https), the file is larger than we take,
    or the carrier says it is gone (404/410) or refuses it. The processor records the reason on the
    media item and keeps the message. Any other exception from `fetch_media` is transient (a
    timeout, a refused connection, a 5xx): the inbound event is retried, and only the missing
    attachments are fetched again.
    """


@runtime_checkable
class MediaSource(Protocol):
    """Optional: download an inbound MMS attachment from the carrier that sent it.

    Credentials (where the carrier needs them) are sent only to the carrier's own hosts, never to a
    CDN it redirects to, and never to a URL on any other host: that is refused with MediaRejected.
    """

    def fetch_media(self, url: str) -> FetchedMedia: ...


class LookupUnavailable(RuntimeError):
    """The carrier offers no way to find a message it may have accepted: absence can't be proved."""


@runtime_checkable
class SentLookup(Protocol):
    """Optional: find a text the carrier may have accepted before an ambiguous failure.

    Carriers without an idempotency key need this, so a retry never texts a customer twice.
    Raises LookupUnavailable when the carrier can't be searched at all, and any other exception
    when this lookup failed (it is tried again later): absence must never be guessed.
    `skip` holds carrier ids of earlier attempts set aside after they failed: never this attempt,
    so never returned, and never allowed to hide a later match.
    """

    def find_sent(
        self, text: OutboundText, since: datetime, skip: Collection[str] = ()
    ) -> SendAccepted | None: ...


@runtime_checkable
class ReceivedLookup(Protocol):
    """Optional: the texts the carrier received for one of our numbers since a moment.

    Twilio does not retry an inbound webhook that failed, so while our endpoint is down (or answers
    5xx) its texts would never reach us. A sweep lists what the carrier received and stores what we
    lack, through the same idempotent path as a webhook. Raises on failure: absence is never guessed.
    """

    def list_received(self, our_number: str, since: datetime) -> list[ParsedInbound]: ...
