"""The nightly CRM digest: one record per conversation per day, safe to run any number of times.

The CRM record is keyed by (customer number, day) as its external id, and we keep a hash of what
we last posted: an unchanged day posts nothing, a day that gained a late message or a new status
updates the same record.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

from parley.domain.models import Message
from parley.domain.phone import mask
from parley.ports import Clock, ContactRepository, DigestEntry, DigestRepository, MessageRepository

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
    failed: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "conversations": self.conversations,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
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
    ) -> None:
        self._messages = messages
        self._contacts = contacts
        self._digests = digests
        self._crm = crm
        self._shards = shards
        self._clock = clock

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
        payload = self._payload(customer_number, day, messages)
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

    def _payload(self, customer_number: str, day: str, messages: list[Message]) -> dict[str, Any]:
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
