"""SQS batches that stop taking records before the invocation runs out of time.

Records are processed one at a time. When the time left can't cover one more worst-case record, the
rest are not started: they are reported as batch item failures, so SQS hands them out again after
the visibility timeout, and nothing is recorded on their messages (no attempt was made). Without
this, an invocation killed by its timeout returns no partial answer, and every record of the batch,
tried or not, comes back with its receive count raised.
"""

from __future__ import annotations

import logging
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType

from parley.carriers.http import CONNECT_TIMEOUT_SECONDS

logger = logging.getLogger(__name__)

# DynamoDB reads and writes, the rate limiter and the event around the carrier calls.
_OVERHEAD_SECONDS = 5.0


def worst_case_send_seconds(carrier_timeout_seconds: float) -> float:
    """One record at its slowest: an ambiguous last attempt's search, then the send, each allowed the
    connect timeout plus the carrier's read timeout."""
    return 2 * (CONNECT_TIMEOUT_SECONDS + carrier_timeout_seconds) + _OVERHEAD_SECONDS


class TimedBatchProcessor(BatchProcessor):
    """A `BatchProcessor` for SQS that leaves the records it has no time for to come back later."""

    def __init__(self, reserve_seconds: float) -> None:
        super().__init__(event_type=EventType.SQS)
        self.reserve_ms = reserve_seconds * 1000
        self.untaken = 0

    def process(self) -> list[tuple[Any, ...]]:
        self.untaken = 0
        return super().process()

    def _process_record(self, record: dict[str, Any]) -> tuple[str, Any, Any]:
        started = len(self.success_messages) + len(self.exceptions)
        # The first record is always taken, so every invocation moves its batch on.
        if self.untaken or (started and self._time_short()):
            self.untaken += 1
            # Reported like a failure, but not counted among the exceptions: the batch as a whole
            # hasn't failed, and the record was not tried.
            self.fail_messages.append(self._to_batch_type(record=record, event_type=self.event_type))
            if self.untaken == 1:
                logger.warning(
                    "too little time left for another record; the rest of the batch comes back later",
                    extra={"taken": started},
                )
            return ("fail", "not started: too little time left in this invocation", record)
        return super()._process_record(record)

    def _time_short(self) -> bool:
        context = getattr(self, "lambda_context", None)
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        return callable(remaining) and remaining() < self.reserve_ms
