"""The inbox's message views and what a person does with messages there: delete and restore, reply
(to one, or to many at once) and forward.

Views read keys-only index partitions (`parley.domain.views`) merged newest first, so a page costs a
bounded number of reads whatever the table holds; filters (our number, a message the index still
shows where it no longer is) are applied to the page read, so a filtered page may hold fewer than
`limit` messages and still carry a cursor. Deletion is soft: the message keeps its status and leaves
its view for Deleted; a restore puts it back. Replies and forwards are ordinary sends
(`SendService.submit`) as the message's team, so every send rule applies to them, their idempotency
keys included: those are per team.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from parley.access import Caller
from parley.domain.models import Message, SendRequest
from parley.domain.views import (
    BOX_VIEWS,
    VIEWS,
    WORK_VIEWS,
    box_for,
    indexed_view,
    team_box,
    work_partitions,
)
from parley.ports import ConflictError, MessageListing, MessageRepository, NumberRepository, Page, Partition
from parley.services.inbox import NotFound
from parley.services.sending import SendRejected, SendService, may_send_from

MAX_BATCH = 500  # ids in one delete, restore or reply request
_ATTEMPTS = 3  # tries of one deletion against concurrent status changes


@dataclass(frozen=True)
class ViewFilter:
    our_number: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class BulkResult:
    """What became of one id a bulk request named: `ok` (done, or already so), `not_found` (absent
    or not the caller's), `conflict` (it kept changing: ask again), `rejected` (a reply that can't be
    sent, with the reason) or `skipped` (another selected message already replied to that customer)."""

    message_id: str
    result: Literal["ok", "not_found", "conflict", "rejected", "skipped"]
    deleted: bool | None = None
    reason: str | None = None
    reply_id: str | None = None  # a reply: the message sent


@dataclass(frozen=True)
class Content:
    """What a reply says: a `body`, or a template with its merge values."""

    body: str | None = None
    template_id: str | None = None
    merge_values: dict[str, str] | None = None


def derived_key(key: str, message_id: str, kind: str) -> str:
    """One idempotency key per message of a bulk request: the same request again sends nothing new."""
    return f"{kind}_" + hashlib.sha256(f"{key}\n{message_id}".encode()).hexdigest()[:40]


class Mailbox:
    def __init__(
        self,
        *,
        messages: MessageRepository,
        listing: MessageListing,
        numbers: NumberRepository,
        sender: SendService,
        clock: Callable[[], datetime],
    ) -> None:
        self._messages = messages
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
        return [self._set_deleted(i, caller, deleted=True) for i in _checked(ids)]

    def restore(self, ids: list[str], caller: Caller) -> list[BulkResult]:
        return [self._set_deleted(i, caller, deleted=False) for i in _checked(ids)]

    def _set_deleted(self, message_id: str, caller: Caller, *, deleted: bool) -> BulkResult:
        for _ in range(_ATTEMPTS):
            message = self._messages.get(message_id)
            if message is None or not caller.sees(message.team):
                return BulkResult(message_id, "not_found", reason=f"no message with id {message_id}")
            if (message.deleted_at is not None) == deleted:
                return BulkResult(message_id, "ok", deleted=deleted)  # already so: nothing to write
            change = (
                {"deleted_at": self._clock(), "deleted_by": caller.user or None}
                if deleted
                else {"deleted_at": None, "deleted_by": None}
            )
            try:
                self._messages.update(message.model_copy(update=change), expected_version=message.version)
            except ConflictError:
                continue  # a receipt or a send moved it meanwhile: read it again
            return BulkResult(message_id, "ok", deleted=deleted)
        return BulkResult(message_id, "conflict", reason="the message kept changing; ask again")

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

    def reply_many(self, ids: list[str], caller: Caller, content: Content, key: str) -> list[BulkResult]:
        """One reply per customer among the messages named, each under a key derived from `key` and
        the message, so the same request again sends nothing twice."""
        results: list[BulkResult] = []
        replied: set[tuple[str, str]] = set()
        for message_id in _checked(ids):
            message = self._messages.get(message_id)
            if message is None or not caller.sees(message.team):
                results.append(BulkResult(message_id, "not_found", reason=f"no message with id {message_id}"))
                continue
            conversation = (message.team, message.customer_number)
            if conversation in replied:
                reason = "another selected message's reply already went to this customer"
                results.append(BulkResult(message_id, "skipped", reason=reason))
                continue
            try:
                sent = self._reply(message, caller, content, derived_key(key, message_id, "reply"))
            except (SendRejected, ValueError) as exc:
                results.append(BulkResult(message_id, "rejected", reason=str(exc)))
                continue
            replied.add(conversation)
            results.append(BulkResult(message_id, "ok", reply_id=sent.message_id))
        return results

    def _reply(self, message: Message, caller: Caller, content: Content, key: str) -> Message:
        # A customer may text another team's number and still be this team's conversation: then the
        # reply goes from a number the team may use, chosen as for any send.
        user = caller.user or None
        ours = self._numbers.get(message.our_number)
        sender = message.our_number if ours is not None and may_send_from(ours, message.team, user) else None
        request = SendRequest.model_validate(
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
        return self._sender.submit(request, key, team=message.team)[0]

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


def _checked(ids: list[str]) -> list[str]:
    """The ids, each once, in the order given; the whole request is refused before anything is written."""
    if not isinstance(ids, list) or not ids:
        raise ValueError("'ids' must be a non-empty list of message ids")
    if not all(isinstance(i, str) and 0 < len(i) <= 200 for i in ids):
        raise ValueError("'ids' must be message ids: strings of 1 to 200 characters")
    if len(ids) > MAX_BATCH:
        raise ValueError(f"'ids' can name at most {MAX_BATCH} messages at a time")
    return list(dict.fromkeys(ids))
