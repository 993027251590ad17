"""In-memory fakes of every port in `parley.ports`, plus a scripted carrier, a recording CRM and a clock.

The fakes mirror the DynamoDB adapters' observable semantics (atomic insert-or-nothing, how a
message folds into its conversation, optimistic versions, receipt keys, day shards), so a service
test against them says something about production. The assignments at the bottom make mypy check
every fake against its Protocol: change a port and this module stops type-checking.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from parley.adapters.dynamo import iso, receipt_id, shard_of
from parley.carriers.base import (
    Carrier,
    FailureKind,
    FetchedMedia,
    MediaSource,
    ParsedEvent,
    PayloadError,
    SendAccepted,
    SendOutcome,
    SentLookup,
    SignatureError,
    WebhookAck,
    WebhookKind,
    WebhookRequest,
)
from parley.carriers.base import OutboundText as OutboundText
from parley.crm.registry import Crm
from parley.crm.webhook import CrmError, CrmUpsertResult
from parley.domain.ids import carrier_ref
from parley.domain.keywords import Keyword
from parley.domain.models import (
    ConsentChange,
    ContactRecord,
    Conversation,
    Direction,
    Message,
    OptOut,
    OurNumber,
    StatusUpdate,
    Template,
    day_of,
    team_default,
)
from parley.domain.rate import BucketState
from parley.domain.rate import reserve as reserve_tokens
from parley.domain.retry import RetryPolicy
from parley.domain.search import terms_for
from parley.domain.views import box_for, due_entry, indexed_view, team_box, view_attribute
from parley.edge import WebhookIntake
from parley.observability import MetricsSink, ObservedEvents
from parley.ports import (
    AutoLogSettings,
    Clock,
    ConflictEntry,
    ConflictError,
    ConflictRepository,
    ContactRepository,
    ConversationBrowser,
    ConversationDelta,
    ConversationFilter,
    ConversationLinker,
    ConversationPreviews,
    ConversationRepository,
    DeadLetter,
    DeadLetterQueue,
    DigestEntry,
    DigestRepository,
    DigestRun,
    DigestRunRepository,
    ErasureStore,
    EventPublisher,
    IndexHit,
    IndexSlice,
    JobQueue,
    MediaStore,
    MessageListing,
    MessageRepository,
    MessageViews,
    NumberRepository,
    OptOutRepository,
    Page,
    Partition,
    RateLimiter,
    RunPage,
    SearchHit,
    SearchIndex,
    ShardProgress,
    SyncState,
    SyncStateRepository,
    TemplateRepository,
)
from parley.services.conversations import keeps
from parley.services.dead_letters import DeadLetterService
from parley.services.digest import DigestService
from parley.services.digest_jobs import DigestJobs
from parley.services.inbound import InboundProcessor, ReceiptStore
from parley.services.resend import ResendService
from parley.services.sending import SendService

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)


# -- clock ------------------------------------------------------------------------------------------


class SettableClock:
    """A Clock that only moves when a test moves it."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def set(self, at: datetime) -> None:
        self.now = at

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        self.now = self.now + (delta if delta is not None else timedelta(**kwargs))
        return self.now


# -- paging -----------------------------------------------------------------------------------------


def _encode_cursor(key: list[str]) -> str:
    return json.dumps(key, separators=(",", ":"))


def _page_after(
    ordered: list[Any], key_of: Callable[[Any], list[str]], limit: int, cursor: str | None
) -> tuple[list[Any], str | None]:
    """Keyset paging over an already-ordered list: the page starts after the cursor's item."""
    start = 0
    if cursor:
        after = json.loads(cursor)
        keys = [key_of(item) for item in ordered]
        start = keys.index(after) + 1 if after in keys else len(ordered)
    items = ordered[start : start + limit]
    more = start + limit < len(ordered)
    return items, (_encode_cursor(key_of(items[-1])) if more and items else None)


# -- repositories -----------------------------------------------------------------------------------


class InMemoryConversations:
    def __init__(self) -> None:
        self.items: dict[str, Conversation] = {}

    def get(self, customer_number: str) -> Conversation | None:
        found = self.items.get(customer_number)
        return found.model_copy(deep=True) if found else None

    def list_recent(self, team: str, *, limit: int, cursor: str | None) -> Page[Conversation]:
        ordered = sorted(
            (c for c in self.items.values() if c.team == team),
            key=lambda c: (c.last_activity_at, c.customer_number),
            reverse=True,
        )
        items, next_cursor = _page_after(ordered, lambda c: [c.customer_number], limit, cursor)
        return Page([c.model_copy(deep=True) for c in items], next_cursor)

    def link(self, customer_number: str, *, contact_id: str, owner: str | None, reason: str) -> None:
        conversation = self.items[customer_number]
        conversation.contact_id = contact_id
        conversation.routing_reason = reason
        conversation.conflict_candidates = []
        if owner:
            conversation.owner = owner

    # -- the inbox's operations (ConversationBrowser), as DynamoConversations does them ------------
    def mark_read(self, customer_number: str) -> None:
        if customer_number in self.items:
            self.items[customer_number].unread_count = 0

    def set_closed(self, customer_number: str, closed: bool) -> None:
        if customer_number in self.items:
            self.items[customer_number].closed = closed

    def clear_preview(self, customer_number: str, message_id: str) -> bool:
        found = self.items.get(customer_number)
        if found is None or found.last_message_id != message_id:
            return False
        self.items[customer_number] = found.model_copy(update={"last_message_preview": ""})
        return True

    def add_unread(self, customer_number: str, delta: int) -> bool:
        found = self.items.get(customer_number)
        if found is None or found.unread_count + delta < 0:
            return False
        found.unread_count += delta
        return True

    def set_unread(self, customer_number: str, count: int, *, message_count: int) -> bool:
        found = self.items.get(customer_number)
        if found is None or found.message_count != message_count:
            return False
        found.unread_count = count
        return True

    def set_preview(self, customer_number: str, message_id: str, preview: str) -> bool:
        found = self.items.get(customer_number)
        if found is None or found.last_message_id != message_id:
            return False
        found.last_message_preview = preview[:160]
        return True

    def get_many(self, customer_numbers: list[str]) -> list[Conversation]:
        return [c for n in dict.fromkeys(customer_numbers) if (c := self.get(n)) is not None]

    def slice_by_activity(
        self, team: str, where: ConversationFilter, *, start: str | None, limit: int
    ) -> IndexSlice[Conversation]:
        """One Query's worth: `limit` items read after `start`, the filter applied to them."""
        ordered = sorted(
            (c for c in self.items.values() if c.team == team),
            key=lambda c: (c.last_activity_at, c.customer_number),
            reverse=True,
        )
        keys = [_encode_cursor([iso(c.last_activity_at), c.customer_number]) for c in ordered]
        first = keys.index(start) + 1 if start in keys else (0 if start is None else len(keys))
        read = list(range(first, min(first + limit, len(ordered))))
        hits = [
            IndexHit(iso(ordered[i].last_activity_at), keys[i], ordered[i].model_copy(deep=True))
            for i in read
            if keeps(where, ordered[i])
        ]
        more = bool(read) and read[-1] + 1 < len(ordered)
        last = read[-1] if more else None
        return IndexSlice(
            hits,
            keys[last] if last is not None else None,
            iso(ordered[last].last_activity_at) if last is not None else None,
        )

    def fold(self, delta: ConversationDelta) -> None:
        """Apply one message's delta exactly as DynamoMessages.insert_with_conversation's update does."""
        current = self.items.get(delta.customer_number)
        if current is None:
            conversation = Conversation(
                customer_number=delta.customer_number,
                team=delta.team,
                last_activity_at=delta.at,
                owner=delta.owner or None,
                contact_id=delta.contact_id or None,
            )
        else:
            conversation = current.model_copy(deep=True)
            # if_not_exists(): the first owner / contact / team sticks
            if delta.owner and conversation.owner is None:
                conversation.owner = delta.owner
            if delta.contact_id and conversation.contact_id is None:
                conversation.contact_id = delta.contact_id
        if delta.routed:  # an inbound text's routing decision replaces the last one
            conversation.contact_id = delta.contact_id
            conversation.conflict_candidates = sorted(delta.conflict_candidates)
            if delta.routing_reason:
                conversation.routing_reason = delta.routing_reason
            if delta.owner:
                conversation.owner = delta.owner
        conversation.message_count += 1
        conversation.unread_count += delta.unread_increment
        conversation.our_numbers = sorted({*conversation.our_numbers, delta.our_number})
        conversation.closed = False
        if current is None or current.last_activity_at <= delta.at:
            conversation.last_activity_at = delta.at
            conversation.last_message_id = delta.message_id
            conversation.last_message_preview = delta.preview[:160]
            conversation.last_direction = Direction(delta.direction)
            conversation.last_our_number = delta.our_number
        self.items[delta.customer_number] = conversation


class InMemoryMessages:
    """Messages plus their conversations; `inject_conflicts(n)` makes the next n updates lose a race."""

    def __init__(
        self,
        conversations: InMemoryConversations | None = None,
        *,
        clock: Clock | None = None,
        org_timezone: str = "UTC",
        shards: int = 4,
    ) -> None:
        self.conversations = conversations if conversations is not None else InMemoryConversations()
        self.items: dict[str, Message] = {}
        self.updates = 0
        self._clock = clock or (lambda: datetime.now(UTC))
        self._tz = org_timezone
        self._shards = shards
        self._conflicts = 0
        self.day_pages: list[tuple[str, int, str | None]] = []  # each page of the day index read

    def inject_conflicts(self, count: int) -> None:
        self._conflicts = count

    def get(self, message_id: str) -> Message | None:
        found = self.items.get(message_id)
        return found.model_copy(deep=True) if found else None

    def existing(self, message_ids: Sequence[str]) -> set[str]:
        return {i for i in message_ids if i in self.items}

    def insert(self, message: Message) -> bool:
        if message.message_id in self.items:
            return False
        self.items[message.message_id] = message.model_copy(deep=True)
        return True

    def insert_with_conversation(self, message: Message, delta: ConversationDelta) -> bool:
        if message.message_id in self.items:
            return False
        self.items[message.message_id] = message.model_copy(deep=True)
        self.conversations.fold(delta)
        return True

    def update(self, message: Message, *, expected_version: int) -> Message:
        stored = self.items.get(message.message_id)
        if self._conflicts > 0:
            self._conflicts -= 1
            raise ConflictError(f"{message.message_id}: injected conflict")
        if stored is None or stored.version != expected_version:
            raise ConflictError(message.message_id)
        new = message.model_copy(update={"version": expected_version + 1, "updated_at": self._clock()})
        self.items[message.message_id] = new.model_copy(deep=True)
        self.updates += 1
        return new

    def find_by_carrier_ref(self, carrier: str, carrier_message_id: str) -> Message | None:
        for message in self.items.values():
            # As the adapter indexes it: a resent text keeps its last attempt's id until it has a new one.
            ref = message.carrier_message_id or next(iter(message.superseded_carrier_ids[-1:]), None)
            if message.carrier == carrier and ref == carrier_message_id:
                return message.model_copy(deep=True)
        return None

    def list_view(
        self, view: str, *, limit: int, cursor: str | None, since: datetime | None = None
    ) -> Page[Message]:
        ordered = sorted(
            (
                m
                for m in self.items.values()
                if indexed_view(m.status, deleted=m.deleted_at is not None) == view
                and (since is None or m.created_at >= since)
            ),
            key=lambda m: (m.created_at, m.message_id),
            reverse=True,
        )
        items, next_cursor = _page_after(ordered, lambda m: [m.message_id], limit, cursor)
        return Page([m.model_copy(deep=True) for m in items], next_cursor)

    def list_due(self, partition: str, *, until: datetime, limit: int, cursor: str | None) -> Page[Message]:
        """As the adapter's `by-due` index: due at or before `until`, oldest due first; the cursor is
        a key position, so a page goes on after it even when that message has left the partition."""
        after = tuple(json.loads(cursor)) if cursor else None
        found = sorted(
            ((due[1].astimezone(UTC).isoformat(), m.message_id), m)
            for m in self.items.values()
            if (due := due_entry(m)) is not None and due[0] == partition and due[1] <= until
        )
        ordered = [(key, m) for key, m in found if after is None or key > after]
        page = ordered[:limit]
        more = len(ordered) > limit
        return Page(
            [m.model_copy(deep=True) for _, m in page], json.dumps(page[-1][0]) if more and page else None
        )

    def reindex_legacy(self, *, limit: int) -> int:
        return 0  # every fake message is indexed as it is written

    def list_merged(
        self,
        partitions: Sequence[Partition],
        *,
        limit: int,
        cursor: str | None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Page[Message]:
        """As the adapter keys its indexes (parley.domain.views): `by-view`, `by-team` and, ordered
        by due time, `by-due`."""
        wanted = set(partitions)

        def at(m: Message) -> datetime:
            due = due_entry(m)
            return due[1] if due and ("due_view", due[0]) in wanted else m.created_at

        def keys(m: Message) -> set[Partition]:
            deleted = m.deleted_at is not None
            found = {("team_box", team_box(m.team, box_for(m.direction, deleted=deleted)))}
            view = view_attribute(m.status, deleted=deleted)
            due = due_entry(m)
            return found | ({("view", view)} if view else set()) | ({("due_view", due[0])} if due else set())

        ordered = sorted(
            (
                m
                for m in self.items.values()
                if keys(m) & wanted
                and (since is None or at(m) >= since)
                and (until is None or at(m) <= until)
            ),
            key=lambda m: (at(m), m.message_id),
            reverse=True,
        )
        items, next_cursor = _page_after(ordered, lambda m: [m.message_id], limit, cursor)
        return Page([m.model_copy(deep=True) for m in items], next_cursor)

    def list_for_conversation(
        self,
        customer_number: str,
        *,
        limit: int,
        cursor: str | None,
        since: datetime | None = None,
        before: datetime | None = None,
    ) -> Page[Message]:
        ordered = sorted(
            (
                m
                for m in self.items.values()
                if m.customer_number == customer_number
                and (since is None or m.created_at >= since)
                and (before is None or m.created_at < before)
            ),
            key=lambda m: (m.created_at, m.message_id),
            reverse=True,
        )
        items, next_cursor = _page_after(ordered, lambda m: [m.message_id], limit, cursor)
        return Page([m.model_copy(deep=True) for m in items], next_cursor)

    def _day(self, day: str, shard: int) -> list[Message]:
        return sorted(
            (
                m
                for m in self.items.values()
                if day_of(m.created_at, self._tz) == day
                and shard_of(m.customer_number, self._shards) == shard
            ),
            key=lambda m: (m.customer_number, m.created_at, m.message_id),
        )

    def day_conversations(
        self, day: str, shard: int, *, after: str | None, limit: int
    ) -> tuple[list[str], str | None]:
        numbers = list(dict.fromkeys(m.customer_number for m in self._day(day, shard)))
        if after is not None:
            numbers = [n for n in numbers if n > after]
        self.day_pages.append((day, shard, after))
        return numbers[:limit], (numbers[limit - 1] if len(numbers) > limit else None)

    def list_conversation_day(self, customer_number: str, day: str) -> list[Message]:
        shard = shard_of(customer_number, self._shards)
        return [
            m.model_copy(deep=True) for m in self._day(day, shard) if m.customer_number == customer_number
        ]


class InMemoryReceipts:
    """Keyed like ReceiptsTable: (carrier ref, occurred_at#status[#part/parts]); a repeat overwrites."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], StatusUpdate] = {}
        self.part_items: dict[str, dict[str, dict[str, Any]]] = {}
        self.part_keep_seconds: dict[tuple[str, str], int | None] = {}

    @staticmethod
    def _key(update: StatusUpdate) -> tuple[str, str]:
        return (carrier_ref(update.carrier, update.carrier_message_id), receipt_id(update))

    def park(self, update: StatusUpdate) -> None:
        self.items[self._key(update)] = update

    def parked_for(self, carrier: str, carrier_message_id: str) -> list[StatusUpdate]:
        ref = carrier_ref(carrier, carrier_message_id)
        return [u for k, u in sorted(self.items.items()) if k[0] == ref]

    def remove(self, update: StatusUpdate) -> None:
        self.items.pop(self._key(update), None)

    def all_parked(self, limit: int) -> list[StatusUpdate]:
        return [u for _, u in sorted(self.items.items())][:limit]

    def save_part(
        self, group: str, key: str, data: dict[str, Any], *, keep_seconds: int | None = None
    ) -> None:
        self.part_items.setdefault(group, {})[key] = json.loads(json.dumps(data))
        self.part_keep_seconds[(group, key)] = keep_seconds

    def parts(self, group: str) -> dict[str, dict[str, Any]]:
        return dict(self.part_items.get(group, {}))

    def clear_parts(self, group: str, keys: Iterable[str]) -> None:
        for key in keys:
            self.part_items.get(group, {}).pop(key, None)


class InMemoryOptOuts:
    def __init__(self) -> None:
        self.items: dict[str, OptOut] = {}

    def get(self, customer_number: str) -> OptOut | None:
        return self.items.get(customer_number)

    def get_many(self, customer_numbers: list[str]) -> list[OptOut]:
        return [self.items[n] for n in dict.fromkeys(customer_numbers) if n in self.items]

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
        current = self.items.get(customer_number) or OptOut(
            customer_number=customer_number, opted_out=False, updated_at=at
        )
        change = ConsentChange(opted_out=opted_out, at=at, source=source, detail=detail, number=number)
        updated = current.with_change(change)
        self.items[customer_number] = updated
        return updated


class InMemoryNumbers:
    def __init__(self, *numbers: OurNumber) -> None:
        self.items: dict[str, OurNumber] = {n.number: n for n in numbers}

    def get(self, number: str) -> OurNumber | None:
        return self.items.get(number)

    def default_for_team(self, team: str) -> OurNumber | None:
        return team_default(self.items.values(), team)

    def save(self, number: OurNumber) -> None:
        self.items[number.number] = number

    def all(self) -> list[OurNumber]:
        return sorted(self.items.values(), key=lambda n: n.number)


class InMemoryContacts:
    def __init__(self, *contacts: ContactRecord) -> None:
        self.items: dict[str, ContactRecord] = {c.contact_id: c for c in contacts}

    def get(self, contact_id: str) -> ContactRecord | None:
        return self.items.get(contact_id)

    def get_many(self, contact_ids: list[str]) -> list[ContactRecord]:
        return [self.items[i] for i in dict.fromkeys(contact_ids) if i in self.items]

    def find_by_phone(self, phone: str) -> list[ContactRecord]:
        return sorted((c for c in self.items.values() if phone in c.phones), key=lambda c: c.contact_id)

    def save(self, contact: ContactRecord) -> None:
        self.items[contact.contact_id] = contact

    def create(self, contact: ContactRecord) -> bool:
        if contact.contact_id in self.items:
            return False
        self.items[contact.contact_id] = contact
        return True


class InMemoryTemplates:
    def __init__(self, *templates: Template) -> None:
        self.items: dict[str, Template] = {t.template_id: t for t in templates}

    def get(self, template_id: str) -> Template | None:
        return self.items.get(template_id)

    def save(self, template: Template) -> None:
        self.items[template.template_id] = template

    def all(self) -> list[Template]:
        return sorted(self.items.values(), key=lambda t: t.name)

    def delete(self, template_id: str) -> None:
        self.items.pop(template_id, None)


class InMemoryDigests:
    def __init__(self) -> None:
        self.items: dict[str, DigestEntry] = {}

    def get(self, digest_key: str) -> DigestEntry | None:
        return self.items.get(digest_key)

    def save(self, entry: DigestEntry) -> None:
        self.items[entry.digest_key] = entry


class InMemoryDigestRuns:
    def __init__(self) -> None:
        self.items: dict[str, DigestRun] = {}
        self.shards: dict[str, dict[int, ShardProgress]] = {}
        self.retrying: dict[str, set[str]] = {}
        self.retention: int | None = None
        self.starts = 0

    def start(self, day: str, shards: int, at: datetime) -> DigestRun:
        self.starts += 1
        self.items[day] = DigestRun(day=day, shards=shards, started_at=at, run_id=f"run-{self.starts}")
        self.shards[day], self.retrying[day] = {}, set()
        return self.items[day]

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
        run = self.items.get(day) or DigestRun(day=day, shards=0, started_at=None)
        if page is not None:
            progress = self.shard(day, page.run_id, page.shard)
            if progress is None or progress.recorded >= page.seq:
                return False
            self.shards[day][page.shard] = replace(
                progress, recorded=page.seq, following=page.following, done=shard_done
            )
            self.retrying[day].update(retrying)
        merged = {k: run.counts.get(k, 0) + counts.get(k, 0) for k in {*run.counts, *counts}}
        self.items[day] = replace(
            run,
            shards_done=run.shards_done + int(shard_done),
            counts=merged,
            failures=(run.failures + tuple(failures))[:20],
        )
        return True

    def shard(self, day: str, run_id: str, shard: int) -> ShardProgress | None:
        run = self.items.get(day)
        if run is None or run.run_id != run_id:
            return None
        return self.shards[day].get(shard, ShardProgress())

    def handed_on(self, day: str, run_id: str, shard: int, seq: int) -> None:
        progress = self.shard(day, run_id, shard)
        if progress is not None and progress.handed_on < seq:
            self.shards[day][shard] = replace(progress, handed_on=seq)

    def retried(self, day: str, run_id: str, customer_number: str, counts: dict[str, int]) -> bool:
        run = self.items.get(day)
        if run is None or run.run_id != run_id or customer_number not in self.retrying[day]:
            return False
        self.retrying[day].discard(customer_number)
        moved = {**counts, "failed": -1}
        self.items[day] = replace(
            run,
            counts={k: run.counts.get(k, 0) + moved.get(k, 0) for k in {*run.counts, *moved}},
            failures=tuple(f for f in run.failures if f.get("customer_number") != customer_number),
        )
        return True

    def get(self, day: str) -> DigestRun | None:
        return self.items.get(day)

    def keep_retention(self, days: int) -> None:
        self.retention = days

    def retention_days(self) -> int | None:
        return self.retention


class InMemoryAutoLogSettings:
    def __init__(self) -> None:
        self.users: dict[str, str] = {}

    def get_user(self, user: str) -> str | None:
        return self.users.get(user)

    def set_user(self, user: str, mode: str | None) -> None:
        if mode is None:
            self.users.pop(user, None)
        else:
            self.users[user] = mode


class InMemoryConflicts:
    def __init__(self) -> None:
        self.items: dict[str, ConflictEntry] = {}

    def get(self, conflict_id: str) -> ConflictEntry | None:
        return self.items.get(conflict_id)

    def add(self, entry: ConflictEntry) -> bool:
        if entry.conflict_id in self.items:
            return False
        self.items[entry.conflict_id] = entry
        return True

    def list_open(self, team: str, *, limit: int, cursor: str | None) -> Page[ConflictEntry]:
        ordered = sorted(
            (c for c in self.items.values() if c.team == team and not c.resolved),
            key=lambda c: (c.found_at, c.conflict_id),
            reverse=True,
        )
        items, next_cursor = _page_after(ordered, lambda c: [c.conflict_id], limit, cursor)
        return Page(items, next_cursor)

    def reopen(self, entry: ConflictEntry) -> bool:
        if entry.conflict_id not in self.items or not self.items[entry.conflict_id].resolved:
            return False
        self.items[entry.conflict_id] = entry
        return True

    def resolve(self, entry: ConflictEntry) -> bool:
        if entry.conflict_id not in self.items or self.items[entry.conflict_id].resolved:
            return False
        self.items[entry.conflict_id] = entry
        return True


class InMemoryMediaStore:
    """Objects by key, like the media bucket; a put to an existing key overwrites it."""

    def __init__(self, bucket: str = "parley-media-test") -> None:
        self.bucket = bucket
        self.objects: dict[str, tuple[bytes, str | None]] = {}
        self.puts: list[str] = []  # every key written, in order (repeats included)
        self.failures: deque[Exception] = deque()  # raised by the next puts, one each

    def put(self, key: str, content: bytes, content_type: str | None) -> str:
        self.puts.append(key)
        if self.failures:
            raise self.failures.popleft()
        self.objects[key] = (bytes(content), content_type)
        return f"s3://{self.bucket}/{key}"

    def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.objects.pop(key, None)

    def read(self, key: str) -> tuple[bytes, str] | None:
        found = self.objects.get(key)
        return (found[0], found[1] or "application/octet-stream") if found else None


# -- rate limits ------------------------------------------------------------------------------------


class InMemoryRateLimiter:
    """Token buckets per number, with the domain's arithmetic; `waits` records every "not now"."""

    def __init__(self) -> None:
        self.buckets: dict[str, BucketState] = {}
        self.waits: list[tuple[str, float]] = []

    def reserve(
        self, number: str, now: datetime, cost: float, rate: float, *, horizon: float
    ) -> tuple[float, bool]:
        new, wait = reserve_tokens(self.buckets.get(number), now, cost, rate, horizon=horizon)
        if wait > 0:
            self.waits.append((number, wait))
        if wait > horizon:
            return wait, False
        self.buckets[number] = new
        return wait, True


# -- queues and events ------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueuedJob:
    body: dict[str, Any]
    delay_seconds: int


class RecordingQueue:
    def __init__(self) -> None:
        self.jobs: list[QueuedJob] = []
        self.batches: list[int] = []  # the size of each send_batch call

    def send(self, body: dict[str, Any], *, delay_seconds: int = 0) -> None:
        self.jobs.append(QueuedJob(json.loads(json.dumps(body)), delay_seconds))

    def send_batch(self, bodies: Sequence[dict[str, Any]]) -> None:
        self.batches.append(len(bodies))
        for body in bodies:
            self.jobs.append(QueuedJob(json.loads(json.dumps(body, ensure_ascii=False)), 0))

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [j.body for j in self.jobs]

    def take(self) -> list[QueuedJob]:
        """Everything queued so far, emptying the queue (as a consumer would)."""
        jobs, self.jobs = self.jobs, []
        return jobs


class RecordingPublisher:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        self.events.append((detail_type, detail))

    def of(self, detail_type: str) -> list[dict[str, Any]]:
        return [d for t, d in self.events if t == detail_type]

    @property
    def types(self) -> list[str]:
        return [t for t, _ in self.events]


class FakeDeadLetterQueue:
    """A DLQ in memory: `receive` hides letters until `delete` or `expire` (the visibility timeout)."""

    def __init__(self) -> None:
        self.letters: dict[str, DeadLetter] = {}
        self.in_flight: set[str] = set()
        self.deleted: list[str] = []
        self.fail_receive = False

    def put(self, body: str, *, message_id: str | None = None, **fields: Any) -> DeadLetter:
        letter_id = message_id or f"sqs-{len(self.letters) + len(self.deleted) + 1}"
        letter = DeadLetter(message_id=letter_id, body=body, receipt=f"rh-{letter_id}", **fields)
        self.letters[letter_id] = letter
        return letter

    def receive(self, max_messages: int) -> list[DeadLetter]:
        if self.fail_receive:
            raise RuntimeError("AccessDenied")
        visible = [m for i, m in self.letters.items() if i not in self.in_flight][:max_messages]
        self.in_flight.update(m.message_id for m in visible)
        return visible

    def delete(self, letter: DeadLetter) -> None:
        self.letters.pop(letter.message_id, None)
        self.in_flight.discard(letter.message_id)
        self.deleted.append(letter.message_id)

    def expire(self) -> None:
        """The visibility timeout passes: what was received and not deleted is visible again."""
        self.in_flight.clear()

    @property
    def depth(self) -> int:
        return len(self.letters)


# -- carrier ----------------------------------------------------------------------------------------


class FakeCarrier:
    """Scripted outcomes per `send` call (then accepts with generated ids); records every text."""

    def __init__(self, name: str = "fake", outcomes: Iterable[SendOutcome] = ()) -> None:
        self.name = name
        self.outcomes: deque[SendOutcome] = deque(outcomes)
        self.sent: list[OutboundText] = []
        self.signature_error: str | None = None  # set to make verify() raise SignatureError
        self.payload_error: str | None = None  # set to make parse() raise PayloadError
        self.events: list[ParsedEvent] = []  # what parse() returns
        self.ack_response = WebhookAck(status_code=200, body="<Response/>", content_type="text/xml")
        self.verified: list[WebhookRequest] = []
        self.classes: dict[str, FailureKind] = {}  # error code -> class; any other code is permanent
        self._counter = 0

    def script(self, *outcomes: SendOutcome) -> None:
        self.outcomes.extend(outcomes)

    def verify(self, request: WebhookRequest) -> None:
        self.verified.append(request)
        if self.signature_error is not None:
            raise SignatureError(self.signature_error)

    def classify(self, error_code: str | None, http_status: int | None) -> tuple[FailureKind, str]:
        return self.classes.get(error_code or "", FailureKind.PERMANENT), f"fake error {error_code}"

    def parse(self, kind: WebhookKind, request: WebhookRequest) -> list[ParsedEvent]:
        if self.payload_error is not None:
            raise PayloadError(self.payload_error)
        return list(self.events)

    def ack(self, kind: WebhookKind) -> WebhookAck:
        return self.ack_response

    def send(self, text: OutboundText) -> SendOutcome:
        self.sent.append(text)
        if self.outcomes:
            return self.outcomes.popleft()
        self._counter += 1
        return SendAccepted(carrier_message_id=f"FK{self._counter:06d}", carrier_status="queued")


class FakeLookupCarrier(FakeCarrier):
    """A carrier that can also search for a text it may already have (the SentLookup capability).

    `known` holds what the carrier "has", keyed by recipient; `lookups` records each search.
    """

    def __init__(self, name: str = "fake", outcomes: Iterable[SendOutcome] = ()) -> None:
        super().__init__(name, outcomes)
        self.known: dict[str, SendAccepted] = {}
        self.lookups: list[tuple[OutboundText, datetime]] = []
        self.lookup_error: Exception | None = None  # set to make the search itself fail

    def find_sent(
        self, text: OutboundText, since: datetime, skip: Collection[str] = ()
    ) -> SendAccepted | None:
        self.lookups.append((text, since))
        if self.lookup_error is not None:
            raise self.lookup_error
        found = self.known.get(text.to_number)
        return None if found is not None and found.carrier_message_id in skip else found


class FakeMediaCarrier(FakeCarrier):
    """A carrier that can also download MMS media (the MediaSource capability).

    `media` maps a URL to what a download returns, or to a list of outcomes taken one per download
    (the last one repeats; an exception is raised); `fetched` records each download.
    """

    def __init__(self, name: str = "fake", outcomes: Iterable[SendOutcome] = ()) -> None:
        super().__init__(name, outcomes)
        self.media: dict[str, FetchedMedia | Exception | list[FetchedMedia | Exception]] = {}
        self.fetched: list[str] = []

    def fetch_media(self, url: str) -> FetchedMedia:
        self.fetched.append(url)
        found = self.media.get(url)
        if isinstance(found, list):
            found = found.pop(0) if len(found) > 1 else found[0]
        if found is None:
            raise LookupError(f"no media scripted for {url}")
        if isinstance(found, Exception):
            raise found
        return found


# -- CRM --------------------------------------------------------------------------------------------


class FakeCrm:
    """Upserts by external id like the webhook CRM protocol: an identical body keeps the version."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, int] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.failing: dict[str, tuple[str, bool]] = {}  # external id -> (reason, transient)
        self.retry_after: dict[str, float | None] = {}

    def fail(
        self,
        external_id: str,
        reason: str = "CRM answered 503: unavailable",
        *,
        transient: bool = True,
        retry_after: float | None = None,
    ) -> None:
        self.failing[external_id] = (reason, transient)
        self.retry_after[external_id] = retry_after

    def recover(self, external_id: str) -> None:
        self.failing.pop(external_id, None)

    def upsert(self, external_id: str, payload: dict[str, Any]) -> CrmUpsertResult:
        self.calls.append((external_id, payload))
        if external_id in self.failing:
            reason, transient = self.failing[external_id]
            raise CrmError(
                reason,
                transient=transient,
                status_code=503 if transient else 400,
                retry_after=self.retry_after.get(external_id),
            )
        created = external_id not in self.records
        if created or self.records[external_id] != payload:
            self.versions[external_id] = self.versions.get(external_id, 0) + 1
        self.records[external_id] = json.loads(json.dumps(payload))
        return CrmUpsertResult(
            crm_id=f"crm-{external_id}", created=created, version=self.versions[external_id]
        )


# -- a whole world of fakes -------------------------------------------------------------------------


@dataclass
class World:
    """Every fake, wired the way `parley.wiring.Container` wires the real adapters."""

    clock: SettableClock = field(default_factory=SettableClock)
    conversations: InMemoryConversations = field(default_factory=InMemoryConversations)
    receipts: InMemoryReceipts = field(default_factory=InMemoryReceipts)
    opt_outs: InMemoryOptOuts = field(default_factory=InMemoryOptOuts)
    compliance_replies: list[tuple[Keyword, str, str, str]] = field(default_factory=list)
    numbers: InMemoryNumbers = field(default_factory=InMemoryNumbers)
    contacts: InMemoryContacts = field(default_factory=InMemoryContacts)
    templates: InMemoryTemplates = field(default_factory=InMemoryTemplates)
    digests: InMemoryDigests = field(default_factory=InMemoryDigests)
    conflicts: InMemoryConflicts = field(default_factory=InMemoryConflicts)
    digest_runs: InMemoryDigestRuns = field(default_factory=InMemoryDigestRuns)
    auto_log: InMemoryAutoLogSettings = field(default_factory=InMemoryAutoLogSettings)
    digest_queue: RecordingQueue = field(default_factory=RecordingQueue)
    digest_page_size: int = 200
    metrics: list[tuple[str, int]] = field(default_factory=list)
    inbound_queue: RecordingQueue = field(default_factory=RecordingQueue)
    send_queue: RecordingQueue = field(default_factory=RecordingQueue)
    retry_queue: RecordingQueue = field(default_factory=RecordingQueue)
    dead_letter_queues: dict[str, FakeDeadLetterQueue] = field(
        default_factory=lambda: {name: FakeDeadLetterQueue() for name in ("inbound", "send", "retry")}
    )
    events: RecordingPublisher = field(default_factory=RecordingPublisher)
    carrier: FakeCarrier = field(default_factory=FakeCarrier)
    crm: FakeCrm = field(default_factory=FakeCrm)
    media: InMemoryMediaStore = field(default_factory=InMemoryMediaStore)
    rate_limiter: InMemoryRateLimiter = field(default_factory=InMemoryRateLimiter)
    slept: list[float] = field(default_factory=list)
    dead_letter_counts: list[tuple[str, int]] = field(default_factory=list)
    shards: int = 4
    messages: InMemoryMessages = field(init=False)

    def __post_init__(self) -> None:
        self.messages = InMemoryMessages(self.conversations, clock=self.clock, shards=self.shards)

    def carriers(self, name: str) -> Carrier:
        if name != self.carrier.name:
            raise LookupError(f"no carrier {name!r} in this world")
        return self.carrier

    def processor(self, *, policy: RetryPolicy | None = None, retries: bool = True) -> InboundProcessor:
        """`retries`: a receipt's passing failure is retried (through `retry_queue`), as deployed."""
        return InboundProcessor(
            self.messages,
            self.receipts,
            self.numbers,
            self.contacts,
            self.events,
            self.clock,
            opt_outs=self.opt_outs,
            carriers=self.carriers,
            media=self.media,
            compliance=lambda *reply: self.compliance_replies.append(reply),
            conversations=self.conversations,
            retry_policy=(policy or RetryPolicy()) if retries else None,
            retry_queue=self.retry_queue if retries else None,
        )

    def sleep(self, seconds: float) -> None:
        """A sleep that moves the test clock, recorded so tests can see how long the service waited."""
        self.slept.append(seconds)
        self.clock.advance(seconds=seconds)

    def intake(self, *, log_only: bool = False) -> WebhookIntake:
        return WebhookIntake(self.inbound_queue, log_only=log_only)

    def sender(
        self,
        *,
        policy: RetryPolicy | None = None,
        max_segments: int = 10,
        apply_parked: bool = True,
        quiet_hours: str = "",
        rate_limited: bool = False,
        sleeps: bool = False,
        metrics: MetricsSink | None = None,
    ) -> SendService:
        """`metrics`, if given, also sees the events as the composition root wires them (counted)."""
        return SendService(
            messages=self.messages,
            conversations=self.conversations,
            numbers=self.numbers,
            templates=self.templates,
            contacts=self.contacts,
            send_queue=self.send_queue,
            retry_queue=self.retry_queue,
            carriers=self.carriers,
            events=ObservedEvents(self.events, metrics) if metrics is not None else self.events,
            clock=self.clock,
            retry_policy=policy or RetryPolicy(),
            max_segments=max_segments,
            status_callback_url=lambda carrier: f"https://hooks.example.test/webhooks/{carrier}/status",
            on_carrier_id=self.processor().apply_parked if apply_parked else None,
            opt_outs=self.opt_outs,
            quiet_hours=quiet_hours,
            rate_limiter=self.rate_limiter if rate_limited else None,
            sleep=self.sleep if sleeps else None,
            metrics=metrics,
            compliance_texts={
                Keyword.OPT_OUT: "You're unsubscribed. Reply START to resubscribe.",
                Keyword.OPT_IN: "You're resubscribed. Reply STOP to unsubscribe.",
                Keyword.HELP: "Reply STOP to unsubscribe.",
            },
            number_scope_texts={
                Keyword.OPT_OUT: "You're unsubscribed from this number. Reply START to resubscribe.",
                Keyword.OPT_IN: "You're resubscribed to this number. Reply STOP to unsubscribe.",
            },
        )

    def resender(self, sender: SendService | None = None) -> ResendService:
        return ResendService(
            messages=self.messages,
            views=self.messages,
            sender=sender or self.sender(),
            carriers=self.carriers,
        )

    def dead_letters(self, sender: SendService | None = None, *, per_queue: int = 50) -> DeadLetterService:
        return DeadLetterService(
            queues=self.dead_letter_queues,
            messages=self.messages,
            sender=sender or self.sender(),
            events=self.events,
            clock=self.clock,
            per_queue=per_queue,
            count=lambda queue, n: self.dead_letter_counts.append((queue, n)),
        )

    def digest(self) -> DigestService:
        return DigestService(
            messages=self.messages,
            contacts=self.contacts,
            digests=self.digests,
            crm=self.crm,
            shards=self.shards,
            clock=self.clock,
            conversations=self.conversations,
            conflicts=self.conflicts,
            linker=self.conversations,
            runs=self.digest_runs,
            jobs=self.digest_queue,
            numbers=self.numbers,
            auto_log=self.auto_log,
            page_size=self.digest_page_size,
        )

    def digest_jobs(self, *, queued: bool = True, lookback_days: int = 2) -> DigestJobs:
        return DigestJobs(
            self.digest(),
            self.digest_queue if queued else None,
            timezone="UTC",
            lookback_days=lookback_days,
            count=lambda name, n: self.metrics.append((name, n)),
        )


# -- keep the fakes honest: each must satisfy its Protocol -----------------------------------------

_messages: MessageRepository = InMemoryMessages()
_views: MessageViews = InMemoryMessages()
_listing: MessageListing = InMemoryMessages()
_conversations: ConversationRepository = InMemoryConversations()
_receipts: ReceiptStore = InMemoryReceipts()
_opt_outs: OptOutRepository = InMemoryOptOuts()
_numbers: NumberRepository = InMemoryNumbers()
_contacts: ContactRepository = InMemoryContacts()
_templates: TemplateRepository = InMemoryTemplates()
_digests: DigestRepository = InMemoryDigests()
_conflicts: ConflictRepository = InMemoryConflicts()
_digest_runs: DigestRunRepository = InMemoryDigestRuns()
_auto_log: AutoLogSettings = InMemoryAutoLogSettings()
_linker: ConversationLinker = InMemoryConversations()
_queue: JobQueue = RecordingQueue()
_rate_limiter: RateLimiter = InMemoryRateLimiter()
_publisher: EventPublisher = RecordingPublisher()
_clock: Clock = SettableClock()
_carrier: Carrier = FakeCarrier()
_lookup_carrier: Carrier = FakeLookupCarrier()
_lookup: SentLookup = FakeLookupCarrier()
_media_carrier: Carrier = FakeMediaCarrier()
_media_source: MediaSource = FakeMediaCarrier()
_media_store: MediaStore = InMemoryMediaStore()
_crm: Crm = FakeCrm()
_dead_letter_queue: DeadLetterQueue = FakeDeadLetterQueue()


# -- record sync ------------------------------------------------------------------------------------


class InMemorySyncStates:
    def __init__(self) -> None:
        self.items: dict[str, SyncState] = {}
        self.saves: list[tuple[str, SyncState]] = []  # every save, in order

    def get(self, crm: str) -> SyncState:
        return self.items.get(crm, SyncState())

    def save(self, crm: str, state: SyncState) -> None:
        self.items[crm] = state
        self.saves.append((crm, state))


class CountingContacts(InMemoryContacts):
    """InMemoryContacts that counts writes, so a test can see an unchanged record written nothing."""

    def __init__(self, *contacts: ContactRecord) -> None:
        super().__init__(*contacts)
        self.writes: list[str] = []

    def save(self, contact: ContactRecord) -> None:
        self.writes.append(contact.contact_id)
        super().save(contact)


_sync_states: SyncStateRepository = InMemorySyncStates()
_counting_contacts: ContactRepository = CountingContacts()


# -- conversation search ----------------------------------------------------------------------------


class InMemorySearch:
    """Search terms per team, sorted, as DynamoSearch keeps them (parley.domain.search)."""

    def __init__(self) -> None:
        self.terms: dict[str, dict[str, SearchHit]] = {}  # team -> "<term>#<number>" -> hit
        self.names: dict[tuple[str, str], str | None] = {}  # (team, number) -> the name indexed
        self.writes = 0

    def index(self, customer_number: str, team: str, name: str | None) -> None:
        key = (team, customer_number)
        if key in self.names and self.names[key] == (name or None):
            return
        found = self.terms.setdefault(team, {})
        for sk in [sk for sk, hit in found.items() if hit.customer_number == customer_number]:
            del found[sk]
        for term in terms_for(customer_number, name):
            found[f"{term}#{customer_number}"] = SearchHit(
                customer_number, term, name if term.startswith("w#") else None
            )
            self.writes += 1
        self.names[key] = name or None

    def slice_matching(
        self, team: str, prefix: str, *, start: str | None, limit: int
    ) -> IndexSlice[SearchHit]:
        ordered = sorted(sk for sk in self.terms.get(team, {}) if sk.startswith(prefix))
        first = 0 if start is None else len([sk for sk in ordered if sk <= start])
        read = ordered[first : first + limit]
        hits = [IndexHit(sk, sk, self.terms[team][sk]) for sk in read]
        more = first + limit < len(ordered)
        return IndexSlice(hits, read[-1] if more else None, read[-1] if more else None)


_browser: ConversationBrowser = InMemoryConversations()
_search: SearchIndex = InMemorySearch()


# -- erasure ----------------------------------------------------------------------------------------


class InMemoryErasure:
    """The deletes of an erasure over the other fakes, counting what was there as DynamoErasure does."""

    def __init__(
        self,
        messages: InMemoryMessages,
        contacts: InMemoryContacts,
        digests: InMemoryDigests,
        conflicts: InMemoryConflicts,
        search: InMemorySearch | None = None,
        receipts: InMemoryReceipts | None = None,
    ) -> None:
        self._messages = messages
        self._contacts = contacts
        self._digests = digests
        self._conflicts = conflicts
        self._search = search
        self._receipts = receipts

    def delete_messages(self, messages: Sequence[Message]) -> int:
        ids = {m.message_id for m in messages}
        for message_id in ids:
            self._messages.items.pop(message_id, None)
        return len(ids)

    def delete_conversation(self, customer_number: str) -> tuple[int, int]:
        conversation = self._messages.conversations.items.pop(customer_number, None)
        if conversation is None:
            return 0, 0
        terms = 0
        if self._search is not None:
            found = self._search.terms.get(conversation.team, {})
            for key in [k for k, hit in found.items() if hit.customer_number == customer_number]:
                del found[key]
                terms += 1
            self._search.names.pop((conversation.team, customer_number), None)
        return 1, terms

    def delete_record(self, contact_id: str) -> bool:
        return self._contacts.items.pop(contact_id, None) is not None

    def delete_digest_items(self, digest_keys: Sequence[str], conflict_ids: Sequence[str]) -> int:
        entries = [self._digests.items.pop(k, None) for k in digest_keys]
        conflicts = [self._conflicts.items.pop(c, None) for c in conflict_ids]
        return sum(1 for e in entries if e is not None) + sum(1 for c in conflicts if c is not None)

    def delete_parts(self, customer_number: str, start: str | None) -> tuple[int, str | None]:
        """All in one page; a group is `carrier#customer#our number#ref#total`."""
        removed = 0
        if self._receipts is not None:
            for group, held in self._receipts.part_items.items():
                if group.split("#")[1] == customer_number:
                    removed += len(held)
                    held.clear()
        return removed, None


_previews: ConversationPreviews = InMemoryConversations()
_erasure: ErasureStore = InMemoryErasure(
    InMemoryMessages(), InMemoryContacts(), InMemoryDigests(), InMemoryConflicts()
)
