"""Dynamics 365 (Dataverse): each digest day is an activity (by default a ``phonecall``), upserted by an
alternate key through the Web API.

    PATCH {instance}/api/data/v9.2/{entity_set}({key}='{external_id}')?$select=activityid
    Authorization: Bearer <token>
    OData-MaxVersion: 4.0 / OData-Version: 4.0 / Accept: application/json
    Prefer: return=representation
    {"subject": ..., "description": <the day's messages, in order>, "phonenumber": <customer>,
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
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import quote

import requests

from parley.crm._http import TokenSource, call, day_lines
from parley.crm.webhook import CrmError, CrmUpsertResult

__all__ = ["DynamicsCrm", "activity_fields"]

logger = logging.getLogger(__name__)

SUBJECT_MAX = 200  # activitypointer.subject
DESCRIPTION_MAX = 2_000  # phonecall.description's default maximum length
ODATA_HEADERS = {
    "OData-MaxVersion": "4.0",
    "OData-Version": "4.0",
    "Prefer": "return=representation",
}
_ENTITY_ID = re.compile(r"\(([0-9a-fA-F-]{36})\)\s*$")


def activity_fields(payload: dict[str, Any]) -> dict[str, Any]:
    """The activity's columns for one digest day (the key column is in the URL, not the body)."""
    messages = [m for m in payload.get("messages") or [] if isinstance(m, dict)]
    fields: dict[str, Any] = {
        "subject": str(payload.get("subject") or f"SMS on {payload.get('day', '')}")[:SUBJECT_MAX],
        "description": "\n".join(day_lines(payload))[:DESCRIPTION_MAX],
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
