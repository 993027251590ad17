"""Digest cost against table size: a run's DynamoDB units follow the day's active conversations, not
how many conversations the tables hold.

Each scenario gets fresh moto tables, seeded through the real repositories and services (so the
bench follows the storage layout when it changes), then one full run of the day is metered with
bench/dynamo_units.py, the CRM a counting fake:

- A: 1,000 conversations, 100 active on the day;
- B: 10,000 conversations, 100 active (B/A within 0.90 and 1.10, reads and writes);
- C: 1,000 conversations, all 1,000 active (C/A at most 11). The same table size as A, so C/A is
  the active count alone (and on moto, whose index queries sort the whole table, a C of 10,000 takes
  minutes).

Every conversation has a text on an earlier day, half of the idle ones a record and their day's
digest entry. Each active one gets two or three texts on the day, both directions; its inbound
texts go through the inbound processor, so routing links records, creates leads, and holds as
conflicts the numbers two equal records share. The CRM must get exactly one upsert per active
conversation that isn't a conflict, or the bench fails.

Run alone: `.venv/bin/python -m bench.digest_scale` (add `A`, `B` or `C` for those scenarios only,
without the ratios).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from bench.dynamo_units import CallCounter, Charges, meter_for

if TYPE_CHECKING:
    from parley.crm.webhook import CrmUpsertResult
    from parley.wiring import Container

DAY = date(2026, 11, 27)
OUR_NUMBER = "+15005550006"
CRM_NAME = "bench-digest"
B_OVER_A = (0.90, 1.10)
C_OVER_A = 11.0


@dataclass(frozen=True)
class Scenario:
    label: str
    conversations: int
    active: int

    @property
    def title(self) -> str:
        return f"{self.label}: {self.conversations:,} conversations, {self.active:,} active"


SCENARIOS = (Scenario("A", 1_000, 100), Scenario("B", 10_000, 100), Scenario("C", 1_000, 1_000))


@dataclass
class Result:
    scenario: Scenario
    charges: Charges
    calls: Counter[str]
    upserts: int
    seed_seconds: float
    run_seconds: float

    @property
    def dynamodb_calls(self) -> int:
        return sum(n for name, n in self.calls.items() if name.startswith("dynamodb:"))


def customer(i: int) -> str:
    return f"+1415{2_000_000 + i:07d}"


def kind_of(i: int) -> str:
    """The same mix in every scenario, so A and B's active conversations are the same ones."""
    if i % 20 == 3:
        return "conflict"  # two equal contacts share the number: held for a person
    if i % 20 == 7:
        return "shared"  # a contact and a lead share it: the contact wins on type
    if i % 5 == 1:
        return "lead"  # no record: the first text creates a lead
    if i % 5 == 4:
        return "two-numbers"  # the record also has a number with no conversation today
    return "contact"


class CountingCrm:
    """Takes every upsert and counts it: the evidence that the run did the work it was metered for."""

    def __init__(self) -> None:
        self.upserts: Counter[str] = Counter()

    def upsert(self, external_id: str, payload: dict[str, Any]) -> CrmUpsertResult:
        from parley.crm.webhook import CrmUpsertResult

        self.upserts[external_id] += 1
        n = self.upserts[external_id]
        return CrmUpsertResult(crm_id=f"crm-{external_id}", created=n == 1, version=n)


class Batched:
    """Answers the real repositories' writes for new items (`CallCounter.intercept`) and sends them
    as BatchWriteItem, 25 a call: ten thousand conditional puts and transactions one by one take
    minutes on moto. Reads answer "no item", which is true of everything seeded this way."""

    def __init__(self) -> None:
        self.pending: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)

    def __call__(self, operation: str, request: dict[str, Any]) -> dict[str, Any] | None:
        if operation == "GetItem":
            return {}
        if operation == "PutItem":
            self.pending[request["TableName"]].append(request["Item"])
            return {}
        if operation == "TransactWriteItems":
            for entry in request["TransactItems"]:
                ((action, body),) = entry.items()
                if action != "Put":
                    raise AssertionError(f"a batch can't hold a transaction's {action}")
                self.pending[body["TableName"]].append(body["Item"])
            return {}
        raise AssertionError(f"seeding in batches met {operation}")

    def flush(self, client: Any) -> int:
        written = 0
        for table, items in self.pending.items():
            for start in range(0, len(items), 25):
                chunk = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
                unprocessed = client.batch_write_item(RequestItems={table: chunk}).get("UnprocessedItems")
                assert not unprocessed, f"moto left items unwritten in {table}"
                written += len(chunk)
        self.pending.clear()
        return written


@contextmanager
def batched(counter: CallCounter, client: Any) -> Iterator[Batched]:
    batch = Batched()
    counter.intercept = batch
    try:
        yield batch
    finally:
        counter.intercept = None
    batch.flush(client)


@contextmanager
def quicker_moto() -> Iterator[None]:
    """Two moto costs DynamoDB doesn't have, cut while a scenario runs (units are computed from the
    requests and answers, so unchanged):

    - every transaction deep-copies each table it touches, for a rollback: O(table) per call. The
      seeding checks every write succeeded, so no rollback is ever needed;
    - every index query sorts the whole table, each comparison casting both keys through a chain of
      type checks: a string (every key in Parley's tables) is now its own value at once, and the
      table is sorted by those values (the same order) rather than by comparing DynamoTypes.
    """
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    cast = DynamoType.__dict__["cast_value"]

    def cast_value(self: DynamoType) -> Any:
        return self.value if self.type == "S" else cast.fget(self)

    def all_items(self: Table) -> list[Any]:
        items = [i for h in self.items.values() for i in (h.values() if self.range_key_attr else [h])]
        return sorted(
            items, key=lambda i: (i.hash_key.cast_value, i.range_key.cast_value if i.range_key else "")
        )

    sort = Table.all_items
    DynamoType.cast_value = property(cast_value)  # type: ignore[method-assign, assignment]
    Table.all_items = all_items  # type: ignore[method-assign]
    Table.__deepcopy__ = lambda self, memo: self  # type: ignore[attr-defined]
    try:
        yield
    finally:
        del Table.__deepcopy__  # type: ignore[attr-defined]
        Table.all_items = sort  # type: ignore[method-assign]
        DynamoType.cast_value = cast  # type: ignore[method-assign]


def _history_message(i: int) -> tuple[Any, Any]:
    """Our text to customer i on an earlier day, and the conversation change it makes."""
    from parley.domain.models import Direction, Message, MessageStatus
    from parley.ports import ConversationDelta

    at = datetime(DAY.year, DAY.month, DAY.day, 15, tzinfo=UTC) - timedelta(days=1 + i % 30, seconds=i)
    body = "Your order has shipped; reply here with any questions."
    message = Message(
        message_id=f"hist-{i:06d}",
        direction=Direction.OUTBOUND,
        customer_number=customer(i),
        our_number=OUR_NUMBER,
        body=body,
        status=MessageStatus.DELIVERED,
        carrier="twilio",
        carrier_message_id=f"SMh{i:031d}",
        created_at=at,
        updated_at=at,
        segments=1,
    )
    delta = ConversationDelta(
        customer_number=customer(i),
        team="default",
        our_number=OUR_NUMBER,
        at=at,
        message_id=message.message_id,
        preview=body,
        direction=Direction.OUTBOUND.value,
        unread_increment=0,
    )
    return message, delta


def _records(i: int, active: bool) -> list[Any]:
    from parley.domain.models import ContactRecord

    number = customer(i)
    updated = datetime(2026, 1, 5, tzinfo=UTC)
    kind = kind_of(i) if active else ("contact" if i % 2 == 0 else "none")
    if kind == "conflict":
        return [
            ContactRecord(contact_id=f"c-{i}-{s}", name=f"Kim {i}{s}", phone=number, updated_at=updated)
            for s in "ab"
        ]
    if kind == "shared":
        return [
            ContactRecord(contact_id=f"c-{i}", name=f"Ana {i}", phone=number, updated_at=updated),
            ContactRecord(
                contact_id=f"l-{i}", name=f"Ana {i}", phone=number, record_type="lead", updated_at=updated
            ),
        ]
    if kind == "two-numbers":
        office = f"+1628{2_000_000 + i:07d}"
        return [
            ContactRecord(contact_id=f"c-{i}", name=f"Bo {i}", phones=[number, office], updated_at=updated)
        ]
    if kind == "contact":
        return [ContactRecord(contact_id=f"c-{i}", name=f"Sam {i}", phone=number, updated_at=updated)]
    return []


def seed(app: Container, scenario: Scenario, counter: CallCounter, client: Any) -> None:
    """Every conversation's earlier text and records in batches; the active ones' day in full."""
    from parley.adapters.dynamo import DynamoDigests
    from parley.domain.models import OurNumber
    from parley.ports import DigestEntry
    from parley.services.digest import digest_key

    app.numbers.save(OurNumber(number=OUR_NUMBER, carrier="twilio", is_default=True))
    # One conversation is started by the real path; the others are its item with their own keys.
    first, delta = _history_message(0)
    assert app.messages.insert_with_conversation(first, delta)
    table = app.settings.conversations_table
    (key,) = client.describe_table(TableName=table)["Table"]["KeySchema"]
    template = client.get_item(TableName=table, Key={key["AttributeName"]: {"S": customer(0)}})["Item"]
    digests = DynamoDigests()

    def earlier(conversations: range, batch: Batched) -> None:
        for i in conversations:
            active = i < scenario.active
            for record in _records(i, active):
                assert app.contacts.create(record)
            if i == 0:
                continue
            message, _ = _history_message(i)
            assert app.messages.insert(message)
            swap = {
                customer(0): customer(i),
                first.message_id: message.message_id,
                _iso(first.created_at): _iso(message.created_at),
            }
            batch.pending[table].append(_rekeyed(template, swap))
            if not active and i % 2 == 0:
                day = message.created_at.date().isoformat()
                digests.save(
                    DigestEntry(
                        digest_key=digest_key(f"c-{i}", day),
                        crm_id=f"crm-{i}",
                        content_hash="0" * 64,
                        version=1,
                        posted_at=message.created_at + timedelta(days=1),
                        message_count=1,
                    )
                )

    with batched(counter, client) as batch:
        earlier(range(scenario.active), batch)
    _active_days(app, scenario)
    with batched(counter, client) as batch:  # last: moto's index queries sort the whole table
        earlier(range(scenario.active, scenario.conversations), batch)


def _active_days(app: Container, scenario: Scenario) -> None:
    """Two or three texts on the day per active conversation, inbound ones through the processor."""
    from parley.domain.models import Direction, InboundMessage, Message, MessageStatus
    from parley.ports import ConversationDelta

    start = datetime(DAY.year, DAY.month, DAY.day, 9, tzinfo=UTC)
    for i in range(scenario.active):
        number = customer(i)
        texts = [(start + timedelta(seconds=i), "Is my order ready?")]
        if i % 2 == 0:
            texts.append((start + timedelta(hours=2, seconds=i), "Thanks, I'll come by after work."))
        for n, (at, body) in enumerate(texts):
            event = InboundMessage(
                carrier="twilio",
                carrier_message_id=f"SMd{i:06d}{n:025d}",
                from_number=number,
                to_number=OUR_NUMBER,
                body=body,
                segments=1,
                received_at=at,
            )
            assert app.processor.store_inbound(event) is not None
        reply_at = start + timedelta(minutes=30, seconds=i)
        reply = Message(
            message_id=f"reply-{i:06d}",
            direction=Direction.OUTBOUND,
            customer_number=number,
            our_number=OUR_NUMBER,
            body="Yes, it's ready for pickup until 6pm.",
            status=MessageStatus.DELIVERED,
            carrier="twilio",
            carrier_message_id=f"SMr{i:031d}",
            created_at=reply_at,
            updated_at=reply_at,
            segments=1,
        )
        change = ConversationDelta(
            customer_number=number,
            team="default",
            our_number=OUR_NUMBER,
            at=reply_at,
            message_id=reply.message_id,
            preview=reply.body,
            direction=Direction.OUTBOUND.value,
            unread_increment=0,
        )
        assert app.messages.insert_with_conversation(reply, change)


def _iso(at: datetime) -> str:
    from parley.adapters.dynamo import iso

    return iso(at)


def _rekeyed(value: Any, swap: dict[str, str]) -> Any:
    """A DynamoDB JSON value with every string in `swap` replaced."""
    if isinstance(value, dict):
        return {k: _rekeyed(v, swap) for k, v in value.items()}
    if isinstance(value, list):
        return [_rekeyed(v, swap) for v in value]
    if isinstance(value, str):
        return swap.get(value, value)
    return value


def expected_conflicts(active: int) -> int:
    return sum(1 for i in range(active) if kind_of(i) == "conflict")


def run_scenario(scenario: Scenario, counter: CallCounter) -> Result:
    import boto3
    from moto import mock_aws

    from parley.adapters.dynamo import create_all_tables
    from parley.config import Settings
    from parley.crm.registry import register
    from parley.wiring import Container

    crm = CountingCrm()
    register(CRM_NAME, lambda _settings: crm)
    with mock_aws(), quicker_moto():
        boto3.client("events", region_name="us-east-1").create_event_bus(Name="parley-bench")
        app = Container(Settings(crm=CRM_NAME, event_bus_name="parley-bench"))
        app.settings  # noqa: B018 - binds the models to this stage's tables
        create_all_tables()
        client = boto3.client("dynamodb", region_name="us-east-1")
        started = time.perf_counter()
        seed(app, scenario, counter, client)
        seeded = time.perf_counter()
        digest = app.digest  # built as on a cold start, before the run is metered
        counter.meter = counter.quietly(lambda: meter_for(client))
        counter.take()
        ran = time.perf_counter()
        try:
            report = digest.run(DAY)
        finally:
            meter, counter.meter = counter.meter, None
        done = time.perf_counter()
        calls = counter.take()
    conflicts = expected_conflicts(scenario.active)
    wanted = scenario.active - conflicts
    problems = []
    if report.conversations != scenario.active:
        problems.append(f"{report.conversations} conversations in the report, not {scenario.active}")
    if report.conflicts != conflicts:
        problems.append(f"{report.conflicts} conflicts held, not {conflicts}")
    if report.failed:
        problems.append(f"{len(report.failed)} failed: {report.failed[:3]}")
    if len(crm.upserts) != wanted or any(n != 1 for n in crm.upserts.values()):
        problems.append(
            f"{sum(crm.upserts.values())} upserts of {len(crm.upserts)} records, not {wanted} once each"
        )
    if problems:
        raise SystemExit(f"digest scale bench, scenario {scenario.label}: " + "; ".join(problems))
    assert meter is not None
    return Result(scenario, meter.take(), calls, sum(crm.upserts.values()), seeded - started, done - ran)


def ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


def report(results: list[Result]) -> bool:
    a, b, c = results
    print("\nDigest cost against table size: one full run of the day, metered (bench/digest_scale.py)\n")
    columns = ("reads", 7), ("writes", 7), ("ddb calls", 9), ("upserts", 7), ("seed s", 7), ("run s", 6)
    print(f"{'scenario':<42} " + " ".join(f"{name:>{width}}" for name, width in columns))
    for r in results:
        print(
            f"{r.scenario.title:<42} {r.charges.read_units:>7.1f} {r.charges.write_units:>7.1f}"
            f" {r.dynamodb_calls:>9} {r.upserts:>7} {r.seed_seconds:>7.1f} {r.run_seconds:>6.1f}"
        )
    for kind in ("read", "write"):
        print(
            f"\n{kind + ' units by table or index':<42} "
            + " ".join(f"{r.scenario.label:>7}" for r in results)
        )
        units = [r.charges.reads if kind == "read" else r.charges.writes for r in results]
        for where in sorted({w for u in units for w in u}):
            print(f"{where:<42} " + " ".join(f"{u.get(where, 0.0):>7.1f}" for u in units))
    checks: list[tuple[str, float, Callable[[float], bool], str]] = [
        ("B/A read units", ratio(b.charges.read_units, a.charges.read_units), _within, "0.90 to 1.10"),
        ("B/A write units", ratio(b.charges.write_units, a.charges.write_units), _within, "0.90 to 1.10"),
        ("C/A read units", ratio(c.charges.read_units, a.charges.read_units), _at_most, "at most 11"),
        ("C/A write units", ratio(c.charges.write_units, a.charges.write_units), _at_most, "at most 11"),
    ]
    print(f"\n{'ratio':<42} {'value':>7}  bound")
    ok = True
    for label, value, holds, bound in checks:
        ok = ok and holds(value)
        print(f"{label:<42} {value:>7.3f}  {bound}")
    print(f"{'holds':<42} {'yes' if ok else 'NO':>7}")
    return ok


def _within(value: float) -> bool:
    return B_OVER_A[0] <= value <= B_OVER_A[1]


def _at_most(value: float) -> bool:
    return value <= C_OVER_A


def main() -> int:
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        POWERTOOLS_LOG_LEVEL="ERROR",
        POWERTOOLS_TRACE_DISABLED="true",
    )
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        os.environ.pop(name, None)
    logging.getLogger("parley").setLevel(logging.WARNING)
    counter = CallCounter()
    counter.install()
    only = set(sys.argv[1:])
    results = [run_scenario(s, counter) for s in SCENARIOS if not only or s.label in only]
    if len(results) != len(SCENARIOS):
        for r in results:
            print(
                f"{r.scenario.title}: reads {r.charges.read_units:.1f}, writes {r.charges.write_units:.1f},"
                f" calls {r.dynamodb_calls}, upserts {r.upserts}, seeded in {r.seed_seconds:.1f} s,"
                f" ran in {r.run_seconds:.1f} s"
            )
        return 0
    return 0 if report(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
