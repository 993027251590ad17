"""Inbound queue consumer: store each carrier event once, thread it, apply receipts."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from parley.domain.models import CarrierEventEnvelope
from parley.wiring import container

logger = Logger(service="parley")
batch = BatchProcessor(event_type=EventType.SQS)


def process(record: SQSRecord) -> None:
    envelope = CarrierEventEnvelope.model_validate_json(record.body)
    logger.set_correlation_id(envelope.correlation_id)
    container().processor.handle(envelope)


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=process, processor=batch, context=context)
