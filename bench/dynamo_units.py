"""DynamoDB capacity units as DynamoDB bills them, measured from the calls the code really makes.

A botocore hook sees every DynamoDB request. For each write it reads the item before and after
(outside the count), so it can charge what DynamoDB charges:

- the table: one unit per started KB of the larger of the old and new item; a transactional
  write costs twice that, and a write whose condition fails still costs its units;
- each global index: nothing when the item is not in the index before or after, or when it is in
  both with the same key and (for a keys-only or include projection) no projected attribute
  changed; one write when the item enters or leaves the index or a projected attribute changes;
  two (a delete and a put) when the index key changes.

Reads: a strongly consistent read costs one unit per started 4 KB, an eventually consistent one
half that; a Query costs by the total size of what it returned.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

Item = dict[str, Any]  # DynamoDB JSON: {"name": {"S": "..."}}


@dataclass(frozen=True)
class IndexShape:
    name: str
    keys: frozenset[str]
    projection: str  # ALL, KEYS_ONLY or INCLUDE
    included: frozenset[str] = frozenset()


@dataclass(frozen=True)
class TableShape:
    name: str
    keys: tuple[str, ...]
    indexes: tuple[IndexShape, ...] = ()

    @classmethod
    def from_description(cls, table: Mapping[str, Any]) -> TableShape:
        return cls(
            name=table["TableName"],
            keys=tuple(k["AttributeName"] for k in table["KeySchema"]),
            indexes=tuple(
                IndexShape(
                    name=index["IndexName"],
                    keys=frozenset(k["AttributeName"] for k in index["KeySchema"]),
                    projection=index["Projection"]["ProjectionType"],
                    included=frozenset(index["Projection"].get("NonKeyAttributes", [])),
                )
                for index in table.get("GlobalSecondaryIndexes", [])
            ),
        )


def _value_size(value: Mapping[str, Any]) -> int:
    ((kind, data),) = value.items()
    if kind == "S":
        return len(str(data).encode())
    if kind == "N":
        return len(str(data).lstrip("-").replace(".", "")) // 2 + 1
    if kind == "B":
        return math.ceil(len(str(data)) * 3 / 4)  # base64 in the request
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(_value_size({kind[0]: v}) for v in data)
    if kind == "L":
        return 3 + sum(1 + _value_size(v) for v in data)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_size(v) for k, v in data.items())
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: Mapping[str, Any] | None) -> int:
    """Bytes as DynamoDB counts them: attribute names plus values."""
    if not item:
        return 0
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _kb(size: int) -> int:
    return max(1, math.ceil(size / 1024))


def _projected(item: Item, table: TableShape, index: IndexShape) -> Item:
    if index.projection == "ALL":
        return item
    names = set(table.keys) | index.keys | (index.included if index.projection == "INCLUDE" else set())
    return {k: v for k, v in item.items() if k in names}


def index_writes(table: TableShape, index: IndexShape, old: Item | None, new: Item | None) -> int:
    """Write units one change of one item costs in one global index."""
    was = old is not None and index.keys <= set(old)
    now = new is not None and index.keys <= set(new)
    if not was and not now:
        return 0
    if was and not now:
        return _kb(item_size(_projected(old or {}, table, index)))
    if now and not was:
        return _kb(item_size(_projected(new or {}, table, index)))
    assert old is not None and new is not None
    if any(old[k] != new[k] for k in index.keys):
        return _kb(item_size(_projected(old, table, index))) + _kb(item_size(_projected(new, table, index)))
    if _projected(old, table, index) != _projected(new, table, index):
        return _kb(item_size(_projected(new, table, index)))
    return 0


@dataclass
class Charges:
    """Units charged, by what they were charged for ("table", "table/index")."""

    writes: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    reads: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))

    def add(self, other: Charges) -> None:
        for where, units in other.writes.items():
            self.writes[where] += units
        for where, units in other.reads.items():
            self.reads[where] += units

    @property
    def write_units(self) -> float:
        return float(sum(self.writes.values()))

    @property
    def read_units(self) -> float:
        return float(sum(self.reads.values()))


@dataclass
class _PendingWrite:
    table: TableShape
    key: Item
    old: Item | None
    transactional: bool


class CapacityMeter:
    """Charges every DynamoDB call made through hooked clients.

    `read_item(table, key)` fetches an item without being charged (the caller makes it bypass the
    hooks); it is how the meter sees each written item before and after the write.
    """

    def __init__(
        self, shapes: Mapping[str, TableShape], read_item: Callable[[str, Item], Item | None]
    ) -> None:
        self._shapes = dict(shapes)
        self._read_item = read_item
        self._pending: list[_PendingWrite] = []
        self.charges = Charges()

    def take(self) -> Charges:
        taken, self.charges = self.charges, Charges()
        return taken

    # -- hooks ---------------------------------------------------------------------------------

    def before(self, operation: str, request: Mapping[str, Any]) -> None:
        self._pending = [
            _PendingWrite(shape, key, self._read_item(shape.name, key), transactional)
            for shape, key, transactional in self._written(operation, request)
        ]

    def after(self, operation: str, request: Mapping[str, Any], response: Mapping[str, Any]) -> None:
        for write in self._pending:
            new = self._read_item(write.table.name, write.key)
            base = _kb(max(item_size(write.old), item_size(new)))
            self.charges.writes[write.table.name] += base * (2 if write.transactional else 1)
            for index in write.table.indexes:
                units = index_writes(write.table, index, write.old, new)
                if units:
                    self.charges.writes[f"{write.table.name}/{index.name}"] += units
        self._pending = []
        self._charge_reads(operation, request, response)

    # -- what a request writes and reads ---------------------------------------------------------

    def _key_of(self, shape: TableShape, item_or_key: Mapping[str, Any]) -> Item:
        return {k: item_or_key[k] for k in shape.keys}

    def _written(self, operation: str, request: Mapping[str, Any]) -> Iterator[tuple[TableShape, Item, bool]]:
        if operation in ("PutItem", "UpdateItem", "DeleteItem"):
            shape = self._shapes[request["TableName"]]
            yield shape, self._key_of(shape, request.get("Item") or request["Key"]), False
        elif operation == "TransactWriteItems":
            for entry in request["TransactItems"]:
                ((kind, body),) = entry.items()
                shape = self._shapes[body["TableName"]]
                yield shape, self._key_of(shape, body.get("Item") or body["Key"]), True
        elif operation == "BatchWriteItem":
            for table, requests in request["RequestItems"].items():
                shape = self._shapes[table]
                for entry in requests:
                    body = entry.get("PutRequest", {}).get("Item") or entry["DeleteRequest"]["Key"]
                    yield shape, self._key_of(shape, body), False

    def _charge_reads(self, operation: str, request: Mapping[str, Any], response: Mapping[str, Any]) -> None:
        def units(size: int, consistent: bool) -> float:
            return max(1, math.ceil(size / 4096)) * (1.0 if consistent else 0.5)

        if operation == "GetItem":
            consistent = bool(request.get("ConsistentRead"))
            self.charges.reads[request["TableName"]] += units(item_size(response.get("Item")), consistent)
        elif operation in ("Query", "Scan"):
            where = request["TableName"] + (f"/{request['IndexName']}" if "IndexName" in request else "")
            size = sum(item_size(i) for i in response.get("Items", []))
            self.charges.reads[where] += units(size, bool(request.get("ConsistentRead")))
        elif operation == "BatchGetItem":
            for table, found in response.get("Responses", {}).items():
                consistent = bool(request["RequestItems"][table].get("ConsistentRead"))
                for item in found:
                    self.charges.reads[table] += units(item_size(item), consistent)
        elif operation == "TransactGetItems":
            for entry in response.get("Responses", []):
                self.charges.reads["transact-get"] += 2 * units(item_size(entry.get("Item")), True)


def request_body(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The DynamoDB JSON request from botocore's serialised `params` (the JSON protocol body)."""
    body = (params or {}).get("body") or b"{}"
    return dict(json.loads(body))


class CallCounter:
    """Counts API calls on every botocore client created after `install()` (boto3 and pynamodb).

    With a `meter` attached, DynamoDB calls are also charged in capacity units; the meter's own
    reads run `quietly` and are neither counted nor charged. An `intercept` may answer a DynamoDB
    call itself (a response dict, or None to let it through): a bench's seeding uses it to gather
    the real repositories' writes into batches. An answered call is neither counted nor charged.
    """

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.meter: CapacityMeter | None = None
        self.intercept: Callable[[str, dict[str, Any]], dict[str, Any] | None] | None = None
        self._quiet = False
        self._request: dict[str, Any] = {}

    def install(self) -> None:
        import botocore.session

        original = botocore.session.Session.create_client
        counter = self

        def create_client(session: Any, *args: Any, **kwargs: Any) -> Any:
            client = original(session, *args, **kwargs)
            client.meta.events.register("before-call.*.*", counter._on_call)
            client.meta.events.register("after-call.*.*", counter._after_call)
            return client

        botocore.session.Session.create_client = create_client

    def quietly(self, call: Callable[[], Any]) -> Any:
        self._quiet = True
        try:
            return call()
        finally:
            self._quiet = False

    def _on_call(self, model: Any, params: Any = None, **_: Any) -> tuple[Any, dict[str, Any]] | None:
        if self._quiet:
            return None
        if self.intercept is not None and model.service_model.service_name == "dynamodb":
            answer = self.intercept(model.name, request_body(params))
            if answer is not None:
                from botocore.awsrequest import AWSResponse

                return AWSResponse("", 200, {}, None), answer  # botocore skips the request
        self.calls[f"{model.service_model.service_name}:{model.name}"] += 1
        if model.service_model.service_name == "dynamodb" and self.meter is not None:
            self._request = request_body(params)
            self.quietly(lambda: self.meter.before(model.name, self._request) if self.meter else None)
        return None

    def _after_call(self, model: Any, parsed: Any = None, **_: Any) -> None:
        if self._quiet or model.service_model.service_name != "dynamodb" or self.meter is None:
            return
        request, meter = self._request, self.meter
        self.quietly(lambda: meter.after(model.name, request, parsed or {}))

    def take(self) -> Counter[str]:
        taken, self.calls = self.calls, Counter()
        return taken


def meter_for(dynamodb: Any) -> CapacityMeter:
    """A meter for every table `dynamodb` (a boto3 client) sees, reading items through it; build it
    under `CallCounter.quietly`, which also keeps the meter's reads out of the count."""
    shapes = {
        name: TableShape.from_description(dynamodb.describe_table(TableName=name)["Table"])
        for name in dynamodb.list_tables()["TableNames"]
    }
    return CapacityMeter(
        shapes,
        lambda table, key: dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item"),
    )
