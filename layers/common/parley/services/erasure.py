"""Erasing one customer's data on request: their messages (both directions, through any of our
numbers), the media copied from their texts, their conversation with its search terms, the records
that hold their number, what the digest kept of their days, and the parts of long texts held. Their
opt-out record stays: it is the legal record of their consent, and it is what keeps them from being
texted again.

An erasure is bounded per call by a time budget. Its progress is the data itself (what is erased is
gone), so a call that runs out of time answers `done: false` and the same call again goes on; once
everything is gone, a call reports zeros. Anything still waiting to go out is cancelled before the
first message is deleted, so nothing is sent to the customer while an erasure is under way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime

from parley.domain.models import ContactRecord, Message, MessageStatus, StatusChange, day_of
from parley.ports import (
    Clock,
    ConflictError,
    ContactRepository,
    ErasureStore,
    EventPublisher,
    MediaStore,
    MessageRepository,
)
from parley.redact import mask
from parley.services.digest import conflict_id, digest_key

logger = logging.getLogger(__name__)

# Not handed to the carrier yet: cancelled first. A text already `sending` is in flight; deleting
# it makes the worker's conditional write fail, and its receipt finds no message (it is parked).
WAITING = frozenset(
    {MessageStatus.QUEUED, MessageStatus.SCHEDULED, MessageStatus.HELD, MessageStatus.RETRYING}
)
PAGE_SIZE = 100


@dataclass
class Erasure:
    """What one call removed, by kind; `done` says nothing of the customer is left but the opt-out."""

    customer_number: str
    done: bool = False
    cancelled: int = 0  # texts that were still waiting to go out
    messages: int = 0
    media: int = 0  # media objects of those messages
    conversations: int = 0
    search_terms: int = 0
    records_deleted: int = 0  # records with no other number
    records_updated: int = 0  # records that keep their other numbers
    digest_items: int = 0  # the digest's entries and held conflicts for the customer's days
    parts: int = 0  # held parts of their long texts, and the marks of those assembled

    def counts(self) -> dict[str, int]:
        return {k: v for k, v in asdict(self).items() if isinstance(v, int) and not isinstance(v, bool)}


class ErasureService:
    def __init__(
        self,
        *,
        messages: MessageRepository,
        store: ErasureStore,
        contacts: ContactRepository,
        media: MediaStore | None,
        events: EventPublisher,
        clock: Clock,
        timezone: str,
        budget_seconds: float = 15.0,
        monotonic: Callable[[], float] = time.monotonic,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self._messages = messages
        self._store = store
        self._contacts = contacts
        self._media = media
        self._events = events
        self._clock = clock
        self._tz = timezone
        self._budget = budget_seconds
        self._monotonic = monotonic
        self._page_size = page_size

    def erase(self, customer_number: str, *, by: str) -> Erasure:
        """Erase what is left of `customer_number` (E.164) within the time budget."""
        deadline = self._monotonic() + self._budget
        result = Erasure(customer_number)
        if (
            self._cancel_waiting(result, deadline)
            and self._delete_messages(result, deadline)
            and self._delete_parts(result, deadline)
        ):
            self._delete_records(result)
            result.conversations, result.search_terms = self._store.delete_conversation(customer_number)
            result.done = True
        self._audit(result, by)
        return result

    def _out_of_time(self, deadline: float) -> bool:
        return self._monotonic() >= deadline

    def _cancel_waiting(self, result: Erasure, deadline: float) -> bool:
        """Cancel every text still waiting to go out, so none leaves while the rest is erased; False
        when the budget ran out first (the next call reads them again: cancelled ones are skipped)."""
        now = self._clock()
        cursor: str | None = None
        while True:
            if self._out_of_time(deadline):
                return False
            page = self._messages.list_for_conversation(
                result.customer_number, limit=self._page_size, cursor=cursor
            )
            for message in page.items:
                if message.status in WAITING and self._cancel(message, now):
                    result.cancelled += 1
            if page.cursor is None:
                return True
            cursor = page.cursor

    def _cancel(self, message: Message, now: datetime) -> bool:
        for _ in range(3):
            try:
                self._messages.update(
                    message.model_copy(
                        update={
                            "status": MessageStatus.CANCELED,
                            "next_attempt_at": None,
                            "history": [
                                *message.history,
                                StatusChange(
                                    status=MessageStatus.CANCELED, at=now, source="parley", detail="erasure"
                                ),
                            ],
                        }
                    ),
                    expected_version=message.version,
                )
                return True
            except ConflictError:
                current = self._messages.get(message.message_id)
                if current is None or current.status not in WAITING:
                    return False  # gone, or a worker took it: in flight, deleted with the rest
                message = current
        return False

    def _delete_messages(self, result: Erasure, deadline: float) -> bool:
        """Delete the messages page by page: media first (a message is the only pointer to its
        objects), then the digest's items for their days, then the messages themselves."""
        days_done: set[str] = set()
        cursor: str | None = None
        while True:
            if self._out_of_time(deadline):
                return False
            page = self._messages.list_for_conversation(
                result.customer_number, limit=self._page_size, cursor=cursor
            )
            if page.items:
                self._delete_media(page.items, result)
                days = sorted({day_of(m.created_at, self._tz) for m in page.items} - days_done)
                if days:
                    result.digest_items += self._store.delete_digest_items(
                        [digest_key(result.customer_number, d) for d in days],
                        [conflict_id(result.customer_number, d) for d in days],
                    )
                    days_done.update(days)
                result.messages += self._store.delete_messages(page.items)
                cursor = None  # from the top again: what is left starts there
            elif page.cursor is None:
                return True
            else:
                cursor = page.cursor  # only keys the index still shows for messages just deleted

    def _delete_parts(self, result: Erasure, deadline: float) -> bool:
        """The parts of long texts still held (their words) and the marks of those assembled: a part
        arriving later then finds no group to complete, and waits alone until it expires. A call
        cut short scans from the start again."""
        start: str | None = None
        while True:
            if self._out_of_time(deadline):
                return False
            removed, start = self._store.delete_parts(result.customer_number, start)
            result.parts += removed
            if start is None:
                return True

    def _delete_media(self, messages: list[Message], result: Erasure) -> None:
        keys: list[str] = []
        for message in messages:
            for index, item in enumerate(message.media):
                keys.append(media_key(message.message_id, index))  # also one copied but not recorded
                if item.stored_at:
                    result.media += 1
                    stored = item.stored_at.split("/", 3)[-1] if item.stored_at.startswith("s3://") else ""
                    if stored and stored not in keys:
                        keys.append(stored)
        if keys and self._media is not None:
            self._media.delete(keys)

    def _delete_records(self, result: Erasure) -> None:
        """A record with only this number is deleted; one with other numbers keeps them (it is
        someone's other phones, or a company's) and loses this one."""
        number = result.customer_number
        for record in self._contacts.find_by_phone(number):
            rest = [p for p in record.phones if p != number]
            if not rest:
                if self._store.delete_record(record.contact_id):
                    result.records_deleted += 1
                continue
            kept = record.model_dump(mode="json") | {"phone": rest[0], "phones": rest}
            self._contacts.save(ContactRecord.model_validate(kept))
            result.records_updated += 1

    def _audit(self, result: Erasure, by: str) -> None:
        """An audit trail without the data: who, when, how much, and the number masked."""
        detail = {
            "customer_number": mask(result.customer_number),
            "erased_by": by,
            "done": result.done,
            **result.counts(),
        }
        logger.info(
            "customer data erased" if result.done else "customer data erasure continues", extra=detail
        )
        self._events.publish("CustomerErased", detail)


def media_key(message_id: str, index: int) -> str:
    """Where the inbound processor copies a message's attachment (parley.services.inbound)."""
    return f"media/{message_id}/{index}"
