"""Telnyx Messaging API v2: Ed25519 webhook check, event parser, send call and error classes.

Telnyx posts every event (inbound texts and delivery receipts) as JSON to one URL, signed with
Ed25519 over ``"{telnyx-timestamp}|{raw body}"``; the URL is not signed, the timestamp is, so stale
requests are refused. It answers sends with an id and honours an ``Idempotency-Key``: a retry with
the same key and the byte-identical body never texts the customer twice, which makes every outcome
that isn't a definite rejection safe to retry. A person's resend of a text takes a new key, or
Telnyx would replay the first answer and send nothing.

Only the standard library is imported at module level: the webhook must answer within Telnyx's
2-second deadline from a cold start. ``cryptography`` is imported on the first verify and
``requests`` on the first send.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal

from parley.carriers.base import (
    FailureKind,
    FetchedMedia,
    OutboundText,
    ParsedEvent,
    ParsedInbound,
    ParsedMedia,
    ParsedStatus,
    PayloadError,
    SendAccepted,
    SendFailed,
    SendOutcome,
    SignatureError,
    WebhookAck,
    WebhookKind,
    WebhookRequest,
    receipt_failure,
    utc_now,
)
from parley.carriers.config import CarrierConfig
from parley.domain.retry import parse_retry_after
from parley.domain.vocabulary import MessageStatus
from parley.redact import mask

if TYPE_CHECKING:
    import requests
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

logger = logging.getLogger(__name__)

SIGNATURE_HEADER: Final = "telnyx-signature-ed25519"
TIMESTAMP_HEADER: Final = "telnyx-timestamp"
FRESHNESS_SECONDS: Final = 300  # Telnyx's SDKs accept timestamps up to 5 minutes off, either way
DEFAULT_API_BASE: Final = "https://api.telnyx.com"
_PUBLIC_KEY_BYTES: Final = 32
_SIGNATURE_BYTES: Final = 64
_MAX_TIMESTAMP_DIGITS: Final = 12  # bounds int() on a forged header
_MAX_RECIPIENTS: Final = 50  # group MMS has a handful; bounds the events one forged body can make
_MAX_MEDIA: Final = 20  # Telnyx allows 10 per message
# Inbound media: any public https host ("*" is parley.carriers.http.ANY_HOST), never with the API
# key; see TelnyxCarrier.fetch_media.
MEDIA_HOSTS: Final = ("*",)
_IDEMPOTENCY_KEY: Final = re.compile(r"[A-Za-z0-9_:-]{1,255}")  # Telnyx's documented key format

EVENT_RECEIVED: Final = "message.received"
STATUS_EVENTS: Final = frozenset({"message.sent", "message.finalized"})
TEXT_TYPES: Final = frozenset({"SMS", "MMS"})  # WhatsApp and RCS reach the same URL; not ours

# Telnyx's per-recipient `to[].status` words (SDK OutboundMessagePayload.To.status).
STATUS_MAP: Final[dict[str, MessageStatus]] = {
    "queued": MessageStatus.ACCEPTED,  # Telnyx has it and will send it
    "sending": MessageStatus.SENDING,
    "sent": MessageStatus.SENT,
    "expired": MessageStatus.UNDELIVERED,  # its validity ran out before delivery
    "sending_failed": MessageStatus.FAILED,  # Telnyx could not hand it to a carrier
    "delivery_unconfirmed": MessageStatus.SENT,  # left Telnyx; the carrier never confirmed
    "delivered": MessageStatus.DELIVERED,
    "delivery_failed": MessageStatus.UNDELIVERED,
    "read": MessageStatus.READ,
}

# `autoresponse_type` on an inbound text: the keyword Telnyx itself acted on (it blocks or unblocks
# the sender at messaging-profile level, or answers HELP). Telnyx's documented examples are STOP,
# START and HELP; its default opt-out/opt-in keywords are mapped too in case it reports those.
_OPT_OUT_WORDS: Final[dict[str, Literal["STOP", "START", "HELP"]]] = {
    **dict.fromkeys(("STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"), "STOP"),
    **dict.fromkeys(("START", "UNSTOP"), "START"),
    **dict.fromkeys(("HELP", "INFO"), "HELP"),
}

_P, _T = FailureKind.PERMANENT, FailureKind.TRANSIENT
# Telnyx error code -> (class, words a salesperson understands). API codes (1xxxx, 2xxxx, 403xx)
# come back from the send call; delivery codes (400xx) come in message.finalized receipts.
ERROR_CODES: Final[dict[str, tuple[FailureKind, str]]] = {
    "10001": (_P, "the number is not in service"),
    "10002": (_P, "the number is not a valid phone number"),
    "10004": (_P, "the message is missing something the carrier needs (a number or the text)"),
    "10007": (_T, "the carrier had an unexpected error; it will be retried"),
    "10008": (_T, "the carrier timed out; it will be retried"),
    "10009": (_P, "the carrier rejected our credentials (check the Telnyx API key)"),
    "10010": (_P, "our Telnyx API key is not allowed to send this message"),
    "10011": (_T, "the carrier is rate limiting us; it will be retried"),
    "10015": (_P, "the carrier could not read our request"),
    "10016": (_P, "the number is not in international format"),
    "20012": (_P, "our Telnyx account is inactive (it may be out of funds)"),
    "20013": (_P, "our Telnyx account is blocked"),
    "20100": (_P, "our Telnyx account is out of funds"),
    "40001": (_P, "the number is a landline or can't receive texts"),
    "40002": (_T, "the recipient's carrier is temporarily blocking our texts as spam; it will be retried"),
    "40003": (_P, "the recipient's carrier blocked our sending number as spam"),
    "40004": (_T, "the recipient's carrier rejected the message; it will be retried"),
    "40005": (_T, "the message expired before it could be delivered; it will be retried"),
    "40006": (_T, "the recipient's carrier is unavailable; it will be retried"),
    "40008": (_P, "the recipient's carrier would not accept the message"),
    "40009": (_P, "the recipient's carrier rejected the message text"),
    "40010": (_P, "our sending number is not registered for business texting (10DLC)"),
    "40011": (_T, "the recipient's carrier is rate limiting us; it will be retried"),
    "40012": (_P, "the number is not a valid phone number"),
    "40013": (_P, "the carrier rejected our sending number"),
    "40014": (_T, "the message waited too long in the carrier's queue; it will be retried"),
    "40015": (_P, "the carrier's spam filter blocked the message"),
    "40016": (_T, "we reached T-Mobile's daily limit for this number; it will be retried"),
    "40017": (_P, "AT&T blocked the message as spam"),
    "40018": (_T, "we reached AT&T's sending limit for this number; it will be retried"),
    "40100": (_P, "our sending number is not enabled for texting"),
    "40300": (_P, "the recipient has opted out (replied STOP)"),
    "40301": (_P, "this kind of message can't be sent to that number"),
    "40302": (_P, "the message is too large"),
    "40305": (_P, "our sending number is not valid for this account"),
    "40306": (_P, "our sender name is not set up with the carrier"),
    "40308": (_P, "our sending number can't send picture messages"),
    "40309": (_P, "texting this country is not enabled on our account"),
    "40310": (_P, "the number is not a valid phone number"),
    "40312": (_P, "our Telnyx messaging profile is disabled"),
    "40314": (_P, "texting is disabled on our Telnyx account"),
    "40315": (_P, "the carrier is holding back our sending number for poor deliverability"),
    "40316": (_P, "the message is empty"),
    "40317": (_P, "the pictures are too many or too large"),
    "40318": (_T, "the carrier's queue is full; it will be retried"),
    "40319": (_P, "this kind of message can't be sent to that number"),
    "40320": (_T, "our sending number is not ready yet; it will be retried"),
    "40321": (_P, "our Telnyx messaging profile has no usable sending number"),
    "40322": (_P, "the carrier blocked the message because of its content"),
    "40328": (_P, "the message is too long"),
    "40329": (_P, "our toll-free number is not verified yet"),
}

# Codes meaning the recipient opted out: Parley records the opt-out too.
OPTED_OUT_CODES: Final = frozenset({"40300"})


def classify_error(code: str | None, http_status: int | None) -> tuple[FailureKind, str]:
    """Class and plain reason for a Telnyx error, from a send response or a receipt's errors[].

    Every send carries an Idempotency-Key, and Telnyx replays a successful response for the same
    key for 24 hours, so a 5xx is TRANSIENT, not AMBIGUOUS: resending cannot text anyone twice.
    """
    code = (code or "").strip() or None
    if http_status == 429:
        return ERROR_CODES["10011"]
    if http_status is not None and http_status >= 500:
        return _T, f"the carrier had a server error (HTTP {http_status}); it will be retried"
    if code is not None and code in ERROR_CODES:
        return ERROR_CODES[code]
    if http_status in (408, 425):
        return _T, f"the carrier timed out reading our request (HTTP {http_status}); it will be retried"
    if http_status == 409:
        # Not documented by Telnyx; a conflict on an idempotent request means "still in progress".
        return _T, "the carrier is still working on an earlier attempt; it will be retried"
    if http_status == 401:
        return ERROR_CODES["10009"]
    if http_status == 402:
        return ERROR_CODES["20100"]
    if http_status == 403:
        return ERROR_CODES["10010"]
    if http_status is not None:
        detail = f"error {code}" if code else f"HTTP {http_status}"
        return _P, f"the carrier rejected the message ({detail})"
    if code is not None:
        return _P, f"the carrier could not deliver the message (error {code})"
    return _P, "the carrier could not deliver the message"


class TelnyxCarrier:
    """The Telnyx plugin. Holds the account's public keys, the API key (read on first send) and one
    HTTP session (made on first send, so the webhook path never imports requests)."""

    name = "telnyx"

    def __init__(
        self,
        *,
        public_keys: tuple[str, ...] = (),
        api_key: str | Callable[[], str] = "",
        api_base: str = DEFAULT_API_BASE,
        messaging_profile_id: str | None = None,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        session: requests.Session | None = None,
        media_hosts: tuple[str, ...] = MEDIA_HOSTS,
        media_hosts_extra: tuple[str, ...] = (),
    ) -> None:
        """`public_keys`: base64 Ed25519 keys, the current one first, then any still being rotated out.
        `media_hosts`: where media is fetched (MEDIA_HOSTS: any public https host, no credentials).
        `media_hosts_extra`: hosts (or host:port) where media may also be fetched over plain http;
        for the local simulator only (PARLEY_TELNYX_MEDIA_HOSTS_EXTRA).

        Raises ValueError for a key that isn't 32 bytes of base64: a typo there must fail loudly at
        start-up, not as "signature does not match" on every webhook.
        """
        self._public_keys = tuple(_decode_public_key(k, i) for i, k in enumerate(public_keys) if k.strip())
        self._verifiers: list[Ed25519PublicKey] | None = None
        self._api_key_source = api_key
        self._api_key: str | None = api_key if isinstance(api_key, str) and api_key else None
        self.api_base = api_base.rstrip("/")
        self.messaging_profile_id = messaging_profile_id or None
        self.timeout = timeout
        self._clock = clock
        self._http = session
        self.media_hosts = tuple(media_hosts)
        self.media_hosts_extra = tuple(media_hosts_extra)

    def __repr__(self) -> str:  # never show the API key
        return (
            f"TelnyxCarrier(api_base={self.api_base!r}, public_keys={len(self._public_keys)}, "
            f"messaging_profile_id={self.messaging_profile_id!r})"
        )

    # -- webhooks -------------------------------------------------------------------------------

    def verify(self, request: WebhookRequest) -> None:
        """Raise SignatureError unless the body carries a fresh Ed25519 signature by one of our keys.

        The signed message is the timestamp header, a literal "|", then the raw body bytes; the URL
        is not part of it. A missing public key is reported here (not at build) so a send-only
        function can run without one.
        """
        signature_text = (request.header(SIGNATURE_HEADER) or "").strip()
        timestamp = request.header(TIMESTAMP_HEADER) or ""
        if not signature_text:
            raise SignatureError(f"missing {SIGNATURE_HEADER} header")
        if not timestamp:
            raise SignatureError(f"missing {TIMESTAMP_HEADER} header")
        if not self._public_keys:
            raise SignatureError("no Telnyx public key configured (PARLEY_TELNYX_PUBLIC_KEY)")
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= _MAX_TIMESTAMP_DIGITS):
            raise SignatureError(f"malformed {TIMESTAMP_HEADER} header")
        if abs(int(self._clock()) - int(timestamp)) > FRESHNESS_SECONDS:
            raise SignatureError(f"stale {TIMESTAMP_HEADER}: more than {FRESHNESS_SECONDS} s off")
        try:
            signature = base64.b64decode(signature_text, validate=True)
        except (binascii.Error, ValueError):
            raise SignatureError("malformed signature") from None
        if len(signature) != _SIGNATURE_BYTES:
            raise SignatureError("malformed signature")

        from cryptography.exceptions import InvalidSignature

        signed = timestamp.encode("ascii") + b"|" + request.body
        for key in self._verifier_keys():
            try:
                key.verify(signature, signed)
            except InvalidSignature:
                continue
            return
        raise SignatureError("signature does not match")

    def _verifier_keys(self) -> list[Ed25519PublicKey]:
        """Key objects, made once per process on the first verify."""
        if self._verifiers is None:
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

            verifiers: list[Ed25519PublicKey] = []
            for index, raw in enumerate(self._public_keys):
                try:
                    verifiers.append(Ed25519PublicKey.from_public_bytes(raw))
                except ValueError:
                    logger.error("telnyx public key #%d is not a valid Ed25519 key; ignored", index)
            self._verifiers = verifiers
        return self._verifiers

    def parse(self, kind: WebhookKind, request: WebhookRequest) -> list[ParsedEvent]:
        """Events from one Telnyx webhook: an inbound text, one receipt per recipient, or nothing.

        The event type decides, not `kind`: Telnyx posts everything to one URL (kind EVENTS).
        Event types we don't use (message.read, voice, number orders...) give [].
        """
        document = _load_object(request.body)
        data = document.get("data")
        if not isinstance(data, dict):
            raise PayloadError("no 'data' object")
        event_type = data.get("event_type")
        if not isinstance(event_type, str) or not event_type:
            raise PayloadError("data.event_type is missing")
        if event_type == EVENT_RECEIVED:
            return self._inbound(data, document)
        if event_type in STATUS_EVENTS:
            return list(self._statuses(data, document))
        logger.info("telnyx event %r is not one we use; ignored", event_type[:64])
        return []

    def ack(self, kind: WebhookKind) -> WebhookAck:
        """Any 2xx stops Telnyx retrying; it reads nothing from the body."""
        return WebhookAck(status_code=200, body="", content_type="text/plain")

    def _inbound(self, data: dict[str, Any], document: dict[str, Any]) -> list[ParsedEvent]:
        payload = _payload(data)
        message_id = _required_str(payload, "id", "data.payload.id")
        message_type = payload.get("type")
        if isinstance(message_type, str) and message_type.upper() not in TEXT_TYPES:
            logger.info("telnyx inbound %s is %r, not a text; ignored", message_id, message_type[:16])
            return []
        sender = payload.get("from")
        from_number = sender.get("phone_number") if isinstance(sender, dict) else sender
        if not isinstance(from_number, str) or not from_number.strip():
            raise PayloadError("data.payload.from.phone_number is missing")
        to_number = _first_recipient(payload.get("to"))
        text = payload.get("text")
        if text is not None and not isinstance(text, str):
            raise PayloadError("data.payload.text is not a string")
        event = ParsedInbound(
            carrier=self.name,
            carrier_message_id=message_id,
            from_number=from_number.strip(),
            to_number=to_number,
            body=text or "",
            media=_media(payload.get("media"), message_id),
            segments=_positive_int(payload.get("parts")),
            received_at=_timestamp(payload.get("received_at"))
            or _timestamp(data.get("occurred_at"))
            or utc_now(),
            opt_out=_opt_out(payload.get("autoresponse_type")),
            raw=document,
        )
        logger.debug(
            "telnyx inbound %s from %s to %s", message_id, mask(event.from_number), mask(event.to_number)
        )
        return [event]

    def _statuses(self, data: dict[str, Any], document: dict[str, Any]) -> list[ParsedStatus]:
        payload = _payload(data)
        message_id = _required_str(payload, "id", "data.payload.id")
        recipients = payload.get("to")
        if not isinstance(recipients, list) or not recipients:
            raise PayloadError("data.payload.to has no recipients")
        if len(recipients) > _MAX_RECIPIENTS:
            raise PayloadError(f"data.payload.to has more than {_MAX_RECIPIENTS} recipients")
        errors = _errors(payload.get("errors"))
        error_code, error_message = errors[0] if errors else (None, None)
        # Telnyx replays an accepted send for the same Idempotency-Key for 24 hours, so a text it
        # failed can't simply be sent again: no receipt failure is retried (see `idempotency_key`).
        if error_code is not None:
            error_message = error_message or receipt_failure(*classify_error(error_code, None))[1]
        opted_out = any(code in OPTED_OUT_CODES for code, _ in errors)
        occurred_at = (
            _timestamp(data.get("occurred_at"))
            or _timestamp(payload.get("completed_at"))
            or _timestamp(payload.get("sent_at"))
            or utc_now()
        )
        events: list[ParsedStatus] = []
        for recipient in recipients:
            word = recipient.get("status") if isinstance(recipient, dict) else None
            if not isinstance(word, str) or not word.strip():
                raise PayloadError("data.payload.to[].status is missing")
            word = word.strip().lower()
            status = STATUS_MAP.get(word)
            if status is None:
                raise PayloadError(f"unknown Telnyx message status {word[:40]!r}")
            events.append(
                ParsedStatus(
                    carrier=self.name,
                    carrier_message_id=message_id,
                    status=status,
                    carrier_status=word,
                    error_code=error_code,
                    error_message=error_message,
                    occurred_at=occurred_at,
                    opted_out=opted_out,
                    raw=document,
                )
            )
        logger.debug(
            "telnyx %s %s: %s", data.get("event_type"), message_id, [e.carrier_status for e in events]
        )
        return events

    # -- sending ----------------------------------------------------------------------------------

    def send(self, text: OutboundText) -> SendOutcome:
        """POST one message with our message id (and resend round) as the Idempotency-Key; never raises.

        Because Telnyx replays the successful response for a repeated key (24 h), a 5xx, a read
        timeout or a dropped connection is TRANSIENT: the retry resends the same key and the
        byte-identical body, and gets the first attempt's message back instead of a second text.
        """
        api_key, failure = self._resolved_api_key()
        if failure is not None:
            _log_outcome(text, failure)
            return failure
        import requests

        from parley.carriers.http import CONNECT_TIMEOUT_SECONDS

        headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Idempotency-Key": idempotency_key(text.message_id, text.attempts_before_resend),
        }
        try:
            response = self._session().post(
                f"{self.api_base}/v2/messages",
                data=self.request_body(text),
                headers=headers,
                timeout=(CONNECT_TIMEOUT_SECONDS, self.timeout),
                allow_redirects=False,  # a redirected POST would silently become a GET
            )
        except requests.RequestException as exc:
            outcome: SendOutcome = _network_failure(exc)
        else:
            outcome = _send_outcome(response)
        _log_outcome(text, outcome)
        return outcome

    def request_body(self, text: OutboundText) -> bytes:
        """The JSON we POST, the same bytes on every attempt (Telnyx answers 422 to a reused key
        whose body differs)."""
        body: dict[str, Any] = {"from": text.from_number, "to": text.to_number}
        if text.body or not text.media_urls:
            body["text"] = text.body
        if text.media_urls:
            body["media_urls"] = list(text.media_urls)
        if text.status_callback_url:
            body["webhook_url"] = text.status_callback_url
        if self.messaging_profile_id:
            body["messaging_profile_id"] = self.messaging_profile_id
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def classify(self, error_code: str | None, http_status: int | None) -> tuple[FailureKind, str]:
        return classify_error(error_code, http_status)

    def _resolved_api_key(self) -> tuple[str, SendFailed | None]:
        """The API key, read (from env or SSM) on the first send and kept: the webhook never needs it."""
        if self._api_key is None and callable(self._api_key_source):
            try:
                self._api_key = self._api_key_source() or None
            except Exception as exc:  # SSM unreachable, throttled...: nothing was sent, try later
                logger.warning("telnyx API key could not be read: %s", type(exc).__name__)
                return "", SendFailed(_T, "could not read the Telnyx API key; it will be retried")
        key = self._api_key or ""
        if not key:
            return "", SendFailed(_P, "the Telnyx API key is not configured (PARLEY_TELNYX_API_KEY)")
        if not key.isascii() or not key.isprintable() or key != key.strip():
            return "", SendFailed(_P, "the Telnyx API key is malformed (check PARLEY_TELNYX_API_KEY)")
        return key, None

    def _session(self) -> requests.Session:
        if self._http is None:
            from parley.carriers.http import new_session

            self._http = new_session()
        return self._http

    def fetch_media(self, url: str) -> FetchedMedia:
        """Download an inbound attachment (MediaSource), with no credentials at all.

        Telnyx's inbound `media[].url` values are short-lived signed URLs that need no API key, and
        carriers.md names no Telnyx media host, so any public https host is accepted and the API key
        is never sent: a URL can only reach us inside an Ed25519-verified webhook, and whatever host
        it names learns nothing secret. MediaRejected for http, IP-literal hosts, a gone (expired)
        or oversized file; other exceptions are transient.
        """
        from parley.carriers.http import download

        return download(
            url,
            allowed_hosts=(*self.media_hosts, *self.media_hosts_extra),
            auth=None,
            timeout=self.timeout,
            extra_hosts=self.media_hosts_extra,
        )


def build(config: CarrierConfig) -> TelnyxCarrier:
    """The plugin from settings: PARLEY_TELNYX_PUBLIC_KEY (a comma list while rotating: the new key
    first, then the old; a deployed stack sets it through the TelnyxPublicKey parameter) and
    PARLEY_TELNYX_PUBLIC_KEY_PREVIOUS (a comma list too),
    PARLEY_TELNYX_API_KEY (or _API_KEY_PARAM, an SSM name; read on the first send), optional
    PARLEY_TELNYX_API_BASE and PARLEY_TELNYX_MESSAGING_PROFILE_ID, PARLEY_CARRIER_TIMEOUT_SECONDS,
    PARLEY_TELNYX_MEDIA_HOSTS_EXTRA (local simulator only)."""
    public_keys = (
        *(v.strip() for v in config.get("telnyx_public_key").split(",")),
        *(v.strip() for v in config.get("telnyx_public_key_previous").split(",")),
    )
    return TelnyxCarrier(
        public_keys=tuple(k for k in public_keys if k.strip()),
        api_key=lambda: config.secret("telnyx_api_key"),
        api_base=config.get("telnyx_api_base") or DEFAULT_API_BASE,
        messaging_profile_id=config.get("telnyx_messaging_profile_id") or None,
        timeout=config.timeout,
        media_hosts=config.media_hosts(MEDIA_HOSTS),
        media_hosts_extra=config.get_list("telnyx_media_hosts_extra"),
    )


def idempotency_key(message_id: str, attempts_before_resend: int = 0) -> str:
    """The key for one round of attempts: our message id, and after a person's resend the id plus the
    attempts made before it; a stable digest of that when Telnyx would refuse it as a key.

    Every retry within a round keeps the key, so Telnyx answers a repeat of an attempt that may have
    gone through with that attempt's message instead of sending a second text. A resend starts a new
    round with a new key: with the old one Telnyx would replay the first answer (for 24 h) and send
    nothing. Telnyx replays only successful answers, so a retry after a refusal sends afresh.
    """
    key = f"{message_id}:resend-{attempts_before_resend}" if attempts_before_resend > 0 else message_id
    if _IDEMPOTENCY_KEY.fullmatch(key):
        return key
    return "parley:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


# -- webhook helpers --------------------------------------------------------------------------------


def _decode_public_key(value: str, index: int) -> bytes:
    name = "PARLEY_TELNYX_PUBLIC_KEY" if index == 0 else "PARLEY_TELNYX_PUBLIC_KEY_PREVIOUS"
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{name}: a Telnyx public key must be base64") from None
    if len(raw) != _PUBLIC_KEY_BYTES:
        raise ValueError(f"{name}: a Telnyx public key is 32 bytes, this one is {len(raw)}")
    return raw


def _load_object(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError included
        raise PayloadError("body is not JSON") from None
    if not isinstance(document, dict):
        raise PayloadError("body is not a JSON object")
    return document


def _payload(data: Mapping[str, Any]) -> dict[str, Any]:
    payload = data.get("payload")
    if not isinstance(payload, dict):
        raise PayloadError("no 'data.payload' object")
    return payload


def _required_str(container: Mapping[str, Any], name: str, label: str) -> str:
    value = container.get(name)
    if not isinstance(value, str) or not value.strip():
        raise PayloadError(f"{label} is missing")
    return value.strip()


def _first_recipient(value: object) -> str:
    """Our number: SMS/MMS list recipients as objects; WhatsApp gives one plain string."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, list):
        for item in value[:_MAX_RECIPIENTS]:
            number = item.get("phone_number") if isinstance(item, dict) else None
            if isinstance(number, str) and number.strip():
                return number.strip()
    raise PayloadError("data.payload.to has no phone number")


def _media(value: object, message_id: str) -> tuple[ParsedMedia, ...]:
    """MMS attachments; a malformed entry is skipped, never the customer's whole text."""
    if value is None:
        return ()
    if not isinstance(value, list):
        logger.warning("telnyx %s: media is not a list; ignored", message_id)
        return ()
    media: list[ParsedMedia] = []
    for item in value:
        url = item.get("url") if isinstance(item, dict) else None
        if not isinstance(url, str) or not url.strip():
            logger.warning("telnyx %s: a media entry has no url; skipped", message_id)
            continue
        content_type = item.get("content_type") if isinstance(item, dict) else None
        media.append(
            ParsedMedia(url.strip(), content_type if isinstance(content_type, str) and content_type else None)
        )
        if len(media) == _MAX_MEDIA:
            logger.warning("telnyx %s: more than %d media; the rest are ignored", message_id, _MAX_MEDIA)
            break
    return tuple(media)


def _errors(value: object) -> list[tuple[str | None, str | None]]:
    """(code, words) for each entry of errors[]; a code may arrive as a number or a string."""
    if not isinstance(value, list):
        return []
    found: list[tuple[str | None, str | None]] = []
    for item in value[:_MAX_RECIPIENTS]:
        if not isinstance(item, dict):
            continue
        raw_code = item.get("code")
        code = (
            str(raw_code).strip()
            if isinstance(raw_code, str | int) and not isinstance(raw_code, bool)
            else ""
        )
        words = next(
            (
                item[k].strip()
                for k in ("title", "detail")
                if isinstance(item.get(k), str) and item[k].strip()
            ),
            None,
        )
        if code or words:
            found.append((code[:32] or None, words))
    return found


def _opt_out(value: object) -> Literal["STOP", "START", "HELP"] | None:
    if not isinstance(value, str):
        return None
    return _OPT_OUT_WORDS.get(" ".join(value.split()).upper())


def _positive_int(value: object) -> int | None:
    """A count we only display: a malformed one must not cost us the customer's text."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    return number if 0 < number < 10_000 else None


def _timestamp(value: object) -> datetime | None:
    """Telnyx's ISO 8601 times ("2023-11-14T22:13:20.000+00:00"); None if absent or unreadable."""
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# -- send helpers -----------------------------------------------------------------------------------


def _accepted(document: Mapping[str, Any]) -> SendAccepted | None:
    data = document.get("data")
    if not isinstance(data, dict):
        return None
    message_id = data.get("id")
    if not isinstance(message_id, str) or not message_id:
        return None
    recipients = data.get("to")
    first = recipients[0] if isinstance(recipients, list) and recipients else None
    status = first.get("status") if isinstance(first, dict) else None
    return SendAccepted(
        carrier_message_id=message_id,
        carrier_status=status if isinstance(status, str) and status else "queued",
        segments=_positive_int(data.get("parts")),
    )


def _send_outcome(response: requests.Response) -> SendOutcome:
    from parley.carriers.http import json_object

    status = response.status_code
    document = json_object(response)
    if 200 <= status < 300:
        accepted = _accepted(document)
        if accepted is not None:
            return accepted
        # A resend with the same key gets this same answer replayed, or creates the message once.
        reason = "the carrier answered without a message id; it will be retried"
        return SendFailed(_T, reason, None, status)
    if 300 <= status < 400:
        reason = f"the carrier API redirected us (HTTP {status}); check PARLEY_TELNYX_API_BASE"
        return SendFailed(_P, reason, None, status)
    errors = _errors(document.get("errors"))
    known = [e for e in errors if e[0] in ERROR_CODES]
    code, words = (known or errors or [(None, None)])[0]
    kind, reason = classify_error(code, status)
    if kind is _P and code not in ERROR_CODES and words and 400 <= status < 500:
        reason = f"the carrier rejected the message: {words}"
    opted_out = any(c in OPTED_OUT_CODES for c, _ in errors)
    return SendFailed(kind, reason, code, status, opted_out, retry_after=_retry_after(response))


def _retry_after(response: requests.Response) -> float | None:
    """Retry-After if Telnyx sent one; on a 429, else the seconds until its rate limit resets."""
    asked = parse_retry_after(response.headers.get("Retry-After"))
    if asked is None and response.status_code == 429:
        asked = parse_retry_after(response.headers.get("x-ratelimit-reset"))
    return asked


def _network_failure(exc: Exception) -> SendFailed:
    """With the Idempotency-Key every network failure is safe to retry, except a bad address."""
    import requests

    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
        return SendFailed(_P, "the carrier API address is misconfigured (PARLEY_TELNYX_API_BASE)")
    if isinstance(exc, requests.exceptions.InvalidSchema):
        return SendFailed(_P, "the carrier API address is misconfigured (PARLEY_TELNYX_API_BASE)")
    if isinstance(exc, requests.exceptions.InvalidHeader):
        return SendFailed(_P, "the Telnyx API key is malformed (check PARLEY_TELNYX_API_KEY)")
    if isinstance(exc, requests.ConnectTimeout):
        return SendFailed(_T, "could not reach the carrier; it will be retried")
    if isinstance(exc, requests.ReadTimeout):
        return SendFailed(_T, "the carrier did not answer in time; it will be retried without a second text")
    if isinstance(exc, requests.ConnectionError):
        return SendFailed(
            _T, "the connection to the carrier failed; it will be retried without a second text"
        )
    return SendFailed(_T, f"the carrier request failed ({type(exc).__name__}); it will be retried")


def _log_outcome(text: OutboundText, outcome: SendOutcome) -> None:
    if isinstance(outcome, SendAccepted):
        logger.info(
            "telnyx accepted %s to %s as %s (%s)",
            text.message_id,
            mask(text.to_number),
            outcome.carrier_message_id,
            outcome.carrier_status,
        )
    else:
        logger.warning(
            "telnyx send %s to %s failed: %s, code=%s, http=%s, opted_out=%s",
            text.message_id,
            mask(text.to_number),
            outcome.kind,
            outcome.error_code,
            outcome.http_status,
            outcome.opted_out,
        )


__all__ = [
    "ERROR_CODES",
    "OPTED_OUT_CODES",
    "STATUS_MAP",
    "TelnyxCarrier",
    "build",
    "classify_error",
    "idempotency_key",
]
