"""The one-way status machine: receipts only move a message forward, and terminal states stay put.

Expectations are written from the architecture (section 2, "Status receipts"), not read off the
module's rank table: the happy path, the terminal states, and properties over every pair.
"""

from __future__ import annotations

import itertools

import pytest

from parley.carriers.twilio import STATUS_MAP
from parley.domain.models import MessageStatus as S
from parley.domain.status import FINAL, PENDING, receipt_advances, view_for

ALL = list(S)
# What a carrier can report about a message we sent (Twilio's vocabulary, mapped), minus `received`,
# which only describes inbound texts.
REPORTABLE = sorted({s for s in STATUS_MAP.values() if s is not S.RECEIVED})
TERMINAL = [S.DELIVERED, S.UNDELIVERED, S.FAILED, S.READ, S.CANCELED, S.SUPPRESSED, S.RECEIVED]

HAPPY_PATH = [S.QUEUED, S.SENDING, S.ACCEPTED, S.SENT, S.DELIVERED, S.READ]


def test_the_terminal_states_are_the_final_set() -> None:
    assert set(TERMINAL) == set(FINAL)


@pytest.mark.parametrize(("earlier", "later"), list(itertools.pairwise(HAPPY_PATH)))
def test_each_step_of_the_happy_path_advances(earlier: S, later: S) -> None:
    assert receipt_advances(earlier, later)


@pytest.mark.parametrize(("earlier", "later"), list(itertools.combinations(HAPPY_PATH, 2)))
def test_skipping_ahead_advances_and_going_back_never_does(earlier: S, later: S) -> None:
    assert receipt_advances(earlier, later), f"{earlier} -> {later} should advance"
    assert not receipt_advances(later, earlier), f"{later} -> {earlier} must not regress"


def test_a_late_sent_after_delivered_is_ignored() -> None:
    assert not receipt_advances(S.DELIVERED, S.SENT)


@pytest.mark.parametrize("status", ALL)
def test_a_repeated_receipt_is_a_no_op(status: S) -> None:
    assert not receipt_advances(status, status)


def test_read_after_delivered_is_allowed() -> None:
    assert receipt_advances(S.DELIVERED, S.READ)


@pytest.mark.parametrize("reported", ALL)
@pytest.mark.parametrize("closed", [S.FAILED, S.UNDELIVERED])
def test_nothing_reopens_a_failure(closed: S, reported: S) -> None:
    assert not receipt_advances(closed, reported)


@pytest.mark.parametrize(("current", "reported"), list(itertools.product(TERMINAL, REPORTABLE)))
def test_a_terminal_state_only_ever_moves_from_delivered_to_read(current: S, reported: S) -> None:
    expected = (current, reported) == (S.DELIVERED, S.READ)
    assert receipt_advances(current, reported) is expected


@pytest.mark.parametrize("reported", REPORTABLE)
def test_an_inbound_message_is_never_changed_by_a_receipt(reported: S) -> None:
    assert not receipt_advances(S.RECEIVED, reported)


@pytest.mark.parametrize(("a", "b"), list(itertools.combinations(ALL, 2)))
def test_the_machine_is_one_way_for_every_pair(a: S, b: S) -> None:
    assert not (receipt_advances(a, b) and receipt_advances(b, a)), f"{a} <-> {b} would flip-flop"


def test_there_is_no_cycle_anywhere_in_the_machine() -> None:
    edges = {a: [b for b in ALL if receipt_advances(a, b)] for a in ALL}
    visiting: set[S] = set()
    done: set[S] = set()

    def visit(node: S, path: list[S]) -> None:
        assert node not in visiting, f"cycle: {' -> '.join([*path, node])}"
        if node in done:
            return
        visiting.add(node)
        for nxt in edges[node]:
            visit(nxt, [*path, node])
        visiting.discard(node)
        done.add(node)

    for start in ALL:
        visit(start, [])


@pytest.mark.parametrize("reported", [S.SENT, S.DELIVERED, S.FAILED, S.UNDELIVERED])
@pytest.mark.parametrize("current", [S.QUEUED, S.SENDING, S.RETRYING, S.ACCEPTED])
def test_carrier_news_moves_a_pre_carrier_message_forward(current: S, reported: S) -> None:
    assert receipt_advances(current, reported)


@pytest.mark.parametrize("reported", [S.QUEUED, S.SENDING, S.ACCEPTED])
def test_early_words_after_sent_are_ignored(reported: S) -> None:
    assert not receipt_advances(S.SENT, reported)


def test_views_cover_the_work_lists() -> None:
    assert {view_for(s) for s in PENDING} == {"pending"}
    assert view_for(S.FAILED) == view_for(S.UNDELIVERED) == "failed"
    assert view_for(S.SCHEDULED) == "scheduled"  # the sweep finds due messages through this view
    assert view_for(S.SUPPRESSED) == "suppressed"
    assert view_for(S.DELIVERED) is None
    assert view_for(S.RECEIVED) is None


@pytest.mark.parametrize(
    "reported",
    [S.RECEIVED, S.SUPPRESSED, S.QUEUED, S.SCHEDULED],
)
def test_a_receipt_with_a_status_no_carrier_reports_for_a_sent_text_is_ignored(reported: S) -> None:
    assert not receipt_advances(S.ACCEPTED, reported)
