"""A Twilio Messages API look-alike for local runs and tests, with injectable faults.

Why: the send, retry and webhook paths must be exercised end to end without a Twilio account, and
the official `twilio` SDK (or our own client) must work against it unchanged, so it speaks the real
wire format: form-encoded requests with HTTP Basic auth, JSON resources and Twilio-shaped errors,
and status callbacks / inbound texts signed with ``X-Twilio-Signature`` exactly as Twilio signs them.

Mounted as a WSGI app (e.g. at ``/_sim/twilio``); paths below are relative to the mount point.

Twilio API (HTTP Basic ``account_sid:auth_token``):
    POST /2010-04-01/Accounts/{sid}/Messages.json              create (201) or a Twilio error
    GET  /2010-04-01/Accounts/{sid}/Messages/{MessageSid}.json  fetch, or 404 code 20404
    GET  /2010-04-01/Accounts/{sid}/Messages.json?To=&From=&DateSent>=&PageSize=&Page=
                                                                {"messages": [...]}, outbound and
                                                                received texts alike, by DateSent,
                                                                newest first (texts not sent yet
                                                                first); DateSent> leaves out texts
                                                                not sent yet (no date_sent), as
                                                                Twilio does; next_page_uri pages on
    GET  /2010-04-01/Accounts/{sid}/Messages/{MessageSid}/Media.json   a received text's media list
    GET  /2010-04-01/Accounts/{sid}/Messages/{MessageSid}/Media/{MediaSid}   307 to the picture
Control plane (no auth; JSON):
    POST /_faults   {"kind", "count", "to", "error_code", "hold_seconds"} → 201 with the fault
    GET  /_faults   active faults with remaining counts;  DELETE /_faults clears (and releases holds)
    POST /_inbound  {"from", "to", "body", "media_urls", "media", "repeat", "lost"} → a phone texting
                    us ("media": true attaches this simulator's /_media/parley.png; "lost": true
                    keeps the text in the account but never posts its webhook, as when our
                    endpoint was down: Twilio does not retry it)
    GET  /_media/<name>  the picture a phone attached (local.sim_media), no auth
    GET  /_messages every accepted outbound message with its callbacks, `received_at` (when the
                    simulator accepted it: ISO 8601, microseconds, real time) and `sent_at` (when
                    it was sent; null before); DELETE resets everything

Order of checks on create: authentication, request validation and Twilio's magic test numbers (a
400 never consumes a fault), then faults (the first active fault matching the recipient takes one
count), then acceptance. Status callbacks run on a daemon thread per message: ``sent`` then
``delivered`` (or ``undelivered`` with ErrorCode), each after ``callback_delay`` seconds, each retried
up to 3 more times while our server answers 5xx or can't be reached.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import logging
import mimetypes
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

import requests
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from local.sim_common import Delivery, FaultBook, Simulator, check_repeat, count_segments, json_response

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
        Rule(
            f"/{API_VERSION}/Accounts/<account_sid>/Messages/<message_sid>/Media.json",
            endpoint="media_list",
            methods=["GET"],
        ),
        Rule(
            f"/{API_VERSION}/Accounts/<account_sid>/Messages/<message_sid>/Media/<media_sid>",
            endpoint="media_item",
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


@dataclass
class _Stored:
    resource: dict[str, Any]
    status_callback: str | None
    media_urls: list[str]
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    # Twilio's date_created is to the second; a rate (5 a second) needs finer times, so keep our own.
    received_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="microseconds"))
    sent_at: str | None = None  # the same, for date_sent (empty until the text is sent)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(json.dumps(self.resource))
        data["received_at"] = self.received_at
        data["sent_at"] = self.sent_at
        data["status_callback"] = self.status_callback
        data["media_urls"] = list(self.media_urls)
        data["callbacks"] = json.loads(json.dumps(self.callbacks))
        return data


def _rfc2822(moment: datetime) -> str:
    return format_datetime(moment)


class SimulatedTwilio(Simulator[TwilioApiError]):
    """The simulator. All state lives on the instance behind locks; the server may be threaded."""

    urls = _URLS
    api_errors = (TwilioApiError,)
    inbound_lost = True

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
        faults = FaultBook(FAULT_KINDS, default_error_code="30003")
        super().__init__(faults, callback_delay, callback_retry_delay, http_timeout)  # Twilio waits 15 s
        self.account_sid = account_sid
        self._auth_token = auth_token
        self.webhook_base_url = webhook_base_url.rstrip("/")
        self._messages: dict[str, _Stored] = {}
        self._received: dict[str, dict[str, Any]] = {}  # texts phones sent us, as Twilio lists them

    @property
    def inbound_url(self) -> str:
        """The exact URL inbound texts are posted to and signed for."""
        return self.webhook_base_url + INBOUND_PATH

    @property
    def held_requests(self) -> int:
        """How many HTTP responses a timeout fault is holding right now."""
        return self._faults.held

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
        fault = self._faults.take(to)
        kind = fault.kind if fault else None
        if fault is not None and kind == "500":
            raise TwilioApiError(500, 20500, "Internal Server Error (simulated)")
        if fault is not None and kind == "429":
            raise TwilioApiError(429, 20429, "Too Many Requests (simulated)")
        if fault is not None and kind == "timeout":
            self._faults.hold(fault.hold_seconds)
            raise TwilioApiError(503, 20503, "Service Unavailable (simulated timeout; nothing was created)")
        final = ("undelivered", fault.error_code) if fault is not None and kind == "undelivered" else None
        resource = self._accept(to, from_, body, status_callback, media_urls, messaging_service_sid, final)
        if fault is not None and kind == "timeout_after_accept":
            self._faults.hold(fault.hold_seconds)
            current = self.message(resource["sid"])  # the status may have moved on meanwhile
            return resource if current is None else _public(current)
        return resource

    def reset(self) -> None:
        """Forget messages and faults; pending callbacks of forgotten messages stop."""
        with self._lock:
            self._messages.clear()
            self._received.clear()
        self._faults.clear()

    # --- Python API: a phone texting us -------------------------------------------------------

    def send_inbound(
        self,
        from_: str,
        to: str,
        body: str = "",
        *,
        media_urls: Sequence[str] = (),
        repeat: int = 1,
        lost: bool = False,
    ) -> dict[str, Any]:
        """Post a signed, Twilio-shaped inbound text `repeat` times (one MessageSid: a carrier retry).
        Either way the account keeps it, as Twilio does; `lost` posts nothing (our endpoint was down)."""
        if not from_ or not to:
            raise ValueError("'from' and 'to' are required")
        check_repeat(repeat, MAX_INBOUND_REPEAT)
        if len(media_urls) > MAX_MEDIA:
            raise ValueError(f"at most {MAX_MEDIA} media URLs")
        sid = f"SM{uuid.uuid4().hex}"
        form = self._inbound_form(sid, from_, to, body, media_urls)
        self._keep_received(sid, from_, to, body, media_urls)
        if lost:
            logger.info("sim twilio: inbound %s %s -> %s kept, its webhook lost", sid, from_, to)
            return {"message_sid": sid, "responses": []}
        url = self.inbound_url

        def failed(exc: requests.RequestException) -> None:
            logger.warning("sim twilio: inbound %s to %s failed: %s", sid, url, exc)

        responses = [self._post(url, form, retries=0, failed=failed).response_code for _ in range(repeat)]
        logger.info("sim twilio: inbound %s %s -> %s answered %s", sid, from_, to, responses)
        return {"message_sid": sid, "responses": responses}

    def _resource(
        self, sid: str, to: str, from_: str | None, body: str, media: int, now: str
    ) -> dict[str, Any]:
        """A message resource's fields shared by both directions, as Twilio's API shows them."""
        base_uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        return {
            "sid": sid,
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "to": to,
            "from": from_,
            "body": body,
            "num_segments": str(count_segments(body)),
            "num_media": str(media),
            "date_created": now,
            "date_updated": now,
            "error_code": None,
            "error_message": None,
            "price": None,
            "price_unit": "USD",
            "uri": f"{base_uri}.json",
            "subresource_uris": {"media": f"{base_uri}/Media.json"},
        }

    def _keep_received(self, sid: str, from_: str, to: str, body: str, media_urls: Sequence[str]) -> None:
        now = _rfc2822(datetime.now(UTC))
        resource = self._resource(sid, to, from_, body, len(media_urls), now)
        resource.update(
            {
                "messaging_service_sid": None,
                "status": "received",
                "direction": "inbound",
                "date_sent": now,
                "_media": [
                    (f"ME{uuid.uuid5(uuid.NAMESPACE_URL, sid + str(i)).hex}", url)
                    for i, url in enumerate(media_urls)
                ],
                "_at": datetime.now(UTC).isoformat(timespec="microseconds"),
            }
        )
        with self._lock:
            self._received[sid] = resource

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
            "NumSegments": str(count_segments(body)),
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
        resource = self._resource(sid, to, from_ or None, body, len(media_urls), _rfc2822(datetime.now(UTC)))
        resource.update(
            {
                "messaging_service_sid": messaging_service_sid,
                "status": "accepted" if messaging_service_sid else "queued",
                "direction": "outbound-api",
                "date_sent": None,
            }
        )
        stored = _Stored(
            resource=resource, status_callback=status_callback or None, media_urls=list(media_urls)
        )
        steps = [("sent", None), final or ("delivered", None)]
        with self._lock:
            self._messages[sid] = stored
            snapshot = json.loads(json.dumps(resource))
        logger.info("sim twilio: accepted %s %s -> %s", sid, from_ or messaging_service_sid, to)
        self._callbacks.start(f"sim-twilio-{sid[:10]}", steps, functools.partial(self._callback, sid))
        return dict(snapshot)

    def _callback(self, sid: str, step: tuple[str, str | None]) -> bool:
        """Move the message on and post its status callback; False once the message is forgotten."""
        prepared = self._advance(sid, *step)
        if prepared is None:
            return False  # reset meanwhile
        url, form = prepared
        if not url:
            return True

        def failed(exc: requests.RequestException) -> None:
            logger.info("sim twilio: callback %s to %s failed: %s", form["MessageStatus"], url, exc)

        record = {"status": form["MessageStatus"], **self._post(url, form, CALLBACK_RETRIES, failed).record()}
        with self._lock:
            stored = self._messages.get(sid)
            if stored is not None:
                stored.callbacks.append(record)
            return stored is not None

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
                stored.sent_at = now.isoformat(timespec="microseconds")
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

    def _post(
        self,
        url: str,
        form: dict[str, str],
        retries: int,
        failed: Callable[[requests.RequestException], None],
    ) -> Delivery:
        """POST a signed form as Twilio does, retrying while our server answers 5xx or can't be reached."""
        headers = {
            SIGNATURE_HEADER: twilio_signature(self._auth_token, url, form),
            "Content-Type": "application/x-www-form-urlencoded; charset=UTF-8",
            "User-Agent": "TwilioProxy/1.1",
        }
        return self._callbacks.deliver(
            lambda: requests.post(url, data=form, headers=headers, timeout=self.http_timeout),
            retries=retries,
            failed=failed,
        )

    # --- WSGI ----------------------------------------------------------------------------------

    def _api_error_response(self, exc: TwilioApiError) -> Response:
        challenge = {"WWW-Authenticate": 'Basic realm="Twilio API"'} if exc.status == 401 else None
        return json_response(exc.to_dict(), exc.status, challenge)

    def _routing_error_response(self, request: Request, exc: HTTPException) -> Response:
        if isinstance(exc, MethodNotAllowed):
            return self._api_error_response(TwilioApiError(405, 20004, "Method not allowed"))
        missing = f"The requested resource {request.path} was not found"
        return self._api_error_response(TwilioApiError(exc.code or 500, 20404, missing))

    def _dispatch(self, request: Request, endpoint: str, args: Mapping[str, Any]) -> Response:
        self._authenticate(request, str(args["account_sid"]))
        if endpoint == "message":
            found = self.message(str(args["message_sid"]))
            if found is None:
                with self._lock:
                    received = self._received.get(str(args["message_sid"]))
                if received is None:
                    raise TwilioApiError(404, 20404, f"The requested resource {request.path} was not found")
                return json_response(_public(received))
            return json_response(_public(found))
        if endpoint in ("media_list", "media_item"):
            return self._media(request, str(args["message_sid"]), args.get("media_sid"))
        if request.method == "POST":
            return self._post_message(request)
        return self._list_messages(request)

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
        return json_response(resource, 201)

    def _list_messages(self, request: Request) -> Response:
        to = request.args.get("To")
        from_ = request.args.get("From")
        day = request.args.get("DateSent>")
        try:
            page_size = max(1, min(1000, int(request.args.get("PageSize", "50"))))
            page = max(0, int(request.args.get("Page", "0")))
        except ValueError as exc:
            raise TwilioApiError(400, 20001, "PageSize and Page must be integers") from exc
        with self._lock:
            received = [dict(r) for r in self._received.values()]
        every = [
            *(_public(m) | {"_at": m["received_at"], "_sent": m["sent_at"]} for m in self.messages(to)),
            *({**r, "_sent": r["_at"]} for r in received),
        ]
        chosen = [
            m
            for m in every
            if (to is None or m["to"] == to)
            and (from_ is None or m["from"] == from_)
            and (day is None or _sent_since(m, day))
        ]
        # By DateSent, newest first, as Twilio lists; texts not sent yet (no DateSent) come first.
        chosen.sort(key=lambda m: (m["_sent"] is None, str(m["_sent"] or m["_at"])), reverse=True)
        found = [_public(m) for m in chosen[page * page_size : (page + 1) * page_size]]
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages.json"
        query = urlencode([(k, v) for k, v in (("To", to), ("From", from_), ("DateSent>", day)) if v])
        more = (page + 1) * page_size < len(chosen)

        def page_uri(n: int) -> str:
            return f"{uri}?{query + '&' if query else ''}PageSize={page_size}&Page={n}"

        return json_response(
            {
                "messages": found,
                "end": max(0, page * page_size + len(found) - 1),
                "first_page_uri": page_uri(0),
                "next_page_uri": page_uri(page + 1) if more else None,
                "previous_page_uri": page_uri(page - 1) if page > 0 else None,
                "page": page,
                "page_size": page_size,
                "start": page * page_size,
                "uri": page_uri(page),
            }
        )

    def _media(self, request: Request, message_sid: str, media_sid: str | None) -> Response:
        """A received text's media list, or a 307 to one picture (Twilio redirects to its CDN)."""
        with self._lock:
            received = self._received.get(message_sid)
        if received is None:
            raise TwilioApiError(404, 20404, f"The requested resource {request.path} was not found")
        base_uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{message_sid}/Media"
        if media_sid is None:
            media_list = [
                {
                    "sid": sid,
                    "parent_sid": message_sid,
                    "content_type": mimetypes.guess_type(url)[0] or "image/jpeg",
                    "uri": f"{base_uri}/{sid}.json",
                }
                for sid, url in received["_media"]
            ]
            return json_response({"media_list": media_list, "page": 0, "next_page_uri": None})
        for sid, url in received["_media"]:
            if sid == media_sid:
                return Response(status=307, headers={"Location": url})
        raise TwilioApiError(404, 20404, f"The requested resource {request.path} was not found")


def _sent_since(message: Mapping[str, Any], value: str) -> bool:
    """Twilio's DateSent> filter: sent on or after a UTC day ("YYYY-MM-DD"), or a moment (the SDK
    sends "YYYY-MM-DDTHH:MM:SSZ"). A text Twilio has not sent yet has no date_sent: never listed."""
    sent = message["_sent"]
    if sent is None:
        return False
    if len(value) == 10:
        return str(sent)[:10] >= value
    try:
        since = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise TwilioApiError(400, 20001, f"DateSent> {value!r} is not a date") from exc
    return datetime.fromisoformat(str(sent)) >= (since if since.tzinfo else since.replace(tzinfo=UTC))


def _public(message: Mapping[str, Any]) -> dict[str, Any]:
    """The resource as Twilio's API shows it (without the simulator's bookkeeping)."""
    bookkeeping = (
        "status_callback",
        "media_urls",
        "callbacks",
        "received_at",
        "sent_at",
        "_media",
        "_at",
        "_sent",
    )
    return {k: v for k, v in message.items() if k not in bookkeeping}
