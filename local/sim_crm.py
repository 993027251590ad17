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
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

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
        Rule("/records/<path:external_id>", endpoint="record", methods=["GET", "PUT"]),
        Rule("/_faults", endpoint="faults", methods=["GET", "POST", "DELETE"]),
    ]
)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, mimetype="application/json")


class SimulatedCrm:
    """In-memory CRM; all state is on the instance and guarded by one lock (the server is threaded)."""

    def __init__(self, secret: str, *, tolerance: int = DEFAULT_TOLERANCE_SECONDS) -> None:
        self._secret = secret
        self._tolerance = tolerance
        self._lock = threading.Lock()
        self._records: dict[str, dict[str, Any]] = {}
        self._faults: list[dict[str, Any]] = []

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

    def upsert(self, external_id: str, payload: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Store `payload` under `external_id`; return (record, created). Versions move only on change."""
        now = _now_iso()
        with self._lock:
            existing = self._records.get(external_id)
            if existing is None:
                record: dict[str, Any] = {
                    "id": f"rec_{uuid.uuid4().hex[:16]}",
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
