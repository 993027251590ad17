"""Shared SMS segment vectors: one file that the server's encoding, the web counter (sms.js) and the
live preview are all checked against, so the three can never drift apart unnoticed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SMS_SEGMENTS = Path(__file__).with_name("sms_segments.json")

# What the preview endpoint calls each field of a vector's expectation.
PREVIEW_FIELDS = {
    "chars": "characters",
    "encoding": "encoding",
    "segments": "segments",
    "units": "units",
    "smart_applied": "smart_encoding_applied",
}


@dataclass(frozen=True)
class SmsVector:
    id: str
    text: str
    smart: bool
    expected: dict[str, Any]

    def from_preview(self, preview: dict[str, Any]) -> dict[str, Any]:
        """A preview answer (the API's field names) in the vector's field names."""
        return {ours: preview[theirs] for ours, theirs in PREVIEW_FIELDS.items()}

    @property
    def typeable(self) -> bool:
        """A textarea keeps the text as it is: the HTML spec turns CR and CRLF into LF in its value."""
        return "\r" not in self.text


def sms_vectors() -> list[SmsVector]:
    """Every vector, its text built from the pieces ([string, repeat count]) the file spells it in."""
    data = json.loads(SMS_SEGMENTS.read_text(encoding="utf-8"))
    return [
        SmsVector(
            id=raw["id"],
            text="".join(piece * count for piece, count in raw["pieces"]),
            smart=bool(raw["smart"]),
            expected=dict(raw["expected"]),
        )
        for raw in data["vectors"]
    ]
