"""An erasure takes the held parts of the customer's long texts with it: their words are in the
parts, and a late part must not bring an erased text back."""

from __future__ import annotations

from parley.domain.models import OurNumber
from tests.fakes import World
from tests.unit.test_concat_parts import CUSTOMER, OURS, bodies, group, part
from tests.unit.test_erasure import service


def test_erasure_deletes_held_parts_and_marks_and_a_late_part_stays_alone() -> None:
    world = World()
    world.numbers.save(OurNumber(number=OURS, carrier="fake", team="sales", owner="ana", is_default=True))
    processor = world.processor()
    processor.handle(part("A1", 1, 2, "my account number is 12345 "))
    processor.handle(part("A2", 2, 2, "thanks"))
    processor.handle(part("B1", 1, 2, "my SSN is 078-05-1120 ", ref="9"))

    erased = service(world).erase(CUSTOMER, by="admin")

    assert erased.done and erased.messages == 1 and erased.parts == 3
    assert bodies(world) == []
    assert world.receipts.parts(group(2)) == {} and world.receipts.parts(group(2, "9")) == {}

    processor.handle(part("B2", 2, 2, "please call", ref="9", hours=1))

    assert bodies(world) == []
    assert list(world.receipts.parts(group(2, "9"))) == ["00002#B2"]
