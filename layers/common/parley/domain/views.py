"""The inbox's message views and where each message is kept for them.

Two keys-only indexes serve the views. `by-view` (sparse, global) holds the work views the
machinery also reads (pending, failed, scheduled, suppressed = "did-not-trigger"). `by-team` holds
every message under `<team>#<box>`, the box being received, sent or deleted: a key that no status
change alters, so it costs one write unit when a text is stored and nothing after. "all" is the
team's received and sent boxes merged newest first; a deleted message sits in the deleted box only.
"""

from __future__ import annotations

from parley.domain.status import view_for
from parley.domain.vocabulary import Direction, MessageStatus

# The views a person picks, and what serves each.
BOX_VIEWS: dict[str, tuple[str, ...]] = {
    "all": ("received", "sent"),
    "received": ("received",),
    "sent": ("sent",),
    "deleted": ("deleted",),
}
WORK_VIEWS: dict[str, str] = {
    "pending": "pending",
    "failed": "failed",
    "scheduled": "scheduled",
    "did-not-trigger": "suppressed",
}
VIEWS: tuple[str, ...] = (
    "all",
    "received",
    "sent",
    "failed",
    "pending",
    "scheduled",
    "did-not-trigger",
    "deleted",
)

# Work views the sweep reads to move messages on: a deleted message stays in them (it goes on as it
# would; cancel a scheduled text to stop it), hidden from people by the API's filter.
_MACHINERY_VIEWS = frozenset({"pending", "scheduled"})


def box_for(direction: Direction, *, deleted: bool) -> str:
    if deleted:
        return "deleted"
    return "received" if direction is Direction.INBOUND else "sent"


def team_box(team: str, box: str) -> str:
    """The `by-team` index partition: one per team and box."""
    return f"{team}#{box}"


def indexed_view(status: MessageStatus, *, deleted: bool) -> str | None:
    """The `by-view` partition a message is kept under: its work view, unless it is deleted and the
    view is only for people (failed, suppressed)."""
    view = view_for(status)
    if deleted and view not in _MACHINERY_VIEWS:
        return None
    return view
