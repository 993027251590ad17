"""Search terms for conversations: what is indexed, and how a query becomes one prefix lookup.

A conversation is found by any run of 3 or more digits of its number and by the prefix of any word
of its record's name. Both become `begins_with` lookups on one sorted key: every suffix of the
number's digits (`n#<suffix>`, so a substring is a prefix of some suffix) and every lower-cased word
of the name (`w#<word>`). A hit is counted once, on the smallest of the conversation's terms that
starts with the query, which de-duplicates across pages without remembering anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MIN_DIGITS = 3
MAX_WORDS = 20  # a name's words indexed; the rest of a very long name is not searchable
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_NUMBER_LIKE = re.compile(r"[\d\s()+.\-]+")


def number_terms(customer_number: str) -> set[str]:
    digits = "".join(c for c in customer_number if c.isdigit())
    return {f"n#{digits[i:]}" for i in range(len(digits) - MIN_DIGITS + 1)}


def name_words(name: str | None) -> list[str]:
    return list(dict.fromkeys(w.casefold() for w in _WORD.findall(name or "")))[:MAX_WORDS]


def word_terms(name: str | None) -> set[str]:
    return {f"w#{word}" for word in name_words(name)}


def terms_for(customer_number: str, name: str | None) -> set[str]:
    return number_terms(customer_number) | word_terms(name)


@dataclass(frozen=True)
class SearchQuery:
    """One prefix to look up (`prefix`) and the other words every hit's name must also start."""

    prefix: str
    also: tuple[str, ...] = ()

    def matches(self, customer_number: str, name: str | None, term: str) -> bool:
        """Whether a hit on `term` counts: the other words match, and `term` is the smallest of the
        conversation's terms the prefix finds (so each conversation counts once)."""
        words = name_words(name)
        if not all(any(w.startswith(a) for w in words) for a in self.also):
            return False
        found = [t for t in terms_for(customer_number, name) if t.startswith(self.prefix)]
        return bool(found) and term == min(found)


def parse_query(q: str) -> SearchQuery:
    """A number (3 or more digits, as a person types it) or words; ValueError with the reason."""
    text = q.strip()
    if not text:
        raise ValueError("'q' is empty: give a name, or 3 or more digits of a number")
    if len(text) > 100:
        raise ValueError("'q' is longer than 100 characters")
    if _NUMBER_LIKE.fullmatch(text):
        digits = "".join(c for c in text if c.isdigit())
        if len(digits) < MIN_DIGITS:
            raise ValueError(f"'q' needs at least {MIN_DIGITS} digits to search numbers")
        return SearchQuery(f"n#{digits}")
    words = sorted(name_words(text), key=len, reverse=True)
    if not words:
        raise ValueError("'q' has no letters or digits to search for")
    return SearchQuery(f"w#{words[0]}", tuple(words[1:]))
