"""Retry queue consumer (backed-off attempts), the frequent sweep (parked receipts, due messages,
stuck sends, and the dead-letter queues drained into failed messages), and the sweep for texts whose
webhook never reached us (asked of the carriers that can list what they received)."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from parley.observability import bind_correlation_id, function_logger, observe_batch, observed, tracer
from parley.wiring import container

logger = function_logger()
tracing = tracer()
batch = BatchProcessor(event_type=EventType.SQS)


def process(record: SQSRecord) -> None:
    bind_correlation_id(None)  # deliver binds the message's own
    container().sender.deliver(json.loads(record.body)["message_id"])


@logger.inject_lambda_context
@tracing.capture_lambda_handler(capture_response=False, capture_error=False)  # neither may hold a number
@observed()
def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse | dict[str, Any]:
    if "Records" in event:
        observe_batch(container().metrics, "retry", event)
        return process_partial_response(event=event, record_handler=process, processor=batch, context=context)
    if event.get("task") == "missed-inbound":  # the MissedInbound schedule
        report = container().missed_inbound.run().as_dict()
        logger.info("missed-webhook sweep finished", extra=report)
        return report
    app = container()
    result = {
        "receipts_applied": app.processor.sweep_parked(),
        "released": app.sender.release_due(
            app.messages.list_view("scheduled", limit=100, cursor=None).items
            + [
                m
                for m in app.messages.list_view("pending", limit=100, cursor=None).items
                if m.status == "held"
            ]
        ),
        "recovered": app.sender.recover_stuck(
            app.messages.list_view("pending", limit=100, cursor=None).items
        ),
        # each DLQ: how many dead letters became failed messages (a person sees them in Failed)
        "dead_letters": app.dead_letters.drain(),
    }
    app.queue_gauges.measure()  # DlqDepth per queue (after the drain), one GetQueueAttributes each
    bind_correlation_id(None)  # the sweep's own line belongs to no single message
    logger.info("sweep finished", extra=result)
    return result
