"""The Twilio plugin against Twilio's own signer (the official SDK) and a local HTTP stand-in for its API.

Signatures come from `twilio.request_validator.RequestValidator` (tests only; never shipped) and the
published vectors in carriers.md section 11, so the verifier is checked against Twilio's code, not
against itself. Sends go over real sockets to a werkzeug server on 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode

import pytest
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict
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
    SignatureError,
    WebhookKind,
    WebhookRequest,
)
from parley.carriers.config import CarrierConfig
from parley.carriers.registry import UnknownCarrier, build_carrier, known_carriers
from parley.carriers.twilio import TwilioCarrier, TwilioLookupError, classify_error
from parley.domain.phone import mask
from parley.domain.vocabulary import MessageStatus
from tests.carrier_api import (
    FakeCarrierApi,
    carrier_api_fixtures,
    hanging_up_after_the_request,
    refused_url,
)

FORM = "application/x-www-form-urlencoded; charset=UTF-8"
TOKEN = "f3a9c1e07b5d4e2a9c8b7a6d5e4f3a21"
SID = "ACc0ffee00000000000000000000000000"
INBOUND_URL = "https://abc123xyz.execute-api.us-east-1.amazonaws.com/prod/twilio/inbound"
STATUS_URL = "https://abc123xyz.execute-api.us-east-1.amazonaws.com/prod/twilio/status?tenant=acme&msg=42"

# carriers.md section 11 vectors (generated with twilio 9.13.0).
INBOUND_SMS = (
    "ToCountry=US&ToState=CA&SmsMessageSid=SM11111111111111111111111111111111&NumMedia=0&ToCity="
    "&FromZip=94105&SmsSid=SM11111111111111111111111111111111&FromState=CA&SmsStatus=received"
    "&FromCity=SAN+FRANCISCO&Body=Hi%21+Is+order+%231234+ready%3F+%F0%9F%98%80+a%26b%3Dc+%2B+100%25"
    "&FromCountry=US&To=%2B15005550006&MessagingServiceSid=MG22222222222222222222222222222222&ToZip="
    "&NumSegments=1&MessageSid=SM11111111111111111111111111111111&AccountSid=ACc0ffee00000000000000000000000000"
    "&From=%2B14155551234&ApiVersion=2010-04-01"
)
INBOUND_SMS_SIGNATURE = "jCY51z4MqLsMwwnEKoiTiHUeoHw="
MEDIA_BASE = (
    f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages/MM33333333333333333333333333333333/Media"
)
INBOUND_MMS = (
    "NumMedia=2&MediaContentType0=image%2Fjpeg&MediaUrl0="
    + "https%3A%2F%2Fapi.twilio.com%2F2010-04-01%2FAccounts%2FACc0ffee00000000000000000000000000%2FMessages"
    + "%2FMM33333333333333333333333333333333%2FMedia%2FME44444444444444444444444444444444"
    + "&MediaContentType1=image%2Fpng&MediaUrl1="
    + "https%3A%2F%2Fapi.twilio.com%2F2010-04-01%2FAccounts%2FACc0ffee00000000000000000000000000%2FMessages"
    + "%2FMM33333333333333333333333333333333%2FMedia%2FME55555555555555555555555555555555"
    + "&Body=&From=%2B14155551234&To=%2B15005550006&MessageSid=MM33333333333333333333333333333333"
    + "&SmsMessageSid=MM33333333333333333333333333333333&SmsSid=MM33333333333333333333333333333333"
    + "&SmsStatus=received&AccountSid=ACc0ffee00000000000000000000000000&NumSegments=1&ApiVersion=2010-04-01"
)
INBOUND_MMS_SIGNATURE = "l6uvpnw2IWb5p7tcEoBuQqCRK7Y="
STATUS_UNDELIVERED = (
    "SmsSid=SM66666666666666666666666666666666&SmsStatus=undelivered&MessageStatus=undelivered"
    "&To=%2B14155551234&MessagingServiceSid=MG22222222222222222222222222222222"
    "&MessageSid=SM66666666666666666666666666666666&AccountSid=ACc0ffee00000000000000000000000000"
    "&From=%2B15005550006&ApiVersion=2010-04-01&ErrorCode=30003&RawDlrDoneDate=2501011200"
)
STATUS_UNDELIVERED_SIGNATURE = "+FSII1AOCkU3rOgKXz7XvsAqhrc="
DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
REPEATED_KEYS = "Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234&Digits=1234"
REPEATED_KEYS_SIGNATURE = "IK+Dwps556ElfBT0I3Rgjkr1wJU="
JSON_BODY = b'{"property": "value", "boolean": true}'
JSON_URL = DOC_URL + "&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
JSON_SIGNATURE = "a9nBmqA0ju/hNViExpshrM61xv4="
SHARED_KEY_SECRET = "whsk_example_shared_key_secret_0001"
SHARED_KEY_SETTINGS = "key=webhooks_sharedkey_0001,algorithm=HMAC_SHA256"
SHARED_KEY_SIGNATURE = "U6YeWv10iHQJgyKZ8kfQDvfZWRugudeDC3HilpxsJvI="


def form_params(body: str) -> MultiDict[str, str]:
    """The body as Twilio's SDK sees it in a web framework: every pair, blanks and repeats kept."""
    return MultiDict(parse_qsl(body, keep_blank_values=True))


def sdk_sign(token: str, url: str, body: str, algorithm: str | None = None) -> str:
    signature: str = RequestValidator(token).compute_signature(url, form_params(body), algorithm)
    return signature


def webhook(
    url: str,
    body: str | bytes,
    signature: str | None,
    *,
    content_type: str = FORM,
    extra_headers: dict[str, str] | None = None,
    method: str = "POST",
) -> WebhookRequest:
    headers = {"content-type": content_type}
    if signature is not None:
        headers["x-twilio-signature"] = signature
    headers.update({k.lower(): v for k, v in (extra_headers or {}).items()})
    raw = body.encode() if isinstance(body, str) else body
    return WebhookRequest(method=method, url=url, headers=headers, body=raw)


def carrier(token: str = TOKEN, **kwargs: object) -> TwilioCarrier:
    return TwilioCarrier(SID, token, **kwargs)  # type: ignore[arg-type]


# -- signatures -------------------------------------------------------------------------------------


def test_realistic_inbound_form_with_blank_values_is_accepted() -> None:
    signature = sdk_sign(TOKEN, INBOUND_URL, INBOUND_SMS)
    assert signature == INBOUND_SMS_SIGNATURE  # the SDK and the published vector agree
    carrier().verify(webhook(INBOUND_URL, INBOUND_SMS, signature))


def test_signature_that_skipped_blank_values_is_rejected() -> None:
    """ToCity= and ToZip= are signed: a signer that dropped them signed a different request."""
    without_blanks = "&".join(p for p in INBOUND_SMS.split("&") if not p.endswith("="))
    wrong = sdk_sign(TOKEN, INBOUND_URL, without_blanks)
    with pytest.raises(SignatureError):
        carrier().verify(webhook(INBOUND_URL, INBOUND_SMS, wrong))


def test_mms_vector_is_accepted() -> None:
    assert sdk_sign(TOKEN, INBOUND_URL, INBOUND_MMS) == INBOUND_MMS_SIGNATURE
    carrier().verify(webhook(INBOUND_URL, INBOUND_MMS, INBOUND_MMS_SIGNATURE))


def test_repeated_keys_are_signed_sorted_and_deduplicated() -> None:
    signature = sdk_sign("12345", DOC_URL, REPEATED_KEYS)
    assert signature == REPEATED_KEYS_SIGNATURE
    carrier("12345").verify(webhook(DOC_URL, REPEATED_KEYS, signature))


def test_url_with_query_string_is_signed_as_given() -> None:
    signature = sdk_sign(TOKEN, STATUS_URL, STATUS_UNDELIVERED)
    assert signature == STATUS_UNDELIVERED_SIGNATURE
    carrier().verify(webhook(STATUS_URL, STATUS_UNDELIVERED, signature))
    reordered_query = STATUS_URL.replace("tenant=acme&msg=42", "msg=42&tenant=acme")
    with pytest.raises(SignatureError):
        carrier().verify(webhook(reordered_query, STATUS_UNDELIVERED, signature))


@pytest.mark.parametrize(
    ("signed_url", "request_url"),
    [
        ("https://hooks.example.com:443/twilio/inbound?x=1", "https://hooks.example.com/twilio/inbound?x=1"),
        ("https://hooks.example.com/twilio/inbound?x=1", "https://hooks.example.com:443/twilio/inbound?x=1"),
        ("http://hooks.example.com:80/twilio/inbound", "http://hooks.example.com/twilio/inbound"),
        ("http://hooks.example.com/twilio/inbound", "http://hooks.example.com:80/twilio/inbound"),
        ("https://hooks.example.com:443", "https://hooks.example.com"),
    ],
)
def test_default_port_may_be_present_or_not(signed_url: str, request_url: str) -> None:
    signature = sdk_sign(TOKEN, signed_url, INBOUND_SMS)
    assert RequestValidator(TOKEN).validate(request_url, form_params(INBOUND_SMS), signature)  # as Twilio's
    carrier().verify(webhook(request_url, INBOUND_SMS, signature))


def test_non_default_port_is_part_of_the_signed_url() -> None:
    signature = sdk_sign(TOKEN, "https://hooks.example.com/twilio/inbound", INBOUND_SMS)
    with pytest.raises(SignatureError):
        carrier().verify(webhook("https://hooks.example.com:8443/twilio/inbound", INBOUND_SMS, signature))


def test_json_body_with_body_sha256_is_accepted() -> None:
    validator = RequestValidator("12345")
    signature = validator.compute_signature(JSON_URL, {})
    assert signature == JSON_SIGNATURE
    assert validator.validate(JSON_URL, JSON_BODY.decode(), signature)
    carrier("12345").verify(webhook(JSON_URL, JSON_BODY, signature, content_type="application/json"))


def test_json_body_that_does_not_match_body_sha256_is_rejected() -> None:
    altered = JSON_BODY.replace(b"true", b"fals")
    with pytest.raises(SignatureError, match="bodySHA256"):
        carrier("12345").verify(webhook(JSON_URL, altered, JSON_SIGNATURE, content_type="application/json"))


def test_json_body_without_body_sha256_is_rejected_as_a_payload_problem() -> None:
    signature = RequestValidator("12345").compute_signature(DOC_URL, {})
    with pytest.raises(PayloadError, match="bodySHA256"):
        carrier("12345").verify(webhook(DOC_URL, JSON_BODY, signature, content_type="application/json"))


def hmac_sha256_signature(secret: str, url: str, body: str) -> str:
    """Twilio's scheme written out: URL, then each sorted name with each of its sorted distinct values."""
    pairs = parse_qsl(body, keep_blank_values=True)
    names = sorted({name for name, _ in pairs})
    text = url + "".join(
        name + value for name in names for value in sorted({v for n, v in pairs if n == name})
    )
    digest = hmac.new(secret.encode(), text.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def test_shared_key_hmac_sha256_signature_is_accepted() -> None:
    signature = hmac_sha256_signature(SHARED_KEY_SECRET, INBOUND_URL, INBOUND_SMS)
    assert signature == SHARED_KEY_SIGNATURE
    assert sdk_sign(SHARED_KEY_SECRET, INBOUND_URL, INBOUND_SMS, "HMAC_SHA256") == signature
    settings = {"X-Twilio-Webhooks-Signature-Settings": SHARED_KEY_SETTINGS}
    request = webhook(INBOUND_URL, INBOUND_SMS, signature, extra_headers=settings)
    carrier(secondary_auth_tokens=(SHARED_KEY_SECRET,)).verify(request)


def test_sha256_signature_without_the_settings_header_is_rejected() -> None:
    signature = hmac_sha256_signature(TOKEN, INBOUND_URL, INBOUND_SMS)
    with pytest.raises(SignatureError):
        carrier().verify(webhook(INBOUND_URL, INBOUND_SMS, signature))


def test_unsupported_signature_algorithm_is_rejected() -> None:
    signature = sdk_sign(TOKEN, INBOUND_URL, INBOUND_SMS)
    settings = {"X-Twilio-Webhooks-Signature-Settings": "key=k1,algorithm=HMAC_MD5"}
    with pytest.raises(SignatureError, match="algorithm"):
        carrier().verify(webhook(INBOUND_URL, INBOUND_SMS, signature, extra_headers=settings))


def test_forged_signature_is_rejected_without_leaking_secrets() -> None:
    forged = base64.b64encode(b"\x00" * 20).decode()
    with pytest.raises(SignatureError) as caught:
        carrier().verify(webhook(INBOUND_URL, INBOUND_SMS, forged))
    message = str(caught.value)
    assert TOKEN not in message
    assert INBOUND_SMS_SIGNATURE not in message


def test_body_altered_by_one_character_is_rejected() -> None:
    altered = INBOUND_SMS.replace("Body=Hi%21", "Body=Ho%21")
    assert altered != INBOUND_SMS
    with pytest.raises(SignatureError):
        carrier().verify(webhook(INBOUND_URL, altered, INBOUND_SMS_SIGNATURE))


def test_different_url_is_rejected() -> None:
    with pytest.raises(SignatureError):
        carrier().verify(webhook(INBOUND_URL.replace("/prod/", "/dev/"), INBOUND_SMS, INBOUND_SMS_SIGNATURE))


def test_missing_signature_header_is_rejected() -> None:
    with pytest.raises(SignatureError, match="missing"):
        carrier().verify(webhook(INBOUND_URL, INBOUND_SMS, None))


def test_signature_made_with_another_token_is_rejected() -> None:
    signature = sdk_sign("0" * 32, INBOUND_URL, INBOUND_SMS)
    with pytest.raises(SignatureError):
        carrier().verify(webhook(INBOUND_URL, INBOUND_SMS, signature))


def test_empty_configured_token_rejects_everything() -> None:
    signature = sdk_sign("", INBOUND_URL, INBOUND_SMS)  # what an empty-key HMAC would produce
    with pytest.raises(SignatureError, match="token"):
        carrier("").verify(webhook(INBOUND_URL, INBOUND_SMS, signature))


def test_secondary_token_is_accepted_during_rotation() -> None:
    new_token = "1" * 32
    signature = sdk_sign(new_token, INBOUND_URL, INBOUND_SMS)
    carrier(secondary_auth_tokens=(new_token,)).verify(webhook(INBOUND_URL, INBOUND_SMS, signature))
    with pytest.raises(SignatureError):
        carrier().verify(webhook(INBOUND_URL, INBOUND_SMS, signature))


def test_header_lookup_ignores_case() -> None:
    request = WebhookRequest(
        method="POST",
        url=INBOUND_URL,
        headers={"X-Twilio-Signature": INBOUND_SMS_SIGNATURE, "Content-Type": FORM},
        body=INBOUND_SMS.encode(),
    )
    with pytest.raises(SignatureError, match="missing"):  # WebhookRequest promises lower-cased names
        carrier().verify(request)
    carrier().verify(webhook(INBOUND_URL, INBOUND_SMS, INBOUND_SMS_SIGNATURE))


# -- parsing ----------------------------------------------------------------------------------------


def parse_one(kind: WebhookKind, body: str, content_type: str = FORM) -> ParsedInbound | ParsedStatus:
    events = carrier().parse(kind, webhook(INBOUND_URL, body, "unused", content_type=content_type))
    assert len(events) == 1
    return events[0]


def test_parse_inbound_sms() -> None:
    event = parse_one(WebhookKind.MESSAGES, INBOUND_SMS)
    assert isinstance(event, ParsedInbound)
    assert event.carrier == "twilio"
    assert event.carrier_message_id == "SM11111111111111111111111111111111"
    assert event.from_number == "+14155551234"
    assert event.to_number == "+15005550006"
    assert event.body == "Hi! Is order #1234 ready? \U0001f600 a&b=c + 100%"
    assert event.media == ()
    assert event.segments == 1
    assert event.raw["ToCity"] == ""
    assert event.raw["FromCity"] == "SAN FRANCISCO"


def test_parse_mms_with_two_media() -> None:
    event = parse_one(WebhookKind.MESSAGES, INBOUND_MMS)
    assert isinstance(event, ParsedInbound)
    assert event.carrier_message_id == "MM33333333333333333333333333333333"
    assert event.body == ""
    assert event.media == (
        ParsedMedia(url=f"{MEDIA_BASE}/ME44444444444444444444444444444444", content_type="image/jpeg"),
        ParsedMedia(url=f"{MEDIA_BASE}/ME55555555555555555555555555555555", content_type="image/png"),
    )


def test_parse_falls_back_to_legacy_sms_sid() -> None:
    body = "SmsSid=SM7&From=%2B14155551234&To=%2B15005550006&Body=yes"
    event = parse_one(WebhookKind.MESSAGES, body)
    assert isinstance(event, ParsedInbound)
    assert event.carrier_message_id == "SM7"


STATUS_WORDS = [
    ("queued", MessageStatus.QUEUED),
    ("accepted", MessageStatus.ACCEPTED),
    ("scheduled", MessageStatus.SCHEDULED),
    ("sending", MessageStatus.SENDING),
    ("sent", MessageStatus.SENT),
    ("delivered", MessageStatus.DELIVERED),
    ("undelivered", MessageStatus.UNDELIVERED),
    ("failed", MessageStatus.FAILED),
    ("read", MessageStatus.READ),
    ("partially_delivered", MessageStatus.PARTIALLY_DELIVERED),
    ("canceled", MessageStatus.CANCELED),
    ("receiving", MessageStatus.RECEIVED),
    ("received", MessageStatus.RECEIVED),
]


@pytest.mark.parametrize(("word", "expected"), STATUS_WORDS)
def test_parse_every_status_word(word: str, expected: MessageStatus) -> None:
    body = urlencode({"MessageSid": "SM9", "MessageStatus": word, "SmsStatus": word})
    event = parse_one(WebhookKind.STATUS, body)
    assert isinstance(event, ParsedStatus)
    assert event.status is expected
    assert event.carrier_status == word
    assert event.carrier_message_id == "SM9"
    assert event.error_code is None


def test_status_words_cover_the_sdk_vocabulary() -> None:
    from twilio.rest.api.v2010.account.message import MessageInstance  # type: ignore[import-untyped]

    sdk_words = {v for k, v in vars(MessageInstance.Status).items() if k.isupper() and isinstance(v, str)}
    assert len(sdk_words) == 13
    assert sdk_words == {word for word, _ in STATUS_WORDS}


def test_parse_status_carries_error_code_and_message() -> None:
    event = parse_one(WebhookKind.STATUS, STATUS_UNDELIVERED + "&ErrorMessage=Unreachable+destination")
    assert isinstance(event, ParsedStatus)
    assert event.status is MessageStatus.UNDELIVERED
    assert event.error_code == "30003"
    assert event.error_message == "Unreachable destination"
    assert event.raw["RawDlrDoneDate"] == "2501011200"
    assert classify_error(event.error_code, None)[0] is FailureKind.TRANSIENT


def test_unknown_status_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="bounced"):
        parse_one(WebhookKind.STATUS, "MessageSid=SM9&MessageStatus=bounced")


def test_status_without_status_word_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="MessageStatus"):
        parse_one(WebhookKind.STATUS, "MessageSid=SM9")


@pytest.mark.parametrize("kind", [WebhookKind.MESSAGES, WebhookKind.STATUS])
def test_missing_message_sid_is_a_payload_error(kind: WebhookKind) -> None:
    body = "From=%2B14155551234&To=%2B15005550006&Body=hi&MessageStatus=sent"
    with pytest.raises(PayloadError, match="MessageSid"):
        parse_one(kind, body)


@pytest.mark.parametrize("missing", ["From", "To"])
def test_missing_number_is_a_payload_error(missing: str) -> None:
    fields = {"MessageSid": "SM1", "From": "+14155551234", "To": "+15005550006", "Body": "hi"}
    del fields[missing]
    with pytest.raises(PayloadError, match=missing):
        parse_one(WebhookKind.MESSAGES, urlencode(fields))


def test_numbers_are_passed_as_twilio_wrote_them() -> None:
    # E.164 normalisation happens in the processor, off the webhook's ack path; a channel address
    # such as whatsapp:+1... or a short code must not cost us the message.
    body = urlencode({"MessageSid": "SM1", "From": "whatsapp:+14155551234", "To": "12345"})
    event = parse_one(WebhookKind.MESSAGES, body)
    assert isinstance(event, ParsedInbound)
    assert (event.from_number, event.to_number) == ("whatsapp:+14155551234", "12345")


def test_an_events_url_tells_inbound_from_receipts_by_the_status_word() -> None:
    inbound = parse_one(WebhookKind.EVENTS, urlencode({"MessageSid": "SM1", "From": "+1", "To": "+2"}))
    receipt = parse_one(WebhookKind.EVENTS, urlencode({"MessageSid": "SM1", "MessageStatus": "delivered"}))
    assert isinstance(inbound, ParsedInbound) and isinstance(receipt, ParsedStatus)


def test_opt_out_signals_are_carried() -> None:
    stop = parse_one(
        WebhookKind.MESSAGES,
        urlencode({"MessageSid": "SM1", "From": "+1", "To": "+2", "Body": "STOP", "OptOutType": "STOP"}),
    )
    receipt = parse_one(
        WebhookKind.STATUS, urlencode({"MessageSid": "SM1", "MessageStatus": "failed", "ErrorCode": "21610"})
    )
    assert isinstance(stop, ParsedInbound) and stop.opt_out == "STOP"
    assert isinstance(receipt, ParsedStatus) and receipt.opted_out


def test_non_form_body_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="content type"):
        parse_one(WebhookKind.MESSAGES, "<xml/>", content_type="text/xml")


def test_malformed_json_is_a_payload_error() -> None:
    with pytest.raises(PayloadError):
        parse_one(WebhookKind.MESSAGES, "{not json", content_type="application/json")


def test_json_status_body_is_parsed() -> None:
    event = parse_one(
        WebhookKind.STATUS, '{"MessageSid": "SM5", "MessageStatus": "sent"}', "application/json"
    )
    assert isinstance(event, ParsedStatus)
    assert (event.carrier_message_id, event.status) == ("SM5", MessageStatus.SENT)


def test_ack_is_empty_twiml() -> None:
    for kind in WebhookKind:
        ack = carrier().ack(kind)
        assert ack.status_code == 200
        assert ack.content_type == "text/xml"
        assert ack.body == '<?xml version="1.0" encoding="UTF-8"?><Response/>'


# -- sending against a local Twilio stand-in --------------------------------------------------------


carrier_api_server, fake_twilio = carrier_api_fixtures("fake_twilio")

TEXT = OutboundText(
    message_id="msg-1",
    from_number="+15005550006",
    to_number="+14155551234",
    body="Your order #1234 is ready & waiting",
    status_callback_url="https://hooks.example.com/prod/twilio/status?msg=msg-1",
)


def send_via(
    fake: FakeCarrierApi, text: OutboundText = TEXT, timeout: float = 5.0
) -> SendAccepted | SendFailed:
    return TwilioCarrier(SID, TOKEN, api_base=fake.url, timeout=timeout).send(text)


def test_send_accepted_and_the_request_twilio_sees(fake_twilio: FakeCarrierApi) -> None:
    fake_twilio.json(201, '{"sid": "SM123", "status": "queued", "num_segments": "1"}')
    text = OutboundText(
        **{**TEXT.__dict__, "media_urls": ("https://m.example/a.jpg", "https://m.example/b.png")}
    )
    outcome = send_via(fake_twilio, text)
    assert outcome == SendAccepted(carrier_message_id="SM123", carrier_status="queued", segments=1)
    [seen] = fake_twilio.seen
    assert seen.method == "POST"
    assert seen.path == f"/2010-04-01/Accounts/{SID}/Messages.json"
    assert (seen.username, seen.password) == (SID, TOKEN)
    assert seen.content_type == "application/x-www-form-urlencoded"
    assert seen.form == [
        ("To", "+14155551234"),
        ("From", "+15005550006"),
        ("Body", "Your order #1234 is ready & waiting"),
        ("StatusCallback", "https://hooks.example.com/prod/twilio/status?msg=msg-1"),
        ("MediaUrl", "https://m.example/a.jpg"),
        ("MediaUrl", "https://m.example/b.png"),
    ]


def test_send_without_status_callback_omits_it(fake_twilio: FakeCarrierApi) -> None:
    fake_twilio.json(201, '{"sid": "SM124", "status": "accepted", "num_segments": "0"}')
    outcome = send_via(fake_twilio, OutboundText("m2", "+15005550006", "+14155551234", "hi"))
    assert outcome == SendAccepted("SM124", "accepted", None)  # 0 segments means "not split yet"
    assert [name for name, _ in fake_twilio.seen[0].form] == ["To", "From", "Body"]


@pytest.mark.parametrize(
    ("status", "payload", "kind", "reason", "code"),
    [
        (
            400,
            '{"code": 21211, "message": "The \'To\' number +1415 is not a valid phone number."}',
            FailureKind.PERMANENT,
            "the number is not a valid phone number",
            "21211",
        ),
        (
            400,
            '{"code": 21610, "message": "Attempt to send to unsubscribed recipient", "status": 400}',
            FailureKind.PERMANENT,
            "the recipient has opted out (replied STOP)",
            "21610",
        ),
        (
            400,
            '{"code": 21614, "message": "not a mobile number", "status": 400}',
            FailureKind.PERMANENT,
            "the number is not a mobile number and can't receive texts",
            "21614",
        ),
        (
            401,
            '{"code": 20003, "message": "Authenticate", "status": 401}',
            FailureKind.PERMANENT,
            "the carrier rejected our credentials (check the Twilio account settings)",
            "20003",
        ),
        (
            429,
            '{"code": 20429, "message": "Too Many Requests", "status": 429}',
            FailureKind.TRANSIENT,
            "the carrier is rate limiting us; it will be retried",
            "20429",
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
            '{"code": 20500, "message": "Internal"}',
            FailureKind.AMBIGUOUS,
            "carrier server error (HTTP 500)",
            "20500",
        ),
        (
            503,
            "<html>Service Unavailable</html>",
            FailureKind.AMBIGUOUS,
            "carrier server error (HTTP 503)",
            None,
        ),
        (
            400,
            '{"code": 21999, "message": "Something new went wrong", "status": 400}',
            FailureKind.PERMANENT,
            "carrier rejected the message: Something new went wrong",
            "21999",
        ),
        (
            400,
            '{"type": "https://www.twilio.com/docs/errors/21998", "title": "Odd", "status": 400,'
            ' "code": 21998, "detail": "An RFC 9457 problem"}',
            FailureKind.PERMANENT,
            "carrier rejected the message: An RFC 9457 problem",
            "21998",
        ),
        (
            400,
            "<html>Bad Request</html>",
            FailureKind.PERMANENT,
            "carrier rejected the message (HTTP 400)",
            None,
        ),
    ],
)
def test_send_failures_are_classified(
    fake_twilio: FakeCarrierApi, status: int, payload: str, kind: FailureKind, reason: str, code: str | None
) -> None:
    fake_twilio.json(status, payload)
    outcome = send_via(fake_twilio)
    assert outcome == SendFailed(
        kind=kind, reason=reason, error_code=code, http_status=status, opted_out=code == "21610"
    )
    assert len(fake_twilio.seen) == 1  # never retried inside send: the retry function owns that


def test_success_without_a_sid_is_ambiguous(fake_twilio: FakeCarrierApi) -> None:
    fake_twilio.json(201, "not json")
    outcome = send_via(fake_twilio)
    assert isinstance(outcome, SendFailed)
    assert (outcome.kind, outcome.http_status) == (FailureKind.AMBIGUOUS, 201)


def test_redirect_is_not_followed(fake_twilio: FakeCarrierApi) -> None:
    fake_twilio.reply = lambda _r: Response(status=301, headers={"Location": "/elsewhere"})
    outcome = send_via(fake_twilio)
    assert isinstance(outcome, SendFailed)
    assert (outcome.kind, outcome.http_status) == (FailureKind.PERMANENT, 301)
    assert [s.path for s in fake_twilio.seen] == [f"/2010-04-01/Accounts/{SID}/Messages.json"]


def test_read_timeout_after_the_request_arrived_is_ambiguous(fake_twilio: FakeCarrierApi) -> None:
    fake_twilio.slow(201, '{"sid": "SMlate", "status": "queued"}')
    outcome = send_via(fake_twilio, timeout=0.2)
    assert fake_twilio.received.wait(5)  # Twilio had the request: it may send the text
    assert isinstance(outcome, SendFailed)
    assert outcome.kind is FailureKind.AMBIGUOUS
    assert outcome.error_code is None and outcome.http_status is None


def test_connection_refused_is_transient() -> None:
    with refused_url() as url:
        outcome = TwilioCarrier(SID, TOKEN, api_base=url).send(TEXT)
    assert isinstance(outcome, SendFailed)
    assert outcome.kind is FailureKind.TRANSIENT
    assert (outcome.error_code, outcome.http_status) == (None, None)


def test_connection_dropped_after_the_request_was_sent_is_ambiguous() -> None:
    with hanging_up_after_the_request() as server:
        outcome = TwilioCarrier(SID, TOKEN, api_base=server.url, timeout=5).send(TEXT)
    assert server.got_request.is_set()
    assert isinstance(outcome, SendFailed)
    assert outcome.kind is FailureKind.AMBIGUOUS


def test_misconfigured_api_base_is_permanent() -> None:
    outcome = TwilioCarrier(SID, TOKEN, api_base="not a url").send(TEXT)
    assert isinstance(outcome, SendFailed)
    assert outcome.kind is FailureKind.PERMANENT


def test_send_logs_neither_token_nor_full_number(
    fake_twilio: FakeCarrierApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="parley")
    fake_twilio.json(201, '{"sid": "SM1", "status": "queued"}')
    send_via(fake_twilio)
    fake_twilio.json(400, '{"code": 21211, "message": "The number +14155551234 is invalid"}')
    send_via(fake_twilio)
    assert "SM1" in caplog.text and "21211" in caplog.text
    assert TOKEN not in caplog.text
    assert TEXT.to_number not in caplog.text
    assert mask(TEXT.to_number) in caplog.text


def test_fetch_returns_the_message(fake_twilio: FakeCarrierApi) -> None:
    fake_twilio.json(200, '{"sid": "SM77", "status": "delivered", "num_segments": "2"}')
    carrier = TwilioCarrier(SID, TOKEN, api_base=fake_twilio.url)
    assert carrier.fetch("SM77") == SendAccepted("SM77", "delivered", 2)
    [seen] = fake_twilio.seen
    assert (seen.method, seen.path) == ("GET", f"/2010-04-01/Accounts/{SID}/Messages/SM77.json")
    assert (seen.username, seen.password) == (SID, TOKEN)


def test_fetch_unknown_message_is_none(fake_twilio: FakeCarrierApi) -> None:
    fake_twilio.json(404, '{"code": 20404, "message": "not found"}')
    assert TwilioCarrier(SID, TOKEN, api_base=fake_twilio.url).fetch("SM00") is None


def test_fetch_failure_raises_rather_than_claiming_absence(fake_twilio: FakeCarrierApi) -> None:
    fake_twilio.json(500, "{}")
    with pytest.raises(TwilioLookupError, match="500"):
        TwilioCarrier(SID, TOKEN, api_base=fake_twilio.url).fetch("SM00")


def _listed(body: str, *, to: str = TEXT.to_number, sid: str = "SM88", created: str = "") -> str:
    created = created or "Sat, 28 Nov 2026 04:00:00 +0000"
    item = {"sid": sid, "status": "sent", "to": to, "from": TEXT.from_number, "body": body}
    return json.dumps({"messages": [{**item, "date_created": created}]})


SINCE = datetime(2026, 11, 28, 3, 59, tzinfo=UTC)


def test_find_sent_matches_recipient_sender_and_body(fake_twilio: FakeCarrierApi) -> None:
    fake_twilio.json(200, _listed(TEXT.body))
    found = TwilioCarrier(SID, TOKEN, api_base=fake_twilio.url).find_sent(TEXT, SINCE)
    assert found == SendAccepted("SM88", "sent", None)
    [seen] = fake_twilio.seen
    assert (seen.method, seen.path) == ("GET", f"/2010-04-01/Accounts/{SID}/Messages.json")
    assert "To=%2B14155551234" in seen.raw_uri and "From=%2B15005550006" in seen.raw_uri


@pytest.mark.parametrize(
    "listed",
    [
        _listed("a different text"),
        _listed(TEXT.body, to="+14155550000"),
        _listed(TEXT.body, created="Fri, 27 Nov 2026 10:00:00 +0000"),  # older than the first attempt
        '{"messages": []}',
    ],
    ids=["other-body", "other-recipient", "too-old", "none"],
)
def test_find_sent_ignores_texts_that_are_not_this_one(fake_twilio: FakeCarrierApi, listed: str) -> None:
    fake_twilio.json(200, listed)
    assert TwilioCarrier(SID, TOKEN, api_base=fake_twilio.url).find_sent(TEXT, SINCE) is None


def test_find_sent_failure_raises_rather_than_claiming_absence(fake_twilio: FakeCarrierApi) -> None:
    fake_twilio.json(503, "{}")
    with pytest.raises(TwilioLookupError, match="503"):
        TwilioCarrier(SID, TOKEN, api_base=fake_twilio.url).find_sent(TEXT, SINCE)


def test_fetch_quotes_the_sid_into_one_path_segment(fake_twilio: FakeCarrierApi) -> None:
    fake_twilio.json(404, "{}")
    TwilioCarrier(SID, TOKEN, api_base=fake_twilio.url).fetch("../../Calls")
    assert fake_twilio.seen[0].raw_uri == f"/2010-04-01/Accounts/{SID}/Messages/..%2F..%2FCalls.json"


# -- error classification for receipts --------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "kind", "words"),
    [
        ("30003", FailureKind.TRANSIENT, "unreachable"),
        ("30008", FailureKind.TRANSIENT, "unknown"),
        ("30005", FailureKind.PERMANENT, "unknown"),
        ("30006", FailureKind.PERMANENT, "landline"),
        ("30007", FailureKind.PERMANENT, "spam"),
        ("21212", FailureKind.PERMANENT, "sending number"),
        ("21408", FailureKind.PERMANENT, "country"),
        ("21602", FailureKind.PERMANENT, "empty"),
        ("21606", FailureKind.PERMANENT, "can't send"),
        ("21608", FailureKind.PERMANENT, "verified"),
        ("21612", FailureKind.PERMANENT, "between these two numbers"),
        ("21617", FailureKind.PERMANENT, "too long"),
        ("39999", FailureKind.PERMANENT, "error 39999"),
        (None, FailureKind.PERMANENT, "could not deliver"),
    ],
)
def test_classify_receipt_error_codes(code: str | None, kind: FailureKind, words: str) -> None:
    got_kind, reason = classify_error(code, None)
    assert got_kind is kind
    assert words in reason


# -- registry ---------------------------------------------------------------------------------------


def test_registry_builds_twilio_from_settings() -> None:
    config = CarrierConfig(
        {
            "PARLEY_TWILIO_ACCOUNT_SID": "AC42",
            "PARLEY_TWILIO_AUTH_TOKEN": "tok-42",
            "PARLEY_TWILIO_API_BASE": "http://127.0.0.1:9/",
            "PARLEY_CARRIER_TIMEOUT_SECONDS": "2.5",
        }
    )
    built = build_carrier("twilio", config)
    assert isinstance(built, TwilioCarrier)
    assert (built.account_sid, built.api_base, built.timeout) == ("AC42", "http://127.0.0.1:9", 2.5)
    signature = sdk_sign("tok-42", INBOUND_URL, INBOUND_SMS)
    built.verify(webhook(INBOUND_URL, INBOUND_SMS, signature))  # the token from settings is the one used
    assert "twilio" in known_carriers()


def test_registry_rejects_unknown_carrier() -> None:
    with pytest.raises(UnknownCarrier, match="carrier-pigeon") as caught:
        build_carrier("carrier-pigeon", CarrierConfig({}))
    assert isinstance(caught.value, ValueError)
    assert "twilio" in str(caught.value)


# -- media field names and receipts at the wrong URL -------------------------------------------------


def test_only_canonical_media_indexes_count_and_each_url_is_read_under_its_own_name() -> None:
    base = "MessageSid=MM1&From=%2B14155551234&To=%2B15005550006&Body=pic"
    event = parse_one(
        WebhookKind.MESSAGES, f"{base}&MediaUrl0=https://a.example/a&MediaUrl00=https://a.example/b"
    )
    assert isinstance(event, ParsedInbound)
    assert event.media == (ParsedMedia(url="https://a.example/a"),)  # MediaUrl00 is no media field
    event = parse_one(WebhookKind.MESSAGES, f"{base}&MediaUrl01=https://a.example/x")
    assert isinstance(event, ParsedInbound) and event.media == ()
    event = parse_one(WebhookKind.MESSAGES, f"{base}&MediaUrl{'1' * 4400}=https://a.example/x")
    assert isinstance(event, ParsedInbound) and event.media == ()
    event = parse_one(
        WebhookKind.MESSAGES,
        f"{base}&MediaUrl10=https://a.example/k&MediaContentType10=image/png&MediaUrl2=https://a.example/c",
    )
    assert isinstance(event, ParsedInbound)
    assert event.media == (
        ParsedMedia(url="https://a.example/c"),
        ParsedMedia(url="https://a.example/k", content_type="image/png"),
    )


@pytest.mark.parametrize("word", ["delivered", "sent", "undelivered", "failed"])
def test_a_receipt_posted_to_the_inbound_url_is_refused_not_stored_as_an_empty_text(word: str) -> None:
    body = f"MessageSid=SM1&From=%2B15005550006&To=%2B14155559981&MessageStatus={word}&SmsStatus={word}"
    with pytest.raises(PayloadError, match="status callback"):
        carrier().parse(WebhookKind.MESSAGES, webhook(INBOUND_URL, body, "unused", content_type=FORM))


def test_an_inbound_text_says_it_was_received() -> None:
    body = "MessageSid=SM1&From=%2B14155551234&To=%2B15005550006&Body=hi&SmsStatus=received"
    assert isinstance(parse_one(WebhookKind.MESSAGES, body), ParsedInbound)


@pytest.mark.parametrize(
    ("body", "content_type", "words"),
    [
        (b"Body=\xff", FORM, "not valid form data"),
        (b"hello", "text/plain", "unsupported content type"),
        (JSON_BODY, "application/json", "bodySHA256"),
    ],
    ids=["not-utf8", "text-plain", "json-unhashed"],
)
def test_an_unreadable_body_is_a_payload_problem_not_a_forgery(
    body: bytes, content_type: str, words: str
) -> None:
    with pytest.raises(PayloadError, match=words):
        carrier().verify(webhook(INBOUND_URL, body, "c2lnbmF0dXJl", content_type=content_type))
