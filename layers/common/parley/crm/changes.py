"""Records changed in the CRM since a watermark, one page at a time: what every CRM plugin's
`changed_records` returns, and the mapping all of them share into Parley's `ContactRecord`.

Each CRM's record becomes one `ContactRecord` with a deterministic id (``sf-<Id>``, ``hs-<id>``,
``d365-<guid>``, ``crm-<crm_id>``), so a second sync of the same record updates it instead of adding
another. Numbers are normalised to E.164; one that doesn't parse is skipped and logged with the record's
id (never the number), and a record left with no number at all can't be kept (a record is found by its
numbers), so the page lists its id instead for the sync to retire.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from parley.domain.models import ContactRecord, RecordType
from parley.domain.phone import InvalidPhoneNumber, normalize_e164

__all__ = ["PageBuilder", "RecordPage", "RecordSource", "parse_crm_time"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordPage:
    """One page of changed records, oldest change first.

    `cursor` is opaque and asks for the next page of the same pass (None: the pass is done). `latest` is
    the newest change the page saw, numberless records included, which the sync's watermark moves to.
    """

    records: list[ContactRecord]
    cursor: str | None
    latest: datetime | None = None
    skipped_numbers: int = 0
    numberless: tuple[str, ...] = ()  # contact ids of records with no usable number


@runtime_checkable
class RecordSource(Protocol):
    """A CRM that can list the records changed since a watermark (every plugin here can)."""

    name: str

    def changed_records(self, since: datetime | None, cursor: str | None) -> RecordPage:
        """The first page of records changed after `since` (None: all), or the page `cursor` names."""
        ...


def parse_crm_time(value: object) -> datetime | None:
    """An ISO 8601 time as the CRMs send it (``Z``, ``+0000`` or ``+00:00``), in UTC; None if absent."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":  # Salesforce's +0000
        text = f"{text[:-2]}:{text[-2:]}"
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)


@dataclass
class PageBuilder:
    """Collects one page's records, normalising numbers and keeping the counts the sync reports."""

    crm: str
    region: str = "US"
    records: list[ContactRecord] = field(default_factory=list)
    skipped_numbers: int = 0
    numberless: list[str] = field(default_factory=list)
    latest: datetime | None = None

    def add(
        self,
        *,
        contact_id: str,
        crm_id: str,
        name: str,
        phones: Iterable[object],
        updated_at: datetime | None,
        first_name: str | None = None,
        last_name: str | None = None,
        owner: str | None = None,
        team: str | None = None,
        record_type: RecordType = "contact",
        active: bool = True,
    ) -> None:
        if updated_at is not None and (self.latest is None or updated_at > self.latest):
            self.latest = updated_at
        numbers: list[str] = []
        for raw in phones:
            if raw is None or raw == "":
                continue
            try:
                number = normalize_e164(str(raw), region=self.region, require_mobile=False)
            except InvalidPhoneNumber as exc:
                self.skipped_numbers += 1
                reason = str(exc).split("' ", 1)[-1] if "'" in str(exc) else str(exc)
                logger.warning("%s record %s: a number was skipped (%s)", self.crm, crm_id, reason)
                continue
            if number not in numbers:
                numbers.append(number)
        if not numbers:
            logger.info("%s record %s has no number Parley can use", self.crm, crm_id)
            self.numberless.append(contact_id)
            return
        values: dict[str, object] = {
            "contact_id": contact_id,
            "crm_id": crm_id,
            "name": name.strip() or " ".join(p for p in (first_name, last_name) if p) or crm_id,
            "phones": numbers,
            "first_name": first_name or None,
            "last_name": last_name or None,
            "owner": owner or None,
            "record_type": record_type,
            "active": active,
            "updated_at": updated_at,
        }
        if team:  # only a CRM that has teams sets one; otherwise the record keeps Parley's
            values["team"] = team
        self.records.append(ContactRecord.model_validate(values))

    def page(self, cursor: str | None) -> RecordPage:
        return RecordPage(
            records=list(self.records),
            cursor=cursor,
            latest=self.latest,
            skipped_numbers=self.skipped_numbers,
            numberless=tuple(self.numberless),
        )
