"""The Vonage SMS API plugin against Vonage's own signer and a local HTTP stand-in for its API.

HMAC signatures come from the official SDK (`vonage_http_client.auth.Auth.sign_params`, tests
only, never shipped) and the published vectors in carriers.md section 11; the SDK has no `md5hash`
(the dashboard default), so that method is checked against its published vector and a hashlib
one-liner written from the documented rule. Sends go over real sockets to a werkzeug server.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vonage_http_client.auth import Auth  # type: ignore[import-untyped]
from werkzeug.wrappers import Response

from parley.carriers.base import (
    FailureKind,
    OutboundText,
    ParsedConcat,
    ParsedInbound,
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
from parley.carriers.vonage_sms import (
    RECEIPT_ERRORS,
    SEND_STATUS,
    STATUS_MAP,
    VonageConfigError,
    VonageLookupUnavailable,
    VonageSmsCarrier,
    build,
    classify,
)
from parley.domain.vocabulary import MessageStatus
from tests.carrier_api import FakeCarrierApi, carrier_api_fixtures, refused_url

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
API_KEY = "abcd1234"
API_SECRET = "0123456789abcdef"
SECRET = "fake-signature-secret-0123456789abcdef"  # carriers.md section 11
OTHER_SECRET = "another-signature-secret-fedcba9876543210"
MESSAGES_URL = "https://hooks.example.com/prod/webhooks/vonage/messages"
STATUS_URL = "https://hooks.example.com/prod/webhooks/vonage/status"
NOW = 1577880000.0  # the vectors' timestamp
SAMPLES = Path(__file__).resolve().parents[2] / "events" / "carriers" / "vonage"
SIM_SECRET = "sim-vonage-signature-secret"  # local/sim_vonage.py default, used to sign the samples

VECTOR_PARAMS = {
    "msisdn": "447700900001",
    "to": "447700900000",
    "messageId": "0A0000000123ABCD1",
    "text": "Hello & good=bye",
    "type": "text",
    "keyword": "HELLO",
    "message-timestamp": "2020-01-01 12:00:00",
    "timestamp": "1577880000",
    "nonce": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
    "api-key": "abcd1234",
}
VECTORS = {  # carriers.md section 11 `expected_sig_hex_lower`
    "md5hash": "51d635109313f6e3f78f6e9ba56175b0",
    "md5": "ff47b3c7584a1dd3a09ab0cb877d1430",
    "sha1": "5184bf1f8226e53caae89d134c10901a2c709d1d",
    "sha256": "4bde90d8cdfaeab6054d2307dedde4c0d9ddd3f7272b0f2266ec0109933fbbff",
    "sha512": (
        "66b4cbd3357e09ec98790ddbcb2961db791c3304d2727a93d03cb5e9a4747d87"
        "4f9828c8e1ef154e1b3777f7949c3a0fc115090cc33ea7894659e45cc4783e94"
    ),
}
HMAC_METHODS = ("md5", "sha1", "sha256", "sha512")

INBOUND = {
    "msisdn": "14155550100",
    "to": "15005550006",
    "messageId": "0A0000001A2B3C4D",
    "text": "Is order #1234 ready? \U0001f600 a&b=c + 100%",
    "type": "unicode",
    "keyword": "IS",
    "api-key": API_KEY,
    "message-timestamp": "2020-01-01 12:00:00",
    "timestamp": "1577880000",
    "nonce": "6b1a3c5e-2f4d-4e8a-9b7c-0d1e2f3a4b5c",
}
RECEIPT = {
    "msisdn": "14155550100",
    "to": "15005550006",
    "network-code": "310090",
    "messageId": "0B00000127FDBC63",
    "price": "0.00570000",
    "status": "delivered",
    "scts": "2001011201",
    "err-code": "0",
    "api-key": API_KEY,
    "client-ref": "msg-1",
    "message-timestamp": "2020-01-01 12:01:05",
    "timestamp": "1577880000",
    "nonce": "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
}


def sdk_sign(params: dict[str, str], method: str, secret: str = SECRET) -> str:
    """Vonage's SDK signature (HMAC methods only) over `params` without `sig`."""
    auth = Auth(api_key=API_KEY, signature_secret=secret, signature_method=method)
    signature: str = auth.sign_params(dict(params))
    return signature


def md5hash_sign(params: dict[str, str], secret: str = SECRET) -> str:
    """The dashboard-default method, from the documented rule: MD5(sorted "&k=v" + secret)."""
    text = "".join(f"&{k}={params[k].replace('&', '_').replace('=', '_')}" for k in sorted(params))
    return hashlib.md5((text + secret).encode()).hexdigest()


def signed(params: dict[str, str], method: str = "sha256", secret: str = SECRET) -> dict[str, str]:
    signature = md5hash_sign(params, secret) if method == "md5hash" else sdk_sign(params, method, secret)
    return {**params, "sig": signature}


def post(url: str, params: dict[str, str], content_type: str = FORM) -> WebhookRequest:
    body = json.dumps(params) if content_type == JSON else urlencode(params)
    return WebhookRequest("POST", url, {"content-type": content_type}, body.encode())


def get(url: str, params: dict[str, str], *, in_query: bool = True) -> WebhookRequest:
    """A GET as the webhook sees it: the parameters in `query`, or only in the URL's query string."""
    full_url = f"{url}?{urlencode(params)}"
    return WebhookRequest("GET", full_url, {}, b"", dict(params) if in_query else {})


def carrier(
    method: str = "sha256",
    secrets: tuple[str, ...] = (SECRET,),
    now: float = NOW,
    **kwargs: Any,
) -> VonageSmsCarrier:
    options: dict[str, Any] = {
        "api_key": API_KEY,
        "api_secret": API_SECRET,
        "signature_secrets": secrets,
        "signature_method": method,
        "clock": lambda: now,
        **kwargs,
    }
    return VonageSmsCarrier(**options)


# -- signatures -------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", sorted(VECTORS))
def test_published_vectors_are_accepted(method: str) -> None:
    params = {**VECTOR_PARAMS, "sig": VECTORS[method]}
    carrier(method).verify(post(MESSAGES_URL, params))
    upper = {**params, "sig": VECTORS[method].upper()}  # the .NET SDK writes HMACs upper-case
    carrier(method).verify(post(MESSAGES_URL, upper))


@pytest.mark.parametrize("method", HMAC_METHODS)
def test_sdk_agrees_with_the_published_vectors(method: str) -> None:
    assert sdk_sign(VECTOR_PARAMS, method) == VECTORS[method]


def test_md5hash_rule_agrees_with_the_published_vector() -> None:
    assert md5hash_sign(VECTOR_PARAMS) == VECTORS["md5hash"]


@pytest.mark.parametrize("method", (*HMAC_METHODS, "md5hash"))
@pytest.mark.parametrize(
    "shape",
    ["form", "json", "get-query", "get-url-only"],
)
@pytest.mark.parametrize("payload", [INBOUND, RECEIPT], ids=["inbound", "receipt"])
def test_signed_requests_are_accepted_in_every_shape(
    method: str, shape: str, payload: dict[str, str]
) -> None:
    params = signed(payload, method)
    request = {
        "form": lambda: post(MESSAGES_URL, params),
        "json": lambda: post(MESSAGES_URL, params, JSON),
        "get-query": lambda: get(MESSAGES_URL, params),
        "get-url-only": lambda: get(MESSAGES_URL, params, in_query=False),
    }[shape]()
    carrier(method).verify(request)


def test_forged_signature_is_rejected_without_leaking_secrets() -> None:
    expected = sdk_sign(INBOUND, "sha256")
    forged = {**INBOUND, "sig": "0" * 64}
    with pytest.raises(SignatureError) as caught:
        carrier().verify(post(MESSAGES_URL, forged))
    message = str(caught.value)
    assert message == "signature does not match"
    assert SECRET not in message and expected not in message


@pytest.mark.parametrize("content_type", [FORM, JSON])
def test_body_altered_by_one_byte_is_rejected(content_type: str) -> None:
    request = post(MESSAGES_URL, signed(INBOUND), content_type)
    carrier().verify(request)
    altered_body = request.body.replace(b"1234", b"1235", 1)
    assert altered_body != request.body and len(altered_body) == len(request.body)
    altered = WebhookRequest("POST", MESSAGES_URL, request.headers, altered_body)
    with pytest.raises(SignatureError, match="does not match"):
        carrier().verify(altered)


def test_added_parameter_is_rejected() -> None:
    params = {**signed(INBOUND), "concat": "true"}
    with pytest.raises(SignatureError):
        carrier().verify(post(MESSAGES_URL, params))


@pytest.mark.parametrize(
    ("skew", "accepted"),
    [(0, True), (299, True), (-299, True), (300, True), (301, False), (-301, False), (86400, False)],
)
def test_timestamp_must_be_within_the_freshness_window(skew: float, accepted: bool) -> None:
    request = post(MESSAGES_URL, signed(INBOUND))
    verifier = carrier(now=NOW + skew)
    if accepted:
        verifier.verify(request)
    else:
        with pytest.raises(SignatureError, match="freshness window"):
            verifier.verify(request)


def test_freshness_window_is_configurable() -> None:
    request = post(MESSAGES_URL, signed(INBOUND))
    carrier(now=NOW + 3000, tolerance_seconds=3600).verify(request)
    with pytest.raises(SignatureError, match="60 s"):
        carrier(now=NOW + 61, tolerance_seconds=60).verify(request)


def test_signature_made_with_another_secret_is_rejected() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        carrier().verify(post(MESSAGES_URL, signed(INBOUND, secret=OTHER_SECRET)))


def test_signature_made_with_another_method_is_rejected() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        carrier("md5hash").verify(post(MESSAGES_URL, signed(INBOUND, "sha256")))
    with pytest.raises(SignatureError, match="does not match"):
        carrier("sha512").verify(post(MESSAGES_URL, signed(INBOUND, "sha256")))


def test_previous_secret_is_accepted_during_rotation() -> None:
    request = post(MESSAGES_URL, signed(INBOUND, secret=OTHER_SECRET))
    carrier(secrets=(SECRET, OTHER_SECRET)).verify(request)
    with pytest.raises(SignatureError):
        carrier(secrets=(SECRET,)).verify(request)


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        (INBOUND, "missing sig"),
        ({**INBOUND, "sig": ""}, "missing sig"),
        ({**INBOUND, "sig": "   "}, "missing sig"),
        ({k: v for k, v in signed(INBOUND).items() if k != "timestamp"}, "missing timestamp"),
    ],
    ids=["absent", "empty", "blank", "no-timestamp"],
)
def test_missing_signature_parts_are_rejected(params: dict[str, str], reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        carrier().verify(post(MESSAGES_URL, params))


def test_signed_timestamp_that_is_not_a_unix_time_is_rejected() -> None:
    params = signed({**INBOUND, "timestamp": "2020-01-01"})
    with pytest.raises(SignatureError, match="Unix time"):
        carrier().verify(post(MESSAGES_URL, params))


def test_sig_in_the_url_of_a_post_is_not_read() -> None:
    params = signed(INBOUND)
    body = urlencode({k: v for k, v in params.items() if k != "sig"})
    request = WebhookRequest(
        "POST", f"{MESSAGES_URL}?sig={params['sig']}", {"content-type": FORM}, body.encode()
    )
    with pytest.raises(SignatureError, match="missing sig"):
        carrier().verify(request)


def test_repeated_parameter_is_rejected() -> None:
    body = urlencode(signed(INBOUND)) + "&text=" + "something+else"
    request = WebhookRequest("POST", MESSAGES_URL, {"content-type": FORM}, body.encode())
    with pytest.raises(PayloadError, match="unreadable"):  # a 400 with the reason, not a 403
        carrier().verify(request)


def test_non_ascii_signature_is_rejected() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        carrier().verify(post(MESSAGES_URL, {**INBOUND, "sig": "é" * 64}))


def test_no_configured_secret_rejects_everything() -> None:
    request = post(MESSAGES_URL, signed(INBOUND, "md5hash", secret=""))  # what an empty secret gives
    with pytest.raises(SignatureError, match="no Vonage signature secret"):
        carrier(secrets=()).verify(request)
    with pytest.raises(SignatureError, match="no Vonage signature secret"):
        carrier(secrets=("",)).verify(request)


# -- parsing ----------------------------------------------------------------------------------------


def parse(kind: WebhookKind, request: WebhookRequest) -> list[ParsedInbound | ParsedStatus]:
    return carrier().parse(kind, request)


@pytest.mark.parametrize("content_type", [FORM, JSON])
def test_parse_inbound_sms(content_type: str) -> None:
    [event] = parse(WebhookKind.MESSAGES, post(MESSAGES_URL, signed(INBOUND), content_type))
    assert isinstance(event, ParsedInbound)
    assert event.carrier == "vonage"
    assert event.carrier_message_id == "0A0000001A2B3C4D"
    assert (event.from_number, event.to_number) == ("+14155550100", "+15005550006")
    assert event.body == "Is order #1234 ready? \U0001f600 a&b=c + 100%"
    assert event.segments == 1
    assert event.concat is None
    assert event.opt_out is None  # the payload never says whether Vonage acted on a keyword
    assert event.received_at == datetime(2020, 1, 1, 12, 0, tzinfo=UTC)
    assert event.raw["keyword"] == "IS"
    assert event.media == ()


def test_parse_inbound_from_a_get() -> None:
    [event] = parse(WebhookKind.MESSAGES, get(MESSAGES_URL, INBOUND, in_query=False))
    assert isinstance(event, ParsedInbound)
    assert event.body == INBOUND["text"]


def test_short_codes_and_alphanumeric_senders_are_passed_through() -> None:
    params = {**INBOUND, "msisdn": "72345", "to": "AcmeInc"}
    [event] = parse(WebhookKind.MESSAGES, post(MESSAGES_URL, params))
    assert isinstance(event, ParsedInbound)
    assert (event.from_number, event.to_number) == ("72345", "AcmeInc")


def test_parse_concatenated_part() -> None:
    params = {**INBOUND, "concat": "true", "concat-ref": "108", "concat-total": "3", "concat-part": "2"}
    [event] = parse(WebhookKind.MESSAGES, post(MESSAGES_URL, params))
    assert isinstance(event, ParsedInbound)
    assert event.concat == ParsedConcat(ref="108", part=2, total=3)
    assert event.segments == 3


@pytest.mark.parametrize(
    "concat",
    [
        {"concat-total": "3", "concat-part": "2"},
        {"concat-ref": "1", "concat-total": "2", "concat-part": "3"},
        {"concat-ref": "1", "concat-total": "2", "concat-part": "0"},
        {"concat-ref": "1", "concat-total": "two", "concat-part": "1"},
        {"concat-ref": "1", "concat-total": "\u0663", "concat-part": "1"},  # an Arabic-Indic 3
        {"concat-ref": "1", "concat-total": "1_0", "concat-part": "1"},
        {"concat-ref": "1", "concat-total": "300", "concat-part": "1"},
    ],
)
def test_malformed_concat_is_a_payload_error(concat: dict[str, str]) -> None:
    params = {**INBOUND, "concat": "true", **concat}
    with pytest.raises(PayloadError, match="concat"):
        parse(WebhookKind.MESSAGES, post(MESSAGES_URL, params))


def test_binary_inbound_is_acknowledged_but_not_stored() -> None:
    params = {**INBOUND, "type": "binary", "data": "0011223344", "udh": "050003CC0201"}
    assert parse(WebhookKind.MESSAGES, post(MESSAGES_URL, params)) == []


@pytest.mark.parametrize("kind", list(WebhookKind))
def test_request_without_parameters_is_acknowledged_and_ignored(kind: WebhookKind) -> None:
    assert parse(kind, WebhookRequest("GET", MESSAGES_URL, {}, b"")) == []
    assert parse(kind, WebhookRequest("POST", MESSAGES_URL, {"content-type": JSON}, b"{}")) == []


STATUS_WORDS = [
    ("accepted", MessageStatus.SENT),
    ("buffered", MessageStatus.SENT),
    ("delivered", MessageStatus.DELIVERED),
    ("expired", MessageStatus.UNDELIVERED),
    ("failed", MessageStatus.UNDELIVERED),
    ("rejected", MessageStatus.FAILED),
    ("unknown", MessageStatus.UNDELIVERED),
]


def test_status_words_cover_the_documented_vocabulary() -> None:
    assert set(STATUS_MAP) == {word for word, _ in STATUS_WORDS}
    assert len(STATUS_MAP) == 7  # sms.yml DeliveryReceipt.status x-possible-values


@pytest.mark.parametrize(("word", "expected"), STATUS_WORDS)
def test_parse_every_status_word(word: str, expected: MessageStatus) -> None:
    [event] = parse(WebhookKind.STATUS, post(STATUS_URL, {**RECEIPT, "status": word.upper()}))
    assert isinstance(event, ParsedStatus)
    assert event.status is expected
    assert event.carrier_status == word
    assert event.carrier_message_id == "0B00000127FDBC63"
    assert event.error_code is None  # err-code 0 is "no error"
    assert event.error_message is None
    assert event.opted_out is False
    assert event.occurred_at == datetime(2020, 1, 1, 12, 1, 5, tzinfo=UTC)
    assert event.raw["client-ref"] == "msg-1"


def test_receipt_error_code_is_carried_and_explained() -> None:
    params = {**RECEIPT, "status": "failed", "err-code": "2"}
    [event] = parse(WebhookKind.STATUS, post(STATUS_URL, params, JSON))
    assert isinstance(event, ParsedStatus)
    assert (event.status, event.error_code) == (MessageStatus.UNDELIVERED, "2")
    assert (
        event.error_message
        == "the recipient's phone is unreachable for now (switched off or out of coverage)"
    )
    assert classify(event.error_code, None)[0] is FailureKind.TRANSIENT
    assert event.opted_out is False


@pytest.mark.parametrize("word", ["failed", "rejected"])
def test_receipt_err_code_9_means_opted_out(word: str) -> None:
    [event] = parse(WebhookKind.STATUS, post(STATUS_URL, {**RECEIPT, "status": word, "err-code": "9"}))
    assert isinstance(event, ParsedStatus)
    assert event.opted_out is True
    assert event.error_code == "9"
    assert classify("9", None) == (FailureKind.PERMANENT, "the recipient has opted out of texts from us")


def test_receipts_of_a_long_text_arrive_per_part_and_share_the_client_ref() -> None:
    """Each part has its own messageId and no part number; client-ref (our id) ties them together."""
    parts = [{**RECEIPT, "messageId": f"0B0000012{n}", "client-ref": "msg-77"} for n in (1, 2)]
    events = [parse(WebhookKind.STATUS, post(STATUS_URL, p))[0] for p in parts]
    assert [e.carrier_message_id for e in events] == ["0B00000121", "0B00000122"]
    assert {e.raw["client-ref"] for e in events} == {"msg-77"}
    assert all(isinstance(e, ParsedStatus) and e.client_ref == "msg-77" for e in events)
    assert all(isinstance(e, ParsedStatus) and e.part is None and e.parts is None for e in events)


def test_receipt_time_falls_back_to_scts() -> None:
    params = {k: v for k, v in RECEIPT.items() if k != "message-timestamp"}
    [event] = parse(WebhookKind.STATUS, post(STATUS_URL, params))
    assert event.kind == "status_update" and event.occurred_at == datetime(2020, 1, 1, 12, 1, tzinfo=UTC)


def test_events_kind_tells_receipts_from_texts() -> None:
    [receipt] = parse(WebhookKind.EVENTS, post(STATUS_URL, RECEIPT))
    [text] = parse(WebhookKind.EVENTS, post(MESSAGES_URL, INBOUND))
    assert isinstance(receipt, ParsedStatus) and isinstance(text, ParsedInbound)


def test_unknown_status_word_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="bounced"):
        parse(WebhookKind.STATUS, post(STATUS_URL, {**RECEIPT, "status": "bounced"}))


@pytest.mark.parametrize(
    ("kind", "params", "missing"),
    [
        (WebhookKind.STATUS, {k: v for k, v in RECEIPT.items() if k != "status"}, "status"),
        (WebhookKind.STATUS, {**RECEIPT, "messageId": " "}, "messageId"),
        (WebhookKind.MESSAGES, {k: v for k, v in INBOUND.items() if k != "messageId"}, "messageId"),
        (WebhookKind.MESSAGES, {k: v for k, v in INBOUND.items() if k != "msisdn"}, "msisdn"),
        (WebhookKind.MESSAGES, {**INBOUND, "to": ""}, "to"),
    ],
)
def test_missing_required_field_is_a_payload_error(
    kind: WebhookKind, params: dict[str, str], missing: str
) -> None:
    with pytest.raises(PayloadError, match=missing):
        parse(kind, post(MESSAGES_URL, params))


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (JSON, b"{not json"),
        (JSON, b"[1, 2]"),
        (JSON, b'{"messageId": {"nested": 1}}'),
        (JSON, b'{"messageId": "\\ud800"}'),
        (FORM, b"text=%FF%FE"),
        (FORM, b"\xff\xfe"),
        ("text/xml", b"<xml/>"),
        (FORM, b"messageId=1&messageId=2"),
        (FORM, b"&".join(b"k%d=v" % i for i in range(300))),
    ],
    ids=["bad-json", "array", "nested", "surrogate", "bad-escape", "bad-utf8", "xml", "repeated", "too-many"],
)
def test_malformed_body_is_a_payload_error(content_type: str, body: bytes) -> None:
    request = WebhookRequest("POST", MESSAGES_URL, {"content-type": content_type}, body)
    with pytest.raises(PayloadError):
        parse(WebhookKind.MESSAGES, request)


def test_ack_is_an_empty_204() -> None:
    for kind in WebhookKind:
        ack = carrier().ack(kind)
        assert (ack.status_code, ack.body) == (204, "")


# -- samples ----------------------------------------------------------------------------------------


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / name).read_text())
    return data


def sample_request(name: str, url: str) -> tuple[WebhookRequest, dict[str, str]]:
    data = sample(name)
    body = data["body"]
    raw = json.dumps(body) if isinstance(body, dict) else body
    params = body if isinstance(body, dict) else dict(parse_qsl(body, keep_blank_values=True))
    return WebhookRequest("POST", url, {"content-type": data["content_type"]}, raw.encode()), params


def test_every_sample_has_the_documented_shape() -> None:
    names = sorted(p.name for p in SAMPLES.glob("*.json"))
    assert {"inbound_sms.json", "status_delivered.json", "status_failed.json", "send_error.json"} <= set(
        names
    )
    for name in names:
        assert set(sample(name)) == {"description", "content_type", "body"}, name


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("inbound_sms.json", WebhookKind.MESSAGES),
        ("inbound_sms_part.json", WebhookKind.MESSAGES),
        ("status_delivered.json", WebhookKind.STATUS),
        ("status_failed.json", WebhookKind.STATUS),
    ],
)
def test_webhook_samples_verify_and_parse(name: str, kind: WebhookKind) -> None:
    request, params = sample_request(name, MESSAGES_URL)
    verifier = carrier("md5hash", secrets=(SIM_SECRET,), now=float(params["timestamp"]))
    verifier.verify(request)
    [event] = verifier.parse(kind, request)
    assert event.carrier_message_id == params["messageId"]
    if kind is WebhookKind.MESSAGES:
        assert isinstance(event, ParsedInbound)
        assert (event.from_number, event.to_number) == ("+14155550100", "+15005550006")
        assert event.body == params["text"]
        assert (event.concat is not None) == (name == "inbound_sms_part.json")
    else:
        assert isinstance(event, ParsedStatus)
        expected = {
            "status_delivered.json": (MessageStatus.DELIVERED, None),
            "status_failed.json": (MessageStatus.UNDELIVERED, "3"),
        }[name]
        assert (event.status, event.error_code) == expected


# -- sending against a local Vonage stand-in --------------------------------------------------------


carrier_api_server, fake = carrier_api_fixtures("fake")

TEXT = OutboundText(
    message_id="01JGZ7Q3K9V4X2M8N6P5R1T0AB",
    from_number="+15005550006",
    to_number="+14155550100",
    body="Your order #1234 is ready & waiting",
    status_callback_url="https://hooks.example.com/prod/webhooks/vonage/status",
)


def accepted(*ids: str) -> dict[str, Any]:
    return {
        "message-count": str(len(ids)),
        "messages": [
            {
                "to": "14155550100",
                "message-id": message_id,
                "status": "0",
                "remaining-balance": "3.14159265",
                "message-price": "0.00570000",
                "network": "310090",
                "client-ref": TEXT.message_id,
            }
            for message_id in ids
        ],
    }


def rejected(status: str, error_text: str) -> dict[str, Any]:
    return {"message-count": "1", "messages": [{"status": status, "error-text": error_text}]}


def send_via(
    fake: FakeCarrierApi, text: OutboundText = TEXT, timeout: float = 5.0
) -> SendAccepted | SendFailed:
    return carrier(api_base=fake.url, timeout=timeout).send(text)


def test_send_accepted_and_the_request_vonage_sees(fake: FakeCarrierApi) -> None:
    fake.json(200, accepted("0A0000000123ABCD1"))
    outcome = send_via(fake)
    assert outcome == SendAccepted(
        carrier_message_id="0A0000000123ABCD1", carrier_status="submitted", segments=1
    )
    [seen] = fake.seen
    assert (seen.method, seen.path, seen.mimetype) == ("POST", "/sms/json", FORM)
    assert seen.query == []  # credentials travel in the body, never in a logged URL
    assert seen.form == [
        ("api_key", API_KEY),
        ("api_secret", API_SECRET),
        ("from", "15005550006"),
        ("to", "14155550100"),
        ("text", "Your order #1234 is ready & waiting"),
        ("type", "text"),
        ("status-report-req", "true"),
        ("callback", "https://hooks.example.com/prod/webhooks/vonage/status"),
        ("client-ref", "01JGZ7Q3K9V4X2M8N6P5R1T0AB"),
    ]


def test_send_unicode_text_without_callback(fake: FakeCarrierApi) -> None:
    fake.json(200, accepted("0A01"))
    text = OutboundText("m2", "AcmeInc", "+447700900001", "Grüße \U0001f600")
    assert send_via(fake, text) == SendAccepted("0A01", "submitted", 1)
    form = dict(fake.seen[0].form)
    assert (form["from"], form["to"], form["type"]) == ("AcmeInc", "447700900001", "unicode")
    assert "callback" not in form


def test_long_text_returns_the_first_parts_id_the_part_count_and_every_parts_id(fake: FakeCarrierApi) -> None:
    fake.json(200, accepted("0A000001", "0A000002", "0A000003"))
    outcome = send_via(fake, OutboundText("m3", "+15005550006", "+14155550100", "x" * 400))
    assert outcome == SendAccepted("0A000001", "submitted", 3, part_ids=("0A000001", "0A000002", "0A000003"))


def test_message_id_too_long_for_client_ref_is_not_sent(fake: FakeCarrierApi) -> None:
    fake.json(200, accepted("0A02"))
    send_via(fake, OutboundText("m" * 41, "+15005550006", "+14155550100", "hi"))
    assert "client-ref" not in dict(fake.seen[0].form)


@pytest.mark.parametrize(
    ("status", "kind", "reason"),
    [
        ("1", FailureKind.TRANSIENT, "the carrier is throttling our sending rate; it will be retried"),
        ("2", FailureKind.PERMANENT, "our request to the carrier was missing a required field"),
        (
            "3",
            FailureKind.PERMANENT,
            "the carrier rejected the message details (often an invalid phone number)",
        ),
        (
            "4",
            FailureKind.PERMANENT,
            "the carrier rejected our credentials (check the Vonage API key and secret)",
        ),
        (
            "5",
            FailureKind.TRANSIENT,
            "the carrier had an internal error and did not send it; it will be retried",
        ),
        ("6", FailureKind.PERMANENT, "the number is not a valid or reachable phone number"),
        ("7", FailureKind.PERMANENT, "the number is barred from receiving texts"),
        ("9", FailureKind.PERMANENT, "our Vonage account has run out of credit"),
        ("15", FailureKind.PERMANENT, "our sending number is not allowed to send to this destination"),
        ("29", FailureKind.PERMANENT, "the Vonage trial account can only text numbers on its approved list"),
        ("33", FailureKind.PERMANENT, "the number has been deactivated"),
    ],
)
def test_http_200_with_a_failure_status_is_a_failure(
    fake: FakeCarrierApi, status: str, kind: FailureKind, reason: str
) -> None:
    fake.json(200, rejected(status, "Some error text"))
    outcome = send_via(fake)
    assert outcome == SendFailed(kind=kind, reason=reason, error_code=status, http_status=200)
    assert classify(status, 200) == (kind, reason)
    assert len(fake.seen) == 1  # never retried inside send: the retry function owns that


def test_unlisted_status_uses_vonages_error_text(fake: FakeCarrierApi) -> None:
    fake.json(200, rejected("42", "Something new went wrong"))
    outcome = send_via(fake)
    assert outcome == SendFailed(
        FailureKind.PERMANENT, "the carrier refused the message: Something new went wrong", "42", 200
    )


def test_partly_accepted_long_text_is_a_permanent_failure(fake: FakeCarrierApi) -> None:
    payload = accepted("0A000001", "0A000002")
    payload["messages"][1] = {"status": "1", "error-text": "Throughput Rate Exceeded"}
    fake.json(200, payload)
    outcome = send_via(fake)
    assert isinstance(outcome, SendFailed)
    assert (outcome.kind, outcome.error_code, outcome.http_status) == (FailureKind.PERMANENT, "1", 200)
    assert outcome.reason.startswith("the carrier sent only 1 of the 2 parts")


@pytest.mark.parametrize(
    ("http", "body", "kind"),
    [
        (429, "Too Many Requests", FailureKind.TRANSIENT),
        (500, "<html>Internal</html>", FailureKind.AMBIGUOUS),
        (503, '{"error": "unavailable"}', FailureKind.AMBIGUOUS),
        (401, '{"error": "unauthorized"}', FailureKind.PERMANENT),
        (400, "bad request", FailureKind.PERMANENT),
        (200, "not json", FailureKind.AMBIGUOUS),
        (200, '{"message-count": "1", "messages": []}', FailureKind.AMBIGUOUS),
        (200, '{"message-count": "1", "messages": [{"message-id": "x"}]}', FailureKind.AMBIGUOUS),
        (200, '{"message-count": "1", "messages": [{"status": "0"}]}', FailureKind.AMBIGUOUS),
    ],
    ids=["429", "500", "503", "401", "400", "not-json", "no-messages", "no-status", "no-id"],
)
def test_http_level_answers_are_classified(
    fake: FakeCarrierApi, http: int, body: str, kind: FailureKind
) -> None:
    fake.json(http, body)
    outcome = send_via(fake)
    assert isinstance(outcome, SendFailed)
    assert (outcome.kind, outcome.http_status, outcome.error_code) == (kind, http, None)
    assert len(fake.seen) == 1


def test_send_error_sample_classifies_permanent(fake: FakeCarrierApi) -> None:
    fake.json(200, sample("send_error.json")["body"])
    outcome = send_via(fake)
    assert isinstance(outcome, SendFailed)
    assert (outcome.kind, outcome.error_code, outcome.http_status) == (FailureKind.PERMANENT, "3", 200)


def test_redirect_is_not_followed(fake: FakeCarrierApi) -> None:
    fake.reply = lambda _r: Response(status=301, headers={"Location": "/elsewhere"})
    outcome = send_via(fake)
    assert isinstance(outcome, SendFailed)
    assert (outcome.kind, outcome.http_status) == (FailureKind.PERMANENT, 301)
    assert [s.path for s in fake.seen] == ["/sms/json"]


def test_read_timeout_after_the_request_arrived_is_ambiguous(fake: FakeCarrierApi) -> None:
    fake.slow(200, accepted("late"))
    outcome = send_via(fake, timeout=0.2)
    assert fake.received.wait(5)  # Vonage had the request: it may send the text
    assert isinstance(outcome, SendFailed)
    assert outcome.kind is FailureKind.AMBIGUOUS
    assert (outcome.error_code, outcome.http_status) == (None, None)


def test_connection_refused_is_transient() -> None:
    with refused_url() as url:
        outcome = carrier(api_base=url).send(TEXT)
    assert isinstance(outcome, SendFailed)
    assert outcome.kind is FailureKind.TRANSIENT
    assert outcome.reason == "could not reach the carrier; it will be retried"


def test_missing_api_secret_fails_without_calling_vonage(fake: FakeCarrierApi) -> None:
    outcome = carrier(api_base=fake.url, api_secret=lambda: "").send(TEXT)
    assert outcome == SendFailed(FailureKind.PERMANENT, "the Vonage API secret is not configured")
    assert fake.seen == []


def test_media_is_refused_without_calling_vonage(fake: FakeCarrierApi) -> None:
    text = OutboundText(
        "m4", "+15005550006", "+14155550100", "see photo", media_urls=("https://m.example/a.jpg",)
    )
    outcome = send_via(fake, text)
    assert outcome == SendFailed(
        FailureKind.PERMANENT, "this number's carrier (Vonage SMS) can't send pictures or files"
    )
    assert fake.seen == []  # never the text without its picture


def test_logs_mask_numbers_and_never_show_secrets(
    fake: FakeCarrierApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="parley")
    fake.json(200, rejected("3", "Invalid to address"))
    send_via(fake)
    fake.json(200, accepted("0A03"))
    send_via(fake)
    assert "+1********00" in caplog.text
    for secret in ("14155550100", API_SECRET, SECRET):
        assert secret not in caplog.text
    assert SECRET not in repr(carrier()) and API_SECRET not in repr(carrier())


def test_find_sent_refuses_to_guess() -> None:
    vonage = carrier()
    assert isinstance(vonage, SentLookup)
    with pytest.raises(VonageLookupUnavailable, match="no message search"):
        vonage.find_sent(TEXT, datetime(2020, 1, 1, tzinfo=UTC))


def test_classify_picks_the_table_by_context() -> None:
    assert classify("9", 200) == SEND_STATUS["9"]  # a send answer: out of credit
    assert classify("9", None) == RECEIPT_ERRORS["9"]  # a receipt: opted out
    assert classify("1", 200)[0] is FailureKind.TRANSIENT
    assert classify("3", None)[0] is FailureKind.PERMANENT
    assert classify("777", None) == (
        FailureKind.PERMANENT,
        "the carrier could not deliver the message (error 777)",
    )
    assert classify(None, 502)[0] is FailureKind.AMBIGUOUS
    assert classify(None, None)[0] is FailureKind.PERMANENT
    assert carrier().classify("2", None) == RECEIPT_ERRORS["2"]


# -- build --------------------------------------------------------------------------------------------

ENV = {
    "PARLEY_VONAGE_API_KEY": API_KEY,
    "PARLEY_VONAGE_API_SECRET": API_SECRET,
    "PARLEY_VONAGE_SIGNATURE_SECRET": SECRET,
    "PARLEY_VONAGE_SIGNATURE_METHOD": "sha256",
}


def test_build_from_environment(fake: FakeCarrierApi) -> None:
    vonage = build(CarrierConfig({**ENV, "PARLEY_VONAGE_API_BASE": fake.url}))
    assert (vonage.name, vonage.api_key, vonage.signature_method) == ("vonage", API_KEY, "sha256")
    assert vonage.tolerance_seconds == 300
    fake.json(200, accepted("0A04"))
    assert vonage.send(TEXT) == SendAccepted("0A04", "submitted", 1)
    assert ("api_secret", API_SECRET) in fake.seen[0].form
    fresh = {**INBOUND, "timestamp": str(int(datetime.now(UTC).timestamp()))}
    vonage.verify(post(MESSAGES_URL, signed(fresh)))


def test_build_through_the_registry() -> None:
    assert isinstance(build_carrier("vonage", CarrierConfig(ENV)), VonageSmsCarrier)


def test_build_defaults_to_md5hash_and_reads_ssm_only_on_first_use() -> None:
    reads: list[str] = []

    def ssm(name: str, region: str) -> str:
        reads.append(name)
        return SIM_SECRET

    env = {
        "PARLEY_VONAGE_API_KEY": API_KEY,
        "PARLEY_VONAGE_API_SECRET_PARAM": "/parley/dev/vonage/api-secret",
        "PARLEY_VONAGE_SIGNATURE_SECRET_PARAM": "/parley/dev/vonage/signature-secret",
        "PARLEY_VONAGE_SIGNATURE_SECRET_PREVIOUS": OTHER_SECRET,
        "PARLEY_VONAGE_SIGNATURE_TOLERANCE_SECONDS": "600",
    }
    vonage = build(CarrierConfig(env, ssm=ssm))
    assert (vonage.signature_method, vonage.tolerance_seconds) == ("md5hash", 600)
    assert reads == []  # nothing read at build: a cold webhook pays only for the secret it needs
    fresh = {**INBOUND, "timestamp": str(int(datetime.now(UTC).timestamp()))}
    vonage.verify(post(MESSAGES_URL, signed(fresh, "md5hash", SIM_SECRET)))
    vonage.verify(post(MESSAGES_URL, signed(fresh, "md5hash", OTHER_SECRET)))  # the previous secret
    assert reads == ["/parley/dev/vonage/signature-secret"]  # read once, then cached
    with pytest.raises(SignatureError):
        vonage.verify(post(MESSAGES_URL, signed(fresh, "md5hash", SECRET)))


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("PARLEY_VONAGE_API_KEY", "PARLEY_VONAGE_API_KEY is not set"),
        ("PARLEY_VONAGE_API_SECRET", "PARLEY_VONAGE_API_SECRET or PARLEY_VONAGE_API_SECRET_PARAM"),
        (
            "PARLEY_VONAGE_SIGNATURE_SECRET",
            "PARLEY_VONAGE_SIGNATURE_SECRET or PARLEY_VONAGE_SIGNATURE_SECRET_PARAM",
        ),
    ],
)
def test_missing_credential_is_a_clear_error_at_build(missing: str, message: str) -> None:
    env = {k: v for k, v in ENV.items() if k != missing}
    with pytest.raises(VonageConfigError, match=message):
        build(CarrierConfig(env))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PARLEY_VONAGE_SIGNATURE_METHOD", "sha3"),
        ("PARLEY_VONAGE_SIGNATURE_TOLERANCE_SECONDS", "soon"),
        ("PARLEY_VONAGE_SIGNATURE_TOLERANCE_SECONDS", "0"),
    ],
)
def test_invalid_option_is_a_clear_error_at_build(name: str, value: str) -> None:
    with pytest.raises(VonageConfigError, match=name):
        build(CarrierConfig({**ENV, name: value}))


def test_empty_secret_from_ssm_fails_at_verify() -> None:
    env = {k: v for k, v in ENV.items() if k != "PARLEY_VONAGE_SIGNATURE_SECRET"}
    env["PARLEY_VONAGE_SIGNATURE_SECRET_PARAM"] = "/parley/dev/vonage/signature-secret"
    vonage = build(CarrierConfig(env, ssm=lambda _name, _region: ""))
    with pytest.raises(SignatureError, match="no Vonage signature secret configured"):
        vonage.verify(post(MESSAGES_URL, signed(INBOUND)))


# -- fuzz -------------------------------------------------------------------------------------------

FIELD_NAMES = sorted({*INBOUND, *RECEIPT, "concat", "concat-ref", "concat-total", "concat-part", "sig"})
CONTENT_TYPES = [FORM, JSON, "", "text/plain", "application/x-www-form-urlencoded; charset=UTF-8"]
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

plausible_fields = st.dictionaries(
    st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=12)),
    st.one_of(
        st.text(max_size=40),
        st.sampled_from(["true", "0", "9", "-1", "1577880000", "delivered", "binary", "", " "]),
        st.integers(-(10**6), 10**6).map(str),
    ),
    max_size=20,
)


def encoded(params: dict[str, str], shape: str) -> WebhookRequest:
    if shape == "get":
        return get(MESSAGES_URL, params)
    return post(MESSAGES_URL, params, JSON if shape == "json" else FORM)


def only(expected: type[Exception] | tuple[type[Exception], ...], call: Callable[[], object]) -> None:
    """Run `call`; any exception but `expected` fails the test."""
    with contextlib.suppress(expected):
        call()


@FUZZ
@given(
    body=st.binary(max_size=300),
    content_type=st.sampled_from(CONTENT_TYPES),
    method=st.sampled_from(["POST", "GET"]),
    kind=st.sampled_from(list(WebhookKind)),
)
def test_parse_and_verify_raise_only_their_errors_for_any_bytes(
    body: bytes, content_type: str, method: str, kind: WebhookKind
) -> None:
    request = WebhookRequest(method, MESSAGES_URL + "?x=%FF", {"content-type": content_type}, body)
    only(PayloadError, lambda: carrier().parse(kind, request))
    only((SignatureError, PayloadError), lambda: carrier().verify(request))


@FUZZ
@given(
    params=plausible_fields,
    shape=st.sampled_from(["form", "json", "get"]),
    kind=st.sampled_from(list(WebhookKind)),
)
def test_parse_and_verify_raise_only_their_errors_for_plausible_payloads(
    params: dict[str, str], shape: str, kind: WebhookKind
) -> None:
    request = encoded({**INBOUND, **params} if len(params) % 2 else params, shape)
    only(PayloadError, lambda: carrier().parse(kind, request))
    if not params:  # the empty reachability check is acknowledged, signed or not
        carrier().verify(request)
        return
    with pytest.raises((SignatureError, PayloadError)):
        carrier().verify(request)


@FUZZ
@given(
    params=st.dictionaries(
        st.text(min_size=1, max_size=12).filter(lambda k: k not in ("sig", "timestamp")),
        st.text(max_size=40),
        max_size=12,
    ),
    method=st.sampled_from(HMAC_METHODS),
    shape=st.sampled_from(["form", "json", "get"]),
)
def test_any_parameters_signed_by_the_sdk_are_accepted(
    params: dict[str, str], method: str, shape: str
) -> None:
    request = encoded(signed({**params, "timestamp": "1577880000"}, method), shape)
    carrier(method).verify(request)


# -- receipts at the wrong URL, unreadable bodies, the reachability check --------------------------


def test_a_receipt_posted_to_the_inbound_url_is_refused_not_stored_as_an_empty_text() -> None:
    fields = {
        "messageId": "0A1",
        "msisdn": "14155558101",
        "to": "15005550006",
        "status": "delivered",
        "err-code": "0",
        "scts": "2611281400",
        "timestamp": "1577880000",
    }
    request = post(MESSAGES_URL, signed(fields))
    carrier().verify(request)
    with pytest.raises(PayloadError, match="delivery receipt arrived at the inbound"):
        carrier().parse(WebhookKind.MESSAGES, request)


def test_an_unsupported_content_type_is_a_payload_problem_not_a_forgery() -> None:
    request = WebhookRequest("POST", MESSAGES_URL, {"content-type": "text/xml"}, b"<x/>")
    with pytest.raises(PayloadError, match="unsupported content type"):
        carrier().verify(request)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_the_empty_reachability_check_is_acknowledged(method: str) -> None:
    request = WebhookRequest(method, MESSAGES_URL, {}, b"")
    carrier().verify(request)
    assert carrier().parse(WebhookKind.MESSAGES, request) == []
