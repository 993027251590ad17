"""The Bandwidth plugin against independent Basic-auth encoders and a local HTTP stand-in for its API.

There is no Bandwidth SDK among the test dependencies, and Bandwidth's only callback authenticity is
HTTP Basic (no HMAC, no timestamp, so no "stale" case exists). The accepted headers are therefore
built with the standard library and with requests' and urllib3's own Basic encoders, and checked
against the published vector in carriers.md section 11. Sends go over real sockets to a werkzeug
server on 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3.util
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.wrappers import Response

from parley.carriers.bandwidth import (
    ERROR_CODES,
    BandwidthCarrier,
    BandwidthLookupError,
    build,
    classify_error,
)
from parley.carriers.base import (
    FailureKind,
    OutboundText,
    ParsedInbound,
    ParsedMedia,
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
from parley.domain.vocabulary import MessageStatus
from tests.carrier_api import FakeCarrierApi, carrier_api_fixtures, hanging_up_after_the_request, refused_url

ACCOUNT = "9900000"
API_USER = "parley-api-user"
API_PASSWORD = "api-pass-0123456789"
APP_ID = "93de2206-9669-4e07-948d-329f4b722ee2"
CB_USER = "bw-callback-user"  # carriers.md section 11
CB_PASSWORD = "bw-callback-pass"
PUBLISHED_HEADER = "Basic YnctY2FsbGJhY2stdXNlcjpidy1jYWxsYmFjay1wYXNz"
URL = "https://abc123xyz.execute-api.us-east-1.amazonaws.com/prod/webhooks/bandwidth/events"
OURS = "+15005550006"
CUSTOMER = "+14155550100"
EVENTS_DIR = Path(__file__).resolve().parents[2] / "events" / "carriers" / "bandwidth"


def carrier(
    *,
    callback_passwords: tuple[str, ...] = (CB_PASSWORD,),
    callback_username: str = CB_USER,
    api_base: str = "http://127.0.0.1:9",
    timeout: float = 5.0,
    password: str = API_PASSWORD,
) -> BandwidthCarrier:
    return BandwidthCarrier(
        account_id=ACCOUNT,
        username=API_USER,
        password=password,
        application_id=APP_ID,
        callback_username=callback_username,
        callback_passwords=callback_passwords,
        api_base=api_base,
        timeout=timeout,
    )


def stdlib_basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def requests_basic(user: str, password: str) -> str:
    """The header requests' own HTTPBasicAuth puts on a request (an encoder we didn't write)."""
    prepared = requests.Request("POST", URL).prepare()
    requests.auth.HTTPBasicAuth(user, password)(prepared)
    return str(prepared.headers["Authorization"])


def urllib3_basic(user: str, password: str) -> str:
    return str(urllib3.util.make_headers(basic_auth=f"{user}:{password}")["authorization"])


def webhook(body: bytes | str | list[Any], authorization: str | None = PUBLISHED_HEADER) -> WebhookRequest:
    raw = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
    headers = {"content-type": "application/json; charset=utf-8", "user-agent": "BandwidthAPI/v2"}
    if authorization is not None:
        headers["authorization"] = authorization
    return WebhookRequest(method="POST", url=URL, headers=headers, body=raw)


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS_DIR / name).read_text())
    return loaded


def sample_request(name: str) -> WebhookRequest:
    return webhook(json.dumps(sample(name)["body"]).encode())


# -- authenticity ---------------------------------------------------------------------------------


def test_published_vector_and_independent_encoders_agree_and_are_accepted() -> None:
    assert stdlib_basic(CB_USER, CB_PASSWORD) == PUBLISHED_HEADER
    assert requests_basic(CB_USER, CB_PASSWORD) == PUBLISHED_HEADER
    assert urllib3_basic(CB_USER, CB_PASSWORD) == PUBLISHED_HEADER
    carrier().verify(webhook(sample("inbound_sms.json")["body"], PUBLISHED_HEADER))


@pytest.mark.parametrize(
    ("user", "password"),
    [("u", "p"), ("callbacks", "pässwörd-ünïcode"), ("bw", "has:colons:inside"), ("bw", "x" * 200)],
)
def test_headers_from_requests_are_accepted(user: str, password: str) -> None:
    header = requests_basic(user, password)
    carrier(callback_username=user, callback_passwords=(password,)).verify(webhook([], header))


def test_non_ascii_credentials_are_accepted_in_utf8_and_latin1() -> None:
    user, password = "callbacks", "pässwörd"
    utf8 = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    latin1 = "Basic " + base64.b64encode(f"{user}:{password}".encode("latin-1")).decode()
    assert utf8 != latin1
    for header in (utf8, latin1):
        carrier(callback_username=user, callback_passwords=(password,)).verify(webhook([], header))


def test_scheme_is_case_insensitive_and_whitespace_is_tolerated() -> None:
    token = PUBLISHED_HEADER.split(" ", 1)[1]
    carrier().verify(webhook([], f"basic {token}"))
    carrier().verify(webhook([], f"  BASIC   {token}  "))


def test_previous_password_is_accepted_during_rotation() -> None:
    old = stdlib_basic(CB_USER, "old-callback-pass")
    carrier(callback_passwords=(CB_PASSWORD, "old-callback-pass")).verify(webhook([], old))
    with pytest.raises(SignatureError, match="wrong"):
        carrier().verify(webhook([], old))


@pytest.mark.parametrize(
    ("header", "words"),
    [
        (None, "missing"),
        ("", "missing"),
        ("Bearer " + PUBLISHED_HEADER.split(" ", 1)[1], "not HTTP Basic"),
        ("Basic", "not HTTP Basic"),
        ("Basic    ", "not HTTP Basic"),
        ("Basic not*base64!", "malformed"),
        ("Basic YnctY2FsbGJhY2stdXNlcjpidy1jYWxsYmFjay1wYXN", "malformed"),  # one character short
        ("Basic ÿÿÿÿ", "malformed"),
        (stdlib_basic(CB_USER, "bw-callback-pasS"), "wrong"),  # one byte altered
        (stdlib_basic("bw-callback-usex", CB_PASSWORD), "wrong"),
        (stdlib_basic(CB_USER, ""), "wrong"),
        (stdlib_basic("", CB_PASSWORD), "wrong"),
        ("Basic " + base64.b64encode(CB_USER.encode()).decode(), "wrong"),  # no colon at all
        (stdlib_basic(CB_USER, CB_PASSWORD + " "), "wrong"),
        (stdlib_basic(CB_USER.upper(), CB_PASSWORD), "wrong"),
    ],
)
def test_forged_altered_and_missing_credentials_are_rejected(header: str | None, words: str) -> None:
    with pytest.raises(SignatureError, match=words) as caught:
        carrier().verify(webhook([], header))
    assert CB_PASSWORD not in str(caught.value)


def test_one_altered_byte_anywhere_in_the_token_is_rejected() -> None:
    token = PUBLISHED_HEADER.split(" ", 1)[1]
    for position in range(len(token) - 1):  # the last character carries padding bits only partly
        flipped = "A" if token[position] != "A" else "B"
        altered = token[:position] + flipped + token[position + 1 :]
        with pytest.raises(SignatureError):
            carrier().verify(webhook([], "Basic " + altered))


@pytest.mark.parametrize(
    ("username", "passwords"), [("", (CB_PASSWORD,)), (CB_USER, ()), (CB_USER, ("",)), ("", ())]
)
def test_missing_callback_credentials_reject_everything_and_say_so(
    username: str, passwords: tuple[str, ...]
) -> None:
    empty_header = stdlib_basic(username, passwords[0] if passwords else "")
    with pytest.raises(SignatureError, match="PARLEY_BANDWIDTH_CALLBACK_PASSWORD"):
        carrier(callback_username=username, callback_passwords=passwords).verify(webhook([], empty_header))


def test_uppercase_header_names_are_not_looked_up() -> None:
    """WebhookRequest promises lower-cased names; the plugin relies on that."""
    request = WebhookRequest(method="POST", url=URL, headers={"Authorization": PUBLISHED_HEADER}, body=b"[]")
    with pytest.raises(SignatureError, match="missing"):
        carrier().verify(request)


# -- parsing --------------------------------------------------------------------------------------


def parse(body: bytes | str | list[Any], kind: WebhookKind = WebhookKind.EVENTS) -> list[Any]:
    return list(carrier().parse(kind, webhook(body)))


def test_parse_inbound_sms_sample() -> None:
    [event] = carrier().parse(WebhookKind.EVENTS, sample_request("inbound_sms.json"))
    assert isinstance(event, ParsedInbound)
    assert event.carrier == "bandwidth"
    assert event.carrier_message_id == "1795838400123x7kq2m9w1v8b3npz"
    assert (event.from_number, event.to_number) == (CUSTOMER, OURS)
    assert event.body == "Hi! Is order #1234 ready? \U0001f600"
    assert event.media == ()
    assert event.segments == 1
    assert event.received_at == datetime(2026, 11, 28, 4, 0, 0, 123000, tzinfo=UTC)
    assert event.opt_out is None and event.concat is None
    assert event.raw == sample("inbound_sms.json")["body"][0]
    assert json.loads(json.dumps(event.to_wire()))["kind"] == "inbound_message"


def test_parse_inbound_mms_sample() -> None:
    [event] = carrier().parse(WebhookKind.EVENTS, sample_request("inbound_mms.json"))
    assert isinstance(event, ParsedInbound)
    base = "https://messaging.bandwidth.com/api/v2/users/9900000/media/1795838470456a2b4c6d8e0f1g3h5"
    assert event.media == (ParsedMedia(f"{base}/0/IMG_0042.jpg"), ParsedMedia(f"{base}/1/box.png"))
    assert event.body == "Here is the damaged box"


def inbound_event(**message: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "m-in-1",
        "owner": OURS,
        "time": "2026-11-28T04:00:00Z",
        "to": [OURS],
        "from": CUSTOMER,
        "text": "hello",
        "direction": "in",
        "segmentCount": 1,
    }
    base.update(message)
    return {"type": "message-received", "time": "2026-11-28T04:00:01Z", "to": OURS, "message": base}


def test_group_text_is_threaded_to_the_owner_copy() -> None:
    second_number = "+15005550007"
    event = inbound_event(owner=second_number, to=[OURS, second_number, "+14155550199"])
    [parsed] = parse([event])
    assert isinstance(parsed, ParsedInbound)
    assert parsed.to_number == second_number


@pytest.mark.parametrize(
    ("changes", "top_to", "expected"),
    [
        ({"owner": None}, OURS, OURS),
        ({"owner": ""}, "+15005550009", "+15005550009"),
        ({"owner": None}, None, OURS),  # message.to[0]
    ],
)
def test_inbound_to_number_falls_back_to_event_to_then_message_to(
    changes: dict[str, Any], top_to: str | None, expected: str
) -> None:
    event = inbound_event(**changes)
    event["to"] = top_to
    [parsed] = parse([event])
    assert isinstance(parsed, ParsedInbound)
    assert parsed.to_number == expected


def test_numbers_are_passed_through_as_written() -> None:
    [parsed] = parse([inbound_event(**{"from": " 4155550100 ", "owner": "12345"})])
    assert isinstance(parsed, ParsedInbound)
    assert (parsed.from_number, parsed.to_number) == ("4155550100", "12345")


def test_stop_is_a_normal_inbound_text_because_bandwidth_does_not_act_on_it() -> None:
    [parsed] = parse([inbound_event(text="STOP")])
    assert isinstance(parsed, ParsedInbound)
    assert parsed.body == "STOP" and parsed.opt_out is None


def test_inbound_leniency_for_optional_fields() -> None:
    event = inbound_event(text=None, segmentCount="many", time="yesterday", media=["https://m/1.jpg", 7, ""])
    event["time"] = "2026-11-28T04:00:09+02:00"
    [parsed] = parse([event])
    assert isinstance(parsed, ParsedInbound)
    assert parsed.body == ""
    assert parsed.segments is None
    assert parsed.media == (ParsedMedia("https://m/1.jpg"),)
    assert parsed.received_at == datetime(2026, 11, 28, 2, 0, 9, tzinfo=UTC)  # the event's time, in UTC


def status_event(event_type: str, error_code: object = None, **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": event_type,
        "time": "2026-11-28T04:05:02.979Z",
        "description": "ok",
        "to": CUSTOMER,
        "message": {
            "id": "m-out-1",
            "owner": OURS,
            "applicationId": APP_ID,
            "time": "2026-11-28T04:05:00.811Z",
            "segmentCount": 2,
            "direction": "out",
            "to": [CUSTOMER],
            "from": OURS,
            "text": "",
            "tag": "msg-1",
        },
    }
    if error_code is not None:
        event["errorCode"] = error_code
    event.update(extra)
    return event


STATUS_WORDS = [
    ("message-sending", MessageStatus.SENDING),
    ("message-sent", MessageStatus.SENT),
    ("message-delivered", MessageStatus.DELIVERED),
    ("message-failed", MessageStatus.FAILED),
    ("message-read", MessageStatus.READ),
]


@pytest.mark.parametrize(("word", "expected"), STATUS_WORDS)
def test_parse_every_status_word(word: str, expected: MessageStatus) -> None:
    [parsed] = parse([status_event(word)])
    assert isinstance(parsed, ParsedStatus)
    assert parsed.status is expected
    assert parsed.carrier_status == word
    assert parsed.carrier_message_id == "m-out-1"
    assert (parsed.error_code, parsed.opted_out) == (None, False)
    assert (parsed.part, parsed.parts) == (None, None)  # Bandwidth reports per message, not per segment
    assert parsed.occurred_at == datetime(2026, 11, 28, 4, 5, 2, 979000, tzinfo=UTC)
    assert parsed.raw["message"]["tag"] == "msg-1"


def test_read_receipt_uses_the_time_it_was_read() -> None:
    [parsed] = parse([status_event("message-read", eventTime="2026-11-28T05:00:00Z")])
    assert isinstance(parsed, ParsedStatus)
    assert parsed.occurred_at == datetime(2026, 11, 28, 5, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        (4432, MessageStatus.FAILED, FailureKind.PERMANENT),  # Bandwidth refused: never sent
        (4470, MessageStatus.FAILED, FailureKind.PERMANENT),
        (5100, MessageStatus.FAILED, FailureKind.TRANSIENT),
        (4720, MessageStatus.UNDELIVERED, FailureKind.PERMANENT),  # the recipient's carrier refused
        (4702, MessageStatus.UNDELIVERED, FailureKind.TRANSIENT),
        (5600, MessageStatus.UNDELIVERED, FailureKind.TRANSIENT),
        (9902, MessageStatus.UNDELIVERED, FailureKind.PERMANENT),
        ("4750", MessageStatus.UNDELIVERED, FailureKind.PERMANENT),
    ],
)
def test_failed_receipts_carry_the_code_and_a_reason_a_person_can_read(
    code: object, status: MessageStatus, kind: FailureKind
) -> None:
    [parsed] = parse([status_event("message-failed", code, description="forbidden-to-country")])
    assert isinstance(parsed, ParsedStatus)
    assert parsed.status is status
    assert parsed.error_code == str(code)
    assert parsed.error_message == classify_error(str(code), None)[1]  # not Bandwidth's slug
    assert parsed.error_message != "forbidden-to-country"
    assert classify_error(parsed.error_code, None)[0] is kind
    assert parsed.opted_out is False


def test_opt_out_code_marks_the_receipt() -> None:
    [parsed] = parse(
        [status_event("message-failed", 4775, description="destination-rejected-due-to-user-opt-out")]
    )
    assert isinstance(parsed, ParsedStatus)
    assert parsed.opted_out is True
    assert parsed.status is MessageStatus.UNDELIVERED
    assert "opted out" in classify_error(parsed.error_code, None)[1]


@pytest.mark.parametrize("code", [None, 0, "", True, 1.5, [4720]])
def test_failed_without_a_usable_code_is_failed_without_one(code: object) -> None:
    event = status_event("message-failed", description="something")
    if code is not None:
        event["errorCode"] = code
    [parsed] = parse([event])
    assert isinstance(parsed, ParsedStatus)
    assert (parsed.status, parsed.error_code) == (MessageStatus.FAILED, None)


def test_status_samples_parse() -> None:
    [delivered] = carrier().parse(WebhookKind.EVENTS, sample_request("status_delivered.json"))
    assert isinstance(delivered, ParsedStatus)
    assert (delivered.carrier_message_id, delivered.status) == (
        "1795838700811p0o9i8u7y6t5r4e3",
        MessageStatus.DELIVERED,
    )
    [failed] = carrier().parse(WebhookKind.EVENTS, sample_request("status_failed.json"))
    assert isinstance(failed, ParsedStatus)
    assert (failed.status, failed.error_code) == (MessageStatus.UNDELIVERED, "4720")
    assert classify_error(failed.error_code, None) == ERROR_CODES["4720"]


def test_send_error_sample_classifies_permanent() -> None:
    document = sample("send_error.json")
    outcome = _outcome_for(document["http_status"], document["body"])
    assert outcome == SendFailed(
        FailureKind.PERMANENT, "the number is not a valid phone number", "request-validation", 400
    )


def test_every_sample_names_its_content_type_and_describes_itself() -> None:
    names = sorted(p.name for p in EVENTS_DIR.glob("*.json"))
    assert names == [
        "inbound_mms.json",
        "inbound_sms.json",
        "send_error.json",
        "status_delivered.json",
        "status_failed.json",
    ]
    for name in names:
        document = sample(name)
        assert document["content_type"].startswith("application/json")
        assert document["description"]


def test_several_events_in_one_callback_keep_their_order_and_skip_unknown_types() -> None:
    body = [
        status_event("message-sending"),
        {"type": "requested-location-response", "message": {"id": "x"}},
        inbound_event(),
        {"type": "suggestion-response", "time": "2026-11-28T04:00:00Z"},
        status_event("message-delivered"),
    ]
    parsed = parse(body)
    assert [type(p).__name__ for p in parsed] == ["ParsedStatus", "ParsedInbound", "ParsedStatus"]
    assert [getattr(p, "carrier_status", "in") for p in parsed] == [
        "message-sending",
        "in",
        "message-delivered",
    ]


@pytest.mark.parametrize(
    "body",
    [[], [{"type": "message-foo", "message": {}}], [{"type": "suggestion-response"}]],
)
def test_events_we_do_not_use_give_no_events(body: list[Any]) -> None:
    assert parse(body) == []


@pytest.mark.parametrize("kind", list(WebhookKind))
def test_parse_does_not_depend_on_the_webhook_kind(kind: WebhookKind) -> None:
    parsed = parse([inbound_event(), status_event("message-delivered")], kind)
    assert [type(p) for p in parsed] == [ParsedInbound, ParsedStatus]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"", "JSON"),
        (b"{not json", "JSON"),
        (b"\xff\xfe\x00garbage", "JSON"),
        (b"[" * 100_000, "JSON"),
        (b'{"type": "message-received"}', "array"),
        (b'"text"', "array"),
        (b"[1]", "not an object"),
        (b'[{"message": {}}]', "no type"),
        (b'[{"type": 5}]', "no type"),
        (b'[{"type": "message-delivered"}]', "no message"),
        (b'[{"type": "message-delivered", "message": ["m"]}]', "no message"),
        (b'[{"type": "message-delivered", "message": {"id": ""}}]', "message.id"),
        (b'[{"type": "message-received", "message": {"id": "m", "owner": "+1"}}]', "message.from"),
        (b'[{"type": "message-received", "message": {"id": "m", "from": "+1"}}]', "owner or to"),
        (
            b'[{"type": "message-received", "message": {"id": "m", "from": "+1", "owner": "+2", "text": 5}}]',
            "text",
        ),
        (b"[" + b"{}," * 1000 + b"{}]", "more than"),
    ],
)
def test_malformed_bodies_are_payload_errors(body: bytes, words: str) -> None:
    with pytest.raises(PayloadError, match=words):
        parse(body)


def test_ack_is_an_empty_200_for_every_kind() -> None:
    for kind in WebhookKind:
        ack = carrier().ack(kind)
        assert (ack.status_code, ack.body, ack.content_type) == (200, "", "text/plain")


# -- fuzzing ----------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
texts_or_any = st.one_of(st.text(max_size=30), json_values)


def mostly(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually a well-formed value, sometimes any JSON value: most events get deep into the parser."""
    return st.integers(min_value=0, max_value=7).flatmap(lambda pick: json_values if pick == 0 else good)


numbers = st.from_regex(r"\+?[0-9]{3,15}", fullmatch=True)
timestamps = st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat())
messages = st.fixed_dictionaries(
    {"id": mostly(st.text(min_size=1, max_size=30)), "from": mostly(numbers), "owner": mostly(numbers)},
    optional={
        "to": st.one_of(st.lists(texts_or_any, max_size=3), texts_or_any),
        "text": mostly(st.text(max_size=40)),
        "media": st.one_of(st.lists(mostly(st.text(max_size=40)), max_size=3), texts_or_any),
        "segmentCount": mostly(st.integers(min_value=0, max_value=20)),
        "time": mostly(timestamps),
        "direction": st.sampled_from(["in", "out"]),
        "tag": texts_or_any,
    },
)
events = st.fixed_dictionaries(
    {
        "type": mostly(
            st.sampled_from(["message-received", *(w for w, _ in STATUS_WORDS), "suggestion-response"])
        ),
        "message": mostly(messages),
    },
    optional={
        "time": mostly(timestamps),
        "eventTime": mostly(timestamps),
        "to": mostly(numbers),
        "errorCode": mostly(st.integers(min_value=0, max_value=9999)),
        "description": texts_or_any,
    },
)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_fuzz_parse_arbitrary_bytes_raises_only_payload_error(body: bytes) -> None:
    try:
        result = carrier().parse(WebhookKind.EVENTS, webhook(body))
    except PayloadError:
        return
    assert all(isinstance(e, ParsedInbound | ParsedStatus) for e in result)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.lists(events, max_size=4), st.lists(events, max_size=4), json_values))
def test_fuzz_parse_plausible_payloads_raises_only_payload_error(body: Any) -> None:
    raw = json.dumps(body).encode()
    try:
        result = carrier().parse(WebhookKind.EVENTS, webhook(raw))
    except PayloadError:
        return
    for event in result:
        assert isinstance(event, ParsedInbound | ParsedStatus)
        assert event.carrier_message_id
        assert event.to_wire()["carrier"] == "bandwidth"


basic_headers = st.one_of(
    st.none(),
    st.text(max_size=80),
    st.binary(max_size=60).map(lambda b: "Basic " + base64.b64encode(b).decode()),
    st.tuples(st.text(max_size=20), st.text(max_size=20)).map(lambda up: stdlib_basic(*up)),
    st.text(max_size=60).map(lambda t: "Basic " + t),
)


@settings(max_examples=200, deadline=None)
@given(basic_headers, st.binary(max_size=64))
def test_fuzz_verify_raises_only_signature_error(header: str | None, body: bytes) -> None:
    with pytest.raises(SignatureError):
        carrier().verify(webhook(body, header))


# -- sending against a local Bandwidth stand-in -------------------------------------------------------


carrier_api_server, fake = carrier_api_fixtures("fake")

TEXT = OutboundText(
    message_id="msg_01JDX3Q4P2A7W9K5M8N6R3T1V0",
    from_number=OURS,
    to_number=CUSTOMER,
    body="Your order #1234 is ready & waiting \u2014 caf\u00e9 \U0001f600",
    status_callback_url="https://hooks.example.com/ignored-by-bandwidth",
)
MESSAGES_PATH = f"/api/v2/users/{ACCOUNT}/messages"


def send_via(
    fake: FakeCarrierApi, text: OutboundText = TEXT, timeout: float = 5.0
) -> SendAccepted | SendFailed:
    return carrier(api_base=fake.url, timeout=timeout).send(text)


def accepted_body(message_id: str = "1795838700811p0o9i8u7y6t5r4e3", **extra: Any) -> dict[str, Any]:
    return {
        "id": message_id,
        "owner": OURS,
        "applicationId": APP_ID,
        "time": "2026-11-28T04:05:00.811Z",
        "segmentCount": 2,
        "direction": "out",
        "to": [CUSTOMER],
        "from": OURS,
        "text": TEXT.body,
        "tag": TEXT.message_id,
        **extra,
    }


def test_send_accepted_and_the_request_bandwidth_sees(fake: FakeCarrierApi) -> None:
    fake.json(202, accepted_body())
    outcome = send_via(fake)
    assert outcome == SendAccepted("1795838700811p0o9i8u7y6t5r4e3", "accepted", 2)
    [seen] = fake.seen
    assert (seen.method, seen.path, seen.query) == ("POST", MESSAGES_PATH, [])
    assert (seen.username, seen.password) == (API_USER, API_PASSWORD)
    assert seen.headers["content-type"] == "application/json; charset=utf-8"
    assert seen.headers["accept"] == "application/json"
    assert not any("idempotency" in name for name in seen.headers)  # Bandwidth has none
    assert seen.json == {
        "applicationId": APP_ID,
        "to": [CUSTOMER],
        "from": OURS,
        "text": TEXT.body,
        "tag": TEXT.message_id,  # our id comes back in every receipt
    }


def test_send_with_media(fake: FakeCarrierApi) -> None:
    fake.json(202, accepted_body(segmentCount=1))
    text = replace(TEXT, body="", media_urls=("https://m.example/a.jpg", "https://m.example/b.png"))
    assert send_via(fake, text) == SendAccepted("1795838700811p0o9i8u7y6t5r4e3", "accepted", 1)
    body = fake.seen[0].json
    assert body["media"] == ["https://m.example/a.jpg", "https://m.example/b.png"]
    assert body["text"] == ""


def _outcome_for(status: int, payload: Any) -> SendAccepted | SendFailed:
    """What send makes of one HTTP answer (no server: used for the committed sample)."""
    from parley.carriers.bandwidth import _send_outcome

    return _send_outcome(status, payload if isinstance(payload, dict) else {})


@pytest.mark.parametrize(
    ("status", "payload", "kind", "reason", "code"),
    [
        (
            400,
            {
                "type": "request-validation",
                "description": "Your request could not be accepted",
                "fieldErrors": [
                    {"fieldName": "to", "description": "'+1415' must be replaced with a valid E164 number"}
                ],
            },
            FailureKind.PERMANENT,
            "the number is not a valid phone number",
            "request-validation",
        ),
        (
            400,
            {"type": "request-validation", "description": "x", "fieldErrors": [{"fieldName": "from"}]},
            FailureKind.PERMANENT,
            "our sending number is not valid for this Bandwidth account",
            "request-validation",
        ),
        (
            400,
            {"type": "request-validation", "description": "applicationId is invalid"},
            FailureKind.PERMANENT,
            "carrier rejected the message: applicationId is invalid",
            "request-validation",
        ),
        (
            401,
            {"type": "unauthorized", "description": "Authentication Failed"},
            FailureKind.PERMANENT,
            "the carrier rejected our credentials (check the Bandwidth API user)",
            "unauthorized",
        ),
        (
            403,
            {"type": "forbidden", "description": "Access Denied"},
            FailureKind.PERMANENT,
            "our Bandwidth API user is not allowed to send messages",
            "forbidden",
        ),
        (
            404,
            {"timestamp": "2019-09-09T19:02:19.253+0000", "status": 404, "error": "Not Found"},
            FailureKind.PERMANENT,
            "the Bandwidth account id or API address is wrong (HTTP 404)",
            None,
        ),
        (
            415,
            {"type": "unsupported-content-type", "description": "Content type 'text/plain' not supported"},
            FailureKind.PERMANENT,
            "the carrier could not read our request (content type)",
            "unsupported-content-type",
        ),
        (
            429,
            {
                "type": "max-message-queue-size-exceeded",
                "description": "The SMS queue for your account is full",
            },
            FailureKind.TRANSIENT,
            "Bandwidth's queue for our account is full; it will be retried",
            "max-message-queue-size-exceeded",
        ),
        (
            429,
            "slow down",
            FailureKind.TRANSIENT,
            "Bandwidth's queue for our account is full; it will be retried",
            None,
        ),
        (
            400,
            {"type": "brand-new-type", "description": "Something new went wrong"},
            FailureKind.PERMANENT,
            "carrier rejected the message: Something new went wrong",
            "brand-new-type",
        ),
        (
            400,
            "<html>Bad Request</html>",
            FailureKind.PERMANENT,
            "carrier rejected the message (HTTP 400)",
            None,
        ),
        (
            500,
            {"type": "internal-server-error", "description": "Something went wrong"},
            FailureKind.TRANSIENT,
            "Bandwidth had a temporary problem and did not send it (HTTP 500); will retry",
            "internal-server-error",
        ),
        (
            502,
            "<html>Bad Gateway</html>",
            FailureKind.AMBIGUOUS,
            "carrier server error (HTTP 502); checking before any retry",
            None,
        ),
        (
            504,
            {"type": "gateway-timeout", "description": "upstream timed out"},
            FailureKind.AMBIGUOUS,
            "carrier server error (HTTP 504); checking before any retry",
            "gateway-timeout",
        ),
    ],
)
def test_send_failures_are_classified(
    fake: FakeCarrierApi, status: int, payload: Any, kind: FailureKind, reason: str, code: str | None
) -> None:
    fake.json(status, payload)
    outcome = send_via(fake)
    assert outcome == SendFailed(kind=kind, reason=reason, error_code=code, http_status=status)
    assert len(fake.seen) == 1  # never retried inside send: the retry function owns that
    assert classify_error(code, status)[0] is kind


def test_success_without_an_id_is_ambiguous(fake: FakeCarrierApi) -> None:
    fake.json(202, "not json")
    outcome = send_via(fake)
    assert isinstance(outcome, SendFailed)
    assert (outcome.kind, outcome.http_status) == (FailureKind.AMBIGUOUS, 202)


def test_redirect_is_not_followed(fake: FakeCarrierApi) -> None:
    fake.reply = lambda _r: Response(status=301, headers={"Location": "/elsewhere"})
    outcome = send_via(fake)
    assert isinstance(outcome, SendFailed)
    assert (outcome.kind, outcome.http_status) == (FailureKind.PERMANENT, 301)
    assert [s.path for s in fake.seen] == [MESSAGES_PATH]


def test_read_timeout_after_the_request_arrived_is_ambiguous(fake: FakeCarrierApi) -> None:
    fake.slow(202, accepted_body())
    outcome = send_via(fake, timeout=0.2)
    assert fake.received.wait(5)  # Bandwidth had the request: it may send the text
    assert isinstance(outcome, SendFailed)
    assert outcome.kind is FailureKind.AMBIGUOUS
    assert (outcome.error_code, outcome.http_status) == (None, None)


def test_connection_refused_is_transient() -> None:
    with refused_url() as url:
        outcome = carrier(api_base=url).send(TEXT)
    assert isinstance(outcome, SendFailed)
    assert outcome.kind is FailureKind.TRANSIENT
    assert (outcome.error_code, outcome.http_status) == (None, None)


def test_connection_dropped_after_the_request_was_sent_is_ambiguous() -> None:
    with hanging_up_after_the_request() as server:
        outcome = carrier(api_base=server.url).send(TEXT)
    assert server.got_request.is_set()
    assert isinstance(outcome, SendFailed)
    assert outcome.kind is FailureKind.AMBIGUOUS


def test_misconfigured_api_base_is_permanent() -> None:
    outcome = carrier(api_base="not a url").send(TEXT)
    assert isinstance(outcome, SendFailed)
    assert outcome.kind is FailureKind.PERMANENT


def test_too_long_text_fails_without_calling_bandwidth(fake: FakeCarrierApi) -> None:
    outcome = send_via(fake, replace(TEXT, body="x" * 2049))
    assert isinstance(outcome, SendFailed)
    assert outcome.kind is FailureKind.PERMANENT and "too long" in outcome.reason
    assert fake.seen == []
    fake.json(202, accepted_body())
    assert isinstance(send_via(fake, replace(TEXT, body="x" * 2048)), SendAccepted)


def test_send_logs_neither_password_nor_full_number(
    fake: FakeCarrierApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="parley")
    fake.json(202, accepted_body("bw-accepted-1"))
    send_via(fake)
    fake.json(400, {"type": "request-validation", "description": f"'{CUSTOMER}' is not valid"})
    send_via(fake)
    assert "bw-accepted-1" in caplog.text and "request-validation" in caplog.text
    assert API_PASSWORD not in caplog.text
    assert CUSTOMER not in caplog.text
    assert "+1********00" in caplog.text  # first two and last two characters kept


def test_repr_shows_no_password() -> None:
    assert API_PASSWORD not in repr(carrier()) and CB_PASSWORD not in repr(carrier())


# -- find_sent ------------------------------------------------------------------------------------

SINCE = datetime(2026, 11, 28, 4, 4, 30, tzinfo=UTC)


def record(message_id: str = "bw-found-1", **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "messageId": message_id,
        "accountId": ACCOUNT,
        "sourceTn": OURS,
        "destinationTn": CUSTOMER,
        "messageStatus": "DELIVERED",
        "messageDirection": "OUTBOUND",
        "messageType": "sms",
        "segmentCount": 2,
        "errorCode": 0,
        "receiveTime": "2026-11-28T04:05:00.811Z",
        "carrierName": "other",
        "messageLength": len(TEXT.body),
        "attachmentCount": 0,
        "recipientCount": 1,
    }
    base.update(changes)
    return base


def listing(*records: dict[str, Any], next_token: str | None = None) -> dict[str, Any]:
    page_info = {"nextPageToken": next_token, "nextPage": "..."} if next_token else {}
    return {"totalCount": len(records), "pageInfo": page_info, "messages": list(records)}


def test_find_sent_matches_and_asks_the_right_question(fake: FakeCarrierApi) -> None:
    fake.json(200, listing(record()))
    found = carrier(api_base=fake.url).find_sent(TEXT, SINCE)
    assert found == SendAccepted("bw-found-1", "DELIVERED", 2)
    [seen] = fake.seen
    assert (seen.method, seen.path) == ("GET", MESSAGES_PATH)
    assert (seen.username, seen.password) == (API_USER, API_PASSWORD)
    query = dict(seen.query)
    assert query["sourceTn"] == OURS and query["destinationTn"] == CUSTOMER
    assert query["messageDirection"] == "OUTBOUND"
    assert query["fromDateTime"] == "2026-11-28T04:03:30.000Z"  # a minute of clock skew allowed
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", query["toDateTime"])
    assert query["limit"] == "100"


def test_bandwidth_carrier_offers_the_sent_lookup() -> None:
    assert isinstance(carrier(), SentLookup)


@pytest.mark.parametrize(
    "other",
    [
        record(destinationTn="+14155550199"),
        record(sourceTn="+15005550007"),
        record(messageDirection="INBOUND"),
        record(receiveTime="2026-11-28T04:00:00.000Z"),  # before the first attempt
        record(messageLength=len(TEXT.body) + 5),  # another text
        record(attachmentCount=1),  # a picture message, ours has none
        {"messageId": 5, "sourceTn": OURS, "destinationTn": CUSTOMER},
        "not a record",
    ],
    ids=["other-recipient", "other-sender", "inbound", "too-old", "other-length", "mms", "bad-id", "junk"],
)
def test_find_sent_ignores_records_that_are_not_this_text(fake: FakeCarrierApi, other: Any) -> None:
    fake.json(200, {"totalCount": 1, "pageInfo": {}, "messages": [other]})
    assert carrier(api_base=fake.url).find_sent(TEXT, SINCE) is None


@pytest.mark.parametrize("length", [len(TEXT.body), len(TEXT.body.encode("utf-8")), len(TEXT.body) + 1])
def test_find_sent_accepts_any_documented_reading_of_message_length(
    fake: FakeCarrierApi, length: int
) -> None:
    """messageLength's unit isn't documented: characters, UTF-16 units and UTF-8 bytes all match."""
    assert len(TEXT.body.encode("utf-16-le")) // 2 == len(TEXT.body) + 1  # the emoji is two UTF-16 units
    fake.json(200, listing(record(messageLength=length)))
    assert carrier(api_base=fake.url).find_sent(TEXT, SINCE) is not None


def test_find_sent_without_length_or_attachments_matches_on_numbers_and_time(fake: FakeCarrierApi) -> None:
    bare = {k: v for k, v in record().items() if k not in ("messageLength", "attachmentCount", "receiveTime")}
    fake.json(200, listing(bare))
    assert carrier(api_base=fake.url).find_sent(TEXT, SINCE) == SendAccepted("bw-found-1", "DELIVERED", 2)


def test_find_sent_follows_pages_and_picks_the_earliest_match(fake: FakeCarrierApi) -> None:
    fake.replies(
        (200, listing(record("later", receiveTime="2026-11-28T04:06:00.000Z"), next_token="cGFnZTI=")),
        (200, listing(record("earlier", receiveTime="2026-11-28T04:05:00.000Z", messageStatus="SENT"))),
    )
    found = carrier(api_base=fake.url).find_sent(TEXT, SINCE)
    assert found == SendAccepted("earlier", "SENT", 2)
    assert dict(fake.seen[1].query)["pageToken"] == "cGFnZTI="
    assert "pageToken" not in dict(fake.seen[0].query)


@pytest.mark.parametrize(
    ("status", "payload", "words"),
    [
        (500, {"type": "internal-server-error"}, "HTTP 500"),
        (401, {"type": "unauthorized"}, "HTTP 401"),
        (200, {"totalCount": 0}, "message list"),
        (200, "not json", "message list"),
    ],
)
def test_find_sent_failure_raises_rather_than_claiming_absence(
    fake: FakeCarrierApi, status: int, payload: Any, words: str
) -> None:
    fake.json(status, payload)
    with pytest.raises(BandwidthLookupError, match=words):
        carrier(api_base=fake.url).find_sent(TEXT, SINCE)


def test_find_sent_with_endless_pages_raises(fake: FakeCarrierApi) -> None:
    fake.json(200, listing(next_token="again"))
    with pytest.raises(BandwidthLookupError, match="pages"):
        carrier(api_base=fake.url).find_sent(TEXT, SINCE)
    assert len(fake.seen) == 10


def test_find_sent_network_failure_raises() -> None:
    with refused_url() as url, pytest.raises(BandwidthLookupError, match="ConnectionError"):
        carrier(api_base=url).find_sent(TEXT, SINCE)


def test_find_sent_quotes_the_account_into_one_path_segment(fake: FakeCarrierApi) -> None:
    fake.json(200, listing())
    odd = BandwidthCarrier(
        account_id="../../x",
        username=API_USER,
        password=API_PASSWORD,
        application_id=APP_ID,
        callback_username=CB_USER,
        callback_passwords=(CB_PASSWORD,),
        api_base=fake.url,
    )
    assert odd.find_sent(TEXT, SINCE) is None
    assert fake.seen[0].raw_uri.startswith("/api/v2/users/..%2F..%2Fx/messages?")


# -- error classification for receipts ------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "kind", "words"),
    [
        ("4303", FailureKind.PERMANENT, "not a valid phone number"),
        ("4432", FailureKind.PERMANENT, "country"),
        ("4470", FailureKind.PERMANENT, "spam"),
        ("4720", FailureKind.PERMANENT, "landline"),
        ("4721", FailureKind.PERMANENT, "no longer in service"),
        ("4775", FailureKind.PERMANENT, "opted out"),
        ("4785", FailureKind.TRANSIENT, "throttling"),
        ("4795", FailureKind.PERMANENT, "toll-free"),
        ("5100", FailureKind.TRANSIENT, "temporary"),
        ("5620", FailureKind.TRANSIENT, "error 5620"),
        ("4799", FailureKind.PERMANENT, "error 4799"),
        ("4499", FailureKind.PERMANENT, "error 4499"),
        ("9902", FailureKind.PERMANENT, "may still have arrived"),
        ("9999", FailureKind.TRANSIENT, "unknown"),
        ("0", FailureKind.PERMANENT, "could not deliver the message"),
        (None, FailureKind.PERMANENT, "could not deliver the message"),
    ],
)
def test_classify_receipt_error_codes(code: str | None, kind: FailureKind, words: str) -> None:
    got_kind, reason = carrier().classify(code, None)
    assert got_kind is kind
    assert words in reason


def test_every_listed_code_has_plain_words() -> None:
    for code, (kind, reason) in ERROR_CODES.items():
        assert isinstance(kind, FailureKind)
        assert reason and reason == reason.strip() and not reason.endswith("."), code


# -- building from configuration ------------------------------------------------------------------

ENV = {
    "PARLEY_BANDWIDTH_ACCOUNT_ID": ACCOUNT,
    "PARLEY_BANDWIDTH_USERNAME": API_USER,
    "PARLEY_BANDWIDTH_PASSWORD": API_PASSWORD,
    "PARLEY_BANDWIDTH_APPLICATION_ID": APP_ID,
    "PARLEY_BANDWIDTH_CALLBACK_USERNAME": CB_USER,
    "PARLEY_BANDWIDTH_CALLBACK_PASSWORD": CB_PASSWORD,
    "PARLEY_BANDWIDTH_CALLBACK_PASSWORD_PREVIOUS": "old-one, older-one",
    "PARLEY_CARRIER_TIMEOUT_SECONDS": "2.5",
}


def test_build_from_environment(fake: FakeCarrierApi) -> None:
    built = build(CarrierConfig({**ENV, "PARLEY_BANDWIDTH_API_BASE": fake.url + "/"}))
    assert (built.account_id, built.application_id, built.api_base, built.timeout) == (
        ACCOUNT,
        APP_ID,
        fake.url,
        2.5,
    )
    for password in (CB_PASSWORD, "old-one", "older-one"):
        built.verify(webhook([], stdlib_basic(CB_USER, password)))
    fake.json(202, accepted_body())
    assert isinstance(built.send(TEXT), SendAccepted)
    assert (fake.seen[0].username, fake.seen[0].password) == (API_USER, API_PASSWORD)


def test_registry_builds_bandwidth_with_the_default_api_base() -> None:
    built = build_carrier("bandwidth", CarrierConfig(ENV))
    assert isinstance(built, BandwidthCarrier)
    assert built.api_base == "https://messaging.bandwidth.com"
    assert built.timeout == 2.5


def test_missing_callback_credentials_fail_at_verify_not_at_build() -> None:
    built = build(CarrierConfig({k: v for k, v in ENV.items() if "CALLBACK" not in k}))
    with pytest.raises(SignatureError, match="PARLEY_BANDWIDTH_CALLBACK_USERNAME"):
        built.verify(webhook([], PUBLISHED_HEADER))


def test_missing_api_credentials_fail_at_send_without_calling_bandwidth(fake: FakeCarrierApi) -> None:
    env = {
        k: v
        for k, v in ENV.items()
        if k not in ("PARLEY_BANDWIDTH_PASSWORD", "PARLEY_BANDWIDTH_APPLICATION_ID")
    }
    built = build(CarrierConfig({**env, "PARLEY_BANDWIDTH_API_BASE": fake.url}))
    outcome = built.send(TEXT)
    assert outcome == SendFailed(
        FailureKind.PERMANENT, "Bandwidth is not set up for sending: API password, application id missing"
    )
    assert fake.seen == []
    with pytest.raises(BandwidthLookupError, match="not configured"):
        built.find_sent(TEXT, SINCE)


def test_secrets_come_from_ssm_once_and_only_when_needed(fake: FakeCarrierApi) -> None:
    reads: list[str] = []
    values = {"/parley/bandwidth/api": API_PASSWORD, "/parley/bandwidth/callback": CB_PASSWORD}

    def ssm(name: str, region: str) -> str:
        reads.append(name)
        return values[name]

    env = {
        k: v
        for k, v in ENV.items()
        if k not in ("PARLEY_BANDWIDTH_PASSWORD", "PARLEY_BANDWIDTH_CALLBACK_PASSWORD")
    }
    env["PARLEY_BANDWIDTH_PASSWORD_PARAM"] = "/parley/bandwidth/api"
    env["PARLEY_BANDWIDTH_CALLBACK_PASSWORD_PARAM"] = "/parley/bandwidth/callback"
    env["PARLEY_BANDWIDTH_API_BASE"] = fake.url
    built = build(CarrierConfig(env, ssm=ssm))
    assert reads == []
    built.verify(webhook([], PUBLISHED_HEADER))
    built.verify(webhook([], PUBLISHED_HEADER))
    assert reads == ["/parley/bandwidth/callback"]  # a webhook never reads the API password
    fake.json(202, accepted_body())
    assert isinstance(built.send(TEXT), SendAccepted)
    assert reads == ["/parley/bandwidth/callback", "/parley/bandwidth/api"]


def test_plugin_module_imports_only_the_standard_library_at_load() -> None:
    """The webhook's cold start: importing the plugin must not pull in requests or urllib3."""
    import subprocess
    import sys

    code = (
        "import sys; import parley.carriers.bandwidth as b; "
        "bad = sorted(m for m in ('requests', 'urllib3', 'pydantic', 'phonenumbers', 'cryptography') "
        "if m in sys.modules); print(','.join(bad))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert result.stdout.strip() == ""


def test_find_sent_since_naive_datetime_is_taken_as_utc(fake: FakeCarrierApi) -> None:
    fake.json(200, listing())
    carrier(api_base=fake.url).find_sent(TEXT, SINCE.replace(tzinfo=None) + timedelta(hours=1))
    assert dict(fake.seen[0].query)["fromDateTime"] == "2026-11-28T05:03:30.000Z"


def test_find_sent_leaves_out_a_set_aside_attempt_and_finds_the_next(fake: FakeCarrierApi) -> None:
    later = record("bw-retry", receiveTime="2026-11-28T04:05:40.000Z")
    fake.json(200, listing(record("bw-set-aside"), later))
    plugin = carrier(api_base=fake.url)
    assert plugin.find_sent(TEXT, SINCE, skip={"bw-set-aside"}) == SendAccepted("bw-retry", "DELIVERED", 2)
    fake.json(200, listing(record("bw-set-aside")))
    assert plugin.find_sent(TEXT, SINCE, skip={"bw-set-aside"}) is None
