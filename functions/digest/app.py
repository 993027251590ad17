"""Nightly CRM digest (schedule, or on demand with {"day": "YYYY-MM-DD"})."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aws_lambda_powertools import Logger

from parley.clock import utc_now
from parley.wiring import container

logger = Logger(service="parley")


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    app = container()
    if event.get("day"):
        day = date.fromisoformat(str(event["day"]))
    else:  # the nightly run logs the day that just ended in the organisation's time zone
        day = utc_now().astimezone(ZoneInfo(app.settings.org_timezone)).date() - timedelta(days=1)
    return app.digest.run(day).as_dict()
