"""Salesforce: each digest day is a Task, upserted by an external-id field through the REST API.

    PATCH {instance}/services/data/{version}/sobjects/Task/{external_id_field}/{external_id}
    Authorization: Bearer <token>
    {"Subject": ..., "Description": <the day's messages, in order>, "ActivityDate": "YYYY-MM-DD",
     "Status": "Completed", "WhoId": <the contact's Salesforce id, when the payload links one>}

Salesforce answers 201 when it created the Task and, from API version 46.0, 200 with
``{"id", "success", "errors", "created": false}`` when it updated one (204 with no body before 46.0);
300 means the external id matched several Tasks. Docs: "Insert or Update (Upsert) a Record Using an
External ID", https://developer.salesforce.com/docs/platform/api-rest/guide/dome-upsert.html

Setup in the org: a Text custom field on Task (Activity) marked External ID and Unique (default
``Parley_External_Id__c``), and a connected app the integration user can use. The token is either a
configured one (``PARLEY_CRM_SALESFORCE_ACCESS_TOKEN`` or its SSM parameter) or fetched with the OAuth 2.0
client-credentials flow from ``{instance}/services/oauth2/token``; a 401 fetches a fresh one once.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import requests

from parley.crm._http import TokenSource, call, day_lines
from parley.crm.webhook import CrmError, CrmUpsertResult

__all__ = ["SalesforceCrm", "task_fields"]

logger = logging.getLogger(__name__)

SUBJECT_MAX = 255  # Task.Subject
DESCRIPTION_MAX = 32_000  # Task.Description (a long text area)


def task_fields(payload: dict[str, Any]) -> dict[str, Any]:
    """The Task's fields for one digest day (the external-id field is in the URL, not the body)."""
    description = "\n".join(day_lines(payload))
    fields: dict[str, Any] = {
        "Subject": str(payload.get("subject") or f"SMS on {payload.get('day', '')}")[:SUBJECT_MAX],
        "Description": description[:DESCRIPTION_MAX],
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
