"""An erasure removes the held parts of the customer's long texts and the marks of those assembled
from the receipts table (moto), page by page; a part arriving afterwards brings nothing back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from parley.adapters import aws, dynamo
from parley.adapters.dynamo import DynamoErasure, DynamoReceipts, ReceiptItem
from parley.config import Settings
from parley.domain.models import (
    CarrierEventEnvelope,
    Concat,
    InboundMessage,
    MessageStatus,
    OurNumber,
    StatusUpdate,
)
from parley.services.erasure import ErasureService
from tests.fakes import T0, InMemoryErasure, World

OURS = "+15005550006"
CUSTOMER = "+14155550100"
OTHER = "+14155550101"


@pytest.fixture(autouse=True)
def fresh_clients() -> Iterator[None]:
    aws.client.cache_clear()  # boto3 clients are cached per process; each test has its own moto account
    yield
    aws.client.cache_clear()


class PartsOnDynamo(InMemoryErasure):
    """The fakes' deletes, but the parts deleted from the receipts table by DynamoErasure."""

    def delete_parts(self, customer_number: str, start: str | None) -> tuple[int, str | None]:
        return DynamoErasure().delete_parts(customer_number, start)


def part(
    sid: str, n: int, body: str, *, frm: str = CUSTOMER, ref: str = "9", hours: float = 0
) -> CarrierEventEnvelope:
    return CarrierEventEnvelope(
        event=InboundMessage(
            carrier="fake",
            carrier_message_id=sid,
            from_number=frm,
            to_number=OURS,
            body=body,
            received_at=T0 + timedelta(hours=hours),
            concat=Concat(ref=ref, part=n, total=2),
        ),
        correlation_id="c",
    )


def part_keys() -> list[tuple[str, str]]:
    return sorted(
        (str(i.carrier_ref), str(i.receipt_id))
        for i in ReceiptItem.scan(ReceiptItem.carrier_ref.startswith("parts#"))
    )


def test_erasure_removes_the_customers_parts_and_a_late_part_stays_alone(
    aws_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dynamo, "ERASURE_SCAN_PAGE", 2)  # several scan pages
    world = World()
    world.receipts = DynamoReceipts()  # type: ignore[assignment]
    world.numbers.save(OurNumber(number=OURS, carrier="fake", team="sales", owner="ana", is_default=True))
    processor = world.processor()
    processor.handle(part("A1", 1, "my account number is 12345 ", ref="7"))
    processor.handle(part("A2", 2, "thanks", ref="7"))  # assembled: two marks left
    processor.handle(part("B1", 1, "my SSN is 078-05-1120 "))  # held, waiting for part 2
    processor.handle(part("C1", 1, "someone else's ", frm=OTHER))  # another customer's
    parked = StatusUpdate(
        carrier="fake", carrier_message_id=f"SM{CUSTOMER}", status=MessageStatus.DELIVERED, carrier_status="d"
    )
    DynamoReceipts().park(parked)  # a parked receipt is no part: left alone
    assert len(part_keys()) == 4

    store = PartsOnDynamo(world.messages, world.contacts, world.digests, world.conflicts)
    erasure = ErasureService(
        messages=world.messages,
        store=store,
        contacts=world.contacts,
        media=None,
        events=world.events,
        clock=world.clock,
        timezone="UTC",
    )
    erased = erasure.erase(CUSTOMER, by="admin")

    assert erased.done and erased.parts == 3
    assert part_keys() == [(f"parts#fake#{OTHER}#{OURS}#9#2", "00001#C1")]
    assert world.messages.items == {}

    processor.handle(part("B2", 2, "please call", hours=1))  # the rest of the erased text, late

    assert world.messages.items == {}
    assert part_keys() == [
        (f"parts#fake#{CUSTOMER}#{OURS}#9#2", "00002#B2"),
        (f"parts#fake#{OTHER}#{OURS}#9#2", "00001#C1"),
    ]
    assert erasure.erase(CUSTOMER, by="admin").parts == 1
    assert erasure.erase(CUSTOMER, by="admin").parts == 0
    assert DynamoReceipts().parked_for("fake", f"SM{CUSTOMER}") == [parked]
