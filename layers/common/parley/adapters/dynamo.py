"""DynamoDB repositories (pynamodb). Every access pattern is a key or an index, never a Scan on a hot path."""

from __future__ import annotations

import base64
import json
import logging
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from botocore.exceptions import ClientError
from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
)
from pynamodb.connection import Connection
from pynamodb.exceptions import DeleteError, PutError, TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, IncludeProjection, KeysOnlyProjection
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from parley.clock import utc_now
from parley.config import Settings
from parley.domain.ids import carrier_ref
from parley.domain.models import (
    ConsentChange,
    ContactRecord,
    Conversation,
    Direction,
    Message,
    MessageStatus,
    OptOut,
    OurNumber,
    StatusUpdate,
    Template,
    day_of,
    team_default,
)
from parley.domain.rate import BucketState
from parley.domain.rate import reserve as reserve_tokens
from parley.domain.search import number_terms, terms_for, word_terms
from parley.domain.status import view_for
from parley.domain.views import box_for, due_entry, team_box, view_attribute, work_partitions
from parley.ports import (
    ConflictCandidate,
    ConflictEntry,
    ConflictError,
    ConversationDelta,
    ConversationFilter,
    DigestEntry,
    DigestRun,
    IndexHit,
    IndexSlice,
    Page,
    Partition,
    RunPage,
    SearchHit,
    ShardProgress,
    SyncState,
)

M = TypeVar("M", bound=Model)
logger = logging.getLogger(__name__)


def iso(dt: datetime) -> str:
    """Fixed-width UTC timestamps sort as strings, which is what the range keys rely on (the year is
    padded here: strftime leaves years before 1000 short). A time that has no UTC year from 1 to 9999
    (0001-01-01 at +01:00) is a ValueError, not an OverflowError."""
    try:
        utc = dt.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError(
            f"{dt.isoformat()} is out of range: its UTC time is before year 1 or after 9999"
        ) from exc
    return f"{utc.year:04d}-" + utc.strftime("%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def encode_cursor(key: dict[str, Any] | None) -> str | None:
    if not key:
        return None
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode()


class InvalidCursor(ValueError):
    """The cursor was not one we issued."""


def decode_cursor(cursor: str | None, partition: tuple[str, str], *keys: str) -> dict[str, Any] | None:
    """The start key in `cursor`, if it is one this query could have issued (the same key names, all
    non-empty strings, the same partition); anything else would reach DynamoDB and come back as a 500
    (DynamoDB refuses an empty key value, though moto takes it)."""
    if not cursor:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError, RecursionError) as exc:
        raise InvalidCursor("cursor is not valid") from exc
    if (
        not isinstance(value, dict)
        or set(value) != {partition[0], *keys}
        or not all(
            isinstance(v, dict) and list(v) == ["S"] and isinstance(v["S"], str) and v["S"]
            for v in value.values()
        )
        or value[partition[0]] != {"S": partition[1]}
    ):
        raise InvalidCursor("cursor is not valid")
    return value


class CompactJSONAttribute(JSONAttribute):
    """JSON without the spaces: item size is what DynamoDB bills, in 1 KB steps."""

    def serialize(self, value: Any) -> str | None:
        return None if value is None else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class _ByConversation(GlobalSecondaryIndex["MessageItem"]):
    class Meta:
        index_name = "by-conversation"
        projection = KeysOnlyProjection()

    customer_number = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class _ByCarrierRef(GlobalSecondaryIndex["MessageItem"]):
    class Meta:
        index_name = "by-carrier-ref"
        projection = KeysOnlyProjection()

    carrier_ref = UnicodeAttribute(hash_key=True)


class _ByView(GlobalSecondaryIndex["MessageItem"]):
    class Meta:
        index_name = "by-view"
        projection = KeysOnlyProjection()

    view = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class _ByDue(GlobalSecondaryIndex["MessageItem"]):
    """The work views the sweep reads (pending, held, scheduled), each keyed by when its messages
    are next due (`parley.domain.views.due_entry`): a range read up to now is what is due."""

    class Meta:
        index_name = "by-due"
        projection = KeysOnlyProjection()

    due_view = UnicodeAttribute(hash_key=True)
    due_at = UnicodeAttribute(range_key=True)


class _ByTeam(GlobalSecondaryIndex["MessageItem"]):
    """Every message under `<team>#<box>` (received, sent, deleted): the inbox's message views.
    The key never changes with the status, so a status change costs this index nothing."""

    class Meta:
        index_name = "by-team"
        projection = KeysOnlyProjection()

    team_box = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class _ByDay(GlobalSecondaryIndex["MessageItem"]):
    """A day's messages in shards, sorted by conversation then time: the digest reads one
    conversation's day as a key range, and pages through a shard conversation by conversation."""

    class Meta:
        index_name = "by-day"
        projection = KeysOnlyProjection()

    day_shard = UnicodeAttribute(hash_key=True)
    day_order = UnicodeAttribute(range_key=True)


class MessageItem(Model):
    class Meta:
        table_name = "MessagesTable"

    message_id = UnicodeAttribute(hash_key=True)
    customer_number = UnicodeAttribute()
    created_at = UnicodeAttribute()
    carrier_ref = UnicodeAttribute(null=True)
    view = UnicodeAttribute(null=True)
    due_view = UnicodeAttribute(null=True)
    due_at = UnicodeAttribute(null=True)
    team_box = UnicodeAttribute(null=True)  # null only on items written before the message views
    day_shard = UnicodeAttribute()
    day_order = UnicodeAttribute()  # "<customer number>#<created at>"
    status = UnicodeAttribute()
    version = NumberAttribute(default=0)
    doc = CompactJSONAttribute()  # the rest of the Message, defaults left out (see DynamoMessages)

    # The indexes hold keys only, so a status change rewrites none of them; readers query an index
    # for ids and fetch the items (`_fetch`), which is also what makes their answers current.
    by_conversation = _ByConversation()
    by_carrier_ref = _ByCarrierRef()
    by_view = _ByView()
    by_due = _ByDue()
    by_team = _ByTeam()
    by_day = _ByDay()


class _ByActivity(GlobalSecondaryIndex["ConversationItem"]):
    class Meta:
        index_name = "by-activity"
        projection = AllProjection()

    team = UnicodeAttribute(hash_key=True)
    last_activity_at = UnicodeAttribute(range_key=True)


class _ConversationsByTerm(GlobalSecondaryIndex["ConversationItem"]):
    """The search terms' index (`SearchItem.by_term`), declared here too: this model makes the table."""

    class Meta:
        index_name = "by-term"
        projection = IncludeProjection(["term_name"])

    term_team = UnicodeAttribute(hash_key=True)
    term_key = UnicodeAttribute(range_key=True)


class ConversationItem(Model):
    class Meta:
        table_name = "ConversationsTable"

    customer_number = UnicodeAttribute(hash_key=True)
    team = UnicodeAttribute(default="default")
    last_activity_at = UnicodeAttribute()
    last_message_id = UnicodeAttribute(null=True)
    last_message_preview = UnicodeAttribute(default="")
    last_direction = UnicodeAttribute(null=True)
    last_our_number = UnicodeAttribute(null=True)
    our_numbers = UnicodeSetAttribute(null=True)
    unread_count = NumberAttribute(default=0)
    message_count = NumberAttribute(default=0)
    contact_id = UnicodeAttribute(null=True)
    owner = UnicodeAttribute(null=True)
    closed = BooleanAttribute(default=False)
    routing_reason = UnicodeAttribute(null=True)
    conflict_candidates = UnicodeSetAttribute(null=True)  # the ids, when several records tied

    by_activity = _ByActivity()
    by_term = _ConversationsByTerm()  # search items only (SearchItem): no conversation is in it


class _ByPhone(GlobalSecondaryIndex["ContactItem"]):
    class Meta:
        index_name = "by-phone"
        projection = AllProjection()

    phone = UnicodeAttribute(hash_key=True)


class ContactItem(Model):
    """Two kinds of item share the table (see DynamoContacts): a record, keyed by its id and holding
    it as `doc`; and one small lookup per (number, record), keyed `phone#<number>#<record id>`, whose
    `phone` is what the by-phone index keys. Records written before records had several numbers carry
    their one `phone` themselves and are still found by it."""

    class Meta:
        table_name = "ContactsTable"

    contact_id = UnicodeAttribute(hash_key=True)
    phone = UnicodeAttribute(null=True)
    record_id = UnicodeAttribute(null=True)  # a lookup's record
    version = NumberAttribute(null=True)  # a record's, for conditional writes
    doc = JSONAttribute(null=True)

    by_phone = _ByPhone()


class TemplateItem(Model):
    class Meta:
        table_name = "TemplatesTable"

    template_id = UnicodeAttribute(hash_key=True)
    doc = JSONAttribute()


class NumberItem(Model):
    class Meta:
        table_name = "NumbersTable"

    number = UnicodeAttribute(hash_key=True)
    doc = JSONAttribute()


class ReceiptItem(Model):
    class Meta:
        table_name = "ReceiptsTable"

    carrier_ref = UnicodeAttribute(hash_key=True)
    receipt_id = UnicodeAttribute(range_key=True)
    doc = JSONAttribute()
    expires_at = NumberAttribute(null=True)


class OptOutItem(Model):
    class Meta:
        table_name = "OptOutsTable"

    customer_number = UnicodeAttribute(hash_key=True)
    opted_out = BooleanAttribute()
    version = NumberAttribute(default=0)
    doc = JSONAttribute()


class DigestItem(Model):
    class Meta:
        table_name = "DigestsTable"

    digest_key = UnicodeAttribute(hash_key=True)
    crm_id = UnicodeAttribute()
    content_hash = UnicodeAttribute()
    version = NumberAttribute()
    posted_at = UnicodeAttribute()
    message_count = NumberAttribute()
    external_id = UnicodeAttribute(null=True)  # absent on an item from before it was kept
    conversations = NumberAttribute(null=True)


class _OpenConflicts(GlobalSecondaryIndex["ConflictItem"]):
    """Sparse: only a conflict still open carries `open_team`."""

    class Meta:
        index_name = "open-conflicts"
        projection = AllProjection()

    open_team = UnicodeAttribute(hash_key=True)
    found_at = UnicodeAttribute(range_key=True)


class ConflictItem(Model):
    """A day held back from the CRM, in the Digests table beside the digest items: its key is
    `conflict#<conflict id>`, which no digest key (`+<number>#<day>`) can be."""

    class Meta:
        table_name = "DigestsTable"

    digest_key = UnicodeAttribute(hash_key=True)
    found_at = UnicodeAttribute()
    open_team = UnicodeAttribute(null=True)
    doc = JSONAttribute()

    open_conflicts = _OpenConflicts()


class DigestRunItem(Model):
    """A day's run progress, `run#<day>` in the Digests table, under its latest start's run id; jobs
    add to it in parallel (ADD)."""

    class Meta:
        table_name = "DigestsTable"

    digest_key = UnicodeAttribute(hash_key=True)
    started_at = UnicodeAttribute()
    shards = NumberAttribute()
    shards_done = NumberAttribute(default=0)
    failures = JSONAttribute(null=True)
    run_id = UnicodeAttribute(null=True)  # each start's own; jobs record only into theirs


class AutoLogItem(Model):
    """A user's auto-log choice, `user#<id>` in the Digests table (it is CRM-logging state)."""

    class Meta:
        table_name = "DigestsTable"

    digest_key = UnicodeAttribute(hash_key=True)
    auto_log = UnicodeAttribute(null=True)


class RateLimitItem(Model):
    """One token bucket per sender number (see `parley.domain.rate`)."""

    class Meta:
        table_name = "RateLimitsTable"

    number = UnicodeAttribute(hash_key=True)
    tokens = NumberAttribute()
    refilled_at = NumberAttribute()  # epoch seconds, fractional
    version = NumberAttribute()


_TABLES: dict[type[Model], str] = {}


def bind_tables(settings: Settings) -> None:
    """Point the models at this stage's tables; called once by the composition root."""
    names: dict[type[Model], str] = {
        MessageItem: settings.messages_table,
        ConversationItem: settings.conversations_table,  # first: it creates the table with by-term
        SearchItem: settings.conversations_table,
        ContactItem: settings.contacts_table,
        TemplateItem: settings.templates_table,
        NumberItem: settings.numbers_table,
        ReceiptItem: settings.receipts_table,
        ConflictItem: settings.digests_table,  # first: it creates the shared table with its index (tests)
        DigestItem: settings.digests_table,
        DigestRunItem: settings.digests_table,
        AutoLogItem: settings.digests_table,
        SyncItem: settings.digests_table,
        OptOutItem: settings.opt_outs_table,
        RateLimitItem: settings.rate_limits_table,
    }
    for model, name in names.items():
        model.Meta.table_name = name
        model.Meta.region = settings.region
        model._connection = None  # drop a connection cached for another table name
    _TABLES.update(names)


def shard_of(customer_number: str, shards: int) -> int:
    """Spread one day's messages over several partitions; the digest fans out over the same shards."""
    return sum(customer_number.encode()) % shards


# Message fields stored as item attributes, so not repeated in the item's doc.
_ITEM_ATTRIBUTES = {"message_id", "customer_number", "created_at", "status", "version"}


class DynamoMessages:
    def __init__(self, settings: Settings) -> None:
        self._tz = settings.org_timezone
        self._shards = settings.digest_shards
        self._region = settings.region
        self._connection = Connection(region=settings.region)  # reused: a new one re-reads botocore's model

    def _to_item(self, message: Message) -> MessageItem:
        day = day_of(message.created_at, self._tz)
        # Until a resent text's new attempt has the carrier's id, its last attempt's id stays indexed,
        # so a late receipt for it still finds the message (and is ignored, as superseded).
        ref_id = message.carrier_message_id or next(iter(message.superseded_carrier_ids[-1:]), None)
        ref = carrier_ref(message.carrier, ref_id) if ref_id else None
        deleted = message.deleted_at is not None
        due = due_entry(message)
        return MessageItem(
            message_id=message.message_id,
            customer_number=message.customer_number,
            created_at=iso(message.created_at),
            carrier_ref=ref,
            view=view_attribute(message.status, deleted=deleted),
            due_view=due[0] if due else None,
            due_at=iso(due[1]) if due else None,
            team_box=team_box(message.team, box_for(message.direction, deleted=deleted)),
            day_shard=f"{day}#{shard_of(message.customer_number, self._shards)}",
            day_order=f"{message.customer_number}#{iso(message.created_at)}",
            status=message.status.value,
            version=message.version,
            doc=message.model_dump(mode="json", exclude_defaults=True, exclude=_ITEM_ATTRIBUTES),
        )

    @staticmethod
    def _from_item(item: MessageItem) -> Message:
        return Message.model_validate(
            {
                **item.doc,
                "message_id": item.message_id,
                "customer_number": item.customer_number,
                "created_at": parse_iso(item.created_at),
                "status": item.status,
                "version": int(item.version),
            }
        )

    def get(self, message_id: str) -> Message | None:
        try:
            return self._from_item(MessageItem.get(message_id, consistent_read=True))
        except MessageItem.DoesNotExist:
            return None

    def insert(self, message: Message) -> bool:
        try:
            self._to_item(message).save(condition=MessageItem.message_id.does_not_exist())
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def insert_with_conversation(self, message: Message, delta: ConversationDelta) -> bool:
        item = self._to_item(message)
        current = _conversation_or_none(delta.customer_number)
        _index_if_new_or_relinked(current, delta)
        at = iso(delta.at)
        actions: list[Any] = [
            ConversationItem.message_count.add(1),
            ConversationItem.unread_count.add(delta.unread_increment),
            ConversationItem.our_numbers.add({delta.our_number}),
            ConversationItem.team.set(ConversationItem.team | delta.team),
            ConversationItem.closed.set(False),
        ]
        if delta.routed:  # an inbound text's routing decision replaces the last one
            actions += [
                ConversationItem.contact_id.set(delta.contact_id)
                if delta.contact_id
                else ConversationItem.contact_id.remove(),
                ConversationItem.conflict_candidates.set(set(delta.conflict_candidates))
                if delta.conflict_candidates
                else ConversationItem.conflict_candidates.remove(),
            ]
            if delta.routing_reason:
                actions.append(ConversationItem.routing_reason.set(delta.routing_reason))
            if delta.owner:
                actions.append(ConversationItem.owner.set(delta.owner))
        else:
            if delta.owner:
                actions.append(ConversationItem.owner.set(ConversationItem.owner | delta.owner))
            if delta.contact_id:
                actions.append(
                    ConversationItem.contact_id.set(ConversationItem.contact_id | delta.contact_id)
                )
        if current is None or current.last_activity_at <= at:
            actions += [
                ConversationItem.last_activity_at.set(at),
                ConversationItem.last_message_id.set(delta.message_id),
                ConversationItem.last_message_preview.set(delta.preview[:160]),
                ConversationItem.last_direction.set(delta.direction),
                ConversationItem.last_our_number.set(delta.our_number),
            ]
        if current is not None and delta.unread_increment == 0:
            # Our own text to an existing conversation: two plain writes, as a transaction bills
            # double. A crash between them leaves only the conversation's summary one text behind
            # (threads are read from the messages) until the next text in either direction.
            try:
                item.save(condition=MessageItem.message_id.does_not_exist())
            except PutError as exc:
                if exc.cause_response_code == "ConditionalCheckFailedException":
                    return False
                raise
            ConversationItem(delta.customer_number).update(actions=actions)
            return True
        try:  # a new conversation, or unread counts that must move exactly once: one transaction
            with TransactWrite(connection=self._connection) as tx:
                tx.save(item, condition=MessageItem.message_id.does_not_exist())
                tx.update(ConversationItem(delta.customer_number), actions=actions)
        except TransactWriteError as exc:
            reasons = [r.code for r in (exc.cancellation_reasons or []) if r is not None]
            if "ConditionalCheckFailed" in reasons:
                return False
            raise
        return True

    def update(self, message: Message, *, expected_version: int) -> Message:
        stored = message.model_copy(update={"version": expected_version + 1, "updated_at": _now()})
        item = self._to_item(stored)
        try:
            item.save(condition=MessageItem.version == expected_version)
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                raise ConflictError(message.message_id) from exc
            raise
        return stored

    def find_by_carrier_ref(self, carrier: str, carrier_message_id: str) -> Message | None:
        for item in MessageItem.by_carrier_ref.query(carrier_ref(carrier, carrier_message_id), limit=1):
            return self.get(item.message_id)  # re-read: the index is only eventually consistent
        return None

    def existing(self, message_ids: Sequence[str]) -> set[str]:
        ids = list(dict.fromkeys(message_ids))
        found: set[str] = set()
        for start in range(0, len(ids), 100):
            batch = MessageItem.batch_get(ids[start : start + 100], attributes_to_get=["message_id"])
            found.update(item.message_id for item in batch)
        return found

    def _fetch(self, keys: list[MessageItem]) -> list[Message]:
        """The messages behind index entries, in the index's order (BatchGetItem, 100 keys a call)."""
        ids = list(dict.fromkeys(k.message_id for k in keys))
        found: dict[str, Message] = {}
        for start in range(0, len(ids), 100):
            for item in MessageItem.batch_get(ids[start : start + 100]):
                found[item.message_id] = self._from_item(item)
        return [found[i] for i in ids if i in found]

    def list_for_conversation(
        self,
        customer_number: str,
        *,
        limit: int,
        cursor: str | None,
        since: datetime | None = None,
        before: datetime | None = None,
    ) -> Page[Message]:
        condition: Condition | None = None
        last = None if before is None else before - timedelta(microseconds=1)  # `before` itself is out
        if since is not None and last is not None:
            if since > last:
                return Page([], None)
            condition = MessageItem.created_at.between(iso(since), iso(last))
        elif since is not None:
            condition = MessageItem.created_at >= iso(since)
        elif last is not None:
            condition = MessageItem.created_at <= iso(last)
        result = MessageItem.by_conversation.query(
            customer_number,
            condition,
            scan_index_forward=False,
            limit=limit,
            last_evaluated_key=decode_cursor(
                cursor, ("customer_number", customer_number), "message_id", "created_at"
            ),
        )
        items = self._fetch(_take(result, limit))
        return Page(items, encode_cursor(result.last_evaluated_key))

    def day_conversations(
        self, day: str, shard: int, *, after: str | None, limit: int
    ) -> tuple[list[str], str | None]:
        """Reads index keys only, and stops one conversation past `limit`."""
        condition = None if after is None else MessageItem.day_order > f"{after}#\uffff"
        numbers: list[str] = []
        for key in MessageItem.by_day.query(f"{day}#{shard}", condition):
            number = key.day_order.rsplit("#", 1)[0]
            if numbers and numbers[-1] == number:
                continue
            if len(numbers) == limit:
                return numbers, numbers[-1]
            numbers.append(number)
        return numbers, None

    def list_conversation_day(self, customer_number: str, day: str) -> list[Message]:
        keys = MessageItem.by_day.query(
            f"{day}#{shard_of(customer_number, self._shards)}",
            MessageItem.day_order.startswith(f"{customer_number}#"),
        )
        return list(self._fetch(list(keys)))

    def list_view(
        self, view: str, *, limit: int, cursor: str | None, since: datetime | None = None
    ) -> Page[Message]:
        if view in ("pending", "scheduled"):  # kept in `by-due`, newest due first
            page = self.list_merged(work_partitions(view), limit=limit, cursor=cursor, since=since)
            return Page([m for m in page.items if view_for(m.status) == view], page.cursor)
        result = MessageItem.by_view.query(
            view,
            None if since is None else MessageItem.created_at >= iso(since),
            scan_index_forward=False,
            limit=limit,
            last_evaluated_key=decode_cursor(cursor, ("view", view), "message_id", "created_at"),
        )
        # The index lags the table a little: a message that has just left the view is left out.
        items = [m for m in self._fetch(_take(result, limit)) if view_for(m.status) == view]
        return Page(items, encode_cursor(result.last_evaluated_key))

    def list_due(self, partition: str, *, until: datetime, limit: int, cursor: str | None) -> Page[Message]:
        """One page of a `by-due` partition (pending, held, scheduled) due at or before `until`,
        oldest due first: at most `limit` index keys and the items behind them. The items are as
        stored; the caller checks each is still due (the index lags the table a little)."""
        result = MessageItem.by_due.query(
            partition,
            MessageItem.due_at <= iso(until),
            limit=limit,
            page_size=limit,
            last_evaluated_key=decode_cursor(cursor, ("due_view", partition), "message_id", "due_at"),
        )
        keys = _take(result, limit)
        return Page(self._fetch(keys), encode_cursor(result.last_evaluated_key))

    def reindex_legacy(self, *, limit: int) -> int:
        """Move up to `limit` messages stored before `by-due` existed (still under pending or
        scheduled in `by-view`) into `by-due`, oldest first; how many moved. Only the index
        attributes are written, on the version read: the message itself is left as it was."""
        moved = 0
        for view in ("pending", "scheduled"):
            keys = list(MessageItem.by_view.query(view, limit=limit - moved, page_size=limit - moved))
            for message in self._fetch(keys):
                due = due_entry(message)
                deleted = message.deleted_at is not None
                actions: list[Any] = [
                    MessageItem.due_view.set(due[0]) if due else MessageItem.due_view.remove(),
                    MessageItem.due_at.set(iso(due[1])) if due else MessageItem.due_at.remove(),
                ]
                view_now = view_attribute(message.status, deleted=deleted)
                actions.append(MessageItem.view.set(view_now) if view_now else MessageItem.view.remove())
                try:
                    MessageItem(message.message_id).update(
                        actions=actions, condition=MessageItem.version == message.version
                    )
                except UpdateError as exc:
                    if exc.cause_response_code != "ConditionalCheckFailedException":
                        raise
                    continue  # written meanwhile, which indexed it afresh
                moved += 1
            if moved >= limit:
                break
        return moved

    def list_merged(
        self,
        partitions: Sequence[Partition],
        *,
        limit: int,
        cursor: str | None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Page[Message]:
        """Index partitions merged newest first under one cursor. Each partition is read from where
        the cursor left it, at most `limit + 1` keys, so a page costs at most that many keys per
        partition plus `limit` items, whatever the table holds. The items are as stored: callers
        check each still belongs (the indexes lag the table a little). `by-view` and `by-team`
        partitions are ordered (and `since`/`until` applied) by creation time, `by-due` ones by due
        time; one listing merges partitions of one index."""
        names = [f"{index}:{key}" for index, key in partitions]
        positions = _decode_positions(cursor, names)
        streams: dict[str, list[MessageItem]] = {}
        sort_of: dict[str, str] = {}
        for (index_name, key), name in zip(partitions, names, strict=True):
            at = positions[name]
            if at == _DONE:
                continue
            index, sort = _LISTED_INDEXES[index_name]
            sort_of[name] = sort
            attribute = getattr(MessageItem, sort)
            condition: Condition | None = None
            if since is not None and until is not None:
                condition = attribute.between(iso(since), iso(until))
            elif since is not None:
                condition = attribute >= iso(since)
            elif until is not None:
                condition = attribute <= iso(until)
            start = None
            if isinstance(at, list):
                start = {index_name: {"S": key}, sort: {"S": at[0]}, "message_id": {"S": at[1]}}
            streams[name] = list(
                index.query(
                    key,
                    condition,
                    scan_index_forward=False,
                    limit=limit + 1,
                    page_size=limit + 1,
                    last_evaluated_key=start,
                )
            )
        taken: list[MessageItem] = []
        used = dict.fromkeys(streams, 0)
        while len(taken) < limit:  # each partition gives a prefix of its own order
            heads = [
                (getattr(streams[n][used[n]], sort_of[n]), n) for n in streams if used[n] < len(streams[n])
            ]
            if not heads:
                break
            _, best = max(heads)
            taken.append(streams[best][used[best]])
            used[best] += 1
        for name, keys in streams.items():
            if used[name] == len(keys) and len(keys) <= limit:
                positions[name] = _DONE  # it had no more than these, and all were taken
            elif used[name]:
                last = keys[used[name] - 1]
                positions[name] = [getattr(last, sort_of[name]), last.message_id]
        more = any(at != _DONE for at in positions.values())
        return Page(self._fetch(taken), _encode_positions(positions) if more else None)


_DONE = "done"
# The indexes a merged listing reads, by their hash attribute: the index and its range attribute.
_LISTED_INDEXES: dict[str, tuple[Any, str]] = {
    "view": (MessageItem.by_view, "created_at"),
    "team_box": (MessageItem.by_team, "created_at"),
    "due_view": (MessageItem.by_due, "due_at"),
}
_ISO = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")


def _encode_positions(positions: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps({"at": positions}, separators=(",", ":")).encode()).decode()


def _decode_positions(cursor: str | None, names: list[str]) -> dict[str, Any]:
    """Where each partition of a merged listing stands: None (not begun), [created_at, message_id]
    (after that entry) or "done". A cursor naming other partitions is refused, so one issued for a
    query can't reach another team's partition."""
    if not cursor:
        return dict.fromkeys(names)
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError, RecursionError) as exc:
        raise InvalidCursor("cursor is not valid") from exc
    at = value.get("at") if isinstance(value, dict) else None
    if not isinstance(at, dict) or set(at) != set(names):
        raise InvalidCursor("cursor is not valid (it belongs to another listing)")
    for position in at.values():
        if position is None or position == _DONE:
            continue
        if not (
            isinstance(position, list)
            and len(position) == 2
            and isinstance(position[0], str)
            and _ISO.fullmatch(position[0])
            and isinstance(position[1], str)
            and 0 < len(position[1]) <= 200
        ):
            raise InvalidCursor("cursor is not valid")
    return dict(at)


def _index_if_new_or_relinked(current: ConversationItem | None, delta: ConversationDelta) -> None:
    """Search terms for a new conversation, or one whose record the text changes; before the write,
    so a retried text writes them again (a term for a conversation not written yet finds nothing).
    A text to a conversation whose record stays the same writes nothing here."""
    linked = current.contact_id if current is not None else None
    after = delta.contact_id if delta.routed else (linked or delta.contact_id)
    if current is None or after != linked:
        team = current.team if current is not None else delta.team
        DynamoSearch().index(delta.customer_number, team, _record_name(after))


def _conversation_or_none(customer_number: str) -> ConversationItem | None:
    try:
        return ConversationItem.get(customer_number)
    except ConversationItem.DoesNotExist:
        return None


def _take(result: Iterator[M], limit: int) -> list[M]:
    out: list[M] = []
    for item in result:
        out.append(item)
        if len(out) >= limit:
            break
    return out


def _now() -> datetime:
    return utc_now()  # the services' clock (a test or the local stack may move it)


class DynamoConversations:
    @staticmethod
    def _from_item(item: ConversationItem) -> Conversation:
        return Conversation(
            customer_number=item.customer_number,
            team=item.team,
            last_activity_at=parse_iso(item.last_activity_at),
            last_message_id=item.last_message_id,
            last_message_preview=item.last_message_preview,
            last_direction=Direction(item.last_direction) if item.last_direction else None,
            last_our_number=item.last_our_number,
            our_numbers=sorted(item.our_numbers or []),
            unread_count=int(item.unread_count),
            message_count=int(item.message_count),
            contact_id=item.contact_id,
            owner=item.owner,
            closed=bool(item.closed),
            routing_reason=item.routing_reason,
            conflict_candidates=sorted(item.conflict_candidates or []),
        )

    def get(self, customer_number: str) -> Conversation | None:
        if customer_number.startswith(_SEARCH):  # a search term's item, not a conversation
            return None
        try:
            return self._from_item(ConversationItem.get(customer_number, consistent_read=True))
        except ConversationItem.DoesNotExist:
            return None

    def list_recent(self, team: str, *, limit: int, cursor: str | None) -> Page[Conversation]:
        result = ConversationItem.by_activity.query(
            team,
            scan_index_forward=False,
            limit=limit,
            last_evaluated_key=decode_cursor(cursor, ("team", team), "customer_number", "last_activity_at"),
        )
        items = [self._from_item(i) for i in _take(result, limit)]
        return Page(items, encode_cursor(result.last_evaluated_key))

    def link(self, customer_number: str, *, contact_id: str, owner: str | None, reason: str) -> None:
        actions: list[Any] = [
            ConversationItem.contact_id.set(contact_id),
            ConversationItem.routing_reason.set(reason),
            ConversationItem.conflict_candidates.remove(),
        ]
        if owner:
            actions.append(ConversationItem.owner.set(owner))
        item = ConversationItem(customer_number)
        item.update(actions=actions, condition=ConversationItem.customer_number.exists())
        DynamoSearch().index(customer_number, item.team, _record_name(contact_id))  # its new name

    def mark_read(self, customer_number: str) -> None:
        try:
            ConversationItem(customer_number).update(
                actions=[ConversationItem.unread_count.set(0)],
                condition=ConversationItem.customer_number.exists(),
            )
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise

    def set_closed(self, customer_number: str, closed: bool) -> None:
        try:
            ConversationItem(customer_number).update(
                actions=[ConversationItem.closed.set(closed)],
                condition=ConversationItem.customer_number.exists(),
            )
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise

    def clear_preview(self, customer_number: str, message_id: str) -> bool:
        """Retention: the preview is the last text's body; blanked only while that text is still the
        last (a newer one has a preview of its own)."""
        try:
            ConversationItem(customer_number).update(
                actions=[ConversationItem.last_message_preview.set("")],
                condition=ConversationItem.last_message_id == message_id,
            )
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def add_unread(self, customer_number: str, delta: int) -> bool:
        condition = ConversationItem.customer_number.exists()
        if delta < 0:
            condition &= ConversationItem.unread_count >= -delta
        return _updated_if(customer_number, [ConversationItem.unread_count.add(delta)], condition)

    def set_unread(self, customer_number: str, count: int, *, message_count: int) -> bool:
        return _updated_if(
            customer_number,
            [ConversationItem.unread_count.set(count)],
            ConversationItem.message_count == message_count,
        )

    def set_preview(self, customer_number: str, message_id: str, preview: str) -> bool:
        return _updated_if(
            customer_number,
            [ConversationItem.last_message_preview.set(preview[:160])],
            ConversationItem.last_message_id == message_id,
        )

    def get_many(self, customer_numbers: list[str]) -> list[Conversation]:
        numbers = list(dict.fromkeys(customer_numbers))
        found: dict[str, Conversation] = {}
        for start in range(0, len(numbers), 100):
            for item in ConversationItem.batch_get(numbers[start : start + 100]):
                found[item.customer_number] = self._from_item(item)
        return [found[n] for n in numbers if n in found]

    def slice_by_activity(
        self, team: str, where: ConversationFilter, *, start: str | None, limit: int
    ) -> IndexSlice[Conversation]:
        """One Query of the by-activity index: `limit` items read, the filter applied to them."""
        result = ConversationItem.by_activity.query(
            team,
            filter_condition=_conversation_filter(where),
            scan_index_forward=False,
            limit=limit,
            page_size=limit,
            last_evaluated_key=decode_cursor(start, ("team", team), "customer_number", "last_activity_at"),
        )
        page = next(result.page_iter)  # one request: pynamodb would otherwise read on to fill `limit`
        hits = []
        for raw in page.get("Items", []):
            item = ConversationItem.from_raw_data(raw)
            key = {
                "team": {"S": team},
                "customer_number": {"S": item.customer_number},
                "last_activity_at": {"S": item.last_activity_at},
            }
            hits.append(IndexHit(item.last_activity_at, str(encode_cursor(key)), self._from_item(item)))
        last = page.get("LastEvaluatedKey")
        return IndexSlice(hits, encode_cursor(last), last["last_activity_at"]["S"] if last else None)


def _updated_if(customer_number: str, actions: list[Any], condition: Condition) -> bool:
    """One conditional conversation update; False when the condition no longer held."""
    try:
        ConversationItem(customer_number).update(actions=actions, condition=condition)
    except UpdateError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise
        return False
    return True


def _conversation_filter(where: ConversationFilter) -> Condition | None:
    conditions: list[Condition] = []
    if where.our_number:
        conditions.append(ConversationItem.our_numbers.contains(where.our_number))
    if where.owner:
        conditions.append(ConversationItem.owner == where.owner)
    if where.unread is True:
        conditions.append(ConversationItem.unread_count > 0)
    elif where.unread is False:
        conditions.append(ConversationItem.unread_count == 0)
    if where.status == "open":
        conditions.append(ConversationItem.closed.does_not_exist() | (ConversationItem.closed == False))  # noqa: E712
    elif where.status == "closed":
        conditions.append(ConversationItem.closed == True)  # noqa: E712
    combined: Condition | None = None
    for condition in conditions:
        combined = condition if combined is None else combined & condition
    return combined


# -- search terms (parley.domain.search) -----------------------------------------------------------


class _ByTerm(GlobalSecondaryIndex["SearchItem"]):
    class Meta:
        index_name = "by-term"
        projection = IncludeProjection(["term_name"])

    term_team = UnicodeAttribute(hash_key=True)
    term_key = UnicodeAttribute(range_key=True)


class SearchItem(Model):
    """A conversation's search term, an item of its own in the Conversations table (a new table would
    need another environment variable in every function, and they are near Lambda's 4 KB). Its key is
    `s#<team>#<term>#<customer number>`, which no E.164 number can be, and the sparse by-term index
    keys it (team, `<term>#<customer number>`), so one `begins_with` Query finds every conversation
    of a team with a term starting so. One manifest per conversation, `s#<team>#m#<customer number>`
    (not in the index), holds the name its word terms were made from."""

    class Meta:
        table_name = "ConversationsTable"

    customer_number = UnicodeAttribute(hash_key=True)  # the item's key, as above
    term_team = UnicodeAttribute(null=True)
    term_key = UnicodeAttribute(null=True)
    term_name = UnicodeAttribute(null=True)

    by_term = _ByTerm()


def _search_key(team: str, term: str, customer_number: str) -> str:
    return f"{_SEARCH}{team}#{term}#{customer_number}"


_SEARCH = "s#"
_MANIFEST = "m"


def _record_name(contact_id: str | None) -> str | None:
    if not contact_id or contact_id.startswith(_LOOKUP):
        return None
    try:
        doc = ContactItem.get(contact_id, consistent_read=True).doc  # just written, by add contact
    except ContactItem.DoesNotExist:
        return None
    name = doc.get("name") if isinstance(doc, dict) else None
    return str(name) if name else None


class DynamoSearch:
    """Written when a conversation is created or linked to another record and when a linked record's
    name changes, never for a text to a conversation whose record stays the same."""

    def index(self, customer_number: str, team: str, name: str | None) -> None:
        manifest_key = _search_key(team, _MANIFEST, customer_number)
        try:
            manifest: SearchItem | None = SearchItem.get(manifest_key)
        except SearchItem.DoesNotExist:
            manifest = None
        if manifest is not None and (manifest.term_name or None) == (name or None):
            return  # indexed already, with this name
        before = word_terms(manifest.term_name) if manifest is not None else set()
        terms = word_terms(name) | (set() if manifest is not None else number_terms(customer_number))
        with SearchItem.batch_write() as batch:
            for term in sorted(terms):
                batch.save(
                    SearchItem(
                        customer_number=_search_key(team, term, customer_number),
                        term_team=team,
                        term_key=f"{term}#{customer_number}",
                        term_name=name if term.startswith("w#") else None,
                    )
                )
            for term in sorted(before - word_terms(name)):
                batch.delete(SearchItem(customer_number=_search_key(team, term, customer_number)))
        # last: a write cut short leaves no manifest, so the next time writes it all again
        SearchItem(customer_number=manifest_key, term_name=name).save()

    def slice_matching(
        self, team: str, prefix: str, *, start: str | None, limit: int
    ) -> IndexSlice[SearchHit]:
        """One Query: `limit` terms starting with `prefix`, in term order."""
        first = decode_cursor(start, ("term_team", team), "customer_number", "term_key")
        if first is not None and not first["term_key"]["S"].startswith(prefix):
            raise InvalidCursor("cursor is not valid for this search")
        result = SearchItem.by_term.query(
            team,
            SearchItem.term_key.startswith(prefix),
            limit=limit,
            page_size=limit,
            last_evaluated_key=first,
        )
        page = next(result.page_iter)  # one request: pynamodb would otherwise read on to fill `limit`
        hits = []
        for raw in page.get("Items", []):
            item = SearchItem.from_raw_data(raw)
            key = str(item.term_key)
            term, number = key.rsplit("#", 1)
            position = {
                "term_team": {"S": team},
                "customer_number": {"S": item.customer_number},
                "term_key": {"S": key},
            }
            hits.append(IndexHit(key, str(encode_cursor(position)), SearchHit(number, term, item.term_name)))
        last = page.get("LastEvaluatedKey")
        return IndexSlice(hits, encode_cursor(last), last["term_key"]["S"] if last else None)


class DynamoReceipts:
    """Parked receipts expire after 30 days (TTL) as a backstop; the sweep applies them long before."""

    RETENTION_SECONDS = 30 * 24 * 3600

    @staticmethod
    def _receipt_id(update: StatusUpdate) -> str:
        return receipt_id(update)

    def park(self, update: StatusUpdate) -> None:
        ReceiptItem(
            carrier_ref=carrier_ref(update.carrier, update.carrier_message_id),
            receipt_id=self._receipt_id(update),
            doc=update.model_dump(mode="json"),
            expires_at=int(_now().timestamp()) + self.RETENTION_SECONDS,
        ).save()

    def parked_for(self, carrier: str, carrier_message_id: str) -> list[StatusUpdate]:
        items = ReceiptItem.query(carrier_ref(carrier, carrier_message_id), consistent_read=True)
        return [StatusUpdate.model_validate(i.doc) for i in items]

    def remove(self, update: StatusUpdate) -> None:
        ReceiptItem(
            carrier_ref=carrier_ref(update.carrier, update.carrier_message_id),
            receipt_id=self._receipt_id(update),
        ).delete()

    def all_parked(self, limit: int) -> list[StatusUpdate]:
        """Up to `limit` parked receipts, read slice by slice (PARKED_SEGMENTS of the table) from a
        slice picked at random: receipts that will never match (a shared account's, say) stay parked
        until their TTL, and a scan from the start each time would look at only those. Fewer than
        `limit` in all: every one is read. Off the hot path (the sweep)."""
        first = random.randrange(PARKED_SEGMENTS)
        found: list[StatusUpdate] = []
        for step in range(PARKED_SEGMENTS):
            if len(found) >= limit:
                break
            items = ReceiptItem.scan(
                ~ReceiptItem.carrier_ref.startswith(_PARTS),
                limit=limit - len(found),
                segment=(first + step) % PARKED_SEGMENTS,
                total_segments=PARKED_SEGMENTS,
            )
            found += [StatusUpdate.model_validate(i.doc) for i in items]
        return found

    # Parts of a long inbound text share the table, under their own key prefix.
    def save_part(
        self, group: str, key: str, data: dict[str, Any], *, keep_seconds: int | None = None
    ) -> None:
        ReceiptItem(
            carrier_ref=_PARTS + group,
            receipt_id=key,
            doc=data,
            expires_at=int(_now().timestamp()) + (keep_seconds or self.RETENTION_SECONDS),
        ).save()

    def parts(self, group: str) -> dict[str, dict[str, Any]]:
        return {str(i.receipt_id): i.doc for i in ReceiptItem.query(_PARTS + group, consistent_read=True)}

    def clear_parts(self, group: str, keys: Iterable[str]) -> None:
        for key in keys:
            ReceiptItem(carrier_ref=_PARTS + group, receipt_id=key).delete()


_PARTS = "parts#"
PARKED_SEGMENTS = 4


def receipt_id(update: StatusUpdate) -> str:
    """A parked receipt's sort key: its time, status and part (a carrier such as Plivo gives every
    part the parent's id, often at the same second, and each part's receipt must be kept)."""
    part = f"#{update.part}/{update.parts}" if update.part is not None else ""
    return f"{iso(update.occurred_at)}#{update.status.value}{part}"


class DynamoOptOuts:
    def get(self, customer_number: str) -> OptOut | None:
        try:
            return OptOut.model_validate(OptOutItem.get(customer_number, consistent_read=True).doc)
        except OptOutItem.DoesNotExist:
            return None

    def get_many(self, customer_numbers: list[str]) -> list[OptOut]:
        numbers = list(dict.fromkeys(customer_numbers))
        found: list[OptOut] = []
        for start in range(0, len(numbers), 100):  # BatchGetItem's limit
            found += [
                OptOut.model_validate(i.doc) for i in OptOutItem.batch_get(numbers[start : start + 100])
            ]
        return found

    def record(
        self,
        customer_number: str,
        *,
        opted_out: bool,
        source: str,
        at: datetime,
        detail: str | None,
        number: str | None = None,
    ) -> OptOut:
        """One item per customer holds both scopes (the whole OptOut as `doc`); `number` scopes the change."""
        change = ConsentChange(opted_out=opted_out, at=at, source=source, detail=detail, number=number)
        for _ in range(5):
            try:
                item = OptOutItem.get(customer_number, consistent_read=True)
                current = OptOut.model_validate(item.doc)
                version = int(item.version)
            except OptOutItem.DoesNotExist:
                current = OptOut(customer_number=customer_number, opted_out=False, updated_at=at)
                version = -1
            updated = current.with_change(change)
            condition = (
                OptOutItem.customer_number.does_not_exist() if version < 0 else OptOutItem.version == version
            )
            try:
                OptOutItem(
                    customer_number=customer_number,
                    opted_out=updated.opted_out,  # from all numbers; per-number opt-outs are in `doc`
                    version=version + 1,
                    doc=updated.model_dump(mode="json"),
                ).save(condition=condition)
            except PutError as exc:
                if exc.cause_response_code == "ConditionalCheckFailedException":
                    continue
                raise
            return updated
        raise ConflictError(f"opt-out record for {customer_number} kept changing")


_NUMBERS_VERSION = "#version"  # a row whose token changes with every saved number (not a number)
_NUMBERS_MAX_AGE = 60.0  # seconds: a row put by hand (docs/deploy.md) is seen within this


class DynamoNumbers:
    """Our numbers. The whole list (for defaults, owners, "is this ours") is read by a Scan, which
    grows with the pool; a warm function keeps it and checks a version token (one small read) that
    every save changes, so a send reads the table only after a number changed."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cached: tuple[str | None, float, list[OurNumber]] | None = None

    def get(self, number: str) -> OurNumber | None:
        if number == _NUMBERS_VERSION:
            return None
        try:
            return OurNumber.model_validate(NumberItem.get(number).doc)
        except NumberItem.DoesNotExist:
            return None

    def default_for_team(self, team: str) -> OurNumber | None:
        return team_default(self.all(), team)

    def save(self, number: OurNumber) -> None:
        NumberItem(number=number.number, doc=number.model_dump(mode="json")).save()
        NumberItem(number=_NUMBERS_VERSION, doc={"token": uuid.uuid4().hex}).save()
        self._cached = None

    def all(self) -> list[OurNumber]:
        version = self._version()
        now = self._clock()
        if self._cached is not None:
            cached_version, read_at, numbers = self._cached
            if cached_version == version and version is not None and now - read_at < _NUMBERS_MAX_AGE:
                return list(numbers)
        numbers = sorted(
            (OurNumber.model_validate(i.doc) for i in NumberItem.scan(NumberItem.number != _NUMBERS_VERSION)),
            key=lambda n: n.number,
        )
        self._cached = (version, now, numbers)
        return list(numbers)

    def _version(self) -> str | None:
        try:
            token = NumberItem.get(_NUMBERS_VERSION, attributes_to_get=["doc"]).doc
        except NumberItem.DoesNotExist:
            return None  # numbers written by hand only: the list is read each time it is needed
        return str(token.get("token")) if isinstance(token, dict) else None


_LOOKUP = "phone#"


def _lookup_key(phone: str, record_id: str) -> str:
    return f"{_LOOKUP}{phone}#{record_id}"


class DynamoContacts:
    """Records, found by any of their numbers through one lookup item per (number, record).

    The by-phone index keys one attribute per item, so a record with three numbers has three lookups
    beside it. A record and its lookups are written in one transaction, conditional on the version of
    the record read, so concurrent writers can't leave a dropped number's lookup behind; readers also
    check each record still has the number, so a lookup the index still shows never misleads.
    """

    ATTEMPTS = 5

    def __init__(self) -> None:
        self._connection: Connection | None = None

    def _tx(self) -> TransactWrite:
        if self._connection is None:  # made on first use: bind_tables sets the region
            self._connection = Connection(region=getattr(ContactItem.Meta, "region", None))
        return TransactWrite(connection=self._connection)

    def get(self, contact_id: str) -> ContactRecord | None:
        if contact_id.startswith(_LOOKUP):
            return None
        try:
            item = ContactItem.get(contact_id, consistent_read=True)
        except ContactItem.DoesNotExist:
            return None
        return ContactRecord.model_validate(item.doc) if item.doc is not None else None

    def get_many(self, contact_ids: list[str]) -> list[ContactRecord]:
        """The records of `contact_ids` that exist, in the order asked (BatchGetItem, 100 a call)."""
        ids = [i for i in dict.fromkeys(contact_ids) if not i.startswith(_LOOKUP)]
        found: dict[str, ContactRecord] = {}
        for start in range(0, len(ids), 100):
            for item in ContactItem.batch_get(ids[start : start + 100], consistent_read=True):
                if item.doc is not None:
                    found[item.contact_id] = ContactRecord.model_validate(item.doc)
        return [found[i] for i in ids if i in found]

    def find_by_phone(self, phone: str) -> list[ContactRecord]:
        ids = list(dict.fromkeys(i.record_id or i.contact_id for i in ContactItem.by_phone.query(phone)))
        found: list[ContactRecord] = []
        for start in range(0, len(ids), 100):
            for item in ContactItem.batch_get(ids[start : start + 100], consistent_read=True):
                if item.doc is not None:
                    record = ContactRecord.model_validate(item.doc)
                    if phone in record.phones:  # the index may still show a number just removed
                        found.append(record)
        return sorted(found, key=lambda r: r.contact_id)

    def save(self, contact: ContactRecord) -> None:
        self._write(contact, create=False)

    def create(self, contact: ContactRecord) -> bool:
        return self._write(contact, create=True)

    def _write(self, contact: ContactRecord, *, create: bool) -> bool:
        if contact.contact_id.startswith(_LOOKUP):
            raise ValueError(f"a record id can't start with {_LOOKUP!r}")
        for _ in range(self.ATTEMPTS):
            try:
                current: ContactItem | None = ContactItem.get(contact.contact_id, consistent_read=True)
            except ContactItem.DoesNotExist:
                current = None
            if current is not None and create:
                return False
            before: list[str] = []
            if current is not None and current.doc is not None:
                before = ContactRecord.model_validate(current.doc).phones
            condition: Condition
            if current is None:
                condition = ContactItem.contact_id.does_not_exist()
                version = 0
            elif current.version is None:  # written before records had versions
                condition = ContactItem.contact_id.exists() & ContactItem.version.does_not_exist()
                version = 0
            else:
                condition = ContactItem.version == int(current.version)
                version = int(current.version)
            record = ContactItem(
                contact_id=contact.contact_id, version=version + 1, doc=contact.model_dump(mode="json")
            )
            try:
                with self._tx() as tx:
                    tx.save(record, condition=condition)
                    for phone in contact.phones:  # idempotent: the same item each time
                        tx.save(
                            ContactItem(
                                contact_id=_lookup_key(phone, contact.contact_id),
                                phone=phone,
                                record_id=contact.contact_id,
                            )
                        )
                    for phone in set(before) - set(contact.phones):
                        tx.delete(ContactItem(contact_id=_lookup_key(phone, contact.contact_id)))
            except TransactWriteError as exc:
                reasons = [r.code for r in (exc.cancellation_reasons or []) if r is not None]
                if "ConditionalCheckFailed" in reasons:
                    continue  # written meanwhile: read it again (and, creating, report it exists)
                raise
            if current is not None and current.doc is not None and current.doc.get("name") != contact.name:
                _reindex_name(contact)
            return True
        raise ConflictError(f"record {contact.contact_id} kept changing")


def _reindex_name(contact: ContactRecord) -> None:
    """A record's new name, in the search terms of the conversations linked to it (one per number)."""
    for phone in contact.phones:
        conversation = _conversation_or_none(phone)
        if conversation is not None and conversation.contact_id == contact.contact_id:
            DynamoSearch().index(phone, conversation.team, contact.name)


class DynamoTemplates:
    def get(self, template_id: str) -> Template | None:
        if not template_id:  # DynamoDB refuses an empty key (a ValidationException, a 503 to the caller)
            return None
        try:
            return Template.model_validate(TemplateItem.get(template_id).doc)
        except TemplateItem.DoesNotExist:
            return None

    def save(self, template: Template) -> None:
        TemplateItem(template_id=template.template_id, doc=template.model_dump(mode="json")).save()

    def all(self) -> list[Template]:
        # Templates are a few hundred rows at most and listed by people, not per message.
        return sorted((Template.model_validate(i.doc) for i in TemplateItem.scan()), key=lambda t: t.name)

    def delete(self, template_id: str) -> None:
        TemplateItem(template_id=template_id).delete()


class DynamoDigests:
    def get(self, digest_key: str) -> DigestEntry | None:
        try:
            item = DigestItem.get(digest_key, consistent_read=True)
        except DigestItem.DoesNotExist:
            return None
        return DigestEntry(
            digest_key=item.digest_key,
            crm_id=item.crm_id,
            content_hash=item.content_hash,
            version=int(item.version),
            posted_at=parse_iso(item.posted_at),
            message_count=int(item.message_count),
            external_id=item.external_id,
            conversations=int(item.conversations or 1),
        )

    def save(self, entry: DigestEntry) -> None:
        DigestItem(
            digest_key=entry.digest_key,
            crm_id=entry.crm_id,
            content_hash=entry.content_hash,
            version=entry.version,
            posted_at=iso(entry.posted_at),
            message_count=entry.message_count,
            external_id=entry.external_id,
            conversations=entry.conversations,
        ).save()


_CONFLICT_PREFIX = "conflict#"


class DynamoConflicts:
    @staticmethod
    def _doc(entry: ConflictEntry) -> dict[str, Any]:
        return {
            "conflict_id": entry.conflict_id,
            "customer_number": entry.customer_number,
            "day": entry.day,
            "team": entry.team,
            "candidates": [
                {"record_id": c.record_id, "name": c.name, "record_type": c.record_type, "owner": c.owner}
                for c in entry.candidates
            ],
            "found_at": iso(entry.found_at),
            "resolved_at": iso(entry.resolved_at) if entry.resolved_at else None,
            "resolved_by": entry.resolved_by,
            "record_id": entry.record_id,
        }

    @staticmethod
    def _from_item(item: ConflictItem) -> ConflictEntry:
        doc = item.doc
        return ConflictEntry(
            conflict_id=doc["conflict_id"],
            customer_number=doc["customer_number"],
            day=doc["day"],
            team=doc["team"],
            candidates=tuple(ConflictCandidate(**c) for c in doc["candidates"]),
            found_at=parse_iso(doc["found_at"]),
            resolved_at=parse_iso(doc["resolved_at"]) if doc.get("resolved_at") else None,
            resolved_by=doc.get("resolved_by"),
            record_id=doc.get("record_id"),
        )

    def _item(self, entry: ConflictEntry) -> ConflictItem:
        return ConflictItem(
            digest_key=_CONFLICT_PREFIX + entry.conflict_id,
            found_at=iso(entry.found_at),
            open_team=None if entry.resolved else entry.team,
            doc=self._doc(entry),
        )

    def get(self, conflict_id: str) -> ConflictEntry | None:
        try:
            return self._from_item(ConflictItem.get(_CONFLICT_PREFIX + conflict_id, consistent_read=True))
        except ConflictItem.DoesNotExist:
            return None

    def add(self, entry: ConflictEntry) -> bool:
        try:
            self._item(entry).save(condition=ConflictItem.digest_key.does_not_exist())
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def reopen(self, entry: ConflictEntry) -> bool:
        return self._save_if(
            entry, ConflictItem.digest_key.exists() & ConflictItem.open_team.does_not_exist()
        )

    def list_open(self, team: str, *, limit: int, cursor: str | None) -> Page[ConflictEntry]:
        result = ConflictItem.open_conflicts.query(
            team,
            scan_index_forward=False,
            limit=limit,
            last_evaluated_key=decode_cursor(cursor, ("open_team", team), "digest_key", "found_at"),
        )
        items = [self._from_item(i) for i in _take(result, limit)]
        return Page(items, encode_cursor(result.last_evaluated_key))

    def resolve(self, entry: ConflictEntry) -> bool:
        # without `open_team`: it leaves the open-conflicts index; only one resolve finds it open
        return self._save_if(entry, ConflictItem.open_team.exists())

    def _save_if(self, entry: ConflictEntry, condition: Condition) -> bool:
        try:
            self._item(entry).save(condition=condition)
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True


_RUN_PREFIX = "run#"
_RETENTION_KEY = "settings#retention"
_FAILURES_KEPT = 20
_FAILURE_WRITE_ATTEMPTS = 8  # jobs finishing together each retry at most this often


def _conditional_failed(exc: ClientError) -> bool:
    return bool(exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


def _too_large(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    return bool(error.get("Code") == "ValidationException" and "size" in str(error.get("Message", "")))


class DynamoDigestRuns:
    """Counts are top-level numbers (`n_<name>`) so parallel jobs can ADD to them in one write.

    Each start has a run id: a job records only into its own run (a condition on `run_id`), and each
    shard's place is kept beside the counts (`seq_<shard>`: the last page counted, `after_<shard>`
    where the next starts, `done_<shard>`, `sent_<shard>`: the last page whose next job was queued),
    so a page is counted once in the same write that adds its counts. `retrying` holds the customer
    numbers whose failed day is queued to be tried again: a retry that logs it moves it out once."""

    def __init__(self, settings: Settings) -> None:
        self._connection = Connection(region=settings.region)

    def start(self, day: str, shards: int, at: datetime) -> DigestRun:
        run_id = uuid.uuid4().hex
        DigestRunItem(
            digest_key=_RUN_PREFIX + day, started_at=iso(at), shards=shards, shards_done=0, run_id=run_id
        ).save()
        return DigestRun(day=day, shards=shards, started_at=at, run_id=run_id)

    def _read(self, day: str, *names: str) -> dict[str, Any] | None:
        """The run's item (only `names`, when given), read consistently."""
        request: dict[str, Any] = {
            "TableName": DigestRunItem.Meta.table_name,
            "Key": {"digest_key": {"S": _RUN_PREFIX + day}},
            "ConsistentRead": True,
        }
        if names:
            request["ProjectionExpression"] = ", ".join(f"#p{i}" for i in range(len(names)))
            request["ExpressionAttributeNames"] = {f"#p{i}": name for i, name in enumerate(names)}
        found: dict[str, Any] | None = self._connection.client.get_item(**request).get("Item")
        return found

    def record(
        self,
        day: str,
        counts: dict[str, int],
        failures: list[dict[str, str]],
        *,
        shard_done: bool,
        page: RunPage | None = None,
        retrying: Sequence[str] = (),
    ) -> bool:
        if page is not None:
            return self._record_page(
                day, counts, failures, shard_done=shard_done, page=page, retrying=retrying
            )
        names = {f"#n{i}": f"n_{name}" for i, name in enumerate(counts)}
        values: dict[str, Any] = {f":n{i}": {"N": str(v)} for i, v in enumerate(counts.values())}
        adds = [f"#n{i} :n{i}" for i in range(len(counts))]
        if shard_done:
            names["#done"] = "shards_done"
            values[":one"] = {"N": "1"}
            adds.append("#done :one")
        self._connection.client.update_item(
            TableName=DigestRunItem.Meta.table_name,
            Key={"digest_key": {"S": _RUN_PREFIX + day}},
            UpdateExpression="ADD " + ", ".join(adds),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
        if failures:  # the first few of the run are kept for a person; the log has them all
            self._keep_failures(day, failures)
        return True

    def _record_page(
        self,
        day: str,
        counts: dict[str, int],
        failures: list[dict[str, str]],
        *,
        shard_done: bool,
        page: RunPage,
        retrying: Sequence[str],
    ) -> bool:
        """One conditional write: the counts, the shard's place, the failures kept (appended only if
        no other job changed them since they were read) and the numbers to retry."""
        shard = page.shard
        for attempt in range(_FAILURE_WRITE_ATTEMPTS):
            found = self._read(day, "run_id", f"seq_{shard}", "failures")
            if found is None or found.get("run_id", {}).get("S") != page.run_id:
                return False
            if int(found.get(f"seq_{shard}", {"N": "-1"})["N"]) >= page.seq:
                return False
            kept = json.loads(found["failures"]["S"]) if "failures" in found else []
            # the last attempt gives up keeping the failures (the log has them), never the counts
            keep = bool(failures) and len(kept) < _FAILURES_KEPT and attempt < _FAILURE_WRITE_ATTEMPTS - 1
            names = {
                "#run": "run_id",
                "#seq": f"seq_{shard}",
                "#after": f"after_{shard}",
                "#end": f"done_{shard}",
                **{f"#n{i}": f"n_{name}" for i, name in enumerate(counts)},
            }
            values: dict[str, Any] = {
                ":run": {"S": page.run_id},
                ":seq": {"N": str(page.seq)},
                ":after": {"S": page.following or ""},
                ":end": {"BOOL": shard_done},
                **{f":n{i}": {"N": str(v)} for i, v in enumerate(counts.values())},
            }
            adds = [f"#n{i} :n{i}" for i in range(len(counts))]
            sets = ["#seq = :seq", "#after = :after", "#end = :end"]
            condition = "#run = :run AND (attribute_not_exists(#seq) OR #seq < :seq)"
            if shard_done:
                names["#done"] = "shards_done"
                values[":one"] = {"N": "1"}
                adds.append("#done :one")
            if retrying:
                names["#retrying"] = "retrying"
                values[":retrying"] = {"SS": sorted(set(retrying))}
                adds.append("#retrying :retrying")
            if keep:
                names["#failures"] = "failures"
                values[":failures"] = {"S": json.dumps((kept + failures)[:_FAILURES_KEPT])}
                sets.append("#failures = :failures")
                if "failures" in found:
                    values[":kept"] = found["failures"]
                    condition += " AND #failures = :kept"
                else:
                    condition += " AND attribute_not_exists(#failures)"
            try:
                self._connection.client.update_item(
                    TableName=DigestRunItem.Meta.table_name,
                    Key={"digest_key": {"S": _RUN_PREFIX + day}},
                    UpdateExpression=f"SET {', '.join(sets)}" + (f" ADD {', '.join(adds)}" if adds else ""),
                    ConditionExpression=condition,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                )
                return True
            except ClientError as exc:
                if _too_large(exc) and retrying:  # an outage of a huge day: count it, untracked retries
                    logger.warning("digest run %s: %d retries not tracked (item full)", day, len(retrying))
                    retrying = ()
                elif not _conditional_failed(exc):
                    raise
        return False

    def shard(self, day: str, run_id: str, shard: int) -> ShardProgress | None:
        found = self._read(day, "run_id", f"seq_{shard}", f"after_{shard}", f"done_{shard}", f"sent_{shard}")
        if found is None or found.get("run_id", {}).get("S") != run_id:
            return None
        return ShardProgress(
            recorded=int(found.get(f"seq_{shard}", {"N": "-1"})["N"]),
            following=found.get(f"after_{shard}", {}).get("S") or None,
            done=bool(found.get(f"done_{shard}", {}).get("BOOL", False)),
            handed_on=int(found.get(f"sent_{shard}", {"N": "-1"})["N"]),
        )

    def handed_on(self, day: str, run_id: str, shard: int, seq: int) -> None:
        try:
            self._connection.client.update_item(
                TableName=DigestRunItem.Meta.table_name,
                Key={"digest_key": {"S": _RUN_PREFIX + day}},
                UpdateExpression="SET #sent = :seq",
                ConditionExpression="#run = :run AND (attribute_not_exists(#sent) OR #sent < :seq)",
                ExpressionAttributeNames={"#run": "run_id", "#sent": f"sent_{shard}"},
                ExpressionAttributeValues={":run": {"S": run_id}, ":seq": {"N": str(seq)}},
            )
        except ClientError as exc:
            if not _conditional_failed(exc):  # a run started again, or a later page handed on
                raise

    def retried(self, day: str, run_id: str, customer_number: str, counts: dict[str, int]) -> bool:
        for _ in range(_FAILURE_WRITE_ATTEMPTS):
            found = self._read(day)
            if (
                found is None
                or found.get("run_id", {}).get("S") != run_id
                or customer_number not in found.get("retrying", {}).get("SS", [])
            ):
                return False
            names = {"#run": "run_id", "#retrying": "retrying", "#failed": "n_failed"}
            values: dict[str, Any] = {
                ":run": {"S": run_id},
                ":number": {"S": customer_number},
                ":numbers": {"SS": [customer_number]},
                ":minus": {"N": "-1"},
            }
            adds = ["#failed :minus"]
            for i, (name, n) in enumerate(counts.items()):
                names[f"#n{i}"] = f"n_{name}"
                values[f":n{i}"] = {"N": str(n)}
                adds.append(f"#n{i} :n{i}")
            update = f"ADD {', '.join(adds)} DELETE #retrying :numbers"
            condition = "#run = :run AND contains(#retrying, :number)"
            kept = json.loads(found["failures"]["S"]) if "failures" in found else []
            left = [f for f in kept if f.get("customer_number") != customer_number]
            if len(left) != len(kept):
                names["#failures"] = "failures"
                values[":failures"] = {"S": json.dumps(left)}
                values[":kept"] = found["failures"]
                update += " SET #failures = :failures"
                condition += " AND #failures = :kept"
            try:
                self._connection.client.update_item(
                    TableName=DigestRunItem.Meta.table_name,
                    Key={"digest_key": {"S": _RUN_PREFIX + day}},
                    UpdateExpression=update,
                    ConditionExpression=condition,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                )
                return True
            except ClientError as exc:
                if not _conditional_failed(exc):
                    raise
        return False

    def _keep_failures(self, day: str, failures: list[dict[str, str]]) -> None:
        """Append to the kept list only if no other job changed it since it was read, so none is lost."""
        for _ in range(_FAILURE_WRITE_ATTEMPTS):
            item = DigestRunItem.get(_RUN_PREFIX + day, consistent_read=True)
            kept = list(item.failures or [])
            if len(kept) >= _FAILURES_KEPT:
                return
            unchanged = (
                DigestRunItem.failures.does_not_exist()
                if item.failures is None
                else DigestRunItem.failures == item.failures
            )
            try:
                item.update(
                    actions=[DigestRunItem.failures.set((kept + failures)[:_FAILURES_KEPT])],
                    condition=unchanged,
                )
                return
            except UpdateError as exc:
                if exc.cause_response_code != "ConditionalCheckFailedException":
                    raise
        logger.warning(
            "digest run %s: %d failures not kept after %d attempts (they are in this log)",
            day,
            len(failures),
            _FAILURE_WRITE_ATTEMPTS,
        )

    def get(self, day: str) -> DigestRun | None:
        found = self._connection.client.get_item(
            TableName=DigestRunItem.Meta.table_name,
            Key={"digest_key": {"S": _RUN_PREFIX + day}},
            ConsistentRead=True,
        ).get("Item")
        if not found:
            return None
        counts = {k[2:]: int(v["N"]) for k, v in found.items() if k.startswith("n_")}
        failures = json.loads(found["failures"]["S"]) if "failures" in found else []
        return DigestRun(
            day=day,
            shards=int(found["shards"]["N"]) if "shards" in found else 0,
            started_at=parse_iso(found["started_at"]["S"]) if "started_at" in found else None,
            shards_done=int(found.get("shards_done", {"N": "0"})["N"]),
            counts=counts,
            failures=tuple(failures),
            run_id=found["run_id"]["S"] if "run_id" in found else None,
        )

    def keep_retention(self, days: int) -> None:
        self._connection.client.put_item(
            TableName=DigestRunItem.Meta.table_name,
            Item={"digest_key": {"S": _RETENTION_KEY}, "days": {"N": str(days)}},
        )

    def retention_days(self) -> int | None:
        found = self._connection.client.get_item(
            TableName=DigestRunItem.Meta.table_name,
            Key={"digest_key": {"S": _RETENTION_KEY}},
            ConsistentRead=True,
        ).get("Item")
        return int(found["days"]["N"]) if found else None


_USER_PREFIX = "user#"


class DynamoAutoLogSettings:
    def get_user(self, user: str) -> str | None:
        try:
            return AutoLogItem.get(_USER_PREFIX + user, consistent_read=True).auto_log
        except AutoLogItem.DoesNotExist:
            return None

    def set_user(self, user: str, mode: str | None) -> None:
        if mode is None:
            AutoLogItem(digest_key=_USER_PREFIX + user).delete()
        else:
            AutoLogItem(digest_key=_USER_PREFIX + user, auto_log=mode).save()


class DynamoRateLimiter:
    """Token buckets with optimistic writes: read, compute, write on the version read; a few tries.

    Every text that gets a turn costs one strongly consistent read and one small write, whether the
    turn is now or later (see `parley.domain.rate.reserve`). Under heavy contention on one number,
    losing every try reads as "wait one token" with nothing reserved.
    """

    ATTEMPTS = 5

    def reserve(
        self, number: str, now: datetime, cost: float, rate: float, *, horizon: float
    ) -> tuple[float, bool]:
        for _ in range(self.ATTEMPTS):
            try:
                item = RateLimitItem.get(number, consistent_read=True)
                state: BucketState | None = BucketState(
                    float(item.tokens), datetime.fromtimestamp(float(item.refilled_at), UTC)
                )
                version = int(item.version)
            except RateLimitItem.DoesNotExist:
                state, version = None, -1
            new, wait = reserve_tokens(state, now, cost, rate, horizon=horizon)
            if wait > horizon:
                return wait, False
            condition = (
                RateLimitItem.number.does_not_exist() if version < 0 else RateLimitItem.version == version
            )
            try:
                RateLimitItem(
                    number=number, tokens=new.tokens, refilled_at=new.at.timestamp(), version=version + 1
                ).save(condition=condition)
            except PutError as exc:
                if exc.cause_response_code == "ConditionalCheckFailedException":
                    continue
                raise
            return wait, True
        return min(cost, rate) / rate, False


class DynamoErasure:
    """The deletes of an erasure (parley.services.erasure): each idempotent, each counting what was
    there, so a second erasure reports zero."""

    def __init__(self) -> None:
        self._connection: Connection | None = None

    def delete_messages(self, messages: Sequence[Message]) -> int:
        ids = list(dict.fromkeys(m.message_id for m in messages))
        with MessageItem.batch_write() as batch:  # 25 a request; index entries go with each item
            for message_id in ids:
                batch.delete(MessageItem(message_id=message_id))
        return len(ids)

    def delete_conversation(self, customer_number: str) -> tuple[int, int]:
        """Search terms first, the conversation last: a call cut short between the two finds the
        conversation (and so its team) again."""
        conversation = _conversation_or_none(customer_number)
        if conversation is None or customer_number.startswith(_SEARCH):
            return 0, 0
        team = conversation.team
        manifest_key = _search_key(team, _MANIFEST, customer_number)
        try:
            name = SearchItem.get(manifest_key, consistent_read=True).term_name
        except SearchItem.DoesNotExist:
            name = None
        keys = [_search_key(team, t, customer_number) for t in sorted(terms_for(customer_number, name))]
        present = [i.customer_number for i in SearchItem.batch_get(keys, consistent_read=True)]
        with SearchItem.batch_write() as batch:
            for key in present:
                batch.delete(SearchItem(customer_number=key))
        SearchItem(customer_number=manifest_key).delete()
        ConversationItem(customer_number).delete()
        return 1, len(present)

    def delete_record(self, contact_id: str) -> bool:
        if contact_id.startswith(_LOOKUP):
            return False
        try:
            item = ContactItem.get(contact_id, consistent_read=True)
        except ContactItem.DoesNotExist:
            return False
        phones = ContactRecord.model_validate(item.doc).phones if item.doc is not None else []
        if self._connection is None:
            self._connection = Connection(region=getattr(ContactItem.Meta, "region", None))
        with TransactWrite(connection=self._connection) as tx:
            tx.delete(ContactItem(contact_id=contact_id))
            for phone in phones:
                tx.delete(ContactItem(contact_id=_lookup_key(phone, contact_id)))
        return True

    def delete_digest_items(self, digest_keys: Sequence[str], conflict_ids: Sequence[str]) -> int:
        keys = [*digest_keys, *(_CONFLICT_PREFIX + c for c in conflict_ids)]
        removed = 0
        for key in keys:
            try:
                DigestItem(digest_key=key).delete(condition=DigestItem.digest_key.exists())
            except DeleteError as exc:
                if exc.cause_response_code != "ConditionalCheckFailedException":
                    raise
            else:
                removed += 1
        return removed

    def delete_parts(self, customer_number: str, start: str | None) -> tuple[int, str | None]:
        """A scan page of the receipts table: a part's group key holds the customer's number, and the
        table has no index by number (an erasure is rare and off the hot path)."""
        pages = ReceiptItem.scan(
            ReceiptItem.carrier_ref.startswith(_PARTS)
            & ReceiptItem.carrier_ref.contains(f"#{customer_number}#"),
            page_size=ERASURE_SCAN_PAGE,
            last_evaluated_key=json.loads(start) if start else None,
        ).page_iter
        page: dict[str, Any] = next(pages, {})
        keys = [
            (i["carrier_ref"]["S"], i["receipt_id"]["S"])
            for i in page.get("Items", [])
            if part_group_sender(i["carrier_ref"]["S"].removeprefix(_PARTS)) == customer_number
        ]
        with ReceiptItem.batch_write() as batch:
            for ref, rid in keys:
                batch.delete(ReceiptItem(carrier_ref=ref, receipt_id=rid))
        last = pages.last_evaluated_key
        return len(keys), json.dumps(last) if last else None


ERASURE_SCAN_PAGE = 500


def part_group_sender(group: str) -> str:
    """The customer's number in a parts group (`carrier#customer#our number#ref#total`)."""
    return group.split("#")[1] if group.count("#") >= 2 else ""


def create_all_tables() -> None:
    """For tests on moto only; deployed tables come from template.yaml."""
    for model in _TABLES:
        if not model.exists():
            model.create_table(billing_mode="PAY_PER_REQUEST", wait=True)


__all__ = [
    "DynamoConflicts",
    "DynamoContacts",
    "DynamoConversations",
    "DynamoDigests",
    "DynamoErasure",
    "DynamoMessages",
    "DynamoNumbers",
    "DynamoOptOuts",
    "DynamoRateLimiter",
    "DynamoReceipts",
    "DynamoSyncStates",
    "DynamoTemplates",
    "InvalidCursor",
    "MessageStatus",
    "bind_tables",
    "create_all_tables",
]


_SYNC_PREFIX = "sync#"


class SyncItem(Model):
    """The record sync's state for one CRM, `sync#<crm>` in the Digests table (it is CRM state)."""

    class Meta:
        table_name = "DigestsTable"

    digest_key = UnicodeAttribute(hash_key=True)
    since = UnicodeAttribute(null=True)
    cursor = UnicodeAttribute(null=True)
    latest = UnicodeAttribute(null=True)
    synced_at = UnicodeAttribute(null=True)


class DynamoSyncStates:
    def get(self, crm: str) -> SyncState:
        try:
            item = SyncItem.get(_SYNC_PREFIX + crm, consistent_read=True)
        except SyncItem.DoesNotExist:
            return SyncState()
        return SyncState(
            since=parse_iso(item.since) if item.since else None,
            cursor=item.cursor or None,
            latest=parse_iso(item.latest) if item.latest else None,
            synced_at=parse_iso(item.synced_at) if item.synced_at else None,
        )

    def save(self, crm: str, state: SyncState) -> None:
        SyncItem(
            digest_key=_SYNC_PREFIX + crm,
            since=iso(state.since) if state.since else None,
            cursor=state.cursor,
            latest=iso(state.latest) if state.latest else None,
            synced_at=iso(state.synced_at) if state.synced_at else None,
        ).save()
