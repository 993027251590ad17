"""A CRM that speaks Parley's signed webhook protocol (see `parley.crm.webhook`), for local runs and tests.

Mounted as a WSGI app (e.g. at ``/_sim/crm``). It verifies signatures with the same `verify` a real
receiver would use, so a signing bug shows up locally, and it keeps versions the way the protocol
promises (an identical body is a no-op), so digest re-runs can be checked for idempotency.

HTTP API (paths relative to the mount point):
    PUT    /records/{external_id}   signed upsert → 201 created / 200 updated or unchanged
    GET    /records                 {"records": [...]}
    GET    /records/{external_id}   one record, or 404
    DELETE /records                 forget records and faults
    POST   /_faults                 {"kind": "500"|"429", "count": N} → the next N valid upserts fail
    GET    /_faults, DELETE /_faults

It also stands in for the REST CRMs the digest can use instead (`parley.crm.salesforce`, `.hubspot`,
`.dynamics`): each path below answers like that API's upsert, needs ``Authorization: Bearer <token>``
(the simulator's `token`), and stores the record under our external id in the same store, with its
``api`` (so ``GET /records`` shows them all). The faults apply to them too (a 429 carries Retry-After).
    POST   /services/oauth2/token                                   Salesforce client credentials
    PATCH  /services/data/vXX.X/sobjects/Task/{field}/{external_id}  201 created / 200 updated
    POST   /crm/v3/objects/notes/search                             HubSpot: EQ filter on one property
    POST   /crm/v3/objects/notes, PATCH /crm/v3/objects/notes/{id}   201 created / 200 updated
    PATCH  /api/data/v9.2/{entity_set}({key}='{external_id}')      Dynamics: 201 / 200 (representation)
                                                                    or 204 with OData-EntityId

The other direction, the records Parley syncs in (`parley.services.record_sync`): the simulator keeps
people (contacts and leads) that tests put in, and answers each CRM's change query from them:
    POST   /_people                         {"name", "first_name", "last_name", "phones": [...], "type",
                                            "owner", "team", "active", "updated_at"?} → 201 with its id in
                                            every CRM's format ("ids")
    PATCH  /_people/{id}, DELETE /_people/{id}   change it / delete it (deleted: inactive everywhere)
    GET    /_people                         {"people": [...]}
    GET    /records/changes?since=&cursor=  our webhook protocol (signed over the query string)
    GET    /services/data/vXX.X/queryAll?q=SELECT ... FROM Contact|Lead [WHERE LastModifiedDate > t]
           (and /query, without the deleted), paged by Sforce-Query-Options batchSize / nextRecordsUrl
    POST   /crm/v3/objects/contacts/search  HubSpot: GT on lastmodifieddate, ascending, limit / after
    GET    /api/data/v9.2/contacts?$filter=modifiedon gt t   Dynamics: Prefer odata.maxpagesize, nextLink
Salesforce and Dynamics keep whole seconds, as they do; HubSpot and the webhook milliseconds.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from parley.crm.webhook import DEFAULT_TOLERANCE_SECONDS, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

__all__ = ["FAULT_KINDS", "SimulatedCrm"]

logger = logging.getLogger(__name__)

FAULT_KINDS = {"500": 500, "429": 429}

_URLS = Map(
    [
        Rule("/records", endpoint="records", methods=["GET", "DELETE"]),
        Rule("/records/changes", endpoint="changes", methods=["GET"]),
        Rule("/_people", endpoint="people", methods=["GET", "POST"]),
        Rule("/_people/<person_id>", endpoint="person", methods=["PATCH", "DELETE"]),
        Rule(
            "/services/data/<version>/<any(query, queryAll):resource>", endpoint="sf_query", methods=["GET"]
        ),
        Rule(
            "/services/data/<version>/<any(query, queryAll):resource>/<locator>",
            endpoint="sf_query_more",
            methods=["GET"],
        ),
        Rule("/crm/v3/objects/contacts/search", endpoint="hs_contacts", methods=["POST"]),
        Rule("/api/data/v9.2/contacts", endpoint="dyn_contacts", methods=["GET"]),
        Rule("/records/<path:external_id>", endpoint="record", methods=["GET", "PUT"]),
        Rule("/_faults", endpoint="faults", methods=["GET", "POST", "DELETE"]),
        Rule("/services/oauth2/token", endpoint="sf_token", methods=["POST"]),
        Rule(
            "/services/data/<version>/sobjects/Task/<field>/<path:external_id>",
            endpoint="sf_task",
            methods=["PATCH"],
        ),
        Rule("/crm/v3/objects/notes/search", endpoint="hs_search", methods=["POST"]),
        Rule("/crm/v3/objects/notes", endpoint="hs_create", methods=["POST"]),
        Rule("/crm/v3/objects/notes/<note_id>", endpoint="hs_update", methods=["PATCH"]),
        Rule("/api/data/v9.2/<path:target>", endpoint="dyn_row", methods=["PATCH"]),
    ]
)
DEFAULT_TOKEN = "parley-local-crm-token"
HUBSPOT_ID_PROPERTY = "parley_external_id"
_DYNAMICS_ROW = re.compile(r"^(?P<entity_set>\w+)\((?P<key>\w+)='(?P<value>(?:[^']|'')*)'\)$")


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, mimetype="application/json")


class SimulatedCrm:
    """In-memory CRM; all state is on the instance and guarded by one lock (the server is threaded)."""

    def __init__(
        self, secret: str, *, tolerance: int = DEFAULT_TOLERANCE_SECONDS, token: str = DEFAULT_TOKEN
    ) -> None:
        self._secret = secret
        self._token = token
        self._tolerance = tolerance
        self._lock = threading.Lock()
        self._records: dict[str, dict[str, Any]] = {}
        self._faults: list[dict[str, Any]] = []
        self._people: dict[str, dict[str, Any]] = {}
        self._locators: dict[str, list[dict[str, Any]]] = {}  # Salesforce query locators: rows left

    # --- Python API ---------------------------------------------------------------------------

    def records(self) -> list[dict[str, Any]]:
        """Every record, oldest first (copies: callers can't mutate the store)."""
        with self._lock:
            return [json.loads(json.dumps(r)) for r in self._records.values()]

    def record(self, external_id: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._records.get(external_id)
            return None if found is None else json.loads(json.dumps(found))

    def reset(self) -> None:
        with self._lock:
            self._records.clear()
            self._faults.clear()
            self._people.clear()
            self._locators.clear()

    def add_person(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Put a contact (or a lead: ``"type": "lead"``) in the CRM; its id in each CRM's format."""
        kind = str(fields.get("type") or "contact")
        if kind not in ("contact", "account", "opportunity", "lead"):
            raise ValueError(f"unknown type {kind!r}")
        phones = fields.get("phones") or []
        if not isinstance(phones, list) or not all(isinstance(p, str) for p in phones):
            raise ValueError("phones must be a list of strings")
        n = uuid.uuid4()
        person: dict[str, Any] = {
            "id": f"P{n.hex[:12]}",
            "ids": {
                "salesforce": ("00Q" if kind == "lead" else "003") + n.hex[:15].upper(),
                "hubspot": str(n.int % 10**11),
                "dynamics": str(n),
                "webhook": f"P{n.hex[:12]}",
            },
            "type": kind,
            "name": "",
            "first_name": None,
            "last_name": None,
            "phones": [],
            "owner": None,
            "team": None,
            "active": True,
            "deleted": False,
        }
        return self._change(person, fields)

    def update_person(self, person_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            found = self._people.get(person_id)
        if found is None:
            raise KeyError(person_id)
        return self._change(dict(found), fields)

    def _change(self, person: dict[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
        for key in ("name", "first_name", "last_name", "phones", "owner", "team", "active", "deleted"):
            if key in fields:
                person[key] = fields[key]
        if not person["name"]:
            person["name"] = " ".join(p for p in (person["first_name"], person["last_name"]) if p)
        at = fields.get("updated_at")
        person["updated_at"] = _parse_time(at) if isinstance(at, str) else datetime.now(UTC)
        with self._lock:
            self._people.pop(person["id"], None)  # re-inserted last: dicts keep change order
            self._people[person["id"]] = person
        return _person_json(person)

    def people(self) -> list[dict[str, Any]]:
        with self._lock:
            return [_person_json(p) for p in self._people.values()]

    def _changed(
        self, since: datetime | None, *, seconds: bool, kinds: tuple[str, ...]
    ) -> list[dict[str, Any]]:
        """People of those kinds changed after `since`, oldest change first (a CRM's clock precision)."""
        with self._lock:
            people = [dict(p) for p in self._people.values() if p["type"] in kinds]
        for p in people:
            if seconds:
                p["updated_at"] = p["updated_at"].replace(microsecond=0)
            else:
                p["updated_at"] = p["updated_at"].replace(
                    microsecond=p["updated_at"].microsecond // 1000 * 1000
                )
        changed = [p for p in people if since is None or p["updated_at"] > since]
        return sorted(changed, key=lambda p: p["updated_at"])

    def add_fault(self, kind: str, count: int = 1) -> dict[str, Any]:
        """Make the next `count` correctly signed upserts fail with HTTP `kind`."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError("count must be a positive integer")
        fault = {"id": f"FA{uuid.uuid4().hex}", "kind": kind, "remaining": count}
        with self._lock:
            self._faults.append(fault)
            return dict(fault)

    def faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(f) for f in self._faults]

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def upsert(
        self, external_id: str, payload: dict[str, Any], *, api: str = "webhook"
    ) -> tuple[dict[str, Any], bool]:
        """Store `payload` under `external_id`; return (record, created). Versions move only on change."""
        now = _now_iso()
        with self._lock:
            existing = self._records.get(external_id)
            if existing is None:
                record: dict[str, Any] = {
                    "id": _new_id(api),
                    "api": api,
                    "external_id": external_id,
                    "version": 1,
                    "payload": payload,
                    "created_at": now,
                    "updated_at": now,
                }
                self._records[external_id] = record
                return json.loads(json.dumps(record)), True
            if existing["payload"] != payload:
                existing["payload"] = payload
                existing["version"] += 1
                existing["updated_at"] = now
            return json.loads(json.dumps(existing)), False

    def _take_fault(self) -> int | None:
        with self._lock:
            for fault in self._faults:
                if fault["remaining"] > 0:
                    fault["remaining"] -= 1
                    if fault["remaining"] == 0:
                        self._faults.remove(fault)
                    return FAULT_KINDS[fault["kind"]]
        return None

    def _by_id(self, record_id: str) -> dict[str, Any] | None:
        with self._lock:
            found = next((r for r in self._records.values() if r["id"] == record_id), None)
            return None if found is None else json.loads(json.dumps(found))

    # --- WSGI -----------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self._dispatch(request)
        except HTTPException as exc:
            if isinstance(exc, MethodNotAllowed):
                response = _json({"reason": "method not allowed"}, 405)
            else:
                response = _json({"reason": exc.description or exc.name}, exc.code or 500)
        result: Iterable[bytes] = response(environ, start_response)
        return result

    def _dispatch(self, request: Request) -> Response:
        adapter = _URLS.bind_to_environ(request.environ)
        endpoint, args = adapter.match()
        if endpoint == "records":
            if request.method == "DELETE":
                self.reset()
                return Response(status=204)
            return _json({"records": self.records()})
        if endpoint in ("people", "person"):
            return self._people_endpoint(request, args.get("person_id"))
        if endpoint == "changes":
            return self._webhook_changes(request)
        if endpoint in _API_ENDPOINTS:
            return self._api(request, endpoint, args)
        if endpoint == "record":
            external_id = str(args["external_id"])
            if request.method == "PUT":
                return self._put(request, external_id)
            found = self.record(external_id)
            if found is None:
                raise NotFound(f"no record with external id {external_id!r}")
            return _json(found)
        return self._faults_endpoint(request)

    def _put(self, request: Request, external_id: str) -> Response:
        body = request.get_data(cache=False)
        timestamp = request.headers.get(TIMESTAMP_HEADER, "")
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not timestamp or not signature:
            return _json({"reason": f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER}"}, 401)
        if not verify(self._secret, timestamp, body, signature, tolerance=self._tolerance):
            stale = not timestamp.isdigit() or abs(time.time() - int(timestamp)) > self._tolerance
            reason = "stale or malformed timestamp" if stale else "signature does not match"
            logger.info("sim crm rejected %s: %s", external_id, reason)
            return _json({"reason": reason}, 401)
        try:
            payload = json.loads(body)
        except ValueError:
            return _json({"reason": "body is not JSON"}, 400)
        if not isinstance(payload, dict):
            return _json({"reason": "body must be a JSON object"}, 400)
        fault = self._take_fault()
        if fault is not None:
            return _json({"reason": f"simulated {fault} fault"}, fault)
        record, created = self.upsert(external_id, payload)
        return _json(
            {"id": record["id"], "created": created, "version": record["version"]},
            201 if created else 200,
        )

    # --- the REST CRMs -----------------------------------------------------------------------------

    def _api(self, request: Request, endpoint: str, args: Mapping[str, Any]) -> Response:
        api = _API_ENDPOINTS[endpoint]
        if endpoint == "sf_token":
            if not request.form.get("client_id") or not request.form.get("client_secret"):
                return _json(
                    {"error": "invalid_client", "error_description": "client credentials missing"}, 400
                )
            return _json(
                {"access_token": self._token, "token_type": "Bearer", "instance_url": request.host_url}
            )
        if request.headers.get("Authorization", "") != f"Bearer {self._token}":
            return _api_error(api, 401, "INVALID_SESSION_ID", "Session expired or invalid")
        if endpoint in _QUERY_ENDPOINTS:
            fault = self._take_fault()
            if fault is not None:
                response = _api_error(api, fault, "SIMULATED_FAULT", f"simulated {fault} fault")
                if fault == 429:
                    response.headers["Retry-After"] = "1"
                return response
            if endpoint == "sf_query":
                return self._salesforce_query(request, str(args["version"]), str(args["resource"]))
            if endpoint == "sf_query_more":
                return self._salesforce_more(
                    str(args["version"]), str(args["resource"]), str(args["locator"])
                )
            if endpoint == "dyn_contacts":
                return self._dynamics_contacts(request)
        try:
            body = json.loads(request.get_data(cache=False) or b"null")
        except ValueError:
            return _api_error(api, 400, "JSON_PARSER_ERROR", "the body is not JSON")
        if not isinstance(body, dict):
            return _api_error(api, 400, "JSON_PARSER_ERROR", "the body must be a JSON object")
        if endpoint == "hs_contacts":
            fault = self._take_fault()
            if fault is not None:
                return _api_error(api, fault, "SIMULATED_FAULT", f"simulated {fault} fault")
            return self._hubspot_contacts(body)
        if endpoint == "hs_search":
            return self._hubspot_search(body)
        fault = self._take_fault()
        if fault is not None:
            response = _api_error(api, fault, "SIMULATED_FAULT", f"simulated {fault} fault")
            if fault == 429:
                response.headers["Retry-After"] = "1"
            return response
        if endpoint == "sf_task":
            record, created = self.upsert(str(args["external_id"]), body, api=api)
            return _json(
                {"id": record["id"], "success": True, "errors": [], "created": created},
                201 if created else 200,
            )
        if endpoint == "hs_create":
            return self._hubspot_create(body)
        if endpoint == "hs_update":
            return self._hubspot_update(str(args["note_id"]), body)
        return self._dynamics_upsert(request, str(args["target"]), body)

    def _hubspot_search(self, body: dict[str, Any]) -> Response:
        try:
            [group] = body["filterGroups"]
            [condition] = group["filters"]
            name, operator, value = condition["propertyName"], condition["operator"], condition["value"]
        except (KeyError, TypeError, ValueError):
            return _api_error("hubspot", 400, "VALIDATION_ERROR", "expected one filter group with one filter")
        if operator != "EQ":
            return _api_error(
                "hubspot", 400, "VALIDATION_ERROR", f"the simulator supports EQ only, not {operator}"
            )
        results = [
            {"id": r["id"], "properties": {name: value}, "archived": False}
            for r in self.records()
            if r["api"] == "hubspot" and r["payload"].get("properties", {}).get(name) == value
        ]
        return _json({"total": len(results), "results": results})

    def _hubspot_create(self, body: dict[str, Any]) -> Response:
        properties = body.get("properties")
        if not isinstance(properties, dict) or not properties.get("hs_timestamp"):
            return _api_error(
                "hubspot", 400, "VALIDATION_ERROR", "Property values were not valid: hs_timestamp"
            )
        key = str(properties.get(HUBSPOT_ID_PROPERTY) or f"note-{uuid.uuid4().hex[:8]}")
        if self.record(key) is not None:
            # HubSpot has no unique constraint here: a second create is a second note (a duplicate)
            key = f"{key}#duplicate-{uuid.uuid4().hex[:8]}"
        record, _created = self.upsert(key, body, api="hubspot")
        return _json({"id": record["id"], "properties": properties, "archived": False}, 201)

    def _hubspot_update(self, note_id: str, body: dict[str, Any]) -> Response:
        found = self._by_id(note_id)
        if found is None or found["api"] != "hubspot":
            return _api_error("hubspot", 404, "OBJECT_NOT_FOUND", f"resource not found: note {note_id}")
        properties = body.get("properties")
        if not isinstance(properties, dict):
            return _api_error("hubspot", 400, "VALIDATION_ERROR", "properties must be an object")
        merged = {**found["payload"], "properties": {**found["payload"].get("properties", {}), **properties}}
        record, _created = self.upsert(found["external_id"], merged, api="hubspot")
        return _json({"id": record["id"], "properties": merged["properties"], "archived": False})

    def _dynamics_upsert(self, request: Request, target: str, body: dict[str, Any]) -> Response:
        match = _DYNAMICS_ROW.match(target)
        if match is None:
            return _api_error("dynamics", 400, "0x80060888", f"Bad Request - Error in query syntax: {target}")
        external_id = match["value"].replace("''", "'")
        record, created = self.upsert(
            external_id, {"entity_set": match["entity_set"], **body}, api="dynamics"
        )
        entity_url = (
            f"{request.base_url.split('/api/data/')[0]}/api/data/v9.2/{match['entity_set']}({record['id']})"
        )
        if "return=representation" in request.headers.get("Prefer", ""):
            response = _json({"activityid": record["id"]}, 201 if created else 200)
        else:
            response = Response(status=204)
        response.headers["OData-EntityId"] = entity_url
        response.headers["OData-Version"] = "4.0"
        return response

    # --- records changed, for Parley's record sync -----------------------------------------------------

    def _people_endpoint(self, request: Request, person_id: str | None) -> Response:
        if request.method == "GET":
            return _json({"people": self.people()})
        if request.method == "DELETE":
            try:
                return _json(self.update_person(str(person_id), {"deleted": True}))
            except KeyError:
                raise NotFound(f"no person {person_id!r}") from None
        try:
            data = json.loads(request.get_data(cache=False) or b"null")
        except ValueError:
            return _json({"reason": "body is not valid JSON"}, 400)
        if not isinstance(data, dict):
            return _json({"reason": "expected a JSON object"}, 400)
        try:
            if person_id is None:
                return _json(self.add_person(data), 201)
            return _json(self.update_person(person_id, data))
        except KeyError:
            raise NotFound(f"no person {person_id!r}") from None
        except ValueError as exc:
            return _json({"reason": str(exc)}, 400)

    def _webhook_changes(self, request: Request) -> Response:
        timestamp = request.headers.get(TIMESTAMP_HEADER, "")
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not verify(self._secret, timestamp, request.query_string, signature, tolerance=self._tolerance):
            return _json({"reason": "signature does not match"}, 401)
        fault = self._take_fault()
        if fault is not None:
            return _json({"reason": f"simulated {fault} fault"}, fault)
        since_text = request.args.get("since")
        since = _parse_time(since_text) if since_text else None
        changed = self._changed(since, seconds=False, kinds=("contact", "account", "opportunity", "lead"))
        start = int(request.args.get("cursor") or 0)
        page = changed[start : start + _WEBHOOK_PAGE]
        records = [
            {
                "crm_id": p["ids"]["webhook"],
                "type": p["type"],
                "name": p["name"],
                "first_name": p["first_name"],
                "last_name": p["last_name"],
                "phones": p["phones"],
                "owner": p["owner"],
                "team": p["team"],
                "active": p["active"] and not p["deleted"],
                "updated_at": _iso_ms(p["updated_at"]),
            }
            for p in page
        ]
        more = start + _WEBHOOK_PAGE < len(changed)
        return _json({"records": records, "cursor": str(start + _WEBHOOK_PAGE) if more else None})

    def _salesforce_query(self, request: Request, version: str, resource: str) -> Response:
        soql = request.args.get("q", "")
        match = _SOQL.match(soql)
        if match is None:
            return _api_error("salesforce", 400, "MALFORMED_QUERY", f"the simulator can't read: {soql}")
        sobject = match["sobject"]
        since = _parse_time(match["since"]) if match["since"] else None
        rows = []
        for p in self._changed(since, seconds=True, kinds=("lead",) if sobject == "Lead" else ("contact",)):
            if p["deleted"] and resource == "query":
                continue  # only queryAll shows the recycle bin
            phones = list(p["phones"])
            row = {
                "attributes": {
                    "type": sobject,
                    "url": f"/services/data/{version}/sobjects/{sobject}/{p['ids']['salesforce']}",
                },
                "Id": p["ids"]["salesforce"],
                "Name": p["name"],
                "FirstName": p["first_name"],
                "LastName": p["last_name"],
                "MobilePhone": phones[0] if phones else None,
                "Phone": phones[1] if len(phones) > 1 else None,
                "OwnerId": p["owner"],
                "LastModifiedDate": p["updated_at"].strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
                "IsDeleted": p["deleted"],
            }
            if sobject == "Lead":
                row["IsConverted"] = not p["active"]
            rows.append(row)
        options = request.headers.get("Sforce-Query-Options", "")
        size = int(options.split("batchSize=", 1)[1]) if "batchSize=" in options else 2000
        return self._salesforce_batch(version, resource, rows, len(rows), max(200, min(size, 2000)))

    def _salesforce_batch(
        self, version: str, resource: str, rows: list[dict[str, Any]], total: int, size: int
    ) -> Response:
        batch, rest = rows[:size], rows[size:]
        body: dict[str, Any] = {"totalSize": total, "done": not rest, "records": batch}
        if rest:
            locator = f"01g{uuid.uuid4().hex[:15].upper()}-{size}"
            with self._lock:
                self._locators[locator] = rest
            body["nextRecordsUrl"] = f"/services/data/{version}/{resource}/{locator}"
        return _json(body)

    def _salesforce_more(self, version: str, resource: str, locator: str) -> Response:
        with self._lock:
            rest = self._locators.pop(locator, None)
        if rest is None:
            return _api_error("salesforce", 400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        size = int(locator.rsplit("-", 1)[1])
        return self._salesforce_batch(version, resource, rest, len(rest), size)

    def _hubspot_contacts(self, body: dict[str, Any]) -> Response:
        since = None
        for group in body.get("filterGroups") or []:
            for condition in group.get("filters") or []:
                if condition.get("propertyName") != "lastmodifieddate" or condition.get("operator") != "GT":
                    return _api_error("hubspot", 400, "VALIDATION_ERROR", "the simulator supports GT only")
                since = datetime.fromtimestamp(int(condition["value"]) / 1000, UTC)
        changed = [p for p in self._changed(since, seconds=False, kinds=("contact",)) if not p["deleted"]]
        limit = min(int(body.get("limit") or 10), 200)
        start = int(body.get("after") or 0)
        if start >= 10_000:
            return _api_error("hubspot", 400, "VALIDATION_ERROR", "paging past 10000 results")
        results = []
        for p in changed[start : start + limit]:
            phones = list(p["phones"])
            results.append(
                {
                    "id": p["ids"]["hubspot"],
                    "properties": {
                        "firstname": p["first_name"],
                        "lastname": p["last_name"],
                        "mobilephone": phones[0] if phones else None,
                        "phone": phones[1] if len(phones) > 1 else None,
                        "hubspot_owner_id": p["owner"],
                        "lastmodifieddate": _iso_ms(p["updated_at"]),
                        "hs_object_id": p["ids"]["hubspot"],
                    },
                    "createdAt": _iso_ms(p["updated_at"]),
                    "updatedAt": _iso_ms(p["updated_at"]),
                    "archived": False,
                }
            )
        answer: dict[str, Any] = {"total": len(changed), "results": results}
        if start + limit < len(changed):
            answer["paging"] = {"next": {"after": str(start + limit), "link": f"?after={start + limit}"}}
        return _json(answer)

    def _dynamics_contacts(self, request: Request) -> Response:
        since = None
        condition = request.args.get("$filter", "")
        if condition:
            match = _ODATA_SINCE.fullmatch(condition.strip())
            if match is None:
                return _api_error(
                    "dynamics", 400, "0x80060888", f"the simulator can't read $filter={condition}"
                )
            since = _parse_time(match[1])
        changed = self._changed(since, seconds=True, kinds=("contact",))
        prefer = request.headers.get("Prefer", "")
        size = (
            int(prefer.split("odata.maxpagesize=", 1)[1].split(",")[0]) if "maxpagesize=" in prefer else 5000
        )
        start = int(request.args.get("$skiptoken") or 0)
        rows = []
        for p in changed[start : start + size]:
            phones = list(p["phones"])
            rows.append(
                {
                    "@odata.etag": f'W/"{int(p["updated_at"].timestamp())}"',
                    "contactid": p["ids"]["dynamics"],
                    "fullname": p["name"],
                    "firstname": p["first_name"],
                    "lastname": p["last_name"],
                    "mobilephone": phones[0] if phones else None,
                    "telephone1": phones[1] if len(phones) > 1 else None,
                    "telephone2": phones[2] if len(phones) > 2 else None,
                    "_ownerid_value": p["owner"],
                    "modifiedon": p["updated_at"].strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "statecode": 1 if p["deleted"] or not p["active"] else 0,
                }
            )
        base = request.base_url
        answer: dict[str, Any] = {
            "@odata.context": f"{base.split('/api/data/')[0]}/api/data/v9.2/$metadata#contacts",
            "value": rows,
        }
        if start + size < len(changed):
            kept = [(k, v) for k, v in request.args.items(multi=True) if k != "$skiptoken"]
            query = "&".join(f"{k}={quote(v, safe=',:')}" for k, v in kept)
            answer["@odata.nextLink"] = f"{base}?{query}&$skiptoken={start + size}"
        response = _json(answer)
        response.headers["Preference-Applied"] = f"odata.maxpagesize={size}"
        return response

    def _faults_endpoint(self, request: Request) -> Response:
        if request.method == "GET":
            return _json({"faults": self.faults()})
        if request.method == "DELETE":
            self.clear_faults()
            return Response(status=204)
        try:
            data = json.loads(request.get_data(cache=False) or b"null")
        except ValueError:
            return _json({"reason": "body is not valid JSON"}, 400)
        if not isinstance(data, dict):
            return _json({"reason": "expected a JSON object"}, 400)
        try:
            fault = self.add_fault(str(data.get("kind", "")), data.get("count", 1))
        except ValueError as exc:
            return _json({"reason": str(exc)}, 400)
        return _json(fault, 201)


_API_ENDPOINTS = {
    "sf_query": "salesforce",
    "sf_query_more": "salesforce",
    "hs_contacts": "hubspot",
    "dyn_contacts": "dynamics",
    "sf_token": "salesforce",
    "sf_task": "salesforce",
    "hs_search": "hubspot",
    "hs_create": "hubspot",
    "hs_update": "hubspot",
    "dyn_row": "dynamics",
}

_QUERY_ENDPOINTS = ("sf_query", "sf_query_more", "dyn_contacts")
_WEBHOOK_PAGE = 100
_SOQL = re.compile(
    r"^SELECT .+ FROM (?P<sobject>Contact|Lead)(?: WHERE LastModifiedDate > (?P<since>\S+))?"
    r" ORDER BY LastModifiedDate ASC$"
)
_ODATA_SINCE = re.compile(r"modifiedon gt (\S+)")


def _parse_time(text: str) -> datetime:
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)


def _iso_ms(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _person_json(person: dict[str, Any]) -> dict[str, Any]:
    return {
        **person,
        "ids": dict(person["ids"]),
        "phones": list(person["phones"]),
        "updated_at": _iso_ms(person["updated_at"]),
    }


def _new_id(api: str) -> str:
    if api == "salesforce":
        return "00T" + uuid.uuid4().hex[:15].upper()
    if api == "hubspot":
        return str(uuid.uuid4().int % 10**11)
    if api == "dynamics":
        return str(uuid.uuid4())
    return f"rec_{uuid.uuid4().hex[:16]}"


def _api_error(api: str, status: int, code: str, message: str) -> Response:
    """An error in the shape that API uses."""
    if api == "salesforce":
        return _json([{"message": message, "errorCode": code}], status)
    if api == "hubspot":
        return _json({"status": "error", "message": message, "category": code}, status)
    return _json({"error": {"code": code, "message": message}}, status)
