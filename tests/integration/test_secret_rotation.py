"""Rotating a carrier's webhook secret on a deployed stack, through SSM (moto), with no downtime.

The deployed environment names only the SSM parameter (PARLEY_<NAME>_PARAM). During a rotation the
old value sits at `<parameter>/previous`: a cold start then accepts webhooks signed with either
secret; once that parameter is deleted, the next cold start accepts only the new one. Each phase is a
new process here (the container is rebuilt), as the steps in docs/deploy.md make it on Lambda.
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
from parley.carriers.config import CarrierConfig
from parley.config import Settings

REGION = "us-east-1"
PARAM = "/parley/test/twilio/auth-token"
OLD = "old-auth-token-0123456789abcdef"
NEW = "new-auth-token-fedcba9876543210"
BASE_URL = "https://sms.example.test"
PATH = "/webhooks/twilio/messages"
FORM = {
    "MessageSid": "SM" + "b" * 32,
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
    aws_request_id: str = "00000000-0000-0000-0000-000000000001"


@pytest.fixture
def ssm(aws_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A deployed webhook function's view: the secret's parameter name, never the secret."""
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
        "PARLEY_TWILIO_AUTH_TOKEN_PARAM": PARAM,
        "PARLEY_PUBLIC_BASE_URL": BASE_URL,
        "PARLEY_VERIFY_MODE": "enforce",
        "PARLEY_VERIFY_LOG_ONLY_CARRIERS": "",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    aws.client.cache_clear()
    yield boto3.client("ssm", region_name=REGION)
    wiring.reset_container()
    aws.client.cache_clear()


def put(ssm: Any, name: str, value: str) -> None:
    ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)


def signed_event(token: str) -> dict[str, Any]:
    """An HTTP API event for a Twilio inbound text signed with `token` (HMAC-SHA1, Twilio's scheme)."""
    payload = BASE_URL + PATH + "".join(k + FORM[k] for k in sorted(FORM))
    signature = base64.b64encode(hmac.new(token.encode(), payload.encode(), hashlib.sha1).digest()).decode()
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": PATH,
        "rawQueryString": "",
        "headers": {
            "host": "sms.example.test",
            "content-type": "application/x-www-form-urlencoded",
            "x-twilio-signature": signature,
        },
        "requestContext": {
            "http": {"method": "POST", "path": PATH, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9"},
            "requestId": "req-" + token[:8],
            "stage": "$default",
            "domainName": "sms.example.test",
        },
        "pathParameters": {"carrier": "twilio", "kind": "messages"},
        "body": urlencode(FORM),
        "isBase64Encoded": False,
    }


def cold_start_statuses(*tokens: str) -> list[int]:
    """A new process (as after the functions are recycled) answers one webhook per token."""
    wiring.reset_container()
    return [int(webhook.handler(signed_event(t), LambdaContext())["statusCode"]) for t in tokens]


def test_old_and_new_secret_are_accepted_during_a_rotation_and_the_old_one_is_refused_after(
    ssm: Any,
) -> None:
    put(ssm, PARAM, OLD)
    assert cold_start_statuses(OLD, NEW) == [200, 403]  # before: only the current secret

    put(ssm, PARAM + "/previous", OLD)  # step 1: keep the old value beside the parameter
    put(ssm, PARAM, NEW)  # step 2: the new value becomes current
    assert cold_start_statuses(OLD, NEW) == [200, 200]  # during: either signature is accepted

    ssm.delete_parameter(Name=PARAM + "/previous")  # last step: the rotation is over
    assert cold_start_statuses(OLD, NEW) == [403, 200]


def test_a_cold_start_reads_the_secret_and_its_previous_value_in_one_ssm_call(ssm: Any) -> None:
    put(ssm, PARAM, NEW)
    put(ssm, PARAM + "/previous", OLD)
    calls: list[str] = []
    aws.client("ssm", REGION).meta.events.register(
        "before-call.ssm.*", lambda model, **_: calls.append(model.name)
    )
    assert cold_start_statuses(NEW, OLD, NEW) == [200, 200, 200]
    assert calls == ["GetParameters"]


def test_secrets_list_the_current_value_first_then_the_previous_ones(ssm: Any) -> None:
    put(ssm, PARAM, NEW)
    config = CarrierConfig({"PARLEY_TWILIO_AUTH_TOKEN_PARAM": PARAM, "AWS_REGION": REGION})
    assert config.secrets("twilio_auth_token") == (NEW,)  # no rotation under way

    put(ssm, PARAM + "/previous", OLD)
    during = CarrierConfig(
        {
            "PARLEY_TWILIO_AUTH_TOKEN_PARAM": PARAM,
            "PARLEY_TWILIO_AUTH_TOKEN_PREVIOUS": "older, " + OLD,
            "AWS_REGION": REGION,
        }
    )
    assert during.secrets("twilio_auth_token") == (NEW, "older", OLD)  # each value once

    # A value in the environment wins, as locally: SSM is not read at all.
    local = CarrierConfig({"PARLEY_TWILIO_AUTH_TOKEN": "local", "PARLEY_TWILIO_AUTH_TOKEN_PARAM": PARAM})
    assert local.secrets("twilio_auth_token") == ("local",)

    # A parameter that does not exist is no secret, not a crash: the carrier says what is missing.
    missing = CarrierConfig({"PARLEY_PLIVO_AUTH_TOKEN_PARAM": "/parley/test/plivo/auth-token"})
    assert missing.secrets("plivo_auth_token") == ()
