"""The record sync service against fakes: the watermark, paging, idempotency, a dropped number, and a
CRM failing mid-way (what was stored stays, the watermark doesn't move past it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest

from parley.crm.changes import PageBuilder, RecordPage, RecordSource
from parley.crm.webhook import CrmError
from parley.domain.models import ContactRecord
from parley.ports import SyncState
from parley.services.record_sync import RecordSync
from tests.fakes import T0, CountingContacts, InMemorySyncStates, SettableClock

ANA = "+14155550100"
ANA_WORK = "+14155550111"
BO = "+14155550101"


@dataclass
class Person:
    crm_id: str
    name: str
    phones: list[str]
    updated_at: datetime
    active: bool = True


@dataclass
class FakeSource:
    """A CRM listing its people changed after `since`, oldest first, `page_size` per page; the cursor is
    an offset. `fail_on` makes those calls (1-based) fail."""

    people: dict[str, Person] = field(default_factory=dict)
    page_size: int = 2
    fail_on: set[int] = field(default_factory=set)
    calls: list[tuple[datetime | None, str | None]] = field(default_factory=list)
    name: str = "fake"

    def put(self, crm_id: str, name: str, phones: list[str], minutes: int, *, active: bool = True) -> None:
        self.people[crm_id] = Person(crm_id, name, phones, T0 + timedelta(minutes=minutes), active)

    def changed_records(self, since: datetime | None, cursor: str | None) -> RecordPage:
        self.calls.append((since, cursor))
        if len(self.calls) in self.fail_on:
            raise CrmError("fake answered 503", transient=True, status_code=503)
        changed = sorted(
            (p for p in self.people.values() if since is None or p.updated_at > since),
            key=lambda p: p.updated_at,
        )
        start = int(cursor or 0)
        builder = PageBuilder(self.name)
        for p in changed[start : start + self.page_size]:
            builder.add(
                contact_id=f"fk-{p.crm_id}",
                crm_id=p.crm_id,
                name=p.name,
                phones=p.phones,
                updated_at=p.updated_at,
                active=p.active,
            )
        more = start + self.page_size < len(changed)
        return builder.page(str(start + self.page_size) if more else None)


_source: RecordSource = FakeSource()


@pytest.fixture
def source() -> FakeSource:
    return FakeSource()


@pytest.fixture
def contacts() -> CountingContacts:
    return CountingContacts()


@pytest.fixture
def states() -> InMemorySyncStates:
    return InMemorySyncStates()


def sync(
    source: FakeSource, contacts: CountingContacts, states: InMemorySyncStates, max_pages: int = 10
) -> RecordSync:
    return RecordSync(source, contacts, states, SettableClock(T0 + timedelta(hours=1)), max_pages=max_pages)


def test_first_run_stores_every_record_and_sets_the_watermark(
    source: FakeSource, contacts: CountingContacts, states: InMemorySyncStates
) -> None:
    source.put("1", "Ana Silva", [ANA, "(415) 555-0111"], 1)
    source.put("2", "Bo Chen", [BO], 2)
    source.put("3", "Cy", ["not a number", "+14155550103"], 3)

    report = sync(source, contacts, states).run()

    assert (report.created, report.updated, report.unchanged, report.pages) == (3, 0, 0, 2)
    assert report.skipped_numbers == 1 and report.caught_up and report.error is None
    ana = contacts.get("fk-1")
    assert ana is not None and ana.phones == [ANA, ANA_WORK] and ana.crm_id == "1"
    assert ana.updated_at == T0 + timedelta(minutes=1)
    assert [r.contact_id for r in contacts.find_by_phone(ANA_WORK)] == ["fk-1"]
    assert states.get("fake") == SyncState(since=T0 + timedelta(minutes=3), synced_at=T0 + timedelta(hours=1))
    assert report.as_dict()["since"] == (T0 + timedelta(minutes=3)).isoformat()


def test_a_second_run_writes_nothing_and_asks_only_after_the_watermark(
    source: FakeSource, contacts: CountingContacts, states: InMemorySyncStates
) -> None:
    source.put("1", "Ana Silva", [ANA], 1)
    source.put("2", "Bo Chen", [BO], 2)
    sync(source, contacts, states).run()
    writes = list(contacts.writes)

    again = sync(source, contacts, states).run()

    assert (again.created, again.updated, again.pages, again.caught_up) == (0, 0, 1, True)
    assert contacts.writes == writes
    assert source.calls[-1] == (T0 + timedelta(minutes=2), None)


def test_the_same_changes_read_again_are_unchanged_and_not_written(
    source: FakeSource, contacts: CountingContacts, states: InMemorySyncStates
) -> None:
    source.put("1", "Ana Silva", [ANA], 1)
    sync(source, contacts, states).run()
    states.items.clear()  # as if the watermark were lost: everything comes again

    again = sync(source, contacts, states).run()

    assert (again.unchanged, again.created, again.updated) == (1, 0, 0)
    assert contacts.writes == ["fk-1"]


def test_a_change_updates_the_record_and_a_dropped_number_stops_finding_it(
    source: FakeSource, contacts: CountingContacts, states: InMemorySyncStates
) -> None:
    source.put("1", "Ana Silva", [ANA, ANA_WORK], 1)
    sync(source, contacts, states).run()
    source.put("1", "Ana Silva-Reyes", [ANA], 5)

    report = sync(source, contacts, states).run()

    assert (report.updated, report.created) == (1, 0)
    assert contacts.find_by_phone(ANA_WORK) == []
    ana = contacts.get("fk-1")
    assert ana is not None and ana.name == "Ana Silva-Reyes" and ana.phones == [ANA]


def test_what_the_crm_does_not_have_stays_as_parley_has_it(
    source: FakeSource, contacts: CountingContacts, states: InMemorySyncStates
) -> None:
    contacts.save(
        ContactRecord(
            contact_id="fk-1", name="Ana", phone=ANA, team="sales", email="ana@example.com", crm_id="1"
        )
    )
    source.put("1", "Ana Silva", [ANA], 1)

    sync(source, contacts, states).run()

    ana = contacts.get("fk-1")
    assert ana is not None and (ana.name, ana.team, ana.email) == ("Ana Silva", "sales", "ana@example.com")


def test_a_record_left_without_a_number_is_made_inactive(
    source: FakeSource, contacts: CountingContacts, states: InMemorySyncStates
) -> None:
    source.put("1", "Ana Silva", [ANA], 1)
    source.put("2", "Nobody", [], 2)
    sync(source, contacts, states).run()
    assert contacts.get("fk-2") is None
    source.put("1", "Ana Silva", ["555"], 3)

    report = sync(source, contacts, states).run()

    assert (report.numberless, report.skipped_numbers, report.updated) == (1, 1, 1)
    ana = contacts.get("fk-1")
    assert ana is not None and not ana.active and ana.phones == [ANA]


def test_the_page_budget_stops_a_run_and_the_next_one_carries_on(
    source: FakeSource, contacts: CountingContacts, states: InMemorySyncStates
) -> None:
    for n in range(5):
        source.put(str(n), f"P{n}", [f"+1415555020{n}"], n + 1)

    first = sync(source, contacts, states, max_pages=2).run()

    assert (first.created, first.pages, first.caught_up) == (4, 2, False)
    assert states.get("fake") == SyncState(
        since=None, cursor="4", latest=T0 + timedelta(minutes=4), synced_at=T0 + timedelta(hours=1)
    )
    second = sync(source, contacts, states, max_pages=2).run()
    assert (second.created, second.pages, second.caught_up) == (1, 1, True)
    assert source.calls[-1] == (None, "4")
    assert states.get("fake").since == T0 + timedelta(minutes=5)


def test_a_transient_error_mid_way_keeps_what_was_stored_and_the_watermark(
    source: FakeSource, contacts: CountingContacts, states: InMemorySyncStates
) -> None:
    states.save("fake", SyncState(since=T0))
    for n in range(4):
        source.put(str(n), f"P{n}", [f"+1415555020{n}"], n + 1)
    source.fail_on = {2}

    report = sync(source, contacts, states).run()

    assert (report.created, report.pages, report.caught_up) == (2, 1, False)
    assert report.transient is True and report.error is not None and "503" in report.error
    assert sorted(contacts.items) == ["fk-0", "fk-1"]
    stored = states.get("fake")
    assert (stored.since, stored.cursor, stored.latest) == (T0, "2", T0 + timedelta(minutes=2))

    source.fail_on = set()
    resumed = sync(source, contacts, states).run()
    assert (resumed.created, resumed.unchanged, resumed.caught_up) == (2, 0, True)
    assert source.calls[-1] == (T0, "2")
    assert states.get("fake").since == T0 + timedelta(minutes=4)


def test_a_refused_cursor_restarts_the_pass_from_the_watermark(
    source: FakeSource, contacts: CountingContacts, states: InMemorySyncStates
) -> None:
    source.put("1", "Ana Silva", [ANA], 1)
    states.save("fake", SyncState(since=None, cursor="expired", latest=T0))
    calls: list[str | None] = []
    plain = source.changed_records

    def expiring(since: datetime | None, cursor: str | None) -> RecordPage:
        calls.append(cursor)
        if cursor == "expired":
            raise CrmError("INVALID_QUERY_LOCATOR", transient=False, status_code=400)
        return plain(since, cursor)

    source.changed_records = expiring  # type: ignore[method-assign]
    report = sync(source, contacts, states).run()

    assert calls == ["expired", None]
    assert (report.created, report.caught_up, report.error) == (1, True, None)
    assert states.get("fake").since == T0 + timedelta(minutes=1)


def test_a_permanent_error_is_reported_and_nothing_moves(
    source: FakeSource, contacts: CountingContacts, states: InMemorySyncStates
) -> None:
    def refused(since: datetime | None, cursor: str | None) -> RecordPage:
        raise CrmError("fake rejected the record with 403: no access", transient=False, status_code=403)

    source.changed_records = refused  # type: ignore[method-assign]
    report = sync(source, contacts, states).run()

    assert (report.pages, report.transient) == (0, False)
    assert report.error is not None and "403" in report.error
    assert states.saves == []
