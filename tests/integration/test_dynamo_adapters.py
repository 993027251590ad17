"""The DynamoDB, SQS and EventBridge adapters against moto: the semantics the fakes promise, for real."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from parley.adapters import aws
from parley.adapters.aws import EventBridgePublisher, SqsQueue
from parley.adapters.dynamo import (
    DigestRunItem,
    DynamoAutoLogSettings,
    DynamoContacts,
    DynamoConversations,
    DynamoDigestRuns,
    DynamoDigests,
    DynamoMessages,
    DynamoNumbers,
    DynamoReceipts,
    DynamoTemplates,
    InvalidCursor,
    MessageItem,
    NumberItem,
    shard_of,
)
from parley.config import Settings
from parley.domain.models import (
    ContactRecord,
    Direction,
    Message,
    MessageStatus,
    OurNumber,
    StatusChange,
    StatusUpdate,
    Template,
)
from parley.ports import ConflictError, ConversationDelta, DigestEntry, RunPage, ShardProgress

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
OURS = "+15005550006"
OURS_2 = "+15005550007"
ANA = "+14155550100"
BO = "+14155550101"


@pytest.fixture(autouse=True)
def fresh_clients() -> Iterator[None]:
    aws.client.cache_clear()  # boto3 clients are cached per process; each test has its own moto account
    yield
    aws.client.cache_clear()


@pytest.fixture
def messages(aws_settings: Settings) -> DynamoMessages:
    return DynamoMessages(aws_settings)


@pytest.fixture
def conversations(aws_settings: Settings) -> DynamoConversations:
    return DynamoConversations()


def msg(
    message_id: str,
    *,
    customer: str = ANA,
    at: datetime = T0,
    direction: Direction = Direction.INBOUND,
    ours: str = OURS,
    sid: str | None = None,
    status: MessageStatus = MessageStatus.RECEIVED,
    team: str = "default",
) -> Message:
    return Message(
        message_id=message_id,
        direction=direction,
        customer_number=customer,
        our_number=ours,
        body=f"body of {message_id}",
        status=status,
        carrier="twilio",
        carrier_message_id=sid,
        created_at=at,
        updated_at=at,
        team=team,
    )


def delta(
    message: Message, *, unread: int = 1, team: str = "default", owner: str | None = None
) -> ConversationDelta:
    return ConversationDelta(
        customer_number=message.customer_number,
        team=team,
        our_number=message.our_number,
        at=message.created_at,
        message_id=message.message_id,
        preview=message.body,
        direction=message.direction.value,
        unread_increment=unread,
        owner=owner,
    )


def insert(messages: DynamoMessages, message: Message, **kwargs: Any) -> bool:
    return messages.insert_with_conversation(message, delta(message, **kwargs))


# -- messages ---------------------------------------------------------------------------------------


def test_insert_stores_the_message_and_starts_the_conversation(
    messages: DynamoMessages, conversations: DynamoConversations
) -> None:
    assert insert(messages, msg("m1"), owner="ana-owner", team="sales") is True

    stored = messages.get("m1")
    assert stored == msg("m1")
    conversation = conversations.get(ANA)
    assert conversation is not None
    assert (conversation.message_count, conversation.unread_count) == (1, 1)
    assert (conversation.team, conversation.owner) == ("sales", "ana-owner")
    assert conversation.our_numbers == [OURS]
    assert conversation.last_message_id == "m1"
    assert conversation.last_activity_at == T0
    assert conversation.last_direction is Direction.INBOUND


def test_a_second_insert_of_the_same_id_returns_false_and_changes_nothing(
    messages: DynamoMessages, conversations: DynamoConversations
) -> None:
    insert(messages, msg("m1"))
    before = conversations.get(ANA)

    again = msg("m1", at=T0 + timedelta(minutes=5), ours=OURS_2)
    assert insert(messages, again) is False

    assert conversations.get(ANA) == before
    stored = messages.get("m1")
    assert stored is not None and stored.created_at == T0


def test_the_same_customer_through_two_numbers_is_one_conversation(
    messages: DynamoMessages, conversations: DynamoConversations
) -> None:
    insert(messages, msg("m1", ours=OURS))
    insert(
        messages, msg("m2", ours=OURS_2, at=T0 + timedelta(minutes=1), direction=Direction.OUTBOUND), unread=0
    )

    conversation = conversations.get(ANA)
    assert conversation is not None
    assert conversation.our_numbers == [OURS, OURS_2]
    assert (conversation.message_count, conversation.unread_count) == (2, 1)
    assert conversation.last_our_number == OURS_2
    assert conversation.last_direction is Direction.OUTBOUND


def test_our_text_to_an_existing_conversation_is_stored_once_and_folded_in(
    messages: DynamoMessages, conversations: DynamoConversations
) -> None:
    insert(messages, msg("m1"))
    reply = msg("m2", at=T0 + timedelta(minutes=1), direction=Direction.OUTBOUND, ours=OURS_2)

    assert insert(messages, reply, unread=0) is True
    assert insert(messages, reply, unread=0) is False

    conversation = conversations.get(ANA)
    assert conversation is not None
    assert (conversation.message_count, conversation.unread_count) == (2, 1)
    assert (conversation.last_message_id, conversation.last_our_number) == ("m2", OURS_2)
    assert messages.get("m2") == reply


def test_our_first_text_to_a_new_number_starts_its_conversation(
    messages: DynamoMessages, conversations: DynamoConversations
) -> None:
    first = msg("m1", direction=Direction.OUTBOUND, status=MessageStatus.QUEUED)

    assert insert(messages, first, unread=0) is True

    conversation = conversations.get(ANA)
    assert conversation is not None and conversation.last_message_id == "m1"
    assert conversation.message_count == 1


def test_the_stored_item_keeps_only_what_the_keys_do_not_hold(messages: DynamoMessages) -> None:
    """Item size is what DynamoDB bills: key copies and defaults are left out of the doc."""
    insert(messages, msg("m1", sid="SM1"))

    item = MessageItem.get("m1")
    assert not {"message_id", "customer_number", "created_at", "status", "version"} & set(item.doc)
    assert "attempts" not in item.doc and "media" not in item.doc
    assert messages.get("m1") == msg("m1", sid="SM1")

    history = [
        StatusChange(status=MessageStatus.QUEUED, at=T0),  # Parley's own: its source is the default
        StatusChange(status=MessageStatus.DELIVERED, at=T0, source="twilio:delivered"),
    ]
    insert(messages, msg("m2", sid="SM2").model_copy(update={"history": history}))
    stored = MessageItem.get("m2").doc["history"]
    assert [change.get("source") for change in stored] == [None, "twilio:delivered"]
    found = messages.get("m2")
    assert found is not None and [c.source for c in found.history] == ["parley", "twilio:delivered"]


def test_a_message_stored_with_a_full_doc_still_reads(messages: DynamoMessages) -> None:
    """Items written before the doc was trimmed carry every field; they read the same."""
    full = msg("m1")
    MessageItem(
        message_id="m1",
        customer_number=ANA,
        created_at="2024-05-06T09:00:00.000000Z",
        day_shard="2024-05-06#0",
        day_order=f"{ANA}#2024-05-06T09:00:00.000000Z",
        status="received",
        version=0,
        doc=full.model_dump(mode="json"),
    ).save()

    assert messages.get("m1") == full


def test_a_view_lists_only_messages_still_in_it(messages: DynamoMessages) -> None:
    """The index lags the table on AWS; an entry whose message has moved on is left out."""
    insert(messages, msg("m1", direction=Direction.OUTBOUND, status=MessageStatus.QUEUED), unread=0)
    lagging = MessageItem.get("m1")
    lagging.status = MessageStatus.SENT.value  # as the index still sees it: in "pending"
    lagging.save()
    insert(messages, msg("m2", direction=Direction.OUTBOUND, status=MessageStatus.QUEUED), unread=0)

    pending = messages.list_view("pending", limit=10, cursor=None).items

    assert [m.message_id for m in pending] == ["m2"]
    assert pending[0].status is MessageStatus.QUEUED


def test_the_first_owner_and_team_stick(messages: DynamoMessages, conversations: DynamoConversations) -> None:
    insert(messages, msg("m1"), owner="first", team="sales")
    insert(messages, msg("m2", at=T0 + timedelta(minutes=1)), owner="second", team="support")
    conversation = conversations.get(ANA)
    assert conversation is not None and (conversation.owner, conversation.team) == ("first", "sales")


def test_an_older_message_arriving_later_does_not_move_activity_backwards(
    messages: DynamoMessages, conversations: DynamoConversations
) -> None:
    insert(messages, msg("new", at=T0 + timedelta(hours=1)))
    insert(messages, msg("old", at=T0))

    conversation = conversations.get(ANA)
    assert conversation is not None
    assert conversation.last_activity_at == T0 + timedelta(hours=1)
    assert conversation.last_message_id == "new"
    assert conversation.message_count == 2  # it still counts


def test_update_bumps_the_version_and_a_stale_version_conflicts(messages: DynamoMessages) -> None:
    insert(messages, msg("m1", direction=Direction.OUTBOUND, status=MessageStatus.QUEUED))
    current = messages.get("m1")
    assert current is not None and current.version == 0

    updated = messages.update(
        current.model_copy(update={"status": MessageStatus.SENDING}), expected_version=0
    )
    assert updated.version == 1
    stored = messages.get("m1")
    assert stored is not None and (stored.status, stored.version) == (MessageStatus.SENDING, 1)

    with pytest.raises(ConflictError):
        messages.update(current.model_copy(update={"status": MessageStatus.FAILED}), expected_version=0)
    stored = messages.get("m1")
    assert stored is not None and stored.status is MessageStatus.SENDING


def test_update_of_a_message_that_does_not_exist_conflicts(messages: DynamoMessages) -> None:
    with pytest.raises(ConflictError):
        messages.update(msg("ghost"), expected_version=0)
    assert messages.get("ghost") is None


def test_existing_names_the_stored_ids_among_many_in_batches_of_a_hundred(messages: DynamoMessages) -> None:
    for i in range(0, 150, 3):
        messages.insert(msg(f"m{i:03d}", at=T0 + timedelta(seconds=i)))
    asked = [f"m{i:03d}" for i in range(150)] + ["m000"]  # 151 ids: two batches, one repeated
    assert messages.existing(asked) == {f"m{i:03d}" for i in range(0, 150, 3)}
    assert messages.existing([]) == set()


def test_find_by_carrier_ref(messages: DynamoMessages) -> None:
    insert(messages, msg("m1", sid="SM1"))
    insert(messages, msg("m2", sid="SM2", customer=BO))

    found = messages.find_by_carrier_ref("twilio", "SM2")
    assert found is not None and found.message_id == "m2"
    assert messages.find_by_carrier_ref("twilio", "SM3") is None
    assert messages.find_by_carrier_ref("telnyx", "SM1") is None


def test_a_carrier_id_recorded_by_an_update_becomes_findable(messages: DynamoMessages) -> None:
    insert(messages, msg("m1", direction=Direction.OUTBOUND, status=MessageStatus.SENDING))
    current = messages.get("m1")
    assert current is not None
    messages.update(current.model_copy(update={"carrier_message_id": "SM9"}), expected_version=0)
    found = messages.find_by_carrier_ref("twilio", "SM9")
    assert found is not None and found.message_id == "m1"


def test_list_for_conversation_is_newest_first_with_working_cursors(messages: DynamoMessages) -> None:
    ids = [f"m{i}" for i in range(7)]
    for i, message_id in enumerate(ids):
        insert(messages, msg(message_id, at=T0 + timedelta(minutes=i)))
    insert(messages, msg("other", customer=BO))

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = messages.list_for_conversation(ANA, limit=3, cursor=cursor)
        pages += 1
        seen += [m.message_id for m in page.items]
        cursor = page.cursor
        if cursor is None or pages > 5:
            break

    assert pages == 3
    assert seen == list(reversed(ids))


def test_a_cursor_we_did_not_issue_is_rejected(messages: DynamoMessages) -> None:
    with pytest.raises(InvalidCursor):
        messages.list_for_conversation(ANA, limit=3, cursor="%%% not base64 json %%%")


def test_a_cursor_for_another_conversation_is_rejected(messages: DynamoMessages) -> None:
    for i in range(3):
        insert(messages, msg(f"a{i}", at=T0 + timedelta(minutes=i)))
        insert(messages, msg(f"b{i}", customer=BO, at=T0 + timedelta(minutes=i)))
    page = messages.list_for_conversation(ANA, limit=1, cursor=None)
    assert page.cursor is not None

    with pytest.raises(InvalidCursor):
        messages.list_for_conversation(BO, limit=1, cursor=page.cursor)


def test_the_day_index_lists_each_shard_s_conversations_in_pages(aws_settings: Settings) -> None:
    messages = DynamoMessages(aws_settings)
    shards = aws_settings.digest_shards
    customers = [f"+1415555010{i}" for i in range(8)]
    assert len({shard_of(c, shards) for c in customers}) > 1
    for i, customer in enumerate(customers):
        for minute in range(3):  # several texts each: a conversation counts once
            insert(messages, msg(f"today-{i}-{minute}", customer=customer, at=T0 + timedelta(minutes=minute)))
        insert(messages, msg(f"yesterday-{i}", customer=customer, at=T0 - timedelta(days=1)))

    listed: list[str] = []
    for shard in range(shards):
        after: str | None = None
        pages = 0
        while True:
            numbers, after = messages.day_conversations("2024-05-06", shard, after=after, limit=1)
            pages += 1
            assert len(numbers) <= 1 and all(shard_of(n, shards) == shard for n in numbers)
            listed += numbers
            if after is None:
                break
        assert pages >= 1
    assert sorted(listed) == customers and len(listed) == len(set(listed))


def test_one_conversation_s_day_is_one_key_range(aws_settings: Settings) -> None:
    messages = DynamoMessages(aws_settings)
    # a number that is a prefix of another must not pull in the other's texts
    insert(messages, msg("short", customer="+1415555010", at=T0))
    insert(messages, msg("long-1", customer="+14155550101", at=T0 + timedelta(minutes=5)))
    insert(messages, msg("long-0", customer="+14155550101", at=T0))
    insert(messages, msg("long-before", customer="+14155550101", at=T0 - timedelta(days=1)))

    day = messages.list_conversation_day("+14155550101", "2024-05-06")

    assert [m.message_id for m in day] == ["long-0", "long-1"]
    assert [m.message_id for m in messages.list_conversation_day("+1415555010", "2024-05-06")] == ["short"]


def test_a_failure_kept_while_another_job_writes_its_own_loses_neither(
    aws_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = DynamoDigestRuns(aws_settings)
    runs.start("2024-05-06", 2, T0)
    read_run = DigestRunItem.get
    interrupted: list[bool] = []

    def read_then_the_other_job_finishes(*args: Any, **kwargs: Any) -> DigestRunItem:
        item = read_run(*args, **kwargs)
        if not interrupted:  # between this job's read and its write, the other job keeps its failure
            interrupted.append(True)
            runs.record("2024-05-06", {"failed": 1}, [{"reason": "theirs"}], shard_done=True)
        return item

    monkeypatch.setattr(DigestRunItem, "get", read_then_the_other_job_finishes)
    runs.record("2024-05-06", {"failed": 1}, [{"reason": "mine"}], shard_done=True)

    run = runs.get("2024-05-06")
    assert run is not None and interrupted and run.counts == {"failed": 2}
    assert sorted(f["reason"] for f in run.failures) == ["mine", "theirs"]


def test_digest_runs_add_up_jobs_that_finish_in_parallel(aws_settings: Settings) -> None:
    from concurrent.futures import ThreadPoolExecutor

    runs = DynamoDigestRuns(aws_settings)
    runs.start("2024-05-06", 4, T0)

    def one_job(shard: int) -> None:
        failures = [{"customer_number": ANA, "day": "2024-05-06", "reason": f"503 on shard {shard}"}]
        runs.record("2024-05-06", {"conversations": 5, "created": 4, "failed": 1}, failures, shard_done=True)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one_job, range(4)))

    run = runs.get("2024-05-06")
    assert run is not None and run.finished and run.started_at == T0
    assert run.counts == {"conversations": 20, "created": 16, "failed": 4}
    assert sorted(f["reason"] for f in run.failures) == [f"503 on shard {s}" for s in range(4)]  # none lost
    runs.start("2024-05-06", 4, T0 + timedelta(hours=1))  # starting again starts from zero
    again = runs.get("2024-05-06")
    assert again is not None and (again.shards_done, again.counts) == (0, {})
    assert runs.get("2024-05-07") is None


def test_a_page_is_counted_once_and_only_into_its_own_run(aws_settings: Settings) -> None:
    runs = DynamoDigestRuns(aws_settings)
    first = runs.start("2024-05-06", 2, T0)
    assert first.run_id and runs.shard("2024-05-06", first.run_id, 0) == ShardProgress()
    page = RunPage(first.run_id, 0, 0, following=ANA)

    assert runs.record("2024-05-06", {"conversations": 3, "created": 3}, [], shard_done=False, page=page)
    assert not runs.record("2024-05-06", {"conversations": 3, "created": 3}, [], shard_done=False, page=page)
    last = RunPage(first.run_id, 0, 1, following=None)
    assert runs.record("2024-05-06", {"conversations": 1, "created": 1}, [], shard_done=True, page=last)

    run = runs.get("2024-05-06")
    assert run is not None and run.run_id == first.run_id
    assert (run.counts, run.shards_done) == ({"conversations": 4, "created": 4}, 1)
    assert runs.shard("2024-05-06", first.run_id, 0) == ShardProgress(recorded=1, following=None, done=True)
    runs.handed_on("2024-05-06", first.run_id, 0, 0)
    runs.handed_on("2024-05-06", first.run_id, 0, 0)  # again: no harm
    assert runs.shard("2024-05-06", first.run_id, 0) == ShardProgress(1, None, True, handed_on=0)

    second = runs.start("2024-05-06", 2, T0 + timedelta(minutes=1))  # started again
    assert second.run_id != first.run_id
    late = RunPage(first.run_id, 1, 0, following=None)
    assert not runs.record("2024-05-06", {"conversations": 5, "created": 5}, [], shard_done=True, page=late)
    runs.handed_on("2024-05-06", first.run_id, 1, 0)
    assert runs.shard("2024-05-06", first.run_id, 1) is None
    again = runs.get("2024-05-06")
    assert again is not None and (again.counts, again.shards_done) == ({}, 0)
    assert runs.shard("2024-05-06", str(second.run_id), 1) == ShardProgress()


def test_pages_of_one_run_in_parallel_keep_every_count_and_failure(aws_settings: Settings) -> None:
    from concurrent.futures import ThreadPoolExecutor

    runs = DynamoDigestRuns(aws_settings)
    run_id = str(runs.start("2024-05-06", 4, T0).run_id)

    def one_job(shard: int) -> bool:
        failures = [{"customer_number": f"+1415555070{shard}", "day": "2024-05-06", "reason": f"503 {shard}"}]
        page = RunPage(run_id, shard, 0, following=None)
        counted = {"conversations": 5, "created": 4, "failed": 1}
        return runs.record("2024-05-06", counted, failures, shard_done=True, page=page, retrying=[ANA])

    with ThreadPoolExecutor(8) as pool:  # each page twice: SQS delivers at least once
        assert sorted(pool.map(one_job, [*range(4), *range(4)])) == [False] * 4 + [True] * 4

    run = runs.get("2024-05-06")
    assert run is not None and run.finished
    assert run.counts == {"conversations": 20, "created": 16, "failed": 4}
    assert sorted(f["reason"] for f in run.failures) == [f"503 {s}" for s in range(4)]


def test_a_failed_day_logged_on_a_retry_moves_out_of_failed_once(aws_settings: Settings) -> None:
    runs = DynamoDigestRuns(aws_settings)
    run_id = str(runs.start("2024-05-06", 1, T0).run_id)
    failures = [
        {"customer_number": ANA, "day": "2024-05-06", "reason": "429"},
        {"customer_number": BO, "day": "2024-05-06", "reason": "400 bad field"},
    ]
    page = RunPage(run_id, 0, 0, following=None)
    runs.record(
        "2024-05-06", {"conversations": 2, "failed": 2}, failures, shard_done=True, page=page, retrying=[ANA]
    )

    assert not runs.retried("2024-05-06", run_id, BO, {"created": 1})  # a refusal is not retried
    assert not runs.retried("2024-05-06", "another-run", ANA, {"created": 1})
    assert runs.retried("2024-05-06", run_id, ANA, {"created": 1})
    assert not runs.retried("2024-05-06", run_id, ANA, {"created": 1})  # the retry delivered again

    run = runs.get("2024-05-06")
    assert run is not None and run.counts == {"conversations": 2, "created": 1, "failed": 1}
    assert [f["customer_number"] for f in run.failures] == [BO]
    assert not runs.retried("2024-05-07", run_id, ANA, {"created": 1})  # no such run


def test_the_retention_the_sweep_runs_with_is_kept(aws_settings: Settings) -> None:
    runs = DynamoDigestRuns(aws_settings)
    assert runs.retention_days() is None
    runs.keep_retention(30)
    runs.keep_retention(7)
    assert runs.retention_days() == 7
    assert runs.get("2024-05-06") is None


def test_auto_log_settings_per_user(aws_settings: Settings) -> None:
    settings = DynamoAutoLogSettings()
    assert settings.get_user("u-ana") is None
    settings.set_user("u-ana", "immediate")
    assert settings.get_user("u-ana") == "immediate"
    settings.set_user("u-ana", None)
    assert settings.get_user("u-ana") is None


# -- conversations ----------------------------------------------------------------------------------


def test_list_recent_orders_by_last_activity_and_pages(
    messages: DynamoMessages, conversations: DynamoConversations
) -> None:
    customers = [f"+1415555011{i}" for i in range(5)]
    for i, customer in enumerate(customers):
        insert(messages, msg(f"m{i}", customer=customer, at=T0 + timedelta(minutes=i)))
    # the oldest conversation gets a new text and jumps to the top
    insert(messages, msg("late", customer=customers[0], at=T0 + timedelta(hours=1)))
    insert(messages, msg("elsewhere", customer=BO), team="support")

    first = conversations.list_recent("default", limit=2, cursor=None)
    second = conversations.list_recent("default", limit=2, cursor=first.cursor)
    third = conversations.list_recent("default", limit=2, cursor=second.cursor)

    order = [c.customer_number for page in (first, second, third) for c in page.items]
    assert order == [customers[0], customers[4], customers[3], customers[2], customers[1]]
    assert third.cursor is None
    assert [c.customer_number for c in conversations.list_recent("support", limit=10, cursor=None).items] == [
        BO
    ]


def test_an_unknown_conversation_is_none(conversations: DynamoConversations) -> None:
    assert conversations.get("+14155550999") is None


# -- receipts, numbers, contacts, templates, digests ------------------------------------------------


def receipt(sid: str, status: MessageStatus, seconds: int) -> StatusUpdate:
    return StatusUpdate(
        carrier="twilio",
        carrier_message_id=sid,
        status=status,
        carrier_status=status.value,
        occurred_at=T0 + timedelta(seconds=seconds),
    )


def test_receipts_park_list_and_remove(aws_settings: Settings) -> None:
    receipts = DynamoReceipts()
    delivered, sent = receipt("SM1", MessageStatus.DELIVERED, 5), receipt("SM1", MessageStatus.SENT, 2)
    other = receipt("SM2", MessageStatus.FAILED, 1)
    for update in (delivered, sent, other, sent):  # a repeat parks once
        receipts.park(update)

    assert receipts.parked_for("twilio", "SM1") == [sent, delivered]  # oldest first
    assert len(receipts.all_parked(10)) == 3

    receipts.remove(sent)

    assert receipts.parked_for("twilio", "SM1") == [delivered]
    assert receipts.parked_for("twilio", "SM2") == [other]
    assert receipts.parked_for("twilio", "SM3") == []


def test_numbers_default_for_team(aws_settings: Settings) -> None:
    numbers = DynamoNumbers()
    assert numbers.default_for_team("sales") is None
    numbers.save(OurNumber(number="+15005550009", carrier="twilio", team="sales"))
    numbers.save(OurNumber(number="+15005550008", carrier="twilio", team="sales", is_default=True))
    numbers.save(OurNumber(number="+15005550001", carrier="twilio", team="support"))

    sales = numbers.default_for_team("sales")
    support = numbers.default_for_team("support")
    assert sales is not None and sales.number == "+15005550008"
    assert support is not None and support.number == "+15005550001"
    got = numbers.get("+15005550009")
    assert got is not None and got.team == "sales"
    assert numbers.get("+15005550000") is None


def test_contacts_by_phone(aws_settings: Settings) -> None:
    contacts = DynamoContacts()
    contacts.save(ContactRecord(contact_id="c1", name="Ana", phone=ANA, fields={"tier": "gold"}))
    contacts.save(ContactRecord(contact_id="c2", name="Ana's office", phone=ANA))
    contacts.save(ContactRecord(contact_id="c3", name="Bo", phone=BO))

    assert sorted(c.contact_id for c in contacts.find_by_phone(ANA)) == ["c1", "c2"]
    assert [c.contact_id for c in contacts.find_by_phone(BO)] == ["c3"]
    assert contacts.find_by_phone("+14155550999") == []
    got = contacts.get("c1")
    assert got is not None and got.fields == {"tier": "gold"}


def test_templates_save_and_get(aws_settings: Settings) -> None:
    templates = DynamoTemplates()
    template = Template(template_id="t1", name="Ready", body="Hi {{first_name}}")
    templates.save(template)
    assert templates.get("t1") == template
    assert templates.get("t2") is None


def test_digests_save_and_get(aws_settings: Settings) -> None:
    digests = DynamoDigests()
    entry = DigestEntry(
        digest_key=f"{ANA}#2024-05-06",
        crm_id="crm-1",
        content_hash="abc",
        version=1,
        posted_at=T0,
        message_count=3,
    )
    digests.save(entry)
    assert digests.get(entry.digest_key) == entry
    digests.save(DigestEntry(**{**entry.__dict__, "version": 2, "content_hash": "def"}))
    again = digests.get(entry.digest_key)
    assert again is not None and (again.version, again.content_hash) == (2, "def")
    assert digests.get("nope") is None


# -- SQS and EventBridge ----------------------------------------------------------------------------


def queue_attributes(url: str) -> dict[str, int]:
    attrs = boto3.client("sqs", region_name="us-east-1").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    return {k: int(v) for k, v in attrs.items()}


def test_sqs_send_without_delay_is_visible_at_once(aws_settings: Settings) -> None:
    SqsQueue(aws_settings.send_queue_url, "us-east-1").send({"message_id": "m1"})
    received = boto3.client("sqs", region_name="us-east-1").receive_message(
        QueueUrl=aws_settings.send_queue_url, MaxNumberOfMessages=10
    )
    assert [json.loads(m["Body"]) for m in received.get("Messages", [])] == [{"message_id": "m1"}]


def test_sqs_send_with_delay_is_not_visible_yet(aws_settings: Settings) -> None:
    SqsQueue(aws_settings.retry_queue_url, "us-east-1").send({"message_id": "m1"}, delay_seconds=120)

    attrs = queue_attributes(aws_settings.retry_queue_url)
    assert attrs["ApproximateNumberOfMessagesDelayed"] == 1
    assert attrs["ApproximateNumberOfMessages"] == 0
    received = boto3.client("sqs", region_name="us-east-1").receive_message(
        QueueUrl=aws_settings.retry_queue_url, MaxNumberOfMessages=10
    )
    assert received.get("Messages", []) == []


def test_sqs_delays_beyond_fifteen_minutes_are_clamped_not_refused(aws_settings: Settings) -> None:
    SqsQueue(aws_settings.retry_queue_url, "us-east-1").send({"message_id": "m1"}, delay_seconds=5000)
    assert queue_attributes(aws_settings.retry_queue_url)["ApproximateNumberOfMessagesDelayed"] == 1


def test_a_queue_without_a_url_is_a_configuration_error() -> None:
    with pytest.raises(ValueError):
        SqsQueue("", "us-east-1")


def test_eventbridge_publish_reaches_a_rule_target(aws_settings: Settings) -> None:
    sqs = boto3.client("sqs", region_name="us-east-1")
    events = boto3.client("events", region_name="us-east-1")
    url = sqs.create_queue(QueueName="listener")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(
        Name="all-parley",
        EventBusName=aws_settings.event_bus_name,
        EventPattern=json.dumps({"source": ["parley"]}),
    )
    events.put_targets(
        Rule="all-parley", EventBusName=aws_settings.event_bus_name, Targets=[{"Id": "q", "Arn": arn}]
    )

    EventBridgePublisher(aws_settings.event_bus_name, "us-east-1").publish(
        "MessageDelivered", {"message_id": "m1", "at": T0}
    )

    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    assert len(received) == 1
    event = json.loads(received[0]["Body"])
    assert event["source"] == "parley"
    assert event["detail-type"] == "MessageDelivered"
    assert event["detail"]["message_id"] == "m1"
    assert event["detail"]["at"].startswith("2024-05-06")


def test_a_publishing_failure_never_fails_the_caller(aws_settings: Settings) -> None:
    EventBridgePublisher("no-such-bus", "us-east-1").publish("MessageSent", {"message_id": "m1"})


def test_parked_receipts_keep_each_part_and_every_one_is_reachable_by_the_sweep(
    aws_settings: Settings,
) -> None:
    receipts = DynamoReceipts()
    for part in (1, 2):  # Plivo: both parts under the parent's id, at the same second
        receipts.park(
            StatusUpdate(
                carrier="plivo",
                carrier_message_id="parent-1",
                status=MessageStatus.DELIVERED,
                carrier_status="delivered",
                occurred_at=T0,
                part=part,
                parts=2,
            )
        )
    assert sorted(u.part or 0 for u in receipts.parked_for("plivo", "parent-1")) == [1, 2]
    for i in range(10):
        receipts.park(
            StatusUpdate(
                carrier="twilio",
                carrier_message_id=f"SM{i}",
                status=MessageStatus.SENT,
                carrier_status="sent",
                occurred_at=T0,
            )
        )
    assert len(receipts.all_parked(100)) == 12  # fewer than the limit: every slice is read
    assert len(receipts.all_parked(5)) == 5


# -- our numbers: the list a warm function keeps ----------------------------------------------------


class _Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _by_hand(number: str) -> None:
    """A row written straight into the table (the console, a script), not through the repository."""
    NumberItem(number=number, doc=OurNumber(number=number, carrier="twilio").model_dump()).save()


def _scans(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    counted: list[int] = []
    scan = NumberItem.scan

    def counting(*args: Any, **kwargs: Any) -> Any:
        counted.append(1)
        return scan(*args, **kwargs)

    monkeypatch.setattr(NumberItem, "scan", counting)
    return counted


def test_the_numbers_list_is_read_again_only_after_a_number_is_saved(
    aws_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    send_function, api_function = DynamoNumbers(), DynamoNumbers()  # two warm functions
    api_function.save(OurNumber(number="+15005550006", carrier="twilio", is_default=True))
    scans = _scans(monkeypatch)

    assert [n.number for n in send_function.all()] == ["+15005550006"]
    assert send_function.default_for_team("sales") == send_function.all()[0]
    assert len(scans) == 1  # kept while nothing changed

    api_function.save(OurNumber(number="+15005550007", carrier="twilio", team="sales"))

    assert [n.number for n in send_function.all()] == ["+15005550006", "+15005550007"]
    sales_default = send_function.default_for_team("sales")
    assert sales_default is not None and sales_default.number == "+15005550007"
    assert len(scans) == 2
    assert send_function.get("#version") is None  # the version row is no number


def test_a_number_written_by_hand_is_seen_within_the_maximum_age(
    aws_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticks = _Ticks()
    numbers = DynamoNumbers(clock=ticks)
    numbers.save(OurNumber(number="+15005550006", carrier="twilio"))
    assert len(numbers.all()) == 1
    NumberItem(
        number="+15005550008", doc=OurNumber(number="+15005550008", carrier="twilio").model_dump()
    ).save()

    ticks.now = 59.0
    assert len(numbers.all()) == 1
    ticks.now = 61.0
    assert [n.number for n in numbers.all()] == ["+15005550006", "+15005550008"]


def test_numbers_with_no_version_row_are_read_each_time(aws_settings: Settings) -> None:
    numbers = DynamoNumbers()
    NumberItem(
        number="+15005550006", doc=OurNumber(number="+15005550006", carrier="twilio").model_dump()
    ).save()
    assert len(numbers.all()) == 1
    NumberItem(
        number="+15005550008", doc=OurNumber(number="+15005550008", carrier="twilio").model_dump()
    ).save()
    assert len(numbers.all()) == 2
