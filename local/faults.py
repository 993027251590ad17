"""AWS-side faults for the local stack: a handler's DynamoDB, SQS, EventBridge, ... call fails the way AWS
would make it fail, or the function dies right there.

The carrier simulators take faults at ``/_sim/<carrier>/_faults``; this module does the same for AWS, so the
code under test meets a throttled write or a crash between two writes exactly where it would in AWS:

* every botocore client created while a stack runs gets two hooks: ``before-parameter-build`` notes what a
  call is (service, operation, table or queue, the calling function, its parameters) on the request's
  context, and ``before-send`` decides, for each HTTP request the SDK is about to make, whether a fault
  takes it (the request then never reaches moto's server; under moto's in-process ``mock_aws`` it would,
  as botocore runs every before-send handler, so this is for a moto server, as the stack runs it);
* an error fault answers that request with the status and error body AWS sends (e.g. a 400
  ``ProvisionedThroughputExceededException``), so botocore parses it, retries it under the client's
  own retry settings (pynamodb: 3 retries, standard mode) and raises the modeled exception, e.g.
  ``client.exceptions.ProvisionedThroughputExceededException``, as AWS would; "timeout" raises
  botocore's ``ConnectTimeoutError`` for the request instead (nothing reached AWS);
* a crash fault raises `SimulatedCrash`, a BaseException, so no ``except Exception`` in the code under
  test (powertools' batch processor included) catches it: the invocation ends there, as if the process
  died, and the local Lambda reports an error. Its SQS records are not deleted and come back after the
  queue's VisibilityTimeout (180 s in template.yaml: tests lower it on the queue), or go to the DLQ.

Only calls made inside a handler invocation are candidates (the pollers' and the runtime's own calls never
are): `guard` wraps each loaded function so the hooks know which function is calling. Faults are counted per
HTTP request: `skip` matching requests pass first, then `count` fail; an SDK retry is a request of its own,
so an error with `count` below the client's attempt limit is retried away invisibly, as in AWS.

Local-only: nothing in `layers/` or `functions/` knows about it.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import re
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import botocore.session
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectTimeoutError

from local.lambdas import LocalFunction

log = logging.getLogger(__name__)

CRASH = "crash"
TIMEOUT = "timeout"
_CALL_KEY = (
    "parley_local_call"  # where the before-parameter-build hook leaves the call on the request context
)
_ERROR_CODE = re.compile(r"[A-Za-z][A-Za-z0-9.]{0,99}")
_SERVER_ERRORS = {
    "InternalServerError": 500,
    "InternalFailure": 500,
    "InternalError": 500,
    "ServiceUnavailable": 503,
}

_current = threading.local()  # .function: the logical id of the function this thread is running
_active: FaultInjector | None = None
_install_lock = threading.Lock()
_installed = False


class SimulatedCrash(BaseException):  # noqa: N818 - named for what it simulates, like KeyboardInterrupt
    """The function dies at this call. A BaseException, so the code under test can't catch it."""


class FunctionCrashed(Exception):
    """How an invocation ends when a crash fault fired in it (the error the local Lambda reports)."""


class BadFault(ValueError):
    """A fault specification we can't use; the text says why."""


@dataclass
class AwsFault:
    id: str
    service: str
    error: str  # "crash", "timeout" or an AWS error code
    operation: str | None = None
    table: str | None = None  # physical table name
    queue: str | None = None  # physical queue name
    function: str | None = None  # logical id of the calling function
    match: str | None = None  # a substring of the call's parameters as JSON
    status: int = 400
    message: str = ""
    skip: int = 0
    count: int = 1
    seen: int = 0  # matching requests so far
    fired: int = 0  # of which failed

    @property
    def spent(self) -> bool:
        return self.fired >= self.count

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Call:
    """One API call a handler makes, as the hooks see it."""

    service: str
    operation: str
    function: str
    tables: frozenset[str]
    queues: frozenset[str]
    params: Mapping[str, Any]
    protocol: str
    query_compatible: bool

    @functools.cached_property
    def text(self) -> str:
        return json.dumps(self.params, default=str, sort_keys=True)


class FaultInjector:
    """The faults of one running stack; thread-safe. `names` maps logical ids to physical names (tables and
    queues), `functions` are the logical ids a fault may name."""

    def __init__(self, names: Mapping[str, str], functions: Iterable[str] = ()) -> None:
        self._names = dict(names)
        self._functions = set(functions)
        self._lock = threading.Lock()
        self._faults: list[AwsFault] = []
        self._ids = itertools.count(1)

    # -- the control plane

    def add(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """A new fault from a JSON object (see local/README.md); BadFault for a bad one."""
        known = {"service", "operation", "table", "queue", "function", "match", "error", "status"}
        known |= {"message", "skip", "count"}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise BadFault(
                f"unknown field(s) {', '.join(unknown)}; expected some of {', '.join(sorted(known))}"
            )
        service = _text(spec, "service", required=True)
        assert service is not None
        error = _text(spec, "error", required=True)
        assert error is not None
        if error not in (CRASH, TIMEOUT) and not _ERROR_CODE.fullmatch(error):
            raise BadFault(
                'error must be "crash", "timeout" or an AWS error code such as ThrottlingException'
            )
        function = _text(spec, "function")
        if function is not None and self._functions and function not in self._functions:
            raise BadFault(f"no function {function!r}; the stack runs {', '.join(sorted(self._functions))}")
        status = spec.get("status", _SERVER_ERRORS.get(error, 400))
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise BadFault("status must be an HTTP error status (400-599)")
        fault = AwsFault(
            id=f"AF{next(self._ids)}",
            service=service.lower(),
            error=error,
            operation=_text(spec, "operation"),
            table=self._physical(_text(spec, "table")),
            queue=self._physical(_text(spec, "queue")),
            function=function,
            match=_text(spec, "match"),
            status=status,
            message=_text(spec, "message") or f"{error} (injected by the local stack)",
            skip=_count(spec, "skip", 0, least=0),
            count=_count(spec, "count", 1, least=1),
        )
        with self._lock:
            self._faults.append(fault)
        log.warning("AWS fault %s added: %s", fault.id, _describe(fault))
        return fault.to_dict()

    def active(self) -> list[dict[str, Any]]:
        """Every fault not yet spent, oldest first, with how many matching requests it has seen."""
        with self._lock:
            return [f.to_dict() for f in self._faults]

    def clear(self) -> list[dict[str, Any]]:
        """Drop every fault; returns them (what each saw and fired)."""
        with self._lock:
            dropped, self._faults = self._faults, []
        if dropped:
            log.info("AWS faults cleared: %s", ", ".join(f"{f.id} fired {f.fired}" for f in dropped))
        return [f.to_dict() for f in dropped]

    # -- process-wide wiring

    def activate(self) -> None:
        """Hook every botocore client created from now on (once per process); this injector decides."""
        global _active
        install()
        _active = self

    def deactivate(self) -> None:
        global _active
        if _active is self:
            _active = None
        self.clear()

    # -- deciding

    def take(self, call: _Call) -> AwsFault | None:
        """The fault that fails this request, if one does (a copy); counts the request for every match."""
        with self._lock:
            for fault in self._faults:
                if not _matches(fault, call):
                    continue
                fault.seen += 1
                if fault.seen <= fault.skip:
                    continue
                fault.fired += 1
                if fault.spent:
                    self._faults.remove(fault)
                return AwsFault(**asdict(fault))
        return None

    @property
    def armed(self) -> bool:
        return bool(self._faults)  # read without the lock: a stale answer costs one request's check

    def _physical(self, name: str | None) -> str | None:
        if name is None:
            return None
        return self._names.get(name, name)


def _text(spec: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = spec.get(key)
    if value is None:
        if required:
            raise BadFault(f"{key} is required")
        return None
    if not isinstance(value, str) or not value:
        raise BadFault(f"{key} must be a non-empty string")
    return value


def _count(spec: Mapping[str, Any], key: str, default: int, *, least: int) -> int:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise BadFault(f"{key} must be an integer of at least {least}")
    return value


def _describe(fault: AwsFault) -> str:
    where = [fault.service, fault.operation or "*"]
    for label, value in (
        ("table", fault.table),
        ("queue", fault.queue),
        ("function", fault.function),
        ("match", fault.match),
    ):
        if value is not None:
            where.append(f"{label}={value}")
    return f"{' '.join(where)}: skip {fault.skip}, then {fault.error} x{fault.count}"


def _matches(fault: AwsFault, call: _Call) -> bool:
    if fault.spent or fault.service != call.service:
        return False
    if fault.operation is not None and fault.operation != call.operation:
        return False
    if fault.function is not None and fault.function != call.function:
        return False
    if fault.table is not None and fault.table not in call.tables:
        return False
    if fault.queue is not None and fault.queue not in call.queues:
        return False
    return fault.match is None or fault.match in call.text


# ----------------------------------------------------------------------------------------------------
# Running functions: which one a thread is in, and a crash as the end of the invocation


def guard(function: LocalFunction) -> None:
    """Run `function`'s handler as a fault candidate: its calls carry its logical id, and a crash fault
    ends the invocation with FunctionCrashed (an error the local Lambda reports, records unacknowledged)."""
    handler = function.load()
    logical_id = function.logical_id

    @functools.wraps(handler)
    def guarded(event: Any, context: Any) -> Any:
        with running_as(logical_id):
            try:
                return handler(event, context)
            except SimulatedCrash as crash:
                raise FunctionCrashed(f"{logical_id} crashed (injected): {crash}") from crash

    function._handler = guarded  # noqa: SLF001 - the local runtime's own class


@contextmanager
def running_as(logical_id: str) -> Iterator[None]:
    """AWS calls this thread makes inside the block are `logical_id`'s (fault candidates)."""
    outer = getattr(_current, "function", None)
    _current.function = logical_id
    try:
        yield
    finally:
        _current.function = outer


# ----------------------------------------------------------------------------------------------------
# botocore hooks


def install() -> None:
    """Give every botocore client created from now on the fault hooks (idempotent, process-wide). Clients
    created earlier keep working without them: start the stack before the handlers make their clients."""
    global _installed
    with _install_lock:
        if _installed:
            return
        original = botocore.session.Session.create_client

        @functools.wraps(original)
        def create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
            client = original(self, *args, **kwargs)
            client.meta.events.register("before-parameter-build", _note_call)
            client.meta.events.register_first("before-send", _maybe_fail)
            return client

        botocore.session.Session.create_client = create_client
        _installed = True


def _note_call(params: Mapping[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
    injector = _active
    function = getattr(_current, "function", None)
    if injector is None or function is None or not injector.armed:
        return
    service_model = model.service_model
    context[_CALL_KEY] = _Call(
        service=str(service_model.service_name),
        operation=str(model.name),
        function=function,
        tables=_tables(params),
        queues=_queues(params),
        params=params,
        protocol=str(getattr(service_model, "resolved_protocol", None) or service_model.protocol),
        query_compatible=service_model.metadata.get("awsQueryCompatible") is not None,
    )


def _maybe_fail(request: Any, **_: Any) -> AWSResponse | None:
    injector = _active
    call = (getattr(request, "context", None) or {}).get(_CALL_KEY)
    if injector is None or not isinstance(call, _Call):
        return None
    fault = injector.take(call)
    if fault is None:
        return None
    log.warning(
        "AWS fault %s: %s %s from %s -> %s (%d of %d)",
        fault.id,
        call.service,
        call.operation,
        call.function,
        fault.error,
        fault.fired,
        fault.count,
    )
    if fault.error == CRASH:
        raise SimulatedCrash(f"{call.service} {call.operation} (fault {fault.id})")
    if fault.error == TIMEOUT:
        raise ConnectTimeoutError(endpoint_url=str(request.url))
    return error_response(str(request.url), call.protocol, fault.error, fault.message, fault.status, call)


def _tables(params: Mapping[str, Any]) -> frozenset[str]:
    names: set[str] = set()
    if isinstance(params.get("TableName"), str):
        names.add(params["TableName"])
    for item in params.get("TransactItems") or []:  # TransactWriteItems / TransactGetItems
        for action in item.values() if isinstance(item, dict) else []:
            if isinstance(action, dict) and isinstance(action.get("TableName"), str):
                names.add(action["TableName"])
    request_items = params.get("RequestItems")  # BatchWriteItem / BatchGetItem
    if isinstance(request_items, dict):
        names.update(str(k) for k in request_items)
    return frozenset(names)


def _queues(params: Mapping[str, Any]) -> frozenset[str]:
    url = params.get("QueueUrl")
    if isinstance(url, str):
        return frozenset({url.rstrip("/").rsplit("/", 1)[-1]})
    name = params.get("QueueName")
    return frozenset({name}) if isinstance(name, str) else frozenset()


class _Body:
    """The raw body AWSResponse reads (`stream()`), as urllib3's response offers it."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, *_: Any, **__: Any) -> Iterator[bytes]:
        yield self._data


def error_response(
    url: str, protocol: str, code: str, message: str, status: int, call: _Call | None = None
) -> AWSResponse:
    """The HTTP response AWS sends for error `code` in the service's protocol, for botocore to parse."""
    request_id = str(uuid.uuid4())
    headers = {"x-amzn-RequestId": request_id}
    if protocol in ("json", "rest-json", "smithy-rpc-v2-cbor"):
        headers["Content-Type"] = "application/x-amz-json-1.0"
        headers["x-amzn-ErrorType"] = code
        if call is not None and call.query_compatible:  # SQS: the error code its query API used
            headers["x-amzn-query-error"] = f"{code};{'Receiver' if status >= 500 else 'Sender'}"
        body = json.dumps({"__type": code, "message": message}).encode()
        if protocol == "smithy-rpc-v2-cbor":
            log.warning(
                "fault %s: %s speaks CBOR; answering in JSON, which botocore may not parse", code, url
            )
    else:
        error = f"<Error><Type>Sender</Type><Code>{code}</Code><Message>{_xml(message)}</Message></Error>"
        if protocol in ("query", "ec2"):
            body = f"<ErrorResponse>{error}<RequestId>{request_id}</RequestId></ErrorResponse>".encode()
        else:  # rest-xml (S3)
            body = error.replace("</Error>", f"<RequestId>{request_id}</RequestId></Error>").encode()
        headers["Content-Type"] = "text/xml"
    headers["Content-Length"] = str(len(body))
    return AWSResponse(url, status, headers, _Body(body))


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
