"""Opt-out, opt-in and help keywords: whole message only, any case and spacing."""

from __future__ import annotations

import pytest

from parley.domain.keywords import Keyword, from_carrier_flag, keyword_of


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("STOP", Keyword.OPT_OUT),
        ("stop", Keyword.OPT_OUT),
        ("  Stop.  ", Keyword.OPT_OUT),
        ("stop all", Keyword.OPT_OUT),
        ("STOPALL", Keyword.OPT_OUT),
        ("Unsubscribe!", Keyword.OPT_OUT),
        ("cancel", Keyword.OPT_OUT),
        ("END", Keyword.OPT_OUT),
        ("quit", Keyword.OPT_OUT),
        ("START", Keyword.OPT_IN),
        ("unstop", Keyword.OPT_IN),
        ("Yes", Keyword.OPT_IN),
        ("help", Keyword.HELP),
        ("INFO?", Keyword.HELP),
        ("please don't stop", None),
        ("stop it now", None),
        ("STOPPED", None),
        ("", None),
        ("Is my order ready?", None),
    ],
)
def test_only_a_whole_message_is_a_keyword(body: str, expected: Keyword | None) -> None:
    assert keyword_of(body) is expected


def test_carrier_flags_map_to_keywords() -> None:
    assert [from_carrier_flag(f) for f in ("STOP", "START", "HELP", None)] == [
        Keyword.OPT_OUT,
        Keyword.OPT_IN,
        Keyword.HELP,
        None,
    ]
