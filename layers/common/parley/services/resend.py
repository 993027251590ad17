"""Resend from the Failed view: one message, a list of ids, or every failed message a filter names.

Each message is resent by `SendService.resend` (the explicit failed → queued transition, then the
send rules again); this service picks the messages, keeps to those the caller sees, and answers per
message, so one unknown or refused id never fails the whole batch.

Ids are a person's choice and are resent as named. A filter is not: it leaves out texts whose last
failure the carrier calls permanent (a landline, an invalid number: sending again is paid for and
reads as spam), those whose failure can't be classified (a code from a carrier we no longer run), those
the customer may already have (a person checks first), and partly delivered texts (resending repeats
the parts the customer has) unless asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from parley.access import Caller
from parley.carriers.base import Carrier, FailureKind
from parley.domain.models import Message, MessageStatus
from parley.ports import MessageRepository, MessageViews
from parley.services.inbox import NotFound
from parley.services.sending import NotResendable, SendService, last_attempt_unsettled

logger = logging.getLogger(__name__)

MAX_BATCH = 500  # ids in one request
# One filter call stays well inside API Gateway's 29 s: it reads at most MAX_PAGES pages of the Failed
# view (every team's failures) and resends at most MAX_FILTER_RESENDS; past either it answers `more`
# with a cursor to go on from.
MAX_FILTER_RESENDS = 100
MAX_PAGES = 10
_PAGE = 100
assert _PAGE <= MAX_FILTER_RESENDS  # one page's matches always fit, so every call moves on

PARTS_AGAIN = "resending it sends the parts already delivered again"
MAY_HAVE_GONE = "it may already have been sent; resend it by id once you have checked with the customer"
_SEND_FAILURES = frozenset(kind.value for kind in FailureKind)


@dataclass(frozen=True)
class ResendResult:
    """What became of one message a resend named."""

    message_id: str
    result: Literal["resent", "refused"]
    status: MessageStatus | None = None  # where the message is now; None for an unknown id
    # Why it was refused, suppressed or held, that it was already resent, or that delivered parts of a
    # partly delivered text go again.
    reason: str | None = None


@dataclass(frozen=True)
class FailedResends:
    """What one filter call resent, whether more may remain, and where to go on from."""

    results: list[ResendResult]
    more: bool
    cursor: str | None = None  # None with `more`: never; without `more`: nothing left to read


@dataclass(frozen=True)
class FailedFilter:
    """Which of the team's failed messages to resend: from one of our numbers, created since a time;
    partly delivered ones only when `partially_delivered` asks for them."""

    our_number: str | None = None
    since: datetime | None = None
    partially_delivered: bool = False


class ResendService:
    def __init__(
        self,
        *,
        messages: MessageRepository,
        views: MessageViews,
        sender: SendService,
        carriers: Callable[[str], Carrier],
    ) -> None:
        self._messages = messages
        self._views = views
        self._sender = sender
        self._carriers = carriers

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
        pages. `more` says the call stopped early: call again with its `cursor` for the rest.

        Texts the filter leaves out (`_left_out`) are answered `refused` with the reason, in their
        place among the rest, without counting against the limit; they stay in the view for a person
        to resend by id or delete."""
        chosen: list[Message | ResendResult] = []
        resends = 0
        start = cursor
        for _ in range(MAX_PAGES):
            page = self._views.list_view("failed", limit=_PAGE, cursor=start, since=where.since)
            matches = [
                m
                for m in page.items
                if caller.sees(m.team) and (where.our_number is None or m.our_number == where.our_number)
            ]
            picked = [self._left_out(m, where) or m for m in matches]
            count = sum(isinstance(p, Message) for p in picked)
            if resends + count > MAX_FILTER_RESENDS:
                break  # this page waits for the next call, which starts at it
            chosen += picked
            resends += count
            start = page.cursor
            if start is None:
                break
        results = [self._resend(m, by) if isinstance(m, Message) else m for m in chosen]
        return FailedResends(results, more=start is not None, cursor=start)

    def _left_out(self, message: Message, where: FailedFilter) -> ResendResult | None:
        """Why a filter leaves this failed text out, as its refusal; None to resend it."""
        if message.status is MessageStatus.PARTIALLY_DELIVERED and not where.partially_delivered:
            return self._refused(
                message,
                f"only part of it was delivered and {PARTS_AGAIN}; resend it by id, or ask for "
                "partly delivered texts",
            )
        if _may_have_been_sent(message):
            return self._refused(message, MAY_HAVE_GONE)
        code = message.error_code
        if not code:
            return None  # failed on our side (no carrier answer, retries spent): worth another go
        last = message.attempts[-1] if message.attempts else None
        try:
            if last is not None and last.error_code == code and last.outcome in _SEND_FAILURES:
                # refused when sent: classified then, with the answer's HTTP status to read it by
                kind, words = FailureKind(last.outcome), message.error_reason or last.detail or ""
            else:  # reported by a delivery receipt
                kind, words = self._carriers(message.carrier).classify(code, None)
        except Exception:  # an unknown or broken carrier: nothing says sending again can work
            logger.warning(
                "failure code not classified; left out of a bulk resend",
                extra={"message_id": message.message_id, "carrier": message.carrier, "error_code": code},
                exc_info=True,
            )
            return self._refused(
                message,
                f"its failure (code {code} from carrier {message.carrier!r}) can't be classified, so it "
                "may be permanent; resend it by id if it should go again",
            )
        if kind is FailureKind.PERMANENT:
            return self._refused(
                message,
                f"the carrier says sending it again can't work ({words}; code {code}); resend it by id "
                "if the cause has been fixed",
            )
        return None

    @staticmethod
    def _refused(message: Message, reason: str) -> ResendResult:
        return ResendResult(message.message_id, "refused", message.status, reason)

    def _resend(self, message: Message, by: str | None) -> ResendResult:
        try:
            stored, now = self._sender.resend(message, by=by)
        except NotResendable as exc:
            return ResendResult(message.message_id, "refused", message.status, str(exc))
        reason = PARTS_AGAIN if message.status is MessageStatus.PARTIALLY_DELIVERED else None
        if not now:
            reason = "already resent; it is on its way"
        elif stored.status is MessageStatus.SUPPRESSED:
            reason = stored.error_reason
        elif stored.status is MessageStatus.HELD:
            reason = "held for the recipient's quiet hours"
        return ResendResult(stored.message_id, "resent", stored.status, reason)


def _may_have_been_sent(message: Message) -> bool:
    """Whether the customer may already have this failed text. Texts failed before the flag was kept
    are judged by what is stored: an ambiguous last attempt, or a failure straight from `sending` with
    no attempt recorded since (its job was lost mid-send)."""
    if message.may_have_been_sent:
        return True
    if message.status is not MessageStatus.FAILED:
        return False
    if last_attempt_unsettled(message):
        return True
    history = message.history
    if len(history) < 2 or history[-1].status is not MessageStatus.FAILED:
        return False
    claimed = history[-2]
    last = message.attempts[-1] if message.attempts else None
    return claimed.status is MessageStatus.SENDING and (last is None or last.at < claimed.at)
