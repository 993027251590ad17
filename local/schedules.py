"""Fire the template's schedules, since moto stores them but never fires them (reference B4).

Handles SAM ScheduleV2 (AWS::Scheduler::Schedule, with ScheduleExpressionTimezone) and Schedule
(AWS::Events::Rule with ScheduleExpression, always UTC). Expressions: rate(N unit), AWS 6-field cron(...)
(translated to croniter's 5 fields: `?` -> `*`, day-of-week 1-7 -> 0-6, `6L` -> `L5`, the year field checked
separately) and at(yyyy-mm-ddThh:mm:ss). Every schedule can also be fired on demand, which is how tests and
`parley digest` use them.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from local.lambdas import LocalFunction
from local.plan import ScheduleSpec, StackPlan
from local.provision import client

log = logging.getLogger(__name__)

NextFire = Callable[[datetime], datetime | None]


class ScheduleError(Exception):
    """A schedule can't be parsed or fired; the message names it."""


class UnknownScheduleError(ScheduleError):
    """No schedule by that name (the message lists the ones there are)."""


_RATE = re.compile(r"rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)")
_CRON = re.compile(r"cron\((.*)\)")
_AT = re.compile(r"at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def _dow_token(token: str) -> str:
    """AWS numbers days 1-7 from Sunday; croniter 0-6. Names (MON-FRI) need no change."""
    if m := re.fullmatch(r"(\d)L", token):
        return f"L{int(m.group(1)) - 1}"
    if m := re.fullmatch(r"(\d)#(\d)", token):
        return f"{int(m.group(1)) - 1}#{m.group(2)}"
    return re.sub(r"\d+", lambda d: str(int(d.group()) - 1), token)


def _year_matcher(field: str) -> Callable[[int], bool]:
    if field in ("*", "?"):
        return lambda _year: True
    years: set[int] = set()
    for part in field.split(","):
        if m := re.fullmatch(r"(\d{4})-(\d{4})", part):
            years.update(range(int(m.group(1)), int(m.group(2)) + 1))
        elif re.fullmatch(r"\d{4}", part):
            years.add(int(part))
        else:
            raise ScheduleError(
                f"year field {field!r} not supported locally (use *, 2030, 2030-2032 or lists)"
            )
    return lambda year: year in years


def aws_cron_to_croniter(body: str) -> tuple[str, Callable[[int], bool]]:
    """Translate the 6 AWS cron fields to croniter's 5 plus a year predicate."""
    fields = body.split()
    if len(fields) != 6:
        raise ScheduleError(
            f"cron({body}) must have 6 fields (minutes hours day-of-month month day-of-week year)"
        )
    minutes, hours, dom, month, dow, year = fields
    dom = "*" if dom == "?" else dom
    dow = "*" if dow == "?" else ",".join(_dow_token(t) for t in dow.split(","))
    return f"{minutes} {hours} {dom} {month} {dow}", _year_matcher(year)


def parse_expression(expression: str, timezone: str) -> NextFire:
    """A function giving the next fire time strictly after `now` (None when there is none)."""
    try:
        tz = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"unknown ScheduleExpressionTimezone {timezone!r}") from exc
    text = expression.strip()
    if m := _RATE.fullmatch(text):
        amount, unit = int(m.group(1)), m.group(2).rstrip("s")
        if amount < 1:
            raise ScheduleError(f"{expression}: the rate must be at least 1")
        period = timedelta(seconds=amount * _UNIT_SECONDS[unit])
        return lambda now: now + period
    if m := _CRON.fullmatch(text):
        spec, year_ok = aws_cron_to_croniter(m.group(1))
        try:
            croniter(spec, datetime.now(tz))
        except Exception as exc:  # croniter raises several error types for bad fields
            raise ScheduleError(
                f"{expression} is not a cron expression the local runtime understands: {exc}"
            ) from exc

        def next_cron(now: datetime) -> datetime | None:
            it = croniter(spec, now.astimezone(tz))
            for _ in range(1000):
                candidate: datetime = it.get_next(datetime)
                if year_ok(candidate.year):
                    return candidate
            return None

        return next_cron
    if m := _AT.fullmatch(text):
        when = datetime.fromisoformat(m.group(1)).replace(tzinfo=tz)
        return lambda now: when if when > now else None
    raise ScheduleError(f"unsupported schedule expression {expression!r} (rate(), cron() or at())")


def scheduled_event(spec: ScheduleSpec, plan: StackPlan) -> dict[str, Any]:
    """What an EventBridge schedule rule sends a Lambda target when the target has no Input."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": plan.context.account_id,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": plan.context.region,
        "resources": [spec.rule_arn],
        "detail": {},
    }


class Scheduler:
    """Knows every schedule by the names people type; fires on demand and (optionally) on time."""

    def __init__(self, plan: StackPlan, functions: dict[str, LocalFunction]) -> None:
        self.plan = plan
        self.functions = functions
        self._next: dict[str, NextFire] = {}
        for spec in plan.schedules.values():
            try:
                self._next[spec.logical_id] = parse_expression(spec.expression, spec.timezone)
            except ScheduleError as exc:
                raise ScheduleError(f"schedule {spec.logical_id}: {exc}") from exc
        self._threads: list[threading.Thread] = []

    def find(self, name: str) -> ScheduleSpec:
        specs = list(self.plan.schedules.values())
        exact = [s for s in specs if name in s.names]
        folded = [s for s in specs if name.lower() in (n.lower() for n in s.names)]
        for found in (exact, folded):
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                options = ", ".join(s.logical_id for s in found)
                raise UnknownScheduleError(f"schedule name {name!r} is ambiguous; use one of {options}")
        known = ", ".join(sorted({n for s in specs for n in s.names})) or "none"
        raise UnknownScheduleError(f"no schedule named {name!r} (known: {known})")

    def event_for(self, spec: ScheduleSpec, overrides: dict[str, Any] | None) -> Any:
        if spec.input is not None:
            try:
                event: Any = json.loads(spec.input)
            except json.JSONDecodeError as exc:
                raise ScheduleError(f"schedule {spec.logical_id}: Input is not JSON: {exc}") from exc
        elif spec.kind == "rule":
            event = scheduled_event(spec, self.plan)
        else:
            event = {}
        if overrides:
            if not isinstance(event, dict):
                raise ScheduleError(
                    f"schedule {spec.logical_id}: its Input is not a JSON object, can't merge"
                )
            event = {**event, **overrides}
        return event

    def fire(self, name: str, overrides: dict[str, Any] | None = None) -> Any:
        """Deliver the schedule's event now and return the function's result (FunctionError if it raised)."""
        spec = self.find(name)
        event = self.event_for(spec, overrides)
        started = time.monotonic()
        if spec.function_id is not None:
            result = self.functions[spec.function_id].invoke(event, trigger=f"schedule {spec.names[-1]}")
        else:
            queue = self.plan.queues[str(spec.queue_id)]
            sent = client("sqs", self.plan).send_message(QueueUrl=queue.url, MessageBody=json.dumps(event))
            result = {"MessageId": sent["MessageId"], "queue": queue.name}
        log.info(
            "fired schedule %s (%s) -> %s in %.0f ms",
            spec.names[-1],
            spec.expression,
            spec.function_id or spec.queue_id,
            (time.monotonic() - started) * 1000,
        )
        return result

    def start(self, stop: threading.Event) -> None:
        for spec in self.plan.schedules.values():
            if not spec.enabled:
                log.info("schedule %s is DISABLED in the template: fire it on demand only", spec.logical_id)
                continue
            thread = threading.Thread(
                target=self._run, args=(spec, stop), name=f"schedule-{spec.logical_id}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = [t for t in self._threads if t.is_alive()]

    def _run(self, spec: ScheduleSpec, stop: threading.Event) -> None:
        tz = ZoneInfo(spec.timezone)
        next_fire = self._next[spec.logical_id]
        while not stop.is_set():
            now = datetime.now(tz)
            when = next_fire(now)
            if when is None:
                log.debug("schedule %s has no future fire time", spec.logical_id)
                return
            log.debug("schedule %s next fires at %s", spec.logical_id, when.isoformat())
            if stop.wait(max(0.0, (when - datetime.now(tz)).total_seconds())):
                return
            try:
                self.fire(spec.logical_id)
            except Exception as exc:  # the handler's traceback is already logged by invoke()
                log.error("schedule %s fire failed: %s", spec.logical_id, exc)
