"""The server's count (the preview's answer) against the shared vectors in tests/vectors, which the web
counter is held to as well (tests/e2e/browser), so the compose counter shows what the send will cost."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from parley.domain.encoding import SegmentInfo, analyze
from parley.services.inbox import preview
from tests.vectors import PREVIEW_FIELDS, SmsVector, sms_vectors

VECTORS = sms_vectors()


@pytest.mark.parametrize("vector", VECTORS, ids=[v.id for v in VECTORS])
def test_the_preview_matches_each_vector(vector: SmsVector) -> None:
    answer = preview(vector.text, smart_encoding=vector.smart)

    assert vector.from_preview(answer) == vector.expected
    assert answer["characters"] == len(answer["text"])


def test_vector_ids_are_unique_and_expectations_complete() -> None:
    ids = [v.id for v in VECTORS]

    assert len(ids) == len(set(ids))
    for vector in VECTORS:
        assert set(vector.expected) == set(PREVIEW_FIELDS), vector.id


def _pair_moved(info: SegmentInfo) -> bool:
    """A pair (ESC + code, or a surrogate pair) moved to the next part: one more part than naive."""
    return info.segments > info.naive_segments


HARD_CASES: dict[str, Callable[[SmsVector, SegmentInfo], bool]] = {
    "GSM-7 at 160": lambda v, i: (i.encoding.value, i.units, i.segments) == ("GSM-7", 160, 1),
    "GSM-7 at 161": lambda v, i: (i.encoding.value, i.units, i.segments) == ("GSM-7", 161, 2),
    "an extension pair moved past 153": lambda v, i: i.encoding.value == "GSM-7" and _pair_moved(i),
    "UCS-2 at 70": lambda v, i: (i.encoding.value, i.units, i.segments) == ("UCS-2", 70, 1),
    "UCS-2 at 71": lambda v, i: (i.encoding.value, i.units, i.segments) == ("UCS-2", 71, 2),
    "a surrogate pair moved past 67": lambda v, i: i.encoding.value == "UCS-2" and _pair_moved(i),
    "smart encoding applied": lambda v, i: v.smart and i.smart_encoding_applied,
    "smart encoding asked, not possible": lambda v, i: v.smart and i.encoding.value == "UCS-2",
    "smart quotes without smart encoding": lambda v, i: not v.smart and "\u201c" in v.text,
    "the empty text": lambda v, i: v.text == "",
    "ten parts": lambda v, i: i.segments == 10,
}


@pytest.mark.parametrize("case", list(HARD_CASES))
def test_the_vectors_keep_the_hard_cases(case: str) -> None:
    """Dropping one of these from the file would leave the web counter unchecked at that edge."""
    holds = HARD_CASES[case]

    assert any(holds(v, analyze(v.text, smart_encoding=v.smart)) for v in VECTORS)
