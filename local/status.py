"""`parley status`: one look at Parley's health, for on call. Queue depths, what sits in the
dead-letter queues, the last failed messages and the last digest run, locally or on a deployed stack.

The queues are found the way `parley dlq` finds them (local/dlq.py: `/_local/resources` locally, the
stack's outputs deployed); the Messages and Digests tables from `/_local/resources` or the stack's
resources. Everything is read with the caller's own AWS credentials and costs a handful of calls:
one GetQueueAttributes per queue, a peek at each DLQ (its letters hidden for a few seconds, then
released), one Query and one BatchGetItem for the failures, one BatchGetItem for the digest runs of
the last two weeks (`run#<day>` items, by key: the table itself is never scanned) and, deployed, one
GetMetricData for every queue's oldest-message age.

Exit status: 0 all clear; 3 something needs attention (a DLQ holds messages, the last digest run
had failures, or it stopped part way); 1 the status could not be read; 2 bad arguments.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import requests

from local.dlq import QUEUES, DeadLetters, DlqError, summary
from parley.redact import mask

ATTENTION_EXIT = 3
DIGEST_DAYS = 14  # how far back the last digest run is looked for
# An unfinished run older than this has stopped (a shard job comes back after 30 min, the queue's
# visibility timeout); a younger one is still running.
STALLED_AFTER = timedelta(hours=1)


class StatusError(Exception):
    """One line for the user (the CLI prints it as `parley: ...`)."""


@dataclass
class Sources:
    """Where to look: the queues (via DeadLetters), the two tables, and how to get queue ages."""

    where: str
    letters: DeadLetters
    dynamodb: Any
    messages_table: str | None
    digests_table: str | None
    now: datetime
    local_base: str | None = None  # the local stack's URL: ages from /_local/queues/ages
    cloudwatch: Any = None  # deployed: ages from CloudWatch
    local_state: dict[str, Any] | None = None


def local_sources(base_url: str) -> Sources:
    try:
        letters = DeadLetters.local(base_url)
    except DlqError as exc:
        raise StatusError(str(exc)) from exc
    health, resources, clock = (
        _get_json(f"{base_url}{p}") for p in ("/_local/health", "/_local/resources", "/_local/clock")
    )
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=health["moto"],
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    return Sources(
        where=f"local stack at {base_url}",
        letters=letters,
        dynamodb=dynamodb,
        messages_table=(resources.get("MessagesTable") or {}).get("name"),
        digests_table=(resources.get("DigestsTable") or {}).get("name"),
        now=_parse_time(clock.get("now")) or datetime.now(UTC),  # the stack's clock, which tests move
        local_base=base_url,
        local_state=health.get("local_state"),
    )


def deployed_sources(stack_name: str, region: str | None) -> Sources:
    import botocore.exceptions

    try:
        letters = DeadLetters.deployed(stack_name, region)
    except DlqError as exc:
        raise StatusError(str(exc)) from exc
    session = boto3.session.Session(region_name=region)
    tables: dict[str, str] = {}
    try:
        pages = session.client("cloudformation").get_paginator("list_stack_resources")
        for page in pages.paginate(StackName=stack_name):
            for r in page.get("StackResourceSummaries", []):
                if r.get("ResourceType") == "AWS::DynamoDB::Table" and r.get("PhysicalResourceId"):
                    tables[r["LogicalResourceId"]] = r["PhysicalResourceId"]
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise StatusError(f"can't list the resources of stack {stack_name}: {exc}") from exc
    return Sources(
        where=f"stack {stack_name} ({session.region_name})",
        letters=letters,
        dynamodb=session.client("dynamodb"),
        messages_table=tables.get("MessagesTable"),
        digests_table=tables.get("DigestsTable"),
        now=datetime.now(UTC),
        cloudwatch=session.client("cloudwatch"),
    )


def _get_json(url: str) -> dict[str, Any]:
    try:
        response = requests.get(url, timeout=10)
    except requests.RequestException as exc:
        raise StatusError(f"can't reach the local stack at {url} — is `make dev` running?") from exc
    if response.status_code != 200:
        raise StatusError(f"{url} answered {response.status_code}")
    body = response.json()
    if not isinstance(body, dict):
        raise StatusError(f"{url} did not answer an object")
    return body


# ----------------------------------------------------------------------------------------------------
# Reading


def read_status(sources: Sources, *, peek: int = 3, failures: int = 5) -> dict[str, Any]:
    """Everything `parley status` shows, as one JSON-able dict; `attention` lists what needs a person."""
    ages, notes = _ages(sources)
    queues, dead = [], []
    for name in QUEUES:
        pair = sources.letters.pairs[name]
        queues.append(
            {
                "name": name,
                **_depth(sources, pair.source_url),
                "oldest_age_seconds": ages.get(pair.source_url),
            }
        )
        depth = _depth(sources, pair.dlq_url)
        letters = sources.letters.receive(name, peek) if peek and depth["visible"] else []
        try:
            shown = [
                {
                    "message_id": x.message_id,
                    "sent_at": x.sent_at,
                    "receive_count": x.receive_count,
                    "summary": summary(x.body),
                }
                for x in letters
            ]
        finally:
            sources.letters.release(name, letters)
        dead.append({"name": name, **depth, "oldest_age_seconds": ages.get(pair.dlq_url), "messages": shown})
    report: dict[str, Any] = {
        "target": sources.where,
        "checked_at": sources.now.isoformat(timespec="seconds"),
        "queues": queues,
        "dead_letters": dead,
        "recent_failures": _recent_failures(sources, failures),
        "digest": _last_digest(sources),
        "notes": notes,
    }
    if sources.local_base is not None:  # None there: the stack keeps its data in memory only
        report["local_state"] = sources.local_state
    report["attention"] = attention(report)
    return report


def attention(report: dict[str, Any]) -> list[str]:
    """What a person should look at; empty when all is well."""
    found = []
    for q in report["dead_letters"]:
        held = q["visible"] + q["in_flight"]
        if held:
            found.append(
                f"the {q['name']} DLQ holds {held} message(s): `parley dlq list --queue {q['name']}`"
            )
    run = report.get("digest")
    if run and run["state"] == "failed":
        found.append(f"the digest of {run['day']} failed for {run['counts'].get('failed', 0)} record(s)")
    elif run and run["state"] == "stalled":
        found.append(
            f"the digest of {run['day']} stopped at {run['shards_done']}/{run['shards']} shards "
            f"(started {run['started_at']})"
        )
    return found


def _depth(sources: Sources, url: str) -> dict[str, int]:
    attrs = sources.letters.sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return {
        "visible": int(attrs.get("ApproximateNumberOfMessages", 0)),
        "in_flight": int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
        "delayed": int(attrs.get("ApproximateNumberOfMessagesDelayed", 0)),
    }


def _ages(sources: Sources) -> tuple[dict[str, int | None], list[str]]:
    """Queue URL -> seconds its oldest message has waited (None: empty or unknown)."""
    urls = [u for p in sources.letters.pairs.values() for u in (p.source_url, p.dlq_url)]
    if sources.local_base is not None:
        try:
            by_url = _get_json(f"{sources.local_base}/_local/queues/ages")
        except StatusError as exc:
            return {}, [f"queue ages unavailable: {exc}"]
        return {u: by_url.get(u) for u in urls}, []
    if sources.cloudwatch is None:
        return {}, []
    queries = [
        {
            "Id": f"q{i}",
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/SQS",
                    "MetricName": "ApproximateAgeOfOldestMessage",
                    "Dimensions": [{"Name": "QueueName", "Value": url.rsplit("/", 1)[-1]}],
                },
                "Period": 60,
                "Stat": "Maximum",
            },
        }
        for i, url in enumerate(urls)
    ]
    try:
        result = sources.cloudwatch.get_metric_data(
            MetricDataQueries=queries,
            StartTime=sources.now - timedelta(minutes=15),
            EndTime=sources.now,
            ScanBy="TimestampDescending",
        )
    except Exception as exc:  # no cloudwatch:GetMetricData permission, say: the rest still stands
        return {}, [f"queue ages unavailable (CloudWatch: {exc})"]
    ages: dict[str, int | None] = {}
    for r in result.get("MetricDataResults", []):
        values = r.get("Values") or []
        ages[urls[int(r["Id"][1:])]] = int(values[0]) if values else None
    return ages, []


def _recent_failures(sources: Sources, limit: int) -> list[dict[str, Any]]:
    """The newest messages in the failed view (the Messages table's `by-view` index, keys only)."""
    table = sources.messages_table
    if not table or limit < 1:
        return []
    keys = sources.dynamodb.query(
        TableName=table,
        IndexName="by-view",
        KeyConditionExpression="#v = :failed",
        ExpressionAttributeNames={"#v": "view"},
        ExpressionAttributeValues={":failed": {"S": "failed"}},
        ScanIndexForward=False,
        Limit=limit,
    ).get("Items", [])
    if not keys:
        return []
    items = _batch_get(sources.dynamodb, table, [{"message_id": k["message_id"]} for k in keys])
    by_id = {i["message_id"]["S"]: i for i in items}
    found = []
    for k in keys:
        item = by_id.get(k["message_id"]["S"])
        if item is None:
            continue
        doc = _json(item.get("doc", {}).get("S"))
        reason = doc.get("error_reason")
        found.append(
            {
                "message_id": item["message_id"]["S"],
                "created_at": item.get("created_at", {}).get("S"),
                "failed_at": doc.get("updated_at"),
                "direction": doc.get("direction"),
                "status": doc.get("status"),  # failed, undelivered, or partially_delivered
                "customer": _masked(item.get("customer_number", {}).get("S", "")),
                "our_number": doc.get("our_number"),
                "carrier": doc.get("carrier"),
                "error_code": doc.get("error_code"),
                "reason": summary(str(reason), width=160) if reason else None,
            }
        )
    return found


def _last_digest(sources: Sources) -> dict[str, Any] | None:
    """The newest `run#<day>` of the last DIGEST_DAYS days (the nightly run is for yesterday)."""
    table = sources.digests_table
    if not table:
        return None
    today = sources.now.astimezone(UTC).date()
    days = [today + timedelta(days=1 - n) for n in range(DIGEST_DAYS + 2)]  # any organisation time zone
    items = _batch_get(sources.dynamodb, table, [{"digest_key": {"S": f"run#{d.isoformat()}"}} for d in days])
    if not items:
        return None
    newest = max(items, key=lambda i: (i.get("started_at", {}).get("S", ""), i["digest_key"]["S"]))
    counts = {k[2:]: int(v["N"]) for k, v in newest.items() if k.startswith("n_") and "N" in v}
    shards = int(newest.get("shards", {}).get("N", "0"))
    done = int(newest.get("shards_done", {}).get("N", "0"))
    started = newest.get("started_at", {}).get("S")
    failures = _json(newest.get("failures", {}).get("S"), default=[])
    if counts.get("failed"):
        state = "failed"
    elif done >= shards:
        state = "done"
    else:
        began = _parse_time(started)
        state = "running" if began is not None and sources.now - began < STALLED_AFTER else "stalled"
    return {
        "day": newest["digest_key"]["S"].removeprefix("run#"),
        "state": state,
        "started_at": started,
        "shards": shards,
        "shards_done": done,
        "counts": counts,
        "failures": [summary(json.dumps(f), width=160) for f in failures[:5]]
        if isinstance(failures, list)
        else [],
    }


def _batch_get(dynamodb: Any, table: str, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for start in range(0, len(keys), 100):
        request: dict[str, Any] = {table: {"Keys": keys[start : start + 100]}}
        for _ in range(5):  # what DynamoDB leaves unprocessed, asked again
            result = dynamodb.batch_get_item(RequestItems=request)
            found.extend(result.get("Responses", {}).get(table, []))
            request = result.get("UnprocessedKeys") or {}
            if not request:
                break
    return found


def _json(text: str | None, default: Any = None) -> Any:
    if not text:
        return {} if default is None else default
    try:
        return json.loads(text)
    except ValueError:
        return {} if default is None else default


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# ----------------------------------------------------------------------------------------------------
# Showing


def render(report: dict[str, Any]) -> str:
    lines = [f"Parley status: {report['target']}, {report['checked_at']}", ""]
    lines.append(f"{'queues':<16}{'waiting':>9}{'in flight':>11}{'delayed':>9}  oldest")
    for q in report["queues"]:
        age = _age(q["oldest_age_seconds"])
        lines.append(f"  {q['name']:<14}{q['visible']:>9}{q['in_flight']:>11}{q['delayed']:>9}  {age}")
    lines.append("")
    lines.append(f"{'dead letters':<16}{'waiting':>9}{'in flight':>11}{'':>9}  oldest")
    for q in report["dead_letters"]:
        age = _age(q["oldest_age_seconds"])
        lines.append(f"  {q['name'] + ' DLQ':<14}{q['visible']:>9}{q['in_flight']:>11}{'':>9}  {age}")
        for m in q["messages"]:
            lines.append(f"    {m['message_id']}  sent {m['sent_at'] or '-'}  receives {m['receive_count']}")
            lines.append(f"      {m['summary']}")
    lines.append("")
    failures = report["recent_failures"]
    lines.append(f"recent failures ({len(failures)}, newest first)" if failures else "recent failures: none")
    for f in failures:
        where = f"to {f['customer']}" if f["direction"] == "outbound" else f"from {f['customer']}"
        code = f" {f['error_code']}" if f["error_code"] else ""
        at = f["failed_at"] or f["created_at"] or "-"
        partly = "  partially delivered" if f.get("status") == "partially_delivered" else ""
        lines.append(f"  {at}  {f['message_id']}  {where}  {f['carrier'] or '-'}{code}{partly}")
        if f["reason"]:
            lines.append(f"    {f['reason']}")
    lines.append("")
    run = report["digest"]
    if run is None:
        lines.append(f"last digest run: none in the last {DIGEST_DAYS} days")
    else:
        counts = run["counts"]
        posted = counts.get("created", 0) + counts.get("updated", 0)
        lines.append(
            f"last digest run: {run['day']} {run['state']}, {run['shards_done']}/{run['shards']} shards, "
            f"{counts.get('conversations', 0)} conversations, {posted} records posted, "
            f"{counts.get('failed', 0)} failed (started {run['started_at'] or '-'})"
        )
        for f in run["failures"]:
            lines.append(f"    {f}")
    state = report.get("local_state")
    if "local_state" in report:
        lines.append(
            f"local data: kept in {state['state_dir']}, last saved {state['last_saved_at'] or 'not yet'}"
            if state
            else "local data: in memory only"
        )
    for note in report["notes"]:
        lines.append(f"note: {note}")
    lines.append("")
    if report["attention"]:
        lines.append("NEEDS ATTENTION")
        lines.extend(f"  - {a}" for a in report["attention"])
    else:
        lines.append("all clear")
    return "\n".join(lines)


def _age(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def _masked(customer: str) -> str:
    """A number masked; the placeholder a request with no valid recipient is stored under, as is."""
    return customer if customer == "(no recipient)" else mask(customer)
