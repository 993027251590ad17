"""Dynamics 365 (Dataverse): each digest day is an activity (by default a ``phonecall``), upserted by an
alternate key through the Web API.

    PATCH {instance}/api/data/v9.2/{entity_set}({key}='{external_id}')?$select=activityid
    Authorization: Bearer <token>
    OData-MaxVersion: 4.0 / OData-Version: 4.0 / Accept: application/json
    Prefer: return=representation
    {"subject": ..., "description": <the day's messages, in order; the newest 2,000 characters' worth,
     whole lines, when they don't all fit>, "phonenumber": <customer>,
     "actualstart": ..., "actualend": ..., "regardingobjectid_contact@odata.bind": "/contacts(<id>)"}

Without ``If-Match``/``If-None-Match`` a PATCH to an alternate-key URL is an upsert: Dataverse creates the
row when the key matches none and updates it otherwise. With ``Prefer: return=representation`` it answers
201 Created or 200 OK with the row, so we can tell the two apart; without that preference it answers
204 with the row's URL in ``OData-EntityId``. Docs: "Update and delete table rows using the Web API"
(Upsert a table row), https://learn.microsoft.com/power-apps/developer/data-platform/webapi/update-delete-entities-using-web-api
and "Use Upsert to Create or Update a record".

Setup: a text column on the activity table (default ``parley_externalid``) with an alternate key over it.
The activity is left open: Dataverse makes a completed activity read-only, and a late message must still
update it. The token is a configured one or comes from Microsoft Entra ID's client-credentials flow
(``scope={instance}/.default``); a 401 fetches a fresh one once. Service-protection limits answer 429 with
``Retry-After`` (transient).

Record sync (`changed_records`): contacts changed after the watermark, oldest first, through OData:

    GET {instance}/api/data/v9.2/contacts?$select=contactid,fullname,...&$filter=modifiedon gt <UTC>
        &$orderby=modifiedon asc
    Prefer: odata.maxpagesize=<page size>

Dataverse answers ``{"value": [...], "@odata.nextLink": <absolute URL of the next page>}`` (no
``$skip``: the next link is the only way on). ``statecode`` 1 is an inactive contact. Docs: "Page
results using OData", https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query/page-results
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import requests

from parley.crm._http import TokenSource, call, day_lines, fit_lines
from parley.crm.changes import PageBuilder, RecordPage, parse_crm_time
from parley.crm.webhook import CrmError, CrmUpsertResult

__all__ = ["CONTACT_COLUMNS", "DynamicsCrm", "activity_fields"]

logger = logging.getLogger(__name__)

SUBJECT_MAX = 200  # activitypointer.subject
DESCRIPTION_MAX = 2_000  # phonecall.description's default maximum length
ODATA_HEADERS = {
    "OData-MaxVersion": "4.0",
    "OData-Version": "4.0",
    "Prefer": "return=representation",
}
CONTACT_COLUMNS = (
    "contactid",
    "fullname",
    "firstname",
    "lastname",
    "mobilephone",
    "telephone1",
    "telephone2",
    "_ownerid_value",
    "modifiedon",
    "statecode",
)
_ENTITY_ID = re.compile(r"\(([0-9a-fA-F-]{36})\)\s*$")


def activity_fields(payload: dict[str, Any]) -> dict[str, Any]:
    """The activity's columns for one digest day (the key column is in the URL, not the body)."""
    messages = [m for m in payload.get("messages") or [] if isinstance(m, dict)]
    fields: dict[str, Any] = {
        "subject": str(payload.get("subject") or f"SMS on {payload.get('day', '')}")[:SUBJECT_MAX],
        "description": fit_lines(day_lines(payload), DESCRIPTION_MAX),
        "phonenumber": payload.get("customer_number"),
    }
    if messages:
        fields["actualstart"] = messages[0].get("at")
        fields["actualend"] = messages[-1].get("at")
    if payload.get("crm_contact_id"):
        fields["regardingobjectid_contact@odata.bind"] = f"/contacts({payload['crm_contact_id']})"
    return fields


class DynamicsCrm:
    name = "dynamics"

    def __init__(
        self,
        instance_url: str,
        token: TokenSource,
        *,
        entity_set: str = "phonecalls",
        alternate_key: str = "parley_externalid",
        timeout: float = 10.0,
        session: requests.Session | None = None,
        region: str = "US",
        page_size: int = 200,
    ) -> None:
        if not instance_url:
            raise ValueError("Dynamics 365 needs an instance URL")
        if not entity_set or not alternate_key:
            raise ValueError("Dynamics 365 needs the activity's entity set and alternate-key column")
        self._instance = instance_url.rstrip("/")
        self._token = token
        self._entity_set = entity_set
        self._key = alternate_key
        self._timeout = timeout
        self._session = session or requests.Session()
        self._region = region
        self._page_size = max(1, min(page_size, 5000))  # Dataverse ignores a larger odata.maxpagesize

    def row_url(self, external_id: str) -> str:
        literal = external_id.replace("'", "''")  # an OData string literal doubles its quotes
        return (
            f"{self._instance}/api/data/v9.2/{quote(self._entity_set, safe='')}"
            f"({quote(self._key, safe='')}='{quote(literal, safe='')}')?$select=activityid"
        )

    def upsert(self, external_id: str, payload: dict[str, Any]) -> CrmUpsertResult:
        if not external_id:
            raise ValueError("external_id must not be empty")
        response = call(
            self._session,
            "PATCH",
            self.row_url(external_id),
            crm="Dynamics 365",
            token=self._token,
            json_body=activity_fields(payload),
            timeout=self._timeout,
            headers=ODATA_HEADERS,
        )
        status = response.status_code
        crm_id: Any = None
        if response.content:
            try:
                data = response.json()
            except ValueError:
                data = None
            if isinstance(data, dict):
                crm_id = data.get("activityid")
        if not crm_id:
            found = _ENTITY_ID.search(response.headers.get("OData-EntityId", ""))
            crm_id = found.group(1) if found else None
        if not isinstance(crm_id, str) or not crm_id:
            raise CrmError(
                f"Dynamics 365 answered {status} without the row's id", transient=False, status_code=status
            )
        created = status == 201  # 204 (no representation) can't say; the digest keeps its own count
        logger.debug("dynamics activity %s (created=%s)", crm_id, created)
        return CrmUpsertResult(crm_id=crm_id, created=created, version=0)

    def contacts_url(self, since: datetime | None) -> str:
        """The first page's URL; the datetime is an OData literal (no quotes, UTC)."""
        query = [f"$select={','.join(CONTACT_COLUMNS)}"]
        if since is not None:
            literal = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            query.append(f"$filter={quote(f'modifiedon gt {literal}', safe=':')}")
        query.append(f"$orderby={quote('modifiedon asc')}")
        return f"{self._instance}/api/data/v9.2/contacts?{'&'.join(query)}"

    def changed_records(self, since: datetime | None, cursor: str | None) -> RecordPage:
        """One page of contacts changed after the watermark; the cursor is Dataverse's next link."""
        if cursor and not cursor.startswith(f"{self._instance}/api/data/"):
            # the bearer token goes only to our instance, whatever a stored cursor says
            raise CrmError("Dynamics 365 sync cursor is not a link to this instance", transient=False)
        response = call(
            self._session,
            "GET",
            cursor or self.contacts_url(since),
            crm="Dynamics 365",
            token=self._token,
            json_body=None,
            timeout=self._timeout,
            headers={
                "OData-MaxVersion": "4.0",
                "OData-Version": "4.0",
                "Prefer": f"odata.maxpagesize={self._page_size}",
            },
        )
        try:
            data = response.json()
        except ValueError:
            data = None
        rows = data.get("value") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(rows, list):
            raise CrmError("Dynamics 365 answered a query without a value", transient=False)
        builder = PageBuilder("dynamics", self._region)
        for row in rows:
            if not isinstance(row, dict) or not row.get("contactid"):
                continue
            contact = str(row["contactid"]).lower()
            builder.add(
                contact_id=f"d365-{contact}",
                crm_id=contact,
                name=str(row.get("fullname") or ""),
                first_name=row.get("firstname"),
                last_name=row.get("lastname"),
                phones=(row.get("mobilephone"), row.get("telephone1"), row.get("telephone2")),
                owner=row.get("_ownerid_value"),
                active=row.get("statecode") != 1,
                updated_at=parse_crm_time(row.get("modifiedon")),
            )
        following = data.get("@odata.nextLink")
        return builder.page(following if isinstance(following, str) and following else None)
