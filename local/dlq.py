"""`parley dlq list|redrive`: what sits in the dead-letter queues, and sending it back to its work queue.

Against the local stack the queue URLs come from `/_local/resources` and SQS is moto (its URL from
`/_local/health`); against a deployed stack (`--stack-name`) from the stack's CloudFormation outputs
(`InboundDLQUrl`, `InboundQueueUrl`, ...), with the caller's own AWS credentials.

The sweep (RetryFunction, every minute) drains the inbound, send and retry DLQs into failed messages,
so deployed they are usually empty; what is listed there is what no sweep has recorded yet. The
digest's DLQ holds days the CRM kept refusing: they wait there to be redriven once the CRM is fixed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import requests

from parley.redact import mask

QUEUES = ("inbound", "send", "retry", "digest")
_LOGICAL = {"inbound": "Inbound", "send": "Send", "retry": "Retry", "digest": "Digest"}
_PHONE = re.compile(r"\+?\d{7,15}")
PEEK_VISIBILITY_SECONDS = 30  # how long a listed or moved letter stays hidden from the sweep


class DlqError(Exception):
    """One line for the user (the CLI prints it as `parley: ...`)."""


@dataclass(frozen=True)
class QueuePair:
    name: str  # inbound | send | retry
    dlq_url: str
    source_url: str


@dataclass(frozen=True)
class Letter:
    message_id: str
    body: str
    receipt: str
    sent_at: str | None  # when it was first enqueued (kept through the move to the DLQ)
    first_received_at: str | None
    receive_count: int  # counts this tool's own receives too
    attributes: dict[str, Any]


class DeadLetters:
    """The three DLQs and their work queues, through one SQS client."""

    def __init__(self, sqs: Any, pairs: dict[str, QueuePair]) -> None:
        self.sqs = sqs
        self.pairs = pairs

    # -- finding the queues

    @classmethod
    def local(cls, base_url: str) -> DeadLetters:
        try:
            health = requests.get(f"{base_url}/_local/health", timeout=10)
            resources = requests.get(f"{base_url}/_local/resources", timeout=10)
        except requests.RequestException as exc:
            raise DlqError(f"can't reach the local stack at {base_url} — is `make dev` running?") from exc
        if health.status_code != 200 or resources.status_code != 200:
            raise DlqError(f"the local stack at {base_url} is not ready (health {health.status_code})")
        found = resources.json()
        pairs = {}
        for name in QUEUES:
            try:
                dlq, source = found[f"{_LOGICAL[name]}DLQ"]["url"], found[f"{_LOGICAL[name]}Queue"]["url"]
            except KeyError as exc:
                raise DlqError(f"the local stack has no {exc.args[0]} queue") from exc
            pairs[name] = QueuePair(name, dlq, source)
        sqs = boto3.client(
            "sqs",
            endpoint_url=health.json()["moto"],
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        return cls(sqs, pairs)

    @classmethod
    def deployed(cls, stack_name: str, region: str | None) -> DeadLetters:
        import botocore.exceptions

        session = boto3.session.Session(region_name=region)
        try:
            stacks = session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
        except botocore.exceptions.BotoCoreError as exc:
            raise DlqError(f"can't read stack {stack_name}: {exc}") from exc
        except botocore.exceptions.ClientError as exc:
            raise DlqError(f"can't read stack {stack_name}: {exc.response['Error'].get('Message')}") from exc
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
        pairs = {}
        for name in QUEUES:
            dlq, source = outputs.get(f"{_LOGICAL[name]}DLQUrl"), outputs.get(f"{_LOGICAL[name]}QueueUrl")
            if not dlq or not source:
                raise DlqError(
                    f"stack {stack_name} has no {_LOGICAL[name]}DLQUrl/{_LOGICAL[name]}QueueUrl output "
                    "(deploy the current template.yaml)"
                )
            pairs[name] = QueuePair(name, dlq, source)
        return cls(session.client("sqs"), pairs)

    # -- reading

    def depth(self, name: str) -> dict[str, int]:
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=self.pairs[name].dlq_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return {
            "visible": int(attrs.get("ApproximateNumberOfMessages", 0)),
            "in_flight": int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
        }

    def receive(self, name: str, limit: int) -> list[Letter]:
        """Up to `limit` letters, each hidden for PEEK_VISIBILITY_SECONDS (release them with `release`)."""
        url = self.pairs[name].dlq_url
        letters: dict[str, Letter] = {}
        while len(letters) < limit:
            batch = self.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=max(1, min(10, limit - len(letters))),
                WaitTimeSeconds=0,
                VisibilityTimeout=PEEK_VISIBILITY_SECONDS,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            fresh = [m for m in batch if m["MessageId"] not in letters]
            if not fresh:
                break
            for m in fresh:
                attrs = m.get("Attributes", {})
                letters[m["MessageId"]] = Letter(
                    message_id=m["MessageId"],
                    body=m.get("Body", ""),
                    receipt=m["ReceiptHandle"],
                    sent_at=_when(attrs.get("SentTimestamp")),
                    first_received_at=_when(attrs.get("ApproximateFirstReceiveTimestamp")),
                    receive_count=int(attrs.get("ApproximateReceiveCount", 0)),
                    attributes=m.get("MessageAttributes") or {},
                )
        return list(letters.values())

    def release(self, name: str, letters: Iterable[Letter]) -> None:
        """Make letters visible again now (what `list` looked at, or what `redrive` did not move)."""
        entries = [
            {"Id": str(i), "ReceiptHandle": x.receipt, "VisibilityTimeout": 0} for i, x in enumerate(letters)
        ]
        for start in range(0, len(entries), 10):
            self.sqs.change_message_visibility_batch(
                QueueUrl=self.pairs[name].dlq_url, Entries=entries[start : start + 10]
            )

    # -- moving back

    def redrive(self, name: str, letter: Letter) -> None:
        """Send one letter back to its work queue, then delete it from the DLQ (in that order: a crash
        between the two leaves a copy in both, which every consumer treats as a redelivery)."""
        pair = self.pairs[name]
        attributes = {
            k: v
            for k, v in letter.attributes.items()
            if k not in ("ERROR_CODE", "ERROR_MESSAGE", "RULE_ARN", "TARGET_ARN")  # EventBridge's notes
        }
        kwargs: dict[str, Any] = {"QueueUrl": pair.source_url, "MessageBody": letter.body}
        if attributes:
            kwargs["MessageAttributes"] = attributes
        self.sqs.send_message(**kwargs)
        self.sqs.delete_message(QueueUrl=pair.dlq_url, ReceiptHandle=letter.receipt)


def summary(body: str, width: int = 90) -> str:
    """One line about a letter's body, phone numbers masked (it may be pasted into a ticket)."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        text = body
    else:
        if isinstance(data, dict) and set(data) == {"message_id"}:
            text = f"job for message {data['message_id']}"
        elif isinstance(data, dict) and str(data.get("kind", "")).startswith("digest-"):
            text = f"{data['kind']} job " + json.dumps({k: v for k, v in data.items() if k != "kind"})
        elif isinstance(data, dict) and isinstance(data.get("event"), dict):
            event = data["event"]
            text = f"{event.get('carrier', '?')} {event.get('kind', 'event')} " + json.dumps(
                {k: v for k, v in event.items() if k in ("from_number", "to_number", "body", "status")}
            )
        elif isinstance(data, dict) and "detail-type" in data:
            text = f"EventBridge {data.get('detail-type')} " + json.dumps(data.get("detail"))
        else:
            text = json.dumps(data, separators=(",", ":"))
    text = _PHONE.sub(lambda m: mask(m.group(0)), " ".join(text.split()))
    return text if len(text) <= width else text[: width - 1] + "…"


def _when(millis: str | None) -> str | None:
    try:
        return datetime.fromtimestamp(int(millis or "") / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    except ValueError:
        return None
