"""The bench's DynamoDB capacity accounting: the figures `make bench` prints rest on these rules."""

from __future__ import annotations

from typing import Any

import pytest

from bench.dynamo_units import CapacityMeter, IndexShape, TableShape, index_writes, item_size

TABLE = TableShape(
    name="messages",
    keys=("id",),
    indexes=(
        IndexShape("by-view", frozenset({"view", "at"}), "KEYS_ONLY"),
        IndexShape("by-all", frozenset({"who"}), "ALL"),
        IndexShape("by-include", frozenset({"who"}), "INCLUDE", frozenset({"status"})),
    ),
)
BY_VIEW, BY_ALL, BY_INCLUDE = TABLE.indexes


def item(**values: str) -> dict[str, Any]:
    return {"id": {"S": "m1"}, **{k: {"S": v} for k, v in values.items()}}


def test_item_size_counts_names_and_values() -> None:
    assert item_size({"ab": {"S": "xyz"}}) == 5
    assert item_size({"n": {"N": "12345"}}) == 1 + 3
    assert item_size({"b": {"BOOL": True}}) == 2
    assert item_size({"l": {"L": [{"S": "ab"}]}}) == 1 + 3 + 1 + 2
    assert item_size({"é": {"S": "é"}}) == 4  # UTF-8 bytes, not characters
    assert item_size(None) == 0


@pytest.mark.parametrize(
    ("old", "new", "units"),
    [
        (None, item(view="pending", at="t"), 1),  # enters the index
        (item(view="pending", at="t"), item(at="t"), 1),  # leaves it
        (item(at="t"), item(at="t", status="sent"), 0),  # never in it
        (item(view="pending", at="t", status="q"), item(view="pending", at="t", status="s"), 0),
        (item(view="pending", at="t"), item(view="failed", at="t"), 2),  # key change: delete + put
    ],
)
def test_keys_only_index_writes(old: dict[str, Any] | None, new: dict[str, Any], units: int) -> None:
    assert index_writes(TABLE, BY_VIEW, old, new) == units


def test_an_all_projection_is_rewritten_by_any_change() -> None:
    old, new = item(who="a", status="q"), item(who="a", status="s")

    assert index_writes(TABLE, BY_ALL, old, new) == 1
    assert index_writes(TABLE, BY_ALL, old, old) == 0


def test_an_include_projection_is_rewritten_only_when_an_included_attribute_changes() -> None:
    base = item(who="a", status="q", body="x")

    assert index_writes(TABLE, BY_INCLUDE, base, {**base, "body": {"S": "y"}}) == 0
    assert index_writes(TABLE, BY_INCLUDE, base, {**base, "status": {"S": "s"}}) == 1


def test_a_big_item_costs_a_unit_per_started_kilobyte() -> None:
    big = item(who="a", body="x" * 1500)

    assert index_writes(TABLE, BY_ALL, None, big) == 2
    assert index_writes(TABLE, BY_VIEW, None, {**big, "view": {"S": "v"}, "at": {"S": "t"}}) == 1


def test_the_meter_charges_a_transaction_double_and_each_index_it_touches() -> None:
    store: dict[str, dict[str, Any]] = {}
    meter = CapacityMeter({"messages": TABLE}, lambda table, key: store.get(key["id"]["S"]))
    new = item(view="pending", at="t", who="a")
    request = {"TransactItems": [{"Put": {"TableName": "messages", "Item": new}}]}

    meter.before("TransactWriteItems", request)
    store["m1"] = new
    meter.after("TransactWriteItems", request, {})

    charges = meter.take()
    assert charges.writes == {
        "messages": 2,
        "messages/by-view": 1,
        "messages/by-all": 1,
        "messages/by-include": 1,
    }
    assert meter.take().write_units == 0


def test_the_meter_charges_reads_by_size_and_consistency() -> None:
    meter = CapacityMeter({"messages": TABLE}, lambda table, key: None)
    found = {"Item": item(body="x" * 5000)}

    meter.after("GetItem", {"TableName": "messages", "ConsistentRead": True}, found)
    meter.after("GetItem", {"TableName": "messages"}, {"Item": item()})
    meter.after("Query", {"TableName": "messages", "IndexName": "by-view"}, {"Items": [item()] * 3})

    assert meter.take().reads == {"messages": 2.5, "messages/by-view": 0.5}
