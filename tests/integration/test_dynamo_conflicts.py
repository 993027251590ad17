"""CRM conflicts in the Digests table against moto: stored once, listed while open, newest first."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from parley.adapters.dynamo import (
    ConversationItem,
    DigestItem,
    DynamoConflicts,
    DynamoConversations,
    DynamoDigests,
    InvalidCursor,
    iso,
)
from parley.config import Settings
from parley.ports import ConflictCandidate, ConflictEntry, DigestEntry

T0 = datetime(2024, 5, 6, 21, 0, tzinfo=UTC)
CANDIDATES = (
    ConflictCandidate(record_id="c-kim", name="Kim", record_type="contact", owner="u-kim"),
    ConflictCandidate(record_id="c-sam", name="Sam", record_type="contact", owner=None),
)


def _entry(number: str, day: str, at: datetime, team: str = "default") -> ConflictEntry:
    return ConflictEntry(
        conflict_id=f"conflict-{number.lstrip('+')}-{day}",
        customer_number=number,
        day=day,
        team=team,
        candidates=CANDIDATES,
        found_at=at,
    )


def test_a_conflict_is_stored_once_listed_newest_first_and_leaves_the_list_when_resolved(
    aws_settings: Settings,
) -> None:
    conflicts = DynamoConflicts()
    first = _entry("+14155550220", "2024-05-06", T0)
    later = _entry("+14155550221", "2024-05-07", T0 + timedelta(days=1))
    assert conflicts.add(first)
    assert not conflicts.add(dataclasses.replace(first, found_at=T0 + timedelta(hours=5)))
    assert conflicts.add(later)
    assert conflicts.add(_entry("+14155550222", "2024-05-07", T0, team="other"))
    assert conflicts.get(first.conflict_id) == first

    page = conflicts.list_open("default", limit=1, cursor=None)
    assert [c.conflict_id for c in page.items] == [later.conflict_id]
    assert page.cursor is not None
    rest = conflicts.list_open("default", limit=1, cursor=page.cursor)
    assert [c.conflict_id for c in rest.items] == [first.conflict_id]
    with pytest.raises(InvalidCursor):
        conflicts.list_open("other", limit=1, cursor=page.cursor)

    done = dataclasses.replace(
        later, resolved_at=T0 + timedelta(days=2), resolved_by="u-ana", record_id="c-sam"
    )
    conflicts.resolve(done)
    assert conflicts.get(later.conflict_id) == done
    assert [c.conflict_id for c in conflicts.list_open("default", limit=10, cursor=None).items] == [
        first.conflict_id
    ]


def test_conflicts_and_digests_share_the_table_without_meeting(aws_settings: Settings) -> None:
    DynamoDigests().save(
        DigestEntry(
            digest_key="+14155550220#2024-05-06",
            crm_id="crm-1",
            content_hash="abc",
            version=1,
            posted_at=T0,
            message_count=1,
        )
    )
    assert DynamoConflicts().add(_entry("+14155550220", "2024-05-06", T0))
    assert DynamoDigests().get("+14155550220#2024-05-06") is not None
    assert DynamoConflicts().get("conflict-14155550220-2024-05-06") is not None


def test_linking_a_conversation_clears_its_candidates(aws_settings: Settings) -> None:
    conversations = DynamoConversations()
    ConversationItem(
        customer_number="+14155550220",
        last_activity_at=iso(T0),
        conflict_candidates={"c-kim", "c-sam"},
        routing_reason="conflict",
    ).save()
    conversations.link("+14155550220", contact_id="c-sam", owner="u-sam", reason="chosen by u-ana")
    linked = conversations.get("+14155550220")
    assert linked is not None
    assert (linked.contact_id, linked.owner, linked.routing_reason, linked.conflict_candidates) == (
        "c-sam",
        "u-sam",
        "chosen by u-ana",
        [],
    )


def test_only_the_first_resolve_of_an_open_conflict_is_stored(aws_settings: Settings) -> None:
    conflicts = DynamoConflicts()
    held = _entry("+14155550230", "2024-05-06", T0)
    assert conflicts.add(held)
    first = dataclasses.replace(
        held, resolved_at=T0 + timedelta(hours=1), resolved_by="u-ana", record_id="c-sam"
    )
    second = dataclasses.replace(
        held, resolved_at=T0 + timedelta(hours=1), resolved_by="u-bo", record_id="c-kim"
    )

    assert conflicts.resolve(first)
    assert not conflicts.resolve(second)  # it was resolved meanwhile: the first one stays

    assert conflicts.get(held.conflict_id) == first
    assert not conflicts.resolve(_entry("+14155550231", "2024-05-06", T0))  # no such conflict: nothing stored
    assert conflicts.get("conflict-14155550231-2024-05-06") is None


def test_a_resolved_conflict_is_reopened_once_and_lists_again(aws_settings: Settings) -> None:
    conflicts = DynamoConflicts()
    held = _entry("+14155550232", "2024-05-06", T0)
    conflicts.add(held)
    conflicts.resolve(dataclasses.replace(held, resolved_at=T0, resolved_by="u-ana", record_id="c-sam"))
    tied_again = dataclasses.replace(
        held,
        candidates=(ConflictCandidate(record_id="c-lee", name="Lee", record_type="contact", owner=None),),
        found_at=T0 + timedelta(days=1),
    )

    assert conflicts.reopen(tied_again)
    assert not conflicts.reopen(dataclasses.replace(tied_again, found_at=T0 + timedelta(days=2)))  # open now

    assert conflicts.get(held.conflict_id) == tied_again
    assert [c.conflict_id for c in conflicts.list_open("default", limit=10, cursor=None).items] == [
        held.conflict_id
    ]
    assert not conflicts.reopen(_entry("+14155550233", "2024-05-06", T0))  # never held: `add` stores it
    assert conflicts.get("conflict-14155550233-2024-05-06") is None


def test_a_digest_entry_keeps_its_external_id_and_an_older_item_reads_without_one(
    aws_settings: Settings,
) -> None:
    digests = DynamoDigests()
    entry = DigestEntry(
        digest_key="+14155550240#2024-05-06",
        crm_id="crm-1",
        content_hash="abc",
        version=2,
        posted_at=T0,
        message_count=3,
        external_id="parley-sms-lead-14155550240-2024-05-06",
        conversations=2,
    )
    digests.save(entry)
    assert digests.get(entry.digest_key) == entry

    DigestItem(
        digest_key="+14155550241#2024-05-06",
        crm_id="crm-2",
        content_hash="def",
        version=1,
        posted_at=iso(T0),
        message_count=1,
    ).save()  # as items were written before external ids were kept
    older = digests.get("+14155550241#2024-05-06")
    assert older is not None and (older.external_id, older.conversations) == (None, 1)
