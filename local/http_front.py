"""The local API Gateway (HTTP API, payload format 2.0) plus the simulators and the /_local control endpoints.

Routes come from the transformed template's OpenAPI Body (the same document API Gateway imports), so a route,
a path parameter or an authorizer added in template.yaml appears here without touching this file. Requests
become the v2 event a Lambda would see (lower-cased headers, cookies split out, form bodies base64-encoded)
and results are mapped back with API Gateway's rules, including its bare `{"message": ...}` error bodies.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, quote

from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from local.auth import DEFAULT_TTL_SECONDS, DevTokenError, issue_dev_token, verify_dev_token
from local.faults import BadFault
from local.lambdas import FunctionError, LocalFunction, MarshalError, to_json
from local.plan import RouteSpec
from local.schedules import ScheduleError, UnknownScheduleError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway HTTP API payload limit
_DRAIN_LIMIT = 64 * 1024 * 1024


class ControlPlane(Protocol):
    """What the /_local endpoints need from the running stack."""

    @property
    def ready(self) -> bool: ...

    def health(self) -> dict[str, Any]: ...

    def fire(self, name: str, overrides: dict[str, Any] | None = None) -> Any: ...

    def queue_depths(self) -> dict[str, dict[str, int]]: ...

    def queue_ages(self) -> dict[str, int | None]: ...

    def resources(self) -> dict[str, Any]: ...

    def schedule_names(self) -> dict[str, list[str]]: ...

    def clock(self) -> dict[str, Any]: ...

    def set_clock(self, now: datetime) -> dict[str, Any]: ...

    def advance_clock(self, seconds: float) -> dict[str, Any]: ...

    def reset_clock(self) -> dict[str, Any]: ...

    def add_fault(self, spec: dict[str, Any]) -> dict[str, Any]: ...

    def active_faults(self) -> list[dict[str, Any]]: ...

    def clear_faults(self) -> list[dict[str, Any]]: ...


# ----------------------------------------------------------------------------------------------------
# Routing


@dataclass(frozen=True)
class CompiledRoute:
    spec: RouteSpec
    regex: re.Pattern[str] | None  # None: the $default route
    params: tuple[str, ...]
    sort_key: tuple[int, int, int, int]


def compile_route(spec: RouteSpec) -> CompiledRoute:
    if spec.path == "$default":
        return CompiledRoute(spec, None, (), (1, 0, 0, 0))
    pattern, params, literals, greedy = "", [], 0, 0
    for segment in spec.path.strip("/").split("/"):
        if m := re.fullmatch(r"\{(.+)\+\}", segment):
            pattern += "/(.+)"
            params.append(m.group(1))
            greedy += 1
        elif m := re.fullmatch(r"\{(.+)\}", segment):
            pattern += "/([^/]+)"
            params.append(m.group(1))
        else:
            pattern += "/" + re.escape(segment)
            literals += 1
    if spec.path == "/":
        pattern = "/"
    # API Gateway picks the most specific route: literal segments beat parameters, greedy paths come last.
    return CompiledRoute(
        spec, re.compile(pattern), tuple(params), (0, greedy, -literals, int(spec.method == "ANY"))
    )


def match_route(
    routes: list[CompiledRoute], method: str, path: str
) -> tuple[CompiledRoute, dict[str, str]] | None:
    for route in routes:
        if route.spec.method not in ("ANY", method):
            continue
        if route.regex is None:
            return route, {}
        m = route.regex.fullmatch(path)
        if m:
            return route, dict(zip(route.params, m.groups(), strict=True))
    return None


# ----------------------------------------------------------------------------------------------------
# Events


def _is_text(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.startswith("text/")


def request_headers(environ: WSGIEnvironment) -> dict[str, str]:
    """Lower-cased header names; werkzeug has already joined repeated headers with ','."""
    headers: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[key[5:].lower().replace("_", "-")] = str(value)
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            headers[key.lower().replace("_", "-")] = str(value)
    return headers


def claims_as_api_gateway(claims: dict[str, Any]) -> dict[str, str]:
    """API Gateway hands JWT claims to the function as strings (numbers too, lists as "[a b]")."""
    out: dict[str, str] = {}
    for key, value in claims.items():
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, list):
            out[key] = "[" + " ".join(str(v) for v in value) + "]"
        elif isinstance(value, dict):
            out[key] = json.dumps(value)
        else:
            out[key] = str(value)
    return out


def build_event(
    *,
    environ: WSGIEnvironment,
    body: bytes,
    route: RouteSpec,
    path_params: dict[str, str],
    api_id: str,
    account_id: str,
    default_domain: str,
    claims: dict[str, Any] | None,
    scopes: list[str] | None,
    request_id: str,
) -> dict[str, Any]:
    """The API Gateway HTTP API payload v2.0 event for one request."""
    headers = request_headers(environ)
    cookies = [c.strip() for c in headers.pop("cookie", "").split(";") if c.strip()]
    source_ip = str(environ.get("REMOTE_ADDR", "127.0.0.1"))
    headers.setdefault("x-forwarded-for", source_ip)
    headers.setdefault("x-forwarded-proto", str(environ.get("wsgi.url_scheme", "http")))
    headers.setdefault("x-forwarded-port", str(environ.get("SERVER_PORT", "")))
    raw_uri = str(environ.get("RAW_URI") or "")
    raw_path = (
        raw_uri.split("?", 1)[0] if raw_uri.startswith("/") else quote(str(environ.get("PATH_INFO", "/")))
    )
    raw_query = str(environ.get("QUERY_STRING", ""))
    method = str(environ.get("REQUEST_METHOD", "GET")).upper()
    domain = headers.get("host", default_domain)
    now = datetime.now(UTC)

    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": account_id,
            "apiId": api_id,
            "domainName": domain,
            "domainPrefix": domain.split(".", 1)[0],
            "http": {
                "method": method,
                "path": str(environ.get("PATH_INFO", "/")),
                "protocol": str(environ.get("SERVER_PROTOCOL", "HTTP/1.1")),
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route.route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if raw_query:
        query: dict[str, str] = {}
        for key, value in parse_qsl(raw_query, keep_blank_values=True):
            query[key] = f"{query[key]},{value}" if key in query else value
        event["queryStringParameters"] = query
    if path_params:
        event["pathParameters"] = path_params
    if claims is not None:
        event["requestContext"]["authorizer"] = {
            "jwt": {"claims": claims_as_api_gateway(claims), "scopes": scopes}
        }
    if body:
        text: str | None = None
        if _is_text(headers.get("content-type", "")):
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                text = None
        if text is None:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
        else:
            event["body"] = text
    return event


class BadLambdaResponse(Exception):
    """The function returned a v2 response API Gateway would reject (it answers 500)."""


def to_http_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Map a handler's return value with API Gateway's payload 2.0 rules."""
    if isinstance(result, dict) and "statusCode" in result:
        try:
            status = int(result["statusCode"])
        except (TypeError, ValueError) as exc:
            raise BadLambdaResponse(f"statusCode {result['statusCode']!r} is not an integer") from exc
        headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
        for key, values in (result.get("multiValueHeaders") or {}).items():
            headers.extend((str(key), str(v)) for v in values)
        headers.extend(("Set-Cookie", str(c)) for c in result.get("cookies") or [])
        body = result.get("body")
        if body is None:
            payload = b""
        elif not isinstance(body, str):
            raise BadLambdaResponse(f"body must be a string, got {type(body).__name__}")
        elif result.get("isBase64Encoded"):
            payload = base64.b64decode(body)
        else:
            payload = body.encode("utf-8")
        return status, headers, payload
    return 200, [("Content-Type", "application/json")], to_json(result).encode("utf-8")


def _json_response(status: int, payload: Any, request_id: str | None = None) -> Response:
    response = Response(json.dumps(payload, default=str), status=status, content_type="application/json")
    if request_id:
        response.headers["apigw-requestid"] = request_id
    return response


def _json_object(request: Request) -> dict[str, Any] | Response:
    """A control call's JSON object body, or the 400 that says why it isn't one."""
    try:
        body = json.loads(request.get_data() or b"null")
    except json.JSONDecodeError as exc:
        return _json_response(400, {"message": f"body is not JSON: {exc}"})
    if not isinstance(body, dict):
        return _json_response(400, {"message": "body must be a JSON object"})
    return body


# ----------------------------------------------------------------------------------------------------
# The WSGI application and its server


class Front:
    """Binds its port immediately (so the base URL is known before handlers load), serves 503 until ready."""

    def __init__(self, control: ControlPlane, *, host: str = "127.0.0.1", port: int = 3000) -> None:
        self.control = control
        self.host = host
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        self.port: int = sock.getsockname()[1]
        # werkzeug exits the process when it can't bind, so bind ourselves and hand it the socket.
        self._server: BaseWSGIServer = make_server(host, self.port, self, threaded=True, fd=sock.fileno())
        sock.close()
        self._thread: threading.Thread | None = None
        self._routes: list[CompiledRoute] = []
        self._functions: dict[str, LocalFunction] = {}
        self._api_ids: dict[str, str] = {}
        self._account_id = "123456789012"
        self._jwt_secret = ""
        self._mounted: WSGIApplication = self._api
        self.mounts: dict[str, WSGIApplication] = {}

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def configure(
        self,
        *,
        routes: Iterable[RouteSpec],
        functions: dict[str, LocalFunction],
        api_ids: dict[str, str],
        account_id: str,
        jwt_secret: str,
    ) -> None:
        self._routes = sorted((compile_route(r) for r in routes), key=lambda r: r.sort_key)
        self._functions = functions
        self._api_ids = api_ids
        self._account_id = account_id
        self._jwt_secret = jwt_secret
        for route in self._routes:
            auth = "JWT" if route.spec.authorizer else "open"
            log.debug("route %s -> %s (%s)", route.spec.route_key, route.spec.function_id, auth)

    def mount(self, prefix: str, app: WSGIApplication) -> None:
        self.mounts[prefix] = app
        self._mounted = DispatcherMiddleware(self._api, dict(self.mounts))

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="front", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    # -- WSGI

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", "/"))
        if path.startswith("/_local/"):
            return self._control(Request(environ))(environ, start_response)
        if not self.control.ready:
            return _json_response(503, {"message": "Service Unavailable"})(environ, start_response)
        return self._mounted(environ, start_response)

    def _control(self, request: Request) -> Response:
        path, method = request.path, request.method
        if path == "/_local/health" and method == "GET":
            if not self.control.ready:
                return _json_response(503, {"status": "starting"})
            return _json_response(200, {"status": "ok", **self.control.health()})
        if not self.control.ready:
            return _json_response(503, {"message": "the local stack is still starting"})
        if path == "/_local/queues" and method == "GET":
            return _json_response(200, self.control.queue_depths())
        if path == "/_local/queues/ages" and method == "GET":  # `parley status`: URL -> seconds or null
            return _json_response(200, self.control.queue_ages())
        if path == "/_local/resources" and method == "GET":
            return _json_response(200, self.control.resources())
        if path == "/_local/schedules" and method == "GET":
            return _json_response(200, self.control.schedule_names())
        if path == "/_local/clock":
            return self._clock(request)
        if path == "/_local/faults":
            return self._faults(request)
        if path == "/_local/token":
            return self._token(request)
        if m := re.fullmatch(r"/_local/schedules/([^/]+)/fire", path):
            if method != "POST":
                return _json_response(405, {"message": "use POST"})
            return self._fire(m.group(1), request)
        return _json_response(404, {"message": "Not Found"})

    def _clock(self, request: Request) -> Response:
        """GET: Parley's now. POST {"now": ISO 8601 with a zone} or {"advance_seconds": N} moves it (tests
        control time); DELETE: back to real time."""
        if request.method == "GET":
            return _json_response(200, self.control.clock())
        if request.method == "DELETE":
            return _json_response(200, self.control.reset_clock())
        if request.method != "POST":
            return _json_response(405, {"message": "use GET, POST or DELETE"})
        try:
            body = json.loads(request.get_data() or b"null")
        except json.JSONDecodeError as exc:
            return _json_response(400, {"message": f"body is not JSON: {exc}"})
        if not isinstance(body, dict) or set(body) not in ({"now"}, {"advance_seconds"}):
            return _json_response(
                400, {"message": 'give exactly one of {"now": ...} or {"advance_seconds": N}'}
            )
        if "now" in body:
            try:
                now = datetime.fromisoformat(str(body["now"]).replace("Z", "+00:00"))
                return _json_response(200, self.control.set_clock(now))
            except ValueError as exc:
                return _json_response(400, {"message": f"now: {exc}"})
        seconds = body["advance_seconds"]
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds):
            return _json_response(400, {"message": "advance_seconds must be a number of seconds"})
        return _json_response(200, self.control.advance_clock(float(seconds)))

    def _faults(self, request: Request) -> Response:
        """AWS-side faults (local/faults.py). GET: the active ones; POST {"service", "operation", "table",
        "error", "skip", "count", ...}: add one (201); DELETE: clear all (returns what each fired)."""
        if request.method == "GET":
            return _json_response(200, {"faults": self.control.active_faults()})
        if request.method == "DELETE":
            return _json_response(200, {"cleared": self.control.clear_faults()})
        if request.method != "POST":
            return _json_response(405, {"message": "use GET, POST or DELETE"})
        body = _json_object(request)
        if isinstance(body, Response):
            return body
        try:
            return _json_response(201, self.control.add_fault(body))
        except BadFault as exc:
            return _json_response(400, {"message": str(exc)})

    def _token(self, request: Request) -> Response:
        """POST {"user", "teams": "a,b" or [...], "admin": bool}: a dev JWT, as `parley token` prints (the
        web inbox's local sign-in form). Local only: nothing like it is deployed."""
        if request.method != "POST":
            return _json_response(405, {"message": "use POST"})
        body = _json_object(request)
        if isinstance(body, Response):
            return body
        user, teams, admin = body.get("user"), body.get("teams"), body.get("admin", False)
        if isinstance(teams, str):
            teams = teams.split(",")
        if not isinstance(user, str) or not user.strip():
            return _json_response(400, {"message": "user: a non-empty string"})
        if not isinstance(teams, list) or not all(isinstance(t, str) for t in teams):
            return _json_response(400, {"message": 'teams: "a,b" or a list of names'})
        if not isinstance(admin, bool):
            return _json_response(400, {"message": "admin: true or false"})
        try:
            token = issue_dev_token(
                user.strip(), teams=teams, roles=["admin"] if admin else None, secret=self._jwt_secret
            )
        except DevTokenError as exc:
            return _json_response(400, {"message": str(exc)})
        return _json_response(200, {"token": token, "expires_in": DEFAULT_TTL_SECONDS})

    def _fire(self, name: str, request: Request) -> Response:
        raw = request.get_data()
        overrides: Any = None
        if raw.strip():
            try:
                overrides = json.loads(raw)
            except json.JSONDecodeError as exc:
                return _json_response(400, {"message": f"body is not JSON: {exc}"})
            if not isinstance(overrides, dict):
                return _json_response(400, {"message": "body must be a JSON object (merged into the input)"})
        try:
            result = self.control.fire(name, overrides)
        except UnknownScheduleError as exc:
            return _json_response(404, {"message": str(exc)})
        except ScheduleError as exc:
            return _json_response(400, {"message": str(exc)})
        except FunctionError as exc:
            return _json_response(
                500, {"message": str(exc), "errorType": exc.error_type, "errorMessage": exc.error_message}
            )
        try:
            payload = to_json(result)
        except MarshalError as exc:
            return _json_response(500, {"message": f"Runtime.MarshalError: {exc}"})
        return Response(payload, status=200, content_type="application/json")

    def _api(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.monotonic()
        request_id = base64.b64encode(secrets.token_bytes(12)).decode().rstrip("=")
        response, target = self._route(environ, request_id)
        response.headers["apigw-requestid"] = request_id
        log.info(
            "%s %s -> %s %d (%.0f ms)",
            environ.get("REQUEST_METHOD"),
            environ.get("PATH_INFO"),
            target,
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        return response(environ, start_response)

    def _read_body(self, environ: WSGIEnvironment) -> bytes | None:
        """The request body, or None when it exceeds API Gateway's 10 MB limit."""
        stream = environ["wsgi.input"]
        try:
            length = int(environ.get("CONTENT_LENGTH") or -1)
        except ValueError:
            length = -1
        if length > MAX_BODY_BYTES:
            if length <= _DRAIN_LIMIT:  # read it anyway so the client sees our 413, not a reset
                remaining = length
                while remaining > 0:
                    chunk = stream.read(min(remaining, 1 << 20))
                    if not chunk:
                        break
                    remaining -= len(chunk)
            return None
        if length >= 0:
            data: bytes = stream.read(length) if length else b""
            return data
        if environ.get("wsgi.input_terminated"):
            data = stream.read(MAX_BODY_BYTES + 1)
            return None if len(data) > MAX_BODY_BYTES else data
        return b""

    def _route(self, environ: WSGIEnvironment, request_id: str) -> tuple[Response, str]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        path = str(environ.get("PATH_INFO", "/"))
        found = match_route(self._routes, method, path)
        if found is None:
            return _json_response(404, {"message": "Not Found"}), "no route"
        route, params = found
        spec = route.spec
        body = self._read_body(environ)
        if body is None:
            return _json_response(413, {"message": "Request Entity Too Large"}), spec.function_id

        claims: dict[str, Any] | None = None
        scopes: list[str] | None = None
        if spec.authorizer is not None:
            if spec.authorizer.type != "jwt":
                message = (
                    f"authorizer {spec.authorizer.name} ({spec.authorizer.type}) is not emulated locally"
                )
                return _json_response(501, {"message": message}), spec.function_id
            raw = str(environ.get("HTTP_" + spec.authorizer.header.upper().replace("-", "_"), "")).strip()
            token = raw[7:].strip() if raw[:7].lower() == "bearer " else raw
            try:
                claims = verify_dev_token(token, secret=self._jwt_secret)
            except DevTokenError as exc:
                log.info("401 for %s %s: %s", method, path, exc)
                return _json_response(401, {"message": "Unauthorized"}), spec.function_id
            if spec.scopes:
                granted = str(claims.get("scope", "")).split()
                scopes = [s for s in spec.scopes if s in granted]
                if not scopes:
                    log.info(
                        "403 for %s %s: token lacks one of the scopes %s", method, path, list(spec.scopes)
                    )
                    return _json_response(403, {"message": "Forbidden"}), spec.function_id

        event = build_event(
            environ=environ,
            body=body,
            route=spec,
            path_params=params,
            api_id=self._api_ids.get(spec.api_id, "local"),
            account_id=self._account_id,
            default_domain=f"{self.host}:{self.port}",
            claims=claims,
            scopes=scopes,
            request_id=request_id,
        )
        function = self._functions.get(spec.function_id)
        if function is None:
            log.error("route %s targets %s, which did not load", spec.route_key, spec.function_id)
            return _json_response(500, {"message": "Internal Server Error"}), spec.function_id
        try:
            result = function.invoke(event, trigger=f"{method} {path}")
            status, headers, payload = to_http_response(result)
        except FunctionError:
            return _json_response(500, {"message": "Internal Server Error"}), spec.function_id
        except (BadLambdaResponse, MarshalError) as exc:
            log.error("%s returned a response API Gateway rejects: %s", spec.function_id, exc)
            return _json_response(500, {"message": "Internal Server Error"}), spec.function_id
        except Exception:
            log.exception("%s could not be invoked for %s %s", spec.function_id, method, path)
            return _json_response(500, {"message": "Internal Server Error"}), spec.function_id
        response = Response(payload, status=status)
        response.headers.clear()
        for key, value in headers:
            response.headers.add(key, value)
        return response, spec.function_id


def default_port() -> int:
    """The CLI's port: $PARLEY_PORT, else 3000."""
    try:
        return int(os.environ.get("PARLEY_PORT", "3000"))
    except ValueError:
        return 3000
