"""HubSpot: each digest day is a note on the contact's timeline, kept unique by our external id.

HubSpot can't upsert a note by a custom id: ``idProperty`` and ``batch/upsert`` need a property with
unique values, which notes don't offer on every plan. So an upsert is two calls of the CRM objects v3 API:

1. ``POST /crm/v3/objects/notes/search`` with an ``EQ`` filter on our property (default
   ``parley_external_id``, a custom single-line text property on notes) finds the note, if any.
2. Not found: ``POST /crm/v3/objects/notes`` creates it (201) with ``hs_timestamp``, ``hs_note_body`` and
   our property, associated with the contact (``HUBSPOT_DEFINED`` type 202, note → contact) when the
   payload carries the contact's HubSpot id. Found: ``PATCH /crm/v3/objects/notes/{noteId}`` updates its
   properties (200); the association made at creation stays.

Docs: https://developers.hubspot.com/docs/api-reference/crm-notes-v3/guide (create, update, associations)
and the CRM search API (``filterGroups``/``filters``/``EQ``). Authentication is a private app's token as a
bearer token (scopes: notes and contacts read/write).

Limits: search is eventually consistent (a note becomes searchable a few seconds after it is created),
so two runs for the same day seconds apart could create two notes; the nightly digest's re-runs are far
apart and an unchanged day posts nothing at all. If several notes already match, the oldest (lowest id)
is updated and the rest are left for a person. HubSpot's rate limits answer 429 (transient: the next run
retries); the search API's own limit is lower than the object APIs'.
"""

from __future__ import annotations

import html
import logging
from datetime import UTC, datetime
from typing import Any

import requests

from parley.crm._http import TokenSource, call, day_lines
from parley.crm.webhook import CrmError, CrmUpsertResult

__all__ = ["NOTE_TO_CONTACT", "HubSpotCrm", "note_properties"]

logger = logging.getLogger(__name__)

NOTE_TO_CONTACT = 202  # HUBSPOT_DEFINED association type id, note → contact
BODY_MAX = 65_536  # hs_note_body


def _utc_millis(value: str) -> str:
    at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def note_properties(external_id: str, payload: dict[str, Any], id_property: str) -> dict[str, str]:
    """The note's properties: placed on the timeline at the day's last message, the messages in order."""
    messages = [m for m in payload.get("messages") or [] if isinstance(m, dict) and m.get("at")]
    timestamp = _utc_millis(str(messages[-1]["at"])) if messages else f"{payload.get('day')}T00:00:00.000Z"
    subject = html.escape(str(payload.get("subject") or ""))
    lines = [f"<strong>{subject}</strong>", *(html.escape(line) for line in day_lines(payload))]
    return {
        "hs_timestamp": timestamp,
        "hs_note_body": "<br>".join(lines)[:BODY_MAX],
        id_property: external_id,
    }


class HubSpotCrm:
    name = "hubspot"

    def __init__(
        self,
        token: TokenSource,
        *,
        base_url: str = "https://api.hubapi.com",
        id_property: str = "parley_external_id",
        timeout: float = 10.0,
        session: requests.Session | None = None,
    ) -> None:
        if not id_property:
            raise ValueError("HubSpot needs the notes property that holds our external id")
        self._base = base_url.rstrip("/")
        self._token = token
        self._property = id_property
        self._timeout = timeout
        self._session = session or requests.Session()

    def _call(self, method: str, path: str, body: Any) -> requests.Response:
        return call(
            self._session,
            method,
            f"{self._base}{path}",
            crm="HubSpot",
            token=self._token,
            json_body=body,
            timeout=self._timeout,
        )

    def find(self, external_id: str) -> list[str]:
        """The ids of the notes carrying this external id, lowest first."""
        response = self._call(
            "POST",
            "/crm/v3/objects/notes/search",
            {
                "filterGroups": [
                    {"filters": [{"propertyName": self._property, "operator": "EQ", "value": external_id}]}
                ],
                "properties": [self._property],
                "limit": 10,
            },
        )
        data = _json(response)
        results = data.get("results") if isinstance(data, dict) else None
        if not isinstance(results, list):
            raise CrmError(
                "HubSpot search answered without results", transient=False, status_code=response.status_code
            )
        ids = [str(r["id"]) for r in results if isinstance(r, dict) and r.get("id")]
        return sorted(ids, key=lambda i: (len(i), i))

    def upsert(self, external_id: str, payload: dict[str, Any]) -> CrmUpsertResult:
        if not external_id:
            raise ValueError("external_id must not be empty")
        properties = note_properties(external_id, payload, self._property)
        found = self.find(external_id)
        if len(found) > 1:
            logger.warning(
                "hubspot: %d notes share one external id; updating the oldest %s", len(found), found[0]
            )
        if found:
            note_id = found[0]
            response = self._call("PATCH", f"/crm/v3/objects/notes/{note_id}", {"properties": properties})
            created = False
        else:
            body: dict[str, Any] = {"properties": properties}
            contact = payload.get("crm_contact_id")
            if contact:
                body["associations"] = [
                    {
                        "to": {"id": str(contact)},
                        "types": [
                            {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": NOTE_TO_CONTACT}
                        ],
                    }
                ]
            response = self._call("POST", "/crm/v3/objects/notes", body)
            created = True
        data = _json(response)
        crm_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(crm_id, str | int) or isinstance(crm_id, bool) or crm_id == "":
            raise CrmError(
                f"HubSpot answered {response.status_code} without a note id",
                transient=False,
                status_code=response.status_code,
            )
        logger.debug("hubspot note %s (created=%s)", crm_id, created)
        return CrmUpsertResult(crm_id=str(crm_id), created=created, version=0)


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
