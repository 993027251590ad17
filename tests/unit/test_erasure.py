"""Erasing one customer's data (parley.services.erasure) on the fakes: what goes, what stays."""

from __future__ import annotations

from datetime import timedelta

import pytest

from parley.carriers.base import FetchedMedia
from parley.domain.models import (
    ContactRecord,
    InboundMessage,
    Media,
    Message,
    MessageStatus,
    OurNumber,
    SendRequest,
    day_of,
)
from parley.ports import ConflictEntry, DigestEntry
from parley.services.digest import conflict_id, digest_key
from parley.services.erasure import Erasure, ErasureService, media_key
from tests.fakes import FakeMediaCarrier, InMemoryErasure, InMemorySearch, World

OURS = "+15005550006"
OTHER_OURS = "+15005550007"
ANA = "+14155550100"
BO = "+14155550101"
PNG = b"\x89PNG" + b"x" * 40


@pytest.fixture
def world() -> World:
    w = World(carrier=FakeMediaCarrier())
    w.numbers.save(OurNumber(number=OURS, carrier="fake", team="sales", is_default=True))
    w.numbers.save(OurNumber(number=OTHER_OURS, carrier="fake", team="sales"))
    return w


def service(world: World, *, search: InMemorySearch | None = None, **kwargs: object) -> ErasureService:
    store = InMemoryErasure(
        world.messages, world.contacts, world.digests, world.conflicts, search, receipts=world.receipts
    )
    return ErasureService(
        messages=world.messages,
        store=store,
        contacts=world.contacts,
        media=world.media,
        events=world.events,
        clock=world.clock,
        timezone="UTC",
        **kwargs,  # type: ignore[arg-type]
    )


def receive(world: World, frm: str, *, sid: str, to: str = OURS, media: bool = False) -> Message:
    attachments: tuple[Media, ...] = ()
    if media:
        url = f"https://media.example/{sid}.png"
        assert isinstance(world.carrier, FakeMediaCarrier)
        world.carrier.media[url] = FetchedMedia(PNG, "image/png")
        attachments = (Media(url=url, content_type="image/png"),)
    event = InboundMessage(
        carrier="fake", carrier_message_id=sid, from_number=frm, to_number=to, body=f"secret {sid}",
        media=attachments, received_at=world.clock(),
    )  # fmt: skip
    stored = world.processor().store_inbound(event)
    assert stored is not None
    if media:
        stored = world.processor().copy_media(stored)
    world.clock.advance(seconds=1)
    return stored


def send(world: World, to: str, *, key: str, **fields: object) -> Message:
    (message,) = world.sender().submit(
        SendRequest.model_validate({"to": [to], "body": f"reply {key}", **fields}), key, team="sales"
    )
    world.send_queue.take()
    world.clock.advance(seconds=1)
    return message


def test_erases_messages_media_conversation_and_record_and_keeps_the_opt_out(world: World) -> None:
    first = receive(world, ANA, sid="in-1", media=True)
    receive(world, ANA, sid="in-2", to=OTHER_OURS)
    send(world, ANA, key="out-1")
    world.opt_outs.record(ANA, opted_out=True, source="fake:keyword", at=world.clock(), detail="STOP")
    keep = receive(world, BO, sid="bo-1", media=True)  # another customer: untouched
    assert first.media[0].stored_at and media_key(first.message_id, 0) in world.media.objects
    search = InMemorySearch()
    search.index(ANA, "sales", None)
    search.index(BO, "sales", None)
    bo_terms = len(search.terms["sales"]) // 2

    erased = service(world, search=search).erase(ANA, by="root")

    assert erased.done
    assert (erased.messages, erased.media, erased.conversations) == (3, 1, 1)
    assert erased.search_terms == bo_terms  # the same number of digits' terms as Bo's
    assert [m for m in world.messages.items.values() if m.customer_number == ANA] == []
    assert world.conversations.get(ANA) is None
    assert media_key(first.message_id, 0) not in world.media.objects
    assert media_key(keep.message_id, 0) in world.media.objects
    assert world.messages.get(keep.message_id) is not None and world.conversations.get(BO) is not None
    assert all(hit.customer_number == BO for hit in search.terms["sales"].values())
    opt_out = world.opt_outs.get(ANA)
    assert opt_out is not None and opt_out.opted_out and opt_out.history[-1].detail == "STOP"
    assert [r.contact_id for r in world.contacts.find_by_phone(ANA)] == []  # the inbound lead too
    assert erased.records_deleted == 1


def test_a_second_erasure_reports_zero(world: World) -> None:
    receive(world, ANA, sid="in-1", media=True)
    eraser = service(world)
    assert eraser.erase(ANA, by="root").messages == 1

    again = eraser.erase(ANA, by="root")

    assert again.done
    assert again.counts() == Erasure(ANA).counts()


def test_waiting_texts_are_cancelled_first_so_none_goes_out(world: World) -> None:
    later = (world.clock() + timedelta(days=2)).isoformat()
    scheduled = send(world, ANA, key="later", send_at=later)
    queued = send(world, ANA, key="now")
    assert (scheduled.status, queued.status) == (MessageStatus.SCHEDULED, MessageStatus.QUEUED)
    seen: list[MessageStatus] = []
    original = world.messages.update

    def record_update(message: Message, *, expected_version: int) -> Message:
        seen.append(message.status)
        return original(message, expected_version=expected_version)

    world.messages.update = record_update  # type: ignore[method-assign]

    erased = service(world).erase(ANA, by="root")

    assert erased.cancelled == 2 and seen == [MessageStatus.CANCELED, MessageStatus.CANCELED]
    assert world.sender().deliver(queued.message_id) is None  # a send job still on the queue: nothing
    assert world.carrier.sent == []


def test_a_record_with_other_numbers_keeps_them(world: World) -> None:
    world.contacts.save(ContactRecord(contact_id="acme", name="Acme", phones=[ANA, BO], team="sales"))
    world.contacts.save(ContactRecord(contact_id="ana", name="Ana", phone=ANA, team="sales"))

    erased = service(world).erase(ANA, by="root")

    acme = world.contacts.get("acme")
    assert acme is not None and acme.phones == [BO] and acme.phone == BO and acme.name == "Acme"
    assert world.contacts.get("ana") is None
    assert (erased.records_deleted, erased.records_updated) == (1, 1)


def test_the_digests_items_for_the_customers_days_go(world: World) -> None:
    message = receive(world, ANA, sid="in-1")
    day = day_of(message.created_at, "UTC")
    world.digests.save(DigestEntry(digest_key(ANA, day), "crm-1", "h", 1, world.clock(), 1))
    world.digests.save(DigestEntry(digest_key(BO, day), "crm-2", "h", 1, world.clock(), 1))
    held = ConflictEntry(conflict_id(ANA, day), ANA, day, "sales", (), world.clock())
    world.conflicts.add(held)

    erased = service(world).erase(ANA, by="root")

    assert erased.digest_items == 2
    assert world.digests.get(digest_key(ANA, day)) is None and world.conflicts.get(held.conflict_id) is None
    assert world.digests.get(digest_key(BO, day)) is not None


def test_a_long_history_goes_over_several_calls_within_the_budget(world: World) -> None:
    for i in range(7):
        receive(world, ANA, sid=f"in-{i}")
    # One second per look at the clock, one look per page: 7 seconds are the whole cancel pass (4
    # pages of 2) and two pages of deletes, so the first call leaves some for the next.
    ticks = iter(range(1000))
    eraser = service(world, budget_seconds=7, page_size=2, monotonic=lambda: float(next(ticks)))

    calls = [eraser.erase(ANA, by="root")]
    while not calls[-1].done:
        calls.append(eraser.erase(ANA, by="root"))

    assert len(calls) > 1 and not calls[0].done and calls[0].messages == 4
    assert sum(c.messages for c in calls) == 7
    assert sum(c.conversations for c in calls) == 1
    assert world.conversations.get(ANA) is None


def test_each_call_leaves_an_audit_event_with_the_number_masked(world: World) -> None:
    receive(world, ANA, sid="in-1")

    service(world).erase(ANA, by="root")

    (event,) = world.events.of("CustomerErased")
    assert event["customer_number"] != ANA and event["customer_number"].endswith(ANA[-2:])
    assert (event["erased_by"], event["done"], event["messages"]) == ("root", True, 1)
    assert "secret" not in str(event)
