"""Each CRM plugin's `changed_records` against a local stand-in for its API.

The requests are checked against the shapes each CRM documents (cited at each test), then the mapping
into `ContactRecord`: a deterministic id, the CRM's id, numbers in E.164 (mobile first; one that doesn't
parse skipped and logged without the number), inactive where the CRM says so, the CRM's change time.
Paging follows each CRM's own link or token; 429, 5xx and timeouts are transient.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest

from parley.config import Settings
from parley.crm._http import StaticToken
from parley.crm.changes import RecordSource, parse_crm_time
from parley.crm.dynamics import CONTACT_COLUMNS, DynamicsCrm
from parley.crm.hubspot import CONTACT_PROPERTIES, HubSpotCrm
from parley.crm.registry import build_record_source
from parley.crm.salesforce import SalesforceCrm
from parley.crm.webhook import CrmError, WebhookCrm, verify
from tests.carrier_api import FakeCarrierApi, carrier_api_fixtures

carrier_api_server, fake_crm = carrier_api_fixtures("fake_crm")

TOKEN = "tok-SECRET-0123456789"
SINCE = datetime(2026, 11, 27, 9, 0, 0, tzinfo=UTC)
ANA = "+14155550100"
ANA_WORK = "+14155550111"


def test_crm_times_in_each_format_are_utc() -> None:
    expected = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
    assert parse_crm_time("2026-11-27T09:30:00.000+0000") == expected  # Salesforce
    assert parse_crm_time("2026-11-27T09:30:00.000Z") == expected  # HubSpot
    assert parse_crm_time("2026-11-27T09:30:00Z") == expected  # Dynamics 365
    assert parse_crm_time("2026-11-27T10:30:00+01:00") == expected
    assert parse_crm_time("") is None and parse_crm_time(None) is None and parse_crm_time("soon") is None


# --- Salesforce ------------------------------------------------------------------------------------


def sf_row(record_id: str, sobject: str = "Contact", **fields: object) -> dict[str, object]:
    row: dict[str, object] = {
        "attributes": {"type": sobject, "url": f"/services/data/v62.0/sobjects/{sobject}/{record_id}"},
        "Id": record_id,
        "Name": "Ana Silva",
        "FirstName": "Ana",
        "LastName": "Silva",
        "Phone": "(415) 555-0111",
        "MobilePhone": ANA,
        "OwnerId": "005XX000001",
        "LastModifiedDate": "2026-11-27T09:30:00.000+0000",
        "IsDeleted": False,
    }
    if sobject == "Lead":
        row["IsConverted"] = False
    row.update(fields)
    return row


def test_salesforce_queries_contacts_then_leads_with_soql_paged_by_next_records_url(
    fake_crm: FakeCarrierApi,
) -> None:
    # "Execute a SOQL Query that Includes Deleted Items": GET /services/data/vXX.X/queryAll?q=<SOQL>,
    # answering {"totalSize", "done", "records": [...], "nextRecordsUrl"}; the next batch is a GET of
    # nextRecordsUrl with no parameters. Sforce-Query-Options: batchSize=200..2000 sets the batch size.
    more = "/services/data/v62.0/queryAll/01gXX0000000001-200"
    fake_crm.replies(
        (200, {"totalSize": 2, "done": False, "records": [sf_row("003A")], "nextRecordsUrl": more}),
        (200, {"totalSize": 2, "done": True, "records": [sf_row("003B", IsDeleted=True, Phone=None)]}),
        (
            200,
            {
                "totalSize": 1,
                "done": True,
                "records": [
                    sf_row("00QC", "Lead", IsConverted=True, MobilePhone="12", Phone="+442071838750")
                ],
            },
        ),
    )
    crm = SalesforceCrm(fake_crm.url, StaticToken(TOKEN))

    first = crm.changed_records(SINCE, None)
    second = crm.changed_records(SINCE, first.cursor)
    third = crm.changed_records(SINCE, second.cursor)

    seen = fake_crm.seen
    assert [(s.method, s.path) for s in seen] == [
        ("GET", "/services/data/v62.0/queryAll"),
        ("GET", more),
        ("GET", "/services/data/v62.0/queryAll"),
    ]
    assert seen[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert seen[0].headers["sforce-query-options"] == "batchSize=200"
    assert seen[0].args["q"] == (
        "SELECT Id, Name, FirstName, LastName, Phone, MobilePhone, OwnerId, LastModifiedDate, IsDeleted "
        "FROM Contact WHERE LastModifiedDate > 2026-11-27T09:00:00Z ORDER BY LastModifiedDate ASC"
    )
    assert seen[1].query == []
    assert (
        seen[2]
        .args["q"]
        .startswith(
            "SELECT Id, Name, FirstName, LastName, Phone, MobilePhone, OwnerId, LastModifiedDate, IsDeleted, "
            "IsConverted FROM Lead WHERE"
        )
    )
    assert (first.cursor, second.cursor, third.cursor) == (f"Contact:{more}", "Lead:", None)

    [ana] = first.records
    assert (ana.contact_id, ana.crm_id, ana.record_type, ana.active) == ("sf-003A", "003A", "contact", True)
    assert ana.phones == [ANA, ANA_WORK]  # the mobile first
    assert (ana.name, ana.first_name, ana.last_name, ana.owner) == (
        "Ana Silva",
        "Ana",
        "Silva",
        "005XX000001",
    )
    assert ana.updated_at == datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
    assert first.latest == ana.updated_at
    [deleted] = second.records
    assert (deleted.contact_id, deleted.active, deleted.phones) == ("sf-003B", False, [ANA])
    [lead] = third.records
    assert (lead.contact_id, lead.record_type, lead.active) == ("sf-00QC", "lead", False)
    assert lead.phones == ["+442071838750"] and third.skipped_numbers == 1
    assert third.latest is None  # the watermark follows the Contacts (queried first) only


def test_salesforce_first_sync_has_no_where_clause(fake_crm: FakeCarrierApi) -> None:
    fake_crm.json(200, {"totalSize": 0, "done": True, "records": []})
    page = SalesforceCrm(fake_crm.url, StaticToken(TOKEN)).changed_records(None, None)
    assert "WHERE" not in fake_crm.seen[0].args["q"]
    assert (page.records, page.cursor, page.latest) == ([], "Lead:", None)


def test_salesforce_refuses_a_cursor_that_points_elsewhere(fake_crm: FakeCarrierApi) -> None:
    crm = SalesforceCrm(fake_crm.url, StaticToken(TOKEN))
    with pytest.raises(CrmError) as caught:
        crm.changed_records(SINCE, "Contact:https://evil.example.com/steal")
    assert caught.value.transient is False and fake_crm.seen == []


@pytest.mark.parametrize(("status", "transient"), [(429, True), (503, True), (400, False)])
def test_salesforce_query_failures(fake_crm: FakeCarrierApi, status: int, transient: bool) -> None:
    fake_crm.json(status, [{"message": "nope", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    with pytest.raises(CrmError) as caught:
        SalesforceCrm(fake_crm.url, StaticToken(TOKEN)).changed_records(SINCE, None)
    assert caught.value.transient is transient and TOKEN not in caught.value.reason


def test_salesforce_timeout_is_transient(fake_crm: FakeCarrierApi) -> None:
    fake_crm.slow(200, {"done": True, "records": []})
    with pytest.raises(CrmError) as caught:
        SalesforceCrm(fake_crm.url, StaticToken(TOKEN), timeout=0.2).changed_records(SINCE, None)
    assert caught.value.transient is True


# --- HubSpot ---------------------------------------------------------------------------------------


def hs_contact(contact_id: str, **properties: object) -> dict[str, object]:
    props: dict[str, object] = {
        "firstname": "Ana",
        "lastname": "Silva",
        "phone": "415-555-0111",
        "mobilephone": ANA,
        "hubspot_owner_id": "77",
        "lastmodifieddate": "2026-11-27T09:30:00.123Z",
        "hs_object_id": contact_id,
    }
    props.update(properties)
    return {
        "id": contact_id,
        "properties": props,
        "createdAt": "2026-11-01T00:00:00Z",
        "updatedAt": "2026-11-27T09:30:00.123Z",
        "archived": False,
    }


def test_hubspot_searches_contacts_changed_after_the_watermark_paged_by_after(
    fake_crm: FakeCarrierApi,
) -> None:
    # CRM search API: POST /crm/v3/objects/contacts/search with filterGroups/filters (lastmodifieddate GT
    # <epoch ms>), sorts, properties, limit (at most 200) and after; answers {"total", "results",
    # "paging": {"next": {"after"}}}
    fake_crm.replies(
        (
            200,
            {
                "total": 2,
                "results": [hs_contact("101")],
                "paging": {"next": {"after": "1", "link": "?after=1"}},
            },
        ),
        (200, {"total": 2, "results": [hs_contact("102", mobilephone="", phone="oops")]}),
    )
    crm = HubSpotCrm(StaticToken(TOKEN), base_url=fake_crm.url, page_size=1)

    first = crm.changed_records(SINCE, None)
    second = crm.changed_records(SINCE, first.cursor)

    assert [(s.method, s.path) for s in fake_crm.seen] == [("POST", "/crm/v3/objects/contacts/search")] * 2
    since_ms = str(int(SINCE.timestamp() * 1000))
    assert fake_crm.seen[0].json == {
        "filterGroups": [
            {"filters": [{"propertyName": "lastmodifieddate", "operator": "GT", "value": since_ms}]}
        ],
        "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        "properties": list(CONTACT_PROPERTIES),
        "limit": 1,
    }
    # the next page's filter moves up to the newest change read, and skips the one read at that ms
    newest_ms = 1_795_771_800_123  # 2026-11-27T09:30:00.123Z
    assert first.cursor == f"{newest_ms - 1}:1" and second.cursor is None
    assert fake_crm.seen[1].json["after"] == "1"
    assert fake_crm.seen[1].json["filterGroups"][0]["filters"][0]["value"] == str(newest_ms - 1)
    [ana] = first.records
    assert (ana.contact_id, ana.crm_id, ana.name, ana.owner) == ("hs-101", "101", "Ana Silva", "77")
    assert ana.phones == [ANA, ANA_WORK]
    assert ana.updated_at == datetime(2026, 11, 27, 9, 30, 0, 123000, tzinfo=UTC)
    assert second.records == [] and second.numberless == ("hs-102",) and second.skipped_numbers == 1
    assert second.latest == ana.updated_at


def test_hubspot_counts_the_contacts_read_at_one_millisecond_across_pages(fake_crm: FakeCarrierApi) -> None:
    newest_ms = 1_795_771_800_123
    fake_crm.json(200, {"total": 5, "results": [hs_contact("9")], "paging": {"next": {"after": "3"}}})
    crm = HubSpotCrm(StaticToken(TOKEN), base_url=fake_crm.url, page_size=1)

    # this query already stood at that millisecond, 2 read there: now 3
    page = crm.changed_records(SINCE, f"{newest_ms - 1}:2")
    assert page.cursor == f"{newest_ms - 1}:3"
    # a page moving to a newer millisecond starts counting again
    moved = crm.changed_records(SINCE, "1:7")
    assert moved.cursor == f"{newest_ms - 1}:1"


def test_hubspot_never_pages_one_query_past_10000(fake_crm: FakeCarrierApi) -> None:
    newest_ms = 1_795_771_800_123
    fake_crm.json(200, {"total": 20000, "results": [hs_contact("9")], "paging": {"next": {"after": "9950"}}})
    crm = HubSpotCrm(StaticToken(TOKEN), base_url=fake_crm.url, page_size=100)

    page = crm.changed_records(SINCE, f"{newest_ms - 1}:9950")  # 9,951 contacts changed in one ms

    assert page.cursor == f"{newest_ms}:"  # past that millisecond, a fresh query
    crm.changed_records(SINCE, page.cursor)
    restarted = fake_crm.seen[1].json
    assert "after" not in restarted
    assert restarted["filterGroups"][0]["filters"][0]["value"] == str(newest_ms)


def test_hubspot_first_sync_has_no_filter(fake_crm: FakeCarrierApi) -> None:
    fake_crm.json(200, {"total": 0, "results": []})
    HubSpotCrm(StaticToken(TOKEN), base_url=fake_crm.url).changed_records(None, None)
    assert "filterGroups" not in fake_crm.seen[0].json


@pytest.mark.parametrize(("status", "transient"), [(429, True), (502, True), (400, False)])
def test_hubspot_search_failures(fake_crm: FakeCarrierApi, status: int, transient: bool) -> None:
    fake_crm.json(status, {"status": "error", "message": "nope", "category": "RATE_LIMITS"})
    with pytest.raises(CrmError) as caught:
        HubSpotCrm(StaticToken(TOKEN), base_url=fake_crm.url).changed_records(SINCE, None)
    assert caught.value.transient is transient


# --- Dynamics 365 ----------------------------------------------------------------------------------


def d365_row(contact_id: str, **columns: object) -> dict[str, object]:
    row: dict[str, object] = {
        "@odata.etag": 'W/"1234"',
        "contactid": contact_id,
        "fullname": "Ana Silva",
        "firstname": "Ana",
        "lastname": "Silva",
        "mobilephone": ANA,
        "telephone1": "+1 415 555 0111",
        "telephone2": None,
        "_ownerid_value": "owner-guid",
        "modifiedon": "2026-11-27T09:30:00Z",
        "statecode": 0,
    }
    row.update(columns)
    return row


GUID = "49B0BE2E-D01C-ED11-B83E-000D3A572421"


def test_dynamics_queries_contacts_changed_after_the_watermark_paged_by_next_link(
    fake_crm: FakeCarrierApi,
) -> None:
    # "Page results using OData": Prefer: odata.maxpagesize=n; the answer's @odata.nextLink is the next
    # page's absolute URL. $filter modifiedon gt <datetime>, $orderby modifiedon asc, $select the columns.
    skiptoken = "%3Ccookie%20pagenumber=%222%22%3E"
    next_link = f"{fake_crm.url}/api/data/v9.2/contacts?$select=contactid&$skiptoken={skiptoken}"
    fake_crm.replies(
        (200, {"value": [d365_row(GUID)], "@odata.nextLink": next_link}),
        (200, {"value": [d365_row("70bf4d48-34cb-ed11-b596-0022481d68cd", statecode=1)]}),
    )
    crm = DynamicsCrm(fake_crm.url, StaticToken(TOKEN), page_size=1)

    first = crm.changed_records(SINCE, None)
    second = crm.changed_records(SINCE, first.cursor)

    seen = fake_crm.seen
    assert (seen[0].method, seen[0].path) == ("GET", "/api/data/v9.2/contacts")
    assert seen[0].args == {
        "$select": ",".join(CONTACT_COLUMNS),
        "$filter": "modifiedon gt 2026-11-27T09:00:00Z",
        "$orderby": "modifiedon asc",
    }
    assert seen[0].headers["prefer"] == "odata.maxpagesize=1"
    assert seen[0].headers["odata-version"] == "4.0" and seen[0].headers["odata-maxversion"] == "4.0"
    assert seen[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert f"{fake_crm.url}{seen[1].raw_uri}" == next_link
    assert first.cursor == next_link and second.cursor is None
    [ana] = first.records
    assert (ana.contact_id, ana.crm_id, ana.owner, ana.active) == (
        f"d365-{GUID.lower()}",
        GUID.lower(),
        "owner-guid",
        True,
    )
    assert ana.phones == [ANA, ANA_WORK] and ana.updated_at == datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
    assert second.records[0].active is False  # statecode 1: inactive


def test_dynamics_sends_the_token_only_to_its_own_instance(fake_crm: FakeCarrierApi) -> None:
    crm = DynamicsCrm(fake_crm.url, StaticToken(TOKEN))
    with pytest.raises(CrmError) as caught:
        crm.changed_records(SINCE, "https://elsewhere.example.com/api/data/v9.2/contacts?$skiptoken=1")
    assert caught.value.transient is False and fake_crm.seen == []


@pytest.mark.parametrize(("status", "transient"), [(429, True), (500, True), (403, False)])
def test_dynamics_query_failures(fake_crm: FakeCarrierApi, status: int, transient: bool) -> None:
    fake_crm.json(status, {"error": {"code": "0x80072322", "message": "nope"}})
    with pytest.raises(CrmError) as caught:
        DynamicsCrm(fake_crm.url, StaticToken(TOKEN)).changed_records(SINCE, None)
    assert caught.value.transient is transient


# --- our webhook protocol --------------------------------------------------------------------------

SECRET = "whsec-test"


def test_webhook_asks_for_changes_signed_over_the_query(fake_crm: FakeCarrierApi) -> None:
    fake_crm.replies(
        (
            200,
            {
                "records": [
                    {
                        "crm_id": "A1",
                        "type": "account",
                        "name": "Acme",
                        "first_name": None,
                        "last_name": None,
                        "phones": [ANA, "nope"],
                        "owner": "u1",
                        "team": "sales",
                        "active": True,
                        "updated_at": "2026-11-27T09:30:00.500Z",
                    },
                    {"crm_id": "X", "type": "planet", "phones": [ANA]},
                ],
                "cursor": "c2",
            },
        ),
        (200, {"records": [], "cursor": None}),
    )
    crm = WebhookCrm(fake_crm.url, SECRET)

    first = crm.changed_records(SINCE, None)
    second = crm.changed_records(SINCE, first.cursor)

    seen = fake_crm.seen
    assert (seen[0].method, seen[0].path) == ("GET", "/records/changes")
    assert seen[0].args == {"since": "2026-11-27T09:00:00.000Z"}
    assert seen[1].args == {"since": "2026-11-27T09:00:00.000Z", "cursor": "c2"}
    for s in seen:
        query = urlsplit(s.raw_uri).query.encode()
        assert verify(SECRET, s.headers["x-parley-timestamp"], query, s.headers["x-parley-signature"])
    assert first.cursor == "c2" and second.cursor is None
    [acme] = first.records
    assert (acme.contact_id, acme.crm_id, acme.record_type, acme.team, acme.owner) == (
        "crm-A1",
        "A1",
        "account",
        "sales",
        "u1",
    )
    assert acme.phones == [ANA] and first.skipped_numbers == 1
    assert "team" in acme.model_fields_set


def test_webhook_first_sync_sends_no_since(fake_crm: FakeCarrierApi) -> None:
    fake_crm.json(200, {"records": [], "cursor": None})
    WebhookCrm(fake_crm.url, SECRET).changed_records(None, None)
    assert fake_crm.seen[0].query == [] and fake_crm.seen[0].raw_uri == "/records/changes"


@pytest.mark.parametrize(("status", "transient"), [(429, True), (503, True), (401, False), (200, False)])
def test_webhook_change_failures(fake_crm: FakeCarrierApi, status: int, transient: bool) -> None:
    fake_crm.json(status, {"reason": "nope"} if status != 200 else "not json")
    with pytest.raises(CrmError) as caught:
        WebhookCrm(fake_crm.url, SECRET).changed_records(SINCE, None)
    assert caught.value.transient is transient


# --- shared ----------------------------------------------------------------------------------------


def test_a_skipped_number_is_logged_with_the_record_id_not_the_number(
    fake_crm: FakeCarrierApi, caplog: pytest.LogCaptureFixture
) -> None:
    fake_crm.json(200, {"total": 1, "results": [hs_contact("101", phone="+1 415 555 01")]})
    with caplog.at_level(logging.DEBUG):
        HubSpotCrm(StaticToken(TOKEN), base_url=fake_crm.url).changed_records(SINCE, None)
    messages = [r.getMessage() for r in caplog.records]
    assert any("101" in m and "skipped" in m for m in messages)
    assert not any("555" in m or TOKEN in m for m in messages)


def test_the_registry_builds_every_crm_as_a_record_source() -> None:
    settings = {
        "webhook": Settings(crm_webhook_url="https://crm.example.com", crm_signing_secret="s"),
        "salesforce": Settings(
            crm_salesforce_instance_url="https://x.my.salesforce.com", crm_salesforce_access_token="t"
        ),
        "hubspot": Settings(crm_hubspot_token="t"),
        "dynamics": Settings(
            crm_dynamics_instance_url="https://x.crm.dynamics.com", crm_dynamics_access_token="t"
        ),
    }
    for name, configured in settings.items():
        source = build_record_source(name, configured)
        assert isinstance(source, RecordSource) and source.name == name
