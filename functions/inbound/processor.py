"""Inbound queue consumer: store each carrier event once, thread it, apply receipts."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from parley.domain.models import CarrierEventEnvelope
from parley.observability import bind_correlation_id, function_logger, observe_batch, observed, tracer
from parley.wiring import container

logger = function_logger()
tracing = tracer()
batch = BatchProcessor(event_type=EventType.SQS)


def process(record: SQSRecord) -> None:
    envelope = CarrierEventEnvelope.model_validate_json(record.body)
    bind_correlation_id(envelope.correlation_id)  # a receipt joins its message's journey once found
    container().processor.handle(envelope)


@logger.inject_lambda_context
@tracing.capture_lambda_handler(capture_response=False, capture_error=False)  # neither may hold a number
@observed()
def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    observe_batch(container().metrics, "inbound", event)
    return process_partial_response(event=event, record_handler=process, processor=batch, context=context)
