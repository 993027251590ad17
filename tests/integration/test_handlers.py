"""The real Lambda handlers, driven with API Gateway v2 and SQS events against moto.

The composition root is built from PARLEY_* variables pointing at the fixture's tables and queues,
exactly as a deployed function builds it from template.yaml's Globals.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest

from functions.api import app as api
from functions.inbound import processor, webhook
from functions.retry import app as retry_app
from functions.send import app as send_app
from parley import wiring
from parley.adapters import aws
from parley.adapters.dynamo import (
    DynamoConversations,
    DynamoMessages,
    DynamoNumbers,
    DynamoReceipts,
    DynamoTemplates,
)
from parley.carriers.twilio import EMPTY_TWIML
from parley.config import Settings
from parley.domain.ids import inbound_message_id
from parley.domain.models import Message, MessageStatus, OurNumber, SendRequest, Template

REGION = "us-east-1"
AUTH_TOKEN = "test-auth-token-0123456789"
ACCOUNT_SID = "AC" + "0" * 32
BASE_URL = "https://sms.example.test"
OURS = "+15005550006"
CUSTOMER = "+14155550100"


@dataclass
class LambdaContext:
    function_name: str = "parley-test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:parley-test"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"


CONTEXT = LambdaContext()


@dataclass
class Stack:
    settings: Settings
    events_url: str  # an SQS queue subscribed to everything on the Parley bus

    def queue_messages(self, url: str) -> list[dict[str, Any]]:
        """Receive (and so hide) what is visible on a queue now."""
        out: list[dict[str, Any]] = []
        sqs = boto3.client("sqs", region_name=REGION)
        while True:
            batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return out
            out += batch

    def depth(self, url: str) -> int:
        attrs = boto3.client("sqs", region_name=REGION).get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"])

    def domain_events(self) -> list[str]:
        return [json.loads(m["Body"])["detail-type"] for m in self.queue_messages(self.events_url)]


@pytest.fixture
def stack(aws_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    env = {
        "AWS_REGION": REGION,
        "PARLEY_MESSAGES_TABLE": aws_settings.messages_table,
        "PARLEY_CONVERSATIONS_TABLE": aws_settings.conversations_table,
        "PARLEY_CONTACTS_TABLE": aws_settings.contacts_table,
        "PARLEY_TEMPLATES_TABLE": aws_settings.templates_table,
        "PARLEY_NUMBERS_TABLE": aws_settings.numbers_table,
        "PARLEY_RECEIPTS_TABLE": aws_settings.receipts_table,
        "PARLEY_DIGESTS_TABLE": aws_settings.digests_table,
        "PARLEY_RATE_LIMITS_TABLE": aws_settings.rate_limits_table,
        "PARLEY_INBOUND_QUEUE_URL": aws_settings.inbound_queue_url,
        "PARLEY_SEND_QUEUE_URL": aws_settings.send_queue_url,
        "PARLEY_RETRY_QUEUE_URL": aws_settings.retry_queue_url,
        "PARLEY_EVENT_BUS_NAME": aws_settings.event_bus_name,
        "PARLEY_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "PARLEY_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "PARLEY_PUBLIC_BASE_URL": BASE_URL,
        "PARLEY_VERIFY_MODE": "enforce",
        "PARLEY_TWILIO_API_BASE": "http://127.0.0.1:9",  # nothing listens: no test may reach Twilio
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    wiring.reset_container()
    aws.client.cache_clear()

    sqs = boto3.client("sqs", region_name=REGION)
    events_url = sqs.create_queue(QueueName="domain-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=events_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = boto3.client("events", region_name=REGION)
    bus.put_rule(Name="all", EventBusName=aws_settings.event_bus_name, EventPattern='{"source": ["parley"]}')
    bus.put_targets(Rule="all", EventBusName=aws_settings.event_bus_name, Targets=[{"Id": "q", "Arn": arn}])
    DynamoNumbers().save(OurNumber(number=OURS, carrier="twilio", is_default=True))

    yield Stack(aws_settings, events_url)

    wiring.reset_container()
    aws.client.cache_clear()


# -- event builders ---------------------------------------------------------------------------------


def http_event(
    method: str,
    path: str,
    *,
    body: str | bytes | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    claims: dict[str, str] | None = None,
    path_parameters: dict[str, str] | None = None,
    base64_body: bool = False,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) event."""
    raw = body.encode() if isinstance(body, str) else body
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": urlencode(query or {}),
        "headers": {"host": "sms.example.test", **(headers or {})},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.9",
                "userAgent": "pytest",
            },
            "requestId": "req-" + hashlib.sha1(f"{method}{path}{raw!r}".encode()).hexdigest()[:12],
            "routeKey": "$default",
            "stage": "$default",
            "time": "06/May/2024:09:00:00 +0000",
            "timeEpoch": 1714986000000,
        },
        "isBase64Encoded": base64_body,
    }
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = path_parameters
    if claims is not None:
        event["requestContext"]["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    if raw is not None:
        event["body"] = base64.b64encode(raw).decode() if base64_body else raw.decode()
    return event


def sqs_event(messages: list[dict[str, Any]], queue: str = "inbound") -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1714986000000",
                    "SenderId": "AIDA",
                    "ApproximateFirstReceiveTimestamp": "1714986000000",
                },
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:{queue}",
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }


def twilio_signature(url: str, params: dict[str, str], token: str = AUTH_TOKEN) -> str:
    """Twilio's scheme: base64 HMAC-SHA1 over the URL followed by each name+value, sorted by name."""
    payload = url + "".join(name + params[name] for name in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), payload.encode(), hashlib.sha1).digest()).decode()


def inbound_form(sid: str = "SM" + "a" * 32, body: str = "Is my order ready?") -> dict[str, str]:
    return {
        "MessageSid": sid,
        "SmsMessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": CUSTOMER,
        "To": OURS,
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "FromCity": "",
        "ToCity": "",
    }


def webhook_event(
    form: dict[str, str],
    *,
    carrier: str = "twilio",
    kind: str = "messages",
    signature: str | None = None,
    base64_body: bool = False,
) -> dict[str, Any]:
    path = f"/webhooks/{carrier}/{kind}"
    return http_event(
        "POST",
        path,
        body=urlencode(form),
        headers={
            "content-type": "application/x-www-form-urlencoded",
            "x-twilio-signature": signature or twilio_signature(BASE_URL + path, form),
        },
        path_parameters={"carrier": carrier, "kind": kind},
        base64_body=base64_body,
    )


def call_webhook(event: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = webhook.handler(event, CONTEXT)
    return result


def call_api(event: dict[str, Any]) -> tuple[int, Any]:
    result: dict[str, Any] = api.handler(event, CONTEXT)
    body = result.get("body") or "null"
    return int(result["statusCode"]), json.loads(body)


CLAIMS = {"sub": "user-1", "team": "default"}


def post_json(
    path: str, payload: Any, *, claims: dict[str, str] = CLAIMS, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    body = payload if isinstance(payload, str) else json.dumps(payload)
    headers = {"content-type": "application/json", **(headers or {})}
    return call_api(http_event("POST", path, body=body, headers=headers, claims=claims))


def get(
    path: str, *, claims: dict[str, str] = CLAIMS, query: dict[str, str] | None = None
) -> tuple[int, Any]:
    return call_api(http_event("GET", path, claims=claims, query=query))


# -- the webhook --------------------------------------------------------------------------------------


def test_a_signed_webhook_is_acknowledged_with_twiml_and_queued(stack: Stack) -> None:
    result = call_webhook(webhook_event(inbound_form()))

    assert result["statusCode"] == 200
    assert result["body"] == EMPTY_TWIML
    assert result["headers"]["Content-Type"] == "text/xml"
    (queued,) = stack.queue_messages(stack.settings.inbound_queue_url)
    envelope = json.loads(queued["Body"])
    assert envelope["event"]["carrier_message_id"] == "SM" + "a" * 32
    assert envelope["event"]["from_number"] == CUSTOMER
    assert envelope["correlation_id"]  # the API Gateway request id, for tracing


def test_the_signature_helper_matches_twilios_published_example() -> None:
    # https://www.twilio.com/docs/usage/security#validating-requests (the documented example values)
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature(url, params, token="12345") == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_a_forged_signature_is_403_and_nothing_is_queued(stack: Stack) -> None:
    form = inbound_form()
    forged = twilio_signature(BASE_URL + "/webhooks/twilio/messages", form, token="not-our-token")

    result = call_webhook(webhook_event(form, signature=forged))

    assert result["statusCode"] == 403
    assert stack.depth(stack.settings.inbound_queue_url) == 0


def test_a_body_altered_after_signing_is_403(stack: Stack) -> None:
    form = inbound_form()
    event = webhook_event(form)
    event["body"] = urlencode({**form, "Body": "send me money"})
    assert call_webhook(event)["statusCode"] == 403
    assert stack.depth(stack.settings.inbound_queue_url) == 0


def test_an_unknown_carrier_is_404(stack: Stack) -> None:
    result = call_webhook(webhook_event(inbound_form(), carrier="acme"))
    assert result["statusCode"] == 404
    assert stack.depth(stack.settings.inbound_queue_url) == 0


def test_an_unknown_kind_is_404(stack: Stack) -> None:
    result = call_webhook(webhook_event(inbound_form(), kind="voice"))
    assert result["statusCode"] == 404
    assert stack.depth(stack.settings.inbound_queue_url) == 0


def test_a_signed_form_without_a_message_sid_is_400(stack: Stack) -> None:
    form = {k: v for k, v in inbound_form().items() if k not in ("MessageSid", "SmsMessageSid")}

    result = call_webhook(webhook_event(form))

    assert result["statusCode"] == 400
    assert "MessageSid" in json.loads(result["body"])["error"]
    assert stack.depth(stack.settings.inbound_queue_url) == 0


def test_a_base64_encoded_body_verifies(stack: Stack) -> None:
    result = call_webhook(webhook_event(inbound_form(body="Olá, está pronto? ✅"), base64_body=True))

    assert result["statusCode"] == 200
    (queued,) = stack.queue_messages(stack.settings.inbound_queue_url)
    assert json.loads(queued["Body"])["event"]["body"] == "Olá, está pronto? ✅"


def test_a_queued_webhook_becomes_one_message_in_one_conversation_even_if_processed_twice(
    stack: Stack,
) -> None:
    call_webhook(webhook_event(inbound_form()))
    queued = stack.queue_messages(stack.settings.inbound_queue_url)
    assert len(queued) == 1

    first = processor.handler(sqs_event(queued), CONTEXT)
    second = processor.handler(sqs_event(queued), CONTEXT)  # SQS delivers at least once

    assert first == second == {"batchItemFailures": []}
    message_id = inbound_message_id("twilio", "SM" + "a" * 32)
    stored = DynamoMessages(stack.settings).get(message_id)
    assert stored is not None and stored.status is MessageStatus.RECEIVED
    assert stored.body == "Is my order ready?"
    conversation = DynamoConversations().get(CUSTOMER)
    assert conversation is not None
    assert (conversation.message_count, conversation.unread_count) == (1, 1)
    assert conversation.our_numbers == [OURS]
    assert stack.domain_events() == ["MessageReceived"]


def test_the_same_webhook_posted_twice_by_the_carrier_is_still_one_message(stack: Stack) -> None:
    call_webhook(webhook_event(inbound_form()))
    call_webhook(webhook_event(inbound_form()))
    queued = stack.queue_messages(stack.settings.inbound_queue_url)
    assert len(queued) == 2

    assert processor.handler(sqs_event(queued), CONTEXT) == {"batchItemFailures": []}

    conversation = DynamoConversations().get(CUSTOMER)
    assert conversation is not None and conversation.message_count == 1


def test_a_status_webhook_for_a_message_we_do_not_know_yet_is_parked(stack: Stack) -> None:
    form = {"MessageSid": "SM" + "b" * 32, "MessageStatus": "delivered", "AccountSid": ACCOUNT_SID}
    assert call_webhook(webhook_event(form, kind="status"))["statusCode"] == 200
    queued = stack.queue_messages(stack.settings.inbound_queue_url)

    assert processor.handler(sqs_event(queued), CONTEXT) == {"batchItemFailures": []}

    (parked,) = DynamoReceipts().parked_for("twilio", "SM" + "b" * 32)
    assert parked.status is MessageStatus.DELIVERED


# -- the inbox API ------------------------------------------------------------------------------------


def test_post_messages_stores_queues_and_answers_202(stack: Stack) -> None:
    status, body = post_json("/v1/messages", {"to": [CUSTOMER, "+14155550101"], "body": "Your order shipped"})

    assert status == 202
    ids = [m["message_id"] for m in body["messages"]]
    assert len(ids) == 2
    assert all(m["status"] == "queued" for m in body["messages"])
    queued = stack.queue_messages(stack.settings.send_queue_url)
    assert sorted(json.loads(m["Body"])["message_id"] for m in queued) == sorted(ids)
    stored = DynamoMessages(stack.settings).get(ids[0])
    assert stored is not None
    assert (stored.requested_by, stored.our_number, stored.team) == ("user-1", OURS, "default")


def test_post_messages_with_an_idempotency_key_header_gives_the_same_ids(stack: Stack) -> None:
    payload = {"to": [CUSTOMER], "body": "once"}
    _, first = post_json("/v1/messages", payload, headers={"idempotency-key": "k-1"})
    _, second = post_json("/v1/messages", payload, headers={"idempotency-key": "k-1"})
    assert [m["message_id"] for m in first["messages"]] == [m["message_id"] for m in second["messages"]]
    conversation = DynamoConversations().get(CUSTOMER)
    assert conversation is not None and conversation.message_count == 1


def test_an_invalid_number_is_400_naming_the_field_and_the_reason(stack: Stack) -> None:
    status, body = post_json("/v1/messages", {"to": ["12345"], "body": "hi"})

    assert status == 400
    (error,) = body["errors"]
    assert error["field"] == "to"
    assert "12345" in error["reason"]
    assert stack.depth(stack.settings.send_queue_url) == 0


def test_neither_body_nor_template_is_400(stack: Stack) -> None:
    status, body = post_json("/v1/messages", {"to": [CUSTOMER]})
    assert status == 400
    assert any("exactly one of 'body' or 'template_id'" in e["reason"] for e in body["errors"])


@pytest.mark.parametrize("raw", ["{not json", "", "[1, 2]", '"text"', "null"])
def test_a_body_that_is_not_a_json_object_is_400(stack: Stack, raw: str) -> None:
    status, body = post_json("/v1/messages", raw)
    assert status == 400
    assert "error" in body


def test_an_unknown_field_is_400(stack: Stack) -> None:
    status, body = post_json("/v1/messages", {"to": [CUSTOMER], "body": "hi", "priority": "high"})
    assert status == 400
    assert [e["field"] for e in body["errors"]] == ["priority"]


def test_a_sender_that_is_not_ours_is_400_naming_from(stack: Stack) -> None:
    status, body = post_json("/v1/messages", {"to": [CUSTOMER], "body": "hi", "from": "+15005550099"})
    assert status == 400
    assert [e["field"] for e in body["errors"]] == ["from"]


def test_a_send_at_without_a_time_zone_is_400(stack: Stack) -> None:
    status, body = post_json(
        "/v1/messages", {"to": [CUSTOMER], "body": "hi", "send_at": "2030-01-01T09:00:00"}
    )
    assert status == 400
    assert [e["field"] for e in body["errors"]] == ["send_at"]


def test_get_conversations_lists_the_callers_team_only(stack: Stack) -> None:
    post_json("/v1/messages", {"to": [CUSTOMER], "body": "hello"})

    status, body = get("/v1/conversations")
    other_status, other = get("/v1/conversations", claims={"sub": "u-2", "team": "support"})

    assert status == 200
    assert [c["customer_number"] for c in body["conversations"]] == [CUSTOMER]
    assert body["conversations"][0]["last_message_preview"] == "hello"
    assert (other_status, other["conversations"]) == (200, [])


def test_get_conversation_messages(stack: Stack) -> None:
    post_json("/v1/messages", {"to": [CUSTOMER], "body": "hello"})
    status, body = get(f"/v1/conversations/{CUSTOMER}/messages")
    assert status == 200
    assert [m["body"] for m in body["messages"]] == ["hello"]


@pytest.mark.parametrize("limit", ["0", "201", "abc", "-1", "1.5"])
def test_a_bad_limit_is_400(stack: Stack, limit: str) -> None:
    status, _ = get("/v1/conversations", query={"limit": limit})
    assert status == 400


def b64(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor!",
        b64([1, 2]),
        b64({"team": 1}),
        b64({"customer_number": "x"}),
        b64({"customer_number": {"S": "+1"}}),
        b64({"a": {"S": "b"}}),
        b64({"customer_number": {"N": "1"}, "team": {"S": "default"}, "last_activity_at": {"S": "x"}}),
    ],
)
def test_a_cursor_we_did_not_issue_is_400_not_500(stack: Stack, cursor: str) -> None:
    for n in range(3):  # with data, so a bad start key would reach the query
        post_json("/v1/messages", {"to": [f"+1415555011{n}"], "body": "hi"})
    status, body = get("/v1/conversations", query={"cursor": cursor})
    assert status == 400
    assert body["error"] == "cursor is not valid"


def test_conversation_pages_follow_the_cursor_and_it_only_works_for_its_own_team(stack: Stack) -> None:
    numbers = [f"+1415555011{n}" for n in range(3)]
    for number in numbers:
        post_json("/v1/messages", {"to": [number], "body": "hi"})

    _, first = get("/v1/conversations", query={"limit": "2"})
    _, second = get("/v1/conversations", query={"limit": "2", "cursor": first["cursor"]})
    other_status, _ = get(
        "/v1/conversations", query={"cursor": first["cursor"]}, claims={"sub": "u-2", "team": "support"}
    )

    listed = [c["customer_number"] for page in (first, second) for c in page["conversations"]]
    assert sorted(listed) == numbers
    assert second["cursor"] is None
    assert other_status == 400


def test_get_an_unknown_message_is_404(stack: Stack) -> None:
    status, body = get("/v1/messages/out_does_not_exist")
    assert status == 404
    assert "out_does_not_exist" in body["error"]


def test_get_a_message_of_another_team_is_404(stack: Stack) -> None:
    _, sent = post_json("/v1/messages", {"to": [CUSTOMER], "body": "hi"})
    message_id = sent["messages"][0]["message_id"]

    assert get(f"/v1/messages/{message_id}")[0] == 200
    assert get(f"/v1/messages/{message_id}", claims={"sub": "u-2", "team": "support"})[0] == 404


def test_preview_counts_encoding_and_segments(stack: Stack) -> None:
    status, gsm = post_json("/v1/messages/preview", {"body": "x" * 161})
    _, ucs = post_json("/v1/messages/preview", {"body": "Hi 😀"})

    assert status == 200
    assert (gsm["encoding"], gsm["segments"], gsm["parts"]) == ("GSM-7", 2, [153, 8])
    assert (ucs["encoding"], ucs["segments"]) == ("UCS-2", 1)
    assert ucs["non_gsm_characters"] == ["😀"]


@pytest.mark.parametrize("payload", [{}, {"body": 5}, {"text": "hi"}])
def test_preview_without_a_text_body_is_400(stack: Stack, payload: dict[str, Any]) -> None:
    assert post_json("/v1/messages/preview", payload)[0] == 400


def test_an_unknown_route_is_404(stack: Stack) -> None:
    assert get("/v1/nothing-here") == (404, {"error": "nothing at GET /v1/nothing-here"})


# -- the send queue ---------------------------------------------------------------------------------


def test_a_bad_send_record_is_consumed_and_becomes_a_visible_failed_message(stack: Stack) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    sqs.send_message(QueueUrl=stack.settings.send_queue_url, MessageBody=json.dumps({"to": ["nope"]}))
    records = stack.queue_messages(stack.settings.send_queue_url)

    result = send_app.handler(sqs_event(records, queue="send"), CONTEXT)

    assert result == {"batchItemFailures": []}
    assert stack.domain_events() == ["MessageFailed"]
    failed = DynamoMessages(stack.settings).list_view("failed", limit=10, cursor=None).items
    assert [m.customer_number for m in failed] == ["nope"]
    assert "rejected" in (failed[0].error_reason or "")


# -- the sample events in events/ ---------------------------------------------------------------------

EVENTS = Path(__file__).resolve().parents[2] / "events"


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return loaded


@pytest.fixture
def sample_env(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """The samples are signed for a deployed API's URL with the local stack's default auth token."""
    monkeypatch.setenv("PARLEY_TWILIO_AUTH_TOKEN", "parley-local-auth-token")
    monkeypatch.setenv("PARLEY_PUBLIC_BASE_URL", "https://abc123.execute-api.us-east-1.amazonaws.com")
    wiring.reset_container()
    DynamoTemplates().save(Template(template_id="welcome", name="Welcome", body="Hi {{first_name|there}}"))
    return stack


@pytest.mark.parametrize("name", ["webhook_twilio_inbound.json", "webhook_twilio_status.json"])
def test_sample_webhooks_verify_and_are_acknowledged(sample_env: Stack, name: str) -> None:
    result = call_webhook(sample(name))
    assert result["statusCode"] == 200, result
    assert sample_env.depth(sample_env.settings.inbound_queue_url) == 1


@pytest.mark.parametrize(
    ("name", "handler_module"),
    [
        ("processor_inbound_message.json", processor),
        ("send_eventbridge_send_message.json", send_app),
        ("send_raw_request.json", send_app),
        ("send_message_job.json", send_app),
        ("retry_message_job.json", retry_app),
    ],
)
def test_sample_queue_events_are_processed_without_failures(
    sample_env: Stack, name: str, handler_module: Any
) -> None:
    result = handler_module.handler(sample(name), CONTEXT)
    assert result == {"batchItemFailures": []}


def test_the_sample_eventbridge_request_stores_one_message_per_recipient(sample_env: Stack) -> None:
    send_app.handler(sample("send_eventbridge_send_message.json"), CONTEXT)
    detail = sample("eventbridge_send_message.json")["detail"]
    for number in detail["to"]:
        (message,) = (
            DynamoMessages(sample_env.settings).list_for_conversation(number, limit=5, cursor=None).items
        )
        assert message.body == "Hi there"


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("api_send_messages.json", 202),
        ("api_preview.json", 200),
        ("api_list_conversations.json", 200),
        ("api_get_message.json", 404),  # the sample id is not stored
    ],
)
def test_sample_api_events_get_their_documented_status(sample_env: Stack, name: str, status: int) -> None:
    code, _ = call_api(sample(name))
    assert code == status


def test_the_sample_schedules_run(sample_env: Stack) -> None:
    assert set(retry_app.handler(sample("retry_sweep_schedule.json"), CONTEXT)) == {
        "receipts_applied",
        "released",
        "recovered",
        "dead_letters",
    }


def test_the_published_send_request_schema_is_the_models_schema() -> None:
    published = json.loads((EVENTS / "schemas" / "send-request.v1.schema.json").read_text())
    current = SendRequest.model_json_schema(by_alias=True)
    assert published["properties"] == current["properties"]
    assert published.get("required") == current.get("required")


# -- resend from the Failed view ----------------------------------------------------------------------

OTHER_TEAM = {"sub": "u-2", "team": "support"}


def sent(stack: Stack, *to: str, key: str) -> list[str]:
    status, body = post_json("/v1/messages", {"to": list(to), "body": "hi", "idempotency_key": key})
    assert status == 202, body
    stack.queue_messages(stack.settings.send_queue_url)  # the send jobs: nothing delivers them here
    return [m["message_id"] for m in body["messages"]]


def fail(stack: Stack, message_id: str, *, status: MessageStatus = MessageStatus.FAILED) -> Message:
    """As if the carrier had taken the text as SMold and reported it failed."""
    messages = DynamoMessages(stack.settings)
    current = messages.get(message_id)
    assert current is not None
    return messages.update(
        current.model_copy(
            update={
                "status": status,
                "carrier_message_id": "SM" + message_id[-30:].rjust(32, "0"),
                "error_code": "30003",
                "error_reason": "the handset was unreachable",
            }
        ),
        expected_version=current.version,
    )


def send_jobs(stack: Stack) -> list[dict[str, Any]]:
    return [json.loads(m["Body"]) for m in stack.queue_messages(stack.settings.send_queue_url)]


def test_one_failed_message_is_resent_and_queued(stack: Stack) -> None:
    (message_id,) = sent(stack, "+14155550100", key="k-one")
    failed = fail(stack, message_id)
    stack.domain_events()

    status, body = post_json(f"/v1/messages/{message_id}/resend", {})

    assert status == 200, body
    assert body["message_id"] == message_id and body["status"] == "queued"
    assert body["history"][-1]["detail"] == "resent by user-1 (was: the handset was unreachable)"
    assert body["superseded_carrier_ids"] == [failed.carrier_message_id]
    assert send_jobs(stack) == [{"message_id": message_id}]
    assert stack.domain_events() == ["MessageResent"]
    # Until the new attempt has its own id, the old one still finds the message (for late receipts).
    assert failed.carrier_message_id is not None
    found = DynamoMessages(stack.settings).find_by_carrier_ref("twilio", failed.carrier_message_id)
    assert found is not None and found.message_id == message_id

    again_status, again = post_json(f"/v1/messages/{message_id}/resend", {})
    assert (again_status, again["status"]) == (200, "queued")  # already on its way: not resent twice
    # but its job is queued again, in case the first never got there (delivering is a claim: sent once)
    assert send_jobs(stack) == [{"message_id": message_id}]


def test_one_message_that_is_not_failed_is_409_and_another_teams_is_404(stack: Stack) -> None:
    (message_id,) = sent(stack, "+14155550100", key="k-409")

    status, body = post_json(f"/v1/messages/{message_id}/resend", {})
    assert (status, body) == (409, {"error": "the message is not failed: it is queued"})
    fail(stack, message_id)
    assert post_json(f"/v1/messages/{message_id}/resend", {}, claims=OTHER_TEAM)[0] == 404
    assert post_json("/v1/messages/out_nothing/resend", {})[0] == 404
    assert get(f"/v1/messages/{message_id}")[1]["status"] == "failed"


def test_many_by_ids_answer_per_message(stack: Stack) -> None:
    failed_id, delivered_id = sent(stack, "+14155550100", "+14155550101", key="k-ids")
    fail(stack, failed_id, status=MessageStatus.UNDELIVERED)

    status, body = post_json("/v1/messages/resend", {"ids": [failed_id, "out_unknown", delivered_id]})

    assert status == 200, body
    assert body == {
        "results": [
            {"message_id": failed_id, "result": "resent", "status": "queued", "reason": None},
            {
                "message_id": "out_unknown",
                "result": "refused",
                "status": None,
                "reason": "no message with id out_unknown",
            },
            {
                "message_id": delivered_id,
                "result": "refused",
                "status": "queued",
                "reason": "the message is not failed: it is queued",
            },
        ],
        "more": False,
    }
    assert send_jobs(stack) == [{"message_id": failed_id}]


def test_many_by_a_failed_view_filter(stack: Stack) -> None:
    ids = sent(stack, "+14155550100", "+14155550101", "+14155550102", key="k-view")
    for message_id in ids:
        fail(stack, message_id)
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat()

    other = post_json(
        "/v1/messages/resend", {"view": "failed", "our_number": "+15005550006"}, claims=OTHER_TEAM
    )
    assert other == (200, {"results": [], "more": False})
    assert (
        post_json("/v1/messages/resend", {"view": "failed", "our_number": "+15005550099"})[1]["results"] == []
    )
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert post_json("/v1/messages/resend", {"view": "failed", "since": future})[1]["results"] == []

    status, body = post_json(
        "/v1/messages/resend", {"view": "failed", "our_number": "+15005550006", "since": since}
    )

    assert status == 200, body
    assert sorted(r["message_id"] for r in body["results"]) == sorted(ids)
    assert {(r["result"], r["status"]) for r in body["results"]} == {("resent", "queued")}
    assert sorted(j["message_id"] for j in send_jobs(stack)) == sorted(ids)
    assert DynamoMessages(stack.settings).list_view("failed", limit=10, cursor=None).items == []


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"ids": []},
        {"ids": "out_1"},
        {"ids": [1, 2]},
        {"ids": ["out_1"], "view": "failed"},
        {"ids": [f"out_{i}" for i in range(501)]},
        {"view": "pending"},
        {"view": "failed", "since": "yesterday"},
        {"view": "failed", "since": "2026-11-27T09:00:00"},
        {"view": "failed", "our_number": "not a number"},
    ],
)
def test_a_batch_that_names_nothing_valid_is_400(stack: Stack, payload: dict[str, Any]) -> None:
    status, body = post_json("/v1/messages/resend", payload)
    assert status == 400, body
    assert body["error"]
    assert send_jobs(stack) == []


@pytest.mark.parametrize("path", ["/v1/messages/preview", "/v1/messages"])
def test_an_empty_template_id_is_400_not_503(stack: Stack, path: str) -> None:
    """DynamoDB refuses an empty key; schemathesis found this answered as if AWS had failed."""
    status, body = post_json(path, {"to": [CUSTOMER], "template_id": ""})
    assert status == 400, body
    assert [e["field"] for e in body["errors"]] == ["template_id"]


def test_a_percent_encoded_number_in_the_path_finds_the_conversation(stack: Stack) -> None:
    """URL encoders write `+` as `%2B`; API Gateway passes the path on as sent (schemathesis found it)."""
    post_json("/v1/messages", {"to": [CUSTOMER], "body": "hello"})
    encoded = CUSTOMER.replace("+", "%2B")

    status, body = get(f"/v1/conversations/{encoded}/messages")

    assert status == 200, body
    assert [m["body"] for m in body["messages"]] == ["hello"]
    assert get("/v1/conversations/%2F%2B1/messages")[0] == 404  # an encoded "/" stays one segment


@pytest.mark.parametrize(
    ("path", "payload", "field"),
    [
        ("/v1/templates", {"name": "T", "body": "Hi", "shared": 0}, "shared"),
        ("/v1/records", {"name": "R", "phones": [CUSTOMER], "active": "no"}, "active"),
    ],
)
def test_a_boolean_given_as_a_number_or_text_is_400(
    stack: Stack, path: str, payload: dict[str, Any], field: str
) -> None:
    """The document says boolean; schemathesis found 0 taken as false."""
    status, body = post_json(path, payload)
    assert status == 400, body
    assert [e["field"] for e in body["errors"]] == [field]


# -- what a client gets back from odd but well-meant requests -----------------------------------------


def test_a_null_idempotency_key_in_the_body_leaves_the_header_in_charge(stack: Stack) -> None:
    """Client libraries write unset fields as null: that must not turn off the header's key."""
    payload = {"to": [CUSTOMER], "body": "once", "idempotency_key": None}
    _, first = post_json("/v1/messages", payload, headers={"idempotency-key": "hdr-null-1"})
    _, second = post_json("/v1/messages", payload, headers={"idempotency-key": "hdr-null-1"})
    assert [m["message_id"] for m in first["messages"]] == [m["message_id"] for m in second["messages"]]
    (message_id,) = [m["message_id"] for m in first["messages"]]

    reply = {"body": "thanks", "idempotency_key": None}
    _, one = post_json(f"/v1/messages/{message_id}/reply", reply, headers={"idempotency-key": "hdr-null-2"})
    _, two = post_json(f"/v1/messages/{message_id}/reply", reply, headers={"idempotency-key": "hdr-null-2"})
    assert one["messages"][0]["message_id"] == two["messages"][0]["message_id"]
    conversation = DynamoConversations().get(CUSTOMER)
    assert conversation is not None and conversation.message_count == 2


def test_a_503_for_a_send_without_a_key_hands_back_the_key_and_repeating_with_it_sends_once(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The message is stored before the queue fails, and the Sweep sends what is stored: a client that
    repeats the request must do it under the key the first attempt used."""
    from botocore.exceptions import ClientError

    from parley.adapters.aws import SqsQueue

    def queue_down(self: SqsQueue, body: dict[str, Any]) -> None:
        raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "down"}}, "SendMessage")

    with monkeypatch.context() as patch:
        patch.setattr(SqsQueue, "send", queue_down)
        status, failed = post_json("/v1/messages", {"to": [CUSTOMER], "body": "keyless"})
    assert status == 503, failed
    key = failed["idempotency_key"]
    assert key and f"idempotency_key '{key}'" in failed["error"]
    stored = DynamoConversations().get(CUSTOMER)
    assert stored is not None and stored.message_count == 1  # part of it is stored: it will go out

    status, again = post_json("/v1/messages", {"to": [CUSTOMER], "body": "keyless", "idempotency_key": key})

    assert status == 202, again
    conversation = DynamoConversations().get(CUSTOMER)
    assert conversation is not None and conversation.message_count == 1  # one text, not two
    assert [j["message_id"] for j in send_jobs(stack)] == [again["messages"][0]["message_id"]]


def test_a_503_for_a_send_with_a_key_keeps_the_plain_answer(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    from parley.adapters.aws import SqsQueue

    def queue_down(self: SqsQueue, body: dict[str, Any]) -> None:
        raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "down"}}, "SendMessage")

    monkeypatch.setattr(SqsQueue, "send", queue_down)
    status, body = post_json("/v1/messages", {"to": [CUSTOMER], "body": "hi", "idempotency_key": "mine-1"})
    assert status == 503 and "idempotency_key" not in body and "send the same request again" in body["error"]


def test_dynamodb_refusing_an_item_as_too_large_is_413_not_a_503_to_retry(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError
    from pynamodb.exceptions import PutError

    def too_large(*args: Any, **kwargs: Any) -> None:
        cause = ClientError(
            {
                "Error": {
                    "Code": "ValidationException",
                    "Message": "Item size has exceeded the maximum allowed size",
                }
            },
            "PutItem",
        )
        raise PutError("Failed to put item", cause)

    monkeypatch.setattr(wiring.container().records, "create", too_large)
    status, body = post_json("/v1/records", {"name": "R", "phones": [CUSTOMER]})
    assert status == 413, body
    assert "too large to store" in body["error"] and "again" in body["error"]


def test_a_records_fields_are_bounded_before_they_reach_dynamodb(stack: Stack) -> None:
    huge = {"name": "r", "phones": ["+14155550180"], "fields": {f"k{i}": "x" * 9000 for i in range(50)}}
    status, body = post_json("/v1/records", huge)
    assert status == 400, body
    assert {e["field"] for e in body["errors"]} == {f"fields.k{i}" for i in range(50)}

    many = {"name": "r", "phones": ["+14155550180"], "fields": {f"k{i}": "x" * 1000 for i in range(40)}}
    status, body = post_json("/v1/records", many)
    assert status == 400, body
    assert [e["field"] for e in body["errors"]] == ["fields"] and "bytes" in body["errors"][0]["reason"]
    ok = {"name": "r", "phones": ["+14155550180"], "fields": {f"k{i}": "x" * 500 for i in range(40)}}
    assert post_json("/v1/records", ok)[0] == 201


@pytest.mark.parametrize(
    "query",
    [
        {"since": "0001-01-01T00:00:00+01:00"},
        {"until": "9999-12-31T23:59:59-01:00"},
        {"view": "failed", "since": "0001-01-01T00:00:00+01:00"},
        {"since": "0999-12-31T00:00:00Z"},  # years before 1000 would not sort against stored times
    ],
)
def test_a_time_out_of_range_in_a_view_is_400_not_500(stack: Stack, query: dict[str, str]) -> None:
    status, body = get("/v1/messages", query=query)
    assert status == 400, body
    assert "from year 1000 to 9999" in body["error"]


@pytest.mark.parametrize("since", ["0001-01-01T00:00:00+01:00", "0500-06-01T00:00:00Z"])
def test_a_time_out_of_range_in_the_resend_filter_is_400_not_500(stack: Stack, since: str) -> None:
    status, body = post_json("/v1/messages/resend", {"view": "failed", "since": since})
    assert status == 400, body
    assert "'since'" in body["error"]


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        ("/v1/messages/resend", {"view": "failed", "our_numbr": OURS}),
        ("/v1/messages/resend", {"view": "failed", "bogus": 1}),
        ("/v1/messages/out_x/reschedule", {"send_at": "2030-01-01T09:00:00Z", "sendat": "x"}),
        ("/v1/messages/preview", {"body": "x", "bogus": 1}),
        ("/v1/crm/conflicts/c-1/resolve", {"record_id": "r-1", "recordid": "r-2"}),
    ],
)
def test_an_unknown_field_in_an_action_is_400_naming_it(
    stack: Stack, path: str, payload: dict[str, Any]
) -> None:
    (unknown,) = set(payload) - {"view", "send_at", "body", "record_id"}
    status, body = post_json(path, payload)
    assert status == 400, body
    assert f"unknown field(s) '{unknown}'" in body["error"]


def test_a_failed_view_resend_with_a_misspelt_filter_resends_nothing(stack: Stack) -> None:
    ids = sent(stack, "+14155550100", key="k-misspelt")
    fail(stack, ids[0])
    assert post_json("/v1/messages/resend", {"view": "failed", "our_numbr": "+15005550099"})[0] == 400
    assert send_jobs(stack) == []


def test_a_view_resend_that_stops_early_answers_a_cursor_to_go_on_with(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from parley.services import resend

    monkeypatch.setattr(resend, "MAX_PAGES", 1)
    monkeypatch.setattr(resend, "_PAGE", 2)
    ids = sent(stack, "+14155550100", "+14155550101", "+14155550102", key="k-pages")
    for message_id in ids:
        fail(stack, message_id)

    status, first = post_json("/v1/messages/resend", {"view": "failed"})
    assert status == 200, first
    assert first["more"] is True and len(first["results"]) == 2 and first["cursor"]
    status, rest = post_json("/v1/messages/resend", {"view": "failed", "cursor": first["cursor"]})
    assert status == 200, rest
    assert rest == {"results": rest["results"], "more": False}
    assert sorted(r["message_id"] for r in first["results"] + rest["results"]) == sorted(ids)
    assert post_json("/v1/messages/resend", {"ids": ids, "cursor": first["cursor"]})[0] == 400


def test_preview_takes_to_as_a_list_of_one_and_refuses_more(stack: Stack) -> None:
    DynamoTemplates().save(Template(template_id="hi", name="Hi", body="Hi {{first_name|there}}"))
    status, contact = post_json(
        "/v1/records", {"name": "Ada Lovelace", "first_name": "Ada", "phones": [CUSTOMER]}
    )
    assert status == 201, contact

    as_text = post_json("/v1/messages/preview", {"template_id": "hi", "to": CUSTOMER})
    as_list = post_json("/v1/messages/preview", {"template_id": "hi", "to": [CUSTOMER]})
    assert as_text[1]["text"] == as_list[1]["text"] == "Hi Ada"

    status, body = post_json("/v1/messages/preview", {"template_id": "hi", "to": [CUSTOMER, "+14155550101"]})
    assert (status, body["error"]) == (400, "'to' names one recipient: preview renders for one recipient")
    for bad in (5, {"n": CUSTOMER}, [5]):
        assert post_json("/v1/messages/preview", {"template_id": "hi", "to": bad})[0] == 400


@pytest.mark.parametrize("body", ["", "   "])
def test_preview_counts_an_empty_body_but_says_a_send_would_not_take_it(stack: Stack, body: str) -> None:
    status, answer = post_json("/v1/messages/preview", {"body": body})
    assert status == 200, answer
    assert answer["within_limit"] is False  # the send refuses an empty body
    sent = post_json("/v1/messages", {"to": ["+14155550100"], "body": body})
    assert sent[0] == 400


def test_preview_counts_a_text_over_the_limits_and_says_so(stack: Stack) -> None:
    status, short = post_json("/v1/messages/preview", {"body": "hello"})
    assert status == 200 and (short["max_segments"], short["within_limit"]) == (10, True)

    status, long = post_json("/v1/messages/preview", {"body": "x" * 153 * 11})  # 11 parts, 1683 characters
    assert status == 200, long
    assert (long["segments"], long["max_segments"], long["within_limit"]) == (11, 10, False)
    assert post_json("/v1/messages", {"to": [CUSTOMER], "body": "x" * 153 * 11})[0] == 400


@pytest.mark.parametrize("limit", ["٣", "²", "①", "３"])
def test_a_limit_in_other_digits_than_ascii_is_400(stack: Stack, limit: str) -> None:
    status, body = get("/v1/conversations", query={"limit": limit})
    assert (status, body["error"]) == (400, "limit must be a whole number from 1 to 200")


@pytest.mark.parametrize(
    "key",
    [
        {"customer_number": {"S": CUSTOMER}, "message_id": {"S": ""}, "created_at": {"S": "x"}},
        {"customer_number": {"S": CUSTOMER}, "message_id": {"S": "m"}, "created_at": {"S": ""}},
    ],
)
def test_a_cursor_with_an_empty_key_value_is_400(stack: Stack, key: dict[str, Any]) -> None:
    post_json("/v1/messages", {"to": [CUSTOMER], "body": "hello"})
    status, body = get(f"/v1/conversations/{CUSTOMER}/messages", query={"cursor": b64(key)})
    assert (status, body) == (400, {"error": "cursor is not valid"})
