"""Salesforce: each digest day is a Task, upserted by an external-id field through the REST API.

    PATCH {instance}/services/data/{version}/sobjects/Task/{external_id_field}/{external_id}
    Authorization: Bearer <token>
    {"Subject": ..., "Description": <the day's messages, in order; the newest that fit in 32,000
     characters, whole lines, when they don't all>, "ActivityDate": "YYYY-MM-DD",
     "Status": "Completed", "WhoId": <the contact's Salesforce id, when the payload links one>}

Salesforce answers 201 when it created the Task and, from API version 46.0, 200 with
``{"id", "success", "errors", "created": false}`` when it updated one (204 with no body before 46.0);
300 means the external id matched several Tasks. Docs: "Insert or Update (Upsert) a Record Using an
External ID", https://developer.salesforce.com/docs/platform/api-rest/guide/dome-upsert.html

Setup in the org: a Text custom field on Task (Activity) marked External ID and Unique (default
``Parley_External_Id__c``), and a connected app the integration user can use. The token is either a
configured one (``PARLEY_CRM_SALESFORCE_ACCESS_TOKEN`` or its SSM parameter) or fetched with the OAuth 2.0
client-credentials flow from ``{instance}/services/oauth2/token``; a 401 fetches a fresh one once.

Record sync (`changed_records`): Contacts, then Leads, changed after the watermark, through SOQL:

    GET {instance}/services/data/{version}/queryAll?q=SELECT Id, Name, ... FROM Contact
        WHERE LastModifiedDate > 2026-11-27T09:00:00Z ORDER BY LastModifiedDate ASC
    Sforce-Query-Options: batchSize=<page size>

QueryAll is the Query resource plus the records in the recycle bin, whose ``IsDeleted`` is true: a
deleted Contact or Lead must become inactive in Parley, and Query would never show it. Each answer is
``{"totalSize", "done", "records": [{"attributes": {...}, "Id", ...}], "nextRecordsUrl"}``; the next
batch is ``GET {instance}{nextRecordsUrl}`` with no parameters. A converted Lead (``IsConverted``) is
inactive too: its Contact carries on. The watermark moves with the Contacts' change times only (see
`changed_records`). Docs: "Execute a SOQL Query that Includes Deleted Items",
https://developer.salesforce.com/docs/platform/api-rest/guide/dome-queryall.html
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, quote_plus

import requests

from parley.crm._http import TokenSource, call, day_lines, fit_lines
from parley.crm.changes import PageBuilder, RecordPage, parse_crm_time
from parley.crm.webhook import CrmError, CrmUpsertResult

__all__ = ["SYNCED_OBJECTS", "SalesforceCrm", "task_fields"]

logger = logging.getLogger(__name__)

SUBJECT_MAX = 255  # Task.Subject
SYNCED_OBJECTS = ("Contact", "Lead")  # in this order; the cursor names the one being read
_COMMON_FIELDS = "Id, Name, FirstName, LastName, Phone, MobilePhone, OwnerId, LastModifiedDate, IsDeleted"
DESCRIPTION_MAX = 32_000  # Task.Description (a long text area)


def task_fields(payload: dict[str, Any]) -> dict[str, Any]:
    """The Task's fields for one digest day (the external-id field is in the URL, not the body)."""
    fields: dict[str, Any] = {
        "Subject": str(payload.get("subject") or f"SMS on {payload.get('day', '')}")[:SUBJECT_MAX],
        "Description": fit_lines(day_lines(payload), DESCRIPTION_MAX),
        "ActivityDate": payload.get("day"),
        "Status": "Completed",
    }
    if payload.get("crm_contact_id"):
        fields["WhoId"] = str(payload["crm_contact_id"])
    return fields


class SalesforceCrm:
    name = "salesforce"

    def __init__(
        self,
        instance_url: str,
        token: TokenSource,
        *,
        api_version: str = "v62.0",
        external_id_field: str = "Parley_External_Id__c",
        timeout: float = 10.0,
        session: requests.Session | None = None,
        region: str = "US",
        page_size: int = 200,
    ) -> None:
        if not instance_url:
            raise ValueError("Salesforce needs an instance URL")
        if not external_id_field:
            raise ValueError("Salesforce needs the Task's external-id field")
        self._instance = instance_url.rstrip("/")
        self._token = token
        self._version = api_version if api_version.startswith("v") else f"v{api_version}"
        self._field = external_id_field
        self._timeout = timeout
        self._session = session or requests.Session()
        self._region = region
        self._page_size = max(200, min(page_size, 2000))  # the batch sizes Salesforce accepts

    def task_url(self, external_id: str) -> str:
        return (
            f"{self._instance}/services/data/{self._version}/sobjects/Task/"
            f"{quote(self._field, safe='')}/{quote(external_id, safe='')}"
        )

    def upsert(self, external_id: str, payload: dict[str, Any]) -> CrmUpsertResult:
        if not external_id:
            raise ValueError("external_id must not be empty")
        url = self.task_url(external_id)
        response = call(
            self._session,
            "PATCH",
            url,
            crm="Salesforce",
            token=self._token,
            json_body=task_fields(payload),
            timeout=self._timeout,
        )
        status = response.status_code
        data: Any = None
        if response.content:
            try:
                data = response.json()
            except ValueError:
                data = None
        crm_id = data.get("id") if isinstance(data, dict) else None
        if status == 204 and not crm_id:
            # API 45.0 and older answer an update with no body: the id is one GET away, which we skip
            return CrmUpsertResult(crm_id=external_id, created=False, version=0)
        if not isinstance(crm_id, str) or not crm_id:
            raise CrmError(
                f"Salesforce answered {status} without a record id", transient=False, status_code=status
            )
        if isinstance(data, dict) and data.get("success") is False:
            raise CrmError(
                f"Salesforce answered {status} with success=false: {data.get('errors')}", transient=False
            )
        created = data.get("created") if isinstance(data, dict) else None
        result = CrmUpsertResult(
            crm_id=crm_id, created=created if isinstance(created, bool) else status == 201, version=0
        )
        logger.debug(
            "salesforce task %s (created=%s)", crm_id, result.created
        )  # no external id: it holds the number
        return result

    def soql(self, sobject: str, since: datetime | None) -> str:
        """The query for one object's changes; datetimes are SOQL literals (no quotes, UTC)."""
        fields = _COMMON_FIELDS + (", IsConverted" if sobject == "Lead" else "")
        where = ""
        if since is not None:
            where = f" WHERE LastModifiedDate > {since.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"
        return f"SELECT {fields} FROM {sobject}{where} ORDER BY LastModifiedDate ASC"

    def changed_records(self, since: datetime | None, cursor: str | None) -> RecordPage:
        """One batch of Contacts, then of Leads; the cursor is ``<object>:<nextRecordsUrl>``."""
        sobject, _, next_url = (cursor or f"{SYNCED_OBJECTS[0]}:").partition(":")
        if sobject not in SYNCED_OBJECTS or (next_url and not next_url.startswith("/services/data/")):
            raise CrmError(f"Salesforce sync cursor {cursor!r} is not one of ours", transient=False)
        if next_url:
            url = f"{self._instance}{next_url}"
        else:
            soql = quote_plus(self.soql(sobject, since))
            url = f"{self._instance}/services/data/{self._version}/queryAll?q={soql}"
        response = call(
            self._session,
            "GET",
            url,
            crm="Salesforce",
            token=self._token,
            json_body=None,
            timeout=self._timeout,
            headers={"Sforce-Query-Options": f"batchSize={self._page_size}"},
        )
        data = _json(response)
        rows = data.get("records") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(rows, list):
            raise CrmError("Salesforce answered a query without records", transient=False)
        builder = PageBuilder("salesforce", self._region)
        for row in rows:
            if not isinstance(row, dict) or not row.get("Id"):
                continue
            record_id = str(row["Id"])
            builder.add(
                contact_id=f"sf-{record_id}",
                crm_id=record_id,
                name=str(row.get("Name") or ""),
                first_name=row.get("FirstName"),
                last_name=row.get("LastName"),
                phones=(row.get("MobilePhone"), row.get("Phone")),  # the mobile first: it can text
                owner=row.get("OwnerId"),
                record_type="lead" if sobject == "Lead" else "contact",
                active=not (row.get("IsDeleted") is True or row.get("IsConverted") is True),
                updated_at=parse_crm_time(row.get("LastModifiedDate")),
            )
        more = data.get("nextRecordsUrl")
        if not data.get("done", True) and isinstance(more, str) and more:
            following: str | None = f"{sobject}:{more}"
        else:
            after = SYNCED_OBJECTS.index(sobject) + 1
            following = f"{SYNCED_OBJECTS[after]}:" if after < len(SYNCED_OBJECTS) else None
        page = builder.page(following)
        if sobject != SYNCED_OBJECTS[0]:
            # The watermark follows Contacts only. Leads are queried later than Contacts, so a Lead's
            # change time can be newer than a Contact changed after the Contact query: moving the
            # watermark to it would skip that Contact. Leads changed since are simply read again.
            page = replace(page, latest=None)
        return page


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
