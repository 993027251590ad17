"""Fuzzed webhook requests, for every carrier: never a 500, never anything queued for storage.

Signed requests with hostile contents get a 4xx or queue events the processor can always read.

The carriers' own tests fuzz `parse` behind a valid signature (it raises only PayloadError, which
the handler answers with 400); here arbitrary bodies and headers go through the real handler.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.inbound import webhook
from parley import wiring
from parley.adapters import aws
from parley.carriers.registry import known_carriers, webhook_paths
from parley.config import Settings
from parley.domain.models import CarrierEventEnvelope, InboundMessage

# Credentials shaped like real ones, so verification runs its full course before rejecting.
CARRIER_ENV = {
    "PARLEY_TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "PARLEY_TWILIO_AUTH_TOKEN": "fuzz-twilio-token",
    "PARLEY_TELNYX_PUBLIC_KEY": base64.b64encode(bytes(range(32))).decode(),
    "PARLEY_VONAGE_SIGNATURE_SECRET": "fuzz-vonage-signature-secret",
    "PARLEY_VONAGE_MESSAGES_SIGNATURE_SECRET": "fuzz-vonage-messages-signature-secret-0123",
    "PARLEY_VONAGE_API_KEY": "fuzzkey",
    "PARLEY_VONAGE_API_SECRET": "fuzzsecret",
    "PARLEY_BANDWIDTH_CALLBACK_USERNAME": "fuzz-user",
    "PARLEY_BANDWIDTH_CALLBACK_PASSWORD": "fuzz-password",
    "PARLEY_BANDWIDTH_ACCOUNT_ID": "9900000",
    "PARLEY_BANDWIDTH_USERNAME": "fuzz-api-user",
    "PARLEY_BANDWIDTH_PASSWORD": "fuzz-api-password",
    "PARLEY_BANDWIDTH_APPLICATION_ID": "fuzz-app",
    "PARLEY_PLIVO_AUTH_ID": "MAFUZZ0000000000000",
    "PARLEY_PLIVO_AUTH_TOKEN": "fuzz-plivo-token",
    "PARLEY_AWS_SNS_TOPIC_ARNS": "arn:aws:sns:us-east-1:123456789012:parley-sms",
    "PARLEY_PUBLIC_BASE_URL": "https://sms.example.test",
}

ROUTES = [
    (carrier, path.rsplit("/", 1)[1]) for carrier in known_carriers() for path in webhook_paths(carrier)
]

HEADER_NAMES = st.sampled_from(
    [
        "content-type",
        "x-twilio-signature",
        "telnyx-signature-ed25519",
        "telnyx-timestamp",
        "authorization",
        "x-plivo-signature-v3",
        "x-plivo-signature-v3-nonce",
        "x-plivo-signature-v2",
        "x-plivo-signature-v2-nonce",
        "x-amz-sns-message-type",
    ]
)
HEADER_VALUES = st.one_of(
    st.text(max_size=80),
    st.sampled_from(
        ["application/json", "application/x-www-form-urlencoded", "Basic Zm9vOmJhcg==", "Bearer a.b.c"]
    ),
)
BODIES = st.one_of(
    st.binary(max_size=2048),
    st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=12).map(
        lambda d: json.dumps(d).encode()
    ),
    st.lists(st.tuples(st.text(max_size=15), st.text(max_size=30)), max_size=12).map(
        lambda pairs: "&".join(f"{k}={v}" for k, v in pairs).encode()
    ),
)


@pytest.fixture
def inbound_queue(aws_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for name, value in CARRIER_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PARLEY_INBOUND_QUEUE_URL", aws_settings.inbound_queue_url)
    monkeypatch.setenv("PARLEY_VERIFY_MODE", "enforce")
    wiring.reset_container()
    aws.client.cache_clear()
    yield aws_settings.inbound_queue_url
    wiring.reset_container()
    aws.client.cache_clear()


def _event(carrier: str, kind: str, body: bytes, headers: dict[str, str], b64: bool) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "POST /webhooks/{carrier}/{kind}",
        "rawPath": f"/webhooks/{carrier}/{kind}",
        "rawQueryString": "",
        "headers": headers,
        "pathParameters": {"carrier": carrier, "kind": kind},
        "requestContext": {"requestId": "fuzz", "http": {"method": "POST"}, "domainName": "sms.example.test"},
        "body": base64.b64encode(body).decode() if b64 else body.decode("utf-8", "replace"),
        "isBase64Encoded": b64,
    }


class _Context:
    function_name = "fuzz"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:fuzz"
    aws_request_id = "fuzz"


@pytest.mark.parametrize(("carrier", "kind"), ROUTES, ids=[f"{c}-{k}" for c, k in ROUTES])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODIES, headers=st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=5), b64=st.booleans())
def test_fuzzed_webhooks_get_a_4xx_and_queue_nothing(
    inbound_queue: str, carrier: str, kind: str, body: bytes, headers: dict[str, str], b64: bool
) -> None:
    result = webhook.handler(_event(carrier, kind, body, headers, b64), _Context())

    reachability_check = carrier == "vonage" and result["statusCode"] == 204  # no parameters at all
    assert 400 <= result["statusCode"] < 500 or result["statusCode"] == 503 or reachability_check, result
    depth = boto3.client("sqs", region_name="us-east-1").get_queue_attributes(
        QueueUrl=inbound_queue, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]["ApproximateNumberOfMessages"]
    assert depth == "0"


# -- signed requests with hostile contents: a 4xx, or queued events the processor can read -----------

BANDWIDTH_AUTH = {"authorization": "Basic " + base64.b64encode(b"fuzz-user:fuzz-password").decode()}
JSON_TYPE = {"content-type": "application/json"}


def _queued(queue_url: str) -> list[str]:
    sqs = boto3.client("sqs", region_name="us-east-1")
    bodies: list[str] = []
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            return bodies
        for message in batch:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def _bandwidth_inbound(text: str, sender: str, when: str, media: list[str]) -> dict[str, Any]:
    return {
        "type": "message-received",
        "time": when,
        "to": "+15005550006",
        "message": {
            "id": "bw-fuzz",
            "owner": "+15005550006",
            "from": sender,
            "to": ["+15005550006"],
            "text": text,
            "time": when,
            "media": media,
        },
    }


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.text(
        st.one_of(st.characters(), st.characters(categories=["Cs"])), max_size=60
    ),  # lone surrogates
    sender=st.one_of(st.text(max_size=40), st.sampled_from(["+14155550100", "+", "+0", " ", "1" * 40])),
    when=st.one_of(
        st.sampled_from(["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00", "2099-01-01T00:00:00Z"]),
        st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    ),
    media=st.lists(st.just("https://messaging.bandwidth.com/api/v2/users/9900000/media/m.jpg"), max_size=30),
)
def test_signed_callbacks_with_hostile_contents_never_poison_the_queue(
    inbound_queue: str, text: str, sender: str, when: str, media: list[str]
) -> None:
    body = json.dumps([_bandwidth_inbound(text, sender, when, media)]).encode()
    result = webhook.handler(
        _event("bandwidth", "events", body, {**BANDWIDTH_AUTH, **JSON_TYPE}, False), _Context()
    )

    assert result["statusCode"] in (200, 400), result
    queued = _queued(inbound_queue)
    assert len(queued) == (1 if result["statusCode"] == 200 else 0)
    for text_body in queued:  # what the processor reads: it must parse, every time
        envelope = CarrierEventEnvelope.model_validate_json(text_body)
        assert isinstance(envelope.event, InboundMessage)
        assert envelope.event.received_at <= datetime.now(UTC) + timedelta(minutes=5)


def _receipts(count: int) -> bytes:
    return json.dumps(
        [
            {"type": "message-delivered", "time": "2026-11-28T14:00:00Z", "message": {"id": f"bw-{i}"}}
            for i in range(count)
        ]
    ).encode()


def test_a_callback_of_many_events_is_queued_in_batches_and_too_many_are_refused(inbound_queue: str) -> None:
    headers = {**BANDWIDTH_AUTH, **JSON_TYPE}
    ok = webhook.handler(_event("bandwidth", "events", _receipts(100), headers, False), _Context())
    assert ok["statusCode"] == 200, ok
    assert len(_queued(inbound_queue)) == 100

    refused = webhook.handler(_event("bandwidth", "events", _receipts(101), headers, False), _Context())
    assert refused["statusCode"] == 400 and "more than 100 events" in refused["body"]
    assert _queued(inbound_queue) == []


def test_a_misconfigured_carrier_is_a_5xx_that_names_no_setting(
    inbound_queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARLEY_TELNYX_PUBLIC_KEY", "not-a-key")
    wiring.reset_container()
    result = webhook.handler(_event("telnyx", "events", b"{}", JSON_TYPE, False), _Context())
    assert result["statusCode"] == 503
    assert "PARLEY_" not in result["body"] and "public key" not in result["body"]
    unknown = webhook.handler(_event("nobody", "events", b"{}", JSON_TYPE, False), _Context())
    assert unknown["statusCode"] == 404


@pytest.mark.parametrize(
    ("carrier", "kind", "body", "headers", "words"),
    [
        (
            "plivo",
            "messages",
            b"From=1&To=2",
            {"content-type": "text/plain", "x-plivo-signature-v3": "a=", "x-plivo-signature-v3-nonce": "1"},
            "content type",
        ),
        (
            "twilio",
            "messages",
            b"Body=\xff",
            {"content-type": "application/x-www-form-urlencoded", "x-twilio-signature": "a="},
            "form data",
        ),
        ("twilio", "messages", b'{"a": 1}', {**JSON_TYPE, "x-twilio-signature": "a="}, "bodySHA256"),
        ("vonage", "messages", b"<x/>", {"content-type": "text/xml"}, "content type"),
        ("aws", "events", b"not json", {"content-type": "text/plain"}, "not an SNS message"),
    ],
    ids=["plivo-text-plain", "twilio-not-utf8", "twilio-json-unhashed", "vonage-xml", "aws-not-json"],
)
def test_an_unreadable_body_gets_a_400_with_the_reason_not_a_403(
    inbound_queue: str, carrier: str, kind: str, body: bytes, headers: dict[str, str], words: str
) -> None:
    result = webhook.handler(_event(carrier, kind, body, headers, True), _Context())
    assert result["statusCode"] == 400 and words in result["body"], result


def test_vonage_s_empty_reachability_check_is_acknowledged(inbound_queue: str) -> None:
    result = webhook.handler(_event("vonage", "messages", b"", {}, False), _Context())
    assert result["statusCode"] == 204, result
    assert _queued(inbound_queue) == []
