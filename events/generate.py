"""Generate events/ once; the files are committed and the test replays them through the handlers."""

import base64
import hashlib
import hmac
import json
from pathlib import Path
from urllib.parse import urlencode

from parley.openapi import send_request_schema

OUT = Path("events")
TOKEN = "parley-local-auth-token"
BASE = "https://abc123.execute-api.us-east-1.amazonaws.com"
SID = "AC00000000000000000000000000000000"


def sign(url, params):
    payload = url + "".join(k + params[k] for k in sorted(params))
    return base64.b64encode(hmac.new(TOKEN.encode(), payload.encode(), hashlib.sha1).digest()).decode()


def apigw(
    method, path, *, route, body=None, b64=False, headers=None, path_params=None, claims=None, query=""
):
    ctx = {
        "accountId": "123456789012",
        "apiId": "abc123",
        "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
        "domainPrefix": "abc123",
        "http": {
            "method": method,
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": "203.0.113.10",
            "userAgent": "TwilioProxy/1.1",
        },
        "requestId": "sample-request-id",
        "routeKey": route,
        "stage": "$default",
        "time": "28/Nov/2026:04:00:00 +0000",
        "timeEpoch": 1795752000000,
    }
    if claims is not None:
        ctx["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    ev = {
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers or {},
        "requestContext": ctx,
        "isBase64Encoded": b64,
    }
    if query:
        ev["queryStringParameters"] = dict(p.split("=", 1) for p in query.split("&"))
    if path_params:
        ev["pathParameters"] = path_params
    if body is not None:
        ev["body"] = body
    return ev


def twilio(kind, params):
    path = f"/webhooks/twilio/{kind}"
    body = urlencode(params)
    return apigw(
        "POST",
        path,
        route="POST /webhooks/{carrier}/{kind}",
        b64=True,
        body=base64.b64encode(body.encode()).decode(),
        headers={
            "content-type": "application/x-www-form-urlencoded",
            "host": "abc123.execute-api.us-east-1.amazonaws.com",
            "x-twilio-signature": sign(BASE + path, params),
            "i-twilio-idempotency-token": "sample-idem",
        },
        path_params={"carrier": "twilio", "kind": kind},
    )


inbound = {
    "ToCountry": "US",
    "ToState": "CA",
    "SmsMessageSid": "SM" + "1" * 32,
    "NumMedia": "0",
    "ToCity": "",
    "FromZip": "94105",
    "SmsSid": "SM" + "1" * 32,
    "FromState": "CA",
    "SmsStatus": "received",
    "FromCity": "SAN FRANCISCO",
    "Body": "Hi! Is order #1234 ready? 😀",
    "FromCountry": "US",
    "To": "+15005550006",
    "ToZip": "",
    "NumSegments": "1",
    "MessageSid": "SM" + "1" * 32,
    "AccountSid": SID,
    "From": "+14155550100",
    "ApiVersion": "2010-04-01",
}
status = {
    "SmsSid": "SM" + "6" * 32,
    "SmsStatus": "delivered",
    "MessageStatus": "delivered",
    "To": "+14155550100",
    "MessageSid": "SM" + "6" * 32,
    "AccountSid": SID,
    "From": "+15005550006",
    "ApiVersion": "2010-04-01",
}
claims = {"sub": "dev", "team": "default", "iss": "https://idp.example.com", "aud": "parley"}


def sqs(body, source="parley-InboundQueue"):
    return {
        "Records": [
            {
                "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d",
                "receiptHandle": "AQEB-sample",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1795752000000",
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": "1795752000001",
                },
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{source}",
                "awsRegion": "us-east-1",
            }
        ]
    }


send_request = {
    "to": ["+14155550100", "+14155550101"],
    "template_id": "welcome",
    "merge_values": {"company": "Parley"},
    "idempotency_key": "order-1234-ready",
    "metadata": {"order_id": "1234"},
}
eb_envelope = {
    "version": "0",
    "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
    "detail-type": "SendMessage",
    "source": "orders.service",
    "account": "123456789012",
    "time": "2026-11-28T04:00:00Z",
    "region": "us-east-1",
    "resources": [],
    "detail": send_request,
}
inbound_envelope = {
    "event": {
        "kind": "inbound_message",
        "carrier": "twilio",
        "carrier_message_id": "SM" + "2" * 32,
        "from_number": "+14155550100",
        "to_number": "+15005550006",
        "body": "Sample inbound text",
        "media": [],
        "segments": 1,
        "received_at": "2026-11-28T04:00:00Z",
        "raw": {},
    },
    "correlation_id": "sample-request-id",
}

files = {
    "webhook_twilio_inbound.json": twilio("messages", inbound),
    "webhook_twilio_status.json": twilio("status", status),
    "processor_inbound_message.json": sqs(json.dumps(inbound_envelope)),
    "send_eventbridge_send_message.json": sqs(json.dumps(eb_envelope), "parley-SendQueue"),
    "send_raw_request.json": sqs(
        json.dumps({**send_request, "idempotency_key": "raw-sample"}), "parley-SendQueue"
    ),
    "send_message_job.json": sqs(json.dumps({"message_id": "out_sample"}), "parley-SendQueue"),
    "retry_message_job.json": sqs(json.dumps({"message_id": "out_sample"}), "parley-RetryQueue"),
    "retry_sweep_schedule.json": {},
    "digest_nightly_schedule.json": {},
    "digest_on_demand.json": {"day": "2026-11-27"},
    "eventbridge_send_message.json": dict(eb_envelope),
    "api_send_messages.json": apigw(
        "POST",
        "/v1/messages",
        route="POST /v1/messages",
        claims=claims,
        headers={"content-type": "application/json", "authorization": "Bearer <jwt>"},
        body=json.dumps({"to": ["+14155550100"], "body": "Yes, it's ready for pickup."}),
    ),
    "api_preview.json": apigw(
        "POST",
        "/v1/messages/preview",
        route="POST /v1/messages/preview",
        claims=claims,
        headers={"content-type": "application/json"},
        body=json.dumps({"body": "Olá! Your code is 1234 😀"}),
    ),
    "api_list_conversations.json": apigw(
        "GET", "/v1/conversations", route="GET /v1/conversations", claims=claims, query="limit=20"
    ),
    "api_conversation_messages.json": apigw(
        "GET",
        "/v1/conversations/+14155550100/messages",
        route="GET /v1/conversations/{number}/messages",
        claims=claims,
        path_params={"number": "+14155550100"},
    ),
    "api_get_message.json": apigw(
        "GET",
        "/v1/messages/out_sample",
        route="GET /v1/messages/{message_id}",
        claims=claims,
        path_params={"message_id": "out_sample"},
    ),
}
for name, data in files.items():
    (OUT / name).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
schema_dir = OUT / "schemas"
schema_dir.mkdir(exist_ok=True)
# the same schema the OpenAPI document (GET /v1/openapi.json) gives for POST /v1/messages
schema = send_request_schema()
(schema_dir / "send-request.v1.schema.json").write_text(json.dumps(schema, indent=2) + "\n")
print(len(files))
