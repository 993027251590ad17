"""The AWS End User Messaging SMS plugin: SNS webhooks in, SendTextMessage out.

Webhooks are SNS messages signed here (see test_sns_signature for the scheme itself) and checked with
the published SNS vectors from carriers.md section 11. Sends go through real boto3 over real sockets
to a werkzeug server on 127.0.0.1 speaking the awsJson1_0 protocol of pinpoint-sms-voice-v2.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.wrappers import Request, Response

from parley.carriers.aws_sms import (
    AWS_OPT_OUT_KEYWORDS,
    EVENT_STATUS,
    AwsSmsCarrier,
    build,
    classify_error,
)
from parley.carriers.base import (
    FailureKind,
    OutboundText,
    ParsedInbound,
    ParsedStatus,
    PayloadError,
    SendAccepted,
    SendFailed,
    SignatureError,
    WebhookKind,
    WebhookRequest,
)
from parley.carriers.config import CarrierConfig
from parley.carriers.registry import build_carrier
from parley.carriers.sns import SnsVerifier
from parley.domain.vocabulary import MessageStatus
from tests.carrier_api import (
    FakeCarrierApi,
    carrier_api_fixtures,
    hanging_up_after_the_request,
    refused_url,
    serving,
)
from tests.unit.test_sns_signature import (
    VECTOR_CERT_URL,
    VECTOR_TIME,
    Served,
    Signer,
    as_http_delivery,
    confirmation,
    make_cert,
    moto_topic,
    notification,
    sns_time,
    vector_fetch,
    vector_record,
)

TOPIC = "arn:aws:sns:us-east-1:123456789012:parley-sms-events"
WEBHOOK_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/webhooks/aws/events"
OUR_NUMBER = "+15005550006"
CUSTOMER = "+14155550100"
ACCESS_KEY = "AKIDPARLEYTEST000001"
SECRET_KEY = "parley-test-secret-key"
SAMPLES = Path(__file__).resolve().parents[2] / "events" / "carriers" / "aws"
SESSION = boto3.session.Session(
    aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name="us-east-1"
)


# -- fixtures: a certificate server and a signer ---------------------------------------------------------


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    app = Served()
    with serving(app) as url:
        app.url = url
        yield app


@pytest.fixture(scope="module")
def signer(served: Served) -> Signer:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return Signer(key, served.serve("/SimpleNotificationService-aws-test.pem", make_cert(key)))


def carrier(**kwargs: Any) -> AwsSmsCarrier:
    verifier = kwargs.pop("verifier", None) or SnsVerifier(
        topic_arns=(TOPIC,), extra_cert_hosts=("127.0.0.1",), cache={}
    )
    options: dict[str, Any] = {"region": "us-east-1", "session_factory": lambda: SESSION}
    options.update(kwargs)
    return AwsSmsCarrier(verifier, **options)


def webhook(message: dict[str, Any] | bytes, *, headers: dict[str, str] | None = None) -> WebhookRequest:
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    sns_type = None if isinstance(message, bytes) else message.get("Type")
    base = {
        "content-type": "text/plain; charset=UTF-8",
        "user-agent": "Amazon Simple Notification Service Agent",
    }
    if isinstance(sns_type, str):
        base["x-amz-sns-message-type"] = sns_type
    base.update(headers or {})
    return WebhookRequest(method="POST", url=WEBHOOK_URL, headers=base, body=body)


def inbound_payload(body: str = "Hi! Is order #1234 ready?", **extra: Any) -> dict[str, Any]:
    return {
        "originationNumber": CUSTOMER,
        "destinationNumber": OUR_NUMBER,
        "messageKeyword": "KEYWORD_123456789012",
        "messageBody": body,
        "inboundMessageId": "cae173d2-66b9-564c-8309-21f858e9fb84",
        "previousPublishedMessageId": "862a8790-60c0-4430-9b2b-658bd0a1b2c3",
        **extra,
    }


def event_payload(event_type: str, **extra: Any) -> dict[str, Any]:
    return {
        "eventType": event_type,
        "eventVersion": "1.0",
        "eventTimestamp": 1795838404470,
        "isFinal": True,
        "originationPhoneNumber": OUR_NUMBER,
        "destinationPhoneNumber": CUSTOMER,
        "isInternationalSend": False,
        "isoCountryCode": "US",
        "mcc": "310",
        "mnc": "260",
        "messageId": "862a8790-60c0-4430-9b2b-658bd0a1b2c3",
        "messageRequestTimestamp": 1795838400170,
        "messageEncoding": "GSM",
        "messageType": "TRANSACTIONAL",
        "messageStatus": event_type.partition("_")[2],
        "messageStatusDescription": "described by AWS",
        "context": {"parley_message_id": "msg-1"},
        "totalMessageParts": 1,
        "totalMessagePrice": 0.00581,
        "totalCarrierFee": 0.00302,
        **extra,
    }


def sns_wrap(payload: Any, **extra: Any) -> dict[str, Any]:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return notification(text, **{"Timestamp": "2026-11-28T04:00:00.123Z", **extra})


def parse(message: dict[str, Any] | bytes, plugin: AwsSmsCarrier | None = None) -> list[Any]:
    return (plugin or carrier()).parse(WebhookKind.EVENTS, webhook(message))


# -- verify ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1", "2"])
def test_signed_webhook_is_accepted(signer: Signer, version: str) -> None:
    carrier().verify(webhook(signer.sign(notification(json.dumps(inbound_payload())), version)))


@pytest.mark.parametrize("version", ["1", "2"])
def test_published_sns_vectors_are_accepted_through_the_plugin(version: str) -> None:
    seen: list[str] = []
    verifier = SnsVerifier(
        topic_arns=("arn:aws:sns:us-east-1:123456789012:sms-inbound",),
        clock=lambda: VECTOR_TIME,
        fetch=vector_fetch(seen),
        cache={},
    )
    carrier(verifier=verifier).verify(webhook(as_http_delivery(vector_record(version))))
    assert seen == [VECTOR_CERT_URL]


def test_published_vector_parses_to_an_inbound_stop() -> None:
    [event] = parse(as_http_delivery(vector_record("2")))
    assert isinstance(event, ParsedInbound)
    assert (event.carrier_message_id, event.from_number, event.to_number, event.body, event.opt_out) == (
        "cae173d2-66b9-564c-8309-21f858e9fb84",
        "+14255550182",
        "+12125550101",
        "STOP",
        "STOP",
    )
    assert event.received_at == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)


def test_sms_payloads_published_through_motos_sns_verify_and_parse(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    with moto_topic(served, monkeypatch) as topic:
        plugin = carrier(verifier=SnsVerifier(topic_arns=(topic.arn,), fetch=topic.fetch, cache={}))
        events = []
        for payload in (inbound_payload("Is it ready?"), event_payload("TEXT_DELIVERED")):
            request = webhook(topic.publish(json.dumps(payload)))
            plugin.verify(request)
            events.extend(plugin.parse(WebhookKind.EVENTS, request))
    inbound, status = events
    assert isinstance(inbound, ParsedInbound) and inbound.body == "Is it ready?"
    assert isinstance(status, ParsedStatus) and status.status is MessageStatus.DELIVERED


def test_altered_body_is_rejected(signer: Signer) -> None:
    message = signer.sign(notification(json.dumps(inbound_payload("Call me"))))
    raw = json.dumps(message).encode().replace(b"Call me", b"Call mf")
    with pytest.raises(SignatureError, match="does not match"):
        carrier().verify(webhook(raw, headers={"x-amz-sns-message-type": "Notification"}))


def test_stale_webhook_is_rejected(signer: Signer) -> None:
    old = sns_time(datetime.now(UTC) - timedelta(hours=2))
    with pytest.raises(SignatureError, match="stale"):
        carrier().verify(webhook(signer.sign(notification(Timestamp=old))))


def test_webhook_signed_with_another_key_is_rejected(signer: Signer) -> None:
    impostor = Signer(rsa.generate_private_key(public_exponent=65537, key_size=2048), signer.cert_url)
    with pytest.raises(SignatureError, match="does not match"):
        carrier().verify(webhook(impostor.sign(notification())))


@pytest.mark.parametrize(
    "cert_url",
    [
        "https://certs.example.com/SimpleNotificationService-x.pem",
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
    ],
)
def test_certificate_off_the_sns_hosts_is_rejected(signer: Signer, cert_url: str) -> None:
    forged = Signer(signer.key, cert_url).sign(notification())
    with pytest.raises(SignatureError, match="not an SNS host"):
        carrier().verify(webhook(forged))


@pytest.mark.parametrize("missing", ["Signature", "SignatureVersion", "SigningCertURL"])
def test_missing_signature_fields_are_rejected(signer: Signer, missing: str) -> None:
    message = signer.sign(notification())
    del message[missing]
    with pytest.raises(SignatureError):
        carrier().verify(webhook(message))


def test_message_type_header_that_contradicts_the_body_is_rejected(signer: Signer) -> None:
    message = signer.sign(notification())
    with pytest.raises(SignatureError, match="x-amz-sns-message-type"):
        carrier().verify(webhook(message, headers={"x-amz-sns-message-type": "SubscriptionConfirmation"}))


def test_topic_we_did_not_subscribe_to_is_rejected(signer: Signer) -> None:
    message = signer.sign(notification(topic="arn:aws:sns:us-east-1:999999999999:not-ours"))
    with pytest.raises(SignatureError, match="topic"):
        carrier().verify(webhook(message))


@pytest.mark.parametrize("body", [b"", b"ToCountry=US&Body=hi", b"[1, 2]"])
def test_bodies_that_are_not_sns_are_rejected_as_payload_problems(body: bytes) -> None:
    with pytest.raises(PayloadError, match="not an SNS message"):  # a 400 with the reason, not a 403
        carrier().verify(webhook(body))


# -- parse: inbound -------------------------------------------------------------------------------------


def test_inbound_sms_is_parsed() -> None:
    payload = inbound_payload("Hi! Is order #1234 ready? \U0001f600 a&b=c + 100%")
    [event] = parse(sns_wrap(payload))
    assert event == ParsedInbound(
        carrier="aws",
        carrier_message_id="cae173d2-66b9-564c-8309-21f858e9fb84",
        from_number=CUSTOMER,
        to_number=OUR_NUMBER,
        body="Hi! Is order #1234 ready? \U0001f600 a&b=c + 100%",
        received_at=datetime(2026, 11, 28, 4, 0, 0, 123000, tzinfo=UTC),
        raw=payload,
    )
    assert event.media == () and event.segments is None and event.concat is None


def test_numbers_are_passed_through_as_aws_wrote_them() -> None:
    [event] = parse(sns_wrap(inbound_payload(originationNumber="14155550100", destinationNumber="12345")))
    assert (event.from_number, event.to_number) == ("14155550100", "12345")


@pytest.mark.parametrize("keyword", sorted(AWS_OPT_OUT_KEYWORDS))
def test_aws_managed_opt_out_keywords_are_marked_stop(keyword: str) -> None:
    [event] = parse(sns_wrap(inbound_payload(f"  {keyword.lower()} ")))
    assert event.opt_out == "STOP"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("HELP", "HELP"),
        ("help me please", "HELP"),
        ("Stop texting me", "STOP"),
        ("START", None),  # AWS has no default opt-in keyword: Parley's own processor decides
        ("unstop", None),
        ("Please stop", None),
        ("stopwatch", None),
        ("", None),
    ],
)
def test_other_keywords(body: str, expected: str | None) -> None:
    [event] = parse(sns_wrap(inbound_payload(body)))
    assert event.opt_out == expected


def test_self_managed_opt_outs_leave_keywords_to_parley() -> None:
    [event] = parse(sns_wrap(inbound_payload("STOP")), carrier(self_managed_opt_outs=True))
    assert event.opt_out is None


# -- parse: delivery events -----------------------------------------------------------------------------

EVENT_CASES: list[tuple[str, bool, MessageStatus, bool]] = [
    # eventType, isFinal, status, is an error
    ("TEXT_QUEUED", False, MessageStatus.ACCEPTED, False),
    ("TEXT_PENDING", False, MessageStatus.SENDING, False),
    ("TEXT_SENT", False, MessageStatus.SENT, False),
    ("TEXT_SUCCESSFUL", False, MessageStatus.SENT, False),
    ("TEXT_SUCCESSFUL", True, MessageStatus.DELIVERED, False),
    ("TEXT_DELIVERED", True, MessageStatus.DELIVERED, False),
    ("TEXT_INVALID", True, MessageStatus.FAILED, True),
    ("TEXT_INVALID_MESSAGE", True, MessageStatus.FAILED, True),
    ("TEXT_PROTECT_BLOCKED", True, MessageStatus.FAILED, True),
    ("TEXT_UNREACHABLE", True, MessageStatus.UNDELIVERED, True),
    ("TEXT_CARRIER_UNREACHABLE", True, MessageStatus.UNDELIVERED, True),
    ("TEXT_BLOCKED", True, MessageStatus.UNDELIVERED, True),
    ("TEXT_CARRIER_BLOCKED", True, MessageStatus.UNDELIVERED, True),
    ("TEXT_SPAM", True, MessageStatus.UNDELIVERED, True),
    ("TEXT_UNKNOWN", True, MessageStatus.UNDELIVERED, True),
    ("TEXT_TTL_EXPIRED", True, MessageStatus.UNDELIVERED, True),
    ("MEDIA_DELIVERED", True, MessageStatus.DELIVERED, False),
    ("MEDIA_FILE_TYPE_UNSUPPORTED", True, MessageStatus.FAILED, True),
]


@pytest.mark.parametrize(("event_type", "is_final", "status", "is_error"), EVENT_CASES)
def test_delivery_events_map_onto_our_statuses(
    event_type: str, is_final: bool, status: MessageStatus, is_error: bool
) -> None:
    payload = event_payload(event_type, isFinal=is_final)
    [event] = parse(sns_wrap(payload))
    assert event == ParsedStatus(
        carrier="aws",
        carrier_message_id="862a8790-60c0-4430-9b2b-658bd0a1b2c3",
        status=status,
        carrier_status=event_type,
        error_code=event_type if is_error else None,
        error_message="described by AWS" if is_error else None,
        occurred_at=datetime(2026, 11, 28, 4, 0, 4, 470000, tzinfo=UTC),
        client_ref="msg-1",  # the Context we sent, echoed back
        raw=payload,
    )
    assert (event.part, event.parts) == (None, None)  # one event per message, not per segment


def test_every_mapped_suffix_is_covered() -> None:
    covered = {case[0].partition("_")[2] for case in EVENT_CASES}
    assert covered | {"OPTED_OUT", "FILE_INACCESSIBLE", "FILE_SIZE_EXCEEDED"} == set(EVENT_STATUS)
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
    assert set(EVENT_STATUS.values()) <= allowed


@pytest.mark.parametrize(
    "payload",
    [
        event_payload("TEXT_OPTED_OUT"),
        event_payload("TEXT_BLOCKED", messageStatus="OPTED_OUT"),
        event_payload("TEXT_PENDING", messageStatus="opted_out"),
    ],
    ids=["event-type", "message-status", "message-status-on-a-non-failure"],
)
def test_opted_out_receipts_are_flagged(payload: dict[str, Any]) -> None:
    [event] = parse(sns_wrap(payload))
    assert event.opted_out is True
    assert event.status in (MessageStatus.FAILED, MessageStatus.UNDELIVERED)
    assert event.error_code == payload["eventType"]


@pytest.mark.parametrize("context", [None, {}, {"parley_message_id": ""}, {"parley_message_id": 7}, "msg-1"])
def test_event_without_our_context_has_no_client_ref(context: object) -> None:
    [event] = parse(sns_wrap(event_payload("TEXT_DELIVERED", context=context)))
    assert event.client_ref is None


def test_event_without_a_usable_timestamp_uses_the_sns_time() -> None:
    for stamp in (None, "1795838404470", True, -5, 10**20):
        [event] = parse(sns_wrap(event_payload("TEXT_DELIVERED", eventTimestamp=stamp)))
        assert event.occurred_at == datetime(2026, 11, 28, 4, 0, 0, 123000, tzinfo=UTC)


@pytest.mark.parametrize(
    "message",
    [
        sns_wrap(event_payload("VOICE_COMPLETED")),
        sns_wrap(event_payload("RCS_READ")),
        sns_wrap({"eventType": "REGISTRATION_STATUS_CHANGE", "registrationId": "reg-1"}),
        sns_wrap({"something": "else"}),
        sns_wrap("Hello from the SNS console"),
        sns_wrap("[1, 2, 3]"),
        sns_wrap("null"),
    ],
    ids=["voice", "rcs", "registration", "other-json", "plain-text", "json-list", "json-null"],
)
def test_notifications_we_do_not_use_yield_nothing(message: dict[str, Any]) -> None:
    assert parse(message) == []


def test_unsubscribe_confirmation_yields_nothing(caplog: pytest.LogCaptureFixture) -> None:
    message = confirmation("UnsubscribeConfirmation", "https://sns.us-east-1.amazonaws.com/?Action=x")
    assert parse(message) == []
    assert "unsubscribed" in caplog.text


def test_subscription_confirmation_is_confirmed_and_yields_nothing(served: Served) -> None:
    served.serve("/confirm-aws", b"<ConfirmSubscriptionResponse/>")
    url = served.url + "/confirm-aws?Action=ConfirmSubscription&TopicArn=t&Token=abc"
    assert parse(confirmation("SubscriptionConfirmation", url)) == []
    assert served.hits["/confirm-aws?Action=ConfirmSubscription&TopicArn=t&Token=abc"] == 1


def test_subscription_confirmation_that_fails_is_a_payload_error(served: Served) -> None:
    served.serve("/confirm-refused", b"<Error/>", 403)
    with pytest.raises(PayloadError, match="HTTP 403"):
        parse(confirmation("SubscriptionConfirmation", served.url + "/confirm-refused?Token=t"))
    with pytest.raises(PayloadError, match="not an SNS host"):
        parse(confirmation("SubscriptionConfirmation", "https://evil.example/?Token=t"))


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"not json",
        b"[]",
        {"Type": "Notice"},
        {"Message": "{}"},
        sns_wrap({}, Message=None),
        sns_wrap(inbound_payload(), Timestamp="yesterday"),
        sns_wrap(inbound_payload(inboundMessageId=None)),
        sns_wrap(inbound_payload(originationNumber=14155550100)),
        sns_wrap(inbound_payload(destinationNumber="")),
        sns_wrap(inbound_payload(messageBody=["hi"])),
        sns_wrap(event_payload("TEXT_DELIVERED", messageId=None)),
        sns_wrap(event_payload("TEXT_DELIVERED", eventType=42)),
        sns_wrap(event_payload("TEXT_TELEPORTED")),
    ],
    ids=[
        "empty",
        "not-json",
        "list",
        "unknown-type",
        "no-type",
        "no-message",
        "bad-timestamp",
        "no-inbound-id",
        "numeric-number",
        "empty-number",
        "body-list",
        "no-message-id",
        "event-type-number",
        "unknown-text-event",
    ],
)
def test_malformed_payloads_are_payload_errors(message: dict[str, Any] | bytes) -> None:
    with pytest.raises(PayloadError):
        parse(message)


def test_every_webhook_kind_reads_the_same_payload() -> None:
    message = sns_wrap(inbound_payload())
    results = [carrier().parse(kind, webhook(message)) for kind in WebhookKind]
    assert all(r == results[0] and len(r) == 1 for r in results)


def test_ack_is_a_plain_200_for_every_kind() -> None:
    for kind in WebhookKind:
        ack = carrier().ack(kind)
        assert (ack.status_code, ack.body) == (200, "")


# -- the sample payloads in events/carriers/aws ------------------------------------------------------


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SAMPLES / name).read_text())
    assert set(loaded) == {"description", "content_type", "body"}
    return loaded


def test_every_sample_is_listed_here() -> None:
    assert sorted(p.name for p in SAMPLES.glob("*.json")) == [
        "inbound_sms.json",
        "send_error.json",
        "status_delivered.json",
        "status_failed.json",
    ]


def test_inbound_sample_parses() -> None:
    [event] = parse(json.dumps(sample("inbound_sms.json")["body"]).encode())
    assert isinstance(event, ParsedInbound)
    assert (event.from_number, event.to_number) == (CUSTOMER, OUR_NUMBER)
    assert event.body.startswith("Hi! Is order #1234 ready?")


@pytest.mark.parametrize(
    ("name", "status", "error_code"),
    [
        ("status_delivered.json", MessageStatus.DELIVERED, None),
        ("status_failed.json", MessageStatus.UNDELIVERED, "TEXT_CARRIER_UNREACHABLE"),
    ],
)
def test_status_samples_parse(name: str, status: MessageStatus, error_code: str | None) -> None:
    [event] = parse(json.dumps(sample(name)["body"]).encode())
    assert isinstance(event, ParsedStatus)
    assert (event.status, event.error_code) == (status, error_code)
    assert event.client_ref == "msg_01JDX7Q8V6ZQ3W2E9R4T5Y6U7I"


def test_samples_are_not_signed_by_aws() -> None:
    """They are signed with a throwaway key; the real certificate would never verify them."""
    message = sample("status_delivered.json")["body"]
    verifier = SnsVerifier(
        topic_arns=(message["TopicArn"],),
        clock=lambda: datetime(2026, 11, 28, 4, 1, tzinfo=UTC),
        fetch=lambda _url: make_cert(
            rsa.generate_private_key(public_exponent=65537, key_size=2048),
            not_before=datetime(2026, 1, 1, tzinfo=UTC),
            not_after=datetime(2027, 12, 31, tzinfo=UTC),
        ),
        cache={},
    )
    with pytest.raises(SignatureError, match="does not match"):
        carrier(verifier=verifier).verify(webhook(message))


# -- send: a local stand-in for the pinpoint-sms-voice-v2 JSON API -------------------------------------


def aws_json(status: int, body: Any) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/x-amz-json-1.0")


def aws_error(status: int, exception: str | None, **members: Any) -> Callable[[Request], Response]:
    """AWS's answer to a failed call: the exception's JSON, or (no exception) a body that isn't JSON."""
    body: Any = {"__type": f"com.amazonaws.pinpointsmsvoicev2#{exception}", **members} if exception else None
    return lambda _r: aws_json(status, body) if body is not None else Response("oops", status=status)


carrier_api_server, fake_aws = carrier_api_fixtures(  # answering with a new MessageId unless told
    "fake_aws", reply=lambda _r: aws_json(200, {"MessageId": "862a8790-60c0-4430-9b2b-658bd0a1b2c3"})
)

TEXT = OutboundText(
    message_id="msg_01JDX7Q8V6ZQ3W2E9R4T5Y6U7I",
    from_number=OUR_NUMBER,
    to_number=CUSTOMER,
    body="Your order #1234 is ready & waiting",
    status_callback_url="https://hooks.example.com/webhooks/aws/events",
)


def sender(url: str, **kwargs: Any) -> AwsSmsCarrier:
    return carrier(endpoint_url=url, **kwargs)


def test_send_accepted_and_the_request_aws_sees(fake_aws: FakeCarrierApi) -> None:
    outcome = sender(fake_aws.url, configuration_set="parley-events", message_type="TRANSACTIONAL").send(TEXT)
    assert outcome == SendAccepted("862a8790-60c0-4430-9b2b-658bd0a1b2c3", "accepted", None)
    [seen] = fake_aws.seen
    assert (seen.method, seen.path) == ("POST", "/")
    assert seen.headers["x-amz-target"] == "PinpointSMSVoiceV2.SendTextMessage"
    assert seen.headers["content-type"] == "application/x-amz-json-1.0"
    assert re.fullmatch(
        rf"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/\d{{8}}/us-east-1/sms-voice/aws4_request, "
        r"SignedHeaders=[a-z0-9;-]+, Signature=[0-9a-f]{64}",
        seen.headers["authorization"],
    )
    assert seen.headers["amz-sdk-request"] == "attempt=1; max=1"  # botocore's own retries are off
    assert seen.json == {
        "DestinationPhoneNumber": CUSTOMER,
        "OriginationIdentity": OUR_NUMBER,
        "MessageBody": "Your order #1234 is ready & waiting",
        "ConfigurationSetName": "parley-events",
        "MessageType": "TRANSACTIONAL",
        "Context": {"parley_message_id": "msg_01JDX7Q8V6ZQ3W2E9R4T5Y6U7I"},
    }


def test_send_without_configuration_set_omits_it(fake_aws: FakeCarrierApi) -> None:
    assert isinstance(sender(fake_aws.url).send(TEXT), SendAccepted)
    assert set(fake_aws.seen[0].json) == {
        "DestinationPhoneNumber",
        "OriginationIdentity",
        "MessageBody",
        "Context",
    }


def test_one_client_per_carrier(fake_aws: FakeCarrierApi) -> None:
    made: list[int] = []

    def factory() -> Any:
        made.append(1)
        return SESSION

    plugin = sender(fake_aws.url, session_factory=factory)
    plugin.send(TEXT)
    plugin.send(TEXT)
    assert (len(made), len(fake_aws.seen)) == (1, 2)


@pytest.mark.parametrize(
    ("status", "exception", "members", "kind", "words", "code", "opted_out"),
    [
        (
            400,
            "ConflictException",
            {"Message": "opted out", "Reason": "DESTINATION_PHONE_NUMBER_OPTED_OUT", "ResourceId": CUSTOMER},
            FailureKind.PERMANENT,
            "opted out",
            "DESTINATION_PHONE_NUMBER_OPTED_OUT",
            True,
        ),
        (
            400,
            "ValidationException",
            {
                "Message": "x",
                "Reason": "OTHER",
                "Fields": [{"Name": "DestinationPhoneNumber", "Message": "bad"}],
            },
            FailureKind.PERMANENT,
            "not a valid phone number",
            "OTHER",
            False,
        ),
        (
            400,
            "ValidationException",
            {"Message": "x", "Reason": "DESTINATION_COUNTRY_BLOCKED"},
            FailureKind.PERMANENT,
            "country is blocked",
            "DESTINATION_COUNTRY_BLOCKED",
            False,
        ),
        (
            400,
            "ConflictException",
            {"Message": "x", "Reason": "DESTINATION_PHONE_NUMBER_NOT_VERIFIED"},
            FailureKind.PERMANENT,
            "sandbox",
            "DESTINATION_PHONE_NUMBER_NOT_VERIFIED",
            False,
        ),
        (
            400,
            "ConflictException",
            {"Message": "x", "Reason": "SOMETHING_NEW"},
            FailureKind.PERMANENT,
            "how our account is set up",
            "SOMETHING_NEW",
            False,
        ),
        (
            404,
            "ResourceNotFoundException",
            {"Message": "x", "ResourceType": "phone-number", "ResourceId": OUR_NUMBER},
            FailureKind.PERMANENT,
            "does not exist",
            "ResourceNotFoundException",
            False,
        ),
        (
            403,
            "AccessDeniedException",
            {"Message": "x", "Reason": "ACCOUNT_DISABLED"},
            FailureKind.PERMANENT,
            "disabled",
            "ACCOUNT_DISABLED",
            False,
        ),
        (
            402,
            "ServiceQuotaExceededException",
            {"Message": "x", "Reason": "MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT"},
            FailureKind.PERMANENT,
            "spending limit",
            "MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT",
            False,
        ),
        (
            402,
            "ServiceQuotaExceededException",
            {"Message": "x", "Reason": "DAILY_DESTINATION_CALL_LIMIT"},
            FailureKind.TRANSIENT,
            "quota",
            "DAILY_DESTINATION_CALL_LIMIT",
            False,
        ),
        (
            400,
            "ThrottlingException",
            {"Message": "Rate exceeded"},
            FailureKind.TRANSIENT,
            "rate limiting",
            "ThrottlingException",
            False,
        ),  # fmt: skip
        (429, None, {}, FailureKind.TRANSIENT, "rate limiting", None, False),
        (
            500,
            "InternalServerException",
            {"Message": "x", "RequestId": "r-1"},
            FailureKind.AMBIGUOUS,
            "internal error",
            "InternalServerException",
            False,
        ),  # fmt: skip
        (503, None, {}, FailureKind.AMBIGUOUS, "HTTP 503", None, False),
        (
            400,
            "ExpiredTokenException",
            {"message": "expired"},
            FailureKind.TRANSIENT,
            "expired",
            "ExpiredTokenException",
            False,
        ),  # fmt: skip
        (
            403,
            "UnrecognizedClientException",
            {"message": "bad key"},
            FailureKind.PERMANENT,
            "credentials",
            "UnrecognizedClientException",
            False,
        ),  # fmt: skip
        (400, None, {}, FailureKind.PERMANENT, "HTTP 400", None, False),
    ],
)
def test_send_failures_are_classified(
    fake_aws: FakeCarrierApi,
    status: int,
    exception: str | None,
    members: dict[str, Any],
    kind: FailureKind,
    words: str,
    code: str | None,
    opted_out: bool,
) -> None:
    fake_aws.reply = aws_error(status, exception, **members)
    outcome = sender(fake_aws.url).send(TEXT)
    assert isinstance(outcome, SendFailed)
    assert (outcome.kind, outcome.error_code, outcome.http_status, outcome.opted_out) == (
        kind,
        code,
        status,
        opted_out,
    )
    assert words in outcome.reason
    assert len(fake_aws.seen) == 1  # never retried inside send: the retry function owns that


def test_send_error_sample_classifies_permanent(fake_aws: FakeCarrierApi) -> None:
    answer = sample("send_error.json")
    fake_aws.reply = lambda _r: Response(
        json.dumps(answer["body"]), status=400, content_type=answer["content_type"]
    )
    outcome = sender(fake_aws.url).send(TEXT)
    assert isinstance(outcome, SendFailed)
    assert (outcome.kind, outcome.reason, outcome.error_code) == (
        FailureKind.PERMANENT,
        "the number is not a valid phone number",
        "INVALID_PARAMETER",
    )


def test_success_without_a_message_id_is_ambiguous(fake_aws: FakeCarrierApi) -> None:
    fake_aws.reply = lambda _r: aws_json(200, {})
    outcome = sender(fake_aws.url).send(TEXT)
    assert isinstance(outcome, SendFailed) and outcome.kind is FailureKind.AMBIGUOUS


def test_unreadable_success_is_ambiguous(fake_aws: FakeCarrierApi) -> None:
    fake_aws.reply = lambda _r: Response("<html>proxy</html>", status=200, content_type="text/html")
    outcome = sender(fake_aws.url).send(TEXT)
    assert isinstance(outcome, SendFailed) and outcome.kind is FailureKind.AMBIGUOUS


def test_read_timeout_after_the_request_arrived_is_ambiguous(fake_aws: FakeCarrierApi) -> None:
    fake_aws.slow(200, {"MessageId": "late"}, "application/x-amz-json-1.0")
    outcome = sender(fake_aws.url, timeout=0.2).send(TEXT)
    assert fake_aws.received.wait(5)  # AWS had the request: it may send the text
    assert isinstance(outcome, SendFailed)
    assert (outcome.kind, outcome.error_code, outcome.http_status) == (FailureKind.AMBIGUOUS, None, None)
    assert len(fake_aws.seen) == 1


def test_connection_refused_is_transient() -> None:
    with refused_url() as url:
        outcome = sender(url).send(TEXT)
    assert isinstance(outcome, SendFailed)
    assert (outcome.kind, outcome.error_code, outcome.http_status) == (FailureKind.TRANSIENT, None, None)


def test_connection_dropped_after_the_request_was_sent_is_ambiguous() -> None:
    with hanging_up_after_the_request() as server:
        outcome = sender(server.url, timeout=5).send(TEXT)
    assert server.got_request.is_set()
    assert isinstance(outcome, SendFailed) and outcome.kind is FailureKind.AMBIGUOUS


def test_media_is_refused_without_calling_aws(fake_aws: FakeCarrierApi) -> None:
    text = OutboundText(**{**TEXT.__dict__, "media_urls": ("https://m.example/a.jpg",)})
    outcome = sender(fake_aws.url).send(text)
    assert isinstance(outcome, SendFailed) and outcome.kind is FailureKind.PERMANENT
    assert "text only" in outcome.reason
    assert fake_aws.seen == []


def test_empty_message_is_refused_before_sending(fake_aws: FakeCarrierApi) -> None:
    outcome = sender(fake_aws.url).send(OutboundText("m-empty", OUR_NUMBER, CUSTOMER, ""))
    assert isinstance(outcome, SendFailed) and outcome.kind is FailureKind.PERMANENT
    assert fake_aws.seen == []


def test_misconfigured_endpoint_is_permanent() -> None:
    outcome = sender("not a url").send(TEXT)
    assert isinstance(outcome, SendFailed) and outcome.kind is FailureKind.PERMANENT
    assert "misconfigured" in outcome.reason


def test_send_logs_neither_secret_nor_full_number_nor_body(
    fake_aws: FakeCarrierApi, caplog: pytest.LogCaptureFixture
) -> None:
    sender(fake_aws.url).send(TEXT)
    fake_aws.reply = aws_error(
        400, "ConflictException", Message=f"{CUSTOMER} opted out", Reason="DESTINATION_PHONE_NUMBER_OPTED_OUT"
    )
    sender(fake_aws.url).send(TEXT)
    assert "862a8790" in caplog.text and "DESTINATION_PHONE_NUMBER_OPTED_OUT" in caplog.text
    assert CUSTOMER not in caplog.text and "+1********00" in caplog.text
    assert SECRET_KEY not in caplog.text and TEXT.body not in caplog.text


# -- classification of receipt error codes --------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "http_status", "kind", "words"),
    [
        ("TEXT_CARRIER_UNREACHABLE", None, FailureKind.TRANSIENT, "temporary"),
        ("TEXT_UNREACHABLE", None, FailureKind.TRANSIENT, "switched off"),
        ("TEXT_TTL_EXPIRED", None, FailureKind.TRANSIENT, "expired"),
        ("TEXT_UNKNOWN", None, FailureKind.TRANSIENT, "unknown"),
        ("TEXT_BLOCKED", None, FailureKind.PERMANENT, "blocking"),
        ("TEXT_CARRIER_BLOCKED", None, FailureKind.PERMANENT, "suspicious"),
        ("TEXT_SPAM", None, FailureKind.PERMANENT, "spam"),
        ("TEXT_INVALID", None, FailureKind.PERMANENT, "not a valid phone number"),
        ("TEXT_INVALID_MESSAGE", None, FailureKind.PERMANENT, "as written"),
        ("TEXT_PROTECT_BLOCKED", None, FailureKind.PERMANENT, "protect"),
        ("TEXT_OPTED_OUT", None, FailureKind.PERMANENT, "opted out"),
        ("MEDIA_FILE_SIZE_EXCEEDED", None, FailureKind.PERMANENT, "too large"),
        ("TEXT_SOMETHING_NEW", None, FailureKind.PERMANENT, "error TEXT_SOMETHING_NEW"),
        ("ThrottlingException", 400, FailureKind.TRANSIENT, "rate limiting"),
        ("InternalServerException", 500, FailureKind.AMBIGUOUS, "internal error"),
        ("PRICE_OVER_THRESHOLD", 400, FailureKind.PERMANENT, "maximum price"),
        (None, 502, FailureKind.AMBIGUOUS, "HTTP 502"),
        (None, 401, FailureKind.PERMANENT, "credentials"),
        (None, None, FailureKind.PERMANENT, "could not be delivered"),
    ],
)
def test_classify(code: str | None, http_status: int | None, kind: FailureKind, words: str) -> None:
    assert carrier().classify(code, http_status)[0] is kind
    assert words in classify_error(code, http_status)[1]


# -- build and the registry ------------------------------------------------------------------------------

LOCAL_ENV = {
    "PARLEY_AWS_SNS_TOPIC_ARNS": f"{TOPIC}, arn:aws:sns:us-east-1:123456789012:parley-sms-inbound",
    "PARLEY_AWS_SNS_CERT_HOSTS_EXTRA": "127.0.0.1",
    "PARLEY_AWS_SMS_CONFIGURATION_SET": "parley-events",
    "PARLEY_AWS_SMS_ENDPOINT_URL": "http://127.0.0.1:8080/_sim/aws",
    "PARLEY_CARRIER_TIMEOUT_SECONDS": "2.5",
    "AWS_REGION": "eu-west-1",
}


def test_build_reads_the_settings(signer: Signer) -> None:
    built = build_carrier("aws", CarrierConfig(LOCAL_ENV))
    assert isinstance(built, AwsSmsCarrier)
    assert (built.region, built.configuration_set, built.endpoint_url, built.timeout) == (
        "eu-west-1",
        "parley-events",
        "http://127.0.0.1:8080/_sim/aws",
        2.5,
    )
    assert built.verifier.topic_arns == {TOPIC, "arn:aws:sns:us-east-1:123456789012:parley-sms-inbound"}
    assert built.verifier.max_age == timedelta(hours=1)
    built.verify(webhook(signer.sign(notification())))  # the extra host from the settings is trusted


def test_build_defaults_trust_only_aws_hosts(signer: Signer) -> None:
    built = build(CarrierConfig({}))
    assert (built.region, built.configuration_set, built.endpoint_url) == ("us-east-1", None, None)
    assert built.verifier.topic_arns == frozenset() and built.verifier.extra_cert_hosts == ()
    with pytest.raises(SignatureError, match="not an SNS host"):
        built.verify(webhook(signer.sign(notification())))


def test_build_options() -> None:
    built = build(
        CarrierConfig(
            {
                "PARLEY_AWS_SMS_REGION": "ca-central-1",
                "PARLEY_AWS_SNS_MAX_AGE_SECONDS": "600",
                "PARLEY_AWS_SMS_SELF_MANAGED_OPT_OUTS": "true",
                "PARLEY_AWS_SMS_MESSAGE_TYPE": "promotional",
            }
        )
    )
    assert (built.region, built.verifier.max_age, built.self_managed_opt_outs, built.message_type) == (
        "ca-central-1",
        timedelta(minutes=10),
        True,
        "PROMOTIONAL",
    )


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"PARLEY_AWS_SNS_TOPIC_ARNS": "parley-sms-events"}, "PARLEY_AWS_SNS_TOPIC_ARNS"),
        ({"PARLEY_AWS_SNS_TOPIC_ARNS": "arn:aws:sqs:us-east-1:123456789012:q"}, "PARLEY_AWS_SNS_TOPIC_ARNS"),
        ({"PARLEY_AWS_SNS_MAX_AGE_SECONDS": "an hour"}, "PARLEY_AWS_SNS_MAX_AGE_SECONDS"),
        ({"PARLEY_AWS_SNS_MAX_AGE_SECONDS": "0"}, "PARLEY_AWS_SNS_MAX_AGE_SECONDS"),
        ({"PARLEY_AWS_SMS_MESSAGE_TYPE": "URGENT"}, "PARLEY_AWS_SMS_MESSAGE_TYPE"),
    ],
)
def test_bad_settings_fail_at_build_naming_the_variable(env: dict[str, str], names: str) -> None:
    with pytest.raises(ValueError, match=names):
        build(CarrierConfig(env))


def test_missing_aws_credentials_fail_at_send_as_permanent(
    fake_aws: FakeCarrierApi, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """AWS has no shared webhook secret; the only credential is the sender's role, needed at send."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    built = build(CarrierConfig({"PARLEY_AWS_SMS_ENDPOINT_URL": fake_aws.url}))
    outcome = built.send(TEXT)
    assert isinstance(outcome, SendFailed) and outcome.kind is FailureKind.PERMANENT
    assert "no AWS credentials" in outcome.reason
    assert fake_aws.seen == []


# -- fuzz ------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2048))
def test_parse_raises_only_payload_error_for_any_bytes(body: bytes) -> None:
    try:
        events = parse(body)
    except PayloadError:
        return
    assert all(isinstance(event, ParsedInbound | ParsedStatus) for event in events)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=2048), message_type=st.sampled_from([None, "Notification", "Bogus"]))
def test_verify_raises_only_signature_or_payload_errors_for_any_bytes(
    body: bytes, message_type: str | None
) -> None:
    headers = {} if message_type is None else {"x-amz-sns-message-type": message_type}
    with pytest.raises((SignatureError, PayloadError)):
        carrier().verify(webhook(body, headers=headers))


_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.lists(st.text(max_size=5), max_size=2),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
)
_EVENT_TYPES = st.one_of(
    st.sampled_from(sorted(f"TEXT_{s}" for s in EVENT_STATUS) + ["MEDIA_QUEUED", "VOICE_BUSY", "TEXT_", "_"]),
    _VALUE,
)


@settings(max_examples=200, deadline=None)
@given(
    sns_type=st.sampled_from(["Notification", "UnsubscribeConfirmation", "Bogus", None, 3]),
    timestamp=st.one_of(st.just("2026-11-28T04:00:00.123Z"), _VALUE),
    inbound=st.booleans(),
    event_type=_EVENT_TYPES,
    fields=st.dictionaries(
        st.sampled_from(
            [
                "originationNumber",
                "destinationNumber",
                "messageBody",
                "inboundMessageId",
                "messageId",
                "isFinal",
                "eventTimestamp",
                "messageStatus",
                "messageStatusDescription",
            ]
        ),
        _VALUE,
    ),
    raw_message=st.one_of(st.none(), st.text(max_size=50)),
)
def test_parse_raises_only_payload_error_for_plausible_payloads(
    sns_type: object,
    timestamp: object,
    inbound: bool,
    event_type: object,
    fields: dict[str, Any],
    raw_message: str | None,
) -> None:
    payload: dict[str, Any] = (
        inbound_payload() if inbound else event_payload("TEXT_DELIVERED", eventType=event_type)
    )
    payload.update(fields)
    message = {
        "Type": sns_type,
        "MessageId": "m",
        "TopicArn": TOPIC,
        "Timestamp": timestamp,
        "Message": raw_message if raw_message is not None else json.dumps(payload),
    }
    try:
        events = parse(json.dumps(message).encode())
    except PayloadError:
        return
    for event in events:
        assert isinstance(event, ParsedInbound | ParsedStatus)
        assert event.carrier == "aws" and event.carrier_message_id
        json.dumps(event.to_wire())  # whatever came in, the event can be queued


@pytest.mark.parametrize("key", ["originationNumber", "destinationNumber", "inboundMessageId"])
def test_a_blank_number_or_id_is_refused(key: str) -> None:
    payload = {**inbound_payload("hi"), key: " "}
    with pytest.raises(PayloadError, match=f"{key} is missing"):
        parse(sns_wrap(payload))
