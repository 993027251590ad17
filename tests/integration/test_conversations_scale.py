"""The conversation list, a filtered list and a search read a bounded number of items per page,
whatever the table size: counted on moto over 1,000 and then 10,000 conversations."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pynamodb.connection.base
import pytest

from bench.digest_scale import quicker_moto
from parley.access import Caller
from parley.adapters.dynamo import (
    DynamoContacts,
    DynamoConversations,
    DynamoNumbers,
    DynamoOptOuts,
    DynamoSearch,
    iso,
)
from parley.config import Settings
from parley.ports import ConversationFilter
from parley.services.conversations import ConversationService
from parley.services.records import RecordService

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LIMIT = 50
CALLER = Caller("bea", frozenset({"sales", "support"}))


class ItemsRead:
    """Items DynamoDB reads for the calls made while counting: a Query's or Scan's ScannedCount (what
    it evaluated, kept by the filter or not), a BatchGetItem's items, a GetItem's item."""

    def __init__(self) -> None:
        self.items = 0
        self.calls = 0
        self.on = False

    def add(self, operation: str, answer: dict[str, Any]) -> None:
        if not self.on:
            return
        self.calls += 1
        if operation in ("Query", "Scan"):
            self.items += int(answer.get("ScannedCount", 0))
        elif operation == "BatchGetItem":
            self.items += sum(len(v) for v in answer.get("Responses", {}).values())
        elif operation == "GetItem":
            self.items += 1 if answer.get("Item") else 0

    def measure(self, call: Any) -> tuple[int, int]:
        self.items = self.calls = 0
        self.on = True
        try:
            call()
        finally:
            self.on = False
        return self.items, self.calls


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[ItemsRead]:
    counter = ItemsRead()
    original = pynamodb.connection.base.Connection._make_api_call

    def counted(self: Any, operation_name: str, operation_kwargs: dict[str, Any]) -> Any:
        answer = original(self, operation_name, operation_kwargs)
        counter.add(operation_name, answer)
        return answer

    monkeypatch.setattr(pynamodb.connection.base.Connection, "_make_api_call", counted)
    yield counter


def seed(settings: Settings, start: int, stop: int) -> None:
    """Conversations `start`..`stop` and their search terms, 25 to a BatchWriteItem: a team of 9 in
    10 sales, the rest support; one in 100 owned by "rare"; one in 3 closed."""
    client = boto3.client("dynamodb", region_name=settings.region)
    table = settings.conversations_table
    requests: list[dict[str, Any]] = []
    for i in range(start, stop):
        number = f"+1415{i:07d}"
        team = "support" if i % 10 == 0 else "sales"
        item: dict[str, Any] = {
            "customer_number": {"S": number},
            "team": {"S": team},
            "last_activity_at": {"S": iso(T0 + timedelta(seconds=i))},
            "our_numbers": {"SS": ["+15005550006"]},
            "unread_count": {"N": str(i % 2)},
            "message_count": {"N": "1"},
            "closed": {"BOOL": i % 3 == 0},
            "last_message_preview": {"S": "hello"},
        }
        if i % 100 == 0:
            item["owner"] = {"S": "rare"}
        requests.append({"PutRequest": {"Item": item}})
        for term in ("w#smith", f"w#customer{i}", f"n#{i:07d}"):
            key = f"{term}#{number}"
            requests.append(
                {
                    "PutRequest": {
                        "Item": {
                            "customer_number": {"S": f"s#{team}#{key}"},
                            "term_team": {"S": team},
                            "term_key": {"S": key},
                            "term_name": {"S": f"Customer{i} Smith"},
                        }
                    }
                }
            )
    for at in range(0, len(requests), 25):
        client.batch_write_item(RequestItems={table: requests[at : at + 25]})


def service() -> ConversationService:
    contacts = DynamoContacts()
    conversations = DynamoConversations()
    return ConversationService(
        conversations=conversations,
        browser=conversations,
        search=DynamoSearch(),
        numbers=DynamoNumbers(),
        contacts=contacts,
        linker=conversations,
        records=RecordService(contacts, lambda: T0),
        opt_outs=DynamoOptOuts(),
    )


def test_a_page_reads_the_same_bounded_number_of_items_at_1000_and_10000_conversations(
    aws_settings: Settings, reads: ItemsRead
) -> None:
    inbox = service()
    pages = {
        "list": lambda: inbox.list(CALLER, ConversationFilter(), limit=LIMIT, cursor=None),
        "filtered": lambda: inbox.list(CALLER, ConversationFilter(owner="rare"), limit=LIMIT, cursor=None),
        "search": lambda: inbox.search(CALLER, "smith", limit=LIMIT, cursor=None),
        "search, number": lambda: inbox.search(CALLER, "0000", limit=LIMIT, cursor=None),
    }
    figures: dict[int, dict[str, tuple[int, int]]] = {}
    started = time.monotonic()
    with quicker_moto():
        for size, start in ((1_000, 0), (10_000, 1_000)):
            seed(aws_settings, start, size)
            figures[size] = {name: reads.measure(page) for name, page in pages.items()}
            # the second page too: its cursor holds both teams' positions
            first = inbox.list(CALLER, ConversationFilter(owner="rare"), limit=LIMIT, cursor=None)
            figures[size]["filtered, page 2"] = reads.measure(
                lambda first=first: inbox.list(
                    CALLER, ConversationFilter(owner="rare"), limit=LIMIT, cursor=first.cursor
                )
            )
    print(f"\nitems read, calls per page (limit {LIMIT}, 2 teams), in {time.monotonic() - started:.0f} s")
    for size, row in figures.items():
        print(
            f"  {size:>6} conversations: "
            + ", ".join(f"{k} {v[0]} items/{v[1]} calls" for k, v in row.items())
        )
    assert figures[1_000] == figures[10_000]
    for name, (items, _) in figures[10_000].items():
        # one Query of LIMIT per team, and for a search the page's conversations fetched
        bound = 2 * LIMIT + (LIMIT if name.startswith("search") else 0)
        assert items <= bound, (name, items)
