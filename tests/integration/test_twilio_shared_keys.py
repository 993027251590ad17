"""Twilio webhooks signed with a Webhooks Rule's shared key (HMAC-SHA256), the key in SSM (moto).

A deployed webhook function names the optional SecureString `/parley/<stage>/twilio/shared-keys` (a
comma list) and reads it in the auth token's GetParameters call. Most stacks never create it, which
must leave HMAC-SHA1 verification with the auth token as it was. Each phase is a new process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest

from functions.inbound import webhook
from parley import wiring
from parley.adapters import aws
from parley.config import Settings

REGION = "us-east-1"
TOKEN_PARAM = "/parley/test/twilio/auth-token"
KEYS_PARAM = "/parley/test/twilio/shared-keys"
AUTH_TOKEN = "auth-token-0123456789abcdef"
KEY = "whsk_shared_key_0123456789abcdef"
NEXT_KEY = "whsk_shared_key_fedcba9876543210"
WRONG_KEY = "whsk_not_our_key_00000000000000"
BASE_URL = "https://sms.example.test"
PATH = "/webhooks/twilio/messages"
FORM = {
    "MessageSid": "SM" + "c" * 32,
    "AccountSid": "AC" + "0" * 32,
    "From": "+14155550100",
    "To": "+15005550006",
    "Body": "hello",
    "NumMedia": "0",
}


@dataclass
class LambdaContext:
    function_name: str = "parley-test-webhook"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:parley-test-webhook"
    aws_request_id: str = "00000000-0000-0000-0000-000000000002"


@pytest.fixture
def ssm(aws_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The deployed webhook function's view: parameter names only, as template.yaml sets them."""
    for name in (
        "PARLEY_TWILIO_AUTH_TOKEN",
        "PARLEY_TWILIO_AUTH_TOKEN_PREVIOUS",
        "PARLEY_TWILIO_SHARED_KEYS",
    ):
        monkeypatch.delenv(name, raising=False)
    env = {
        "AWS_REGION": REGION,
        "PARLEY_INBOUND_QUEUE_URL": aws_settings.inbound_queue_url,
        "PARLEY_TWILIO_ACCOUNT_SID": FORM["AccountSid"],
        "PARLEY_TWILIO_AUTH_TOKEN_PARAM": TOKEN_PARAM,
        "PARLEY_TWILIO_SHARED_KEYS_PARAM": KEYS_PARAM,
        "PARLEY_PUBLIC_BASE_URL": BASE_URL,
        "PARLEY_VERIFY_MODE": "enforce",
        "PARLEY_VERIFY_LOG_ONLY_CARRIERS": "",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    aws.client.cache_clear()
    client = boto3.client("ssm", region_name=REGION)
    client.put_parameter(Name=TOKEN_PARAM, Value=AUTH_TOKEN, Type="SecureString")
    yield client
    wiring.reset_container()
    aws.client.cache_clear()


def put_keys(ssm: Any, value: str) -> None:
    ssm.put_parameter(Name=KEYS_PARAM, Value=value, Type="SecureString", Overwrite=True)


def signed_event(key: str, algorithm: str) -> dict[str, Any]:
    """An inbound text signed as Twilio signs it: HMAC over URL + sorted fields, with `algorithm`."""
    payload = BASE_URL + PATH + "".join(k + FORM[k] for k in sorted(FORM))
    digest = hashlib.sha256 if algorithm == "HMAC_SHA256" else hashlib.sha1
    signature = base64.b64encode(hmac.new(key.encode(), payload.encode(), digest).digest()).decode()
    headers = {
        "host": "sms.example.test",
        "content-type": "application/x-www-form-urlencoded",
        "x-twilio-signature": signature,
    }
    if algorithm == "HMAC_SHA256":
        headers["x-twilio-webhooks-signature-settings"] = f"key=webhooks_rule_key,algorithm={algorithm}"
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": PATH,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "http": {"method": "POST", "path": PATH, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9"},
            "requestId": "req-" + key[:8],
            "stage": "$default",
            "domainName": "sms.example.test",
        },
        "pathParameters": {"carrier": "twilio", "kind": "messages"},
        "body": urlencode(FORM),
        "isBase64Encoded": False,
    }


def cold_start_statuses(*signed: tuple[str, str]) -> list[int]:
    """A new process answers one webhook per (key, algorithm)."""
    wiring.reset_container()
    return [int(webhook.handler(signed_event(k, a), LambdaContext())["statusCode"]) for k, a in signed]


def test_a_shared_key_stored_in_ssm_verifies_hmac_sha256_and_a_wrong_key_does_not(ssm: Any) -> None:
    put_keys(ssm, KEY)
    statuses = cold_start_statuses(
        (KEY, "HMAC_SHA256"), (WRONG_KEY, "HMAC_SHA256"), (AUTH_TOKEN, "HMAC_SHA1")
    )
    assert statuses == [200, 403, 200]


def test_without_the_parameter_the_webhook_starts_and_only_the_auth_token_verifies(ssm: Any) -> None:
    assert cold_start_statuses((KEY, "HMAC_SHA256"), (AUTH_TOKEN, "HMAC_SHA1")) == [403, 200]


def test_the_comma_list_rotates_a_shared_key(ssm: Any) -> None:
    put_keys(ssm, KEY)
    assert cold_start_statuses((KEY, "HMAC_SHA256"), (NEXT_KEY, "HMAC_SHA256")) == [200, 403]
    put_keys(ssm, f"{NEXT_KEY},{KEY}")  # the new key first, the old one until no rule signs with it
    assert cold_start_statuses((KEY, "HMAC_SHA256"), (NEXT_KEY, "HMAC_SHA256")) == [200, 200]
    put_keys(ssm, NEXT_KEY)
    assert cold_start_statuses((KEY, "HMAC_SHA256"), (NEXT_KEY, "HMAC_SHA256")) == [403, 200]


def test_a_cold_start_still_reads_its_secrets_in_one_ssm_call(ssm: Any) -> None:
    put_keys(ssm, KEY)
    calls: list[tuple[str, list[str]]] = []
    aws.client("ssm", REGION).meta.events.register(
        "provide-client-params.ssm.*",
        lambda params, model, **_: calls.append((model.name, sorted(params.get("Names", [])))),
    )
    assert cold_start_statuses((KEY, "HMAC_SHA256"), (AUTH_TOKEN, "HMAC_SHA1")) == [200, 200]
    assert calls == [("GetParameters", sorted([TOKEN_PARAM, TOKEN_PARAM + "/previous", KEYS_PARAM]))]
