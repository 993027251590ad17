"""Bandwidth Messaging API v2: callback check, event parser, send call, message search and error classes.

Bandwidth posts every event for an application (inbound texts and delivery receipts) to one URL as a
JSON array, authenticated only by the HTTP Basic credentials configured on the application: there is
no body signature and no timestamp, so duplicates and replays are handled by the processor's dedupe
on message id + event type. Sending has no idempotency key; `tag` carries our message id into the
receipts, and `find_sent` searches Bandwidth's message records (which never hold the text) to settle
an ambiguous send before any retry.

Standard library only at module level: the webhook path has a cold-start budget. `requests` (and
`parley.carriers.http`, which loads urllib3) are imported inside the functions that call the API.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

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
    "DEFAULT_API_BASE",
    "ERROR_CODES",
    "STATUS_MAP",
    "BandwidthCarrier",
    "BandwidthLookupError",
    "build",
    "classify_error",
]

logger = logging.getLogger(__name__)

DEFAULT_API_BASE: Final = "https://messaging.bandwidth.com"
MAX_TEXT_CHARS: Final = 2048  # Bandwidth rejects longer text fields
MAX_EVENTS: Final = 100  # Bandwidth batches a handful; as many as the webhook queues in its deadline
LOOKUP_PAGE_SIZE: Final = 100
LOOKUP_MAX_PAGES: Final = 10
LOOKUP_CLOCK_SKEW: Final = timedelta(minutes=1)
INBOUND_TYPE: Final = "message-received"
# Inbound media URLs: https://messaging.bandwidth.com/api/v2/users/{accountId}/media/... (carriers.md
# 5.1), downloadable for two days with the API user's Basic credentials, which go to this host only.
MEDIA_HOSTS: Final = ("messaging.bandwidth.com",)

_P, _T = FailureKind.PERMANENT, FailureKind.TRANSIENT

# Bandwidth event type -> Parley status. message-failed is split by error code in _failed_status.
STATUS_MAP: Final[dict[str, MessageStatus]] = {
    "message-sending": MessageStatus.SENDING,
    "message-sent": MessageStatus.SENT,
    "message-delivered": MessageStatus.DELIVERED,
    "message-failed": MessageStatus.FAILED,
    "message-read": MessageStatus.READ,
}

OPT_OUT_CODE: Final = "4775"

# Bandwidth's four-digit codes (receipts' errorCode) and the `type` of its HTTP error bodies.
# Source: carriers.md section 5.2 and Bandwidth's errors page: 4xxx = "repeating the request will
# produce the same result", 5xxx = service failures worth a retry (carrier 56xx: a single retry).
ERROR_CODES: Final[dict[str, tuple[FailureKind, str]]] = {
    "4001": (_P, "the carrier doesn't allow this kind of message on our account"),
    "4301": (_P, "the message contains characters the carrier can't send"),
    "4302": (_P, "our sending number is not a valid phone number"),
    "4303": (_P, "the number is not a valid phone number"),
    "4350": (_P, "the number is not a valid phone number"),
    "4360": (_P, "the message expired before it could be sent"),
    "4401": (_P, "the carrier can't route the message (are sender and recipient the same number?)"),
    "4403": (_P, "our sending number is not enabled for texting on this account"),
    "4404": (_P, "the number can't receive texts (not active or not enabled for messaging)"),
    "4405": (_P, "our sending number is not active for texting yet"),
    "4406": (_P, "the number is not assigned to any phone company yet"),
    "4407": (_P, "our sending number is not set up on this Bandwidth account"),
    "4408": (_P, "the number is not set up to receive texts"),
    "4409": (_P, "the number can't receive picture messages"),
    "4410": (_P, "the carrier couldn't download the attached media"),
    "4411": (_P, "the attachments are too large"),
    "4412": (_P, "the attachment type is not supported"),
    "4420": (_P, "there is no route to the recipient's phone company"),
    "4421": (_P, "our account is not allowed to text this destination"),
    "4431": (_P, "our account is not set up for short code texting"),
    "4432": (_P, "texting this country is not enabled on our account"),
    "4433": (_P, "our account is not enabled for toll-free texting"),
    "4434": (_P, "this toll-free number can't receive texts"),
    "4435": (_P, "too many recipients in the group message"),
    "4451": (_P, "the Bandwidth account id is wrong (check the Bandwidth settings)"),
    "4452": (_P, "the Bandwidth application id is wrong (check the Bandwidth settings)"),
    "4470": (_P, "Bandwidth blocked the message as spam"),
    "4481": (_P, "our sending number is blocked after spam complaints"),
    "4482": (_P, "the number is blocked from receiving texts"),
    "4492": (_P, "texting emergency numbers is not allowed"),
    "4493": (_P, "our account is not authorised to send from this number"),
    "4700": (_P, "the number can't receive texts (its carrier or phone doesn't support them)"),
    "4701": (_P, "the number is unreachable and can't receive texts"),
    "4702": (_T, "the recipient's phone is unavailable (switched off, out of coverage or full)"),
    "4711": (_P, "the attachment is too large for the recipient's carrier"),
    "4712": (_P, "the attachment type is not supported by the recipient's carrier"),
    "4720": (_P, "the number is a landline or not a valid mobile number"),
    "4721": (_P, "the number is no longer in service"),
    "4730": (_P, "there is no route to the recipient (they may be roaming abroad)"),
    "4740": (_P, "the recipient's carrier rejected our sending number"),
    "4750": (_P, "the recipient's carrier rejected the message without giving a reason"),
    "4751": (_P, "the message is too long for the recipient's carrier"),
    "4752": (_P, "the recipient's carrier rejected the message as malformed"),
    "4770": (_P, "the recipient's carrier blocked the message as spam"),
    "4771": (_P, "the carrier rejected a shortened link in the message"),
    "4772": (_P, "the sender or the recipient is blocked by the carrier"),
    "4773": (_P, "our 10DLC campaign is not active for the recipient's carrier"),
    "4774": (_P, "our number's 10DLC registration has a problem (contact Bandwidth support)"),
    OPT_OUT_CODE: (_P, "the recipient has opted out (replied STOP)"),
    "4780": (_T, "T-Mobile's daily limit for our brand was exceeded; it will be retried later"),
    "4781": (_T, "AT&T is throttling our campaign; it will be retried later"),
    "4785": (_T, "the carrier is throttling our messages; it will be retried later"),
    "4790": (_P, "the recipient can't receive short code messages"),
    "4791": (_P, "the carrier doesn't allow this short code campaign"),
    "4792": (_P, "our short code is not provisioned with the recipient's carrier"),
    "4793": (_P, "our short code has expired with the recipient's carrier"),
    "4795": (_P, "our toll-free number is not verified yet"),
    "9902": (_P, "no delivery confirmation came back in time; the text may still have arrived"),
    "9999": (_T, "the recipient's carrier reported an unknown error"),
    # HTTP error bodies: {"type": ..., "description": ...}
    "request-validation": (_P, "the carrier rejected the request as invalid"),
    "unauthorized": (_P, "the carrier rejected our credentials (check the Bandwidth API user)"),
    "forbidden": (_P, "our Bandwidth API user is not allowed to send messages"),
    "unsupported-content-type": (_P, "the carrier could not read our request (content type)"),
    "max-message-queue-size-exceeded": (_T, "Bandwidth's queue for our account is full; it will be retried"),
}
_RATE_LIMITED: Final = "max-message-queue-size-exceeded"
_FIELD_REASONS: Final[dict[str, str]] = {
    "to": "the number is not a valid phone number",
    "from": "our sending number is not valid for this Bandwidth account",
    "applicationId": "the Bandwidth application id is wrong (check the Bandwidth settings)",
    "text": "the message text was rejected (too long or invalid characters)",
    "media": "a media link in the message was rejected",
}


def classify_error(code: str | None, http_status: int | None) -> tuple[FailureKind, str]:
    """Class and plain reason for a Bandwidth error: a receipt's errorCode or an HTTP error's type.

    Bandwidth documents that a 4xx or 5xx answer to a send means the message was not sent, so a 5xx
    carrying Bandwidth's own error body is safe to retry. A 5xx without one came from something in
    front of the API (a gateway), and a 504 means the API may still have taken it: reconcile first.
    """
    code = (code or "").strip() or None
    if code == "0":
        code = None  # Bandwidth's message records say errorCode 0 for "no error"
    if http_status == 429 or code == _RATE_LIMITED:
        return ERROR_CODES[_RATE_LIMITED]
    if http_status is not None and http_status >= 500:
        if code is not None and not code.isdigit() and http_status != 504:
            return (
                _T,
                f"Bandwidth had a temporary problem and did not send it (HTTP {http_status}); will retry",
            )
        return FailureKind.AMBIGUOUS, f"carrier server error (HTTP {http_status}); checking before any retry"
    if code is not None and code in ERROR_CODES:
        return ERROR_CODES[code]
    if http_status in (408, 425):
        return _T, f"the carrier timed out reading our request (HTTP {http_status})"
    if http_status == 401:
        return ERROR_CODES["unauthorized"]
    if http_status == 403:
        return ERROR_CODES["forbidden"]
    if http_status == 404:
        return _P, "the Bandwidth account id or API address is wrong (HTTP 404)"
    if http_status is not None:
        detail = f"error {code}" if code else f"HTTP {http_status}"
        return _P, f"carrier rejected the message ({detail})"
    if code is not None and len(code) == 4 and code.isdigit():
        if code[0] == "5":
            return _T, f"a temporary failure at Bandwidth or the recipient's carrier (error {code})"
        if code[:2] == "47":
            return _P, f"the recipient's carrier rejected the message (error {code})"
    if code is not None:
        return _P, f"the carrier could not deliver the message (error {code})"
    return _P, "the carrier could not deliver the message"


class BandwidthLookupError(RuntimeError):
    """A message search failed (network, HTTP error, unreadable or too many results): try later."""


_Secret = str | Callable[[], str]
_Secrets = Sequence[str] | Callable[[], Sequence[str]]


class BandwidthCarrier:
    """The Bandwidth plugin. Holds the account settings and, once it has sent, one HTTP session.

    Passwords may be given as callables so a webhook never pays for reading the API password (an SSM
    call) and a sender never reads the callback password; each is read once, on first use.
    `callback_passwords` lists the current password first, then previous ones during a rotation.
    """

    name = "bandwidth"

    def __init__(
        self,
        *,
        account_id: str,
        username: str,
        password: _Secret,
        application_id: str,
        callback_username: str,
        callback_passwords: _Secrets,
        api_base: str = DEFAULT_API_BASE,
        timeout: float = 10.0,
        session: requests.Session | None = None,
        media_hosts: tuple[str, ...] = MEDIA_HOSTS,
        media_hosts_extra: tuple[str, ...] = (),
    ) -> None:
        """`media_hosts`: where media is fetched, with the credentials (MEDIA_HOSTS by default).
        `media_hosts_extra`: hosts (or host:port) also trusted for media, http allowed; for the
        local simulator only (PARLEY_BANDWIDTH_MEDIA_HOSTS_EXTRA)."""
        self.account_id = account_id.strip()
        self.username = username.strip()
        self.application_id = application_id.strip()
        self.callback_username = callback_username
        self.api_base = (api_base or DEFAULT_API_BASE).rstrip("/")
        self.timeout = timeout
        self._password_source = password
        self._callback_source = callback_passwords
        self._password: str | None = None
        self._callback_passwords: tuple[str, ...] | None = None
        self._session = session
        self.media_hosts = tuple(media_hosts)
        self.media_hosts_extra = tuple(media_hosts_extra)

    def __repr__(self) -> str:  # never show a password
        return f"BandwidthCarrier(account_id={self.account_id!r}, api_base={self.api_base!r})"

    # -- credentials ------------------------------------------------------------------------------

    def _api_password(self) -> str:
        if self._password is None:
            source = self._password_source
            self._password = source() if callable(source) else source
        return self._password

    def _callback_secrets(self) -> tuple[str, ...]:
        if self._callback_passwords is None:
            source = self._callback_source
            values = source() if callable(source) else source
            self._callback_passwords = tuple(v for v in values if v)
        return self._callback_passwords

    # -- webhooks ---------------------------------------------------------------------------------

    def verify(self, request: WebhookRequest) -> None:
        """Raise SignatureError unless the request carries the application's callback credentials.

        HTTP Basic is Bandwidth's only proof of origin (no HMAC, no timestamp), so every configured
        password is compared in constant time, without stopping at the first match.
        """
        passwords = self._callback_secrets()
        if not self.callback_username or not passwords:
            raise SignatureError(
                "no Bandwidth callback credentials configured "
                "(PARLEY_BANDWIDTH_CALLBACK_USERNAME and PARLEY_BANDWIDTH_CALLBACK_PASSWORD)"
            )
        header = (request.header("authorization") or "").strip()
        if not header:
            raise SignatureError("missing Authorization header")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "basic" or not token:
            raise SignatureError("Authorization is not HTTP Basic")
        try:
            given = base64.b64decode(token, validate=True)
        except ValueError:  # binascii.Error, or non-ASCII text
            raise SignatureError("malformed Basic credentials") from None
        matched = False
        for expected in _basic_credentials(self.callback_username, passwords):
            matched |= hmac.compare_digest(given, expected)
        if not matched:
            raise SignatureError("wrong callback credentials")

    def parse(self, kind: WebhookKind, request: WebhookRequest) -> list[ParsedEvent]:
        """Every event in the array that Parley uses, in order; other event types are skipped.

        The kind is not needed: each event names its type, and Bandwidth may post inbound texts and
        receipts to one URL (kind `events`) or, if so configured, to separate ones.
        """
        try:
            data = json.loads(request.body)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError included
            raise PayloadError("body is not valid JSON") from exc
        if not isinstance(data, list):
            raise PayloadError("body is not a JSON array of events")
        if len(data) > MAX_EVENTS:
            raise PayloadError(f"more than {MAX_EVENTS} events in one callback")
        events: list[ParsedEvent] = []
        for index, item in enumerate(data):
            if not isinstance(item, dict):
                raise PayloadError(f"event {index} is not an object")
            event_type = item.get("type")
            if not isinstance(event_type, str) or not event_type.strip():
                raise PayloadError(f"event {index} has no type")
            event_type = event_type.strip()
            if event_type == INBOUND_TYPE:
                events.append(self._inbound(index, item))
            elif event_type in STATUS_MAP:
                events.append(self._status(index, event_type, item))
            else:
                logger.debug("bandwidth: skipping event type %r", event_type[:64])
        return events

    def ack(self, kind: WebhookKind) -> WebhookAck:
        """An empty 200: any 2xx stops Bandwidth retrying (its limit is 10 s and a body under 16 kB)."""
        return WebhookAck(status_code=200, body="", content_type="text/plain")

    def _inbound(self, index: int, event: dict[str, Any]) -> ParsedInbound:
        message = _message(index, event)
        message_id = _required_text(message, "id", index)
        from_number = _required_text(message, "from", index)
        to_number = _our_number(message, event)
        if to_number is None:
            raise PayloadError(f"event {index}: message has no owner or to number")
        text = message.get("text", "")
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise PayloadError(f"event {index}: message.text is not a string")
        return ParsedInbound(
            carrier=self.name,
            carrier_message_id=message_id,
            from_number=from_number,
            to_number=to_number,
            body=text,
            media=_media(message.get("media"), message_id),
            segments=_count(message.get("segmentCount")),
            received_at=_timestamp(message.get("time")) or _timestamp(event.get("time")) or _now(),
            raw=event,
        )

    def _status(self, index: int, event_type: str, event: dict[str, Any]) -> ParsedStatus:
        message = _message(index, event)
        message_id = _required_text(message, "id", index)
        error_code = _error_code(event.get("errorCode"))
        status = STATUS_MAP[event_type]
        error_message: str | None = None
        retryable = False
        if event_type == "message-failed":
            status = _failed_status(error_code)
            # Our plain words for the code; Bandwidth's `description` is a slug a person can't read.
            description = event.get("description")
            if error_code is not None:
                retryable, error_message = receipt_failure(*classify_error(error_code, None))
            elif isinstance(description, str) and description.strip():
                error_message = description.strip()[:500]
        occurred = _timestamp(event.get("eventTime")) if event_type == "message-read" else None
        return ParsedStatus(
            carrier=self.name,
            carrier_message_id=message_id,
            status=status,
            carrier_status=event_type,
            error_code=error_code,
            error_message=error_message,
            occurred_at=occurred or _timestamp(event.get("time")) or _now(),
            opted_out=error_code == OPT_OUT_CODE,
            client_ref=_tag(event),
            retryable=retryable,
            raw=event,
        )

    # -- sending ----------------------------------------------------------------------------------

    def classify(self, error_code: str | None, http_status: int | None) -> tuple[FailureKind, str]:
        return classify_error(error_code, http_status)

    def send(self, text: OutboundText) -> SendOutcome:
        """POST one message; every carrier or network failure comes back as a classified SendFailed.

        `tag` carries our message id, so every receipt for this text names it too.
        """
        outcome = self._precheck(text) or self._post(text)
        _log_outcome(text, outcome)
        return outcome

    def _precheck(self, text: OutboundText) -> SendFailed | None:
        missing = [
            label
            for label, value in (
                ("account id", self.account_id),
                ("API username", self.username),
                ("API password", self._api_password()),
                ("application id", self.application_id),
            )
            if not value
        ]
        if missing:
            return SendFailed(_P, f"Bandwidth is not set up for sending: {', '.join(missing)} missing")
        if len(text.body) > MAX_TEXT_CHARS:
            return SendFailed(
                _P, f"the message is too long (Bandwidth takes at most {MAX_TEXT_CHARS} characters)"
            )
        return None

    def _post(self, text: OutboundText) -> SendOutcome:
        import requests

        from parley.carriers.http import CONNECT_TIMEOUT_SECONDS, json_object, network_failure

        payload: dict[str, Any] = {
            "applicationId": self.application_id,
            "to": [text.to_number],
            "from": text.from_number,
            "text": text.body,
            "tag": text.message_id,
        }
        if text.media_urls:
            payload["media"] = list(text.media_urls)
        try:
            response = self._http().post(
                self._messages_url(),
                data=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
                headers={"Content-Type": "application/json; charset=utf-8", "Accept": "application/json"},
                auth=(self.username, self._api_password()),
                timeout=(CONNECT_TIMEOUT_SECONDS, self.timeout),
                allow_redirects=False,  # a redirected POST would silently become a GET
            )
        except requests.RequestException as exc:
            return network_failure(exc)  # no idempotency: after the request left, reconcile first
        asked = parse_retry_after(response.headers.get("Retry-After"))
        return _send_outcome(response.status_code, json_object(response), asked)

    def find_sent(
        self, text: OutboundText, since: datetime, skip: Collection[str] = ()
    ) -> SendAccepted | None:
        """Find a text Bandwidth may have accepted before an ambiguous failure (a 504 or read timeout).

        Bandwidth keeps no message text and can't search by tag, so this matches on sender,
        recipient, direction and time since the first attempt, and drops records whose attachment
        count or text length (when reported) can't be this text's, and the set-aside `skip`.
        The earliest match wins.
        Raises BandwidthLookupError when the search itself fails: absence is never guessed.
        """
        import requests

        from parley.carriers.http import CONNECT_TIMEOUT_SECONDS, json_object

        if not (self.account_id and self.username and self._api_password()):
            raise BandwidthLookupError("Bandwidth API credentials are not configured")
        start = _as_utc(since) - LOOKUP_CLOCK_SKEW
        params = {
            "sourceTn": text.from_number,
            "destinationTn": text.to_number,
            "messageDirection": "OUTBOUND",
            "fromDateTime": _iso(start),
            "toDateTime": _iso(_now() + LOOKUP_CLOCK_SKEW),
            "limit": str(LOOKUP_PAGE_SIZE),
        }
        found: list[tuple[datetime, dict[str, Any]]] = []
        page_token: str | None = None
        for _ in range(LOOKUP_MAX_PAGES):
            query = dict(params, pageToken=page_token) if page_token else params
            try:
                response = self._http().get(
                    self._messages_url(),
                    params=query,
                    headers={"Accept": "application/json"},
                    auth=(self.username, self._api_password()),
                    timeout=(CONNECT_TIMEOUT_SECONDS, self.timeout),
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                raise BandwidthLookupError(f"message search failed: {type(exc).__name__}") from exc
            if response.status_code != 200:
                raise BandwidthLookupError(f"message search failed (HTTP {response.status_code})")
            data = json_object(response)
            listed = data.get("messages")
            if not isinstance(listed, list):
                raise BandwidthLookupError("message search answered without a message list")
            found.extend(c for c in _candidates(listed, text, start) if c[1]["messageId"] not in skip)
            page_info = data.get("pageInfo")
            next_token = page_info.get("nextPageToken") if isinstance(page_info, dict) else None
            if not isinstance(next_token, str) or not next_token:
                break
            page_token = next_token
        else:
            raise BandwidthLookupError(f"message search returned more than {LOOKUP_MAX_PAGES} pages")
        if not found:
            return None
        _, record = min(found, key=lambda pair: pair[0])
        status = record.get("messageStatus")
        return SendAccepted(
            carrier_message_id=str(record["messageId"]),
            carrier_status=status if isinstance(status, str) and status else "ACCEPTED",
            segments=_count(record.get("segmentCount")) or None,
        )

    def _messages_url(self) -> str:
        return f"{self.api_base}/api/v2/users/{quote(self.account_id, safe='')}/messages"

    def _http(self) -> requests.Session:
        if self._session is None:
            from parley.carriers.http import new_session

            self._session = new_session()
        return self._session

    def fetch_media(self, url: str) -> FetchedMedia:
        """Download an inbound attachment with the API user's Basic credentials (MediaSource).

        MediaRejected for a URL off Bandwidth's messaging host, a gone (after two days) or oversized
        file; other exceptions are transient.
        """
        from parley.carriers.http import download

        password = self._api_password() if self.username else ""
        return download(
            url,
            allowed_hosts=(*self.media_hosts, *self.media_hosts_extra),
            auth=(self.username, password) if self.username and password else None,
            timeout=self.timeout,
            extra_hosts=self.media_hosts_extra,
        )


def build(config: CarrierConfig) -> BandwidthCarrier:
    """The plugin from `PARLEY_BANDWIDTH_*` settings. Never fails for a missing value: a webhook
    needs only the callback credentials and a sender only the API ones, so each path reports what
    it lacks (verify raises SignatureError, send returns a permanent SendFailed) when it is used."""
    return BandwidthCarrier(
        account_id=config.get("bandwidth_account_id"),
        username=config.get("bandwidth_username"),
        password=lambda: config.secret("bandwidth_password"),
        application_id=config.get("bandwidth_application_id"),
        callback_username=config.get("bandwidth_callback_username"),
        callback_passwords=lambda: config.secrets("bandwidth_callback_password"),
        api_base=config.get("bandwidth_api_base", DEFAULT_API_BASE),
        timeout=config.timeout,
        media_hosts=config.media_hosts(MEDIA_HOSTS),
        media_hosts_extra=config.get_list("bandwidth_media_hosts_extra"),
    )


# -- payload helpers --------------------------------------------------------------------------------


def _basic_credentials(username: str, passwords: Sequence[str]) -> list[bytes]:
    """`user:password` as a client may have encoded it: RFC 7617 leaves the charset open, and
    clients differ (UTF-8 in most, Latin-1 in requests), so both are accepted for non-ASCII."""
    expected: list[bytes] = []
    for password in passwords:
        pair = f"{username}:{password}"
        for encoding in ("utf-8", "latin-1"):
            try:
                encoded = pair.encode(encoding)
            except UnicodeEncodeError:
                continue
            if encoded not in expected:
                expected.append(encoded)
    return expected


def _now() -> datetime:
    return datetime.now(UTC)


def _message(index: int, event: Mapping[str, Any]) -> dict[str, Any]:
    message = event.get("message")
    if not isinstance(message, dict):
        raise PayloadError(f"event {index} has no message object")
    return message


def _required_text(message: Mapping[str, Any], name: str, index: int) -> str:
    value = message.get(name)
    if not isinstance(value, str) or not value.strip():
        raise PayloadError(f"event {index}: message.{name} is missing")
    return value.strip()


def _our_number(message: Mapping[str, Any], event: Mapping[str, Any]) -> str | None:
    """Which of our numbers got the text: `owner` first, since a group text reaches us once per
    number we own and `owner` says which copy this is; then the event's `to`, then `message.to[0]`."""
    candidates: list[object] = [message.get("owner"), event.get("to")]
    listed = message.get("to")
    if isinstance(listed, list) and listed:
        candidates.append(listed[0])
    elif isinstance(listed, str):
        candidates.append(listed)
    for value in candidates:
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _media(value: object, message_id: str) -> tuple[ParsedMedia, ...]:
    """Media URLs (downloadable for two days); a malformed entry is dropped, never the whole text."""
    if value is None:
        return ()
    if not isinstance(value, list):
        logger.warning("bandwidth %r: media is not a list; ignored", message_id[:64])
        return ()
    urls = tuple(ParsedMedia(url=item.strip()) for item in value if isinstance(item, str) and item.strip())
    if len(urls) != len(value):
        logger.warning(
            "bandwidth %r: %d malformed media entries dropped", message_id[:64], len(value) - len(urls)
        )
    return urls


def _count(value: object) -> int | None:
    """A count we only display: a malformed one must not cost us the customer's text."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value < 1_000_000 else None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit() and len(value) < 7:
        return int(value.strip())
    return None


def _error_code(value: object) -> str | None:
    """errorCode as text (Bandwidth sends an integer); 0 and blanks mean no error."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        code = str(value) if -(10**12) < value < 10**12 else None
    elif isinstance(value, str):
        code = value.strip()[:32] or None
    else:
        return None
    return None if code == "0" else code


def _failed_status(error_code: str | None) -> MessageStatus:
    """UNDELIVERED when the recipient's carrier (codes 47xx, 56xx) or the network downstream (9xxx)
    refused or lost it; FAILED when Bandwidth itself never sent it (other codes, or none)."""
    if error_code is None or len(error_code) != 4 or not error_code.isdigit():
        return MessageStatus.FAILED
    if error_code[:2] in ("47", "56") or error_code[0] == "9":
        return MessageStatus.UNDELIVERED
    return MessageStatus.FAILED


def _timestamp(value: object) -> datetime | None:
    """An ISO 8601 time as Bandwidth writes it ("2016-09-14T18:20:16Z", "...36.979Z"), in UTC."""
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        return None
    try:
        return _as_utc(datetime.fromisoformat(value.strip()))
    except (ValueError, OverflowError):  # e.g. year 9999 with a negative offset
        return None


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    """The form Bandwidth's search takes: 2024-01-01T00:00:00.000Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _text_lengths(body: str) -> set[int]:
    """Lengths Bandwidth's messageLength might mean (its unit isn't documented)."""
    return {len(body), len(body.encode("utf-16-le")) // 2, len(body.encode("utf-8"))}


def _candidates(
    listed: list[object], text: OutboundText, start: datetime
) -> list[tuple[datetime, dict[str, Any]]]:
    lengths = _text_lengths(text.body)
    matches: list[tuple[datetime, dict[str, Any]]] = []
    for item in listed:
        if not isinstance(item, dict):
            continue
        message_id = item.get("messageId")
        if not isinstance(message_id, str) or not message_id:
            continue
        if item.get("sourceTn") != text.from_number or item.get("destinationTn") != text.to_number:
            continue
        direction = item.get("messageDirection")
        if isinstance(direction, str) and direction.upper() != "OUTBOUND":
            continue
        received = _timestamp(item.get("receiveTime"))
        if received is not None and received < start:
            continue
        attachments = _count(item.get("attachmentCount"))
        if attachments is not None and attachments != len(text.media_urls):
            continue
        length = _count(item.get("messageLength"))
        if length is not None and length not in lengths:
            continue
        matches.append((received or start, item))
    return matches


# -- send helpers -----------------------------------------------------------------------------------


def _send_outcome(status: int, data: Mapping[str, Any], retry_after: float | None = None) -> SendOutcome:
    if 200 <= status < 300:
        message_id = data.get("id")
        if isinstance(message_id, str) and message_id:
            return SendAccepted(message_id, "accepted", _count(data.get("segmentCount")) or None)
        return SendFailed(
            FailureKind.AMBIGUOUS, "the carrier accepted the request but returned no message id", None, status
        )
    if 300 <= status < 400:
        reason = f"the carrier API redirected us (HTTP {status}); check the Bandwidth API address"
        return SendFailed(_P, reason, None, status)
    raw_type = data.get("type")
    code = raw_type.strip()[:64] if isinstance(raw_type, str) and raw_type.strip() else None
    kind, reason = classify_error(code, status)
    if code == "request-validation":
        reason = _validation_reason(data) or reason
    elif 400 <= status < 500 and kind is _P and code not in ERROR_CODES:
        description = data.get("description")
        if isinstance(description, str) and description.strip():
            reason = f"carrier rejected the message: {description.strip()[:300]}"
    return SendFailed(kind, reason, code, status, retry_after=retry_after)


def _validation_reason(data: Mapping[str, Any]) -> str | None:
    """The first field error in words; Bandwidth names the field (to, from, applicationId, ...)."""
    field_errors = data.get("fieldErrors")
    if isinstance(field_errors, list):
        for item in field_errors:
            if isinstance(item, dict) and isinstance(item.get("fieldName"), str):
                reason = _FIELD_REASONS.get(item["fieldName"])
                if reason:
                    return reason
    description = data.get("description")
    if isinstance(description, str) and description.strip():
        return f"carrier rejected the message: {description.strip()[:300]}"
    return None


def _log_outcome(text: OutboundText, outcome: SendOutcome) -> None:
    if isinstance(outcome, SendAccepted):
        logger.info(
            "bandwidth accepted %s to %s as %s",
            text.message_id,
            mask(text.to_number),
            outcome.carrier_message_id,
        )
    else:
        logger.warning(
            "bandwidth send %s to %s failed: %s, code=%s, http=%s",
            text.message_id,
            mask(text.to_number),
            outcome.kind,
            outcome.error_code,
            outcome.http_status,
        )


def _tag(event: dict[str, Any]) -> str | None:
    """Our message id, which send puts in Bandwidth's `tag` and every receipt echoes back."""
    message = event.get("message")
    tag = message.get("tag") if isinstance(message, dict) else None
    return tag.strip() if isinstance(tag, str) and tag.strip() else None
