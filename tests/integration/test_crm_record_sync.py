"""The record sync with each CRM plugin, over real HTTP to the simulated CRM, into DynamoDB on moto.

People are put in the simulated CRM through its control route (`POST /_sim/crm/_people`), the way the
local stack's tests do; the real `RecordSync` then pulls them with the plugin `build_record_source` makes
from `Settings`, stores them with `DynamoContacts` and keeps its watermark with `DynamoSyncStates`. Per
CRM: records arrive under their deterministic ids and are found by each number; a second run writes
nothing; a number dropped in the CRM stops finding the record; a deleted record becomes inactive (where
the CRM shows deletions); a 429 stops the run and the next run carries on.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from local.sim_crm import SimulatedCrm
from parley.adapters import aws
from parley.adapters.dynamo import DynamoContacts, DynamoSyncStates, SyncItem
from parley.clock import utc_now
from parley.config import Settings
from parley.crm.registry import build_record_source
from parley.services.record_sync import RecordSync
from tests.crm_sim import SECRET, TOKEN, served, settings_for

ANA = "+14155550100"
ANA_WORK = "+14155550111"
BO = "+14155550101"
PREFIX = {"webhook": "crm-", "salesforce": "sf-", "hubspot": "hs-", "dynamics": "d365-"}


@pytest.fixture(autouse=True)
def fresh_clients() -> Iterator[None]:
    aws.client.cache_clear()
    yield
    aws.client.cache_clear()


@pytest.fixture(scope="module")
def sim() -> SimulatedCrm:
    return SimulatedCrm(SECRET, token=TOKEN)


@pytest.fixture(scope="module")
def sim_url(sim: SimulatedCrm) -> Iterator[str]:
    with served(sim) as url:
        yield url


def at(seconds: int) -> str:
    """A CRM change time: whole seconds apart, since Salesforce and Dynamics keep no finer."""
    base = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    return (base + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def put(url: str, **person: Any) -> dict[str, Any]:
    answer = requests.post(f"{url}/_people", json=person, timeout=5)
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


@pytest.mark.parametrize("api", ["webhook", "salesforce", "hubspot", "dynamics"])
def test_records_changed_in_each_crm_arrive_and_stay_in_step(
    sim: SimulatedCrm, sim_url: str, aws_settings: Settings, api: str
) -> None:
    sim.reset()
    ana = put(sim_url, first_name="Ana", last_name="Silva", phones=[ANA, "(415) 555-0111"], updated_at=at(1))
    put(sim_url, name="Bo Chen", phones=[BO, "not a number"], owner="u-7", updated_at=at(2))
    contacts = DynamoContacts()
    states = DynamoSyncStates()

    def sync() -> RecordSync:
        return RecordSync(build_record_source(api, settings_for(api, sim_url)), contacts, states, utc_now)

    first = sync().run()
    assert (first.created, first.updated, first.skipped_numbers, first.caught_up) == (2, 0, 1, True)
    ana_id = PREFIX[api] + (ana["ids"][api].lower() if api == "dynamics" else ana["ids"][api])
    [found] = contacts.find_by_phone(ANA_WORK)
    assert (found.contact_id, found.name, found.phones) == (ana_id, "Ana Silva", [ANA, ANA_WORK])
    assert found.updated_at == datetime(2026, 11, 27, 9, 0, 1, tzinfo=UTC)
    [bo] = contacts.find_by_phone(BO)
    assert bo.owner == "u-7" and bo.crm_id is not None
    assert states.get(api).since == datetime(2026, 11, 27, 9, 0, 2, tzinfo=UTC)
    assert SyncItem.get(f"sync#{api}").since is not None  # beside the digests, keyed sync#<crm>

    again = sync().run()
    assert (again.created, again.updated, again.unchanged, again.pages) == (
        0,
        0,
        0,
        1 if api != "salesforce" else 2,
    )

    requests.patch(f"{sim_url}/_people/{ana['id']}", json={"phones": [ANA], "updated_at": at(5)}, timeout=5)
    dropped = sync().run()
    assert (dropped.updated, dropped.created) == (1, 0)
    assert contacts.find_by_phone(ANA_WORK) == []
    assert [r.contact_id for r in contacts.find_by_phone(ANA)] == [ana_id]

    sim.add_fault("429")
    requests.patch(
        f"{sim_url}/_people/{ana['id']}",
        json={"name": "Ana Silva-Reyes", "last_name": "Silva-Reyes", "updated_at": at(8)},
        timeout=5,
    )
    limited = sync().run()
    assert limited.transient is True and limited.error is not None and "429" in limited.error
    assert states.get(api).since == datetime(2026, 11, 27, 9, 0, 5, tzinfo=UTC)
    later = sync().run()
    assert later.updated == 1
    renamed = contacts.get(ana_id)
    assert renamed is not None and renamed.name == "Ana Silva-Reyes"

    if api != "hubspot":  # HubSpot's search never shows an archived contact
        requests.delete(f"{sim_url}/_people/{ana['id']}", timeout=5)
        sync().run()
        gone = contacts.get(ana_id)
        assert gone is not None and gone.active is False


def test_salesforce_syncs_leads_too_and_a_converted_one_is_inactive(
    sim: SimulatedCrm, sim_url: str, aws_settings: Settings
) -> None:
    sim.reset()
    lead = put(sim_url, name="Cy Lead", type="lead", phones=[BO], active=False, updated_at=at(1))
    RecordSync(
        build_record_source("salesforce", settings_for("salesforce", sim_url)),
        DynamoContacts(),
        DynamoSyncStates(),
        utc_now,
    ).run()
    [found] = DynamoContacts().find_by_phone(BO)
    assert (found.contact_id, found.record_type, found.active) == (
        f"sf-{lead['ids']['salesforce']}",
        "lead",
        False,
    )


@pytest.mark.parametrize("api", ["webhook", "salesforce", "hubspot", "dynamics"])
def test_a_large_change_is_read_page_by_page_over_several_runs_and_none_is_missed(
    sim: SimulatedCrm, sim_url: str, aws_settings: Settings, api: str
) -> None:
    sim.reset()
    count = 205  # more than one page for every CRM (Salesforce's smallest batch is 200)
    for n in range(count):  # three at a time share a change time, to page through ties
        sim.add_person({"name": f"P{n}", "phones": [f"+1415556{n:04d}"], "updated_at": at(n // 3)})
    contacts = DynamoContacts()
    states = DynamoSyncStates()
    source = build_record_source(api, settings_for(api, sim_url))
    totals = {"created": 0, "runs": 0}
    while True:  # one page per run, as if each run hit its budget
        report = RecordSync(source, contacts, states, utc_now, max_pages=1).run()
        assert report.error is None
        totals["created"] += report.created
        totals["runs"] += 1
        if report.caught_up:
            break
        assert totals["runs"] < 20
    assert totals["created"] == count
    assert totals["runs"] > 1
    assert all(len(contacts.find_by_phone(f"+1415556{n:04d}")) == 1 for n in (0, 101, 150, 204))
    assert states.get(api).since == datetime(2026, 11, 27, 9, 0, 0, tzinfo=UTC) + timedelta(
        seconds=(count - 1) // 3
    )
    again = RecordSync(source, contacts, states, utc_now).run()
    assert (again.created, again.updated, again.caught_up) == (0, 0, True)
