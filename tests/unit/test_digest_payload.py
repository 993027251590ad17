"""What a digest record holds: attachments named (never the carrier's link), and only the texts of
the conversation: none that never reached the customer, none a person deleted."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from parley.domain.models import Direction, InboundMessage, Media, Message, MessageStatus, OurNumber
from parley.services.digest import external_id, in_crm_log
from tests.fakes import T0, World

OURS = "+15005550006"
ANA = "+14155550100"
DAY = T0.date()
ANA_ID = external_id("lead-14155550100", DAY.isoformat())  # the lead routing makes for her


@pytest.fixture
def world() -> World:
    w = World()
    w.numbers.save(OurNumber(number=OURS, carrier="fake", is_default=True))
    return w


def text_in(world: World, sid: str, at: datetime, body: str) -> Message:
    world.processor().store_inbound(
        InboundMessage(
            carrier="fake", carrier_message_id=sid, from_number=ANA, to_number=OURS, body=body, received_at=at
        )
    )
    return next(m for m in world.messages.items.values() if m.carrier_message_id == sid)


def change(world: World, message: Message, **fields: object) -> None:
    world.messages.items[message.message_id] = message.model_copy(update=fields)


def test_a_picture_only_text_lists_its_media_types_and_no_link(world: World) -> None:
    picture = text_in(world, "SM1", T0, "")
    change(
        world,
        picture,
        media=[
            Media(
                url="https://carrier.example/m/1?sig=x",
                content_type="image/jpeg",
                stored_at="s3://b/media/1/0",
            ),
            Media(url="https://carrier.example/m/2?sig=y", content_type=None),
        ],
    )
    text_in(world, "SM2", T0 + timedelta(minutes=1), "no picture here")

    world.digest().run(DAY)

    first, second = world.crm.records[ANA_ID]["messages"]
    assert first["body"] == ""
    assert first["media"] == [{"content_type": "image/jpeg"}, {"content_type": None}]
    assert "carrier.example" not in str(world.crm.records[ANA_ID])  # the carrier's links expire
    assert "s3://" not in str(world.crm.records[ANA_ID])
    assert "media" not in second  # a text without attachments posts what it always did


def test_suppressed_canceled_and_deleted_texts_stay_out_of_the_record(world: World) -> None:
    kept = text_in(world, "SM1", T0, "Are you open?")
    deleted = text_in(world, "SM2", T0 + timedelta(minutes=1), "wrong thread, deleted")
    change(world, deleted, deleted_at=T0 + timedelta(minutes=2), deleted_by="u1")
    for n, status in enumerate((MessageStatus.SUPPRESSED, MessageStatus.CANCELED, MessageStatus.DELIVERED)):
        reply = text_in(world, f"SM-out-{n}", T0 + timedelta(minutes=3 + n), f"reply {status.value}")
        change(world, reply, status=status, direction=Direction.OUTBOUND)

    report = world.digest().run(DAY)

    assert report.created == 1
    record = world.crm.records[ANA_ID]
    assert [m["body"] for m in record["messages"]] == [kept.body, "reply delivered"]
    assert record["message_count"] == 2


def test_a_day_of_only_unsent_or_deleted_texts_posts_no_record(world: World) -> None:
    suppressed = text_in(world, "SM1", T0, "never left")
    change(world, suppressed, status=MessageStatus.SUPPRESSED)
    deleted = text_in(world, "SM2", T0 + timedelta(minutes=1), "deleted")
    change(world, deleted, deleted_at=T0 + timedelta(minutes=2))

    report = world.digest().run(DAY)

    assert (report.created, report.updated, report.failed) == (0, 0, [])
    assert world.crm.calls == []


def test_a_text_deleted_after_posting_leaves_the_days_record(world: World) -> None:
    text_in(world, "SM1", T0, "keep me")
    oops = text_in(world, "SM2", T0 + timedelta(minutes=1), "delete me")
    digest = world.digest()
    digest.run(DAY)
    change(world, world.messages.items[oops.message_id], deleted_at=T0 + timedelta(hours=1))

    report = digest.run(DAY)

    assert report.updated == 1
    assert [m["body"] for m in world.crm.records[ANA_ID]["messages"]] == ["keep me"]


def test_in_crm_log() -> None:
    base = Message(
        message_id="m1",
        direction="outbound",
        customer_number=ANA,
        our_number=OURS,
        body="hi",
        status=MessageStatus.FAILED,
        carrier="fake",
        created_at=T0,
        updated_at=T0,
    )
    assert in_crm_log(base)  # a failed send was tried: the CRM shows it, tagged [failed]
    assert not in_crm_log(base.model_copy(update={"status": MessageStatus.SUPPRESSED}))
    assert not in_crm_log(base.model_copy(update={"status": MessageStatus.CANCELED}))
    assert not in_crm_log(base.model_copy(update={"deleted_at": T0}))
