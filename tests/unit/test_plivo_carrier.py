"""The Plivo plugin against Plivo's own code (the official SDK) and a local HTTP stand-in for its API.

Signatures come from `plivo.utils.signature_v3` (the SDK's V3 builder) and the published vectors in
carriers.md section 11, and every accepted request is also checked with the SDK's validators, so the
verifier is held to Plivo's code, not to itself. Plivo's schemes carry no timestamp, so there is no
"stale" case: replays are absorbed by de-duplicating on MessageUUID downstream. Sends go over real
sockets to a werkzeug server on 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import string
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from plivo.utils import validate_signature, validate_v3_signature  # type: ignore[import-untyped]
from plivo.utils.signature_v3 import (  # type: ignore[import-untyped]
    construct_get_url,
    construct_post_url,
    get_signature_v3,
)
from werkzeug.wrappers import Request, Response

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
from parley.carriers.plivo import (
    EMPTY_XML,
    ERROR_CODES,
    STATUS_MAP,
    PlivoCarrier,
    PlivoConfigError,
    PlivoLookupError,
    build,
    classify_error,
)
from parley.carriers.registry import build_carrier
from parley.domain.vocabulary import MessageStatus
from tests.carrier_api import FakeCarrierApi, carrier_api_fixtures, hanging_up_after_the_request, refused_url

FORM = "application/x-www-form-urlencoded"
AUTH_ID = "MAPARLEY000000000001"
TOKEN = "ZmFrZS1wbGl2by1hdXRoLXRva2VuLTAxMjM0NTY3"  # carriers.md section 11 (fake)
NONCE = "05429567804466091622"
VECTOR_URL = "https://abc123xyz.execute-api.us-east-1.amazonaws.com/prod/plivo/inbound"
INBOUND_URL = "https://hooks.example.com/prod/webhooks/plivo/messages"
STATUS_URL = "https://hooks.example.com/prod/webhooks/plivo/status?tenant=acme"
SAMPLES = Path(__file__).resolve().parents[2] / "events" / "carriers" / "plivo"

# carriers.md section 11 (plivo 4.63.0).
VECTOR_PARAMS = {
    "From": "14155551234",
    "To": "14155550000",
    "Text": "Hello & welcome=yes",
    "Type": "sms",
    "MessageUUID": "3b4a1e28-0e8a-11ee-9e3a-0242ac110003",
    "Units": "1",
    "TotalRate": "0.00000",
    "TotalAmount": "0.00000",
    "MessageIntent": "",
    "PowerpackUUID": "",
}
V2_SIGNATURE = "szwD26vBPGhLnGUjDFmiiNSsmQls2qTjd+Z2OUTZfbc="
V3_VECTORS = [
    ("POST", VECTOR_URL + "?tenant=acme", "AH/D4ufZM3yZm0WxdrNSGiXI1wk+ZZEBDzIfXtnINs4="),
    ("POST", VECTOR_URL, "oZ2IlzhaalR20ieK5xxldQ/XmwodffrAbOoUoi2uYvA="),
    ("GET", VECTOR_URL + "?tenant=acme", "+ji0WwNsGiqNMpSp5g7yH4P/A62iPje0vlq2IHAK+RM="),
]

INBOUND = {
    "From": "14155550100",
    "To": "15005550006",
    "Text": "Hi! Is order #1234 ready? \U0001f600 a&b=c + 100%",
    "Type": "sms",
    "MessageUUID": "1c3a4f2e-8d1b-11ef-9a4e-0242ac110002",
    "Units": "1",
    "TotalRate": "0.00000",
    "TotalAmount": "0.00000",
    "MessageIntent": "",
    "PowerpackUUID": "",
}


def sdk_v3(token: str, method: str, url: str, params: dict[str, Any], nonce: str = NONCE) -> str:
    """The V3 signature as Plivo's SDK builds it (the SDK only validates; its builder is used here)."""
    copy = dict(params)  # construct_get_url mutates its argument
    base = construct_get_url(url, copy) if method == "GET" else construct_post_url(url, copy)
    signature: bytes = get_signature_v3(token.encode(), base.decode("utf-8"), nonce.encode())
    return signature.decode()


def sdk_accepts_v3(token: str, method: str, url: str, params: dict[str, Any], signature: str) -> bool:
    return bool(validate_v3_signature(method, url, NONCE, token, signature, dict(params)))


def v2_signature(token: str, base_url: str, nonce: str = NONCE) -> str:
    digest = hmac.new(token.encode(), (base_url + nonce).encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def webhook(
    url: str,
    body: str | bytes = "",
    headers: dict[str, str] | None = None,
    *,
    method: str = "POST",
    content_type: str | None = FORM,
) -> WebhookRequest:
    all_headers = {} if content_type is None else {"content-type": content_type}
    all_headers.update({k.lower(): v for k, v in (headers or {}).items()})
    raw = body.encode() if isinstance(body, str) else body
    return WebhookRequest(method=method, url=url, headers=all_headers, body=raw)


def v3_headers(signature: str, nonce: str = NONCE) -> dict[str, str]:
    return {"X-Plivo-Signature-V3": signature, "X-Plivo-Signature-V3-Nonce": nonce}


def v2_headers(signature: str, nonce: str = NONCE) -> dict[str, str]:
    return {"X-Plivo-Signature-V2": signature, "X-Plivo-Signature-V2-Nonce": nonce}


def signed_post(url: str, params: dict[str, str], token: str = TOKEN) -> WebhookRequest:
    return webhook(url, urlencode(params), v3_headers(sdk_v3(token, "POST", url, params)))


def carrier(token: str = TOKEN, **kwargs: Any) -> PlivoCarrier:
    return PlivoCarrier(AUTH_ID, token, **kwargs)


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / name).read_text())
    return data


# -- signatures: published vectors and the SDK --------------------------------------------------------


@pytest.mark.parametrize(("method", "url", "expected"), V3_VECTORS, ids=["post-query", "post", "get-query"])
def test_published_v3_vectors_are_accepted(method: str, url: str, expected: str) -> None:
    assert sdk_v3(TOKEN, method, url, VECTOR_PARAMS) == expected  # the SDK reproduces the vector
    assert sdk_accepts_v3(TOKEN, method, url, VECTOR_PARAMS, expected)
    if method == "GET":  # Plivo appends its fields to the configured URL's query
        request = webhook(f"{url}&{urlencode(VECTOR_PARAMS)}", "", v3_headers(expected), method="GET")
    else:
        request = webhook(url, urlencode(VECTOR_PARAMS), v3_headers(expected))
    carrier().verify(request)


def test_published_v2_vector_is_accepted_where_v2_inbound_texts_are_allowed() -> None:
    url = VECTOR_URL + "?tenant=acme"
    assert v2_signature(TOKEN, VECTOR_URL) == V2_SIGNATURE
    assert validate_signature(url, NONCE, V2_SIGNATURE, TOKEN)
    carrier(v2_inbound=True).verify(webhook(url, urlencode(VECTOR_PARAMS), v2_headers(V2_SIGNATURE)))


RECEIPT = {"MessageUUID": "3b4a1e28-0e8a-11ee-9e3a-0242ac110003", "Status": "delivered", "PartInfo": "1 of 1"}


def test_v2_alone_signs_a_receipt_but_not_an_inbound_text() -> None:
    """V2 covers neither the body nor the query, so one captured header pair would sign any text."""
    receipt = webhook(VECTOR_URL, urlencode(RECEIPT), v2_headers(V2_SIGNATURE))
    carrier().verify(receipt)
    for text in ("forged one", "forged two"):
        forged = webhook(VECTOR_URL, urlencode({**VECTOR_PARAMS, "Text": text}), v2_headers(V2_SIGNATURE))
        with pytest.raises(SignatureError, match="only delivery receipts"):
            carrier().verify(forged)
    with pytest.raises(SignatureError, match="V2 is not accepted"):  # V3-only: nothing to downgrade to
        carrier(require_v3=True).verify(receipt)


def test_a_v3_request_stripped_of_its_v3_headers_is_refused() -> None:
    both = {**v3_headers(sdk_v3(TOKEN, "POST", VECTOR_URL, VECTOR_PARAMS)), **v2_headers(V2_SIGNATURE)}
    carrier().verify(webhook(VECTOR_URL, urlencode(VECTOR_PARAMS), both))
    altered = urlencode({**VECTOR_PARAMS, "Text": "something else"})
    with pytest.raises(SignatureError):
        carrier().verify(webhook(VECTOR_URL, altered, v2_headers(V2_SIGNATURE)))


@pytest.mark.parametrize(
    ("setting", "require_v3", "v2_inbound"),
    [("", False, False), ("true", True, False), ("false", False, True), ("no", False, True)],
)
def test_the_require_v3_setting_has_three_states(setting: str, require_v3: bool, v2_inbound: bool) -> None:
    built = build_carrier(
        "plivo",
        CarrierConfig(
            {
                "PARLEY_PLIVO_AUTH_ID": AUTH_ID,
                "PARLEY_PLIVO_AUTH_TOKEN": TOKEN,
                "PARLEY_PLIVO_REQUIRE_V3": setting,
            }
        ),
    )
    assert isinstance(built, PlivoCarrier)
    assert (built.require_v3, built.v2_inbound) == (require_v3, v2_inbound)


def test_realistic_inbound_signed_by_the_sdk_is_accepted() -> None:
    request = signed_post(INBOUND_URL, INBOUND)
    signature = request.header("x-plivo-signature-v3") or ""
    assert sdk_accepts_v3(TOKEN, "POST", INBOUND_URL, INBOUND, signature)
    carrier().verify(request)


def test_status_callback_with_configured_query_is_accepted() -> None:
    params = dict(parse_qsl(sample("status_delivered.json")["body"], keep_blank_values=True))
    request = signed_post(STATUS_URL, params)
    carrier().verify(request)
    reordered = STATUS_URL.replace("?tenant=acme", "?tenant=acme&x=1")
    with pytest.raises(SignatureError):
        carrier().verify(webhook(reordered, request.body, dict(request.headers)))


def test_get_callback_signs_every_query_parameter() -> None:
    url = "https://hooks.example.com/webhooks/plivo/status?tenant=acme"
    params = {"MessageUUID": "u-1", "Status": "sent", "To": "14155550100", "From": "15005550006"}
    signature = sdk_v3(TOKEN, "GET", url, params)
    assert sdk_accepts_v3(TOKEN, "GET", url, params, signature)
    full = f"{url}&{urlencode(params)}"
    carrier().verify(webhook(full, "", v3_headers(signature), method="GET", content_type=None))
    with pytest.raises(SignatureError):
        carrier().verify(
            webhook(full.replace("Status=sent", "Status=read"), "", v3_headers(signature), method="GET")
        )


def test_json_body_is_signed_like_the_sdk_reads_it() -> None:
    """The SDK's own V3 example reads request.get_json() for POST: nested values included."""
    params: dict[str, Any] = {
        "MessageUUID": "u-9",
        "Status": "sent",
        "Units": 2,
        "Extra": {"b": "2", "a": "1"},
    }
    signature = sdk_v3(TOKEN, "POST", INBOUND_URL, params)
    assert sdk_accepts_v3(TOKEN, "POST", INBOUND_URL, params, signature)
    body = json.dumps(params)
    carrier().verify(webhook(INBOUND_URL, body, v3_headers(signature), content_type="application/json"))


def test_empty_post_body_signs_the_url_alone() -> None:
    signature = sdk_v3(TOKEN, "POST", STATUS_URL, {})
    assert sdk_accepts_v3(TOKEN, "POST", STATUS_URL, {}, signature)
    carrier().verify(webhook(STATUS_URL, "", v3_headers(signature)))


def test_one_valid_signature_in_a_comma_list_is_enough() -> None:
    good = sdk_v3(TOKEN, "POST", INBOUND_URL, INBOUND)
    other = sdk_v3("another-token", "POST", INBOUND_URL, INBOUND)
    assert sdk_accepts_v3(TOKEN, "POST", INBOUND_URL, INBOUND, f"{other},{good}")
    carrier().verify(webhook(INBOUND_URL, urlencode(INBOUND), v3_headers(f"{other}, {good}")))
    with pytest.raises(SignatureError):
        carrier().verify(webhook(INBOUND_URL, urlencode(INBOUND), v3_headers(f"{other},{other}")))


def test_main_account_v3_header_is_accepted_with_the_main_token() -> None:
    main_token = "main-account-token-0123456789abcdef0123"
    headers = {
        "X-Plivo-Signature-V3": sdk_v3("subaccount-token", "POST", INBOUND_URL, INBOUND),
        "X-Plivo-Signature-Ma-V3": sdk_v3(main_token, "POST", INBOUND_URL, INBOUND),
        "X-Plivo-Signature-V3-Nonce": NONCE,
    }
    carrier(main_token).verify(webhook(INBOUND_URL, urlencode(INBOUND), headers))


@pytest.mark.parametrize(
    "tamper",
    [
        lambda body: body.replace(b"Text=Hi", b"Text=Ho"),
        lambda body: body + b"&Extra=1",
        lambda body: body.replace(b"MessageIntent=", b"MessageIntent=optout"),
        lambda body: body.replace(b"From=14155550100", b"From=14155550101"),
    ],
    ids=["text", "added-field", "blank-field", "number"],
)
def test_v3_rejects_a_body_altered_by_one_field(tamper: Callable[[bytes], bytes]) -> None:
    request = signed_post(INBOUND_URL, INBOUND)
    altered = tamper(request.body)
    assert altered != request.body
    with pytest.raises(SignatureError, match="V3"):
        carrier().verify(webhook(INBOUND_URL, altered, dict(request.headers)))


def test_v3_rejects_another_url_and_another_nonce() -> None:
    request = signed_post(INBOUND_URL, INBOUND)
    headers = dict(request.headers)
    with pytest.raises(SignatureError):
        carrier().verify(webhook(INBOUND_URL.replace("/prod/", "/dev/"), request.body, headers))
    with pytest.raises(SignatureError):
        carrier().verify(webhook(INBOUND_URL + "?x=1", request.body, headers))
    headers["x-plivo-signature-v3-nonce"] = NONCE[:-1] + "3"
    with pytest.raises(SignatureError):
        carrier().verify(webhook(INBOUND_URL, request.body, headers))


def test_signature_made_with_another_token_is_rejected() -> None:
    with pytest.raises(SignatureError):
        carrier().verify(signed_post(INBOUND_URL, INBOUND, token="0" * 40))


def test_previous_token_is_accepted_during_rotation() -> None:
    new, old = "new-token-0000000000000000000000000000000", TOKEN
    rotating = carrier(new, previous_auth_tokens=(old,))
    rotating.verify(signed_post(INBOUND_URL, INBOUND, token=old))
    rotating.verify(signed_post(INBOUND_URL, INBOUND, token=new))
    with pytest.raises(SignatureError):
        carrier(new).verify(signed_post(INBOUND_URL, INBOUND, token=old))


def test_forged_signature_is_rejected_without_leaking_secrets() -> None:
    good = sdk_v3(TOKEN, "POST", INBOUND_URL, INBOUND)
    forged = base64.b64encode(b"\x00" * 32).decode()
    with pytest.raises(SignatureError) as caught:
        carrier().verify(webhook(INBOUND_URL, urlencode(INBOUND), v3_headers(forged)))
    assert TOKEN not in str(caught.value)
    assert good not in str(caught.value)


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ({}, "missing"),
        ({"X-Plivo-Signature-V3": "abc="}, "Nonce"),
        ({"X-Plivo-Signature-V3-Nonce": NONCE}, "missing"),
        ({"X-Plivo-Signature-V3": "", "X-Plivo-Signature-V3-Nonce": NONCE}, "missing"),
        ({"X-Plivo-Signature-V3": " , ", "X-Plivo-Signature-V3-Nonce": NONCE}, "malformed"),
        ({"X-Plivo-Signature-V2": V2_SIGNATURE}, "Nonce"),
        ({"X-Plivo-Signature-V2-Nonce": NONCE}, "missing"),
    ],
    ids=["none", "v3-no-nonce", "nonce-only", "v3-empty", "v3-commas", "v2-no-nonce", "v2-nonce-only"],
)
def test_missing_header_variants_are_rejected(headers: dict[str, str], words: str) -> None:
    with pytest.raises(SignatureError, match=words):
        carrier().verify(webhook(VECTOR_URL, urlencode(VECTOR_PARAMS), headers))


def test_a_bad_v3_is_not_excused_by_a_good_v2() -> None:
    headers = {**v2_headers(V2_SIGNATURE), **v3_headers(base64.b64encode(b"\x01" * 32).decode())}
    with pytest.raises(SignatureError, match="V3"):
        carrier().verify(webhook(VECTOR_URL, urlencode(VECTOR_PARAMS), headers))


def test_v2_covers_neither_body_nor_query_so_it_can_be_refused() -> None:
    """V2 signs scheme://host/path + nonce only: an altered body still passes, which is why
    PARLEY_PLIVO_REQUIRE_V3 exists."""
    altered = urlencode({**VECTOR_PARAMS, "Text": "something else"})
    carrier(v2_inbound=True).verify(webhook(VECTOR_URL + "?tenant=other", altered, v2_headers(V2_SIGNATURE)))
    with pytest.raises(SignatureError, match="V2 is not accepted"):
        carrier(require_v3=True).verify(webhook(VECTOR_URL, altered, v2_headers(V2_SIGNATURE)))
    with pytest.raises(SignatureError, match="V2"):
        carrier().verify(
            webhook(VECTOR_URL.replace("inbound", "outbound"), altered, v2_headers(V2_SIGNATURE))
        )


def test_v2_main_account_header_and_wrong_token() -> None:
    headers = {"X-Plivo-Signature-Ma-V2": V2_SIGNATURE, "X-Plivo-Signature-V2-Nonce": NONCE}
    carrier().verify(webhook(VECTOR_URL, urlencode(RECEIPT), headers))
    with pytest.raises(SignatureError):
        carrier("not-the-token").verify(webhook(VECTOR_URL, urlencode(RECEIPT), headers))


def test_empty_configured_token_rejects_everything() -> None:
    signature = sdk_v3("", "POST", INBOUND_URL, INBOUND)  # what an empty-key HMAC would give
    with pytest.raises(SignatureError, match="token"):
        carrier("").verify(webhook(INBOUND_URL, urlencode(INBOUND), v3_headers(signature)))


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"\xff\xfe=1", FORM),
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b"x", "text/xml"),
    ],
    ids=["not-utf8", "bad-json", "json-array", "xml"],
)
def test_unreadable_bodies_are_a_payload_problem_not_a_forgery(body: bytes, content_type: str) -> None:
    with pytest.raises(PayloadError):
        carrier().verify(webhook(INBOUND_URL, body, v3_headers("abc="), content_type=content_type))


def test_headers_are_looked_up_lower_case() -> None:
    request = signed_post(INBOUND_URL, INBOUND)
    shouting = WebhookRequest(
        "POST", INBOUND_URL, {k.title(): v for k, v in request.headers.items()}, request.body
    )
    with pytest.raises(SignatureError, match="missing"):  # WebhookRequest promises lower-cased names
        carrier().verify(shouting)
    carrier().verify(request)


_KEY = st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=12)
_VALUE = st.text(alphabet=st.characters(codec="utf-8"), max_size=30)


@settings(max_examples=200, deadline=None)
@given(params=st.dictionaries(_KEY, _VALUE, max_size=8), method=st.sampled_from(["POST", "GET"]))
def test_any_payload_signed_by_the_sdk_is_accepted(params: dict[str, str], method: str) -> None:
    params.pop("tenant", None)
    url = "https://hooks.example.com/webhooks/plivo/status?tenant=acme"
    signature = sdk_v3(TOKEN, method, url, params)
    if method == "GET":
        full = f"{url}&{urlencode(params)}" if params else url
        request = webhook(full, "", v3_headers(signature), method="GET", content_type=None)
    else:
        request = webhook(url, urlencode(params), v3_headers(signature))
    carrier().verify(request)


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(max_size=300),
    url=st.one_of(st.just(INBOUND_URL), st.text(max_size=60)),
    method=st.sampled_from(["POST", "GET", "PUT", ""]),
    content_type=st.sampled_from([FORM, "application/json", "", "text/plain", "multipart/form-data"]),
    headers=st.dictionaries(
        st.sampled_from(
            [
                "x-plivo-signature-v3",
                "x-plivo-signature-ma-v3",
                "x-plivo-signature-v3-nonce",
                "x-plivo-signature-v2",
                "x-plivo-signature-ma-v2",
                "x-plivo-signature-v2-nonce",
            ]
        ),
        st.text(max_size=80),
    ),
)
def test_verify_raises_only_signature_or_payload_errors(
    body: bytes, url: str, method: str, content_type: str, headers: dict[str, str]
) -> None:
    request = WebhookRequest(method, url, {"content-type": content_type, **headers}, body)
    with pytest.raises((SignatureError, PayloadError)):
        carrier().verify(request)


# -- parsing ----------------------------------------------------------------------------------------


def parse(kind: WebhookKind, body: str | bytes, content_type: str | None = FORM) -> list[Any]:
    events: list[Any] = carrier().parse(kind, webhook(INBOUND_URL, body, content_type=content_type))
    return events


def parse_one(kind: WebhookKind, body: str | bytes, content_type: str | None = FORM) -> Any:
    events = parse(kind, body, content_type)
    assert len(events) == 1
    return events[0]


def test_parse_inbound_sms_adds_the_plus_plivo_leaves_off() -> None:
    event = parse_one(WebhookKind.MESSAGES, urlencode(INBOUND))
    assert isinstance(event, ParsedInbound)
    assert event.carrier == "plivo"
    assert event.carrier_message_id == "1c3a4f2e-8d1b-11ef-9a4e-0242ac110002"
    assert (event.from_number, event.to_number) == ("+14155550100", "+15005550006")
    assert event.body == "Hi! Is order #1234 ready? \U0001f600 a&b=c + 100%"
    assert event.media == ()
    assert event.segments == 1
    assert event.opt_out is None
    assert event.raw["MessageIntent"] == ""
    assert event.to_wire()["kind"] == "inbound_message"


@pytest.mark.parametrize("first", [0, 1], ids=["Media0-old-docs", "Media1-current-docs"])
def test_parse_mms_media_in_order(first: int) -> None:
    fields = {
        **INBOUND,
        "Type": "mms",
        "Text": "",
        "Body": "photo attached",
        "MediaCount": "2",
        f"Media{first + 1}": "https://media.plivo.com/b.png",
        f"Media{first}": "https://media.plivo.com/a.jpg",
    }
    event = parse_one(WebhookKind.MESSAGES, urlencode(fields))
    assert isinstance(event, ParsedInbound)
    assert event.body == "photo attached"
    assert event.media == (
        ParsedMedia("https://media.plivo.com/a.jpg"),
        ParsedMedia("https://media.plivo.com/b.png"),
    )


def test_media_count_that_disagrees_is_logged_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    fields = {**INBOUND, "Type": "mms", "MediaCount": "999", "Media1": "https://m/1"}
    event = parse_one(WebhookKind.MESSAGES, urlencode(fields))
    assert len(event.media) == 1
    assert "MediaCount=999" in caplog.text


@pytest.mark.parametrize(
    ("intent", "keyword"), [("optout", "STOP"), ("optin", "START"), ("help", "HELP"), ("", None)]
)
def test_message_intent_says_plivo_handled_the_keyword(intent: str, keyword: str | None) -> None:
    event = parse_one(WebhookKind.MESSAGES, urlencode({**INBOUND, "Text": "Stop", "MessageIntent": intent}))
    assert event.opt_out == keyword


def test_whatsapp_inbound_is_not_ours() -> None:
    assert parse(WebhookKind.MESSAGES, urlencode({**INBOUND, "Type": "whatsapp"})) == []


@pytest.mark.parametrize("missing", ["MessageUUID", "From", "To"])
def test_inbound_without_a_required_field_is_a_payload_error(missing: str) -> None:
    fields = {k: v for k, v in INBOUND.items() if k != missing}
    with pytest.raises(PayloadError, match=missing):
        parse(WebhookKind.MESSAGES, urlencode(fields))


def test_inbound_by_get_reads_the_query() -> None:
    request = webhook(f"{INBOUND_URL}?{urlencode(INBOUND)}", "", method="GET", content_type=None)
    [event] = carrier().parse(WebhookKind.MESSAGES, request)
    assert isinstance(event, ParsedInbound)
    assert event.body == INBOUND["Text"]


def test_inbound_as_json_is_parsed() -> None:
    event = parse_one(WebhookKind.MESSAGES, json.dumps({**INBOUND, "Units": 2}), "application/json")
    assert isinstance(event, ParsedInbound)
    assert event.segments == 2


STATUS = {
    "MessageUUID": "5a7e8d62-8d1b-11ef-9a4e-0242ac110002",
    "ParentMessageUUID": "5a7e8d62-8d1b-11ef-9a4e-0242ac110002",
    "To": "14155550100",
    "From": "15005550006",
    "Type": "sms",
    "Units": "1",
}


@pytest.mark.parametrize(("word", "expected"), sorted(STATUS_MAP.items()))
def test_parse_every_status_word(word: str, expected: MessageStatus) -> None:
    event = parse_one(
        WebhookKind.STATUS, urlencode({**STATUS, "Status": word.upper() if word == "sent" else word})
    )
    assert isinstance(event, ParsedStatus)
    assert event.status is expected
    assert event.carrier_status == word
    assert event.carrier_message_id == STATUS["MessageUUID"]
    assert (event.error_code, event.part, event.parts, event.opted_out) == (None, None, None, False)


def test_status_words_cover_the_sdk_vocabulary() -> None:
    """The SDK's message_state filter lists every state Plivo reports for outbound messages."""
    import plivo.resources.messages as sdk_messages  # type: ignore[import-untyped]

    source = Path(sdk_messages.__file__).read_text()
    listed = re.search(r"message_state=\[\s*optional\(\s*is_in\(\(([^)]*)\)", source)
    assert listed is not None
    sdk_words = set(re.findall(r"'(\w+)'", listed.group(1)))
    assert sdk_words == set(STATUS_MAP)
    assert set(STATUS_MAP.values()) <= {
        MessageStatus.ACCEPTED,
        MessageStatus.SENT,
        MessageStatus.DELIVERED,
        MessageStatus.UNDELIVERED,
        MessageStatus.FAILED,
        MessageStatus.READ,
    }


def test_status_carries_error_code_and_plain_words() -> None:
    event = parse_one(WebhookKind.STATUS, urlencode({**STATUS, "Status": "undelivered", "ErrorCode": "80"}))
    assert (event.status, event.error_code) == (MessageStatus.UNDELIVERED, "80")
    assert event.error_message is not None and "unreachable" in event.error_message
    assert event.opted_out is False
    assert classify_error(event.error_code, None)[0] is FailureKind.TRANSIENT


def test_error_code_200_means_the_recipient_opted_out() -> None:
    event = parse_one(WebhookKind.STATUS, urlencode({**STATUS, "Status": "failed", "ErrorCode": "200"}))
    assert (event.status, event.error_code, event.opted_out) == (MessageStatus.FAILED, "200", True)


@pytest.mark.parametrize("code", ["000", "0", "", "  "])
def test_success_error_codes_are_no_error(code: str) -> None:
    event = parse_one(WebhookKind.STATUS, urlencode({**STATUS, "Status": "delivered", "ErrorCode": code}))
    assert event.error_code is None and event.error_message is None


def test_per_part_receipt_names_the_parent_and_the_part() -> None:
    fields = {
        **STATUS,
        "MessageUUID": "part-2-uuid",
        "ParentMessageUUID": "parent-uuid",
        "PartInfo": "2 of 3",
        "Sequence": "5",
        "Units": "3",
        "Status": "delivered",
    }
    event = parse_one(WebhookKind.STATUS, urlencode(fields))
    assert (event.carrier_message_id, event.part, event.parts) == ("parent-uuid", 2, 3)
    assert event.raw["MessageUUID"] == "part-2-uuid"


@pytest.mark.parametrize("info", ["1 of 1", "", "4 of 3", "0 of 2", "two of three", "1 of 99999"])
def test_whole_messages_and_odd_part_info_have_no_part(info: str) -> None:
    event = parse_one(WebhookKind.STATUS, urlencode({**STATUS, "Status": "sent", "PartInfo": info}))
    assert (event.part, event.parts) == (None, None)


def test_status_time_is_the_one_for_that_status() -> None:
    times = {
        "MessageTime": "2026-11-28 04:00:00.120000",
        "QueuedTime": "2026-11-28 04:00:00.180000",
        "SentTime": "2026-11-28 04:00:01.020000",
        "DeliveryReportTime": "2026-11-28 04:00:04.500000",
    }
    sent = parse_one(WebhookKind.STATUS, urlencode({**STATUS, **times, "Status": "sent"}))
    delivered = parse_one(WebhookKind.STATUS, urlencode({**STATUS, **times, "Status": "delivered"}))
    assert sent.occurred_at == datetime(2026, 11, 28, 4, 0, 1, 20000, tzinfo=UTC)
    assert delivered.occurred_at == datetime(2026, 11, 28, 4, 0, 4, 500000, tzinfo=UTC)
    unreadable = parse_one(
        WebhookKind.STATUS, urlencode({**STATUS, "Status": "sent", "SentTime": "yesterday"})
    )
    assert unreadable.occurred_at.tzinfo is not None  # falls back to now, never fails


def test_unknown_or_missing_status_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="bounced"):
        parse(WebhookKind.STATUS, urlencode({**STATUS, "Status": "bounced"}))
    with pytest.raises(PayloadError, match="Status"):
        parse(WebhookKind.STATUS, urlencode(STATUS))
    with pytest.raises(PayloadError, match="MessageUUID"):
        parse(WebhookKind.STATUS, urlencode({"Status": "sent"}))


def test_events_kind_dispatches_on_the_shape() -> None:
    [status] = parse(WebhookKind.EVENTS, urlencode({**STATUS, "Status": "sent"}))
    [inbound] = parse(WebhookKind.EVENTS, urlencode(INBOUND))
    assert isinstance(status, ParsedStatus) and isinstance(inbound, ParsedInbound)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<xml/>", "text/xml"),
        (b"{not json", "application/json"),
        (b'["a"]', "application/json"),
        (b"\xff\xfe", FORM),
        (b"&".join(b"k%d=v" % i for i in range(1500)), FORM),
    ],
    ids=["xml", "bad-json", "json-array", "not-utf8", "too-many-fields"],
)
def test_malformed_bodies_are_payload_errors(body: bytes, content_type: str) -> None:
    with pytest.raises(PayloadError):
        parse(WebhookKind.MESSAGES, body, content_type)


def test_ack_is_an_empty_xml_response() -> None:
    for kind in WebhookKind:
        ack = carrier().ack(kind)
        assert (ack.status_code, ack.content_type, ack.body) == (200, "application/xml", EMPTY_XML)


_FIELDS = [
    "MessageUUID",
    "ParentMessageUUID",
    "From",
    "To",
    "Text",
    "Body",
    "Type",
    "Status",
    "ErrorCode",
    "PartInfo",
    "Units",
    "MediaCount",
    "Media0",
    "Media1",
    "MessageIntent",
    "SentTime",
    "DeliveryReportTime",
]
_PLAUSIBLE_VALUE = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        ["sms", "mms", "whatsapp", "sent", "delivered", "failed", "1 of 2", "200", "000", "optout"]
    ),
    st.sampled_from(["2026-11-28 04:00:00.1", "9999-99-99", "3 of 2", "-1", "1e9", "\x00"]),
)


@settings(max_examples=200, deadline=None)
@given(
    fields=st.dictionaries(st.sampled_from(_FIELDS), _PLAUSIBLE_VALUE),
    kind=st.sampled_from(list(WebhookKind)),
    as_json=st.booleans(),
)
def test_parse_of_plausible_payloads_raises_only_payload_error(
    fields: dict[str, str], kind: WebhookKind, as_json: bool
) -> None:
    body = json.dumps(fields) if as_json else urlencode(fields)
    try:
        events = parse(kind, body, "application/json" if as_json else FORM)
    except PayloadError:
        return
    assert all(isinstance(e, ParsedInbound | ParsedStatus) for e in events)
    for event in events:
        event.to_wire()


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(max_size=400),
    kind=st.sampled_from(list(WebhookKind)),
    method=st.sampled_from(["POST", "GET"]),
    content_type=st.sampled_from([FORM, "application/json", "", "text/plain"]),
    url=st.one_of(st.just(INBOUND_URL), st.text(max_size=80)),
)
def test_parse_of_arbitrary_bytes_raises_only_payload_error(
    body: bytes, kind: WebhookKind, method: str, content_type: str, url: str
) -> None:
    request = WebhookRequest(method, url, {"content-type": content_type}, body)
    try:
        events = carrier().parse(kind, request)
    except PayloadError:
        return
    assert isinstance(events, list)


# -- the sample payloads in events/carriers/plivo ---------------------------------------------------


def test_every_sample_is_described() -> None:
    names = {p.name for p in SAMPLES.glob("*.json")}
    expected = {"inbound_sms.json", "inbound_mms.json", "status_delivered.json", "status_failed.json"}
    assert expected | {"send_error.json"} <= names
    for name in sorted(names):
        data = sample(name)
        assert set(data) == {"description", "content_type", "body"}
        assert data["description"]


@pytest.mark.parametrize(
    ("name", "kind", "check"),
    [
        (
            "inbound_sms.json",
            WebhookKind.MESSAGES,
            lambda e: isinstance(e, ParsedInbound) and e.from_number == "+14155550100" and e.media == (),
        ),
        (
            "inbound_mms.json",
            WebhookKind.MESSAGES,
            lambda e: isinstance(e, ParsedInbound) and len(e.media) == 2 and e.body.startswith("Here is"),
        ),
        (
            "status_delivered.json",
            WebhookKind.STATUS,
            lambda e: (
                isinstance(e, ParsedStatus) and e.status is MessageStatus.DELIVERED and e.error_code is None
            ),
        ),
        (
            "status_failed.json",
            WebhookKind.STATUS,
            lambda e: isinstance(e, ParsedStatus) and e.status is MessageStatus.FAILED and e.opted_out,
        ),
    ],
)
def test_samples_parse_to_the_right_events(
    name: str, kind: WebhookKind, check: Callable[[Any], bool]
) -> None:
    data = sample(name)
    event = parse_one(kind, data["body"], data["content_type"])
    assert check(event)
    assert parse_one(WebhookKind.EVENTS, data["body"], data["content_type"]).kind == event.kind


def test_samples_verify_when_signed_like_plivo() -> None:
    for name, url in [("inbound_sms.json", INBOUND_URL), ("status_failed.json", STATUS_URL)]:
        params = dict(parse_qsl(sample(name)["body"], keep_blank_values=True))
        carrier().verify(webhook(url, sample(name)["body"], v3_headers(sdk_v3(TOKEN, "POST", url, params))))


# -- sending against a local Plivo stand-in ---------------------------------------------------------


carrier_api_server, fake_plivo = carrier_api_fixtures("fake_plivo")

TEXT = OutboundText(
    message_id="msg-1",
    from_number="+15005550006",
    to_number="+14155550100",
    body="Your order #1234 is ready & waiting",
    status_callback_url="https://hooks.example.com/prod/webhooks/plivo/status",
)
MESSAGE_PATH = f"/v1/Account/{AUTH_ID}/Message/"
QUEUED = {
    "api_id": "a-1",
    "message": "message(s) queued",
    "message_uuid": ["db3ce55a-7f1d-11e1-8ea7-1231380bc196"],
}


def via(fake: FakeCarrierApi, timeout: float = 5.0) -> PlivoCarrier:
    return PlivoCarrier(AUTH_ID, TOKEN, api_base=fake.url + "/", timeout=timeout)


def test_send_accepted_and_the_request_plivo_sees(fake_plivo: FakeCarrierApi) -> None:
    fake_plivo.json(202, QUEUED)
    outcome = via(fake_plivo).send(TEXT)
    assert outcome == SendAccepted("db3ce55a-7f1d-11e1-8ea7-1231380bc196", "queued", None)
    [seen] = fake_plivo.seen
    assert (seen.method, seen.path) == ("POST", MESSAGE_PATH)
    assert (seen.username, seen.password) == (AUTH_ID, TOKEN)
    assert seen.content_type == "application/json"
    assert seen.json == {
        "src": "+15005550006",
        "dst": "+14155550100",
        "text": "Your order #1234 is ready & waiting",
        "url": "https://hooks.example.com/prod/webhooks/plivo/status",
        "method": "POST",
    }
    assert not any("idempotency" in name for name in seen.headers)  # Plivo takes no idempotency key


def test_send_mms_without_callback(fake_plivo: FakeCarrierApi) -> None:
    fake_plivo.json(202, QUEUED)
    text = OutboundText("m2", "+15005550006", "+14155550100", "", media_urls=("https://m.example/a.jpg",))
    assert isinstance(via(fake_plivo).send(text), SendAccepted)
    assert fake_plivo.seen[0].json == {
        "src": "+15005550006",
        "dst": "+14155550100",
        "text": "",
        "type": "mms",
        "media_urls": ["https://m.example/a.jpg"],
    }


def error(text: Any) -> dict[str, Any]:
    return {"api_id": "x", "error": text}


_P, _T, _A = FailureKind.PERMANENT, FailureKind.TRANSIENT, FailureKind.AMBIGUOUS
INVALID_NUMBER = "not a valid phone number"


@pytest.mark.parametrize(
    ("status", "payload", "kind", "words", "opted_out"),
    [
        (400, error("'+1415555' is not a valid phone number."), _P, INVALID_NUMBER, False),
        (400, error("destination number has opted out (DND)"), _P, "opted out", True),
        (400, error("Insufficient Credit"), _P, "out of credit", False),
        (400, error("invalid src parameter"), _P, "sending number", False),
        (400, error({"dst": ["this field is required"]}), _P, "carrier rejected the message: {", False),
        (400, error("something brand new"), _P, "carrier rejected the message: something brand new", False),
        (400, "<html>Bad Request</html>", _P, "HTTP 400", False),
        (401, error("Authentication failed"), _P, "credentials", False),
        (403, error("forbidden"), _P, "Geo Permissions", False),
        (404, error("not found"), _P, "auth id", False),
        (429, error("too many requests"), _T, "rate limiting", False),
        (429, "slow down", _T, "rate limiting", False),
        (500, error("server error"), _A, "HTTP 500", False),
        (503, "<html>Service Unavailable</html>", _A, "HTTP 503", False),
        (202, {**error("x"), "message_uuid": [], "invalid_number": ["+1415"]}, _P, INVALID_NUMBER, False),
        (202, "not json", _A, "no message id", False),
    ],
)
def test_send_failures_are_classified(
    fake_plivo: FakeCarrierApi, status: int, payload: Any, kind: FailureKind, words: str, opted_out: bool
) -> None:
    fake_plivo.json(status, payload)
    outcome = via(fake_plivo).send(TEXT)
    assert isinstance(outcome, SendFailed)
    assert (outcome.kind, outcome.http_status, outcome.opted_out) == (kind, status, opted_out)
    assert words in outcome.reason
    assert len(fake_plivo.seen) == 1  # never retried inside send: the retry function owns that


def test_an_error_code_in_the_answer_is_carried(fake_plivo: FakeCarrierApi) -> None:
    fake_plivo.json(400, {"api_id": "x", "error": "blocked", "error_code": 200})
    outcome = via(fake_plivo).send(TEXT)
    assert outcome == SendFailed(FailureKind.PERMANENT, ERROR_CODES["200"][1], "200", 400, opted_out=True)


def test_send_error_sample_is_permanent(fake_plivo: FakeCarrierApi) -> None:
    data = sample("send_error.json")
    fake_plivo.json(400, data["body"])
    outcome = via(fake_plivo).send(TEXT)
    assert isinstance(outcome, SendFailed)
    assert outcome.kind is FailureKind.PERMANENT
    assert outcome.reason == "the number is not a valid phone number"
    assert classify_error(None, 400)[0] is FailureKind.PERMANENT


def test_redirect_is_not_followed(fake_plivo: FakeCarrierApi) -> None:
    fake_plivo.reply = lambda _r: Response(status=301, headers={"Location": "/elsewhere"})
    outcome = via(fake_plivo).send(TEXT)
    assert isinstance(outcome, SendFailed)
    assert (outcome.kind, outcome.http_status) == (FailureKind.PERMANENT, 301)
    assert [s.path for s in fake_plivo.seen] == [MESSAGE_PATH]


def test_read_timeout_after_the_request_arrived_is_ambiguous(fake_plivo: FakeCarrierApi) -> None:
    fake_plivo.slow(202, QUEUED)
    outcome = via(fake_plivo, timeout=0.2).send(TEXT)
    assert fake_plivo.received.wait(5)  # Plivo had the request: it may send the text
    assert isinstance(outcome, SendFailed)
    assert outcome.kind is FailureKind.AMBIGUOUS
    assert (outcome.error_code, outcome.http_status) == (None, None)


def test_connection_refused_is_transient() -> None:
    with refused_url() as url:
        outcome = PlivoCarrier(AUTH_ID, TOKEN, api_base=url).send(TEXT)
    assert isinstance(outcome, SendFailed)
    assert outcome.kind is FailureKind.TRANSIENT
    assert (outcome.error_code, outcome.http_status) == (None, None)


def test_connection_dropped_after_the_request_was_sent_is_ambiguous() -> None:
    with hanging_up_after_the_request() as server:
        outcome = PlivoCarrier(AUTH_ID, TOKEN, api_base=server.url, timeout=5).send(TEXT)
    assert server.got_request.is_set()
    assert isinstance(outcome, SendFailed)
    assert outcome.kind is FailureKind.AMBIGUOUS


def test_misconfigured_api_base_is_permanent() -> None:
    outcome = PlivoCarrier(AUTH_ID, TOKEN, api_base="not a url").send(TEXT)
    assert isinstance(outcome, SendFailed)
    assert outcome.kind is FailureKind.PERMANENT


def test_send_logs_neither_token_nor_full_number(
    fake_plivo: FakeCarrierApi, caplog: pytest.LogCaptureFixture
) -> None:
    fake_plivo.json(202, QUEUED)
    via(fake_plivo).send(TEXT)
    fake_plivo.json(400, {"api_id": "x", "error": "'+14155550100' is not a valid phone number."})
    via(fake_plivo).send(TEXT)
    assert QUEUED["message_uuid"][0] in caplog.text and "http=400" in caplog.text
    assert TOKEN not in caplog.text
    assert TEXT.to_number not in caplog.text
    assert "+1********00" in caplog.text
    assert TOKEN not in repr(via(fake_plivo))


# -- finding a text after an ambiguous send ---------------------------------------------------------

SINCE = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)


def listed(
    uuid: str = "u-found", *, to: str = "14155550100", at: str = "2026-11-28 04:00:03.5", **extra: Any
) -> dict[str, Any]:
    return {
        "message_uuid": uuid,
        "message_direction": "outbound",
        "from_number": "15005550006",
        "to_number": to,
        "message_state": "sent",
        "message_time": at,
        "units": 1,
        **extra,
    }


def page(*objects: dict[str, Any], more: bool = False) -> dict[str, Any]:
    meta = {
        "limit": 20,
        "offset": 0,
        "next": "/v1/Account/x/Message/?offset=20" if more else None,
        "previous": None,
    }
    return {"api_id": "l-1", "meta": meta, "objects": list(objects)}


def test_plivo_carrier_offers_the_sent_lookup() -> None:
    assert isinstance(carrier(), SentLookup)


def test_find_sent_matches_sender_recipient_and_time(fake_plivo: FakeCarrierApi) -> None:
    fake_plivo.json(200, page(listed("u-later", at="2026-11-28 04:05:00"), listed("u-first")))
    found = via(fake_plivo).find_sent(TEXT, SINCE)
    assert found == SendAccepted("u-first", "sent", 1)  # the earliest since the first attempt
    [seen] = fake_plivo.seen
    assert (seen.method, seen.path, seen.username, seen.password) == ("GET", MESSAGE_PATH, AUTH_ID, TOKEN)
    assert seen.args == {
        "message_direction": "outbound",
        "from_number": "+15005550006",
        "to_number": "+14155550100",
        "message_time__gte": "2026-11-28 03:58:00",  # less two minutes of clock skew
        "limit": "20",
        "offset": "0",
    }


@pytest.mark.parametrize(
    "objects",
    [
        [listed(to="14155550199")],
        [listed(at="2026-11-28 03:00:00")],
        [listed(message_direction="inbound")],
        [listed(message_uuid="")],
        ["not an object"],
        [],
    ],
    ids=["other-recipient", "too-old", "inbound", "no-uuid", "junk", "none"],
)
def test_find_sent_ignores_messages_that_are_not_this_one(
    fake_plivo: FakeCarrierApi, objects: list[Any]
) -> None:
    fake_plivo.json(200, page(*objects))
    assert via(fake_plivo).find_sent(TEXT, SINCE) is None


def test_find_sent_reads_further_pages(fake_plivo: FakeCarrierApi) -> None:
    others = [listed(f"o-{i}", to="14155550199") for i in range(20)]

    def paged(request: Request) -> Response:
        body = page(*others, more=True) if request.args["offset"] == "0" else page(listed("u-p2"))
        return Response(json.dumps(body), status=200, content_type="application/json")

    fake_plivo.reply = paged
    assert via(fake_plivo).find_sent(TEXT, SINCE) == SendAccepted("u-p2", "sent", 1)
    assert [s.args["offset"] for s in fake_plivo.seen] == ["0", "20"]


def test_find_sent_that_cannot_read_everything_raises(fake_plivo: FakeCarrierApi) -> None:
    others = [listed(f"o-{i}", to="14155550199") for i in range(20)]
    fake_plivo.json(200, page(*others, more=True))
    with pytest.raises(PlivoLookupError, match="too many"):
        via(fake_plivo).find_sent(TEXT, SINCE)


@pytest.mark.parametrize(
    ("status", "payload"), [(429, {"error": "too many requests"}), (500, {}), (200, {"objects": "x"})]
)
def test_find_sent_failure_raises_rather_than_claiming_absence(
    fake_plivo: FakeCarrierApi, status: int, payload: Any
) -> None:
    fake_plivo.json(status, payload)
    with pytest.raises(PlivoLookupError):
        via(fake_plivo).find_sent(TEXT, SINCE)


def test_find_sent_network_failure_raises() -> None:
    with refused_url() as url, pytest.raises(PlivoLookupError, match="ConnectionError"):
        PlivoCarrier(AUTH_ID, TOKEN, api_base=url).find_sent(TEXT, SINCE)


# -- error classification ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "kind", "words"),
    [
        ("10", FailureKind.PERMANENT, "invalid"),
        ("20", FailureKind.TRANSIENT, "network"),
        ("30", FailureKind.PERMANENT, "spam"),
        ("40", FailureKind.PERMANENT, "sending number"),
        ("50", FailureKind.PERMANENT, "landline"),
        ("60", FailureKind.PERMANENT, "loop"),
        ("70", FailureKind.PERMANENT, "out of service"),
        ("80", FailureKind.TRANSIENT, "unreachable"),
        ("90", FailureKind.PERMANENT, "no route"),
        ("100", FailureKind.PERMANENT, "network does not accept"),
        ("110", FailureKind.PERMANENT, "too long"),
        ("200", FailureKind.PERMANENT, "opted out"),
        ("201", FailureKind.PERMANENT, "Canadian"),
        ("450", FailureKind.PERMANENT, "country"),
        ("900", FailureKind.PERMANENT, "credit"),
        ("1000", FailureKind.TRANSIENT, "unknown"),
        ("0080", FailureKind.TRANSIENT, "unreachable"),
        ("7777", FailureKind.PERMANENT, "error 7777"),
        (None, FailureKind.PERMANENT, "could not deliver"),
    ],
)
def test_classify_receipt_error_codes(code: str | None, kind: FailureKind, words: str) -> None:
    got_kind, reason = carrier().classify(code, None)
    assert got_kind is kind
    assert words in reason


def test_http_status_wins_for_throttling_and_server_errors() -> None:
    assert classify_error("50", 429)[0] is FailureKind.TRANSIENT
    assert classify_error("50", 502)[0] is FailureKind.AMBIGUOUS
    assert classify_error(None, 408)[0] is FailureKind.TRANSIENT


# -- build and registry -----------------------------------------------------------------------------


def env(**extra: str) -> dict[str, str]:
    return {"PARLEY_PLIVO_AUTH_ID": AUTH_ID, "PARLEY_PLIVO_AUTH_TOKEN": TOKEN, **extra}


def test_build_reads_the_environment() -> None:
    built = build(
        CarrierConfig(
            env(
                PARLEY_PLIVO_API_BASE="http://127.0.0.1:9/",
                PARLEY_CARRIER_TIMEOUT_SECONDS="2.5",
                PARLEY_PLIVO_AUTH_TOKEN_PREVIOUS="old-token",
            )
        )
    )
    assert (built.auth_id, built.api_base, built.timeout, built.require_v3) == (
        AUTH_ID,
        "http://127.0.0.1:9",
        2.5,
        False,
    )
    built.verify(signed_post(INBOUND_URL, INBOUND))  # the token from the environment is the one used
    built.verify(signed_post(INBOUND_URL, INBOUND, token="old-token"))  # and the previous one


def test_build_reads_the_token_from_ssm_and_can_require_v3() -> None:
    asked: list[tuple[str, str]] = []

    def ssm(name: str, region: str) -> str:
        asked.append((name, region))
        return TOKEN

    config = CarrierConfig(
        {
            "PARLEY_PLIVO_AUTH_ID": AUTH_ID,
            "PARLEY_PLIVO_AUTH_TOKEN_PARAM": "/parley/plivo/auth-token",
            "PARLEY_PLIVO_REQUIRE_V3": "true",
            "AWS_REGION": "eu-west-1",
        },
        ssm=ssm,
    )
    built = build(config)
    assert asked == [("/parley/plivo/auth-token", "eu-west-1")]
    assert built.require_v3 is True
    built.verify(signed_post(INBOUND_URL, INBOUND))


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({"PARLEY_PLIVO_AUTH_TOKEN": TOKEN}, ["PARLEY_PLIVO_AUTH_ID"]),
        ({"PARLEY_PLIVO_AUTH_ID": AUTH_ID}, ["PARLEY_PLIVO_AUTH_TOKEN"]),
        ({}, ["PARLEY_PLIVO_AUTH_ID", "PARLEY_PLIVO_AUTH_TOKEN"]),
    ],
)
def test_a_missing_credential_fails_at_build_and_says_which(
    environ: dict[str, str], names: list[str]
) -> None:
    with pytest.raises(PlivoConfigError) as caught:
        build(CarrierConfig(environ))
    assert not isinstance(caught.value, ValueError)  # the webhook must not turn it into a 404
    for name in names:
        assert name in str(caught.value)


def test_registry_builds_plivo_by_name() -> None:
    built = build_carrier("Plivo", CarrierConfig(env()))
    assert isinstance(built, PlivoCarrier)
    assert built.name == "plivo"


# -- media field names, edge-of-range times, receipts at the wrong URL, unreadable bodies -----------


def test_only_canonical_media_indexes_count_and_each_url_is_read_under_its_own_name() -> None:
    mms = {**INBOUND, "Type": "mms"}
    (event,) = parse(
        WebhookKind.MESSAGES, urlencode({**mms, "Media1": "https://media.plivo.com/a", "Media01": "x"})
    )
    assert [m.url for m in event.media] == ["https://media.plivo.com/a"]
    (event,) = parse(
        WebhookKind.MESSAGES, urlencode({**mms, "Media0": "https://m/a", "Media00": "https://m/b"})
    )
    assert [m.url for m in event.media] == ["https://m/a"]
    (event,) = parse(WebhookKind.MESSAGES, urlencode({**mms, "Media" + "1" * 4400: "https://m/x"}))
    assert event.media == ()


@pytest.mark.parametrize("moment", ["9999-12-31 23:00:00-05:00", "0001-01-01 00:00:00+05:00"])
def test_receipt_times_at_the_edge_of_the_date_range_are_not_an_error(moment: str) -> None:
    before = datetime.now(UTC)
    fields = {"MessageUUID": "u-1", "Status": "delivered", "DeliveryReportTime": moment}
    (event,) = parse(WebhookKind.STATUS, urlencode(fields))
    assert event.occurred_at >= before  # unreadable: the time it reached us


def test_a_receipt_posted_to_the_inbound_url_is_refused_not_stored_as_an_empty_text() -> None:
    fields = {"MessageUUID": "u-1", "From": "15005550006", "To": "14155559981", "Status": "delivered"}
    with pytest.raises(PayloadError, match="status callback"):
        parse(WebhookKind.MESSAGES, urlencode({**fields, "PartInfo": "1 of 1"}))
    (event,) = parse(WebhookKind.EVENTS, urlencode(fields))  # one URL for both: it is a receipt
    assert isinstance(event, ParsedStatus)


def test_a_text_plain_body_is_a_payload_problem_even_with_a_v3_signature() -> None:
    request = webhook(INBOUND_URL, urlencode(INBOUND), v3_headers("abc="), content_type="text/plain")
    with pytest.raises(PayloadError, match="unsupported content type"):
        carrier().verify(request)


def test_find_sent_leaves_out_a_set_aside_attempt_and_finds_the_next(fake_plivo: FakeCarrierApi) -> None:
    fake_plivo.json(200, page(listed("u-retry", at="2026-11-28 04:00:40"), listed("u-set-aside")))
    assert via(fake_plivo).find_sent(TEXT, SINCE, skip={"u-set-aside"}) == SendAccepted("u-retry", "sent", 1)
    fake_plivo.json(200, page(listed("u-set-aside")))
    assert via(fake_plivo).find_sent(TEXT, SINCE, skip={"u-set-aside"}) is None
