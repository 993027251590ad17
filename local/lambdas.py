"""Run Lambda handlers in-process: import them as packages and call them with a Lambda-like context.

moto can only run Lambdas in Docker (reference B6), and importing in-process keeps breakpoints and tracebacks
working. CodeUri `functions/inbound/` + Handler `webhook.handler` becomes module `functions.inbound.webhook`:
package paths (not bare `app` modules) keep several functions' `app.py` from colliding in one interpreter.
"""

from __future__ import annotations

import decimal
import importlib
import importlib.util
import json
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from local.plan import FunctionSpec

log = logging.getLogger(__name__)

Handler = Callable[[Any, Any], Any]


class HandlerLoadError(Exception):
    """A function's handler can't be imported; the message names the function, module and file."""


class FunctionError(Exception):
    """The handler raised (Lambda's "Unhandled" error); the original exception is the __cause__."""

    def __init__(self, function_id: str, exc: BaseException) -> None:
        super().__init__(f"{function_id} raised {type(exc).__name__}: {exc}")
        self.function_id = function_id
        self.error_type = type(exc).__name__
        self.error_message = str(exc)


class MarshalError(Exception):
    """The handler returned something Lambda could not serialise to JSON (Runtime.MarshalError)."""


class LambdaContext:
    """The attributes handlers and powertools read from the real context object."""

    def __init__(self, spec: FunctionSpec) -> None:
        self.function_name = spec.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = spec.arn
        self.memory_limit_in_mb = spec.memory
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{spec.name}"
        self.log_stream_name = f"local/{spec.logical_id}/{self.aws_request_id}"
        self.identity: Any = None
        self.client_context: Any = None
        self._deadline = time.monotonic() + spec.timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _json_default(value: Any) -> Any:
    # The Python Lambda runtime serialises Decimal (DynamoDB) as a number; anything else is a MarshalError.
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def to_json(value: Any) -> str:
    try:
        return json.dumps(value, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise MarshalError(str(exc)) from exc


def module_for(code_dir: Path, handler: str) -> tuple[str, str]:
    """(dotted module, attribute) for a CodeUri directory and a Handler like `webhook.handler`.

    Tries the importable package path first (as the editable install or pytest's rootdir provide it), then
    puts the directory above the topmost package (the first ancestor without __init__.py) on sys.path.
    """
    module_part, _, attribute = handler.rpartition(".")
    if not module_part or not attribute:
        raise HandlerLoadError(f"Handler {handler!r} is not of the form module.function")
    module_tail = module_part.replace("/", ".").split(".")
    expected = code_dir.joinpath(*module_tail)
    expected_files = {expected.with_suffix(".py"), expected / "__init__.py"}

    root = code_dir
    while (root / "__init__.py").is_file():
        root = root.parent
    package_parts = list(code_dir.relative_to(root).parts)

    candidates: list[list[str]] = [package_parts]
    for entry in sys.path:
        entry_root = Path(entry or ".").resolve()
        if entry_root.is_dir() and code_dir.is_relative_to(entry_root):
            candidates.append(list(code_dir.relative_to(entry_root).parts))
    # most qualified name first: it is the least likely to collide with another function's package
    candidates.sort(key=len, reverse=True)
    for parts in candidates:
        if not all(p.isidentifier() for p in parts):
            continue
        name = ".".join([*parts, *module_tail])
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is not None and spec.origin and Path(spec.origin).resolve() in expected_files:
            return name, attribute

    if not all(p.isidentifier() for p in package_parts):
        raise HandlerLoadError(f"{code_dir} is not an importable package path")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
        log.debug("added %s to sys.path for %s", root, code_dir)
    return ".".join([*package_parts, *module_tail]), attribute


class LocalFunction:
    """One template function, loaded once, invoked from any thread (like concurrent Lambda instances)."""

    def __init__(self, spec: FunctionSpec) -> None:
        self.spec = spec
        self.module: ModuleType | None = None
        self._handler: Handler | None = None
        self._lock = threading.Lock()

    @property
    def logical_id(self) -> str:
        return self.spec.logical_id

    def load(self) -> Handler:
        with self._lock:
            if self._handler is not None:
                return self._handler
            if self.spec.code_dir is None:
                raise HandlerLoadError(f"{self.logical_id} has no local code to run")
            name, attribute = module_for(self.spec.code_dir, self.spec.handler)
            try:
                module = importlib.import_module(name)
            except Exception as exc:
                raise HandlerLoadError(
                    f"{self.logical_id}: importing {name} (from {self.spec.code_dir}) failed: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            found = getattr(module, attribute, None)
            if not callable(found):
                raise HandlerLoadError(f"{self.logical_id}: {name}.{attribute} is not a function")
            handler: Handler = found
            self.module, self._handler = module, handler
            log.debug("%s -> %s.%s", self.logical_id, name, attribute)
            return handler

    def invoke(self, event: Any, *, trigger: str) -> Any:
        """Call the handler with a JSON copy of the event; raise FunctionError (logged with its traceback)."""
        handler = self.load()
        payload = json.loads(to_json(event))
        context = LambdaContext(self.spec)
        started = time.monotonic()
        try:
            result = handler(payload, context)
        except Exception as exc:
            log.exception(
                "%s failed on %s (request %s): %s", self.logical_id, trigger, context.aws_request_id, exc
            )
            raise FunctionError(self.logical_id, exc) from exc
        finally:
            elapsed = time.monotonic() - started
            if elapsed > self.spec.timeout:
                log.warning(
                    "%s took %.1f s on %s; its Timeout is %d s, so AWS would have killed it",
                    self.logical_id,
                    elapsed,
                    trigger,
                    self.spec.timeout,
                )
        log.debug("%s handled %s in %.0f ms", self.logical_id, trigger, elapsed * 1000)
        return result
