"""Long texts in parts against the DynamoDB parts store (moto): what the fake promises, for real."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from parley.adapters import aws
from parley.adapters.dynamo import DynamoReceipts, ReceiptItem
from parley.config import Settings
from parley.domain.models import CarrierEventEnvelope, Concat, InboundMessage, OurNumber
from parley.services.inbound import ASSEMBLED_MARK_SECONDS, HELD_PART_SECONDS
from tests.fakes import T0, World

OURS = "+15005550006"
CUSTOMER = "+14155550100"
GROUP = f"fake#{CUSTOMER}#{OURS}#7#2"


@pytest.fixture(autouse=True)
def fresh_clients() -> Iterator[None]:
    aws.client.cache_clear()  # boto3 clients are cached per process; each test has its own moto account
    yield
    aws.client.cache_clear()


def part(sid: str, n: int, body: str, *, hours: float = 0) -> CarrierEventEnvelope:
    return CarrierEventEnvelope(
        event=InboundMessage(
            carrier="fake",
            carrier_message_id=sid,
            from_number=CUSTOMER,
            to_number=OURS,
            body=body,
            received_at=T0 + timedelta(hours=hours),
            concat=Concat(ref="7", part=n, total=2),
        ),
        correlation_id="c",
    )


def test_a_repeated_part_and_a_leftover_never_join_the_next_text(aws_settings: Settings) -> None:
    world = World()
    world.receipts = DynamoReceipts()  # type: ignore[assignment]
    world.numbers.save(OurNumber(number=OURS, carrier="fake", team="sales", owner="ana", is_default=True))
    processor = world.processor()

    processor.handle(part("A1", 1, "old-one "))
    processor.handle(part("A2", 2, "old-two"))
    processor.handle(part("A2", 2, "old-two"))  # sent again once the text was stored
    processor.handle(part("C1", 1, "lost-one "))  # a text whose part 2 never comes
    assert sorted(stored()) == ["00001#C1", "assembled#A1", "assembled#A2"]
    assert abs(expiry("00001#C1") - (time.time() + HELD_PART_SECONDS)) < 120
    processor.handle(part("B2", 2, "new-two", hours=30))  # the reference wrapped back to 7
    processor.handle(part("B1", 1, "new-one ", hours=30))

    assert sorted(m.body for m in world.messages.items.values()) == ["new-one new-two", "old-one old-two"]
    assert sorted(stored()) == ["assembled#A1", "assembled#A2", "assembled#B1", "assembled#B2"]
    assert abs(expiry("assembled#B1") - (time.time() + ASSEMBLED_MARK_SECONDS)) < 120
    assert ASSEMBLED_MARK_SECONDS < DynamoReceipts.RETENTION_SECONDS
    assert DynamoReceipts().all_parked(10) == []  # parts and marks are not parked receipts


def stored() -> dict[str, ReceiptItem]:
    return {str(i.receipt_id): i for i in ReceiptItem.query("parts#" + GROUP, consistent_read=True)}


def expiry(key: str) -> float:
    value = stored()[key].expires_at
    assert value is not None
    return float(value)
