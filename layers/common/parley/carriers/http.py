"""HTTP plumbing shared by the carrier plugins that call a REST API with `requests`.

Imported only from inside `send`, lookups and `fetch_media`, so the webhook path never loads
`requests` (this module itself loads urllib3).
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urljoin, urlsplit

import urllib3.connection
import urllib3.exceptions
import urllib3.util.connection
import urllib3.util.ssl_match_hostname

from parley.carriers.base import FailureKind, FetchedMedia, MediaRejected, SendFailed

if TYPE_CHECKING:
    import requests

CONNECT_TIMEOUT_SECONDS = 3.05  # just over a TCP retransmit window, as requests advises

MEDIA_MAX_BYTES: Final = 5 * 1024 * 1024  # Twilio's limit for all of a message's media together
MAX_MEDIA_REDIRECTS: Final = 5
ANY_HOST: Final = "*"  # in `allowed_hosts`: any public https host, and then never with credentials
_DEFAULT_PORTS: Final = {"https": 443, "http": 80}
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_GONE: Final = frozenset({404, 410})
_TRY_LATER: Final = frozenset({408, 425, 429})
_CHUNK_BYTES: Final = 64 * 1024


def new_session() -> requests.Session:
    import requests

    return requests.Session()


def network_failure(exc: requests.RequestException, *, idempotent: bool = False) -> SendFailed:
    """Connection never made → retry; after the request may have left → reconcile first.

    With `idempotent` (the carrier honours the idempotency key we sent) a resend can't duplicate,
    so every network failure is simply transient.
    """
    import requests

    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
        return SendFailed(FailureKind.PERMANENT, "the carrier API address is misconfigured")
    if isinstance(exc, requests.ConnectTimeout) or never_connected(exc):
        return SendFailed(FailureKind.TRANSIENT, "could not reach the carrier; it will be retried")
    if idempotent:
        return SendFailed(FailureKind.TRANSIENT, "the carrier did not answer; it will be retried safely")
    if isinstance(exc, requests.ReadTimeout):
        return SendFailed(
            FailureKind.AMBIGUOUS, "the carrier did not answer in time; checking before any retry"
        )
    return SendFailed(
        FailureKind.AMBIGUOUS, "the connection to the carrier broke after sending; checking before any retry"
    )


def never_connected(exc: BaseException) -> bool:
    """True when no request can have gone out: urllib3 says the TCP connection was never established
    (refused, DNS, connect timeout), or the TLS handshake failed (nothing is sent before it ends)."""
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen or not isinstance(current, BaseException):
            continue
        seen.add(id(current))
        if isinstance(current, urllib3.exceptions.ConnectTimeoutError | urllib3.exceptions.ClosedPoolError):
            return True  # NewConnectionError and NameResolutionError are ConnectTimeoutError subclasses
        if _failed_handshake(current):
            return True
        if isinstance(current, urllib3.exceptions.ProtocolError):
            return False  # the connection existed and broke: the request may have gone out
        pending.extend(current.args)
        pending.extend((getattr(current, "reason", None), current.__cause__, current.__context__))
    return False


def _failed_handshake(exc: BaseException) -> bool:
    """A certificate refused (verification, or urllib3's own hostname check), or an SSL error raised
    inside the handshake itself; an SSL error while reading or writing later is not one."""
    if isinstance(exc, ssl.SSLCertVerificationError | urllib3.util.ssl_match_hostname.CertificateError):
        return True
    if not isinstance(exc, ssl.SSLError):
        return False
    frame = exc.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    return frame is not None and frame.tb_frame.f_code.co_name == "do_handshake"


def json_object(response: requests.Response) -> dict[str, Any]:
    """The response's JSON object, or {} when the body is not one (error pages, empty bodies, and
    JSON nested too deep to parse)."""
    try:
        data = response.json()
    except (ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


# -- media downloads ----------------------------------------------------------------------------------


class MediaUnavailable(RuntimeError):
    """The media server failed in a way that may pass (5xx, 408, 429, too slow): try again later."""


def download(
    url: str,
    *,
    allowed_hosts: Collection[str],
    auth: tuple[str, str] | None,
    timeout: float,
    max_bytes: int = MEDIA_MAX_BYTES,
    extra_hosts: Collection[str] = (),
) -> FetchedMedia:
    """Download one inbound MMS attachment, sending `auth` only to the carrier's own hosts.

    `allowed_hosts` are the carrier's hosts, the only ones `auth` is ever sent to: an entry matches
    that host and its subdomains on the scheme's default port ("twilio.com" and ".twilio.com" both
    match api.twilio.com, neither matches twilio.com.evil.example or eviltwilio.com), a "host:port"
    entry that host and port only. The URL must be on one of them, or, with the entry `ANY_HOST`
    (refused together with credentials), on any public host. It must be https: plain http (and an
    IP literal or localhost) is accepted only on a host of `extra_hosts` (host or host:port
    entries), which exists for the local stack's simulators and must never be set in a deployment;
    a carrier lists its simulator in both.

    Redirects are followed here, at most five, each checked like the first URL except that it may
    lead off the allowed hosts (Twilio serves its media from a CDN), and then goes without
    credentials. Every connection, but those to `extra_hosts`, resolves its host once and goes to
    one of the addresses found, only when all of them are public. The body is streamed and capped
    at `max_bytes`; the whole download has twice `timeout` to finish.

    Raises MediaRejected when retrying can't help (a refused URL, 404/410 and other 4xx, too large,
    too many redirects) and MediaUnavailable or a `requests` exception when it may (5xx, 408, 429,
    timeouts, broken connections). Messages name the host, never the URL: a presigned URL is a
    credential.
    """
    if auth is not None and ANY_HOST in allowed_hosts:
        raise ValueError("credentials can't be sent to any host: list the carrier's hosts")
    deadline = time.monotonic() + 2 * timeout
    current = url
    with _media_session(checked=False) as simulators, _media_session(checked=True) as public:
        for hop in range(MAX_MEDIA_REDIRECTS + 1):
            host, trusted = _media_target(current, allowed_hosts, extra_hosts, redirected=hop > 0)
            if time.monotonic() > deadline:
                raise MediaUnavailable(f"the download from {host} took too long; try again later")
            session = simulators if _is_local_simulator(current, extra_hosts) else public
            response = session.get(
                current,
                auth=auth if trusted else None,
                allow_redirects=False,
                stream=True,
                timeout=(CONNECT_TIMEOUT_SECONDS, timeout),
            )
            with response:
                status = response.status_code
                if status in _REDIRECTS:
                    location = response.headers.get("Location", "").strip()
                    if not location:
                        raise MediaRejected(f"{host} redirected without a Location (HTTP {status})")
                    current = urljoin(current, location)
                    continue
                if 200 <= status < 300:
                    return _read_media(response, host, max_bytes, deadline)
                if status in _GONE:
                    raise MediaRejected(f"{host} no longer has this file (HTTP {status})")
                if status >= 500 or status in _TRY_LATER:
                    raise MediaUnavailable(f"{host} answered HTTP {status}; try again later")
                raise MediaRejected(f"{host} refused the download (HTTP {status})")
    raise MediaRejected(f"more than {MAX_MEDIA_REDIRECTS} redirects")


def _media_target(
    url: str, allowed: Collection[str], extra: Collection[str], *, redirected: bool
) -> tuple[str, bool]:
    """The URL's host, and whether credentials may go to it; MediaRejected if it may not be fetched."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise MediaRejected("the media URL is malformed") from exc
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if scheme not in _DEFAULT_PORTS or not host or not host.isascii():
        raise MediaRejected("the media URL is not an https URL with a host name")
    if "@" in parts.netloc:
        raise MediaRejected(f"the media URL for {host} carries user info")
    label = host if port is None else f"{host}:{port}"
    local_simulator = _host_listed(host, port, scheme, extra, any_port=True)
    if scheme != "https" and not local_simulator:
        raise MediaRejected(f"media must be fetched over https ({label})")
    if _host_listed(host, port, scheme, allowed, any_port=False):
        return label, True
    if _is_local_name(host) and not local_simulator:
        raise MediaRejected(f"{label} is not a public host name")
    if redirected or ANY_HOST in allowed:
        return label, False
    raise MediaRejected(f"{label} is not one of the carrier's media hosts")


def _host_listed(
    host: str, port: int | None, scheme: str, entries: Collection[str], *, any_port: bool
) -> bool:
    """Whether an entry names this host: "host:port" exactly, else the host or a subdomain of it, on
    the scheme's default port unless `any_port` (extra hosts, as in parley.carriers.sns)."""
    effective_port = port if port is not None else _DEFAULT_PORTS[scheme]
    for raw in entries:
        entry = raw.strip().lower()
        if not entry or entry == ANY_HOST:
            continue
        name, sep, entry_port = entry.rpartition(":")
        if sep and entry_port.isdigit() and not name.endswith(":"):  # "host:port" (not a bare IPv6)
            if host == name.strip("[]").rstrip(".") and effective_port == int(entry_port):
                return True
            continue
        if not any_port and effective_port != _DEFAULT_PORTS[scheme]:
            continue
        name = entry.strip("[]").strip(".")
        if name and (host == name or host.endswith("." + name)):
            return True
    return False


def _is_local_name(host: str) -> bool:
    """An IP literal or localhost: only reachable when explicitly listed (no SSRF through a redirect).

    IPv4 literals count in every form the resolver takes: 2130706433, 127.1 and 0x7f000001 all
    name 127.0.0.1.
    """
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return True
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


def _is_local_simulator(url: str, extra: Collection[str]) -> bool:
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    return _host_listed(host, parts.port, parts.scheme.lower(), extra, any_port=True)


def _media_session(*, checked: bool) -> requests.Session:
    """A session that ignores the environment (a proxy would resolve names itself, ~/.netrc would add
    credentials; with no proxy, the public CA bundle is the one that fits) and, when `checked`,
    connects only to public addresses (see `_CheckedConnection`)."""
    import requests

    session = requests.Session()
    session.trust_env = False
    if checked:
        adapter = requests.adapters.HTTPAdapter()
        adapter.poolmanager.pool_classes_by_scheme = {"http": _CheckedPool, "https": _CheckedTLSPool}
        session.mount("http://", adapter)
        session.mount("https://", adapter)
    return session


class _CheckedConnection(urllib3.connection.HTTPConnection):
    """Resolves the host once, refuses it unless every address is public, and connects to one of those
    very addresses: a name that changes its answer after the check (DNS rebinding) can't lead inside.
    TLS is unchanged: SNI and the certificate check use the host name, as does the Host header."""

    def _new_conn(self) -> socket.socket:
        error: OSError | None = None
        for address in _public_addresses(self.host.strip("[]"), self.port):
            try:
                return urllib3.util.connection.create_connection(
                    (address, self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except OSError as exc:
                error = exc
        if isinstance(error, TimeoutError):
            raise urllib3.exceptions.ConnectTimeoutError(
                self, f"connecting to {self.host} timed out"
            ) from error
        raise urllib3.exceptions.NewConnectionError(
            self, f"could not connect to {self.host}: {error}"
        ) from error


class _CheckedTLSConnection(_CheckedConnection, urllib3.connection.HTTPSConnection):
    pass


class _CheckedPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _CheckedConnection


class _CheckedTLSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _CheckedTLSConnection


_resolve = socket.getaddrinfo  # replaced in tests


def _public_addresses(host: str, port: int) -> list[str]:
    """The host's addresses, once every one is known to be public (no loopback, private, link-local,
    shared, reserved, multicast, site-local or unspecified address, nor one inside IPv4-mapped, 6to4
    or Teredo IPv6), so a public name that resolves inside our network can't be fetched. Raises
    MediaRejected, or MediaUnavailable if the name does not resolve (DNS may recover)."""
    try:
        family = urllib3.util.connection.allowed_gai_family()
        infos = _resolve(host, port, family=family, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise MediaUnavailable(f"{host} does not resolve; try again later") from exc
    addresses: dict[str, None] = {}
    for info in infos:
        text = str(info[4][0]).split("%", 1)[0]
        address = ipaddress.ip_address(text)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if not _is_public(address):
            raise MediaRejected(f"{host} resolves to an internal address")
        addresses[text] = None
    if not addresses:
        raise MediaUnavailable(f"{host} does not resolve; try again later")
    return list(addresses)


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        if address.is_site_local:  # fec0::/10: deprecated, yet still routed inside some networks
            return False
        # 6to4 and Teredo carry an IPv4 address that a relay would reach: it must be public too
        embedded = (address.sixtofour, *(address.teredo or ()))
        if not all(_is_public(inner) for inner in embedded if inner is not None):
            return False
    return address.is_global and not (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
    )


def _read_media(response: requests.Response, host: str, max_bytes: int, deadline: float) -> FetchedMedia:
    declared = response.headers.get("Content-Length", "").strip()
    if declared.isdigit() and int(declared) > max_bytes:
        raise MediaRejected(f"the file on {host} is larger than {max_bytes} bytes")
    chunks: list[bytes] = []
    total = 0
    while True:
        # read1 returns what has arrived (at most one socket read), so a server trickling a byte at a
        # time meets the deadline; iter_content would wait for a whole chunk between checks.
        try:
            chunk = response.raw.read1(_CHUNK_BYTES, decode_content=True)
        except urllib3.exceptions.HTTPError as exc:  # timed out, broken off or undecodable: may recover
            raise MediaUnavailable(f"{host} broke off the download; try again later") from exc
        if not chunk:
            break
        if time.monotonic() > deadline:
            raise MediaUnavailable(f"{host} is sending the file too slowly; try again later")
        total += len(chunk)
        if total > max_bytes:
            raise MediaRejected(f"the file on {host} is larger than {max_bytes} bytes")
        chunks.append(chunk)
    content_type = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    return FetchedMedia(content=b"".join(chunks), content_type=content_type or None)
