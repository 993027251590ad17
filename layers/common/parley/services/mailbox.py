"""The inbox's message views and what a person does with messages there: delete and restore, reply
(to one, or to many at once) and forward.

Views read keys-only index partitions (`parley.domain.views`) merged newest first, so a page costs a
bounded number of reads whatever the table holds; filters (our number, a message the index still
shows where it no longer is) are applied to the page read, so a filtered page may hold fewer than
`limit` messages and still carry a cursor. Deletion is soft: the message keeps its status and leaves
its view for Deleted; a restore puts it back; its conversation's unread count and preview follow.
Replies and forwards are ordinary sends (`SendService.submit`) as the message's team, so every send
rule applies to them, their idempotency keys included: those are per team.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from parley.access import Caller
from parley.domain.ids import outbound_message_id
from parley.domain.models import Conversation, Direction, Message, SendRequest
from parley.domain.views import (
    BOX_VIEWS,
    VIEWS,
    WORK_VIEWS,
    box_for,
    indexed_view,
    team_box,
    work_partitions,
)
from parley.ports import (
    ConflictError,
    ConversationRepository,
    MessageListing,
    MessageRepository,
    NumberRepository,
    Page,
    Partition,
    UnreadCounts,
)
from parley.services.inbox import NotFound
from parley.services.sending import (
    KeyReused,
    SendRejected,
    SendService,
    may_send_from,
    request_fingerprint,
)

MAX_BATCH = 500  # ids in one delete or restore request
MAX_REPLIES = 100  # ids in one bulk reply request: a send's limit of recipients
# A bulk reply stops this long before the invocation's end (the API's 30 s), answering `not_tried`
# for the ids it did not reach: each reply is about a dozen sequential calls.
REPLY_RESERVE_SECONDS = 8.0
_ATTEMPTS = 3  # tries of one deletion against concurrent status changes
_THREAD_PAGES = 5  # pages of 100 read to count a conversation's newer texts, at most


class ConversationState(ConversationRepository, UnreadCounts, Protocol):
    """The conversation's unread count and preview, which deleting, restoring and reading move."""


@dataclass(frozen=True)
class ViewFilter:
    our_number: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class BulkResult:
    """What became of one id a bulk request named: `ok` (done, or already so), `not_found` (absent
    or not the caller's), `conflict` (it kept changing: ask again), `rejected` (a reply that can't be
    sent, with the reason), `skipped` (another selected message already replied to that customer) or
    `not_tried` (a bulk reply ran out of time first: ask again for these, with the same key)."""

    message_id: str
    result: Literal["ok", "not_found", "conflict", "rejected", "skipped", "not_tried"]
    deleted: bool | None = None
    reason: str | None = None
    reply_id: str | None = None  # a reply: the message sent


@dataclass(frozen=True)
class Content:
    """What a reply says: a `body`, or a template with its merge values."""

    body: str | None = None
    template_id: str | None = None
    merge_values: dict[str, str] | None = None


def derived_key(key: str, subject: str, kind: str) -> str:
    """One idempotency key per subject of a bulk request: the same request again sends nothing new."""
    return f"{kind}_" + hashlib.sha256(f"{key}\n{subject}".encode()).hexdigest()[:40]


def thread_order(message: Message) -> tuple[datetime, str]:
    """Where a text stands in its thread: by time, then by id, since carriers stamp texts to the
    second and two can share a time."""
    return (message.created_at, message.message_id)


def inbound_newer(messages: MessageRepository, after: Message, *, cap: int) -> tuple[int, set[str]]:
    """How many not-deleted inbound texts of `after`'s conversation come after it in thread order,
    counted up to `cap` (also the answer for a thread too long to read), and the ids of the texts read."""
    count, read, cursor = 0, set[str](), None
    for _ in range(_THREAD_PAGES):
        page = messages.list_for_conversation(
            after.customer_number, limit=100, cursor=cursor, since=after.created_at
        )
        for message in page.items:
            read.add(message.message_id)
            if thread_order(message) <= thread_order(after):
                continue
            if message.direction is Direction.INBOUND and message.deleted_at is None:
                count += 1
                if count >= cap:
                    return cap, read
        cursor = page.cursor
        if cursor is None:
            return count, read
    return cap, read


class Mailbox:
    def __init__(
        self,
        *,
        messages: MessageRepository,
        listing: MessageListing,
        numbers: NumberRepository,
        sender: SendService,
        clock: Callable[[], datetime],
        conversations: ConversationState | None = None,
    ) -> None:
        self._messages = messages
        self._conversations = conversations
        self._listing = listing
        self._numbers = numbers
        self._sender = sender
        self._clock = clock

    # -- views -------------------------------------------------------------------------------------

    def teams_of(self, caller: Caller) -> list[str]:
        """The teams whose messages the caller sees: theirs; an admin, every team with a number."""
        teams = set(caller.teams)
        if caller.admin:
            teams |= {n.team for n in self._numbers.all()} | {"default"}
        return sorted(teams)

    def view(
        self, name: str, caller: Caller, where: ViewFilter, *, limit: int, cursor: str | None
    ) -> Page[Message]:
        if name not in VIEWS:
            raise ValueError(f"'view' must be one of {', '.join(VIEWS)}, not {name!r:.40}")
        if where.since and where.until and where.since > where.until:
            raise ValueError("'since' must not be after 'until'")
        partitions: list[Partition]
        if name in BOX_VIEWS:
            boxes = BOX_VIEWS[name]
            partitions = [("team_box", team_box(t, b)) for t in self.teams_of(caller) for b in boxes]
        else:
            partitions = work_partitions(name)
        page = self._listing.list_merged(
            partitions, limit=limit, cursor=cursor, since=where.since, until=where.until
        )
        kept = [
            m
            for m in page.items
            if caller.sees(m.team)
            and _belongs(m, name)
            and (where.our_number is None or m.our_number == where.our_number)
        ]
        return Page(kept, page.cursor)

    # -- delete and restore ------------------------------------------------------------------------

    def delete(self, ids: list[str], caller: Caller) -> list[BulkResult]:
        """Each id read once; each conversation's thread read once for all its texts named, and its
        unread count moved once: a request of MAX_BATCH ids stays well inside the API's time."""
        checked = _checked(ids)
        results: dict[str, BulkResult] = {}
        todo: dict[str, list[Message]] = {}
        for message_id in checked:
            message = self._messages.get(message_id)
            if message is None or not caller.sees(message.team):
                results[message_id] = BulkResult(
                    message_id, "not_found", reason=f"no message with id {message_id}"
                )
            elif message.deleted_at is not None:
                results[message_id] = BulkResult(message_id, "ok", deleted=True)  # already so
            else:
                todo.setdefault(message.customer_number, []).append(message)
        for number, texts in todo.items():
            held = self._conversations
            conversation = None if held is None else held.get(number)
            unread = self._unread_among(conversation, texts)
            lowered, blanked = 0, None
            try:
                for message in texts:
                    change = {
                        "deleted_at": self._clock(),
                        "deleted_by": caller.user or None,
                        "deleted_unread": message.message_id in unread,
                    }
                    try:
                        self._messages.update(
                            message.model_copy(update=change), expected_version=message.version
                        )
                    except ConflictError:  # a receipt or a send moved it meanwhile: that one on its own
                        results[message.message_id] = self._set_deleted(
                            message.message_id, caller, deleted=True
                        )
                        continue
                    results[message.message_id] = BulkResult(message.message_id, "ok", deleted=True)
                    lowered += message.message_id in unread
                    if conversation is not None and conversation.last_message_id == message.message_id:
                        blanked = message.message_id
            finally:  # should a write fail, the texts already deleted still move the count
                self._lower(number, lowered, blanked=blanked)
        return [results[i] for i in checked]

    def restore(self, ids: list[str], caller: Caller) -> list[BulkResult]:
        return [self._set_deleted(i, caller, deleted=False) for i in _checked(ids)]

    def _set_deleted(self, message_id: str, caller: Caller, *, deleted: bool) -> BulkResult:
        for _ in range(_ATTEMPTS):
            message = self._messages.get(message_id)
            if message is None or not caller.sees(message.team):
                return BulkResult(message_id, "not_found", reason=f"no message with id {message_id}")
            if (message.deleted_at is not None) == deleted:
                return BulkResult(message_id, "ok", deleted=deleted)  # already so: nothing to write
            held = self._conversations
            conversation = None if held is None else held.get(message.customer_number)
            unread = deleted and message.message_id in self._unread_among(conversation, [message])
            change = (
                {"deleted_at": self._clock(), "deleted_by": caller.user or None, "deleted_unread": unread}
                if deleted
                else {"deleted_at": None, "deleted_by": None, "deleted_unread": False}
            )
            try:
                self._messages.update(message.model_copy(update=change), expected_version=message.version)
            except ConflictError:
                continue  # a receipt or a send moved it meanwhile: read it again
            self._recount(message, conversation, deleted=deleted, unread=unread)
            return BulkResult(message_id, "ok", deleted=deleted)
        return BulkResult(message_id, "conflict", reason="the message kept changing; ask again")

    def _unread_among(self, conversation: Conversation | None, texts: list[Message]) -> set[str]:
        """Which of a conversation's not-deleted `texts` are unread, from one read of its thread.

        The unread ones are taken to be the `unread_count` newest not-deleted inbound texts in thread
        order (time, then id). A text among them still counts as read when an older one outside them
        was stored after it, or at once (a late webhook with an older carrier time may be the unread
        one), and so does one the read could not reach: when unsure, the count is not lowered, since
        a badge one too high is better than an unread text hidden."""
        cap = 0 if conversation is None else conversation.unread_count
        wanted = {t.message_id for t in texts if t.direction is Direction.INBOUND}
        if cap <= 0 or not wanted:
            return set()
        thread: list[Message] = []
        cursor, last_page = None, False
        for _ in range(_THREAD_PAGES):
            page = self._messages.list_for_conversation(texts[0].customer_number, limit=100, cursor=cursor)
            thread += [m for m in page.items if m.direction is Direction.INBOUND and m.deleted_at is None]
            cursor = page.cursor
            if cursor is None or last_page:
                break
            # past every text asked about (or the unread ones): one page more, for late arrivals
            last_page = wanted <= {m.message_id for m in thread} or len(thread) > cap
        thread.sort(key=thread_order, reverse=True)
        newest, rest = thread[:cap], thread[cap:]
        latest_rest = max((m.updated_at for m in rest), default=None)
        return {
            m.message_id
            for m in newest
            if m.message_id in wanted and (latest_rest is None or latest_rest < m.updated_at)
        }

    def _unread_restored(self, message: Message, conversation: Conversation | None) -> bool:
        """A restored text, which the count left out, is unread while no more than the count of
        not-deleted inbound texts come after it (no read since has passed it)."""
        if conversation is None or message.direction is not Direction.INBOUND:
            return False
        cap = conversation.unread_count + 1
        newer, _ = inbound_newer(self._messages, message, cap=cap)
        return newer < cap

    def _lower(self, number: str, by: int, *, blanked: str | None) -> None:
        """The conversation after `by` of its unread texts (and `blanked`, its last) were deleted: the
        count lowered once, never below 0 should a read have cleared it meanwhile."""
        conversations = self._conversations
        if conversations is None:
            return
        if by > 0 and not conversations.add_unread(number, -by):
            for _ in range(by):  # a read lowered it meanwhile: as far as it still goes
                if not conversations.add_unread(number, -1):
                    break
        if blanked is not None:  # unless a newer text took its place meanwhile
            conversations.set_preview(number, blanked, "")

    def _recount(
        self, message: Message, conversation: Conversation | None, *, deleted: bool, unread: bool
    ) -> None:
        """The conversation after one of its texts was deleted or restored: its unread count (written
        only by the request whose message write won, so a text moves it once) and its preview."""
        conversations = self._conversations
        if conversations is None or conversation is None:
            return
        number, last = message.customer_number, conversation.last_message_id == message.message_id
        if deleted:
            if unread:
                conversations.add_unread(number, -1)  # never below 0, should a read have cleared it
            if last:
                conversations.set_preview(number, message.message_id, "")
            return
        if message.deleted_unread and self._unread_restored(message, conversation):
            conversations.add_unread(number, 1)
        if last:
            conversations.set_preview(number, message.message_id, message.body)

    # -- reply and forward ---------------------------------------------------------------------------

    def visible(self, message_id: str, caller: Caller) -> Message:
        message = self._messages.get(message_id)
        if message is None or not caller.sees(message.team):
            raise NotFound(f"no message with id {message_id}")
        return message

    def reply(self, message_id: str, caller: Caller, content: Content, key: str) -> Message:
        """Text the message's customer, threaded into its conversation (and its team's), from the
        number of ours it used if the team may send from it."""
        return self._reply(self.visible(message_id, caller), caller, content, key)

    def reply_many(
        self,
        ids: list[str],
        caller: Caller,
        content: Content,
        key: str,
        *,
        time_left: Callable[[], float] | None = None,
    ) -> list[BulkResult]:
        """One reply per customer among the messages named, each under a key derived from `key`, the
        team and the customer, so the same request again (in any order) sends nothing twice. With
        `time_left` (seconds), the ids not reached before REPLY_RESERVE_SECONDS remain are `not_tried`."""
        results: list[BulkResult] = []
        replied: set[tuple[str, str]] = set()
        checked = _checked(ids, at_most=MAX_REPLIES)
        for done, message_id in enumerate(checked):
            if time_left is not None and time_left() < REPLY_RESERVE_SECONDS:
                reason = "out of time before this one: ask again for it with the same key"
                results += [BulkResult(i, "not_tried", reason=reason) for i in checked[done:]]
                break
            message = self._messages.get(message_id)
            if message is None or not caller.sees(message.team):
                results.append(BulkResult(message_id, "not_found", reason=f"no message with id {message_id}"))
                continue
            conversation = (message.team, message.customer_number)
            if conversation in replied:
                reason = "another selected message's reply already went to this customer"
                results.append(BulkResult(message_id, "skipped", reason=reason))
                continue
            per_customer = derived_key(key, "\n".join(conversation), "reply")
            try:
                sent = self._reply(message, caller, content, per_customer)
            except KeyReused as exc:
                earlier = self._earlier_reply(message, caller, content, per_customer)
                if earlier is None:
                    results.append(BulkResult(message_id, "rejected", reason=str(exc)))
                    continue
                sent = earlier
            except (SendRejected, ValueError) as exc:
                results.append(BulkResult(message_id, "rejected", reason=str(exc)))
                continue
            replied.add(conversation)
            results.append(BulkResult(message_id, "ok", reply_id=sent.message_id))
        return results

    def _earlier_reply(self, message: Message, caller: Caller, content: Content, key: str) -> Message | None:
        """The reply this customer's derived key already sent with the same content: another chunk of
        the request (or its retry) named a text of theirs to another number of ours, so only the
        sender differs. None when the key sent something else."""
        stored = self._messages.get(outbound_message_id(key, message.customer_number, message.team))
        if stored is None or stored.team != message.team or stored.request_fingerprint is None:
            return None
        asked = self._reply_request(message, caller, content)
        senders = (None, stored.our_number)
        same = any(
            request_fingerprint(asked.model_copy(update={"from_number": s})) == stored.request_fingerprint
            for s in senders
        )
        return stored if same else None

    def _reply(self, message: Message, caller: Caller, content: Content, key: str) -> Message:
        request = self._reply_request(message, caller, content)
        return self._sender.submit(request, key, team=message.team)[0]

    def _reply_request(self, message: Message, caller: Caller, content: Content) -> SendRequest:
        # A customer may text another team's number and still be this team's conversation: then the
        # reply goes from a number the team may use, chosen as for any send.
        user = caller.user or None
        ours = self._numbers.get(message.our_number)
        sender = message.our_number if ours is not None and may_send_from(ours, message.team, user) else None
        return SendRequest.model_validate(
            {
                "to": [message.customer_number],
                "body": content.body,
                "template_id": content.template_id,
                "merge_values": content.merge_values or {},
                "from": sender,
                "requested_by": user,
                "metadata": {"reply_to": message.message_id},
            }
        )

    def forward(
        self, message_id: str, caller: Caller, to: list[str], body: str | None, key: str
    ) -> list[Message]:
        """Send the message's text (or an edited one) to each of `to`, each its own conversation, from
        the number the team would use for them (attachments are not forwarded)."""
        message = self.visible(message_id, caller)
        text = message.body if body is None else body
        if not text.strip():
            raise ValueError("the message has no text to forward: give a 'body'")
        request = SendRequest.model_validate(
            {
                "to": to,
                "body": text,
                "requested_by": caller.user or None,
                "metadata": {"forwarded_from": message.message_id},
            }
        )
        return self._sender.submit(request, key, team=message.team)


def _belongs(message: Message, view: str) -> bool:
    """Still where the view's index listed it (the index lags the table a little)."""
    deleted = message.deleted_at is not None
    if view in BOX_VIEWS:
        return box_for(message.direction, deleted=deleted) in BOX_VIEWS[view]
    return not deleted and indexed_view(message.status, deleted=False) == WORK_VIEWS[view]


def _checked(ids: list[str], *, at_most: int = MAX_BATCH) -> list[str]:
    """The ids, each once, in the order given; the whole request is refused before anything is written."""
    if not isinstance(ids, list) or not ids:
        raise ValueError("'ids' must be a non-empty list of message ids")
    if not all(isinstance(i, str) and 0 < len(i) <= 200 for i in ids):
        raise ValueError("'ids' must be message ids: strings of 1 to 200 characters")
    if len(ids) > at_most:
        raise ValueError(f"'ids' can name at most {at_most} messages at a time")
    return list(dict.fromkeys(ids))
