"""CRM conflicts: a day whose number matches several records, none linked, is held for a person."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from parley.access import Caller
from parley.domain.models import ContactRecord, InboundMessage, OurNumber
from parley.ports import ConflictEntry
from parley.services.digest import (
    ConflictAlreadyResolved,
    ConflictNotFound,
    conflict_id,
    digest_key,
    external_id,
)
from tests.fakes import T0, World

MEMBER = Caller("u", frozenset({"default"}))
OUTSIDER = Caller("u", frozenset({"other-team"}))

OURS = "+15005550006"
SHARED = "+14155550220"
DAY = T0.date()
NEXT_DAY = DAY + timedelta(days=1)
CONFLICT = conflict_id(SHARED, DAY.isoformat())


@pytest.fixture
def world() -> World:
    w = World()
    w.numbers.save(OurNumber(number=OURS, carrier="fake", is_default=True))
    w.contacts.save(ContactRecord(contact_id="c-sam", name="Sam Lee", phone=SHARED, owner="u-sam"))
    w.contacts.save(ContactRecord(contact_id="c-kim", name="Kim Park", phone=SHARED, owner="u-kim"))
    return w


def text_in(world: World, sid: str, at: datetime, body: str = "hello") -> None:
    world.processor().store_inbound(
        InboundMessage(
            carrier="fake",
            carrier_message_id=sid,
            from_number=SHARED,
            to_number=OURS,
            body=body,
            received_at=at,
        )
    )


def test_the_digest_holds_a_conflicting_day_instead_of_posting_it(world: World) -> None:
    text_in(world, "SM1", T0)
    world.clock.set(T0 + timedelta(hours=20))

    report = world.digest().run(DAY)

    assert (report.conflicts, report.created, world.crm.records) == (1, 0, {})
    assert report.as_dict()["conflicts"] == 1
    conflict = world.conflicts.get(CONFLICT)
    assert conflict is not None
    assert (conflict.customer_number, conflict.day, conflict.team) == (SHARED, DAY.isoformat(), "default")
    assert [(c.record_id, c.name, c.record_type, c.owner) for c in conflict.candidates] == [
        ("c-kim", "Kim Park", "contact", "u-kim"),
        ("c-sam", "Sam Lee", "contact", "u-sam"),
    ]
    assert conflict.found_at == T0 + timedelta(hours=20)
    assert not conflict.resolved
    page = world.digest().open_conflicts({"default"}, limit=50, cursor=None)
    assert [c.conflict_id for c in page.items] == [CONFLICT]
    assert world.digest().open_conflicts({"other-team"}, limit=50, cursor=None).items == []


def test_a_rerun_keeps_one_conflict_and_when_it_was_found(world: World) -> None:
    text_in(world, "SM1", T0)
    world.clock.set(T0 + timedelta(hours=20))
    world.digest().run(DAY)
    world.clock.set(T0 + timedelta(hours=22))

    report = world.digest().run(DAY)

    assert report.conflicts == 1
    assert list(world.conflicts.items) == [CONFLICT]
    conflict = world.conflicts.get(CONFLICT)
    assert conflict is not None and conflict.found_at == T0 + timedelta(hours=20)
    assert world.crm.records == {}


def test_resolving_links_the_conversation_and_logs_the_day_once(world: World) -> None:
    text_in(world, "SM1", T0)
    world.digest().run(DAY)

    outcome = world.digest().resolve(CONFLICT, "c-sam", user="u-ana", caller=MEMBER)
    resolved = outcome.conflict

    assert (outcome.logged, outcome.error) == (True, None)
    assert (resolved.resolved, resolved.record_id, resolved.resolved_by) == (True, "c-sam", "u-ana")
    conversation = world.conversations.get(SHARED)
    assert conversation is not None
    assert (conversation.contact_id, conversation.owner, conversation.routing_reason) == (
        "c-sam",
        "u-sam",
        "chosen by u-ana",
    )
    assert conversation.conflict_candidates == []
    record = world.crm.records[external_id("c-sam", DAY.isoformat())]
    assert (record["contact_id"], record["subject"]) == ("c-sam", f"SMS with Sam Lee on {DAY.isoformat()}")
    assert list(world.crm.records) == [external_id("c-sam", DAY.isoformat())]
    assert world.digests.get(digest_key("c-sam", DAY.isoformat())) is not None
    assert world.digest().open_conflicts({"default"}, limit=50, cursor=None).items == []

    # a re-run of that day's digest posts nothing new
    report = world.digest().run(DAY)
    assert (report.conflicts, report.created, report.updated, report.unchanged) == (0, 0, 0, 1)
    assert len(world.crm.records) == 1


def test_resolving_again_with_the_same_record_is_idempotent_and_another_is_refused(world: World) -> None:
    text_in(world, "SM1", T0)
    world.digest().run(DAY)
    first = world.digest().resolve(CONFLICT, "c-sam", user="u-ana", caller=MEMBER)
    calls = len(world.crm.records)

    again = world.digest().resolve(CONFLICT, "c-sam", user="u-bo", caller=MEMBER)

    assert again == first
    assert len(world.crm.records) == calls
    with pytest.raises(ConflictAlreadyResolved, match="c-sam"):
        world.digest().resolve(CONFLICT, "c-kim", user="u-bo", caller=MEMBER)


def test_resolving_validates_the_record_and_the_conflict(world: World) -> None:
    text_in(world, "SM1", T0)
    world.digest().run(DAY)
    with pytest.raises(ValueError, match="one of the candidates"):
        world.digest().resolve(CONFLICT, "c-nobody", user="u-ana", caller=MEMBER)
    with pytest.raises(ConflictNotFound):
        world.digest().resolve("conflict-nope", "c-sam", user="u-ana", caller=MEMBER)
    with pytest.raises(ConflictNotFound):  # another team's conflict is not visible
        world.digest().resolve(CONFLICT, "c-sam", user="u-ana", caller=OUTSIDER)
    conversation = world.conversations.get(SHARED)
    assert conversation is not None and conversation.contact_id is None
    assert world.crm.records == {}


def test_the_next_day_is_logged_to_the_chosen_record(world: World) -> None:
    text_in(world, "SM1", T0)
    world.digest().run(DAY)
    world.digest().resolve(CONFLICT, "c-kim", user="u-ana", caller=MEMBER)

    text_in(world, "SM2", T0 + timedelta(days=1), "me again")  # routing rule 1 keeps the link
    report = world.digest().run(NEXT_DAY)

    assert (report.conflicts, report.created) == (0, 1)
    record = world.crm.records[external_id("c-kim", NEXT_DAY.isoformat())]
    assert record["contact_id"] == "c-kim"
    assert world.conflicts.get(conflict_id(SHARED, NEXT_DAY.isoformat())) is None


def test_a_crm_outage_keeps_the_choice_and_queues_the_day_to_try_again(world: World) -> None:
    text_in(world, "SM1", T0)
    world.digest().run(DAY)
    world.crm.fail(external_id("c-sam", DAY.isoformat()), "CRM answered 503: maintenance")

    outcome = world.digest().resolve(CONFLICT, "c-sam", user="u-ana", caller=MEMBER)

    assert (outcome.logged, outcome.error) == (False, "CRM answered 503: maintenance")
    assert outcome.conflict.resolved  # nobody has to pick again
    assert world.digest().open_conflicts({"default"}, limit=50, cursor=None).items == []
    (job,) = world.digest_queue.take()
    assert job.body == {"kind": "digest-log", "customer_number": SHARED, "day": DAY.isoformat()}
    assert job.delay_seconds > 0

    # the queue hands the job back: failing still, it is left for another try; then it posts
    jobs = world.digest_jobs()
    record = {"messageId": "m1", "body": json.dumps(job.body)}
    assert jobs.handle([record], json.loads) == ["m1"]
    world.crm.recover(external_id("c-sam", DAY.isoformat()))
    assert jobs.handle([record], json.loads) == []
    assert world.crm.records[external_id("c-sam", DAY.isoformat())]["contact_id"] == "c-sam"


def test_open_conflicts_of_several_teams_page_through_each_team_in_turn(world: World) -> None:
    for n, team in enumerate(["sales", "support", "sales", "ops", "support"]):
        world.conflicts.add(
            ConflictEntry(f"conflict-{n}", f"+1415555030{n}", DAY.isoformat(), team, (), T0 + timedelta(n))
        )
    digest, cursor = world.digest(), None
    seen: list[str] = []
    while True:
        page = digest.open_conflicts({"sales", "support"}, limit=2, cursor=cursor)
        assert len(page.items) <= 2
        seen += [c.conflict_id for c in page.items]
        if page.cursor is None:
            break
        cursor = page.cursor

    assert seen == ["conflict-2", "conflict-0", "conflict-4", "conflict-1"]  # sales, then support
    with pytest.raises(ValueError, match="cursor"):  # a cursor for teams the caller doesn't have
        sales_cursor = digest.open_conflicts({"sales"}, limit=1, cursor=None).cursor
        digest.open_conflicts({"ops"}, limit=2, cursor=sales_cursor)
