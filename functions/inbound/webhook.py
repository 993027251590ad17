"""Carrier webhooks (API Gateway `POST /webhooks/{carrier}/{kind}`): verify, enqueue, acknowledge.

Nothing else happens before the carrier's 2xx: at most one SQS send per event (plus one SSM read
on a cold start). Bad input gets a 4xx with the reason and is never stored.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from parley.apigw import error, response, webhook_request
from parley.carriers.base import PayloadError, SignatureError, WebhookKind
from parley.carriers.registry import UnknownCarrier
from parley.edge import WebhookTooLarge
from parley.wiring import container

logger = Logger(service="parley")


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    params = event.get("pathParameters") or {}
    app = container()
    try:
        kind = WebhookKind(params.get("kind", ""))
        carrier = app.carrier(params.get("carrier", ""))
    except (ValueError, UnknownCarrier) as exc:
        return error(404, f"no webhook at this path: {exc}")
    request = webhook_request(event, app.public_base_url)
    try:
        outcome = app.intake.accept(carrier, kind, request, logger.get_correlation_id() or "")
    except WebhookTooLarge as exc:
        return error(413, str(exc))
    except SignatureError as exc:
        logger.warning("webhook signature rejected", extra={"carrier": carrier.name, "reason": str(exc)})
        if exc.retryable:
            return error(503, "unsigned request; send it again signed")
        return error(403, "signature verification failed")
    except PayloadError as exc:
        logger.warning("malformed webhook rejected", extra={"carrier": carrier.name, "reason": str(exc)})
        return error(400, str(exc))
    logger.info("webhook accepted", extra={"carrier": carrier.name, "events": outcome.events})
    return response(outcome.ack.status_code, outcome.ack.body, content_type=outcome.ack.content_type)
