"""The digest's queue side: starting a day's run as shard jobs, and working the jobs that arrive.

Three kinds of body reach the digest queue: a page of one shard of a run (`digest-shard`), one
conversation's day to log again after the CRM refused it (`digest-log`), and the domain events of
the bus (MessageReceived, MessageSent, MessageDelivered, MessageFailed), which log a day at once
where auto-log says `immediate`. A job that fails is left on the queue (a partial batch failure):
SQS hands it back after the visibility timeout, and after a few tries it rests in the queue's DLQ.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from parley.domain.phone import mask
from parley.observability import bind_correlation_id
from parley.ports import JobQueue
from parley.services.digest import DigestReport, DigestService, ShardJob

logger = logging.getLogger(__name__)

Count = Callable[[str, int], None]  # a metric name and a count
OVERDUE_AFTER = timedelta(hours=2)  # a nightly run still unfinished this long after it started is stuck
# Time a shard job keeps back when it starts another conversation: one conversation's CRM calls (a
# HubSpot record makes two, each up to the CRM timeout), then counting the page and queueing the next.
RESERVE_SECONDS = 60.0


class DigestJobs:
    def __init__(
        self,
        digest: DigestService,
        queue: JobQueue | None,
        *,
        timezone: str,
        lookback_days: int,
        count: Count | None = None,
        reserve_seconds: float = RESERVE_SECONDS,
    ) -> None:
        self._digest = digest
        self._queue = queue
        self._timezone = timezone
        self._lookback = lookback_days
        self._count = count or (lambda _name, _n: None)
        self._reserve_ms = reserve_seconds * 1000

    def nightly_days(self, now: datetime) -> list[date]:
        """Yesterday in the organisation's time zone, and the days before it that late messages and
        receipts may still change (an unchanged day costs reads and posts nothing)."""
        yesterday = now.astimezone(ZoneInfo(self._timezone)).date() - timedelta(days=1)
        return [yesterday - timedelta(days=back) for back in range(self._lookback, -1, -1)]

    def check_overdue(self, now: datetime) -> bool:
        """Report DigestRunIncomplete: 1 when yesterday's run started over two hours ago and is not
        done, else 0 (also when it never started: the nightly schedule's own failures alarm on that)."""
        yesterday = now.astimezone(ZoneInfo(self._timezone)).date() - timedelta(days=1)
        try:
            run = self._digest.progress(yesterday)
        except Exception:
            logger.exception("could not read the digest run's progress", extra={"day": yesterday.isoformat()})
            return False
        overdue = (
            run is not None
            and run.started_at is not None
            and not run.finished
            and now - run.started_at > OVERDUE_AFTER
        )
        self._count("DigestRunIncomplete", int(overdue))
        if overdue:
            logger.warning("yesterday's digest run is not finished", extra={"day": yesterday.isoformat()})
        return overdue

    def start(self, days: Iterable[date]) -> dict[str, Any]:
        """Queue every shard's first page; without a queue, run the days here and now."""
        started: list[str] = []
        jobs = 0
        for day in days:
            started.append(day.isoformat())
            for job in self._digest.start(day):
                jobs += 1
                if self._queue is not None:
                    self._queue.send(job.as_dict())
                else:
                    self._work_through(job)
        return {"days": started, "jobs": jobs, "queued": self._queue is not None}

    def _work_through(self, job: ShardJob | None) -> None:
        while job is not None:
            report, job = self._digest.work(job)
            self._measure(report)

    def handle(
        self,
        records: list[dict[str, Any]],
        parse: Callable[[str], Any],
        *,
        remaining_ms: Callable[[], int] | None = None,
    ) -> list[str]:
        """Work an SQS batch; answer the ids of the records to try again. `remaining_ms` is the time
        the invocation has left (the Lambda context's): shard jobs stop in time and hand on the rest."""
        out_of_time = None if remaining_ms is None else partial(self._out_of_time, remaining_ms)
        retry: list[str] = []
        for record in records:
            try:
                self._handle_one(parse(record["body"]), out_of_time)
            except Exception:
                logger.exception(
                    "digest job failed; the queue will hand it back", extra={"id": record.get("messageId")}
                )
                retry.append(record["messageId"])
        return retry

    def _out_of_time(self, remaining_ms: Callable[[], int]) -> bool:
        return remaining_ms() < self._reserve_ms

    def _handle_one(self, body: Any, out_of_time: Callable[[], bool] | None = None) -> None:
        if not isinstance(body, dict):
            raise ValueError(f"a digest job must be a JSON object, not {type(body).__name__}")
        kind = body.get("kind")
        detail = body["detail"] if isinstance(body.get("detail"), dict) else {}
        # a message event carries its journey's id; a run's jobs share the day's
        bind_correlation_id(
            detail.get("correlation_id") or (f"digest:{body['day']}" if body.get("day") else None)
        )
        if kind == "digest-shard":
            job = ShardJob.parse(body)
            report, following = self._digest.work(job, out_of_time=out_of_time)
            self._measure(report)
            if following is not None:
                if self._queue is None:
                    self._work_through(following)
                else:
                    self._queue.send(following.as_dict())
                    self._digest.handed_on(job)
        elif kind == "digest-log":
            number, day = str(body["customer_number"]), date.fromisoformat(str(body["day"]))
            report = self._digest.log_again(number, day, str(body["run"]) if body.get("run") else None)
            self._measure(report)
            if report.failed:
                raise RuntimeError(f"the CRM refused {mask(number)} on {day}: {report.failed[0]['reason']}")
        elif "detail-type" in body and isinstance(body.get("detail"), dict):
            message_id = body["detail"].get("message_id")
            if not message_id:
                raise ValueError(f"a {body['detail-type']} event without a message_id")
            outcome = self._digest.on_activity(str(message_id))
            logger.info("auto-log on activity", extra={"message_id": message_id, "outcome": outcome})
            if outcome in ("logged",):
                self._count("DigestRecordsPosted", 1)
        else:
            raise ValueError(f"not a digest job: kind {kind!r}")

    def _measure(self, report: DigestReport) -> None:
        counts = report.counts()
        posted = counts["created"] + counts["updated"]
        for name, value in (
            ("DigestConversations", counts["conversations"]),
            ("DigestRecordsPosted", posted),
            ("DigestConflicts", counts["conflicts"]),
            ("DigestRecordsFailed", counts["failed"]),
        ):
            if value:
                self._count(name, value)
