"""Telnyx's Idempotency-Key across a person's resend.

Telnyx replays a key's first successful answer for 24 hours. A retry of an attempt that may have
gone through must keep its key (Telnyx then answers with that attempt's message, and nobody gets a
second text), but a person's resend of an undelivered text is a new text: with the old key Telnyx
would answer with the old, undelivered message and send nothing. These tests hold the plugin, the
simulator and the send service to that.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from werkzeug.wrappers import Request, Response

from local.sim_telnyx import DEFAULT_API_KEY, SimulatedTelnyx
from parley.carriers.base import OutboundText, SendAccepted, SendFailed
from parley.carriers.telnyx import TelnyxCarrier, idempotency_key
from tests.carrier_api import FakeCarrierApi, carrier_api_fixtures, serving

carrier_api_server, fake = carrier_api_fixtures("fake")

OUR_NUMBER = "+15005550006"
CUSTOMER = "+14155550100"
TEXT = OutboundText("out_0123456789abcdef", OUR_NUMBER, CUSTOMER, "Your order is ready")
ACCEPTED = {"data": {"id": "40385f64-5717-4562-b3fc-2c963f66afa6", "to": [{"status": "queued"}]}}


def resent(text: OutboundText, attempts_before_resend: int) -> OutboundText:
    return OutboundText(
        text.message_id,
        text.from_number,
        text.to_number,
        text.body,
        text.status_callback_url,
        text.media_urls,
        attempts_before_resend=attempts_before_resend,
    )


def send_via(fake: FakeCarrierApi, text: OutboundText) -> Any:
    return TelnyxCarrier(api_key=DEFAULT_API_KEY, api_base=fake.url, timeout=5).send(text)


# -- the key ----------------------------------------------------------------------------------------


def test_a_text_never_resent_keeps_its_message_id_as_the_key() -> None:
    assert idempotency_key("out_abc") == "out_abc"
    assert idempotency_key("out_abc", 0) == "out_abc"


@pytest.mark.parametrize("message_id", ["out_abc", "x" * 255, "has space", "caf\u00e9"])
def test_each_resend_round_has_its_own_key_in_telnyx_format(message_id: str) -> None:
    keys = [idempotency_key(message_id, n) for n in (0, 1, 2, 5)]
    assert len(set(keys)) == 4
    assert keys == [idempotency_key(message_id, n) for n in (0, 1, 2, 5)]  # stable
    for key in keys:
        assert 1 <= len(key) <= 255 and all(c.isascii() and (c.isalnum() or c in "_:-") for c in key)


def test_the_plugin_sends_a_new_key_after_a_resend_and_keeps_it_for_that_rounds_retries(
    fake: FakeCarrierApi,
) -> None:
    fake.json(200, ACCEPTED)
    send_via(fake, TEXT)
    fake.json(500, {"errors": [{"code": "10007", "title": "Unexpected error"}]})
    failed = send_via(fake, resent(TEXT, 1))
    fake.json(200, ACCEPTED)
    send_via(fake, resent(TEXT, 1))  # the retry of the resend's attempt
    first, resend, retry = (seen.headers["idempotency-key"] for seen in fake.seen)
    assert isinstance(failed, SendFailed)
    assert first == TEXT.message_id
    assert resend != first and retry == resend
    assert fake.seen[1].body == fake.seen[0].body  # only the key differs


# -- the simulator behaves as Telnyx does ------------------------------------------------------------


@Request.application
def _ok(_request: Request) -> Response:
    """Our webhook endpoint, for the simulator's receipts: takes them all."""
    return Response("", status=200)


class Clock:
    def __init__(self) -> None:
        self.now = 1_790_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sim(clock: Clock) -> Iterator[tuple[SimulatedTelnyx, TelnyxCarrier]]:
    with serving(_ok) as receiver_url:
        simulator = SimulatedTelnyx(receiver_url, callback_retry_delay=0.01, clock=clock)
        try:
            with serving(simulator) as sim_url:
                yield simulator, TelnyxCarrier(api_key=DEFAULT_API_KEY, api_base=sim_url, timeout=5)
        finally:
            simulator.close()


def sent_ids(*outcomes: object) -> list[str]:
    assert all(isinstance(o, SendAccepted) for o in outcomes), outcomes
    return [o.carrier_message_id for o in outcomes if isinstance(o, SendAccepted)]


def test_a_resend_through_the_simulator_is_a_new_text_and_a_retry_is_not(
    sim: tuple[SimulatedTelnyx, TelnyxCarrier],
) -> None:
    simulator, plugin = sim
    ids = sent_ids(
        plugin.send(TEXT),
        plugin.send(TEXT),  # a retry: Telnyx replays the first answer
        plugin.send(resent(TEXT, 1)),
        plugin.send(resent(TEXT, 1)),  # a retry of the resend
    )
    assert ids[0] == ids[1] and ids[2] == ids[3] and ids[0] != ids[2]
    assert len(simulator.messages(CUSTOMER)) == 2


def test_the_simulator_replays_a_key_for_24_hours_only(
    sim: tuple[SimulatedTelnyx, TelnyxCarrier], clock: Clock
) -> None:
    simulator, plugin = sim
    first = plugin.send(TEXT)
    clock.now += timedelta(hours=23, minutes=59).total_seconds()
    within = plugin.send(TEXT)
    clock.now += timedelta(minutes=1).total_seconds()
    after = plugin.send(TEXT)
    ids = sent_ids(first, within, after)
    assert ids[0] == ids[1] and ids[2] != ids[0]
    assert len(simulator.messages(CUSTOMER)) == 2


# -- the send service tells the carrier which round an attempt belongs to ------------------------------


def test_the_send_service_marks_a_resends_attempts_and_its_retries_alike() -> None:
    from parley.access import Caller
    from parley.carriers.base import FailureKind
    from parley.domain.models import MessageStatus, OurNumber, SendRequest, StatusUpdate
    from tests.fakes import World

    world = World()
    world.numbers.save(OurNumber(number=OUR_NUMBER, carrier="fake", is_default=True))
    sender = world.sender()
    (queued,) = sender.submit(SendRequest.model_validate({"to": [CUSTOMER], "body": "hi"}), "req-1")
    world.send_queue.take()
    world.carrier.script(SendFailed(FailureKind.TRANSIENT, "the carrier timed out", None, None))
    sender.deliver(queued.message_id)  # a retry follows, in the same round
    world.retry_queue.take()
    accepted = sender.deliver(queued.message_id)
    assert accepted is not None and accepted.carrier_message_id is not None
    world.processor().apply_receipt(
        StatusUpdate(
            carrier="fake",
            carrier_message_id=accepted.carrier_message_id,
            status=MessageStatus.UNDELIVERED,
            carrier_status="undelivered",
            error_code="40006",
        )
    )
    world.resender(sender).resend_one(
        queued.message_id, caller=Caller("alice", frozenset({"default"})), by="a"
    )
    world.carrier.script(SendFailed(FailureKind.TRANSIENT, "the carrier timed out", None, None))
    for job in world.send_queue.take():
        sender.deliver(job.body["message_id"])
    world.retry_queue.take()
    sender.deliver(queued.message_id)

    assert [t.attempts_before_resend for t in world.carrier.sent] == [0, 0, 2, 2]
    assert {t.message_id for t in world.carrier.sent} == {queued.message_id}
