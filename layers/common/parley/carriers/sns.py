"""Amazon SNS message signatures for HTTP(S) subscriptions, reusable by any plugin fed through SNS.

Why here and not boto3: botocore ships no SNS signature validator (carriers.md 9.3). SNS signs each
message with RSA (SignatureVersion 1 = SHA1withRSA, 2 = SHA256withRSA) over a canonical string of
selected fields, and names the certificate by URL in the message itself. So the URL is the weak point:
a forger can point it at their own certificate. We only fetch certificates over HTTPS from
``sns.<region>.amazonaws.com(.cn)`` (plus hosts named explicitly for a local simulator), reject stale
messages, and pin the topics we subscribed to: anyone can make SNS sign a message for *their* topic.

Standard library only at import time (the webhook's cold start); ``cryptography`` is imported when a
certificate is first loaded. Certificates are cached per URL for the life of the process.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Mapping
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from parley.carriers.base import SignatureError, utc_now

logger = logging.getLogger(__name__)

NOTIFICATION: Final = "Notification"
SUBSCRIPTION_CONFIRMATION: Final = "SubscriptionConfirmation"
UNSUBSCRIBE_CONFIRMATION: Final = "UnsubscribeConfirmation"

_CONFIRMATION_KEYS: Final = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
# The signed fields per message type, in the order AWS documents for the string to sign.
SIGNED_KEYS: Final[dict[str, tuple[str, ...]]] = {
    NOTIFICATION: ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    SUBSCRIPTION_CONFIRMATION: _CONFIRMATION_KEYS,
    UNSUBSCRIBE_CONFIRMATION: _CONFIRMATION_KEYS,
}
_OPTIONAL_KEYS: Final = frozenset({"Subject"})

DEFAULT_MAX_AGE: Final = timedelta(hours=1)  # SNS's HTTP retry policy can't span more than an hour
CLOCK_SKEW: Final = timedelta(minutes=5)  # a Timestamp this far ahead of our clock is still believed
FETCH_TIMEOUT_SECONDS: Final = 5.0
MAX_CERT_BYTES: Final = 64 * 1024
MAX_SIGNATURE_BYTES: Final = 1024  # RSA-8192; SNS uses 2048-bit keys
_CACHE_LIMIT: Final = 32

_AWS_SNS_HOST: Final = re.compile(r"sns\.[a-z0-9-]{3,}\.amazonaws\.com(\.cn)?")
_HASHES: Final = {"1": "sha1", "2": "sha256"}

Fetch = Callable[[str], bytes]


class CertificateUnavailable(SignatureError):
    """The signing certificate could not be fetched or read: unproven, but maybe only for now.

    Answered with 5xx so SNS delivers the message again, rather than a 4xx that would drop it.
    """

    retryable = True


class ConfirmationFailed(Exception):
    """Confirming a subscription (GET SubscribeURL) failed; the reason says why, without secrets."""


def split_list(value: str) -> tuple[str, ...]:
    """A comma-separated setting as a tuple of non-empty, stripped items."""
    return tuple(item.strip() for item in value.split(",") if item.strip())


def url_allowed(url: str, extra_hosts: Collection[str] = (), *, pem: bool = False) -> bool:
    """Whether we may fetch `url`: HTTPS on an SNS host, or (http or https) on an explicitly extra host.

    `extra_hosts` entries are host names, or host:port; they exist for a local simulator only.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    if not host or parts.username is not None or parts.password is not None:
        return False
    if pem and not parts.path.endswith(".pem"):
        return False
    extra = {h.strip().lower() for h in extra_hosts if h.strip()}
    if parts.scheme in ("http", "https") and (host in extra or f"{host}:{port}" in extra):
        return True
    return parts.scheme == "https" and port in (None, 443) and _AWS_SNS_HOST.fullmatch(host) is not None


def string_to_sign(message: Mapping[str, Any]) -> bytes:
    """The canonical "key\\nvalue\\n" string of the signed fields present (absent or null ones skipped)."""
    keys = SIGNED_KEYS.get(str(message.get("Type")))
    if keys is None:
        raise SignatureError("unknown SNS message type")
    lines = []
    for key in keys:
        value = message.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise SignatureError(f"SNS field {key} is not a string")
        lines.append(f"{key}\n{value}\n")
    return "".join(lines).encode("utf-8")


def parse_timestamp(value: object) -> datetime:
    """SNS's ISO 8601 UTC Timestamp (e.g. 2023-11-14T22:13:20.123Z) as an aware datetime."""
    if not isinstance(value, str) or not value:
        raise ValueError("Timestamp is missing")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("Timestamp has no time zone")
    return parsed


def signing_cert_url(message: Mapping[str, Any]) -> str | None:
    """SigningCertURL (HTTP delivery) or SigningCertUrl (the spelling in a Lambda SNS record)."""
    value = message.get("SigningCertURL", message.get("SigningCertUrl"))
    return value if isinstance(value, str) else None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect could lead off the allowed hosts: treat it as a failure instead."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def fetch_url(url: str, timeout: float = FETCH_TIMEOUT_SECONDS, limit: int = MAX_CERT_BYTES) -> bytes:
    """GET `url` without following redirects; the body if the answer is 200 and at most `limit` bytes."""
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, headers={"User-Agent": "parley-sns-verifier"})
    with opener.open(request, timeout=timeout) as answer:
        if answer.status != 200:
            raise OSError(f"HTTP {answer.status}")
        data: bytes = answer.read(limit + 1)
    if len(data) > limit:
        raise OSError("response too large")
    return data


_PROCESS_CERTS: dict[str, Any] = {}  # URL -> cryptography Certificate, shared by every verifier
_PROCESS_LOCK = threading.Lock()


class SnsVerifier:
    """Checks SNS messages: type, fields, certificate URL, freshness, topic, then the RSA signature.

    Cheap checks run first so a forged message never makes us fetch anything. `fetch`, `clock` and
    `cache` are seams for tests; production uses urllib, the wall clock and the per-process cache.
    """

    def __init__(
        self,
        *,
        topic_arns: Collection[str] = (),
        extra_cert_hosts: Collection[str] = (),
        max_age: timedelta = DEFAULT_MAX_AGE,
        clock: Callable[[], datetime] = utc_now,
        fetch: Fetch | None = None,
        cache: dict[str, Any] | None = None,
    ) -> None:
        if max_age <= timedelta(0):
            raise ValueError("max_age must be positive")
        self.topic_arns = frozenset(topic_arns)
        self.extra_cert_hosts = tuple(h.strip().lower() for h in extra_cert_hosts if h.strip())
        self.max_age = max_age
        self._clock = clock
        self._fetch: Fetch = fetch if fetch is not None else fetch_url
        self._cache = _PROCESS_CERTS if cache is None else cache
        self._lock = _PROCESS_LOCK if cache is None else threading.Lock()
        self._warned_any_topic = False

    def load(self, body: bytes) -> dict[str, Any]:
        """The request body as an SNS message object (not yet verified)."""
        try:
            message = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise SignatureError("body is not an SNS message (not JSON)") from exc
        if not isinstance(message, dict):
            raise SignatureError("body is not an SNS message (not a JSON object)")
        return message

    def verify_body(self, body: bytes) -> dict[str, Any]:
        """Load and verify; the verified message."""
        message = self.load(body)
        self.verify(message)
        return message

    def verify(self, message: Mapping[str, Any]) -> None:
        """Raise SignatureError unless `message` is a fresh SNS message signed by AWS for our topic."""
        kind = message.get("Type")
        keys = SIGNED_KEYS.get(kind) if isinstance(kind, str) else None
        if keys is None:
            raise SignatureError("unknown SNS message type")
        for key in keys:
            value = message.get(key)
            if key in _OPTIONAL_KEYS and value is None:
                continue
            if not isinstance(value, str):
                raise SignatureError(f"SNS field {key} is missing")
        version = message.get("SignatureVersion")
        algorithm = _HASHES.get(version) if isinstance(version, str) else None
        if algorithm is None:
            raise SignatureError("unsupported SignatureVersion")
        signature = _decode_signature(message.get("Signature"))
        cert_url = signing_cert_url(message)
        if cert_url is None or not url_allowed(cert_url, self.extra_cert_hosts, pem=True):
            raise SignatureError("signing certificate URL is not an SNS host")
        self._check_fresh(message.get("Timestamp"))
        self._check_topic(str(message["TopicArn"]))
        certificate = self._certificate(cert_url)
        _verify_rsa(certificate, signature, string_to_sign(message), algorithm, self._clock())

    def confirm(self, message: Mapping[str, Any]) -> None:
        """Confirm a subscription by GET SubscribeURL (same host rule as certificates)."""
        url = message.get("SubscribeURL")
        if not isinstance(url, str) or not url_allowed(url, self.extra_cert_hosts):
            raise ConfirmationFailed("SubscribeURL is not an SNS host")
        try:
            self._fetch(url)
        except (OSError, ValueError) as exc:
            raise ConfirmationFailed(f"confirming the subscription failed: {_describe(exc)}") from exc
        logger.info("SNS subscription confirmed for topic %s", message.get("TopicArn"))

    def _check_fresh(self, value: object) -> None:
        try:
            sent = parse_timestamp(value)
        except (ValueError, TypeError) as exc:
            raise SignatureError("SNS Timestamp is not a valid time") from exc
        now = self._clock()
        if now - sent > self.max_age:
            raise SignatureError("message is stale")
        if sent - now > CLOCK_SKEW:
            raise SignatureError("message timestamp is in the future")

    def _check_topic(self, topic_arn: str) -> None:
        # Secure by default: without an allow-list anyone could subscribe us to their own topic and
        # send AWS-signed fake texts, so nothing is accepted until the topics are configured.
        if not self.topic_arns:
            if not self._warned_any_topic:
                self._warned_any_topic = True
                logger.error("no SNS topic allow-list configured (PARLEY_AWS_SNS_TOPIC_ARNS): rejecting")
            raise SignatureError("no SNS topics are configured to accept messages from")
        if topic_arn not in self.topic_arns:
            raise SignatureError("message is from a topic we did not subscribe to")

    def _certificate(self, url: str) -> Any:
        with self._lock:
            cached = self._cache.get(url)
        if cached is not None:
            return cached
        try:
            pem = self._fetch(url)
        except (OSError, ValueError) as exc:
            raise CertificateUnavailable(f"signing certificate unavailable: {_describe(exc)}") from exc
        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric import rsa

        try:
            certificate = x509.load_pem_x509_certificate(pem)
        except ValueError as exc:
            raise CertificateUnavailable("signing certificate is not a PEM certificate") from exc
        if not isinstance(certificate.public_key(), rsa.RSAPublicKey):
            raise SignatureError("signing certificate does not hold an RSA key")
        with self._lock:
            while len(self._cache) >= _CACHE_LIMIT:
                self._cache.pop(next(iter(self._cache)))
            self._cache[url] = certificate
        return certificate


def _decode_signature(value: object) -> bytes:
    if not isinstance(value, str) or not value:
        raise SignatureError("SNS Signature is missing")
    try:
        signature = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError("SNS Signature is not base64") from exc
    if not signature or len(signature) > MAX_SIGNATURE_BYTES:
        raise SignatureError("SNS Signature has an impossible length")
    return signature


def _verify_rsa(certificate: Any, signature: bytes, data: bytes, algorithm: str, now: datetime) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise SignatureError("signing certificate is not valid now")
    digest = hashes.SHA1() if algorithm == "sha1" else hashes.SHA256()
    try:
        certificate.public_key().verify(signature, data, padding.PKCS1v15(), digest)
    except InvalidSignature:
        raise SignatureError("signature does not match") from None


def _describe(exc: BaseException) -> str:
    """A short, secret-free cause: the HTTP status or the exception's class."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    return type(exc).__name__
