"""Opt-out, opt-in and help keywords in a customer's reply.

A keyword counts only as the whole message (ignoring case, spaces and trailing punctuation), as
carriers and the CTIA guidelines do: "stop" opts out, "please don't stop" does not.
"""

from __future__ import annotations

import re
from enum import StrEnum


class Keyword(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
OPT_IN_WORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_WORDS = frozenset({"HELP", "INFO"})

_NOISE = re.compile(r"[\s.!?]+")


def keyword_of(body: str) -> Keyword | None:
    """The keyword this whole message is, if it is one."""
    text = _NOISE.sub(" ", body.upper()).strip()
    if text in OPT_OUT_WORDS:
        return Keyword.OPT_OUT
    if text in OPT_IN_WORDS:
        return Keyword.OPT_IN
    if text in HELP_WORDS:
        return Keyword.HELP
    return None


def from_carrier_flag(flag: str | None) -> Keyword | None:
    """The keyword a carrier says it already acted on (and answered)."""
    return {"STOP": Keyword.OPT_OUT, "START": Keyword.OPT_IN, "HELP": Keyword.HELP}.get(flag or "")
