"""`LocalStack`: the whole system from template.yaml in one process, with moto standing in for AWS.

Start order matters: the HTTP port is bound first (its URL goes into the functions' environment and the
simulated carrier's webhook URL), AWS variables are set before any handler is imported (handlers build clients
at import), and the stack reports ready only after resources, seed data, handlers, pollers and schedules are
all in place. moto's backends are process-global, so only one LocalStack may run per process at a time.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from local.auth import dev_jwt_secret
from local.faults import FaultInjector, guard
from local.http_front import Front
from local.lambdas import LocalFunction
from local.persist import Persistence, RestoreReport, Snapshotter, StateDir, StateError, track_writes
from local.plan import StackContext, StackPlan, plan_stack
from local.pollers import WAIT_SECONDS, BridgePoller, SqsPoller
from local.provision import client, provision
from local.schedules import Scheduler
from local.template import load_template

log = logging.getLogger(__name__)

STACK_NAME = "parley-local"
REGION = "us-east-1"
DEFAULT_CRM_SECRET = "parley-local-crm-secret"
DEFAULT_CRM_TOKEN = "parley-local-crm-token"  # the simulated CRM's bearer token for its REST CRM routes


class LocalStackError(Exception):
    """The local stack can't start; the message is one line a person can act on."""


class LocalStack:
    """Run a SAM template locally: moto resources, HTTP API front, SQS pollers, schedules, simulators."""

    _active: LocalStack | None = None
    _active_lock = threading.Lock()

    def __init__(
        self,
        template_path: Path,
        *,
        port: int = 3000,
        host: str = "127.0.0.1",
        parameters: dict[str, str] | None = None,
        env_overrides: dict[str, str] | None = None,
        auto_schedules: bool = True,
        seed: bool = True,
        stack_name: str = STACK_NAME,
        state_dir: Path | None = None,
        fresh: bool = False,
        save_interval: float = 30.0,
    ) -> None:
        """`state_dir`: keep the tables and the media bucket there between runs (local/persist.py);
        None (tests) keeps everything in memory. `fresh` moves a saved state aside first."""
        self.template_path = Path(template_path)
        self.port = port
        self.host = host
        self.parameters = dict(parameters or {})
        self.env_overrides = dict(env_overrides or {})
        self.auto_schedules = auto_schedules
        self.seed = seed
        self.stack_name = stack_name
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.fresh = fresh
        self.save_interval = save_interval
        self.restored: RestoreReport | None = None

        self.plan: StackPlan | None = None
        self.functions: dict[str, LocalFunction] = {}
        self.simulators: dict[str, Any] = {}
        self.endpoint_url = ""
        self._front: Front | None = None
        self._moto: Any = None
        self._scheduler: Scheduler | None = None
        self._pollers: list[SqsPoller | BridgePoller] = []
        self._poll_stop = threading.Event()
        self._stop = threading.Event()
        self._saved_env: dict[str, str | None] = {}
        self._ready = False
        self._started = False
        self._stopped = False
        self._lock = threading.Lock()
        self.faults = FaultInjector({})
        self._persistence: Persistence | None = None

    # -- public API

    @property
    def base_url(self) -> str:
        if self._front is None:
            raise LocalStackError("the local stack is not started")
        return self._front.base_url

    @property
    def ready(self) -> bool:
        return self._ready

    def __enter__(self) -> LocalStack:
        if not self._started:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> LocalStack:
        with self._lock:
            if self._started:
                raise LocalStackError("this LocalStack was already started (make a new one)")
            self._started = True
        with LocalStack._active_lock:
            other = LocalStack._active
            if other is not None:
                raise LocalStackError(
                    f"another LocalStack ({other.template_path.name}) is running in this process; stop "
                    "it first (moto state and os.environ are process-wide; in pytest, scope stack fixtures "
                    "to a module or package, not the session)"
                )
            LocalStack._active = self
        began = time.monotonic()
        try:
            self._start(began)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop everything; safe to call twice, from a signal handler's thread, or after a failed start."""
        with self._lock:
            if self._stopped or not self._started:
                return
            self._stopped = True
        began = time.monotonic()
        self._ready = False
        self._stop.set()
        self._poll_stop.set()
        if self._front is not None:
            self._front.stop()
        self._join_pollers()
        if self._scheduler is not None:
            self._scheduler.join(timeout=1.0)
        for name, sim in self.simulators.items():
            close = getattr(sim, "close", None)
            if callable(close):
                try:
                    close()
                except Exception as exc:
                    log.warning("closing simulator %s failed: %s", name, exc)
        if self._persistence is not None:
            self._persistence.close()  # the last save: nothing runs a handler any more
        if self._moto is not None:
            self._moto.stop()
            server = getattr(self._moto, "_server", None)
            if server is not None:
                server.server_close()  # ThreadedMotoServer.stop() leaves the listening socket open
        self.faults.deactivate()
        self._restore_env()
        _clear_settings_cache()
        _real_time()  # the next stack in this process starts on real time
        with LocalStack._active_lock:
            if LocalStack._active is self:
                LocalStack._active = None
        log.info("local stack stopped in %.1f s", time.monotonic() - began)

    def fire(self, name: str, overrides: dict[str, Any] | None = None) -> Any:
        """Fire a schedule now (name: SAM event name like "Nightly", or the logical id); return the result."""
        if self._scheduler is None:
            raise LocalStackError("the local stack is not started")
        return self._scheduler.fire(name, overrides)

    def invoke(self, function_id: str, event: Any) -> Any:
        """Call one function directly (tests, debugging)."""
        return self.functions[function_id].invoke(event, trigger="direct invoke")

    def queue_depths(self) -> dict[str, dict[str, int]]:
        plan = self._require_plan()
        sqs = client("sqs", plan)
        depths: dict[str, dict[str, int]] = {}
        for logical_id, queue in plan.all_queues.items():
            attrs = sqs.get_queue_attributes(
                QueueUrl=queue.url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
            depths[logical_id] = {
                "visible": int(attrs.get("ApproximateNumberOfMessages", 0)),
                "in_flight": int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
                "delayed": int(attrs.get("ApproximateNumberOfMessagesDelayed", 0)),
            }
        return depths

    def resources(self) -> dict[str, Any]:
        return self._require_plan().resources_view()

    def queue_ages(self) -> dict[str, int | None]:
        """Queue URL -> seconds its oldest message has waited (None: empty), what CloudWatch's
        ApproximateAgeOfOldestMessage tells deployed (`parley status`). moto keeps no such metric, so
        this reads its queues in this process; a moto that no longer looks that way answers None."""
        plan = self._require_plan()
        now_ms = time.time() * 1000
        try:
            from moto.sqs.models import sqs_backends

            queues = sqs_backends[plan.context.account_id][plan.context.region].queues
        except (ImportError, KeyError, AttributeError):
            return {q.url: None for q in plan.all_queues.values()}
        ages: dict[str, int | None] = {}
        for spec in plan.all_queues.values():
            sent = [
                getattr(m, "sent_timestamp", None)
                for m in list(getattr(queues.get(spec.name), "_messages", []))
            ]
            stamps = [s for s in sent if isinstance(s, int | float)]
            ages[spec.url] = max(0, int((now_ms - min(stamps)) / 1000)) if stamps else None
        return ages

    # -- AWS-side faults (local/faults.py): a handler's AWS call fails, or the function dies there

    def add_fault(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Inject a fault (raises BadFault for a bad spec); see local/README.md."""
        return self.faults.add(spec)

    def active_faults(self) -> list[dict[str, Any]]:
        return self.faults.active()

    def clear_faults(self) -> list[dict[str, Any]]:
        return self.faults.clear()

    def schedule_names(self) -> dict[str, list[str]]:
        return {s.logical_id: list(s.names) for s in self._require_plan().schedules.values()}

    # -- the clock the handlers read (parley.clock): tests move it, the outside world stays on real time

    def clock(self) -> dict[str, Any]:
        """Parley's now, and how far it runs from real time."""
        from parley import clock

        offset = clock.offset()
        return {
            "now": clock.utc_now().isoformat(),
            "offset_seconds": offset.total_seconds(),
            "real_time": offset == timedelta(0),
        }

    def set_clock(self, now: datetime) -> dict[str, Any]:
        """Put Parley's clock at `now` (it keeps ticking from there); `now` must carry a time zone."""
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("the time needs a zone (e.g. 2026-01-14T23:00:00-08:00)")
        return self._shift_clock(now - datetime.now(UTC))

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        """Move Parley's clock `seconds` on (back, if negative)."""
        from parley import clock

        return self._shift_clock(clock.offset() + timedelta(seconds=seconds))

    def reset_clock(self) -> dict[str, Any]:
        """Back to real time."""
        return self._shift_clock(timedelta(0))

    def health(self) -> dict[str, Any]:
        base = self.base_url
        info: dict[str, Any] = {
            "stack": self.stack_name,
            "api": base,
            "webhooks": f"{base}/webhooks",
            "moto": self.endpoint_url,
            "functions": sorted(self.functions),
        }
        info["simulators"] = {name: f"{base}/_sim/{name}" for name in self.simulators}
        if "twilio" in self.simulators:
            info["twilio"] = f"{base}/_sim/twilio"
        if "crm" in self.simulators:
            info["crm"] = f"{base}/_sim/crm"
        info["local_state"] = self._persistence.info() if self._persistence is not None else None
        return info

    def reset(self) -> None:
        """Empty every table, queue and bucket (moto reset), recreate them, re-seed, reset the simulators."""
        plan = self._require_plan()
        self._ready = False
        self._poll_stop.set()
        self._join_pollers()
        requests.post(f"{self.endpoint_url}/moto-api/reset", timeout=10).raise_for_status()
        _real_time()
        self.faults.clear()
        provision(plan)
        for sim in self.simulators.values():
            reset = getattr(sim, "reset", None)
            if callable(reset):
                reset()
        if self.seed:
            self._seed()
        self._poll_stop = threading.Event()
        self._start_pollers()
        self._ready = True
        log.info("local stack reset")

    # -- start steps

    def _start(self, began: float) -> None:
        try:
            self._front = Front(self, host=self.host, port=self.port)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise LocalStackError(
                    f"port {self.port} on {self.host} is already in use (another `make dev`?); "
                    "choose another with --port or PARLEY_PORT"
                ) from exc
            raise LocalStackError(f"can't listen on {self.host}:{self.port}: {exc.strerror}") from exc
        base_url = self._front.base_url
        self._set_aws_env()
        self._start_moto()
        self._front.start()  # /_local/health answers 503 until ready

        template = load_template(self.template_path, self.parameters, fill_missing=True)
        _add_layer_paths(template.layer_dirs.values())
        context = StackContext(
            stack_name=self.stack_name,
            region=REGION,
            account_id=os.environ.get("MOTO_ACCOUNT_ID", "123456789012"),
            endpoint_url=self.endpoint_url,
            base_url=base_url,
        )
        plan = self.plan = plan_stack(template, context)
        for note in plan.notes:
            log.warning("not emulated: %s", note)
        names = {t.logical_id: t.name for t in plan.tables.values()}
        names.update({q.logical_id: q.name for q in plan.all_queues.values()})
        self.faults = FaultInjector(names, plan.functions)
        self.faults.activate()  # before seeding and loading handlers: their clients get the hooks
        if self.state_dir is not None:
            track_writes()  # the same: every client created from here on counts its writes
        provision(plan)
        restored = self._restore(plan)

        environment, clashes = plan.environment()
        environment.update(self._local_defaults(base_url))
        environment.update(self.env_overrides)
        for key, values in clashes.items():
            if key not in self._local_defaults(base_url) and key not in self.env_overrides:
                log.warning(
                    "env %s differs between functions (%s); locally all see %r",
                    key,
                    ", ".join(values),
                    environment[key],
                )
        for key, value in environment.items():
            self._setenv(key, value)
        _clear_settings_cache()

        self._start_simulators(base_url)
        if self.seed and restored:
            log.info("not seeding: the data of the last run is back (`parley local --fresh` starts over)")
        elif self.seed:
            self._seed()
        self._load_functions(plan)
        self._front.configure(
            routes=[r for r in plan.routes if r.function_id in self.functions],
            functions=self.functions,
            api_ids=plan.api_ids,
            account_id=context.account_id,
            jwt_secret=dev_jwt_secret(),
        )
        self._start_pollers()
        self._scheduler = Scheduler(plan, self.functions)
        if self.auto_schedules:
            self._scheduler.start(self._stop)
        if self._persistence is not None:
            self._persistence.start(self._stop)
        self._ready = True
        log.info(
            "local stack ready at %s in %.1f s: %d functions, %d routes, %d pollers, %d schedules (%s)",
            base_url,
            time.monotonic() - began,
            len(self.functions),
            len(plan.routes),
            len(self._pollers),
            len(plan.schedules),
            "firing on time" if self.auto_schedules else "on demand only",
        )

    def _restore(self, plan: StackPlan) -> bool:
        """Bring back the last run's tables and media (right after provisioning, before the seed and
        the pollers); True when anything came back."""
        if self.state_dir is None:
            return False
        state = StateDir(self.state_dir)
        snapshotter = Snapshotter(
            client("dynamodb", plan),
            client("s3", plan),
            {t.logical_id: t.name for t in plan.tables.values()},
            {b.logical_id: b.name for b in plan.buckets.values()},
            stack=self.stack_name,
        )
        try:
            state.lock()
        except StateError as exc:
            raise LocalStackError(str(exc)) from exc
        except OSError as exc:
            raise LocalStackError(f"can't use the state directory {self.state_dir}: {exc}") from exc
        self._persistence = Persistence(state, snapshotter, interval=self.save_interval)  # unlocks on stop
        try:
            self.restored = self._persistence.restore(fresh=self.fresh)
        except OSError as exc:
            raise LocalStackError(f"can't use the state directory {self.state_dir}: {exc}") from exc
        return self.restored.restored > 0

    def save_state(self) -> bool:
        """Save the tables and media now (when persisting); True if a state was written."""
        return self._persistence.save(force=True) if self._persistence is not None else False

    def _local_defaults(self, base_url: str) -> dict[str, str]:
        """Point the handlers at the simulators instead of Twilio and the CRM."""
        return {
            "PARLEY_STAGE": "local",
            "PARLEY_PUBLIC_BASE_URL": base_url,
            "PARLEY_CRM_WEBHOOK_URL": f"{base_url}/_sim/crm",
            "PARLEY_CRM_SIGNING_SECRET": os.environ.get("PARLEY_CRM_SIGNING_SECRET", DEFAULT_CRM_SECRET),
            # the REST CRMs too (PARLEY_CRM=salesforce|hubspot|dynamics picks one): all at the simulated CRM
            **{
                name: os.environ.get(name, value)
                for name, value in {
                    "PARLEY_CRM_SALESFORCE_INSTANCE_URL": f"{base_url}/_sim/crm",
                    "PARLEY_CRM_SALESFORCE_ACCESS_TOKEN": DEFAULT_CRM_TOKEN,
                    "PARLEY_CRM_HUBSPOT_BASE_URL": f"{base_url}/_sim/crm",
                    "PARLEY_CRM_HUBSPOT_TOKEN": DEFAULT_CRM_TOKEN,
                    "PARLEY_CRM_DYNAMICS_INSTANCE_URL": f"{base_url}/_sim/crm",
                    "PARLEY_CRM_DYNAMICS_ACCESS_TOKEN": DEFAULT_CRM_TOKEN,
                }.items()
            },
            "PARLEY_RETRY_BASE_SECONDS": "1",
            # 40 attempts would keep a failing text retrying for hours here too: locally it fails after 5.
            "PARLEY_RETRY_MAX_ATTEMPTS": os.environ.get("PARLEY_RETRY_MAX_ATTEMPTS", "5"),
            # Off locally unless asked for, so a demo at night still sends (the template's default is on).
            "PARLEY_QUIET_HOURS": os.environ.get("PARLEY_QUIET_HOURS", ""),
        }

    def _set_aws_env(self) -> None:
        logging.getLogger("werkzeug").setLevel(
            logging.ERROR
        )  # moto's verbose=False does not silence requests
        for key in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL_")]:
            self._setenv(key, None)  # a service-specific endpoint would bypass moto
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            self._setenv(key, None)
        self._setenv("AWS_ACCESS_KEY_ID", "testing")
        self._setenv("AWS_SECRET_ACCESS_KEY", "testing")
        self._setenv("AWS_DEFAULT_REGION", REGION)
        self._setenv("AWS_REGION", REGION)
        self._setenv("POWERTOOLS_TRACE_DISABLED", "true")
        self._setenv("POWERTOOLS_METRICS_NAMESPACE", "parley-local")
        self._setenv("POWERTOOLS_METRICS_DISABLED", os.environ.get("POWERTOOLS_METRICS_DISABLED", "true"))

    def _start_moto(self) -> None:
        from moto.server import ThreadedMotoServer

        from local.moto_atomic import make_dynamodb_requests_atomic

        make_dynamodb_requests_atomic()  # the functions run in threads against one moto
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._moto.start()
        host, port = self._moto.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        self._setenv("AWS_ENDPOINT_URL", self.endpoint_url)
        # moto's backends live in this process and outlive a previous LocalStack: start from nothing.
        requests.post(f"{self.endpoint_url}/moto-api/reset", timeout=10).raise_for_status()
        log.info("moto listening on %s", self.endpoint_url)

    def _start_simulators(self, base_url: str) -> None:
        """Every simulated carrier plus the CRM; each carrier's settings point Parley at its simulator."""
        assert self._front is not None
        from local.carrier_sims import SIMULATORS
        from local.sim_crm import SimulatedCrm

        for spec in SIMULATORS:
            sim, env = spec.start(base_url)
            self.simulators[spec.carrier] = sim
            self._front.mount(spec.mount, sim)
            for key, value in env.items():
                if key not in self.env_overrides:  # the caller's settings win
                    self._setenv(key, value)
        crm = SimulatedCrm(os.environ["PARLEY_CRM_SIGNING_SECRET"], token=DEFAULT_CRM_TOKEN)
        self.simulators["crm"] = crm
        self._front.mount("/_sim/crm", crm)

    def _seed(self) -> None:
        try:
            from local.seed import seed
        except ModuleNotFoundError as exc:
            if exc.name != "local.seed":
                raise
            log.warning("local/seed.py is missing: starting with empty tables")
            return
        from parley.config import Settings

        started = time.monotonic()
        seed(Settings())
        log.info("seeded in %.0f ms", (time.monotonic() - started) * 1000)

    def _load_functions(self, plan: StackPlan) -> None:
        for spec in plan.functions.values():
            if spec.code_dir is None:
                continue
            function = LocalFunction(spec)
            guard(function)  # loads it; AWS faults (local/faults.py) can then name it or crash it
            self.functions[spec.logical_id] = function

    def _start_pollers(self) -> None:
        plan = self._require_plan()
        self._pollers = []
        for esm in plan.esms.values():
            if not esm.enabled:
                log.info("event source %s is disabled in the template: not polling", esm.logical_id)
                continue
            function = self.functions.get(esm.function_id)
            if function is None:
                log.warning(
                    "event source %s targets %s, which can't run locally", esm.logical_id, esm.function_id
                )
                continue
            self._pollers.append(SqsPoller(plan, esm, function, self._poll_stop))
        for bridge in plan.bridges:
            function = self.functions.get(bridge.function_id)
            if function is not None:
                self._pollers.append(BridgePoller(plan, bridge, function, self._poll_stop))
        for poller in self._pollers:
            poller.start()

    def _join_pollers(self) -> None:
        deadline = time.monotonic() + WAIT_SECONDS + 2
        for poller in self._pollers:
            poller.join(max(0.0, deadline - time.monotonic()))
            if poller.is_alive():
                log.warning("%s is still running a handler; leaving it behind (daemon thread)", poller.name)
        self._pollers = []

    # -- helpers

    def _shift_clock(self, offset: timedelta) -> dict[str, Any]:
        from parley import clock

        moved_back = offset < clock.offset()
        clock.set_offset(offset)
        if moved_back:
            self._forget_rate_buckets()
        state = self.clock()
        if state["real_time"]:
            log.info("clock: real time")
        else:
            log.warning(
                "clock: Parley now reads %s (%+.0f s from real time)", state["now"], offset.total_seconds()
            )
        return state

    def _forget_rate_buckets(self) -> None:
        """Empty the rate-limit table after the clock moved back. A bucket last charged at a later time
        refills nothing until the clock gets there again (domain/rate.py), so the number would stall."""
        table = os.environ.get("PARLEY_RATE_LIMITS_TABLE")
        if not table or self.plan is None:
            return
        dynamodb = client("dynamodb", self.plan)
        try:
            keys = [
                k["AttributeName"] for k in dynamodb.describe_table(TableName=table)["Table"]["KeySchema"]
            ]
        except dynamodb.exceptions.ResourceNotFoundException:
            return
        forgotten = 0
        for page in dynamodb.get_paginator("scan").paginate(TableName=table):
            for item in page.get("Items", []):
                dynamodb.delete_item(TableName=table, Key={k: item[k] for k in keys})
                forgotten += 1
        log.info("clock moved back: forgot %d rate bucket(s) in %s", forgotten, table)

    def _require_plan(self) -> StackPlan:
        if self.plan is None:
            raise LocalStackError("the local stack is not started")
        return self.plan

    def _setenv(self, key: str, value: str | None) -> None:
        if key not in self._saved_env:
            self._saved_env[key] = os.environ.get(key)
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value

    def _restore_env(self) -> None:
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()


def _add_layer_paths(layer_dirs: Iterable[Path]) -> None:
    """Layers land in /opt/python on Lambda; locally their source directory goes on sys.path."""
    for directory in layer_dirs:
        root = directory / "python" if (directory / "python").is_dir() else directory
        if root.is_dir() and str(root) not in sys.path:
            sys.path.append(str(root))
            log.debug("layer %s on sys.path", root)


def _real_time() -> None:
    """Put Parley's clock back on real time (a no-op when the layer isn't importable)."""
    try:
        from parley import clock
    except ImportError:
        return
    clock.set_offset(timedelta(0))


def _clear_settings_cache() -> None:
    """parley.config.get_settings is cached per process; a new stack (new ports) must not see the old one."""
    try:
        from parley.config import get_settings
    except ImportError:
        return
    get_settings.cache_clear()
