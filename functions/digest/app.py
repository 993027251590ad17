"""The CRM digest: the nightly schedule (or {"day": "YYYY-MM-DD"}) starts runs; the digest queue
brings their shard jobs, days to log again, and the bus events that auto-log at once. The CrmSync
schedule ({"sync": "crm"}) pulls the records changed in the CRM into the Contacts table."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from aws_lambda_powertools import Logger

from parley.clock import utc_now
from parley.wiring import container

logger = Logger(service="parley")


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if event.get("sync") == "crm":  # the CrmSync schedule: records changed in the CRM
        return container().record_sync.run().as_dict()
    jobs = container().digest_jobs
    if "Records" in event:
        retry = jobs.handle(event["Records"], json.loads)
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in retry]}
    days = [date.fromisoformat(str(event["day"]))] if event.get("day") else jobs.nightly_days(utc_now())
    return jobs.start(days)
