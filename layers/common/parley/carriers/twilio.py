"""Twilio Programmable Messaging: signature check, webhook parser, send call and error classes.

Twilio signs the URL it called plus the form fields, has no replay protection and no idempotency
for message creation, so this module is strict on signatures and careful to tell "Twilio never got
it" (retry) from "Twilio may have it" (reconcile first, or the customer gets the text twice).

Twilio answers STOP, START and HELP itself by default on long codes and toll-free, so those keywords
come flagged (Parley records the consent change and, where Twilio answered, sends no second answer:
never on a short code, see domain/keywords.py) unless PARLEY_TWILIO_SELF_MANAGED_OPT_OUTS is true:
Twilio's keyword handling is off for our numbers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qs, quote, urlsplit

from parley.carriers.base import (
    FailureKind,
    FetchedMedia,
    LookupUnavailable,
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
from parley.domain.keywords import normalized
from parley.domain.retry import parse_retry_after
from parley.domain.vocabulary import MessageStatus
from parley.redact import mask

if TYPE_CHECKING:
    import requests

logger = logging.getLogger(__name__)

SIGNATURE_HEADER: Final = "X-Twilio-Signature"
SIGNATURE_SETTINGS_HEADER: Final = "X-Twilio-Webhooks-Signature-Settings"
EMPTY_TWIML: Final = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
_MAX_FORM_FIELDS: Final = 1000  # Twilio sends a few dozen; bounds the work a forged body can cause
# Where MediaUrl<N> points: api.twilio.com (or a regional api.<edge>.<region>.twilio.com), which
# "enforces HTTP Basic Authentication for all media URLs" (carriers.md 1.1) and answers with a redirect
# to Twilio's media CDN. The account credentials go to twilio.com hosts only; the CDN gets none.
MEDIA_HOSTS: Final = ("twilio.com",)
# The keywords Twilio answers itself on long codes and toll-free, and blocks or unblocks the pair
# for, by default (carriers.md 1.5), without saying so in the webhook unless Advanced Opt-Out is on.
TWILIO_KEYWORDS: Final = {
    **dict.fromkeys(("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"), "STOP"),
    **dict.fromkeys(("START", "UNSTOP", "YES"), "START"),
    **dict.fromkeys(("HELP", "INFO"), "HELP"),
}

_HashFactory = Callable[[], Any]
_ALGORITHMS: Final[dict[str, _HashFactory]] = {
    "HMAC_SHA1": hashlib.sha1,
    "HMAC_SHA256": hashlib.sha256,
}
_DEFAULT_PORTS: Final = {"https": "443", "http": "80"}

STATUS_MAP: Final[dict[str, MessageStatus]] = {
    "queued": MessageStatus.QUEUED,
    "accepted": MessageStatus.ACCEPTED,
    "scheduled": MessageStatus.SCHEDULED,
    "sending": MessageStatus.SENDING,
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "undelivered": MessageStatus.UNDELIVERED,
    "failed": MessageStatus.FAILED,
    "read": MessageStatus.READ,
    "partially_delivered": MessageStatus.PARTIALLY_DELIVERED,
    "canceled": MessageStatus.CANCELED,
    "receiving": MessageStatus.RECEIVED,
    "received": MessageStatus.RECEIVED,
}

_P, _T = FailureKind.PERMANENT, FailureKind.TRANSIENT
# Twilio error code -> (class, words a salesperson understands). Sources: carriers.md section 1.4.
ERROR_CODES: Final[dict[str, tuple[FailureKind, str]]] = {
    "20003": (_P, "the carrier rejected our credentials (check the Twilio account settings)"),
    "20429": (_T, "the carrier is rate limiting us; it will be retried"),
    "21211": (_P, "the number is not a valid phone number"),
    "21212": (_P, "our sending number is not valid for this account"),
    "21408": (_P, "texting this country is not enabled on our account"),
    "21602": (_P, "the message is empty"),
    "21606": (_P, "our sending number can't send text messages"),
    "21608": (_P, "the trial account can only text verified numbers"),
    "21610": (_P, "the recipient has opted out (replied STOP)"),
    "21611": (_T, "too many of our sending number's texts are waiting at the carrier; it will be retried"),
    "21612": (_P, "the carrier can't deliver texts between these two numbers"),
    "21614": (_P, "the number is not a mobile number and can't receive texts"),
    "21617": (_P, "the message is too long"),
    "21635": (_P, "the number is a landline"),
    "30003": (_T, "the recipient's phone is unreachable (switched off or out of coverage)"),
    "30005": (_P, "the number is unknown or no longer in service"),
    "30006": (_P, "the number is a landline or its carrier can't be reached"),
    "30007": (_P, "the recipient's carrier blocked the message as spam"),
    "30008": (_T, "the carrier reported an unknown delivery error"),
    "63038": (_T, "the account reached its daily message limit; it will be retried"),
}

# Sender-side limits that take a while to clear: the next try waits at least this many seconds.
# 21611: the number's queue holds hours of texts at its rate; 63038: a daily limit.
MIN_WAIT_SECONDS: Final[dict[str, float]] = {"21611": 300.0, "63038": 900.0}


# Codes only a delivery receipt carries (they come after Twilio accepted the text): `classify_error`
# reads them for a receipt (no HTTP status), so a receipt's retry and a bulk resend agree.
_RECEIPT_CODES: Final[dict[str, tuple[FailureKind, str]]] = {
    "30001": (FailureKind.TRANSIENT, "Twilio's queue for our number overflowed before the text went out"),
}

# Codes meaning the recipient opted out (replied STOP): Parley records the opt-out too.
OPTED_OUT_CODES: Final = frozenset({"21610"})


def classify_error(code: str | None, http_status: int | None) -> tuple[FailureKind, str]:
    """Class and plain reason for a Twilio error, from an API response or a receipt's ErrorCode.

    HTTP 429/20429 means Twilio did not process the request; a 5xx means it may have, and since
    Twilio has no idempotency for messages the caller has to reconcile before trying again.
    """
    code = (code or "").strip() or None
    if http_status == 429 or code == "20429":
        return ERROR_CODES["20429"]
    if http_status is not None and http_status >= 500:
        return FailureKind.AMBIGUOUS, f"carrier server error (HTTP {http_status})"
    if code is not None and code in ERROR_CODES:
        return ERROR_CODES[code]
    if http_status is None and code is not None and code in _RECEIPT_CODES:
        return _RECEIPT_CODES[code]
    if http_status in (408, 425):
        return FailureKind.TRANSIENT, f"the carrier timed out reading our request (HTTP {http_status})"
    if http_status == 401:
        return ERROR_CODES["20003"]
    if http_status is not None:
        detail = f"error {code}" if code else f"HTTP {http_status}"
        return FailureKind.PERMANENT, f"carrier rejected the message ({detail})"
    if code is not None:
        return FailureKind.PERMANENT, f"the carrier could not deliver the message (error {code})"
    return FailureKind.PERMANENT, "the carrier could not deliver the message"


RECEIVED_PAGE_SIZE: Final = 100
RECEIVED_PAGES: Final = 10  # per number and sweep: 1,000 texts in one window is far past any line's pace
# find_sent reads one conversation's whole list (one sender, one recipient) at Twilio's largest page.
SEARCH_PAGE_SIZE: Final = 1000
SEARCH_PAGES: Final = 5
SEARCH_CLOCK_SKEW: Final = timedelta(minutes=1)  # between our clock and Twilio's date_created


class TwilioLookupError(RuntimeError):
    """A message lookup failed for a reason other than "no such message"; try again later."""


class TwilioCarrier:
    """The Twilio plugin. Holds the account credentials and one HTTP session.

    `secondary_auth_tokens` are also accepted when verifying webhooks: during an Auth Token
    rotation, and for the SharedKey secret of a Webhooks Rule (HMAC-SHA256 signatures).
    """

    name = "twilio"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        api_base: str = "https://api.twilio.com",
        timeout: float = 10.0,
        session: requests.Session | None = None,
        secondary_auth_tokens: tuple[str, ...] = (),
        media_hosts: tuple[str, ...] = MEDIA_HOSTS,
        media_hosts_extra: tuple[str, ...] = (),
        self_managed_opt_outs: bool = False,
    ) -> None:
        """`media_hosts`: where media is fetched, with the credentials (MEDIA_HOSTS by default).
        `media_hosts_extra`: hosts (or host:port) also trusted for media, http allowed; for the
        local simulator only (PARLEY_TWILIO_MEDIA_HOSTS_EXTRA). `self_managed_opt_outs`: Twilio's
        own keyword handling is off for our numbers, so Parley answers STOP, START and HELP."""
        self.self_managed_opt_outs = self_managed_opt_outs
        self.account_sid = account_sid
        self._auth_token = auth_token
        self._secondary_auth_tokens = tuple(secondary_auth_tokens)
        self.api_base = api_base.rstrip("/")
        self.timeout = timeout
        self._session_override = session
        self._http: requests.Session | None = None
        self.media_hosts = tuple(media_hosts)
        self.media_hosts_extra = tuple(media_hosts_extra)

    @property
    def _session(self) -> requests.Session:
        """Created on first send: the webhook path verifies and parses without loading requests."""
        if self._http is None:
            from parley.carriers.http import new_session

            self._http = self._session_override or new_session()
        return self._http

    def __repr__(self) -> str:  # never show the token
        return f"TwilioCarrier(account_sid={self.account_sid!r}, api_base={self.api_base!r})"

    # -- webhooks -------------------------------------------------------------------------------

    def verify(self, request: WebhookRequest) -> None:
        """Raise SignatureError unless X-Twilio-Signature matches one of our tokens."""
        signature = (request.header(SIGNATURE_HEADER) or "").strip()
        if not signature:
            raise SignatureError("missing X-Twilio-Signature header")
        keys = [t for t in (self._auth_token, *self._secondary_auth_tokens) if t.strip()]  # blank: no key
        if not keys:
            raise SignatureError("no Twilio auth token configured")
        digest = _signature_algorithm(request.header(SIGNATURE_SETTINGS_HEADER))

        query = parse_qs(urlsplit(request.url).query, keep_blank_values=True)
        body_hash = query.get("bodySHA256")
        params: dict[str, list[str]] = {}
        if body_hash:
            # JSON bodies: the signature covers the URL only; the URL carries the body's hash.
            body_ok = hmac.compare_digest(
                hashlib.sha256(request.body).hexdigest().encode(), body_hash[0].strip().lower().encode()
            )
        else:  # a body we can't read is a payload problem (400), not a forged signature
            content_type = _content_type(request)
            if content_type == "application/json" or content_type.endswith("+json"):
                raise PayloadError("a JSON body needs bodySHA256 in the webhook URL")
            if request.body and content_type not in ("", "application/x-www-form-urlencoded"):
                raise PayloadError(f"unsupported content type {content_type[:60]!r}")
            try:
                params = _form_of(request)
            except ValueError as exc:
                raise PayloadError("body is not valid form data (UTF-8 form fields expected)") from exc
            body_ok = True

        signed_params = _param_string(params)
        given = signature.encode()
        matched = any(
            hmac.compare_digest(
                base64.b64encode(hmac.new(key.encode(), (url + signed_params).encode(), digest).digest()),
                given,
            )
            for key in keys
            for url in _url_variants(request.url)
        )
        if not matched:
            raise SignatureError("signature does not match")
        if not body_ok:
            raise SignatureError("body does not match bodySHA256")

    def parse(self, kind: WebhookKind, request: WebhookRequest) -> list[ParsedEvent]:
        """Turn a verified inbound-message or status webhook into one canonical event."""
        fields = _request_fields(request)
        raw = {name: values[0] for name, values in fields.items() if values}
        sid = _first(raw, "MessageSid", "SmsMessageSid", "SmsSid")
        if sid is None:
            raise PayloadError("MessageSid is missing")
        if kind == WebhookKind.EVENTS:  # one URL for both: a receipt carries MessageStatus
            word = (_first(raw, "MessageStatus", "SmsStatus") or "").lower()
            kind = WebhookKind.MESSAGES if word in ("", "received", "receiving") else WebhookKind.STATUS
        if kind == WebhookKind.MESSAGES:
            word = (_first(raw, "MessageStatus", "SmsStatus") or "received").lower()
            if word not in ("received", "receiving"):
                raise PayloadError(f"a status callback ({word[:40]!r}) arrived at the inbound-messages URL")
            return [self._inbound(sid, raw)]
        return [self._status(sid, raw)]

    def ack(self, kind: WebhookKind) -> WebhookAck:
        """Empty TwiML for both kinds: a 2xx stops Twilio retrying, and it tells Twilio to send nothing."""
        return WebhookAck(status_code=200, body=EMPTY_TWIML, content_type="text/xml")

    def _inbound(self, sid: str, raw: dict[str, str]) -> ParsedInbound:
        opt_out = (raw.get("OptOutType") or "").strip().upper()  # only with Advanced Opt-Out
        if opt_out not in ("STOP", "START", "HELP") and not self.self_managed_opt_outs:
            opt_out = TWILIO_KEYWORDS.get(normalized(raw.get("Body", "")), "")
        return ParsedInbound(
            carrier=self.name,
            carrier_message_id=sid,
            from_number=_number(raw, "From"),
            to_number=_number(raw, "To"),
            body=raw.get("Body", ""),
            media=_media(raw, sid),
            segments=_int_or_none(raw.get("NumSegments")),
            opt_out=opt_out if opt_out in ("STOP", "START", "HELP") else None,  # type: ignore[arg-type]
            raw=raw,
        )

    def _status(self, sid: str, raw: dict[str, str]) -> ParsedStatus:
        word = (_first(raw, "MessageStatus", "SmsStatus") or "").strip().lower()
        if not word:
            raise PayloadError("MessageStatus is missing")
        status = STATUS_MAP.get(word)
        if status is None:
            raise PayloadError(f"unknown Twilio message status {word!r}")
        error_code = _first(raw, "ErrorCode")
        retryable, reason = False, None
        if error_code:
            code = error_code.strip()
            retryable, reason = receipt_failure(*self.classify(code, None))
        return ParsedStatus(
            carrier=self.name,
            carrier_message_id=sid,
            status=status,
            carrier_status=word,
            error_code=error_code,
            error_message=_first(raw, "ErrorMessage") or reason,
            opted_out=error_code in OPTED_OUT_CODES,
            retryable=retryable,
            raw=raw,
        )

    def classify(self, error_code: str | None, http_status: int | None) -> tuple[FailureKind, str]:
        return classify_error(error_code, http_status)

    # -- sending ----------------------------------------------------------------------------------

    def send(self, text: OutboundText) -> SendOutcome:
        """POST one message; every carrier or network failure comes back as a classified SendFailed."""
        import requests

        from parley.carriers.http import CONNECT_TIMEOUT_SECONDS, network_failure

        form: list[tuple[str, str]] = [
            ("To", text.to_number),
            ("From", text.from_number),
            ("Body", text.body),
        ]
        if text.status_callback_url:
            form.append(("StatusCallback", text.status_callback_url))
        form.extend(("MediaUrl", url) for url in text.media_urls)
        try:
            response = self._session.post(
                self._url("Messages.json"),
                data=form,
                auth=(self.account_sid, self._auth_token),
                timeout=(CONNECT_TIMEOUT_SECONDS, self.timeout),
                allow_redirects=False,  # a redirected POST would silently become a GET
            )
        except requests.RequestException as exc:
            outcome: SendOutcome = network_failure(exc)
        else:
            outcome = _send_outcome(response)
        _log_outcome(text, outcome)
        return outcome

    def fetch(self, carrier_message_id: str) -> SendAccepted | None:
        """Look a message up to settle an ambiguous send or a parked receipt; None if Twilio has none.

        The result's carrier_status may be a failure word (failed, undelivered): read it.
        """
        import requests

        from parley.carriers.http import CONNECT_TIMEOUT_SECONDS

        try:
            response = self._session.get(
                self._url(f"Messages/{quote(carrier_message_id, safe='')}.json"),
                auth=(self.account_sid, self._auth_token),
                timeout=(CONNECT_TIMEOUT_SECONDS, self.timeout),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise TwilioLookupError(f"message lookup failed: {type(exc).__name__}") from exc
        if response.status_code == 404:
            return None
        accepted = _accepted(response) if response.status_code == 200 else None
        if accepted is None:
            raise TwilioLookupError(f"message lookup failed (HTTP {response.status_code})")
        return accepted

    def find_sent(
        self, text: OutboundText, since: datetime, skip: Collection[str] = ()
    ) -> SendAccepted | None:
        """Find a text Twilio may have created before an ambiguous failure (a 5xx or a read timeout).

        Twilio has no idempotency key for messages, so the only way to avoid a second text is to
        look for one with the same recipient, sender and body created since the first attempt (less
        a little clock skew); the earliest such text wins, leaving out the set-aside `skip`. The list
        is filtered by the two numbers only, not by DateSent: Twilio leaves date_sent empty until it
        has sent a text, so that filter would miss the very text a busy Twilio is still holding in its
        queue. Creation times are compared here instead, and since Twilio orders the list by
        DateSent, with no documented place for texts not yet sent, every page is read
        (next_page_uri), up to SEARCH_PAGES pages.

        Raises TwilioLookupError when the search fails (it is tried again later), and
        LookupUnavailable when there are more pages than that and none of those read holds the text:
        absence is never guessed, and the text goes to a person rather than out a second time.
        """
        start = since.astimezone(UTC) - SEARCH_CLOCK_SKEW
        params: dict[str, str] | None = {
            "To": text.to_number,
            "From": text.from_number,
            "PageSize": str(SEARCH_PAGE_SIZE),
        }
        url = self._url("Messages.json")
        best: tuple[datetime, SendAccepted] | None = None
        for _ in range(SEARCH_PAGES):
            page = self._get_json(url, params, "message search")
            params = None  # the next page's URI carries them
            listed = page.get("messages")
            if not isinstance(listed, list):
                raise TwilioLookupError("message search answered without a message list")
            for item in listed:
                found = _search_match(item, text, start)
                if found is None or found[1].carrier_message_id in skip:
                    continue
                if best is None or found[0] < best[0]:
                    best = found
            next_uri = page.get("next_page_uri")
            if next_uri is None or next_uri == "":
                return best[1] if best else None
            if not (isinstance(next_uri, str) and next_uri.startswith("/")):
                raise TwilioLookupError("message search answered with an unusable next_page_uri")
            url = f"{self.api_base}{next_uri}"
        if best is not None:
            return best[1]
        raise LookupUnavailable(
            f"more than {SEARCH_PAGES * SEARCH_PAGE_SIZE} texts between these numbers to search; "
            "absence can't be proven"
        )

    def list_received(self, our_number: str, since: datetime) -> list[ParsedInbound]:
        """Texts Twilio received for `our_number` since `since`, newest first (ReceivedLookup).

        Twilio filters by calendar day (UTC) and lists newest first, so paging stops at the first
        text older than `since`; at most RECEIVED_PAGES pages a call. A text with pictures costs one
        more request, for its media list.
        """
        params: dict[str, str] | None = {
            "To": our_number,
            "DateSent>": since.astimezone(UTC).strftime("%Y-%m-%d"),
            "PageSize": str(RECEIVED_PAGE_SIZE),
        }
        url: str | None = self._url("Messages.json")
        found: list[ParsedInbound] = []
        for _ in range(RECEIVED_PAGES):
            if url is None:
                return found
            page = self._get_json(url, params, "message list")
            params = None  # the next page's URI carries them
            listed = page.get("messages")
            for item in listed if isinstance(listed, list) else []:
                if not isinstance(item, dict):
                    continue
                sent = _rfc2822(item.get("date_sent")) or _rfc2822(item.get("date_created"))
                if sent is not None and sent < since:
                    return found
                if item.get("direction") == "inbound" and sent is not None:
                    found.append(self._listed_inbound(item, sent))
            next_uri = page.get("next_page_uri")
            url = (
                f"{self.api_base}{next_uri}"
                if isinstance(next_uri, str) and next_uri.startswith("/")
                else None
            )
        logger.warning(
            "twilio: more than %d received texts for %s since %s; the rest wait for the next sweep",
            RECEIVED_PAGES * RECEIVED_PAGE_SIZE,
            mask(our_number),
            since.isoformat(),
        )
        return found

    def _listed_inbound(self, item: Mapping[str, Any], sent: datetime) -> ParsedInbound:
        sid = str(item.get("sid") or "")
        if not sid:
            raise TwilioLookupError("a listed message has no sid")
        media: tuple[ParsedMedia, ...] = ()
        if (_int_or_none(str(item.get("num_media") or "0")) or 0) > 0:
            listed = self._get_json(
                self._url(f"Messages/{quote(sid, safe='')}/Media.json"), None, "media list"
            )
            entries = listed.get("media_list")
            media = tuple(
                ParsedMedia(
                    url=f"{self.api_base}{entry['uri'].removesuffix('.json')}",
                    content_type=entry.get("content_type")
                    if isinstance(entry.get("content_type"), str)
                    else None,
                )
                for entry in (entries if isinstance(entries, list) else [])
                if isinstance(entry, dict)
                and isinstance(entry.get("uri"), str)
                and entry["uri"].startswith("/")
            )
        return ParsedInbound(
            carrier=self.name,
            carrier_message_id=sid,
            from_number=str(item.get("from") or ""),
            to_number=str(item.get("to") or ""),
            body=str(item.get("body") or ""),
            media=media,
            segments=_int_or_none(str(item.get("num_segments") or "")),
            received_at=sent,
            raw={"listed": True},  # found by the sweep, not posted to us
        )

    def _get_json(self, url: str, params: Mapping[str, str] | None, what: str) -> dict[str, Any]:
        import requests

        from parley.carriers.http import CONNECT_TIMEOUT_SECONDS, json_object

        try:
            response = self._session.get(
                url,
                params=params,
                auth=(self.account_sid, self._auth_token),
                timeout=(CONNECT_TIMEOUT_SECONDS, self.timeout),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise TwilioLookupError(f"{what} failed: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise TwilioLookupError(f"{what} failed (HTTP {response.status_code})")
        return json_object(response)

    def _url(self, resource: str) -> str:
        return f"{self.api_base}/2010-04-01/Accounts/{quote(self.account_sid, safe='')}/{resource}"

    # -- media ------------------------------------------------------------------------------------

    def fetch_media(self, url: str) -> FetchedMedia:
        """Download an inbound attachment with the account's Basic credentials (MediaSource).

        MediaRejected for a URL off Twilio's hosts, a gone or oversized file; other exceptions are
        transient. The redirect to Twilio's CDN is followed without the credentials.
        """
        from parley.carriers.http import download

        auth = (self.account_sid, self._auth_token) if self.account_sid and self._auth_token else None
        return download(
            url,
            allowed_hosts=(*self.media_hosts, *self.media_hosts_extra),
            auth=auth,
            timeout=self.timeout,
            extra_hosts=self.media_hosts_extra,
        )


# -- signature helpers ------------------------------------------------------------------------------


def _signature_algorithm(settings_header: str | None) -> _HashFactory:
    """The hash named by X-Twilio-Webhooks-Signature-Settings; no header means HMAC-SHA1."""
    algorithm = "HMAC_SHA1"
    for part in (settings_header or "").split(","):
        name, sep, value = part.partition("=")
        if sep and name.strip().lower() == "algorithm" and value.strip():
            algorithm = value.strip().upper()
            break
    digest = _ALGORITHMS.get(algorithm)
    if digest is None:
        raise SignatureError("unsupported signature algorithm")
    return digest


def _param_string(params: Mapping[str, list[str]]) -> str:
    """Twilio's signed suffix: each name sorted, then each distinct value of it sorted, as name+value."""
    return "".join(name + value for name in sorted(params) for value in sorted(set(params[name])))


def _url_variants(url: str) -> list[str]:
    """The URL as given plus the same URL with the default port added or removed.

    Twilio signs with or without :443/:80 depending on the path through its platform; its own
    validator accepts both. A non-default port is never dropped.
    """
    scheme_end = url.find("://")
    if scheme_end < 0:
        return [url]
    default_port = _DEFAULT_PORTS.get(url[:scheme_end].lower())
    if default_port is None:
        return [url]
    start = scheme_end + 3
    end = min((i for i in (url.find(c, start) for c in "/?#") if i != -1), default=len(url))
    netloc = url[start:end]
    userinfo, at, hostport = netloc.rpartition("@")
    prefix = userinfo + at
    if hostport.startswith("["):  # IPv6 literal
        close = hostport.find("]")
        host, rest = hostport[: close + 1], hostport[close + 1 :]
        port = rest[1:] if rest.startswith(":") else None
    else:
        host, sep, port_text = hostport.partition(":")
        port = port_text if sep else None
    if port is None:
        other = f"{host}:{default_port}"
    elif port == default_port:
        other = host
    else:
        return [url]
    return [url, url[:start] + prefix + other + url[end:]]


# -- payload helpers --------------------------------------------------------------------------------


def _content_type(request: WebhookRequest) -> str:
    return (request.header("content-type") or "").split(";")[0].strip().lower()


def _parse_form(body: bytes) -> dict[str, list[str]]:
    """Form fields from the raw bytes, blank values kept (Twilio signs ToCity= too)."""
    return parse_qs(
        body.decode("utf-8"),
        keep_blank_values=True,
        encoding="utf-8",
        errors="strict",
        max_num_fields=_MAX_FORM_FIELDS,
    )


def _form_of(request: WebhookRequest) -> dict[str, list[str]]:
    """The form body, decoded once per request (verify and parse both need it)."""
    form = request.memo.get("twilio_form")
    if form is None:
        form = request.memo["twilio_form"] = _parse_form(request.body)
    return form


def _request_fields(request: WebhookRequest) -> dict[str, list[str]]:
    """Fields of a form POST, a GET (Twilio's method is configurable) or a flat JSON object."""
    content_type = _content_type(request)
    try:
        if request.method.upper() == "GET" and not request.body:
            query = urlsplit(request.url).query
            return parse_qs(query, keep_blank_values=True, max_num_fields=_MAX_FORM_FIELDS)
        if content_type in ("", "application/x-www-form-urlencoded"):
            return _form_of(request)
        if content_type == "application/json" or content_type.endswith("+json"):
            return _json_fields(request.body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError included
        raise PayloadError(f"body is not valid {content_type or 'form data'}") from exc
    raise PayloadError(f"unsupported content type {content_type!r}")


def _json_fields(body: bytes) -> dict[str, list[str]]:
    data = json.loads(body)
    if not isinstance(data, dict):
        raise PayloadError("JSON body is not an object")
    fields: dict[str, list[str]] = {}
    for name, value in data.items():
        if isinstance(value, bool):
            fields[name] = ["true" if value else "false"]
        elif isinstance(value, str | int | float):
            fields[name] = [str(value)]
    return fields


def _first(raw: Mapping[str, str], *names: str) -> str | None:
    """The first of `names` present with a non-blank value (Twilio still sends legacy SmsSid etc.)."""
    for name in names:
        value = raw.get(name, "").strip()
        if value:
            return value
    return None


def _number(raw: Mapping[str, str], name: str) -> str:
    """As Twilio wrote it; the processor normalises to E.164 (short codes and channels stay as they are)."""
    value = raw.get(name, "").strip()
    if not value:
        raise PayloadError(f"{name} is missing")
    return value


def _int_or_none(value: str | None) -> int | None:
    """A count we only display: a malformed one must not cost us the customer's text."""
    try:
        return int(value) if value is not None and value.strip() else None
    except ValueError:
        return None


def _media(raw: Mapping[str, str], sid: str) -> tuple[ParsedMedia, ...]:
    """MediaUrl0..N with MediaContentType0..N, found by key so a bogus NumMedia can't steer a loop.

    Only canonical indexes count ("MediaUrl3", not "MediaUrl03"): each URL is read under its own
    name, so "MediaUrl0" and "MediaUrl00" can't stand for one another.
    """
    found = sorted(
        (int(name[8:]), name[8:])
        for name in raw
        if name.startswith("MediaUrl") and _media_index(name[8:]) and raw[name]
    )
    media = tuple(
        ParsedMedia(url=raw[f"MediaUrl{index}"], content_type=raw.get(f"MediaContentType{index}") or None)
        for _, index in found
    )
    declared = _int_or_none(raw.get("NumMedia"))
    if declared is not None and declared != len(media):
        logger.warning("twilio %s: NumMedia=%s but %d media URLs", sid, declared, len(media))
    return media


def _media_index(text: str) -> bool:
    """A media field's index as Twilio writes it: decimal, no leading zero, at most 3 digits."""
    return 0 < len(text) <= 3 and text.isascii() and text.isdigit() and (text == "0" or text[0] != "0")


def _rfc2822(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


# -- send helpers -----------------------------------------------------------------------------------


def _search_match(item: object, text: OutboundText, start: datetime) -> tuple[datetime, SendAccepted] | None:
    """A listed message that is this text, created at or after `start`: (created, the message)."""
    if not isinstance(item, dict) or item.get("body") != text.body:
        return None
    if item.get("to") != text.to_number or item.get("from") != text.from_number:
        return None
    sid = item.get("sid")
    if not isinstance(sid, str) or not sid:
        return None
    created = _rfc2822(item.get("date_created"))
    if created is not None and created < start:
        return None
    status = item.get("status")
    return created or start, SendAccepted(
        sid, status if isinstance(status, str) and status else "queued", None
    )


def _accepted(response: requests.Response) -> SendAccepted | None:
    from parley.carriers.http import json_object

    data = json_object(response)
    sid = data.get("sid")
    if not isinstance(sid, str) or not sid:
        return None
    status = data.get("status")
    segments = _int_or_none(str(data.get("num_segments") or ""))
    return SendAccepted(
        carrier_message_id=sid,
        carrier_status=status if isinstance(status, str) and status else "queued",
        segments=segments or None,  # Twilio reports 0 until a Messaging Service has split it
    )


def _send_outcome(response: requests.Response) -> SendOutcome:
    from parley.carriers.http import json_object

    status = response.status_code
    if 200 <= status < 300:
        accepted = _accepted(response)
        if accepted is not None:
            return accepted
        return SendFailed(
            FailureKind.AMBIGUOUS, "the carrier accepted the request but returned no message id", None, status
        )
    if 300 <= status < 400:
        reason = f"the carrier API redirected us (HTTP {status}); check the API base URL"
        return SendFailed(FailureKind.PERMANENT, reason, None, status)
    data = json_object(response)
    raw_code = data.get("code")
    code = str(raw_code) if isinstance(raw_code, int | str) and str(raw_code) else None
    kind, reason = classify_error(code, status)
    message = next((data[k] for k in ("message", "detail", "title") if isinstance(data.get(k), str)), "")
    if 400 <= status < 500 and kind is FailureKind.PERMANENT and code not in ERROR_CODES and message:
        reason = f"carrier rejected the message: {message}"
    asked = parse_retry_after(response.headers.get("Retry-After"))
    wait = max(asked or 0.0, MIN_WAIT_SECONDS.get(code or "", 0.0)) or None
    return SendFailed(kind, reason, code, status, opted_out=code in OPTED_OUT_CODES, retry_after=wait)


def _log_outcome(text: OutboundText, outcome: SendOutcome) -> None:
    if isinstance(outcome, SendAccepted):
        logger.info(
            "twilio accepted %s to %s as %s (%s)",
            text.message_id,
            mask(text.to_number),
            outcome.carrier_message_id,
            outcome.carrier_status,
        )
    else:
        logger.warning(
            "twilio send %s to %s failed: %s, code=%s, http=%s",
            text.message_id,
            mask(text.to_number),
            outcome.kind,
            outcome.error_code,
            outcome.http_status,
        )


def build(config: CarrierConfig) -> TwilioCarrier:
    """The Twilio plugin from PARLEY_TWILIO_* (the auth token from SSM on AWS).

    Previous auth tokens (during a rotation) and Webhooks Rules' SharedKey secrets are accepted
    for verification only, from PARLEY_TWILIO_AUTH_TOKEN_PREVIOUS (or `<parameter>/previous`) and
    PARLEY_TWILIO_SHARED_KEYS (or the optional parameter PARLEY_TWILIO_SHARED_KEYS_PARAM, read in
    the auth token's SSM call). PARLEY_TWILIO_MEDIA_HOSTS_EXTRA (local simulator only) adds trusted
    media hosts.
    """
    tokens = config.secrets("twilio_auth_token", read_with=("twilio_shared_keys",))
    shared = config.secret_list("twilio_shared_keys")
    return TwilioCarrier(
        config.get("twilio_account_sid"),
        tokens[0] if tokens else "",
        api_base=config.get("twilio_api_base", "https://api.twilio.com"),
        timeout=config.timeout,
        secondary_auth_tokens=(*tokens[1:], *shared),
        media_hosts=config.media_hosts(MEDIA_HOSTS),
        media_hosts_extra=config.get_list("twilio_media_hosts_extra"),
        self_managed_opt_outs=config.get("twilio_self_managed_opt_outs").strip().lower()
        in ("1", "true", "yes"),
    )
