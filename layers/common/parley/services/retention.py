"""Retention: a text's body and media are kept `retention_days`, then blanked; the message itself
(status, status history, attempts, segments, who sent it), the conversation and the opt-out trail
stay. See docs/retention.md for why this is a nightly sweep and not DynamoDB TTL on message items.

The sweep reads the day index the digest reads (a day's messages in shards, by conversation), for
the day that has just reached the retention age and a few days before it, so a night that was cut
short or failed is caught up. What is blanked already is skipped; each text blanked costs one write,
off the send path. S3 expires the media objects themselves (the bucket's lifecycle rule, same age).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from parley.domain.models import Message, MessageStatus
from parley.ports import Clock, ConflictError, ConversationPreviews, ConversationRepository, MessageRepository

logger = logging.getLogger(__name__)

# A text the sweep leaves alone: not yet handed to the carrier (a text scheduled further ahead than
# the retention age still needs its body), or in flight.
UNSENT = frozenset(
    {
        MessageStatus.QUEUED,
        MessageStatus.SCHEDULED,
        MessageStatus.HELD,
        MessageStatus.RETRYING,
        MessageStatus.SENDING,
    }
)
MIN_RETENTION_DAYS = 7  # the digest reads a day's texts up to yesterday's lookback after it
CATCH_UP_DAYS = 3


@dataclass
class Sweep:
    days: list[str] = field(default_factory=list)
    expired: int = 0  # texts blanked
    previews: int = 0  # conversation previews blanked
    unsent: int = 0  # left alone: still waiting to go out
    conflicts: int = 0  # changed while being blanked: the next night's catch-up takes them
    done: bool = True

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def retention_days(value: object) -> int:
    """RetentionDays as the schedule passes it: 0 (forever), or a whole number of days from 7."""
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise ValueError(f"retention days must be a whole number, not {value!r}")
    days = int(value)
    if 0 < days < MIN_RETENTION_DAYS:
        raise ValueError(f"retention must be 0 (forever) or at least {MIN_RETENTION_DAYS} days, not {days}")
    return days


def expiring_days(
    now: datetime, retention_days: int, timezone: str, catch_up: int = CATCH_UP_DAYS
) -> list[str]:
    """The organisation's day that has just reached the retention age, then the `catch_up` before it;
    none when bodies are kept forever (0)."""
    if retention_days <= 0:
        return []
    if retention_days < MIN_RETENTION_DAYS:
        raise ValueError(f"retention must be 0 (forever) or at least {MIN_RETENTION_DAYS} days")
    cutoff: date = now.astimezone(ZoneInfo(timezone)).date() - timedelta(days=retention_days)
    return [(cutoff - timedelta(days=i)).isoformat() for i in range(catch_up + 1)]


class RetentionSweep:
    def __init__(
        self,
        *,
        messages: MessageRepository,
        conversations: ConversationRepository,
        previews: ConversationPreviews,
        clock: Clock,
        retention_days: int,
        timezone: str,
        shards: int,
        budget_seconds: float = 240.0,
        monotonic: Callable[[], float] = time.monotonic,
        page_size: int = 200,
    ) -> None:
        self._messages = messages
        self._conversations = conversations
        self._previews = previews
        self._clock = clock
        self._days = retention_days
        self._tz = timezone
        self._shards = shards
        self._budget = budget_seconds
        self._monotonic = monotonic
        self._page_size = page_size

    def run(self) -> Sweep:
        """Blank what has reached the retention age, within the time budget."""
        deadline = self._monotonic() + self._budget
        now = self._clock()
        result = Sweep(days=expiring_days(now, self._days, self._tz))
        for day in result.days:
            for shard in range(self._shards):
                after: str | None = None
                while True:
                    if self._monotonic() >= deadline:
                        result.done = False
                        logger.warning("retention sweep ran out of time", extra=result.as_dict())
                        return result
                    numbers, after = self._messages.day_conversations(
                        day, shard, after=after, limit=self._page_size
                    )
                    for number in numbers:
                        self._expire_conversation_day(number, day, now, result)
                    if after is None:
                        break
        logger.info("retention sweep done", extra=result.as_dict())
        return result

    def _expire_conversation_day(self, number: str, day: str, now: datetime, result: Sweep) -> None:
        blanked: list[str] = []
        for message in self._messages.list_conversation_day(number, day):
            if message.expired_at is not None:
                blanked.append(message.message_id)  # a night before: its preview may still be there
                continue
            if message.status in UNSENT:
                result.unsent += 1
                continue
            if self._expire(message, now):
                result.expired += 1
                blanked.append(message.message_id)
            else:
                result.conflicts += 1
        conversation = self._conversations.get(number) if blanked else None
        if (
            conversation is not None
            and conversation.last_message_id in blanked
            and conversation.last_message_preview
            and self._previews.clear_preview(number, conversation.last_message_id)
        ):
            result.previews += 1

    def _expire(self, message: Message, now: datetime) -> bool:
        try:
            self._messages.update(
                message.model_copy(update={"body": "", "media": [], "expired_at": now}),
                expected_version=message.version,
            )
        except ConflictError:
            return False
        return True
