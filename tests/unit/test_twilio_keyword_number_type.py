"""Whether Twilio answered a keyword depends on the type of our number the customer texted: Twilio
answers on long codes and toll-free, never on short codes, and toll-free's network layer opts back in
on START and UNSTOP alone (carriers.md 1.5). What Twilio left unanswered, Parley answers."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

import pytest

from parley.carriers.base import ParsedInbound, WebhookKind
from parley.domain.keywords import Keyword, answered_by_carrier
from parley.domain.models import InboundMessage, OurNumber, SendRequest
from parley.domain.rate import NumberType
from parley.services.sending import SendRejected
from tests.fakes import T0, World
from tests.unit.test_twilio_carrier import INBOUND_URL, carrier, webhook

LONG = "+15005550006"
TOLL_FREE = "+18005550100"
SHORT = "12345"
ANA = "+14155550100"


@pytest.fixture
def world() -> World:
    w = World()
    w.numbers.save(OurNumber(number=LONG, carrier="twilio", is_default=True))
    w.numbers.save(OurNumber(number=TOLL_FREE, carrier="twilio", number_type=NumberType.TOLL_FREE))
    w.numbers.save(OurNumber(number=SHORT, carrier="twilio", number_type=NumberType.SHORT_CODE))
    return w


def twilio_text(
    world: World, sid: str, body: str, *, to: str, minutes: int = 0, self_managed: bool = False
) -> None:
    """A text as Twilio's webhook reports it, through the parser and into inbound processing."""
    form = urlencode({"MessageSid": sid, "From": ANA, "To": to, "Body": body})
    (event,) = carrier(self_managed_opt_outs=self_managed).parse(
        WebhookKind.MESSAGES, webhook(INBOUND_URL, form, "unused")
    )
    assert isinstance(event, ParsedInbound)
    inbound = InboundMessage.model_validate(event.to_wire()).model_copy(
        update={"received_at": T0 + timedelta(minutes=minutes)}
    )
    world.processor().store_inbound(inbound)


def answered(world: World) -> list[tuple[Keyword, str]]:
    return [(keyword, ours) for keyword, _customer, ours, _id in world.compliance_replies]


@pytest.mark.parametrize("body", ["STOP", "HELP", "START"])
def test_a_keyword_to_a_short_code_is_answered_by_parley(world: World, body: str) -> None:
    if body == "START":
        twilio_text(world, "SM0", "STOP", to=SHORT)
        world.compliance_replies.clear()
    twilio_text(world, "SM1", body, to=SHORT, minutes=1)

    assert answered(world) == [
        ({"STOP": Keyword.OPT_OUT, "HELP": Keyword.HELP}.get(body, Keyword.OPT_IN), SHORT)
    ]


def test_stop_to_a_short_code_is_recorded_and_confirmed(world: World) -> None:
    twilio_text(world, "SM1", "STOP", to=SHORT)

    record = world.opt_outs.get(ANA)
    assert record is not None and record.opted_out
    assert [c.source for c in record.history] == ["keyword"]  # Parley's, not Twilio's
    assert answered(world) == [(Keyword.OPT_OUT, SHORT)]


def test_yes_to_a_toll_free_number_is_answered_by_parley(world: World) -> None:
    twilio_text(world, "SM1", "STOP", to=TOLL_FREE)
    twilio_text(world, "SM2", "yes", to=TOLL_FREE, minutes=1)

    assert answered(world) == [(Keyword.OPT_IN, TOLL_FREE)]  # Twilio's network layer answered the STOP
    record = world.opt_outs.get(ANA)
    assert record is not None and not record.opted_out


@pytest.mark.parametrize("body", ["START", "unstop"])
def test_start_and_unstop_to_a_toll_free_number_are_twilios_to_answer(world: World, body: str) -> None:
    twilio_text(world, "SM1", "STOP", to=TOLL_FREE)
    twilio_text(world, "SM2", body, to=TOLL_FREE, minutes=1)

    assert answered(world) == []
    record = world.opt_outs.get(ANA)
    assert record is not None and not record.opted_out


@pytest.mark.parametrize("body", ["STOP", "yes", "HELP"])
def test_a_long_codes_keywords_are_twilios_to_answer(world: World, body: str) -> None:
    twilio_text(world, "SM0", "STOP", to=LONG)
    twilio_text(world, "SM1", body, to=LONG, minutes=1)

    assert answered(world) == []


def test_with_twilios_keyword_handling_off_parley_answers_on_every_number(world: World) -> None:
    twilio_text(world, "SM1", "STOP", to=LONG, self_managed=True)
    twilio_text(world, "SM2", "START", to=TOLL_FREE, minutes=1, self_managed=True)

    assert answered(world) == [(Keyword.OPT_OUT, LONG), (Keyword.OPT_IN, TOLL_FREE)]


@pytest.mark.parametrize("number_type", [NumberType.SHORT_CODE, NumberType.TOLL_FREE, None])
def test_another_carriers_own_flag_means_it_answered(number_type: NumberType | None) -> None:
    assert answered_by_carrier("telnyx", "START", "yes", number_type) is True
    assert answered_by_carrier("twilio", None, "STOP", number_type) is False


def test_parleys_answer_goes_from_the_short_code(world: World) -> None:
    world.numbers.save(OurNumber(number=SHORT, carrier="fake", number_type=NumberType.SHORT_CODE))
    twilio_text(world, "SM1", "STOP", to=SHORT)

    sender = world.sender()
    for reply in world.compliance_replies:
        sender.send_compliance_reply(*reply)

    assert [(t.from_number, t.to_number) for t in world.carrier.sent] == [(SHORT, ANA)]


def test_a_short_code_is_a_sender_as_written_and_must_be_ours(world: World) -> None:
    assert SendRequest.model_validate({"to": [ANA], "body": "Hi", "from": " 12345 "}).from_number == SHORT
    with pytest.raises(ValueError, match="wrong number of digits"):
        SendRequest.model_validate({"to": [ANA], "body": "Hi", "from": "123456789"})
    with pytest.raises(SendRejected, match="not one of our numbers"):
        world.sender().sender_for(from_number="54321", to=ANA, team="default")
