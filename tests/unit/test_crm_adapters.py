"""The Salesforce, HubSpot and Dynamics 365 CRM plugins against a local stand-in for each API.

Every request is checked against the shape the CRM documents (cited at each expectation), then what
each answer means: created or updated, and which failures are transient (429, 5xx, timeouts) or
permanent (other 4xx, with the CRM's own reason). Tokens and phone numbers never reach a log line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
import requests
from werkzeug.wrappers import Request, Response

from parley.config import Settings
from parley.crm._http import ClientCredentials, StaticToken
from parley.crm.dynamics import DynamicsCrm
from parley.crm.hubspot import HubSpotCrm
from parley.crm.registry import build_crm
from parley.crm.salesforce import SalesforceCrm
from parley.crm.webhook import CrmError
from parley.services.digest import external_id
from tests.carrier_api import FakeCarrierApi, carrier_api_fixtures, refused_url

carrier_api_server, fake_crm = carrier_api_fixtures("fake_crm")

TOKEN = "tok-SECRET-0123456789"
CUSTOMER = "+14155550100"
DAY = "2026-11-27"
EXTERNAL_ID = external_id(CUSTOMER, DAY)  # parley-sms-14155550100-2026-11-27
# the digest's payload for one conversation's day (DigestService._payload)
PAYLOAD: dict[str, Any] = {
    "type": "sms_digest",
    "day": DAY,
    "customer_number": CUSTOMER,
    "contact_id": "c1",
    "crm_contact_id": "003XYZ",
    "subject": "SMS with Ana Silva on 2026-11-27",
    "message_count": 2,
    "messages": [
        {
            "message_id": "in-1",
            "direction": "inbound",
            "at": "2026-11-27T09:00:00+00:00",
            "from": CUSTOMER,
            "to": "+15005550006",
            "body": "Are you open <today>?",
            "status": "received",
        },
        {
            "message_id": "out-1",
            "direction": "outbound",
            "at": "2026-11-27T09:05:00+00:00",
            "from": "+15005550006",
            "to": CUSTOMER,
            "body": "Yes, until 6pm.",
            "status": "delivered",
        },
    ],
}
LINES = [
    f"2026-11-27T09:00:00+00:00 inbound {CUSTOMER} → +15005550006: Are you open <today>? [received]",
    f"2026-11-27T09:05:00+00:00 outbound +15005550006 → {CUSTOMER}: Yes, until 6pm. [delivered]",
]


def reply(
    status: int, payload: Any = None, headers: dict[str, str] | None = None
) -> Callable[[Request], Response]:
    def answer(_request: Request) -> Response:
        body = "" if payload is None else json.dumps(payload)
        return Response(body, status=status, content_type="application/json", headers=headers or {})

    return answer


def assert_bearer_json(seen: Any, token: str = TOKEN) -> None:
    assert seen.headers["authorization"] == f"Bearer {token}"
    assert seen.mimetype == "application/json"
    assert seen.headers["accept"] == "application/json"


# --- Salesforce -------------------------------------------------------------------------------------

SF_PATH = f"/services/data/v62.0/sobjects/Task/Parley_External_Id__c/{EXTERNAL_ID}"


def salesforce(fake: FakeCarrierApi, timeout: float = 5.0) -> SalesforceCrm:
    return SalesforceCrm(fake.url, StaticToken(TOKEN), timeout=timeout)


def test_salesforce_creates_a_task_by_external_id(fake_crm: FakeCarrierApi) -> None:
    # "Insert or Update (Upsert) a Record Using an External ID":
    # https://developer.salesforce.com/docs/platform/api-rest/guide/dome-upsert.html
    # PATCH /services/data/vXX.X/sobjects/<SObject>/<ExternalIdField>/<value>, bearer token, JSON fields;
    # a new record answers 201 {"id", "success": true, "errors": [], "created": true}
    fake_crm.json(201, {"id": "00TXX0000001AAA", "success": True, "errors": [], "created": True})
    result = salesforce(fake_crm).upsert(EXTERNAL_ID, PAYLOAD)
    assert (result.crm_id, result.created) == ("00TXX0000001AAA", True)
    [seen] = fake_crm.seen
    assert (seen.method, seen.path) == ("PATCH", SF_PATH)
    assert_bearer_json(seen)
    # Task fields (Task object reference): Subject, Description, ActivityDate (date), Status, WhoId
    assert seen.json == {
        "Subject": "SMS with Ana Silva on 2026-11-27",
        "Description": "\n".join(LINES),
        "ActivityDate": "2026-11-27",
        "Status": "Completed",
        "WhoId": "003XYZ",
    }


def test_salesforce_update_is_200_created_false_or_204_before_api_46(fake_crm: FakeCarrierApi) -> None:
    # same page: API 46.0+ answers an update with 200 and "created": false; 45.0 and older with 204
    fake_crm.json(200, {"id": "00TXX0000001AAA", "success": True, "errors": [], "created": False})
    no_contact = {**PAYLOAD, "crm_contact_id": None}
    result = salesforce(fake_crm).upsert(EXTERNAL_ID, no_contact)
    assert (result.crm_id, result.created) == ("00TXX0000001AAA", False)
    assert "WhoId" not in fake_crm.seen[0].json
    fake_crm.reply = reply(204)
    assert salesforce(fake_crm).upsert(EXTERNAL_ID, PAYLOAD).created is False


def test_salesforce_client_credentials_token_and_one_refresh_after_401(fake_crm: FakeCarrierApi) -> None:
    # OAuth 2.0 client credentials flow: POST {My Domain}/services/oauth2/token,
    # grant_type=client_credentials&client_id=...&client_secret=... → {"access_token", "instance_url", ...}
    tokens = iter(["first-token", "second-token"])

    def answer(request: Request) -> Response:
        if request.path == "/services/oauth2/token":
            return reply(200, {"access_token": next(tokens), "token_type": "Bearer"})(request)
        if request.headers["Authorization"] == "Bearer first-token":
            return reply(401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])(
                request
            )
        return reply(201, {"id": "00TXX0000001AAA", "success": True, "errors": [], "created": True})(request)

    fake_crm.reply = answer
    token = ClientCredentials(
        f"{fake_crm.url}/services/oauth2/token",
        "cid",
        "csecret",
        session=requests.Session(),
        timeout=5,
    )
    result = SalesforceCrm(fake_crm.url, token).upsert(EXTERNAL_ID, PAYLOAD)
    assert result.created is True
    paths = [(s.method, s.path) for s in fake_crm.seen]
    assert paths == [
        ("POST", "/services/oauth2/token"),
        ("PATCH", SF_PATH),
        ("POST", "/services/oauth2/token"),
        ("PATCH", SF_PATH),
    ]
    assert fake_crm.seen[0].form == [
        ("grant_type", "client_credentials"),
        ("client_id", "cid"),
        ("client_secret", "csecret"),
    ]
    assert fake_crm.seen[3].headers["authorization"] == "Bearer second-token"


@pytest.mark.parametrize(
    ("status", "body", "transient", "words"),
    [
        # "Status Codes and Error Responses": errors are [{"message", "errorCode"}]
        (429, [{"message": "rate limited", "errorCode": "REQUEST_LIMIT_EXCEEDED"}], True, "429"),
        (503, [{"message": "maintenance", "errorCode": "SERVER_UNAVAILABLE"}], True, "maintenance"),
        (400, [{"message": "No such column 'Foo__c'", "errorCode": "INVALID_FIELD"}], False, "INVALID_FIELD"),
        (
            404,
            [{"message": "Provided external ID field does not exist", "errorCode": "NOT_FOUND"}],
            False,
            "NOT_FOUND",
        ),
        (
            300,
            ["/services/data/v62.0/sobjects/Task/00T1", "/services/data/v62.0/sobjects/Task/00T2"],
            False,
            "300",
        ),
    ],
)
def test_salesforce_failures(
    fake_crm: FakeCarrierApi, status: int, body: Any, transient: bool, words: str
) -> None:
    fake_crm.reply = reply(status, body, {"Retry-After": "7"} if status == 429 else None)
    with pytest.raises(CrmError) as caught:
        salesforce(fake_crm).upsert(EXTERNAL_ID, PAYLOAD)
    assert caught.value.transient is transient
    assert caught.value.status_code == status
    assert words in caught.value.reason
    assert TOKEN not in caught.value.reason
    assert caught.value.retry_after == (7.0 if status == 429 else None)


def test_salesforce_timeout_and_refused_are_transient(fake_crm: FakeCarrierApi) -> None:
    fake_crm.slow(201, {"id": "00T"})
    with pytest.raises(CrmError) as caught:
        salesforce(fake_crm, timeout=0.2).upsert(EXTERNAL_ID, PAYLOAD)
    assert caught.value.transient is True
    with refused_url() as url, pytest.raises(CrmError) as refused:
        SalesforceCrm(url, StaticToken(TOKEN)).upsert(EXTERNAL_ID, PAYLOAD)
    assert refused.value.transient is True


# --- HubSpot --------------------------------------------------------------------------------------

SEARCH = {
    # CRM search API: POST /crm/v3/objects/{objectType}/search with filterGroups → filters
    # (propertyName, operator "EQ", value); answers {"total", "results": [{"id", "properties"}]}
    "filterGroups": [
        {"filters": [{"propertyName": "parley_external_id", "operator": "EQ", "value": EXTERNAL_ID}]}
    ],
    "properties": ["parley_external_id"],
    "limit": 10,
}
NOTE_PROPERTIES = {
    # notes guide (https://developers.hubspot.com/docs/api-reference/crm-notes-v3/guide): hs_timestamp
    # (required; UTC format or ms), hs_note_body (≤ 65,536 characters), plus our custom property
    "hs_timestamp": "2026-11-27T09:05:00.000Z",
    "hs_note_body": "<br>".join(
        [
            "<strong>SMS with Ana Silva on 2026-11-27</strong>",
            f"2026-11-27T09:00:00+00:00 inbound {CUSTOMER} → +15005550006: "
            "Are you open &lt;today&gt;? [received]",
            LINES[1],
        ]
    ),
    "parley_external_id": EXTERNAL_ID,
}


def hubspot(fake: FakeCarrierApi) -> HubSpotCrm:
    return HubSpotCrm(StaticToken(TOKEN), base_url=fake.url, timeout=5)


def test_hubspot_creates_a_note_associated_with_the_contact(fake_crm: FakeCarrierApi) -> None:
    fake_crm.replies((200, {"total": 0, "results": []}), (201, {"id": "51234", "properties": {}}))
    result = hubspot(fake_crm).upsert(EXTERNAL_ID, PAYLOAD)
    assert (result.crm_id, result.created) == ("51234", True)
    search, create = fake_crm.seen
    assert (search.method, search.path) == ("POST", "/crm/v3/objects/notes/search")
    assert_bearer_json(search)
    assert search.json == SEARCH
    assert (create.method, create.path) == ("POST", "/crm/v3/objects/notes")
    assert_bearer_json(create)
    # notes guide, "Associations": to.id plus types [{associationCategory HUBSPOT_DEFINED,
    # associationTypeId 202 (note to contact)}]
    assert create.json == {
        "properties": NOTE_PROPERTIES,
        "associations": [
            {
                "to": {"id": "003XYZ"},
                "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}],
            }
        ],
    }


def test_hubspot_updates_the_note_it_finds(fake_crm: FakeCarrierApi) -> None:
    fake_crm.replies(
        (
            200,
            {"total": 2, "results": [{"id": "90001", "properties": {}}, {"id": "51234", "properties": {}}]},
        ),
        (200, {"id": "51234", "properties": {}}),
    )
    result = hubspot(fake_crm).upsert(EXTERNAL_ID, PAYLOAD)
    assert (result.crm_id, result.created) == ("51234", False)  # the oldest of the duplicates
    _search, update = fake_crm.seen
    # notes guide, "Update notes": PATCH /crm/v3/objects/notes/{noteId} with {"properties": {...}}
    assert (update.method, update.path) == ("PATCH", "/crm/v3/objects/notes/51234")
    assert_bearer_json(update)
    assert update.json == {"properties": NOTE_PROPERTIES}


def test_hubspot_without_a_contact_creates_an_unassociated_note(fake_crm: FakeCarrierApi) -> None:
    fake_crm.replies((200, {"total": 0, "results": []}), (201, {"id": "7"}))
    hubspot(fake_crm).upsert(EXTERNAL_ID, {**PAYLOAD, "crm_contact_id": None})
    assert fake_crm.seen[1].json == {"properties": NOTE_PROPERTIES}


@pytest.mark.parametrize(
    ("status", "body", "transient", "words"),
    [
        # error bodies: {"status": "error", "message", "correlationId", "category"}
        (
            429,
            {
                "status": "error",
                "message": "You have reached your secondly limit.",
                "category": "RATE_LIMITS",
            },
            True,
            "secondly limit",
        ),
        (502, {"status": "error", "message": "bad gateway"}, True, "502"),
        (
            400,
            {"status": "error", "message": "Property values were not valid", "category": "VALIDATION_ERROR"},
            False,
            "not valid",
        ),
        (
            401,
            {
                "status": "error",
                "message": "Authentication credentials not found",
                "category": "INVALID_AUTHENTICATION",
            },
            False,
            "credentials",
        ),
    ],
)
def test_hubspot_failures(
    fake_crm: FakeCarrierApi, status: int, body: Any, transient: bool, words: str
) -> None:
    fake_crm.reply = reply(status, body, {"Retry-After": "1"} if status == 429 else None)
    with pytest.raises(CrmError) as caught:
        hubspot(fake_crm).upsert(EXTERNAL_ID, PAYLOAD)
    assert (caught.value.transient, caught.value.status_code) == (transient, status)
    assert words in caught.value.reason
    assert TOKEN not in caught.value.reason


# --- Dynamics 365 ---------------------------------------------------------------------------------

# "Update and delete table rows using the Web API", Upsert a table row:
# https://learn.microsoft.com/power-apps/developer/data-platform/webapi/update-delete-entities-using-web-api
# PATCH [Organization URI]/api/data/v9.2/<entityset>(<altkey>='<value>') with the OData headers; with
# Prefer: return=representation a create answers 201 and an update 200, without it both answer 204.
DYN_URI = f"/api/data/v9.2/phonecalls(parley_externalid='{EXTERNAL_ID}')?$select=activityid"
ACTIVITY = {
    "subject": "SMS with Ana Silva on 2026-11-27",
    "description": "\n".join(LINES),
    "phonenumber": CUSTOMER,
    "actualstart": "2026-11-27T09:00:00+00:00",
    "actualend": "2026-11-27T09:05:00+00:00",
    # a single-valued navigation property is set with <name>@odata.bind: "/<entityset>(<id>)"
    "regardingobjectid_contact@odata.bind": "/contacts(003XYZ)",
}
ACTIVITY_ID = "7a3c1f4e-0d2b-4f7e-9c1a-2b3c4d5e6f70"


def dynamics(fake: FakeCarrierApi) -> DynamicsCrm:
    return DynamicsCrm(fake.url, StaticToken(TOKEN), timeout=5)


@pytest.mark.parametrize(("status", "created"), [(201, True), (200, False)])
def test_dynamics_upserts_by_alternate_key(fake_crm: FakeCarrierApi, status: int, created: bool) -> None:
    fake_crm.json(status, {"@odata.etag": 'W/"1"', "activityid": ACTIVITY_ID})
    result = dynamics(fake_crm).upsert(EXTERNAL_ID, PAYLOAD)
    assert (result.crm_id, result.created) == (ACTIVITY_ID, created)
    [seen] = fake_crm.seen
    assert (seen.method, seen.raw_uri) == ("PATCH", DYN_URI)
    assert_bearer_json(seen)
    assert seen.headers["odata-maxversion"] == "4.0"
    assert seen.headers["odata-version"] == "4.0"
    assert seen.headers["prefer"] == "return=representation"
    assert (
        "if-match" not in seen.headers and "if-none-match" not in seen.headers
    )  # either would stop the upsert
    assert seen.json == ACTIVITY


def test_dynamics_204_reads_the_id_from_odata_entityid(fake_crm: FakeCarrierApi) -> None:
    fake_crm.reply = reply(
        204, None, {"OData-EntityId": f"{fake_crm.url}/api/data/v9.2/phonecalls({ACTIVITY_ID})"}
    )
    result = dynamics(fake_crm).upsert(EXTERNAL_ID, {**PAYLOAD, "crm_contact_id": None})
    assert (result.crm_id, result.created) == (ACTIVITY_ID, False)
    assert "regardingobjectid_contact@odata.bind" not in fake_crm.seen[0].json


@pytest.mark.parametrize(
    ("status", "body", "transient", "words"),
    [
        # OData error: {"error": {"code", "message"}}; service protection limits answer 429 + Retry-After
        (
            429,
            {"error": {"code": "0x80072322", "message": "Number of requests exceeded the limit"}},
            True,
            "Retry-After 30s",
        ),
        (
            500,
            {"error": {"code": "0x80040216", "message": "An unexpected error occurred."}},
            True,
            "unexpected",
        ),
        (
            400,
            {"error": {"code": "0x80060888", "message": "Invalid property 'foo'"}},
            False,
            "Invalid property",
        ),
        (
            404,
            {
                "error": {
                    "code": "0x80060891",
                    "message": "A record with the specified key values does not exist",
                }
            },
            False,
            "404",
        ),
    ],
)
def test_dynamics_failures(
    fake_crm: FakeCarrierApi, status: int, body: Any, transient: bool, words: str
) -> None:
    fake_crm.reply = reply(status, body, {"Retry-After": "30"} if status == 429 else None)
    with pytest.raises(CrmError) as caught:
        dynamics(fake_crm).upsert(EXTERNAL_ID, PAYLOAD)
    assert (caught.value.transient, caught.value.status_code) == (transient, status)
    assert words in caught.value.reason
    assert TOKEN not in caught.value.reason


# --- all of them ----------------------------------------------------------------------------------


def test_no_token_or_phone_number_is_logged(
    fake_crm: FakeCarrierApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_crm.json(
        201, {"id": "00T1", "success": True, "errors": [], "created": True, "activityid": ACTIVITY_ID}
    )
    salesforce(fake_crm).upsert(EXTERNAL_ID, PAYLOAD)
    dynamics(fake_crm).upsert(EXTERNAL_ID, PAYLOAD)
    fake_crm.replies((200, {"total": 0, "results": []}), (201, {"id": "5"}))
    hubspot(fake_crm).upsert(EXTERNAL_ID, PAYLOAD)
    # our own log lines (urllib3's DEBUG lines carry request URLs, and the external id holds the digits)
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("parley"))
    assert "salesforce task 00T1" in logged
    assert TOKEN not in logged
    assert CUSTOMER.lstrip("+") not in logged


def test_the_registry_builds_each_crm_from_settings() -> None:
    salesforce_crm = build_crm(
        "salesforce",
        Settings(
            crm_salesforce_instance_url="https://acme.my.salesforce.com/", crm_salesforce_access_token=TOKEN
        ),
    )
    assert isinstance(salesforce_crm, SalesforceCrm)
    assert salesforce_crm.task_url("x") == (
        "https://acme.my.salesforce.com/services/data/v62.0/sobjects/Task/Parley_External_Id__c/x"
    )
    assert isinstance(build_crm("HubSpot", Settings(crm_hubspot_token=TOKEN)), HubSpotCrm)
    dynamics_crm = build_crm(
        "dynamics",
        Settings(
            crm_dynamics_instance_url="https://acme.crm.dynamics.com",
            crm_dynamics_tenant_id="tenant",
            crm_dynamics_client_id="cid",
            crm_dynamics_client_secret="secret",
        ),
    )
    assert isinstance(dynamics_crm, DynamicsCrm)
    for name, settings, words in [
        ("salesforce", Settings(), "INSTANCE_URL"),
        ("salesforce", Settings(crm_salesforce_instance_url="https://x"), "access token"),
        ("hubspot", Settings(), "HUBSPOT_TOKEN"),
        (
            "dynamics",
            Settings(crm_dynamics_instance_url="https://x", crm_dynamics_client_id="c"),
            "access token",
        ),
    ]:
        with pytest.raises(ValueError, match=words):
            build_crm(name, settings)
