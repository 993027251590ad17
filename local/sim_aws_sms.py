"""An AWS End User Messaging SMS + SNS look-alike for local runs and tests, with injectable faults.

Why: the AWS plugin must be exercised end to end without an AWS account, through the same code paths
it uses in production, so this speaks the real wire formats: boto3's ``pinpoint-sms-voice-v2``
client (``endpoint_url`` pointed here) sends awsJson1_0 requests signed with SigV4, which are checked
against the configured key pair; delivery events and inbound texts come back as SNS HTTP
notifications signed like SNS signs them (RSA, SignatureVersion 2 by default) with the simulator's
own key, whose self-signed certificate is served at ``/cert.pem``. Point the plugin at it with::

    PARLEY_AWS_SMS_ENDPOINT_URL=<base>/_sim/aws
    PARLEY_AWS_SNS_CERT_HOSTS_EXTRA=127.0.0.1          # the simulator's host: local use only
    PARLEY_AWS_SNS_TOPIC_ARNS=arn:aws:sns:us-east-1:123456789012:parley-local-sms
    AWS_ACCESS_KEY_ID=testing  AWS_SECRET_ACCESS_KEY=testing   (the local runtime's values)

Mounted as a WSGI app at ``/_sim/aws``; paths below are relative to the mount point.

AWS API (SigV4 with the simulator's key pair, service ``sms-voice``):
    POST /   X-Amz-Target: PinpointSMSVoiceV2.SendTextMessage  -> {"MessageId"} or an AWS JSON error
    GET  /?Action=ConfirmSubscription&TopicArn=..&Token=..     -> the subscription is confirmed (XML)
    GET  /cert.pem (also /SimpleNotificationService-<hash>.pem, the SigningCertURL) -> the certificate
Control plane (no auth; JSON):
    POST /_inbound    {"from", "to", "body", "repeat"} -> a phone texting us (one SNS message, repeated)
    POST /_sign       an SNS message -> the same message signed by this simulator (for local tests)
    POST /_subscribe  {} -> a signed SubscriptionConfirmation to our webhook
    POST /_faults     {"kind", "count", "to", "error_code", "hold_seconds"};  GET /_faults;  DELETE /_faults
    GET  /_messages   every accepted text with its events;  DELETE /_messages resets everything

Order of checks on SendTextMessage: signature, operation and body, then validation and the opt-out
list (errors here never consume a fault), then faults, then acceptance. Fault kinds: "500" (an
InternalServerException, nothing sent), "429" (a ThrottlingException; AWS's JSON protocol answers 400),
"timeout" (the answer is held for ``hold_seconds``, then a 500: nothing sent) and "undelivered"
(accepted; the final event is ``error_code``, default TEXT_UNREACHABLE). After acceptance a daemon
thread posts TEXT_SUCCESSFUL (not final) then TEXT_DELIVERED (final) to
``{webhook_base_url}/webhooks/aws/events``, each retried up to 3 more times on 5xx or no connection.
An inbound text starting with one of AWS's opt-out keywords puts the sender on the opt-out list,
as AWS's managed opt-outs do; sends to them then fail with DESTINATION_PHONE_NUMBER_OPTED_OUT.
Events are posted whether or not the request named a configuration set (AWS needs one with an SNS
destination); the ``messageStatus`` values are assumed to be the eventType without its prefix.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from local.sim_common import (
    BadControlRequest,
    Delivery,
    FaultBook,
    Simulator,
    check_repeat,
    json_response,
    read_json_object,
)

__all__ = ["DEFAULT_TOPIC_ARN", "FAULT_KINDS", "AwsApiError", "SimulatedAwsSms", "sns_string_to_sign"]

logger = logging.getLogger(__name__)

DEFAULT_ACCESS_KEY_ID = "testing"  # what the local runtime puts in AWS_ACCESS_KEY_ID
DEFAULT_SECRET_ACCESS_KEY = "testing"
DEFAULT_TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:parley-local-sms"
EVENTS_PATH = "/webhooks/aws/events"
TARGET = "PinpointSMSVoiceV2.SendTextMessage"
SERVICE = "sms-voice"
JSON_CONTENT_TYPE = "application/x-amz-json-1.0"
ERROR_NAMESPACE = "com.amazonaws.pinpointsmsvoicev2#"
FAULT_KINDS = ("500", "429", "timeout", "undelivered")
CALLBACK_RETRIES = 3
MAX_BODY_CHARS = 1600
MAX_INBOUND_REPEAT = 20
SIGNATURE_WINDOW = timedelta(minutes=15)  # AWS rejects SigV4 requests this far from its clock
OPT_OUT_KEYWORDS = frozenset(
    {"ARRET", "CANCEL", "END", "OPT-OUT", "OPTOUT", "QUIT", "REMOVE", "STOP", "TD", "UNSUBSCRIBE"}
)
_E164 = re.compile(r"\+[1-9]\d{6,14}")
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/\s]+)/(?P<date>\d{8})/(?P<region>[^/\s]+)/(?P<service>[^/\s]+)"
    r"/aws4_request,\s*SignedHeaders=(?P<headers>[a-z0-9;-]+),\s*Signature=(?P<signature>[0-9a-f]{64})"
)
_NOTIFICATION_KEYS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_CONFIRMATION_KEYS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")

_URLS = Map(
    [
        Rule("/", endpoint="api", methods=["GET", "POST"]),
        Rule("/<name>.pem", endpoint="cert", methods=["GET"]),
        Rule("/_inbound", endpoint="inbound", methods=["POST"]),
        Rule("/_subscribe", endpoint="subscribe", methods=["POST"]),
        Rule("/_sign", endpoint="sign", methods=["POST"]),
        Rule("/_faults", endpoint="faults", methods=["GET", "POST", "DELETE"]),
        Rule("/_messages", endpoint="sim_messages", methods=["GET", "DELETE"]),
    ]
)


def sns_string_to_sign(message: Mapping[str, Any]) -> bytes:
    """SNS's canonical "key\\nvalue\\n" string for the message's type (absent keys skipped)."""
    keys = _NOTIFICATION_KEYS if message.get("Type") == "Notification" else _CONFIRMATION_KEYS
    return "".join(f"{k}\n{message[k]}\n" for k in keys if message.get(k) is not None).encode("utf-8")


def _sns_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class AwsApiError(Exception):
    """An error the API answers with, in the awsJson1_0 shape botocore parses.

    Modelled service errors carry the service's namespace in ``__type``; the front door's
    authentication errors don't, and spell ``message`` in lower case, as AWS's do.
    """

    def __init__(
        self, status: int, code: str, message: str, *, modelled: bool = True, **members: Any
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.modelled = modelled
        self.members = members

    def to_dict(self) -> dict[str, Any]:
        if not self.modelled:
            return {"__type": self.code, "message": self.message}
        return {"__type": ERROR_NAMESPACE + self.code, "Message": self.message, **self.members}


@dataclass
class _Stored:
    request: dict[str, Any]
    message_id: str
    requested_at: datetime
    status: str = "ACCEPTED"
    events: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(json.dumps(self.request))
        data.update(MessageId=self.message_id, status=self.status, events=json.loads(json.dumps(self.events)))
        return data


def _check_error_code(code: str) -> None:
    if not code.startswith("TEXT_"):
        raise ValueError("error_code must be a TEXT_* event type, e.g. TEXT_CARRIER_UNREACHABLE")


class SimulatedAwsSms(Simulator[AwsApiError]):
    """The simulator. All state lives on the instance behind locks; the server may be threaded.

    `webhook_base_url` is where Parley's API is (SNS posts to ``/webhooks/aws/events`` under it);
    `self_url` is where this simulator is mounted, for the certificate and SubscribeURL
    (default ``{webhook_base_url}/_sim/aws``). Credentials default to the local runtime's
    ``testing``/``testing``.
    """

    urls = _URLS
    api_errors = (AwsApiError,)
    control_empty_body = b"{}"

    def __init__(
        self,
        webhook_base_url: str,
        *,
        access_key_id: str = DEFAULT_ACCESS_KEY_ID,
        secret_access_key: str = DEFAULT_SECRET_ACCESS_KEY,
        topic_arn: str = DEFAULT_TOPIC_ARN,
        self_url: str | None = None,
        signature_version: str = "2",
        callback_delay: float = 0.0,
        callback_retry_delay: float = 0.05,
        http_timeout: float = 15.0,
    ) -> None:
        if signature_version not in ("1", "2"):
            raise ValueError("signature_version must be '1' or '2'")
        faults = FaultBook(
            FAULT_KINDS,
            default_error_code="TEXT_UNREACHABLE",
            new_id=lambda: f"fault-{uuid.uuid4().hex[:12]}",
            check_error_code=_check_error_code,
        )
        super().__init__(faults, callback_delay, callback_retry_delay, http_timeout)  # SNS gives us 15 s
        self.webhook_base_url = webhook_base_url.rstrip("/")
        self.self_url = (self_url or f"{self.webhook_base_url}/_sim/aws").rstrip("/")
        self.access_key_id = access_key_id
        self._secret_access_key = secret_access_key
        self.topic_arn = topic_arn
        self.signature_version = signature_version
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.certificate_pem = _self_signed(self._key)
        self._cert_name = "SimpleNotificationService-" + hashlib.sha256(self.certificate_pem).hexdigest()[:32]
        self._messages: dict[str, _Stored] = {}
        self._opted_out: set[str] = set()
        self._tokens: dict[str, bool] = {}  # subscription token -> confirmed

    @property
    def events_url(self) -> str:
        return self.webhook_base_url + EVENTS_PATH

    @property
    def cert_url(self) -> str:
        """Named after the key, as SNS names its certificates: a verifier's per-URL cache can't mix up
        two simulators (say, two local stacks in one process). ``/cert.pem`` serves the same file."""
        return f"{self.self_url}/{self._cert_name}.pem"

    # --- Python API ---------------------------------------------------------------------------------

    def messages(self, to: str | None = None) -> list[dict[str, Any]]:
        """Accepted texts, oldest first, each with its events and how our webhook answered them."""
        with self._lock:
            stored = list(self._messages.values())
        return [s.to_dict() for s in stored if to is None or s.request.get("DestinationPhoneNumber") == to]

    def opted_out(self) -> list[str]:
        with self._lock:
            return sorted(self._opted_out)

    def opt_out(self, number: str) -> None:
        with self._lock:
            self._opted_out.add(number)

    def confirmed_subscriptions(self) -> int:
        with self._lock:
            return sum(self._tokens.values())

    def reset(self) -> None:
        """Forget texts, faults, opt-outs and subscriptions; pending events of forgotten texts stop."""
        with self._lock:
            self._messages.clear()
            self._opted_out.clear()
            self._tokens.clear()
        self._faults.clear()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until every pending event has been posted; False if some are still going at the deadline."""
        return self._callbacks.wait_idle(timeout)

    def send_text_message(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """What SendTextMessage does once authenticated: {"MessageId"} or raises AwsApiError.

        Blocks while a timeout fault holds the answer.
        """
        to = params.get("DestinationPhoneNumber")
        body = params.get("MessageBody")
        if not isinstance(to, str) or not to:
            raise _validation("MISSING_PARAMETER", "DestinationPhoneNumber", "is required")
        if not _E164.fullmatch(to):
            raise _validation(
                "INVALID_PARAMETER", "DestinationPhoneNumber", "is not a valid E.164 phone number"
            )
        if not isinstance(body, str) or not body:
            raise _validation("MISSING_PARAMETER", "MessageBody", "is required")
        if len(body) > MAX_BODY_CHARS:
            raise _validation(
                "INVALID_PARAMETER", "MessageBody", f"is longer than {MAX_BODY_CHARS} characters"
            )
        with self._lock:
            opted_out = to in self._opted_out
        if opted_out:
            raise AwsApiError(
                400,
                "ConflictException",
                "The destination phone number is opted out.",
                Reason="DESTINATION_PHONE_NUMBER_OPTED_OUT",
                ResourceType="opted-out-number",
                ResourceId=to,
            )
        fault = self._faults.take(to)
        if fault is not None and fault.kind == "500":
            raise AwsApiError(500, "InternalServerException", "Internal failure (simulated)", RequestId=_id())
        if fault is not None and fault.kind == "429":
            raise AwsApiError(400, "ThrottlingException", "Rate exceeded (simulated)")
        if fault is not None and fault.kind == "timeout":
            self._faults.hold(fault.hold_seconds)
            raise AwsApiError(
                500, "InternalServerException", "Timed out (simulated; nothing sent)", RequestId=_id()
            )
        final = fault.error_code if fault is not None and fault.kind == "undelivered" else "TEXT_DELIVERED"
        return {"MessageId": self._accept(dict(params), final)}

    def send_inbound(self, from_: str, to: str, body: str = "", *, repeat: int = 1) -> dict[str, Any]:
        """A phone texting our number: one signed SNS notification, posted `repeat` times (SNS retrying)."""
        if not isinstance(from_, str) or not isinstance(to, str) or not from_ or not to:
            raise ValueError("'from' and 'to' are required strings")
        if not isinstance(body, str):
            raise ValueError("'body' must be a string")
        check_repeat(repeat, MAX_INBOUND_REPEAT)
        words = body.strip().split(maxsplit=1)
        if words and words[0].upper() in OPT_OUT_KEYWORDS:
            self.opt_out(from_)  # AWS-managed opt-out list
        payload: dict[str, Any] = {
            "originationNumber": from_,
            "destinationNumber": to,
            "messageKeyword": "KEYWORD_123456789012",
            "messageBody": body,
            "inboundMessageId": _id(),
        }
        previous = self._last_sent(to=from_, from_=to)
        if previous:
            payload["previousPublishedMessageId"] = previous
        notification = self._notification(json.dumps(payload))
        responses = [self._post(notification).response_code for _ in range(repeat)]
        logger.info("sim aws: inbound %s -> %s answered %s", from_, to, responses)
        return {
            "inbound_message_id": payload["inboundMessageId"],
            "sns_message_id": notification["MessageId"],
            "responses": responses,
        }

    def request_subscription(self) -> dict[str, Any]:
        """Post a signed SubscriptionConfirmation, as SNS does when an HTTPS endpoint is subscribed."""
        token = uuid.uuid4().hex * 2
        with self._lock:
            self._tokens[token] = False
        topic = quote(self.topic_arn, safe="")
        subscribe_url = f"{self.self_url}/?Action=ConfirmSubscription&TopicArn={topic}&Token={token}"
        message = {
            "Type": "SubscriptionConfirmation",
            "MessageId": _id(),
            "Token": token,
            "TopicArn": self.topic_arn,
            "Message": f"Confirm the subscription to {self.topic_arn} by visiting SubscribeURL.",
            "SubscribeURL": subscribe_url,
            "Timestamp": _sns_time(datetime.now(UTC)),
        }
        result = self._post(self._signed(message))
        return {"token": token, "response_code": result.response_code, "error": result.error}

    # --- internals ------------------------------------------------------------------------------------

    def _last_sent(self, *, to: str, from_: str) -> str | None:
        with self._lock:
            for stored in reversed(self._messages.values()):
                request = stored.request
                if (
                    request.get("DestinationPhoneNumber") == to
                    and request.get("OriginationIdentity") == from_
                ):
                    return stored.message_id
        return None

    def _accept(self, params: dict[str, Any], final: str) -> str:
        message_id = _id()
        stored = _Stored(request=params, message_id=message_id, requested_at=datetime.now(UTC))
        with self._lock:
            self._messages[message_id] = stored
        logger.info("sim aws: accepted %s to %s", message_id, params.get("DestinationPhoneNumber"))
        steps = [("TEXT_SUCCESSFUL", False), (final, True)]
        self._callbacks.start(
            f"sim-aws-{message_id[:8]}", steps, functools.partial(self._post_event, message_id)
        )
        return message_id

    def _post_event(self, message_id: str, step: tuple[str, bool]) -> bool:
        """Move the text on and post its delivery event; False once the text is forgotten."""
        event_type, is_final = step
        event = self._event(message_id, event_type, is_final=is_final)
        if event is None:
            return False  # reset meanwhile
        record = {"eventType": event_type, **self._post(self._notification(json.dumps(event))).record()}
        with self._lock:
            stored = self._messages.get(message_id)
            if stored is not None:
                stored.events.append(record)
            return stored is not None

    def _event(self, message_id: str, event_type: str, *, is_final: bool) -> dict[str, Any] | None:
        """The configuration-set event JSON (carriers.md 9.2) for `event_type`, moving the text along."""
        now = datetime.now(UTC)
        with self._lock:
            stored = self._messages.get(message_id)
            if stored is None:
                return None
            stored.status = event_type.removeprefix("TEXT_")
            request = stored.request
            requested_ms = int(stored.requested_at.timestamp() * 1000)
        to = str(request.get("DestinationPhoneNumber", ""))
        failed = event_type not in ("TEXT_SUCCESSFUL", "TEXT_DELIVERED")
        return {
            "eventType": event_type,
            "eventVersion": "1.0",
            "eventTimestamp": int(now.timestamp() * 1000),
            "isFinal": is_final,
            "originationPhoneNumber": request.get("OriginationIdentity", ""),
            "destinationPhoneNumber": to,
            "isInternationalSend": False,
            "isoCountryCode": "US" if to.startswith("+1") else "ZZ",
            "mcc": "310",
            "mnc": "260",
            "messageId": message_id,
            "messageRequestTimestamp": requested_ms,
            "messageEncoding": "GSM",
            "messageType": request.get("MessageType", "TRANSACTIONAL"),
            "messageStatus": event_type.removeprefix("TEXT_"),
            "messageStatusDescription": "Simulated failure" if failed else "Simulated success",
            "context": request.get("Context", {}),
            "totalMessageParts": 1,
            "totalMessagePrice": 0.00581,
            "totalCarrierFee": 0.00302,
        }

    def _notification(self, message: str) -> dict[str, Any]:
        subscription = quote(f"{self.topic_arn}:00000000-0000-4000-8000-000000000000")
        return self._signed(
            {
                "Type": "Notification",
                "MessageId": _id(),
                "TopicArn": self.topic_arn,
                "Message": message,
                "Timestamp": _sns_time(datetime.now(UTC)),
                "UnsubscribeURL": f"{self.self_url}/?Action=Unsubscribe&SubscriptionArn={subscription}",
            }
        )

    def _signed(self, message: dict[str, Any]) -> dict[str, Any]:
        signed = {**message, "SignatureVersion": self.signature_version, "SigningCertURL": self.cert_url}
        digest = hashes.SHA1() if self.signature_version == "1" else hashes.SHA256()
        signature = self._key.sign(sns_string_to_sign(signed), padding.PKCS1v15(), digest)
        signed["Signature"] = base64.b64encode(signature).decode("ascii")
        return signed

    def _post(self, message: dict[str, Any]) -> Delivery:
        """Deliver one SNS message to our webhook as SNS does over HTTP, retrying on 5xx or no answer."""
        headers = {
            "Content-Type": "text/plain; charset=UTF-8",
            "User-Agent": "Amazon Simple Notification Service Agent",
            "x-amz-sns-message-type": message["Type"],
            "x-amz-sns-message-id": message["MessageId"],
            "x-amz-sns-topic-arn": message["TopicArn"],
        }
        if message["Type"] == "Notification":
            headers["x-amz-sns-subscription-arn"] = f"{self.topic_arn}:00000000-0000-4000-8000-000000000000"
        data = json.dumps(message).encode("utf-8")
        return self._callbacks.deliver(
            lambda: requests.post(self.events_url, data=data, headers=headers, timeout=self.http_timeout),
            retries=CALLBACK_RETRIES,
        )

    # --- WSGI -------------------------------------------------------------------------------------------

    def _api_error_response(self, exc: AwsApiError) -> Response:
        return Response(
            json.dumps(exc.to_dict()),
            status=exc.status,
            content_type=JSON_CONTENT_TYPE,
            headers={"x-amzn-RequestId": _id(), "x-amzn-ErrorType": exc.code},
        )

    def _routing_error_response(self, request: Request, exc: HTTPException) -> Response:
        if isinstance(exc, MethodNotAllowed):
            return json_response({"reason": "method not allowed"}, 405)
        return json_response({"reason": f"no such resource: {request.path}"}, exc.code or 500)

    def _match(self, request: Request) -> tuple[str, Mapping[str, Any]]:
        endpoint, args = self.urls.bind_to_environ(request.environ).match(request.path)
        return str(endpoint), args

    def _listing(self) -> dict[str, Any]:
        return {"messages": self.messages(), "opted_out": self.opted_out()}

    def _inbound_endpoint(self, request: Request) -> Response:
        data = read_json_object(request, empty=self.control_empty_body)
        try:
            result = self.send_inbound(
                data.get("from", ""), data.get("to", ""), data.get("body", ""), repeat=data.get("repeat", 1)
            )
        except ValueError as exc:
            raise BadControlRequest(str(exc)) from exc
        return json_response(result)

    def _dispatch(self, request: Request, endpoint: str, args: Mapping[str, Any]) -> Response:
        if endpoint == "cert":
            if args["name"] not in ("cert", self._cert_name):
                raise NotFound()
            return Response(self.certificate_pem, content_type="application/x-pem-file")
        if endpoint == "subscribe":
            return json_response(self.request_subscription())
        if endpoint == "sign":  # local tests: sign an SNS message as this topic, to post it themselves
            message = read_json_object(request)
            stripped = {k: v for k, v in message.items() if k not in ("Signature", "SignatureVersion")}
            return json_response(self._signed({**stripped, "TopicArn": self.topic_arn}))
        if request.method == "GET":
            return self._confirm_subscription(request)
        return self._api(request)

    def _api(self, request: Request) -> Response:
        raw = request.get_data(cache=True)
        self._authenticate(request, raw)
        target = request.headers.get("X-Amz-Target", "")
        if target != TARGET:
            raise AwsApiError(
                400, "UnknownOperationException", f"Operation {target or '(none)'} is not simulated"
            )
        try:
            params = json.loads(raw or b"{}")
        except ValueError as exc:
            raise AwsApiError(400, "SerializationException", "The request body is not valid JSON") from exc
        if not isinstance(params, dict):
            raise AwsApiError(400, "SerializationException", "The request body must be a JSON object")
        return Response(json.dumps(self.send_text_message(params)), content_type=JSON_CONTENT_TYPE)

    def _authenticate(self, request: Request, body: bytes) -> None:
        """Check the SigV4 signature with botocore's own signer, for the simulator's key pair."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        match = _AUTHORIZATION.fullmatch(request.headers.get("Authorization", "").strip())
        if match is None:
            raise _auth_error("MissingAuthenticationTokenException", "Missing or malformed SigV4 signature")
        if not hmac.compare_digest(match["key"].encode(), self.access_key_id.encode()):
            raise _auth_error(
                "UnrecognizedClientException", "The access key id is not known to this simulator"
            )
        amz_date = request.headers.get("X-Amz-Date", "")
        try:
            signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise _auth_error("IncompleteSignatureException", "X-Amz-Date is missing or malformed") from None
        if abs(datetime.now(UTC) - signed_at) > SIGNATURE_WINDOW or not amz_date.startswith(match["date"]):
            raise _auth_error("InvalidSignatureException", "Signature expired")
        if match["service"] != SERVICE:
            raise _auth_error("InvalidSignatureException", f"Credential should be scoped to '{SERVICE}'")
        names = match["headers"].split(";")
        headers = {name: request.headers.get(name, "") for name in names}
        environ = request.environ
        raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI")
        if raw_uri:  # the path exactly as the client signed it, before any mount split it up
            url = f"{request.scheme}://{request.host}{raw_uri}"
        else:
            path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
            url = f"{request.scheme}://{request.host}{path}"
            if request.query_string:
                url += "?" + request.query_string.decode("latin-1")
        aws_request = AWSRequest(method=request.method, url=url, data=body, headers=headers)
        aws_request.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(self.access_key_id, self._secret_access_key), SERVICE, match["region"])
        canonical = signer.canonical_request(aws_request)
        expected = signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)
        if not hmac.compare_digest(expected.encode(), match["signature"].encode()):
            raise _auth_error(
                "InvalidSignatureException",
                "The SigV4 signature does not match the request (check the secret access key)",
            )

    def _confirm_subscription(self, request: Request) -> Response:
        token = request.args.get("Token", "")
        if request.args.get("Action") != "ConfirmSubscription":
            raise BadControlRequest("only Action=ConfirmSubscription is simulated")
        with self._lock:
            known = token in self._tokens
            if known:
                self._tokens[token] = True
        if not known:
            return Response(
                "<ErrorResponse><Error><Code>InvalidParameter</Code></Error></ErrorResponse>",
                status=400,
                content_type="text/xml",
            )
        arn = f"{self.topic_arn}:{uuid.uuid5(uuid.NAMESPACE_URL, token)}"
        xml = (
            "<ConfirmSubscriptionResponse><ConfirmSubscriptionResult>"
            f"<SubscriptionArn>{arn}</SubscriptionArn></ConfirmSubscriptionResult></ConfirmSubscriptionResponse>"
        )
        return Response(xml, content_type="text/xml")


def _auth_error(code: str, message: str) -> AwsApiError:
    return AwsApiError(403, code, message, modelled=False)


def _validation(reason: str, field_name: str, problem: str) -> AwsApiError:
    return AwsApiError(
        400,
        "ValidationException",
        f"{field_name} {problem}",
        Reason=reason,
        Fields=[{"Name": field_name, "Message": f"{field_name} {problem}"}],
    )


def _self_signed(key: rsa.RSAPrivateKey) -> bytes:
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Parley local SNS simulator (not AWS)")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def _id() -> str:
    return str(uuid.uuid4())
