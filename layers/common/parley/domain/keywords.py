"""Opt-out, opt-in and help keywords in a customer's reply.

A keyword counts only as the whole message (ignoring case, spaces and trailing punctuation), as
carriers and the CTIA guidelines do: "stop" opts out, "please don't stop" does not.
"""

from __future__ import annotations

import re
from enum import StrEnum

from parley.domain.rate import NumberType


class Keyword(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


# The carriers' defaults together (carriers.md): Twilio adds REVOKE and OPTOUT (1.5), Telnyx STOP ALL
# (2.5), Plivo UNSUB (6.5), AWS ARRET, OPT-OUT, OPTOUT, REMOVE and TD (9.5). A customer who says one
# of these to any carrier's number has opted out, whether or not that carrier acts on it.
OPT_OUT_WORDS = frozenset(
    {
        "STOP",
        "STOPALL",
        "STOP ALL",
        "UNSUBSCRIBE",
        "UNSUB",
        "CANCEL",
        "END",
        "QUIT",
        "REVOKE",
        "OPTOUT",
        "OPT-OUT",
        "REMOVE",
        "ARRET",
        "TD",
    }
)
OPT_IN_WORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_WORDS = frozenset({"HELP", "INFO"})

_NOISE = re.compile(r"[\s.!?]+")


def normalized(body: str) -> str:
    """The message as keywords are matched: upper case, spaces and trailing punctuation folded."""
    return _NOISE.sub(" ", body.upper()).strip()


def keyword_of(body: str) -> Keyword | None:
    """The keyword this whole message is, if it is one."""
    text = normalized(body)
    if text in OPT_OUT_WORDS:
        return Keyword.OPT_OUT
    if text in OPT_IN_WORDS:
        return Keyword.OPT_IN
    if text in HELP_WORDS:
        return Keyword.HELP
    return None


def from_carrier_flag(flag: str | None) -> Keyword | None:
    """The keyword a carrier flagged as one it acts on (whether it answered: `answered_by_carrier`)."""
    return {"STOP": Keyword.OPT_OUT, "START": Keyword.OPT_IN, "HELP": Keyword.HELP}.get(flag or "")


# Twilio answers its keywords on long codes and toll-free, not on short codes; on toll-free a network
# layer handles opt-outs and opts back in on START and UNSTOP alone, not YES (carriers.md 1.5).
TWILIO_TOLL_FREE_OPT_IN_WORDS = frozenset({"START", "UNSTOP"})


def answered_by_carrier(carrier: str, flag: str | None, body: str, number_type: NumberType | None) -> bool:
    """Whether the carrier itself answered the keyword it flagged, given the type of our number the
    customer texted (None: unknown, as a long code). Twilio flags its keywords whatever the number."""
    if flag is None:
        return False
    if carrier != "twilio" or number_type is None or number_type is NumberType.LONG_CODE:
        return True
    if number_type is NumberType.SHORT_CODE:
        return False
    return flag != "START" or normalized(body) in TWILIO_TOLL_FREE_OPT_IN_WORDS
