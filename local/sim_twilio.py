"""A Twilio Messages API look-alike for local runs and tests, with injectable faults.

Why: the send, retry and webhook paths must be exercised end to end without a Twilio account, and
the official `twilio` SDK (or our own client) must work against it unchanged, so it speaks the real
wire format: form-encoded requests with HTTP Basic auth, JSON resources and Twilio-shaped errors,
and status callbacks / inbound texts signed with ``X-Twilio-Signature`` exactly as Twilio signs them.

Mounted as a WSGI app (e.g. at ``/_sim/twilio``); paths below are relative to the mount point.

Twilio API (HTTP Basic ``account_sid:auth_token``):
    POST /2010-04-01/Accounts/{sid}/Messages.json              create (201) or a Twilio error
    GET  /2010-04-01/Accounts/{sid}/Messages/{MessageSid}.json  fetch, or 404 code 20404
    GET  /2010-04-01/Accounts/{sid}/Messages.json?To=&From=     {"messages": [...]}, newest first
Control plane (no auth; JSON):
    POST /_faults   {"kind", "count", "to", "error_code", "hold_seconds"} → 201 with the fault
    GET  /_faults   active faults with remaining counts;  DELETE /_faults clears (and releases holds)
    POST /_inbound  {"from", "to", "body", "media_urls", "media", "repeat"} → a phone texting us
                    ("media": true attaches this simulator's /_media/parley.png)
    GET  /_media/<name>  the picture a phone attached (local.sim_media), no auth
    GET  /_messages every accepted outbound message with its callbacks; DELETE resets everything

Order of checks on create: authentication, request validation and Twilio's magic test numbers (a
400 never consumes a fault), then faults (the first active fault matching the recipient takes one
count), then acceptance. Status callbacks run on a daemon thread per message: ``sent`` then
``delivered`` (or ``undelivered`` with ErrorCode), each after ``callback_delay`` seconds, each retried
up to 3 more times while our server answers 5xx or can't be reached.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib
import json
import logging
import mimetypes
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

import requests
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from local import sim_media

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["FAULT_KINDS", "SimulatedTwilio", "TwilioApiError", "twilio_signature"]

logger = logging.getLogger(__name__)

API_VERSION = "2010-04-01"
SIGNATURE_HEADER = "X-Twilio-Signature"
INBOUND_PATH = "/webhooks/twilio/messages"
FAULT_KINDS = ("500", "429", "timeout", "timeout_after_accept", "undelivered")
CALLBACK_RETRIES = 3  # retries after the first attempt
MAX_BODY_CHARS = 1600
MAX_MEDIA = 10
MAX_INBOUND_REPEAT = 20

# Twilio's documented test-credential numbers and the errors they trigger.
MAGIC_TO: dict[str, tuple[int, str]] = {
    "+15005550001": (21211, "The 'To' number {to} is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number: {to}, is not currently reachable via SMS."),
    "+15005550003": (
        21408,
        "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: {to}.",
    ),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number {to} is not a valid mobile number"),
}
MAGIC_FROM: dict[str, tuple[int, str]] = {
    "+15005550001": (
        21212,
        "The 'From' number {from_} is not a valid phone number, shortcode, or alphanumeric sender ID.",
    ),
}
UNDELIVERED_MESSAGES = {
    "30003": "Unreachable destination handset",
    "30005": "Unknown destination handset",
    "30006": "Landline or unreachable carrier",
    "30007": "Message filtered",
    "30008": "Unknown error",
}

_URLS = Map(
    [
        Rule(
            f"/{API_VERSION}/Accounts/<account_sid>/Messages.json",
            endpoint="messages",
            methods=["GET", "POST"],
        ),
        Rule(
            f"/{API_VERSION}/Accounts/<account_sid>/Messages/<message_sid>.json",
            endpoint="message",
            methods=["GET"],
        ),
        Rule("/_faults", endpoint="faults", methods=["GET", "POST", "DELETE"]),
        Rule("/_inbound", endpoint="inbound", methods=["POST"]),
        Rule("/_media/<name>", endpoint="media", methods=["GET"]),
        Rule("/_messages", endpoint="sim_messages", methods=["GET", "DELETE"]),
    ]
)


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """Twilio's webhook signature: base64(HMAC-SHA1(token, url + each sorted name followed by its value))."""
    payload = url + "".join(name + params[name] for name in sorted(params))
    mac = hmac.new(auth_token.encode("utf-8"), payload.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


class TwilioApiError(Exception):
    """An error the API answers with, in Twilio's legacy JSON shape."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }


class _BadRequest(Exception):
    """A control-plane request we can't act on; the text is the reason returned."""


@dataclass
class _Fault:
    id: str
    kind: str
    remaining: int
    to: str | None
    error_code: str
    hold_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "remaining": self.remaining,
            "to": self.to,
            "error_code": self.error_code,
            "hold_seconds": self.hold_seconds,
        }


@dataclass
class _Stored:
    resource: dict[str, Any]
    status_callback: str | None
    media_urls: list[str]
    callbacks: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(json.dumps(self.resource))
        data["status_callback"] = self.status_callback
        data["media_urls"] = list(self.media_urls)
        data["callbacks"] = json.loads(json.dumps(self.callbacks))
        return data


def _rfc2822(moment: datetime) -> str:
    return format_datetime(moment)


def _count_segments(body: str) -> int:
    """Segments as the shared encoder counts them; 1 if that module isn't importable (yet)."""
    if not body:
        return 1
    try:
        encoding = importlib.import_module("parley.domain.encoding")
        return max(1, int(encoding.analyze(body).segments))
    except Exception:  # the simulator must keep working while the encoder evolves
        logger.debug("segment count unavailable; assuming 1", exc_info=True)
        return 1


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(json.dumps(data), status=status, mimetype="application/json", headers=headers)


def _read_json_object(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(request.get_data(cache=False) or b"null")
    except ValueError as exc:
        raise _BadRequest(f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise _BadRequest("body must be a JSON object")
    return data


class SimulatedTwilio:
    """The simulator. All state lives on the instance behind one lock; the server may be threaded."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        webhook_base_url: str,
        *,
        callback_delay: float = 0.0,
        callback_retry_delay: float = 0.05,
        http_timeout: float = 15.0,
    ) -> None:
        self.account_sid = account_sid
        self._auth_token = auth_token
        self.webhook_base_url = webhook_base_url.rstrip("/")
        self.callback_delay = callback_delay
        self.callback_retry_delay = callback_retry_delay
        self.http_timeout = http_timeout  # Twilio waits 15 s for our webhooks
        self._lock = threading.Lock()
        self._messages: dict[str, _Stored] = {}
        self._faults: list[_Fault] = []
        self._closed = threading.Event()
        self._release = threading.Event()
        self._held = 0
        self._threads: set[threading.Thread] = set()

    @property
    def inbound_url(self) -> str:
        """The exact URL inbound texts are posted to and signed for."""
        return self.webhook_base_url + INBOUND_PATH

    @property
    def held_requests(self) -> int:
        """How many HTTP responses a timeout fault is holding right now."""
        with self._lock:
            return self._held

    # --- Python API: outbound messages ------------------------------------------------------------

    def messages(self, to: str | None = None) -> list[dict[str, Any]]:
        """Accepted outbound messages, oldest first, each with `status_callback` and `callbacks`."""
        with self._lock:
            return [s.to_dict() for s in self._messages.values() if to is None or s.resource["to"] == to]

    def message(self, sid: str) -> dict[str, Any] | None:
        with self._lock:
            stored = self._messages.get(sid)
            return None if stored is None else stored.to_dict()

    def create_message(
        self,
        to: str,
        from_: str,
        body: str = "",
        *,
        status_callback: str | None = None,
        media_urls: Sequence[str] = (),
        messaging_service_sid: str | None = None,
    ) -> dict[str, Any]:
        """What POST Messages.json does after authentication: returns the resource or raises
        TwilioApiError. Blocks while a timeout fault holds the response."""
        to, from_ = to.strip(), from_.strip()
        self._validate(to, from_, body, media_urls, messaging_service_sid)
        fault = self._take_fault(to)
        kind = fault.kind if fault else None
        if fault is not None and kind == "500":
            raise TwilioApiError(500, 20500, "Internal Server Error (simulated)")
        if fault is not None and kind == "429":
            raise TwilioApiError(429, 20429, "Too Many Requests (simulated)")
        if fault is not None and kind == "timeout":
            self._hold(fault.hold_seconds)
            raise TwilioApiError(503, 20503, "Service Unavailable (simulated timeout; nothing was created)")
        final = ("undelivered", fault.error_code) if fault is not None and kind == "undelivered" else None
        resource = self._accept(to, from_, body, status_callback, media_urls, messaging_service_sid, final)
        if fault is not None and kind == "timeout_after_accept":
            self._hold(fault.hold_seconds)
            current = self.message(resource["sid"])  # the status may have moved on meanwhile
            return resource if current is None else _public(current)
        return resource

    # --- Python API: faults -----------------------------------------------------------------------

    def add_fault(
        self,
        kind: str,
        count: int = 1,
        *,
        to: str | None = None,
        error_code: str | None = None,
        hold_seconds: float = 30.0,
    ) -> dict[str, Any]:
        """Make the next `count` valid sends (to `to`, if given) misbehave as `kind`."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError("count must be a positive integer")
        if to is not None and not isinstance(to, str):
            raise ValueError("to must be an E.164 string")
        if isinstance(hold_seconds, bool) or not isinstance(hold_seconds, int | float) or hold_seconds < 0:
            raise ValueError("hold_seconds must be a non-negative number")
        fault = _Fault(
            id=f"FA{uuid.uuid4().hex}",
            kind=kind,
            remaining=count,
            to=to,
            error_code=str(error_code) if error_code is not None else "30003",
            hold_seconds=float(hold_seconds),
        )
        with self._lock:
            self._faults.append(fault)
            return fault.to_dict()

    def faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.to_dict() for f in self._faults]

    def clear_faults(self) -> None:
        """Drop every fault and let any held response go."""
        with self._lock:
            self._faults.clear()
        self.release_held()

    def release_held(self) -> None:
        """End every hold now (the held requests then answer as they would have after the hold)."""
        with self._lock:
            released, self._release = self._release, threading.Event()
            if self._closed.is_set():
                self._release.set()
        released.set()

    def reset(self) -> None:
        """Forget messages and faults; pending callbacks of forgotten messages stop."""
        with self._lock:
            self._messages.clear()
            self._faults.clear()
        self.release_held()

    def close(self, timeout: float = 2.0) -> None:
        """Stop holding and stop callbacks, waiting briefly for their threads to finish."""
        self._closed.set()
        self.release_held()
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # --- Python API: a phone texting us -------------------------------------------------------

    def send_inbound(
        self,
        from_: str,
        to: str,
        body: str = "",
        *,
        media_urls: Sequence[str] = (),
        repeat: int = 1,
    ) -> dict[str, Any]:
        """Post a signed, Twilio-shaped inbound text `repeat` times (one MessageSid: a carrier retry)."""
        if not from_ or not to:
            raise ValueError("'from' and 'to' are required")
        if isinstance(repeat, bool) or not isinstance(repeat, int) or not 1 <= repeat <= MAX_INBOUND_REPEAT:
            raise ValueError(f"repeat must be an integer from 1 to {MAX_INBOUND_REPEAT}")
        if len(media_urls) > MAX_MEDIA:
            raise ValueError(f"at most {MAX_MEDIA} media URLs")
        sid = f"SM{uuid.uuid4().hex}"
        form = self._inbound_form(sid, from_, to, body, media_urls)
        url = self.inbound_url
        headers = {
            SIGNATURE_HEADER: twilio_signature(self._auth_token, url, form),
            "Content-Type": "application/x-www-form-urlencoded; charset=UTF-8",
            "User-Agent": "TwilioProxy/1.1",
        }
        responses: list[int | None] = []
        for _ in range(repeat):
            try:
                answer = requests.post(url, data=form, headers=headers, timeout=self.http_timeout)
                responses.append(answer.status_code)
            except requests.RequestException as exc:
                logger.warning("sim twilio: inbound %s to %s failed: %s", sid, url, exc)
                responses.append(None)
        logger.info("sim twilio: inbound %s %s -> %s answered %s", sid, from_, to, responses)
        return {"message_sid": sid, "responses": responses}

    def _inbound_form(
        self, sid: str, from_: str, to: str, body: str, media_urls: Sequence[str]
    ) -> dict[str, str]:
        form: dict[str, str] = {
            "ToCountry": "US" if to.startswith("+1") else "",
            "ToState": "",
            "SmsMessageSid": sid,
            "NumMedia": str(len(media_urls)),
            "ToCity": "",
            "FromZip": "",
            "SmsSid": sid,
            "FromState": "",
            "SmsStatus": "received",
            "FromCity": "",
            "Body": body,
            "FromCountry": "US" if from_.startswith("+1") else "",
            "To": to,
            "ToZip": "",
            "NumSegments": str(_count_segments(body)),
            "MessageSid": sid,
            "AccountSid": self.account_sid,
            "From": from_,
            "ApiVersion": API_VERSION,
        }
        for index, media_url in enumerate(media_urls):
            content_type = mimetypes.guess_type(media_url)[0] or "image/jpeg"
            form[f"MediaContentType{index}"] = content_type
            form[f"MediaUrl{index}"] = media_url
        return form

    # --- internals ------------------------------------------------------------------------------

    def _validate(
        self,
        to: str,
        from_: str,
        body: str,
        media_urls: Sequence[str],
        messaging_service_sid: str | None,
    ) -> None:
        if not to:
            raise TwilioApiError(400, 21604, "A 'To' phone number is required.")
        if not from_ and not messaging_service_sid:
            raise TwilioApiError(400, 21603, "A 'From' phone number is required.")
        if not body.strip() and not media_urls:
            raise TwilioApiError(400, 21602, "Message body is required.")
        if len(body) > MAX_BODY_CHARS:
            raise TwilioApiError(
                400, 21617, f"The concatenated message body exceeds the {MAX_BODY_CHARS} character limit."
            )
        if len(media_urls) > MAX_MEDIA:
            raise TwilioApiError(400, 21623, f"Too many media URLs: at most {MAX_MEDIA} are allowed.")
        if from_ in MAGIC_FROM:
            code, text = MAGIC_FROM[from_]
            raise TwilioApiError(400, code, text.format(from_=from_))
        if to in MAGIC_TO:
            code, text = MAGIC_TO[to]
            raise TwilioApiError(400, code, text.format(to=to))

    def _take_fault(self, to: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and (fault.to is None or fault.to == to):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return _Fault(**vars(fault))
        return None

    def _hold(self, seconds: float) -> None:
        with self._lock:
            release = self._release
            self._held += 1
        try:
            release.wait(seconds)
        finally:
            with self._lock:
                self._held -= 1

    def _accept(
        self,
        to: str,
        from_: str,
        body: str,
        status_callback: str | None,
        media_urls: Sequence[str],
        messaging_service_sid: str | None,
        final: tuple[str, str] | None,
    ) -> dict[str, Any]:
        sid = f"SM{uuid.uuid4().hex}"
        now = _rfc2822(datetime.now(UTC))
        base_uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        resource: dict[str, Any] = {
            "sid": sid,
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "to": to,
            "from": from_ or None,
            "messaging_service_sid": messaging_service_sid,
            "body": body,
            "status": "accepted" if messaging_service_sid else "queued",
            "num_segments": str(_count_segments(body)),
            "num_media": str(len(media_urls)),
            "direction": "outbound-api",
            "date_created": now,
            "date_updated": now,
            "date_sent": None,
            "error_code": None,
            "error_message": None,
            "price": None,
            "price_unit": "USD",
            "uri": f"{base_uri}.json",
            "subresource_uris": {"media": f"{base_uri}/Media.json"},
        }
        stored = _Stored(
            resource=resource, status_callback=status_callback or None, media_urls=list(media_urls)
        )
        steps = [("sent", None), final or ("delivered", None)]
        thread = threading.Thread(
            target=self._run_callbacks, args=(sid, steps), name=f"sim-twilio-{sid[:10]}", daemon=True
        )
        with self._lock:
            self._messages[sid] = stored
            self._threads.add(thread)
            snapshot = json.loads(json.dumps(resource))
        logger.info("sim twilio: accepted %s %s -> %s", sid, from_ or messaging_service_sid, to)
        thread.start()
        return dict(snapshot)

    def _run_callbacks(self, sid: str, steps: list[tuple[str, str | None]]) -> None:
        try:
            for status, error_code in steps:
                if self._closed.wait(self.callback_delay):
                    return
                prepared = self._advance(sid, status, error_code)
                if prepared is None:
                    return  # reset meanwhile
                url, form = prepared
                if url:
                    record = self._deliver_callback(url, form)
                    with self._lock:
                        stored = self._messages.get(sid)
                        if stored is None:
                            return
                        stored.callbacks.append(record)
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _advance(
        self, sid: str, status: str, error_code: str | None
    ) -> tuple[str | None, dict[str, str]] | None:
        """Move the stored message to `status` and build its callback form (Twilio's field set)."""
        now = datetime.now(UTC)
        with self._lock:
            stored = self._messages.get(sid)
            if stored is None:
                return None
            resource = stored.resource
            resource["status"] = status
            resource["date_updated"] = _rfc2822(now)
            if status == "sent":
                resource["date_sent"] = _rfc2822(now)
            if error_code is not None:
                resource["error_code"] = int(error_code) if error_code.isdigit() else error_code
                resource["error_message"] = UNDELIVERED_MESSAGES.get(error_code, "Message undelivered")
            form = {
                "MessageSid": sid,
                "SmsSid": sid,
                "MessageStatus": status,
                "SmsStatus": status,
                "To": resource["to"],
                "From": resource["from"] or "",
                "AccountSid": self.account_sid,
                "ApiVersion": API_VERSION,
            }
            if resource["messaging_service_sid"]:
                form["MessagingServiceSid"] = resource["messaging_service_sid"]
            if error_code is not None:
                form["ErrorCode"] = error_code
            if status in ("delivered", "undelivered"):
                form["RawDlrDoneDate"] = now.strftime("%y%m%d%H%M")
            return stored.status_callback, form

    def _deliver_callback(self, url: str, form: dict[str, str]) -> dict[str, Any]:
        headers = {
            SIGNATURE_HEADER: twilio_signature(self._auth_token, url, form),
            "Content-Type": "application/x-www-form-urlencoded; charset=UTF-8",
            "User-Agent": "TwilioProxy/1.1",
        }
        record: dict[str, Any] = {
            "status": form["MessageStatus"],
            "response_code": None,
            "attempts": 0,
            "error": None,
        }
        for attempt in range(1 + CALLBACK_RETRIES):
            if attempt and self._closed.wait(self.callback_retry_delay * attempt):
                break
            record["attempts"] = attempt + 1
            try:
                answer = requests.post(url, data=form, headers=headers, timeout=self.http_timeout)
            except requests.RequestException as exc:
                record["response_code"], record["error"] = None, f"{type(exc).__name__}: {exc}"
                logger.info("sim twilio: callback %s to %s failed: %s", form["MessageStatus"], url, exc)
                continue
            record["response_code"], record["error"] = answer.status_code, None
            if answer.status_code < 500:
                break
        return record

    # --- WSGI ----------------------------------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self._dispatch(request)
        except TwilioApiError as exc:
            challenge = {"WWW-Authenticate": 'Basic realm="Twilio API"'} if exc.status == 401 else None
            response = _json(exc.to_dict(), exc.status, challenge)
        except _BadRequest as exc:
            response = _json({"reason": str(exc)}, 400)
        except MethodNotAllowed:
            response = _json(TwilioApiError(405, 20004, "Method not allowed").to_dict(), 405)
        except HTTPException as exc:
            status = exc.code or 500
            missing = TwilioApiError(status, 20404, f"The requested resource {request.path} was not found")
            response = _json(missing.to_dict(), status)
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        adapter = _URLS.bind_to_environ(request.environ)
        endpoint, args = adapter.match()
        if endpoint == "media":
            return sim_media.response(str(args["name"]))
        if endpoint == "messages":
            self._authenticate(request, str(args["account_sid"]))
            if request.method == "POST":
                return self._post_message(request)
            return self._list_messages(request)
        if endpoint == "message":
            self._authenticate(request, str(args["account_sid"]))
            sid = str(args["message_sid"])
            found = self.message(sid)
            if found is None:
                raise TwilioApiError(404, 20404, f"The requested resource {request.path} was not found")
            return _json(_public(found))
        if endpoint == "faults":
            return self._faults_endpoint(request)
        if endpoint == "inbound":
            return self._inbound_endpoint(request)
        if request.method == "DELETE":
            self.reset()
            return Response(status=204)
        return _json({"messages": self.messages()})

    def _authenticate(self, request: Request, path_sid: str) -> None:
        auth = request.authorization
        ok = (
            auth is not None
            and auth.type == "basic"
            and hmac.compare_digest((auth.username or "").encode(), self.account_sid.encode())
            and hmac.compare_digest((auth.password or "").encode(), self._auth_token.encode())
            and hmac.compare_digest(path_sid.encode(), self.account_sid.encode())
        )
        if not ok:
            raise TwilioApiError(401, 20003, "Authenticate")

    def _post_message(self, request: Request) -> Response:
        form = request.form
        resource = self.create_message(
            form.get("To", ""),
            form.get("From", ""),
            form.get("Body", ""),
            status_callback=form.get("StatusCallback") or None,
            media_urls=[u for u in form.getlist("MediaUrl") if u],
            messaging_service_sid=form.get("MessagingServiceSid") or None,
        )
        return _json(resource, 201)

    def _list_messages(self, request: Request) -> Response:
        to = request.args.get("To")
        from_ = request.args.get("From")
        try:
            page_size = max(1, min(1000, int(request.args.get("PageSize", "50"))))
        except ValueError as exc:
            raise TwilioApiError(400, 20001, "PageSize must be an integer") from exc
        found = [_public(m) for m in reversed(self.messages(to)) if from_ is None or m["from"] == from_][
            :page_size
        ]
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages.json"
        return _json(
            {
                "messages": found,
                "end": max(0, len(found) - 1),
                "first_page_uri": f"{uri}?PageSize={page_size}&Page=0",
                "next_page_uri": None,
                "previous_page_uri": None,
                "page": 0,
                "page_size": page_size,
                "start": 0,
                "uri": f"{uri}?PageSize={page_size}&Page=0",
            }
        )

    def _faults_endpoint(self, request: Request) -> Response:
        if request.method == "GET":
            return _json({"faults": self.faults()})
        if request.method == "DELETE":
            self.clear_faults()
            return Response(status=204)
        data = _read_json_object(request)
        error_code = data.get("error_code")
        try:
            fault = self.add_fault(
                str(data.get("kind", "")),
                data.get("count", 1),
                to=data.get("to"),
                error_code=None if error_code is None else str(error_code),
                hold_seconds=data.get("hold_seconds", 30.0),
            )
        except ValueError as exc:
            raise _BadRequest(str(exc)) from exc
        return _json(fault, 201)

    def _inbound_endpoint(self, request: Request) -> Response:
        data = _read_json_object(request)
        from_, to, body = data.get("from"), data.get("to"), data.get("body", "")
        media_urls = data.get("media_urls", [])
        if data.get("media") is True and not media_urls:
            media_urls = [sim_media.url(request)]
        if not isinstance(from_, str) or not isinstance(to, str) or not from_ or not to:
            raise _BadRequest("'from' and 'to' are required strings")
        if not isinstance(body, str):
            raise _BadRequest("'body' must be a string")
        if not isinstance(media_urls, list) or not all(isinstance(u, str) for u in media_urls):
            raise _BadRequest("'media_urls' must be a list of strings")
        try:
            result = self.send_inbound(from_, to, body, media_urls=media_urls, repeat=data.get("repeat", 1))
        except ValueError as exc:
            raise _BadRequest(str(exc)) from exc
        return _json(result)


def _public(message: Mapping[str, Any]) -> dict[str, Any]:
    """The resource as Twilio's API shows it (without the simulator's bookkeeping)."""
    return {k: v for k, v in message.items() if k not in ("status_callback", "media_urls", "callbacks")}
