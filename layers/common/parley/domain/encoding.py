"""SMS encoding and segment counting, so a preview shows the count the carrier will bill.

Rules (3GPP TS 23.038 / 23.040 as implemented by Twilio, Android and the split libraries):

* GSM-7 iff every code point is in the default alphabet or its extension table (3GPP TS 23.038
  6.2.1); a raw ESC (U+001B) is not a character of the alphabet, so it forces UCS-2.
* Extension characters cost ESC + code = 2 septets and that pair is never split across parts;
  in UCS-2 a surrogate pair (non-BMP code point) is never split either. `segments` is the number
  of parts actually built, which can be one more than the naive ``ceil(units / 153)``.
* Atoms are code points (plus their ESC), not grapheme clusters: the minimal rule every sender
  obeys. Twilio additionally keeps grapheme clusters whole, which differs only for flags, ZWJ
  sequences and combining marks that straddle a part boundary.
* Smart encoding is all-or-nothing, like Twilio/Bird/Webex: look-alikes are substituted only if
  the whole result is then GSM-7; otherwise the original text is sent as UCS-2.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Encoding", "SegmentInfo", "analyze", "is_gsm7", "smart_encode"]


class Encoding(StrEnum):
    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """What a message costs: the text actually sent, its encoding and how it is split into parts."""

    text: str
    encoding: Encoding
    segments: int
    units: int
    characters: int
    units_per_segment: int
    parts: tuple[int, ...]
    naive_segments: int
    smart_encoding_applied: bool
    non_gsm_characters: tuple[str, ...]


# 140 octets of user data per SMS; a concatenated part spends 6 of them on the UDH (F5, F6).
GSM7_SINGLE = 160
GSM7_CONCAT = 153
UCS2_SINGLE = 70
UCS2_CONCAT = 67

# The default alphabet indexed by septet value (F1, F3). Index 0x1B is ESC, which is not a
# character; 0x09 is capital C-cedilla (small c-cedilla is only a decode alias in GSM0338.TXT).
_GSM_BASIC_TABLE = (
    "@\u00a3$\u00a5\u00e8\u00e9\u00f9\u00ec\u00f2\u00c7\n\u00d8\u00f8\r\u00c5\u00e5"  # 0x00
    "\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\x1b\u00c6\u00e6\u00df\u00c9"  # 0x10
    " !\"#\u00a4%&'()*+,-./"  # 0x20
    "0123456789:;<=>?"  # 0x30
    "\u00a1ABCDEFGHIJKLMNO"  # 0x40
    "PQRSTUVWXYZ\u00c4\u00d6\u00d1\u00dc\u00a7"  # 0x50
    "\u00bfabcdefghijklmno"  # 0x60
    "pqrstuvwxyz\u00e4\u00f6\u00f1\u00fc\u00e0"  # 0x70
)
_ESC = "\x1b"

# Extension table: character -> code after ESC (F2). Form feed is here, so it costs 2 septets.
_GSM_EXTENSION_TABLE: dict[str, int] = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "\u20ac": 0x65,
}

_GSM_BASIC: frozenset[str] = frozenset(_GSM_BASIC_TABLE) - {_ESC}
_GSM_EXTENSION: frozenset[str] = frozenset(_GSM_EXTENSION_TABLE)
_GSM_ALL: frozenset[str] = _GSM_BASIC | _GSM_EXTENSION
_GSM_EXTENSION_CHARS: tuple[str, ...] = tuple(_GSM_EXTENSION_TABLE)


def _build_smart_table() -> dict[int, str]:
    """Look-alike -> GSM-7 replacement (F10), as a str.translate table built once at import."""
    groups: dict[str, str] = {
        # Double quotes, guillemets and primes. U+201E/U+2033 go beyond Twilio's list but are
        # unambiguous look-alikes.
        '"': "\u00ab\u00bb\u201c\u201d\u201e\u201f\u02ba\u02ee\u275d\u275e\u301d\u301e\u2033",
        # Single quotes, apostrophes, accents used as apostrophes; U+201A/U+2032 are extras.
        "'": "\u2018\u2019\u201a\u201b\u02b9\u02bb\u02bc\u02bd\u02c8\u02ca\u02cb\u00b4`\u275b\u275c\u2032",
        # Hyphens, dashes, bullet; U+2011/U+2012/U+2212 are extras.
        "-": "\u2010\u2011\u2012\u2013\u2014\u2015\u2043\u2022\u2212",
        "<": "\u2039",
        ">": "\u203a",
        # Unicode spaces become one space each (not two, which Twilio's JS emulation uses).
        " ": "\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000",
        # Zero-width and invisible format characters are dropped.
        "": "\u200b\u200c\u200d\u2060\ufeff\u00ad",
    }
    table: dict[str, str] = {ch: repl for repl, chars in groups.items() for ch in chars}
    table["\u2026"] = "..."
    # Fullwidth ASCII forms U+FF01..U+FF5E sit 0xFEE0 above their ASCII twins.
    for code in range(0xFF01, 0xFF5F):
        table.setdefault(chr(code), chr(code - 0xFEE0))
    # Resolve chains (fullwidth grave -> ` -> ') so every replacement is GSM-7 in one pass.
    resolved = {ch: "".join(table.get(c, c) for c in repl) for ch, repl in table.items()}
    bad = {ch: repl for ch, repl in resolved.items() if ch in _GSM_ALL or not _GSM_ALL.issuperset(repl)}
    if bad:  # a typo in the table above must fail loudly, not produce UCS-2 silently
        raise RuntimeError(f"smart-encoding table is inconsistent: {bad!r}")
    return {ord(ch): repl for ch, repl in resolved.items()}


_SMART_TABLE: dict[int, str] = _build_smart_table()


def is_gsm7(text: str) -> bool:
    """True if every code point is in the GSM-7 default alphabet or its extension table."""
    return _GSM_ALL.issuperset(text)


def smart_encode(text: str) -> str:
    """Replace Unicode look-alikes with GSM-7 characters; other characters are left as they are."""
    return text.translate(_SMART_TABLE)


def analyze(text: str, *, smart_encoding: bool = False) -> SegmentInfo:
    """Work out encoding, units and the built parts of `text`, optionally after smart encoding.

    Smart encoding is kept only when the whole result is GSM-7 and takes no more segments than the
    original: "..." for an ellipsis grows the text, and 60 ellipses fit one UCS-2 part but not one
    GSM-7 part."""
    if _GSM_ALL.issuperset(text):
        return _analyze_gsm7(text, False)
    original = _analyze_ucs2(text, False)
    if smart_encoding:
        candidate = text.translate(_SMART_TABLE)
        if _GSM_ALL.issuperset(candidate):
            smart = _analyze_gsm7(candidate, True)
            if smart.segments <= original.segments:
                return smart
    return original


def _analyze_gsm7(text: str, applied: bool) -> SegmentInfo:
    doubles = sum(map(text.count, _GSM_EXTENSION_CHARS))
    units = len(text) + doubles
    if units <= GSM7_SINGLE:
        parts: tuple[int, ...] = (units,)
    elif doubles:
        parts = _split(((2 if ch in _GSM_EXTENSION else 1) for ch in text), GSM7_CONCAT)
    else:
        parts = _split_even(units, GSM7_CONCAT)
    return _info(text, Encoding.GSM7, units, parts, GSM7_SINGLE, GSM7_CONCAT, applied, ())


def _analyze_ucs2(text: str, applied: bool) -> SegmentInfo:
    # surrogatepass: a lone surrogate (possible in a Python str) still counts as one unit.
    units = len(text.encode("utf-16-le", "surrogatepass")) // 2
    if units <= UCS2_SINGLE:
        parts: tuple[int, ...] = (units,)
    elif units != len(text):
        parts = _split(((2 if ch > "\uffff" else 1) for ch in text), UCS2_CONCAT)
    else:
        parts = _split_even(units, UCS2_CONCAT)
    non_gsm = tuple(dict.fromkeys(ch for ch in text if ch not in _GSM_ALL))
    return _info(text, Encoding.UCS2, units, parts, UCS2_SINGLE, UCS2_CONCAT, applied, non_gsm)


def _split(weights: Iterable[int], capacity: int) -> tuple[int, ...]:
    """Greedy fill; an atom that does not fit starts the next part (never split a pair)."""
    parts: list[int] = []
    current = 0
    for weight in weights:
        if current + weight > capacity:
            parts.append(current)
            current = weight
        else:
            current += weight
    parts.append(current)
    return tuple(parts)


def _split_even(units: int, capacity: int) -> tuple[int, ...]:
    """Parts for a text of single-unit atoms only: full parts and the remainder."""
    full, rest = divmod(units, capacity)
    return (capacity,) * full + ((rest,) if rest else ())


def _info(
    text: str,
    encoding: Encoding,
    units: int,
    parts: tuple[int, ...],
    single: int,
    concat: int,
    applied: bool,
    non_gsm: tuple[str, ...],
) -> SegmentInfo:
    segments = len(parts)
    if units == 0:
        naive = 0  # what ceil(units / capacity) says; we still build (and count) one empty part
    elif units <= single:
        naive = 1
    else:
        naive = -(-units // concat)
    return SegmentInfo(
        text=text,
        encoding=encoding,
        segments=segments,
        units=units,
        characters=len(text),
        units_per_segment=single if segments == 1 else concat,
        parts=parts,
        naive_segments=naive,
        smart_encoding_applied=applied,
        non_gsm_characters=non_gsm,
    )
