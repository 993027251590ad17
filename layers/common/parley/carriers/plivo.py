"""Plivo messaging: signature check, webhook parser, send call, message lookup and error classes.

Plivo signs callbacks two ways. V3 (`X-Plivo-Signature-V3`) covers the URL, its query and every
field of the body; V2 (`X-Plivo-Signature-V2`) covers only scheme://host/path and a nonce, so a
V2-only request proves who sent it but not what it says: one captured V2 pair signs any body. V3 is
checked whenever it is present and a bad V3 is never excused by a good V2. A request that carries
only V2 is accepted for a delivery receipt (it names a MessageUUID only Plivo and we know) but
refused for anything else, an inbound text above all, whose body is the whole point.
`PARLEY_PLIVO_REQUIRE_V3` sets this: `true` refuses every V2-only request (for an account whose
callbacks all carry V3, so dropping the V3 headers can't downgrade a request), unset is the rule
above, and `false` accepts V2-only inbound texts too (an account Plivo signs with V2 only).
Neither scheme has a timestamp, so there is no freshness window: a replay is absorbed downstream by
de-duplicating on MessageUUID and Status.

Plivo has no idempotency key for sends, so a 5xx or a read timeout is AMBIGUOUS and `find_sent`
looks the text up in Plivo's message list before anything is retried.

The webhook path (verify, parse, ack) uses the standard library only; `requests` is imported by the
functions that call Plivo's API.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import threading
from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import parse_qs, quote, urlparse, urlunparse

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
)
from parley.carriers.config import CarrierConfig
from parley.domain.retry import parse_retry_after
from parley.domain.vocabulary import MessageStatus
from parley.redact import mask

if TYPE_CHECKING:
    import requests

__all__ = [
    "ERROR_CODES",
    "STATUS_MAP",
    "PlivoCarrier",
    "PlivoConfigError",
    "PlivoLookupError",
    "build",
    "classify_error",
]

logger = logging.getLogger(__name__)

NAME: Final = "plivo"
DEFAULT_API_BASE: Final = "https://api.plivo.com"
V3_HEADER: Final = "x-plivo-signature-v3"
V3_MAIN_ACCOUNT_HEADER: Final = "x-plivo-signature-ma-v3"
V3_NONCE_HEADER: Final = "x-plivo-signature-v3-nonce"
V2_HEADER: Final = "x-plivo-signature-v2"
V2_MAIN_ACCOUNT_HEADER: Final = "x-plivo-signature-ma-v2"
V2_NONCE_HEADER: Final = "x-plivo-signature-v2-nonce"
EMPTY_XML: Final = '<?xml version="1.0" encoding="utf-8"?><Response></Response>'
LIST_PAGE_SIZE: Final = 20  # Plivo's maximum for the message list
LIST_MAX_PAGES: Final = 5
LOOKUP_CLOCK_SKEW: Final = timedelta(minutes=2)
_MAX_FORM_FIELDS: Final = 1000  # Plivo sends a few dozen; bounds the work a forged body can cause
# Where Media<N> points; fetched with HTTP Basic (auth id, auth token), like Plivo's API. The
# credentials go to these hosts (and their subdomains) only; a redirect elsewhere gets none.
MEDIA_HOSTS: Final = ("api.plivo.com", "media.plivo.com")
_MAX_SIGNATURES: Final = 16  # a comma list longer than this is not from Plivo
_PART_INFO = re.compile(r"\s*(\d{1,4})\s*of\s*(\d{1,4})\s*", re.IGNORECASE)

STATUS_MAP: Final[dict[str, MessageStatus]] = {
    "queued": MessageStatus.ACCEPTED,  # queued at Plivo: the carrier has it, nothing is sent yet
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "undelivered": MessageStatus.UNDELIVERED,
    "failed": MessageStatus.FAILED,
    "rejected": MessageStatus.FAILED,  # older docs only
    "read": MessageStatus.READ,  # WhatsApp only
}

# Plivo puts MessageIntent on inbound texts that match its own opt-out/in/help keywords, which it
# answers itself (DND is on by default for US/CA long codes and toll-free numbers).
_INTENTS: Final[dict[str, Literal["STOP", "START", "HELP"]]] = {
    "optout": "STOP",
    "optin": "START",
    "help": "HELP",
}

# When a callback gives a timestamp, the one that belongs to the status it reports.
_STATUS_TIMES: Final[dict[str, tuple[str, ...]]] = {
    "queued": ("QueuedTime", "MessageTime"),
    "sent": ("SentTime", "QueuedTime", "MessageTime"),
    "failed": ("DeliveryReportTime", "SentTime", "QueuedTime", "MessageTime"),
}

_P, _T = FailureKind.PERMANENT, FailureKind.TRANSIENT
OPTED_OUT_CODE: Final = "200"
# Plivo SMS error code -> (class, words a salesperson understands). Sources: carriers.md section 6
# (200 = opted out) and Plivo's published SMS error-code list (10-110, 200, 201, 450, 900, 1000).
ERROR_CODES: Final[dict[str, tuple[FailureKind, str]]] = {
    "10": (_P, "the carrier rejected the message content as invalid"),
    "20": (_T, "the carrier's network had a problem; it will be retried"),
    "30": (_P, "the recipient's carrier blocked the message as spam"),
    "40": (_P, "our sending number can't send this text (check the number on the Plivo account)"),
    "50": (_P, "the number can't receive texts (not valid, not text-enabled or a landline)"),
    "60": (_P, "the carrier stopped a message loop between these two numbers"),
    "70": (_P, "the number is out of service"),
    "80": (_T, "the recipient's phone is unreachable (switched off or out of coverage)"),
    "90": (_P, "the carrier has no route to this number"),
    "100": (_P, "the recipient's network does not accept this kind of message"),
    "110": (_P, "the message is too long"),
    OPTED_OUT_CODE: (_P, "the recipient has opted out (replied STOP)"),
    "201": (_P, "US toll-free numbers can't text Canadian numbers"),
    "450": (_P, "texting this country is not enabled on our Plivo account (Geo Permissions)"),
    "900": (_P, "our Plivo account is out of credit; top it up, then resend"),
    "1000": (_T, "the carrier reported an unknown delivery error"),
}
_RATE_LIMITED: Final = (_T, "the carrier is rate limiting us; it will be retried")
_BAD_CREDENTIALS: Final = (_P, "the carrier rejected our credentials (check the Plivo auth id and token)")
_INVALID_NUMBER: Final = (_P, "the number is not a valid phone number")

# Plivo's API errors carry words, not codes: {"api_id": ..., "error": "..."}. Checked in order.
_ERROR_WORDS: Final[tuple[tuple[tuple[str, ...], tuple[FailureKind, str], bool], ...]] = (
    (("too many requests", "rate limit"), _RATE_LIMITED, False),
    (
        ("opted out", "opt-out", "opted-out", "unsubscribed", "blocked by stop", "dnd"),
        ERROR_CODES["200"],
        True,
    ),
    (("insufficient credit", "insufficient balance", "insufficient fund"), ERROR_CODES["900"], False),
    (("geo permission", "country barred", "destination country"), ERROR_CODES["450"], False),
    (
        ("not a valid phone number", "invalid dst", "invalid destination", "dst parameter"),
        _INVALID_NUMBER,
        False,
    ),
    (("invalid src", "src parameter", "source number", "not a valid source"), ERROR_CODES["40"], False),
    (("too long", "exceeds"), ERROR_CODES["110"], False),
)


class PlivoConfigError(RuntimeError):
    """Plivo can't be used as configured (a credential is missing); raised by `build`.

    A RuntimeError rather than a ValueError so the webhook answers 5xx (Plivo retries) instead of
    the 404 it gives for an unknown carrier name.
    """


class PlivoLookupError(RuntimeError):
    """A message search failed; whether Plivo has the text is unknown, so try again later."""


def classify_error(code: str | None, http_status: int | None) -> tuple[FailureKind, str]:
    """Class and plain reason for a Plivo error, from an API response or a receipt's ErrorCode.

    A 429 means Plivo did not take the request; a 5xx means it may have, and since Plivo has no
    idempotency key the caller must reconcile (`find_sent`) before trying again.
    """
    code = _error_code(code)
    if http_status == 429:
        return _RATE_LIMITED
    if http_status is not None and http_status >= 500:
        return FailureKind.AMBIGUOUS, f"carrier server error (HTTP {http_status}); checking before any retry"
    if code is not None and code in ERROR_CODES:
        return ERROR_CODES[code]
    if http_status in (408, 425):
        return FailureKind.TRANSIENT, f"the carrier timed out reading our request (HTTP {http_status})"
    if http_status == 401:
        return _BAD_CREDENTIALS
    if http_status == 403:
        return _P, "our Plivo account may not send this text (check Geo Permissions and account status)"
    if http_status == 404:
        return _P, "the carrier API address or Plivo auth id is wrong (HTTP 404)"
    if http_status is not None:
        detail = f"error {code}" if code else f"HTTP {http_status}"
        return _P, f"carrier rejected the message ({detail})"
    if code is not None:
        return _P, f"the carrier could not deliver the message (error {code})"
    return _P, "the carrier could not deliver the message"


class PlivoCarrier:
    """The Plivo plugin. Holds the auth id, the auth token(s) and, once it has sent, an HTTP session.

    `previous_auth_tokens` are also accepted on webhooks, for an Auth Token rotation (and for a main
    account's token, which signs the `-Ma-` headers of a subaccount's callbacks).
    """

    name = NAME

    def __init__(
        self,
        auth_id: str,
        auth_token: str,
        *,
        previous_auth_tokens: tuple[str, ...] = (),
        api_base: str = DEFAULT_API_BASE,
        timeout: float = 10.0,
        require_v3: bool = False,
        v2_inbound: bool = False,
        session: requests.Session | None = None,
        media_hosts: tuple[str, ...] = MEDIA_HOSTS,
        media_hosts_extra: tuple[str, ...] = (),
    ) -> None:
        """`media_hosts`: where media is fetched, with the credentials (MEDIA_HOSTS by default).
        `media_hosts_extra`: hosts (or host:port) also trusted for media, http allowed; for the
        local simulator only (PARLEY_PLIVO_MEDIA_HOSTS_EXTRA)."""
        self.auth_id = auth_id
        self._auth_token = auth_token
        self._tokens = tuple(t for t in (auth_token, *previous_auth_tokens) if t)
        self.api_base = (api_base or DEFAULT_API_BASE).rstrip("/")
        self.timeout = timeout
        self.require_v3 = require_v3
        self.v2_inbound = v2_inbound  # accept inbound texts signed with V2 only (forgeable bodies)
        self._session = session
        self._session_lock = threading.Lock()
        self.media_hosts = tuple(media_hosts)
        self.media_hosts_extra = tuple(media_hosts_extra)

    def __repr__(self) -> str:  # never show a token
        return f"PlivoCarrier(auth_id={self.auth_id!r}, api_base={self.api_base!r})"

    # -- webhooks -------------------------------------------------------------------------------

    def verify(self, request: WebhookRequest) -> None:
        """Raise SignatureError unless a V3 (or, failing any V3 header, a V2) signature matches."""
        v3 = _signatures(request.header(V3_HEADER), request.header(V3_MAIN_ACCOUNT_HEADER))
        if v3 is not None:
            nonce = (request.header(V3_NONCE_HEADER) or "").strip()
            if not nonce:
                raise SignatureError("missing X-Plivo-Signature-V3-Nonce header")
            if not self._tokens:
                raise SignatureError("no Plivo auth token configured")
            signed = _v3_string(request) + "." + nonce
            if not self._matches(signed, v3):
                raise SignatureError("V3 signature does not match")
            return
        if self.require_v3:
            raise SignatureError("missing X-Plivo-Signature-V3 header (V2 is not accepted here)")
        v2 = _signatures(request.header(V2_HEADER), request.header(V2_MAIN_ACCOUNT_HEADER))
        if v2 is None:
            raise SignatureError("missing X-Plivo-Signature-V3 or X-Plivo-Signature-V2 header")
        nonce = (request.header(V2_NONCE_HEADER) or "").strip()
        if not nonce:
            raise SignatureError("missing X-Plivo-Signature-V2-Nonce header")
        if not self._tokens:
            raise SignatureError("no Plivo auth token configured")
        if not self._matches(_base_url(request.url) + nonce, v2):
            raise SignatureError("V2 signature does not match")
        if not self.v2_inbound and "Status" not in _request_fields(request):
            # V2 does not cover the body: a captured header pair would sign any text.
            raise SignatureError("V2 alone does not sign the body; only delivery receipts may carry it")

    def _matches(self, signed: str, given: list[bytes]) -> bool:
        """Compare every (token, signature) pair in constant time; no early exit to time."""
        matched = False
        message = signed.encode("utf-8")
        for token in self._tokens:
            expected = base64.b64encode(hmac.new(token.encode("utf-8"), message, hashlib.sha256).digest())
            for candidate in given:
                matched |= hmac.compare_digest(expected, candidate)
        return matched

    def parse(self, kind: WebhookKind, request: WebhookRequest) -> list[ParsedEvent]:
        """Turn a verified inbound-message or status callback into one canonical event.

        WhatsApp inbound messages are not ours to handle: they are acknowledged and dropped ([]).
        """
        fields = _request_fields(request)
        if kind == WebhookKind.MESSAGES:
            if "Status" in fields:  # inbound texts carry no Status; receipts always do
                raise PayloadError("a status callback arrived at the inbound-messages URL")
            return self._inbound(fields)
        if kind == WebhookKind.STATUS:
            return [self._status(fields)]
        if kind == WebhookKind.EVENTS:  # one URL for both: a status callback is the one with Status
            return [self._status(fields)] if "Status" in fields else self._inbound(fields)
        raise PayloadError(f"unsupported webhook kind {kind!r}")

    def ack(self, kind: WebhookKind) -> WebhookAck:
        """An empty Plivo XML response: a 2xx stops retries and tells Plivo to send no reply."""
        return WebhookAck(status_code=200, body=EMPTY_XML, content_type="application/xml")

    def _inbound(self, fields: Mapping[str, str]) -> list[ParsedEvent]:
        kind = fields.get("Type", "").strip().lower() or "sms"
        if kind not in ("sms", "mms"):
            logger.info("plivo inbound of type %r ignored", kind[:20])
            return []
        uuid = _required(fields, "MessageUUID")
        from_number = _number(_required(fields, "From"))
        to_number = _number(_required(fields, "To"))
        body = fields.get("Text") or fields.get("Body") or ""
        intent = _INTENTS.get(fields.get("MessageIntent", "").strip().lower())
        return [
            ParsedInbound(
                carrier=self.name,
                carrier_message_id=uuid,
                from_number=from_number,
                to_number=to_number,
                body=body,
                media=_media(fields, uuid),
                segments=_positive_int(fields.get("Units")),
                opt_out=intent,
                raw=dict(fields),
            )
        ]

    def _status(self, fields: Mapping[str, str]) -> ParsedStatus:
        uuid = _required(fields, "MessageUUID")
        word = fields.get("Status", "").strip().lower()
        if not word:
            raise PayloadError("Status is missing")
        status = STATUS_MAP.get(word)
        if status is None:
            raise PayloadError(f"unknown Plivo message status {word[:40]!r}")
        part, parts = _part_info(fields.get("PartInfo"))
        # Every part of a split text names the first part, whose UUID the send call returned.
        parent = fields.get("ParentMessageUUID", "").strip()
        code = _error_code(fields.get("ErrorCode"))
        retryable, reason = False, None
        if code is not None:
            retryable, reason = receipt_failure(*classify_error(code, None))
        return ParsedStatus(
            carrier=self.name,
            carrier_message_id=parent or uuid,
            status=status,
            carrier_status=word,
            error_code=code,
            error_message=reason,
            occurred_at=_occurred_at(fields, word),
            part=part,
            parts=parts,
            opted_out=code == OPTED_OUT_CODE,
            retryable=retryable,
            raw=dict(fields),
        )

    # -- sending ----------------------------------------------------------------------------------

    def send(self, text: OutboundText) -> SendOutcome:
        """POST one message; every carrier or network failure comes back as a classified SendFailed.

        Plivo takes no idempotency key, so `text.message_id` is only logged.
        """
        import requests

        from parley.carriers.http import CONNECT_TIMEOUT_SECONDS, network_failure

        payload: dict[str, Any] = {"src": text.from_number, "dst": text.to_number, "text": text.body}
        if text.status_callback_url:
            payload["url"] = text.status_callback_url
            payload["method"] = "POST"
        if text.media_urls:
            payload["type"] = "mms"
            payload["media_urls"] = list(text.media_urls)
        try:
            response = self._http().post(
                self._url("Message/"),
                json=payload,
                auth=(self.auth_id, self._auth_token),
                headers={"Accept": "application/json"},
                timeout=(CONNECT_TIMEOUT_SECONDS, self.timeout),
                allow_redirects=False,  # a redirected POST would silently become a GET
            )
        except requests.RequestException as exc:
            outcome: SendOutcome = network_failure(exc)  # no idempotency: reconcile first
        else:
            outcome = _send_outcome(response)
        _log_outcome(text, outcome)
        return outcome

    def classify(self, error_code: str | None, http_status: int | None) -> tuple[FailureKind, str]:
        return classify_error(error_code, http_status)

    def find_sent(
        self, text: OutboundText, since: datetime, skip: Collection[str] = ()
    ) -> SendAccepted | None:
        """Find a text Plivo may have accepted before an ambiguous failure (a 5xx or a read timeout).

        Plivo's message records carry no text and no reference of ours, so the match is by sender,
        recipient and time: the earliest outbound message between the two numbers since the first
        attempt (less a little clock skew), leaving out the set-aside `skip`. Raises PlivoLookupError
        when the search itself fails.
        """
        import requests

        from parley.carriers.http import CONNECT_TIMEOUT_SECONDS, json_object

        start = _as_utc(since) - LOOKUP_CLOCK_SKEW
        params = {
            "message_direction": "outbound",
            "from_number": text.from_number,
            "to_number": text.to_number,
            "message_time__gte": start.strftime("%Y-%m-%d %H:%M:%S"),
            "limit": str(LIST_PAGE_SIZE),
        }
        best: tuple[datetime, SendAccepted] | None = None
        for page in range(LIST_MAX_PAGES):
            try:
                response = self._http().get(
                    self._url("Message/"),
                    params={**params, "offset": str(page * LIST_PAGE_SIZE)},
                    auth=(self.auth_id, self._auth_token),
                    headers={"Accept": "application/json"},
                    timeout=(CONNECT_TIMEOUT_SECONDS, self.timeout),
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                raise PlivoLookupError(f"message search failed: {type(exc).__name__}") from exc
            if response.status_code != 200:
                raise PlivoLookupError(f"message search failed (HTTP {response.status_code})")
            data = json_object(response)
            objects = data.get("objects")
            if not isinstance(objects, list):
                raise PlivoLookupError("message search answered without a list of messages")
            for item in objects:
                found = _listed_match(item, text, start)
                if found is None or found[1].carrier_message_id in skip:
                    continue
                if best is None or found[0] < best[0]:
                    best = found
            meta = data.get("meta")
            if len(objects) < LIST_PAGE_SIZE or not (isinstance(meta, dict) and meta.get("next")):
                return best[1] if best else None
        if best is None:  # more pages than we read: absence is not proven
            raise PlivoLookupError("too many messages to search; try again later")
        return best[1]

    def _http(self) -> requests.Session:
        if self._session is None:
            from parley.carriers.http import new_session

            with self._session_lock:
                if self._session is None:
                    self._session = new_session()
        return self._session

    def _url(self, resource: str) -> str:
        return f"{self.api_base}/v1/Account/{quote(self.auth_id, safe='')}/{resource}"

    def fetch_media(self, url: str) -> FetchedMedia:
        """Download an inbound attachment with the account's Basic credentials (MediaSource).

        MediaRejected for a URL off Plivo's media hosts, a gone or oversized file; other exceptions
        are transient.
        """
        from parley.carriers.http import download

        auth = (self.auth_id, self._auth_token) if self.auth_id and self._auth_token else None
        return download(
            url,
            allowed_hosts=(*self.media_hosts, *self.media_hosts_extra),
            auth=auth,
            timeout=self.timeout,
            extra_hosts=self.media_hosts_extra,
        )


def build(config: CarrierConfig) -> PlivoCarrier:
    """The configured Plivo plugin; raises PlivoConfigError at build time if a credential is missing.

    Reads PARLEY_PLIVO_AUTH_ID, PARLEY_PLIVO_AUTH_TOKEN (or the SSM parameter named by
    PARLEY_PLIVO_AUTH_TOKEN_PARAM; previous tokens in PARLEY_PLIVO_AUTH_TOKEN_PREVIOUS),
    PARLEY_PLIVO_API_BASE (default https://api.plivo.com), PARLEY_PLIVO_REQUIRE_V3 (true: V3 only;
    unset: V2 alone for receipts only; false: V2 alone for inbound texts too) and
    PARLEY_PLIVO_MEDIA_HOSTS_EXTRA (local simulator only).
    """
    auth_id = config.get("plivo_auth_id").strip()
    tokens = config.secrets("plivo_auth_token")
    missing = [
        name
        for name, value in (
            ("PARLEY_PLIVO_AUTH_ID", auth_id),
            ("PARLEY_PLIVO_AUTH_TOKEN (or PARLEY_PLIVO_AUTH_TOKEN_PARAM)", tokens),
        )
        if not value
    ]
    if missing:
        raise PlivoConfigError(f"Plivo is not configured: set {' and '.join(missing)}")
    require_v3 = config.get("plivo_require_v3").strip().lower()
    return PlivoCarrier(
        auth_id,
        tokens[0],
        previous_auth_tokens=tokens[1:],
        api_base=config.get("plivo_api_base", DEFAULT_API_BASE).strip() or DEFAULT_API_BASE,
        timeout=config.timeout,
        require_v3=require_v3 in ("1", "true", "yes", "on"),
        v2_inbound=require_v3 in ("0", "false", "no", "off"),
        media_hosts=config.media_hosts(MEDIA_HOSTS),
        media_hosts_extra=config.get_list("plivo_media_hosts_extra"),
    )


# -- signature helpers ------------------------------------------------------------------------------


def _signatures(*headers: str | None) -> list[bytes] | None:
    """Signatures from the account and main-account headers (each may be a comma list); None if absent."""
    present = [h for h in headers if h is not None and h.strip()]
    if not present:
        return None
    found = [s.strip().encode("utf-8") for h in present for s in h.split(",") if s.strip()]
    if not found or len(found) > _MAX_SIGNATURES:
        raise SignatureError("malformed signature header")
    return found


def _base_url(url: str) -> str:
    """scheme://host/path of `url`, as both schemes sign it (query, params and fragment dropped)."""
    try:
        parts = urlparse(url)
    except ValueError as exc:
        raise SignatureError("request URL is malformed") from exc
    return urlunparse((parts.scheme, parts.netloc, parts.path, "", "", ""))


def _v3_string(request: WebhookRequest) -> str:
    """Plivo's V3 string before ".nonce", as plivo.utils.signature_v3 builds it.

    GET: the URL with every query parameter (Plivo's included) sorted as k=v&k=v.
    POST: the URL, "?", the configured query sorted as k=v&..., "." if there was a query, then every
    body field sorted as k+v (an empty body signs just the URL and its query).
    """
    base = _base_url(request.url)
    try:
        query = parse_qs(urlparse(request.url).query, keep_blank_values=True, max_num_fields=_MAX_FORM_FIELDS)
    except ValueError as exc:
        raise SignatureError("request URL query is malformed") from exc
    sorted_query = "&".join(f"{key}={value}" for key in sorted(query) for value in sorted(query[key]))
    if request.method.upper() == "GET":
        return base + ("?" + sorted_query if sorted_query else "")
    params = _signed_params(request)
    if not params:
        return base + ("?" + sorted_query if sorted_query else "")
    return base + "?" + sorted_query + ("." if sorted_query else "") + params


def _signed_params(request: WebhookRequest) -> str:
    """The body's fields as V3 signs them: sorted names, each followed by its (sorted) values."""
    content_type = _content_type(request)
    try:
        if content_type in _JSON_TYPES or content_type.endswith("+json"):
            data = json.loads(request.body)
            if not isinstance(data, dict):
                raise PayloadError("JSON body is not an object")
            return _json_param_string(data)
        if content_type not in _FORM_TYPES:
            raise PayloadError(f"unsupported content type {content_type[:60]!r}")
        form = _parse_form(request.body)
    except PayloadError:
        raise
    except (ValueError, RecursionError, TypeError) as exc:  # UnicodeDecodeError, JSONDecodeError
        # A body that can't be read is a payload problem (400), not a forged signature.
        raise PayloadError(f"body is not valid {content_type[:60] or 'form data'}") from exc
    return "".join(key + value for key in sorted(form) for value in sorted(form[key]))


def _json_param_string(data: Mapping[str, Any]) -> str:
    """The SDK's rendering of a JSON body: str() of scalars, sorted lists, nested objects recursively."""
    out: list[str] = []
    for key in sorted(data):
        value = data[key]
        if isinstance(value, dict):
            out.append(key + _json_param_string(value))
        elif isinstance(value, list):
            if not all(isinstance(v, str | int | float | bool) or v is None for v in value):
                raise PayloadError("unsupported JSON body")
            out.append("".join(key + str(v) for v in sorted(str(v) for v in value)))
        else:
            out.append(key + str(value))
    return "".join(out)


# -- payload helpers --------------------------------------------------------------------------------

_FORM_TYPES: Final = ("", "application/x-www-form-urlencoded")
_JSON_TYPES: Final = ("application/json", "text/json")


def _content_type(request: WebhookRequest) -> str:
    return (request.header("content-type") or "").split(";")[0].strip().lower()


def _parse_form(body: bytes) -> dict[str, list[str]]:
    """Form fields from the raw bytes, blank values kept (V3 signs MessageIntent= too)."""
    return parse_qs(
        body.decode("utf-8"),
        keep_blank_values=True,
        encoding="utf-8",
        errors="strict",
        max_num_fields=_MAX_FORM_FIELDS,
    )


def _request_fields(request: WebhookRequest) -> dict[str, str]:
    """The first value of each field of a form POST, a GET (query parameters) or a flat JSON object."""
    content_type = _content_type(request)
    try:
        if request.method.upper() == "GET" and not request.body:
            query = urlparse(request.url).query
            fields = parse_qs(query, keep_blank_values=True, max_num_fields=_MAX_FORM_FIELDS)
        elif content_type in _FORM_TYPES:
            fields = _parse_form(request.body)
        elif content_type in _JSON_TYPES or content_type.endswith("+json"):
            return _json_fields(request.body)
        else:
            raise PayloadError(f"unsupported content type {content_type[:60]!r}")
    except PayloadError:
        raise
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError included
        raise PayloadError(f"body is not valid {content_type[:60] or 'form data'}") from exc
    return {name: values[0] for name, values in fields.items() if values}


def _json_fields(body: bytes) -> dict[str, str]:
    data = json.loads(body)
    if not isinstance(data, dict):
        raise PayloadError("JSON body is not an object")
    fields: dict[str, str] = {}
    for name, value in data.items():
        if isinstance(value, bool):
            fields[name] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            fields[name] = str(value)
    return fields


def _required(fields: Mapping[str, str], name: str) -> str:
    value = fields.get(name, "").strip()
    if not value:
        raise PayloadError(f"{name} is missing")
    return value


def _number(value: str) -> str:
    """A number in E.164: Plivo writes international numbers as bare digits (14155551234), and
    without the `+` a ten-digit one such as 6598765432 (Singapore) would read as North American.
    Short codes (at most 6 digits) and alphanumeric senders are passed through as written."""
    international = value.isascii() and value.isdigit() and 7 <= len(value) <= 15 and value[0] != "0"
    return f"+{value}" if international else value


def _positive_int(value: str | None) -> int | None:
    """A count we only display: a malformed one must not cost us the customer's text."""
    text = (value or "").strip()
    if not text.isascii() or not text.isdigit() or len(text) > 6:
        return None
    number = int(text)
    return number if number > 0 else None


def _error_code(value: str | None) -> str | None:
    """Plivo's ErrorCode, without padding; None for blank and for "000" (no error)."""
    text = (value or "").strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        text = text.lstrip("0")
        return text or None
    return text[:40]


def _part_info(value: str | None) -> tuple[int | None, int | None]:
    """(part, parts) from PartInfo "2 of 3"; (None, None) for whole messages and for nonsense."""
    match = _PART_INFO.fullmatch(value or "")
    if match is None:
        return None, None
    part, parts = int(match.group(1)), int(match.group(2))
    if parts < 2 or not 1 <= part <= parts:
        return None, None
    return part, parts


def _media(fields: Mapping[str, str], uuid: str) -> tuple[ParsedMedia, ...]:
    """Media<n> in order, found by key (Plivo numbers them from 1; older docs say 0), so a bogus
    MediaCount can't steer a loop. Only canonical indexes count ("Media3", not "Media03"), each
    read under its own name."""
    found = sorted(
        (int(name[5:]), name[5:])
        for name in fields
        if name.startswith("Media") and _media_index(name[5:]) and fields[name].strip()
    )
    media = tuple(
        ParsedMedia(
            url=fields[f"Media{index}"].strip(), content_type=fields.get(f"MediaContentType{index}") or None
        )
        for _, index in found
    )
    declared = _positive_int(fields.get("MediaCount"))
    if declared is not None and declared != len(media):
        logger.warning("plivo %s: MediaCount=%s but %d media URLs", uuid[:60], declared, len(media))
    return media


def _media_index(text: str) -> bool:
    """A media field's index as Plivo writes it: decimal, no leading zero, at most 3 digits."""
    return 0 < len(text) <= 3 and text.isascii() and text.isdigit() and (text == "0" or text[0] != "0")


def _parse_time(value: object) -> datetime | None:
    """Plivo's "YYYY-mm-dd HH:MM:SS.ffffff" (UTC unless an offset is given); None if unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: e.g. year 9999 with a negative offset
        return None


def _occurred_at(fields: Mapping[str, str], word: str) -> datetime:
    names = _STATUS_TIMES.get(word, ("DeliveryReportTime", "SentTime", "QueuedTime", "MessageTime"))
    for name in names:
        moment = _parse_time(fields.get(name))
        if moment is not None:
            return moment
    return datetime.now(UTC)


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _digits(number: object) -> str:
    return "".join(c for c in number if c.isdigit()) if isinstance(number, str) else ""


# -- send helpers -----------------------------------------------------------------------------------


def _error_text(data: Mapping[str, Any]) -> str:
    """Plivo's "error" as one line (it is usually a string, sometimes an object of field errors)."""
    error = data.get("error")
    if isinstance(error, str):
        text = error
    elif isinstance(error, dict | list):
        text = json.dumps(error, separators=(",", " "), ensure_ascii=False)
    else:
        text = ""
    return " ".join(text.split())[:200]


def _listed_match(item: object, text: OutboundText, start: datetime) -> tuple[datetime, SendAccepted] | None:
    if not isinstance(item, dict):
        return None
    uuid = item.get("message_uuid")
    if not isinstance(uuid, str) or not uuid:
        return None
    direction = item.get("message_direction")
    if direction is not None and direction != "outbound":
        return None
    if _digits(item.get("from_number")) != _digits(text.from_number):
        return None
    if _digits(item.get("to_number")) != _digits(text.to_number):
        return None
    moment = _parse_time(item.get("message_time"))
    if moment is not None and moment < start:
        return None
    state = item.get("message_state")
    units = item.get("units")
    return moment or datetime.max.replace(tzinfo=UTC), SendAccepted(
        carrier_message_id=uuid,
        carrier_status=state if isinstance(state, str) and state else "queued",
        segments=units if isinstance(units, int) and not isinstance(units, bool) and units > 0 else None,
    )


def _send_outcome(response: requests.Response) -> SendOutcome:
    from parley.carriers.http import json_object

    status = response.status_code
    data = json_object(response)
    if 200 <= status < 300:
        uuids = data.get("message_uuid")
        first = uuids[0] if isinstance(uuids, list) and uuids else uuids
        if isinstance(first, str) and first:
            return SendAccepted(carrier_message_id=first, carrier_status="queued", segments=None)
        if data.get("invalid_number"):
            kind, reason = _INVALID_NUMBER
            return SendFailed(kind, reason, None, status)
        reason = "the carrier accepted the request but returned no message id; checking before any retry"
        return SendFailed(FailureKind.AMBIGUOUS, reason, None, status)
    if 300 <= status < 400:
        reason = f"the carrier API redirected us (HTTP {status}); check the API base URL"
        return SendFailed(FailureKind.PERMANENT, reason, None, status)
    raw_code = data.get("error_code")
    code = (
        _error_code(str(raw_code))
        if isinstance(raw_code, int | str) and not isinstance(raw_code, bool)
        else None
    )
    kind, reason = classify_error(code, status)
    opted_out = code == OPTED_OUT_CODE
    if (
        400 <= status < 500
        and status not in (401, 403, 404, 429)
        and (code is None or code not in ERROR_CODES)
    ):
        words = _error_text(data)
        hint = _from_words(words)
        if hint is not None:
            (kind, reason), opted_out = hint
        elif words:
            reason = f"carrier rejected the message: {words}"
    asked = parse_retry_after(response.headers.get("Retry-After"))
    return SendFailed(kind, reason, code, status, opted_out, retry_after=asked)


def _from_words(words: str) -> tuple[tuple[FailureKind, str], bool] | None:
    lowered = words.lower()
    for needles, verdict, opted_out in _ERROR_WORDS:
        if any(n in lowered for n in needles):
            return verdict, opted_out
    return None


def _log_outcome(text: OutboundText, outcome: SendOutcome) -> None:
    if isinstance(outcome, SendAccepted):
        logger.info(
            "plivo accepted %s to %s as %s (%s)",
            text.message_id,
            mask(text.to_number),
            outcome.carrier_message_id,
            outcome.carrier_status,
        )
    else:
        logger.warning(
            "plivo send %s to %s failed: %s, code=%s, http=%s, opted_out=%s",
            text.message_id,
            mask(text.to_number),
            outcome.kind,
            outcome.error_code,
            outcome.http_status,
            outcome.opted_out,
        )
