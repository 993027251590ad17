"""Long texts in parts: the handset's concat reference wraps and carriers deliver at least once, so a
part must never join a text it does not belong to."""

from __future__ import annotations

from datetime import timedelta

import pytest

from parley.domain.models import CarrierEventEnvelope, Concat, InboundMessage, OurNumber
from parley.services.inbound import ASSEMBLED_MARK_SECONDS, HELD_PART_SECONDS, PART_WINDOW
from tests.fakes import T0, World

OURS = "+15005550006"
CUSTOMER = "+14155550100"


@pytest.fixture
def world() -> World:
    w = World()
    w.numbers.save(OurNumber(number=OURS, carrier="fake", team="sales", owner="ana", is_default=True))
    return w


def part(
    sid: str, n: int, total: int, body: str, *, ref: str = "7", hours: float = 0
) -> CarrierEventEnvelope:
    return CarrierEventEnvelope(
        event=InboundMessage(
            carrier="fake",
            carrier_message_id=sid,
            from_number=CUSTOMER,
            to_number=OURS,
            body=body,
            received_at=T0 + timedelta(hours=hours),
            concat=Concat(ref=ref, part=n, total=total),
        ),
        correlation_id="c",
    )


def bodies(world: World) -> list[str]:
    return sorted(m.body for m in world.messages.items.values())


def group(total: int, ref: str = "7") -> str:
    return f"fake#{CUSTOMER}#{OURS}#{ref}#{total}"


def test_a_part_sent_again_after_its_text_was_stored_is_dropped(world: World) -> None:
    processor = world.processor()
    for event in (part("A1", 1, 2, "old-one "), part("A2", 2, 2, "old-two"), part("A2", 2, 2, "old-two")):
        processor.handle(event)
    assert world.receipts.parts(group(2)) == {"assembled#A1": {}, "assembled#A2": {}}  # nothing held

    # the handset's reference wraps back to 7 for its next long text
    processor.handle(part("B1", 1, 2, "new-one ", hours=1))
    processor.handle(part("B2", 2, 2, "new-two", hours=1))

    assert bodies(world) == ["new-one new-two", "old-one old-two"]


def test_assembled_parts_are_remembered_for_a_short_time_only(world: World) -> None:
    processor = world.processor()
    processor.handle(part("A1", 1, 2, "one "))
    processor.handle(part("A2", 2, 2, "two"))
    marks = {k: v for k, v in world.receipts.part_keep_seconds.items() if k[1].startswith("assembled#")}
    assert marks == {
        (group(2), "assembled#A1"): ASSEMBLED_MARK_SECONDS,
        (group(2), "assembled#A2"): ASSEMBLED_MARK_SECONDS,
    }
    assert ASSEMBLED_MARK_SECONDS < 30 * 24 * 3600
    # a held part's body outlives its window by a day only: it can never be assembled after that
    assert world.receipts.part_keep_seconds[(group(2), "00001#A1")] == HELD_PART_SECONDS
    assert PART_WINDOW.total_seconds() < HELD_PART_SECONDS <= 2 * 24 * 3600


def test_a_text_with_another_part_count_does_not_take_a_leftover_part(world: World) -> None:
    processor = world.processor()
    processor.handle(part("A2", 2, 3, "lost-text-two "))  # its other parts never came
    processor.handle(part("B1", 1, 2, "new-one ", hours=2))
    processor.handle(part("B2", 2, 2, "new-two", hours=2))
    assert bodies(world) == ["new-one new-two"]


def test_a_part_left_over_from_days_ago_is_removed_not_joined(world: World) -> None:
    processor = world.processor()
    processor.handle(part("A1", 1, 2, "lost-one "))  # part 2 of this text never came
    processor.handle(part("B2", 2, 2, "new-two", hours=48))
    assert world.messages.items == {}  # waits for its own part 1
    assert sorted(world.receipts.parts(group(2))) == ["00002#B2"]  # the leftover is gone
    processor.handle(part("B1", 1, 2, "new-one ", hours=48))
    assert bodies(world) == ["new-one new-two"]


def test_an_old_part_sent_again_while_a_new_text_arrives_leaves_it_alone(world: World) -> None:
    processor = world.processor()
    processor.handle(part("B1", 1, 2, "new-one ", hours=72))
    processor.handle(part("A2", 2, 2, "old-two"))  # from a text three days ago, not remembered
    assert world.messages.items == {}
    assert sorted(world.receipts.parts(group(2))) == ["00001#B1"]
    processor.handle(part("B2", 2, 2, "new-two", hours=72))
    assert bodies(world) == ["new-one new-two"]


def test_parts_hours_apart_within_the_window_still_make_one_text(world: World) -> None:
    processor = world.processor()
    late = PART_WINDOW.total_seconds() / 3600 - 1
    processor.handle(part("A1", 1, 2, "one "))
    processor.handle(part("A2", 2, 2, "two", hours=late))
    assert bodies(world) == ["one two"]


def test_two_texts_in_the_window_with_one_reference_each_take_their_nearest_parts(world: World) -> None:
    processor = world.processor()
    processor.handle(part("A1", 1, 2, "first-one "))
    processor.handle(part("B1", 1, 2, "second-one ", hours=3))
    processor.handle(part("B2", 2, 2, "second-two", hours=3))
    assert bodies(world) == ["second-one second-two"]
    processor.handle(part("A2", 2, 2, "first-two", hours=0.01))
    assert bodies(world) == ["first-one first-two", "second-one second-two"]


def test_each_assembled_text_is_stored_once(world: World) -> None:
    processor = world.processor()
    for event in (part("A1", 1, 2, "one "), part("A2", 2, 2, "two"), part("A1", 1, 2, "one ")):
        processor.handle(event)
    processor.handle(part("A2", 2, 2, "two"))
    assert bodies(world) == ["one two"]
