"""The nightly CRM digest: one record per conversation per day, safe to run any number of times.

The CRM record is keyed by (customer number, day) as its external id, and we keep a hash of what
we last posted: an unchanged day posts nothing, a day that gained a late message or a new status
updates the same record.

A conversation that is linked to no record while several records tie for its number (see
`parley.domain.routing`) is not posted: its day is held as a conflict (`conflict_id`), listed for a
person to pick the record. Picking one (`resolve`) links the conversation, so that day is posted at
once and every later day goes to the same record.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

from parley.domain.models import ContactRecord, Message
from parley.domain.phone import mask
from parley.ports import (
    Clock,
    ConflictCandidate,
    ConflictEntry,
    ConflictRepository,
    ContactRepository,
    ConversationLinker,
    ConversationRepository,
    DigestEntry,
    DigestRepository,
    MessageRepository,
    Page,
)

logger = logging.getLogger(__name__)


class CrmUpsert(Protocol):
    crm_id: str
    created: bool


class Crm(Protocol):
    def upsert(self, external_id: str, payload: dict[str, Any]) -> Any: ...


@dataclass
class DigestReport:
    day: str
    conversations: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    conflicts: int = 0  # days held for a person to pick the record
    failed: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "conversations": self.conversations,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "conflicts": self.conflicts,
            "failed": self.failed,
        }

    def log_fields(self) -> dict[str, Any]:
        """The same figures under names that don't collide with LogRecord's own (`created`)."""
        return {f"digest_{key}": value for key, value in self.as_dict().items()}


def digest_key(customer_number: str, day: str) -> str:
    return f"{customer_number}#{day}"


def external_id(customer_number: str, day: str) -> str:
    """Stable at the CRM across re-runs; digits only so any CRM accepts it in a URL."""
    return f"parley-sms-{customer_number.lstrip('+')}-{day}"


def conflict_id(customer_number: str, day: str) -> str:
    """Stable across re-runs, and safe in a URL path."""
    return f"conflict-{customer_number.lstrip('+')}-{day}"


class ConflictNotFound(LookupError):
    """No conflict with this id for the caller's team (404)."""


class ConflictAlreadyResolved(Exception):
    """The conflict was resolved with another record (409)."""


class ConflictPostFailed(Exception):
    """The conversation is linked but its day could not be posted to the CRM (502); retry."""


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

    def run(self, day: date) -> DigestReport:
        """Cost grows with the day's messages (one index query per shard), never with table size."""
        day_text = day.isoformat()
        report = DigestReport(day=day_text)
        for shard in range(self._shards):
            by_conversation: dict[str, list[Message]] = defaultdict(list)
            for message in self._messages.list_for_day(day_text, shard):
                by_conversation[message.customer_number].append(message)
            for customer_number, messages in sorted(by_conversation.items()):
                report.conversations += 1
                self._post_one(customer_number, day_text, messages, report)
        logger.info("digest finished", extra=report.log_fields())
        return report

    def _post_one(
        self, customer_number: str, day: str, messages: list[Message], report: DigestReport
    ) -> None:
        messages.sort(key=lambda m: (m.created_at, m.message_id))
        linked: ContactRecord | None = None
        conversation = self._conversations.get(customer_number) if self._conversations else None
        if conversation is not None and conversation.contact_id:
            linked = self._contacts.get(conversation.contact_id)
        elif conversation is not None and conversation.conflict_candidates and self._conflicts:
            self._hold(customer_number, day, conversation.team, conversation.conflict_candidates)
            report.conflicts += 1
            return
        payload = self._payload(customer_number, day, messages, linked)
        content_hash = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        key = digest_key(customer_number, day)
        previous = self._digests.get(key)
        if previous is not None and previous.content_hash == content_hash:
            report.unchanged += 1
            return
        try:
            result = self._crm.upsert(external_id(customer_number, day), payload)
        except Exception as exc:  # one conversation's failure must not stop the others
            reason = getattr(exc, "reason", None) or str(exc)
            logger.error("digest record failed", extra={"customer": mask(customer_number), "reason": reason})
            report.failed.append({"customer_number": customer_number, "reason": reason})
            return
        self._digests.save(
            DigestEntry(
                digest_key=key,
                crm_id=result.crm_id,
                content_hash=content_hash,
                version=(previous.version + 1) if previous else 1,
                posted_at=self._clock(),
                message_count=len(messages),
            )
        )
        if previous is None:
            report.created += 1
        else:
            report.updated += 1

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

    # -- conflicts: listed for a person, resolved by picking a record --------------------------------

    def open_conflicts(self, team: str, *, limit: int, cursor: str | None) -> Page[ConflictEntry]:
        assert self._conflicts is not None, "no conflict store wired"
        return self._conflicts.list_open(team, limit=limit, cursor=cursor)

    def resolve(self, conflict: str, record_id: str, *, user: str, team: str) -> ConflictEntry:
        """Link the conversation to `record_id` (one of the candidates), post that day to the CRM
        now (the same idempotent upsert as the nightly run) and mark the conflict resolved.

        Resolving again with the same record answers the resolved conflict (idempotent); with
        another record raises ConflictAlreadyResolved.
        """
        assert self._conflicts is not None and self._linker is not None, "no conflict store wired"
        entry = self._conflicts.get(conflict)
        if entry is None or entry.team != team:
            raise ConflictNotFound(f"no conflict {conflict!r}")
        if entry.resolved:
            if entry.record_id == record_id:
                return entry
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
        report = DigestReport(day=entry.day)
        messages = [
            m
            for shard in range(self._shards)
            for m in self._messages.list_for_day(entry.day, shard)
            if m.customer_number == entry.customer_number
        ]
        if messages:
            self._post_one(entry.customer_number, entry.day, messages, report)
        if report.failed:
            raise ConflictPostFailed(
                f"linked to {record_id!r}, but the CRM refused the day: {report.failed[0]['reason']}; "
                "resolve again or let the nightly digest post it"
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
        return resolved

    def _payload(
        self,
        customer_number: str,
        day: str,
        messages: list[Message],
        linked: ContactRecord | None = None,
    ) -> dict[str, Any]:
        if linked is not None:
            contact: ContactRecord | None = linked
        else:
            contacts = self._contacts.find_by_phone(customer_number)
            contact = contacts[0] if len(contacts) == 1 else None
        return {
            "type": "sms_digest",
            "day": day,
            "customer_number": customer_number,
            "contact_id": contact.contact_id if contact else None,
            "crm_contact_id": contact.crm_id if contact else None,
            "subject": f"SMS with {contact.name if contact else customer_number} on {day}",
            "message_count": len(messages),
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
                for m in messages
            ],
        }
