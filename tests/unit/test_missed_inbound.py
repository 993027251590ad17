"""The missed-webhook sweep: texts the carrier holds and we don't are queued once, through the same
idempotent store as a webhook; what we hold, other carriers and a failing number change nothing."""

from __future__ import annotations

from datetime import datetime, timedelta

from parley.carriers.base import ParsedInbound
from parley.domain.ids import inbound_message_id
from parley.domain.models import CarrierEventEnvelope, InboundMessage, OurNumber
from parley.services.missed_inbound import MissedInboundSweep
from tests.fakes import FakeCarrier, World

OURS = "+15005550006"
OTHER = "+15005550007"
CUSTOMER = "+14155550100"


class ListingCarrier(FakeCarrier):
    """A carrier that can list what it received (ReceivedLookup), per our number."""

    def __init__(self) -> None:
        super().__init__("listing")
        self.held: dict[str, list[ParsedInbound]] = {}
        self.asked: list[tuple[str, datetime]] = []
        self.broken: set[str] = set()

    def receive(self, our_number: str, sid: str, body: str, at: datetime) -> ParsedInbound:
        text = ParsedInbound(self.name, sid, CUSTOMER, our_number, body, received_at=at)
        self.held.setdefault(our_number, []).insert(0, text)  # newest first
        return text

    def list_received(self, our_number: str, since: datetime) -> list[ParsedInbound]:
        self.asked.append((our_number, since))
        if our_number in self.broken:
            raise RuntimeError("carrier answered 503")
        return [t for t in self.held.get(our_number, []) if t.received_at >= since]


def setup() -> tuple[World, ListingCarrier, MissedInboundSweep, list[tuple[str, float, dict[str, str]]]]:
    carrier = ListingCarrier()
    world = World(carrier=carrier)
    world.numbers.save(OurNumber(number=OURS, carrier="listing", is_default=True))
    world.numbers.save(OurNumber(number=OTHER, carrier="listing"))
    world.numbers.save(OurNumber(number="+15005550008", carrier="unconfigured"))  # skipped, not fatal
    metrics: list[tuple[str, float, dict[str, str]]] = []

    class Recorded:
        def put(self, name: str, value: float = 1, unit: str = "Count", **dimensions: str) -> None:
            metrics.append((name, value, dimensions))

    sweep = MissedInboundSweep(
        numbers=world.numbers,
        carrier=world.carriers,
        messages=world.messages,
        inbound_queue=world.inbound_queue,
        clock=world.clock,
        metrics=Recorded(),
        window=timedelta(hours=1),
    )
    return world, carrier, sweep, metrics


def process_queue(world: World) -> None:
    processor = world.processor()
    for job in world.inbound_queue.take():
        processor.handle(CarrierEventEnvelope.model_validate(job.body))


def test_a_text_we_never_got_is_stored_once_and_the_next_sweep_adds_nothing() -> None:
    world, carrier, sweep, metrics = setup()
    now = world.clock()
    delivered = carrier.receive(OURS, "SM1", "came by webhook", now - timedelta(minutes=20))
    world.processor().store_inbound(_inbound(delivered))
    carrier.receive(OURS, "SM2", "webhook lost", now - timedelta(minutes=10))
    carrier.receive(OURS, "SM0", "older than the window", now - timedelta(hours=2))

    report = sweep.run()

    assert (report.numbers_checked, report.texts_listed, report.recovered) == (2, 2, 1)
    assert [j.body["event"]["carrier_message_id"] for j in world.inbound_queue.jobs] == ["SM2"]
    assert carrier.asked == [(OURS, now - timedelta(hours=1)), (OTHER, now - timedelta(hours=1))]
    assert metrics == [("InboundRecovered", 1, {"Carrier": "listing"})]
    process_queue(world)
    stored = world.messages.get(inbound_message_id("listing", "SM2"))
    assert stored is not None and (stored.body, stored.customer_number) == ("webhook lost", CUSTOMER)
    assert stored.created_at == now - timedelta(minutes=10)  # when the customer sent it, not now
    assert world.conversations.items[CUSTOMER].message_count == 2

    again = sweep.run()
    assert (again.texts_listed, again.recovered) == (2, 0)
    assert world.inbound_queue.jobs == []


def test_the_webhook_arriving_after_the_sweep_queued_the_text_still_stores_it_once() -> None:
    world, carrier, sweep, _ = setup()
    late = carrier.receive(OURS, "SM3", "slow webhook", world.clock() - timedelta(minutes=1))
    sweep.run()
    world.processor().store_inbound(_inbound(late))  # the webhook wins the race
    process_queue(world)  # then the sweep's copy is processed: a duplicate, ignored
    assert world.conversations.items[CUSTOMER].message_count == 1


def test_a_number_whose_carrier_fails_is_reported_masked_and_the_others_still_swept() -> None:
    world, carrier, sweep, _ = setup()
    carrier.broken.add(OURS)
    carrier.receive(OTHER, "SM4", "to the other line", world.clock() - timedelta(minutes=5))
    report = sweep.run()
    assert report.numbers_failed == ["+1********06"]
    assert report.recovered == 1
    assert OURS not in str(report.as_dict())


def _inbound(text: ParsedInbound) -> InboundMessage:
    """What the processor makes of a webhook's event."""
    return InboundMessage.model_validate(text.to_wire())


def test_a_text_our_webhook_would_refuse_is_refused_by_the_sweep_too_not_queued_to_fail() -> None:
    world, carrier, sweep, _ = setup()
    bad = ParsedInbound("listing", "SM5", "+abc", OURS, "from nowhere", received_at=world.clock())
    carrier.held.setdefault(OURS, []).insert(0, bad)
    carrier.receive(OURS, "SM6", "a real one", world.clock() - timedelta(minutes=1))
    report = sweep.run()
    assert (report.recovered, report.refused) == (1, 1)
    assert [j.body["event"]["carrier_message_id"] for j in world.inbound_queue.jobs] == ["SM6"]
