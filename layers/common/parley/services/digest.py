"""The CRM digest: one record per contact per day, holding all of that day's texts, safe to run any
number of times.

The CRM record is keyed by (record, day) as its external id (by (customer number, day) for a
conversation linked to no record), and we keep a hash of what we last posted: an unchanged day
posts nothing, a day that gained a late message or a new status updates the same record. A record
with several numbers gets one record a day holding the texts of all its conversations. Each
conversation's entry for the day keeps the external id its day was posted under, so the day stays
that one CRM record when the conversation is linked to another record later (`_target`).

A run fans out in shard jobs (`ShardJob`), each a page of one shard's conversations that hands on a
cursor, so any number of active conversations fits Lambda's limits; its cost grows with the day's
active conversations, never with the tables. Progress is counted per day (`DigestRun`).

Auto-log (`parley.domain.models.AutoLog`, per user and per our number) decides whether the nightly
run logs a conversation, and whether each message logs its day at once (`on_activity`); a person
can always ask for one conversation's day (`log_day`).

A conversation that is linked to no record while several records tie for its number (see
`parley.domain.routing`) is not posted: its day is held as a conflict (`conflict_id`), listed for a
person to pick the record. Picking one (`resolve`) links the conversation, so that day is posted at
once (or retried through the job queue if the CRM is down) and every later day goes to the same
record; its other days held are resolved with it. A conflict whose conversation got linked otherwise
is settled by that link when its day is posted, and a day tied again after it was resolved is held
again (the conflict reopens).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
import re
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from parley.access import Caller
from parley.domain.models import (
    AutoLog,
    ContactRecord,
    Conversation,
    Message,
    MessageStatus,
    OurNumber,
    day_of,
    effective_auto_log,
)
from parley.domain.phone import mask
from parley.domain.routing import route
from parley.ports import (
    AutoLogSettings,
    Clock,
    ConflictCandidate,
    ConflictEntry,
    ConflictRepository,
    ContactRepository,
    ConversationLinker,
    ConversationRepository,
    DigestEntry,
    DigestRepository,
    DigestRun,
    DigestRunRepository,
    JobQueue,
    MessageRepository,
    NumberRepository,
    Page,
    RunPage,
)

logger = logging.getLogger(__name__)


class CrmUpsert(Protocol):
    crm_id: str
    created: bool


class Crm(Protocol):
    def upsert(self, external_id: str, payload: dict[str, Any]) -> Any: ...


RETRY_DELAY_SECONDS = 60  # then the queue's visibility timeout spaces the tries, until its DLQ

COUNTS = (
    "conversations",
    "created",
    "updated",
    "unchanged",
    "conflicts",
    "skipped",
    "merged",
    "no_texts",
    "expired",
    "failed",
)


@dataclass
class DigestReport:
    day: str
    conversations: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    conflicts: int = 0  # days held for a person to pick the record
    skipped: int = 0  # auto-log off: nothing logged until a person asks
    merged: int = 0  # posted with another number of the same record
    no_texts: int = 0  # the conversation had no texts that day
    expired: int = 0  # retention blanked the day's texts: the CRM keeps what it was sent
    failed: list[dict[str, str]] = field(default_factory=list)
    # customer numbers whose day failed transiently, and how long the CRM asked us to wait (or 0)
    retry: list[tuple[str, float]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {name: len(self.failed) if name == "failed" else getattr(self, name) for name in COUNTS}

    def add(self, other: DigestReport) -> None:
        for name in COUNTS[:-1]:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failed.extend(other.failed)
        self.retry.extend(other.retry)

    def as_dict(self) -> dict[str, Any]:
        return {"day": self.day, **self.counts(), "failed": self.failed}

    def log_fields(self) -> dict[str, Any]:
        """The same figures under names that don't collide with LogRecord's own (`created`)."""
        return {f"digest_{key}": value for key, value in self.as_dict().items()}


@dataclass(frozen=True)
class ShardJob:
    """One page of one shard of a day's run; `after` is the last conversation a job before did,
    `run` the run it belongs to and `seq` its place in the shard (a job without `run` is older than
    run ids, and counts as jobs did then)."""

    day: str
    shard: int
    after: str | None = None
    run: str | None = None
    seq: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": "digest-shard",
            "day": self.day,
            "shard": self.shard,
            "after": self.after,
            "run": self.run,
            "seq": self.seq,
        }

    @classmethod
    def parse(cls, body: dict[str, Any]) -> ShardJob:
        date.fromisoformat(str(body["day"]))
        return cls(
            day=str(body["day"]),
            shard=int(body["shard"]),
            after=body.get("after") or None,
            run=str(body["run"]) if body.get("run") else None,
            seq=int(body.get("seq") or 0),
        )

    def next(self, after: str | None) -> ShardJob:
        """The job that goes on from `after`."""
        return ShardJob(self.day, self.shard, after, self.run, self.seq + 1)


@dataclass(frozen=True)
class ResolveOutcome:
    conflict: ConflictEntry
    logged: bool  # False: the choice is saved; the day is retried through the job queue
    error: str | None = None


_SLUG = re.compile(r"[A-Za-z0-9_-]{1,64}")


def digest_key(subject: str, day: str) -> str:
    """`rec#<record id>#<day>`, or `<customer number>#<day>` for a conversation with no record."""
    return f"{subject}#{day}" if subject.startswith("+") else f"rec#{subject}#{day}"


def external_id(subject: str, day: str) -> str:
    """Stable at the CRM across re-runs, and safe in any CRM's URL: the record id (hashed when it
    has other characters), or the customer number's digits."""
    if subject.startswith("+"):
        slug = subject.lstrip("+")
    elif _SLUG.fullmatch(subject):
        slug = subject
    else:
        slug = "h" + hashlib.sha256(subject.encode()).hexdigest()[:24]
    return f"parley-sms-{slug}-{day}"


def conflict_id(customer_number: str, day: str) -> str:
    """Stable across re-runs, and safe in a URL path."""
    return f"conflict-{customer_number.lstrip('+')}-{day}"


class ConflictNotFound(LookupError):
    """No conflict with this id that the caller sees (404)."""


class ConflictAlreadyResolved(Exception):
    """The conflict was resolved with another record (409)."""


class DayPastRetention(ValueError):
    """The day's texts are blanked by retention, or will be tonight (400)."""


class CrmLogFailed(Exception):
    """The CRM refused a day logged as its messages came; the job queue tries it again."""


@dataclass
class _Day:
    """What one CRM record of a day holds: its subject (record or number) and its texts."""

    subject: str
    numbers: list[str]
    messages: list[Message]
    record: ContactRecord | None


class DigestService:
    def __init__(
        self,
        *,
        messages: MessageRepository,
        contacts: ContactRepository,
        digests: DigestRepository,
        crm: Crm,
        shards: int,
        clock: Clock,
        conversations: ConversationRepository | None = None,
        conflicts: ConflictRepository | None = None,
        linker: ConversationLinker | None = None,
        runs: DigestRunRepository | None = None,
        jobs: JobQueue | None = None,
        numbers: NumberRepository | None = None,
        auto_log: AutoLogSettings | None = None,
        auto_log_default: AutoLog = AutoLog.NIGHTLY,
        page_size: int = 200,
        timezone: str = "UTC",
    ) -> None:
        self._messages = messages
        self._contacts = contacts
        self._digests = digests
        self._crm = crm
        self._shards = shards
        self._clock = clock
        self._conversations = conversations
        self._conflicts = conflicts
        self._linker = linker
        self._runs = runs
        self._jobs = jobs
        self._numbers = numbers
        self._auto_log = auto_log
        self._auto_log_default = auto_log_default
        self._page_size = page_size
        self._timezone = timezone

    # -- a day's run: fanned out in shard jobs ---------------------------------------------------------

    def start(self, day: date) -> list[ShardJob]:
        """Begin the day's run (its progress at zero, under a new run id) and answer the first job of
        every shard. Jobs still queued from an earlier start of the day then count nowhere."""
        day_text = day.isoformat()
        run_id = None
        if self._runs is not None:
            run_id = self._runs.start(day_text, self._shards, self._clock()).run_id
        logger.info("digest run started", extra={"day": day_text, "shards": self._shards, "run": run_id})
        return [ShardJob(day_text, shard, run=run_id) for shard in range(self._shards)]

    def work(
        self, job: ShardJob, *, out_of_time: Callable[[], bool] | None = None
    ) -> tuple[DigestReport, ShardJob | None]:
        """Log one page of the shard's conversations; answer what it did and the job that goes on.

        `out_of_time` is asked before each conversation: once it answers True the page ends there,
        is counted, and the job that goes on starts after the last conversation done. A job of a run
        started again since does nothing; a job delivered again once its page is counted only hands
        on the next job, if that was not sent yet."""
        report = DigestReport(day=job.day)
        if job.run is not None and self._runs is not None:
            progress = self._runs.shard(job.day, job.run, job.shard)
            if progress is None:
                logger.info("digest job of an earlier run: dropped", extra={"day": job.day, "run": job.run})
                return report, None
            if progress.recorded >= job.seq:
                resend = progress.recorded == job.seq and progress.handed_on < job.seq and not progress.done
                logger.info(
                    "digest page counted already",
                    extra={"shard": job.shard, "seq": job.seq, "resend": resend},
                )
                return report, job.next(progress.following) if resend else None
        numbers, after = self._messages.day_conversations(
            job.day, job.shard, after=job.after, limit=self._page_size
        )
        lookups = _Lookups(self._numbers, self._auto_log)
        done, stopped = job.after, False
        for customer_number in numbers:
            if out_of_time is not None and out_of_time():
                stopped = True
                break
            report.conversations += 1
            self._log(customer_number, job.day, report, lookups, nightly=True)
            done = customer_number
        retrying: list[str] = []
        if self._jobs is not None:  # a CRM outage or rate limit: the queue tries the day again later
            for customer_number, asked in report.retry:
                delay = max(RETRY_DELAY_SECONDS, math.ceil(asked))  # SQS caps it at 15 minutes
                self._jobs.send(log_job(customer_number, job.day, run=job.run), delay_seconds=delay)
                retrying.append(customer_number)
        following = job.next(done) if stopped else job.next(after) if after is not None else None
        if self._runs is not None:
            page = None
            if job.run is not None:
                page = RunPage(job.run, job.shard, job.seq, following.after if following else None)
            counted = self._runs.record(
                job.day,
                report.counts(),
                report.failed[:20],
                shard_done=following is None,
                page=page,
                retrying=retrying,
            )
            if not counted:  # another delivery of this job counted it, or the day's run started again
                logger.info("digest page not counted", extra={"shard": job.shard, "seq": job.seq})
                following = None
        logger.info(
            "digest page done",
            extra={
                "shard": job.shard,
                "more": following is not None,
                "out_of_time": stopped,
                **report.log_fields(),
            },
        )
        return report, following

    def handed_on(self, job: ShardJob) -> None:
        """The job after `job` is on the queue: another delivery of `job` need not send it again."""
        if job.run is not None and self._runs is not None:
            self._runs.handed_on(job.day, job.run, job.shard, job.seq)

    def run(self, day: date) -> DigestReport:
        """The whole day in this process, job after job (tests, benches, small stacks)."""
        total = DigestReport(day=day.isoformat())
        for first in self.start(day):
            job: ShardJob | None = first
            while job is not None:
                report, job = self.work(job)
                total.add(report)
        logger.info("digest finished", extra=total.log_fields())
        return total

    def progress(self, day: date) -> DigestRun | None:
        assert self._runs is not None, "no run store wired"
        return self._runs.get(day.isoformat())

    # -- one conversation's day, on request or as its messages come -------------------------------------

    def log_day(self, customer_number: str, day: date) -> DigestReport:
        """A person asks for this conversation's day: logged whatever auto-log says."""
        report = DigestReport(day=day.isoformat(), conversations=1)
        self._log(customer_number, day.isoformat(), report, _Lookups(self._numbers, self._auto_log))
        return report

    def log_again(self, customer_number: str, day: date, run: str | None) -> DigestReport:
        """A day the CRM refused during run `run`, tried again from the job queue: once it is logged,
        the run counts it so instead of failed (once, however often the job comes)."""
        report = self.log_day(customer_number, day)
        if run is not None and self._runs is not None and not report.failed:
            moved = {
                name: n
                for name, n in report.counts().items()
                if n and name not in ("conversations", "failed")
            }
            if self._runs.retried(day.isoformat(), run, customer_number, moved):
                logger.info(
                    "digest retry counted in its run",
                    extra={"customer": mask(customer_number), "counted_as": sorted(moved)},
                )
        return report

    # -- retention: a day whose texts are blanked is not posted again --------------------------------

    def keep_retention(self, days: int) -> None:
        """RetentionDays, as the Retention sweep is about to blank texts with it, for `check_kept`."""
        if self._runs is not None:
            self._runs.keep_retention(days)

    def check_kept(self, day: date) -> None:
        """Raise DayPastRetention for a day the Retention sweep blanks (or has blanked): its CRM record
        would be replaced by one with empty texts."""
        days = self._runs.retention_days() if self._runs is not None else None
        if not days:  # no sweep yet, or bodies kept forever
            return
        today = self._clock().astimezone(ZoneInfo(self._timezone)).date()
        oldest = today - timedelta(days=days - 1)
        if day < oldest:
            raise DayPastRetention(
                f"'day' {day} is past retention: texts are kept {days} days (RetentionDays), so their "
                f"bodies are blanked up to {oldest - timedelta(days=1)} and the CRM keeps what it was sent; "
                f"the oldest day that can be logged is {oldest}"
            )

    def on_activity(self, message_id: str) -> str:
        """A message was stored or changed: log its day now if auto-log says `immediate`.

        Answers what happened, for the log line: 'logged', 'not immediate', 'unknown message'...
        """
        message = self._messages.get(message_id)
        if message is None:
            return "unknown message"
        conversation = self._conversation(message.customer_number)
        lookups = _Lookups(self._numbers, self._auto_log)
        if self._mode(conversation, lookups) is not AutoLog.IMMEDIATE:
            return "not immediate"
        day = day_of(message.created_at, self._timezone)
        report = DigestReport(day=day)
        self._log(message.customer_number, day, report, lookups)
        if report.failed:
            raise CrmLogFailed(report.failed[0]["reason"])  # the queue retries it
        return "logged" if report.created or report.updated else "unchanged"

    # -- the work -------------------------------------------------------------------------------------

    def _log(
        self,
        customer_number: str,
        day: str,
        report: DigestReport,
        lookups: _Lookups,
        *,
        nightly: bool = False,
    ) -> None:
        conversation = self._conversation(customer_number)
        if nightly and self._mode(conversation, lookups) is AutoLog.OFF:
            report.skipped += 1
            return
        record, tied = self._record_for(customer_number, conversation, lookups)
        if conversation is not None and tied and self._conflicts is not None:
            self._hold(customer_number, day, conversation.team, tied)
            report.conflicts += 1
            return
        the_day = self._gather(customer_number, day, record, lookups, defer_to_first=nightly)
        if the_day is None:
            report.merged += 1
            return
        the_day.messages = [m for m in the_day.messages if in_crm_log(m)]
        if not the_day.messages:
            report.no_texts += 1
            return
        if any(m.expired_at is not None for m in the_day.messages):
            report.expired += 1  # posting it would replace the CRM's copy with blank texts
            return
        self._post(the_day, day, report)

    def _record_for(
        self, customer_number: str, conversation: Conversation | None, lookups: _Lookups
    ) -> tuple[ContactRecord | None, list[str]]:
        """The record a conversation's day goes to, or the records tied for its number (none linked).

        The record the conversation is linked to, while that record still has the number. Otherwise
        the records with the number decide, by the routing rules (`parley.domain.routing`, for our
        number it last used): the one they pick, or, when several tie, those (the ones inbound
        routing kept, if it found a tie). A conversation linked to a record that has since dropped
        its number is routed again, never posted into that record."""
        if conversation is not None and conversation.contact_id:
            linked = self._contacts.get(conversation.contact_id)
            if linked is not None and customer_number in linked.phones:
                return linked, []
        elif conversation is not None and conversation.conflict_candidates:
            return None, list(conversation.conflict_candidates)
        found = self._contacts.find_by_phone(customer_number)
        our = lookups.our(conversation.last_our_number) if conversation is not None else None
        routing = route(found, number=our)
        return routing.record, routing.tied_ids

    def _gather(
        self,
        customer_number: str,
        day: str,
        record: ContactRecord | None,
        lookups: _Lookups,
        *,
        defer_to_first: bool,
    ) -> _Day | None:
        """The day's texts for one CRM record: this conversation's, and those of the record's other
        numbers whose conversations go to it too (`_record_for`) and are logged (auto-log not `off`;
        an `off` one only if its day was logged already, on request). None: another of its numbers
        is logged by the nightly run and comes first in it, so it posts them all."""
        if record is None:
            only = self._messages.list_conversation_day(customer_number, day)
            return _Day(customer_number, [customer_number], only, None)
        numbers = [customer_number]
        messages: list[Message] = []
        for other in sorted(set(record.phones) - {customer_number}):
            linked = self._conversation(other)
            if linked is None:
                continue
            if linked.contact_id != record.contact_id:
                goes_to, _ = self._record_for(other, linked, lookups)
                if goes_to is None or goes_to.contact_id != record.contact_id:
                    continue
            theirs = self._messages.list_conversation_day(other, day)
            if not theirs:
                continue
            nightly = self._mode(linked, lookups) is not AutoLog.OFF
            if not nightly and self._digests.get(digest_key(other, day)) is None:
                continue  # auto-log off, and nobody asked for its day
            if defer_to_first and nightly and other < customer_number:
                return None
            numbers.append(other)
            messages.extend(theirs)
        messages.extend(self._messages.list_conversation_day(customer_number, day))
        return _Day(record.contact_id, sorted(numbers), messages, record)

    def _post(self, the_day: _Day, day: str, report: DigestReport) -> None:
        the_day.messages.sort(key=lambda m: (m.created_at, m.message_id))
        payload = self._payload(the_day, day)
        content_hash = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        target, previous, kept = self._target(the_day, day)
        if previous is not None and previous.content_hash == content_hash:
            if not kept:  # posted before each conversation's entry kept its external id: keep it now
                self._remember(the_day, day, previous, target)
            report.unchanged += 1
            return
        try:
            result = self._crm.upsert(target, payload)
        except Exception as exc:  # one record's failure must not stop the others
            reason = getattr(exc, "reason", None) or str(exc)
            transient = bool(getattr(exc, "transient", True))
            logger.error(
                "digest record failed",
                extra={
                    "customer": mask(the_day.numbers[0]),
                    "day": day,
                    "reason": reason,
                    "transient": transient,
                },
            )
            report.failed.append({"customer_number": the_day.numbers[0], "day": day, "reason": reason})
            if transient:
                report.retry.append((the_day.numbers[0], float(getattr(exc, "retry_after", None) or 0)))
            return
        posted = DigestEntry(
            digest_key=digest_key(the_day.subject, day),
            crm_id=result.crm_id,
            content_hash=content_hash,
            version=(previous.version + 1) if previous else 1,
            posted_at=self._clock(),
            message_count=len(the_day.messages),
        )
        self._remember(the_day, day, posted, target)
        if previous is None:
            report.created += 1
        else:
            report.updated += 1
        self._close_held(the_day, day)

    def _target(self, the_day: _Day, day: str) -> tuple[str, DigestEntry | None, bool]:
        """The external id the day goes to at the CRM, the entry of what was last posted there, and
        whether that entry is a conversation's with its external id (False: the record's own entry,
        or one written before external ids were kept).

        Once a conversation's day is posted, it stays with that CRM record when the conversation is
        linked to another record later (add contact on a lead or a bare number, a record made for
        the number, a resolved conflict): the record is updated with the new subject and contact,
        never posted twice. A record of several numbers posts one record a day; a number's entry is
        followed only when every conversation that record holds is in this day's, so a number that
        moved to another record does not take the old record's day (and its other texts) with it.
        """
        natural = external_id(the_day.subject, day)
        entries = {n: self._digests.get(digest_key(n, day)) for n in the_day.numbers}
        # an entry from before external ids were kept has this key only for a day posted under the number
        posted = {n: e.external_id or external_id(n, day) for n, e in entries.items() if e is not None}
        followed: list[tuple[str, DigestEntry]] = []
        for number, target in posted.items():
            entry = entries[number]
            assert entry is not None
            if list(posted.values()).count(target) >= entry.conversations:
                followed.append((target, entry))
        followed.sort(key=lambda found: found[0] != natural)  # the subject's own record first
        if followed:
            target, entry = followed[0]
            return target, entry, entry.external_id is not None
        if the_day.subject in the_day.numbers:
            return natural, None, True
        return natural, self._digests.get(digest_key(the_day.subject, day)), False

    def _remember(self, the_day: _Day, day: str, posted: DigestEntry, target: str) -> None:
        """The entry of each conversation of the day, with the external id it went to, and the
        record's own (with no external id: that may carry a customer number, and a record's entries
        are kept when a customer's data is erased)."""
        shared = len(the_day.numbers)
        for number in the_day.numbers:
            key = digest_key(number, day)
            self._digests.save(replace(posted, digest_key=key, external_id=target, conversations=shared))
        if the_day.subject not in the_day.numbers:
            key = digest_key(the_day.subject, day)
            self._digests.save(replace(posted, digest_key=key, external_id=None, conversations=shared))

    def _close_held(self, the_day: _Day, day: str) -> None:
        """The day is in the CRM under a record: a conflict still open for it (held before routing,
        add contact or another day's resolve linked the conversation) is settled by that link, so
        the conflict list does not show a day already posted."""
        if self._conflicts is None or the_day.record is None:
            return
        for number in the_day.numbers:
            held = self._conflicts.get(conflict_id(number, day))
            if held is not None and not held.resolved:
                self._settle(held, the_day.subject, by=BY_LINK)

    def _conversation(self, customer_number: str) -> Conversation | None:
        return self._conversations.get(customer_number) if self._conversations else None

    def _mode(self, conversation: Conversation | None, lookups: _Lookups) -> AutoLog:
        if conversation is None:
            return self._auto_log_default
        choices = [lookups.user(conversation.owner)] + [lookups.number(n) for n in conversation.our_numbers]
        return effective_auto_log(choices, self._auto_log_default)

    # -- conflicts: listed for a person, resolved by picking a record --------------------------------

    def _hold(self, customer_number: str, day: str, team: str, candidate_ids: list[str]) -> None:
        assert self._conflicts is not None
        key = conflict_id(customer_number, day)
        held = self._conflicts.get(key)
        if held is not None and not held.resolved:  # held on an earlier run: keep when it was found
            return
        candidates = []
        for record_id in sorted(candidate_ids):
            record = self._contacts.get(record_id)
            candidates.append(
                ConflictCandidate(
                    record_id=record_id,
                    name=record.name if record else record_id,
                    record_type=record.record_type if record else "unknown",
                    owner=record.owner if record else None,
                )
            )
        entry = ConflictEntry(
            conflict_id=key,
            customer_number=customer_number,
            day=day,
            team=team,
            candidates=tuple(candidates),
            found_at=self._clock(),
        )
        if held is None:
            self._conflicts.add(entry)
            logger.info(
                "digest day held as a conflict", extra={"customer": mask(customer_number), "day": day}
            )
            return
        # Resolved before, and tied again since (the record picked lost the number): the day is
        # held again under the same id, with the records tied now, for a person to pick again.
        if not self._conflicts.reopen(entry):
            return
        logger.info("digest conflict reopened", extra={"customer": mask(customer_number), "day": day})
        now = self._conversation(customer_number)
        if now is not None and now.contact_id:  # a resolve linked it while this run held the day
            self._settle(entry, now.contact_id, by=BY_LINK)

    def open_conflicts(
        self, teams: AbstractSet[str], *, limit: int, cursor: str | None
    ) -> Page[ConflictEntry]:
        """The open conflicts of `teams`, one team after another (each newest found first): the
        store is indexed by team, so each page reads at most `limit` items whatever the teams."""
        assert self._conflicts is not None, "no conflict store wired"
        ordered = sorted(teams)
        index, inner = _teams_cursor(cursor, ordered)
        items: list[ConflictEntry] = []
        while index < len(ordered) and len(items) < limit:
            page = self._conflicts.list_open(ordered[index], limit=limit - len(items), cursor=inner)
            items += page.items
            if page.cursor is not None:
                return Page(items, _encode_teams_cursor(ordered[index], page.cursor))
            index, inner = index + 1, None
        more = index < len(ordered)
        return Page(items, _encode_teams_cursor(ordered[index], None) if more else None)

    def resolve(self, conflict: str, record_id: str, *, user: str, caller: Caller) -> ResolveOutcome:
        """Link the conversation to `record_id` (one of the candidates), mark the conflict resolved
        and post that day to the CRM now (the same idempotent upsert as the nightly run). The
        conversation's other open conflicts (its other days held while it was tied) are resolved by
        the same choice and their days posted too: every day of a linked conversation goes to its
        record, so none of them is left in the list.

        The choice is kept even when the CRM refuses the day: the day then goes to the job queue,
        which tries again with backoff, so nobody has to pick twice. Resolving again with the same
        record answers the resolved conflict (idempotent); with another raises ConflictAlreadyResolved,
        as does a resolve that loses to another one made at the same time (the first one stored wins).
        A conflict whose conversation was linked to a record since (routing, add contact) is settled
        by that link: resolving it with that record logs the day, with another raises
        ConflictAlreadyResolved, saying why (the day is logged to the linked record and the conflict
        closed).
        """
        assert self._conflicts is not None and self._linker is not None, "no conflict store wired"
        entry = self._conflicts.get(conflict)
        if entry is None or not caller.sees(entry.team):
            raise ConflictNotFound(f"no conflict {conflict!r}")
        if entry.resolved:
            return _settled(entry, record_id)
        candidate_ids = [c.record_id for c in entry.candidates]
        if record_id not in candidate_ids:
            raise ValueError(
                f"'record_id' must be one of the candidates ({', '.join(candidate_ids)}), not {record_id!r}"
            )
        conversation = self._conversation(entry.customer_number)
        linked = None
        if conversation is not None and conversation.contact_id:
            linked = self._contacts.get(conversation.contact_id)  # None: that record is gone, pick again
            if linked is not None and entry.customer_number not in linked.phones:
                linked = None  # that record dropped the number: the link no longer holds, pick again
        if linked is not None and conversation is not None and linked.contact_id != record_id:
            settled = self._settle(entry, linked.contact_id, by=BY_LINK)
            if settled is None:  # resolved meanwhile
                return _settled(self._conflicts.get(conflict) or entry, record_id)
            error = self._log_now(entry.customer_number, entry.day)
            logged = "is logged" if error is None else f"will be logged (the CRM refused it for now: {error})"
            why = conversation.routing_reason or "routing"
            raise ConflictAlreadyResolved(
                f"conflict {conflict!r} is settled by the conversation's link: it is linked to "
                f"{linked.contact_id!r} since the day was held ({why}), so its days "
                f"go to that record and this one {logged} there; it cannot be logged to {record_id!r}"
            )
        record = linked or self._contacts.get(record_id)
        if record is None:
            raise ValueError(f"record {record_id!r} no longer exists; pick another candidate")
        resolved = self._settle(entry, record_id, by=user)
        if resolved is None:  # another resolve was stored first
            return _settled(self._conflicts.get(conflict) or entry, record_id)
        if linked is None:
            self._linker.link(
                entry.customer_number, contact_id=record_id, owner=record.owner, reason=f"chosen by {user}"
            )
        others = self._settle_others(resolved)
        logger.info(
            "digest conflict resolved",
            extra={
                "customer": mask(entry.customer_number),
                "day": entry.day,
                "record_id": record_id,
                "other_days": len(others),
            },
        )
        error = self._log_now(entry.customer_number, entry.day)
        for other in others:
            self._log_now(other.customer_number, other.day)
        return ResolveOutcome(resolved, logged=error is None, error=error)

    def _settle(self, entry: ConflictEntry, record_id: str, *, by: str) -> ConflictEntry | None:
        """Mark the conflict resolved with `record_id`, if it is still open (None: it is not)."""
        assert self._conflicts is not None
        resolved = replace(entry, resolved_at=self._clock(), resolved_by=by, record_id=record_id)
        return resolved if self._conflicts.resolve(resolved) else None

    def _settle_others(self, resolved: ConflictEntry) -> list[ConflictEntry]:
        """The conversation's other open conflicts, resolved as `resolved` was. It reads the team's
        open conflicts (the list a person works down), all of them before changing any."""
        assert self._conflicts is not None
        found: list[ConflictEntry] = []
        cursor: str | None = None
        while True:
            page = self._conflicts.list_open(resolved.team, limit=100, cursor=cursor)
            found += [
                c
                for c in page.items
                if c.customer_number == resolved.customer_number and c.conflict_id != resolved.conflict_id
            ]
            cursor = page.cursor
            if cursor is None:
                break
        assert resolved.record_id is not None and resolved.resolved_by is not None
        settled = [self._settle(c, resolved.record_id, by=resolved.resolved_by) for c in found]
        return [c for c in settled if c is not None]

    def _log_now(self, customer_number: str, day: str) -> str | None:
        """Post a day a conflict held; when the CRM refuses it, queue it to be tried again and
        answer why."""
        report = self.log_day(customer_number, date.fromisoformat(day))
        if not report.failed:
            return None
        if self._jobs is not None:
            self._jobs.send(log_job(customer_number, day), delay_seconds=RETRY_DELAY_SECONDS)
        return report.failed[0]["reason"]

    # -- what the CRM gets ----------------------------------------------------------------------------

    def _payload(self, the_day: _Day, day: str) -> dict[str, Any]:
        """The day's record. Only texts of the conversation are in it (`in_crm_log`). A text with
        attachments lists them as `media`, their types only: the carrier's links expire and ours
        need a Parley sign-in, so the CRM gets no link."""
        record = the_day.record
        name = record.name if record else the_day.numbers[0]
        messages = [m for m in the_day.messages if in_crm_log(m)]
        lines = []
        for m in messages:
            line: dict[str, Any] = {
                "message_id": m.message_id,
                "direction": m.direction.value,
                "at": m.created_at.isoformat(),
                "from": m.customer_number if m.direction.value == "inbound" else m.our_number,
                "to": m.our_number if m.direction.value == "inbound" else m.customer_number,
                "body": m.body,
                "status": m.status.value,
            }
            if m.media:  # only then, so a day without attachments posts what it always did
                line["media"] = [{"content_type": medium.content_type} for medium in m.media]
            lines.append(line)
        return {
            "type": "sms_digest",
            "day": day,
            "customer_number": the_day.numbers[0],
            "customer_numbers": the_day.numbers,
            "contact_id": record.contact_id if record else None,
            "crm_contact_id": record.crm_id if record else None,
            "subject": f"SMS with {name} on {day}",
            "message_count": len(messages),
            "messages": lines,
        }


def _encode_teams_cursor(team: str, inner: str | None) -> str:
    return base64.urlsafe_b64encode(json.dumps({"team": team, "cursor": inner}).encode()).decode()


def _teams_cursor(cursor: str | None, teams: list[str]) -> tuple[int, str | None]:
    """Where a page of several teams' conflicts starts: the team's index, and the store's cursor in it.
    A cursor of teams the caller no longer has (or not ours) is refused (400), never followed."""
    if cursor is None:
        return 0, None
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, binascii.Error, RecursionError) as exc:
        raise ValueError("cursor is not valid") from exc
    if (
        not isinstance(data, dict)
        or data.get("team") not in teams
        or not (data.get("cursor") is None or isinstance(data.get("cursor"), str))
    ):
        raise ValueError("cursor is not valid")
    return teams.index(data["team"]), data["cursor"]


BY_LINK = "the conversation's link"  # `resolved_by` of a conflict settled by the conversation's record


def _settled(entry: ConflictEntry, record_id: str) -> ResolveOutcome:
    """A resolve of a conflict resolved already: answered as it is with the same record, refused
    with another."""
    if entry.record_id == record_id:
        return ResolveOutcome(entry, logged=True)
    raise ConflictAlreadyResolved(
        f"conflict {entry.conflict_id!r} was already resolved with {entry.record_id!r} by {entry.resolved_by}"
    )


def log_job(customer_number: str, day: str, *, run: str | None = None) -> dict[str, Any]:
    """A job-queue body asking for one conversation's day (a retry after the CRM refused it), with
    the run that counted it failed, if any."""
    body = {"kind": "digest-log", "customer_number": customer_number, "day": day}
    return {**body, "run": run} if run is not None else body


class _Lookups:
    """Auto-log choices read once per job: users and numbers repeat across conversations."""

    def __init__(self, numbers: NumberRepository | None, users: AutoLogSettings | None) -> None:
        self._numbers = numbers
        self._users = users
        self._ours: dict[str, OurNumber | None] = {}
        self._user_modes: dict[str, AutoLog | None] = {}

    def our(self, number: str | None) -> OurNumber | None:
        if self._numbers is None or not number:
            return None
        if number not in self._ours:
            self._ours[number] = self._numbers.get(number)
        return self._ours[number]

    def number(self, number: str) -> AutoLog | None:
        found = self.our(number)
        return found.auto_log if found else None

    def user(self, user: str | None) -> AutoLog | None:
        if self._users is None or not user:
            return None
        if user not in self._user_modes:
            mode = self._users.get_user(user)
            self._user_modes[user] = AutoLog(mode) if mode else None
        return self._user_modes[user]


_NEVER_SENT = frozenset({MessageStatus.SUPPRESSED, MessageStatus.CANCELED})


def in_crm_log(message: Message) -> bool:
    """Whether a text belongs in the CRM's record of the conversation: not one that never reached
    the customer (suppressed, canceled) nor one a person deleted."""
    return message.deleted_at is None and message.status not in _NEVER_SENT
