"""E.164 normalisation: one customer, one conversation, however the number was typed."""

from __future__ import annotations

import pytest

from parley.domain.phone import InvalidPhoneNumber, mask, normalize_e164


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+14155550100", "US", "+14155550100"),
        ("(415) 555-0100", "US", "+14155550100"),
        ("415.555.0100", "US", "+14155550100"),
        ("1-415-555-0100", "US", "+14155550100"),
        ("+1 415 555 0100", "US", "+14155550100"),
        ("  +1 (212) 555-0123  ", "US", "+12125550123"),
        ("tel:+14155550100", "US", "+14155550100"),
        ("+1 800 555 0100", "US", "+18005550100"),
        ("07400 123456", "GB", "+447400123456"),
        ("+44 7400 123456", "US", "+447400123456"),
        ("0044 7400 123456", "GB", "+447400123456"),
        ("+33 6 12 34 56 78", "US", "+33612345678"),
    ],
    ids=[
        "e164",
        "us_parentheses",
        "us_dots",
        "us_trunk_prefix",
        "us_spaced",
        "surrounding_whitespace",
        "tel_uri",
        "us_toll_free",
        "uk_national",
        "uk_international_with_other_default_region",
        "uk_idd_prefix",
        "fr_mobile",
    ],
)
def test_normalises_to_e164(raw: str, region: str, expected: str) -> None:
    assert normalize_e164(raw, region=region) == expected


def test_default_region_is_us() -> None:
    assert normalize_e164("4155550100") == "+14155550100"


def test_same_number_typed_differently_is_one_key() -> None:
    typed = ["(415) 555-0100", "+1 415-555-0100", "415 555 0100", "14155550100"]

    assert {normalize_e164(raw) for raw in typed} == {"+14155550100"}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("1" * 40, "too long"),
        ("hello", "is not a phone number"),
        ("+999 1234", "is not a phone number"),
        ("12", "wrong number of digits"),
        ("+1 415 555", "wrong number of digits"),
        ("+1 415 555 01000", "wrong number of digits"),
        ("+1 099 555 0100", "is not a valid number"),
        ("+1 200 555 0100", "is not a valid number"),
        ("+442071838750", "landline"),
        ("+49 30 901820", "landline"),
        ("+19005550100", "premium-rate"),
    ],
    ids=[
        "empty",
        "blank",
        "too_long",
        "garbage",
        "unknown_country_code",
        "too_short",
        "us_too_short",
        "us_too_long",
        "us_area_code_starting_0",
        "us_unassigned_area_code",
        "uk_landline",
        "de_landline",
        "us_premium_rate",
    ],
)
def test_rejects_with_the_reason(raw: str, reason: str) -> None:
    with pytest.raises(InvalidPhoneNumber, match=reason) as caught:
        normalize_e164(raw)

    if raw.strip() and len(raw) <= 32:
        assert raw.strip() in str(caught.value)  # the person sees what they typed


def test_landline_message_says_it_cannot_receive_texts() -> None:
    with pytest.raises(InvalidPhoneNumber, match=r"'\+442071838750' is a landline number and can't receive"):
        normalize_e164("+442071838750")


def test_invalid_phone_number_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        normalize_e164("not a number")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("+442071838750", "+442071838750"), ("+19005550100", "+19005550100")],
    ids=["uk_landline", "us_premium_rate"],
)
def test_require_mobile_false_accepts_any_valid_number(raw: str, expected: str) -> None:
    assert normalize_e164(raw, require_mobile=False) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [("", "is empty"), ("hello", "is not a phone number"), ("+1 099 555 0100", "is not a valid number")],
    ids=["empty", "garbage", "invalid"],
)
def test_require_mobile_false_still_rejects_invalid_input(raw: str, reason: str) -> None:
    with pytest.raises(InvalidPhoneNumber, match=reason):
        normalize_e164(raw, require_mobile=False)


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("+14155550100", "+1********00"),
        ("+123456", "+1***56"),
        ("+1234", "*****"),
        ("+1", "**"),
        ("", ""),
    ],
    ids=["us", "six_chars", "five_chars_fully_masked", "tiny", "empty"],
)
def test_mask(number: str, expected: str) -> None:
    assert mask(number) == expected


@pytest.mark.parametrize("number", ["+14155550100", "+447400123456", "+33612345678"], ids=["us", "uk", "fr"])
def test_mask_keeps_length_and_last_two_digits_and_hides_the_middle(number: str) -> None:
    masked = mask(number)

    assert len(masked) == len(number)
    assert masked.startswith("+")
    assert masked.endswith(number[-2:])
    assert masked[3:-2] == "*" * (len(number) - 5)
