"""Ports: what the services need from the outside world, as structural Protocols.

Adapters (DynamoDB, SQS, EventBridge, carriers, CRMs) implement these; unit tests use the
in-memory fakes in tests/fakes.py, which mypy checks against the same Protocols.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from parley.domain.models import (
        ContactRecord,
        Conversation,
        Message,
        OptOut,
        OurNumber,
        StatusUpdate,
        Template,
    )


class ConflictError(Exception):
    """A conditional write lost: the record changed (or already existed) since it was read."""


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    cursor: str | None  # opaque; None when there is nothing more


@dataclass(frozen=True)
class ConversationDelta:
    """How one message changes its conversation: applied atomically with the message insert."""

    customer_number: str
    team: str
    our_number: str
    at: datetime
    message_id: str
    preview: str
    direction: str
    unread_increment: int
    owner: str | None = None
    contact_id: str | None = None
    # An inbound text's routing decision (parley.domain.routing) replaces the conversation's record,
    # owner, reason and conflict candidates; without one, `owner` and `contact_id` only fill blanks.
    routed: bool = False
    routing_reason: str | None = None
    conflict_candidates: tuple[str, ...] = ()


class MessageRepository(Protocol):
    def get(self, message_id: str) -> Message | None: ...

    def insert(self, message: Message) -> bool:
        """Store a message that belongs to no conversation (a request rejected before it had a valid
        recipient); False when it already exists."""
        ...

    def insert_with_conversation(self, message: Message, delta: ConversationDelta) -> bool:
        """Store a new message and fold it into its conversation.

        Returns False (and changes nothing) when the message already exists. The message and a new
        conversation, or an unread count, are written together or not at all; our own text to an
        existing conversation may leave its summary behind after a crash, never the thread.
        """
        ...

    def update(self, message: Message, *, expected_version: int) -> Message:
        """Write `message` if its stored version is still `expected_version`; raise ConflictError if not."""
        ...

    def find_by_carrier_ref(self, carrier: str, carrier_message_id: str) -> Message | None: ...

    def existing(self, message_ids: Sequence[str]) -> set[str]:
        """Which of these ids are stored (batch reads, 100 ids each; not necessarily the latest write)."""
        ...

    def list_for_conversation(
        self,
        customer_number: str,
        *,
        limit: int,
        cursor: str | None,
        since: datetime | None = None,
        before: datetime | None = None,
    ) -> Page[Message]:
        """One page of the conversation's messages, newest first: created at or after `since` and
        before `before`, where given (a key range, so an older page costs no more than the newest)."""
        ...

    def day_conversations(
        self, day: str, shard: int, *, after: str | None, limit: int
    ) -> tuple[list[str], str | None]:
        """Up to `limit` customer numbers with messages on `day` in `shard`, in order, after `after`;
        and the cursor to go on from (None when the shard is done)."""
        ...

    def list_conversation_day(self, customer_number: str, day: str) -> list[Message]:
        """One conversation's messages created on `day` (the organisation's time zone)."""
        ...


class MessageViews(Protocol):
    """The work views (`parley.domain.status.view_for`): pending, failed, scheduled, suppressed."""

    def list_view(
        self, view: str, *, limit: int, cursor: str | None, since: datetime | None = None
    ) -> Page[Message]:
        """One page of the view, newest first; `since` keeps messages created at or after it (in
        pending and scheduled: due at or after it, as those are ordered by due time)."""
        ...


class DueMessages(Protocol):
    """The work views the sweep reads (`parley.domain.views.due_entry`), by due time."""

    def list_due(self, partition: str, *, until: datetime, limit: int, cursor: str | None) -> Page[Message]:
        """At most `limit` messages of `partition` (pending, held, scheduled) due at or before
        `until`, oldest due first, as stored, and the cursor to go on from."""
        ...

    def reindex_legacy(self, *, limit: int) -> int:
        """Index up to `limit` messages stored before the due index existed; how many were."""
        ...


# An index partition of the message views (parley.domain.views): ("view", "failed") in `by-view`,
# ("due_view", "scheduled") in `by-due`, or ("team_box", "sales#received") in `by-team`.
Partition = tuple[str, str]


class MessageListing(Protocol):
    """The inbox's message views: index partitions merged newest first under one cursor."""

    def list_merged(
        self,
        partitions: Sequence[Partition],
        *,
        limit: int,
        cursor: str | None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Page[Message]:
        """At most `limit` messages from the partitions, newest first, created within [since, until]
        (`by-due` partitions: by due time, and due within them); as stored (the caller checks each
        still belongs where it was listed)."""
        ...


class ConversationRepository(Protocol):
    def get(self, customer_number: str) -> Conversation | None: ...

    def list_recent(self, team: str, *, limit: int, cursor: str | None) -> Page[Conversation]: ...


class ReceiptRepository(Protocol):
    """Receipts that arrived before we knew their message: parked, never dropped."""

    def park(self, update: StatusUpdate) -> None: ...

    def parked_for(self, carrier: str, carrier_message_id: str) -> list[StatusUpdate]: ...

    def remove(self, update: StatusUpdate) -> None: ...

    def all_parked(self, limit: int) -> list[StatusUpdate]: ...


class PartStore(Protocol):
    """Pieces that arrive separately and count only together (a long text delivered in parts).

    Each piece is kept under its own key in its group, for 30 days or `keep_seconds`; a save under
    an existing key replaces it."""

    def save_part(
        self, group: str, key: str, data: dict[str, Any], *, keep_seconds: int | None = None
    ) -> None: ...

    def parts(self, group: str) -> dict[str, dict[str, Any]]: ...

    def clear_parts(self, group: str, keys: Iterable[str]) -> None: ...


class OptOutRepository(Protocol):
    def get(self, customer_number: str) -> OptOut | None: ...

    def get_many(self, customer_numbers: list[str]) -> list[OptOut]:
        """The records of those that have one, for display: read in batches, not necessarily the
        latest write (a send checks consent with `get`)."""
        ...

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
        """Append to the consent trail and set the current state; returns the new record.

        `number` scopes the change to one of our numbers (`OptOut.numbers`); None changes the opt-out
        from all of them (`OptOut.opted_out`). See `OptOut.with_change`.
        """
        ...


class NumberRepository(Protocol):
    def get(self, number: str) -> OurNumber | None: ...

    def default_for_team(self, team: str) -> OurNumber | None:
        """The team's default number, else any of its numbers, else the pool's (the default team's)."""
        ...

    def save(self, number: OurNumber) -> None: ...

    def all(self) -> list[OurNumber]: ...


class ContactRepository(Protocol):
    def get(self, contact_id: str) -> ContactRecord | None: ...

    def get_many(self, contact_ids: list[str]) -> list[ContactRecord]:
        """The records of `contact_ids` that exist, in one batch read."""
        ...

    def find_by_phone(self, phone: str) -> list[ContactRecord]:
        """Every record with `phone` among its `phones`."""
        ...

    def save(self, contact: ContactRecord) -> None:
        """Write the record and one lookup per number, together; a number dropped loses its lookup."""
        ...

    def create(self, contact: ContactRecord) -> bool:
        """Write a new record (as `save`) unless one with its id exists; False (and nothing written)
        when it does."""
        ...


class TemplateRepository(Protocol):
    def get(self, template_id: str) -> Template | None: ...

    def save(self, template: Template) -> None: ...

    def all(self) -> list[Template]: ...

    def delete(self, template_id: str) -> None: ...


@dataclass(frozen=True)
class DigestEntry:
    digest_key: str
    crm_id: str
    content_hash: str
    version: int
    posted_at: datetime
    message_count: int
    # The CRM record the day went to (None: an entry written before it was kept), and how many
    # conversations' days that one record holds (a record with several numbers): each of those
    # conversations has an entry for the day (`<number>#<day>`) with the same external id.
    external_id: str | None = None
    conversations: int = 1


class DigestRepository(Protocol):
    def get(self, digest_key: str) -> DigestEntry | None: ...

    def save(self, entry: DigestEntry) -> None: ...


@dataclass(frozen=True)
class DigestRun:
    """Progress of one day's run: its shards finish one by one, in any order, on any worker."""

    day: str
    shards: int
    started_at: datetime | None  # None: jobs ran for a day nobody started (a job left from before)
    shards_done: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # conversations, created, updated, ...
    failures: tuple[dict[str, str], ...] = ()  # the last few, for a person to read
    run_id: str | None = None  # each start has its own: a job of an earlier start records nothing

    @property
    def finished(self) -> bool:
        return self.shards_done >= self.shards


@dataclass(frozen=True)
class RunPage:
    """Where one job's counts go: its run, and its page's place in the shard (0, 1, 2...), so a job
    delivered twice is counted once and a job of a run started again counts in neither."""

    run_id: str
    shard: int
    seq: int
    following: str | None  # where the shard's next page starts (its `after`), if there is one


@dataclass(frozen=True)
class ShardProgress:
    """How far one shard of a run is: its last page counted, and the last whose next job was sent."""

    recorded: int = -1  # -1: none yet
    following: str | None = None  # where the page after `recorded` starts (None: at the beginning)
    done: bool = False  # the page `recorded` ended the shard
    handed_on: int = -1


class DigestRunRepository(Protocol):
    def start(self, day: str, shards: int, at: datetime) -> DigestRun:
        """Begin (or begin again) the day's run under a new run id, with its counts at zero."""
        ...

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
        """Add one job's counts (atomically: jobs run in parallel). With `page`: only into that run,
        and only once per page (False: the run was started again, or the page is counted already);
        `retrying` are the customer numbers whose failed day is queued to be tried again."""
        ...

    def shard(self, day: str, run_id: str, shard: int) -> ShardProgress | None:
        """None: the day's run is no longer `run_id` (started again, or gone)."""
        ...

    def handed_on(self, day: str, run_id: str, shard: int, seq: int) -> None:
        """The job after page `seq` is on the queue."""
        ...

    def retried(self, day: str, run_id: str, customer_number: str, counts: dict[str, int]) -> bool:
        """A failed day of the run logged on a later try: counted as `counts` instead of failed, and
        out of the kept failures. Once only (False: already moved, not failed, or another run)."""
        ...

    def get(self, day: str) -> DigestRun | None: ...

    def keep_retention(self, days: int) -> None:
        """RetentionDays as the Retention sweep runs with it (0: bodies kept forever)."""
        ...

    def retention_days(self) -> int | None:
        """What the last sweep ran with; None: no sweep yet, so nothing is blanked."""
        ...


class AutoLogSettings(Protocol):
    """Each user's auto-log choice (parley.domain.models.AutoLog); our numbers carry their own."""

    def get_user(self, user: str) -> str | None: ...

    def set_user(self, user: str, mode: str | None) -> None: ...


@dataclass(frozen=True)
class ConflictCandidate:
    record_id: str
    name: str
    record_type: str
    owner: str | None


@dataclass(frozen=True)
class ConflictEntry:
    """A conversation's day held back from the CRM because several records tied for its number."""

    conflict_id: str
    customer_number: str
    day: str
    team: str
    candidates: tuple[ConflictCandidate, ...]
    found_at: datetime
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    record_id: str | None = None  # the record a person picked

    @property
    def resolved(self) -> bool:
        return self.resolved_at is not None


class ConflictRepository(Protocol):
    def get(self, conflict_id: str) -> ConflictEntry | None: ...

    def add(self, entry: ConflictEntry) -> bool:
        """Store it unless one with its id exists; True when stored."""
        ...

    def reopen(self, entry: ConflictEntry) -> bool:
        """Store `entry` (open) over a resolved one with its id: the number tied again that day.
        False when the stored one is open (held again meanwhile)."""
        ...

    def list_open(self, team: str, *, limit: int, cursor: str | None) -> Page[ConflictEntry]:
        """The team's unresolved conflicts, newest found first."""
        ...

    def resolve(self, entry: ConflictEntry) -> bool:
        """Save `entry` (resolved) so it no longer lists as open, if the stored one is still open;
        False when it is not (resolved meanwhile: the first resolve wins)."""
        ...


class ConversationLinker(Protocol):
    def link(self, customer_number: str, *, contact_id: str, owner: str | None, reason: str) -> None:
        """Link the conversation to a record a person picked, clearing its conflict candidates."""
        ...


class MediaStore(Protocol):
    """Our copies of MMS attachments (S3)."""

    def put(self, key: str, content: bytes, content_type: str | None) -> str:
        """Store `content` under `key` (overwriting: a retry writes the same bytes); returns the
        location as s3://bucket/key."""
        ...

    def delete(self, keys: Sequence[str]) -> None:
        """Remove the objects under `keys` (a key with no object is no error): an erasure."""
        ...

    def read(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and the content type it was stored with; None when there is no object
        (expired by the bucket's lifecycle, or erased): the inbox shows our copy, not the carrier's."""
        ...


class RateLimiter(Protocol):
    """Per-number send rate (token buckets, `parley.domain.rate`), shared by every worker."""

    def reserve(
        self, number: str, now: datetime, cost: float, rate: float, *, horizon: float
    ) -> tuple[float, bool]:
        """Reserve a turn for `cost` segments at `number`'s rate: (seconds until it, reserved).

        Reserved, the bucket is charged (into debt if the turn is later) and 0 seconds means now. Not
        reserved (the turn is more than `horizon` seconds ahead, or the bucket kept changing under
        us), nothing is charged and the seconds say when to ask again."""
        ...


class JobQueue(Protocol):
    """A work queue (SQS); `delay_seconds` defers delivery, for backoff."""

    def send(self, body: dict[str, Any], *, delay_seconds: int = 0) -> None: ...

    def send_batch(self, bodies: Sequence[dict[str, Any]]) -> None:
        """Several jobs in as few calls as the queue allows (SQS: 10 a call), none delayed."""
        ...


class EventPublisher(Protocol):
    """Domain events for other services (EventBridge)."""

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class DeadLetter:
    """One message a queue gave up on (SQS moved it to the dead-letter queue after maxReceiveCount, or
    EventBridge could not deliver it). `receipt` is what `DeadLetterQueue.delete` needs."""

    message_id: str
    body: str
    receipt: str
    receive_count: int = 0
    first_received_at: datetime | None = None
    sent_at: datetime | None = None
    attributes: dict[str, str] | None = None  # message attributes (EventBridge: ERROR_CODE, ERROR_MESSAGE)


class DeadLetterQueue(Protocol):
    """A dead-letter queue (SQS), read by the sweep. A letter received and not deleted comes back after
    the queue's visibility timeout, so nothing is lost if the reader stops midway."""

    def receive(self, max_messages: int) -> list[DeadLetter]: ...

    def delete(self, letter: DeadLetter) -> None: ...


Clock = Callable[[], datetime]


@dataclass(frozen=True)
class SyncState:
    """Where the record sync from a CRM stands (`parley.services.record_sync`).

    `since` is the watermark: every change up to it is stored. A pass reads everything changed after
    it, page by page; `cursor` is the next page of an unfinished pass and `latest` the newest change
    the pass has stored, which becomes the watermark when the pass ends.
    """

    since: datetime | None = None
    cursor: str | None = None
    latest: datetime | None = None
    synced_at: datetime | None = None  # when a page was last stored


class SyncStateRepository(Protocol):
    def get(self, crm: str) -> SyncState:
        """The CRM's sync state; an empty one (sync everything) before the first pass."""
        ...

    def save(self, crm: str, state: SyncState) -> None: ...


# -- conversations in the inbox: filtered lists, read state, close and reopen, search --------------


@dataclass(frozen=True)
class ConversationFilter:
    """What a list of conversations keeps; None and "all" keep everything."""

    our_number: str | None = None  # conversations that used this number of ours
    owner: str | None = None
    unread: bool | None = None
    status: str = "open"  # open (the default: closed ones hidden), closed, all


@dataclass(frozen=True)
class IndexHit(Generic[T]):
    order: str  # what the index sorts by, to merge several teams' slices
    position: str  # where to go on from, just after this hit (opaque)
    item: T


@dataclass(frozen=True)
class IndexSlice(Generic[T]):
    """One bounded read (one Query, `limit` items evaluated) of one team's index."""

    hits: list[IndexHit[T]]  # what matched, in index order
    end: str | None  # where to go on from after the last item read; None when the index is done
    frontier: str | None  # the sort value of the last item read: everything unread is past it


@dataclass(frozen=True)
class SearchHit:
    customer_number: str
    term: str  # the indexed term that matched
    name: str | None  # the linked record's name when the term was indexed (word terms)


class ConversationBrowser(Protocol):
    """The inbox's conversation operations beyond `ConversationRepository`."""

    def slice_by_activity(
        self, team: str, where: ConversationFilter, *, start: str | None, limit: int
    ) -> IndexSlice[Conversation]:
        """The team's conversations newest activity first, `limit` read (whether kept or not)."""
        ...

    def get_many(self, customer_numbers: list[str]) -> list[Conversation]: ...

    def mark_read(self, customer_number: str) -> None: ...

    def set_closed(self, customer_number: str, closed: bool) -> None: ...


class UnreadCounts(Protocol):
    """A conversation's unread count and preview as texts in it are deleted, restored or read: each a
    conditional write, so racing requests neither push the count below zero nor move it twice."""

    def add_unread(self, customer_number: str, delta: int) -> bool:
        """Move the count by `delta` (+1 or -1); a decrease only while it stays >= 0. True if moved."""
        ...

    def set_unread(self, customer_number: str, count: int, *, message_count: int) -> bool:
        """Set the count while the conversation still holds `message_count` texts; True if set."""
        ...

    def set_preview(self, customer_number: str, message_id: str, preview: str) -> bool:
        """Replace the preview while `message_id` is still the last message; True if replaced."""
        ...


class SearchIndex(Protocol):
    """Search terms (`parley.domain.search`) per team, sorted, for `begins_with` lookups."""

    def slice_matching(
        self, team: str, prefix: str, *, start: str | None, limit: int
    ) -> IndexSlice[SearchHit]: ...

    def index(self, customer_number: str, team: str, name: str | None) -> None:
        """Write the conversation's terms: its number's, and (replacing any before) its name's."""
        ...


class ConversationPreviews(Protocol):
    """The conversation's copy of its last text (`last_message_preview`), which retention blanks too."""

    def clear_preview(self, customer_number: str, message_id: str) -> bool:
        """Blank the preview if the conversation's last message is still `message_id`; True if so."""
        ...


# -- erasure of one customer's data (parley.services.erasure) ---------------------------------------


class ErasureStore(Protocol):
    """The deletes an erasure needs. Each is idempotent, and each answers how many items it removed,
    so a second erasure of the same number reports zero."""

    def delete_messages(self, messages: Sequence[Message]) -> int:
        """Delete these messages (their index entries go with them)."""
        ...

    def delete_conversation(self, customer_number: str) -> tuple[int, int]:
        """The conversation and its search terms: (conversations, search terms) removed."""
        ...

    def delete_record(self, contact_id: str) -> bool:
        """A record and its number lookups; False when it was already gone."""
        ...

    def delete_digest_items(self, digest_keys: Sequence[str], conflict_ids: Sequence[str]) -> int:
        """What the digest kept of the customer's days: its entries and its held conflicts."""
        ...

    def delete_parts(self, customer_number: str, start: str | None) -> tuple[int, str | None]:
        """One page of the held parts of the customer's long texts and the marks of those assembled:
        (removed, where the next page starts; None after the last)."""
        ...
