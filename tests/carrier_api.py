"""A local stand-in for a carrier's REST API, for the carrier plugins' send tests.

One threaded werkzeug server on 127.0.0.1 per test module (shutting one down costs a poll interval)
plays the carrier. Each test gets a fresh `FakeCarrierApi`, which records every request as a `Seen`
and answers with its `reply`. The other ways a send can end get helpers of their own: a reply held
back until the client's read times out (`FakeCarrierApi.slow`), a port that refuses connections
(`refused_url`) and a server that hangs up once it has the request (`hanging_up_after_the_request`).

A test module makes its fixtures with `carrier_api_fixtures`.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

JSON = "application/json"


@dataclass(frozen=True)
class Seen:
    """One request as the carrier saw it."""

    method: str
    path: str
    raw_uri: str  # the path and query exactly as sent, before any decoding
    query: list[tuple[str, str]]  # every pair, in order, repeats kept
    username: str | None  # HTTP Basic credentials, if any
    password: str | None
    content_type: str  # the whole header ("" if none)
    mimetype: str  # the content type without its parameters
    headers: dict[str, str]  # names lower-cased
    body: bytes
    form: list[tuple[str, str]]  # a form body's pairs, in order, repeats kept

    @property
    def json(self) -> Any:
        """The body read as JSON, whatever the content type said."""
        return json.loads(self.body)

    @property
    def args(self) -> dict[str, str]:
        """The query with each name's first value (as werkzeug's `request.args` reads it)."""
        first: dict[str, str] = {}
        for name, value in self.query:
            first.setdefault(name, value)
        return first


@dataclass
class FakeCarrierApi:
    """Plays a carrier's API for one test: records each request and answers with `reply`.

    `received` is set once a request has arrived; a held-back reply waits for `release`, which the
    fixture sets when the test ends.
    """

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    reply: Callable[[Request], Response] = lambda _request: Response(status=500)
    received: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def handle(self, environ: WSGIEnvironment, request: Request) -> Response:
        auth = request.authorization
        body = request.get_data()  # first: the form is then parsed from the cached body
        self.seen.append(
            Seen(
                method=request.method,
                path=request.path,
                raw_uri=str(environ.get("RAW_URI", "")),
                query=list(request.args.items(multi=True)),
                username=auth.username if auth else None,
                password=auth.password if auth else None,
                content_type=request.content_type or "",
                mimetype=request.mimetype,
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
                form=list(request.form.items(multi=True)),
            )
        )
        self.received.set()
        return self.reply(request)

    def answer(self, status: int, body: str | bytes, content_type: str = JSON) -> None:
        """Answer every request with this status and body, as given."""
        self.reply = lambda _request: Response(body, status=status, content_type=content_type)

    def json(self, status: int, payload: Any, content_type: str = JSON) -> None:
        """Answer every request with `payload` as JSON (a string is sent as it is, JSON or not)."""
        self.answer(status, _encoded(payload), content_type)

    def replies(self, *answers: tuple[int, Any]) -> None:
        """Answer successive requests in order (for paging), each payload as `json` sends it."""
        queue = list(answers)

        def next_answer(_request: Request) -> Response:
            status, payload = queue.pop(0)
            return Response(_encoded(payload), status=status, content_type=JSON)

        self.reply = next_answer

    def slow(self, status: int, payload: Any, content_type: str = JSON) -> None:
        """Answer like `json`, but only once `release` is set (10 s at most): a client with a
        shorter timeout gives up reading after the request has arrived."""
        self.json(status, payload, content_type)
        answer = self.reply

        def held(request: Request) -> Response:
            self.release.wait(timeout=10)
            return answer(request)

        self.reply = held


def _encoded(payload: Any) -> str:
    return payload if isinstance(payload, str) else json.dumps(payload)


@contextmanager
def serving(app: WSGIApplication) -> Iterator[str]:
    """Serve `app` from a thread on a free port of 127.0.0.1; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class CarrierApiServer:
    """The WSGI app one module's server runs: it hands each request to the current test's fake."""

    url: str = ""
    current: FakeCarrierApi | None = None

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        assert self.current is not None
        return self.current.handle(environ, Request(environ))(environ, start_response)


def carrier_api_fixtures(
    name: str, reply: Callable[[Request], Response] | None = None
) -> tuple[object, object]:
    """The two fixtures a carrier's test module needs, to be bound at its top level, e.g.

        carrier_api_server, fake_twilio = carrier_api_fixtures("fake_twilio")

    `carrier_api_server` runs one server for the module; the fixture called `name` gives each test a
    fresh `FakeCarrierApi` on it, answering with `reply` (default: HTTP 500) until the test sets another.
    """

    @pytest.fixture(scope="module", name="carrier_api_server")
    def server() -> Iterator[CarrierApiServer]:
        app = CarrierApiServer()
        with serving(app) as url:
            app.url = url
            yield app

    @pytest.fixture(name=name)
    def stand_in(carrier_api_server: CarrierApiServer) -> Iterator[FakeCarrierApi]:
        fake = FakeCarrierApi(url=carrier_api_server.url)
        if reply is not None:
            fake.reply = reply
        carrier_api_server.current = fake
        try:
            yield fake
        finally:
            fake.release.set()  # unblock a deliberately slow handler
            carrier_api_server.current = None

    return server, stand_in


@contextmanager
def refused_url() -> Iterator[str]:
    """The URL of a port that is bound but not listening: connects are refused, and nobody else gets it."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{closed.getsockname()[1]}"


@dataclass(frozen=True)
class HangUp:
    url: str
    got_request: threading.Event  # set once the whole request (head and body) was read


@contextmanager
def hanging_up_after_the_request() -> Iterator[HangUp]:
    """A server that reads one whole request, then closes the connection without answering."""
    got_request = threading.Event()
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def read_request_then_hang_up() -> None:
            conn, _ = listener.accept()
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                match = re.search(rb"content-length:\s*(\d+)", head, re.IGNORECASE)
                length = int(match.group(1)) if match else 0
                while len(body) < length:
                    body += conn.recv(65536)
                got_request.set()

        thread = threading.Thread(target=read_request_then_hang_up, daemon=True)
        thread.start()
        try:
            yield HangUp(f"http://127.0.0.1:{listener.getsockname()[1]}", got_request)
        finally:
            thread.join(timeout=5)
