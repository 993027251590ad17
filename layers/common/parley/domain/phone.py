"""E.164 normalisation, so one customer is one conversation however their number was typed."""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

from parley.redact import mask

DEFAULT_REGION = "US"

# Types that can receive a text. FIXED_LINE_OR_MOBILE is what NANP numbers resolve to, since the
# numbering plan can't tell them apart; rejecting those would reject every US number.
_TEXTABLE = {
    PhoneNumberType.MOBILE,
    PhoneNumberType.FIXED_LINE_OR_MOBILE,
    PhoneNumberType.VOIP,
    PhoneNumberType.PERSONAL_NUMBER,
    PhoneNumberType.PAGER,
    PhoneNumberType.TOLL_FREE,  # US/CA toll-free numbers are text-enabled
    PhoneNumberType.UNKNOWN,
}


class InvalidPhoneNumber(ValueError):
    """The input is not a number we can text; the message says why in words a person understands."""


def normalize_e164(raw: str, *, region: str = DEFAULT_REGION, require_mobile: bool = True) -> str:
    """Return `raw` as E.164 (+14155550100) or raise InvalidPhoneNumber with the reason."""
    text = (raw or "").strip()
    if not text:
        raise InvalidPhoneNumber("phone number is empty")
    if len(text) > 32:
        raise InvalidPhoneNumber("phone number is too long")
    try:
        parsed = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        raise InvalidPhoneNumber(f"'{text}' is not a phone number ({exc._msg})") from exc
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidPhoneNumber(f"'{text}' has the wrong number of digits")
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneNumber(f"'{text}' is not a valid number")
    number_type = phonenumbers.number_type(parsed)
    if require_mobile and number_type not in _TEXTABLE:
        kind = _type_name(number_type)
        raise InvalidPhoneNumber(f"'{text}' is a {kind} number and can't receive texts")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _type_name(number_type: int) -> str:
    names = {
        PhoneNumberType.FIXED_LINE: "landline",
        PhoneNumberType.PREMIUM_RATE: "premium-rate",
        PhoneNumberType.SHARED_COST: "shared-cost",
        PhoneNumberType.UAN: "universal access",
        PhoneNumberType.VOICEMAIL: "voicemail",
    }
    return names.get(number_type, "non-mobile")


__all__ = ["InvalidPhoneNumber", "mask", "normalize_e164"]
