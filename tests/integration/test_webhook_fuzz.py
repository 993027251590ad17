"""Fuzzed webhook requests, for every carrier: never a 500, never anything queued for storage.

The carriers' own tests fuzz `parse` behind a valid signature (it raises only PayloadError, which
the handler answers with 400); here arbitrary bodies and headers go through the real handler.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
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

    assert 400 <= result["statusCode"] < 500 or result["statusCode"] == 503, result
    depth = boto3.client("sqs", region_name="us-east-1").get_queue_attributes(
        QueueUrl=inbound_queue, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]["ApproximateNumberOfMessages"]
    assert depth == "0"
