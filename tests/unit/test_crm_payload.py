"""How a digest day reads in each CRM: a day too long for a record keeps its newest messages, whole,
after a line saying how many earlier ones are not shown; attachments are named; and a rate limit's
``Retry-After`` is kept, as a wait that can be scheduled whatever the CRM wrote."""

from __future__ import annotations

import html
import json
import math
import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
import requests
from werkzeug.wrappers import Request, Response

from parley.crm import dynamics, hubspot, salesforce
from parley.crm._http import day_lines, fit_lines, media_tag, omitted_line, retry_after
from parley.crm.webhook import BODY_MAX, RETRY_AFTER_MAX, CrmError, WebhookCrm, fit_body, parse_retry_after
from tests.carrier_api import FakeCarrierApi, carrier_api_fixtures

carrier_api_server, fake_crm = carrier_api_fixtures("fake_crm")

CUSTOMER = "+14155550100"
OURS = "+15005550006"
DAY = "2026-11-27"


def message(n: int, body: str | None = None, **extra: Any) -> dict[str, Any]:
    at = datetime(2026, 11, 27, 8, tzinfo=UTC) + timedelta(seconds=30 * n)
    return {
        "message_id": f"m{n}",
        "direction": "inbound",
        "at": at.isoformat(),
        "from": CUSTOMER,
        "to": OURS,
        "body": f"message number {n} <b>&amp; more</b>" if body is None else body,
        "status": "received",
        **extra,
    }


def day(count: int, **last: Any) -> dict[str, Any]:
    messages = [message(n) for n in range(count)]
    if last:
        messages[-1] = message(count - 1, **last)
    return {
        "type": "sms_digest",
        "day": DAY,
        "customer_number": CUSTOMER,
        "customer_numbers": [CUSTOMER],
        "contact_id": "c1",
        "crm_contact_id": "003XYZ",
        "subject": f"SMS with Ana & Co on {DAY}",
        "message_count": count,
        "messages": messages,
    }


# --- a day longer than the record holds ------------------------------------------------------------

TEXT_CRMS = [
    pytest.param(
        lambda p: dynamics.activity_fields(p)["description"], dynamics.DESCRIPTION_MAX, id="dynamics"
    ),
    pytest.param(
        lambda p: salesforce.task_fields(p)["Description"], salesforce.DESCRIPTION_MAX, id="salesforce"
    ),
]


@pytest.mark.parametrize(("render", "limit"), TEXT_CRMS)
def test_a_long_day_keeps_the_newest_whole_lines_and_says_how_many_are_not_shown(
    render: Any, limit: int
) -> None:
    payload = day(1000, body="the late one")
    lines = day_lines(payload)

    text = render(payload)

    assert len(text) <= limit
    marker, *shown = text.split("\n")
    assert shown == lines[-len(shown) :]  # whole lines, the newest, in order
    assert shown[-1].endswith("the late one [received]")
    assert marker == omitted_line(1000 - len(shown))
    assert marker.endswith("earlier messages not shown; the full day is in Parley")
    assert len(text) > limit - len(lines[0]) - 1  # no room left for one more line


@pytest.mark.parametrize(("render", "limit"), TEXT_CRMS)
def test_a_day_that_fits_is_whole_without_a_marker(render: Any, limit: int) -> None:
    payload = day(3)
    assert render(payload) == "\n".join(day_lines(payload))


def test_hubspot_cuts_whole_lines_after_escaping_and_never_splits_an_entity() -> None:
    payload = day(3000, body="the late one & done")

    body = hubspot.note_properties("ext", payload, "parley_external_id")["hs_note_body"]

    assert len(body) <= hubspot.BODY_MAX
    subject, marker, *shown = body.split("<br>")
    assert subject == "<strong>SMS with Ana &amp; Co on 2026-11-27</strong>"
    assert html.unescape(marker) == omitted_line(3000 - len(shown))
    assert [html.unescape(line) for line in shown] == day_lines(payload)[-len(shown) :]
    assert shown[-1].endswith("the late one &amp; done [received]")
    # every "&" opens a complete entity: nothing was cut inside one
    assert all(re.match(r"&(amp|lt|gt|quot|#x27);", body[i:]) for i in range(len(body)) if body[i] == "&")


def test_a_single_line_longer_than_the_record_is_cut_and_says_so() -> None:
    payload = day(5, body="x" * 5000)

    text = dynamics.activity_fields(payload)["description"]

    assert len(text) <= dynamics.DESCRIPTION_MAX
    marker, last = text.split("\n")
    assert marker == omitted_line(4)
    assert last.endswith("…") and last.startswith(day_lines(payload)[-1][:100])


def test_fit_lines_escapes_before_measuring_and_keeps_the_head() -> None:
    lines = ["a&b"] * 20
    text = fit_lines(lines, 100, head=("<h>",), sep="|", escape=html.escape)
    assert len(text) <= 100
    head, marker, *shown = text.split("|")
    assert head == "<h>" and shown and all(line == "a&amp;b" for line in shown)
    assert marker == omitted_line(20 - len(shown))


# --- attachments -------------------------------------------------------------------------------------


def test_media_tags() -> None:
    assert media_tag(None) == media_tag([]) == ""
    assert media_tag([{"content_type": "image/jpeg"}]) == "[picture]"
    assert media_tag([{"content_type": "image/png"}, {"content_type": "IMAGE/gif"}]) == "[2 pictures]"
    assert media_tag([{"content_type": "image/png"}, {"content_type": "video/mp4"}]) == "[2 attachments]"
    assert media_tag([{"content_type": None}]) == "[attachment]"
    assert media_tag([{"content_type": "audio/amr"}]) == "[audio recording]"


def test_every_crm_shows_a_picture_only_text_as_a_picture() -> None:
    payload = day(2)
    payload["messages"][0] = message(0, body="", media=[{"content_type": "image/jpeg"}])
    payload["messages"][1] = message(
        1, body="both", media=[{"content_type": "image/jpeg"}, {"content_type": "application/pdf"}]
    )
    first = f"{payload['messages'][0]['at']} inbound {CUSTOMER} → {OURS}: [picture] [received]"
    second = f"{payload['messages'][1]['at']} inbound {CUSTOMER} → {OURS}: both [2 attachments] [received]"

    assert day_lines(payload) == [first, second]
    assert dynamics.activity_fields(payload)["description"] == f"{first}\n{second}"
    assert salesforce.task_fields(payload)["Description"] == f"{first}\n{second}"
    note = hubspot.note_properties("ext", payload, "p")["hs_note_body"]
    assert note.split("<br>")[1:] == [html.escape(first), html.escape(second)]


# --- the webhook: a body a receiver takes ------------------------------------------------------------


def test_the_webhook_body_is_capped_keeping_the_newest_messages() -> None:
    payload = day(1000, body="late")
    for m in payload["messages"][:-1]:
        m["body"] = "y" * 1600

    body = fit_body(payload)

    assert len(body) <= BODY_MAX
    sent = json.loads(body)
    assert sent["message_count"] == 1000  # the whole day's
    kept = sent["messages"]
    assert sent["messages_omitted"] == 1000 - len(kept) > 0
    assert kept == payload["messages"][-len(kept) :] and kept[-1]["body"] == "late"
    one_more = {**sent, "messages": payload["messages"][-len(kept) - 1 :]}
    assert len(json.dumps(one_more, separators=(",", ":"), ensure_ascii=False).encode()) > BODY_MAX


def test_a_webhook_body_that_fits_is_sent_as_it_is() -> None:
    payload = day(3)
    body = fit_body(payload)
    assert json.loads(body) == payload and b"messages_omitted" not in body


def test_the_webhook_upsert_sends_the_capped_body(fake_crm: FakeCarrierApi) -> None:
    fake_crm.json(201, {"id": "r1", "created": True, "version": 1})
    payload = day(1000)
    for m in payload["messages"]:
        m["body"] = "z" * 1600

    WebhookCrm(fake_crm.url, "secret", timeout=5).upsert("ext-1", payload)

    [seen] = fake_crm.seen
    assert len(seen.body) <= BODY_MAX
    assert seen.json["messages_omitted"] > 0 and seen.json["messages"][-1]["message_id"] == "m999"


# --- Retry-After ---------------------------------------------------------------------------------------


def test_the_webhook_keeps_a_429s_retry_after(fake_crm: FakeCarrierApi) -> None:
    fake_crm.reply = lambda _r: Response('{"reason": "slow down"}', status=429, headers={"Retry-After": "42"})

    with pytest.raises(CrmError) as caught:
        WebhookCrm(fake_crm.url, "secret", timeout=5).upsert("ext-1", day(1))

    assert (caught.value.transient, caught.value.status_code, caught.value.retry_after) == (True, 429, 42.0)
    assert "slow down" in caught.value.reason


@pytest.mark.parametrize("value", ["inf", "Infinity", "1e400", "99999999999"])
def test_a_huge_retry_after_becomes_a_wait_that_can_be_scheduled(
    fake_crm: FakeCarrierApi, value: str
) -> None:
    def answer(_request: Request) -> Response:
        return Response("{}", status=429, headers={"Retry-After": value})

    fake_crm.reply = answer
    with pytest.raises(CrmError) as caught:
        WebhookCrm(fake_crm.url, "secret", timeout=5).upsert("ext-1", day(1))
    assert caught.value.retry_after == RETRY_AFTER_MAX
    assert math.ceil(caught.value.retry_after) == 3600  # what the digest's work() does with it

    rest = requests.get(fake_crm.url, timeout=5)  # the REST adapters read the same header the same way
    assert retry_after(rest) == RETRY_AFTER_MAX


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30", 30.0),
        (" 1.5 ", 1.5),
        ("0", 0.0),
        ("", None),
        (None, None),
        ("-5", None),
        ("nan", None),
        ("-inf", None),
        ("soon", None),
        ("1e400", RETRY_AFTER_MAX),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_retry_after_as_an_http_date() -> None:
    now = datetime(2026, 11, 27, 9, tzinfo=UTC)
    in_two_minutes = format_datetime(now + timedelta(minutes=2), usegmt=True)
    assert parse_retry_after(in_two_minutes, now=now.timestamp()) == 120.0
    assert (
        parse_retry_after(format_datetime(now - timedelta(minutes=2), usegmt=True), now=now.timestamp())
        == 0.0
    )
    assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now=now.timestamp()) == RETRY_AFTER_MAX
