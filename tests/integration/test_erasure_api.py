"""POST /v1/erasures through the real API handler on moto: DynamoDB items, their index entries and S3
objects gone; the opt-out record, other customers and a record's other numbers kept."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import boto3
import pytest

from parley import wiring
from parley.adapters.dynamo import (
    ContactItem,
    ConversationItem,
    DynamoConflicts,
    DynamoContacts,
    DynamoDigests,
    DynamoMessages,
    DynamoOptOuts,
    MessageItem,
    SearchItem,
)
from parley.clock import utc_now
from parley.domain.models import ContactRecord, Direction, Media, Message, MessageStatus, StatusChange, day_of
from parley.ports import ConflictEntry, ConversationDelta, DigestEntry
from parley.services.digest import conflict_id, digest_key
from tests.integration.test_dynamo_adapters import ANA, BO, OURS_2, T0, msg
from tests.integration.test_dynamo_adapters import fresh_clients as fresh_clients  # noqa: F401
from tests.integration.test_handlers import Stack, post_json
from tests.integration.test_handlers import stack as stack  # noqa: F401 - the moto stack fixture

ADMIN = {"sub": "root", "teams": "[ops]", "roles": "[admin]"}
MEMBER = {"sub": "ana", "teams": "[default]"}
BUCKET = "parley-media-erasure"


@pytest.fixture
def bucket(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:  # noqa: F811
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
    monkeypatch.setenv("PARLEY_MEDIA_BUCKET", BUCKET)
    wiring.reset_container()
    yield BUCKET
    wiring.reset_container()


def keys() -> list[str]:
    listed = boto3.client("s3", region_name="us-east-1").list_objects_v2(Bucket=BUCKET)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def store(message: Message) -> Message:
    """As the processor and the send path store a text: with its conversation (and search terms)."""
    messages = DynamoMessages(wiring.container().settings)
    delta = ConversationDelta(
        customer_number=message.customer_number,
        team=message.team,
        our_number=message.our_number,
        at=message.created_at,
        message_id=message.message_id,
        preview=message.body,
        direction=message.direction.value,
        unread_increment=1 if message.direction is Direction.INBOUND else 0,
    )
    assert messages.insert_with_conversation(message, delta)
    return message


def with_media(message: Message) -> Message:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_object(Bucket=BUCKET, Key=f"media/{message.message_id}/0", Body=b"picture")
    media = Media(
        url="https://carrier.example/m.png", stored_at=f"s3://{BUCKET}/media/{message.message_id}/0"
    )
    return message.model_copy(update={"media": [media]})


def search_items(number: str) -> list[str]:
    return [i.customer_number for i in SearchItem.scan() if i.customer_number.endswith(number)]


@pytest.fixture
def ana(bucket: str) -> dict[str, str]:
    """Ana texted twice (once with a picture, to our second number), we replied, a reply is scheduled;
    she has a record of her own and shares a company's; the digest logged her day; she opted out."""
    inbound = store(with_media(msg("in-1", at=T0, sid="SM1")))
    store(msg("in-2", at=T0 + timedelta(minutes=1), ours=OURS_2, sid="SM2"))
    store(
        msg(
            "out-1",
            at=T0 + timedelta(minutes=2),
            direction=Direction.OUTBOUND,
            status=MessageStatus.DELIVERED,
        )
    )
    later = msg(
        "out-2", at=T0 + timedelta(minutes=3), direction=Direction.OUTBOUND, status=MessageStatus.SCHEDULED
    )
    store(later.model_copy(update={"next_attempt_at": T0 + timedelta(days=2)}))
    store(with_media(msg("bo-1", customer=BO, at=T0, sid="SM9")))  # another customer
    contacts = DynamoContacts()
    contacts.save(ContactRecord(contact_id="c-ana", name="Ana Lopez", phone=ANA))
    contacts.save(ContactRecord(contact_id="c-acme", name="Acme", phones=[BO, ANA]))
    day = day_of(inbound.created_at, "UTC")
    DynamoDigests().save(DigestEntry(digest_key(ANA, day), "crm-1", "hash", 1, T0, 3))
    DynamoConflicts().add(ConflictEntry(conflict_id(ANA, day), ANA, day, "default", (), T0))
    DynamoOptOuts().record(ANA, opted_out=True, source="twilio:keyword", at=T0, detail="STOP")
    return {"day": day}


def test_an_admin_erases_the_customer_and_the_opt_out_stays(ana: dict[str, str]) -> None:
    assert "media/in-1/0" in keys() and search_items(ANA)

    status, answer = post_json("/v1/erasures", {"number": "(415) 555-0100"}, claims=ADMIN)

    assert status == 200, answer
    assert answer["customer_number"] == ANA and answer["done"] is True
    assert {k: answer[k] for k in ("cancelled", "messages", "media", "conversations")} == {
        "cancelled": 1,
        "messages": 4,
        "media": 1,
        "conversations": 1,
    }
    assert (answer["records_deleted"], answer["records_updated"], answer["digest_items"]) == (1, 1, 2)
    assert answer["search_terms"] > 0
    assert [i.message_id for i in MessageItem.scan()] == ["bo-1"]
    assert list(MessageItem.by_conversation.query(ANA)) == []  # the index entries went with the items
    assert keys() == ["media/bo-1/0"]
    assert [c.customer_number for c in ConversationItem.scan() if not c.customer_number.startswith("s#")] == [
        BO
    ]
    assert search_items(ANA) == [] and search_items(BO)
    assert DynamoContacts().get("c-ana") is None
    assert [i.contact_id for i in ContactItem.scan() if ANA in i.contact_id] == []  # lookups too
    acme = DynamoContacts().get("c-acme")
    assert acme is not None and acme.phones == [BO]
    assert DynamoDigests().get(digest_key(ANA, ana["day"])) is None
    assert DynamoConflicts().get(conflict_id(ANA, ana["day"])) is None
    opt_out = DynamoOptOuts().get(ANA)
    assert opt_out is not None and opt_out.opted_out and [c.detail for c in opt_out.history] == ["STOP"]


def test_erasing_again_answers_zeros(ana: dict[str, str]) -> None:
    assert post_json("/v1/erasures", {"number": ANA}, claims=ADMIN)[0] == 200

    status, answer = post_json("/v1/erasures", {"number": ANA}, claims=ADMIN)

    assert status == 200 and answer["done"] is True
    assert [v for k, v in answer.items() if k not in ("customer_number", "done")] == [0] * 9


def test_the_audit_event_masks_the_number(ana: dict[str, str], stack: Stack) -> None:  # noqa: F811
    stack.queue_messages(stack.events_url)  # what storing the texts published

    post_json("/v1/erasures", {"number": ANA}, claims=ADMIN)

    assert stack.domain_events() == ["CustomerErased"]


@pytest.mark.parametrize(
    ("claims", "body", "status", "reason"),
    [
        (MEMBER, {"number": ANA}, 403, "admin"),
        (ADMIN, {"number": "not a number"}, 400, "'number'"),
        (ADMIN, {}, 400, "'number' is required"),
        (ADMIN, {"number": ANA, "keep": "all"}, 400, "unknown field"),
        (ADMIN, [ANA], 400, "JSON object"),
    ],
)
def test_refusals_change_nothing(
    ana: dict[str, str], claims: dict[str, str], body: object, status: int, reason: str
) -> None:
    before = sorted(i.message_id for i in MessageItem.scan())

    answer = post_json("/v1/erasures", body, claims=claims)

    assert answer[0] == status and reason in answer[1]["error"], answer
    assert sorted(i.message_id for i in MessageItem.scan()) == before
    assert "media/in-1/0" in keys()


# -- retention: the nightly sweep through the digest function's handler --------------------------------


def test_the_retention_schedule_blanks_old_bodies_and_keeps_the_rest(bucket: str) -> None:
    from functions.digest import app as digest_app
    from tests.integration.test_handlers import CONTEXT

    old_day = utc_now() - timedelta(days=31)
    history = [StatusChange(status=MessageStatus.RECEIVED, at=old_day, source="twilio")]
    old = store(with_media(msg("old-1", at=old_day, sid="SM1")).model_copy(update={"history": history}))
    recent = store(msg("new-1", customer=BO, at=utc_now() - timedelta(days=29), sid="SM2"))

    answer = digest_app.handler({"retention": "sweep", "days": 30}, CONTEXT)

    assert (answer["expired"], answer["previews"], answer["done"]) == (1, 1, True)
    messages = DynamoMessages(wiring.container().settings)
    expired = messages.get(old.message_id)
    assert expired is not None and expired.body == "" and expired.media == [] and expired.expired_at
    assert expired.history == old.history and expired.status is MessageStatus.RECEIVED
    kept = messages.get(recent.message_id)
    assert kept is not None and kept.body == recent.body
    conversation = wiring.container().conversations.get(ANA)
    assert conversation is not None and conversation.last_message_preview == ""
    assert conversation.message_count == 1
    again = digest_app.handler({"retention": "sweep", "days": 30}, CONTEXT)
    assert again["expired"] == 0
