"""A TLS handshake that fails means no request went out: the send is retried, not treated as one the
carrier may already have (which, for a carrier we can't ask, fails the text for a person to check).

Real sockets on 127.0.0.1: a server whose certificate isn't trusted, and one that doesn't speak TLS.
An SSL error after the handshake (while the request or answer is on the wire) stays ambiguous.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import urllib3.exceptions
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from parley.carriers import vonage_messages
from parley.carriers.base import FailureKind
from parley.carriers.http import network_failure, never_connected
from parley.carriers.vonage_sms import VonageSmsCarrier
from parley.domain.models import MessageStatus, OurNumber, SendRequest
from tests.fakes import World


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


class Server:
    """Accepts connections and hands each to `handle`; `received` holds any request bytes read."""

    def __init__(self, handle: Callable[[socket.socket, list[bytes]], None]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.received: list[bytes] = []
        self._handle = handle
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed
            with conn, contextlib.suppress(OSError):  # ssl.SSLError too: the client gave up on it
                self._handle(conn, self.received)

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        self.listener.close()
        self._thread.join(timeout=5)


@pytest.fixture
def untrusted(tmp_path: Path) -> Iterator[Server]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*self_signed(tmp_path))

    def handle(conn: socket.socket, received: list[bytes]) -> None:
        with context.wrap_socket(conn, server_side=True) as tls:
            received.append(tls.recv(1000))

    server = Server(handle)
    yield server
    server.close()


@pytest.fixture
def not_tls() -> Iterator[Server]:
    def handle(conn: socket.socket, received: list[bytes]) -> None:
        conn.recv(1000)  # the ClientHello, not a request
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    server = Server(handle)
    yield server
    server.close()


def post_error(port: int) -> requests.RequestException:
    with pytest.raises(requests.RequestException) as caught:
        requests.post(f"https://127.0.0.1:{port}/sms/json", data={"a": "b"}, timeout=5)
    return caught.value


@pytest.mark.parametrize("server", ["untrusted", "not_tls"])
def test_a_failed_handshake_never_connected_so_the_send_is_retried(
    server: str, request: pytest.FixtureRequest
) -> None:
    tls_server: Server = request.getfixturevalue(server)
    error = post_error(tls_server.port)
    assert isinstance(error, requests.exceptions.SSLError)
    assert never_connected(error)
    failed = network_failure(error)
    assert failed.kind is FailureKind.TRANSIENT
    assert failed.reason == "could not reach the carrier; it will be retried"
    assert vonage_messages._network_failure(error).kind is FailureKind.TRANSIENT
    assert tls_server.received in ([], [b""])  # no request bytes reached the server


def _recv_into() -> None:
    raise ssl.SSLError(1, "[SSL: DECRYPTION_FAILED_OR_BAD_RECORD_MAC] decryption failed or bad record mac")


def test_an_ssl_error_after_the_handshake_stays_ambiguous() -> None:
    """urllib3 reports an SSL error while the request or answer was on the wire as SSLError too."""
    try:
        _recv_into()
    except ssl.SSLError as exc:
        wrapped = urllib3.exceptions.SSLError(exc)
    retries = urllib3.exceptions.MaxRetryError(None, "/sms/json", wrapped)  # type: ignore[arg-type]
    error = requests.exceptions.SSLError(retries)
    assert not never_connected(error)
    assert network_failure(error).kind is FailureKind.AMBIGUOUS


def test_a_text_to_a_carrier_behind_a_failing_handshake_is_retried_not_failed(untrusted: Server) -> None:
    """Vonage's SMS API can't be searched, so an ambiguous send fails for a person: a handshake that
    failed must not count as one."""
    world = World()
    world.carrier = VonageSmsCarrier(  # type: ignore[assignment]
        api_key="k", api_secret="s", signature_secrets=("x",), api_base=f"https://127.0.0.1:{untrusted.port}"
    )
    world.numbers.save(OurNumber(number="+15005550006", carrier="vonage", is_default=True, owner="desk"))
    sender = world.sender()
    (queued,) = sender.submit(SendRequest.model_validate({"to": ["+14155550100"], "body": "Hi"}), "k1")
    for _ in range(2):
        message = sender.deliver(queued.message_id)
        assert message is not None and message.status is MessageStatus.RETRYING
        assert message.attempts[-1].outcome == "transient"
        world.clock.advance(seconds=world.retry_queue.jobs[-1].delay_seconds)
    assert untrusted.received in ([], [b""])
