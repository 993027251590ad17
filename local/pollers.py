"""SQS event source mappings as threads: receive, invoke, delete what succeeded, let moto redrive the rest.

Lambda's SQS poller deletes the records a handler did not report in `batchItemFailures` (when the mapping has
ReportBatchItemFailures) or the whole batch when the handler returns; on an exception nothing is deleted.
Failed records simply reappear after the queue's VisibilityTimeout, and moto moves them to the DLQ after
maxReceiveCount (reference B3), so the local retry story is the real one, only faster with a short visibility
timeout.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from abc import ABC, abstractmethod
from typing import Any

from botocore.config import Config

from local.lambdas import FunctionError, LocalFunction
from local.plan import BridgeSpec, EsmSpec, QueueSpec, StackPlan
from local.provision import client

log = logging.getLogger(__name__)

WAIT_SECONDS = 1  # long-poll length: also the worst-case delay for stop()
_RETRY_PAUSE = 1.0


def to_lambda_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """An SQS message as Lambda hands it to a handler (camelCase message attributes, string attributes)."""
    attributes: dict[str, Any] = {}
    for name, value in (message.get("MessageAttributes") or {}).items():
        binary = value.get("BinaryValue")
        attributes[name] = {
            "stringValue": value.get("StringValue"),
            "binaryValue": base64.b64encode(binary).decode() if isinstance(binary, bytes) else binary,
            "stringListValues": value.get("StringListValues", []),
            "binaryListValues": value.get("BinaryListValues", []),
            "dataType": value.get("DataType", "String"),
        }
        attributes[name] = {k: v for k, v in attributes[name].items() if v is not None}
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": attributes,
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


class _QueuePoller(threading.Thread, ABC):
    """Shared receive/delete loop; subclasses decide how a batch becomes invocations."""

    def __init__(self, name: str, plan: StackPlan, queue: QueueSpec, batch_size: int, stop: threading.Event):
        super().__init__(name=name, daemon=True)
        self.plan = plan
        self.queue = queue
        self.batch_size = batch_size
        self._halt = stop
        # a long poll must not trip the read timeout; retries are ours (the loop), not botocore's
        config = Config(read_timeout=WAIT_SECONDS + 10, retries={"total_max_attempts": 1})
        self._sqs = client("sqs", plan, config)
        self._last_error: str | None = None

    def run(self) -> None:
        log.debug("%s polling %s (batch %d)", self.name, self.queue.name, self.batch_size)
        while not self._halt.is_set():
            try:
                messages = self._sqs.receive_message(
                    QueueUrl=self.queue.url,
                    MaxNumberOfMessages=self.batch_size,
                    WaitTimeSeconds=WAIT_SECONDS,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
            except Exception as exc:
                if self._halt.is_set():
                    break
                text = f"{type(exc).__name__}: {exc}"
                if text != self._last_error:  # one line per distinct problem, not one per second
                    log.warning("%s: receive from %s failed: %s", self.name, self.queue.name, text)
                    self._last_error = text
                self._halt.wait(_RETRY_PAUSE)
                continue
            self._last_error = None
            if messages and not self._halt.is_set():
                try:
                    done = self.handle(messages)
                except Exception:  # not the handler's own error: loading, marshalling, a bug here
                    log.exception(
                        "%s: %d message(s) from %s not processed", self.name, len(messages), self.queue.name
                    )
                    continue
                self._delete_messages(done)
        log.debug("%s stopped", self.name)

    @abstractmethod
    def handle(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Invoke the function with one batch; return the messages it processed (to delete)."""

    def _delete_messages(self, messages: list[dict[str, Any]]) -> None:
        if not messages:
            return
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        try:
            result = self._sqs.delete_message_batch(QueueUrl=self.queue.url, Entries=entries)
        except Exception as exc:
            log.warning(
                "%s: delete of %d messages from %s failed: %s", self.name, len(entries), self.queue.name, exc
            )
            return
        for failed in result.get("Failed", []):
            log.warning("%s: could not delete a message from %s: %s", self.name, self.queue.name, failed)

    def _warn_last_attempt(self, messages: list[dict[str, Any]], function_id: str) -> None:
        limit = self.queue.max_receive_count
        for m in messages:
            count = int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
            if limit is not None and count >= limit:
                log.warning(
                    "message %s on %s failed in %s on receive %d of %d: it goes to the DLQ (%s) next",
                    m["MessageId"],
                    self.queue.name,
                    function_id,
                    count,
                    limit,
                    (self.queue.dlq_arn or "").rsplit(":", 1)[-1],
                )
            else:
                log.info(
                    "message %s on %s failed in %s (receive %d); it returns after the visibility timeout",
                    m["MessageId"],
                    self.queue.name,
                    function_id,
                    count,
                )


class SqsPoller(_QueuePoller):
    """One AWS::Lambda::EventSourceMapping on an SQS queue."""

    def __init__(self, plan: StackPlan, esm: EsmSpec, function: LocalFunction, stop: threading.Event):
        queue = plan.queues[esm.queue_id]
        super().__init__(f"esm-{esm.logical_id}", plan, queue, esm.batch_size, stop)
        self.esm = esm
        self.function = function
        self._warned_ignored_failures = False

    def handle(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        event = {"Records": [to_lambda_record(m, self.queue.arn, self.plan.context.region) for m in messages]}
        trigger = f"{len(messages)} record(s) from {self.queue.name}"
        try:
            result = self.function.invoke(event, trigger=trigger)
        except FunctionError:
            self._warn_last_attempt(messages, self.function.logical_id)
            return []
        failures = result.get("batchItemFailures") if isinstance(result, dict) else None
        if not failures:
            return messages
        if not self.esm.report_failures:
            if not self._warned_ignored_failures:
                log.warning(
                    "%s returned batchItemFailures but %s lacks FunctionResponseTypes: "
                    "[ReportBatchItemFailures]; "
                    "like Lambda, the whole batch is treated as a success and deleted",
                    self.function.logical_id,
                    self.esm.logical_id,
                )
                self._warned_ignored_failures = True
            return messages
        ids = {m["MessageId"] for m in messages}
        failed_ids = {f.get("itemIdentifier") for f in failures if isinstance(f, dict)}
        if not failed_ids <= ids or None in failed_ids or "" in failed_ids:
            log.warning(
                "%s returned batchItemFailures with unknown ids %s: Lambda fails the whole batch",
                self.function.logical_id,
                sorted(str(i) for i in failed_ids - ids),
            )
            self._warn_last_attempt(messages, self.function.logical_id)
            return []
        self._warn_last_attempt(
            [m for m in messages if m["MessageId"] in failed_ids], self.function.logical_id
        )
        return [m for m in messages if m["MessageId"] not in failed_ids]


def _input_path(value: Any, path: str) -> Any:
    for part in path.split(".")[1:]:
        value = value.get(part) if isinstance(value, dict) else None
    return value


class BridgePoller(_QueuePoller):
    """Rule -> Lambda target: each bridged envelope is one asynchronous invocation (the event = envelope)."""

    def __init__(self, plan: StackPlan, bridge: BridgeSpec, function: LocalFunction, stop: threading.Event):
        super().__init__(f"bridge-{bridge.rule_id}", plan, bridge.queue, 10, stop)
        self.bridge = bridge
        self.function = function

    def handle(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        done = []
        for m in messages:
            try:
                event: Any = json.loads(m["Body"])
            except json.JSONDecodeError:
                event = m["Body"]  # a custom InputTransformer may produce plain text
            if self.bridge.input is not None:
                event = json.loads(self.bridge.input)
            elif self.bridge.input_path:
                event = _input_path(event, self.bridge.input_path)
            trigger = f"event from rule {self.bridge.rule_id}"
            try:
                self.function.invoke(event, trigger=trigger)
            except FunctionError:
                self._warn_last_attempt([m], self.function.logical_id)
                continue
            done.append(m)
        return done
