"""The CRM digest: one record per contact per day, holding all of that day's texts, safe to run any
number of times.

The CRM record is keyed by (record, day) as its external id (by (customer number, day) for a
conversation linked to no record), and we keep a hash of what we last posted: an unchanged day
posts nothing, a day that gained a late message or a new status updates the same record. A record
with several numbers gets one record a day holding the texts of all its conversations.

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
record.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
import re
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

from parley.access import Caller
from parley.domain.models import (
    AutoLog,
    ContactRecord,
    Conversation,
    Message,
    day_of,
    effective_auto_log,
)
from parley.domain.phone import mask
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
)

logger = logging.getLogger(__name__)


class CrmUpsert(Protocol):
    crm_id: str
    created: bool


class Crm(Protocol):
    def upsert(self, external_id: str, payload: dict[str, Any]) -> Any: ...


RETRY_DELAY_SECONDS = 60  # then the queue's visibility timeout spaces the tries, until its DLQ

COUNTS = ("conversations", "created", "updated", "unchanged", "conflicts", "skipped", "merged", "failed")


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
    """One page of one shard of a day's run; `after` is the last conversation a job before did."""

    day: str
    shard: int
    after: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": "digest-shard", "day": self.day, "shard": self.shard, "after": self.after}

    @classmethod
    def parse(cls, body: dict[str, Any]) -> ShardJob:
        date.fromisoformat(str(body["day"]))
        return cls(day=str(body["day"]), shard=int(body["shard"]), after=body.get("after") or None)


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
        """Begin the day's run (its progress at zero) and answer the first job of every shard."""
        day_text = day.isoformat()
        if self._runs is not None:
            self._runs.start(day_text, self._shards, self._clock())
        logger.info("digest run started", extra={"day": day_text, "shards": self._shards})
        return [ShardJob(day_text, shard) for shard in range(self._shards)]

    def work(self, job: ShardJob) -> tuple[DigestReport, ShardJob | None]:
        """Log one page of the shard's conversations; answer what it did and the job that goes on."""
        numbers, after = self._messages.day_conversations(
            job.day, job.shard, after=job.after, limit=self._page_size
        )
        report = DigestReport(day=job.day)
        lookups = _Lookups(self._numbers, self._auto_log)
        for customer_number in numbers:
            report.conversations += 1
            self._log(customer_number, job.day, report, lookups, nightly=True)
        if self._jobs is not None:  # a CRM outage or rate limit: the queue tries the day again later
            for customer_number, asked in report.retry:
                delay = max(RETRY_DELAY_SECONDS, math.ceil(asked))  # SQS caps it at 15 minutes
                self._jobs.send(log_job(customer_number, job.day), delay_seconds=delay)
        following = ShardJob(job.day, job.shard, after) if after is not None else None
        if self._runs is not None:
            self._runs.record(job.day, report.counts(), report.failed[:20], shard_done=following is None)
        logger.info(
            "digest page done",
            extra={"shard": job.shard, "more": following is not None, **report.log_fields()},
        )
        return report, following

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
        if conversation is not None and _tied(conversation) and self._conflicts is not None:
            self._hold(customer_number, day, conversation.team, conversation.conflict_candidates)
            report.conflicts += 1
            return
        the_day = self._gather(customer_number, day, conversation, defer_to_first=nightly)
        if the_day is None:
            report.merged += 1
            return
        if not the_day.messages:
            return
        self._post(the_day, day, report)

    def _gather(
        self, customer_number: str, day: str, conversation: Conversation | None, *, defer_to_first: bool
    ) -> _Day | None:
        """The day's texts for one CRM record: this conversation's, and those of the record's other
        numbers whose conversations are linked to it. None: another of its numbers comes first in
        the run and posts them all."""
        record: ContactRecord | None = None
        if conversation is not None and conversation.contact_id:
            record = self._contacts.get(conversation.contact_id)
        elif conversation is None or not conversation.conflict_candidates:
            found = self._contacts.find_by_phone(customer_number)
            record = found[0] if len(found) == 1 else None
        if record is None:
            only = self._messages.list_conversation_day(customer_number, day)
            return _Day(customer_number, [customer_number], only, None)
        numbers = [customer_number]
        messages: list[Message] = []
        for other in sorted(set(record.phones) - {customer_number}):
            linked = self._conversation(other)
            if linked is None or linked.contact_id != record.contact_id:
                continue
            theirs = self._messages.list_conversation_day(other, day)
            if not theirs:
                continue
            if defer_to_first and other < customer_number:
                return None
            numbers.append(other)
            messages.extend(theirs)
        messages.extend(self._messages.list_conversation_day(customer_number, day))
        return _Day(record.contact_id, sorted(numbers), messages, record)

    def _post(self, the_day: _Day, day: str, report: DigestReport) -> None:
        the_day.messages.sort(key=lambda m: (m.created_at, m.message_id))
        payload = self._payload(the_day, day)
        content_hash = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        key = digest_key(the_day.subject, day)
        previous = self._digests.get(key)
        if previous is not None and previous.content_hash == content_hash:
            report.unchanged += 1
            return
        try:
            result = self._crm.upsert(external_id(the_day.subject, day), payload)
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
        self._digests.save(
            DigestEntry(
                digest_key=key,
                crm_id=result.crm_id,
                content_hash=content_hash,
                version=(previous.version + 1) if previous else 1,
                posted_at=self._clock(),
                message_count=len(the_day.messages),
            )
        )
        if previous is None:
            report.created += 1
        else:
            report.updated += 1

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
        if self._conflicts.get(key) is not None:  # held on an earlier run: keep when it was found
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
        self._conflicts.add(
            ConflictEntry(
                conflict_id=key,
                customer_number=customer_number,
                day=day,
                team=team,
                candidates=tuple(candidates),
                found_at=self._clock(),
            )
        )
        logger.info("digest day held as a conflict", extra={"customer": mask(customer_number), "day": day})

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
        and post that day to the CRM now (the same idempotent upsert as the nightly run).

        The choice is kept even when the CRM refuses the day: the day then goes to the job queue,
        which tries again with backoff, so nobody has to pick twice. Resolving again with the same
        record answers the resolved conflict (idempotent); with another raises ConflictAlreadyResolved.
        """
        assert self._conflicts is not None and self._linker is not None, "no conflict store wired"
        entry = self._conflicts.get(conflict)
        if entry is None or not caller.sees(entry.team):
            raise ConflictNotFound(f"no conflict {conflict!r}")
        if entry.resolved:
            if entry.record_id == record_id:
                return ResolveOutcome(entry, logged=True)
            raise ConflictAlreadyResolved(
                f"conflict {conflict!r} was already resolved with {entry.record_id!r} by {entry.resolved_by}"
            )
        candidate_ids = [c.record_id for c in entry.candidates]
        if record_id not in candidate_ids:
            raise ValueError(
                f"'record_id' must be one of the candidates ({', '.join(candidate_ids)}), not {record_id!r}"
            )
        record = self._contacts.get(record_id)
        if record is None:
            raise ValueError(f"record {record_id!r} no longer exists; pick another candidate")
        self._linker.link(
            entry.customer_number, contact_id=record_id, owner=record.owner, reason=f"chosen by {user}"
        )
        resolved = ConflictEntry(
            conflict_id=entry.conflict_id,
            customer_number=entry.customer_number,
            day=entry.day,
            team=entry.team,
            candidates=entry.candidates,
            found_at=entry.found_at,
            resolved_at=self._clock(),
            resolved_by=user,
            record_id=record_id,
        )
        self._conflicts.resolve(resolved)
        logger.info(
            "digest conflict resolved",
            extra={"customer": mask(entry.customer_number), "day": entry.day, "record_id": record_id},
        )
        report = self.log_day(entry.customer_number, date.fromisoformat(entry.day))
        if not report.failed:
            return ResolveOutcome(resolved, logged=True)
        reason = report.failed[0]["reason"]
        if self._jobs is not None:
            self._jobs.send(log_job(entry.customer_number, entry.day), delay_seconds=RETRY_DELAY_SECONDS)
        return ResolveOutcome(resolved, logged=False, error=reason)

    # -- what the CRM gets ----------------------------------------------------------------------------

    def _payload(self, the_day: _Day, day: str) -> dict[str, Any]:
        record = the_day.record
        name = record.name if record else the_day.numbers[0]
        return {
            "type": "sms_digest",
            "day": day,
            "customer_number": the_day.numbers[0],
            "customer_numbers": the_day.numbers,
            "contact_id": record.contact_id if record else None,
            "crm_contact_id": record.crm_id if record else None,
            "subject": f"SMS with {name} on {day}",
            "message_count": len(the_day.messages),
            "messages": [
                {
                    "message_id": m.message_id,
                    "direction": m.direction.value,
                    "at": m.created_at.isoformat(),
                    "from": m.customer_number if m.direction.value == "inbound" else m.our_number,
                    "to": m.our_number if m.direction.value == "inbound" else m.customer_number,
                    "body": m.body,
                    "status": m.status.value,
                }
                for m in the_day.messages
            ],
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
    except (ValueError, binascii.Error) as exc:
        raise ValueError("cursor is not valid") from exc
    if (
        not isinstance(data, dict)
        or data.get("team") not in teams
        or not (data.get("cursor") is None or isinstance(data.get("cursor"), str))
    ):
        raise ValueError("cursor is not valid")
    return teams.index(data["team"]), data["cursor"]


def _tied(conversation: Conversation) -> bool:
    """Several records tie for the number and nobody has picked one yet."""
    return not conversation.contact_id and bool(conversation.conflict_candidates)


def log_job(customer_number: str, day: str) -> dict[str, Any]:
    """A job-queue body asking for one conversation's day (a retry after the CRM refused it)."""
    return {"kind": "digest-log", "customer_number": customer_number, "day": day}


class _Lookups:
    """Auto-log choices read once per job: users and numbers repeat across conversations."""

    def __init__(self, numbers: NumberRepository | None, users: AutoLogSettings | None) -> None:
        self._numbers = numbers
        self._users = users
        self._number_modes: dict[str, AutoLog | None] = {}
        self._user_modes: dict[str, AutoLog | None] = {}

    def number(self, number: str) -> AutoLog | None:
        if self._numbers is None:
            return None
        if number not in self._number_modes:
            found = self._numbers.get(number)
            self._number_modes[number] = found.auto_log if found else None
        return self._number_modes[number]

    def user(self, user: str | None) -> AutoLog | None:
        if self._users is None or not user:
            return None
        if user not in self._user_modes:
            mode = self._users.get_user(user)
            self._user_modes[user] = AutoLog(mode) if mode else None
        return self._user_modes[user]
