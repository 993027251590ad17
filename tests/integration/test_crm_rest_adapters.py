"""The digest, run with each REST CRM plugin against the simulated CRM served in-process.

The local stack runs one CRM (its settings are read once per process), so instead of switching the
shared stack this runs the real `DigestService` with in-memory repositories and the plugin that
`build_crm` makes from `Settings`, over real HTTP to `local.sim_crm.SimulatedCrm` (the same WSGI app the
stack mounts at /_sim/crm). It checks what the nightly digest promises, per CRM: one record per
conversation per day, keyed by our external id; a re-run changes nothing; a late message updates the
same record; a rate-limited upsert is reported and the next run posts it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from local.sim_crm import SimulatedCrm
from parley.crm.registry import build_crm
from parley.domain.models import ContactRecord, InboundMessage, OurNumber
from parley.services.digest import DigestService, external_id
from tests.crm_sim import TOKEN, served, settings_for
from tests.fakes import T0, World

OURS = "+15005550006"
ANA = "+14155550100"
BO = "+14155550101"
DAY = T0.date()
ANA_ID = external_id("c1", DAY.isoformat())  # Ana's contact record (below)
BO_ID = external_id("lead-14155550101", DAY.isoformat())  # the lead made for Bo's unknown number


@pytest.fixture(scope="module")
def sim() -> SimulatedCrm:
    return SimulatedCrm("unused-webhook-secret", token=TOKEN)


@pytest.fixture(scope="module")
def sim_url(sim: SimulatedCrm) -> Iterator[str]:
    with served(sim) as url:
        yield url


def text_in(world: World, sid: str, frm: str, minutes: int, body: str) -> None:
    world.processor().store_inbound(
        InboundMessage(
            carrier="fake",
            carrier_message_id=sid,
            from_number=frm,
            to_number=OURS,
            body=body,
            received_at=T0 + timedelta(minutes=minutes),
        )
    )


def mine(sim: SimulatedCrm, api: str) -> dict[str, dict[str, Any]]:
    return {r["external_id"]: r for r in sim.records() if r["api"] == api}


def body_text(api: str, record: dict[str, Any]) -> str:
    payload = record["payload"]
    if api == "salesforce":
        return str(payload["Description"])
    if api == "hubspot":
        return str(payload["properties"]["hs_note_body"])
    return str(payload["description"])


@pytest.mark.parametrize("api", ["salesforce", "hubspot", "dynamics"])
def test_the_digest_upserts_one_record_per_day_through_each_crm(
    sim: SimulatedCrm, sim_url: str, api: str
) -> None:
    sim.reset()
    world = World()
    world.numbers.save(OurNumber(number=OURS, carrier="fake", is_default=True))
    world.contacts.save(ContactRecord(contact_id="c1", name="Ana Silva", phone=ANA, crm_id="003XYZ"))
    text_in(world, "SM1", ANA, 0, "Are you open today?")
    text_in(world, "SM2", BO, 30, "Call me")
    digest = DigestService(
        messages=world.messages,
        contacts=world.contacts,
        digests=world.digests,
        crm=build_crm(api, settings_for(api, sim_url)),
        shards=world.shards,
        clock=world.clock,
    )

    first = digest.run(DAY)
    assert (first.created, first.updated, first.failed) == (2, 0, [])
    records = mine(sim, api)
    assert sorted(records) == sorted([ANA_ID, BO_ID])
    assert "Are you open today?" in body_text(api, records[ANA_ID])
    assert all(r["version"] == 1 for r in records.values())

    again = digest.run(DAY)
    assert (again.unchanged, again.created, again.updated) == (2, 0, 0)
    assert mine(sim, api) == records

    text_in(world, "SM3", ANA, 45, "One more thing")
    sim.add_fault("429")  # rate limited: reported, not recorded, posted by the next run
    limited = digest.run(DAY)
    assert [f["customer_number"] for f in limited.failed] == [ANA]
    assert "429" in limited.failed[0]["reason"]
    late = digest.run(DAY)
    assert (late.updated, late.unchanged, late.failed) == (1, 1, [])
    after = mine(sim, api)
    assert sorted(after) == sorted([ANA_ID, BO_ID])  # the same record, not a second one
    assert after[ANA_ID]["id"] == records[ANA_ID]["id"]
    assert after[ANA_ID]["version"] == 2
    text = body_text(api, after[ANA_ID])
    assert text.index("Are you open today?") < text.index("One more thing")
    assert after[BO_ID] == records[BO_ID]


def test_the_simulator_refuses_a_wrong_token_in_each_api_shape(sim_url: str) -> None:
    import requests

    wrong = {"Authorization": "Bearer nope"}
    salesforce = requests.patch(
        f"{sim_url}/services/data/v62.0/sobjects/Task/Parley_External_Id__c/x",
        json={},
        headers=wrong,
        timeout=5,
    )
    assert salesforce.status_code == 401 and salesforce.json()[0]["errorCode"] == "INVALID_SESSION_ID"
    hubspot = requests.post(f"{sim_url}/crm/v3/objects/notes", json={}, headers=wrong, timeout=5)
    assert hubspot.status_code == 401 and hubspot.json()["status"] == "error"
    dynamics = requests.patch(f"{sim_url}/api/data/v9.2/phonecalls(k='x')", json={}, headers=wrong, timeout=5)
    assert dynamics.status_code == 401 and "error" in dynamics.json()
