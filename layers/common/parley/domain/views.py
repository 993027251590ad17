"""The inbox's message views and where each message is kept for them.

Three keys-only indexes serve the views. `by-due` (sparse, global) holds the work views the sweep
reads, pending (with held texts in a partition of their own) and scheduled, keyed by when each
message is next due, so the sweep reads exactly the due ones, oldest first. `by-view` (sparse,
global) holds the other work views, failed and suppressed ("did-not-trigger"), by creation time.
`by-team` holds every message under `<team>#<box>`, the box being received, sent or deleted: a key
that no status change alters, so it costs one write unit when a text is stored and nothing after.
"all" is the team's received and sent boxes merged newest first; a deleted message sits in the
deleted box only.
"""

from __future__ import annotations

from datetime import datetime

from parley.domain.models import Message
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

# The `by-due` partitions serving a work view (the others are `by-view` partitions of their own).
DUE_PARTITIONS: dict[str, tuple[str, ...]] = {
    "pending": ("pending", "held"),
    "scheduled": ("scheduled",),
}

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


def work_partitions(name: str) -> list[tuple[str, str]]:
    """The index partitions (hash attribute, value) that serve the work view `name`."""
    if name in DUE_PARTITIONS:
        return [("due_view", p) for p in DUE_PARTITIONS[name]]
    return [("view", WORK_VIEWS[name])]


def view_attribute(status: MessageStatus, *, deleted: bool) -> str | None:
    """The `by-view` partition a message is kept under: failed or suppressed (pending and scheduled
    are kept in `by-due`)."""
    view = indexed_view(status, deleted=deleted)
    return None if view in DUE_PARTITIONS else view


def due_entry(message: Message) -> tuple[str, datetime] | None:
    """The `by-due` partition a message is kept under and its due time, if it waits for the sweep.

    Scheduled and held texts are due at `next_attempt_at`. A queued, sending or retrying text is
    keyed by the latest of its creation, its resend and its next attempt: the sweep looks at it a
    while after that, when its job may be lost or its worker stopped. The key is the same for a
    queued text and for its claim (`sending`), so a text sent at once rewrites this index only when
    it enters and leaves the view, as before.
    """
    status = message.status
    if view_for(status) not in DUE_PARTITIONS:
        return None
    if status in (MessageStatus.SCHEDULED, MessageStatus.HELD):
        return status.value, message.next_attempt_at or message.created_at
    times = [message.created_at, message.resent_at, message.next_attempt_at]
    return "pending", max(t for t in times if t is not None)
