"""The Telnyx plugin against Telnyx's own verifier (the official SDK) and a local stand-in for its API.

Telnyx's SDK verifies webhooks but has no signer (Telnyx holds the private key), so each signature
here is made with `cryptography`'s Ed25519 and first accepted by the SDK's
`verify_webhook_signature` (which needs PyNaCl; when it is absent a stand-in backed by
`cryptography` takes its place, so the SDK's own message layout, header names and 300 s window are
what is checked). The published vector from carriers.md section 11 is checked as given. Sends go
over real sockets to a werkzeug server on 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import sys
import types
import typing
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st
from telnyx.lib import webhook_verification
from telnyx.types.outbound_message_payload import To as SdkOutboundRecipient
from werkzeug.wrappers import Response

from parley.carriers.base import (
    Carrier,
    FailureKind,
    OutboundText,
    ParsedInbound,
    ParsedMedia,
    ParsedStatus,
    PayloadError,
    SendAccepted,
    SendFailed,
    SignatureError,
    WebhookKind,
    WebhookRequest,
)
from parley.carriers.config import CarrierConfig
from parley.carriers.registry import build_carrier, known_carriers
from parley.carriers.telnyx import (
    ERROR_CODES,
    STATUS_MAP,
    TelnyxCarrier,
    build,
    classify_error,
    idempotency_key,
)
from parley.domain.vocabulary import MessageStatus
from tests.carrier_api import FakeCarrierApi, carrier_api_fixtures, refused_url

EVENTS_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/webhooks/telnyx/events"
SAMPLES = Path(__file__).resolve().parents[2] / "events" / "carriers" / "telnyx"
NOW = 1_795_752_000  # 2026-11-28T04:00:00Z
API_KEY = "KEY0190ABCDEF_parleyTestKey0123456789"
OUR_NUMBER = "+15005550006"
CUSTOMER = "+14155550100"

# carriers.md section 11, vector "telnyx-ed25519-message-received" (checked with telnyx 4.189.0).
VECTOR_SEED = bytes(range(32))
VECTOR_PUBLIC_KEY = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
VECTOR_TIMESTAMP = "1700000000"
VECTOR_SIGNATURE = "4Rvv3wyIIuPTFJlsr5/awjMRliuomQkb8otat/iwJ/+0MLhNS5p0bI5TEZubvXxSqpwtPoJDLX933qfkQaSBBg=="
VECTOR_BODY = (
    b'{"data":{"event_type":"message.received","id":"b301ed3f-1490-491f-995f-6e64e69674d4",'
    b'"occurred_at":"2023-11-14T22:13:20.000+00:00","payload":{"direction":"inbound",'
    b'"id":"84cca175-9755-4859-b67a-4730d7f58aa3","type":"SMS","text":"STOP","parts":1,'
    b'"encoding":"GSM-7","autoresponse_type":"STOP","media":[],"from":{"phone_number":"+13125550001",'
    b'"carrier":"T-Mobile USA","line_type":"Wireless"},"to":[{"phone_number":"+17735550002",'
    b'"status":"webhook_delivered","carrier":"Telnyx","line_type":"Wireless"}],'
    b'"messaging_profile_id":"740572b6-099c-44a1-89b9-6c92163bc68d","record_type":"message",'
    b'"received_at":"2023-11-14T22:13:19.812+00:00"},"record_type":"event"},'
    b'"meta":{"attempt":1,"delivered_to":"https://example.com/telnyx"}}'
)

SIGNING_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(100, 132)))
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(200, 232)))


def public_b64(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


PUBLIC_KEY = public_b64(SIGNING_KEY)
OTHER_PUBLIC_KEY = public_b64(OTHER_KEY)


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SAMPLES / name).read_text())
    return loaded


def sample_body(name: str) -> bytes:
    """The sample as Telnyx would put it on the wire: compact JSON."""
    return json.dumps(sample(name)["body"], separators=(",", ":"), ensure_ascii=False).encode()


def sign(key: Ed25519PrivateKey, timestamp: str, body: bytes) -> str:
    """Telnyx's scheme: Ed25519 over the timestamp, a literal '|', then the raw body."""
    return base64.b64encode(key.sign(timestamp.encode() + b"|" + body)).decode()


def webhook(
    body: bytes, signature: str | None, timestamp: str | None, *, url: str = EVENTS_URL
) -> WebhookRequest:
    headers = {"content-type": "application/json", "user-agent": "telnyx-webhooks"}
    if signature is not None:
        headers["telnyx-signature-ed25519"] = signature
    if timestamp is not None:
        headers["telnyx-timestamp"] = timestamp
    return WebhookRequest(method="POST", url=url, headers=headers, body=body)


def carrier(*keys: str, now: float = NOW, **kwargs: Any) -> TelnyxCarrier:
    return TelnyxCarrier(public_keys=keys or (PUBLIC_KEY,), clock=lambda: now, **kwargs)


# -- the SDK's verifier -------------------------------------------------------------------------------


class _BadSignatureError(Exception):
    """Stand-in for nacl.exceptions.BadSignatureError."""


class _VerifyKey:
    """Stand-in for nacl.signing.VerifyKey, the only PyNaCl API the SDK's verifier uses."""

    def __init__(self, key: bytes) -> None:
        self._key = Ed25519PublicKey.from_public_bytes(key)

    def verify(self, message: bytes, signature: bytes) -> bytes:
        try:
            self._key.verify(signature, message)
        except InvalidSignature as exc:
            raise _BadSignatureError("bad signature") from exc
        return message


SdkVerify = Callable[[bytes, dict[str, str], str, int], bool]


@pytest.fixture
def sdk_verify(monkeypatch: pytest.MonkeyPatch) -> SdkVerify:
    """telnyx.lib.webhook_verification.verify_webhook_signature at a chosen time: True if it accepts."""
    try:
        import nacl.signing  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        signing = types.ModuleType("nacl.signing")
        signing.VerifyKey = _VerifyKey  # type: ignore[attr-defined]
        exceptions = types.ModuleType("nacl.exceptions")
        exceptions.BadSignatureError = _BadSignatureError  # type: ignore[attr-defined]
        package = types.ModuleType("nacl")
        package.signing = signing  # type: ignore[attr-defined]
        package.exceptions = exceptions  # type: ignore[attr-defined]
        for name, module in (("nacl", package), ("nacl.signing", signing), ("nacl.exceptions", exceptions)):
            monkeypatch.setitem(sys.modules, name, module)

    def verify(body: bytes, headers: dict[str, str], public_key: str, now: int) -> bool:
        monkeypatch.setattr(webhook_verification, "time", types.SimpleNamespace(time=lambda: now))
        try:
            webhook_verification.verify_webhook_signature(body, headers, public_key)
        except webhook_verification.WebhookVerificationError:
            return False
        return True

    return verify


# -- signatures -------------------------------------------------------------------------------------


def test_published_vector_is_accepted(sdk_verify: SdkVerify) -> None:
    headers = {"Telnyx-Signature-Ed25519": VECTOR_SIGNATURE, "Telnyx-Timestamp": VECTOR_TIMESTAMP}
    assert sdk_verify(VECTOR_BODY, headers, VECTOR_PUBLIC_KEY, 1_700_000_010)
    seed_key = Ed25519PrivateKey.from_private_bytes(VECTOR_SEED)
    assert public_b64(seed_key) == VECTOR_PUBLIC_KEY
    assert sign(seed_key, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE  # Ed25519 is deterministic
    request = webhook(VECTOR_BODY, VECTOR_SIGNATURE, VECTOR_TIMESTAMP)
    carrier(VECTOR_PUBLIC_KEY, now=1_700_000_010).verify(request)


def test_published_vector_is_stale_after_300_seconds(sdk_verify: SdkVerify) -> None:
    headers = {"telnyx-signature-ed25519": VECTOR_SIGNATURE, "telnyx-timestamp": VECTOR_TIMESTAMP}
    assert not sdk_verify(VECTOR_BODY, headers, VECTOR_PUBLIC_KEY, 1_700_000_301)
    with pytest.raises(SignatureError, match="stale"):
        carrier(VECTOR_PUBLIC_KEY, now=1_700_000_301).verify(
            webhook(VECTOR_BODY, VECTOR_SIGNATURE, VECTOR_TIMESTAMP)
        )


@pytest.mark.parametrize("name", ["inbound_sms.json", "inbound_mms.json", "status_failed.json"])
def test_signature_the_sdk_accepts_is_accepted(sdk_verify: SdkVerify, name: str) -> None:
    body = sample_body(name)
    signature = sign(SIGNING_KEY, str(NOW), body)
    headers = {"telnyx-signature-ed25519": signature, "telnyx-timestamp": str(NOW)}
    assert sdk_verify(body, headers, PUBLIC_KEY, NOW)
    carrier().verify(webhook(body, signature, str(NOW)))


@pytest.mark.parametrize("offset", [-300, -1, 0, 1, 300])
def test_timestamps_within_300_seconds_either_way_are_fresh(sdk_verify: SdkVerify, offset: int) -> None:
    body = sample_body("inbound_sms.json")
    timestamp = str(NOW + offset)
    signature = sign(SIGNING_KEY, timestamp, body)
    headers = {"telnyx-signature-ed25519": signature, "telnyx-timestamp": timestamp}
    assert sdk_verify(body, headers, PUBLIC_KEY, NOW)
    carrier().verify(webhook(body, signature, timestamp))


@pytest.mark.parametrize("offset", [-301, 301, -86_400, 10**9])
def test_stale_or_future_timestamps_are_rejected(sdk_verify: SdkVerify, offset: int) -> None:
    body = sample_body("inbound_sms.json")
    timestamp = str(NOW + offset)
    signature = sign(SIGNING_KEY, timestamp, body)  # genuinely signed, just not fresh
    headers = {"telnyx-signature-ed25519": signature, "telnyx-timestamp": timestamp}
    assert not sdk_verify(body, headers, PUBLIC_KEY, NOW)
    with pytest.raises(SignatureError, match="stale"):
        carrier().verify(webhook(body, signature, timestamp))


def test_forged_signature_is_rejected_without_leaking_secrets() -> None:
    body = sample_body("inbound_sms.json")
    genuine = sign(SIGNING_KEY, str(NOW), body)
    forged = base64.b64encode(bytes(64)).decode()
    with pytest.raises(SignatureError, match="does not match") as caught:
        carrier().verify(webhook(body, forged, str(NOW)))
    message = str(caught.value)
    assert PUBLIC_KEY not in message and genuine not in message and forged not in message


@pytest.mark.parametrize("position", [0, 1, 100, -2, -1])
def test_body_altered_by_one_byte_is_rejected(position: int) -> None:
    body = sample_body("inbound_sms.json")
    signature = sign(SIGNING_KEY, str(NOW), body)
    altered = bytearray(body)
    altered[position] ^= 0x01
    with pytest.raises(SignatureError, match="does not match"):
        carrier().verify(webhook(bytes(altered), signature, str(NOW)))


def test_reserialised_json_is_not_the_signed_body() -> None:
    """The raw bytes are signed: the same JSON with other whitespace is a different message."""
    body = sample_body("inbound_sms.json")
    signature = sign(SIGNING_KEY, str(NOW), body)
    pretty = json.dumps(json.loads(body), indent=2).encode()
    with pytest.raises(SignatureError):
        carrier().verify(webhook(pretty, signature, str(NOW)))


def test_timestamp_is_part_of_the_signed_message() -> None:
    body = sample_body("inbound_sms.json")
    signature = sign(SIGNING_KEY, str(NOW), body)
    with pytest.raises(SignatureError, match="does not match"):
        carrier().verify(webhook(body, signature, str(NOW + 1)))  # fresh, but not what was signed


def test_the_url_is_not_signed() -> None:
    """Telnyx signs timestamp and body only, so a proxy rewriting the path doesn't break verification."""
    body = sample_body("inbound_sms.json")
    signature = sign(SIGNING_KEY, str(NOW), body)
    carrier().verify(webhook(body, signature, str(NOW), url="https://other.example/anything?x=1"))


def test_signature_made_with_another_key_is_rejected(sdk_verify: SdkVerify) -> None:
    body = sample_body("inbound_sms.json")
    signature = sign(OTHER_KEY, str(NOW), body)
    headers = {"telnyx-signature-ed25519": signature, "telnyx-timestamp": str(NOW)}
    assert not sdk_verify(body, headers, PUBLIC_KEY, NOW)
    with pytest.raises(SignatureError, match="does not match"):
        carrier().verify(webhook(body, signature, str(NOW)))


def test_previous_key_is_accepted_during_rotation() -> None:
    body = sample_body("inbound_sms.json")
    old_signature = sign(OTHER_KEY, str(NOW), body)
    new_signature = sign(SIGNING_KEY, str(NOW), body)
    rotating = carrier(PUBLIC_KEY, OTHER_PUBLIC_KEY)
    rotating.verify(webhook(body, old_signature, str(NOW)))
    rotating.verify(webhook(body, new_signature, str(NOW)))
    with pytest.raises(SignatureError):
        carrier(PUBLIC_KEY).verify(webhook(body, old_signature, str(NOW)))


@pytest.mark.parametrize(
    ("signature", "timestamp", "words"),
    [
        (None, str(NOW), "missing telnyx-signature-ed25519"),
        ("", str(NOW), "missing telnyx-signature-ed25519"),
        ("   ", str(NOW), "missing telnyx-signature-ed25519"),
        ("VALID", None, "missing telnyx-timestamp"),
        ("VALID", "", "missing telnyx-timestamp"),
        (None, None, "missing"),
        ("VALID", "abc", "malformed telnyx-timestamp"),
        ("VALID", "-5", "malformed telnyx-timestamp"),
        ("VALID", f" {NOW}", "malformed telnyx-timestamp"),
        ("VALID", f"{NOW}.5", "malformed telnyx-timestamp"),
        ("VALID", "1" * 40, "malformed telnyx-timestamp"),
        ("VALID", "\u0661\u0667\u0660\u0660", "malformed telnyx-timestamp"),  # Arabic-Indic digits
        ("not base64!", str(NOW), "malformed signature"),
        (base64.b64encode(bytes(63)).decode(), str(NOW), "malformed signature"),
        (base64.b64encode(bytes(65)).decode(), str(NOW), "malformed signature"),
    ],
)
def test_missing_or_malformed_headers_are_rejected(
    signature: str | None, timestamp: str | None, words: str
) -> None:
    body = sample_body("inbound_sms.json")
    if signature == "VALID":
        signature = sign(SIGNING_KEY, str(NOW), body)
    with pytest.raises(SignatureError, match=words):
        carrier().verify(webhook(body, signature, timestamp))


def test_header_names_must_be_lower_cased_by_the_caller() -> None:
    """WebhookRequest promises lower-cased names; the webhook handler does that, not each plugin."""
    body = sample_body("inbound_sms.json")
    signature = sign(SIGNING_KEY, str(NOW), body)
    request = WebhookRequest(
        "POST",
        EVENTS_URL,
        {"Telnyx-Signature-Ed25519": signature, "Telnyx-Timestamp": str(NOW)},
        body,
    )
    with pytest.raises(SignatureError, match="missing"):
        carrier().verify(request)


def test_no_public_key_rejects_everything_at_verify() -> None:
    body = sample_body("inbound_sms.json")
    unconfigured = TelnyxCarrier(clock=lambda: NOW)  # builds: a send-only function needs no key
    with pytest.raises(SignatureError, match="PARLEY_TELNYX_PUBLIC_KEY"):
        unconfigured.verify(webhook(body, sign(SIGNING_KEY, str(NOW), body), str(NOW)))


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("not-base64!", "must be base64"),
        (base64.b64encode(bytes(31)).decode(), "32 bytes, this one is 31"),
        (base64.b64encode(bytes(64)).decode(), "32 bytes, this one is 64"),
    ],
)
def test_malformed_public_key_fails_at_build(key: str, words: str) -> None:
    with pytest.raises(ValueError, match=words) as caught:
        build(CarrierConfig({"PARLEY_TELNYX_PUBLIC_KEY": key}))
    assert "PARLEY_TELNYX_PUBLIC_KEY" in str(caught.value)
    with pytest.raises(ValueError, match="PARLEY_TELNYX_PUBLIC_KEY_PREVIOUS"):
        build(
            CarrierConfig({"PARLEY_TELNYX_PUBLIC_KEY": PUBLIC_KEY, "PARLEY_TELNYX_PUBLIC_KEY_PREVIOUS": key})
        )


def test_webhook_path_imports_neither_requests_nor_cryptography_at_module_level() -> None:
    """The 2-second deadline: importing the plugin must stay cheap on a cold start."""
    code = (
        "import sys; import parley.carriers.telnyx; "
        "print(sorted(m for m in ('requests', 'cryptography', 'pydantic', 'phonenumbers', 'urllib3') "
        "if m in sys.modules))"
    )
    layer = str(Path(__file__).resolve().parents[2] / "layers" / "common")
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": layer, "PATH": "/usr/bin:/bin"},
        timeout=30,
    )
    assert result.stdout.strip() == "[]"


# -- parsing ----------------------------------------------------------------------------------------


def parse(body: bytes | dict[str, Any], kind: WebhookKind = WebhookKind.EVENTS) -> list[Any]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return carrier().parse(kind, webhook(raw, "unused", str(NOW)))


def envelope(event_type: str, payload: dict[str, Any], **data: Any) -> dict[str, Any]:
    return {
        "data": {
            "event_type": event_type,
            "id": "0ae7c1d0-0000-4000-8000-000000000001",
            "occurred_at": "2026-11-28T04:05:03.900+00:00",
            "payload": payload,
            "record_type": "event",
            **data,
        },
        "meta": {"attempt": 1, "delivered_to": EVENTS_URL},
    }


def outbound_payload(*statuses: str, errors: list[Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "40385f64-5717-4562-b3fc-2c963f66afa6",
        "direction": "outbound",
        "type": "SMS",
        "from": {"phone_number": OUR_NUMBER},
        "to": [{"phone_number": CUSTOMER, "status": s} for s in statuses],
        "errors": errors or [],
        "parts": 1,
        **extra,
    }


def test_parse_inbound_sms_sample() -> None:
    [event] = parse(sample_body("inbound_sms.json"))
    assert isinstance(event, ParsedInbound)
    assert event.carrier == "telnyx"
    assert event.carrier_message_id == "b0c7e8cb-6227-4c74-9f32-c7f80c30934b"
    assert (event.from_number, event.to_number) == (CUSTOMER, OUR_NUMBER)
    assert event.body == "Hi! Is order #1234 ready? \U0001f600"
    assert event.media == ()
    assert event.segments == 1
    assert event.received_at == datetime(2026, 11, 28, 4, 0, 0, 397000, tzinfo=UTC)
    assert event.opt_out is None
    assert event.raw["data"]["id"] == "5ba7d1e6-0c39-4bd0-9a8e-a1d6f2e4b001"  # the event id is kept
    json.dumps(event.to_wire())  # what the webhook enqueues must serialise


def test_parse_inbound_mms_sample() -> None:
    [event] = parse(sample_body("inbound_mms.json"))
    assert isinstance(event, ParsedInbound)
    assert event.body == "Here is the damaged box"
    base = "https://media.telnyx.com/messaging/mms/e41b3f9a-5c2d-4e8f-a7b6-1d0c9e8f7a63"
    assert event.media == (
        ParsedMedia(f"{base}/IMG_0042.jpg", "image/jpeg"),
        ParsedMedia(f"{base}/label.png", "image/png"),
    )


def test_parse_published_stop_vector_reports_the_carriers_opt_out() -> None:
    [event] = parse(VECTOR_BODY)
    assert isinstance(event, ParsedInbound)
    assert (event.body, event.opt_out) == ("STOP", "STOP")
    assert (event.from_number, event.to_number) == ("+13125550001", "+17735550002")


@pytest.mark.parametrize(
    ("autoresponse_type", "expected"),
    [
        ("STOP", "STOP"),
        ("stop", "STOP"),
        ("Unsubscribe", "STOP"),
        ("START", "START"),
        ("unstop", "START"),
        ("HELP", "HELP"),
        ("info", "HELP"),
        (None, None),
        ("", None),
        ("JOIN", None),
        (42, None),
    ],
)
def test_autoresponse_type_becomes_opt_out(autoresponse_type: object, expected: str | None) -> None:
    payload = {
        "id": "m1",
        "type": "SMS",
        "text": "whatever they typed",
        "from": {"phone_number": CUSTOMER},
        "to": [{"phone_number": OUR_NUMBER, "status": "webhook_delivered"}],
        "autoresponse_type": autoresponse_type,
    }
    [event] = parse(envelope("message.received", payload))
    assert event.opt_out == expected


def test_inbound_with_media_only_has_an_empty_body_and_skips_bad_entries() -> None:
    payload = {
        "id": "m2",
        "type": "MMS",
        "text": None,
        "from": {"phone_number": CUSTOMER},
        "to": [{"phone_number": OUR_NUMBER}],
        "media": [{"url": "https://m.example/a.jpg", "content_type": 7}, {"size": 3}, "junk", {"url": ""}],
        "parts": "many",
        "received_at": "yesterday",
    }
    [event] = parse(envelope("message.received", payload))
    assert event.body == ""
    assert event.media == (ParsedMedia("https://m.example/a.jpg", None),)
    assert event.segments is None
    assert event.received_at == datetime(2026, 11, 28, 4, 5, 3, 900000, tzinfo=UTC)  # occurred_at


@pytest.mark.parametrize("message_type", ["WHATSAPP", "RCS"])
def test_inbound_chat_messages_are_not_texts(message_type: str) -> None:
    payload = {"id": "m3", "type": message_type, "text": "hi", "from": {"phone_number": CUSTOMER}}
    assert parse(envelope("message.received", {**payload, "to": OUR_NUMBER})) == []


STATUS_WORDS = [
    ("queued", MessageStatus.ACCEPTED),
    ("sending", MessageStatus.SENDING),
    ("sent", MessageStatus.SENT),
    ("expired", MessageStatus.UNDELIVERED),
    ("sending_failed", MessageStatus.FAILED),
    ("delivery_unconfirmed", MessageStatus.SENT),
    ("delivered", MessageStatus.DELIVERED),
    ("delivery_failed", MessageStatus.UNDELIVERED),
    ("read", MessageStatus.READ),
]


@pytest.mark.parametrize(("word", "expected"), STATUS_WORDS)
@pytest.mark.parametrize("event_type", ["message.sent", "message.finalized"])
def test_parse_every_status_word(event_type: str, word: str, expected: MessageStatus) -> None:
    [event] = parse(envelope(event_type, outbound_payload(word)))
    assert isinstance(event, ParsedStatus)
    assert event.carrier == "telnyx"
    assert event.carrier_message_id == "40385f64-5717-4562-b3fc-2c963f66afa6"
    assert (event.status, event.carrier_status) == (expected, word)
    assert (event.error_code, event.error_message, event.opted_out) == (None, None, False)
    assert (event.part, event.parts) == (None, None)  # Telnyx reports per message, not per segment
    assert event.occurred_at == datetime(2026, 11, 28, 4, 5, 3, 900000, tzinfo=UTC)


def test_status_words_cover_the_sdk_vocabulary() -> None:
    annotation = SdkOutboundRecipient.model_fields["status"].annotation
    [literal] = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    sdk_words = set(typing.get_args(literal))
    assert len(sdk_words) == 9
    assert sdk_words == {word for word, _ in STATUS_WORDS} == set(STATUS_MAP)
    allowed = {
        MessageStatus.ACCEPTED,
        MessageStatus.SENDING,
        MessageStatus.SENT,
        MessageStatus.DELIVERED,
        MessageStatus.UNDELIVERED,
        MessageStatus.FAILED,
        MessageStatus.READ,
        MessageStatus.PARTIALLY_DELIVERED,
        MessageStatus.CANCELED,
    }
    assert set(STATUS_MAP.values()) <= allowed


def test_parse_failed_sample_carries_the_error() -> None:
    [event] = parse(sample_body("status_failed.json"))
    assert isinstance(event, ParsedStatus)
    assert (event.status, event.carrier_status) == (MessageStatus.UNDELIVERED, "delivery_failed")
    assert (event.error_code, event.error_message) == ("40006", "Recipient server unavailable")
    assert event.opted_out is False
    assert classify_error(event.error_code, None)[0] is FailureKind.TRANSIENT


def test_parse_delivered_sample() -> None:
    [event] = parse(sample_body("status_delivered.json"))
    assert isinstance(event, ParsedStatus)
    assert (event.status, event.carrier_message_id) == (
        MessageStatus.DELIVERED,
        "40385f64-5717-4562-b3fc-2c963f66afa6",
    )
    assert event.raw["data"]["id"] == "8c0e1f2a-3b4c-4d5e-8f6a-7b8c9d0e1f2a"
    json.dumps(event.to_wire())


def test_stop_block_error_marks_the_receipt_opted_out() -> None:
    errors = [{"code": 40300, "title": "Blocked due to STOP message"}]
    [event] = parse(envelope("message.finalized", outbound_payload("sending_failed", errors=errors)))
    assert (event.status, event.error_code, event.opted_out) == (MessageStatus.FAILED, "40300", True)
    assert event.error_message == "Blocked due to STOP message"


def test_error_detail_is_used_when_there_is_no_title() -> None:
    errors = [{"code": "40001", "detail": "Landline"}, {"code": "40008", "title": "Undeliverable"}]
    [event] = parse(envelope("message.finalized", outbound_payload("delivery_failed", errors=errors)))
    assert (event.error_code, event.error_message) == ("40001", "Landline")
    assert classify_error("40001", None) == (
        FailureKind.PERMANENT,
        "the number is a landline or can't receive texts",
    )


def test_one_receipt_per_recipient() -> None:
    payload = outbound_payload("delivered", "delivery_failed")
    payload["to"][1]["phone_number"] = "+14155550199"
    events = parse(envelope("message.finalized", payload))
    assert [(e.carrier_message_id, e.status) for e in events] == [
        ("40385f64-5717-4562-b3fc-2c963f66afa6", MessageStatus.DELIVERED),
        ("40385f64-5717-4562-b3fc-2c963f66afa6", MessageStatus.UNDELIVERED),
    ]


def test_receipt_time_falls_back_to_completed_at() -> None:
    document = envelope(
        "message.finalized", outbound_payload("delivered", completed_at="2026-11-28T04:06:00Z")
    )
    del document["data"]["occurred_at"]
    [event] = parse(document)
    assert event.occurred_at == datetime(2026, 11, 28, 4, 6, tzinfo=UTC)


@pytest.mark.parametrize(
    "event_type",
    ["message.read", "message.queued", "call.initiated", "number_order.complete", "webhook.test"],
)
def test_event_types_we_do_not_use_give_nothing(event_type: str) -> None:
    assert parse(envelope(event_type, {"id": "x"})) == []
    assert parse({"data": {"event_type": event_type}}) == []  # not even a payload needed


@pytest.mark.parametrize("kind", list(WebhookKind))
def test_the_event_type_decides_whatever_the_url_kind(kind: WebhookKind) -> None:
    [event] = parse(sample_body("inbound_sms.json"), kind)
    assert isinstance(event, ParsedInbound)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"", "not JSON"),
        (b"{not json", "not JSON"),
        (b"\xff\xfe{}", "not JSON"),
        (b"[" * 100_000, "not JSON"),
        (b"[]", "not a JSON object"),
        (b'"message.received"', "not a JSON object"),
        (b"{}", "'data'"),
        (b'{"data": []}', "'data'"),
        (b'{"data": {}}', "event_type"),
        (b'{"data": {"event_type": 5}}', "event_type"),
        (b'{"data": {"event_type": "message.received"}}', "payload"),
        (b'{"data": {"event_type": "message.finalized", "payload": "x"}}', "payload"),
    ],
)
def test_malformed_bodies_are_payload_errors(body: bytes, words: str) -> None:
    with pytest.raises(PayloadError, match=words):
        parse(body)


INBOUND = {"id": "m1", "text": "hi", "from": {"phone_number": CUSTOMER}, "to": [{"phone_number": OUR_NUMBER}]}


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"id": None}, "payload.id"),
        ({"id": ""}, "payload.id"),
        ({"from": None}, "from.phone_number"),
        ({"from": {"carrier": "x"}}, "from.phone_number"),
        ({"to": []}, "to has no phone number"),
        ({"to": [{"status": "webhook_delivered"}]}, "to has no phone number"),
        ({"text": ["hi"]}, "text is not a string"),
    ],
)
def test_inbound_without_what_we_need_is_a_payload_error(change: dict[str, Any], words: str) -> None:
    with pytest.raises(PayloadError, match=words):
        parse(envelope("message.received", {**INBOUND, **change}))


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({**outbound_payload("delivered"), "id": 7}, "payload.id"),
        ({**outbound_payload("delivered"), "to": []}, "no recipients"),
        ({**outbound_payload("delivered"), "to": "+14155550100"}, "no recipients"),
        ({**outbound_payload("delivered"), "to": ["+14155550100"]}, "status is missing"),
        (outbound_payload(""), "status is missing"),
        (outbound_payload("bounced"), "unknown Telnyx message status 'bounced'"),
        (outbound_payload("webhook_delivered"), "unknown Telnyx message status"),
        (outbound_payload(*["sent"] * 51), "more than 50 recipients"),
    ],
)
def test_receipt_without_what_we_need_is_a_payload_error(payload: dict[str, Any], words: str) -> None:
    with pytest.raises(PayloadError, match=words):
        parse(envelope("message.finalized", payload))


def test_ack_is_an_empty_200() -> None:
    for kind in WebhookKind:
        ack = carrier().ack(kind)
        assert (ack.status_code, ack.body, ack.content_type) == (200, "", "text/plain")


# -- the samples in events/carriers/telnyx ----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("inbound_sms.json", ParsedInbound),
        ("inbound_mms.json", ParsedInbound),
        ("status_delivered.json", ParsedStatus),
        ("status_failed.json", ParsedStatus),
    ],
)
def test_every_webhook_sample_parses(name: str, expected: type) -> None:
    document = sample(name)
    assert document["content_type"] == "application/json" and document["description"]
    [event] = parse(sample_body(name))
    assert isinstance(event, expected)
    if isinstance(event, ParsedInbound):
        assert (event.from_number, event.to_number) == (CUSTOMER, OUR_NUMBER)
    else:
        assert isinstance(event, ParsedStatus)
        assert event.status in (MessageStatus.DELIVERED, MessageStatus.UNDELIVERED)


def test_samples_cover_the_required_files() -> None:
    names = {p.name for p in SAMPLES.glob("*.json")}
    assert {
        "inbound_sms.json",
        "inbound_mms.json",
        "status_delivered.json",
        "status_failed.json",
        "send_error.json",
    } <= names


# -- sending against a local Telnyx stand-in --------------------------------------------------------


carrier_api_server, fake = carrier_api_fixtures("fake")

TEXT = OutboundText(
    message_id="out_0123456789abcdef0123456789",
    from_number=OUR_NUMBER,
    to_number=CUSTOMER,
    body="Your order #1234 is ready & waiting \u2705",
    status_callback_url=EVENTS_URL,
)
ACCEPTED = {
    "data": {
        "id": "40385f64-5717-4562-b3fc-2c963f66afa6",
        "record_type": "message",
        "direction": "outbound",
        "type": "SMS",
        "parts": 2,
        "from": {"phone_number": OUR_NUMBER, "carrier": "Telnyx", "line_type": "Wireless"},
        "to": [{"phone_number": CUSTOMER, "status": "queued", "carrier": "T-MOBILE USA, INC."}],
        "text": TEXT.body,
    }
}


def send_via(fake: FakeCarrierApi, text: OutboundText = TEXT, timeout: float = 5.0, **kwargs: Any) -> Any:
    return TelnyxCarrier(api_key=API_KEY, api_base=fake.url + "/", timeout=timeout, **kwargs).send(text)


def test_send_accepted_and_the_request_telnyx_sees(fake: FakeCarrierApi) -> None:
    fake.json(200, ACCEPTED)
    outcome = send_via(fake)
    assert outcome == SendAccepted("40385f64-5717-4562-b3fc-2c963f66afa6", "queued", 2)
    [seen] = fake.seen
    assert (seen.method, seen.path) == ("POST", "/v2/messages")
    assert seen.headers["authorization"] == f"Bearer {API_KEY}"
    assert seen.headers["idempotency-key"] == TEXT.message_id
    assert seen.headers["content-type"] == "application/json"
    assert seen.json == {
        "from": OUR_NUMBER,
        "to": CUSTOMER,
        "text": "Your order #1234 is ready & waiting \u2705",
        "webhook_url": EVENTS_URL,
    }


def test_send_mms_with_a_messaging_profile_and_no_callback(fake: FakeCarrierApi) -> None:
    fake.json(200, {"data": {"id": "m-2", "to": [{"status": "queued"}]}})
    text = OutboundText(
        "out_2", OUR_NUMBER, CUSTOMER, "", None, ("https://m.example/a.jpg", "https://m.example/b.png")
    )
    outcome = send_via(fake, text, messaging_profile_id="4001767e-ce0f-4cae-9d5f-0d5e636e7809")
    assert outcome == SendAccepted("m-2", "queued", None)
    assert fake.seen[0].json == {
        "from": OUR_NUMBER,
        "to": CUSTOMER,
        "media_urls": ["https://m.example/a.jpg", "https://m.example/b.png"],
        "messaging_profile_id": "4001767e-ce0f-4cae-9d5f-0d5e636e7809",
    }


def test_a_resend_is_byte_identical_with_the_same_key(fake: FakeCarrierApi) -> None:
    """Telnyx answers 422 to a reused key whose body differs, so a retry must repeat the bytes."""
    fake.json(500, {"errors": [{"code": "10007", "title": "Unexpected error"}]})
    first = send_via(fake)
    fake.json(200, ACCEPTED)
    second = send_via(fake)
    assert isinstance(first, SendFailed) and first.kind is FailureKind.TRANSIENT
    assert isinstance(second, SendAccepted)
    assert fake.seen[0].body == fake.seen[1].body
    assert fake.seen[0].headers["idempotency-key"] == fake.seen[1].headers["idempotency-key"]


@pytest.mark.parametrize(
    "message_id",
    ["out_abc", "8e03978e-40d5-43e8-bc93-6894a57f9326", "a:b_c-d", "x" * 255],
)
def test_message_ids_in_telnyx_key_format_are_the_key(message_id: str) -> None:
    assert idempotency_key(message_id) == message_id


@pytest.mark.parametrize("message_id", ["", "has space", "slash/ed", "x" * 256, "caf\u00e9", "line\nbreak"])
def test_other_message_ids_get_a_stable_key_in_telnyx_format(message_id: str) -> None:
    key = idempotency_key(message_id)
    assert key == idempotency_key(message_id) and key != idempotency_key(message_id + "!")
    assert idempotency_key(key) == key  # already in the format
    assert len(key) <= 255 and all(c.isalnum() or c in "_:-" for c in key)


@pytest.mark.parametrize(
    ("status", "payload", "kind", "reason", "code", "opted_out"),
    [
        (
            400,
            sample("send_error.json")["body"],
            FailureKind.PERMANENT,
            "the number is not a valid phone number",
            "40310",
            False,
        ),
        (
            400,
            {"errors": [{"code": "40300", "title": "Blocked due to STOP message"}]},
            FailureKind.PERMANENT,
            "the recipient has opted out (replied STOP)",
            "40300",
            True,
        ),
        (
            403,
            {"errors": [{"code": "40300", "title": "Blocked due to STOP message"}]},
            FailureKind.PERMANENT,
            "the recipient has opted out (replied STOP)",
            "40300",
            True,
        ),
        (
            401,
            {"errors": [{"code": "10009", "title": "Authentication failed"}]},
            FailureKind.PERMANENT,
            "the carrier rejected our credentials (check the Telnyx API key)",
            "10009",
            False,
        ),
        (
            401,
            "",
            FailureKind.PERMANENT,
            "the carrier rejected our credentials (check the Telnyx API key)",
            None,
            False,
        ),
        (
            422,
            {"errors": [{"code": "40305", "title": "Invalid 'from' address"}]},
            FailureKind.PERMANENT,
            "our sending number is not valid for this account",
            "40305",
            False,
        ),
        (
            400,
            {"errors": [{"code": 20100, "title": "Insufficient funds"}]},
            FailureKind.PERMANENT,
            "our Telnyx account is out of funds",
            "20100",
            False,
        ),
        (
            429,
            {"errors": [{"code": "10011", "title": "Too many requests"}]},
            FailureKind.TRANSIENT,
            "the carrier is rate limiting us; it will be retried",
            "10011",
            False,
        ),
        (
            429,
            "slow down",
            FailureKind.TRANSIENT,
            "the carrier is rate limiting us; it will be retried",
            None,
            False,
        ),
        (
            500,
            {"errors": [{"code": "10007", "title": "Unexpected error"}]},
            FailureKind.TRANSIENT,
            "the carrier had a server error (HTTP 500); it will be retried",
            "10007",
            False,
        ),
        (
            503,
            "<html>Service Unavailable</html>",
            FailureKind.TRANSIENT,
            "the carrier had a server error (HTTP 503); it will be retried",
            None,
            False,
        ),
        (
            409,
            {"errors": [{"title": "Conflict"}]},
            FailureKind.TRANSIENT,
            "the carrier is still working on an earlier attempt; it will be retried",
            None,
            False,
        ),
        (
            422,
            {"errors": [{"code": "49999", "title": "Something new went wrong"}]},
            FailureKind.PERMANENT,
            "the carrier rejected the message: Something new went wrong",
            "49999",
            False,
        ),
        (
            422,
            {
                "errors": [
                    {"code": "49999", "title": "Odd"},
                    {"code": "40310", "title": "Invalid 'to' address"},
                ]
            },
            FailureKind.PERMANENT,
            "the number is not a valid phone number",
            "40310",
            False,
        ),
        (
            400,
            "<html>Bad Request</html>",
            FailureKind.PERMANENT,
            "the carrier rejected the message (HTTP 400)",
            None,
            False,
        ),
    ],
)
def test_send_failures_are_classified(
    fake: FakeCarrierApi,
    status: int,
    payload: str | dict[str, Any],
    kind: FailureKind,
    reason: str,
    code: str | None,
    opted_out: bool,
) -> None:
    fake.json(status, payload)
    outcome = send_via(fake)
    assert outcome == SendFailed(kind, reason, code, status, opted_out)
    assert len(fake.seen) == 1  # never retried inside send: the retry function owns that


def test_success_without_an_id_is_retried_under_the_same_key(fake: FakeCarrierApi) -> None:
    fake.json(200, "not json")
    outcome = send_via(fake)
    assert isinstance(outcome, SendFailed)
    assert (outcome.kind, outcome.http_status) == (FailureKind.TRANSIENT, 200)


def test_redirect_is_not_followed(fake: FakeCarrierApi) -> None:
    fake.reply = lambda _r: Response(status=307, headers={"Location": "/elsewhere"})
    outcome = send_via(fake)
    assert isinstance(outcome, SendFailed)
    assert (outcome.kind, outcome.http_status) == (FailureKind.PERMANENT, 307)
    assert [s.path for s in fake.seen] == ["/v2/messages"]


def test_read_timeout_after_the_request_arrived_is_safe_to_retry(fake: FakeCarrierApi) -> None:
    fake.slow(200, ACCEPTED)
    outcome = send_via(fake, timeout=0.2)
    assert fake.received.wait(5)  # Telnyx had the request; the key makes a resend harmless
    assert isinstance(outcome, SendFailed)
    assert outcome.kind is FailureKind.TRANSIENT
    assert (outcome.error_code, outcome.http_status) == (None, None)
    assert "without a second text" in outcome.reason


def test_connection_refused_is_transient() -> None:
    with refused_url() as url:
        outcome = TelnyxCarrier(api_key=API_KEY, api_base=url).send(TEXT)
    assert isinstance(outcome, SendFailed)
    assert outcome.kind is FailureKind.TRANSIENT
    assert (outcome.error_code, outcome.http_status) == (None, None)


@pytest.mark.parametrize("api_base", ["not a url", "ftp://api.example"])
def test_misconfigured_api_base_is_permanent(api_base: str) -> None:
    outcome = TelnyxCarrier(api_key=API_KEY, api_base=api_base).send(TEXT)
    assert isinstance(outcome, SendFailed)
    assert outcome.kind is FailureKind.PERMANENT and "PARLEY_TELNYX_API_BASE" in outcome.reason


@pytest.mark.parametrize(("api_key", "words"), [("", "not configured"), ("KEY with\nnewline", "malformed")])
def test_missing_or_malformed_api_key_fails_the_send_without_calling_telnyx(
    fake: FakeCarrierApi, api_key: str, words: str
) -> None:
    outcome = TelnyxCarrier(api_key=api_key, api_base=fake.url).send(TEXT)
    assert isinstance(outcome, SendFailed)
    assert outcome.kind is FailureKind.PERMANENT and words in outcome.reason
    assert "PARLEY_TELNYX_API_KEY" in outcome.reason
    assert fake.seen == []


def test_api_key_is_read_on_the_first_send_only(fake: FakeCarrierApi) -> None:
    reads: list[str] = []
    failures = iter([RuntimeError("ssm throttled")])

    def read_key() -> str:
        reads.append("read")
        for failure in failures:
            raise failure
        return API_KEY

    built = TelnyxCarrier(api_key=read_key, api_base=fake.url)
    assert reads == []  # building (a webhook cold start) reads no secret
    first = built.send(TEXT)
    assert isinstance(first, SendFailed) and first.kind is FailureKind.TRANSIENT
    assert fake.seen == []
    fake.json(200, ACCEPTED)
    assert isinstance(built.send(TEXT), SendAccepted)
    assert isinstance(built.send(TEXT), SendAccepted)
    assert reads == ["read", "read"]
    assert all(s.headers["authorization"] == f"Bearer {API_KEY}" for s in fake.seen)


def test_send_logs_neither_the_key_nor_the_full_number(
    fake: FakeCarrierApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="parley")
    fake.json(200, ACCEPTED)
    send_via(fake)
    fake.json(400, {"errors": [{"code": "40310", "title": "Invalid 'to' address", "detail": CUSTOMER}]})
    send_via(fake)
    assert "40385f64" in caplog.text and "40310" in caplog.text
    assert API_KEY not in caplog.text
    assert CUSTOMER not in caplog.text
    assert "+1********00" in caplog.text
    assert API_KEY not in repr(TelnyxCarrier(api_key=API_KEY))


# -- error classification for receipts --------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "kind", "words"),
    [
        ("40001", FailureKind.PERMANENT, "landline"),
        ("40002", FailureKind.TRANSIENT, "spam"),
        ("40003", FailureKind.PERMANENT, "spam"),
        ("40004", FailureKind.TRANSIENT, "rejected"),
        ("40005", FailureKind.TRANSIENT, "expired"),
        ("40006", FailureKind.TRANSIENT, "unavailable"),
        ("40008", FailureKind.PERMANENT, "would not accept"),
        ("40009", FailureKind.PERMANENT, "text"),
        ("40010", FailureKind.PERMANENT, "10DLC"),
        ("40011", FailureKind.TRANSIENT, "rate limiting"),
        ("40012", FailureKind.PERMANENT, "not a valid phone number"),
        ("40014", FailureKind.TRANSIENT, "queue"),
        ("40300", FailureKind.PERMANENT, "opted out"),
        (" 40006 ", FailureKind.TRANSIENT, "unavailable"),
        ("49999", FailureKind.PERMANENT, "error 49999"),
        (None, FailureKind.PERMANENT, "could not deliver"),
        ("", FailureKind.PERMANENT, "could not deliver"),
    ],
)
def test_classify_receipt_error_codes(code: str | None, kind: FailureKind, words: str) -> None:
    got_kind, reason = carrier().classify(code, None)
    assert got_kind is kind
    assert words in reason


def test_every_reason_is_plain_words() -> None:
    for code, (kind, reason) in ERROR_CODES.items():
        assert code.isdigit() and kind in (FailureKind.PERMANENT, FailureKind.TRANSIENT)
        assert reason == reason.strip() and not reason.endswith(".") and "_" not in reason
        assert kind is FailureKind.PERMANENT or "retried" in reason


def test_send_error_sample_is_permanent() -> None:
    [error] = sample("send_error.json")["body"]["errors"]
    assert classify_error(error["code"], 400) == (
        FailureKind.PERMANENT,
        "the number is not a valid phone number",
    )


# -- fuzzing ------------------------------------------------------------------------------------------

FUZZ_CARRIER = carrier()
JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the expected shape, sometimes any JSON value at all."""
    return st.integers(0, 9).flatmap(lambda roll: strategy if roll else JSON_VALUES)


def _check_events(events: list[Any]) -> None:
    for event in events:
        assert isinstance(event, ParsedInbound | ParsedStatus)
        json.dumps(event.to_wire())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_fuzz_parse_arbitrary_bytes_raises_only_payload_error(body: bytes) -> None:
    try:
        events = FUZZ_CARRIER.parse(WebhookKind.EVENTS, webhook(body, None, None))
    except PayloadError:
        return
    _check_events(events)


PLAUSIBLE_PAYLOAD = st.fixed_dictionaries(
    {
        "id": maybe(st.text(min_size=1, max_size=40)),
        "from": maybe(st.fixed_dictionaries({"phone_number": maybe(st.text(min_size=1, max_size=16))})),
        "to": maybe(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "phone_number": maybe(st.text(min_size=1, max_size=16)),
                        "status": maybe(st.sampled_from([*STATUS_MAP, "webhook_delivered", "bounced"])),
                    },
                ),
                max_size=3,
            )
        ),
    },
    optional={
        "type": maybe(st.sampled_from(["SMS", "MMS", "WHATSAPP", "RCS", "sms"])),
        "text": maybe(st.text(max_size=40)),
        "media": maybe(
            st.lists(
                st.fixed_dictionaries({"url": maybe(st.text()), "content_type": maybe(st.text())}), max_size=3
            )
        ),
        "errors": maybe(
            st.lists(
                st.fixed_dictionaries(
                    {"code": maybe(st.integers() | st.text(max_size=8))}, optional={"title": maybe(st.text())}
                ),
                max_size=3,
            )
        ),
        "parts": maybe(st.integers()),
        "autoresponse_type": maybe(st.sampled_from(["STOP", "START", "HELP", "stop all", ""])),
        "received_at": maybe(st.datetimes().map(datetime.isoformat) | st.text(max_size=30)),
        "completed_at": maybe(st.text(max_size=30)),
    },
)
PLAUSIBLE_DOCUMENT = st.fixed_dictionaries(
    {
        "data": maybe(
            st.fixed_dictionaries(
                {
                    "event_type": maybe(
                        st.sampled_from(
                            ["message.received", "message.sent", "message.finalized", "message.read"]
                        )
                    ),
                    "payload": maybe(PLAUSIBLE_PAYLOAD),
                },
                optional={"id": JSON_VALUES, "occurred_at": maybe(st.text(max_size=40))},
            )
        )
    },
    optional={"meta": JSON_VALUES},
)


@settings(max_examples=200, deadline=None)
@given(PLAUSIBLE_DOCUMENT)
def test_fuzz_parse_plausible_payloads_raises_only_payload_error(document: dict[str, Any]) -> None:
    body = json.dumps(document).encode()
    try:
        events = FUZZ_CARRIER.parse(WebhookKind.EVENTS, webhook(body, None, None))
    except PayloadError:
        return
    _check_events(events)


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(max_size=500),
    signature=st.none()
    | st.text(max_size=100)
    | st.binary(min_size=60, max_size=68).map(lambda b: base64.b64encode(b).decode()),
    timestamp=st.none() | st.text(max_size=20) | st.integers(NOW - 400, NOW + 400).map(str),
)
def test_fuzz_verify_raises_only_signature_error(
    body: bytes, signature: str | None, timestamp: str | None
) -> None:
    with pytest.raises(SignatureError):
        FUZZ_CARRIER.verify(webhook(body, signature, timestamp))


# -- building -----------------------------------------------------------------------------------------


def test_build_reads_the_parley_telnyx_settings(fake: FakeCarrierApi) -> None:
    env = {
        "PARLEY_TELNYX_PUBLIC_KEY": PUBLIC_KEY,
        "PARLEY_TELNYX_PUBLIC_KEY_PREVIOUS": f" {OTHER_PUBLIC_KEY} ,",
        "PARLEY_TELNYX_API_KEY": API_KEY,
        "PARLEY_TELNYX_API_BASE": fake.url + "/",
        "PARLEY_TELNYX_MESSAGING_PROFILE_ID": "profile-1",
        "PARLEY_CARRIER_TIMEOUT_SECONDS": "2.5",
    }
    built: Carrier = build(CarrierConfig(env))
    assert isinstance(built, TelnyxCarrier)
    assert (built.name, built.api_base, built.timeout, built.messaging_profile_id) == (
        "telnyx",
        fake.url,
        2.5,
        "profile-1",
    )
    body = sample_body("inbound_sms.json")
    now = str(int(datetime.now(UTC).timestamp()))
    built.verify(webhook(body, sign(SIGNING_KEY, now, body), now))
    built.verify(webhook(body, sign(OTHER_KEY, now, body), now))  # the previous key, while rotating
    fake.json(200, ACCEPTED)
    assert isinstance(built.send(TEXT), SendAccepted)
    assert fake.seen[0].headers["authorization"] == f"Bearer {API_KEY}"
    assert fake.seen[0].json["messaging_profile_id"] == "profile-1"


def test_a_deployed_stack_rotates_the_public_key_with_new_comma_old_in_one_setting() -> None:
    """The TelnyxPublicKey parameter is the only setting a deployed stack has: "new,old" accepts both."""
    body = sample_body("inbound_sms.json")
    now = str(int(datetime.now(UTC).timestamp()))
    rotating = build(CarrierConfig({"PARLEY_TELNYX_PUBLIC_KEY": f"{PUBLIC_KEY}, {OTHER_PUBLIC_KEY}"}))
    rotating.verify(webhook(body, sign(SIGNING_KEY, now, body), now))
    rotating.verify(webhook(body, sign(OTHER_KEY, now, body), now))
    settled = build(CarrierConfig({"PARLEY_TELNYX_PUBLIC_KEY": PUBLIC_KEY}))
    settled.verify(webhook(body, sign(SIGNING_KEY, now, body), now))
    with pytest.raises(SignatureError):
        settled.verify(webhook(body, sign(OTHER_KEY, now, body), now))


def test_registry_builds_telnyx_and_reads_the_api_key_from_ssm_on_first_send(fake: FakeCarrierApi) -> None:
    asked: list[tuple[str, str]] = []

    def ssm(name: str, region: str) -> str:
        asked.append((name, region))
        return API_KEY

    env = {
        "PARLEY_TELNYX_API_KEY_PARAM": "/parley/telnyx/api-key",
        "PARLEY_TELNYX_API_BASE": fake.url,
        "AWS_REGION": "eu-west-1",
    }
    built = build_carrier("telnyx", CarrierConfig(env, ssm=ssm))
    assert "telnyx" in known_carriers()
    assert isinstance(built, TelnyxCarrier) and built.api_base == fake.url
    assert asked == []
    fake.json(200, ACCEPTED)
    assert isinstance(built.send(TEXT), SendAccepted)
    assert asked == [("/parley/telnyx/api-key", "eu-west-1")]


def test_build_without_any_settings_uses_telnyx_and_fails_clearly_when_used() -> None:
    built = build(CarrierConfig({}))
    assert built.api_base == "https://api.telnyx.com"
    assert built.messaging_profile_id is None
    with pytest.raises(SignatureError, match="PARLEY_TELNYX_PUBLIC_KEY"):
        built.verify(
            webhook(b"{}", base64.b64encode(bytes(64)).decode(), str(int(datetime.now(UTC).timestamp())))
        )
    outcome = built.send(TEXT)
    assert isinstance(outcome, SendFailed) and "PARLEY_TELNYX_API_KEY" in outcome.reason
