"""Retry queue consumer (backed-off attempts), the frequent sweep (parked receipts, due messages,
stuck sends, and the dead-letter queues drained into failed messages), and the sweep for texts whose
webhook never reached us (asked of the carriers that can list what they received)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from parley.batching import TimedBatchProcessor, worst_case_send_seconds
from parley.observability import bind_correlation_id, function_logger, observe_batch, observed, tracer
from parley.wiring import container

logger = function_logger()
tracing = tracer()


def process(record: SQSRecord) -> None:
    bind_correlation_id(None)  # deliver binds the message's own
    container().sender.deliver(json.loads(record.body)["message_id"])


@logger.inject_lambda_context
@tracing.capture_lambda_handler(capture_response=False, capture_error=False)  # neither may hold a number
@observed()
def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse | dict[str, Any]:
    if "Records" in event:
        app = container()
        observe_batch(app.metrics, "retry", event)
        batch = TimedBatchProcessor(worst_case_send_seconds(app.settings.carrier_timeout_seconds))
        return process_partial_response(event=event, record_handler=process, processor=batch, context=context)
    if event.get("task") == "missed-inbound":  # the MissedInbound schedule
        report = container().missed_inbound.run().as_dict()
        logger.info("missed-webhook sweep finished", extra=report)
        return report
    app = container()
    parked = app.processor.sweep_parked()
    due = app.due_sweep.run(time_left=_seconds_left(context))  # scheduled, held, stuck and lost texts
    result = {
        "receipts_applied": parked,
        "released": due.released,
        "recovered": due.recovered,
        # each DLQ: how many dead letters became failed messages (a person sees them in Failed)
        "dead_letters": app.dead_letters.drain(),
    }
    app.queue_gauges.measure()  # DlqDepth per queue (after the drain), one GetQueueAttributes each
    bind_correlation_id(None)  # the sweep's own line belongs to no single message
    logger.info("sweep finished", extra={**result, "due": due.as_dict()})
    return result


def _seconds_left(context: Any) -> Callable[[], float] | None:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return None if remaining is None else (lambda: remaining() / 1000)
