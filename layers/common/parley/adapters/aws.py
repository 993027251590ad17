"""Small adapters over SQS (work and dead-letter queues), EventBridge, S3 and SSM; each client is
created once per cold start."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

import boto3
from botocore.exceptions import ClientError

from parley.ports import DeadLetter

logger = logging.getLogger(__name__)

_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")


@cache
def client(service: str, region: str) -> Any:
    return boto3.client(service, region_name=region)


class SqsQueue:
    """A JobQueue on SQS. Standard queues deliver at least once: consumers are idempotent."""

    def __init__(self, url: str, region: str) -> None:
        if not url:
            raise ValueError("queue URL is not configured")
        self.url = url
        self._region = region

    def send(self, body: dict[str, Any], *, delay_seconds: int = 0) -> None:
        client("sqs", self._region).send_message(
            QueueUrl=self.url,
            MessageBody=json.dumps(body, separators=(",", ":"), default=str),
            DelaySeconds=max(0, min(delay_seconds, 900)),
        )

    def send_batch(self, bodies: Sequence[dict[str, Any]]) -> None:
        """Send `bodies` in SendMessageBatch calls (10 messages and at most 1 MiB a call), as UTF-8
        JSON rather than \\u escapes. An entry SQS refuses is sent again once; if any is still refused,
        raises (nothing sent is undone: consumers are idempotent)."""
        sqs = client("sqs", self._region)
        batch: list[str] = []
        size = 0
        for body in bodies:
            text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str)
            length = len(text.encode("utf-8"))
            if batch and (len(batch) == _BATCH_ENTRIES or size + length > _BATCH_BYTES):
                self._send_entries(sqs, batch)
                batch, size = [], 0
            batch.append(text)
            size += length
        if batch:
            self._send_entries(sqs, batch)

    def _send_entries(self, sqs: Any, texts: list[str]) -> None:
        pending = {str(i): text for i, text in enumerate(texts)}
        for _attempt in range(2):
            answer = sqs.send_message_batch(
                QueueUrl=self.url, Entries=[{"Id": key, "MessageBody": text} for key, text in pending.items()]
            )
            failed = answer.get("Failed") or []
            pending = {f["Id"]: pending[f["Id"]] for f in failed if f.get("Id") in pending}
            if not pending:
                return
        codes = sorted({str(f.get("Code")) for f in failed})
        raise RuntimeError(f"SQS refused {len(pending)} of {len(texts)} messages ({', '.join(codes)})")


_BATCH_ENTRIES = 10  # SendMessageBatch's limits
_BATCH_BYTES = 256 * 1024  # a batch call's total, as a queue's default MaximumMessageSize allows


class SqsDeadLetterQueue:
    """A DeadLetterQueue on SQS. A received letter stays invisible for `visibility_seconds`, then comes
    back unless deleted: the sweep deletes a letter only once what it became is stored."""

    def __init__(self, url: str, region: str, *, visibility_seconds: int = 120) -> None:
        if not url:
            raise ValueError("dead-letter queue URL is not configured")
        self.url = url
        self._region = region
        self._visibility = visibility_seconds

    def receive(self, max_messages: int) -> list[DeadLetter]:
        sqs = client("sqs", self._region)
        letters: dict[str, DeadLetter] = {}
        while len(letters) < max_messages:
            batch = sqs.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=max(1, min(10, max_messages - len(letters))),
                WaitTimeSeconds=0,
                VisibilityTimeout=self._visibility,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            fresh = [m for m in batch if m["MessageId"] not in letters]
            if not fresh:  # empty, or only letters already read (a zero visibility timeout)
                break
            for m in fresh:
                letters[m["MessageId"]] = _dead_letter(m)
        return list(letters.values())

    def delete(self, letter: DeadLetter) -> None:
        client("sqs", self._region).delete_message(QueueUrl=self.url, ReceiptHandle=letter.receipt)


def _dead_letter(message: dict[str, Any]) -> DeadLetter:
    attrs = message.get("Attributes", {})
    return DeadLetter(
        message_id=message["MessageId"],
        body=message.get("Body", ""),
        receipt=message["ReceiptHandle"],
        receive_count=int(attrs.get("ApproximateReceiveCount", 0)),
        first_received_at=_millis(attrs.get("ApproximateFirstReceiveTimestamp")),
        sent_at=_millis(attrs.get("SentTimestamp")),
        attributes={
            name: str(value.get("StringValue"))
            for name, value in (message.get("MessageAttributes") or {}).items()
            if value.get("StringValue") is not None
        },
    )


def _millis(value: str | None) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value or "") / 1000, tz=UTC)
    except ValueError:
        return None


class EventBridgePublisher:
    """Domain events on the Parley bus. A publishing failure is logged, never fails the caller's work."""

    SOURCE = "parley"

    def __init__(self, bus_name: str, region: str) -> None:
        self._bus = bus_name
        self._region = region

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        try:
            response = client("events", self._region).put_events(
                Entries=[
                    {
                        "EventBusName": self._bus,
                        "Source": self.SOURCE,
                        "DetailType": detail_type,
                        "Detail": json.dumps(detail, default=str),
                    }
                ]
            )
        except Exception:
            logger.exception("could not publish %s to %s", detail_type, self._bus)
            return
        if response.get("FailedEntryCount"):
            logger.error("EventBridge refused %s: %s", detail_type, response.get("Entries"))


class S3MediaStore:
    """A MediaStore on the media bucket (private, encrypted by the bucket's default, expired by its
    lifecycle rule on media/)."""

    def __init__(self, bucket: str, region: str) -> None:
        if not bucket:
            raise ValueError("media bucket is not configured")
        self.bucket = bucket
        self._region = region

    def put(self, key: str, content: bytes, content_type: str | None) -> str:
        client("s3", self._region).put_object(
            Bucket=self.bucket,
            Key=key,
            Body=content,
            ContentType=_media_type(content_type),
        )
        return f"s3://{self.bucket}/{key}"

    def delete(self, keys: Sequence[str]) -> None:
        """DeleteObjects, 1000 keys a call; S3 answers a key with no object as deleted too."""
        s3 = client("s3", self._region)
        for start in range(0, len(keys), 1000):
            objects = [{"Key": key} for key in keys[start : start + 1000]]
            answer = s3.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})
            if answer.get("Errors"):  # as a failed call: the caller's retry deletes them again
                first = answer["Errors"][0]
                error = {"Code": str(first.get("Code")), "Message": f"{len(answer['Errors'])} objects kept"}
                raise ClientError({"Error": error}, "DeleteObjects")

    def read(self, key: str) -> tuple[bytes, str] | None:
        """GetObject; a missing key is None, any other failure is the caller's (the API answers 503).

        The API may not list the bucket (least privilege), so S3 answers a missing key with
        AccessDenied rather than NoSuchKey: that is taken as missing too, and logged."""
        try:
            answer = client("s3", self._region).get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code == "AccessDenied":
                logger.warning("S3 denied %s: taken as gone (expired or erased)", key)
                return None
            if code in ("NoSuchKey", "404"):
                return None
            raise
        body: bytes = answer["Body"].read()
        return body, _media_type(answer.get("ContentType"))


def _media_type(content_type: str | None) -> str:
    """A bare type/subtype as S3 will serve it; anything else a remote server sent is octet-stream."""
    value = (content_type or "").split(";")[0].strip().lower()
    return value if _MEDIA_TYPE.fullmatch(value) else "application/octet-stream"


def read_secret(parameter_name: str, region: str) -> str:
    """A SecureString from SSM, read once per cold start by the composition root."""
    result = client("ssm", region).get_parameter(Name=parameter_name, WithDecryption=True)
    return str(result["Parameter"]["Value"])
