"""A CRM reached through Parley's signed JSON webhook: the generic adapter for the nightly digest.

Protocol (version 1). One record per conversation per day, upserted by an external id we choose:

    PUT {crm_base_url}/records/{external_id}        (external_id percent-encoded as one segment)
    Content-Type: application/json
    X-Parley-Timestamp: <unix seconds, decimal>
    X-Parley-Signature: v1=<hex HMAC-SHA256(secret, f"{timestamp}.".encode() + raw_body)>

    <JSON object: the record, whatever the caller gives>

The receiver recomputes the signature over the exact bytes it received (never a re-serialised body),
compares in constant time, and rejects timestamps more than 300 s from its clock, so a captured
request cannot be replayed later. A signature header may carry several comma-separated ``v1=``
values while a secret is being rotated; one match is enough.

The CRM upserts by external id and answers ``200`` (updated, or unchanged) or ``201`` (created) with
``{"id": "<crm record id>", "created": true|false, "version": n}``. Re-sending an identical body is a
no-op that keeps the version, which is what makes a digest re-run harmless.

Size: a body is at most ``BODY_MAX`` bytes (256 KiB), well under the request limits receivers
commonly run with (1 MiB by default in nginx, 256 KiB in a queue such as SQS or EventBridge). A day
larger than that keeps its newest messages: the oldest are left out of ``messages``, and
``messages_omitted`` (present only then) says how many; ``message_count`` is still the whole day's.

Failures: 5xx, 429, timeouts and connection errors are transient (retry later; a ``Retry-After`` in
seconds or as an HTTP date is kept on the error, at most an hour); any other 4xx is permanent (fix
the request or the configuration); a 2xx without a record id is a broken receiver, also not worth
retrying blindly.

Record changes (the other direction: the CRM's contacts, accounts, opportunities and leads, which Parley
keeps so it can route texts to them). Parley asks every 15 minutes for what changed since its watermark:

    GET {crm_base_url}/records/changes?since=<ISO 8601 UTC, exclusive; absent the first time>&cursor=<c>
    X-Parley-Timestamp: <unix seconds>
    X-Parley-Signature: v1=<hex HMAC-SHA256(secret, f"{timestamp}.".encode() + raw_query)>

There is no body, so the signed bytes are the raw query string exactly as sent (what follows ``?``;
empty when there is none), checked the same way as an upsert's. ``cursor`` is whatever the previous
page answered, sent back unchanged. The answer, oldest change first:

    200 {"records": [{"crm_id": "...", "type": "contact"|"account"|"opportunity"|"lead",
                      "name": "...", "first_name": ..., "last_name": ..., "phones": ["..."],
                      "owner": ..., "team": ..., "active": true, "updated_at": "<ISO 8601>"}],
         "cursor": "<the next page>" | null}

``null`` ends the pass. Each record becomes Parley's ``crm-<crm_id>``; numbers are normalised to E.164
and one that doesn't parse is skipped. Failures are classified as for upserts.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import requests

from parley.domain.retry import retry_after_seconds

if TYPE_CHECKING:
    from parley.crm.changes import RecordPage

__all__ = [
    "BODY_MAX",
    "RETRY_AFTER_MAX",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "CrmError",
    "CrmUpsertResult",
    "WebhookCrm",
    "fit_body",
    "parse_retry_after",
    "sign",
    "verify",
]

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Parley-Signature"
TIMESTAMP_HEADER = "X-Parley-Timestamp"
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 300
BODY_MAX = 256 * 1024  # bytes of one upsert's body
RETRY_AFTER_MAX = 3600.0  # seconds: a longer wait asked for is waited this long, then tried again


@dataclass(frozen=True)
class CrmUpsertResult:
    crm_id: str
    created: bool
    version: int


class CrmError(Exception):
    """The CRM did not take the record; `transient` says whether retrying later can help."""

    def __init__(
        self,
        reason: str,
        *,
        transient: bool,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient
        self.status_code = status_code
        self.retry_after = retry_after  # seconds the CRM asked us to wait (429 Retry-After), if it said


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """A CRM's ``Retry-After`` as seconds to wait, at most `RETRY_AFTER_MAX` (an endless wait
    included); None when absent or unreadable."""
    seconds = retry_after_seconds(value, now=now)
    return None if seconds is None else min(seconds, RETRY_AFTER_MAX)


def _dumps(payload: dict[str, Any]) -> bytes:
    # sorted keys and no spaces: the same record always serialises to the same bytes
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def fit_body(payload: dict[str, Any], limit: int = BODY_MAX) -> bytes:
    """The upsert's body, within `limit` bytes: the newest messages that fit, and ``messages_omitted``
    for the earlier ones left out (a day that fits is sent whole, without that field)."""
    body = _dumps(payload)
    messages = payload.get("messages")
    if len(body) <= limit or not isinstance(messages, list) or not messages:
        return body
    sizes = [len(_dumps({"m": m})) - len(b'{"m":}') for m in messages]  # each one as it is in the list
    omitted = len(messages)
    room = limit - len(_dumps({**payload, "messages": [], "messages_omitted": omitted}))
    used = 0
    while omitted > 0 and used + sizes[omitted - 1] + (1 if used else 0) <= room:
        used += sizes[omitted - 1] + (1 if used else 0)
        omitted -= 1
    while True:  # the count's own digits can only shrink, so this settles at once in practice
        body = _dumps({**payload, "messages": messages[omitted:], "messages_omitted": omitted})
        if len(body) <= limit or omitted == len(messages):
            return body
        omitted += 1


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The full `X-Parley-Signature` value (``v1=<hex>``) for these exact body bytes."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={mac.hexdigest()}"


def verify(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    now: float | None = None,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """True only for a fresh timestamp and a matching ``v1`` signature (constant-time compare)."""
    if not timestamp or not timestamp.isascii() or not timestamp.isdigit():
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance:
        return False
    expected = sign(secret, timestamp, body)
    matched = False
    for candidate in signature.split(","):
        # no early exit: every candidate is compared, so timing says nothing about which matched
        matched |= hmac.compare_digest(candidate.strip().encode("utf-8"), expected.encode("utf-8"))
    return matched


class WebhookCrm:
    """Upserts digest records into any CRM that speaks the protocol above."""

    name = "webhook"

    def __init__(
        self,
        base_url: str,
        secret: str,
        *,
        timeout: float = 10.0,
        session: requests.Session | None = None,
        region: str = "US",
    ) -> None:
        if not base_url:
            raise ValueError("the CRM webhook needs a base URL")
        if not secret:
            raise ValueError("the CRM webhook needs a signing secret")
        self._base_url = base_url.rstrip("/")
        self._secret = secret
        self._timeout = timeout
        self._session = session or requests.Session()
        self._region = region  # where a number written without a country code is

    def record_url(self, external_id: str) -> str:
        return f"{self._base_url}/records/{quote(external_id, safe='')}"

    def upsert(self, external_id: str, payload: dict[str, Any]) -> CrmUpsertResult:
        """Create or update the record keyed by `external_id`; raise CrmError if the CRM didn't."""
        if not external_id:
            raise ValueError("external_id must not be empty")
        body = fit_body(payload)
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
        }
        url = self.record_url(external_id)
        try:
            response = self._session.put(
                url, data=body, headers=headers, timeout=self._timeout, allow_redirects=False
            )
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise CrmError(f"CRM unreachable: {type(exc).__name__}: {exc}", transient=True) from exc
        except requests.RequestException as exc:
            raise CrmError(f"CRM request failed: {type(exc).__name__}: {exc}", transient=False) from exc

        status = response.status_code
        if status == 429 or status >= 500:
            wait = parse_retry_after(response.headers.get("Retry-After"))
            hint = f" (Retry-After {wait:g}s)" if wait is not None else ""
            raise CrmError(
                f"CRM answered {status}{hint}: {_detail(response)}",
                transient=True,
                status_code=status,
                retry_after=wait,
            )
        if not 200 <= status < 300:
            raise CrmError(
                f"CRM rejected the record with {status}: {_detail(response)}",
                transient=False,
                status_code=status,
            )
        result = _parse_result(response)
        logger.debug(
            "crm upsert %s -> %s (created=%s, version=%d)",
            external_id,
            result.crm_id,
            result.created,
            result.version,
        )
        return result

    def changed_records(self, since: datetime | None, cursor: str | None) -> RecordPage:
        """One page of the receiver's changed records (``GET /records/changes``, above)."""
        from parley.crm.changes import PageBuilder, parse_crm_time
        from parley.domain.models import RECORD_TYPES

        params: dict[str, str] = {}
        if since is not None:
            params["since"] = since.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if cursor:
            params["cursor"] = cursor
        query = urlencode(params)
        timestamp = str(int(time.time()))
        headers = {
            "Accept": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret, timestamp, query.encode()),
        }
        url = f"{self._base_url}/records/changes" + (f"?{query}" if query else "")
        try:
            response = self._session.get(url, headers=headers, timeout=self._timeout, allow_redirects=False)
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise CrmError(f"CRM unreachable: {type(exc).__name__}", transient=True) from exc
        except requests.RequestException as exc:
            raise CrmError(f"CRM request failed: {type(exc).__name__}", transient=False) from exc
        status = response.status_code
        if status == 429 or status >= 500:
            raise CrmError(f"CRM answered {status}: {_detail(response)}", transient=True, status_code=status)
        try:
            data = response.json() if 200 <= status < 300 else None
        except ValueError:
            data = None
        records = data.get("records") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(records, list):
            reason = _detail(response) if not 200 <= status < 300 else "no records list"
            raise CrmError(
                f"CRM answered changes with {status}: {reason}", transient=False, status_code=status
            )
        builder = PageBuilder("webhook", self._region)
        for record in records:
            if not isinstance(record, dict) or not record.get("crm_id"):
                continue
            crm_id = str(record["crm_id"])
            kind = record.get("type", "contact")
            if kind not in RECORD_TYPES:
                logger.warning("crm record %s has a type Parley doesn't keep: %r", crm_id, kind)
                continue
            phones = record.get("phones")
            builder.add(
                contact_id=f"crm-{crm_id}",
                crm_id=crm_id,
                name=str(record.get("name") or ""),
                first_name=record.get("first_name"),
                last_name=record.get("last_name"),
                phones=phones if isinstance(phones, list) else [],
                owner=record.get("owner"),
                team=record.get("team"),
                record_type=kind,
                active=record.get("active") is not False,
                updated_at=parse_crm_time(record.get("updated_at")),
            )
        following = data.get("cursor")
        return builder.page(str(following) if following else None)


def _parse_result(response: requests.Response) -> CrmUpsertResult:
    status = response.status_code
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise CrmError(
            f"CRM answered {status} without a JSON object, so no record id",
            transient=False,
            status_code=status,
        )
    crm_id = data.get("id")
    if not isinstance(crm_id, str | int) or isinstance(crm_id, bool) or crm_id == "":
        raise CrmError(f"CRM answered {status} without a record id", transient=False, status_code=status)
    created = data.get("created")
    version = data.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise CrmError(
            f"CRM answered {status} with a non-integer version {version!r}",
            transient=False,
            status_code=status,
        )
    return CrmUpsertResult(
        crm_id=str(crm_id),
        created=created if isinstance(created, bool) else status == 201,
        version=version,
    )


def _detail(response: requests.Response) -> str:
    """A short, log-safe description of an error body."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("reason", "error", "message"):
            if isinstance(data.get(key), str):
                return str(data[key])[:300]
    text = response.text.strip()
    return text[:300] if text else response.reason or "no body"
