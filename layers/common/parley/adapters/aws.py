"""Small adapters over SQS, EventBridge and SSM; each client is created once per cold start."""

from __future__ import annotations

import json
import logging
from functools import cache
from typing import Any

import boto3

logger = logging.getLogger(__name__)


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


def read_secret(parameter_name: str, region: str) -> str:
    """A SecureString from SSM, read once per cold start by the composition root."""
    result = client("ssm", region).get_parameter(Name=parameter_name, WithDecryption=True)
    return str(result["Parameter"]["Value"])
