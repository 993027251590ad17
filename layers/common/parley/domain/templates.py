"""Rendering of message templates with merge fields.

Templates are text with `{{field}}` or `{{field|default}}` placeholders. Rendering is plain string
substitution (no expression language), so a template can never reach Python.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\|([^}]*))?\}\}")


class MissingMergeField(ValueError):
    """A placeholder had no value and no default; sending `{{first_name}}` to a customer is worse."""

    def __init__(self, fields: list[str]) -> None:
        self.fields = fields
        names = ", ".join(fields)
        super().__init__(f"no value for merge field(s): {names}")


def malformed_placeholders(body: str) -> list[str]:
    """Text that looks like a merge field but isn't one (it would reach the customer as typed)."""
    found = re.findall(r"\{\{.*?\}\}", body)
    bad = [chunk for chunk in found if not _PLACEHOLDER.fullmatch(chunk)]
    if body.count("{{") != len(found):
        bad.append("{{")
    return bad


def placeholders(body: str) -> list[str]:
    return list(dict.fromkeys(m.group(1) for m in _PLACEHOLDER.finditer(body)))


def render(body: str, values: Mapping[str, str | None]) -> str:
    """Fill every placeholder or raise MissingMergeField naming each one that can't be filled."""
    missing: list[str] = []

    def fill(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = values.get(name)
        if value is not None and str(value).strip():
            return str(value)
        if default is not None:
            return default.strip()
        if name not in missing:
            missing.append(name)
        return ""

    text = _PLACEHOLDER.sub(fill, body)
    if missing:
        raise MissingMergeField(missing)
    return text
