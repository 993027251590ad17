"""The inbox API (`/v1/*`, JWT-authenticated at the gateway): conversations, messages, send, preview."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError
from pynamodb.exceptions import PynamoDBException

from parley.adapters.dynamo import InvalidCursor
from parley.carriers.registry import webhook_paths
from parley.domain.ids import new_request_key
from parley.domain.models import SendRequest
from parley.domain.phone import normalize_e164
from parley.openapi import openapi_json
from parley.ports import ConflictEntry
from parley.services.digest import ConflictAlreadyResolved, ConflictNotFound, ConflictPostFailed
from parley.services.inbox import NotFound, preview
from parley.services.resend import MAX_BATCH, FailedFilter
from parley.services.sending import NotCancellable, NotResendable, SendRejected
from parley.services.templates import TemplateDraft, TemplateNotFound
from parley.wiring import container

logger = Logger(service="parley")
app = APIGatewayHttpResolver()


def _json(status: int, body: Any) -> Response[str]:
    return Response(status, "application/json", json.dumps(body, default=str))


def _caller() -> tuple[str, str]:
    claims = app.current_event.request_context.authorizer.jwt_claim or {}
    return str(claims.get("sub", "")), str(claims.get("team", "default"))


def webhook_urls(carrier: str, base_url: str) -> list[str]:
    """Where this carrier must be told to post, as a person pastes it into the carrier's console."""
    try:
        return [base_url.rstrip("/") + path for path in webhook_paths(carrier)]
    except ValueError:  # a number configured for a carrier this deployment doesn't have
        return []


def _limit() -> int:
    raw = app.current_event.get_query_string_value("limit", "50") or "50"
    if not raw.isdigit() or not 1 <= int(raw) <= 200:
        raise ValueError("limit must be a whole number from 1 to 200")
    return int(raw)


def _body() -> dict[str, Any]:
    try:
        data = app.current_event.json_body
    except (ValueError, TypeError) as exc:
        raise ValueError("the body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data


@app.get("/v1/conversations")
def list_conversations() -> Response[str]:
    _, team = _caller()
    cursor = app.current_event.get_query_string_value("cursor")
    page = container().inbox.conversations(team, limit=_limit(), cursor=cursor)
    return _json(
        200, {"conversations": [c.model_dump(mode="json") for c in page.items], "cursor": page.cursor}
    )


@app.get("/v1/conversations/<number>/messages")
def list_messages(number: str) -> Response[str]:
    _, team = _caller()
    cursor = app.current_event.get_query_string_value("cursor")
    page = container().inbox.messages(number, team, limit=_limit(), cursor=cursor)
    return _json(200, {"messages": [m.model_dump(mode="json") for m in page.items], "cursor": page.cursor})


@app.get("/v1/messages/<message_id>")
def get_message(message_id: str) -> Response[str]:
    _, team = _caller()
    return _json(200, container().inbox.message(message_id, team).model_dump(mode="json"))


@app.post("/v1/messages")
def send_messages() -> Response[str]:
    user, team = _caller()
    data = _body()
    data.setdefault("idempotency_key", app.current_event.headers.get("idempotency-key"))
    if data["idempotency_key"] is None:
        data.pop("idempotency_key")
    request = SendRequest.model_validate({**data, "requested_by": user or None})
    messages = container().sender.submit(request, request.idempotency_key or new_request_key(), team=team)
    return _json(202, {"messages": [m.model_dump(mode="json") for m in messages]})


@app.get("/v1/templates")
def list_templates() -> Response[str]:
    user, _ = _caller()
    templates = container().template_service.visible(user)
    return _json(200, {"templates": [t.model_dump(mode="json") for t in templates]})


@app.post("/v1/templates")
def create_template() -> Response[str]:
    user, _ = _caller()
    draft = TemplateDraft.model_validate(_body())
    return _json(201, container().template_service.create(draft, user).model_dump(mode="json"))


@app.get("/v1/templates/<template_id>")
def get_template(template_id: str) -> Response[str]:
    user, _ = _caller()
    return _json(200, container().template_service.get(template_id, user).model_dump(mode="json"))


@app.put("/v1/templates/<template_id>")
def update_template(template_id: str) -> Response[str]:
    user, _ = _caller()
    draft = TemplateDraft.model_validate(_body())
    return _json(200, container().template_service.update(template_id, draft, user).model_dump(mode="json"))


@app.delete("/v1/templates/<template_id>")
def delete_template(template_id: str) -> Response[str]:
    user, _ = _caller()
    container().template_service.delete(template_id, user)
    return Response(204, "application/json", "")


@app.get("/v1/numbers")
def list_numbers() -> Response[str]:
    app_container = container()
    numbers = [
        {**n.model_dump(mode="json"), "webhooks": webhook_urls(n.carrier, app_container.public_base_url)}
        for n in app_container.numbers.all()
    ]
    return _json(200, {"numbers": numbers})


@app.post("/v1/messages/preview")
def preview_message() -> Response[str]:
    _, team = _caller()
    data = _body()
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
    recipient = normalize_e164(to) if isinstance(to, str) else None
    sender_number = normalize_e164(from_number, require_mobile=False) if from_number else None
    sending = container().sender
    # The sender the send would use: its smart-encoding setting applies unless the request says.
    sender = sending.sender_for(from_number=sender_number, to=recipient, team=team)
    text = sending.render(body=body, template_id=template_id, merge_values=values, to=recipient)
    result = preview(text, smart_encoding=smart_encoding, sender=sender)
    return _json(200, {"text": text, "from": sender.number if sender else None, **result})


@app.post("/v1/messages/<message_id>/reschedule")
def reschedule_message(message_id: str) -> Response[str]:
    _, team = _caller()
    raw = _body().get("send_at")
    if not isinstance(raw, str):
        raise ValueError("'send_at' is required: an ISO 8601 time with a time zone")
    try:
        send_at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"'send_at' is not an ISO 8601 time: {raw!r}") from exc
    app_container = container()
    message = app_container.inbox.message(message_id, team)
    return _json(200, app_container.sender.reschedule(message, send_at).model_dump(mode="json"))


@app.post("/v1/messages/<message_id>/cancel")
def cancel_message(message_id: str) -> Response[str]:
    _, team = _caller()
    app_container = container()
    message = app_container.inbox.message(message_id, team)
    return _json(200, app_container.sender.cancel(message).model_dump(mode="json"))


@app.post("/v1/messages/resend")
def resend_messages() -> Response[str]:
    user, team = _caller()
    data = _body()
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
        results, more = resender.resend_ids(ids, team=team, by=user or None), False
    else:
        if view != "failed":
            raise ValueError("'view' must be 'failed': only failed messages can be resent")
        our_number, since = data.get("our_number"), data.get("since")
        if not (our_number is None or isinstance(our_number, str)):
            raise ValueError("'our_number' must be one of our numbers, as a string")
        if not (since is None or isinstance(since, str)):
            raise ValueError("'since' must be an ISO 8601 time with a time zone")
        where = FailedFilter(
            our_number=normalize_e164(our_number, require_mobile=False) if our_number else None,
            since=_aware_time("since", since) if since else None,
        )
        results, more = resender.resend_failed(where, team=team, by=user or None)
    return _json(200, {"results": [asdict(r) for r in results], "more": more})


@app.post("/v1/messages/<message_id>/resend")
def resend_message(message_id: str) -> Response[str]:
    user, team = _caller()
    message = container().resender.resend_one(message_id, team=team, by=user or None)
    return _json(200, message.model_dump(mode="json"))


def _aware_time(name: str, raw: str) -> datetime:
    try:
        at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"'{name}' is not an ISO 8601 time: {raw!r}") from exc
    if at.tzinfo is None:
        raise ValueError(f"'{name}' needs a time zone (e.g. 2026-12-01T09:00:00Z)")
    return at


def _conflict(entry: ConflictEntry) -> dict[str, Any]:
    return {
        **asdict(entry),
        "found_at": entry.found_at.isoformat(),
        "resolved_at": entry.resolved_at.isoformat() if entry.resolved_at else None,
        "resolved": entry.resolved,
    }


@app.get("/v1/crm/conflicts")
def list_crm_conflicts() -> Response[str]:
    _, team = _caller()
    cursor = app.current_event.get_query_string_value("cursor")
    page = container().digest.open_conflicts(team, limit=_limit(), cursor=cursor)
    return _json(200, {"conflicts": [_conflict(c) for c in page.items], "cursor": page.cursor})


@app.post("/v1/crm/conflicts/<conflict_id>/resolve")
def resolve_crm_conflict(conflict_id: str) -> Response[str]:
    user, team = _caller()
    record_id = _body().get("record_id")
    if not isinstance(record_id, str) or not record_id:
        raise ValueError("'record_id' is required: the id of one of the conflict's candidate records")
    entry = container().digest.resolve(conflict_id, record_id, user=user or "someone", team=team)
    return _json(200, _conflict(entry))


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


@app.exception_handler(NotCancellable)
def not_cancellable(exc: NotCancellable) -> Response[str]:
    return _json(409, {"error": str(exc)})


@app.exception_handler(NotResendable)
def not_resendable(exc: NotResendable) -> Response[str]:
    return _json(409, {"error": str(exc)})


@app.exception_handler(TemplateNotFound)
def template_not_found(exc: TemplateNotFound) -> Response[str]:
    return _json(404, {"error": str(exc)})


@app.exception_handler(ConflictNotFound)
def conflict_not_found(exc: ConflictNotFound) -> Response[str]:
    return _json(404, {"error": str(exc)})


@app.exception_handler(ConflictAlreadyResolved)
def conflict_resolved(exc: ConflictAlreadyResolved) -> Response[str]:
    return _json(409, {"error": str(exc)})


@app.exception_handler(ConflictPostFailed)
def conflict_post_failed(exc: ConflictPostFailed) -> Response[str]:
    return _json(502, {"error": str(exc)})


@app.exception_handler(NotFound)
def not_found(exc: NotFound) -> Response[str]:
    return _json(404, {"error": str(exc)})


@app.exception_handler(InvalidCursor)
def bad_cursor(exc: InvalidCursor) -> Response[str]:
    return _json(400, {"error": str(exc)})


@app.exception_handler(BotoCoreError)
@app.exception_handler(ClientError)
@app.exception_handler(PynamoDBException)
def dependency_failed(exc: Exception) -> Response[str]:
    """DynamoDB or SQS failed past the SDK's own retries: say so, and that asking again is safe."""
    logger.exception("a service the API depends on failed")
    reason = (
        "a service Parley depends on failed; nothing is lost: send the same request again "
        "(with the same idempotency_key, a send goes out once)"
    )
    return Response(503, "application/json", json.dumps({"error": reason}), headers={"Retry-After": "2"})


@app.exception_handler(ValueError)
def bad_input(exc: ValueError) -> Response[str]:
    return _json(400, {"error": str(exc)})


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
