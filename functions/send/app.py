"""Send queue consumer: requests from the API, EventBridge `SendMessage` events and raw SQS messages."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import ValidationError

from parley.batching import TimedBatchProcessor, worst_case_send_seconds
from parley.observability import bind_correlation_id, function_logger, observe_batch, observed, tracer
from parley.services.sending import SendRejected, parse_send_record
from parley.wiring import container

logger = function_logger()
tracing = tracer()


def process(record: SQSRecord) -> None:
    app = container()
    bind_correlation_id(None)  # each record's journey: the service binds it from the message or request
    try:
        job = parse_send_record(record.body, record.message_id)
        if job.message_id is not None:
            app.sender.deliver(job.message_id)
        elif job.compliance is not None:
            reply = job.compliance
            app.sender.send_compliance_reply(
                reply.keyword,
                reply.to,
                reply.our_number,
                reply.reference,
                correlation_id=reply.correlation_id,
            )
        elif job.request is not None and job.request_key is not None:
            app.sender.handle_request(job.request, job.request_key)
    except (ValueError, ValidationError, SendRejected) as exc:
        # Retrying can't fix a bad request: it becomes failed messages where people look, and is consumed.
        app.sender.record_rejected(record.body, record.message_id, _reason(exc))


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
    return str(exc)


@logger.inject_lambda_context
@tracing.capture_lambda_handler(capture_response=False, capture_error=False)  # neither may hold a number
@observed()
def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    app = container()
    observe_batch(app.metrics, "send", event)
    batch = TimedBatchProcessor(worst_case_send_seconds(app.settings.carrier_timeout_seconds))
    return process_partial_response(event=event, record_handler=process, processor=batch, context=context)
