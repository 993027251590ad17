"""The machinery every carrier simulator shares; each carrier's own wire format stays in its module.

A simulator (``local.sim_<carrier>``) keeps its carrier's request and answer shapes, authentication,
signing, magic numbers and webhook formats to itself. What is the same for all of them lives here:

* `FaultBook`: the faults injected through ``/_faults`` or `add_fault` (each matching valid send
  takes one count) and the responses a timeout fault is holding;
* `CallbackPoster`: the daemon thread per accepted message that posts its callbacks, one step after
  another, and the retry loop each webhook goes through, recording how our server answered;
* `Simulator`: the base class with the faults' Python API, ``close`` and the WSGI entry point that
  serves the control plane (``/_faults``, ``/_inbound``, ``/_media/<name>``, ``/_messages``) and hands
  every other route to the carrier's API;
* JSON helpers for the control plane, whose bad requests answer ``400 {"reason": ...}``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import requests
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map
from werkzeug.wrappers import Request, Response

from local import sim_media

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = [
    "BadControlRequest",
    "CallbackPoster",
    "Delivery",
    "Fault",
    "FaultBook",
    "Simulator",
    "check_repeat",
    "count_segments",
    "json_response",
    "read_json_object",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
ApiError = TypeVar("ApiError", bound=Exception)


class BadControlRequest(Exception):
    """A control-plane request we can't act on; the text is the reason returned."""


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(json.dumps(data), status=status, mimetype="application/json", headers=headers)


def read_json_object(request: Request, *, empty: bytes = b"null") -> dict[str, Any]:
    """A control-plane body: a JSON object, else BadControlRequest. An empty body reads as `empty`."""
    try:
        data = json.loads(request.get_data(cache=False) or empty)
    except ValueError as exc:
        raise BadControlRequest(f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadControlRequest("body must be a JSON object")
    return data


def check_repeat(repeat: object, most: int) -> None:
    """How many times an inbound text is posted (a carrier retrying it): an integer from 1 to `most`."""
    if isinstance(repeat, bool) or not isinstance(repeat, int) or not 1 <= repeat <= most:
        raise ValueError(f"repeat must be an integer from 1 to {most}")


def count_segments(text: str) -> int:
    """Segments as the shared encoder counts them; 1 if that module can't say."""
    if not text:
        return 1
    try:
        from parley.domain.encoding import analyze

        return max(1, int(analyze(text).segments))
    except Exception:  # the simulator must keep working while the encoder evolves
        logger.debug("segment count unavailable; assuming 1", exc_info=True)
        return 1


# --- faults ---------------------------------------------------------------------------------------


@dataclass
class Fault:
    id: str
    kind: str
    remaining: int
    to: str | None
    error_code: str
    hold_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def e164_recipient(to: str) -> str:
    """A fault's recipient as most simulators match it: the number exactly as a send names it."""
    if not isinstance(to, str):
        raise ValueError("to must be an E.164 string")
    return to


def _fault_id() -> str:
    return f"FA{uuid.uuid4().hex}"


class FaultBook:
    """Injected faults, and the responses a timeout fault holds; thread-safe.

    `kinds` are the simulator's fault kinds; `default_error_code` is the code an "undelivered"
    fault reports when none is given, and `check_error_code` may refuse a given one (ValueError).
    `recipient` validates a fault's `to` and writes it the way `take` will be asked about it.
    """

    def __init__(
        self,
        kinds: Sequence[str],
        *,
        default_error_code: str,
        new_id: Callable[[], str] = _fault_id,
        recipient: Callable[[str], str] = e164_recipient,
        check_error_code: Callable[[str], None] | None = None,
    ) -> None:
        self.kinds = tuple(kinds)
        self._default_error_code = default_error_code
        self._new_id = new_id
        self._recipient = recipient
        self._check_error_code = check_error_code
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._closed = False
        self._release = threading.Event()
        self._held = 0

    def add(
        self, kind: str, count: int, to: str | None, error_code: str | None, hold_seconds: float
    ) -> dict[str, Any]:
        """A new fault (see `Simulator.add_fault`), as a dict; ValueError for a bad argument."""
        if kind not in self.kinds:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(self.kinds)}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError("count must be a positive integer")
        recipient = None if to is None else self._recipient(to)
        if error_code is not None and self._check_error_code is not None:
            self._check_error_code(str(error_code))
        if isinstance(hold_seconds, bool) or not isinstance(hold_seconds, int | float) or hold_seconds < 0:
            raise ValueError("hold_seconds must be a non-negative number")
        fault = Fault(
            id=self._new_id(),
            kind=kind,
            remaining=count,
            to=recipient,
            error_code=self._default_error_code if error_code is None else str(error_code),
            hold_seconds=float(hold_seconds),
        )
        with self._lock:
            self._faults.append(fault)
            return fault.to_dict()

    def active(self) -> list[dict[str, Any]]:
        """The faults with counts left, oldest first."""
        with self._lock:
            return [f.to_dict() for f in self._faults]

    def clear(self) -> None:
        """Drop every fault and let any held response go."""
        with self._lock:
            self._faults.clear()
        self.release_held()

    def take(self, *recipients: str) -> Fault | None:
        """One count of the first active fault for any of `recipients` (or for anyone), as a copy."""
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and (fault.to is None or fault.to in recipients):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return Fault(**vars(fault))
        return None

    @property
    def held(self) -> int:
        """How many responses `hold` is holding right now."""
        with self._lock:
            return self._held

    def hold(self, seconds: float) -> None:
        """Hold the calling request `seconds`, or until `release_held` or `close`."""
        with self._lock:
            release = self._release
            self._held += 1
        try:
            release.wait(seconds)
        finally:
            with self._lock:
                self._held -= 1

    def release_held(self) -> None:
        """End every hold now (the held requests then answer as they would have after the hold)."""
        with self._lock:
            released, self._release = self._release, threading.Event()
            if self._closed:
                self._release.set()
        released.set()

    def close(self) -> None:
        """End every hold, now and from now on."""
        with self._lock:
            self._closed = True
        self.release_held()


# --- callbacks ------------------------------------------------------------------------------------


class Timing(Protocol):
    """The simulator's settings a poster reads each time it waits (they may be changed live)."""

    callback_delay: float
    callback_retry_delay: float


@dataclass
class Delivery:
    """How our server answered one webhook: the last answer (None: no answer) after `attempts` tries."""

    response_code: int | None = None
    attempts: int = 0
    error: str | None = None

    def record(self) -> dict[str, Any]:
        return {"response_code": self.response_code, "attempts": self.attempts, "error": self.error}


def server_error(code: int) -> bool:
    """Retry on a 5xx, as most carriers do."""
    return code >= 500


class CallbackPoster:
    """The daemon threads that post accepted messages' callbacks, and their retry loop."""

    def __init__(self, timing: Timing) -> None:
        self._timing = timing
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()

    def start(self, name: str, steps: Iterable[T], step: Callable[[T], bool]) -> None:
        """On a daemon thread, run `step` for each of `steps`, each `callback_delay` s after the
        last; stop when the simulator closes or a step answers False (its message was forgotten)."""
        thread = threading.Thread(target=self._run, args=(steps, step), name=name, daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def _run(self, steps: Iterable[T], step: Callable[[T], bool]) -> None:
        try:
            for item in steps:
                if self._closed.wait(self._timing.callback_delay) or not step(item):
                    return
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def pause(self, seconds: float) -> bool:
        """Wait `seconds`; True if the simulator closed meanwhile (then stop posting)."""
        return self._closed.wait(seconds)

    def deliver(
        self,
        send: Callable[[], requests.Response],
        *,
        retries: int,
        retry: Callable[[int], bool] = server_error,
        failed: Callable[[requests.RequestException], None] | None = None,
    ) -> Delivery:
        """Call `send` until an answer `retry` doesn't want retried, at most `retries` more times,
        waiting `callback_retry_delay` x the attempt number before each retry; `failed` hears of
        every attempt that got no answer."""
        delivery = Delivery()
        for attempt in range(1 + retries):
            if attempt and self.pause(self._timing.callback_retry_delay * attempt):
                break
            delivery.attempts = attempt + 1
            try:
                answer = send()
            except requests.RequestException as exc:
                delivery.response_code, delivery.error = None, f"{type(exc).__name__}: {exc}"
                if failed is not None:
                    failed(exc)
                continue
            delivery.response_code, delivery.error = answer.status_code, None
            if not retry(answer.status_code):
                break
        return delivery

    def close(self, timeout: float) -> None:
        """Stop posting, waiting up to `timeout` s for the threads to finish."""
        self._closed.set()
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no callback thread is running; False if some still are at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                threads = list(self._threads)
            if not threads:
                return True
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            if time.monotonic() >= deadline:
                with self._lock:
                    return not self._threads


# --- the simulator --------------------------------------------------------------------------------


class Simulator(ABC, Generic[ApiError]):
    """A carrier simulator: the faults' Python API, `close`, and the WSGI app with the control plane.

    A subclass sets `urls` (endpoints "faults", "inbound", "media" and "sim_messages" are served
    here; any other goes to `_dispatch`), `api_errors` (its API's error exceptions, answered by
    `_api_error_response`) and `_routing_error_response` (an unknown path or method, in the
    carrier's error format), and implements `messages`, `reset` and `send_inbound`.
    All state lives on the instance behind locks; the server may be threaded.
    """

    urls: Map
    send_inbound: Callable[..., dict[str, Any]]  # a phone texting us: (from_, to, body, *, repeat, ...)
    api_errors: tuple[type[ApiError], ...] = ()
    inbound_media = True  # /_inbound takes "media_urls" and "media"
    inbound_lost = False  # /_inbound takes "lost": keep the text, post no webhook (the carrier won't retry)
    control_empty_body = b"null"  # what an empty control-plane body reads as

    def __init__(
        self, faults: FaultBook, callback_delay: float, callback_retry_delay: float, http_timeout: float
    ) -> None:
        self.callback_delay = callback_delay
        self.callback_retry_delay = callback_retry_delay
        self.http_timeout = http_timeout
        self._lock = threading.Lock()
        self._faults = faults
        self._callbacks = CallbackPoster(self)

    # --- Python API -----------------------------------------------------------------------------

    @abstractmethod
    def messages(self, to: str | None = None) -> list[dict[str, Any]]:
        """Every text the carrier accepted (to one number, if given), oldest first."""

    @abstractmethod
    def reset(self) -> None:
        """Forget every message and fault, and release held responses."""

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
        return self._faults.add(kind, count, to, error_code, hold_seconds)

    def faults(self) -> list[dict[str, Any]]:
        return self._faults.active()

    def clear_faults(self) -> None:
        """Drop every fault and let any held response go."""
        self._faults.clear()

    def release_held(self) -> None:
        """End every hold now (the held requests then answer as they would have after the hold)."""
        self._faults.release_held()

    def close(self, timeout: float = 2.0) -> None:
        """Stop holding and stop callbacks, waiting briefly for their threads to finish."""
        self._faults.close()
        self._callbacks.close(timeout)

    # --- WSGI -----------------------------------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self._route(request)
        except self.api_errors as exc:
            response = self._api_error_response(exc)
        except BadControlRequest as exc:
            response = json_response({"reason": str(exc)}, 400)
        except HTTPException as exc:
            response = self._routing_error_response(request, exc)
        return response(environ, start_response)

    def _match(self, request: Request) -> tuple[str, Mapping[str, Any]]:
        endpoint, args = self.urls.bind_to_environ(request.environ).match()
        return str(endpoint), args

    def _route(self, request: Request) -> Response:
        endpoint, args = self._match(request)
        if endpoint == "faults":
            return self._faults_endpoint(request)
        if endpoint == "inbound":
            return self._inbound_endpoint(request)
        if endpoint == "media":
            return sim_media.response(str(args["name"]))
        if endpoint == "sim_messages":
            if request.method == "DELETE":
                self.reset()
                return Response(status=204)
            return json_response(self._listing())
        return self._dispatch(request, endpoint, args)

    @abstractmethod
    def _dispatch(self, request: Request, endpoint: str, args: Mapping[str, Any]) -> Response:
        """The carrier's own API."""

    def _api_error_response(self, exc: ApiError) -> Response:
        raise exc

    @abstractmethod
    def _routing_error_response(self, request: Request, exc: HTTPException) -> Response:
        """A 404/405 in the carrier's own error shape."""

    def _listing(self) -> dict[str, Any]:
        """What GET /_messages answers."""
        return {"messages": self.messages()}

    def _faults_endpoint(self, request: Request) -> Response:
        if request.method == "GET":
            return json_response({"faults": self.faults()})
        if request.method == "DELETE":
            self.clear_faults()
            return Response(status=204)
        data = read_json_object(request, empty=self.control_empty_body)
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
            raise BadControlRequest(str(exc)) from exc
        return json_response(fault, 201)

    def _inbound_endpoint(self, request: Request) -> Response:
        data = read_json_object(request, empty=self.control_empty_body)
        from_, to, body = data.get("from"), data.get("to"), data.get("body", "")
        media_urls = data.get("media_urls", []) if self.inbound_media else []
        if self.inbound_media and data.get("media") is True and not media_urls:
            media_urls = [sim_media.url(request)]
        if not isinstance(from_, str) or not isinstance(to, str) or not from_ or not to:
            raise BadControlRequest("'from' and 'to' are required strings")
        if not isinstance(body, str):
            raise BadControlRequest("'body' must be a string")
        if not isinstance(media_urls, list) or not all(isinstance(u, str) for u in media_urls):
            raise BadControlRequest("'media_urls' must be a list of strings")
        media: dict[str, Any] = {"media_urls": media_urls} if self.inbound_media else {}
        lost = data.get("lost", False)
        if not isinstance(lost, bool):
            raise BadControlRequest("'lost' must be true or false")
        if lost and not self.inbound_lost:
            raise BadControlRequest("this simulator can't lose a webhook: its carrier retries them")
        if lost:
            media["lost"] = True
        try:
            result = self.send_inbound(from_, to, body, repeat=data.get("repeat", 1), **media)
        except ValueError as exc:
            raise BadControlRequest(str(exc)) from exc
        return json_response(result)
