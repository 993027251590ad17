"""A Plivo messaging API look-alike for local runs and tests, with injectable faults.

Why: the send, retry and webhook paths must be exercised end to end without a Plivo account, and the
official `plivo` SDK (or our plugin) must work against it unchanged, so it speaks Plivo's wire
format: JSON requests with HTTP Basic auth, `{"api_id", "error"}` errors, message records (MDRs)
with numbers written without "+", and callbacks signed with both X-Plivo-Signature-V3 and -V2.

Mounted as a WSGI app (e.g. at ``/_sim/plivo``); paths below are relative to the mount point.

Plivo API (HTTP Basic ``auth_id:auth_token``; the auth id in the path must be the caller's):
    POST /v1/Account/{auth_id}/Message/           202 {"api_id", "message", "message_uuid": [...]}
    GET  /v1/Account/{auth_id}/Message/{uuid}/    the message record, or 404
    GET  /v1/Account/{auth_id}/Message/?filters   {"api_id", "meta", "objects"}, newest first; filters:
         message_direction, message_state, from_number, to_number, message_time(__gt|__gte|__lt|__lte),
         limit (1-20), offset
Control plane (no auth; JSON):
    POST /_faults   {"kind", "count", "to", "error_code", "hold_seconds"} -> 201 with the fault
    GET  /_faults   active faults;  DELETE /_faults clears them (and releases holds)
    POST /_inbound  {"from", "to", "body", "media_urls", "media", "repeat"} -> a phone texting us
                    ("media": true attaches this simulator's /_media/parley.png)
    GET  /_media/<name>  the picture a phone attached (local.sim_media), no auth
    GET  /_messages every accepted outbound message with its callbacks; DELETE resets everything

Order of checks on send: authentication, request validation (a 400 never consumes a fault), then
faults (the first active fault matching the recipient takes one count), then acceptance. Receipts
go to the request's ``url`` (with its ``method``), or to {webhook_base_url}/webhooks/plivo/status
when none is given, from a daemon thread per message: ``sent`` then ``delivered`` (``undelivered``
with ErrorCode for the "undelivered" fault), one callback per part for texts longer than one
segment (PartInfo "k of n", ParentMessageUUID = the first part). Each callback is retried up to 3
more times while our server answers non-2xx or can't be reached (Plivo: +60/+120/+240 s; here
``callback_retry_delay`` x attempt).

Plivo's own opt-out handling (DND) is played too: an inbound STOP/END/QUIT/CANCEL/UNSUBSCRIBE/STOPALL
(case-insensitive, exact) is posted with MessageIntent=optout and blocks later sends from that
number to the texter: they are accepted, then fail with ErrorCode 200 (START/UNSTOP undo it;
HELP/INFO are marked MessageIntent=help).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import itertools
import json
import logging
import secrets
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse, urlunparse

import requests
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from local.sim_common import FaultBook, Simulator, check_repeat, count_segments, json_response

__all__ = [
    "FAULT_KINDS",
    "LOCAL_AUTH_ID",
    "LOCAL_AUTH_TOKEN",
    "PlivoApiError",
    "SimulatedPlivo",
    "plivo_v2_signature",
    "plivo_v3_signature",
]

logger = logging.getLogger(__name__)

LOCAL_AUTH_ID = "MAPARLEYLOCAL0000001"  # the SDK insists on MA/SA + 18 characters
LOCAL_AUTH_TOKEN = "parley-local-plivo-auth-token-0000000000"
INBOUND_PATH = "/webhooks/plivo/messages"
STATUS_PATH = "/webhooks/plivo/status"
FAULT_KINDS = ("500", "429", "timeout", "timeout_after_accept", "undelivered")
CALLBACK_RETRIES = 3  # retries after the first attempt, as Plivo does
MAX_TEXT_CHARS = 1600
MAX_MEDIA = 10
MAX_INBOUND_REPEAT = 20
MAX_LIST_LIMIT = 20
RATE = "0.00500"
OPT_OUT_WORDS = frozenset({"STOP", "END", "QUIT", "CANCEL", "UNSUBSCRIBE", "UNSUB", "STOPALL", "STOP ALL"})
OPT_IN_WORDS = frozenset({"START", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})
INVALID_DESTINATIONS = frozenset({"15005550001"})  # a valid-looking number Plivo calls invalid (tests)

_URLS = Map(
    [
        Rule("/v1/Account/<auth_id>/Message/", endpoint="messages", methods=["GET", "POST"]),
        Rule("/v1/Account/<auth_id>/Message/<message_uuid>/", endpoint="message", methods=["GET"]),
        Rule("/_faults", endpoint="faults", methods=["GET", "POST", "DELETE"]),
        Rule("/_inbound", endpoint="inbound", methods=["POST"]),
        Rule("/_media/<name>", endpoint="media", methods=["GET"]),
        Rule("/_messages", endpoint="sim_messages", methods=["GET", "DELETE"]),
    ]
)


def _b64_hmac(token: str, text: str) -> str:
    return base64.b64encode(hmac.new(token.encode(), text.encode(), hashlib.sha256).digest()).decode()


def plivo_v2_signature(auth_token: str, url: str, nonce: str) -> str:
    """V2: base64(HMAC-SHA256(token, scheme://host/path + nonce)); the query and the body are not signed."""
    parts = urlparse(url)
    return _b64_hmac(auth_token, urlunparse((parts.scheme, parts.netloc, parts.path, "", "", "")) + nonce)


def plivo_v3_signature(auth_token: str, method: str, url: str, params: Mapping[str, str], nonce: str) -> str:
    """V3: HMAC-SHA256 over the URL, its sorted query, the sorted fields and ".nonce" (Plivo's order).

    GET: every parameter joins the query (k=v&...). POST: "?" + sorted query + "." (if any query)
    + sorted fields as k+v; no fields: just the URL and its sorted query.
    """
    parts = urlparse(url)
    base = urlunparse((parts.scheme, parts.netloc, parts.path, "", "", ""))
    query = parse_qs(parts.query, keep_blank_values=True)
    if method.upper() == "GET":
        for key, value in params.items():
            query.setdefault(key, []).append(value)
    sorted_query = "&".join(f"{k}={v}" for k in sorted(query) for v in sorted(query[k]))
    if method.upper() == "GET" or not params:
        signed = base + ("?" + sorted_query if sorted_query else "")
    else:
        fields = "".join(k + params[k] for k in sorted(params))
        signed = base + "?" + sorted_query + ("." if sorted_query else "") + fields
    return _b64_hmac(auth_token, f"{signed}.{nonce}")


def _nonce() -> str:
    return str(secrets.randbelow(10**20)).zfill(20)


def _digits(number: str) -> str:
    return "".join(c for c in number if c.isdigit())


def _plivo_time(moment: datetime) -> str:
    """Callback timestamps: "YYYY-mm-dd HH:MM:SS.ffffff" (UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class PlivoApiError(Exception):
    """An error the API answers with, in Plivo's shape: {"api_id": ..., "error": "..."}."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(f"{status}: {error}")
        self.status = status
        self.error = error

    def to_dict(self) -> dict[str, Any]:
        return {"api_id": str(uuid.uuid4()), "error": self.error}


@dataclass
class _Stored:
    record: dict[str, Any]  # the MDR as the API shows it
    text: str
    callback_url: str
    callback_method: str
    media_urls: list[str]
    part_uuids: list[str]
    sent_time: str | None = None
    callbacks: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(json.dumps(self.record))
        data.update(
            text=self.text,
            callback_url=self.callback_url,
            callback_method=self.callback_method,
            media_urls=list(self.media_urls),
            part_uuids=list(self.part_uuids),
            callbacks=json.loads(json.dumps(self.callbacks)),
        )
        return data


def _parse_filter_time(value: str) -> datetime:
    """Plivo's list filter format: "YYYY-MM-DD HH:MM[:ss[.uuuuuu]]", UTC."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise PlivoApiError(400, f"invalid message_time filter {value!r}") from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _fault_recipient(to: str) -> str:
    if not isinstance(to, str) or not _digits(to):
        raise ValueError("to must be a phone number")
    return _digits(to)


def _not_2xx(code: int) -> bool:
    """Plivo retries a webhook on any answer but a 2xx."""
    return not 200 <= code < 300


class SimulatedPlivo(Simulator[PlivoApiError]):
    """The simulator. All state lives on the instance behind locks; the server may be threaded.

    Credentials default to LOCAL_AUTH_ID / LOCAL_AUTH_TOKEN, which the local stack also gives the
    plugin (PARLEY_PLIVO_AUTH_ID / PARLEY_PLIVO_AUTH_TOKEN).
    """

    urls = _URLS
    api_errors = (PlivoApiError,)

    def __init__(
        self,
        webhook_base_url: str,
        *,
        auth_id: str = LOCAL_AUTH_ID,
        auth_token: str = LOCAL_AUTH_TOKEN,
        callback_delay: float = 0.0,
        callback_retry_delay: float = 0.05,
        http_timeout: float = 8.0,
        signature_versions: Sequence[str] = ("v3", "v2"),
    ) -> None:
        unknown = set(signature_versions) - {"v2", "v3"}
        if unknown or not signature_versions:
            raise ValueError("signature_versions must name v2 and/or v3")
        # An "undelivered" fault reports ErrorCode 80 (destination unreachable) unless told otherwise.
        faults = FaultBook(FAULT_KINDS, default_error_code="80", recipient=_fault_recipient)
        super().__init__(faults, callback_delay, callback_retry_delay, http_timeout)  # Plivo waits 8 s
        self.auth_id = auth_id
        self._auth_token = auth_token
        self.webhook_base_url = webhook_base_url.rstrip("/")
        self.signature_versions = tuple(signature_versions)
        self._messages: dict[str, _Stored] = {}
        self._inbound: list[dict[str, Any]] = []
        self._opted_out: set[tuple[str, str]] = set()  # (our number, their number), digits only

    def __repr__(self) -> str:
        return f"SimulatedPlivo(auth_id={self.auth_id!r}, webhook_base_url={self.webhook_base_url!r})"

    @property
    def inbound_url(self) -> str:
        """The exact URL inbound texts are posted to and signed for."""
        return self.webhook_base_url + INBOUND_PATH

    @property
    def status_url(self) -> str:
        """Where receipts go when a send names no `url`."""
        return self.webhook_base_url + STATUS_PATH

    @property
    def held_requests(self) -> int:
        """How many HTTP responses a timeout fault is holding right now."""
        return self._faults.held

    # --- Python API: outbound messages ------------------------------------------------------------

    def messages(self, to: str | None = None) -> list[dict[str, Any]]:
        """Accepted outbound messages, oldest first: the MDR plus text, callback URL and callbacks.

        `to` matches on digits, so "+14155550100" and "14155550100" are the same recipient.
        """
        wanted = _digits(to) if to is not None else None
        with self._lock:
            return [
                s.to_dict()
                for s in self._messages.values()
                if wanted is None or s.record["to_number"] == wanted
            ]

    def message(self, message_uuid: str) -> dict[str, Any] | None:
        with self._lock:
            stored = self._messages.get(message_uuid)
            return None if stored is None else stored.to_dict()

    def create_message(
        self,
        src: str,
        dst: str,
        text: str = "",
        *,
        url: str | None = None,
        method: str = "POST",
        type_: str = "sms",
        media_urls: Sequence[str] = (),
    ) -> dict[str, Any]:
        """What POST Message/ does after authentication: the 202 body, or PlivoApiError.

        Blocks while a timeout fault holds the response.
        """
        src, method, type_ = src.strip(), (method or "POST").upper(), (type_ or "sms").lower()
        destinations = [d.strip() for d in dst.split("<") if d.strip()]
        valid, invalid = self._validate(src, destinations, text, url, method, type_, media_urls)
        fault = self._faults.take(_digits(valid[0]))
        kind = fault.kind if fault else None
        if fault is not None and kind == "500":
            raise PlivoApiError(500, "internal server error (simulated)")
        if fault is not None and kind == "429":
            raise PlivoApiError(429, "too many requests (simulated)")
        if fault is not None and kind == "timeout":
            self._faults.hold(fault.hold_seconds)
            raise PlivoApiError(503, "service unavailable (simulated timeout; nothing was queued)")
        final = ("undelivered", fault.error_code) if fault is not None and kind == "undelivered" else None
        uuids = [
            self._accept(src, d, text, url or self.status_url, method, type_, media_urls, final)
            for d in valid
        ]
        if fault is not None and kind == "timeout_after_accept":
            self._faults.hold(fault.hold_seconds)
        body: dict[str, Any] = {
            "api_id": str(uuid.uuid4()),
            "message": "message(s) queued",
            "message_uuid": uuids,
        }
        if invalid:
            body["invalid_number"] = invalid
        return body

    def list_messages(self, filters: Mapping[str, str]) -> dict[str, Any]:
        """What GET Message/ answers: MDRs (outbound and inbound) matching Plivo's filters, newest first."""
        try:
            limit = int(filters.get("limit", str(MAX_LIST_LIMIT)))
            offset = int(filters.get("offset", "0"))
        except ValueError as exc:
            raise PlivoApiError(400, "limit and offset must be integers") from exc
        if not 0 < limit <= MAX_LIST_LIMIT or offset < 0:
            raise PlivoApiError(400, f"limit must be 1 to {MAX_LIST_LIMIT} and offset at least 0")
        bounds = [
            (op, _parse_filter_time(filters[f"message_time{suffix}"]))
            for suffix, op in (("", "eq"), ("__gt", "gt"), ("__gte", "gte"), ("__lt", "lt"), ("__lte", "lte"))
            if filters.get(f"message_time{suffix}")
        ]
        with self._lock:
            records = [json.loads(json.dumps(s.record)) for s in self._messages.values()]
            records += [json.loads(json.dumps(r)) for r in self._inbound]
        found = [r for r in records if _listed(r, filters, bounds)]
        found.sort(key=lambda r: r["message_time"], reverse=True)
        window = found[offset : offset + limit]
        base = f"/v1/Account/{self.auth_id}/Message/"
        after = offset + limit
        return {
            "api_id": str(uuid.uuid4()),
            "meta": {
                "limit": limit,
                "offset": offset,
                "total_count": len(found),
                "next": f"{base}?limit={limit}&offset={after}" if after < len(found) else None,
                "previous": f"{base}?limit={limit}&offset={max(0, offset - limit)}" if offset else None,
            },
            "objects": window,
        }

    # --- Python API: opt-outs ---------------------------------------------------------------------

    def opted_out(self, ours: str, theirs: str) -> bool:
        """Whether Plivo's DND list blocks texts from our number `ours` to `theirs`."""
        with self._lock:
            return (_digits(ours), _digits(theirs)) in self._opted_out

    def reset(self) -> None:
        """Forget messages, inbound records, faults and opt-outs; pending callbacks stop."""
        with self._lock:
            self._messages.clear()
            self._inbound.clear()
            self._opted_out.clear()
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
    ) -> dict[str, Any]:
        """Post a signed, Plivo-shaped inbound text `repeat` times (one MessageUUID: Plivo's retry)."""
        if not _digits(from_) or not _digits(to):
            raise ValueError("'from' and 'to' must be phone numbers")
        check_repeat(repeat, MAX_INBOUND_REPEAT)
        if len(media_urls) > MAX_MEDIA:
            raise ValueError(f"at most {MAX_MEDIA} media URLs")
        message_uuid = str(uuid.uuid4())
        intent = self._apply_keyword(body, ours=to, theirs=from_)
        form = self._inbound_form(message_uuid, from_, to, body, media_urls, intent)
        responses = [self._deliver(self.inbound_url, "POST", form)["response_code"] for _ in range(repeat)]
        ok = any(code is not None and 200 <= code < 300 for code in responses)
        with self._lock:
            self._inbound.append(
                {
                    "message_uuid": message_uuid,
                    "message_direction": "inbound",
                    "message_state": "delivered" if ok else "undelivered",
                    "message_type": form["Type"],
                    "message_time": _plivo_time(datetime.now(UTC)) + "+00:00",
                    "from_number": form["From"],
                    "to_number": form["To"],
                    "units": int(form["Units"]),
                    "total_rate": "0.00000",
                    "total_amount": "0.00000",
                    "error_code": "000" if ok else "",
                    "resource_uri": f"/v1/Account/{self.auth_id}/Message/{message_uuid}/",
                }
            )
        logger.info("sim plivo: inbound %s answered %s", message_uuid, responses)
        return {"message_uuid": message_uuid, "message_intent": intent, "responses": responses}

    def _apply_keyword(self, body: str, *, ours: str, theirs: str) -> str:
        """Plivo's DND handling: exact keywords, any case; returns the MessageIntent it posts."""
        word = " ".join(body.split()).upper()
        pair = (_digits(ours), _digits(theirs))
        with self._lock:
            if word in OPT_OUT_WORDS:
                self._opted_out.add(pair)
                return "optout"
            if word in OPT_IN_WORDS:
                self._opted_out.discard(pair)
                return "optin"
        return "help" if word in HELP_WORDS else ""

    def _inbound_form(
        self, message_uuid: str, from_: str, to: str, body: str, media_urls: Sequence[str], intent: str
    ) -> dict[str, str]:
        form: dict[str, str] = {
            "From": _digits(from_),
            "To": _digits(to),
            "Type": "mms" if media_urls else "sms",
            "MessageUUID": message_uuid,
            "Units": str(count_segments(body)),
            "TotalRate": "0.00000",
            "TotalAmount": "0.00000",
            "MessageIntent": intent,
            "PowerpackUUID": "",
        }
        if media_urls:
            form["Body"] = body
            form["MediaCount"] = str(len(media_urls))
            for index, media_url in enumerate(media_urls, start=1):
                form[f"Media{index}"] = media_url
        else:
            form["Text"] = body
        return form

    # --- internals ------------------------------------------------------------------------------

    def _validate(
        self,
        src: str,
        destinations: list[str],
        text: str,
        url: str | None,
        method: str,
        type_: str,
        media_urls: Sequence[str],
    ) -> tuple[list[str], list[str]]:
        if not src:
            raise PlivoApiError(400, "src parameter is required")
        if not destinations:
            raise PlivoApiError(400, "dst parameter is required")
        if type_ not in ("sms", "mms"):
            raise PlivoApiError(400, f"type must be sms or mms, not {type_!r}")
        if method not in ("GET", "POST"):
            raise PlivoApiError(400, "method must be GET or POST")
        if url is not None and urlparse(url).scheme not in ("http", "https"):
            raise PlivoApiError(400, "url must be an http or https URL")
        if type_ == "sms" and not text.strip():
            raise PlivoApiError(400, "text parameter is required for sms")
        if type_ == "mms" and not media_urls and not text.strip():
            raise PlivoApiError(400, "mms needs media_urls or text")
        if len(text) > MAX_TEXT_CHARS:
            raise PlivoApiError(400, f"text is too long: at most {MAX_TEXT_CHARS} characters")
        if len(media_urls) > MAX_MEDIA:
            raise PlivoApiError(400, f"at most {MAX_MEDIA} media_urls are allowed")
        if _digits(src) in {_digits(d) for d in destinations}:
            raise PlivoApiError(400, "src and dst must be different numbers")
        valid: list[str] = []
        invalid: list[str] = []
        for destination in destinations:
            digits = _digits(destination)
            plausible = destination.lstrip("+").isdigit() and 8 <= len(digits) <= 15
            (valid if plausible and digits not in INVALID_DESTINATIONS else invalid).append(destination)
        if not valid:
            raise PlivoApiError(400, f"{invalid[0]!r} is not a valid phone number.")
        return valid, invalid

    def _accept(
        self,
        src: str,
        dst: str,
        text: str,
        callback_url: str,
        method: str,
        type_: str,
        media_urls: Sequence[str],
        final: tuple[str, str] | None,
    ) -> str:
        message_uuid = str(uuid.uuid4())
        now = datetime.now(UTC)
        parts = 1 if type_ == "mms" else count_segments(text)
        record: dict[str, Any] = {
            "message_uuid": message_uuid,
            "message_direction": "outbound",
            "message_state": "queued",
            "message_type": type_,
            "message_time": _plivo_time(now) + "+00:00",
            "from_number": _digits(src),
            "to_number": _digits(dst),
            "units": parts,
            "total_rate": RATE,
            "total_amount": f"{float(RATE) * parts:.5f}",
            "error_code": "000",
            "powerpack_id": None,
            "resource_uri": f"/v1/Account/{self.auth_id}/Message/{message_uuid}/",
        }
        stored = _Stored(
            record=record,
            text=text,
            callback_url=callback_url,
            callback_method=method,
            media_urls=list(media_urls),
            part_uuids=[message_uuid] + [str(uuid.uuid4()) for _ in range(parts - 1)],
        )
        with self._lock:
            blocked = (_digits(src), _digits(dst)) in self._opted_out
        if blocked:
            steps: list[tuple[str, str | None]] = [("failed", "200")]  # Plivo's DND block
        else:
            steps = [("sent", None), final or ("delivered", None)]
        with self._lock:
            self._messages[message_uuid] = stored
        logger.info("sim plivo: accepted %s (%d part(s))", message_uuid, parts)
        callback = functools.partial(self._callbacks_of, message_uuid, itertools.count(1))
        self._callbacks.start(f"sim-plivo-{message_uuid[:8]}", steps, callback)
        return message_uuid

    def _callbacks_of(self, message_uuid: str, sequence: Iterator[int], step: tuple[str, str | None]) -> bool:
        """Move the message on and post one callback per part; False once the message is forgotten."""
        status, error_code = step
        prepared = self._advance(message_uuid, status, error_code)
        if prepared is None:
            return False  # reset meanwhile
        url, method, forms = prepared
        for form in forms:
            form["Sequence"] = str(next(sequence))
            record = self._deliver(url, method, form)
            record.update(status=status, part=form["PartInfo"])
            with self._lock:
                stored = self._messages.get(message_uuid)
                if stored is None:
                    return False
                stored.callbacks.append(record)
        return True

    def _advance(
        self, message_uuid: str, status: str, error_code: str | None
    ) -> tuple[str, str, list[dict[str, str]]] | None:
        """Move the stored message to `status`; build one callback form per part (Plivo's field set)."""
        now = datetime.now(UTC)
        with self._lock:
            stored = self._messages.get(message_uuid)
            if stored is None:
                return None
            record = stored.record
            record["message_state"] = status
            if error_code is not None:
                record["error_code"] = error_code
            times = {"MessageTime": record["message_time"][:26], "QueuedTime": record["message_time"][:26]}
            if status == "sent":
                stored.sent_time = _plivo_time(now)
            if stored.sent_time is not None:
                times["SentTime"] = stored.sent_time
            if status in ("delivered", "undelivered", "failed"):
                times["DeliveryReportTime"] = _plivo_time(now)
            parts = len(stored.part_uuids)
            forms = []
            for index, part_uuid in enumerate(stored.part_uuids, start=1):
                form = {
                    "MessageUUID": part_uuid,
                    "ParentMessageUUID": message_uuid,
                    "PartInfo": f"{index} of {parts}",
                    "To": record["to_number"],
                    "From": record["from_number"],
                    "Type": record["message_type"],
                    "Status": status,
                    "Units": "1",
                    "TotalRate": RATE,
                    "TotalAmount": RATE,
                    "MCC": "310",
                    "MNC": "260",
                    "PowerpackUUID": "",
                    **times,
                }
                if error_code is not None:
                    form["ErrorCode"] = error_code
                forms.append(form)
            return stored.callback_url, stored.callback_method, forms

    def _deliver(self, url: str, method: str, form: dict[str, str]) -> dict[str, Any]:
        """Send one signed webhook, retrying on non-2xx or no answer like Plivo; returns what happened."""

        def send() -> requests.Response:
            headers = self._signed_headers(method, url, form)  # a fresh nonce for every attempt
            if method == "GET":
                joined = url + ("&" if urlparse(url).query else "?") + urlencode(form)
                return requests.get(joined, headers=headers, timeout=self.http_timeout)
            return requests.post(url, data=form, headers=headers, timeout=self.http_timeout)

        def failed(exc: requests.RequestException) -> None:
            logger.info("sim plivo: webhook to %s failed: %s", url, exc)

        return self._callbacks.deliver(send, retries=CALLBACK_RETRIES, retry=_not_2xx, failed=failed).record()

    def _signed_headers(self, method: str, url: str, form: Mapping[str, str]) -> dict[str, str]:
        headers = {"User-Agent": "PlivoHTTP/sim"}
        if method == "POST":
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if "v3" in self.signature_versions:
            nonce = _nonce()
            headers["X-Plivo-Signature-V3"] = plivo_v3_signature(self._auth_token, method, url, form, nonce)
            headers["X-Plivo-Signature-V3-Nonce"] = nonce
        if "v2" in self.signature_versions:
            nonce = _nonce()
            headers["X-Plivo-Signature-V2"] = plivo_v2_signature(self._auth_token, url, nonce)
            headers["X-Plivo-Signature-V2-Nonce"] = nonce
        return headers

    # --- WSGI ----------------------------------------------------------------------------------

    def _api_error_response(self, exc: PlivoApiError) -> Response:
        challenge = {"WWW-Authenticate": 'Basic realm="Plivo API"'} if exc.status == 401 else None
        return json_response(exc.to_dict(), exc.status, challenge)

    def _routing_error_response(self, request: Request, exc: HTTPException) -> Response:
        if isinstance(exc, MethodNotAllowed):
            return self._api_error_response(PlivoApiError(405, "method not allowed"))
        return self._api_error_response(PlivoApiError(exc.code or 500, f"resource {request.path} not found"))

    def _dispatch(self, request: Request, endpoint: str, args: Mapping[str, Any]) -> Response:
        self._authenticate(request, str(args["auth_id"]))
        if endpoint == "message":
            found = self.message(str(args["message_uuid"]))
            if found is None:
                raise PlivoApiError(404, "message not found")
            return json_response({"api_id": str(uuid.uuid4()), **_public(found)})
        if request.method == "POST":
            return self._post_message(request)
        return json_response(self.list_messages(request.args))

    def _authenticate(self, request: Request, path_auth_id: str) -> None:
        auth = request.authorization
        ok = (
            auth is not None
            and auth.type == "basic"
            and hmac.compare_digest((auth.username or "").encode(), self.auth_id.encode())
            and hmac.compare_digest((auth.password or "").encode(), self._auth_token.encode())
            and hmac.compare_digest(path_auth_id.encode(), self.auth_id.encode())
        )
        if not ok:
            raise PlivoApiError(401, "authentication failed")

    def _post_message(self, request: Request) -> Response:
        if request.mimetype == "application/json":
            try:
                data = json.loads(request.get_data(cache=False) or b"null")
            except ValueError as exc:
                raise PlivoApiError(400, "request body is not valid JSON") from exc
            if not isinstance(data, dict):
                raise PlivoApiError(400, "request body must be a JSON object")
        else:
            data = dict(request.form.items())
        media = data.get("media_urls") or []
        if isinstance(media, str):
            media = [u.strip() for u in media.split(",") if u.strip()]
        if not isinstance(media, list) or not all(isinstance(u, str) for u in media):
            raise PlivoApiError(400, "media_urls must be a list of URLs")
        fields = {k: data.get(k) for k in ("src", "dst", "text", "url", "method", "type")}
        if not all(v is None or isinstance(v, str) for v in fields.values()):
            raise PlivoApiError(400, "src, dst, text, url, method and type must be strings")
        body = self.create_message(
            fields["src"] or "",
            fields["dst"] or "",
            fields["text"] or "",
            url=fields["url"] or None,
            method=fields["method"] or "POST",
            type_=fields["type"] or "sms",
            media_urls=media,
        )
        return json_response(body, 202)


def _listed(
    record: Mapping[str, Any], filters: Mapping[str, str], bounds: list[tuple[str, datetime]]
) -> bool:
    for name in ("message_direction", "message_state", "message_type"):
        if filters.get(name) and record.get(name) != filters[name]:
            return False
    for name in ("from_number", "to_number"):
        if filters.get(name) and record.get(name) != _digits(filters[name]):
            return False
    moment = datetime.fromisoformat(str(record["message_time"]))
    checks = {
        "eq": lambda b: moment == b,
        "gt": lambda b: moment > b,
        "gte": lambda b: moment >= b,
        "lt": lambda b: moment < b,
        "lte": lambda b: moment <= b,
    }
    return all(checks[op](bound) for op, bound in bounds)


def _public(message: Mapping[str, Any]) -> dict[str, Any]:
    """The MDR as Plivo's API shows it (without the simulator's bookkeeping)."""
    hidden = {"text", "callback_url", "callback_method", "media_urls", "part_uuids", "callbacks"}
    return {k: v for k, v in message.items() if k not in hidden}
