"""A Bandwidth Messaging API v2 look-alike for local runs and tests, with injectable faults.

Why: the send, retry and webhook paths must be exercised end to end without a Bandwidth account, and
our plugin must work against it unchanged, so it speaks the real wire format: JSON requests with HTTP
Basic auth, `202 Accepted` message resources, `{"type", "description"}` errors, message records
without text (Bandwidth keeps none), and callbacks posted as a JSON array of events with the
application's callback credentials (Bandwidth's only proof of origin).

Mounted as a WSGI app (e.g. at ``/_sim/bandwidth``); paths below are relative to the mount point.

Bandwidth API (HTTP Basic ``username:password``):
    POST /api/v2/users/{accountId}/messages    create: 202 with the message, or 400/401/403/415/429/5xx
    GET  /api/v2/users/{accountId}/messages    search records: sourceTn, destinationTn, messageId,
                                               messageDirection, messageStatus, fromDateTime,
                                               toDateTime, limit, pageToken (at least one filter)
Control plane (no auth; JSON):
    POST /_faults   {"kind", "count", "to", "error_code", "hold_seconds"} → 201 with the fault
    GET  /_faults   active faults;  DELETE /_faults clears them (and releases held responses)
    POST /_inbound  {"from", "to", "body", "media_urls", "media", "repeat"} → a phone texting us
                    ("media": true attaches this simulator's /_media/parley.png)
    GET  /_media/<name>  the picture a phone attached (local.sim_media), no auth
    GET  /_messages every accepted outbound message with its text and callbacks; DELETE resets all

Local defaults (what ``parley local`` and the tests configure the plugin with):
    account id ``9900000``, API user ``parley-local-bandwidth-user`` / ``parley-local-bandwidth-password``,
    application ``parley-local-bandwidth-app``, callback credentials
    ``parley-local-bandwidth-callbacks`` / ``parley-local-bandwidth-callback-password``.

Order of checks on create: authentication, account, content type, validation (a 400 never consumes a
fault), then faults (the first active fault matching a recipient takes one count), then acceptance.
After acceptance a daemon thread posts ``message-sent`` then ``message-delivered`` (or
``message-failed`` with an errorCode, for an "undelivered" fault) per recipient to
``{webhook_base_url}/webhooks/bandwidth/events``, each after ``callback_delay`` seconds and retried up
to 3 more times while our server answers 5xx or can't be reached.
"""

from __future__ import annotations

import base64
import functools
import hmac
import json
import logging
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from local.sim_common import FaultBook, Simulator, check_repeat, count_segments, json_response

__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "DEFAULT_APPLICATION_ID",
    "DEFAULT_CALLBACK_PASSWORD",
    "DEFAULT_CALLBACK_USERNAME",
    "DEFAULT_PASSWORD",
    "DEFAULT_USERNAME",
    "EVENTS_PATH",
    "FAULT_KINDS",
    "BandwidthApiError",
    "SimulatedBandwidth",
]

logger = logging.getLogger(__name__)

DEFAULT_ACCOUNT_ID = "9900000"
DEFAULT_USERNAME = "parley-local-bandwidth-user"
DEFAULT_PASSWORD = "parley-local-bandwidth-password"
DEFAULT_APPLICATION_ID = "parley-local-bandwidth-app"
DEFAULT_CALLBACK_USERNAME = "parley-local-bandwidth-callbacks"
DEFAULT_CALLBACK_PASSWORD = "parley-local-bandwidth-callback-password"

EVENTS_PATH = "/webhooks/bandwidth/events"
FAULT_KINDS = ("500", "429", "timeout", "timeout_after_accept", "undelivered")
CALLBACK_RETRIES = 3  # retries after the first attempt
MAX_TEXT_CHARS = 2048
MAX_MEDIA_URL_CHARS = 4096
MAX_TAG_CHARS = 1024
MAX_RECIPIENTS = 10
MAX_INBOUND_REPEAT = 20
MAX_PAGE_SIZE = 1000
USER_AGENT = "BandwidthAPI/v2"
# E.164; North American numbers must be complete (+1, area code and exchange not starting with 0/1).
_E164 = re.compile(r"\+1[2-9][0-9]{2}[2-9][0-9]{6}|\+[2-9][0-9]{6,14}")
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"

# Codes the "undelivered" fault can report, with Bandwidth's short descriptions.
FAILED_DESCRIPTIONS = {
    "4702": "destination-subscriber-unavailable",
    "4720": "invalid-destination-address",
    "4721": "destination-tn-deactivated",
    "4770": "destination-spam-detected",
    "4775": "destination-rejected-due-to-user-opt-out",
    "5600": "destination-carrier-queue-full",
    "9902": "delivery-receipt-expired",
}

_URLS = Map(
    [
        Rule("/api/v2/users/<account_id>/messages", endpoint="messages", methods=["GET", "POST"]),
        Rule("/_faults", endpoint="faults", methods=["GET", "POST", "DELETE"]),
        Rule("/_inbound", endpoint="inbound", methods=["POST"]),
        Rule("/_media/<name>", endpoint="media", methods=["GET"]),
        Rule("/_messages", endpoint="sim_messages", methods=["GET", "DELETE"]),
    ]
)


class BandwidthApiError(Exception):
    """An error the API answers with, in Bandwidth's `{"type", "description"}` shape."""

    def __init__(
        self,
        status: int,
        error_type: str,
        description: str,
        field_errors: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(f"{status} {error_type}: {description}")
        self.status = status
        self.error_type = error_type
        self.description = description
        self.field_errors = list(field_errors)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.error_type, "description": self.description}
        if self.field_errors:
            data["fieldErrors"] = [{"fieldName": n, "description": d} for n, d in self.field_errors]
        return data


@dataclass
class _Stored:
    """One message: the resource Bandwidth returns, plus what only the simulator keeps."""

    resource: dict[str, Any]
    text: str
    received_at: datetime
    status: str  # Bandwidth's record status: ACCEPTED, SENT, DELIVERED, FAILED, RECEIVED
    error_code: int = 0
    callbacks: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(json.dumps(self.resource))
        data["text"] = self.text
        data["status"] = self.status
        data["errorCode"] = self.error_code
        data["callbacks"] = json.loads(json.dumps(self.callbacks))
        return data


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _message_id(now: datetime) -> str:
    """Bandwidth's shape: epoch milliseconds then 16 lower-case letters and digits."""
    return f"{int(now.timestamp() * 1000)}" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(16))


def _parse_time(value: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise BandwidthApiError(400, "request-validation", f"{name} is not an ISO 8601 date-time") from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _check_error_code(code: str) -> None:
    if not code.isascii() or not code.isdigit() or len(code) != 4:
        raise ValueError("error_code must be a four-digit Bandwidth error code")


class SimulatedBandwidth(Simulator[BandwidthApiError]):
    """The simulator. All state lives on the instance behind locks; the server may be threaded."""

    urls = _URLS
    api_errors = (BandwidthApiError,)

    def __init__(
        self,
        webhook_base_url: str,
        *,
        account_id: str = DEFAULT_ACCOUNT_ID,
        username: str = DEFAULT_USERNAME,
        password: str = DEFAULT_PASSWORD,
        application_id: str = DEFAULT_APPLICATION_ID,
        callback_username: str = DEFAULT_CALLBACK_USERNAME,
        callback_password: str = DEFAULT_CALLBACK_PASSWORD,
        callback_delay: float = 0.0,
        callback_retry_delay: float = 0.05,
        http_timeout: float = 10.0,
    ) -> None:
        faults = FaultBook(
            FAULT_KINDS,
            default_error_code="4702",
            new_id=lambda: f"fault-{secrets.token_hex(8)}",
            check_error_code=_check_error_code,
        )
        super().__init__(faults, callback_delay, callback_retry_delay, http_timeout)  # Bandwidth waits 10 s
        self.webhook_base_url = webhook_base_url.rstrip("/")
        self.account_id = account_id
        self.username = username
        self._password = password
        self.application_id = application_id
        self.callback_username = callback_username
        self._callback_password = callback_password
        self._messages: dict[str, _Stored] = {}
        self._received: dict[str, _Stored] = {}

    @property
    def events_url(self) -> str:
        """The exact URL callbacks and inbound texts are posted to."""
        return self.webhook_base_url + EVENTS_PATH

    @property
    def held_requests(self) -> int:
        """How many HTTP responses a timeout fault is holding right now."""
        return self._faults.held

    # --- Python API: outbound messages ------------------------------------------------------------

    def messages(self, to: str | None = None) -> list[dict[str, Any]]:
        """Accepted outbound messages, oldest first, each with its text, status and callbacks."""
        with self._lock:
            return [s.to_dict() for s in self._messages.values() if to is None or to in s.resource["to"]]

    def message(self, message_id: str) -> dict[str, Any] | None:
        with self._lock:
            stored = self._messages.get(message_id)
            return None if stored is None else stored.to_dict()

    def create_message(
        self,
        to: str | Sequence[str],
        from_: str,
        text: str = "",
        *,
        media: Sequence[str] = (),
        tag: str | None = None,
        application_id: str | None = None,
    ) -> dict[str, Any]:
        """What POST .../messages does after authentication: returns the resource or raises
        BandwidthApiError. Blocks while a timeout fault holds the response."""
        recipients = [to] if isinstance(to, str) else list(to)
        self._validate(recipients, from_, text, media, tag, application_id or self.application_id)
        fault = self._faults.take(*recipients)
        kind = fault.kind if fault else None
        if fault is not None and kind == "500":
            raise BandwidthApiError(500, "internal-server-error", "Something went wrong (simulated)")
        if fault is not None and kind == "429":
            raise BandwidthApiError(
                429,
                "max-message-queue-size-exceeded",
                "The SMS queue for your account is full and cannot accept more messages (simulated).",
            )
        if fault is not None and kind == "timeout":
            self._faults.hold(fault.hold_seconds)
            raise BandwidthApiError(
                503, "service-unavailable", "Service unavailable (simulated; nothing was sent)"
            )
        failure = fault.error_code if fault is not None and kind == "undelivered" else None
        resource = self._accept(recipients, from_, text, media, tag, failure)
        if fault is not None and kind == "timeout_after_accept":
            self._faults.hold(fault.hold_seconds)
        return resource

    def reset(self) -> None:
        """Forget messages and faults; pending callbacks of forgotten messages stop."""
        with self._lock:
            self._messages.clear()
            self._received.clear()
        self._faults.clear()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no callback thread is running (e.g. between tests); False at the deadline."""
        return self._callbacks.wait_idle(timeout)

    # --- Python API: a phone texting us -----------------------------------------------------------

    def send_inbound(
        self,
        from_: str,
        to: str,
        body: str = "",
        *,
        media_urls: Sequence[str] = (),
        repeat: int = 1,
    ) -> dict[str, Any]:
        """Post a `message-received` event `repeat` times (one message id: Bandwidth's at-least-once)."""
        if not isinstance(from_, str) or not isinstance(to, str) or not from_ or not to:
            raise ValueError("'from' and 'to' are required")
        check_repeat(repeat, MAX_INBOUND_REPEAT)
        now = datetime.now(UTC)
        message_id = _message_id(now)
        message: dict[str, Any] = {
            "id": message_id,
            "owner": to,
            "applicationId": self.application_id,
            "time": _iso(now),
            "segmentCount": 1 if media_urls else count_segments(body),
            "direction": "in",
            "to": [to],
            "from": from_,
            "text": body,
        }
        media = list(media_urls)  # passed through so the local stack can fetch them
        if media:
            message["media"] = media
        event = {
            "type": "message-received",
            "time": _iso(now),
            "description": "Incoming message received",
            "to": to,
            "message": message,
        }
        with self._lock:
            self._received[message_id] = _Stored(
                resource={k: v for k, v in message.items() if k != "text"},
                text=body,
                received_at=now,
                status="RECEIVED",
            )
        responses = [self._post_events([event], retries=0)["response_code"] for _ in range(repeat)]
        logger.info("sim bandwidth: inbound %s answered %s", message_id, responses)
        return {"message_id": message_id, "responses": responses}

    # --- internals ----------------------------------------------------------------------------------

    def _validate(
        self,
        recipients: list[str],
        from_: str,
        text: str,
        media: Sequence[str],
        tag: str | None,
        application_id: str,
    ) -> None:
        problems: list[tuple[str, str]] = []
        if application_id != self.application_id:
            problems.append(("applicationId", f"'{application_id}' is not a valid application id"))
        if not recipients:
            problems.append(("to", "at least one 'to' number is required"))
        elif len(recipients) > MAX_RECIPIENTS:
            problems.append(("to", f"at most {MAX_RECIPIENTS} recipients are allowed"))
        for number in recipients:
            if not isinstance(number, str) or not _E164.fullmatch(number):
                problems.append(
                    ("to", f"'{number}' must be replaced with a valid E164 formatted telephone number")
                )
        if not isinstance(from_, str) or not _E164.fullmatch(from_):
            problems.append(
                ("from", f"'{from_}' must be replaced with a valid E164 formatted telephone number")
            )
        if not isinstance(text, str) or len(text) > MAX_TEXT_CHARS:
            problems.append(("text", f"text must be a string of at most {MAX_TEXT_CHARS} characters"))
        if not all(isinstance(u, str) and 0 < len(u) <= MAX_MEDIA_URL_CHARS for u in media):
            problems.append(("media", f"each media URL must be 1 to {MAX_MEDIA_URL_CHARS} characters"))
        if isinstance(text, str) and not text and not media:
            problems.append(("text", "a message needs text or media"))
        if tag is not None and (not isinstance(tag, str) or len(tag) > MAX_TAG_CHARS):
            problems.append(("tag", f"tag must be a string of at most {MAX_TAG_CHARS} characters"))
        if problems:
            raise BandwidthApiError(400, "request-validation", "Your request could not be accepted", problems)

    def _accept(
        self,
        recipients: list[str],
        from_: str,
        text: str,
        media: Sequence[str],
        tag: str | None,
        failure: str | None,
    ) -> dict[str, Any]:
        now = datetime.now(UTC)
        message_id = _message_id(now)
        resource: dict[str, Any] = {
            "id": message_id,
            "owner": from_,
            "applicationId": self.application_id,
            "time": _iso(now),
            "segmentCount": 1 if media else count_segments(text),
            "direction": "out",
            "to": list(recipients),
            "from": from_,
            "text": text,
        }
        if media:
            resource["media"] = list(media)
        if tag is not None:
            resource["tag"] = tag
        stored = _Stored(
            resource={k: v for k, v in resource.items() if k != "text"},
            text=text,
            received_at=now,
            status="ACCEPTED",
        )
        final = ("message-failed", failure) if failure is not None else ("message-delivered", None)
        steps: list[tuple[str, str | None]] = [("message-sent", None), final]
        with self._lock:
            self._messages[message_id] = stored
        logger.info(
            "sim bandwidth: accepted %s from %s to %d recipient(s)", message_id, from_, len(recipients)
        )
        name = f"sim-bandwidth-{message_id[-8:]}"
        self._callbacks.start(name, steps, functools.partial(self._callback, message_id))
        return resource

    def _callback(self, message_id: str, step: tuple[str, str | None]) -> bool:
        """Move the message on and post its events; False once the message is forgotten."""
        events = self._advance(message_id, *step)
        if events is None:
            return False  # reset meanwhile
        for event in events:  # one callback per recipient, as for group messages
            record = self._post_events([event], retries=CALLBACK_RETRIES)
            with self._lock:
                stored = self._messages.get(message_id)
                if stored is None:
                    return False
                stored.callbacks.append(record)
        return True

    def _advance(
        self, message_id: str, event_type: str, error_code: str | None
    ) -> list[dict[str, Any]] | None:
        """Move the stored message on and build its callback events (Bandwidth's field set)."""
        now = datetime.now(UTC)
        with self._lock:
            stored = self._messages.get(message_id)
            if stored is None:
                return None
            stored.status = {"message-sent": "SENT", "message-delivered": "DELIVERED"}.get(
                event_type, "FAILED"
            )
            if error_code is not None:
                stored.error_code = int(error_code)
            message = dict(stored.resource, text="")  # receipts never carry the text
            events: list[dict[str, Any]] = []
            for recipient in stored.resource["to"]:
                event: dict[str, Any] = {
                    "type": event_type,
                    "time": _iso(now),
                    "description": "ok"
                    if error_code is None
                    else FAILED_DESCRIPTIONS.get(error_code, "message-failed"),
                    "to": recipient,
                    "message": json.loads(json.dumps(message)),
                }
                if error_code is not None:
                    event["errorCode"] = int(error_code)
                events.append(event)
            return events

    def _post_events(self, events: list[dict[str, Any]], retries: int) -> dict[str, Any]:
        url = self.events_url
        credentials = f"{self.callback_username}:{self._callback_password}".encode()
        headers = {
            "Authorization": "Basic " + base64.b64encode(credentials).decode("ascii"),
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
        }
        body = json.dumps(events).encode("utf-8")
        kind = events[0]["type"]

        def failed(exc: requests.RequestException) -> None:
            logger.info("sim bandwidth: %s to %s failed: %s", kind, url, exc)

        delivery = self._callbacks.deliver(
            lambda: requests.post(url, data=body, headers=headers, timeout=self.http_timeout),
            retries=retries,
            failed=failed,
        )
        return {"type": kind, "to": events[0]["to"], **delivery.record()}

    def _records(self) -> list[dict[str, Any]]:
        """Bandwidth's searchable message records: metadata only, one per recipient."""
        with self._lock:
            stored = [*self._messages.values(), *self._received.values()]
            rows: list[dict[str, Any]] = []
            for item in stored:
                resource = item.resource
                outbound = resource["direction"] == "out"
                for recipient in resource["to"] if outbound else [resource["owner"]]:
                    rows.append(
                        {
                            "messageId": resource["id"],
                            "accountId": self.account_id,
                            "sourceTn": resource["from"],
                            "destinationTn": recipient,
                            "messageStatus": item.status,
                            "messageDirection": "OUTBOUND" if outbound else "INBOUND",
                            "messageType": "mms" if resource.get("media") else "sms",
                            "segmentCount": resource["segmentCount"],
                            "errorCode": item.error_code,
                            "receiveTime": _iso(item.received_at),
                            "carrierName": "other",
                            "messageSize": len(item.text.encode("utf-8")),
                            "messageLength": len(item.text),
                            "attachmentCount": len(resource.get("media", [])),
                            "recipientCount": len(resource["to"]),
                            "_received_at": item.received_at,
                        }
                    )
        rows.sort(key=lambda row: row["_received_at"])
        return rows

    # --- WSGI ---------------------------------------------------------------------------------------

    def _api_error_response(self, exc: BandwidthApiError) -> Response:
        return json_response(exc.to_dict(), exc.status)

    def _routing_error_response(self, request: Request, exc: HTTPException) -> Response:
        if isinstance(exc, MethodNotAllowed):
            return json_response({"type": "method-not-allowed", "description": "Method not allowed"}, 405)
        status = exc.code or 500
        body = {
            "timestamp": _iso(datetime.now(UTC)),
            "status": status,
            "error": "Not Found" if status == 404 else exc.name,
            "message": exc.name,
            "path": request.path,
        }
        return json_response(body, status)

    def _dispatch(self, request: Request, endpoint: str, args: Mapping[str, Any]) -> Response:
        self._authenticate(request, str(args["account_id"]))
        if request.method == "POST":
            return self._post_message(request)
        return self._list_messages(request)

    def _authenticate(self, request: Request, path_account: str) -> None:
        auth = request.authorization
        ok = (
            auth is not None
            and auth.type == "basic"
            and hmac.compare_digest((auth.username or "").encode(), self.username.encode())
            and hmac.compare_digest((auth.password or "").encode(), self._password.encode())
        )
        if not ok:
            raise BandwidthApiError(401, "unauthorized", "Authentication Failed")
        if not hmac.compare_digest(path_account.encode(), self.account_id.encode()):
            raise BandwidthApiError(403, "forbidden", "Access Denied")

    def _post_message(self, request: Request) -> Response:
        if request.mimetype != "application/json":
            raise BandwidthApiError(
                415,
                "unsupported-content-type",
                f"Content type '{request.content_type or ''}' not supported. Please use 'application/json'",
            )
        try:
            data = json.loads(request.get_data(cache=False) or b"null")
        except ValueError as exc:
            raise BandwidthApiError(400, "request-validation", "Your request could not be accepted") from exc
        if not isinstance(data, dict):
            raise BandwidthApiError(400, "request-validation", "Your request could not be accepted")
        to = data.get("to")
        media = data.get("media") or []
        text = data.get("text")
        tag = data.get("tag")
        if not isinstance(to, str | list) or not isinstance(media, list):
            raise BandwidthApiError(
                400, "request-validation", "Your request could not be accepted", [("to", "required")]
            )
        resource = self.create_message(
            to,
            str(data.get("from") or ""),
            text if isinstance(text, str) else "" if text is None else str(text),
            media=media,
            tag=tag if tag is None or isinstance(tag, str) else str(tag),
            application_id=str(data.get("applicationId") or ""),
        )
        return json_response(resource, 202)

    def _list_messages(self, request: Request) -> Response:
        args = request.args
        if not args:
            raise BandwidthApiError(400, "request-validation", "At least one query parameter is required")
        try:
            limit = max(1, min(MAX_PAGE_SIZE, int(args.get("limit", "100"))))
            token = args.get("pageToken")
            offset = int(base64.b64decode(token).decode()) if token else 0
        except ValueError as exc:  # binascii.Error and UnicodeDecodeError included
            raise BandwidthApiError(400, "request-validation", "limit or pageToken is invalid") from exc
        start = _parse_time(args["fromDateTime"], "fromDateTime") if "fromDateTime" in args else None
        end = _parse_time(args["toDateTime"], "toDateTime") if "toDateTime" in args else None
        exact = {
            "messageId": args.get("messageId"),
            "sourceTn": args.get("sourceTn"),
            "destinationTn": args.get("destinationTn"),
            "messageDirection": args.get("messageDirection"),
            "messageStatus": args.get("messageStatus"),
        }
        rows = [
            row
            for row in self._records()
            if all(value is None or row[name] == value for name, value in exact.items())
            and (start is None or row["_received_at"] >= start)
            and (end is None or row["_received_at"] <= end)
        ]
        page = [
            {k: v for k, v in row.items() if not k.startswith("_")} for row in rows[offset : offset + limit]
        ]
        page_info: dict[str, Any] = {}
        if offset + limit < len(rows):
            next_token = base64.b64encode(str(offset + limit).encode()).decode()
            page_info = {"nextPage": f"pageToken={next_token}", "nextPageToken": next_token}
        return json_response({"totalCount": len(rows), "pageInfo": page_info, "messages": page})
