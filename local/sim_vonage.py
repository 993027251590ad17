"""A Vonage SMS API (legacy, rest.nexmo.com) look-alike for local runs and tests, with faults.

Why: the send, retry and webhook paths must run end to end without a Vonage account, and they must
meet Vonage's real quirks, so this speaks the wire format: form (or JSON) sends with ``api_key`` and
``api_secret`` in the parameters, answers that are HTTP 200 even for a refusal (the per-part
``status`` says so), one ``message-id`` per part of a long text, and delivery receipts and inbound
texts signed with ``sig`` (md5hash or HMAC over the sorted ``&key=value`` string) exactly as Vonage
signs them. The signer here is written separately from the plugin's, so each checks the other.

Mounted as a WSGI app (e.g. at ``/_sim/vonage``); paths below are relative to the mount point.

Vonage API (credentials as parameters; a wrong pair answers status 4 with HTTP 200):
    POST /sms/json        form, JSON or query parameters -> {"message-count", "messages": [...]}
Control plane (no auth; JSON):
    POST /_faults   {"kind", "count", "to", "error_code", "hold_seconds"} -> 201 with the fault
    GET  /_faults   active faults;  DELETE /_faults clears them (and releases held responses)
    POST /_inbound  {"from", "to", "body", "repeat"} -> a phone texting us (long texts in parts)
    GET  /_messages every accepted outbound text with its receipts;  DELETE resets everything

Local defaults (the local stack's ``PARLEY_VONAGE_*`` settings should match them): api_key
``abcd1234``, api_secret ``sim-vonage-api-secret``, signature secret
``sim-vonage-signature-secret``, signature method ``md5hash`` (Vonage's dashboard default).

Order of checks on send: credentials, required and well-formed parameters (a refusal never
consumes a fault), then faults (the first active fault for the recipient takes one count), then
acceptance. Receipts run on a daemon thread per text: ``accepted`` then ``delivered`` (or
``failed`` with ``err-code`` for an "undelivered" fault; for "undelivered_last_part", ``failed`` for
the last part of a long text only, the others ``delivered``), one receipt per part under that part's
``messageId``, to the text's ``callback`` or else ``{webhook_base_url}/webhooks/vonage/status``,
each retried up to 3 more times while our server answers 5xx or can't be reached.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import importlib
import json
import logging
import random
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from local.sim_common import Delivery, FaultBook, Simulator, check_repeat, json_response

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_API_SECRET",
    "DEFAULT_SIGNATURE_METHOD",
    "DEFAULT_SIGNATURE_SECRET",
    "FAULT_KINDS",
    "SimulatedVonage",
    "vonage_signature",
]

logger = logging.getLogger(__name__)

DEFAULT_API_KEY = "abcd1234"
DEFAULT_API_SECRET = "sim-vonage-api-secret"
DEFAULT_SIGNATURE_SECRET = "sim-vonage-signature-secret"
DEFAULT_SIGNATURE_METHOD = "md5hash"
SIGNATURE_METHODS = ("md5hash", "md5", "sha1", "sha256", "sha512")
WEBHOOK_FORMATS = ("form", "json", "get")  # the dashboard's POST form / POST-JSON / GET choices
INBOUND_PATH = "/webhooks/vonage/messages"
STATUS_PATH = "/webhooks/vonage/status"
_LAST_PART_FAILED = "failed-last-part"  # the receipt step of an "undelivered_last_part" fault
FAULT_KINDS = (
    "500",
    "429",
    "throttled",
    "timeout",
    "timeout_after_accept",
    "undelivered",
    "undelivered_last_part",
)
CALLBACK_RETRIES = 3  # retries after the first attempt
MAX_INBOUND_REPEAT = 20
MAX_TEXT_CHARS = 3200
NETWORK_CODE = "310090"
PART_PRICE = "0.00570000"
_MSISDN = re.compile(r"[0-9]{7,15}")
_GSM_EXTENSION = frozenset("\f^{}\\[~]|\u20ac")

_URLS = Map(
    [
        Rule("/sms/json", endpoint="send", methods=["POST"]),
        Rule("/_faults", endpoint="faults", methods=["GET", "POST", "DELETE"]),
        Rule("/_inbound", endpoint="inbound", methods=["POST"]),
        Rule("/_messages", endpoint="sim_messages", methods=["GET", "DELETE"]),
    ]
)


def vonage_signature(params: Mapping[str, str], secret: str, method: str = DEFAULT_SIGNATURE_METHOD) -> str:
    """Vonage's `sig`: over every parameter but `sig`, sorted by name, as ``&name=value`` with `&`
    and `=` in values turned into `_`; md5hash = MD5(that + secret), else HMAC keyed by the secret."""
    text = ""
    for name in sorted(k for k in params if k != "sig"):
        text += "&" + name + "=" + params[name].replace("&", "_").replace("=", "_")
    if method == "md5hash":
        return hashlib.md5(text.encode("utf-8") + secret.encode("utf-8")).hexdigest()
    return hmac.new(secret.encode("utf-8"), text.encode("utf-8"), getattr(hashlib, method)).hexdigest()


class _Refusal(Exception):
    """A send Vonage refuses with HTTP 200 and a non-zero status."""

    def __init__(self, status: str, error_text: str) -> None:
        super().__init__(f"{status}: {error_text}")
        self.status = status
        self.error_text = error_text


@dataclass
class _Stored:
    record: dict[str, Any]
    receipts: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(json.dumps(self.record))
        data["receipts"] = json.loads(json.dumps(self.receipts))
        return data


def _digits(number: str) -> str:
    """Vonage's way of writing a number: E.164 without the `+`."""
    return number.strip().removeprefix("+")


def _encoding() -> Any:
    try:
        return importlib.import_module("parley.domain.encoding")
    except Exception:  # the simulator must keep working while the encoder evolves
        logger.debug("encoder unavailable; every text is one part", exc_info=True)
        return None


def _split(text: str) -> list[str]:
    """The parts a handset would build: 153 GSM-7 septets or 67 UCS-2 units per concatenated part."""
    encoding = _encoding()
    if encoding is None or not text:
        return [text]
    try:
        info = encoding.analyze(text)
        if int(info.segments) <= 1:
            return [text]
        gsm = bool(encoding.is_gsm7(text))
    except Exception:
        logger.debug("segment analysis failed; one part", exc_info=True)
        return [text]
    limit = 153 if gsm else 67
    parts: list[str] = []
    current, units = "", 0
    for char in text:
        # GSM-7: an extension character is ESC + code; UCS-2: a non-BMP one is a surrogate pair.
        wide = char in _GSM_EXTENSION if gsm else ord(char) > 0xFFFF
        cost = 2 if wide else 1
        if units + cost > limit:
            parts.append(current)
            current, units = "", 0
        current += char
        units += cost
    parts.append(current)
    return parts


def _is_gsm7(text: str) -> bool:
    encoding = _encoding()
    try:
        return True if encoding is None else bool(encoding.is_gsm7(text))
    except Exception:
        return True


def _fault_recipient(to: str) -> str:
    if not isinstance(to, str):
        raise ValueError("to must be a phone number string")
    return _digits(to)


class SimulatedVonage(Simulator[Exception]):
    """The simulator. All state lives on the instance behind locks; the server may be threaded.

    Vonage answers every refusal with HTTP 200 and the reason in the body, so its API raises no
    error of its own: only an unknown path or method is an HTTP error.
    """

    urls = _URLS
    inbound_media = False

    def __init__(
        self,
        webhook_base_url: str,
        *,
        api_key: str = DEFAULT_API_KEY,
        api_secret: str = DEFAULT_API_SECRET,
        signature_secret: str = DEFAULT_SIGNATURE_SECRET,
        signature_method: str = DEFAULT_SIGNATURE_METHOD,
        webhook_format: str = "form",
        callback_delay: float = 0.0,
        callback_retry_delay: float = 0.05,
        http_timeout: float = 15.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if signature_method not in SIGNATURE_METHODS:
            raise ValueError(f"signature_method must be one of {', '.join(SIGNATURE_METHODS)}")
        if webhook_format not in WEBHOOK_FORMATS:
            raise ValueError(f"webhook_format must be one of {', '.join(WEBHOOK_FORMATS)}")
        # An "undelivered" fault reports err-code 2 (absent subscriber) unless told otherwise.
        faults = FaultBook(FAULT_KINDS, default_error_code="2", recipient=_fault_recipient)
        super().__init__(faults, callback_delay, callback_retry_delay, http_timeout)  # Vonage waits 15 s
        self.webhook_base_url = webhook_base_url.rstrip("/")
        self.api_key = api_key
        self._api_secret = api_secret
        self._signature_secret = signature_secret
        self.signature_method = signature_method
        self.webhook_format = webhook_format
        self._clock = clock
        self._messages: dict[str, _Stored] = {}

    @property
    def inbound_url(self) -> str:
        """The exact URL inbound texts are sent to (the number's inbound webhook in the dashboard)."""
        return self.webhook_base_url + INBOUND_PATH

    @property
    def status_url(self) -> str:
        """Where receipts go when a send names no `callback` (the dashboard's delivery-receipt URL)."""
        return self.webhook_base_url + STATUS_PATH

    @property
    def held_requests(self) -> int:
        """How many HTTP responses a timeout fault is holding right now."""
        return self._faults.held

    # --- Python API: outbound messages ------------------------------------------------------------

    def messages(self, to: str | None = None) -> list[dict[str, Any]]:
        """Accepted outbound texts, oldest first, each with its `receipts` (`to` with or without +)."""
        wanted = None if to is None else _digits(to)
        with self._lock:
            return [s.to_dict() for s in self._messages.values() if wanted in (None, s.record["to"])]

    def message(self, message_id: str) -> dict[str, Any] | None:
        """The text whose first part has `message_id`."""
        with self._lock:
            stored = self._messages.get(message_id)
            return None if stored is None else stored.to_dict()

    def send_sms(self, params: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        """What POST /sms/json does: (HTTP status, JSON answer). Blocks while a timeout fault holds."""
        try:
            self._authenticate(params)
            to, from_, text = self._validate(params)
        except _Refusal as refusal:
            return 200, {
                "message-count": "1",
                "messages": [{"status": refusal.status, "error-text": refusal.error_text}],
            }
        fault = self._faults.take(to)
        kind = fault.kind if fault else None
        if fault is not None and kind == "500":
            return 500, {"error-text": "Internal Server Error (simulated)"}
        if fault is not None and kind == "429":
            return 429, {"error-text": "Too Many Requests (simulated)"}
        if fault is not None and kind == "throttled":
            throttled = {
                "status": "1",
                "error-text": "Throughput Rate Exceeded - please wait [ 1000 ] and retry",
            }
            return 200, {"message-count": "1", "messages": [throttled]}
        if fault is not None and kind == "timeout":
            self._faults.hold(fault.hold_seconds)
            return 500, {"error-text": "Service Unavailable (simulated timeout; nothing was sent)"}
        final = ("failed", fault.error_code) if fault is not None and kind == "undelivered" else None
        if fault is not None and kind == "undelivered_last_part":
            final = (_LAST_PART_FAILED, fault.error_code)
        answer = self._accept(to, from_, text, params, final)
        if fault is not None and kind == "timeout_after_accept":
            self._faults.hold(fault.hold_seconds)
        return 200, answer

    def reset(self) -> None:
        """Forget texts and faults; pending receipts of forgotten texts stop."""
        with self._lock:
            self._messages.clear()
        self._faults.clear()

    # --- Python API: a phone texting us -------------------------------------------------------

    def send_inbound(self, from_: str, to: str, body: str = "", *, repeat: int = 1) -> dict[str, Any]:
        """Post a signed inbound text `repeat` times (same messageId and signature: Vonage retrying).

        A text longer than one SMS arrives as separate parts with ``concat`` fields, as from Vonage.
        """
        if not from_ or not to:
            raise ValueError("'from' and 'to' are required")
        check_repeat(repeat, MAX_INBOUND_REPEAT)
        parts = _split(body)
        ref = str(random.randint(0, 255))
        message_ids: list[str] = []
        responses: list[int | None] = []
        for number, part in enumerate(parts, start=1):
            message_id = self._new_id()
            message_ids.append(message_id)
            params = {
                "msisdn": _digits(from_),
                "to": _digits(to),
                "messageId": message_id,
                "text": part,
                "type": "text" if _is_gsm7(body) else "unicode",
                "keyword": (part.split() or [""])[0].upper(),
                "api-key": self.api_key,
                "message-timestamp": self._now().strftime("%Y-%m-%d %H:%M:%S"),
            }
            if len(parts) > 1:
                params.update(
                    {
                        "concat": "true",
                        "concat-ref": ref,
                        "concat-total": str(len(parts)),
                        "concat-part": str(number),
                    }
                )
            signed = self._sign(params)
            for _ in range(repeat):
                responses.append(self._deliver(self.inbound_url, signed).response_code)
        logger.info(
            "sim vonage: inbound %s %s answered %s", message_ids[0], f"{len(parts)} part(s)", responses
        )
        return {"message_id": message_ids[0], "message_ids": message_ids, "responses": responses}

    # --- internals ------------------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    @staticmethod
    def _new_id() -> str:
        return uuid.uuid4().hex[:16].upper()

    def _sign(self, params: dict[str, str]) -> dict[str, str]:
        signed = {**params, "timestamp": str(int(self._clock())), "nonce": str(uuid.uuid4())}
        signed["sig"] = vonage_signature(signed, self._signature_secret, self.signature_method)
        return signed

    def _authenticate(self, params: Mapping[str, str]) -> None:
        key, secret = params.get("api_key", ""), params.get("api_secret", "")
        if not key or not secret:
            raise _Refusal("2", "Missing api_key or api_secret")
        ok = hmac.compare_digest(key.encode(), self.api_key.encode()) & hmac.compare_digest(
            secret.encode(), self._api_secret.encode()
        )
        if not ok:
            raise _Refusal("4", "Bad Credentials")

    @staticmethod
    def _validate(params: Mapping[str, str]) -> tuple[str, str, str]:
        for name in ("from", "to", "text"):
            if not params.get(name, "").strip():
                raise _Refusal("2", f"Missing {name} param")
        to = params["to"].strip()
        if not _MSISDN.fullmatch(to):
            raise _Refusal("3", "Invalid to address")
        text = params["text"]
        if len(text) > MAX_TEXT_CHARS:
            raise _Refusal("12", "Message too long")
        callback = params.get("callback", "")
        if callback and not callback.startswith(("http://", "https://")):
            raise _Refusal("23", "Invalid callback url")
        return to, params["from"].strip(), text

    def _accept(
        self, to: str, from_: str, text: str, params: Mapping[str, str], final: tuple[str, str] | None
    ) -> dict[str, Any]:
        part_count = len(_split(text))
        ids = [self._new_id() for _ in range(part_count)]
        client_ref = params.get("client-ref") or None
        answer_parts: list[dict[str, Any]] = []
        for message_id in ids:
            part: dict[str, Any] = {
                "to": to,
                "message-id": message_id,
                "status": "0",
                "remaining-balance": "10.00000000",
                "message-price": PART_PRICE,
                "network": NETWORK_CODE,
            }
            if client_ref:
                part["client-ref"] = client_ref
            answer_parts.append(part)
        wants_receipts = params.get("status-report-req", "true").strip().lower() not in ("false", "0")
        record = {
            "message_id": ids[0],
            "message_ids": ids,
            "to": to,
            "from": from_,
            "text": text,
            "type": params.get("type", "text"),
            "client_ref": client_ref,
            "callback": params.get("callback") or None,
            "status_report_req": wants_receipts,
            "status": "submitted",
            "created_at": self._now().isoformat(),
        }
        with self._lock:
            self._messages[ids[0]] = _Stored(record=record)
        logger.info("sim vonage: accepted %s (%d part(s)) %s -> %s", ids[0], part_count, from_, to)
        if wants_receipts:
            steps = [("accepted", "0"), final or ("delivered", "0")]
            self._callbacks.start(f"sim-vonage-{ids[0]}", steps, functools.partial(self._receipts, ids[0]))
        return {"message-count": str(part_count), "messages": answer_parts}

    def _receipts(self, first_id: str, step: tuple[str, str]) -> bool:
        """Move the text on and post one receipt per part; False once the text is forgotten."""
        status, err_code = step
        last_failed = status == _LAST_PART_FAILED
        with self._lock:
            stored = self._messages.get(first_id)
            if stored is None:
                return False  # reset meanwhile
            stored.record["status"] = "failed" if last_failed else status
            record = dict(stored.record)
        url = record["callback"] or self.status_url
        for message_id in record["message_ids"]:
            if last_failed:  # one part lost: the customer gets the rest of the text
                lost = message_id == record["message_ids"][-1]
                status, err_code = ("failed", step[1]) if lost else ("delivered", "0")
            params = self._receipt(record, message_id, status, err_code)
            receipt = {"message_id": message_id, "status": status, "err_code": err_code, "url": url}
            receipt.update(self._deliver(url, params).record())
            with self._lock:
                stored = self._messages.get(first_id)
                if stored is None:
                    return False
                stored.receipts.append(receipt)
        return True

    def _receipt(
        self, record: Mapping[str, Any], message_id: str, status: str, err_code: str
    ) -> dict[str, str]:
        now = self._now()
        params = {
            "msisdn": record["to"],
            "to": record["from"],
            "network-code": NETWORK_CODE,
            "messageId": message_id,
            "price": PART_PRICE,
            "status": status,
            "scts": now.strftime("%y%m%d%H%M"),
            "err-code": err_code,
            "api-key": self.api_key,
            "message-timestamp": now.strftime("%Y-%m-%d %H:%M:%S"),
        }
        if record["client_ref"]:
            params["client-ref"] = record["client_ref"]
        return self._sign(params)

    def _deliver(self, url: str, params: dict[str, str]) -> Delivery:
        """Call our webhook in the configured format; retry while it answers 5xx or is unreachable."""

        def send() -> requests.Response:
            if self.webhook_format == "get":
                return requests.get(url, params=params, timeout=self.http_timeout)
            if self.webhook_format == "json":
                return requests.post(url, json=params, timeout=self.http_timeout)
            return requests.post(url, data=params, timeout=self.http_timeout)

        def failed(exc: requests.RequestException) -> None:
            logger.info("sim vonage: webhook to %s failed: %s", url, exc)

        return self._callbacks.deliver(send, retries=CALLBACK_RETRIES, failed=failed)

    # --- WSGI ----------------------------------------------------------------------------------

    def _routing_error_response(self, request: Request, exc: HTTPException) -> Response:
        if isinstance(exc, MethodNotAllowed):
            return json_response({"error-text": "Method not allowed"}, 405)
        return json_response({"error-text": f"{request.path} was not found"}, exc.code or 404)

    def _dispatch(self, request: Request, endpoint: str, args: Mapping[str, Any]) -> Response:
        status, answer = self.send_sms(self._send_params(request))
        return json_response(answer, status)

    @staticmethod
    def _send_params(request: Request) -> dict[str, str]:
        """Vonage reads parameters from the query string and from a form or JSON body."""
        params = dict(request.args.items())
        if request.mimetype == "application/json":
            try:
                data = json.loads(request.get_data(cache=False) or b"{}")
            except ValueError:
                data = {}
            if isinstance(data, dict):
                params.update({str(k): str(v) for k, v in data.items() if isinstance(v, str | int | float)})
        else:
            params.update(dict(request.form.items()))
        return params
