"""Segment counting against vectors worked out from the GSM 03.38 tables and the concatenation rules.

The expected values here are derived by hand from the facts (160/153 septets, 70/67 UCS-2 units,
ESC pairs and surrogate pairs never split), not by calling the code under test.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

import pytest

from parley.domain.encoding import Encoding, SegmentInfo, analyze, is_gsm7, smart_encode

GSM = Encoding.GSM7
UCS = Encoding.UCS2

# The 127 characters of the default alphabet (ESC excluded) and the 10 of the extension table,
# written out independently of the module's tables.
F1_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
F2_EXTENSION = "\f^{}\\[~]|€"
GREEK_GSM = "ΔΦΓΛΩΠΨΣΘΞ"
# Greek capitals that look like Latin letters: only decode aliases in GSM0338.TXT, not encodable.
GREEK_LATIN_LOOKALIKES = (
    "\u0391\u0392\u0395\u0397\u0399\u039a\u039c\u039d\u039f\u03a1\u03a4\u03a5\u03a7\u0396"
)
EMOJI = "\U0001f600"  # 😀, outside the BMP: a surrogate pair in UTF-16
HAN = "中"


def _atom_units(ch: str, encoding: Encoding) -> int:
    if encoding is GSM:
        return 2 if ch in F2_EXTENSION else 1
    return len(ch.encode("utf-16-le")) // 2


def _assert_well_formed(info: SegmentInfo) -> None:
    """Parts add up, fit, end on atom boundaries (no split pair) and are filled greedily."""
    capacity = info.units_per_segment
    atoms = [_atom_units(ch, info.encoding) for ch in info.text]
    assert info.characters == len(info.text)
    assert info.units == sum(atoms)
    assert sum(info.parts) == info.units
    assert info.segments == len(info.parts)
    assert all(part <= capacity for part in info.parts)
    assert info.naive_segments <= info.segments
    if info.segments == 1:
        return
    # Every part boundary must coincide with a boundary between atoms.
    atom_ends: list[int] = []
    total = 0
    for units in atoms:
        total += units
        atom_ends.append(total)
    boundaries = set(atom_ends)
    cumulative = 0
    for index, part in enumerate(info.parts):
        assert part > 0
        cumulative += part
        assert cumulative in boundaries, f"part {index} ends inside a pair"
        if index < len(info.parts) - 1:
            next_atom = atoms[atom_ends.index(cumulative) + 1]
            assert part + next_atom > capacity, f"part {index} could have taken the next atom"


@dataclass(frozen=True)
class Vector:
    text: str
    encoding: Encoding
    units: int
    parts: tuple[int, ...]
    naive: int
    per_segment: int


VECTORS: dict[str, Vector] = {
    "empty": Vector("", GSM, 0, (0,), 0, 160),
    "a_160": Vector("a" * 160, GSM, 160, (160,), 1, 160),
    "a_161": Vector("a" * 161, GSM, 161, (153, 8), 2, 153),
    "a_306": Vector("a" * 306, GSM, 306, (153, 153), 2, 153),
    "a_307": Vector("a" * 307, GSM, 307, (153, 153, 1), 3, 153),
    "a_158_euro_fits": Vector("a" * 158 + "€", GSM, 160, (160,), 1, 160),
    "a_159_euro": Vector("a" * 159 + "€", GSM, 161, (153, 8), 2, 153),
    "euro_x80": Vector("€" * 80, GSM, 160, (160,), 1, 160),
    "euro_x81": Vector("€" * 81, GSM, 162, (152, 10), 2, 153),
    # The pair would straddle 153: it moves whole, so part 1 holds 152 and a third part appears.
    "a152_euro_a152": Vector("a" * 152 + "€" + "a" * 152, GSM, 306, (152, 153, 1), 2, 153),
    "bracket_x153": Vector("]" * 153, GSM, 306, (152, 152, 2), 2, 153),
    "crlf_161": Vector("a" * 80 + "\r\n" + "a" * 79, GSM, 161, (153, 8), 2, 153),
    "lf_160": Vector("a" * 80 + "\n" + "a" * 79, GSM, 160, (160,), 1, 160),
    "crlf_307": Vector("a" * 200 + "\r\n" + "a" * 105, GSM, 307, (153, 153, 1), 3, 153),
    "form_feed": Vector("\f", GSM, 2, (2,), 1, 160),
    "a_159_form_feed": Vector("a" * 159 + "\f", GSM, 161, (153, 8), 2, 153),
    "pipe": Vector("|", GSM, 2, (2,), 1, 160),
    "C_cedilla": Vector("Ç", GSM, 1, (1,), 1, 160),
    "c_cedilla": Vector("ç", UCS, 1, (1,), 1, 70),
    "raw_esc": Vector("\x1b", UCS, 1, (1,), 1, 70),
    "raw_esc_then_paren": Vector("a\x1b(", UCS, 3, (3,), 1, 70),
    "tab": Vector("\t", UCS, 1, (1,), 1, 70),
    "backtick": Vector("`", UCS, 1, (1,), 1, 70),
    "greek_delta": Vector("Δ", GSM, 1, (1,), 1, 160),
    "greek_capital_alpha": Vector("\u0391", UCS, 1, (1,), 1, 70),
    "e_acute_x70": Vector("é" * 70, GSM, 70, (70,), 1, 160),
    "e_combining_x70": Vector("e\u0301" * 70, UCS, 140, (67, 67, 6), 3, 67),
    "han_70": Vector(HAN * 70, UCS, 70, (70,), 1, 70),
    "han_71": Vector(HAN * 71, UCS, 71, (67, 4), 2, 67),
    "han_134": Vector(HAN * 134, UCS, 134, (67, 67), 2, 67),
    "emoji_1": Vector(EMOJI, UCS, 2, (2,), 1, 70),
    "emoji_x35": Vector(EMOJI * 35, UCS, 70, (70,), 1, 70),
    "emoji_x36": Vector(EMOJI * 36, UCS, 72, (66, 6), 2, 67),
    "emoji_x67": Vector(EMOJI * 67, UCS, 134, (66, 66, 2), 2, 67),
    "han68_emoji_fits": Vector(HAN * 68 + EMOJI, UCS, 70, (70,), 1, 70),
    "han69_emoji": Vector(HAN * 69 + EMOJI, UCS, 71, (67, 4), 2, 67),
    "han66_emoji_han5": Vector(HAN * 66 + EMOJI + HAN * 5, UCS, 73, (66, 7), 2, 67),
    # 67*2 units, but the emoji straddles the first boundary: three parts where naive says two.
    "han66_emoji_han66": Vector(HAN * 66 + EMOJI + HAN * 66, UCS, 134, (66, 67, 1), 2, 67),
    # One GSM extension char in UCS-2 mode is an ordinary single unit.
    "euro_in_ucs2": Vector("€" * 70 + "ç", UCS, 71, (67, 4), 2, 67),
}


@pytest.mark.parametrize("vector", list(VECTORS.values()), ids=list(VECTORS))
def test_vectors(vector: Vector) -> None:
    info = analyze(vector.text)

    assert info.text == vector.text
    assert info.encoding is vector.encoding
    assert info.units == vector.units
    assert info.parts == vector.parts
    assert info.segments == len(vector.parts)
    assert info.naive_segments == vector.naive
    assert info.units_per_segment == vector.per_segment
    assert info.characters == len(vector.text)
    assert info.smart_encoding_applied is False
    _assert_well_formed(info)


@pytest.mark.parametrize("ch", list(F1_BASIC), ids=[f"U+{ord(c):04X}" for c in F1_BASIC])
def test_every_basic_character_is_one_septet(ch: str) -> None:
    info = analyze(ch)

    assert (info.encoding, info.units) == (GSM, 1)


@pytest.mark.parametrize("ch", list(F2_EXTENSION), ids=[f"U+{ord(c):04X}" for c in F2_EXTENSION])
def test_every_extension_character_is_two_septets(ch: str) -> None:
    info = analyze(ch)

    assert (info.encoding, info.units, info.parts) == (GSM, 2, (2,))


def test_alphabet_sizes_match_the_spec() -> None:
    assert len(set(F1_BASIC)) == 127
    assert is_gsm7(F1_BASIC + F2_EXTENSION)
    assert analyze(F1_BASIC).units == 127


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", True),
        ("Hello, world!", True),
        ("Ç", True),
        ("ç", False),
        ("\x1b", False),
        (GREEK_GSM, True),
        ("€[]{}", True),
        ("a\tb", False),
        (EMOJI, False),
    ],
    ids=["empty", "ascii", "C_cedilla", "c_cedilla", "esc", "greek_gsm", "extension", "tab", "emoji"],
)
def test_is_gsm7(text: str, expected: bool) -> None:
    assert is_gsm7(text) is expected


@pytest.mark.parametrize(
    "ch", list(GREEK_LATIN_LOOKALIKES), ids=[f"U+{ord(c):04X}" for c in GREEK_LATIN_LOOKALIKES]
)
def test_latin_looking_greek_capitals_force_ucs2(ch: str) -> None:
    info = analyze("Hello " + ch)

    assert info.encoding is UCS
    assert info.non_gsm_characters == (ch,)


def test_non_gsm_characters_are_distinct_in_order_of_first_appearance() -> None:
    info = analyze("aç" + HAN + "ç" + EMOJI + HAN + "b")

    assert info.non_gsm_characters == ("ç", HAN, EMOJI)


def test_non_gsm_characters_is_empty_for_gsm7() -> None:
    assert analyze("plain [text] €").non_gsm_characters == ()


# --- smart encoding -----------------------------------------------------------------------------


def test_smart_encoding_turns_curly_quotes_into_gsm7() -> None:
    text = "\u201cHello\u201d it\u2019s"

    plain = analyze(text)
    smart = analyze(text, smart_encoding=True)

    assert plain.encoding is UCS
    assert plain.non_gsm_characters == ("\u201c", "\u201d", "\u2019")
    assert smart.encoding is GSM
    assert smart.text == '"Hello" it\'s'
    assert smart.units == 12
    assert smart.smart_encoding_applied is True
    assert smart.non_gsm_characters == ()


def test_smart_encoding_is_not_applied_when_an_emoji_remains() -> None:
    text = "\u201cHi\u201d " + EMOJI

    info = analyze(text, smart_encoding=True)

    assert info.smart_encoding_applied is False
    assert info.text == text  # the curly quotes are kept: all or nothing
    assert info.encoding is UCS
    assert info.units == 7
    assert info.non_gsm_characters == ("\u201c", "\u201d", EMOJI)


def test_smart_encoding_is_not_applied_when_an_unmapped_letter_remains() -> None:
    text = "Fran\u00e7ois \u2014 merci"

    info = analyze(text, smart_encoding=True)

    assert info.smart_encoding_applied is False
    assert info.text == text
    assert info.encoding is UCS


def test_smart_encoding_on_gsm7_text_changes_nothing() -> None:
    info = analyze("Already [plain] text", smart_encoding=True)

    assert info.smart_encoding_applied is False
    assert info.text == "Already [plain] text"
    assert info.encoding is GSM


def test_ellipsis_grows_but_gsm7_still_wins() -> None:
    text = "a" * 158 + "\u2026"

    plain = analyze(text)
    smart = analyze(text, smart_encoding=True)

    assert (plain.encoding, plain.units, plain.parts) == (UCS, 159, (67, 67, 25))
    assert (smart.encoding, smart.units, smart.parts) == (GSM, 161, (153, 8))
    assert smart.text.endswith("a...")
    assert smart.smart_encoding_applied is True
    assert smart.characters == 161


def test_smart_encoding_that_would_cost_more_segments_keeps_the_original() -> None:
    text = "\u2026" * 60  # one UCS-2 part; as "..." 180 septets, two GSM-7 parts

    assert analyze(smart_encode(text)).segments == 2
    info = analyze(text, smart_encoding=True)

    assert info.smart_encoding_applied is False
    assert info.text == text
    assert (info.encoding, info.units, info.segments) == (UCS, 60, 1)


def test_smart_encoding_at_an_equal_segment_count_still_applies() -> None:
    text = "\u2026" * 53  # 159 septets as "...": one part either way

    info = analyze(text, smart_encoding=True)

    assert info.smart_encoding_applied is True
    assert (info.encoding, info.units, info.segments) == (GSM, 159, 1)


def test_nbsp_becomes_exactly_one_space() -> None:
    info = analyze("a\u00a0b", smart_encoding=True)

    assert info.text == "a b"
    assert info.smart_encoding_applied is True
    assert (info.encoding, info.units) == (GSM, 3)


def test_smart_encoding_to_extension_characters_costs_two_septets_each() -> None:
    info = analyze("\uff3b\uff11\uff3d", smart_encoding=True)  # fullwidth [1]

    assert info.text == "[1]"
    assert info.smart_encoding_applied is True
    assert (info.encoding, info.units) == (GSM, 5)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("\u201cquoted\u201d", '"quoted"'),
        ("\u00abguillemets\u00bb", '"guillemets"'),
        ("\u2018single\u2019", "'single'"),
        ("don\u02bct", "don't"),
        ("`tick\u00b4", "'tick'"),
        ("en\u2013dash em\u2014dash", "en-dash em-dash"),
        ("\u2022 bullet", "- bullet"),
        ("wait\u2026", "wait..."),
        ("a\u2009b\u202fc\u3000d", "a b c d"),
        ("zero\u200bwidth\ufeff", "zerowidth"),
        ("\uff28\uff45\uff4c\uff4c\uff4f\uff01", "Hello!"),
        ("\uff40", "'"),
        ("\u2039a\u203a", "<a>"),
        ("keep \u00e7 " + EMOJI + " " + HAN, "keep \u00e7 " + EMOJI + " " + HAN),
    ],
    ids=[
        "curly_double",
        "guillemets",
        "curly_single",
        "modifier_apostrophe",
        "grave_acute",
        "dashes",
        "bullet",
        "ellipsis",
        "unicode_spaces",
        "zero_width_removed",
        "fullwidth_ascii",
        "fullwidth_grave_to_apostrophe",
        "single_guillemets",
        "unmapped_untouched",
    ],
)
def test_smart_encode(raw: str, expected: str) -> None:
    assert smart_encode(raw) == expected


def test_every_fullwidth_ascii_form_smart_encodes_to_gsm7() -> None:
    fullwidth = "".join(chr(code) for code in range(0xFF01, 0xFF5F))

    encoded = smart_encode(fullwidth)

    assert is_gsm7(encoded)
    assert len(encoded) == len(fullwidth)


# --- the result object --------------------------------------------------------------------------


def test_encoding_values_are_the_wire_names() -> None:
    assert (str(Encoding.GSM7), str(Encoding.UCS2)) == ("GSM-7", "UCS-2")


def test_segment_info_is_immutable() -> None:
    info = analyze("hi")

    with pytest.raises(dataclasses.FrozenInstanceError):
        info.segments = 2  # type: ignore[misc]


# --- property-style check with a fixed seed ----------------------------------------------------

_ALPHABET = list("ab \n\r@£Δ_Ç") + list(F2_EXTENSION) + ["ç", HAN, EMOJI, "\U0001f44d\U0001f3fd", "\u0301"]


@pytest.mark.parametrize("seed", range(4), ids=lambda seed: f"seed{seed}")
def test_random_texts_are_split_consistently(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(250):
        pool = rng.sample(_ALPHABET, rng.randint(1, 5))
        length = rng.choice([rng.randint(0, 80), rng.randint(140, 175), rng.randint(150, 700)])
        text = "".join(rng.choice(pool) for _ in range(length))

        info = analyze(text)

        assert info.encoding is (GSM if set(text) <= set(F1_BASIC + F2_EXTENSION) else UCS)
        _assert_well_formed(info)
