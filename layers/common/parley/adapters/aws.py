"""Small adapters over SQS, EventBridge, S3 and SSM; each client is created once per cold start."""

from __future__ import annotations

import json
import logging
import re
from functools import cache
from typing import Any

import boto3

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


def _media_type(content_type: str | None) -> str:
    """A bare type/subtype as S3 will serve it; anything else a remote server sent is octet-stream."""
    value = (content_type or "").split(";")[0].strip().lower()
    return value if _MEDIA_TYPE.fullmatch(value) else "application/octet-stream"


def read_secret(parameter_name: str, region: str) -> str:
    """A SecureString from SSM, read once per cold start by the composition root."""
    result = client("ssm", region).get_parameter(Name=parameter_name, WithDecryption=True)
    return str(result["Parameter"]["Value"])
