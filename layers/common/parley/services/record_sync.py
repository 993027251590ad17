"""Records synced from the CRM: every 15 minutes, what changed there since the watermark is stored here.

Parley routes a text to the records that have its number, so the CRM's contacts (and, where the CRM
has them, leads and the rest) must be here too. A pass reads the records changed after the watermark
(`SyncState.since`), oldest change first, page by page, and upserts each into the Contacts table by
its deterministic id. Only a record that differs from what is stored is written, so a second run
changes nothing. Progress is saved after each page is stored, never before: a failure mid-way keeps the
pages stored and resumes from the next one, and the watermark moves to the newest change only when the
pass is done. A page budget keeps one invocation short; the next one carries on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from parley.crm.changes import RecordPage, RecordSource
from parley.crm.webhook import CrmError
from parley.ports import Clock, ContactRepository, SyncState, SyncStateRepository

__all__ = ["RecordSync", "SyncReport"]

logger = logging.getLogger(__name__)


@dataclass
class SyncReport:
    crm: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped_numbers: int = 0  # numbers that didn't parse (the records were kept without them)
    numberless: int = 0  # records with no usable number: not kept (made inactive if they were)
    pages: int = 0
    caught_up: bool = False  # the pass reached the end: nothing more changed since the watermark
    since: datetime | None = None  # the watermark after this run
    error: str | None = None
    transient: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "crm": self.crm,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped_numbers": self.skipped_numbers,
            "numberless": self.numberless,
            "pages": self.pages,
            "caught_up": self.caught_up,
            "since": self.since.isoformat() if self.since else None,
            "error": self.error,
            "transient": self.transient,
        }


class RecordSync:
    def __init__(
        self,
        source: RecordSource,
        contacts: ContactRepository,
        states: SyncStateRepository,
        clock: Clock,
        *,
        max_pages: int = 10,
    ) -> None:
        if max_pages < 1:
            raise ValueError("max_pages must be at least 1")
        self._source = source
        self._contacts = contacts
        self._states = states
        self._clock = clock
        self._max_pages = max_pages

    def run(self) -> SyncReport:
        """Store up to `max_pages` pages of changes; a CRM error stops the run with what was stored kept."""
        crm = self._source.name
        state = self._states.get(crm)
        report = SyncReport(crm=crm, since=state.since)
        retried_from_watermark = False
        while report.pages < self._max_pages:
            try:
                page = self._source.changed_records(state.since, state.cursor)
            except CrmError as exc:
                if not exc.transient and state.cursor and not retried_from_watermark:
                    # a cursor the CRM no longer honours (Salesforce's expire when left idle): read
                    # the pass again from the watermark; what is stored already comes back unchanged
                    logger.warning("%s sync: the stored cursor was refused (%s); restarting", crm, exc.reason)
                    state = replace(state, cursor=None, latest=None)
                    retried_from_watermark = True
                    continue
                report.error, report.transient = exc.reason, exc.transient
                log = logger.warning if exc.transient else logger.error
                log("%s sync stopped after %d page(s): %s", crm, report.pages, exc.reason)
                break
            self._store(page, report)
            report.pages += 1
            latest = _later(state.latest, page.latest)
            if page.cursor is None:  # the pass is done: everything up to its newest change is stored
                state = SyncState(since=latest or state.since, synced_at=self._clock())
            else:
                state = SyncState(
                    since=state.since, cursor=page.cursor, latest=latest, synced_at=self._clock()
                )
            self._states.save(crm, state)
            if page.cursor is None:
                report.caught_up = True
                break
        report.since = state.since
        logger.info("%s sync: %s", crm, report.as_dict())
        return report

    def _store(self, page: RecordPage, report: SyncReport) -> None:
        report.skipped_numbers += page.skipped_numbers
        for record in page.records:
            existing = self._contacts.get(record.contact_id)
            if existing is None:
                self._contacts.save(record)
                report.created += 1
                continue
            # what the CRM gave wins; what it doesn't have (a team, an email, fields) stays as Parley has it
            merged = existing.model_copy(
                update={name: getattr(record, name) for name in record.model_fields_set}
            )
            if merged == existing:
                report.unchanged += 1
            else:
                self._contacts.save(merged)  # a number dropped in the CRM loses its lookup here
                report.updated += 1
        for contact_id in page.numberless:
            report.numberless += 1
            existing = self._contacts.get(contact_id)
            if existing is not None and existing.active:
                # a record is found by its numbers, so it can't be kept without one: it stays, inactive
                self._contacts.save(existing.model_copy(update={"active": False}))
                report.updated += 1


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return max(a, b)
