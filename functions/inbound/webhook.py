"""Carrier webhooks (API Gateway `POST /webhooks/{carrier}/{kind}`): verify, enqueue, acknowledge.

Nothing else happens before the carrier's 2xx: one SQS call per ten events (plus one SSM read on a
cold start). Bad input gets a 4xx with the reason and is never stored. Not traced: the X-Ray
SDK would cost every cold start here, within carriers' deadlines as short as 2 seconds.
"""

from __future__ import annotations

from typing import Any

from parley.apigw import error, response, webhook_request
from parley.carriers.base import PayloadError, SignatureError, WebhookKind
from parley.carriers.registry import CarrierNotEnabled, UnknownCarrier
from parley.edge import WebhookTooLarge
from parley.observability import api_request_id, correlation_id, emf_metrics, function_logger, observed, timed
from parley.wiring import container

logger = function_logger()
metrics = emf_metrics()


@logger.inject_lambda_context
@observed(correlation=api_request_id)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    with timed() as elapsed:
        result, carrier, reason = _handle(event)
        if reason is not None:
            metrics.put("WebhookRejected", Carrier=carrier or "unknown", Reason=reason)
        if carrier is not None:
            metrics.put("WebhookReceived", Carrier=carrier)
            metrics.put("WebhookAckLatency", elapsed(), "Milliseconds", Carrier=carrier)
        return result


def _handle(event: dict[str, Any]) -> tuple[dict[str, Any], str | None, str | None]:
    """The response, the carrier (None for an unknown path) and why it was rejected (None: accepted)."""
    params = event.get("pathParameters") or {}
    app = container()
    try:
        kind = WebhookKind(params.get("kind", ""))
    except ValueError as exc:
        return error(404, f"no webhook at this path: {exc}"), None, "unknown-path"
    name = params.get("carrier", "")
    try:
        carrier = app.carrier(name)
    except UnknownCarrier as exc:
        return error(404, f"no webhook at this path: {exc}"), None, "unknown-path"
    except CarrierNotEnabled:  # unused here: a 4xx, so a stranger's posts can't raise the 5xx alarm
        logger.info("webhook for a carrier that is not enabled", extra={"carrier": name[:40]})
        return error(404, "carrier not enabled"), name.strip().lower(), "not-enabled"
    except Exception:  # a setting is missing or wrong: the carrier retries once it is fixed
        logger.exception("carrier could not be built from its settings", extra={"carrier": name[:40]})
        return error(503, "this carrier is not configured correctly"), name.strip().lower(), "misconfigured"
    request = webhook_request(event, app.public_base_url)
    try:
        outcome = app.intake.accept(carrier, kind, request, correlation_id() or "")
    except WebhookTooLarge as exc:
        return error(413, str(exc)), carrier.name, "too-large"
    except SignatureError as exc:
        logger.warning("webhook signature rejected", extra={"carrier": carrier.name, "reason": str(exc)})
        if exc.retryable:
            return error(503, "unsigned request; send it again signed"), carrier.name, "unsigned"
        return error(403, "signature verification failed"), carrier.name, "signature"
    except PayloadError as exc:
        logger.warning("malformed webhook rejected", extra={"carrier": carrier.name, "reason": str(exc)})
        return error(400, str(exc)), carrier.name, "malformed"
    logger.info("webhook accepted", extra={"carrier": carrier.name, "events": outcome.events})
    ack = outcome.ack
    return response(ack.status_code, ack.body, content_type=ack.content_type), carrier.name, None
