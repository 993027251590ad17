"""The frequent sweep over waiting texts: scheduled and held texts whose time has come go to the send
queue, and texts whose worker stopped mid-send or whose job was lost are recovered.

It reads the `by-due` index (`parley.domain.views.due_entry`), where each message is keyed by when it
is next due, so a read up to now finds exactly the due ones, oldest first, however many later ones
wait (a campaign scheduled for next week, a backlog held for the morning). Each run reads at most
`max_per_partition` keys per partition, in pages, and stops early when its invocation runs short of
time or it has run for `MAX_RUN_SECONDS`; what it leaves is still due at the next run, ahead of
anything newer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from parley.domain.models import Message
from parley.ports import DueMessages
from parley.services.sending import LOST_JOB_AFTER, STUCK_SENDING_AFTER, SendService

PAGE = 100
MAX_PER_PARTITION = 1000
# Messages stored before the due index existed, moved into it per run until none are left.
LEGACY_PER_RUN = 500
# Left for the dead-letter drain and the gauges after the due passes, in seconds.
RESERVE_SECONDS = 20.0
# The due passes stop after this long, well inside the minute between runs, so two runs never overlap.
MAX_RUN_SECONDS = 40.0
# A queued, sending or retrying text is looked at this long after its key: before, it can be
# neither stuck nor lost (`SendService.recover_stuck` decides, from when it was last written).
RECOVER_AFTER = min(STUCK_SENDING_AFTER, LOST_JOB_AFTER)


@dataclass(frozen=True)
class SweepReport:
    released: int
    recovered: int
    reindexed: int
    read: int
    complete: bool  # False: the run stopped at its read or time limit with due messages left

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class DueSweep:
    def __init__(
        self,
        *,
        messages: DueMessages,
        sender: SendService,
        clock: Callable[[], datetime],
        page: int = PAGE,
        max_per_partition: int = MAX_PER_PARTITION,
    ) -> None:
        self._messages = messages
        self._sender = sender
        self._clock = clock
        self._page = page
        self._max = max_per_partition

    def run(self, time_left: Callable[[], float] | None = None) -> SweepReport:
        """One sweep. `time_left` gives the invocation's remaining seconds (None: no limit)."""
        started = time.monotonic()
        reindexed = self._messages.reindex_legacy(limit=LEGACY_PER_RUN)
        now = self._clock()
        read = 0
        complete = True
        counts = {"released": 0, "recovered": 0}
        passes: list[tuple[str, datetime, Callable[[list[Message]], int], str]] = [
            ("scheduled", now, self._sender.release_due, "released"),
            ("held", now, self._sender.release_due, "released"),
            ("pending", now - RECOVER_AFTER, self._sender.recover_stuck, "recovered"),
        ]
        for partition, until, step, counted in passes:
            cursor: str | None = None
            taken = 0
            while True:
                out_of_time = time_left is not None and time_left() < RESERVE_SECONDS
                if out_of_time or time.monotonic() - started > MAX_RUN_SECONDS:
                    complete = False
                    break
                page = self._messages.list_due(
                    partition, until=until, limit=min(self._page, self._max - taken), cursor=cursor
                )
                taken += len(page.items)
                counts[counted] += step(page.items)
                cursor = page.cursor
                if cursor is None:
                    break
                if taken >= self._max:
                    complete = False
                    break
            read += taken
        return SweepReport(
            released=counts["released"],
            recovered=counts["recovered"],
            reindexed=reindexed,
            read=read,
            complete=complete,
        )
