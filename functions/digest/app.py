"""The CRM digest: the nightly schedule (or {"day": "YYYY-MM-DD"}) starts runs; the digest queue
brings their shard jobs, days to log again, and the bus events that auto-log at once. The CrmSync
schedule ({"sync": "crm"}) pulls the records changed in the CRM into the Contacts table; the Retention
schedule ({"retention": "sweep"}) blanks the texts older than RetentionDays."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from parley.clock import utc_now
from parley.observability import function_logger, observe_batch, observed, tracer
from parley.services.retention import retention_days
from parley.wiring import container

logger = function_logger()
tracing = tracer()


@logger.inject_lambda_context
@tracing.capture_lambda_handler(capture_response=False, capture_error=False)  # neither may hold a number
@observed()
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if event.get("retention") == "sweep":  # the Retention schedule: blank texts past RetentionDays
        kept = retention_days(event.get("days"))
        container().digest.keep_retention(kept)  # so a day it blanks is not logged again (the API asks)
        return container().retention(kept).run().as_dict()
    if event.get("sync") == "crm":  # the CrmSync schedule: records changed in the CRM
        # every 15 minutes: also whether yesterday's run is overdue (DigestRunIncomplete)
        container().digest_jobs.check_overdue(utc_now())
        return container().record_sync.run().as_dict()
    jobs = container().digest_jobs
    if "Records" in event:
        observe_batch(container().metrics, "digest", event)
        # shard jobs stop while there is time to count their page and hand on the rest
        remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
        retry = jobs.handle(event["Records"], json.loads, remaining_ms=remaining_ms)
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in retry]}
    days = [date.fromisoformat(str(event["day"]))] if event.get("day") else jobs.nightly_days(utc_now())
    return jobs.start(days)
