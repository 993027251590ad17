"""A customer abroad stays abroad: every carrier's inbound numbers end as the right E.164.

Plivo and Vonage write international numbers as bare digits. Ten of them (6598765432, Singapore;
4799876543, Norway) also read as a North American national number, and that reading would file
the text under a stranger's number and send the reply to them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from parley.carriers.aws_sms import AwsSmsCarrier
from parley.carriers.bandwidth import BandwidthCarrier
from parley.carriers.base import Carrier, ParsedInbound, WebhookKind, WebhookRequest
from parley.carriers.plivo import PlivoCarrier
from parley.carriers.sns import SnsVerifier
from parley.carriers.telnyx import TelnyxCarrier
from parley.carriers.twilio import TwilioCarrier
from parley.carriers.vonage_messages import VonageMessagesCarrier
from parley.carriers.vonage_sms import VonageSmsCarrier
from parley.domain.models import CarrierEventEnvelope, InboundMessage, OurNumber, SendRequest
from parley.edge import queued_event
from tests.fakes import T0, World

EVENTS = Path(__file__).resolve().parents[2] / "events" / "carriers"
OURS = "+15005550006"
ABROAD = ["6598765432", "4799876543"]  # Singapore, Norway: ten digits without the "+"


def sample_body(folder: str) -> str:
    data: dict[str, Any] = json.loads((EVENTS / folder / "inbound_sms.json").read_text())
    body = data["body"]
    return body if isinstance(body, str) else json.dumps(body)


def request(body: str, content_type: str) -> WebhookRequest:
    return WebhookRequest("POST", "https://h/webhooks/x", {"content-type": content_type}, body.encode())


def twilio(digits: str) -> tuple[Carrier, WebhookKind, WebhookRequest]:
    form = {"MessageSid": "SM1", "From": f"+{digits}", "To": OURS, "Body": "Hei", "NumMedia": "0"}
    return TwilioCarrier("AC1", "tok"), WebhookKind.MESSAGES, request(urlencode(form), FORM)


def telnyx(digits: str) -> tuple[Carrier, WebhookKind, WebhookRequest]:
    body = sample_body("telnyx").replace('"+14155550100"', f'"+{digits}"')
    return TelnyxCarrier(), WebhookKind.EVENTS, request(body, JSON)


def bandwidth(digits: str) -> tuple[Carrier, WebhookKind, WebhookRequest]:
    body = sample_body("bandwidth").replace('"+14155550100"', f'"+{digits}"')
    plugin = BandwidthCarrier(
        account_id="1",
        username="u",
        password="p",
        application_id="a",
        callback_username="cu",
        callback_passwords=("cp",),
    )
    return plugin, WebhookKind.EVENTS, request(body, JSON)


def aws(digits: str) -> tuple[Carrier, WebhookKind, WebhookRequest]:
    body = sample_body("aws").replace("+14155550100", f"+{digits}")
    plugin = AwsSmsCarrier(
        SnsVerifier(topic_arns=("arn:aws:sns:us-east-1:1:t",), cache={}), region="us-east-1"
    )
    return plugin, WebhookKind.EVENTS, request(body, "text/plain; charset=UTF-8")


def plivo(digits: str) -> tuple[Carrier, WebhookKind, WebhookRequest]:
    body = sample_body("plivo").replace("From=14155550100", f"From={digits}")
    return PlivoCarrier("MA1", "tok"), WebhookKind.MESSAGES, request(body, FORM)


def vonage_sms(digits: str) -> tuple[Carrier, WebhookKind, WebhookRequest]:
    body = sample_body("vonage").replace('"14155550100"', f'"{digits}"')
    plugin = VonageSmsCarrier(
        api_key="k", api_secret="s", signature_secrets=("x",), signature_method="sha256"
    )
    return plugin, WebhookKind.MESSAGES, request(body, JSON)


def vonage_messages(digits: str) -> tuple[Carrier, WebhookKind, WebhookRequest]:
    body = sample_body("vonage-messages").replace('"14155550100"', f'"{digits}"')
    return VonageMessagesCarrier("k", "s", ("x",)), WebhookKind.MESSAGES, request(body, JSON)


FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
CARRIERS = [twilio, telnyx, bandwidth, aws, plivo, vonage_sms, vonage_messages]


@pytest.mark.parametrize("digits", ABROAD)
@pytest.mark.parametrize("build", CARRIERS, ids=lambda f: f.__name__)
def test_a_ten_digit_number_abroad_is_kept_abroad(build: Any, digits: str) -> None:
    plugin, kind, webhook = build(digits)
    [event] = plugin.parse(kind, webhook)
    assert isinstance(event, ParsedInbound)
    assert event.from_number == f"+{digits}"  # the plugin says it is international

    world = World()
    world.numbers.save(OurNumber(number=OURS, carrier=event.carrier, team="t", owner="o", is_default=True))
    world.processor().handle(
        CarrierEventEnvelope.model_validate({"event": queued_event(event, T0), "correlation_id": "c"})
    )
    (stored,) = world.messages.items.values()
    assert (stored.customer_number, stored.our_number) == (f"+{digits}", OURS)
    assert world.conversations.get(f"+{digits}") is not None
    assert world.conversations.get(f"+1{digits}") is None


@pytest.mark.parametrize("build", [plivo, vonage_messages, vonage_sms], ids=lambda f: f.__name__)
def test_bare_digit_short_codes_and_us_numbers_keep_their_reading(build: Any) -> None:
    plugin, kind, webhook = build("14155550100")
    [event] = plugin.parse(kind, webhook)
    assert event.from_number == "+14155550100"
    assert event.to_number == OURS  # our own number, written "15005550006" by these carriers


@pytest.mark.parametrize("build", [plivo, vonage_messages, vonage_sms], ids=lambda f: f.__name__)
@pytest.mark.parametrize("written", ["0412345678", "12345"])
def test_digits_no_international_number_starts_with_are_passed_as_written(build: Any, written: str) -> None:
    """A leading 0 (a national form) or a short code gets no "+": the webhook still takes the text."""
    plugin, kind, webhook = build(written)
    [event] = plugin.parse(kind, webhook)
    assert event.from_number == written
    queued_event(event, T0)  # not refused as an implausible sender


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("6598765432", "+6598765432"),  # international first: carriers write numbers that way
        ("4799876543", "+4799876543"),
        ("+6598765432", "+6598765432"),
        ("14155550100", "+14155550100"),
        ("4155550100", "+14155550100"),  # no country reads it: the national fallback
        ("12345", "12345"),  # a short code stays as written
        ("ACME", "ACME"),
    ],
)
def test_the_model_reads_a_carrier_number_as_international_first(written: str, read: str) -> None:
    message = InboundMessage(carrier="x", carrier_message_id="1", from_number=written, to_number=OURS)
    assert message.from_number == read


def test_a_number_typed_into_the_api_without_a_country_code_is_national() -> None:
    """People type national numbers; this is where the US reading is meant."""
    request = SendRequest.model_validate({"to": ["(659) 876-5432", "+6598765432"], "body": "hi"})
    assert request.to == ["+16598765432", "+6598765432"]
