"""A Vonage Messages API (v1) look-alike for local runs and tests, with injectable faults.

Why: the send, retry and webhook paths must run end to end without a Vonage account, so this speaks
the real wire format: JSON requests with HTTP Basic auth (API key and secret), `202 {message_uuid}`,
RFC 7807 problem JSON for errors, and status / inbound webhooks signed the way Vonage signs them: a
bearer JWT (HS256 with the signature secret) whose `payload_hash` claim is the SHA-256 of the body.
Numbers are written as Vonage writes them, E.164 without the "+", and a "+" in a send is refused.

Mounted as a WSGI app (e.g. at ``/_sim/vonage-messages``); paths below are relative to the mount.

Messages API (HTTP Basic ``api_key:api_secret``):
    POST /v1/messages   {message_type: text, channel: sms, to, from, text, client_ref?, webhook_url?}
                        or {message_type: image, channel: mms, image: {url, caption?}, ...}
                        → 202 {"message_uuid"} or a problem (401, 422, and faults: 429, 500, 503)
Control plane (no auth; JSON):
    POST /_faults   {"kind", "count", "to", "error_code", "hold_seconds"} → 201 with the fault
    GET  /_faults   active faults;  DELETE /_faults clears them (and releases holds)
    POST /_inbound  {"from", "to", "body", "media_urls", "media", "repeat"} → a phone texting us
                    ("media": true attaches this simulator's /_media/parley.png)
    GET  /_media/<name>  the picture a phone attached (local.sim_media), no auth
    GET  /_messages every accepted message with its callbacks;  DELETE /_messages resets everything

Local credentials default to DEFAULT_API_KEY, DEFAULT_API_SECRET and DEFAULT_SIGNATURE_SECRET (set
the same values as PARLEY_VONAGE_API_KEY, PARLEY_VONAGE_API_SECRET and
PARLEY_VONAGE_MESSAGES_SIGNATURE_SECRET). Order of checks on send: authentication, validation (a 422
never consumes a fault), faults (the first active fault for the recipient takes one count), then
acceptance. Status webhooks run on a daemon thread per message: ``submitted`` then ``delivered`` (or
``rejected`` with an error), each after ``callback_delay`` seconds, to the message's ``webhook_url``
or ``{webhook_base_url}/webhooks/vonage-messages/status``, each retried up to 3 more times while our
server answers 429/5xx or can't be reached (Vonage retries those, not other 4xx).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from local.sim_common import Delivery, FaultBook, Simulator, check_repeat, count_segments, json_response

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_API_SECRET",
    "DEFAULT_SIGNATURE_SECRET",
    "FAULT_KINDS",
    "SimulatedVonageMessages",
    "VonageProblem",
    "webhook_token",
]

logger = logging.getLogger(__name__)

DEFAULT_API_KEY = "parley-local-vonage-key"
DEFAULT_API_SECRET = "parley-local-vonage-api-secret"
DEFAULT_SIGNATURE_SECRET = "parley-local-vonage-signature-secret-0123456789"
DEFAULT_APPLICATION_ID = "00000000-0000-4000-8000-00000000c0de"
INBOUND_PATH = "/webhooks/vonage-messages/messages"
STATUS_PATH = "/webhooks/vonage-messages/status"
ERRORS = "https://developer.vonage.com/api-errors"
FAULT_KINDS = ("500", "429", "timeout", "undelivered")
CALLBACK_RETRIES = 3  # retries after the first attempt
MAX_TEXT_CHARS = 1000  # the Messages API limit for an SMS `text`
MAX_INBOUND_REPEAT = 20
NETWORK_CODE = "310260"
PRICE = {"currency": "EUR", "price": "0.0057"}
REJECTIONS = {
    "1180": "Absent Subscriber Temporary",
    "1190": "Absent Subscriber Permanent",
    "1210": "Anti-Spam Rejection",
    "1240": "Illegal Number",
    "1250": "Unroutable",
    "1330": "Unknown",
    "1360": "TTL was activated",
}
_DIGITS = re.compile(r"[1-9][0-9]{6,14}")
_ALPHANUMERIC_SENDER = re.compile(r"[A-Za-z0-9 ]{1,11}")

_URLS = Map(
    [
        Rule("/v1/messages", endpoint="send", methods=["POST"]),
        Rule("/_faults", endpoint="faults", methods=["GET", "POST", "DELETE"]),
        Rule("/_inbound", endpoint="inbound", methods=["POST"]),
        Rule("/_media/<name>", endpoint="media", methods=["GET"]),
        Rule("/_messages", endpoint="sim_messages", methods=["GET", "DELETE"]),
    ]
)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def webhook_token(
    body: bytes,
    signature_secret: str,
    *,
    api_key: str = DEFAULT_API_KEY,
    application_id: str = DEFAULT_APPLICATION_ID,
    issued_at: float | None = None,
) -> str:
    """Vonage's signed-webhook JWT: HS256 over claims binding the body by its SHA-256."""
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {
        "iat": int(time.time() if issued_at is None else issued_at),
        "jti": str(uuid.uuid4()),
        "iss": "Vonage",
        "payload_hash": hashlib.sha256(body).hexdigest(),
        "api_key": api_key,
        "application_id": application_id,
    }
    signing_input = ".".join(
        _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    mac = hmac.new(signature_secret.encode("utf-8"), signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(mac)}"


class VonageProblem(Exception):
    """An error the API answers with, as RFC 7807 problem JSON."""

    def __init__(
        self,
        status: int,
        fragment: str,
        title: str,
        detail: str,
        invalid_parameters: Sequence[Mapping[str, str]] = (),
    ) -> None:
        super().__init__(f"{status} {fragment}: {detail}")
        self.status = status
        self.fragment = fragment
        self.title = title
        self.detail = detail
        self.invalid_parameters = [dict(p) for p in invalid_parameters]

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": f"{ERRORS}{self.fragment}",
            "title": self.title,
            "detail": self.detail,
            "instance": uuid.uuid4().hex,
        }
        if self.invalid_parameters:
            data["invalid_parameters"] = self.invalid_parameters
        return data


def _invalid(name: str, reason: str = "Invalid value") -> VonageProblem:
    return VonageProblem(
        422,
        "/messages#1150",
        "Invalid params",
        "The value of one or more parameters is invalid.",
        [{"name": name, "reason": reason}],
    )


@dataclass
class _Stored:
    resource: dict[str, Any]
    callbacks: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(json.dumps(self.resource))
        data["callbacks"] = json.loads(json.dumps(self.callbacks))
        return data


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _vonage_number(number: str) -> str:
    """E.164 without the "+", as Vonage writes numbers in its webhooks."""
    number = number.strip()
    return number[1:] if number.startswith("+") else number


def _problem(exc: VonageProblem) -> Response:
    return Response(json.dumps(exc.to_dict()), status=exc.status, mimetype="application/problem+json")


def _fault_recipient(to: str) -> str:
    if not isinstance(to, str):
        raise ValueError("to must be a phone number string")
    return _vonage_number(to)


class SimulatedVonageMessages(Simulator[VonageProblem]):
    """The simulator. All state lives on the instance behind locks; the server may be threaded."""

    urls = _URLS
    api_errors = (VonageProblem,)

    def __init__(
        self,
        webhook_base_url: str,
        *,
        api_key: str = DEFAULT_API_KEY,
        api_secret: str = DEFAULT_API_SECRET,
        signature_secret: str = DEFAULT_SIGNATURE_SECRET,
        application_id: str = DEFAULT_APPLICATION_ID,
        callback_delay: float = 0.0,
        callback_retry_delay: float = 0.05,
        http_timeout: float = 15.0,
    ) -> None:
        faults = FaultBook(FAULT_KINDS, default_error_code="1180", recipient=_fault_recipient)
        super().__init__(faults, callback_delay, callback_retry_delay, http_timeout)  # Vonage waits 15 s
        self.webhook_base_url = webhook_base_url.rstrip("/")
        self.api_key = api_key
        self._api_secret = api_secret
        self._signature_secret = signature_secret
        self.application_id = application_id
        self._messages: dict[str, _Stored] = {}

    @property
    def inbound_url(self) -> str:
        """Where inbound texts are posted (the application's Inbound URL)."""
        return self.webhook_base_url + INBOUND_PATH

    @property
    def status_url(self) -> str:
        """Where status webhooks go when a send names no `webhook_url` (the Status URL)."""
        return self.webhook_base_url + STATUS_PATH

    @property
    def held_requests(self) -> int:
        """How many HTTP responses a timeout fault is holding right now."""
        return self._faults.held

    def token(self, body: bytes) -> str:
        """A token for `body` signed with this simulator's secret, as its webhooks carry."""
        return webhook_token(
            body, self._signature_secret, api_key=self.api_key, application_id=self.application_id
        )

    # --- Python API: outbound messages ------------------------------------------------------------

    def messages(self, to: str | None = None) -> list[dict[str, Any]]:
        """Accepted messages, oldest first, each with its `callbacks`; `to` with or without "+"."""
        wanted = None if to is None else _vonage_number(to)
        with self._lock:
            stored = list(self._messages.values())
            return [s.to_dict() for s in stored if wanted is None or s.resource["to"] == wanted]

    def message(self, message_uuid: str) -> dict[str, Any] | None:
        with self._lock:
            stored = self._messages.get(message_uuid)
            return None if stored is None else stored.to_dict()

    def send_message(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """What POST /v1/messages does after authentication: `{message_uuid}` or VonageProblem.
        Blocks while a timeout fault holds the response."""
        fields = self._validate(request)
        fault = self._faults.take(fields["to"])
        if fault is not None and fault.kind == "500":
            raise VonageProblem(500, "/messages#1030", "Internal error", "Simulated internal error.")
        if fault is not None and fault.kind == "429":
            raise VonageProblem(
                429, "/messages#1000", "Throttled", "Simulated: you have exceeded the submission capacity."
            )
        if fault is not None and fault.kind == "timeout":
            self._faults.hold(fault.hold_seconds)
            raise VonageProblem(
                503, "#unavailable", "Service unavailable", "Simulated timeout; nothing was sent."
            )
        final = ("rejected", fault.error_code) if fault is not None else ("delivered", None)
        return {"message_uuid": self._accept(fields, final)}

    def reset(self) -> None:
        """Forget messages and faults; pending callbacks of forgotten messages stop."""
        with self._lock:
            self._messages.clear()
        self._faults.clear()

    # --- Python API: a phone texting us -------------------------------------------------------

    def send_inbound(
        self, from_: str, to: str, body: str = "", *, media_urls: Sequence[str] = (), repeat: int = 1
    ) -> dict[str, Any]:
        """Post a signed inbound webhook `repeat` times (one message_uuid: a carrier retry).

        With a media URL it is an MMS picture (Vonage delivers one per webhook) captioned `body`.
        """
        if not from_ or not to:
            raise ValueError("'from' and 'to' are required")
        check_repeat(repeat, MAX_INBOUND_REPEAT)
        if len(media_urls) > 1:
            raise ValueError("at most one media URL (Vonage delivers one picture per webhook)")
        message_uuid = str(uuid.uuid4())
        payload: dict[str, Any] = {
            "channel": "mms" if media_urls else "sms",
            "message_uuid": message_uuid,
            "to": _vonage_number(to),
            "from": _vonage_number(from_),
            "timestamp": _now_iso(),
        }
        if media_urls:
            image = {"url": media_urls[0], **({"caption": body} if body else {})}
            payload.update(message_type="image", image=image)
        else:
            segments = str(count_segments(body))
            keyword = body.split()[0].upper() if body.split() else ""
            payload.update(
                text=body,
                message_type="text",
                sms={"num_messages": segments, "keyword": keyword, "total_count": segments},
                usage=dict(PRICE),
            )
        raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()

        def failed(exc: requests.RequestException) -> None:
            logger.warning("sim vonage: inbound %s failed: %s", message_uuid, exc)

        responses = [self._post(self.inbound_url, raw, 0, failed).response_code for _ in range(repeat)]
        logger.info("sim vonage: inbound %s answered %s", message_uuid, responses)
        return {"message_uuid": message_uuid, "responses": responses}

    # --- internals ------------------------------------------------------------------------------

    def _webhook_headers(self, raw: bytes) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.token(raw)}",
            "Content-Type": "application/json",
            "User-Agent": "Vonage-Messages-Sim/1.0",
        }

    def _validate(self, request: Mapping[str, Any]) -> dict[str, Any]:
        channel, message_type = request.get("channel"), request.get("message_type")
        if (channel, message_type) not in (("sms", "text"), ("mms", "image")):
            raise _invalid("channel" if channel not in ("sms", "mms") else "message_type")
        to, from_ = request.get("to"), request.get("from")
        if not isinstance(to, str) or not _DIGITS.fullmatch(to):
            raise _invalid("to", "Invalid value: E.164 without a leading + or 00")
        if not isinstance(from_, str) or not (
            _DIGITS.fullmatch(from_) or (_ALPHANUMERIC_SENDER.fullmatch(from_) and channel == "sms")
        ):
            raise _invalid("from")
        fields: dict[str, Any] = {"channel": channel, "message_type": message_type, "to": to, "from": from_}
        if channel == "sms":
            text = request.get("text")
            if not isinstance(text, str) or not text or len(text) > MAX_TEXT_CHARS:
                raise _invalid("text")
            fields["text"] = text
        else:
            image = request.get("image")
            url = image.get("url") if isinstance(image, dict) else None
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise _invalid("image.url")
            caption = image.get("caption") if isinstance(image, dict) else None
            if caption is not None and not isinstance(caption, str):
                raise _invalid("image.caption")
            fields["image"] = {"url": url, **({"caption": caption} if caption else {})}
        client_ref = request.get("client_ref")
        if client_ref is not None and (not isinstance(client_ref, str) or len(client_ref) > 100):
            raise _invalid("client_ref")
        webhook_url = request.get("webhook_url")
        if webhook_url is not None and (
            not isinstance(webhook_url, str) or not webhook_url.startswith(("http://", "https://"))
        ):
            raise _invalid("webhook_url")
        fields.update(client_ref=client_ref, webhook_url=webhook_url)
        return fields

    def _accept(self, fields: dict[str, Any], final: tuple[str, str | None]) -> str:
        message_uuid = str(uuid.uuid4())
        resource = {
            "message_uuid": message_uuid,
            **fields,
            "segments": count_segments(fields.get("text", "")) if fields["channel"] == "sms" else 1,
            "status": "accepted",
            "timestamp": _now_iso(),
            "error": None,
        }
        with self._lock:
            self._messages[message_uuid] = _Stored(resource=resource)
        logger.info("sim vonage: accepted %s %s -> %s", message_uuid, fields["from"], fields["to"])
        steps = [("submitted", None), final]
        self._callbacks.start(
            f"sim-vonage-{message_uuid[:8]}", steps, functools.partial(self._status_webhook, message_uuid)
        )
        return message_uuid

    def _status_webhook(self, message_uuid: str, step: tuple[str, str | None]) -> bool:
        """Move the message on and post its status webhook; False once the message is forgotten."""
        status, error_code = step
        prepared = self._advance(message_uuid, status, error_code)
        if prepared is None:
            return False  # reset meanwhile
        url, raw = prepared

        def failed(exc: requests.RequestException) -> None:
            logger.info("sim vonage: status %s to %s failed: %s", status, url, exc)

        record = {"status": status, "url": url, **self._post(url, raw, CALLBACK_RETRIES, failed).record()}
        with self._lock:
            stored = self._messages.get(message_uuid)
            if stored is not None:
                stored.callbacks.append(record)
            return stored is not None

    def _advance(self, message_uuid: str, status: str, error_code: str | None) -> tuple[str, bytes] | None:
        """Move the stored message to `status` and build its status webhook body (Vonage's fields)."""
        with self._lock:
            stored = self._messages.get(message_uuid)
            if stored is None:
                return None
            resource = stored.resource
            resource["status"] = status
            resource["timestamp"] = _now_iso()
            payload: dict[str, Any] = {
                "message_uuid": message_uuid,
                "to": resource["to"],
                "from": resource["from"],
                "timestamp": resource["timestamp"],
                "status": status,
                "channel": resource["channel"],
            }
            if resource["client_ref"] is not None:
                payload["client_ref"] = resource["client_ref"]
            if error_code is not None:
                detail = REJECTIONS.get(error_code, "Rejected (simulated)")
                resource["error"] = {"code": error_code, "detail": detail}
                payload["error"] = {
                    "type": f"{ERRORS}/messages#{error_code}",
                    "title": error_code,
                    "detail": detail,
                    "instance": uuid.uuid4().hex,
                }
            payload["usage"] = dict(PRICE)
            if resource["channel"] == "sms":
                payload["destination"] = {"network_code": NETWORK_CODE}
                payload["sms"] = {"count_total": str(resource["segments"])}
            url = resource["webhook_url"] or self.status_url
        return url, json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()

    def _post(
        self, url: str, raw: bytes, retries: int, failed: Callable[[requests.RequestException], None]
    ) -> Delivery:
        """POST a signed webhook, retrying while our server answers 429/5xx or can't be reached."""
        return self._callbacks.deliver(
            lambda: requests.post(
                url, data=raw, headers=self._webhook_headers(raw), timeout=self.http_timeout
            ),
            retries=retries,
            retry=lambda code: code == 429 or code >= 500,  # Vonage retries those, not other 4xx
            failed=failed,
        )

    # --- WSGI ----------------------------------------------------------------------------------

    def _api_error_response(self, exc: VonageProblem) -> Response:
        response = _problem(exc)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="Vonage API"'
        return response

    def _routing_error_response(self, request: Request, exc: HTTPException) -> Response:
        if isinstance(exc, MethodNotAllowed):
            return _problem(VonageProblem(405, "#method-not-allowed", "Method not allowed", request.method))
        return _problem(
            VonageProblem(exc.code or 500, "#not-found", "Not found", f"{request.path} was not found")
        )

    def _dispatch(self, request: Request, endpoint: str, args: Mapping[str, Any]) -> Response:
        self._authenticate(request)
        try:
            body = json.loads(request.get_data(cache=False) or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise VonageProblem(
                422, "/messages#1150", "Invalid params", "The request body did not contain valid JSON."
            )
        return json_response(self.send_message(body), 202)

    def _authenticate(self, request: Request) -> None:
        auth = request.authorization
        ok = (
            auth is not None
            and auth.type == "basic"
            and hmac.compare_digest((auth.username or "").encode(), self.api_key.encode())
            and hmac.compare_digest((auth.password or "").encode(), self._api_secret.encode())
        )
        if not ok:
            raise VonageProblem(
                401, "#unauthorized", "Unauthorized", "You did not provide correct credentials."
            )
