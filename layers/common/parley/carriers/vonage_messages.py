"""Vonage Messages API (v1): signed-webhook check, webhook parser, send call and error classes.

Vonage signs each webhook with a JWT (HS256, the account's signature secret) in the Authorization
header; its `payload_hash` claim binds the raw body and `iat` dates it. The token does not cover the
URL, so the URL we were called on plays no part. The check is written with the standard library
(PyJWT would cost the webhook's cold start) and is strict: HS256 only, canonical signature, body hash
and a freshness window.

Sending uses HTTP Basic auth (API key and secret). JWT application auth (an application id and private
key) is the alternative Vonage offers; it is not implemented here. The API takes no idempotency key
and carriers.md documents no message lookup, so a 5xx or a read timeout is AMBIGUOUS and this plugin
does not implement `SentLookup`: the retry policy must not resend those blindly.

Numbers arrive and leave in Vonage's form, E.164 without the "+": webhooks pass them through as
written (the processor normalises them) and `send` drops the "+" from ours.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

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

logger = logging.getLogger(__name__)

NAME: Final = "vonage-messages"
DEFAULT_API_BASE: Final = "https://api.nexmo.com"
SEND_PATH: Final = "/v1/messages"
DEFAULT_MAX_AGE_SECONDS: Final = 300.0
CLOCK_SKEW_SECONDS: Final = 60.0  # Vonage's clock may run a little ahead of ours
_MAX_TOKEN_CHARS: Final = 8192  # Vonage's tokens are a few hundred characters
_MAX_CODE_CHARS: Final = 64
_MAX_REASON_CHARS: Final = 300
_CHANNELS: Final = frozenset({"sms", "mms"})
_MEDIA_KEYS: Final = ("image", "video", "audio", "file", "vcard")
_MEDIA_TYPES: Final[dict[str, str]] = {"vcard": "text/vcard"}
# Inbound media: any public https host ("*" is parley.carriers.http.ANY_HOST), never with a secret;
# see VonageMessagesCarrier.fetch_media.
MEDIA_HOSTS: Final = ("*",)
_ENV_SIGNATURE_SECRET: Final = "PARLEY_VONAGE_MESSAGES_SIGNATURE_SECRET"

STATUS_MAP: Final[dict[str, MessageStatus]] = {
    "submitted": MessageStatus.SENT,  # handed to the mobile network
    "delivered": MessageStatus.DELIVERED,
    # Refused by Vonage, the network or the handset, or expired (every segment of a long text is
    # reported together, and one refused segment makes the whole message `rejected`).
    "rejected": MessageStatus.UNDELIVERED,
    "undeliverable": MessageStatus.FAILED,  # Vonage could not reach any provider: it never left
    "read": MessageStatus.READ,
}

OPTED_OUT_CODES: Final = frozenset({"1240"})  # "Illegal Number": the recipient sent STOP

_P, _T = FailureKind.PERMANENT, FailureKind.TRANSIENT
_CREDENTIALS = (_P, "the carrier rejected our credentials (check the Vonage API key and secret)")
_INVALID_NUMBER = (_P, "the number is not a valid phone number")
_INVALID_DETAILS = (_P, "the carrier rejected the message's details as invalid")
_RATE_LIMITED = (_T, "the carrier is rate limiting us; it will be retried")
_NO_CREDIT = (_P, "our Vonage account is out of credit; top it up and resend")
# Vonage error code (the `#fragment` of an error's `type`, or a receipt's `error.title`) -> class and
# words a salesperson understands. Sources: carriers.md section 4 and Vonage's Messages API error list.
ERROR_CODES: Final[dict[str, tuple[FailureKind, str]]] = {
    "1000": _RATE_LIMITED,
    "1010": (_P, "the carrier said the request was incomplete (a setup problem on our side)"),
    "1020": _INVALID_DETAILS,
    "1030": (_T, "the carrier had an internal error; it can be sent again"),
    "1040": _INVALID_NUMBER,
    "1050": (_P, "the number is on the carrier's block list and can't receive our texts"),
    "1060": (_P, "our Vonage account is barred from sending; contact Vonage"),
    "1070": _NO_CREDIT,
    "1080": (_P, "our Vonage account is not enabled for this API; contact Vonage"),
    "1090": (_P, "the message is too long"),
    "1100": (_T, "the carrier could not reach the mobile network; it can be sent again"),
    "1110": _CREDENTIALS,
    "1120": (_P, "our sending number is not allowed to text this destination"),
    "1130": _INVALID_DETAILS,
    "1140": (_P, "our Vonage account is not enabled for this kind of message"),
    "1150": _INVALID_DETAILS,
    "1160": (_P, "the account can only text pre-approved numbers (add this one in the Vonage dashboard)"),
    "1170": _INVALID_NUMBER,
    "1180": (_T, "the recipient's phone is unreachable (switched off or out of coverage)"),
    "1190": (_P, "the number is no longer in service"),
    "1200": (_P, "the recipient changed carrier and can't be reached until their carrier fixes it"),
    "1210": (_P, "the recipient's carrier blocked the message as spam"),
    "1220": (_T, "the recipient's phone was busy"),
    "1230": (_T, "a mobile network error stopped the message; it can be sent again"),
    "1240": (_P, "the recipient has opted out (replied STOP)"),
    "1241": (_T, "too many texts to this number in a short time; it will be retried"),
    "1250": (_P, "the carrier has no route to this number"),
    "1260": (_P, "the number can't be reached by text"),
    "1270": (_P, "the recipient's carrier blocked the message because of age restrictions"),
    "1280": (_P, "the recipient's carrier blocks texts to this number (for example, no SMS on their plan)"),
    "1290": (_P, "the recipient's pre-paid account has no credit to receive texts"),
    "1310": (_P, "the recipient's phone can't receive this kind of message"),
    "1320": (_P, "the carrier says this message was already sent"),
    "1330": (_P, "the recipient's carrier reported an unknown error (often an unknown number)"),
    "1360": (_T, "the message expired before the phone could be reached; it can be sent again"),
    # Vonage's generic errors (RFC 7807 `type` fragments, https://developer.vonage.com/api-errors)
    "low-balance": _NO_CREDIT,
    "unauthorized": _CREDENTIALS,
    "invalid-api-key": _CREDENTIALS,
    "invalid-signature": _CREDENTIALS,
    "jwt-expired": _CREDENTIALS,
    "jwt-revoked": _CREDENTIALS,
    "forbidden": (_P, "our Vonage account is not allowed to do this; check its settings"),
    "unprovisioned": (_P, "our Vonage credentials have no access to the Messages API"),
    "account-suspended": (_P, "our Vonage account is suspended; contact Vonage"),
    "invalid-params": _INVALID_DETAILS,
    "rate-limit": _RATE_LIMITED,
    "throttled": _RATE_LIMITED,
}


def classify_error(code: str | None, http_status: int | None) -> tuple[FailureKind, str]:
    """Class and plain reason for a Vonage error, from an API response or a receipt's error.

    429 means Vonage did not take the request. A 5xx may mean it did, and with no idempotency key
    the caller has to treat it as AMBIGUOUS rather than resend.
    """
    code = (code or "").strip().lower() or None
    if http_status == 429:
        return _RATE_LIMITED
    if http_status is not None and http_status >= 500:
        return FailureKind.AMBIGUOUS, f"carrier server error (HTTP {http_status})"
    if code is not None and code in ERROR_CODES:
        return ERROR_CODES[code]
    if http_status in (408, 425):
        return _T, f"the carrier timed out reading our request (HTTP {http_status})"
    if http_status == 401:
        return _CREDENTIALS
    if http_status == 402:
        return _NO_CREDIT
    if http_status == 403:
        return ERROR_CODES["forbidden"]
    if http_status is not None:
        detail = f"error {code}" if code else f"HTTP {http_status}"
        return _P, f"carrier rejected the message ({detail})"
    if code is not None:
        return _P, f"the carrier could not deliver the message (error {code})"
    return _P, "the carrier could not deliver the message"


class UnsignedRequest(SignatureError):
    """No Authorization header at all.

    Vonage documents that on rare internal errors it may send a callback unsigned and that a 5xx gets
    it retried (signed); a 4xx would lose the event. A webhook handler may answer 5xx for this class.
    """

    retryable = True


class VonageMessagesCarrier:
    """The Vonage Messages plugin: credentials, the webhook check and one HTTP session.

    Secrets may be given as values or as zero-argument loaders, which are called once on first use:
    the webhook then never reads the API secret and the sender never reads the signature secret.
    `signature_secrets` holds the current secret first, then previous ones during a rotation.
    """

    name = NAME

    def __init__(
        self,
        api_key: str = "",
        api_secret: str | Callable[[], str] = "",
        signature_secrets: Sequence[str] | Callable[[], Sequence[str]] = (),
        *,
        api_base: str = DEFAULT_API_BASE,
        timeout: float = 10.0,
        max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.time,
        session: requests.Session | None = None,
        media_hosts: tuple[str, ...] = MEDIA_HOSTS,
        media_hosts_extra: tuple[str, ...] = (),
    ) -> None:
        """`media_hosts`: where media is fetched (MEDIA_HOSTS: any public https host, no credentials).
        `media_hosts_extra`: hosts (or host:port) where media may also be fetched over plain
        http; for the local simulator only (PARLEY_VONAGE_MESSAGES_MEDIA_HOSTS_EXTRA)."""
        if not math.isfinite(max_age_seconds) or max_age_seconds <= 0:
            raise ValueError("max_age_seconds must be a positive number of seconds")
        self.api_key = api_key.strip()
        self._api_secret_source = api_secret
        self._signature_source = signature_secrets
        self._api_secret: str | None = None if callable(api_secret) else api_secret
        self._signature_secrets: tuple[str, ...] | None = (
            None if callable(signature_secrets) else tuple(s for s in signature_secrets if s)
        )
        self.api_base = api_base.rstrip("/")
        self.timeout = timeout
        self.max_age_seconds = float(max_age_seconds)
        self._clock = clock
        self._session = session
        self._lock = threading.Lock()
        self.media_hosts = tuple(media_hosts)
        self.media_hosts_extra = tuple(media_hosts_extra)

    def __repr__(self) -> str:  # never show a secret
        return f"VonageMessagesCarrier(api_key={self.api_key!r}, api_base={self.api_base!r})"

    # -- webhooks -------------------------------------------------------------------------------

    def verify(self, request: WebhookRequest) -> None:
        """Raise SignatureError unless the bearer JWT is ours, binds this body and is fresh.

        A failure to *read* the secret (e.g. SSM) propagates as it is: that is not a forged request,
        and a 5xx makes Vonage retry.
        """
        authorization = (request.header("authorization") or "").strip()
        if not authorization:
            if not self._signature_keys():  # nothing to verify a retry with: no use asking for one
                raise SignatureError(f"unsigned, and no signature secret (set {_ENV_SIGNATURE_SECRET})")
            raise UnsignedRequest("missing Authorization header")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise SignatureError("Authorization is not a bearer token")
        if len(token) > _MAX_TOKEN_CHARS:
            raise SignatureError("token is too long")
        segments = token.split(".")
        if len(segments) != 3:
            raise SignatureError("token is not a JWT")
        header_b64, claims_b64, signature_b64 = segments
        header = _json_segment(header_b64, "header")
        if header.get("alg") != "HS256":
            raise SignatureError("token algorithm is not HS256")
        if "crit" in header:
            raise SignatureError("token has critical header parameters we don't support")
        secrets = self._signature_keys()
        if not secrets:
            raise SignatureError(f"no Vonage signature secret configured (set {_ENV_SIGNATURE_SECRET})")
        try:
            signing_input = f"{header_b64}.{claims_b64}".encode("ascii")
            given = signature_b64.encode("ascii")
        except UnicodeEncodeError as exc:
            raise SignatureError("token is not base64url") from exc
        matched = False
        for secret in secrets:
            mac = hmac.new(secret.encode("utf-8"), signing_input, hashlib.sha256).digest()
            # Compare the canonical encoding: a segment that differs only in unused bits is altered.
            expected = base64.urlsafe_b64encode(mac).rstrip(b"=")
            matched |= hmac.compare_digest(expected, given)
        if not matched:
            raise SignatureError("signature does not match")
        self._check_claims(_json_segment(claims_b64, "claims"), request.body)

    def _check_claims(self, claims: Mapping[str, Any], body: bytes) -> None:
        payload_hash = claims.get("payload_hash")
        if not isinstance(payload_hash, str) or not payload_hash:
            raise SignatureError("token has no payload_hash")
        actual = hashlib.sha256(body).hexdigest().encode("ascii")
        if not hmac.compare_digest(actual, payload_hash.strip().lower().encode("utf-8")):
            raise SignatureError("body does not match the token's payload_hash")
        issued = _seconds(claims.get("iat"))
        if issued is None:
            raise SignatureError("token has no valid iat")
        now = self._clock()
        if now - issued > self.max_age_seconds:
            raise SignatureError("token is stale (issued too long ago)")
        if issued - now > CLOCK_SKEW_SECONDS:
            raise SignatureError("token is issued in the future")
        if "exp" in claims:
            expires = _seconds(claims["exp"])
            if expires is None or now - expires > CLOCK_SKEW_SECONDS:
                raise SignatureError("token has expired")
        if "nbf" in claims:
            not_before = _seconds(claims["nbf"])
            if not_before is None or not_before - now > CLOCK_SKEW_SECONDS:
                raise SignatureError("token is not valid yet")

    def parse(self, kind: WebhookKind, request: WebhookRequest) -> list[ParsedEvent]:
        """Turn a verified inbound or status webhook into events; [] for channels we don't use.

        EVENTS (one URL for both) is told apart by shape: a status carries `status` and no
        `message_type`.
        """
        payload = _json_object(request.body)
        is_status = "status" in payload and "message_type" not in payload
        if kind == WebhookKind.EVENTS:
            kind = WebhookKind.STATUS if is_status else WebhookKind.MESSAGES
        if kind == WebhookKind.MESSAGES:
            if is_status:
                raise PayloadError("a status webhook arrived at the inbound URL; check the Vonage settings")
            return self._inbound(payload)
        if kind == WebhookKind.STATUS:
            return self._status(payload)
        raise PayloadError(f"unsupported webhook kind {str(kind)[:40]!r}")

    def ack(self, kind: WebhookKind) -> WebhookAck:
        """An empty 200: Vonage wants a 2xx and retries anything else for up to a day."""
        return WebhookAck(status_code=200, body="", content_type="text/plain")

    def _inbound(self, payload: dict[str, Any]) -> list[ParsedEvent]:
        channel = _channel(payload)
        if channel is None:
            logger.debug("vonage-messages: ignoring an inbound %s message", _short(payload.get("channel")))
            return []
        message_uuid = _required_text(payload, "message_uuid")
        from_number = _number(payload, "from")
        to_number = _number(payload, "to")
        text = payload.get("text")
        body = text if isinstance(text, str) else ""
        media: list[ParsedMedia] = []
        for key in _MEDIA_KEYS:
            item = payload.get(key)
            if not isinstance(item, dict):
                continue
            url = item.get("url")
            if isinstance(url, str) and url.strip():
                media.append(ParsedMedia(url=url.strip(), content_type=_MEDIA_TYPES.get(key)))
            caption = item.get("caption")
            if not body and isinstance(caption, str):
                body = caption
        sms = payload.get("sms")
        segments = _count(sms.get("num_messages")) if isinstance(sms, dict) else None
        return [
            ParsedInbound(
                carrier=self.name,
                carrier_message_id=message_uuid,
                from_number=from_number,
                to_number=to_number,
                body=body,
                media=tuple(media),
                segments=segments,
                received_at=_timestamp(payload.get("timestamp")) or utc_now(),
                raw=payload,
            )
        ]

    def _status(self, payload: dict[str, Any]) -> list[ParsedEvent]:
        if _channel(payload) is None:
            logger.debug("vonage-messages: ignoring a %s status", _short(payload.get("channel")))
            return []
        message_uuid = _required_text(payload, "message_uuid")
        word = payload.get("status")
        if not isinstance(word, str) or not word.strip():
            raise PayloadError("status is missing")
        word = word.strip().lower()
        status = STATUS_MAP.get(word)
        if status is None:
            raise PayloadError(f"unknown Vonage message status {word[:40]!r}")
        error_code, error_message = _error(payload.get("error"))
        retryable = False
        if error_code is not None:
            retryable, reason = receipt_failure(*classify_error(error_code, None))
            error_message = error_message or reason
        return [
            ParsedStatus(
                carrier=self.name,
                carrier_message_id=message_uuid,
                status=status,
                carrier_status=word,
                error_code=error_code,
                error_message=error_message,
                occurred_at=_timestamp(payload.get("timestamp")) or utc_now(),
                opted_out=error_code in OPTED_OUT_CODES,
                retryable=retryable,
                raw=payload,
            )
        ]

    # -- sending ----------------------------------------------------------------------------------

    def classify(self, error_code: str | None, http_status: int | None) -> tuple[FailureKind, str]:
        return classify_error(error_code, http_status)

    def send(self, text: OutboundText) -> SendOutcome:
        """POST one message; every carrier or network failure comes back as a classified SendFailed."""
        outcome = self._send(text)
        _log_outcome(text, outcome)
        return outcome

    def _send(self, text: OutboundText) -> SendOutcome:
        if len(text.media_urls) > 1:
            return SendFailed(_P, "Vonage sends one picture per message; send the others separately")
        try:
            api_secret = self._api_secret_value()
        except Exception:  # a failed secret read (SSM) is ours and passing, not the carrier's
            logger.exception("vonage-messages: could not read the API secret")
            return SendFailed(_T, "could not read the Vonage credentials; it will be retried")
        if not self.api_key or not api_secret:
            reason = "the Vonage API key or secret is not configured (PARLEY_VONAGE_API_KEY/_SECRET)"
            return SendFailed(_P, reason)

        import requests  # off the webhook's import path

        from parley.carriers.http import CONNECT_TIMEOUT_SECONDS

        try:
            response = self._http().post(
                self.api_base + SEND_PATH,
                json=_request_body(text),
                auth=(self.api_key, api_secret),
                headers={"Accept": "application/json"},
                timeout=(CONNECT_TIMEOUT_SECONDS, self.timeout),
                allow_redirects=False,  # a redirected POST would silently become a GET
            )
        except requests.RequestException as exc:
            return _network_failure(exc)
        return _send_outcome(response)

    def _http(self) -> requests.Session:
        if self._session is None:
            from parley.carriers.http import new_session

            with self._lock:
                if self._session is None:
                    self._session = new_session()
        return self._session

    def fetch_media(self, url: str) -> FetchedMedia:
        """Download an inbound attachment (MediaSource), with no credentials at all.

        carriers.md says nothing about authenticating Vonage media URLs or where they are hosted.
        By default Vonage serves inbound media from a unique, unauthenticated URL for 48 hours; its
        optional "Secure Inbound Media" wants an application JWT, which this plugin doesn't make
        (such a download is refused, 401, and recorded as rejected). So any public https host is
        accepted and neither the API secret nor the signature secret is ever sent.
        """
        from parley.carriers.http import download

        return download(
            url,
            allowed_hosts=(*self.media_hosts, *self.media_hosts_extra),
            auth=None,
            timeout=self.timeout,
            extra_hosts=self.media_hosts_extra,
        )

    def _api_secret_value(self) -> str:
        if self._api_secret is None:
            source = self._api_secret_source
            value = source() if callable(source) else source
            with self._lock:
                self._api_secret = value
        return self._api_secret

    def _signature_keys(self) -> tuple[str, ...]:
        if self._signature_secrets is None:
            source = self._signature_source
            values = source() if callable(source) else source
            with self._lock:
                self._signature_secrets = tuple(s for s in values if s)
        return self._signature_secrets


def build(config: CarrierConfig) -> VonageMessagesCarrier:
    """The plugin from PARLEY_* settings; secrets are read on first use, not here.

    Reads PARLEY_VONAGE_API_KEY, PARLEY_VONAGE_API_SECRET[_PARAM],
    PARLEY_VONAGE_MESSAGES_SIGNATURE_SECRET[_PARAM|_PREVIOUS], PARLEY_VONAGE_MESSAGES_API_BASE,
    PARLEY_VONAGE_MESSAGES_MAX_AGE_SECONDS and PARLEY_VONAGE_MESSAGES_MEDIA_HOSTS_EXTRA (local
    simulator only). A missing signature secret fails at `verify`, missing API
    credentials at `send` (a PERMANENT SendFailed), each naming the variable.
    """
    raw_max_age = config.get("vonage_messages_max_age_seconds").strip()
    try:
        max_age = float(raw_max_age) if raw_max_age else DEFAULT_MAX_AGE_SECONDS
    except ValueError:
        max_age = math.nan
    if not math.isfinite(max_age) or max_age <= 0:
        raise ValueError("PARLEY_VONAGE_MESSAGES_MAX_AGE_SECONDS must be a positive number of seconds")
    return VonageMessagesCarrier(
        api_key=config.get("vonage_api_key"),
        api_secret=lambda: config.secret("vonage_api_secret"),
        signature_secrets=lambda: config.secrets("vonage_messages_signature_secret"),
        api_base=config.get("vonage_messages_api_base").strip() or DEFAULT_API_BASE,
        timeout=config.timeout,
        max_age_seconds=max_age,
        media_hosts=config.media_hosts(MEDIA_HOSTS),
        media_hosts_extra=config.get_list("vonage_messages_media_hosts_extra"),
    )


# -- token helpers ----------------------------------------------------------------------------------


def _json_segment(segment: str, what: str) -> dict[str, Any]:
    """One base64url JSON object of a JWT; anything else is a SignatureError."""
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # binascii, Unicode and JSON errors are ValueErrors
        raise SignatureError(f"token {what} is not base64url JSON") from exc
    if not isinstance(value, dict):
        raise SignatureError(f"token {what} is not a JSON object")
    return value


def _seconds(value: object) -> float | None:
    """A NumericDate claim as float seconds; None for anything else (bools, strings, NaN, huge)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        seconds = float(value)
    except OverflowError:
        return None
    return seconds if math.isfinite(seconds) else None


# -- payload helpers --------------------------------------------------------------------------------


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError included
        raise PayloadError("body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise PayloadError("JSON body is not an object")
    return data


def _short(value: object) -> str:
    return repr(value)[:40]


def _channel(payload: Mapping[str, Any]) -> str | None:
    """The SMS/MMS channel, or None for the others an application may also carry (WhatsApp, …).

    A payload without `channel` is read as SMS rather than dropped: losing a customer's text is worse.
    """
    channel = payload.get("channel", "sms")
    if not isinstance(channel, str):
        return None
    channel = channel.strip().lower() or "sms"
    return channel if channel in _CHANNELS else None


def _required_text(payload: Mapping[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value.strip():
        raise PayloadError(f"{name} is missing")
    return value.strip()


def _number(payload: Mapping[str, Any], name: str) -> str:
    """A number in E.164; v1 sends a string, the older beta an object with `number`.

    Vonage writes international numbers as bare digits: without the `+` a ten-digit one such as
    6598765432 (Singapore) would read as a North American number. Short codes (at most 6 digits)
    and alphanumeric senders are passed through as written.
    """
    value = payload.get(name)
    if isinstance(value, dict):
        value = value.get("number")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise PayloadError(f"{name} is missing")
    value = value.strip()
    international = value.isascii() and value.isdigit() and 7 <= len(value) <= 15 and value[0] != "0"
    return f"+{value}" if international else value


def _count(value: object) -> int | None:
    """A count we only display: a malformed one must not cost us the customer's text."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 < value < 1_000_000 else None
    if isinstance(value, str):
        value = value.strip()
        if value.isascii() and value.isdigit() and len(value) <= 6:
            return int(value) or None
    return None


def _timestamp(value: object) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _error(value: object) -> tuple[str | None, str | None]:
    """(code, words) from a status's RFC 7807 `error`: the code is the `type` URL's fragment,
    else a numeric `title` (Vonage puts the code there in receipts)."""
    if not isinstance(value, dict):
        return None, None
    nested = value.get("error")
    problem: dict[str, Any] = nested if isinstance(nested, dict) else value  # nested in some fixtures
    return _problem_code(problem), _problem_words(problem)


def _problem_code(problem: Mapping[str, Any]) -> str | None:
    kind = problem.get("type")
    if isinstance(kind, str) and "#" in kind:
        fragment = kind.rsplit("#", 1)[1].strip()
        if fragment:
            return fragment[:_MAX_CODE_CHARS]
    title = problem.get("title")
    if isinstance(title, int) and not isinstance(title, bool):
        return str(title)[:_MAX_CODE_CHARS]
    if isinstance(title, str) and title.strip().isascii() and title.strip().isdigit():
        return title.strip()[:_MAX_CODE_CHARS]
    return None


def _problem_words(problem: Mapping[str, Any]) -> str | None:
    for key in ("detail", "title"):
        text = problem.get(key)
        if isinstance(text, str) and text.strip() and not text.strip().isdigit():
            return text.strip()[:_MAX_REASON_CHARS]
    return None


# -- send helpers -----------------------------------------------------------------------------------


def _vonage_number(number: str) -> str:
    """Vonage wants E.164 without the leading "+"; alphanumeric sender ids pass unchanged."""
    number = number.strip()
    return number[1:] if number.startswith("+") else number


def _request_body(text: OutboundText) -> dict[str, Any]:
    body: dict[str, Any] = {
        "to": _vonage_number(text.to_number),
        "from": _vonage_number(text.from_number),
        "client_ref": text.message_id,  # echoed in every status webhook
    }
    if text.media_urls:
        image: dict[str, str] = {"url": text.media_urls[0]}
        if text.body:
            image["caption"] = text.body
        body.update(message_type="image", channel="mms", image=image)
    else:
        body.update(message_type="text", channel="sms", text=text.body)
    if text.status_callback_url:
        body["webhook_url"] = text.status_callback_url
    return body


def _send_outcome(response: requests.Response) -> SendOutcome:
    from parley.carriers.http import json_object

    status = response.status_code
    data = json_object(response)
    if 200 <= status < 300:
        message_uuid = data.get("message_uuid")
        if isinstance(message_uuid, str) and message_uuid.strip():
            return SendAccepted(carrier_message_id=message_uuid.strip(), carrier_status="accepted")
        reason = "the carrier accepted the request but returned no message id"
        return SendFailed(FailureKind.AMBIGUOUS, reason, None, status)
    if 300 <= status < 400:
        reason = f"the carrier API redirected us (HTTP {status}); check the API base URL"
        return SendFailed(_P, reason, None, status)
    code = _problem_code(data)
    kind, reason = classify_error(code, status)
    if code in ("1150", "1020", "invalid-params") and _invalid_parameter(data, "to"):
        kind, reason = _INVALID_NUMBER
    elif 400 <= status < 500 and kind is _P and (code is None or code not in ERROR_CODES):
        words = _problem_words(data)
        if words:
            reason = f"carrier rejected the message: {words}"
    asked = parse_retry_after(response.headers.get("Retry-After"))
    return SendFailed(kind, reason, code, status, opted_out=code in OPTED_OUT_CODES, retry_after=asked)


def _invalid_parameter(problem: Mapping[str, Any], name: str) -> bool:
    listed = problem.get("invalid_parameters")
    if not isinstance(listed, list):
        return False
    return any(isinstance(item, dict) and item.get("name") == name for item in listed)


def _network_failure(exc: requests.RequestException) -> SendFailed:
    """Connection never made → retry; anything after the request may have left → AMBIGUOUS.

    The logic of parley.carriers.http.network_failure, but with no message lookup here (see the
    module docstring) the reasons don't promise a check before any retry.
    """
    import requests

    from parley.carriers.http import never_connected

    if isinstance(exc, requests.ConnectTimeout) or never_connected(exc):
        return SendFailed(_T, "could not reach the carrier; it will be retried")
    if isinstance(exc, requests.ReadTimeout):
        return SendFailed(FailureKind.AMBIGUOUS, "the carrier did not answer in time; it may have the text")
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
        return SendFailed(_P, "the carrier API address is misconfigured")
    return SendFailed(
        FailureKind.AMBIGUOUS, "the connection to the carrier broke after sending; it may have the text"
    )


def _log_outcome(text: OutboundText, outcome: SendOutcome) -> None:
    if isinstance(outcome, SendAccepted):
        logger.info(
            "vonage-messages accepted %s to %s as %s",
            text.message_id,
            mask(text.to_number),
            outcome.carrier_message_id,
        )
    else:
        logger.warning(
            "vonage-messages send %s to %s failed: %s, code=%s, http=%s",
            text.message_id,
            mask(text.to_number),
            outcome.kind,
            outcome.error_code,
            outcome.http_status,
        )
