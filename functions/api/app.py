"""The inbox API (`/v1/*`, JWT-authenticated at the gateway): conversations, messages, send, preview,
and the CRM digest (runs, one conversation's day, auto-log, conflicts)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import unquote
from zoneinfo import ZoneInfo

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError
from pynamodb.exceptions import PynamoDBException

from parley.access import Caller
from parley.adapters.dynamo import InvalidCursor
from parley.carriers.registry import webhook_paths
from parley.clock import utc_now
from parley.domain.ids import new_request_key
from parley.domain.models import AutoLog, SendRequest, effective_auto_log
from parley.domain.phone import InvalidPhoneNumber, normalize_e164
from parley.observability import api_request_id, function_logger, observed
from parley.openapi import openapi_json
from parley.ports import ConflictCandidate, ConflictEntry, DigestRun
from parley.services.conversations import AlreadyLinked, conversation_filter
from parley.services.digest import COUNTS, ConflictAlreadyResolved, ConflictNotFound
from parley.services.digest import conflict_id as held_conflict_id
from parley.services.inbox import MediaTooLarge, NotFound, preview
from parley.services.mailbox import MAX_BATCH as MAILBOX_BATCH
from parley.services.mailbox import MAX_REPLIES, BulkResult, Content, ViewFilter
from parley.services.records import NewRecord, RecordDraft, RecordExists, RecordNotFound
from parley.services.resend import MAX_BATCH, FailedFilter
from parley.services.sending import (
    FieldError,
    KeyReused,
    NotCancellable,
    NotResendable,
    SendRejected,
    may_send_from,
)
from parley.services.templates import TemplateDraft, TemplateForbidden, TemplateNotFound
from parley.wiring import container

logger = function_logger()
app = APIGatewayHttpResolver()
T = TypeVar("T")

# The earliest year a time filter may name: stored times are fixed-width (four-digit years) strings.
MIN_YEAR = 1000
MAX_BODY = 1600  # characters in a body a send takes


class Forbidden(PermissionError):
    """The caller is known but may not do this (403, with the reason)."""


class KeyedFailure(Exception):
    """A service failed part-way through a send whose idempotency key the API made up: the client
    must be given it, since what was stored before the failure still goes out."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _json(status: int, body: Any) -> Response[str]:
    return Response(status, "application/json", json.dumps(body, default=str))


def _caller() -> Caller:
    """Who is asking, from the JWT authorizer's claims: every route decides what they see by it."""
    claims = app.current_event.request_context.authorizer.jwt_claim or {}
    caller = Caller.from_claims(claims)
    if not caller.has_access:  # no team claim is no access, not the pool's (see parley.access)
        raise Forbidden("the token names no team: ask for a team (the 'teams' or 'team' claim)")
    return caller


def _visible_teams(caller: Caller) -> frozenset[str]:
    """The teams whose items a caller lists: their own; for an admin, every team that has a number
    (conversations, conflicts and records take their team from our number), the pool included."""
    if not caller.admin:
        return caller.teams
    return caller.teams | {n.team for n in container().numbers.all()} | {"default"}


def webhook_urls(carrier: str, base_url: str) -> list[str]:
    """Where this carrier must be told to post, as a person pastes it into the carrier's console."""
    try:
        return [base_url.rstrip("/") + path for path in webhook_paths(carrier)]
    except ValueError:  # a number configured for a carrier this deployment doesn't have
        return []


def _limit() -> int:
    raw = app.current_event.get_query_string_value("limit", "50") or "50"
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 200:
        raise ValueError("limit must be a whole number from 1 to 200")
    return int(raw)


def _body() -> dict[str, Any]:
    try:
        data = app.current_event.json_body
    except RecursionError as exc:
        raise ValueError("the body is not valid JSON: it is nested too deeply") from exc
    except (ValueError, TypeError) as exc:
        raise ValueError("the body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data


@app.get("/v1/conversations")
def list_conversations() -> Response[str]:
    """Newest activity first, filtered; or, with `q`, a search. A page may hold fewer than `limit`
    (even none) and still have a cursor: each page reads at most `limit` index items per team."""
    caller, query = _caller(), app.current_event.get_query_string_value
    cursor, q, team = query("cursor"), query("q"), query("team")
    if team is not None and not 0 < len(team) <= 100:
        raise ValueError("'team' must be 1 to 100 characters")
    app_container = container()
    region = app_container.settings.default_region
    service = app_container.conversation_service
    if q is not None:
        where = conversation_filter(query, region=region, default_status="all")
        page = service.search(caller, q, limit=_limit(), cursor=cursor, where=where, team=team)
    else:
        where = conversation_filter(query, region=region)
        page = service.list(caller, where, limit=_limit(), cursor=cursor, team=team)
    conversations = [c.model_dump(mode="json") for c in page.conversations]
    return _json(200, {"conversations": conversations, "cursor": page.cursor})


@app.post("/v1/conversations/read")
def mark_all_conversations_read() -> Response[str]:
    data = _body()
    _only(data, "our_number", "cursor")
    our_number, cursor = data.get("our_number"), data.get("cursor")
    if not (our_number is None or isinstance(our_number, str)):
        raise ValueError("'our_number' must be one of our numbers, as a string")
    number = None if our_number is None else _e164("our_number", our_number)
    if not (cursor is None or isinstance(cursor, str)):
        raise ValueError("'cursor' must be the cursor a previous call answered")
    done = container().conversation_service.mark_all_read(_caller(), our_number=number, cursor=cursor)
    return _json(200, {"marked": done.marked, "cursor": done.cursor})


@app.post("/v1/conversations/<number>/read")
def mark_conversation_read(number: str) -> Response[str]:
    caller = _caller()
    data = _body() if (app.current_event.body or "").strip() else {}  # the body is optional
    _only(data, "seen_message_id")
    seen = data.get("seen_message_id")
    if not (seen is None or (isinstance(seen, str) and 0 < len(seen) <= 200)):
        raise ValueError("'seen_message_id' must be a message id: a string of 1 to 200 characters")
    conversation = container().conversation_service.mark_read(caller, number, seen)
    return _json(200, conversation.model_dump(mode="json"))


@app.post("/v1/conversations/<number>/close")
def close_conversation(number: str) -> Response[str]:
    conversation = container().conversation_service.close(_caller(), number)
    return _json(200, conversation.model_dump(mode="json"))


@app.post("/v1/conversations/<number>/reopen")
def reopen_conversation(number: str) -> Response[str]:
    conversation = container().conversation_service.reopen(_caller(), number)
    return _json(200, conversation.model_dump(mode="json"))


@app.post("/v1/conversations/<number>/contact")
def add_conversation_contact(number: str) -> Response[str]:
    caller, service = _caller(), container().conversation_service
    record = service.add_contact(caller, number, _body())
    conversation = service.get(caller, number)
    body = {"record": record.model_dump(mode="json"), "conversation": conversation.model_dump(mode="json")}
    return _json(201, body)


@app.get("/v1/conversations/<number>/messages")
def list_messages(number: str) -> Response[str]:
    cursor = app.current_event.get_query_string_value("cursor")
    shown = _include_deleted()
    page = container().inbox.messages(number, _caller(), limit=_limit(), cursor=cursor)
    # A deleted message is left out of the thread, as inbox products do, unless asked for.
    items = [m for m in page.items if shown or m.deleted_at is None]
    return _json(200, {"messages": [m.model_dump(mode="json") for m in items], "cursor": page.cursor})


def _include_deleted() -> bool:
    raw = app.current_event.get_query_string_value("include_deleted", "false")
    if raw not in ("true", "false"):
        raise ValueError("'include_deleted' must be true or false")
    return raw == "true"


@app.get("/v1/messages/<message_id>")
def get_message(message_id: str) -> Response[str]:
    return _json(200, container().inbox.message(message_id, _caller()).model_dump(mode="json"))


@app.get("/v1/messages/<message_id>/media/<index>")
def get_message_media(message_id: str, index: str) -> Response[bytes]:
    """Our copy of one attachment, as bytes: the web inbox loads it with its token (an <img> can't)."""
    medium = container().inbox.medium(message_id, index, _caller())
    # Only pictures are shown in place; SVG can carry script, so it is downloaded like other files
    # (whatever the case of the type or its parameters: `Image/SVG+XML; charset=utf-8` is SVG too).
    media_type = medium.content_type.split(";", 1)[0].strip().lower()
    shown = media_type.startswith("image/") and media_type != "image/svg+xml"
    headers = {
        "Cache-Control": "private, max-age=300",
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": "inline" if shown else "attachment",
    }
    return Response(200, medium.content_type, medium.content, headers=headers)


@app.post("/v1/messages")
def send_messages() -> Response[str]:
    caller = _caller()
    data = _body()
    team = _sending_team(caller, data.get("team"))
    # A null key is no key (client libraries write unset fields as null): the header then counts.
    if data.get("idempotency_key") is None:
        data.pop("idempotency_key", None)
        header = app.current_event.headers.get("idempotency-key")
        if header is not None:
            data["idempotency_key"] = header
    request = SendRequest.model_validate({**data, "team": team, "requested_by": caller.user or None})
    _check_template(caller, request.template_id)
    sender = container().sender
    messages = _keyed(request.idempotency_key, lambda key: sender.submit(request, key, team=team))
    return _json(202, {"messages": [m.model_dump(mode="json") for m in messages]})


def _keyed(given: str | None, send: Callable[[str], T]) -> T:
    """Run a send under the caller's idempotency key, or one made up here. A service failing part-way
    can leave some of it stored, and what is stored goes out (the Sweep requeues it): a client with
    no key of its own is handed the made-up one (KeyedFailure), since repeating the request with it
    sends once and repeating it without sends twice."""
    if given is not None:
        return send(given)
    key = new_request_key()
    try:
        return send(key)
    except (BotoCoreError, ClientError, PynamoDBException) as exc:
        if _refused_as_invalid(exc) is not None:
            raise  # nothing to repeat: the same request fails the same way
        raise KeyedFailure(key) from exc


def _sending_team(caller: Caller, team: object) -> str:
    """The team a send goes out as: the caller's first, or one of theirs they name (an admin, any)."""
    if team is None:
        return caller.home_team
    if not isinstance(team, str) or not (caller.admin or team in caller.teams):
        raise SendRejected([FieldError("team", f"you are not in team {team!r:.60}")])
    return team


def _check_template(caller: Caller, template_id: str | None) -> None:
    """Another person's personal template, or another team's, is as absent to a send or a preview."""
    if template_id is None:
        return
    try:
        container().template_service.get(template_id, caller)
    except TemplateNotFound as exc:
        raise SendRejected([FieldError("template_id", f"no template with id '{template_id}'")]) from exc


_PREVIEW_FIELDS = ("body", "template_id", "merge_values", "to", "from", "smart_encoding", "team")


@app.get("/v1/templates")
def list_templates() -> Response[str]:
    templates = container().template_service.visible(_caller())
    return _json(200, {"templates": [t.model_dump(mode="json") for t in templates]})


@app.post("/v1/templates")
def create_template() -> Response[str]:
    draft = TemplateDraft.model_validate(_body())
    return _json(201, container().template_service.create(draft, _caller()).model_dump(mode="json"))


@app.get("/v1/templates/<template_id>")
def get_template(template_id: str) -> Response[str]:
    return _json(200, container().template_service.get(template_id, _caller()).model_dump(mode="json"))


@app.put("/v1/templates/<template_id>")
def update_template(template_id: str) -> Response[str]:
    draft = TemplateDraft.model_validate(_body())
    updated = container().template_service.update(template_id, draft, _caller())
    return _json(200, updated.model_dump(mode="json"))


@app.delete("/v1/templates/<template_id>")
def delete_template(template_id: str) -> Response[str]:
    container().template_service.delete(template_id, _caller())
    return Response(204, "application/json", "")


@app.post("/v1/records")
def create_record() -> Response[str]:
    caller = _caller()
    draft = NewRecord.model_validate(_body())
    record = container().records.create(draft, team=caller.home_team, user=caller.user)
    return _json(201, record.model_dump(mode="json"))


@app.get("/v1/records")
def find_records() -> Response[str]:
    phone = app.current_event.get_query_string_value("phone")
    if not phone:
        raise ValueError("'phone' is required: records are found by one of their numbers")
    found = container().records.find(phone, caller=_caller())
    return _json(200, {"records": [r.model_dump(mode="json") for r in found]})


@app.get("/v1/records/<record_id>")
def get_record(record_id: str) -> Response[str]:
    return _json(200, container().records.get(record_id, caller=_caller()).model_dump(mode="json"))


@app.put("/v1/records/<record_id>")
def update_record(record_id: str) -> Response[str]:
    draft = RecordDraft.model_validate(_body())
    record = container().records.update(record_id, draft, caller=_caller())
    return _json(200, record.model_dump(mode="json"))


@app.get("/v1/numbers")
def list_numbers() -> Response[str]:
    caller = _caller()
    app_container = container()
    # the caller's teams' numbers and the pool's (the "default" team's, which every team sends from)
    numbers = [
        {**n.model_dump(mode="json"), "webhooks": webhook_urls(n.carrier, app_container.public_base_url)}
        for n in app_container.numbers.all()
        if caller.sees(n.team) or n.team == "default"
    ]
    return _json(200, {"numbers": numbers})


@app.post("/v1/messages/preview")
def preview_message() -> Response[str]:
    caller = _caller()
    data = _body()
    _only(data, *_PREVIEW_FIELDS)
    team = _sending_team(caller, data.pop("team", None))
    body, template_id, to = data.get("body"), data.get("template_id"), data.get("to")
    values = data.get("merge_values") or {}
    from_number, smart_encoding = data.get("from"), data.get("smart_encoding")
    if not (body is None or isinstance(body, str)) or not (
        template_id is None or isinstance(template_id, str)
    ):
        raise ValueError("'body' and 'template_id' must be strings")
    if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
        raise ValueError("'merge_values' must be an object of strings")
    if not (from_number is None or isinstance(from_number, str)):
        raise ValueError("'from' must be one of our numbers, as a string")
    if not (smart_encoding is None or isinstance(smart_encoding, bool)):
        raise ValueError("'smart_encoding' must be true, false or null (the sender number's setting)")
    if isinstance(to, list) and len(to) > 1:
        raise ValueError("'to' names one recipient: preview renders for one recipient")
    if isinstance(to, list) and to:
        to = to[0]
    if not (to is None or isinstance(to, str)):
        raise ValueError("'to' must be one recipient's number, as a string or a list of one")
    recipient = normalize_e164(to) if to is not None else None
    sender_number = normalize_e164(from_number, require_mobile=False) if from_number else None
    sending = container().sender
    # The sender the send would use: its smart-encoding setting applies unless the request says.
    sender = sending.sender_for(from_number=sender_number, to=recipient, team=team)
    if sender_number and sender and not may_send_from(sender, team, caller.user or None):
        raise SendRejected([FieldError("from", f"{sender_number} belongs to another team")])
    _check_template(caller, template_id)
    text = sending.render(body=body, template_id=template_id, merge_values=values, to=recipient, team=team)
    result = preview(text, smart_encoding=smart_encoding, sender=sender)
    # A text over the limits is still counted (a writer watches the count grow), and said to be over.
    max_segments = container().settings.max_segments
    # An empty text is counted too (the compose box starts empty); a send refuses it.
    within = (
        bool(text.strip()) and result["segments"] <= max_segments and (body is None or len(body) <= MAX_BODY)
    )
    answer = {"text": text, "from": sender.number if sender else None, **result}
    return _json(200, {**answer, "max_segments": max_segments, "within_limit": within})


@app.post("/v1/messages/<message_id>/reschedule")
def reschedule_message(message_id: str) -> Response[str]:
    caller = _caller()
    data = _body()
    _only(data, "send_at")
    raw = data.get("send_at")
    if not isinstance(raw, str):
        raise ValueError("'send_at' is required: an ISO 8601 time with a time zone")
    try:
        send_at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"'send_at' is not an ISO 8601 time: {raw!r}") from exc
    app_container = container()
    message = app_container.inbox.message(message_id, caller)
    return _json(200, app_container.sender.reschedule(message, send_at).model_dump(mode="json"))


@app.post("/v1/messages/<message_id>/cancel")
def cancel_message(message_id: str) -> Response[str]:
    app_container = container()
    message = app_container.inbox.message(message_id, _caller())
    return _json(200, app_container.sender.cancel(message).model_dump(mode="json"))


@app.post("/v1/messages/resend")
def resend_messages() -> Response[str]:
    caller = _caller()
    data = _body()
    _only(data, "ids", "view", "our_number", "since", "cursor", "partially_delivered")
    ids, view = data.get("ids"), data.get("view")
    resender = container().resender
    if (ids is None) == (view is None):
        raise ValueError("give either 'ids' (a list of message ids) or a view filter ('view': 'failed')")
    if ids is not None:
        if (
            not isinstance(ids, list)
            or not ids
            or not all(isinstance(i, str) and 0 < len(i) <= 200 for i in ids)
        ):
            raise ValueError("'ids' must be a non-empty list of message ids")
        if len(ids) > MAX_BATCH:
            raise ValueError(f"'ids' can name at most {MAX_BATCH} messages at a time")
        if "cursor" in data:
            raise ValueError("'cursor' goes with 'view': it continues a resend from the Failed view")
        if "partially_delivered" in data:
            raise ValueError("'partially_delivered' goes with 'view': ids are resent whatever their status")
        results, more, cursor = resender.resend_ids(ids, caller=caller, by=caller.user or None), False, None
    else:
        if view != "failed":
            raise ValueError("'view' must be 'failed': only failed messages can be resent")
        our_number, since, cursor = data.get("our_number"), data.get("since"), data.get("cursor")
        if not (our_number is None or isinstance(our_number, str)):
            raise ValueError("'our_number' must be one of our numbers, as a string")
        if not (since is None or isinstance(since, str)):
            raise ValueError("'since' must be an ISO 8601 time with a time zone")
        if not (cursor is None or isinstance(cursor, str)):
            raise ValueError("'cursor' must be the cursor a previous call answered")
        partly = data.get("partially_delivered", False)
        if not isinstance(partly, bool):
            raise ValueError("'partially_delivered' must be true or false")
        where = FailedFilter(
            our_number=_e164("our_number", our_number) if our_number else None,
            since=_aware_time("since", since) if since else None,
            partially_delivered=partly,
        )
        done = resender.resend_failed(where, caller=caller, by=caller.user or None, cursor=cursor)
        results, more, cursor = done.results, done.more, done.cursor
    answer: dict[str, Any] = {"results": [asdict(r) for r in results], "more": more}
    if cursor is not None:  # stopped early: call again with it for the rest
        answer["cursor"] = cursor
    return _json(200, answer)


@app.post("/v1/messages/<message_id>/resend")
def resend_message(message_id: str) -> Response[str]:
    caller = _caller()
    message = container().resender.resend_one(message_id, caller=caller, by=caller.user or None)
    return _json(200, message.model_dump(mode="json"))


def _aware_time(name: str, raw: str) -> datetime:
    try:
        at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"'{name}' is not an ISO 8601 time: {raw!r}") from exc
    if at.tzinfo is None:
        raise ValueError(f"'{name}' needs a time zone (e.g. 2026-12-01T09:00:00Z)")
    try:
        year = at.astimezone(UTC).year
    except OverflowError:  # 0001-01-01 at +01:00 is before year 1 in UTC; 9999-12-31 at -01:00 after 9999
        year = 0
    if not MIN_YEAR <= year <= 9999:
        raise ValueError(f"'{name}' must be a time from year {MIN_YEAR} to 9999 (in UTC), not {raw!r:.40}")
    return at


def _candidate_teams(caller: Caller, entries: list[ConflictEntry]) -> dict[str, str]:
    """The team of each candidate record of `entries`, read now in one batch (a record's team may have
    changed since the day was held); nothing for an admin, who sees every candidate. A record that no
    longer exists has no team."""
    ids = [c.record_id for entry in entries for c in entry.candidates]
    if caller.admin or not ids:
        return {}
    return {record.contact_id: record.team for record in container().contacts.get_many(ids)}


def _shown_candidates(caller: Caller, entry: ConflictEntry, teams: dict[str, str]) -> list[ConflictCandidate]:
    """The candidates whose records the caller sees (an admin: all). Another team's record, like one
    that no longer exists, is left out: the conflict says only how many were."""
    if caller.admin:
        return list(entry.candidates)
    return [c for c in entry.candidates if c.record_id in teams and caller.sees(teams[c.record_id])]


def _conflict(entry: ConflictEntry, shown: list[ConflictCandidate]) -> dict[str, Any]:
    return {
        **asdict(entry),
        "candidates": [asdict(c) for c in shown],
        "hidden_candidates": len(entry.candidates) - len(shown),
        "found_at": entry.found_at.isoformat(),
        "resolved_at": entry.resolved_at.isoformat() if entry.resolved_at else None,
        "resolved": entry.resolved,
    }


@app.get("/v1/crm/conflicts")
def list_crm_conflicts() -> Response[str]:
    caller = _caller()
    cursor = app.current_event.get_query_string_value("cursor")
    page = container().digest.open_conflicts(_visible_teams(caller), limit=_limit(), cursor=cursor)
    teams = _candidate_teams(caller, page.items)
    conflicts = [_conflict(c, _shown_candidates(caller, c, teams)) for c in page.items]
    return _json(200, {"conflicts": conflicts, "cursor": page.cursor})


@app.post("/v1/crm/conflicts/<conflict_id>/resolve")
def resolve_crm_conflict(conflict_id: str) -> Response[str]:
    """Only a candidate the caller sees may be picked: another team's record is refused exactly as a
    record that is no candidate, and no answer names one."""
    caller = _caller()
    data = _body()
    _only(data, "record_id")
    record_id = data.get("record_id")
    if not isinstance(record_id, str) or not record_id:
        raise ValueError("'record_id' is required: the id of one of the conflict's candidate records")
    entry = container().conflicts.get(conflict_id)
    if entry is None or not caller.sees(entry.team):
        raise ConflictNotFound(f"no conflict {conflict_id!r}")
    shown = _shown_candidates(caller, entry, _candidate_teams(caller, [entry]))
    seen = [c.record_id for c in shown]
    if entry.resolved and entry.record_id not in seen:
        raise ConflictAlreadyResolved(f"conflict {conflict_id!r} was already resolved by {entry.resolved_by}")
    if not entry.resolved and record_id not in seen:
        raise ValueError(f"'record_id' must be one of the candidates ({', '.join(seen)}), not {record_id!r}")
    try:
        outcome = container().digest.resolve(
            conflict_id, record_id, user=caller.user or "someone", caller=caller
        )
    except ConflictAlreadyResolved:  # resolved meanwhile: name the record picked only if the caller sees it
        now = container().conflicts.get(conflict_id)
        if now is not None and now.record_id not in seen:
            raise ConflictAlreadyResolved(
                f"conflict {conflict_id!r} was already resolved by {now.resolved_by}"
            ) from None
        raise
    # 202: the choice is saved and the day waits on the digest queue, retried until the CRM takes it
    body = {**_conflict(outcome.conflict, shown), "logged": outcome.logged, "error": outcome.error}
    return _json(200 if outcome.logged else 202, body)


# -- the CRM digest: runs, one conversation's day, auto-log ------------------------------------------

_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _e164(name: str, raw: str) -> str:
    """A body field's number in E.164 (landlines and short codes too), or a 400 naming the field."""
    try:
        return normalize_e164(raw, require_mobile=False)
    except InvalidPhoneNumber as exc:
        raise ValueError(f"'{name}': {exc}") from exc


def _only(data: dict[str, Any], *allowed: str) -> None:
    """Refuse fields we don't read: a misspelt `our_number` must not change the caller's own setting."""
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}")


def _day(raw: object) -> date:
    """A calendar day as YYYY-MM-DD (strictly: `fromisoformat` alone also takes 20240531)."""
    if not isinstance(raw, str) or not _DAY.fullmatch(raw):
        raise ValueError(f"'day' must be a date as YYYY-MM-DD, e.g. 2026-05-31, not {raw!r:.40}")
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise ValueError(f"'day' {raw} is not a real date ({exc})") from exc


def _past_day(raw: object) -> date:
    """A day that can have texts: up to today in the organisation's time zone, with a day of slack
    for a caller whose own zone is already on tomorrow, and not past retention (RetentionDays)."""
    day = _day(raw)
    zone = container().settings.org_timezone
    today = utc_now().astimezone(ZoneInfo(zone)).date()
    if day > today + timedelta(days=1):
        raise ValueError(f"'day' {day} is in the future: it is {today} in {zone}")
    container().digest.check_kept(day)  # retention blanked its texts: the CRM keeps what it was sent
    return day


def _run(run: DigestRun) -> dict[str, Any]:
    started = run.started_at
    if started is not None and started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    return {
        "day": run.day,
        "shards": run.shards,
        "shards_done": run.shards_done,
        "finished": run.finished,
        "started_at": started.isoformat() if started else None,  # None: jobs nobody started
        "counts": {name: int(run.counts.get(name, 0)) for name in COUNTS},
        "failures": list(run.failures),
    }


@app.post("/v1/crm/digest")
def start_crm_digest() -> Response[str]:
    data = _body()
    _only(data, "day")
    day = _past_day(data.get("day"))
    return _json(202, container().digest_jobs.start([day]))


@app.get("/v1/crm/digest/<day>")
def get_crm_digest(day: str) -> Response[str]:
    caller = _caller()
    run = container().digest.progress(_day(day))
    if run is None:
        raise NotFound(f"no digest run for {day}; start one with POST /v1/crm/digest")
    answer = _run(run)
    if not caller.admin:  # the run is the organisation's; its failures name other teams' customers
        failures = answer["failures"]
        answer["failures"] = [f for f in failures if _sees_customer(caller, f.get("customer_number"))]
    return _json(200, answer)


def _sees_customer(caller: Caller, number: object) -> bool:
    if not isinstance(number, str):
        return False
    try:
        container().inbox.conversation(number, caller)
    except NotFound:
        return False
    return True


@app.post("/v1/crm/log")
def log_crm_day() -> Response[str]:
    caller = _caller()
    data = _body()
    _only(data, "customer_number", "day")
    raw = data.get("customer_number")
    if not isinstance(raw, str):
        raise ValueError("'customer_number' is required: the customer's number in E.164, e.g. +14155550100")
    number = _e164("customer_number", raw)
    day = _past_day(data.get("day"))
    app_container = container()
    app_container.inbox.conversation(number, caller)  # another team's conversation: 404
    report = app_container.digest.log_day(number, day)
    if report.conflicts:
        held = held_conflict_id(number, day.isoformat())
        reason = (
            f"several records have {number} and none is linked to the conversation: pick one with "
            f"POST /v1/crm/conflicts/{held}/resolve, which logs the day"
        )
        return _json(409, {"error": reason, "conflict_id": held})
    if report.failed:
        # 502: our request was fine and the CRM (upstream) refused it. Nothing is recorded as logged,
        # so the same request again is safe; no retry is queued: the person asking is the retry.
        reason = f"the CRM refused the day: {report.failed[0]['reason']}; nothing was logged, ask again"
        return _json(502, {"error": reason, "report": report.as_dict()})
    return _json(200, report.as_dict())


def _auto_log_state(caller: Caller) -> dict[str, Any]:
    app_container = container()
    default = AutoLog(app_container.settings.auto_log_default)
    user = caller.user
    mine = app_container.auto_log_settings.get_user(user) if user else None
    numbers = sorted((n for n in app_container.numbers.all() if caller.sees(n.team)), key=lambda n: n.number)
    return {
        "default": default.value,
        "user": mine,
        "effective_for_user": effective_auto_log([AutoLog(mine) if mine else None], default).value,
        "numbers": [
            {"number": n.number, "auto_log": n.auto_log.value if n.auto_log else None} for n in numbers
        ],
    }


@app.get("/v1/crm/auto-log")
def get_crm_auto_log() -> Response[str]:
    return _json(200, _auto_log_state(_caller()))


@app.put("/v1/crm/auto-log")
def set_crm_auto_log() -> Response[str]:
    caller = _caller()
    user = caller.user
    data = _body()
    _only(data, "auto_log", "our_number")
    choices = "'nightly', 'immediate', 'off', or null to follow the default"
    if "auto_log" not in data:
        raise ValueError(f"'auto_log' is required: {choices}")
    raw, our_number = data["auto_log"], data.get("our_number")
    if raw is not None and (not isinstance(raw, str) or raw not in {m.value for m in AutoLog}):
        raise ValueError(f"'auto_log' must be {choices}, not {raw!r:.40}")
    mode = AutoLog(raw) if raw is not None else None
    app_container = container()
    if our_number is None:
        if not user:
            raise ValueError("the token has no 'sub', so there is no user to set auto-log for")
        app_container.auto_log_settings.set_user(user, mode.value if mode else None)
    else:
        if not isinstance(our_number, str):
            raise ValueError("'our_number' must be one of the team's numbers, as a string")
        normalized = _e164("our_number", our_number)
        number = app_container.numbers.get(normalized)
        if number is None or not caller.sees(number.team):
            raise NotFound(f"no number {normalized} in your team")
        app_container.numbers.save(number.model_copy(update={"auto_log": mode}))
    return _json(200, _auto_log_state(caller))


# -- message views, delete and restore, reply and forward --------------------------------------------


@app.get("/v1/messages")
def list_message_view() -> Response[str]:
    event = app.current_event
    view = event.get_query_string_value("view", "all") or "all"
    our_number = event.get_query_string_value("our_number")
    since, until = event.get_query_string_value("since"), event.get_query_string_value("until")
    number = _e164("our_number", our_number) if our_number else None
    where = ViewFilter(
        our_number=number,
        since=_aware_time("since", since) if since else None,
        until=_aware_time("until", until) if until else None,
    )
    cursor = event.get_query_string_value("cursor")
    page = container().mailbox.view(view, _caller(), where, limit=_limit(), cursor=cursor)
    return _json(
        200,
        {"view": view, "messages": [m.model_dump(mode="json") for m in page.items], "cursor": page.cursor},
    )


def _ids(data: dict[str, Any], at_most: int = MAILBOX_BATCH) -> list[str]:
    ids = data.get("ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and 0 < len(i) <= 200 for i in ids):
        raise ValueError("'ids' is required: a non-empty list of message ids")
    if len(ids) > at_most:
        raise ValueError(f"'ids' can name at most {at_most} messages at a time")
    return ids


def _time_left() -> Callable[[], float] | None:
    """The invocation's remaining seconds, where its context tells them."""
    remaining = getattr(getattr(app, "lambda_context", None), "get_remaining_time_in_millis", None)
    if not callable(remaining):
        return None
    return lambda: float(remaining()) / 1000


@app.post("/v1/messages/delete")
def delete_messages() -> Response[str]:
    data = _body()
    _only(data, "ids")
    results = container().mailbox.delete(_ids(data), _caller())
    return _json(200, {"results": [asdict(r) for r in results]})


@app.post("/v1/messages/restore")
def restore_messages() -> Response[str]:
    data = _body()
    _only(data, "ids")
    results = container().mailbox.restore(_ids(data), _caller())
    return _json(200, {"results": [asdict(r) for r in results]})


def _idempotency_key(data: dict[str, Any]) -> str | None:
    """The body's key, else the Idempotency-Key header's (a null in the body is no key)."""
    key = data.get("idempotency_key")
    if key is None:
        key = app.current_event.headers.get("idempotency-key")
    if key is not None and (not isinstance(key, str) or not 0 < len(key) <= 200):
        raise ValueError("'idempotency_key' must be a string of 1 to 200 characters")
    return key


def _content(data: dict[str, Any]) -> Content:
    """A reply's text: a `body`, or a `template_id` with `merge_values`, checked before anything is sent."""
    body, template_id, values = data.get("body"), data.get("template_id"), data.get("merge_values")
    if not (body is None or isinstance(body, str)) or not (
        template_id is None or isinstance(template_id, str)
    ):
        raise ValueError("'body' and 'template_id' must be strings")
    if (body is None) == (template_id is None):
        raise ValueError("give exactly one of 'body' or 'template_id'")
    if body is not None and not (body.strip() and len(body) <= 1600):
        raise ValueError("'body' must be a text of 1 to 1600 characters")
    if values is not None and (
        not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values())
    ):
        raise ValueError("'merge_values' must be an object of strings")
    return Content(body=body, template_id=template_id, merge_values=values)


_REPLY_FIELDS = ("body", "template_id", "merge_values", "idempotency_key")


@app.post("/v1/messages/<message_id>/reply")
def reply_to_message(message_id: str) -> Response[str]:
    caller, data = _caller(), _body()
    _only(data, *_REPLY_FIELDS)
    content = _content(data)
    _check_template(caller, content.template_id)
    mailbox = container().mailbox
    sent = _keyed(_idempotency_key(data), lambda key: mailbox.reply(message_id, caller, content, key))
    return _json(202, {"messages": [sent.model_dump(mode="json")]})


@app.post("/v1/messages/reply")
def reply_to_messages() -> Response[str]:
    caller, data = _caller(), _body()
    _only(data, "ids", *_REPLY_FIELDS)
    ids, content = _ids(data, MAX_REPLIES), _content(data)
    _check_template(caller, content.template_id)
    mailbox, time_left = container().mailbox, _time_left()
    used: list[str] = []  # the key it ran under (perhaps made up here): asking again needs it

    def reply(key: str) -> list[BulkResult]:
        used.append(key)
        return mailbox.reply_many(ids, caller, content, key, time_left=time_left)

    results = _keyed(_idempotency_key(data), reply)
    more = any(r.result == "not_tried" for r in results)  # out of time: ask again for those
    answer = {"results": [asdict(r) for r in results], "more": more, "idempotency_key": used[0]}
    return _json(200, answer)


@app.post("/v1/messages/<message_id>/forward")
def forward_message(message_id: str) -> Response[str]:
    data = _body()
    _only(data, "to", "body", "idempotency_key")
    to, body = data.get("to"), data.get("body")
    recipients = [to] if isinstance(to, str) else to
    if not isinstance(recipients, list) or not recipients or not all(isinstance(t, str) for t in recipients):
        raise ValueError("'to' is required: a number, or a list of numbers, in E.164")
    if len(recipients) > 100:
        raise ValueError("'to' can name at most 100 numbers")
    if not (body is None or (isinstance(body, str) and body.strip() and len(body) <= 1600)):
        raise ValueError("'body' must be a text of 1 to 1600 characters; leave it out for the original's")
    caller, mailbox = _caller(), container().mailbox
    sent = _keyed(
        _idempotency_key(data), lambda key: mailbox.forward(message_id, caller, recipients, body, key)
    )
    return _json(202, {"messages": [m.model_dump(mode="json") for m in sent]})


@app.post("/v1/erasures")
def erase_customer() -> Response[str]:
    """An admin erases one customer's data, their opt-out record kept; 202 while more is left."""
    caller = _caller()
    if not caller.admin:
        return _json(403, {"error": "only an admin can erase a customer's data"})
    data = _body()
    _only(data, "number")
    raw = data.get("number")
    if not isinstance(raw, str):
        raise ValueError("'number' is required: the customer's number, e.g. +14155550100")
    number = _e164("number", raw)
    erased = container().erasure.erase(number, by=caller.user)
    return _json(200 if erased.done else 202, asdict(erased))


@app.get("/v1/openapi.json")
def get_openapi_document() -> Response[str]:
    return Response(200, "application/json", openapi_json())


@app.exception_handler(ValidationError)
def invalid_request(exc: ValidationError) -> Response[str]:
    errors = [
        {
            "field": ".".join(str(p) for p in e["loc"]) or "body",
            "reason": e["msg"].removeprefix("Value error, "),
        }
        for e in exc.errors()
    ]
    return _json(400, {"error": "the request is not valid", "errors": errors})


@app.exception_handler(SendRejected)
def rejected(exc: SendRejected) -> Response[str]:
    errors = [{"field": e.field, "reason": e.reason} for e in exc.errors]
    return _json(400, {"error": "the request can't be sent", "errors": errors})


@app.exception_handler(KeyReused)
def key_reused(exc: KeyReused) -> Response[str]:
    errors = [{"field": e.field, "reason": e.reason} for e in exc.errors]
    return _json(409, {"error": "the idempotency key was used for a different request", "errors": errors})


@app.exception_handler(NotCancellable)
def not_cancellable(exc: NotCancellable) -> Response[str]:
    return _json(409, {"error": str(exc)})


@app.exception_handler(NotResendable)
def not_resendable(exc: NotResendable) -> Response[str]:
    return _json(409, {"error": str(exc)})


@app.exception_handler(RecordNotFound)
def record_not_found(exc: RecordNotFound) -> Response[str]:
    return _json(404, {"error": str(exc)})


@app.exception_handler(RecordExists)
def record_exists(exc: RecordExists) -> Response[str]:
    return _json(409, {"error": str(exc)})


@app.exception_handler(AlreadyLinked)
def already_linked(exc: AlreadyLinked) -> Response[str]:
    return _json(409, {"error": str(exc)})


@app.exception_handler(TemplateNotFound)
def template_not_found(exc: TemplateNotFound) -> Response[str]:
    return _json(404, {"error": str(exc)})


@app.exception_handler(Forbidden)
@app.exception_handler(TemplateForbidden)
def forbidden(exc: PermissionError) -> Response[str]:
    return _json(403, {"error": str(exc)})


@app.exception_handler(ConflictNotFound)
def conflict_not_found(exc: ConflictNotFound) -> Response[str]:
    return _json(404, {"error": str(exc)})


@app.exception_handler(ConflictAlreadyResolved)
def conflict_resolved(exc: ConflictAlreadyResolved) -> Response[str]:
    return _json(409, {"error": str(exc)})


@app.not_found
def no_route(_exc: Exception) -> Response[str]:
    """A path the gateway routed here that no handler takes (an id with characters no id has): the
    API's own error body, as for every other 404, not powertools' `{"statusCode", "message"}`."""
    return _json(404, {"error": f"nothing at {app.current_event.http_method} {app.current_event.path}"})


@app.exception_handler(NotFound)
def not_found(exc: NotFound) -> Response[str]:
    return _json(404, {"error": str(exc)})


@app.exception_handler(MediaTooLarge)
def media_too_large(exc: MediaTooLarge) -> Response[str]:
    return _json(413, {"error": str(exc)})


@app.exception_handler(InvalidCursor)
def bad_cursor(exc: InvalidCursor) -> Response[str]:
    return _json(400, {"error": str(exc)})


@app.exception_handler(BotoCoreError)
@app.exception_handler(ClientError)
@app.exception_handler(PynamoDBException)
def dependency_failed(exc: Exception) -> Response[str]:
    """DynamoDB or SQS failed past the SDK's own retries: say so, and that asking again is safe. Not
    when DynamoDB refused what it was given (an item over its 400 KB, say): the same request would
    fail the same way, so that is the client's 413 or 400, with the reason."""
    invalid = _refused_as_invalid(exc)
    if invalid is not None:
        logger.warning("DynamoDB refused a write as invalid", extra={"reason": invalid[:500]})
        if "size" in invalid.lower():
            reason = (
                "the request is too large to store (DynamoDB keeps at most 400 KB a message or record): "
                "make it smaller (metadata, fields, text); sent again as it is, it fails again"
            )
            return _json(413, {"error": reason})
        return _json(
            400,
            {"error": f"the request can't be stored: {invalid:.200}; sent again as it is, it fails again"},
        )
    logger.exception("a service the API depends on failed")
    reason = (
        "a service Parley depends on failed; nothing is lost: send the same request again "
        "(with the same idempotency_key, a send goes out once)"
    )
    return Response(503, "application/json", json.dumps({"error": reason}), headers={"Retry-After": "2"})


@app.exception_handler(KeyedFailure)
def dependency_failed_keyed(exc: KeyedFailure) -> Response[str]:
    """As `dependency_failed`, for a request sent without an idempotency key: part of it may be stored
    and go out, so the answer hands back the key it was given, to repeat it with."""
    logger.exception("a service the API depends on failed", extra={"request_key": exc.key})
    reason = (
        "a service Parley depends on failed and part of the request may be stored (and go out): send it "
        f"again with idempotency_key '{exc.key}' (in the body, or as the Idempotency-Key header) and it "
        "goes out once; sent again without it, it can go out twice"
    )
    body = json.dumps({"error": reason, "idempotency_key": exc.key})
    headers = {"Retry-After": "2", "Idempotency-Key": exc.key}
    return Response(503, "application/json", body, headers=headers)


def _refused_as_invalid(exc: Exception) -> str | None:
    """DynamoDB's reason when it refused the request itself (ValidationException: an item too large,
    an empty key), which no repeat can fix; None for a failure that may pass (throttling, a timeout)."""
    if isinstance(exc, PynamoDBException):
        reasons = getattr(exc, "cancellation_reasons", None) or []
        for reason in reasons:  # a transaction: each item's own refusal
            if reason is not None and reason.code == "ValidationError":
                return reason.message or "a write in the transaction is not valid"
        code, message = exc.cause_response_code, exc.cause_response_message
    elif isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code, message = error.get("Code"), error.get("Message")
    else:
        return None
    if code != "ValidationException":
        return None
    return message or "DynamoDB refused the request as invalid"


@app.exception_handler(ValueError)
def bad_input(exc: ValueError) -> Response[str]:
    return _json(400, {"error": str(exc)})


def _decoded_path(event: dict[str, Any]) -> dict[str, Any]:
    """The event with each segment of `rawPath` percent-decoded: API Gateway keeps the path as sent and
    powertools routes on it, so a client that writes `+1415...` as `%2B1415...` (as URL encoders do)
    would find no conversation. A segment that decodes to something with a `/` is left as sent."""
    raw = event.get("rawPath")
    if not isinstance(raw, str) or "%" not in raw:
        return event
    segments = [unquote(s) if "/" not in unquote(s) else s for s in raw.split("/")]
    return {**event, "rawPath": "/".join(segments)}


@logger.inject_lambda_context
@observed(correlation=api_request_id)  # a send's lines then carry its request key (SendService binds it)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(_decoded_path(event), context)
