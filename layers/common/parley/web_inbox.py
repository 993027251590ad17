"""Serving the web inbox: its files (`GET /`, `GET /ui/{file+}`) and sign-in settings (`GET /ui/config.json`).

Served through the HTTP API, without its authorizer: the page, its script and style hold nothing secret,
and the page signs in before it calls /v1. The files are read once per container into a table keyed by
name, so a request can only ever name one of them (no path reaches the file system). Every answer
carries a Content-Security-Policy allowing our own origin only (plus the identity provider's token
endpoint, which the page posts to when it signs in with OIDC, and `blob:` images, the pictures the page
loads from the API with its token).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CONFIG_FILE = "config.json"
LOCAL_STAGE = "local"
DEV_TOKEN_PATH = "/_local/token"
CONFIG_TTL_SECONDS = 300  # how long a container keeps the sign-in settings it read from SSM
FAILURE_TTL_SECONDS = 30  # how long unusable settings are reported without reading them again
DISCOVERY_TIMEOUT_SECONDS = 3.0

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".webmanifest": "application/manifest+json",
}


@dataclass(frozen=True)
class StaticFile:
    body: str
    content_type: str
    etag: str
    gzipped: str  # base64 of the gzip of body: what a browser that accepts gzip gets (a quarter the size)


class SignInConfigError(Exception):
    """The sign-in settings are missing or unusable (the message says what to fix)."""


def load_files(folder: Path) -> dict[str, StaticFile]:
    """Every servable file in `folder` (no sub-folders, no hidden files, known types only), by name."""
    files: dict[str, StaticFile] = {}
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        content_type = CONTENT_TYPES.get(path.suffix)
        if not path.is_file() or path.name.startswith(".") or content_type is None:
            continue
        body = path.read_text(encoding="utf-8")
        raw = body.encode("utf-8")
        etag = '"' + hashlib.sha256(raw).hexdigest()[:32] + '"'
        packed = base64.b64encode(gzip.compress(raw, compresslevel=9, mtime=0)).decode("ascii")
        files[path.name] = StaticFile(body, content_type, etag, packed)
    return files


def content_security_policy(extra_connect: str = "") -> str:
    """Our origin only: no inline script or style, no frames, no plugins, forms post to us alone.
    Images may also be `blob:`: a customer's picture is fetched with the token (an <img> can't send it)
    and shown from an object URL made in the page."""
    connect = "'self'" + (f" {extra_connect}" if extra_connect else "")
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; font-src 'self'; "
        f"connect-src {connect}; manifest-src 'self'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme == "https" and parts.netloc else ""


Fetch = Callable[[str], dict[str, Any]]
Read = Callable[[str], "str | None"]


def fetch_json(url: str) -> dict[str, Any]:
    """GET a JSON document over https (the issuer's discovery document)."""
    if not url.startswith("https://"):
        raise SignInConfigError(f"{url}: only https is fetched")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=DISCOVERY_TIMEOUT_SECONDS) as response:  # noqa: S310
        data = json.loads(response.read(1_000_000))
    if not isinstance(data, dict):
        raise SignInConfigError(f"{url}: not a JSON object")
    return data


def oidc_config(raw: str | None, *, parameter: str, fetch: Fetch = fetch_json) -> dict[str, Any]:
    """The page's OIDC settings from the parameter's JSON; endpoints it leaves out come from the
    issuer's discovery document (`<issuer>/.well-known/openid-configuration`)."""
    if raw is None:
        raise SignInConfigError(f"sign-in parameter {parameter}: not found in SSM")
    try:
        values = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SignInConfigError(f"sign-in parameter {parameter}: not JSON ({exc})") from exc
    if not isinstance(values, dict):
        raise SignInConfigError(f"sign-in parameter {parameter}: not a JSON object")
    issuer, client_id = str(values.get("issuer") or ""), str(values.get("client_id") or "")
    if not issuer.startswith("https://") or not client_id:
        raise SignInConfigError(f"sign-in parameter {parameter}: needs an https issuer and a client_id")
    authorize = str(values.get("authorization_endpoint") or "")
    token = str(values.get("token_endpoint") or "")
    if not authorize or not token:
        try:
            found = fetch(issuer.rstrip("/") + "/.well-known/openid-configuration")
        except (OSError, ValueError, SignInConfigError) as exc:
            raise SignInConfigError(f"issuer {issuer}: discovery failed ({exc})") from exc
        authorize = authorize or str(found.get("authorization_endpoint") or "")
        token = token or str(found.get("token_endpoint") or "")
    if not _origin(authorize) or not _origin(token):
        raise SignInConfigError(f"issuer {issuer}: no https authorization and token endpoints")
    return {
        "mode": "oidc",
        "issuer": issuer,
        "client_id": client_id,
        "authorization_endpoint": authorize,
        "token_endpoint": token,
        "scope": str(values.get("scope") or "openid"),
        # the token the API's authorizer accepts: the access token, unless the provider puts the
        # client id (an audience JwtAudience lists) in the ID token only
        "use_token": "id_token" if values.get("use_token") == "id_token" else "access_token",
    }


def config_parameter(stage: str) -> str:
    """The one SSM parameter the template writes the sign-in settings to (derived, not configured)."""
    return f"/parley/{stage}/web/config"


class Site:
    """The files and the sign-in settings; one per container (the settings cached for a few minutes)."""

    def __init__(
        self,
        files: Mapping[str, StaticFile],
        *,
        stage: str,
        read: Read,
        fetch: Fetch = fetch_json,
        folder: Path | None = None,
    ):
        self.files = files
        self.folder = folder  # where the files came from: read again per request locally
        self.stage = stage
        self.reload = False
        self._read = read
        self._fetch = fetch
        self._config: tuple[float, dict[str, Any]] | None = None
        self._failed: tuple[float, SignInConfigError] | None = None

    def sign_in(self) -> dict[str, Any]:
        if self.stage == LOCAL_STAGE:
            return {"mode": "dev", "token_url": DEV_TOKEN_PATH}
        now = time.monotonic()
        if self._failed is not None and now - self._failed[0] < FAILURE_TTL_SECONDS:
            raise self._failed[1]  # each file of a page load must not wait on SSM and discovery again
        if self._config is None or now - self._config[0] > CONFIG_TTL_SECONDS:
            parameter = config_parameter(self.stage)
            try:
                config = oidc_config(self._read(parameter), parameter=parameter, fetch=self._fetch)
            except SignInConfigError as exc:
                self._failed = (now, exc)
                raise
            self._config, self._failed = (now, config), None
        return self._config[1]

    def respond(self, event: Mapping[str, Any]) -> dict[str, Any]:
        http = (event.get("requestContext") or {}).get("http") or {}
        method = str(http.get("method") or "GET").upper()
        if method not in ("GET", "HEAD"):
            return _answer(405, {"error": "use GET"}, extra={"Allow": "GET, HEAD"})
        name = _file_name(event)
        if name == CONFIG_FILE:
            try:
                config = self.sign_in()
            except SignInConfigError as exc:
                return _answer(503, {"error": str(exc)})
            connect = _origin(str(config.get("token_endpoint") or ""))
            return _answer(200, config, cache="no-cache", connect=connect)
        # locally the files are read again on each request, so an edit shows on the next reload
        reload = self.stage == LOCAL_STAGE and self.reload and self.folder is not None
        files = load_files(self.folder) if reload and self.folder is not None else self.files
        found = files.get(name) if name is not None else None
        if found is None:
            return _answer(404, {"error": "no such file"})
        headers = _headers(found.content_type, "no-cache", self._connect_origin())
        headers["Vary"] = "Accept-Encoding"
        packed = _accepts_gzip(event)
        # each representation has its own validator: the gzip one ends in -gz
        etag = found.etag[:-1] + '-gz"' if packed else found.etag
        headers["ETag"] = etag
        if _if_none_match(event, etag):
            return {"statusCode": 304, "headers": headers, "body": ""}
        if method == "HEAD":
            return {"statusCode": 200, "headers": headers, "body": ""}
        if packed:
            headers["Content-Encoding"] = "gzip"
            return {"statusCode": 200, "headers": headers, "body": found.gzipped, "isBase64Encoded": True}
        return {"statusCode": 200, "headers": headers, "body": found.body}

    def _connect_origin(self) -> str:
        """The token endpoint's origin, for the page's CSP: the page posts the sign-in code there. With
        settings that can't be read, our origin only (config.json then says what is wrong)."""
        try:
            return _origin(str(self.sign_in().get("token_endpoint") or ""))
        except SignInConfigError:
            return ""


def _file_name(event: Mapping[str, Any]) -> str | None:
    """ "/" is the page; "/ui/<name>" one file by its exact name (anything with a "/" is no file)."""
    path = str(event.get("rawPath") or "/")
    if path == "/":
        return "index.html"
    name = str((event.get("pathParameters") or {}).get("file") or "")
    if not name and path.startswith("/ui/"):
        name = path[len("/ui/") :]
    return name if name and "/" not in name and "\\" not in name else None


def _header(event: Mapping[str, Any], name: str) -> str:
    """A request header (API Gateway lower-cases names; tests may not)."""
    for key, value in (event.get("headers") or {}).items():
        if str(key).lower() == name:
            return str(value)
    return ""


def _accepts_gzip(event: Mapping[str, Any]) -> bool:
    for part in _header(event, "accept-encoding").lower().split(","):
        coding, _, params = part.partition(";")
        if coding.strip() == "gzip":
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def _if_none_match(event: Mapping[str, Any], etag: str) -> bool:
    """If-None-Match compares weakly (RFC 9110): a W/ prefix does not matter."""
    tags = [tag.strip().removeprefix("W/") for tag in _header(event, "if-none-match").split(",")]
    return etag in tags or "*" in tags


def _headers(content_type: str, cache: str, connect: str) -> dict[str, str]:
    return {
        "Content-Type": content_type,
        "Cache-Control": cache,
        "Content-Security-Policy": content_security_policy(connect),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }


def _answer(
    status: int, body: Any, *, cache: str = "no-store", connect: str = "", extra: Mapping[str, str] = {}
) -> dict[str, Any]:
    headers = _headers("application/json", cache, connect) | dict(extra)
    return {"statusCode": status, "headers": headers, "body": json.dumps(body)}
