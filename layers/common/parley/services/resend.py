"""Resend from the Failed view: one message, a list of ids, or every failed message a filter names.

Each message is resent by `SendService.resend` (the explicit failed → queued transition, then the
send rules again); this service picks the messages, keeps to those the caller sees, and answers per
message, so one unknown or refused id never fails the whole batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from parley.access import Caller
from parley.domain.models import Message, MessageStatus
from parley.ports import MessageRepository, MessageViews
from parley.services.inbox import NotFound
from parley.services.sending import NotResendable, SendService

MAX_BATCH = 500  # ids in one request
# One filter call stays well inside API Gateway's 29 s: it reads at most MAX_PAGES pages of the Failed
# view (every team's failures) and resends at most MAX_FILTER_RESENDS; past either it answers `more`
# with a cursor to go on from.
MAX_FILTER_RESENDS = 100
MAX_PAGES = 10
_PAGE = 100
assert _PAGE <= MAX_FILTER_RESENDS  # one page's matches always fit, so every call moves on


@dataclass(frozen=True)
class ResendResult:
    """What became of one message a resend named."""

    message_id: str
    result: Literal["resent", "refused"]
    status: MessageStatus | None = None  # where the message is now; None for an unknown id
    reason: str | None = None  # why it was refused, suppressed or held, or that it was already resent


@dataclass(frozen=True)
class FailedResends:
    """What one filter call resent, whether more may remain, and where to go on from."""

    results: list[ResendResult]
    more: bool
    cursor: str | None = None  # None with `more`: never; without `more`: nothing left to read


@dataclass(frozen=True)
class FailedFilter:
    """Which of the team's failed messages to resend: from one of our numbers, created since a time."""

    our_number: str | None = None
    since: datetime | None = None


class ResendService:
    def __init__(self, *, messages: MessageRepository, views: MessageViews, sender: SendService) -> None:
        self._messages = messages
        self._views = views
        self._sender = sender

    def resend_one(self, message_id: str, *, caller: Caller, by: str | None) -> Message:
        """Resend one message; NotFound (absent or another team's) or NotResendable."""
        message = self._messages.get(message_id)
        if message is None or not caller.sees(message.team):
            raise NotFound(f"no message with id {message_id}")
        return self._sender.resend(message, by=by)[0]

    def resend_ids(self, ids: list[str], *, caller: Caller, by: str | None) -> list[ResendResult]:
        """Resend each of `ids` (at most MAX_BATCH), answering for each, in the order given."""
        if not ids:
            raise ValueError("name at least one message id")
        if len(ids) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} ids at a time")
        results = []
        for message_id in dict.fromkeys(ids):
            message = self._messages.get(message_id)
            if message is None or not caller.sees(message.team):
                results.append(ResendResult(message_id, "refused", reason=f"no message with id {message_id}"))
                continue
            results.append(self._resend(message, by))
        return results

    def resend_failed(
        self, where: FailedFilter, *, caller: Caller, by: str | None, cursor: str | None = None
    ) -> FailedResends:
        """Resend the failed messages the caller sees that `where` names, newest first, from `cursor`
        (a previous call's) or the top: at most MAX_FILTER_RESENDS of them, reading at most MAX_PAGES
        pages. `more` says the call stopped early: call again with its `cursor` for the rest."""
        chosen: list[Message] = []
        start = cursor
        for _ in range(MAX_PAGES):
            page = self._views.list_view("failed", limit=_PAGE, cursor=start, since=where.since)
            matches = [
                m
                for m in page.items
                if caller.sees(m.team) and (where.our_number is None or m.our_number == where.our_number)
            ]
            if len(chosen) + len(matches) > MAX_FILTER_RESENDS:
                break  # this page waits for the next call, which starts at it
            chosen += matches
            start = page.cursor
            if start is None:
                break
        results = [self._resend(m, by) for m in chosen]
        return FailedResends(results, more=start is not None, cursor=start)

    def _resend(self, message: Message, by: str | None) -> ResendResult:
        try:
            stored, now = self._sender.resend(message, by=by)
        except NotResendable as exc:
            return ResendResult(message.message_id, "refused", message.status, str(exc))
        reason = None
        if not now:
            reason = "already resent; it is on its way"
        elif stored.status is MessageStatus.SUPPRESSED:
            reason = stored.error_reason
        elif stored.status is MessageStatus.HELD:
            reason = "held for the recipient's quiet hours"
        return ResendResult(stored.message_id, "resent", stored.status, reason)
