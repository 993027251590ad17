"""Keyword handling: which words opt out, when an opt-in word is a keyword at all, the team a keyword's
answer belongs to, a START to a per-number line after an opt-out from all numbers, and the keywords
Twilio answers itself."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

import pytest

from parley.carriers.base import ParsedInbound, WebhookKind
from parley.carriers.config import CarrierConfig
from parley.carriers.twilio import build
from parley.domain.ids import outbound_message_id
from parley.domain.keywords import Keyword, keyword_of
from parley.domain.models import InboundMessage, MessageStatus, OptOutScope, OurNumber, SendRequest
from tests.fakes import T0, World
from tests.unit.test_twilio_carrier import INBOUND_URL, carrier, webhook

POOL = "+15005550006"  # the default team's, opt-outs from all numbers
OWN = "+15005550008"  # keeps its own opt-outs
SALES = "+15005550020"  # the sales team's own number
ANA = "+14155550100"


@pytest.fixture
def world() -> World:
    w = World()
    w.numbers.save(OurNumber(number=POOL, carrier="fake", is_default=True))
    w.numbers.save(OurNumber(number=OWN, carrier="fake", opt_out_scope=OptOutScope.NUMBER))
    w.numbers.save(OurNumber(number=SALES, carrier="fake", team="sales", is_default=True))
    return w


def text_in(world: World, sid: str, body: str, *, to: str, minutes: int = 0, flag: str | None = None) -> None:
    world.processor().store_inbound(
        InboundMessage(
            carrier="fake",
            carrier_message_id=sid,
            from_number=ANA,
            to_number=to,
            body=body,
            received_at=T0 + timedelta(minutes=minutes),
            opt_out=flag,
        )
    )


def answer_all(world: World) -> list[tuple[str, str]]:
    """Send the queued keyword answers (as the send Lambda does); returns (from, body) as sent."""
    sender = world.sender()
    for reply in world.compliance_replies:
        sender.send_compliance_reply(*reply)
    world.compliance_replies.clear()
    return [(t.from_number, t.body) for t in world.carrier.sent]


def send_from(world: World, number: str, key: str) -> MessageStatus:
    request = SendRequest.model_validate({"to": [ANA], "body": "Your order is ready.", "from": number})
    (message,) = world.sender().handle_request(request, key)
    return message.status


# -- the words ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    ["REVOKE", "optout", "Opt-Out", "UNSUB", "remove", "ARRET", "td", "Stop all", "stopall", " Quit! "],
)
def test_every_carriers_default_opt_out_word_opts_out(body: str) -> None:
    assert keyword_of(body) is Keyword.OPT_OUT


@pytest.mark.parametrize("body", ["please remove me from the list", "TDS", "opt in", "Stop please"])
def test_a_keyword_inside_a_sentence_is_not_one(body: str) -> None:
    assert keyword_of(body) is None


def test_an_opt_out_word_suppresses_later_texts_and_is_confirmed(world: World) -> None:
    text_in(world, "SM1", "Revoke", to=POOL)

    assert answer_all(world) == [(POOL, "You're unsubscribed. Reply START to resubscribe.")]
    assert send_from(world, POOL, "promo") is MessageStatus.SUPPRESSED


# -- opt-in words only count when there is something to lift --------------------------------------


def test_yes_from_a_customer_who_never_opted_out_is_an_ordinary_answer(world: World) -> None:
    text_in(world, "SM1", "Yes", to=POOL)
    text_in(world, "SM2", "yes!", to=POOL, minutes=5)

    assert world.compliance_replies == []
    assert world.opt_outs.get(ANA) is None
    assert [m.body for m in world.messages.items.values()] == ["Yes", "yes!"]  # kept as texts


def test_start_when_already_opted_back_in_changes_nothing_and_gets_no_answer(world: World) -> None:
    text_in(world, "SM1", "STOP", to=POOL)
    text_in(world, "SM2", "START", to=POOL, minutes=1)
    assert len(answer_all(world)) == 2
    before = world.opt_outs.get(ANA)

    text_in(world, "SM3", "START", to=POOL, minutes=2)

    assert world.compliance_replies == []
    assert world.opt_outs.get(ANA) == before


def test_a_redelivered_start_is_answered_once(world: World) -> None:
    text_in(world, "SM1", "STOP", to=POOL)
    text_in(world, "SM2", "START", to=POOL, minutes=1)
    text_in(world, "SM2", "START", to=POOL, minutes=1)  # the webhook again, after consent was lifted

    assert len(world.compliance_replies) == 2  # the stored START is not answered again
    bodies = [body for _, body in answer_all(world)]
    assert bodies == [
        "You're unsubscribed. Reply START to resubscribe.",
        "You're resubscribed. Reply STOP to unsubscribe.",
    ]
    assert len(world.opt_outs.get(ANA).history) == 2  # type: ignore[union-attr]


def test_a_redelivered_stop_is_answered_once_and_a_second_stop_again(world: World) -> None:
    text_in(world, "SM1", "STOP", to=POOL)
    text_in(world, "SM1", "STOP", to=POOL)
    text_in(world, "SM2", "stop", to=POOL, minutes=3)

    assert [body for _, body in answer_all(world)] == ["You're unsubscribed. Reply START to resubscribe."] * 2


# -- START to a per-number line while opted out of all numbers ------------------------------------


def test_start_to_a_per_number_line_lets_that_line_text_again_and_no_other(world: World) -> None:
    text_in(world, "SM1", "STOP", to=POOL)
    text_in(world, "SM2", "START", to=OWN, minutes=1)

    assert answer_all(world)[-1] == (OWN, "You're resubscribed to this number. Reply STOP to unsubscribe.")
    assert send_from(world, OWN, "from-own") is not MessageStatus.SUPPRESSED
    assert send_from(world, POOL, "from-pool") is MessageStatus.SUPPRESSED
    record = world.opt_outs.get(ANA)
    assert record is not None and record.opted_out  # still opted out of all the others

    # A later STOP to all numbers covers the line again.
    text_in(world, "SM3", "STOP", to=POOL, minutes=2)
    assert send_from(world, OWN, "from-own-again") is MessageStatus.SUPPRESSED


def test_a_late_start_to_a_per_number_line_does_not_undo_a_later_stop_to_all(world: World) -> None:
    text_in(world, "SM1", "STOP", to=POOL)
    text_in(world, "SM2", "START", to=OWN, minutes=1)
    text_in(world, "SM3", "STOP", to=POOL, minutes=5)
    answer_all(world)
    history = world.opt_outs.get(ANA).history  # type: ignore[union-attr]

    text_in(world, "SM2", "START", to=OWN, minutes=1)  # the START's webhook again, late

    assert world.compliance_replies == []
    assert world.opt_outs.get(ANA).history == history  # type: ignore[union-attr]
    assert send_from(world, OWN, "from-own") is MessageStatus.SUPPRESSED


def test_start_to_a_per_number_line_the_customer_can_already_hear_from_is_not_answered(world: World) -> None:
    text_in(world, "SM1", "STOP", to=OWN)
    text_in(world, "SM2", "START", to=POOL, minutes=1)  # not opted out of all: nothing to lift

    assert [sender for sender, _ in answer_all(world)] == [OWN]
    assert send_from(world, OWN, "from-own") is MessageStatus.SUPPRESSED


# -- the team of a keyword's answer ---------------------------------------------------------------


def test_stop_to_a_teams_number_is_confirmed_from_it_in_the_teams_conversation(world: World) -> None:
    text_in(world, "SM1", "STOP", to=SALES)

    assert answer_all(world) == [(SALES, "You're unsubscribed. Reply START to resubscribe.")]
    (reply,) = [m for m in world.messages.items.values() if m.compliance]
    assert (reply.team, reply.our_number, reply.status) == ("sales", SALES, MessageStatus.ACCEPTED)
    conversation = world.conversations.get(ANA)
    assert conversation is not None and conversation.team == "sales"
    # Its id derives from the keyword text alone, as the dead-letter handler looks it up.
    assert reply.request_id is not None and reply.request_id.startswith("compliance:in_")
    assert reply.message_id == outbound_message_id(reply.request_id, ANA)


def test_help_to_the_pool_number_in_a_teams_thread_is_answered_as_that_team(world: World) -> None:
    request = SendRequest.model_validate({"to": [ANA], "body": "Hi from sales"})
    world.sender().submit(request, "k1", team="marketing")
    text_in(world, "SM1", "HELP", to=POOL, minutes=1)

    answer_all(world)

    (reply,) = [m for m in world.messages.items.values() if m.compliance]
    assert (reply.team, reply.our_number) == ("marketing", POOL)


def test_a_keyword_to_another_teams_number_is_still_answered_from_it(world: World) -> None:
    world.sender().submit(SendRequest.model_validate({"to": [ANA], "body": "Hi"}), "k1", team="marketing")
    text_in(world, "SM1", "STOP", to=SALES, minutes=1)  # the thread is marketing's

    assert answer_all(world)[-1] == (SALES, "You're unsubscribed. Reply START to resubscribe.")
    (reply,) = [m for m in world.messages.items.values() if m.compliance]
    assert reply.team == "marketing"


# -- Twilio answers its default keywords itself ---------------------------------------------------


def twilio_inbound(body: str, *, self_managed_opt_outs: bool = False) -> ParsedInbound:
    form = urlencode({"MessageSid": "SM1", "From": ANA, "To": POOL, "Body": body})
    (event,) = carrier(self_managed_opt_outs=self_managed_opt_outs).parse(
        WebhookKind.MESSAGES, webhook(INBOUND_URL, form, "unused")
    )
    assert isinstance(event, ParsedInbound)
    return event


@pytest.mark.parametrize(
    ("body", "flag"),
    [
        ("STOP", "STOP"),
        ("optout", "STOP"),
        ("Revoke.", "STOP"),
        ("START", "START"),
        ("yes", "START"),
        ("HELP", "HELP"),
        ("info", "HELP"),
        ("REMOVE", None),  # not one of Twilio's: Parley answers it
        ("STOP ALL", None),
        ("please stop", None),
    ],
)
def test_twilios_default_keywords_come_marked_as_answered(body: str, flag: str | None) -> None:
    assert twilio_inbound(body).opt_out == flag


def test_with_twilios_keyword_handling_off_parley_answers_them() -> None:
    assert twilio_inbound("STOP", self_managed_opt_outs=True).opt_out is None
    env = {"PARLEY_TWILIO_AUTH_TOKEN": "t", "PARLEY_TWILIO_SELF_MANAGED_OPT_OUTS": "true"}
    assert build(CarrierConfig(env)).self_managed_opt_outs is True
    assert build(CarrierConfig({"PARLEY_TWILIO_AUTH_TOKEN": "t"})).self_managed_opt_outs is False


def test_a_keyword_the_carrier_answered_changes_consent_without_a_second_answer(world: World) -> None:
    text_in(world, "SM1", "STOP", to=POOL, flag="STOP")
    text_in(world, "SM2", "yes", to=POOL, minutes=1, flag="START")

    assert world.compliance_replies == []
    record = world.opt_outs.get(ANA)
    assert record is not None and not record.opted_out
    assert [(c.opted_out, c.source) for c in record.history] == [
        (True, "fake:keyword"),
        (False, "fake:keyword"),
    ]


def test_yes_the_carrier_flagged_from_a_customer_never_opted_out_changes_nothing(world: World) -> None:
    text_in(world, "SM1", "Yes", to=POOL, flag="START")

    assert world.compliance_replies == [] and world.opt_outs.get(ANA) is None
