"""AWS End User Messaging SMS (pinpoint-sms-voice-v2): texts out with boto3, texts and receipts in via SNS.

AWS publishes two-way inbound texts (the number's two-way channel) and delivery events (a
configuration set's event destination) to SNS topics; Parley subscribes one HTTPS endpoint,
``POST /webhooks/aws/events``, to them. Every request there is an SNS message, checked by
`parley.carriers.sns` (RSA signature, certificate host, freshness, topic allow-list).

Settings (`build`; env PARLEY_*):

* AWS_SNS_TOPIC_ARNS        comma list of the topics we subscribed (two-way and events); empty accepts any
                            topic (and confirms any subscription) with a warning: set it in production.
* AWS_SNS_CERT_HOSTS_EXTRA  comma list of extra certificate hosts, http allowed: the LOCAL SIMULATOR ONLY.
* AWS_SNS_MAX_AGE_SECONDS   oldest SNS Timestamp accepted (default 3600).
* AWS_SMS_CONFIGURATION_SET the configuration set whose SNS event destination sends delivery events.
* AWS_SMS_ENDPOINT_URL      API endpoint override (the local simulator); AWS_SMS_REGION (default AWS_REGION).
* AWS_SMS_MESSAGE_TYPE      TRANSACTIONAL or PROMOTIONAL (default: omitted, the account's default).
* AWS_SMS_SELF_MANAGED_OPT_OUTS  "true" when the numbers hand STOP/HELP to us instead of AWS answering.
* CARRIER_TIMEOUT_SECONDS   read timeout of SendTextMessage. AWS credentials: the default chain (the role).

Shapes relied on (carriers.md section 9; "not found" means the reference could not establish it):

* SNS HTTP body: JSON with Type (Notification | SubscriptionConfirmation | UnsubscribeConfirmation),
  MessageId, TopicArn, Message (a JSON *string* for SMS), Timestamp, SignatureVersion, Signature,
  SigningCertURL, and SubscribeURL/Token on confirmations (9.3).
* Inbound (9.1): {originationNumber (customer), destinationNumber (ours), messageKeyword, messageBody,
  inboundMessageId, previousPublishedMessageId}. No segment count and no MMS (not supported). Whether
  AWS also publishes the STOP it acted on: not found; we assume it does, and mark AWS's default opt-out
  keywords (and HELP, which AWS answers) as handled unless self-managed opt-outs are configured.
* Delivery events (9.2): {eventType, eventTimestamp (ms), isFinal, messageId, messageStatus,
  messageStatusDescription, context (the Context we sent: our message id comes back as `client_ref`),
  totalMessageParts, ...}. eventType values from the botocore enum (TEXT_* and MEDIA_*); the full
  messageStatus list: not found (the example shows SUCCESSFUL), so we map eventType and read
  messageStatus only for OPTED_OUT. TEXT_OPTED_OUT is not in the enum either;
  it is mapped defensively. One event per message, not per segment: `part`/`parts` stay None.
* Send (9.4): SendTextMessage returns {MessageId}; errors are ClientErrors whose code is the exception
  name, with a `Reason` for Conflict/Validation/ServiceQuota/AccessDenied. No idempotency token, and no
  API lists sent messages, so there is no `find_sent`: an ambiguous send cannot be reconciled here.
  Botocore's own retries are switched off so an ambiguous first attempt is never silently repeated.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from parley.carriers.base import (
    FailureKind,
    OutboundText,
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
)
from parley.carriers.config import CarrierConfig
from parley.carriers.sns import (
    NOTIFICATION,
    SUBSCRIPTION_CONFIRMATION,
    UNSUBSCRIBE_CONFIRMATION,
    ConfirmationFailed,
    SnsVerifier,
    parse_timestamp,
    split_list,
)
from parley.domain.retry import parse_retry_after
from parley.domain.vocabulary import MessageStatus
from parley.redact import mask

logger = logging.getLogger(__name__)

NAME: Final = "aws"
SERVICE: Final = "pinpoint-sms-voice-v2"
CONTEXT_KEY: Final = "parley_message_id"  # echoed back in every delivery event's `context`
SNS_TYPE_HEADER: Final = "x-amz-sns-message-type"

# AWS's default opt-out keywords (carriers.md 9.5); AWS acts on a message that begins with one.
AWS_OPT_OUT_KEYWORDS: Final = frozenset(
    {"ARRET", "CANCEL", "END", "OPT-OUT", "OPTOUT", "QUIT", "REMOVE", "STOP", "TD", "UNSUBSCRIBE"}
)
AWS_HELP_KEYWORDS: Final = frozenset({"HELP"})

_S = MessageStatus
# eventType without its TEXT_/MEDIA_ prefix -> our status. TEXT_SUCCESSFUL ("accepted by the recipient's
# carrier") is SENT, or DELIVERED when AWS marks it final: in some countries it is the last word.
EVENT_STATUS: Final[dict[str, MessageStatus]] = {
    "QUEUED": _S.ACCEPTED,
    "PENDING": _S.SENDING,
    "SENT": _S.SENT,
    "SUCCESSFUL": _S.SENT,
    "DELIVERED": _S.DELIVERED,
    "INVALID": _S.FAILED,
    "INVALID_MESSAGE": _S.FAILED,
    "PROTECT_BLOCKED": _S.FAILED,
    "OPTED_OUT": _S.FAILED,
    "FILE_INACCESSIBLE": _S.FAILED,
    "FILE_TYPE_UNSUPPORTED": _S.FAILED,
    "FILE_SIZE_EXCEEDED": _S.FAILED,
    "UNREACHABLE": _S.UNDELIVERED,
    "CARRIER_UNREACHABLE": _S.UNDELIVERED,
    "BLOCKED": _S.UNDELIVERED,
    "CARRIER_BLOCKED": _S.UNDELIVERED,
    "SPAM": _S.UNDELIVERED,
    "UNKNOWN": _S.UNDELIVERED,
    "TTL_EXPIRED": _S.UNDELIVERED,
}
_EVENT_FAMILIES: Final = ("TEXT", "MEDIA")  # VOICE_*, RCS_*, registration events are not ours

_P, _T, _A = FailureKind.PERMANENT, FailureKind.TRANSIENT, FailureKind.AMBIGUOUS
OPTED_OUT_REASON: Final = "DESTINATION_PHONE_NUMBER_OPTED_OUT"
_OPTED_OUT_WORDS: Final = "the recipient has opted out (replied STOP)"
_INVALID_NUMBER_WORDS: Final = "the number is not a valid phone number"

# Delivery-event failures (eventType suffix) -> class and plain words.
EVENT_ERRORS: Final[dict[str, tuple[FailureKind, str]]] = {
    "CARRIER_UNREACHABLE": (_T, "the recipient's carrier network had a temporary problem"),
    "UNREACHABLE": (_T, "the recipient's phone is unreachable (switched off or out of coverage)"),
    "TTL_EXPIRED": (_T, "the text could not be delivered in time and expired"),
    "UNKNOWN": (_T, "the carrier reported an unknown delivery error"),
    "BLOCKED": (_P, "the recipient's phone or carrier is blocking our texts"),
    "CARRIER_BLOCKED": (_P, "the recipient's carrier blocked the text as suspicious"),
    "SPAM": (_P, "the recipient's carrier blocked the text as spam"),
    "INVALID": (_P, _INVALID_NUMBER_WORDS),
    "INVALID_MESSAGE": (_P, "the message can't be delivered as written"),
    "PROTECT_BLOCKED": (_P, "our AWS protect settings blocked the text"),
    "OPTED_OUT": (_P, _OPTED_OUT_WORDS),
    "FILE_INACCESSIBLE": (_P, "the attached file could not be read"),
    "FILE_TYPE_UNSUPPORTED": (_P, "the attached file's type can't be sent"),
    "FILE_SIZE_EXCEEDED": (_P, "the attached file is too large"),
}

# SendTextMessage exception reasons (botocore's *ExceptionReason enums) -> class and plain words.
REASONS: Final[dict[str, tuple[FailureKind, str]]] = {
    OPTED_OUT_REASON: (_P, _OPTED_OUT_WORDS),
    "DESTINATION_PHONE_NUMBER_NOT_VERIFIED": (
        _P,
        "our AWS account is in the SMS sandbox and can only text verified numbers",
    ),
    "DESTINATION_PHONE_NUMBER_BLOCKED_BY_PROTECT_NUMBER_OVERRIDE": (
        _P,
        "our AWS protect settings block texts to this number",
    ),
    "DESTINATION_COUNTRY_BLOCKED_BY_PROTECT_CONFIGURATION": (
        _P,
        "our AWS protect settings block texts to this country",
    ),
    "DESTINATION_COUNTRY_BLOCKED": (_P, "texting this country is blocked on our account"),
    "COUNTRY_NOT_ENABLED": (_P, "texting this country is not enabled on our account"),
    "INVALID_IDENTITY_FOR_DESTINATION_COUNTRY": (_P, "our sending number can't text this country"),
    "INTERNATIONAL_SENDING_NOT_SUPPORTED": (_P, "our sending number can't text other countries"),
    "PRICE_OVER_THRESHOLD": (_P, "the text would cost more than the maximum price we allow"),
    "NO_ORIGINATION_IDENTITIES_FOUND": (_P, "we have no AWS sending number that can text this recipient"),
    "NUMBER_CAPABILITIES_MISMATCH": (_P, "our sending number can't send text messages"),
    "RESOURCE_NOT_ACTIVE": (_P, "our sending number is not active yet"),
    "MESSAGE_TYPE_MISMATCH": (_P, "our sending number is not set up for this type of message"),
    "REGISTRATION_NOT_COMPLETE": (_P, "our sending number's registration is not complete"),
    "SENDER_ID_NOT_REGISTERED": (_P, "our sender ID is not registered for this country"),
    "SENDER_ID_REQUIRES_REGISTRATION": (_P, "our sender ID is not registered for this country"),
    "SENDER_ID_NOT_SUPPORTED": (_P, "this country does not accept our sender ID"),
    "CHANNEL_NOT_ENABLED": (_P, "texting is not enabled for our sending number"),
    "MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT": (
        _P,
        "our AWS account reached its monthly SMS spending limit; an administrator must raise it",
    ),
    "ACCOUNT_DISABLED": (_P, "our AWS SMS account is disabled"),
    "INSUFFICIENT_ACCOUNT_REPUTATION": (_P, "AWS has restricted our account's texting (reputation)"),
}

# Exception names (the ClientError code) -> class and plain words, when no reason is more specific.
EXCEPTIONS: Final[dict[str, tuple[FailureKind, str]]] = {
    "ThrottlingException": (_T, "AWS is rate limiting our texts; it will be retried"),
    "TooManyRequestsException": (_T, "AWS is rate limiting our texts; it will be retried"),
    "ServiceQuotaExceededException": (_T, "an AWS sending quota was reached; it will be retried"),
    "ExpiredTokenException": (_T, "our AWS credentials expired; it will be retried with fresh ones"),
    "InternalServerException": (_A, "AWS had an internal error; the text may or may not have gone"),
    "ServiceUnavailableException": (_A, "AWS was unavailable; the text may or may not have gone"),
    "AccessDeniedException": (_P, "our AWS account is not allowed to send this text (check permissions)"),
    "UnrecognizedClientException": (_P, "AWS rejected our credentials (check the sender's role)"),
    "InvalidSignatureException": (_P, "AWS rejected our credentials (check the sender's role)"),
    "IncompleteSignatureException": (_P, "AWS rejected our credentials (check the sender's role)"),
    "MissingAuthenticationTokenException": (_P, "AWS rejected our credentials (check the sender's role)"),
    "ResourceNotFoundException": (_P, "our sending number or configuration set does not exist in AWS"),
    "ConflictException": (_P, "AWS refused the text because of how our account is set up"),
    "ValidationException": (_P, "AWS rejected the text as invalid"),
}

_TOPIC_ARN: Final = re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]{1,256}")
_MESSAGE_TYPES: Final = ("TRANSACTIONAL", "PROMOTIONAL")
_MAX_EVENT_MS: Final = 100_000_000_000_000  # year 5138: anything later is not a real timestamp


def classify_error(error_code: str | None, http_status: int | None) -> tuple[FailureKind, str]:
    """Class and plain reason for an AWS error: a send Reason, an exception name, or a receipt eventType.

    Throttling and quotas were refused before any text went out (retry); a 5xx may have been processed
    and SendTextMessage has no idempotency token, so it is ambiguous.
    """
    code = (error_code or "").strip()
    if code:
        family, _, suffix = code.partition("_")
        if family in _EVENT_FAMILIES and suffix in EVENT_ERRORS:
            return EVENT_ERRORS[suffix]
        if code in REASONS:
            return REASONS[code]
        if code in EXCEPTIONS:
            return EXCEPTIONS[code]
    if http_status == 429:
        return _T, "AWS is rate limiting our texts; it will be retried"
    if http_status is not None and http_status >= 500:
        return _A, f"AWS server error (HTTP {http_status}); the text may or may not have gone"
    if http_status in (401, 403):
        return _P, "AWS rejected our credentials (check the sender's role)"
    if http_status is not None:
        detail = f"error {code}" if code else f"HTTP {http_status}"
        return _P, f"AWS rejected the text ({detail})"
    if code:
        return _P, f"the text could not be delivered (error {code})"
    return _P, "the text could not be delivered"


class AwsSmsCarrier:
    """The AWS End User Messaging SMS plugin: one SNS verifier and one lazily created boto3 client."""

    name = NAME

    def __init__(
        self,
        verifier: SnsVerifier,
        *,
        region: str,
        configuration_set: str | None = None,
        endpoint_url: str | None = None,
        timeout: float = 10.0,
        message_type: str | None = None,
        self_managed_opt_outs: bool = False,
        session_factory: Callable[[], Any] | None = None,
    ) -> None:
        self.verifier = verifier
        self.region = region
        self.configuration_set = configuration_set or None
        self.endpoint_url = endpoint_url or None
        self.timeout = timeout
        self.message_type = message_type or None
        self.self_managed_opt_outs = self_managed_opt_outs
        self._session_factory = session_factory
        self._client: Any = None
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AwsSmsCarrier(region={self.region!r}, configuration_set={self.configuration_set!r})"

    # -- webhooks ---------------------------------------------------------------------------------

    def verify(self, request: WebhookRequest) -> None:
        """Raise SignatureError unless the body is a fresh SNS message AWS signed for one of our topics."""
        message = _json_object(request.body, "body is not an SNS message")  # unreadable: 400, not 403
        header_type = request.header(SNS_TYPE_HEADER)
        if header_type is not None and header_type != message.get("Type"):
            raise SignatureError("x-amz-sns-message-type does not match the message")
        self.verifier.verify(message)

    def parse(self, kind: WebhookKind, request: WebhookRequest) -> list[ParsedEvent]:
        """SNS message -> events. The payload says what it is, so every webhook kind is read the same way.

        A SubscriptionConfirmation is confirmed here (GET SubscribeURL) and yields nothing.
        """
        message = _json_object(request.body, "body is not an SNS message")
        sns_type = message.get("Type")
        if sns_type == SUBSCRIPTION_CONFIRMATION:
            try:
                self.verifier.confirm(message)
            except ConfirmationFailed as exc:
                raise PayloadError(str(exc)) from exc
            return []
        if sns_type == UNSUBSCRIBE_CONFIRMATION:
            logger.warning("SNS says we were unsubscribed from topic %s", _short(message.get("TopicArn")))
            return []
        if sns_type != NOTIFICATION:
            raise PayloadError("not an SNS message type we know")
        text = message.get("Message")
        if not isinstance(text, str):
            raise PayloadError("SNS Message is missing")
        try:
            payload = json.loads(text)
        except (ValueError, RecursionError):
            logger.info("SNS notification that is not JSON ignored (a test publish?)")
            return []
        if not isinstance(payload, dict):
            logger.info("SNS notification that is not a JSON object ignored")
            return []
        sent_at = _sns_time(message)
        if "inboundMessageId" in payload or "originationNumber" in payload:
            return [self._inbound(payload, sent_at)]
        event_type = payload.get("eventType")
        if event_type is None:
            logger.info("SNS notification with no SMS payload ignored")
            return []
        if not isinstance(event_type, str):
            raise PayloadError("eventType is not a string")
        family, _, suffix = event_type.partition("_")
        if family not in _EVENT_FAMILIES:
            return []  # voice, RCS and registration events: not ours
        return [self._status(payload, event_type, suffix, sent_at)]

    def ack(self, kind: WebhookKind) -> WebhookAck:
        """SNS only needs a 2xx, quickly; the body is ignored."""
        return WebhookAck(status_code=200, body="", content_type="text/plain")

    def _inbound(self, payload: dict[str, Any], sent_at: datetime) -> ParsedInbound:
        body = payload.get("messageBody", "")
        if not isinstance(body, str):
            raise PayloadError("messageBody is not a string")
        return ParsedInbound(
            carrier=NAME,
            carrier_message_id=_required(payload, "inboundMessageId"),
            from_number=_required(payload, "originationNumber"),
            to_number=_required(payload, "destinationNumber"),
            body=body,
            received_at=sent_at,
            opt_out=self._handled_keyword(body),
            raw=payload,
        )

    def _handled_keyword(self, body: str) -> Literal["STOP", "HELP"] | None:
        """STOP/HELP when AWS itself acted on the keyword (its managed opt-out list and HELP reply)."""
        if self.self_managed_opt_outs:
            return None
        words = body.strip().split(maxsplit=1)
        first = words[0].upper() if words else ""
        if first in AWS_OPT_OUT_KEYWORDS:
            return "STOP"
        if first in AWS_HELP_KEYWORDS:
            return "HELP"
        return None

    def _status(
        self, payload: dict[str, Any], event_type: str, suffix: str, sent_at: datetime
    ) -> ParsedStatus:
        message_id = _required(payload, "messageId")
        status = EVENT_STATUS.get(suffix)
        if status is None:
            raise PayloadError(f"unknown AWS SMS event type {event_type[:64]!r}")
        if suffix == "SUCCESSFUL" and payload.get("isFinal") is True:
            status = MessageStatus.DELIVERED
        message_status = payload.get("messageStatus")
        opted_out = suffix == "OPTED_OUT" or (
            isinstance(message_status, str) and message_status.strip().upper() == "OPTED_OUT"
        )
        if opted_out and status not in (MessageStatus.FAILED, MessageStatus.UNDELIVERED):
            status = MessageStatus.FAILED
        failed = status in (MessageStatus.FAILED, MessageStatus.UNDELIVERED)
        description = payload.get("messageStatusDescription")
        context = payload.get("context")
        client_ref = context.get(CONTEXT_KEY) if isinstance(context, dict) else None
        return ParsedStatus(
            carrier=NAME,
            carrier_message_id=message_id,
            status=status,
            carrier_status=event_type,
            error_code=event_type if failed else None,
            error_message=description if failed and isinstance(description, str) else None,
            occurred_at=_event_time(payload.get("eventTimestamp")) or sent_at,
            opted_out=opted_out,
            client_ref=client_ref if isinstance(client_ref, str) and client_ref else None,
            raw=payload,
        )

    # -- sending ----------------------------------------------------------------------------------

    def send(self, text: OutboundText) -> SendOutcome:
        """SendTextMessage once (botocore retries off); every failure comes back classified."""
        if text.media_urls:
            outcome: SendOutcome = SendFailed(
                _P, "this sender sends text only: pictures and files can't be sent"
            )
            _log_outcome(text, outcome)
            return outcome
        params: dict[str, Any] = {
            "DestinationPhoneNumber": text.to_number,
            "OriginationIdentity": text.from_number,
            "MessageBody": text.body,
            "Context": {CONTEXT_KEY: text.message_id},
        }
        if self.configuration_set:
            params["ConfigurationSetName"] = self.configuration_set
        if self.message_type:
            params["MessageType"] = self.message_type
        try:
            outcome = self._send(params)
        except Exception:  # a bug of ours must not look like a carrier failure, but must not raise either
            logger.exception("unexpected error while sending through AWS")
            outcome = SendFailed(_A, "sending failed unexpectedly; the text may or may not have gone")
        _log_outcome(text, outcome)
        return outcome

    def classify(self, error_code: str | None, http_status: int | None) -> tuple[FailureKind, str]:
        return classify_error(error_code, http_status)

    def _send(self, params: dict[str, Any]) -> SendOutcome:
        import botocore.exceptions as bx

        try:
            client = self._sms_client()
        except (ValueError, bx.BotoCoreError):  # a malformed endpoint URL or region, caught at creation
            return SendFailed(_P, "the AWS SMS endpoint or region is misconfigured")
        try:
            response = client.send_text_message(**params)
        except bx.ClientError as exc:
            return _client_error(exc.response)
        except (bx.NoCredentialsError, bx.PartialCredentialsError, bx.CredentialRetrievalError):
            return SendFailed(_P, "no AWS credentials are available to send texts (check the sender's role)")
        except bx.ParamValidationError:
            return SendFailed(_P, "the text was refused before sending: the message is empty or too long")
        except (bx.NoRegionError, bx.EndpointResolutionError):
            return SendFailed(_P, "the AWS SMS endpoint or region is misconfigured")
        except bx.ConnectionError:  # refused, DNS, connect timeout, TLS handshake: nothing left us
            return SendFailed(_T, "could not reach AWS; it will be retried")
        except bx.ReadTimeoutError:
            return SendFailed(_A, "AWS did not answer in time; the text may or may not have gone")
        except bx.BotoCoreError:  # connection closed mid-answer, unreadable response, ...
            return SendFailed(
                _A, "the connection to AWS broke after sending; the text may or may not have gone"
            )
        message_id = response.get("MessageId") if isinstance(response, dict) else None
        if not isinstance(message_id, str) or not message_id:
            return SendFailed(_A, "AWS answered without a message id; the text may or may not have gone")
        return SendAccepted(carrier_message_id=message_id, carrier_status="accepted")

    def _sms_client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                from parley.carriers.http import CONNECT_TIMEOUT_SECONDS

                session = self._session_factory() if self._session_factory else boto3.session.Session()
                self._client = session.client(
                    SERVICE,
                    region_name=self.region,
                    endpoint_url=self.endpoint_url,
                    config=Config(
                        connect_timeout=CONNECT_TIMEOUT_SECONDS,
                        read_timeout=self.timeout,
                        retries={"total_max_attempts": 1, "mode": "standard"},
                        user_agent_extra="parley",
                    ),
                )
            return self._client


def build(config: CarrierConfig) -> AwsSmsCarrier:
    """The plugin from PARLEY_AWS_* settings. AWS credentials come from the default chain (the role).

    Settings are checked here, so a malformed one fails at start-up, naming the variable.
    """
    topic_arns = split_list(config.get("aws_sns_topic_arns"))
    for arn in topic_arns:
        if not _TOPIC_ARN.fullmatch(arn):
            raise ValueError(f"PARLEY_AWS_SNS_TOPIC_ARNS: {arn!r} is not an SNS topic ARN")
    raw_age = config.get("aws_sns_max_age_seconds", "3600")
    try:
        max_age = float(raw_age)
    except ValueError:
        max_age = 0.0
    if not 0 < max_age < 10**8:
        raise ValueError(
            f"PARLEY_AWS_SNS_MAX_AGE_SECONDS must be a positive number of seconds, not {raw_age!r}"
        )
    message_type = config.get("aws_sms_message_type").strip().upper()
    if message_type and message_type not in _MESSAGE_TYPES:
        raise ValueError("PARLEY_AWS_SMS_MESSAGE_TYPE must be TRANSACTIONAL or PROMOTIONAL")
    verifier = SnsVerifier(
        topic_arns=topic_arns,
        extra_cert_hosts=split_list(config.get("aws_sns_cert_hosts_extra")),
        max_age=timedelta(seconds=max_age),
    )
    return AwsSmsCarrier(
        verifier,
        region=config.get("aws_sms_region").strip() or config.region,
        configuration_set=config.get("aws_sms_configuration_set").strip() or None,
        endpoint_url=config.get("aws_sms_endpoint_url").strip() or None,
        timeout=config.timeout,
        message_type=message_type or None,
        self_managed_opt_outs=config.get("aws_sms_self_managed_opt_outs").strip().lower()
        in ("1", "true", "yes"),
    )


# -- helpers ----------------------------------------------------------------------------------------


def _client_error(response: dict[str, Any]) -> SendFailed:
    error = response.get("Error") or {}
    code = str(error.get("Code") or "") or None
    reason = response.get("Reason") if isinstance(response.get("Reason"), str) else None
    metadata = response.get("ResponseMetadata") or {}
    http_status = metadata.get("HTTPStatusCode") if isinstance(metadata.get("HTTPStatusCode"), int) else None
    if code is not None and code == str(http_status):
        code = None  # botocore's stand-in when the body named no error (e.g. a plain-text 429 or 503)
    kind, words = REASONS[reason] if reason in REASONS else classify_error(code, http_status)
    if (
        code == "ValidationException"
        and reason not in REASONS
        and _names_field(response, "DestinationPhoneNumber")
    ):
        words = _INVALID_NUMBER_WORDS
    headers = metadata.get("HTTPHeaders")  # botocore lower-cases the names
    asked = headers.get("retry-after") if isinstance(headers, dict) else None
    return SendFailed(
        kind,
        words,
        error_code=reason or code,
        http_status=http_status,
        opted_out=reason == OPTED_OUT_REASON,
        retry_after=parse_retry_after(asked if isinstance(asked, str) else None),
    )


def _names_field(response: dict[str, Any], name: str) -> bool:
    fields = response.get("Fields")
    return isinstance(fields, list) and any(isinstance(f, dict) and f.get("Name") == name for f in fields)


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise PayloadError(f"{what} (not JSON)") from exc
    if not isinstance(data, dict):
        raise PayloadError(f"{what} (not a JSON object)")
    return data


def _required(payload: dict[str, Any], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value.strip():
        raise PayloadError(f"{key} is missing")
    return value.strip()


def _sns_time(message: dict[str, Any]) -> datetime:
    try:
        return parse_timestamp(message.get("Timestamp"))
    except (ValueError, TypeError) as exc:
        raise PayloadError("SNS Timestamp is not a valid time") from exc


def _event_time(value: object) -> datetime | None:
    """eventTimestamp (Unix milliseconds), or None when absent or not a plausible time."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < _MAX_EVENT_MS:
        return None
    return datetime.fromtimestamp(value / 1000, UTC)


def _short(value: object) -> str:
    return value[:256] if isinstance(value, str) else "?"


def _log_outcome(text: OutboundText, outcome: SendOutcome) -> None:
    if isinstance(outcome, SendAccepted):
        logger.info(
            "AWS accepted text %s to %s as %s",
            text.message_id,
            mask(text.to_number),
            outcome.carrier_message_id,
        )
    else:
        logger.warning(
            "AWS send of %s to %s failed (%s, %s, HTTP %s): %s",
            text.message_id,
            mask(text.to_number),
            outcome.kind.value,
            outcome.error_code,
            outcome.http_status,
            outcome.reason,
        )
