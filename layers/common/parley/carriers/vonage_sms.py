"""Vonage (Nexmo) legacy SMS API: `sig` check, inbound/receipt parser, send call and error classes.

Vonage calls our webhooks with GET or POST, form-encoded or JSON, and (when signing is enabled on
the account) adds a `sig` parameter: a hash over every other parameter, sorted, as ``&key=value``
with ``&`` and ``=`` in values replaced by ``_``, made with the account's signature secret by the
method chosen in the dashboard (``md5hash`` by default, or HMAC-MD5/SHA1/SHA256/SHA512). The signed
set includes a Unix ``timestamp``, so stale requests are refused here, though no SDK enforces it.

Sending has two traps this module exists to handle. The API answers HTTP 200 even when it refused
the text (each part carries a ``status``; anything but ``"0"`` is a failure), and it has neither an
idempotency key nor a message search in our reference, so after a 5xx or a read timeout we cannot
tell whether the customer got the text: those outcomes are AMBIGUOUS and `find_sent` refuses to
guess. Two code tables exist and share numbers: send ``status`` codes (HTTP 200 answers) and receipt
``err-code`` values (delivery receipts). `classify` tells them apart by `http_status`: given, it is a
send answer; ``None``, it is a receipt's code.

A long outbound text is split by Vonage: the send answer holds one ``message-id`` per part and a
receipt arrives per part under that part's id, with the ``client-ref`` we sent (our message id) but
no part number. `send` returns the first part's id; the other parts' receipts can be tied back
through ``raw["client-ref"]``. Long inbound texts arrive in parts (``concat``) for the processor to
reassemble.

Only the standard library and Parley's light carrier modules are imported at module level: the
webhook must answer fast from a cold start. ``requests`` is imported on the first send.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, urlsplit

from parley.carriers.base import (
    FailureKind,
    LookupUnavailable,
    OutboundText,
    ParsedConcat,
    ParsedEvent,
    ParsedInbound,
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

NAME: Final = "vonage"
DEFAULT_API_BASE: Final = "https://rest.nexmo.com"
SEND_PATH: Final = "/sms/json"
DEFAULT_TOLERANCE_SECONDS: Final = 300.0
SIGNATURE_METHODS: Final = ("md5hash", "md5", "sha1", "sha256", "sha512")
ACCEPTED_STATUS: Final = "submitted"  # our word for a send answered with status "0" on every part
MAX_CLIENT_REF: Final = 40  # Vonage's limit for client-ref
_MAX_FIELDS: Final = 200  # Vonage sends about fifteen; bounds the work a forged body can cause
_MAX_TIMESTAMP_DIGITS: Final = 12  # bounds int() on a forged timestamp
_MAX_CONCAT_PARTS: Final = 255  # a one-octet UDH counter
_DIGITS: Final = re.compile(r"[0-9]+")
_MSISDN: Final = re.compile(r"[1-9][0-9]{6,14}")  # a country code never starts with 0

# Receipt status words (sms.yml DeliveryReceipt; Vonage support "What kind of DLRs..."): accepted
# and buffered are intermediate reports from the network; the rest are final.
STATUS_MAP: Final[dict[str, MessageStatus]] = {
    "accepted": MessageStatus.SENT,  # the destination network took it
    "buffered": MessageStatus.SENT,  # the network holds it for a handset that is off or out of coverage
    "delivered": MessageStatus.DELIVERED,
    "expired": MessageStatus.UNDELIVERED,  # the network gave up within the validity period
    "failed": MessageStatus.UNDELIVERED,  # the network tried and failed
    "rejected": MessageStatus.FAILED,  # refused up front, never tried
    "unknown": MessageStatus.UNDELIVERED,  # final, with no confirmation: Vonage counts it as not delivered
}

OPTED_OUT_ERR_CODE: Final = "9"

_P, _T = FailureKind.PERMANENT, FailureKind.TRANSIENT

# Send answer `status` codes (sms.yml x-errors; carriers.md 3.4) -> (class, words for a person).
SEND_STATUS: Final[dict[str, tuple[FailureKind, str]]] = {
    "1": (_T, "the carrier is throttling our sending rate; it will be retried"),
    "2": (_P, "our request to the carrier was missing a required field"),
    "3": (_P, "the carrier rejected the message details (often an invalid phone number)"),
    "4": (_P, "the carrier rejected our credentials (check the Vonage API key and secret)"),
    "5": (_T, "the carrier had an internal error and did not send it; it will be retried"),
    "6": (_P, "the number is not a valid or reachable phone number"),
    "7": (_P, "the number is barred from receiving texts"),
    "8": (_P, "our Vonage account is suspended"),
    "9": (_P, "our Vonage account has run out of credit"),
    "10": (_T, "too many connections to the carrier right now; it will be retried"),
    "11": (_P, "our Vonage account is not enabled for sending texts over HTTP"),
    "12": (_P, "the message is too long"),
    "14": (_P, "the carrier could not verify our request signature"),
    "15": (_P, "our sending number is not allowed to send to this destination"),
    "22": (_P, "the carrier rejected the network code for this number"),
    "23": (_P, "the carrier rejected our delivery-report address"),
    "29": (_P, "the Vonage trial account can only text numbers on its approved list"),
    "32": (_P, "our request to the carrier was signed and had a secret; it may only have one"),
    "33": (_P, "the number has been deactivated"),
}

# Receipt `err-code` values (Vonage support article 204014733, "SMS Delivery Error Codes"; 9 is
# also the opt-out code in the opt-out guide, carriers.md 3.2) -> (class, words for a person).
RECEIPT_ERRORS: Final[dict[str, tuple[FailureKind, str]]] = {
    "1": (_T, "the carrier could not deliver it and gave no reason"),
    "2": (_T, "the recipient's phone is unreachable for now (switched off or out of coverage)"),
    "3": (_P, "the number is no longer in service"),
    "4": (_P, "the recipient has barred incoming texts on their line"),
    "5": (_P, "the number was moved to another network and could not be reached"),
    "6": (_P, "the recipient's carrier blocked the message as spam"),
    "7": (_T, "the recipient's phone was busy"),
    "8": (_T, "a network error stopped delivery"),
    OPTED_OUT_ERR_CODE: (_P, "the recipient has opted out of texts from us"),
    "10": (_P, "the carrier rejected the message content (for example its encoding)"),
    "11": (_P, "the carrier has no route to this number"),
    "12": (_P, "the number can't be reached; check it is right"),
    "13": (_P, "the recipient can't receive this message because of an age restriction"),
    "14": (_P, "the recipient's carrier blocks texts to this number"),
    "15": (_P, "the recipient's prepaid plan has no credit to receive texts"),
    "95": (_T, "the carrier could not deliver it and gave no reason"),
    "99": (_T, "the carrier reported a general delivery error"),
}

_CREDENTIALS: Final = (_P, "the carrier rejected our credentials (check the Vonage API key and secret)")


class VonageConfigError(ValueError):
    """The Vonage settings are incomplete or invalid; the message names the variable to set."""


class VonageLookupUnavailable(LookupUnavailable):
    """Vonage's SMS API offers no message search, so an ambiguous send can't be settled here."""


def classify(error_code: str | None, http_status: int | None) -> tuple[FailureKind, str]:
    """Class and plain reason for a Vonage error.

    `http_status` given means a send answer (HTTP status, and for HTTP 200 the part's `status`
    code); `None` means a delivery receipt's `err-code`. The two tables reuse numbers (9 is "out
    of credit" in one and "opted out" in the other), so the caller's context picks the table.
    With no idempotency key, a 5xx may mean Vonage has the text: the caller must reconcile.
    """
    code = (error_code or "").strip() or None
    if http_status is not None:
        if http_status == 429:
            return _T, "the carrier is rate limiting us; it will be retried"
        if http_status >= 500:
            return (
                FailureKind.AMBIGUOUS,
                f"carrier server error (HTTP {http_status}); checking before any retry",
            )
        if http_status in (401, 403):
            return _CREDENTIALS
        if http_status == 408:
            return _T, "the carrier timed out reading our request (HTTP 408); it will be retried"
        if 300 <= http_status < 400:
            return _P, f"the carrier API redirected us (HTTP {http_status}); check the API base URL"
        if http_status >= 400:
            return _P, f"the carrier rejected the request (HTTP {http_status})"
        if code is None:
            return _P, "the carrier refused the message without a reason"
        if code in SEND_STATUS:
            return SEND_STATUS[code]
        return _P, f"the carrier refused the message (status {code})"
    if code is None:
        return _P, "the carrier could not deliver the message"
    if code in RECEIPT_ERRORS:
        return RECEIPT_ERRORS[code]
    return _P, f"the carrier could not deliver the message (error {code})"


class VonageSmsCarrier:
    """The Vonage SMS API plugin.

    Secrets may be given as callables, so an SSM read happens on first use by the path that needs
    it (the webhook never reads the API secret; the sender never reads the signature secret).
    `signature_secrets` is the current secret first, then previous ones during a rotation.
    """

    name = NAME

    def __init__(
        self,
        *,
        api_key: str,
        api_secret: str | Callable[[], str],
        signature_secrets: tuple[str, ...] | Callable[[], tuple[str, ...]],
        signature_method: str = "md5hash",
        api_base: str = DEFAULT_API_BASE,
        timeout: float = 10.0,
        tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
        clock: Callable[[], float] = time.time,
        session: requests.Session | None = None,
    ) -> None:
        method = signature_method.strip().lower()
        if method not in SIGNATURE_METHODS:
            raise ValueError(
                f"unsupported Vonage signature method {signature_method!r}; "
                f"expected one of {', '.join(SIGNATURE_METHODS)}"
            )
        if tolerance_seconds <= 0:
            raise ValueError("the signature freshness window must be positive")
        self.api_key = api_key
        self.signature_method = method
        self.api_base = api_base.rstrip("/")
        self.timeout = timeout
        self.tolerance_seconds = float(tolerance_seconds)
        self._clock = clock
        self._api_secret_source = api_secret
        self._signature_source = signature_secrets
        self._api_secret: str | None = None
        self._signature_secrets: tuple[str, ...] | None = None
        self._session = session

    def __repr__(self) -> str:  # never show a secret
        return (
            f"VonageSmsCarrier(api_key={self.api_key!r}, api_base={self.api_base!r}, "
            f"signature_method={self.signature_method!r})"
        )

    # -- webhooks -------------------------------------------------------------------------------

    def verify(self, request: WebhookRequest) -> None:
        """Raise SignatureError unless `sig` matches one of our signature secrets and is fresh."""
        try:
            fields = _fields(request)
        except (ValueError, RecursionError) as exc:  # a payload problem (400), not a forgery
            raise PayloadError(f"request parameters are unreadable: {_reason(exc)}") from exc
        if not fields:
            return  # a reachability check with no parameters: nothing to sign, nothing is stored
        given = fields.pop("sig", "").strip()
        if not given:
            raise SignatureError("missing sig parameter")
        stamp = fields.get("timestamp", "").strip()
        if not stamp:
            raise SignatureError("missing timestamp parameter")
        secrets = self._secrets_for_verify()
        if not secrets:
            raise SignatureError("no Vonage signature secret configured")
        try:
            given_bytes = given.lower().encode("ascii")
        except UnicodeEncodeError:
            raise SignatureError("signature does not match") from None
        signed = _signing_string(fields)
        matched = False
        for secret in secrets:
            expected = sign(signed, secret, self.signature_method).encode("ascii")
            matched |= hmac.compare_digest(expected, given_bytes)
        if not matched:
            raise SignatureError("signature does not match")
        if not (_DIGITS.fullmatch(stamp) and len(stamp) <= _MAX_TIMESTAMP_DIGITS):
            raise SignatureError("timestamp is not a Unix time")
        skew = self._clock() - int(stamp)
        if abs(skew) > self.tolerance_seconds:
            logger.info("vonage webhook refused: timestamp %.0f s off", skew)
            raise SignatureError(f"timestamp is outside the {self.tolerance_seconds:.0f} s freshness window")

    def parse(self, kind: WebhookKind, request: WebhookRequest) -> list[ParsedEvent]:
        """Turn a verified inbound text or delivery receipt into events; [] for nothing we use."""
        try:
            fields = _fields(request)
        except (ValueError, RecursionError) as exc:
            raise PayloadError("request parameters are unreadable (form, JSON or query expected)") from exc
        if not fields:
            return []  # a reachability check with no parameters: acknowledge, store nothing
        if kind is WebhookKind.EVENTS:  # one URL for both: tell them apart by their fields
            is_receipt = "status" in fields and "text" not in fields
            kind = WebhookKind.STATUS if is_receipt else WebhookKind.MESSAGES
        if kind is WebhookKind.STATUS:
            return [self._status(fields)]
        if "status" in fields and "text" not in fields:  # a delivery receipt, not a text
            raise PayloadError("a delivery receipt arrived at the inbound-messages URL")
        return self._inbound(fields)

    def ack(self, kind: WebhookKind) -> WebhookAck:
        """204: Vonage stops retrying on 200 or 204 and reads nothing from the body."""
        return WebhookAck(status_code=204, body="", content_type="text/plain")

    def _inbound(self, fields: dict[str, str]) -> list[ParsedEvent]:
        message_id = _required(fields, "messageId")
        sender = _number(_required(fields, "msisdn"))
        recipient = _number(_required(fields, "to"))
        if fields.get("type", "text").strip().lower() == "binary":
            logger.info("vonage inbound %s is a binary SMS; not stored", message_id)
            return []
        concat = _concat(fields) if fields.get("concat", "").strip().lower() == "true" else None
        return [
            ParsedInbound(
                carrier=NAME,
                carrier_message_id=message_id,
                from_number=sender,
                to_number=recipient,
                body=fields.get("text", ""),
                segments=concat.total if concat else 1,
                received_at=_timestamp(fields.get("message-timestamp")) or utc_now(),
                concat=concat,
                raw=dict(fields),
            )
        ]

    def _status(self, fields: dict[str, str]) -> ParsedStatus:
        message_id = _required(fields, "messageId")
        word = fields.get("status", "").strip().lower()
        if not word:
            raise PayloadError("status is missing")
        status = STATUS_MAP.get(word)
        if status is None:
            raise PayloadError(f"unknown Vonage delivery status {word[:40]!r}")
        raw_code = fields.get("err-code", "").strip()
        code = raw_code if raw_code and raw_code != "0" else None
        occurred = _timestamp(fields.get("message-timestamp")) or _scts(fields.get("scts")) or utc_now()
        retryable, reason = receipt_failure(*classify(code, None)) if code else (False, None)
        return ParsedStatus(
            carrier=NAME,
            carrier_message_id=message_id,
            status=status,
            carrier_status=word,
            error_code=code,
            error_message=reason,
            occurred_at=occurred,
            opted_out=code == OPTED_OUT_ERR_CODE,
            client_ref=fields.get("client-ref", "").strip() or None,
            retryable=retryable,
            raw=dict(fields),
        )

    # -- sending ----------------------------------------------------------------------------------

    def send(self, text: OutboundText) -> SendOutcome:
        """POST one text to /sms/json; every carrier or network failure comes back as a SendFailed."""
        import requests

        from parley.carriers.http import CONNECT_TIMEOUT_SECONDS, network_failure
        from parley.domain.encoding import is_gsm7

        outcome: SendOutcome
        if text.media_urls:  # the SMS API has no MMS: refusing beats silently dropping the picture
            outcome = SendFailed(_P, "this number's carrier (Vonage SMS) can't send pictures or files")
            _log_outcome(text, outcome)
            return outcome
        api_secret = self._secret_for_send()
        if not api_secret:
            outcome = SendFailed(_P, "the Vonage API secret is not configured")
            _log_outcome(text, outcome)
            return outcome
        form: dict[str, str] = {
            "api_key": self.api_key,
            "api_secret": api_secret,
            "from": _vonage_address(text.from_number),
            "to": _vonage_address(text.to_number),
            "text": text.body,
            "type": "text" if is_gsm7(text.body) else "unicode",
            "status-report-req": "true",
        }
        if text.status_callback_url:
            form["callback"] = text.status_callback_url
        if len(text.message_id) <= MAX_CLIENT_REF:
            form["client-ref"] = text.message_id
        else:
            logger.warning(
                "vonage send %s: id longer than %d characters, no client-ref", text.message_id, MAX_CLIENT_REF
            )
        try:
            response = self._http().post(
                self.api_base + SEND_PATH,
                data=form,
                headers={"Accept": "application/json"},
                timeout=(CONNECT_TIMEOUT_SECONDS, self.timeout),
                allow_redirects=False,  # a redirected POST would silently become a GET
            )
        except requests.RequestException as exc:
            outcome = network_failure(exc)  # no idempotency: after the request left, reconcile first
        else:
            outcome = _send_outcome(response)
        _log_outcome(text, outcome)
        return outcome

    def classify(self, error_code: str | None, http_status: int | None) -> tuple[FailureKind, str]:
        """See the module-level `classify`: `http_status` given = send answer, None = receipt."""
        return classify(error_code, http_status)

    def find_sent(
        self, text: OutboundText, since: datetime, skip: Collection[str] = ()
    ) -> SendAccepted | None:
        """Always raises: there is no message search for the SMS API in our reference.

        Returning None would claim Vonage never got the text, and a retry could text the customer
        twice; raising keeps the message out of automatic resends so it ends visible to a person.
        A later receipt carrying ``client-ref`` = our message id proves the text went out.
        """
        raise VonageLookupUnavailable(
            "Vonage's SMS API has no message search: check the Vonage dashboard (or wait for a "
            f"delivery receipt with client-ref {text.message_id!r}) before resending"
        )

    # -- internals --------------------------------------------------------------------------------

    def _secrets_for_verify(self) -> tuple[str, ...]:
        if self._signature_secrets is None:
            source = self._signature_source
            values = source() if callable(source) else source
            secrets = tuple(s for s in values if s)
            if not secrets:
                return ()  # not cached: a fixed configuration is picked up on the next request
            self._signature_secrets = secrets
        return self._signature_secrets

    def _secret_for_send(self) -> str:
        if self._api_secret is None:
            source = self._api_secret_source
            value = source() if callable(source) else source
            if not value:
                return ""
            self._api_secret = value
        return self._api_secret

    def _http(self) -> requests.Session:
        if self._session is None:
            from parley.carriers.http import new_session

            self._session = new_session()
        return self._session


def build(config: CarrierConfig) -> VonageSmsCarrier:
    """The plugin from `PARLEY_VONAGE_*` settings; raises VonageConfigError naming what is missing.

    Checked here (at build): the API key, and that the API secret and signature secret are set
    directly or by SSM parameter name. SSM values are read on first use; an empty one makes
    `verify` raise SignatureError and `send` return a PERMANENT failure.
    """
    api_key = config.get("vonage_api_key").strip()
    if not api_key:
        raise VonageConfigError("PARLEY_VONAGE_API_KEY is not set (the Vonage account's API key)")
    for name, what in (
        ("vonage_api_secret", "the Vonage API secret, for sending"),
        ("vonage_signature_secret", "the Vonage signature secret, for verifying webhooks"),
    ):
        if not (config.get(name) or config.get(f"{name}_param")):
            upper = f"PARLEY_{name.upper()}"
            raise VonageConfigError(f"{upper} or {upper}_PARAM must be set ({what})")
    method = config.get("vonage_signature_method") or "md5hash"
    if method.strip().lower() not in SIGNATURE_METHODS:
        raise VonageConfigError(
            f"PARLEY_VONAGE_SIGNATURE_METHOD={method!r} is not one of {', '.join(SIGNATURE_METHODS)}"
        )
    tolerance_text = config.get("vonage_signature_tolerance_seconds") or str(DEFAULT_TOLERANCE_SECONDS)
    try:
        tolerance = float(tolerance_text)
    except ValueError:
        tolerance = -1.0
    if not tolerance > 0:
        raise VonageConfigError("PARLEY_VONAGE_SIGNATURE_TOLERANCE_SECONDS must be a positive number")
    return VonageSmsCarrier(
        api_key=api_key,
        api_secret=lambda: config.secret("vonage_api_secret"),
        signature_secrets=lambda: config.secrets("vonage_signature_secret"),
        signature_method=method,
        api_base=config.get("vonage_api_base") or DEFAULT_API_BASE,
        timeout=config.timeout,
        tolerance_seconds=tolerance,
    )


# -- signatures -------------------------------------------------------------------------------------


def _signing_string(params: Mapping[str, str]) -> str:
    """Vonage's signed text: ``&key=value`` for each key in sorted order, `&`/`=` in values as `_`."""
    return "".join(f"&{key}={params[key].replace('&', '_').replace('=', '_')}" for key in sorted(params))


def sign(signing_string: str, secret: str, method: str) -> str:
    """Lower-case hex signature of `signing_string` (see `_signing_string`) by `method`.

    ``md5hash`` is MD5 of the string followed by the secret; the others are HMACs keyed by it.
    """
    if method == "md5hash":
        return hashlib.md5((signing_string + secret).encode("utf-8")).hexdigest()
    return hmac.new(secret.encode("utf-8"), signing_string.encode("utf-8"), method).hexdigest()


# -- payload helpers --------------------------------------------------------------------------------


def _content_type(request: WebhookRequest) -> str:
    return (request.header("content-type") or "").split(";")[0].strip().lower()


def _reason(exc: BaseException) -> str:
    """Why the parameters can't be read, in words safe to send back."""
    if isinstance(exc, UnicodeDecodeError):
        return "the body is not UTF-8"
    if isinstance(exc, RecursionError):
        return "the JSON is nested too deeply"
    return str(exc)[:120] or "form, JSON or query expected"


def _fields(request: WebhookRequest) -> dict[str, str]:
    """The webhook's parameters: the query for a bodiless request (GET), else the form or JSON body.

    Raises ValueError for anything that isn't one flat set of distinct names with text values: a
    repeated name can't be signed unambiguously, so it is refused rather than guessed at.
    """
    if not request.body:
        if request.query:
            return _checked(request.query.items())
        return _form(urlsplit(request.url).query)
    content_type = _content_type(request)
    if content_type == "application/json" or content_type.endswith("+json"):
        return _json_fields(request.body)
    if content_type == "" and request.body.lstrip()[:1] == b"{":
        return _json_fields(request.body)
    if content_type in ("", "application/x-www-form-urlencoded"):
        return _form(request.body.decode("utf-8"))
    raise ValueError(f"unsupported content type {content_type[:60]!r}")


def _form(text: str) -> dict[str, str]:
    pairs = parse_qsl(
        text, keep_blank_values=True, encoding="utf-8", errors="strict", max_num_fields=_MAX_FIELDS
    )
    return _checked(pairs)


def _json_fields(body: bytes) -> dict[str, str]:
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("JSON body is not an object")
    return _checked((name, _json_text(value)) for name, value in data.items())


def _json_text(value: object) -> str:
    """A JSON value as the text Vonage signs; Vonage sends strings, so others are rare."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if value is None:
        return ""
    raise ValueError("nested JSON value")


def _checked(pairs: Any) -> dict[str, str]:
    fields: dict[str, str] = {}
    for name, value in pairs:
        if not isinstance(name, str) or not isinstance(value, str):
            raise ValueError("parameter is not text")
        name.encode("utf-8")  # a lone surrogate (possible in JSON) can't be signed: ValueError
        value.encode("utf-8")
        if name in fields:
            raise ValueError("repeated parameter")
        if len(fields) >= _MAX_FIELDS:
            raise ValueError("too many parameters")
        fields[name] = value
    return fields


def _required(fields: Mapping[str, str], name: str) -> str:
    value = fields.get(name, "").strip()
    if not value:
        raise PayloadError(f"{name} is missing")
    return value


def _number(value: str) -> str:
    """Vonage writes international numbers as bare digits; add the `+` so they read as E.164.

    Anything else (a short code, an alphanumeric sender) is passed through as written.
    """
    return f"+{value}" if _MSISDN.fullmatch(value) else value


def _vonage_address(number: str) -> str:
    """Vonage wants digits without `+` for numbers; alphanumeric sender ids go as they are."""
    stripped = number.strip()
    if stripped.startswith("+") and stripped[1:].isascii() and stripped[1:].isdigit():
        return stripped[1:]
    return stripped


def _small_int(value: str | None) -> int | None:
    text = (value or "").strip()
    if not _DIGITS.fullmatch(text) or len(text) > 6:
        return None
    return int(text)


def _concat(fields: Mapping[str, str]) -> ParsedConcat:
    ref = _required(fields, "concat-ref")
    part = _small_int(fields.get("concat-part"))
    total = _small_int(fields.get("concat-total"))
    if part is None or total is None:
        raise PayloadError("concat-part and concat-total must be whole numbers")
    if not 1 <= part <= total <= _MAX_CONCAT_PARTS:
        raise PayloadError("concat-part is not within concat-total")
    return ParsedConcat(ref=ref, part=part, total=total)


def _timestamp(value: str | None) -> datetime | None:
    """`message-timestamp` ("YYYY-MM-DD HH:MM:SS", UTC); None if absent or malformed."""
    try:
        return datetime.strptime((value or "").strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def _scts(value: str | None) -> datetime | None:
    """A receipt's `scts` (YYMMDDHHMM, taken as UTC); None if absent or malformed."""
    text = (value or "").strip()
    if len(text) != 10 or not _DIGITS.fullmatch(text):
        return None
    try:
        return datetime.strptime(text, "%y%m%d%H%M").replace(tzinfo=UTC)
    except ValueError:
        return None


# -- send helpers -----------------------------------------------------------------------------------


def _text(value: object) -> str:
    return str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""


def _send_outcome(response: requests.Response) -> SendOutcome:
    """Read Vonage's answer: HTTP errors by status; HTTP 200 by each part's `status` field."""
    from parley.carriers.http import json_object

    http = response.status_code
    if not 200 <= http < 300:
        kind, reason = classify(None, http)
        asked = parse_retry_after(response.headers.get("Retry-After"))
        return SendFailed(kind, reason, None, http, retry_after=asked)
    data = json_object(response)
    listed = data.get("messages")
    parts = [m for m in listed if isinstance(m, dict)] if isinstance(listed, list) else []
    statuses = [_text(part.get("status")) for part in parts]
    if not parts or "" in statuses:
        reason = "the carrier answered without a status for the message; checking before any retry"
        return SendFailed(FailureKind.AMBIGUOUS, reason, None, http)
    failed = [(part, status) for part, status in zip(parts, statuses, strict=True) if status != "0"]
    if not failed:
        message_id = _text(parts[0].get("message-id"))
        if not message_id:
            reason = "the carrier accepted the message but returned no message id; checking before any retry"
            return SendFailed(FailureKind.AMBIGUOUS, reason, None, http)
        count = _small_int(_text(data.get("message-count")))
        part_ids = tuple(_text(p.get("message-id")) for p in parts) if len(parts) > 1 else ()
        return SendAccepted(message_id, ACCEPTED_STATUS, count or len(parts), part_ids=part_ids)
    part, code = failed[0]
    kind, reason = classify(code, http)
    error_text = _text(part.get("error-text"))
    if code not in SEND_STATUS and error_text:
        reason = f"the carrier refused the message: {error_text[:200]}"
    if len(failed) < len(parts):
        sent = len(parts) - len(failed)
        reason = (
            f"the carrier sent only {sent} of the {len(parts)} parts of this text ({reason}); "
            "resending would repeat the parts already sent"
        )
        kind = FailureKind.PERMANENT
    return SendFailed(kind, reason, code, http)


def _log_outcome(text: OutboundText, outcome: SendOutcome) -> None:
    if isinstance(outcome, SendAccepted):
        logger.info(
            "vonage accepted %s to %s as %s (%s part(s))",
            text.message_id,
            mask(text.to_number),
            outcome.carrier_message_id,
            outcome.segments,
        )
    else:
        logger.warning(
            "vonage send %s to %s failed: %s, code=%s, http=%s",
            text.message_id,
            mask(text.to_number),
            outcome.kind,
            outcome.error_code,
            outcome.http_status,
        )
