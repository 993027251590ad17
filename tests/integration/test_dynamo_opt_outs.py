"""The consent record on moto: one item per customer, holding both the opt-out from all our numbers
and the numbers opted out of one by one, with the trail saying which number each change was about."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from parley.adapters.dynamo import DynamoOptOuts, OptOutItem
from parley.config import Settings

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
CUSTOMER = "+14155550100"
OURS_A = "+15005550006"
OURS_B = "+15005550007"


def _at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_per_number_and_global_opt_outs_share_one_item_and_lift_independently(aws_settings: Settings) -> None:
    opt_outs = DynamoOptOuts()

    opt_outs.record(CUSTOMER, opted_out=True, source="keyword", at=_at(0), detail="STOP", number=OURS_B)
    opt_outs.record(CUSTOMER, opted_out=True, source="keyword", at=_at(1), detail="STOP", number=OURS_A)
    opt_outs.record(CUSTOMER, opted_out=True, source="twilio:21610", at=_at(2), detail=None)
    opt_outs.record(CUSTOMER, opted_out=False, source="keyword", at=_at(3), detail="START")  # all
    opt_outs.record(CUSTOMER, opted_out=False, source="keyword", at=_at(4), detail="START", number=OURS_A)

    stored = DynamoOptOuts().get(CUSTOMER)  # read back through a fresh adapter
    assert stored is not None
    assert (stored.opted_out, stored.numbers, stored.updated_at) == (False, [OURS_B], _at(4))
    assert [(c.opted_out, c.number, c.source) for c in stored.history] == [
        (True, OURS_B, "keyword"),
        (True, OURS_A, "keyword"),
        (True, None, "twilio:21610"),
        (False, None, "keyword"),
        (False, OURS_A, "keyword"),
    ]
    assert OptOutItem.count() == 1
    item = OptOutItem.get(CUSTOMER, consistent_read=True)
    assert (item.opted_out, int(item.version)) == (False, 4)  # the key attribute is the global flag


def test_a_first_per_number_opt_out_does_not_opt_the_customer_out_everywhere(aws_settings: Settings) -> None:
    returned = DynamoOptOuts().record(
        CUSTOMER, opted_out=True, source="keyword", at=T0, detail="STOP", number=OURS_B
    )

    assert (returned.opted_out, returned.numbers) == (False, [OURS_B])
    assert OptOutItem.get(CUSTOMER, consistent_read=True).opted_out is False
    assert DynamoOptOuts().get(CUSTOMER) == returned


def test_a_record_written_before_per_number_opt_outs_still_reads_and_grows(aws_settings: Settings) -> None:
    legacy = {
        "customer_number": CUSTOMER,
        "opted_out": True,
        "updated_at": T0.isoformat(),
        "history": [{"opted_out": True, "at": T0.isoformat(), "source": "keyword", "detail": "STOP"}],
    }
    OptOutItem(customer_number=CUSTOMER, opted_out=True, version=0, doc=legacy).save()
    opt_outs = DynamoOptOuts()

    before = opt_outs.get(CUSTOMER)
    after = opt_outs.record(
        CUSTOMER, opted_out=True, source="keyword", at=_at(1), detail="STOP", number=OURS_B
    )

    assert before is not None
    assert (before.opted_out, before.numbers, before.updated_at) == (True, [], T0)
    assert [(c.opted_out, c.number) for c in before.history] == [(True, None)]
    assert (after.opted_out, after.numbers, len(after.history)) == (True, [OURS_B], 2)
    assert opt_outs.get(CUSTOMER) == after


def test_get_many_reads_the_records_that_exist_in_batches(aws_settings: Settings) -> None:
    opt_outs = DynamoOptOuts()
    customers = [f"+1415555{1000 + i:04d}" for i in range(130)]
    for number in customers[::2]:
        opt_outs.record(number, opted_out=True, source="keyword", at=T0, detail="STOP")
    opt_outs.record(customers[1], opted_out=True, source="keyword", at=T0, detail="STOP", number=OURS_A)

    found = {o.customer_number: o for o in DynamoOptOuts().get_many([*customers, customers[0]])}
    assert set(found) == {*customers[::2], customers[1]}
    assert found[customers[0]].opted_out and not found[customers[1]].opted_out
    assert found[customers[1]].numbers == [OURS_A]
    assert DynamoOptOuts().get_many([]) == []
