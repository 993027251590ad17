"""A failed text the customer may already have (an ambiguous send the carrier can't be asked about, a
job lost mid-send) is never resent by a filter: only by id, once a person has checked."""

from __future__ import annotations

from datetime import timedelta

import pytest

from parley.access import Caller
from parley.carriers.base import FailureKind, LookupUnavailable, SendFailed
from parley.domain.models import Attempt, Message, MessageStatus, OurNumber, SendRequest, StatusChange
from parley.services.resend import MAY_HAVE_GONE, FailedFilter
from tests.fakes import T0, FakeLookupCarrier, World

ADMIN = Caller(user="ana", teams=frozenset({"default"}), admin=True)
OURS = "+15005550006"
ANA = "+14155550100"
TIMEOUT = SendFailed(FailureKind.AMBIGUOUS, "the carrier's answer never came (read timeout)")


@pytest.fixture
def world() -> World:
    w = World(carrier=FakeLookupCarrier())
    w.numbers.save(OurNumber(number=OURS, carrier="fake", is_default=True))
    return w


def stored(world: World, message_id: str) -> Message:
    found = world.messages.get(message_id)
    assert found is not None, message_id
    return found


def queued(world: World, key: str = "k", body: str = "Your code is 1234") -> Message:
    (message,) = world.sender().submit(SendRequest.model_validate({"to": [ANA], "body": body}), key)
    world.send_queue.jobs.clear()
    return message


def left_for_a_person(world: World) -> Message:
    """Timed out at the carrier, which can't be searched: failed for a person to check."""
    assert isinstance(world.carrier, FakeLookupCarrier)
    world.carrier.lookup_error = LookupUnavailable("too many texts to search")
    sender = world.sender()
    message = queued(world)
    world.carrier.script(TIMEOUT)
    sender.deliver(message.message_id)
    world.retry_queue.jobs.clear()
    failed = sender.deliver(message.message_id)
    assert failed is not None and failed.status is MessageStatus.FAILED
    return failed


def filter_results(world: World) -> list[tuple[str, str, str | None]]:
    out = world.resender().resend_failed(FailedFilter(), caller=ADMIN, by="ana")
    return [(r.message_id, r.result, r.reason) for r in out.results]


def test_an_unreconciled_ambiguous_send_is_flagged_and_the_filter_refuses_it(world: World) -> None:
    failed = left_for_a_person(world)
    assert failed.may_have_been_sent is True
    assert failed.error_code is None

    assert filter_results(world) == [(failed.message_id, "refused", MAY_HAVE_GONE)]
    assert stored(world, failed.message_id).status is MessageStatus.FAILED
    assert world.send_queue.jobs == []
    assert len(world.carrier.sent) == 1


def test_a_resend_by_id_still_sends_it_and_clears_the_flag(world: World) -> None:
    failed = left_for_a_person(world)

    (result,) = world.resender().resend_ids([failed.message_id], caller=ADMIN, by="ana")

    assert result.result == "resent"
    again = stored(world, failed.message_id)
    assert again.status is MessageStatus.QUEUED and again.may_have_been_sent is False
    (job,) = world.send_queue.jobs
    assert job.body == {"message_id": failed.message_id}


def test_a_lost_job_while_sending_is_flagged_and_refused_by_the_filter(world: World) -> None:
    message = queued(world)
    world.messages.update(
        message.model_copy(update={"status": MessageStatus.SENDING}), expected_version=message.version
    )
    world.dead_letter_queues["send"].put(f'{{"message_id": "{message.message_id}"}}')

    world.dead_letters().drain()

    failed = stored(world, message.message_id)
    assert failed.status is MessageStatus.FAILED and failed.may_have_been_sent is True
    assert filter_results(world) == [(message.message_id, "refused", MAY_HAVE_GONE)]


def test_a_lost_retry_job_after_an_ambiguous_attempt_is_flagged_too(world: World) -> None:
    sender = world.sender()
    message = queued(world)
    world.carrier.script(TIMEOUT)
    retrying = sender.deliver(message.message_id)
    assert retrying is not None and retrying.status is MessageStatus.RETRYING
    world.dead_letter_queues["retry"].put(f'{{"message_id": "{message.message_id}"}}')

    world.dead_letters().drain()

    failed = stored(world, message.message_id)
    assert failed.status is MessageStatus.FAILED and failed.may_have_been_sent is True
    assert (failed.error_reason or "").endswith("check with the customer before resending")
    assert filter_results(world) == [(message.message_id, "refused", MAY_HAVE_GONE)]


def test_a_lost_job_for_a_text_never_handed_over_is_still_resent_by_the_filter(world: World) -> None:
    message = queued(world)
    world.dead_letter_queues["send"].put(f'{{"message_id": "{message.message_id}"}}')

    world.dead_letters().drain()

    failed = stored(world, message.message_id)
    assert failed.status is MessageStatus.FAILED and failed.may_have_been_sent is False
    assert filter_results(world) == [(message.message_id, "resent", None)]


def test_a_retried_out_transient_failure_is_still_resent_by_the_filter(world: World) -> None:
    sender = world.sender()
    message = queued(world)
    for _ in range(12):
        world.carrier.script(SendFailed(FailureKind.TRANSIENT, "the carrier answered 503", None, 503))
        current = sender.deliver(message.message_id)
        assert current is not None
        if current.status is MessageStatus.FAILED:
            break
        world.clock.advance(hours=1)
    failed = stored(world, message.message_id)
    assert failed.status is MessageStatus.FAILED and failed.may_have_been_sent is False

    assert filter_results(world) == [(message.message_id, "resent", None)]


def _legacy(world: World, *, attempts: list[Attempt], history: list[MessageStatus]) -> Message:
    """A failed text as stored before the flag was kept."""
    message = queued(world)
    changes = [
        StatusChange(status=s, at=T0 + timedelta(seconds=i), source="parley") for i, s in enumerate(history)
    ]
    return world.messages.update(
        message.model_copy(update={"status": MessageStatus.FAILED, "attempts": attempts, "history": changes}),
        expected_version=message.version,
    )


def test_a_text_failed_before_the_flag_after_an_ambiguous_attempt_is_refused(world: World) -> None:
    ambiguous = Attempt(number=1, at=T0 + timedelta(seconds=1), outcome="ambiguous", detail="read timeout")
    old = _legacy(
        world,
        attempts=[ambiguous],
        history=[MessageStatus.QUEUED, MessageStatus.SENDING, MessageStatus.RETRYING, MessageStatus.FAILED],
    )
    assert old.may_have_been_sent is False

    assert filter_results(world) == [(old.message_id, "refused", MAY_HAVE_GONE)]


def test_a_text_failed_from_sending_before_the_flag_with_no_attempt_since_is_refused(world: World) -> None:
    old = _legacy(
        world, attempts=[], history=[MessageStatus.QUEUED, MessageStatus.SENDING, MessageStatus.FAILED]
    )

    assert filter_results(world) == [(old.message_id, "refused", MAY_HAVE_GONE)]


def test_a_text_refused_when_sent_before_the_flag_is_still_judged_by_its_code(world: World) -> None:
    # Claimed at 1 s, refused at 2 s: the attempt came after the claim, so the carrier answered.
    transient = Attempt(number=1, at=T0 + timedelta(seconds=2), outcome="transient", detail="503")
    old = _legacy(
        world,
        attempts=[transient],
        history=[MessageStatus.QUEUED, MessageStatus.SENDING, MessageStatus.FAILED],
    )

    assert filter_results(world) == [(old.message_id, "resent", None)]
