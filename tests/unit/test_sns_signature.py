"""SNS message signatures: the published vectors (carriers.md section 11) and messages signed here.

There is no official Python SNS validator (botocore has none), so the signer below builds the
canonical string independently of `parley.carriers.sns` (following AWS's documented field order) and
signs with `cryptography`; certificates are self-signed and served by a local werkzeug server, allowed
only through the simulator-only extra-hosts list.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from parley.carriers.base import SignatureError
from parley.carriers.sns import (
    CertificateUnavailable,
    ConfirmationFailed,
    SnsVerifier,
    string_to_sign,
    url_allowed,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

TOPIC = "arn:aws:sns:us-east-1:123456789012:parley-sms-events"
OTHER_TOPIC = "arn:aws:sns:us-east-1:999999999999:someone-elses-topic"

# -- carriers.md section 11: the two published Lambda-record vectors (test certificate, not AWS's) --------

VECTOR_MESSAGE = (
    '{"originationNumber": "+14255550182", "destinationNumber": "+12125550101", '
    '"messageKeyword": "KEYWORD_123456789012", "messageBody": "STOP", '
    '"inboundMessageId": "cae173d2-66b9-564c-8309-21f858e9fb84", '
    '"previousPublishedMessageId": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}'
)
VECTOR_CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem"
VECTOR_STRING_TO_SIGN = (
    "Message\n" + VECTOR_MESSAGE + "\nMessageId\n22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\nTimestamp\n"
    "2023-11-14T22:13:20.123Z\nTopicArn\narn:aws:sns:us-east-1:123456789012:sms-inbound\nType\nNotification\n"
)
VECTOR_SIGNATURES = {
    "1": (
        "BCoteFJZzw+X+9GWVNBvySE9aDqF39RGaqKVRD+XdZGxQSN4yXh3U1fkuiwn/nZgt54fcmJ1dd55w6fkG/OpfXWYg1YEPUFxu7pS"
        "Moa5kGFm3VWfu1Oj2Vpf5rcpPIN4HqJ/x+pWvTYdjuw+8VIYDZ8OZosBz9xsuDqBWIifEOuaBiNA9KxJ9QfCvbJPXhWjHLvfr3fT"
        "g/RuzF0P5EfRpeCL3X6yF6eYOHexAKkz9lU7IKuHAKXcIRzHrTkQFixjgau86rWwi8Nift1fNhTwcQcmytFq1NPE/jHIkRDKodJ6"
        "sxkLR2reZD9F9otbdaDAMWGSvRLe8OfrnhigalzgGA=="
    ),
    "2": (
        "l+BU3Dh0wkbQNOxy7R+yKTtKv20fYimK4zzbUj0Udt4XZNS+xNyWdGlcOYLe025pUNkd+LC970GCS2NSFEjJa4PLydKpCtYX5XKi"
        "TqGII63lKVuh5ljl6wLIbV2mq0ozqe5dkiakGFMacCWDXldHG/gKM/DofmkZ2EQvTFD+MdI1zGGDtCoEg9t5njaRWzqetep9rVhX"
        "IJo0fHgKn5qLlNuYB+cj7my3JJFJBk89zGMulMIWTz8mh8iaH2glMiBcPGVS3QrayefZuIW3w0a8T/k+GqKHeUV4+TGvq74fS0vR"
        "tQvd0Phapj8Gw4MVnK+AEnxaon6o7ifn/AaDY6NSVw=="
    ),
}
VECTOR_CERT_PEM = b"""-----BEGIN CERTIFICATE-----
MIIC3TCCAcWgAwIBAgIBATANBgkqhkiG9w0BAQsFADAyMTAwLgYDVQQDDCdzbnMu
dXMtZWFzdC0xLmFtYXpvbmF3cy5jb20gKFRFU1QgT05MWSkwHhcNMjAwMTAxMDAw
MDAwWhcNNDAwMTAxMDAwMDAwWjAyMTAwLgYDVQQDDCdzbnMudXMtZWFzdC0xLmFt
YXpvbmF3cy5jb20gKFRFU1QgT05MWSkwggEiMA0GCSqGSIb3DQEBAQUAA4IBDwAw
ggEKAoIBAQDLs7HdQV2dYJFF/K8+bzzjCPWzlz7Zi50gJMj6vI482NjXP3fC3G60
QQ9ijNvREQu8/hXc0wRyc53raPrJhHGdnMu69HN7G7g4V2gbm8N5tJnUYmy0nu0N
Vg+er5hnq6SJnosE4ZHHxflXxEgeZRhSsIHWJy8h1v7vnQoLD1uyz6Gw7PdW9QPK
HsXM1br/GjoGNCOCb0FmcA2MdAwnJQUROd5rSa3t/WAPvYGyxF8XB4EB2V157nHs
8LiU8Y9QV9YFFVeUKR63QO3Za+/qPBVLaYmu6ulOo2CDFKenPTzatdKyWdzjf5Hs
NAs9iGF3qipDaRKYI8VzkxtE8ICLPSS9AgMBAAEwDQYJKoZIhvcNAQELBQADggEB
ACG3Ob8jK0IIsfWwQHaL9B7ekopFGkMylxcxwWBmIZc+f259dl8p3vX2bud38f5h
EJosEepq/JZLCVWJxxvrZIDtOKCAfTDjmKCHKycyqUOxoHjvLAYDj8WiM34BLez/
1PwNbMs6Hlp0755/zF3lRGc7Q4Oe+VpapdFAt61Wpyms3pqaRjWP/TdMJyEOzhXq
OKCrIq7j6i9qQcKcvZPxlNLPvovWdtZwbF3hIdgXy6CiVCLBdYBaOtRP8VsxRlsN
0yaoasNUstuKteokWWOwreiulsapFnfUCdurR7aIxijEakW4Pn9j7F90hsVsofCx
0KsSrE3t87OGUNY7sMigfZ0=
-----END CERTIFICATE-----
"""
VECTOR_TIME = datetime(2023, 11, 14, 22, 20, tzinfo=UTC)


VECTOR_TOPIC = "arn:aws:sns:us-east-1:123456789012:sms-inbound"


def vector_record(version: str) -> dict[str, Any]:
    """The `Sns` object of the published Lambda record, as Lambda spells its keys."""
    return {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:sms-inbound",
        "Subject": None,
        "Message": VECTOR_MESSAGE,
        "Timestamp": "2023-11-14T22:13:20.123Z",
        "SignatureVersion": version,
        "SigningCertUrl": VECTOR_CERT_URL,
        "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn="
        "arn:aws:sns:us-east-1:123456789012:sms-inbound:0",
        "MessageAttributes": {},
        "Signature": VECTOR_SIGNATURES[version],
    }


def as_http_delivery(record: dict[str, Any]) -> dict[str, Any]:
    """The same message as SNS POSTs it to an HTTPS subscriber (URL spelling, no null Subject)."""
    message = {k: v for k, v in record.items() if v is not None and k != "MessageAttributes"}
    message["SigningCertURL"] = message.pop("SigningCertUrl")
    message["UnsubscribeURL"] = message.pop("UnsubscribeUrl")
    return message


def vector_fetch(seen: list[str]) -> Callable[[str], bytes]:
    def fetch(url: str) -> bytes:
        seen.append(url)
        if url != VECTOR_CERT_URL:
            raise OSError("unexpected URL")
        return VECTOR_CERT_PEM

    return fetch


# -- signing here -----------------------------------------------------------------------------------

NOTIFICATION_ORDER = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
CONFIRMATION_ORDER = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")


def canonical(message: dict[str, Any]) -> bytes:
    """AWS's documented string to sign, written out independently of the code under test."""
    order = NOTIFICATION_ORDER if message["Type"] == "Notification" else CONFIRMATION_ORDER
    return "".join(f"{k}\n{message[k]}\n" for k in order if message.get(k) is not None).encode()


def sns_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def make_cert(
    key: rsa.RSAPrivateKey, *, not_before: datetime | None = None, not_after: datetime | None = None
) -> bytes:
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.test.invalid (TEST ONLY)")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=1))
        .not_valid_after(not_after or now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Signer:
    """Plays SNS: one key, its certificate at `cert_url`."""

    key: rsa.RSAPrivateKey
    cert_url: str

    def sign(self, message: dict[str, Any], version: str = "2") -> dict[str, Any]:
        signed = {**message, "SignatureVersion": version, "SigningCertURL": self.cert_url}
        digest = hashes.SHA1() if version == "1" else hashes.SHA256()
        signed["Signature"] = base64.b64encode(
            self.key.sign(canonical(signed), padding.PKCS1v15(), digest)
        ).decode()
        return signed


def notification(message: str = '{"hello": "world"}', *, topic: str = TOPIC, **extra: Any) -> dict[str, Any]:
    return {
        "Type": "Notification",
        "MessageId": "5f6e7d8c-9b0a-5c1d-8e2f-3a4b5c6d7e8f",
        "TopicArn": topic,
        "Message": message,
        "Timestamp": sns_time(datetime.now(UTC)),
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x",
        **extra,
    }


def confirmation(kind: str, subscribe_url: str, *, topic: str = TOPIC) -> dict[str, Any]:
    return {
        "Type": kind,
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "0123456789abcdef" * 8,
        "TopicArn": topic,
        "Message": f"Confirm the subscription to {topic} by visiting SubscribeURL.",
        "SubscribeURL": subscribe_url,
        "Timestamp": sns_time(datetime.now(UTC)),
    }


# -- moto's SNS: an independent signer ---------------------------------------------------------------


@dataclass
class MotoTopic:
    """An SNS topic in moto, with an HTTP subscription to `served`; moto signs what it posts.

    AWS publishes no Python signer (or validator) for SNS; moto's is an independent implementation,
    so it checks our verifier against someone else's reading of the scheme.
    """

    arn: str
    client: Any
    served: Served

    def publish(self, message: str) -> dict[str, Any]:
        before = len(self.served.posted)
        self.client.publish(TopicArn=self.arn, Message=message)  # moto posts before returning
        assert len(self.served.posted) == before + 1
        posted: dict[str, Any] = json.loads(self.served.posted[-1])
        return posted

    @staticmethod
    def fetch(url: str) -> bytes:
        """Certificates as moto serves them at https://sns.<region>.amazonaws.com/... inside mock_aws."""
        import requests

        answer = requests.get(url, timeout=5)
        answer.raise_for_status()
        return answer.content


@contextmanager
def moto_topic(
    served: Served, monkeypatch: pytest.MonkeyPatch, name: str = "parley-sms-events"
) -> Iterator[MotoTopic]:
    import boto3
    from moto import mock_aws

    for variable in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("sns", region_name="us-east-1")
        arn = client.create_topic(Name=name)["TopicArn"]
        client.subscribe(TopicArn=arn, Protocol="http", Endpoint=served.url + "/webhooks/aws/events")
        yield MotoTopic(arn, client, served)


# -- a local server for certificates and subscription confirmations ----------------------------------


@dataclass
class Served:
    """A tiny HTTP server: path -> (status, body, headers); counts hits per path (query included)."""

    url: str = ""
    routes: dict[str, tuple[int, bytes, dict[str, str]]] = field(default_factory=dict)
    hits: Counter[str] = field(default_factory=Counter)
    posted: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        with self.lock:
            self.hits[request.full_path.rstrip("?")] += 1
            if request.method == "POST":
                self.posted.append(request.get_data())
            status, body, headers = self.routes.get(request.path, (404, b"not found", {}))
        return Response(body, status=status, headers=headers)(environ, start_response)

    def serve(self, path: str, body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> str:
        with self.lock:
            self.routes[path] = (status, body, headers or {})
        return self.url + path


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    app = Served()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    app.url = f"http://127.0.0.1:{server.port}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield app
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def signer(served: Served, key: rsa.RSAPrivateKey) -> Signer:
    return Signer(key, served.serve("/SimpleNotificationService-test.pem", make_cert(key)))


def verifier(**kwargs: Any) -> SnsVerifier:
    """A verifier with its own certificate cache, trusting 127.0.0.1 as the simulator would."""
    options: dict[str, Any] = {"topic_arns": (TOPIC,), "extra_cert_hosts": ("127.0.0.1",), "cache": {}}
    options.update(kwargs)
    return SnsVerifier(**options)


# -- the published vectors --------------------------------------------------------------------------


def test_string_to_sign_matches_the_published_vector() -> None:
    record = vector_record("1")
    assert string_to_sign(record) == VECTOR_STRING_TO_SIGN.encode()
    assert canonical(record) == VECTOR_STRING_TO_SIGN.encode()  # our test signer agrees too


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize("shape", ["lambda-record", "http-delivery"])
def test_published_vectors_are_accepted(version: str, shape: str) -> None:
    record = vector_record(version)
    message = record if shape == "lambda-record" else as_http_delivery(record)
    seen: list[str] = []
    check = SnsVerifier(
        topic_arns=(VECTOR_TOPIC,), clock=lambda: VECTOR_TIME, fetch=vector_fetch(seen), cache={}
    )
    check.verify(message)
    assert seen == [VECTOR_CERT_URL]


def test_published_vector_under_the_other_signature_version_is_rejected() -> None:
    record = {**vector_record("1"), "SignatureVersion": "2"}  # a SHA1 signature checked as SHA256
    check = SnsVerifier(
        topic_arns=(VECTOR_TOPIC,), clock=lambda: VECTOR_TIME, fetch=vector_fetch([]), cache={}
    )
    with pytest.raises(SignatureError, match="does not match"):
        check.verify(record)


def test_published_vector_with_a_changed_body_is_rejected() -> None:
    record = vector_record("2")
    record["Message"] = record["Message"].replace("STOP", "STAY")
    check = SnsVerifier(
        topic_arns=(VECTOR_TOPIC,), clock=lambda: VECTOR_TIME, fetch=vector_fetch([]), cache={}
    )
    with pytest.raises(SignatureError, match="does not match"):
        check.verify(record)


def test_published_vector_is_stale_today() -> None:
    seen: list[str] = []
    with pytest.raises(SignatureError, match="stale"):
        SnsVerifier(topic_arns=(VECTOR_TOPIC,), fetch=vector_fetch(seen), cache={}).verify(vector_record("2"))
    assert seen == []  # rejected before any certificate was fetched


def test_notifications_signed_by_moto_are_accepted(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    with moto_topic(served, monkeypatch) as topic:
        check = SnsVerifier(topic_arns=(topic.arn,), fetch=topic.fetch, cache={})
        for body in ('{"eventType": "TEXT_DELIVERED"}', "plain words", "ünïcödé ✓"):
            message = topic.publish(body)
            assert message["SigningCertURL"].startswith("https://sns.us-east-1.amazonaws.com/")
            check.verify(message)
        message["Message"] += " "
        with pytest.raises(SignatureError, match="does not match"):
            check.verify(message)


# -- certificate URL rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem", True),
        ("https://sns.eu-central-1.amazonaws.com/SimpleNotificationService-abc.pem", True),
        ("https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem", True),
        ("https://SNS.US-EAST-1.AMAZONAWS.COM/SimpleNotificationService-abc.pem", True),
        ("https://sns.us-east-1.amazonaws.com:443/SimpleNotificationService-abc.pem", True),
        ("http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem", False),
        ("https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-abc.pem", False),
        ("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.txt", False),
        ("https://sns.us-east-1.amazonaws.com.evil.example/cert.pem", False),
        ("https://evil.example/sns.us-east-1.amazonaws.com/cert.pem", False),
        ("https://sns.us-east-1.amazonaws.com@evil.example/cert.pem", False),
        ("https://user@sns.us-east-1.amazonaws.com/cert.pem", False),
        ("https://s3.us-east-1.amazonaws.com/cert.pem", False),
        ("https://sns.x.amazonaws.com/cert.pem", False),
        ("https://evilsns.us-east-1.amazonaws.com/cert.pem", False),
        ("file:///etc/ssl/cert.pem", False),
        ("ftp://sns.us-east-1.amazonaws.com/cert.pem", False),
        ("https://sns.us-east-1.amazonaws.com:notaport/cert.pem", False),
        ("http://127.0.0.1:8080/_sim/aws/cert.pem", False),  # not listed as an extra host
        ("", False),
    ],
)
def test_certificate_url_rules(url: str, allowed: bool) -> None:
    assert url_allowed(url, pem=True) is allowed


@pytest.mark.parametrize(
    ("extra", "url", "allowed"),
    [
        (("127.0.0.1",), "http://127.0.0.1:8080/_sim/aws/cert.pem", True),
        (("127.0.0.1",), "https://127.0.0.1/_sim/aws/cert.pem", True),
        (("127.0.0.1:8080",), "http://127.0.0.1:8080/_sim/aws/cert.pem", True),
        (("127.0.0.1:8080",), "http://127.0.0.1:9090/_sim/aws/cert.pem", False),
        (("localhost",), "http://127.0.0.1:8080/_sim/aws/cert.pem", False),
        (("127.0.0.1",), "http://127.0.0.1:8080/_sim/aws/cert.txt", False),
        (("127.0.0.1",), "ftp://127.0.0.1/_sim/aws/cert.pem", False),
    ],
)
def test_extra_hosts_are_for_the_simulator_only(extra: tuple[str, ...], url: str, allowed: bool) -> None:
    assert url_allowed(url, extra, pem=True) is allowed


def test_subscribe_url_needs_no_pem_suffix() -> None:
    url = "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=x&Token=y"
    assert url_allowed(url) is True
    assert url_allowed(url, pem=True) is False


# -- messages signed here -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1", "2"])
def test_signed_notification_is_accepted_and_its_certificate_fetched_once(
    served: Served, signer: Signer, version: str
) -> None:
    check = verifier()
    before = served.hits["/SimpleNotificationService-test.pem"]
    for n in range(3):
        check.verify(signer.sign(notification(f'{{"n": {n}}}'), version))
    assert served.hits["/SimpleNotificationService-test.pem"] == before + 1


def test_notification_with_a_subject_is_accepted(signer: Signer) -> None:
    verifier().verify(signer.sign(notification(Subject="Delivery event")))


@pytest.mark.parametrize("kind", ["SubscriptionConfirmation", "UnsubscribeConfirmation"])
def test_confirmations_are_accepted(signer: Signer, kind: str) -> None:
    url = "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=t&Token=abc"
    verifier().verify(signer.sign(confirmation(kind, url)))


def test_lambda_spelling_of_the_certificate_url_is_accepted(signer: Signer) -> None:
    message = signer.sign(notification())
    message["SigningCertUrl"] = message.pop("SigningCertURL")
    verifier().verify(message)


def _alter_one_byte(message: dict[str, Any], key: str) -> None:
    value = message[key]
    message[key] = value[:-1] + chr(ord(value[-1]) ^ 1)


@pytest.mark.parametrize(
    "change",
    [
        lambda m: _alter_one_byte(m, "Message"),
        lambda m: _alter_one_byte(m, "MessageId"),
        lambda m: _alter_one_byte(m, "Timestamp"),
        lambda m: m.update(Subject="added after signing"),
        lambda m: m.update(Type="UnsubscribeConfirmation", SubscribeURL="https://x", Token="t"),
        lambda m: m.update(TopicArn=OTHER_TOPIC),
        lambda m: m.update(Signature=base64.b64encode(b"\x00" * 256).decode()),
        lambda m: _alter_one_byte(m, "Signature"),
    ],
    ids=[
        "message",
        "message-id",
        "timestamp",
        "subject-added",
        "type",
        "topic",
        "zero-signature",
        "signature-byte",
    ],
)
def test_altered_messages_are_rejected(signer: Signer, change: Callable[[dict[str, Any]], None]) -> None:
    message = signer.sign(notification('{"messageBody": "Hi there"}'))
    change(message)
    with pytest.raises(SignatureError):
        verifier(topic_arns=(TOPIC, OTHER_TOPIC)).verify(message)


def test_removed_subject_is_rejected(signer: Signer) -> None:
    message = signer.sign(notification(Subject="signed"))
    del message["Subject"]
    with pytest.raises(SignatureError, match="does not match"):
        verifier().verify(message)


def test_signature_from_another_key_is_rejected(signer: Signer) -> None:
    impostor = Signer(rsa.generate_private_key(public_exponent=65537, key_size=2048), signer.cert_url)
    with pytest.raises(SignatureError, match="does not match"):
        verifier().verify(impostor.sign(notification()))


def test_certificate_that_is_not_valid_now_is_rejected(served: Served, key: rsa.RSAPrivateKey) -> None:
    old = datetime(2019, 1, 1, tzinfo=UTC)
    url = served.serve("/expired.pem", make_cert(key, not_before=old, not_after=old + timedelta(days=365)))
    with pytest.raises(SignatureError, match="not valid now"):
        verifier().verify(Signer(key, url).sign(notification()))


@pytest.mark.parametrize(
    ("age", "max_age", "accepted"),
    [
        (timedelta(minutes=59), timedelta(hours=1), True),
        (timedelta(minutes=61), timedelta(hours=1), False),
        (timedelta(hours=5), timedelta(hours=1), False),
        (timedelta(minutes=11), timedelta(minutes=10), False),
        (timedelta(hours=5), timedelta(hours=6), True),
        (-timedelta(minutes=1), timedelta(hours=1), True),  # a little clock skew is fine
        (-timedelta(minutes=10), timedelta(hours=1), False),  # from the future
    ],
)
def test_freshness_window(signer: Signer, age: timedelta, max_age: timedelta, accepted: bool) -> None:
    message = signer.sign(notification(Timestamp=sns_time(datetime.now(UTC) - age)))
    check = verifier(max_age=max_age)
    if accepted:
        check.verify(message)
    else:
        with pytest.raises(SignatureError, match="stale|future"):
            check.verify(message)


def test_max_age_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        SnsVerifier(max_age=timedelta(0))


def test_topic_not_on_the_allow_list_is_rejected_before_fetching(
    served: Served, key: rsa.RSAPrivateKey
) -> None:
    url = served.serve("/never-fetched.pem", make_cert(key))
    message = Signer(key, url).sign(notification(topic=OTHER_TOPIC))
    with pytest.raises(SignatureError, match="topic"):
        verifier().verify(message)
    assert served.hits["/never-fetched.pem"] == 0


def test_without_an_allow_list_nothing_is_accepted_and_the_reason_is_logged_once(
    signer: Signer, caplog: pytest.LogCaptureFixture
) -> None:
    # Otherwise anyone could subscribe our endpoint to their own topic and send AWS-signed fakes.
    caplog.set_level(logging.ERROR, logger="parley.carriers.sns")
    check = verifier(topic_arns=())
    for topic in (OTHER_TOPIC, TOPIC):
        with pytest.raises(SignatureError, match="no SNS topics are configured"):
            check.verify(signer.sign(notification(topic=topic)))
    errors = [r for r in caplog.records if r.name == "parley.carriers.sns" and r.levelno == logging.ERROR]
    assert len(errors) == 1


@pytest.mark.parametrize(
    "cert_url",
    [
        "https://evil.example/SimpleNotificationService-test.pem",
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem",
        "http://localhost:1/SimpleNotificationService-test.pem",
    ],
)
def test_certificate_url_off_the_allowed_hosts_is_rejected_without_fetching(
    key: rsa.RSAPrivateKey, cert_url: str
) -> None:
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return make_cert(key)

    with pytest.raises(SignatureError, match="not an SNS host"):
        verifier(fetch=fetch).verify(Signer(key, cert_url).sign(notification()))
    assert fetched == []


def test_unreachable_certificate_is_reported_as_unavailable(served: Served, key: rsa.RSAPrivateKey) -> None:
    served.serve("/redirect.pem", b"", 302, {"Location": served.url + "/SimpleNotificationService-test.pem"})
    served.serve("/not-pem.pem", b"<html>hello</html>")
    served.serve("/huge.pem", b"-" * (70 * 1024))
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{closed.getsockname()[1]}/cert.pem"
        for url in (served.url + "/missing.pem", served.url + "/redirect.pem", served.url + "/not-pem.pem",
                    served.url + "/huge.pem", refused):  # fmt: skip
            with pytest.raises(CertificateUnavailable):
                verifier().verify(Signer(key, url).sign(notification()))
    assert served.hits["/redirect.pem"] == 1  # asked once, and the redirect was not followed


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda m: m.pop(key)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (_drop("Signature"), "Signature is missing"),
        (_drop("SignatureVersion"), "SignatureVersion"),
        (_drop("SigningCertURL"), "not an SNS host"),
        (_drop("Message"), "Message is missing"),
        (_drop("MessageId"), "MessageId is missing"),
        (_drop("Timestamp"), "Timestamp is missing"),
        (_drop("TopicArn"), "TopicArn is missing"),
        (_drop("Type"), "unknown SNS message type"),
        (lambda m: m.update(Type="Notice"), "unknown SNS message type"),
        (lambda m: m.update(SignatureVersion="3"), "SignatureVersion"),
        (lambda m: m.update(SignatureVersion=2), "SignatureVersion"),
        (lambda m: m.update(Signature="not base64!"), "not base64"),
        (lambda m: m.update(Signature=""), "Signature is missing"),
        (lambda m: m.update(Signature=base64.b64encode(b"x" * 2048).decode()), "impossible length"),
        (lambda m: m.update(Subject=7), "Subject is missing"),
        (lambda m: m.update(Message={"json": "object"}), "Message is missing"),
        (lambda m: m.update(Timestamp="yesterday"), "not a valid time"),
        (lambda m: m.update(Timestamp="2026-11-28T04:00:00"), "not a valid time"),
    ],
)
def test_incomplete_messages_are_rejected(
    signer: Signer, change: Callable[[dict[str, Any]], None], reason: str
) -> None:
    message = signer.sign(notification())
    change(message)
    with pytest.raises(SignatureError, match=reason):
        verifier().verify(message)


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b'"Notification"', b"\xff\xfe", b"[" * 100_000])
def test_bodies_that_are_not_sns_messages_are_rejected(body: bytes) -> None:
    with pytest.raises(SignatureError):
        verifier().verify_body(body)


def test_verify_body_returns_the_verified_message(signer: Signer) -> None:
    message = signer.sign(notification())
    assert verifier().verify_body(json.dumps(message).encode()) == message


def test_error_messages_carry_no_signature(signer: Signer) -> None:
    message = signer.sign(notification())
    _alter_one_byte(message, "Message")
    with pytest.raises(SignatureError) as caught:
        verifier().verify(message)
    assert message["Signature"] not in str(caught.value)
    assert message["Signature"][:16] not in str(caught.value)


# -- subscription confirmation --------------------------------------------------------------------


def test_confirm_gets_the_subscribe_url(served: Served, signer: Signer) -> None:
    served.serve("/confirm", b"<ConfirmSubscriptionResponse/>", headers={"Content-Type": "text/xml"})
    url = served.url + "/confirm?Action=ConfirmSubscription&TopicArn=t&Token=abc"
    message = signer.sign(confirmation("SubscriptionConfirmation", url))
    check = verifier()
    check.verify(message)
    check.confirm(message)
    assert served.hits["/confirm?Action=ConfirmSubscription&TopicArn=t&Token=abc"] == 1


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/?Action=ConfirmSubscription&Token=abc",
        "http://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=abc",
        None,
    ],
)
def test_confirm_refuses_urls_off_the_sns_hosts(url: str | None) -> None:
    fetched: list[str] = []

    def fetch(target: str) -> bytes:
        fetched.append(target)
        return b""

    message = confirmation("SubscriptionConfirmation", url or "")
    if url is None:
        del message["SubscribeURL"]
    with pytest.raises(ConfirmationFailed, match="not an SNS host"):
        verifier(fetch=fetch).confirm(message)
    assert fetched == []


def test_confirm_failure_names_the_http_status(served: Served) -> None:
    served.serve("/confirm-broken", b"nope", 500)
    message = confirmation("SubscriptionConfirmation", served.url + "/confirm-broken?Token=abc")
    with pytest.raises(ConfirmationFailed, match="HTTP 500"):
        verifier().confirm(message)


# -- fuzz ------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2048))
def test_verify_raises_only_signature_error_for_any_bytes(body: bytes) -> None:
    with pytest.raises(SignatureError):
        verifier(fetch=lambda _url: b"").verify_body(body)


_TEXT = st.one_of(st.none(), st.integers(), st.text(max_size=40), st.lists(st.text(max_size=5), max_size=2))


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(
        ["Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation", "Other", None]
    ),
    version=st.sampled_from(["1", "2", "3", 1, None, ""]),
    cert_url=st.sampled_from(
        [
            "http://127.0.0.1:1/cert.pem",
            "https://sns.us-east-1.amazonaws.com/cert.pem",
            "https://evil.example/cert.pem",
            None,
            7,
        ]
    ),
    timestamp=st.one_of(
        st.sampled_from(["now", "2023-11-14T22:13:20.123Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"]),
        _TEXT,
    ),
    signature=st.one_of(
        _TEXT, st.binary(min_size=1, max_size=300).map(lambda b: base64.b64encode(b).decode())
    ),
    fields=st.dictionaries(
        st.sampled_from(["Message", "MessageId", "Subject", "TopicArn", "Token", "SubscribeURL"]), _TEXT
    ),
)
def test_verify_raises_only_signature_error_for_plausible_messages(
    kind: object,
    version: object,
    cert_url: object,
    timestamp: object,
    signature: object,
    fields: dict[str, Any],
) -> None:
    message = {
        **fields,
        "Type": kind,
        "SignatureVersion": version,
        "SigningCertURL": cert_url,
        "Timestamp": sns_time(datetime.now(UTC)) if timestamp == "now" else timestamp,
        "Signature": signature,
    }
    pem = make_cert_cached()

    def fetch(url: str) -> bytes:
        if url.startswith("https://sns."):
            return pem
        raise OSError("no network in tests")

    with pytest.raises(SignatureError):
        verifier(topic_arns=(), fetch=fetch).verify(copy.deepcopy(message))


_FUZZ_PEM: list[bytes] = []


def make_cert_cached() -> bytes:
    if not _FUZZ_PEM:
        _FUZZ_PEM.append(make_cert(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    return _FUZZ_PEM[0]
