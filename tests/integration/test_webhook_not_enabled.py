"""A carrier this stack does not use answers 404 through the real webhook handler (moto SSM and SQS),
so anonymous posts to its path can't set off the 5xx alarm; a carrier half set up still answers 503,
which the carrier retries while the operator finishes. Settings are shaped as template.yaml sets them:
every carrier's SSM parameter names are present, the parameters exist only for carriers in use."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from functions.inbound import webhook
from parley import wiring
from parley.adapters import aws
from parley.config import Settings

STAGE_PARAMS = {
    "PARLEY_TWILIO_AUTH_TOKEN_PARAM": "/parley/prod/twilio/auth-token",
    "PARLEY_VONAGE_API_SECRET_PARAM": "/parley/prod/vonage/api-secret",
    "PARLEY_VONAGE_SIGNATURE_SECRET_PARAM": "/parley/prod/vonage/signature-secret",
    "PARLEY_VONAGE_MESSAGES_SIGNATURE_SECRET_PARAM": "/parley/prod/vonage/messages-signature-secret",
    "PARLEY_PLIVO_AUTH_TOKEN_PARAM": "/parley/prod/plivo/auth-token",
}
TWILIO_ONLY = {
    **STAGE_PARAMS,
    "PARLEY_TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "PARLEY_VONAGE_API_KEY": "",
    "PARLEY_VONAGE_SIGNATURE_METHOD": "md5hash",
    "PARLEY_PLIVO_AUTH_ID": "",
}


@pytest.fixture
def stack(aws_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for name in [n for n in list(os.environ) if n.startswith(("PARLEY_VONAGE", "PARLEY_PLIVO"))]:
        monkeypatch.delenv(name)
    for name, value in TWILIO_ONLY.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PARLEY_INBOUND_QUEUE_URL", aws_settings.inbound_queue_url)
    monkeypatch.setenv("PARLEY_VERIFY_MODE", "enforce")
    _store("/parley/prod/twilio/auth-token", "twilio-token")
    wiring.reset_container()
    aws.client.cache_clear()
    yield aws_settings.inbound_queue_url
    wiring.reset_container()
    aws.client.cache_clear()


def _store(name: str, value: str) -> None:
    boto3.client("ssm", region_name="us-east-1").put_parameter(Name=name, Value=value, Type="SecureString")


def _post(carrier: str, kind: str = "messages", headers: dict[str, str] | None = None) -> dict[str, Any]:
    event = {
        "version": "2.0",
        "routeKey": "POST /webhooks/{carrier}/{kind}",
        "rawPath": f"/webhooks/{carrier}/{kind}",
        "rawQueryString": "",
        "headers": {"content-type": "application/json", **(headers or {})},
        "pathParameters": {"carrier": carrier, "kind": kind},
        "requestContext": {"requestId": "r1", "http": {"method": "POST"}, "domainName": "sms.example.test"},
        "body": json.dumps({"text": "hi"}),
        "isBase64Encoded": False,
    }
    return webhook.handler(event, _Context())


class _Context:
    function_name = "webhook"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:webhook"
    aws_request_id = "r1"


def _queue_depth(queue_url: str) -> str:
    attributes = boto3.client("sqs", region_name="us-east-1").get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return str(attributes["ApproximateNumberOfMessages"])


@pytest.mark.parametrize("carrier", ["vonage", "plivo"])
def test_a_carrier_with_no_settings_is_a_404_without_an_error_log(
    stack: str, carrier: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO)
    for _ in range(3):
        result = _post(carrier)
        assert result["statusCode"] == 404, result
        assert json.loads(result["body"]) == {"error": "carrier not enabled"}
    assert [r.levelno for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert not any(r.exc_info for r in caplog.records)
    assert [r.getMessage() for r in caplog.records].count("webhook for a carrier that is not enabled") == 3
    assert capsys.readouterr().out.count('"Reason":"not-enabled"') == 3  # the WebhookRejected metric
    assert _queue_depth(stack) == "0"


def test_an_unsigned_post_to_vonage_messages_without_a_signature_secret_is_a_403(stack: str) -> None:
    result = _post("vonage-messages")
    assert result["statusCode"] == 403, result
    assert _queue_depth(stack) == "0"


def test_an_unsigned_post_to_vonage_messages_with_its_secret_stored_is_a_503_to_retry(stack: str) -> None:
    _store("/parley/prod/vonage/messages-signature-secret", "vm-signature-secret-0123456789abcdef")
    result = _post("vonage-messages")
    assert result["statusCode"] == 503, result
    assert "unsigned" in result["body"]


def test_plivo_with_an_auth_id_but_no_stored_token_is_a_503(
    stack: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARLEY_PLIVO_AUTH_ID", "MA0000000000000000")
    wiring.reset_container()
    result = _post("plivo")
    assert result["statusCode"] == 503, result
    assert json.loads(result["body"]) == {"error": "this carrier is not configured correctly"}


def test_vonage_with_a_stored_secret_but_no_api_key_is_a_503(stack: str) -> None:
    _store("/parley/prod/vonage/signature-secret", "vonage-signature-secret")
    result = _post("vonage")
    assert result["statusCode"] == 503, result


def test_a_used_carrier_still_rejects_an_unsigned_post_with_a_403(stack: str) -> None:
    assert _post("twilio")["statusCode"] == 403
