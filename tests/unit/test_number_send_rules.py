"""Send rules set per sender number: smart encoding by default, and opt-outs kept per number."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from parley.carriers.base import FailureKind, SendFailed
from parley.domain.encoding import Encoding
from parley.domain.ids import inbound_message_id
from parley.domain.keywords import Keyword
from parley.domain.models import (
    InboundMessage,
    Message,
    MessageStatus,
    OptOutScope,
    OurNumber,
    SendRequest,
    StatusUpdate,
)
from parley.services.inbox import preview
from parley.services.sending import SendRejected
from tests.fakes import T0, World

PLAIN = "+15005550006"  # the team default: no smart encoding, opt-outs from all numbers
SMART = "+15005550007"  # smart encoding on
OWN = "+15005550008"  # keeps its own opt-outs
ANA = "+14155550100"
BO = "+14155550101"

CURLY = "It\u2019s ready \u2014 \u201cpick up\u201d by 5"  # curly quotes and an em dash: UCS-2 as written
PLAIN_CURLY = 'It\'s ready - "pick up" by 5'


@pytest.fixture
def world() -> World:
    w = World()
    w.numbers.save(OurNumber(number=PLAIN, carrier="fake", is_default=True))
    w.numbers.save(OurNumber(number=SMART, carrier="fake", smart_encoding=True))
    w.numbers.save(OurNumber(number=OWN, carrier="fake", opt_out_scope=OptOutScope.NUMBER))
    return w


def req(*to: str, **fields: Any) -> SendRequest:
    return SendRequest.model_validate({"to": list(to) or [ANA], "body": "Your order is ready.", **fields})


def inbound(sid: str, body: str, *, to: str, frm: str = ANA, minutes: int = 0) -> InboundMessage:
    return InboundMessage(
        carrier="fake",
        carrier_message_id=sid,
        from_number=frm,
        to_number=to,
        body=body,
        received_at=T0 + timedelta(minutes=minutes),
    )


def send_from(world: World, sender: str, key: str, to: str = ANA) -> Message:
    (message,) = world.sender().handle_request(req(to, **{"from": sender}), key)
    return message


# -- smart encoding --------------------------------------------------------------------------------


def test_a_request_that_does_not_say_follows_the_sender_numbers_smart_encoding(world: World) -> None:
    (message,) = world.sender().handle_request(req(body=CURLY, **{"from": SMART}), "req-smart")

    assert message.smart_encoding_applied is True
    assert (message.encoding, message.body) == ("GSM-7", PLAIN_CURLY)
    (sent,) = world.carrier.sent
    assert sent.body == PLAIN_CURLY  # the transliterated text is what reaches the carrier


def test_a_number_without_smart_encoding_sends_the_text_as_written(world: World) -> None:
    (message,) = world.sender().handle_request(req(body=CURLY, **{"from": PLAIN}), "req-plain")

    assert message.smart_encoding_applied is False
    assert (message.encoding, message.body) == ("UCS-2", CURLY)
    assert world.carrier.sent[0].body == CURLY


@pytest.mark.parametrize(
    ("sender", "requested", "applied"),
    [(SMART, False, False), (PLAIN, True, True), (SMART, True, True), (PLAIN, False, False)],
)
def test_an_explicit_smart_encoding_in_the_request_wins_over_the_number(
    world: World, sender: str, requested: bool, applied: bool
) -> None:
    request = req(body=CURLY, smart_encoding=requested, **{"from": sender})
    (message,) = world.sender().submit(request, f"req-{sender}-{requested}")

    assert message.smart_encoding_applied is applied
    assert message.encoding == ("GSM-7" if applied else "UCS-2")
    assert message.body == (PLAIN_CURLY if applied else CURLY)


def test_each_recipient_gets_the_setting_of_the_number_it_is_sent_from(world: World) -> None:
    # BO last talked to the smart number (sticky); ANA has no conversation, so gets the team default.
    world.sender().handle_request(req(BO, body="hi", **{"from": SMART}), "req-earlier")

    ana, bo = world.sender().submit(req(ANA, BO, body=CURLY), "req-both")

    assert (ana.our_number, ana.encoding, ana.smart_encoding_applied) == (PLAIN, "UCS-2", False)
    assert (bo.our_number, bo.encoding, bo.smart_encoding_applied) == (SMART, "GSM-7", True)
    assert (ana.body, bo.body) == (CURLY, PLAIN_CURLY)


def test_smart_encoding_is_not_applied_when_the_text_would_stay_ucs2(world: World) -> None:
    text = CURLY + " \U0001f600"  # the emoji has no GSM-7 look-alike: all or nothing
    (message,) = world.sender().submit(req(body=text, **{"from": SMART}), "req-emoji")

    assert (message.encoding, message.body, message.smart_encoding_applied) == ("UCS-2", text, False)


def test_smart_encoding_is_counted_before_the_segment_limit(world: World) -> None:
    # 4 segments as UCS-2, 2 as GSM-7: the smart number's send fits a limit of 2, the plain one's doesn't.
    text = "\u201cok\u201d " * 50
    sender = world.sender(max_segments=2)

    (message,) = sender.submit(req(body=text, **{"from": SMART}), "req-long-smart")
    assert (message.segments, message.smart_encoding_applied) == (2, True)
    with pytest.raises(SendRejected, match="needs 4 segments"):
        sender.submit(req(body=text, **{"from": PLAIN}), "req-long-plain")


def test_an_omitted_smart_encoding_is_none_and_an_explicit_one_is_kept() -> None:
    assert req().smart_encoding is None
    assert req(smart_encoding=False).smart_encoding is False


# -- the preview applies the same number's setting --------------------------------------------------


def test_the_preview_uses_the_sender_numbers_setting_unless_the_request_says(world: World) -> None:
    smart = world.numbers.get(SMART)

    assert preview(CURLY, sender=smart)["encoding"] == "GSM-7"
    assert preview(CURLY, sender=smart)["text"] == PLAIN_CURLY
    assert preview(CURLY, sender=smart, smart_encoding=False)["encoding"] == "UCS-2"
    assert preview(CURLY, sender=world.numbers.get(PLAIN))["encoding"] == "UCS-2"
    assert preview(CURLY, sender=None, smart_encoding=True)["smart_encoding_applied"] is True


def test_the_preview_says_what_smart_encoding_would_save_when_it_is_off() -> None:
    long_curly = CURLY + " " + "x" * 70  # UCS-2 makes it two parts; GSM-7 one
    off = preview(long_curly, sender=None, smart_encoding=False)
    assert (off["encoding"], off["segments"], off["segments_with_smart_encoding"]) == ("UCS-2", 2, 1)
    on = preview(long_curly, sender=None, smart_encoding=True)
    assert (on["segments"], on["segments_with_smart_encoding"]) == (1, 1)
    emoji = preview("Thanks \U0001f600 " + "x" * 70, sender=None, smart_encoding=False)
    assert emoji["segments"] == emoji["segments_with_smart_encoding"] == 2  # nothing to swap for an emoji


@pytest.mark.parametrize("requested", [None, True, False])
@pytest.mark.parametrize("sender", [SMART, PLAIN])
def test_the_preview_matches_what_the_send_stores(world: World, sender: str, requested: bool | None) -> None:
    service = world.sender()
    chosen = service.sender_for(from_number=sender, to=ANA, team="default")
    shown = preview(CURLY, smart_encoding=requested, sender=chosen)

    (stored,) = service.submit(
        req(body=CURLY, smart_encoding=requested, **{"from": sender}), f"req-{sender}-{requested}"
    )

    assert (shown["text"], shown["encoding"], shown["segments"], shown["smart_encoding_applied"]) == (
        stored.body,
        Encoding(stored.encoding or ""),
        stored.segments,
        stored.smart_encoding_applied,
    )


def test_the_previews_sender_is_chosen_as_the_send_chooses_it(world: World) -> None:
    service = world.sender()
    service.handle_request(req(BO, **{"from": SMART}), "req-sticky")

    assert service.sender_for(from_number=None, to=BO, team="default") == world.numbers.get(SMART)
    assert service.sender_for(from_number=None, to=ANA, team="default") == world.numbers.get(PLAIN)
    assert service.sender_for(from_number=None, to=None, team="default") == world.numbers.get(PLAIN)
    assert service.sender_for(from_number=OWN, to=BO, team="default") == world.numbers.get(OWN)
    with pytest.raises(SendRejected, match="not one of our numbers"):
        service.sender_for(from_number="+15005550099", to=None, team="default")


# -- opt-outs kept per number ---------------------------------------------------------------------


def test_stop_to_a_per_number_sender_stops_texts_from_that_number_only(world: World) -> None:
    world.processor().store_inbound(inbound("SM1", "STOP", to=OWN))

    record = world.opt_outs.get(ANA)
    assert record is not None
    assert (record.opted_out, record.numbers) == (False, [OWN])
    assert [(c.opted_out, c.number) for c in record.history] == [(True, OWN)]

    blocked = send_from(world, OWN, "req-own")
    assert blocked.status is MessageStatus.SUPPRESSED
    assert blocked.error_reason == f"the recipient has opted out of messages from {OWN}"
    allowed = send_from(world, PLAIN, "req-plain")
    assert allowed.status is MessageStatus.ACCEPTED
    assert [t.from_number for t in world.carrier.sent] == [PLAIN]


def test_start_to_a_per_number_sender_opts_back_in_to_that_number(world: World) -> None:
    processor = world.processor()
    processor.store_inbound(inbound("SM1", "STOP", to=OWN))
    processor.store_inbound(inbound("SM2", "start", to=OWN, minutes=1))

    record = world.opt_outs.get(ANA)
    assert record is not None and (record.opted_out, record.numbers) == (False, [])
    assert [(c.opted_out, c.number) for c in record.history] == [(True, OWN), (False, OWN)]
    assert send_from(world, OWN, "req-back").status is MessageStatus.ACCEPTED


def test_stop_to_an_all_numbers_sender_stops_texts_from_every_number(world: World) -> None:
    world.processor().store_inbound(inbound("SM1", "STOP", to=PLAIN))

    record = world.opt_outs.get(ANA)
    assert record is not None and (record.opted_out, record.numbers) == (True, [])
    assert record.history[0].number is None
    for number in (PLAIN, SMART, OWN):
        message = send_from(world, number, f"req-{number}")
        assert message.status is MessageStatus.SUPPRESSED
        assert message.error_reason == "the recipient has opted out of messages from all our numbers"
    assert world.carrier.sent == []


def test_the_two_scopes_are_kept_apart_in_one_record(world: World) -> None:
    processor = world.processor()
    processor.store_inbound(inbound("SM1", "STOP", to=OWN))
    processor.store_inbound(inbound("SM2", "STOP", to=PLAIN, minutes=1))
    processor.store_inbound(inbound("SM3", "START", to=PLAIN, minutes=2))  # lifts the global one only

    record = world.opt_outs.get(ANA)
    assert record is not None and (record.opted_out, record.numbers) == (False, [OWN])
    assert [(c.opted_out, c.number) for c in record.history] == [(True, OWN), (True, None), (False, None)]
    assert send_from(world, OWN, "req-own").status is MessageStatus.SUPPRESSED
    assert send_from(world, SMART, "req-smart").status is MessageStatus.ACCEPTED


def test_a_repeated_stop_to_a_per_number_sender_is_recorded_once_and_answered_per_message(
    world: World,
) -> None:
    processor = world.processor()
    first = inbound("SM1", "STOP", to=OWN)
    processor.store_inbound(first)
    processor.store_inbound(first)  # the carrier posts the same webhook again
    processor.store_inbound(inbound("SM2", "stop", to=OWN, minutes=1))  # the customer says it again

    record = world.opt_outs.get(ANA)
    assert record is not None and len(record.history) == 1
    sender = world.sender()
    for reply in world.compliance_replies:
        sender.send_compliance_reply(*reply)

    # One confirmation per keyword message, from the number texted, however often each was delivered.
    assert [(t.from_number, t.to_number) for t in world.carrier.sent] == [(OWN, ANA), (OWN, ANA)]
    assert {r[3] for r in world.compliance_replies} == {
        inbound_message_id("fake", "SM1"),
        inbound_message_id("fake", "SM2"),
    }


def test_the_keyword_answers_name_the_scope_of_the_number_texted(world: World) -> None:
    sender = world.sender()

    own_stop = sender.send_compliance_reply(Keyword.OPT_OUT, ANA, OWN, "in_1")
    own_start = sender.send_compliance_reply(Keyword.OPT_IN, ANA, OWN, "in_2")
    own_help = sender.send_compliance_reply(Keyword.HELP, ANA, OWN, "in_3")
    plain_stop = sender.send_compliance_reply(Keyword.OPT_OUT, BO, PLAIN, "in_4")

    assert own_stop is not None and own_stop.body.startswith("You're unsubscribed from this number.")
    assert own_start is not None and own_start.body.startswith("You're resubscribed to this number.")
    assert own_help is not None and own_help.body == "Reply STOP to unsubscribe."
    assert plain_stop is not None and plain_stop.body == "You're unsubscribed. Reply START to resubscribe."


def test_the_stop_confirmation_from_a_per_number_sender_reaches_the_opted_out_customer_once(
    world: World,
) -> None:
    world.processor().store_inbound(inbound("SM1", "STOP", to=OWN))
    ((keyword, to, our_number, reference),) = world.compliance_replies
    sender = world.sender()

    first = sender.send_compliance_reply(keyword, to, our_number, reference)
    again = sender.send_compliance_reply(keyword, to, our_number, reference)

    assert first is not None and first.status is MessageStatus.ACCEPTED
    assert again is not None and again.message_id == first.message_id
    assert len(world.carrier.sent) == 1


def test_a_stop_the_carrier_answered_on_a_per_number_sender_is_scoped_to_it(world: World) -> None:
    flagged = inbound("SM1", "STOP", to=OWN).model_copy(update={"opt_out": "STOP"})
    world.processor().store_inbound(flagged)

    record = world.opt_outs.get(ANA)
    assert record is not None and (record.opted_out, record.numbers) == (False, [OWN])
    assert record.history[0].source == "fake:keyword"
    assert world.compliance_replies == []  # the carrier already answered it


def test_a_receipt_saying_the_recipient_opted_out_is_scoped_to_the_number_sent_from(world: World) -> None:
    sent = send_from(world, OWN, "req-1")
    assert sent.carrier_message_id is not None
    world.processor().apply_receipt(
        StatusUpdate(
            carrier="fake",
            carrier_message_id=sent.carrier_message_id,
            status=MessageStatus.FAILED,
            carrier_status="failed",
            error_code="40300",
            occurred_at=T0,
            opted_out=True,
        )
    )

    record = world.opt_outs.get(ANA)
    assert record is not None and (record.opted_out, record.numbers) == (False, [OWN])
    assert (record.history[0].source, record.history[0].number) == ("fake:40300", OWN)


@pytest.mark.parametrize(("number", "expected"), [(OWN, (False, [OWN])), (PLAIN, (True, []))])
def test_a_carrier_refusing_a_send_as_opted_out_records_the_senders_scope(
    world: World, number: str, expected: tuple[bool, list[str]]
) -> None:
    world.carrier.script(SendFailed(FailureKind.PERMANENT, "opted out", "21610", 400, True))

    assert send_from(world, number, "req-refused").status is MessageStatus.FAILED

    record = world.opt_outs.get(ANA)
    assert record is not None and (record.opted_out, record.numbers) == expected


def test_a_per_number_opt_out_applies_to_the_sticky_sender_too(world: World) -> None:
    world.processor().store_inbound(inbound("SM1", "STOP", to=OWN))  # the conversation is now with OWN

    (message,) = world.sender().submit(req(), "req-sticky")

    assert (message.our_number, message.status) == (OWN, MessageStatus.SUPPRESSED)
    assert OWN in (message.error_reason or "")
