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

Record sync (`changed_records`): contacts changed after the watermark, through the same search API:
``POST /crm/v3/objects/contacts/search`` with a ``GT`` filter on ``lastmodifieddate`` (epoch
milliseconds), sorted ascending by it, with the properties we keep; the next page moves that filter up
to the page's newest change and uses ``after`` only within that millisecond. HubSpot answers
``{"total", "results": [{"id", "properties", "updatedAt", "archived"}], "paging": {"next": {"after"}}}``;
archived contacts don't appear.
"""

from __future__ import annotations

import html
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from parley.crm._http import TokenSource, call, day_lines, fit_lines
from parley.crm.changes import PageBuilder, RecordPage, parse_crm_time
from parley.crm.webhook import CrmError, CrmUpsertResult

__all__ = ["CONTACT_PROPERTIES", "NOTE_TO_CONTACT", "SEARCH_CAP", "HubSpotCrm", "note_properties"]

logger = logging.getLogger(__name__)

NOTE_TO_CONTACT = 202  # HUBSPOT_DEFINED association type id, note → contact
BODY_MAX = 65_536  # hs_note_body
SUBJECT_MAX = 255  # of the note's first line, so the messages always have room
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SEARCH_CAP = 10_000  # the search API answers at most this many results for one query, however paged
CONTACT_PROPERTIES = ("firstname", "lastname", "phone", "mobilephone", "hubspot_owner_id", "lastmodifieddate")


def _utc_millis(value: str) -> str:
    at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def note_properties(external_id: str, payload: dict[str, Any], id_property: str) -> dict[str, str]:
    """The note's properties: placed on the timeline at the day's last message, the messages in order."""
    messages = [m for m in payload.get("messages") or [] if isinstance(m, dict) and m.get("at")]
    timestamp = _utc_millis(str(messages[-1]["at"])) if messages else f"{payload.get('day')}T00:00:00.000Z"
    subject = f"<strong>{html.escape(str(payload.get('subject') or '')[:SUBJECT_MAX])}</strong>"
    return {
        "hs_timestamp": timestamp,
        "hs_note_body": fit_lines(
            day_lines(payload), BODY_MAX, head=(subject,), sep="<br>", escape=html.escape
        ),
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
        region: str = "US",
        page_size: int = 100,
    ) -> None:
        if not id_property:
            raise ValueError("HubSpot needs the notes property that holds our external id")
        self._base = base_url.rstrip("/")
        self._token = token
        self._property = id_property
        self._timeout = timeout
        self._session = session or requests.Session()
        self._region = region
        self._page_size = max(1, min(page_size, 200))  # the search API's most per page

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

    def changed_records(self, since: datetime | None, cursor: str | None) -> RecordPage:
        """One page of contacts changed after the watermark; the cursor is ``<since ms>:<after>``.

        Each page's cursor moves the query's own watermark up to the newest change on the page (less a
        millisecond), with ``after`` skipping only the contacts already read at that millisecond. Paging
        one query with ``after`` alone would fail twice over: the search API stops at 10,000 results
        per query, however paged, and an offset shifts when a contact already read is modified (it
        moves to the end), so a contact would be skipped. Moving the watermark forward avoids both.
        """
        if cursor:
            since_text, _, after = cursor.partition(":")
            if not (since_text.lstrip("-").isdigit() or since_text == "") or not (
                after.isdigit() or after == ""
            ):
                raise CrmError(f"HubSpot sync cursor {cursor!r} is not one of ours", transient=False)
            since_ms = int(since_text) if since_text else None
        else:
            since_ms = _epoch_ms(since) if since is not None else None
            after = ""
        body: dict[str, Any] = {
            "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
            "properties": list(CONTACT_PROPERTIES),
            "limit": self._page_size,
        }
        if since_ms is not None:
            body["filterGroups"] = [
                {"filters": [{"propertyName": "lastmodifieddate", "operator": "GT", "value": str(since_ms)}]}
            ]
        if after:
            body["after"] = after
        data = _json(self._call("POST", "/crm/v3/objects/contacts/search", body))
        results = data.get("results") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(results, list):
            raise CrmError("HubSpot search answered without results", transient=False)
        builder = PageBuilder("hubspot", self._region)
        moments: list[int] = []
        for result in results:
            if not isinstance(result, dict) or not result.get("id"):
                continue
            props = result.get("properties")
            props = props if isinstance(props, dict) else {}
            contact = str(result["id"])
            first, last = props.get("firstname") or None, props.get("lastname") or None
            changed = parse_crm_time(props.get("lastmodifieddate") or result.get("updatedAt"))
            if changed is not None:
                moments.append(_epoch_ms(changed))
            builder.add(
                contact_id=f"hs-{contact}",
                crm_id=contact,
                name=" ".join(str(p) for p in (first, last) if p),
                first_name=first,
                last_name=last,
                phones=(props.get("mobilephone"), props.get("phone")),
                owner=props.get("hubspot_owner_id"),
                active=result.get("archived") is not True,
                updated_at=changed,
            )
        paging = data.get("paging")
        following = paging.get("next") if isinstance(paging, dict) else None
        if not isinstance(following, dict) or not following.get("after"):
            return builder.page(None)
        if not moments:  # no change times to move by: page on within this query
            return builder.page(f"{'' if since_ms is None else since_ms}:{following['after']}")
        newest = max(moments)
        read_at_newest = moments.count(newest) + (int(after or 0) if since_ms == newest - 1 else 0)
        if read_at_newest + self._page_size > SEARCH_CAP:
            # more contacts changed in one millisecond than one query can list: go past that millisecond
            logger.warning("hubspot: over %d contacts changed at %d ms; moving past them", SEARCH_CAP, newest)
            return builder.page(f"{newest}:")
        return builder.page(f"{newest - 1}:{read_at_newest}")


def _epoch_ms(at: datetime) -> int:
    """Milliseconds since the epoch, exactly (HubSpot's datetime filter values)."""
    return (at - _EPOCH) // timedelta(milliseconds=1)


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
