"""The Vonage Messages plugin against Vonage's own token code and a local HTTP stand-in for its API.

Webhook tokens are made with PyJWT (what Vonage's SDKs use) and checked with the official
`vonage_jwt.verify_signature`, plus the published vector in carriers.md section 11, so the verifier is
checked against independent code, not against itself. `vonage_jwt.JwtClient` supplies an RS256
application token that must be refused. Sends go over real sockets to a werkzeug server on 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from vonage_jwt import JwtClient, verify_signature  # type: ignore[import-untyped]
from werkzeug.wrappers import Response

from parley.carriers.base import (
    FailureKind,
    OutboundText,
    ParsedInbound,
    ParsedMedia,
    ParsedStatus,
    PayloadError,
    SendAccepted,
    SendFailed,
    SentLookup,
    SignatureError,
    WebhookKind,
    WebhookRequest,
)
from parley.carriers.config import CarrierConfig
from parley.carriers.registry import build_carrier
from parley.carriers.vonage_messages import (
    ERROR_CODES,
    UnsignedRequest,
    VonageMessagesCarrier,
    build,
    classify_error,
)
from parley.domain.vocabulary import MessageStatus
from tests.carrier_api import FakeCarrierApi, carrier_api_fixtures, hanging_up_after_the_request, refused_url

# Vonage lets people pick short signature secrets; PyJWT warns about those, we accept them.
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

SECRET = "sig-secret-5f1c8e2a9b7d4c3e"
OLD_SECRET = "sig-secret-previous-0a1b2c3d"
API_KEY = "abcd1234"
API_SECRET = "api-secret-9z8y7x"
NOW = 1_795_752_000.0  # 2026-11-28T04:00:00Z
URL = "https://abc123.execute-api.us-east-1.amazonaws.com/webhooks/vonage-messages/messages"
SAMPLES = Path(__file__).resolve().parents[2] / "events" / "carriers" / "vonage-messages"

# carriers.md section 11, vector "vonage-messages-signed-webhook-jwt" (generated with vonage-jwt 1.1.5).
VECTOR_SECRET = "fake-messages-signature-secret-0123456789abcdef"
VECTOR_TOKEN = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpYXQiOjE3MDAwMDAwMDAsImp0aSI6ImM4YjBiNGIyLTFhNTMtNGE4Yy05ZDBhL"
    "TZjMGM3YjZlOGYxMSIsImlzcyI6IlZvbmFnZSIsInBheWxvYWRfaGFzaCI6IjZhZTc5YWRjNDBiMzQyMWJiZTJjNmQ1OWEzNTExNzk"
    "xYTI0ODI5ODNkOTljNjBlNmViNGRhNWVkN2NjNDdmMTIiLCJhcGlfa2V5IjoiYWJjZDEyMzQiLCJhcHBsaWNhdGlvbl9pZCI6ImFh"
    "YWFhYWFhLWJiYmItY2NjYy1kZGRkLTAxMjM0NTY3ODlhYiJ9.3q8SxZgw9v4VF_VASSVQtftK_zGnsMbeYsZBD2qNIk8"
)
VECTOR_BODY = (
    b'{"channel":"sms","message_uuid":"aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab","to":"447700900000",'
    b'"from":"447700900001","timestamp":"2023-11-14T22:13:20Z","text":"Hello From Vonage!",'
    b'"message_type":"text","sms":{"num_messages":"1","keyword":"HELLO","total_count":"1"},'
    b'"usage":{"price":"0.0057","currency":"EUR"}}'
)
VECTOR_CLAIMS = {
    "iat": 1700000000,
    "jti": "c8b0b4b2-1a53-4a8c-9d0a-6c0c7b6e8f11",
    "iss": "Vonage",
    "payload_hash": "6ae79adc40b3421bbe2c6d59a3511791a2482983d99c60e6eb4da5ed7cc47f12",
    "api_key": "abcd1234",
    "application_id": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
}

INBOUND = {
    "channel": "sms",
    "message_uuid": "3f7c2a64-9b1e-4d0a-8c55-2e6f0b9d1a47",
    "to": "15005550006",
    "from": "14155550100",
    "timestamp": "2026-11-28T04:00:00Z",
    "text": "Hi! Is order #1234 ready? \U0001f600 a&b=c",
    "message_type": "text",
    "sms": {"num_messages": "2", "keyword": "HI", "total_count": "2"},
    "usage": {"price": "0.0057", "currency": "EUR"},
}
INBOUND_BODY = json.dumps(INBOUND, separators=(",", ":")).encode()


def b64url(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def sdk_token(body: bytes, secret: str = SECRET, *, iat: float = NOW, **claims: Any) -> str:
    """A Vonage-style webhook token made with PyJWT, the library Vonage's SDK verifies with."""
    payload: dict[str, Any] = {
        "iat": iat,
        "jti": "6c0c7b6e-8f11-4a8c-9d0a-c8b0b4b21a53",
        "iss": "Vonage",
        "payload_hash": hashlib.sha256(body).hexdigest(),
        "api_key": API_KEY,
        "application_id": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
    }
    payload.update(claims)
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, secret, algorithm="HS256")


def hand_token(claims_json: str, secret: str = SECRET, header: dict[str, Any] | None = None) -> str:
    """HS256 over exact JSON text, for claims PyJWT won't write (NaN, odd types)."""
    head = b64url(json.dumps(header or {"alg": "HS256", "typ": "JWT"}, separators=(",", ":")))
    signing_input = f"{head}.{b64url(claims_json)}"
    mac = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def webhook(body: bytes, token: str | None, *, authorization: str | None = None) -> WebhookRequest:
    headers = {"content-type": "application/json"}
    if authorization is not None:
        headers["authorization"] = authorization
    elif token is not None:
        headers["authorization"] = f"Bearer {token}"
    return WebhookRequest(method="POST", url=URL, headers=headers, body=body)


def carrier(
    secrets: tuple[str, ...] = (SECRET,), *, clock: Callable[[], float] = lambda: NOW, **kwargs: Any
) -> VonageMessagesCarrier:
    return VonageMessagesCarrier(API_KEY, API_SECRET, secrets, clock=clock, **kwargs)


# -- signatures -------------------------------------------------------------------------------------


def test_published_vector_is_accepted_and_reproduced_by_pyjwt() -> None:
    assert jwt.encode(VECTOR_CLAIMS, VECTOR_SECRET, algorithm="HS256") == VECTOR_TOKEN
    assert verify_signature(VECTOR_TOKEN, VECTOR_SECRET) is True  # the official SDK agrees
    assert hashlib.sha256(VECTOR_BODY).hexdigest() == VECTOR_CLAIMS["payload_hash"]
    carrier((VECTOR_SECRET,), clock=lambda: 1_700_000_030).verify(webhook(VECTOR_BODY, VECTOR_TOKEN))


def test_published_vector_is_stale_a_day_later() -> None:
    with pytest.raises(SignatureError, match="stale"):
        carrier((VECTOR_SECRET,), clock=lambda: 1_700_086_400).verify(webhook(VECTOR_BODY, VECTOR_TOKEN))


def test_sdk_token_for_a_realistic_inbound_is_accepted() -> None:
    token = sdk_token(INBOUND_BODY)
    assert verify_signature(token, SECRET) is True
    assert verify_signature(token, "another-secret") is False
    carrier().verify(webhook(INBOUND_BODY, token))


def test_bearer_scheme_is_case_insensitive() -> None:
    carrier().verify(webhook(INBOUND_BODY, None, authorization=f"bearer  {sdk_token(INBOUND_BODY)}"))


def test_previous_secret_is_accepted_during_rotation() -> None:
    token = sdk_token(INBOUND_BODY, OLD_SECRET)
    carrier((SECRET, OLD_SECRET)).verify(webhook(INBOUND_BODY, token))
    with pytest.raises(SignatureError, match="signature"):
        carrier((SECRET,)).verify(webhook(INBOUND_BODY, token))


def test_token_signed_with_another_secret_is_rejected() -> None:
    with pytest.raises(SignatureError, match="signature does not match"):
        carrier().verify(webhook(INBOUND_BODY, sdk_token(INBOUND_BODY, "0" * 32)))


def test_forged_signature_is_rejected_without_leaking_secrets() -> None:
    token = sdk_token(INBOUND_BODY)
    head, claims, real = token.split(".")
    forged = f"{head}.{claims}.{b64url(bytes(32))}"
    with pytest.raises(SignatureError) as caught:
        carrier().verify(webhook(INBOUND_BODY, forged))
    message = str(caught.value)
    assert SECRET not in message and real not in message


def test_body_altered_by_one_byte_is_rejected() -> None:
    token = sdk_token(INBOUND_BODY)
    altered = INBOUND_BODY.replace(b"#1234", b"#1235")
    assert len(altered) == len(INBOUND_BODY) and altered != INBOUND_BODY
    with pytest.raises(SignatureError, match="payload_hash"):
        carrier().verify(webhook(altered, token))


def test_claims_altered_in_the_token_are_rejected() -> None:
    """Swapping in claims with a fresh payload_hash (another body) breaks the signature."""
    token = sdk_token(INBOUND_BODY)
    head, _claims, signature = token.split(".")
    other_claims = sdk_token(b"{}").split(".")[1]
    with pytest.raises(SignatureError, match="signature"):
        carrier().verify(webhook(b"{}", f"{head}.{other_claims}.{signature}"))


@pytest.mark.parametrize("position", [0, 20, -1])
def test_signature_altered_by_one_character_is_rejected(position: int) -> None:
    token = sdk_token(INBOUND_BODY)
    head, claims, signature = token.split(".")
    chars = list(signature)
    chars[position] = "A" if chars[position] != "A" else "B"
    with pytest.raises(SignatureError):
        carrier().verify(webhook(INBOUND_BODY, f"{head}.{claims}.{''.join(chars)}"))


def test_non_canonical_signature_encoding_is_rejected() -> None:
    """The last base64url character of a 32-byte MAC carries 2 unused bits; a lenient decoder maps
    both spellings to the same bytes. We compare the canonical text, so the variant is refused."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    token = sdk_token(INBOUND_BODY)
    head, claims, signature = token.split(".")
    variant = signature[:-1] + alphabet[alphabet.index(signature[-1]) ^ 1]
    padded = variant + "=" * (-len(variant) % 4)
    assert base64.urlsafe_b64decode(padded) == base64.urlsafe_b64decode(signature + "=")
    with pytest.raises(SignatureError, match="signature"):
        carrier().verify(webhook(INBOUND_BODY, f"{head}.{claims}.{variant}"))


@pytest.mark.parametrize(
    ("age", "accepted"),
    [(0, True), (299, True), (300, True), (301, False), (86_400, False), (-59, True), (-61, False)],
)
def test_freshness_window_on_iat(age: int, accepted: bool) -> None:
    request = webhook(INBOUND_BODY, sdk_token(INBOUND_BODY, iat=NOW - age))
    if accepted:
        carrier().verify(request)
    else:
        with pytest.raises(SignatureError, match="stale|future"):
            carrier().verify(request)


def test_freshness_window_is_configurable() -> None:
    request = webhook(INBOUND_BODY, sdk_token(INBOUND_BODY, iat=NOW - 100))
    carrier(max_age_seconds=120).verify(request)
    with pytest.raises(SignatureError, match="stale"):
        carrier(max_age_seconds=60).verify(request)
    with pytest.raises(ValueError, match="positive"):
        carrier(max_age_seconds=0)


def test_expired_and_not_yet_valid_tokens_are_rejected() -> None:
    with pytest.raises(SignatureError, match="expired"):
        carrier().verify(webhook(INBOUND_BODY, sdk_token(INBOUND_BODY, exp=NOW - 120)))
    with pytest.raises(SignatureError, match="not valid yet"):
        carrier().verify(webhook(INBOUND_BODY, sdk_token(INBOUND_BODY, nbf=NOW + 120)))
    carrier().verify(webhook(INBOUND_BODY, sdk_token(INBOUND_BODY, exp=NOW + 900, nbf=NOW - 5)))


@pytest.mark.parametrize(
    ("claims_json", "match"),
    [
        ('{"iat": 1795752000}', "payload_hash"),
        ('{"iat": 1795752000, "payload_hash": 42}', "payload_hash"),
        ('{"payload_hash": "%s"}', "iat"),
        ('{"iat": "1795752000", "payload_hash": "%s"}', "iat"),
        ('{"iat": true, "payload_hash": "%s"}', "iat"),
        ('{"iat": NaN, "payload_hash": "%s"}', "iat"),
        ('{"iat": 1e400, "payload_hash": "%s"}', "iat"),
        ('{"iat": ' + "9" * 400 + ', "payload_hash": "%s"}', "iat"),
        ('{"iat": 1795752000, "payload_hash": "%s", "exp": "soon"}', "expired"),
        ("[1, 2]", "not a JSON object"),
    ],
)
def test_missing_or_malformed_claims_are_rejected(claims_json: str, match: str) -> None:
    digest = hashlib.sha256(INBOUND_BODY).hexdigest()
    text = claims_json.replace("%s", digest)
    with pytest.raises(SignatureError, match=match):
        carrier().verify(webhook(INBOUND_BODY, hand_token(text)))


def test_payload_hash_in_upper_case_is_accepted() -> None:
    digest = hashlib.sha256(INBOUND_BODY).hexdigest().upper()
    carrier().verify(webhook(INBOUND_BODY, sdk_token(INBOUND_BODY, payload_hash=digest)))


def test_missing_authorization_is_an_unsigned_request() -> None:
    with pytest.raises(UnsignedRequest, match="missing") as caught:
        carrier().verify(webhook(INBOUND_BODY, None))
    assert isinstance(caught.value, SignatureError) and caught.value.retryable


def test_capitalised_header_name_is_not_found() -> None:
    """WebhookRequest promises lower-cased header names; the plugin relies on it."""
    token = sdk_token(INBOUND_BODY)
    request = WebhookRequest("POST", URL, {"Authorization": f"Bearer {token}"}, INBOUND_BODY)
    with pytest.raises(UnsignedRequest):
        carrier().verify(request)


@pytest.mark.parametrize(
    "authorization",
    [
        f"Basic {base64.b64encode(b'abcd1234:secret').decode()}",
        "Bearer",
        "Bearer    ",
        "Token abc.def.ghi",
        "Bearer abc.def",
        "Bearer abc.def.ghi.jkl",
        "Bearer !!!.???.***",
        "Bearer " + b64url("not json") + "." + b64url("{}") + ".c2ln",
        "Bearer " + b64url("[]") + "." + b64url("{}") + ".c2ln",
        "Bearer " + "a" * 9000 + ".b.c",
        "Bearer ÿé.ü.ö",
    ],
)
def test_malformed_authorization_is_rejected(authorization: str) -> None:
    with pytest.raises(SignatureError):
        carrier().verify(webhook(INBOUND_BODY, None, authorization=authorization))


def test_alg_none_is_rejected() -> None:
    claims = json.dumps({"iat": NOW, "payload_hash": hashlib.sha256(INBOUND_BODY).hexdigest()})
    unsigned = b64url('{"alg":"none","typ":"JWT"}') + "." + b64url(claims) + "."
    with pytest.raises(SignatureError, match="HS256"):
        carrier().verify(webhook(INBOUND_BODY, unsigned))


def test_hs512_with_the_right_secret_is_rejected() -> None:
    token = jwt.encode(
        {"iat": NOW, "payload_hash": hashlib.sha256(INBOUND_BODY).hexdigest()}, SECRET, algorithm="HS512"
    )
    with pytest.raises(SignatureError, match="HS256"):
        carrier().verify(webhook(INBOUND_BODY, token))


def test_rs256_application_token_from_the_sdk_is_rejected() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    token = JwtClient("aaaaaaaa-bbbb-cccc-dddd-0123456789ab", pem).generate_application_jwt(
        {"payload_hash": hashlib.sha256(INBOUND_BODY).hexdigest(), "iat": int(NOW)}
    )
    with pytest.raises(SignatureError, match="HS256"):
        carrier().verify(webhook(INBOUND_BODY, token.decode()))


def test_critical_header_parameters_are_rejected() -> None:
    digest = hashlib.sha256(INBOUND_BODY).hexdigest()
    header = {"alg": "HS256", "typ": "JWT", "crit": ["exp"]}
    token = hand_token(json.dumps({"iat": NOW, "payload_hash": digest}), header=header)
    with pytest.raises(SignatureError, match="critical"):
        carrier().verify(webhook(INBOUND_BODY, token))


def test_the_url_is_not_signed() -> None:
    """Vonage's token covers the body, not the URL: the same token is good on any of our URLs."""
    request = replace(webhook(INBOUND_BODY, sdk_token(INBOUND_BODY)), url="https://elsewhere.example/x")
    carrier().verify(request)


def test_no_configured_secret_rejects_and_names_the_variable() -> None:
    token = hand_token(json.dumps({"iat": NOW, "payload_hash": hashlib.sha256(INBOUND_BODY).hexdigest()}), "")
    with pytest.raises(SignatureError, match="PARLEY_VONAGE_MESSAGES_SIGNATURE_SECRET"):
        carrier(()).verify(webhook(INBOUND_BODY, token))


# -- parsing ----------------------------------------------------------------------------------------


def parse(kind: WebhookKind, payload: dict[str, Any] | bytes) -> list[ParsedInbound | ParsedStatus]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return carrier().parse(kind, webhook(body, "unused"))


def parse_one(kind: WebhookKind, payload: dict[str, Any] | bytes) -> ParsedInbound | ParsedStatus:
    events = parse(kind, payload)
    assert len(events) == 1
    return events[0]


def test_parse_inbound_sms() -> None:
    event = parse_one(WebhookKind.MESSAGES, INBOUND_BODY)
    assert isinstance(event, ParsedInbound)
    assert event.carrier == "vonage-messages"
    assert event.carrier_message_id == "3f7c2a64-9b1e-4d0a-8c55-2e6f0b9d1a47"
    assert (event.from_number, event.to_number) == ("+14155550100", "+15005550006")  # with the "+" added
    assert event.body == "Hi! Is order #1234 ready? \U0001f600 a&b=c"
    assert event.media == ()
    assert event.segments == 2  # sms.num_messages: Vonage joined two parts into this one webhook
    assert event.concat is None and event.opt_out is None  # keyword is just the first word
    assert event.received_at == datetime(2026, 11, 28, 4, 0, tzinfo=UTC)
    assert event.raw["usage"] == {"price": "0.0057", "currency": "EUR"}
    assert json.loads(json.dumps(event.to_wire()))["kind"] == "inbound_message"


def test_parse_the_published_vector_body() -> None:
    event = parse_one(WebhookKind.MESSAGES, VECTOR_BODY)
    assert isinstance(event, ParsedInbound)
    assert (event.from_number, event.to_number, event.body) == (
        "+447700900001",
        "+447700900000",
        "Hello From Vonage!",
    )


def test_parse_inbound_mms_picture_with_caption() -> None:
    payload = {
        "channel": "mms",
        "message_uuid": "8a1d5e3c-27f4-4b69-9e0d-6c3b7f2a9e15",
        "to": "15005550006",
        "from": "14155550100",
        "timestamp": "2026-11-28T04:02:10.123Z",
        "message_type": "image",
        "image": {"url": "https://api-us.nexmo.com/v3/media/c2b6", "caption": "Damaged box"},
    }
    event = parse_one(WebhookKind.MESSAGES, payload)
    assert isinstance(event, ParsedInbound)
    assert event.media == (ParsedMedia(url="https://api-us.nexmo.com/v3/media/c2b6"),)
    assert event.body == "Damaged box"
    assert event.segments is None
    assert event.received_at == datetime(2026, 11, 28, 4, 2, 10, 123000, tzinfo=UTC)


def test_parse_inbound_mms_vcard_and_text() -> None:
    payload = {
        **INBOUND,
        "channel": "mms",
        "message_type": "vcard",
        "text": "my card",
        "vcard": {"url": "https://api-us.nexmo.com/v3/media/vc1"},
    }
    event = parse_one(WebhookKind.MESSAGES, payload)
    assert isinstance(event, ParsedInbound)
    assert event.media == (ParsedMedia("https://api-us.nexmo.com/v3/media/vc1", "text/vcard"),)
    assert event.body == "my card"


def test_parse_accepts_the_beta_number_objects() -> None:
    payload = {**INBOUND, "from": {"type": "sms", "number": "14155550100"}, "to": 15005550006}
    event = parse_one(WebhookKind.MESSAGES, payload)
    assert isinstance(event, ParsedInbound)
    assert (event.from_number, event.to_number) == ("+14155550100", "+15005550006")


@pytest.mark.parametrize("kind", [WebhookKind.MESSAGES, WebhookKind.STATUS])
@pytest.mark.parametrize("channel", ["whatsapp", "viber_service", "messenger", "rcs", 7])
def test_other_channels_are_acknowledged_and_ignored(kind: WebhookKind, channel: object) -> None:
    base = INBOUND if kind is WebhookKind.MESSAGES else STATUS
    assert parse(kind, {**base, "channel": channel}) == []


STATUS = {
    "message_uuid": "b5e0c7a2-1f3d-4e8b-a6c9-0d2f4b7e1c38",
    "to": "14155550100",
    "from": "15005550006",
    "timestamp": "2026-11-28T04:05:31Z",
    "status": "delivered",
    "channel": "sms",
    "client_ref": "msg-1",
    "destination": {"network_code": "310260"},
    "usage": {"currency": "EUR", "price": "0.0057"},
    "sms": {"count_total": "1"},
}

STATUS_WORDS = [
    ("submitted", MessageStatus.SENT),
    ("delivered", MessageStatus.DELIVERED),
    ("rejected", MessageStatus.UNDELIVERED),
    ("undeliverable", MessageStatus.FAILED),
    ("read", MessageStatus.READ),
]


@pytest.mark.parametrize(("word", "expected"), STATUS_WORDS)
def test_parse_every_status_word(word: str, expected: MessageStatus) -> None:
    event = parse_one(WebhookKind.STATUS, {**STATUS, "status": word})
    assert isinstance(event, ParsedStatus)
    assert (event.status, event.carrier_status) == (expected, word)
    assert event.carrier_message_id == STATUS["message_uuid"]
    assert (event.error_code, event.error_message, event.opted_out) == (None, None, False)
    assert event.occurred_at == datetime(2026, 11, 28, 4, 5, 31, tzinfo=UTC)
    assert event.raw["client_ref"] == "msg-1"


def test_status_words_cover_the_java_sdk_vocabulary() -> None:
    # Vonage's Java SDK MessageStatus.Status (carriers.md 4.2): SUBMITTED, DELIVERED, REJECTED,
    # UNDELIVERABLE, READ. The Python SDK has no status enum to compare with.
    assert {word for word, _ in STATUS_WORDS} == {
        "submitted",
        "delivered",
        "rejected",
        "undeliverable",
        "read",
    }


def test_status_word_case_is_ignored() -> None:
    event = parse_one(WebhookKind.STATUS, {**STATUS, "status": " Delivered "})
    assert isinstance(event, ParsedStatus) and event.status is MessageStatus.DELIVERED


@pytest.mark.parametrize(
    ("error", "code", "words", "opted_out"),
    [
        (
            {
                "type": "https://developer.vonage.com/api-errors/messages#1240",
                "title": "1240",
                "detail": "Illegal Number",
                "instance": "i-1",
            },
            "1240",
            "Illegal Number",
            True,
        ),
        (
            {"type": "https://developer.nexmo.com/api-errors/messages#1330", "title": 1330},
            "1330",
            "the recipient's carrier reported an unknown error (often an unknown number)",
            False,
        ),
        (
            {"title": "1180", "detail": "Absent Subscriber Temporary"},
            "1180",
            "Absent Subscriber Temporary",
            False,
        ),
        (
            {"error": {"type": "https://x/messages#1000", "title": 1000, "detail": "Throttled"}},
            "1000",
            "Throttled",
            False,
        ),
        ({"title": "Something odd"}, None, "Something odd", False),
        ("not an object", None, None, False),
    ],
)
def test_parse_status_error(error: object, code: str | None, words: str | None, opted_out: bool) -> None:
    event = parse_one(WebhookKind.STATUS, {**STATUS, "status": "rejected", "error": error})
    assert isinstance(event, ParsedStatus)
    assert (event.status, event.error_code, event.error_message) == (MessageStatus.UNDELIVERED, code, words)
    assert event.opted_out is opted_out


def test_receipt_codes_classify() -> None:
    assert classify_error("1240", None) == (
        FailureKind.PERMANENT,
        "the recipient has opted out (replied STOP)",
    )
    assert classify_error("1180", None)[0] is FailureKind.TRANSIENT
    assert classify_error("1330", None)[0] is FailureKind.PERMANENT


def test_multi_segment_status_is_one_aggregated_receipt() -> None:
    """Vonage waits for every segment's receipt and sends one callback for the whole text."""
    payload = {
        **STATUS,
        "sms": {
            "total_count": "2",
            "segments": [
                {"timestamp": "2026-11-28T04:05:25Z", "status": "delivered"},
                {"timestamp": "2026-11-28T04:05:31Z", "status": "delivered"},
            ],
        },
    }
    event = parse_one(WebhookKind.STATUS, payload)
    assert isinstance(event, ParsedStatus)
    assert (event.status, event.part, event.parts) == (MessageStatus.DELIVERED, None, None)
    assert len(event.raw["sms"]["segments"]) == 2


def test_events_kind_tells_inbound_from_status() -> None:
    inbound = parse_one(WebhookKind.EVENTS, INBOUND)
    status = parse_one(WebhookKind.EVENTS, STATUS)
    assert isinstance(inbound, ParsedInbound) and isinstance(status, ParsedStatus)


def test_status_at_the_inbound_url_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="inbound URL"):
        parse(WebhookKind.MESSAGES, STATUS)


def test_inbound_at_the_status_url_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="status"):
        parse(WebhookKind.STATUS, INBOUND)


def test_unknown_status_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="bounced"):
        parse(WebhookKind.STATUS, {**STATUS, "status": "bounced"})


@pytest.mark.parametrize(
    ("kind", "payload", "match"),
    [
        (WebhookKind.STATUS, {**STATUS, "status": ""}, "status"),
        (WebhookKind.STATUS, {**STATUS, "status": None}, "status"),
        (WebhookKind.STATUS, {k: v for k, v in STATUS.items() if k != "message_uuid"}, "message_uuid"),
        (WebhookKind.MESSAGES, {k: v for k, v in INBOUND.items() if k != "message_uuid"}, "message_uuid"),
        (WebhookKind.MESSAGES, {k: v for k, v in INBOUND.items() if k != "from"}, "from"),
        (WebhookKind.MESSAGES, {**INBOUND, "to": ""}, "to"),
        (WebhookKind.MESSAGES, {**INBOUND, "from": {"type": "sms"}}, "from"),
    ],
)
def test_missing_fields_are_payload_errors(kind: WebhookKind, payload: dict[str, Any], match: str) -> None:
    with pytest.raises(PayloadError, match=match):
        parse(kind, payload)


@pytest.mark.parametrize("body", [b"", b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe\x00", b"[" * 100_000])
def test_malformed_body_is_a_payload_error(body: bytes) -> None:
    with pytest.raises(PayloadError):
        parse(WebhookKind.MESSAGES, body)


def test_unsupported_kind_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="kind"):
        parse("bogus", STATUS)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("2020-01-01T14:00:00.000Z", datetime(2020, 1, 1, 14, tzinfo=UTC)),
        ("2020-01-01T14:00:00", datetime(2020, 1, 1, 14, tzinfo=UTC)),
        ("2020-01-01T16:00:00+02:00", datetime(2020, 1, 1, 14, tzinfo=UTC)),
    ],
)
def test_timestamps_are_read_as_utc(timestamp: str, expected: datetime) -> None:
    event = parse_one(WebhookKind.STATUS, {**STATUS, "timestamp": timestamp})
    assert event.occurred_at == expected  # type: ignore[union-attr]


def test_a_bad_timestamp_does_not_cost_the_message() -> None:
    before = datetime.now(UTC)
    event = parse_one(
        WebhookKind.MESSAGES, {**INBOUND, "timestamp": "yesterday", "sms": {"num_messages": "x"}}
    )
    assert isinstance(event, ParsedInbound)
    assert event.received_at >= before and event.segments is None


def test_ack_is_an_empty_200() -> None:
    for kind in WebhookKind:
        ack = carrier().ack(kind)
        assert (ack.status_code, ack.body) == (200, "")


# -- sample payloads --------------------------------------------------------------------------------


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / name).read_text())
    assert set(data) == {"description", "content_type", "body"} and data["description"]
    return data


def sample_body(name: str) -> bytes:
    body = sample(name)["body"]
    return body.encode() if isinstance(body, str) else json.dumps(body).encode()


def test_every_sample_is_there() -> None:
    assert sorted(p.name for p in SAMPLES.glob("*.json")) == [
        "inbound_mms.json",
        "inbound_sms.json",
        "send_error.json",
        "status_delivered.json",
        "status_failed.json",
    ]


def test_inbound_samples_parse() -> None:
    sms = parse_one(WebhookKind.MESSAGES, sample_body("inbound_sms.json"))
    mms = parse_one(WebhookKind.MESSAGES, sample_body("inbound_mms.json"))
    assert isinstance(sms, ParsedInbound) and isinstance(mms, ParsedInbound)
    assert (sms.from_number, sms.to_number, sms.media) == ("+14155550100", "+15005550006", ())
    assert sms.body.startswith("Hi!")
    assert len(mms.media) == 1 and mms.media[0].url.startswith("https://") and mms.body


def test_status_samples_parse() -> None:
    delivered = parse_one(WebhookKind.STATUS, sample_body("status_delivered.json"))
    failed = parse_one(WebhookKind.STATUS, sample_body("status_failed.json"))
    assert isinstance(delivered, ParsedStatus) and isinstance(failed, ParsedStatus)
    assert (delivered.status, delivered.error_code) == (MessageStatus.DELIVERED, None)
    assert (failed.status, failed.error_code, failed.opted_out) == (MessageStatus.UNDELIVERED, "1240", True)


def test_signed_samples_verify() -> None:
    for name in ("inbound_sms.json", "inbound_mms.json", "status_delivered.json", "status_failed.json"):
        body = sample_body(name)
        assert sample(name)["content_type"] == "application/json"
        carrier().verify(webhook(body, sdk_token(body)))


# -- sending against a local Vonage stand-in --------------------------------------------------------


carrier_api_server, fake = carrier_api_fixtures("fake")

TEXT = OutboundText(
    message_id="msg-1",
    from_number="+15005550006",
    to_number="+14155550100",
    body="Your order #1234 is ready & waiting \U0001f600",
    status_callback_url="https://hooks.example.com/webhooks/vonage-messages/status",
)


def send_via(
    fake: FakeCarrierApi, text: OutboundText = TEXT, timeout: float = 5.0
) -> SendAccepted | SendFailed:
    sender = VonageMessagesCarrier(API_KEY, API_SECRET, (SECRET,), api_base=fake.url, timeout=timeout)
    return sender.send(text)


def test_send_accepted_and_the_request_vonage_sees(fake: FakeCarrierApi) -> None:
    fake.answer(202, '{"message_uuid": "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab"}')
    outcome = send_via(fake)
    assert outcome == SendAccepted("aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab", "accepted", None)
    [seen] = fake.seen
    assert (seen.method, seen.path) == ("POST", "/v1/messages")
    assert (seen.username, seen.password) == (API_KEY, API_SECRET)
    assert seen.content_type == "application/json" and seen.headers.get("accept") == "application/json"
    assert seen.json == {
        "message_type": "text",
        "channel": "sms",
        "to": "14155550100",  # E.164 without the "+", as Vonage asks
        "from": "15005550006",
        "text": "Your order #1234 is ready & waiting \U0001f600",
        "client_ref": "msg-1",  # our id, echoed in every status webhook
        "webhook_url": "https://hooks.example.com/webhooks/vonage-messages/status",
    }


def test_send_without_callback_and_with_an_alphanumeric_sender(fake: FakeCarrierApi) -> None:
    fake.answer(202, '{"message_uuid": "u-2"}')
    outcome = send_via(fake, OutboundText("m2", "Acme", "+447700900000", "hi"))
    assert outcome == SendAccepted("u-2", "accepted", None)
    assert fake.seen[0].json == {
        "message_type": "text",
        "channel": "sms",
        "to": "447700900000",
        "from": "Acme",
        "text": "hi",
        "client_ref": "m2",
    }


def test_send_one_picture_as_mms(fake: FakeCarrierApi) -> None:
    fake.answer(202, '{"message_uuid": "u-3"}')
    text = replace(TEXT, media_urls=("https://m.example/a.jpg",), status_callback_url=None)
    assert send_via(fake, text) == SendAccepted("u-3", "accepted", None)
    assert fake.seen[0].json == {
        "message_type": "image",
        "channel": "mms",
        "to": "14155550100",
        "from": "15005550006",
        "image": {"url": "https://m.example/a.jpg", "caption": TEXT.body},
        "client_ref": "msg-1",
    }


def test_two_pictures_are_refused_without_calling_vonage(fake: FakeCarrierApi) -> None:
    text = replace(TEXT, media_urls=("https://m.example/a.jpg", "https://m.example/b.jpg"))
    outcome = send_via(fake, text)
    assert isinstance(outcome, SendFailed) and outcome.kind is FailureKind.PERMANENT
    assert "one picture" in outcome.reason and fake.seen == []


INVALID_TO = json.dumps(
    {
        "type": "https://developer.vonage.com/api-errors/messages#1150",
        "title": "Invalid params",
        "detail": "The value of one or more parameters is invalid.",
        "instance": "bf0ca0bf927b3b52e3cb03217e1a1ddf",
        "invalid_parameters": [{"name": "to", "reason": "Invalid value"}],
    }
)


def problem(
    fragment: str, title: str, detail: str = "", base: str = "https://developer.vonage.com/api-errors"
) -> str:
    return json.dumps({"type": f"{base}{fragment}", "title": title, "detail": detail, "instance": "i-9"})


@pytest.mark.parametrize(
    ("status", "payload", "kind", "reason", "code"),
    [
        (422, INVALID_TO, FailureKind.PERMANENT, "the number is not a valid phone number", "1150"),
        (
            422,
            INVALID_TO.replace('"name": "to"', '"name": "text"'),
            FailureKind.PERMANENT,
            "the carrier rejected the message's details as invalid",
            "1150",
        ),
        (
            422,
            problem("/messages#1120", "Invalid sender", "The `from` parameter is invalid."),
            FailureKind.PERMANENT,
            "our sending number is not allowed to text this destination",
            "1120",
        ),
        (
            401,
            problem("#unauthorized", "Unauthorized", "You did not provide correct credentials."),
            FailureKind.PERMANENT,
            "the carrier rejected our credentials (check the Vonage API key and secret)",
            "unauthorized",
        ),
        (
            401,
            "",
            FailureKind.PERMANENT,
            "the carrier rejected our credentials (check the Vonage API key and secret)",
            None,
        ),
        (
            402,
            problem("/#low-balance", "Low balance", base="https://developer.nexmo.com/api-errors"),
            FailureKind.PERMANENT,
            "our Vonage account is out of credit; top it up and resend",
            "low-balance",
        ),
        (
            403,
            problem("#unprovisioned", "Unprovisioned"),
            FailureKind.PERMANENT,
            "our Vonage credentials have no access to the Messages API",
            "unprovisioned",
        ),
        (
            429,
            problem("#rate-limit", "Rate limit hit"),
            FailureKind.TRANSIENT,
            "the carrier is rate limiting us; it will be retried",
            "rate-limit",
        ),
        (
            429,
            "slow down",
            FailureKind.TRANSIENT,
            "the carrier is rate limiting us; it will be retried",
            None,
        ),
        (
            500,
            problem("/messages#1030", "Internal error"),
            FailureKind.AMBIGUOUS,
            "carrier server error (HTTP 500)",
            "1030",
        ),
        (
            503,
            "<html>Service Unavailable</html>",
            FailureKind.AMBIGUOUS,
            "carrier server error (HTTP 503)",
            None,
        ),
        (
            422,
            problem("/messages#1999", "Odd", "Something new went wrong"),
            FailureKind.PERMANENT,
            "carrier rejected the message: Something new went wrong",
            "1999",
        ),
        (
            400,
            "<html>Bad Request</html>",
            FailureKind.PERMANENT,
            "carrier rejected the message (HTTP 400)",
            None,
        ),
        (408, "", FailureKind.TRANSIENT, "the carrier timed out reading our request (HTTP 408)", None),
    ],
)
def test_send_failures_are_classified(
    fake: FakeCarrierApi, status: int, payload: str, kind: FailureKind, reason: str, code: str | None
) -> None:
    fake.answer(status, payload, "application/problem+json")
    outcome = send_via(fake)
    assert outcome == SendFailed(kind=kind, reason=reason, error_code=code, http_status=status)
    assert len(fake.seen) == 1  # never retried inside send: the retry function owns that


def test_opted_out_refusal_is_flagged(fake: FakeCarrierApi) -> None:
    fake.answer(422, problem("/messages#1240", "Illegal Number"))
    outcome = send_via(fake)
    assert isinstance(outcome, SendFailed)
    assert (outcome.kind, outcome.error_code, outcome.opted_out) == (FailureKind.PERMANENT, "1240", True)


def test_send_error_sample_classifies_permanent(fake: FakeCarrierApi) -> None:
    data = sample("send_error.json")
    assert "422" in data["description"]
    fake.answer(422, json.dumps(data["body"]), data["content_type"])
    outcome = send_via(fake)
    assert isinstance(outcome, SendFailed)
    assert (outcome.kind, outcome.error_code, outcome.http_status) == (FailureKind.PERMANENT, "1150", 422)
    assert outcome.reason == "the number is not a valid phone number"


def test_success_without_a_message_uuid_is_ambiguous(fake: FakeCarrierApi) -> None:
    fake.answer(202, "not json")
    outcome = send_via(fake)
    assert isinstance(outcome, SendFailed)
    assert (outcome.kind, outcome.http_status) == (FailureKind.AMBIGUOUS, 202)


def test_redirect_is_not_followed(fake: FakeCarrierApi) -> None:
    fake.reply = lambda _r: Response(status=301, headers={"Location": "/elsewhere"})
    outcome = send_via(fake)
    assert isinstance(outcome, SendFailed)
    assert (outcome.kind, outcome.http_status) == (FailureKind.PERMANENT, 301)
    assert [s.path for s in fake.seen] == ["/v1/messages"]


def test_read_timeout_after_the_request_arrived_is_ambiguous(fake: FakeCarrierApi) -> None:
    fake.slow(202, '{"message_uuid": "late"}')
    outcome = send_via(fake, timeout=0.2)
    assert fake.received.wait(5)  # Vonage had the request: it may send the text
    assert isinstance(outcome, SendFailed)
    assert outcome.kind is FailureKind.AMBIGUOUS
    assert (outcome.error_code, outcome.http_status) == (None, None)


def test_connection_refused_is_transient() -> None:
    with refused_url() as url:
        outcome = VonageMessagesCarrier(API_KEY, API_SECRET, api_base=url).send(TEXT)
    assert isinstance(outcome, SendFailed)
    assert outcome.kind is FailureKind.TRANSIENT
    assert (outcome.error_code, outcome.http_status) == (None, None)


def test_connection_dropped_after_the_request_was_sent_is_ambiguous() -> None:
    with hanging_up_after_the_request() as server:
        sender = VonageMessagesCarrier(API_KEY, API_SECRET, api_base=server.url, timeout=5)
        outcome = sender.send(TEXT)
    assert server.got_request.is_set()
    assert isinstance(outcome, SendFailed) and outcome.kind is FailureKind.AMBIGUOUS


def test_misconfigured_api_base_is_permanent() -> None:
    outcome = VonageMessagesCarrier(API_KEY, API_SECRET, api_base="not a url").send(TEXT)
    assert isinstance(outcome, SendFailed) and outcome.kind is FailureKind.PERMANENT


def test_missing_api_credentials_fail_at_send_and_name_the_variables(fake: FakeCarrierApi) -> None:
    for key, secret in (("", API_SECRET), (API_KEY, "")):
        outcome = VonageMessagesCarrier(key, secret, api_base=fake.url).send(TEXT)
        assert isinstance(outcome, SendFailed) and outcome.kind is FailureKind.PERMANENT
        assert "PARLEY_VONAGE_API_KEY" in outcome.reason
    assert fake.seen == []


def test_a_failed_secret_read_is_transient(fake: FakeCarrierApi) -> None:
    def broken() -> str:
        raise RuntimeError("SSM throttled")

    outcome = VonageMessagesCarrier(API_KEY, broken, api_base=fake.url).send(TEXT)
    assert isinstance(outcome, SendFailed) and outcome.kind is FailureKind.TRANSIENT
    assert fake.seen == []


def test_send_logs_neither_secret_nor_full_number(
    fake: FakeCarrierApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="parley")
    fake.answer(202, '{"message_uuid": "u-log"}')
    send_via(fake)
    fake.answer(422, INVALID_TO)
    send_via(fake)
    assert "u-log" in caplog.text and "1150" in caplog.text
    assert API_SECRET not in caplog.text and SECRET not in caplog.text
    assert TEXT.to_number not in caplog.text and "14155550100" not in caplog.text
    assert "+1" + "*" * 8 + "00" in caplog.text


def test_no_sent_lookup_without_a_documented_one() -> None:
    """No idempotency key and no documented lookup (carriers.md 4.4): ambiguous stays ambiguous."""
    assert not isinstance(carrier(), SentLookup)


# -- error classification ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "kind", "words"),
    [
        ("1000", FailureKind.TRANSIENT, "rate limiting"),
        ("1050", FailureKind.PERMANENT, "block list"),
        ("1070", FailureKind.PERMANENT, "out of credit"),
        ("1170", FailureKind.PERMANENT, "not a valid phone number"),
        ("1190", FailureKind.PERMANENT, "no longer in service"),
        ("1210", FailureKind.PERMANENT, "spam"),
        ("1230", FailureKind.TRANSIENT, "network"),
        ("1250", FailureKind.PERMANENT, "no route"),
        ("1360", FailureKind.TRANSIENT, "expired"),
        ("LOW-BALANCE", FailureKind.PERMANENT, "out of credit"),
        ("1999", FailureKind.PERMANENT, "error 1999"),
        (None, FailureKind.PERMANENT, "could not deliver"),
    ],
)
def test_classify_receipt_error_codes(code: str | None, kind: FailureKind, words: str) -> None:
    got_kind, reason = carrier().classify(code, None)
    assert got_kind is kind and words in reason


def test_every_reason_is_plain_words() -> None:
    for code, (kind, reason) in ERROR_CODES.items():
        assert isinstance(kind, FailureKind) and reason[0].islower() and "http" not in reason.lower(), code
        assert not reason.endswith("."), code


def test_http_status_wins_for_429_and_5xx() -> None:
    assert classify_error("1240", 429)[0] is FailureKind.TRANSIENT
    assert classify_error("1240", 502)[0] is FailureKind.AMBIGUOUS


# -- fuzzing ----------------------------------------------------------------------------------------

JSON_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=30)
)
JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)
PLAUSIBLE = st.fixed_dictionaries(
    {},
    optional=dict.fromkeys(
        ("channel", "message_uuid", "from", "to", "text", "status", "error", "timestamp")
        + ("message_type", "sms", "image", "vcard"),
        JSON_VALUE,
    ),
)


def check_parse(kind: WebhookKind, body: bytes) -> None:
    try:
        events = carrier().parse(kind, webhook(body, None))
    except PayloadError:
        return
    for event in events:
        assert event.carrier == "vonage-messages" and event.carrier_message_id
        event.to_wire()


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=300), kind=st.sampled_from(list(WebhookKind)))
def test_fuzz_parse_arbitrary_bytes(body: bytes, kind: WebhookKind) -> None:
    check_parse(kind, body)


@settings(max_examples=200, deadline=None)
@given(payload=PLAUSIBLE, kind=st.sampled_from(list(WebhookKind)))
def test_fuzz_parse_plausible_payloads(payload: dict[str, Any], kind: WebhookKind) -> None:
    check_parse(kind, json.dumps(payload).encode())


@settings(max_examples=200, deadline=None)
@given(authorization=st.text(max_size=200), body=st.binary(max_size=100))
def test_fuzz_verify_arbitrary_headers(authorization: str, body: bytes) -> None:
    try:
        carrier().verify(webhook(body, None, authorization=authorization))
    except SignatureError:
        return
    raise AssertionError("an arbitrary header was accepted")


@settings(max_examples=200, deadline=None)
@given(
    header=st.dictionaries(st.sampled_from(["alg", "typ", "crit", "kid"]), JSON_VALUE, max_size=3),
    claims=st.dictionaries(
        st.sampled_from(["iat", "exp", "nbf", "payload_hash", "jti", "api_key"]), JSON_VALUE, max_size=5
    ),
    signed=st.booleans(),
    body=st.binary(max_size=50),
)
def test_fuzz_verify_plausible_tokens(
    header: dict[str, Any], claims: dict[str, Any], signed: bool, body: bytes
) -> None:
    header = {"alg": "HS256", **header} if signed else header
    token = hand_token(json.dumps(claims), SECRET if signed else "wrong", header=header)
    try:
        carrier().verify(webhook(body, token))
    except SignatureError:
        return
    # Accepted only with a real signature, the body's hash and a fresh iat.
    assert signed and claims.get("payload_hash", "").lower() == hashlib.sha256(body).hexdigest()
    assert abs(NOW - claims["iat"]) <= 300


# -- build and registry -----------------------------------------------------------------------------


ENV = {
    "PARLEY_VONAGE_API_KEY": "key-42",
    "PARLEY_VONAGE_API_SECRET": "secret-42",
    "PARLEY_VONAGE_MESSAGES_SIGNATURE_SECRET": "sig-42",
    "PARLEY_VONAGE_MESSAGES_SIGNATURE_SECRET_PREVIOUS": "sig-41, sig-40",
    "PARLEY_VONAGE_MESSAGES_API_BASE": "http://127.0.0.1:9/",
    "PARLEY_CARRIER_TIMEOUT_SECONDS": "2.5",
}


def fresh_request(secret: str) -> WebhookRequest:
    return webhook(INBOUND_BODY, sdk_token(INBOUND_BODY, secret, iat=datetime.now(UTC).timestamp()))


def test_build_reads_the_environment() -> None:
    built = build(CarrierConfig(ENV))
    assert isinstance(built, VonageMessagesCarrier)
    assert (built.api_key, built.api_base, built.timeout, built.max_age_seconds) == (
        "key-42",
        "http://127.0.0.1:9",
        2.5,
        300.0,
    )
    for secret in ("sig-42", "sig-41", "sig-40"):  # current and previous secrets
        built.verify(fresh_request(secret))
    with pytest.raises(SignatureError):
        built.verify(fresh_request("sig-39"))
    assert "secret-42" not in repr(built) and "sig-42" not in repr(built)


def test_registry_builds_the_plugin_by_name() -> None:
    built = build_carrier("vonage-messages", CarrierConfig(ENV))
    assert isinstance(built, VonageMessagesCarrier) and built.name == "vonage-messages"


def test_build_defaults_and_max_age_setting() -> None:
    built = build(CarrierConfig({"PARLEY_VONAGE_MESSAGES_MAX_AGE_SECONDS": "900"}))
    assert (built.api_base, built.max_age_seconds, built.timeout) == ("https://api.nexmo.com", 900.0, 10.0)


@pytest.mark.parametrize("value", ["soon", "0", "-5", "nan", "inf"])
def test_build_rejects_a_bad_max_age_by_name(value: str) -> None:
    with pytest.raises(ValueError, match="PARLEY_VONAGE_MESSAGES_MAX_AGE_SECONDS"):
        build(CarrierConfig({"PARLEY_VONAGE_MESSAGES_MAX_AGE_SECONDS": value}))


def test_missing_signature_secret_fails_at_verify_by_name() -> None:
    built = build(CarrierConfig({"PARLEY_VONAGE_API_KEY": "k"}))  # building works: a sender needs no secret
    with pytest.raises(SignatureError, match="PARLEY_VONAGE_MESSAGES_SIGNATURE_SECRET"):
        built.verify(fresh_request("anything"))


def test_secrets_come_from_ssm_on_first_use_only() -> None:
    reads: list[str] = []

    def ssm(name: str, region: str) -> str:
        reads.append(name)
        return {"/parley/vonage-sig": "sig-ssm", "/parley/vonage-api": "api-ssm"}[name]

    env = {
        "PARLEY_VONAGE_API_KEY": "k",
        "PARLEY_VONAGE_API_SECRET_PARAM": "/parley/vonage-api",
        "PARLEY_VONAGE_MESSAGES_SIGNATURE_SECRET_PARAM": "/parley/vonage-sig",
    }
    built = build(CarrierConfig(env, ssm=ssm))
    assert reads == []  # nothing read on a cold start before it is needed
    built.verify(fresh_request("sig-ssm"))
    built.verify(fresh_request("sig-ssm"))
    assert reads == ["/parley/vonage-sig"]  # the webhook never reads the API secret, and reads once


def test_webhook_path_imports_stay_light() -> None:
    code = (
        "import sys, parley.carriers.vonage_messages as m;"
        "print(sorted(n for n in ('requests', 'urllib3', 'pydantic', 'phonenumbers', 'cryptography', 'jwt')"
        " if n in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
