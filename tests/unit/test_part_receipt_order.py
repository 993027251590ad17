"""A long text's status follows its parts' receipts whatever order they arrive in: a part's late
`delivered` takes the text out of `failed`, while a one-part text's failure and a superseded attempt's
late receipts still change nothing."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from parley.access import Caller
from parley.carriers.base import FailureKind, SendAccepted
from parley.domain.models import Message, MessageStatus, OurNumber, SendRequest, StatusUpdate
from parley.domain.status import parts_status_advances, receipt_advances, view_for
from parley.services.resend import FailedFilter
from tests.fakes import World

S = MessageStatus
F, D = S.FAILED, S.DELIVERED
ADMIN = Caller(user="ana", teams=frozenset({"default"}), admin=True)
OURS = "+15005550006"
CUSTOMER = "+14155550100"
PARTS = ("P1", "P2")
PASSING = "2"  # an error code the fake carrier calls passing: the receipt says retryable


def _world() -> World:
    world = World()
    world.numbers.save(OurNumber(number=OURS, carrier="fake", is_default=True))
    world.carrier.classes[PASSING] = FailureKind.TRANSIENT
    return world


def _send(world: World, body: str, accepted: SendAccepted) -> Message:
    sender = world.sender()
    (queued,) = sender.submit(SendRequest.model_validate({"to": [CUSTOMER], "body": body}), "k")
    world.carrier.script(accepted)
    sent = sender.deliver(queued.message_id)
    assert sent is not None and sent.status is S.ACCEPTED
    world.send_queue.jobs.clear()
    return sent


def _long(world: World, ids: tuple[str, ...] = PARTS) -> Message:
    """A two-part text whose carrier gave each part its own id (as Vonage does)."""
    return _send(world, "x" * 200, SendAccepted(ids[0], "queued", 2, part_ids=ids))


def _receipt(sid: str, status: S, ref: str) -> StatusUpdate:
    failed = status in (S.FAILED, S.UNDELIVERED)
    return StatusUpdate(
        carrier="fake",
        carrier_message_id=sid,
        status=status,
        carrier_status=status.value,
        error_code=PASSING if failed else None,
        error_message="the phone was unreachable" if failed else None,
        retryable=failed,
        client_ref=ref,
    )


def _stored(world: World, message_id: str) -> Message:
    found = world.messages.get(message_id)
    assert found is not None
    return found


def _failed_view(world: World) -> list[str]:
    return [m.message_id for m in world.messages.list_view("failed", limit=50, cursor=None).items]


# Each part's own receipts: one or two of them, each `failed` or `delivered`.
SEQUENCES = [seq for n in (1, 2) for seq in itertools.product((F, D), repeat=n)]


def _interleavings(a: list[str], b: list[str]) -> Iterator[list[str]]:
    """Every merge of `a` and `b` that keeps each one's own order."""
    for slots in itertools.combinations(range(len(a) + len(b)), len(a)):
        left, right = iter(a), iter(b)
        yield [next(left) if i in slots else next(right) for i in range(len(a) + len(b))]


def _expected(first: tuple[S, ...], second: tuple[S, ...]) -> S:
    # A part is delivered once any receipt says so (a failure is the carrier's early or late word).
    arrived = [D in first, D in second]
    if all(arrived):
        return D
    return S.PARTIALLY_DELIVERED if any(arrived) else F


def _name(first: tuple[S, ...], second: tuple[S, ...]) -> str:
    return "-".join(",".join(s.value for s in seq) for seq in (first, second))


PAIRS = list(itertools.product(SEQUENCES, SEQUENCES))


@pytest.mark.parametrize(("first", "second"), PAIRS, ids=[_name(*pair) for pair in PAIRS])
def test_the_final_status_does_not_depend_on_the_order_part_receipts_arrive(
    first: tuple[S, ...], second: tuple[S, ...]
) -> None:
    expected = _expected(first, second)
    labels = [f"1:{i}" for i in range(len(first))], [f"2:{i}" for i in range(len(second))]
    outcomes = set()
    for order in _interleavings(*labels):
        world = _world()
        sent = _long(world)
        processor = world.processor()
        for label in order:
            part, index = label.split(":")
            status = (first if part == "1" else second)[int(index)]
            processor.apply_receipt(_receipt(PARTS[int(part) - 1], status, sent.message_id))
        message = _stored(world, sent.message_id)
        assert message.status is expected, order
        # the views follow the status, and a part's passing failure never sends the text again
        assert (sent.message_id in _failed_view(world)) is (view_for(expected) == "failed"), order
        assert world.retry_queue.jobs == [] and len(world.carrier.sent) == 1, order
        if expected is D:
            assert (message.error_code, message.error_reason) == (None, None), order
            assert [name for name, _ in world.events.events].count("MessageDelivered") == 1, order
        outcomes.add((message.status, tuple(sorted(message.part_statuses.items()))))
    assert len(outcomes) == 1


def test_every_part_failing_then_arriving_leaves_nothing_for_a_bulk_resend() -> None:
    world = _world()
    sent = _long(world)
    processor = world.processor()
    for sid, status in (("P1", F), ("P2", F)):
        processor.apply_receipt(_receipt(sid, status, sent.message_id))
    assert _stored(world, sent.message_id).status is F
    assert _failed_view(world) == [sent.message_id]

    processor.apply_receipt(_receipt("P1", D, sent.message_id))
    assert _stored(world, sent.message_id).status is S.PARTIALLY_DELIVERED
    assert _failed_view(world) == [sent.message_id]  # part 2 still missing
    processor.apply_receipt(_receipt("P2", D, sent.message_id))

    message = _stored(world, sent.message_id)
    assert message.status is D
    assert [c.status for c in message.history[-2:]] == [S.PARTIALLY_DELIVERED, D]
    assert _failed_view(world) == []
    resender = world.resender(world.sender())
    assert (
        resender.resend_failed(FailedFilter(partially_delivered=True), caller=ADMIN, by="ana").results == []
    )
    assert len(world.carrier.sent) == 1


def test_a_one_part_texts_failure_is_not_reopened_by_a_later_delivery() -> None:
    world = _world()
    sent = _send(world, "Hi", SendAccepted("M1", "queued", 1))
    processor = world.processor(retries=False)
    processor.apply_receipt(_receipt("M1", F, sent.message_id))
    processor.apply_receipt(_receipt("M1", D, sent.message_id))

    assert _stored(world, sent.message_id).status is F
    assert _failed_view(world) == [sent.message_id]


def test_late_part_receipts_of_a_resent_texts_earlier_attempt_change_nothing() -> None:
    world = _world()
    sent = _long(world)
    processor = world.processor()
    for sid in PARTS:
        processor.apply_receipt(_receipt(sid, F, sent.message_id))
    sender = world.sender()
    resender = world.resender(sender)
    (result,) = resender.resend_ids([sent.message_id], caller=ADMIN, by="ana")
    assert result.result == "resent"

    # before the new attempt goes out: the old attempt's deliveries don't reopen the text
    for sid in PARTS:
        processor.apply_receipt(_receipt(sid, D, sent.message_id))
    waiting = _stored(world, sent.message_id)
    assert waiting.status is S.QUEUED and waiting.part_statuses == {}

    world.carrier.script(SendAccepted("N1", "queued", 2, part_ids=("N1", "N2")))
    again = sender.deliver(sent.message_id)
    assert again is not None and again.carrier_part_ids == ["N1", "N2"]
    # nor after it: the new attempt's parts report for themselves
    for sid in PARTS:
        processor.apply_receipt(_receipt(sid, D, sent.message_id))
    processor.apply_receipt(_receipt("N1", D, sent.message_id))
    partway = _stored(world, sent.message_id)
    assert partway.status is S.SENT and partway.part_statuses == {"1": D}
    processor.apply_receipt(_receipt("N2", F, sent.message_id))
    assert _stored(world, sent.message_id).status is S.PARTIALLY_DELIVERED


@pytest.mark.parametrize("current", [S.FAILED, S.UNDELIVERED])
def test_parts_take_a_failed_text_to_what_they_say(current: S) -> None:
    assert parts_status_advances(current, S.PARTIALLY_DELIVERED)
    assert parts_status_advances(current, D)
    for derived in (S.ACCEPTED, S.SENT, F, S.UNDELIVERED):
        assert not parts_status_advances(current, derived)
    # a receipt for the whole text still never reopens it
    assert not receipt_advances(current, D)


@pytest.mark.parametrize("current", [S.CANCELED, S.SUPPRESSED, S.READ, D])
def test_parts_never_move_a_text_out_of_any_other_final_status(current: S) -> None:
    for derived in (S.PARTIALLY_DELIVERED, D, F):
        assert not parts_status_advances(current, derived)
