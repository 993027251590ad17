"""A Telnyx Messaging API v2 look-alike for local runs and tests, with injectable faults.

Why: the send, retry and webhook paths must be exercised end to end without a Telnyx account, and
our plugin (or the official `telnyx` SDK) must work against it unchanged, so it speaks the real wire
format: JSON requests with ``Authorization: Bearer <API key>``, ``{"data": ...}`` resources and
``{"errors": [...]}`` errors, an honoured ``Idempotency-Key``, and webhooks signed with Ed25519 over
``"{telnyx-timestamp}|{raw body}"`` exactly as Telnyx signs them.

Mounted as a WSGI app (e.g. at ``/_sim/telnyx``); paths below are relative to the mount point.

Telnyx API (``Authorization: Bearer <api_key>``):
    POST /v2/messages        send: 200 ``{"data": message}`` or a Telnyx error; same Idempotency-Key
                             and same body within 24 h of its first success → that answer again, no
                             second text; same key with another body → 422; only a success is
                             replayed, so a key whose attempt was refused sends afresh
    GET  /v2/messages/{id}   the message as it is now, or 404 code 10005
Control plane (no auth; JSON):
    POST /_faults   {"kind", "count", "to", "error_code", "hold_seconds"} → 201 with the fault
    GET  /_faults   active faults;  DELETE /_faults clears them (and releases held responses)
    POST /_inbound  {"from", "to", "body", "media_urls", "media", "repeat"} → a phone texting us
                    ("media": true attaches this simulator's /_media/parley.png)
    GET  /_media/<name>  the picture a phone attached (local.sim_media), no auth
    GET  /_messages every accepted outbound message with its callbacks; DELETE resets everything

Local defaults (set the plugin's env to match): ``api_key`` is ``DEFAULT_API_KEY``
(PARLEY_TELNYX_API_KEY) and webhooks are signed with the key from ``DEFAULT_SIGNING_SEED``, whose
public half is ``DEFAULT_PUBLIC_KEY`` (PARLEY_TELNYX_PUBLIC_KEY); pass ``signing_seed=None`` for a
fresh random key and read ``public_key`` from the instance. PARLEY_TELNYX_API_BASE is the mount URL.

Order of checks on send: authentication, JSON, an idempotent replay, validation and magic numbers
(a 4xx never consumes a fault), then faults (the first matching the recipient takes one count), then
acceptance. Fault kinds: "500" and "429" answer with that error and create nothing; "timeout"
accepts the message and then holds the response ``hold_seconds`` (the case an idempotency key is
for: a retry with the same key gets the same message); "undelivered" accepts it and finalizes it as
``delivery_failed`` with ``error_code`` (default 40006). Magic recipients: +15005550001 invalid
(40310), +15005550004 opted out (40300), +15005550009 a landline (accepted, then 40001).

Webhooks (``message.sent`` then ``message.finalized``, each after ``callback_delay`` seconds) go to
the send's ``webhook_url``, else to ``{webhook_base_url}/webhooks/telnyx/events`` (the messaging
profile's URL, where inbound texts go too); each is tried up to 3 times while our server answers
non-2xx or can't be reached, then the ``webhook_failover_url`` if one was given. An inbound STOP
(Telnyx's default keywords) blocks that number until START/UNSTOP, as Telnyx's profile-level
opt-out does: sends to it fail with 40300, and the inbound webhook carries ``autoresponse_type``.
"""

from __future__ import annotations

import base64
import functools
import hmac
import json
import logging
import mimetypes
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from local.sim_common import FaultBook, Simulator, check_repeat, json_response
from parley.domain.encoding import analyze

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_PUBLIC_KEY",
    "DEFAULT_SIGNING_SEED",
    "FAULT_KINDS",
    "SimulatedTelnyx",
    "TelnyxApiError",
    "telnyx_signature",
]

logger = logging.getLogger(__name__)

DEFAULT_API_KEY = "KEYparleyLocalTelnyxSimulator_0001"
DEFAULT_SIGNING_SEED = b"parley-local-telnyx-simulator-01"  # 32 bytes: an Ed25519 private key
DEFAULT_PUBLIC_KEY = "AK5Wl7dAeQvmXdHw4akEhz1qltWoYdgHWHXpil3T0OM="  # its public half, base64
DEFAULT_MESSAGING_PROFILE_ID = "4001767e-ce0f-4cae-9d5f-0d5e636e7809"
ORGANIZATION_ID = "f6a1c1a2-1b7e-4c55-9a53-2b1f1c0f8e11"
EVENTS_PATH = "/webhooks/telnyx/events"
SIGNATURE_HEADER = "telnyx-signature-ed25519"
TIMESTAMP_HEADER = "telnyx-timestamp"
FAULT_KINDS = ("500", "429", "timeout", "undelivered")
CALLBACK_ATTEMPTS = 3  # per URL, as Telnyx documents
MAX_MEDIA = 10
MAX_INBOUND_REPEAT = 20
PRICE_PER_PART = 0.004
REPLAY_SECONDS = 24 * 3600  # Telnyx replays a key's successful answer for 24 hours

_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_:-]{1,255}")
_E164 = re.compile(r"\+[1-9]\d{7,14}")
_SHORT_CODE = re.compile(r"\d{5,6}")
_ALPHA_SENDER = re.compile(r"[A-Za-z0-9 ]{1,11}")
_STOP_WORDS = frozenset({"stop", "stopall", "stop all", "unsubscribe", "cancel", "end", "quit"})
_START_WORDS = frozenset({"start", "unstop"})
_HELP_WORDS = frozenset({"help", "info"})

MAGIC_TO: dict[str, tuple[int, str, str, str]] = {
    "+15005550001": (
        400,
        "40310",
        "Invalid 'to' address",
        "'to' must be one valid +E.164 number or short code.",
    ),
    "+15005550004": (400, "40300", "Blocked due to STOP message", "The recipient replied STOP."),
}
MAGIC_UNDELIVERABLE: dict[str, str] = {"+15005550009": "40001"}
DELIVERY_ERRORS = {
    "40001": "Not routable",
    "40002": "Blocked as spam - temporary",
    "40003": "Blocked as spam - permanent",
    "40004": "Rejected by destination",
    "40005": "Message expired during transmission",
    "40006": "Recipient server unavailable",
    "40008": "Undeliverable",
    "40300": "Blocked due to STOP message",
}

_URLS = Map(
    [
        Rule("/v2/messages", endpoint="messages", methods=["POST"]),
        Rule("/v2/messages/<message_id>", endpoint="message", methods=["GET"]),
        Rule("/_faults", endpoint="faults", methods=["GET", "POST", "DELETE"]),
        Rule("/_inbound", endpoint="inbound", methods=["POST"]),
        Rule("/_media/<name>", endpoint="media", methods=["GET"]),
        Rule("/_messages", endpoint="sim_messages", methods=["GET", "DELETE"]),
    ]
)


def telnyx_signature(private_key: Ed25519PrivateKey, timestamp: str, body: bytes) -> str:
    """Telnyx's webhook signature: base64(Ed25519(timestamp + "|" + raw body))."""
    return base64.b64encode(private_key.sign(timestamp.encode("ascii") + b"|" + body)).decode("ascii")


def _iso(moment: datetime) -> str:
    """Telnyx's timestamp style: milliseconds and an explicit +00:00."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _private_key(seed: bytes | str | None) -> Ed25519PrivateKey:
    if seed is None:
        return Ed25519PrivateKey.generate()
    raw = bytes.fromhex(seed) if isinstance(seed, str) else seed
    if len(raw) != 32:
        raise ValueError("signing_seed must be 32 bytes (or 64 hex digits)")
    return Ed25519PrivateKey.from_private_bytes(raw)


class TelnyxApiError(Exception):
    """An error the API answers with, in Telnyx's ``{"errors": [...]}`` shape."""

    def __init__(
        self, status: int, code: str, title: str, detail: str = "", pointer: str | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {title}")
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail or title
        self.pointer = pointer

    def to_dict(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "title": self.title, "detail": self.detail}
        if self.pointer:
            error["source"] = {"pointer": self.pointer}
        error["meta"] = {"url": f"https://developers.telnyx.com/docs/overview/errors/{self.code}"}
        return {"errors": [error]}


@dataclass
class _Stored:
    resource: dict[str, Any]
    idempotency_key: str | None
    callbacks: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(json.dumps(self.resource))
        data["idempotency_key"] = self.idempotency_key
        data["callbacks"] = json.loads(json.dumps(self.callbacks))
        return data


@dataclass(frozen=True)
class _Accepted:
    """A validated send request."""

    to: str
    from_: str
    text: str
    media_urls: list[str]
    webhook_url: str | None
    failover_url: str | None
    profile: str | None


@dataclass(frozen=True)
class _Replay:
    body: bytes
    response: dict[str, Any]
    at: float  # when the key's first answer was given (the simulator's clock)


def _encoding_and_parts(text: str) -> tuple[str, int]:
    if not text:
        return "GSM-7", 1
    info = analyze(text)
    return str(info.encoding), max(1, info.segments)


def _keyword(body: str) -> str | None:
    """The autoresponse_type Telnyx reports for a text that is exactly one of its default keywords."""
    word = " ".join(body.split()).lower()
    if word in _STOP_WORDS:
        return "STOP"
    if word in _START_WORDS:
        return "START"
    if word in _HELP_WORDS:
        return "HELP"
    return None


class SimulatedTelnyx(Simulator[TelnyxApiError]):
    """The simulator. All state lives on the instance behind locks; the server may be threaded."""

    urls = _URLS
    api_errors = (TelnyxApiError,)

    def __init__(
        self,
        webhook_base_url: str,
        *,
        api_key: str = DEFAULT_API_KEY,
        signing_seed: bytes | str | None = DEFAULT_SIGNING_SEED,
        messaging_profile_id: str = DEFAULT_MESSAGING_PROFILE_ID,
        callback_delay: float = 0.0,
        callback_retry_delay: float = 0.05,
        http_timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`http_timeout`: how long a webhook may take. Telnyx gives up after 2 s; the default is
        kinder because a local cold start is slow. Pass 2.0 to hold the stack to Telnyx's deadline.
        `clock`: seconds since the epoch, for how long an Idempotency-Key is replayed."""
        faults = FaultBook(
            FAULT_KINDS, default_error_code="40006", new_id=lambda: f"fault_{uuid.uuid4().hex}"
        )
        super().__init__(faults, callback_delay, callback_retry_delay, http_timeout)
        self.webhook_base_url = webhook_base_url.rstrip("/")
        self._api_key = api_key
        self._signing_key = _private_key(signing_seed)
        self.messaging_profile_id = messaging_profile_id
        self._create_lock = threading.Lock()
        self._messages: dict[str, _Stored] = {}
        self._replays: dict[str, _Replay] = {}
        self._clock = clock
        self._blocked: set[str] = set()

    @property
    def public_key(self) -> str:
        """The base64 Ed25519 public key webhooks verify against (PARLEY_TELNYX_PUBLIC_KEY)."""
        raw = self._signing_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return base64.b64encode(raw).decode("ascii")

    @property
    def events_url(self) -> str:
        """The messaging profile's webhook URL: inbound texts, and receipts of sends without one."""
        return self.webhook_base_url + EVENTS_PATH

    @property
    def held_requests(self) -> int:
        """How many HTTP responses a timeout fault is holding right now."""
        return self._faults.held

    # --- Python API: outbound messages ------------------------------------------------------------

    def messages(self, to: str | None = None) -> list[dict[str, Any]]:
        """Accepted outbound messages, oldest first, each with `idempotency_key` and `callbacks`."""
        with self._lock:
            return [
                s.to_dict()
                for s in self._messages.values()
                if to is None or s.resource["to"][0]["phone_number"] == to
            ]

    def message(self, message_id: str) -> dict[str, Any] | None:
        with self._lock:
            stored = self._messages.get(message_id)
            return None if stored is None else stored.to_dict()

    def blocked(self) -> list[str]:
        """Numbers that texted STOP and haven't texted START since (sends to them fail with 40300)."""
        with self._lock:
            return sorted(self._blocked)

    def create_message(
        self, request_body: Mapping[str, Any], *, idempotency_key: str | None = None, raw: bytes = b""
    ) -> dict[str, Any]:
        """What POST /v2/messages does after authentication: the response body, or TelnyxApiError.

        `raw` is the request's exact bytes: an idempotent replay must match them byte for byte.
        Blocks while a timeout fault holds the response.
        """
        if idempotency_key is not None and not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
            raise TelnyxApiError(
                400, "10015", "Bad Request", "Idempotency-Key must be 1-255 letters, digits, '_', '-' or ':'."
            )
        with self._create_lock:  # one keyed request at a time, so two retries can't both send
            if idempotency_key is not None:
                with self._lock:
                    replay = self._replays.get(idempotency_key)
                    if replay is not None and self._clock() - replay.at >= REPLAY_SECONDS:
                        del self._replays[idempotency_key]  # expired: the key sends afresh
                        replay = None
                if replay is not None:
                    if replay.body != raw:
                        raise TelnyxApiError(
                            422, "10015", "Bad Request", "Idempotency-Key was already used with another body."
                        )
                    logger.info(
                        "sim telnyx: replayed %s for key %s", replay.response["data"]["id"], idempotency_key
                    )
                    return dict(json.loads(json.dumps(replay.response)))
            accepted = self._validate(request_body)
            to = accepted.to
            fault = self._faults.take(to)
            kind = fault.kind if fault else None
            if fault is not None and kind == "500":
                raise TelnyxApiError(500, "10007", "Unexpected error", "Internal error (simulated).")
            if fault is not None and kind == "429":
                raise TelnyxApiError(429, "10011", "Too many requests", "Rate limit exceeded (simulated).")
            final: tuple[str, str | None] = ("delivered", None)
            if to in MAGIC_UNDELIVERABLE:
                final = ("delivery_failed", MAGIC_UNDELIVERABLE[to])
            if fault is not None and kind == "undelivered":
                final = ("delivery_failed", fault.error_code)
            response = self._accept(accepted, request_body, idempotency_key, raw, final)
        if fault is not None and kind == "timeout":
            self._faults.hold(fault.hold_seconds)
        return response

    def reset(self) -> None:
        """Forget messages, idempotency keys, faults and opt-outs; pending callbacks stop."""
        with self._lock:
            self._messages.clear()
            self._replays.clear()
            self._blocked.clear()
        self._faults.clear()

    # --- Python API: a phone texting us -------------------------------------------------------

    def send_inbound(
        self,
        from_: str,
        to: str,
        body: str = "",
        *,
        media_urls: Sequence[str] = (),
        repeat: int = 1,
    ) -> dict[str, Any]:
        """Post a signed message.received `repeat` times (one event and message id: Telnyx retrying)."""
        if not from_ or not to:
            raise ValueError("'from' and 'to' are required")
        check_repeat(repeat, MAX_INBOUND_REPEAT)
        if len(media_urls) > MAX_MEDIA:
            raise ValueError(f"at most {MAX_MEDIA} media URLs")
        keyword = _keyword(body)
        with self._lock:
            if keyword == "STOP":
                self._blocked.add(from_)
            elif keyword == "START":
                self._blocked.discard(from_)
        event = self._inbound_event(from_, to, body, media_urls, keyword)
        url = self.events_url
        responses: list[int | None] = []
        for attempt in range(1, repeat + 1):
            code, error = self._post_event(url, event, attempt)
            responses.append(code)
            if error:
                logger.warning("sim telnyx: inbound to %s failed: %s", url, error)
        message_id = event["data"]["payload"]["id"]
        logger.info("sim telnyx: inbound %s %s -> %s answered %s", message_id, from_, to, responses)
        return {"message_id": message_id, "event_id": event["data"]["id"], "responses": responses}

    def _inbound_event(
        self, from_: str, to: str, body: str, media_urls: Sequence[str], keyword: str | None
    ) -> dict[str, Any]:
        now = datetime.now(UTC)
        encoding, parts = _encoding_and_parts(body)
        payload = {
            "autoresponse_type": keyword,
            "cc": [],
            "completed_at": None,
            "cost": {"amount": f"{PRICE_PER_PART * parts:.4f}", "currency": "USD"},
            "direction": "inbound",
            "encoding": encoding,
            "errors": [],
            "from": {"carrier": "T-Mobile USA", "line_type": "Wireless", "phone_number": from_},
            "id": str(uuid.uuid4()),
            "media": [
                {
                    "content_type": mimetypes.guess_type(u)[0] or "image/jpeg",
                    "hash_sha256": None,
                    "size": None,
                    "url": u,
                }
                for u in media_urls
            ],
            "messaging_profile_id": self.messaging_profile_id,
            "organization_id": ORGANIZATION_ID,
            "parts": parts,
            "received_at": _iso(now),
            "record_type": "message",
            "sent_at": None,
            "subject": "",
            "tags": [],
            "text": body,
            "to": [
                {
                    "carrier": "Telnyx",
                    "line_type": "Wireless",
                    "phone_number": to,
                    "status": "webhook_delivered",
                }
            ],
            "type": "MMS" if media_urls else "SMS",
            "valid_until": None,
            "webhook_failover_url": None,
            "webhook_url": self.events_url,
        }
        return self._event("message.received", payload, now)

    # --- internals ------------------------------------------------------------------------------

    def _validate(self, body: Mapping[str, Any]) -> _Accepted:
        to, from_, text = body.get("to"), body.get("from"), body.get("text")
        media_urls = body.get("media_urls") or []
        profile = body.get("messaging_profile_id")
        if isinstance(to, list) and len(to) == 1:
            to = to[0]  # v2 accepts a one-element array
        if not isinstance(to, str) or not to:
            raise TelnyxApiError(400, "10004", "Missing required parameter", "'to' is required.", "/to")
        if not (_E164.fullmatch(to) or _SHORT_CODE.fullmatch(to)):
            raise TelnyxApiError(400, "40310", "Invalid 'to' address", MAGIC_TO["+15005550001"][3], "/to")
        if profile is not None and not isinstance(profile, str):
            raise TelnyxApiError(400, "10015", "Bad Request", "'messaging_profile_id' must be a string.")
        if from_ is None and not profile:
            raise TelnyxApiError(400, "10004", "Missing required parameter", "'from' is required.", "/from")
        if from_ is not None and (
            not isinstance(from_, str)
            or not (_E164.fullmatch(from_) or _SHORT_CODE.fullmatch(from_) or _ALPHA_SENDER.fullmatch(from_))
        ):
            raise TelnyxApiError(
                400, "40305", "Invalid 'from' address", "'from' is not one of our numbers.", "/from"
            )
        if text is not None and not isinstance(text, str):
            raise TelnyxApiError(400, "10015", "Bad Request", "'text' must be a string.", "/text")
        if not isinstance(media_urls, list) or not all(isinstance(u, str) and u for u in media_urls):
            raise TelnyxApiError(
                400, "10015", "Bad Request", "'media_urls' must be a list of URLs.", "/media_urls"
            )
        if len(media_urls) > MAX_MEDIA:
            raise TelnyxApiError(400, "40317", "Invalid MMS content", f"At most {MAX_MEDIA} media URLs.")
        if not text and not media_urls:
            raise TelnyxApiError(
                400, "40316", "No content provided for message", "'text' or 'media_urls' is required."
            )
        webhook_url, failover_url = body.get("webhook_url"), body.get("webhook_failover_url")
        for name, url in (("webhook_url", webhook_url), ("webhook_failover_url", failover_url)):
            if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
                raise TelnyxApiError(400, "10003", "Invalid URL", f"'{name}' is not a URL.", f"/{name}")
        if to in MAGIC_TO:
            status, code, title, detail = MAGIC_TO[to]
            raise TelnyxApiError(status, code, title, detail, "/to")
        with self._lock:
            blocked = to in self._blocked
        if blocked:
            raise TelnyxApiError(
                400, "40300", "Blocked due to STOP message", "The recipient replied STOP.", "/to"
            )
        sender = from_ if isinstance(from_, str) else ""
        return _Accepted(to, sender, text or "", list(media_urls), webhook_url, failover_url, profile)

    def _accept(
        self,
        accepted: _Accepted,
        request_body: Mapping[str, Any],
        idempotency_key: str | None,
        raw: bytes,
        final: tuple[str, str | None],
    ) -> dict[str, Any]:
        to, from_, text, media_urls = accepted.to, accepted.from_, accepted.text, accepted.media_urls
        profile = accepted.profile
        now = datetime.now(UTC)
        encoding, parts = _encoding_and_parts(text)
        message_id = str(uuid.uuid4())
        resource: dict[str, Any] = {
            "cc": [],
            "completed_at": None,
            "cost": {"amount": f"{PRICE_PER_PART * parts:.4f}", "currency": "USD"},
            "direction": "outbound",
            "encoding": encoding,
            "errors": [],
            "from": {"carrier": "Telnyx", "line_type": "Wireless", "phone_number": from_},
            "id": message_id,
            "media": [
                {"content_type": mimetypes.guess_type(u)[0], "sha256": None, "size": None, "url": u}
                for u in media_urls
            ],
            "messaging_profile_id": profile or self.messaging_profile_id,
            "organization_id": ORGANIZATION_ID,
            "parts": parts,
            "received_at": _iso(now),
            "record_type": "message",
            "sent_at": None,
            "subject": request_body.get("subject") if isinstance(request_body.get("subject"), str) else None,
            "tags": [],
            "text": text,
            "to": [
                {
                    "carrier": "T-MOBILE USA, INC.",
                    "line_type": "Wireless",
                    "phone_number": to,
                    "status": "queued",
                }
            ],
            "type": "MMS" if media_urls else "SMS",
            "valid_until": _iso(now + timedelta(hours=4)),
            "webhook_failover_url": accepted.failover_url,
            "webhook_url": accepted.webhook_url,
        }
        response = {"data": json.loads(json.dumps(resource))}
        with self._lock:
            self._messages[message_id] = _Stored(resource=resource, idempotency_key=idempotency_key)
            if idempotency_key is not None:
                self._replays[idempotency_key] = _Replay(body=raw, response=response, at=self._clock())
        logger.info("sim telnyx: accepted %s %s -> %s", message_id, from_ or profile, to)
        steps = [("message.sent", "sent", None), ("message.finalized", *final)]
        self._callbacks.start(
            f"sim-telnyx-{message_id[:8]}", steps, functools.partial(self._webhook, message_id)
        )
        return dict(json.loads(json.dumps(response)))

    def _webhook(self, message_id: str, step: tuple[str, str, str | None]) -> bool:
        """Move the message on and deliver its webhook; False once the message is forgotten."""
        prepared = self._advance(message_id, *step)
        if prepared is None:
            return False  # reset meanwhile
        record = self._deliver(*prepared)
        with self._lock:
            stored = self._messages.get(message_id)
            if stored is not None:
                stored.callbacks.append(record)
            return stored is not None

    def _advance(
        self, message_id: str, event_type: str, status: str, error_code: str | None
    ) -> tuple[list[str], dict[str, Any]] | None:
        """Move the stored message to `status` and build its webhook event (Telnyx's envelope)."""
        now = datetime.now(UTC)
        with self._lock:
            stored = self._messages.get(message_id)
            if stored is None:
                return None
            resource = stored.resource
            resource["to"][0]["status"] = status
            if status == "sent":
                resource["sent_at"] = _iso(now)
            if event_type == "message.finalized":
                resource["completed_at"] = _iso(now)
                resource["valid_until"] = None
            if error_code is not None:
                title = DELIVERY_ERRORS.get(error_code, "Undeliverable")
                resource["errors"] = [{"code": error_code, "title": title, "detail": f"{title} (simulated)."}]
            urls = [
                u for u in (resource["webhook_url"] or self.events_url, resource["webhook_failover_url"]) if u
            ]
            return urls, self._event(event_type, json.loads(json.dumps(resource)), now)

    def _event(self, event_type: str, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
        return {
            "data": {
                "event_type": event_type,
                "id": str(uuid.uuid4()),
                "occurred_at": _iso(now),
                "payload": payload,
                "record_type": "event",
            },
            "meta": {"attempt": 1, "delivered_to": ""},
        }

    def _deliver(self, urls: list[str], event: dict[str, Any]) -> dict[str, Any]:
        """Up to CALLBACK_ATTEMPTS per URL, the webhook URL then the failover, until one answers 2xx."""
        record: dict[str, Any] = {
            "event_type": event["data"]["event_type"],
            "status": event["data"]["payload"]["to"][0]["status"],
            "url": None,
            "response_code": None,
            "attempts": 0,
            "error": None,
        }
        for url in urls:
            for attempt in range(1, CALLBACK_ATTEMPTS + 1):
                if record["attempts"] and self._callbacks.pause(self.callback_retry_delay * attempt):
                    return record
                record["attempts"] += 1
                record["url"] = url
                code, error = self._post_event(url, event, attempt)
                record["response_code"], record["error"] = code, error
                if code is not None and 200 <= code < 300:
                    return record
                logger.info("sim telnyx: %s to %s: %s", record["event_type"], url, error or code)
        return record

    def _post_event(self, url: str, event: dict[str, Any], attempt: int) -> tuple[int | None, str | None]:
        """Sign and POST one delivery attempt (meta changes per attempt, so each is signed anew)."""
        event = {**event, "meta": {"attempt": attempt, "delivered_to": url}}
        body = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "telnyx-webhooks (simulated)",
            SIGNATURE_HEADER: telnyx_signature(self._signing_key, timestamp, body),
            TIMESTAMP_HEADER: timestamp,
        }
        try:
            answer = requests.post(url, data=body, headers=headers, timeout=self.http_timeout)
        except requests.RequestException as exc:
            return None, f"{type(exc).__name__}: {exc}"
        return answer.status_code, None

    # --- WSGI ----------------------------------------------------------------------------------

    def _api_error_response(self, exc: TelnyxApiError) -> Response:
        return json_response(exc.to_dict(), exc.status)

    def _routing_error_response(self, request: Request, exc: HTTPException) -> Response:
        if isinstance(exc, MethodNotAllowed):
            return self._api_error_response(TelnyxApiError(405, "10015", "Method not allowed"))
        missing = f"{request.path} was not found."
        return self._api_error_response(
            TelnyxApiError(exc.code or 500, "10005", "Resource not found", missing)
        )

    def _dispatch(self, request: Request, endpoint: str, args: Mapping[str, Any]) -> Response:
        self._authenticate(request)
        if endpoint == "messages":
            return self._post_message(request)
        found = self.message(str(args["message_id"]))
        if found is None:
            raise TelnyxApiError(404, "10005", "Resource not found", "No message with that id.")
        return json_response({"data": _public(found)})

    def _authenticate(self, request: Request) -> None:
        scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
        ok = scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), self._api_key.encode()
        )
        if not ok:
            raise TelnyxApiError(
                401,
                "10009",
                "Authentication failed",
                "The required authentication headers were missing or invalid.",
            )

    def _post_message(self, request: Request) -> Response:
        raw = request.get_data(cache=False)
        try:
            body = json.loads(raw or b"null")
        except ValueError as exc:
            raise TelnyxApiError(400, "10015", "Bad Request", "The request body is not valid JSON.") from exc
        if not isinstance(body, dict):
            raise TelnyxApiError(400, "10015", "Bad Request", "The request body must be a JSON object.")
        key = request.headers.get("Idempotency-Key")
        return json_response(self.create_message(body, idempotency_key=key, raw=raw))


def _public(message: Mapping[str, Any]) -> dict[str, Any]:
    """The resource as Telnyx's API shows it (without the simulator's bookkeeping)."""
    return {k: v for k, v in message.items() if k not in ("idempotency_key", "callbacks")}
