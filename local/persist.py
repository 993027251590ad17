"""The local stack's data kept on disk between runs: every table's items and the media bucket's objects.

Only public AWS APIs are used (Scan / BatchWriteItem, ListObjectsV2 / GetObject / PutObject), so the
saved state does not depend on moto's internals. One JSON file, `state.json`, holds it all; it is
written to a temporary file and renamed over the old one, so a crash mid-save leaves the last good
state. A file that can't be read is moved aside (`aside/unreadable-<time>.json`), never deleted.

Not saved: queue messages (receiving them to save them would change their receive counts; the sweep
finds texts left pending and sends them again), the simulators' memory, the clock offset and faults.
SSM parameters and secrets come from the template on every start, and the app writes none.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import botocore.session

log = logging.getLogger(__name__)

FORMAT = 1
STATE_FILE = "state.json"
ASIDE_DIR = "aside"
LOCK_FILE = ".lock"
BATCH = 25  # BatchWriteItem's limit
WRITE_ATTEMPTS = 8  # for items DynamoDB leaves unprocessed, with a doubling pause from 50 ms

# Calls that change a table or a bucket: a periodic save runs only after one of them.
WRITE_OPERATIONS = frozenset(
    {
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "BatchWriteItem",
        "TransactWriteItems",
        "ExecuteStatement",
        "BatchExecuteStatement",
        "ExecuteTransaction",
        "PutObject",
        "CopyObject",
        "DeleteObject",
        "DeleteObjects",
        "CompleteMultipartUpload",
    }
)


class StateError(Exception):
    """The state directory can't be used (locked by another stack, not writable); one line."""


# ----------------------------------------------------------------------------------------------------
# Counting writes: every botocore client created after `track_writes()` bumps a process-wide counter
# after each write call, so the saver knows when something changed without scanning.

_writes = 0
_writes_lock = threading.Lock()
_tracking = False


def track_writes() -> None:
    """Count write calls of every botocore client created from now on (idempotent, process-wide)."""
    global _tracking
    with _writes_lock:
        if _tracking:
            return
        original = botocore.session.Session.create_client

        @functools.wraps(original)
        def create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
            client = original(self, *args, **kwargs)
            client.meta.events.register("after-call", _count_write)
            return client

        botocore.session.Session.create_client = create_client
        _tracking = True


def _count_write(model: Any, **_: Any) -> None:
    """After the call has landed (or failed: a spare save is harmless), never before."""
    global _writes
    if getattr(model, "name", None) in WRITE_OPERATIONS:
        with _writes_lock:
            _writes += 1


def writes_seen() -> int:
    with _writes_lock:
        return _writes


# ----------------------------------------------------------------------------------------------------
# The file


@dataclass
class RestoreReport:
    """What a restore did; `complete` is False when part of the saved state had nowhere to go."""

    found: bool = False  # a state file was there and readable
    saved_at: str | None = None
    items: dict[str, int] = field(default_factory=dict)  # table logical id -> items restored
    objects: dict[str, int] = field(default_factory=dict)  # bucket logical id -> objects restored
    not_restored: list[str] = field(default_factory=list)  # saved, but not in the template (or refused)
    new: list[str] = field(default_factory=list)  # in the template, not in the saved state
    kept_copy: Path | None = None  # where the whole saved file was copied when not all of it fit

    @property
    def restored(self) -> int:
        return sum(self.items.values()) + sum(self.objects.values())

    @property
    def complete(self) -> bool:
        return not self.not_restored


class StateDir:
    """`state.json` in a directory of its own, written atomically; bad or replaced files go to aside/."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / STATE_FILE
        self._lock_handle: IO[str] | None = None

    def lock(self) -> None:
        """Claim the directory for this process, so two stacks never overwrite each other's state."""
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock, as before
            return
        handle = (self.directory / LOCK_FILE).open("w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.close()
            raise StateError(
                f"another `parley local` keeps its data in {self.directory}; stop it, or start this one "
                "with --state-dir DIR or --no-persist"
            ) from exc
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_handle = handle

    def unlock(self) -> None:
        if self._lock_handle is not None:
            self._lock_handle.close()  # closing releases the flock
            self._lock_handle = None

    def read(self) -> dict[str, Any] | None:
        """The saved state, or None when there is none. An unreadable file is moved aside (logged)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.error("local state %s can't be read (%s): starting empty", self.path, exc)
            return None
        try:
            state = json.loads(raw)
            _check(state)
        except (ValueError, TypeError) as exc:
            moved = self.move_aside("unreadable")
            log.error(
                "local state %s is unreadable (%s): moved it to %s and starting empty",
                self.path,
                exc,
                moved,
            )
            return None
        return dict(state)

    def write(self, state: Mapping[str, Any]) -> None:
        """Temp file, fsync, rename: a reader (or a crash) sees the old file or the new one, whole."""
        self.directory.mkdir(parents=True, exist_ok=True)
        data = json.dumps(state, separators=(",", ":"), sort_keys=True).encode()
        temp = self.directory / f".{STATE_FILE}.{os.getpid()}.tmp"
        try:
            with temp.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        with contextlib.suppress(OSError):  # the rename itself, durable (POSIX)
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def move_aside(self, reason: str) -> Path | None:
        """Move `state.json` to aside/<reason>-<UTC time>.json; None when there was none."""
        if not self.path.exists():
            return None
        target = self._aside_path(reason)
        os.replace(self.path, target)
        return target

    def copy_aside(self, reason: str) -> Path | None:
        if not self.path.exists():
            return None
        target = self._aside_path(reason)
        shutil.copy2(self.path, target)
        return target

    def _aside_path(self, reason: str) -> Path:
        aside = self.directory / ASIDE_DIR
        aside.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = aside / f"{reason}-{stamp}.json"
        n = 1
        while target.exists():
            n += 1
            target = aside / f"{reason}-{stamp}-{n}.json"
        return target


def _check(state: Any) -> None:
    """Raise ValueError unless `state` is a state file this code can restore."""
    if not isinstance(state, dict):
        raise ValueError("not a JSON object")
    version = state.get("format")
    if version != FORMAT:
        raise ValueError(f"format {version!r}, this Parley reads format {FORMAT}")
    tables, buckets = state.get("tables"), state.get("buckets", {})
    if not isinstance(tables, dict) or not isinstance(buckets, dict):
        raise ValueError("no tables")
    for logical_id, table in tables.items():
        if not isinstance(table, dict) or not isinstance(table.get("items"), list):
            raise ValueError(f"table {logical_id} has no item list")
    for logical_id, bucket in buckets.items():
        if not isinstance(bucket, dict) or not isinstance(bucket.get("objects"), list):
            raise ValueError(f"bucket {logical_id} has no object list")


# ----------------------------------------------------------------------------------------------------
# DynamoDB items <-> JSON (binary values as base64 strings under their B/BS tags)


def _encode(value: Any) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for tag, inner in value.items():
            if tag == "B":
                out[tag] = base64.b64encode(inner).decode()
            elif tag == "BS":
                out[tag] = [base64.b64encode(b).decode() for b in inner]
            else:
                out[tag] = _encode(inner)
        return out
    if isinstance(value, list):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for tag, inner in value.items():
            if tag == "B":
                out[tag] = base64.b64decode(inner)
            elif tag == "BS":
                out[tag] = [base64.b64decode(b) for b in inner]
            else:
                out[tag] = _decode(inner)
        return out
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


# ----------------------------------------------------------------------------------------------------
# Saving and restoring through the AWS APIs


class Snapshotter:
    """Reads the tables and buckets into a state, and writes a state back into them."""

    def __init__(
        self, dynamodb: Any, s3: Any, tables: Mapping[str, str], buckets: Mapping[str, str], stack: str = ""
    ) -> None:
        self.dynamodb = dynamodb
        self.s3 = s3
        self.tables = dict(tables)  # logical id -> physical name
        self.buckets = dict(buckets)
        self.stack = stack
        self._objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (bucket, key, etag) -> saved

    def collect(self) -> dict[str, Any]:
        """Everything, as one JSON-able dict (raises if a table or bucket can't be read)."""
        tables = {}
        for logical_id, name in sorted(self.tables.items()):
            items: list[Any] = []
            for page in self.dynamodb.get_paginator("scan").paginate(TableName=name, ConsistentRead=True):
                items.extend(_encode(item) for item in page.get("Items", []))
            tables[logical_id] = {"name": name, "items": items}
        buckets = {}
        seen: set[tuple[str, str, str]] = set()
        for logical_id, name in sorted(self.buckets.items()):
            objects = []
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=name):
                for entry in page.get("Contents", []):
                    key = (name, entry["Key"], str(entry.get("ETag", "")))
                    seen.add(key)
                    if key not in self._objects:  # unchanged objects are not downloaded again
                        got = self.s3.get_object(Bucket=name, Key=entry["Key"])
                        self._objects[key] = {
                            "key": entry["Key"],
                            "content_type": got.get("ContentType"),
                            "metadata": got.get("Metadata") or {},
                            "body": base64.b64encode(got["Body"].read()).decode(),
                        }
                    objects.append(self._objects[key])
            buckets[logical_id] = {"name": name, "objects": objects}
        for gone in set(self._objects) - seen:
            del self._objects[gone]
        return {
            "format": FORMAT,
            "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "stack": self.stack,
            "tables": tables,
            "buckets": buckets,
        }

    def restore(self, state: Mapping[str, Any]) -> RestoreReport:
        """Write a saved state into the (empty, just provisioned) tables and buckets; what the template
        no longer has, or what a table refuses (a changed key), is reported, never raised."""
        report = RestoreReport(found=True, saved_at=state.get("saved_at"))
        saved_tables: dict[str, Any] = state.get("tables", {})
        saved_buckets: dict[str, Any] = state.get("buckets", {})
        for logical_id, saved in sorted(saved_tables.items()):
            name = self.tables.get(logical_id)
            if name is None:
                report.not_restored.append(f"table {logical_id} ({len(saved['items'])} items)")
                continue
            try:
                report.items[logical_id] = self._put_items(name, saved["items"])
            except Exception as exc:  # e.g. the key schema changed: the item no longer fits the table
                log.warning("local state: table %s not restored: %s", logical_id, exc)
                report.not_restored.append(f"table {logical_id} ({exc.__class__.__name__})")
        for logical_id, saved in sorted(saved_buckets.items()):
            name = self.buckets.get(logical_id)
            if name is None:
                report.not_restored.append(f"bucket {logical_id} ({len(saved['objects'])} objects)")
                continue
            try:
                report.objects[logical_id] = self._put_objects(name, saved["objects"])
            except Exception as exc:
                log.warning("local state: bucket %s not (wholly) restored: %s", logical_id, exc)
                report.not_restored.append(f"bucket {logical_id} ({exc.__class__.__name__})")
        known = set(saved_tables) | set(saved_buckets)
        report.new = sorted((set(self.tables) | set(self.buckets)) - known)
        return report

    def _put_objects(self, bucket: str, objects: list[Any]) -> int:
        for obj in objects:
            kwargs: dict[str, Any] = {
                "Bucket": bucket,
                "Key": obj["key"],
                "Body": base64.b64decode(obj["body"]),
                "Metadata": obj.get("metadata") or {},
            }
            if obj.get("content_type"):
                kwargs["ContentType"] = obj["content_type"]
            self.s3.put_object(**kwargs)
        return len(objects)

    def _put_items(self, table: str, items: list[Any]) -> int:
        for start in range(0, len(items), BATCH):
            requests: list[Any] = [{"PutRequest": {"Item": _decode(i)}} for i in items[start : start + BATCH]]
            pause = 0.05
            for attempt in range(WRITE_ATTEMPTS):
                left = self.dynamodb.batch_write_item(RequestItems={table: requests})
                requests = left.get("UnprocessedItems", {}).get(table, [])
                if not requests:
                    break
                if attempt == WRITE_ATTEMPTS - 1:
                    raise RuntimeError(f"{len(requests)} items stayed unprocessed in {table}")
                time.sleep(pause)
                pause *= 2
        return len(items)


# ----------------------------------------------------------------------------------------------------
# The runtime's side: restore once, save on change every `interval` seconds and when stopping


class Persistence:
    """Owns the state directory for one running stack."""

    def __init__(self, state_dir: StateDir, snapshotter: Snapshotter, *, interval: float = 30.0) -> None:
        self.state = state_dir
        self.snapshotter = snapshotter
        self.interval = interval
        self.last_saved_at: str | None = None
        self.saves = 0
        self._armed = False  # only after a restore: a stack that failed to start saves nothing
        self._baseline = -1  # the write count the last save (or the restore) covered
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def restore(self, *, fresh: bool = False) -> RestoreReport:
        if fresh:
            moved = self.state.move_aside("before-fresh")
            if moved is not None:
                log.info("--fresh: moved the saved local state to %s", moved)
        saved = self.state.read()
        if saved is None:
            report = RestoreReport()
        else:
            report = self.snapshotter.restore(saved)
            if not report.complete:
                report.kept_copy = self.state.copy_aside("not-restored")
        _log_report(report, self.state.path)
        self._armed = True
        self._baseline = writes_seen()
        return report

    def save(self, *, force: bool = False) -> bool:
        """Save if anything was written since the last save (or always, with force); True if saved.
        A state that can't be read whole is not written (the last good one stays)."""
        if not self._armed:
            return False
        with self._lock:
            seen = writes_seen()
            if not force and seen == self._baseline:
                return False
            began = time.monotonic()
            state = self.snapshotter.collect()
            self.state.write(state)
            self._baseline = seen
            self.last_saved_at = str(state["saved_at"])
            self.saves += 1
        items = sum(len(t["items"]) for t in state["tables"].values())
        log.debug(
            "local state saved: %d items in %.0f ms to %s",
            items,
            (time.monotonic() - began) * 1000,
            self.state.path,
        )
        return True

    def start(self, stop: threading.Event) -> None:
        """Save every `interval` seconds when something changed, until `stop` is set."""

        def run() -> None:
            while not stop.wait(self.interval):
                try:
                    self.save()
                except Exception as exc:  # e.g. mid-reset (a table briefly gone), a full disk
                    log.warning("local state not saved this time (the last save stays): %s", exc)

        self._thread = threading.Thread(target=run, name="local-state-saver", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """The last save (clean shutdown), then release the directory."""
        try:
            if self._thread is not None:
                self._thread.join(timeout=self.interval + 5)
            if self._armed:
                self.save(force=True)
                log.info("local state saved to %s", self.state.path)
        except Exception as exc:
            log.error("local state NOT saved on shutdown (the last save stays): %s", exc)
        finally:
            self._armed = False
            self.state.unlock()

    def info(self) -> dict[str, Any]:
        return {
            "state_dir": str(self.state.directory),
            "last_saved_at": self.last_saved_at,
            "interval_seconds": self.interval,
        }


def _log_report(report: RestoreReport, path: Path) -> None:
    if not report.found:
        log.info("local state: nothing saved yet in %s (starting empty)", path.parent)
        return
    log.info(
        "local state restored from %s (saved %s): %d items in %d tables, %d media objects",
        path,
        report.saved_at or "?",
        sum(report.items.values()),
        len(report.items),
        sum(report.objects.values()),
    )
    if report.not_restored:
        log.warning(
            "local state: not restored (the template changed since it was saved): %s; the saved file "
            "is kept as %s",
            ", ".join(report.not_restored),
            report.kept_copy,
        )
    if report.new:
        log.info("local state: new since the last save, starting empty: %s", ", ".join(report.new))
