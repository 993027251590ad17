"""The one-way status machine for outbound messages.

Carriers retry and reorder receipts, so a receipt may only move a message forward: a late `sent`
never overwrites `delivered`, and a repeated receipt changes nothing.
"""

from __future__ import annotations

from parley.domain.vocabulary import MessageStatus as S

# Higher rank = further along. Receipts only ever raise the rank.
_RANK: dict[S, int] = {
    S.QUEUED: 0,
    S.SCHEDULED: 0,
    S.HELD: 0,
    S.RETRYING: 1,
    S.SENDING: 1,
    S.ACCEPTED: 2,
    S.SENT: 3,
    S.PARTIALLY_DELIVERED: 4,
    S.DELIVERED: 5,
    S.UNDELIVERED: 5,
    S.FAILED: 5,
    S.READ: 6,
    S.SUPPRESSED: 9,
    S.CANCELED: 9,
    S.RECEIVED: 9,
}

FINAL = frozenset({S.DELIVERED, S.UNDELIVERED, S.FAILED, S.READ, S.SUPPRESSED, S.CANCELED, S.RECEIVED})

# Statuses a person would call "on its way" (the Pending view).
PENDING = frozenset({S.QUEUED, S.SENDING, S.RETRYING, S.HELD})


def rank(status: S) -> int:
    return _RANK[status]


# What a carrier can say about a text we sent; anything else in a receipt is ignored.
CARRIER_REPORTED = frozenset(
    {
        S.ACCEPTED,
        S.SENDING,
        S.SENT,
        S.PARTIALLY_DELIVERED,
        S.DELIVERED,
        S.UNDELIVERED,
        S.FAILED,
        S.READ,
        S.CANCELED,
    }
)


def receipt_advances(current: S, reported: S) -> bool:
    """True when a carrier's receipt saying `reported` should replace `current`."""
    if reported not in CARRIER_REPORTED:
        return False
    if current in (S.SUPPRESSED, S.CANCELED, S.RECEIVED, S.READ):
        return False
    if current in (S.DELIVERED, S.UNDELIVERED, S.FAILED):
        # Only a read receipt can follow a delivery; nothing reopens a failure.
        return current is S.DELIVERED and reported is S.READ
    return _RANK[reported] > _RANK[current]


def part_receipt_advances(current: S, reported: S) -> bool:
    """As `receipt_advances`, for one part of a long text, where a `delivered` after the part's failure
    also counts: the phone has that part (the failure was the carrier's early word, or came late), so a
    partly delivered text whose last part arrives becomes delivered."""
    if current in (S.FAILED, S.UNDELIVERED) and reported in (S.DELIVERED, S.READ):
        return True
    return receipt_advances(current, reported)


def parts_status_advances(current: S, reported: S) -> bool:
    """As `receipt_advances`, for a long text's status `reported` by its parts' statuses: a part's late
    `delivered` takes a failed text to `partially_delivered` or `delivered`, as its parts now say, so the
    outcome does not depend on the order the parts' receipts arrive in."""
    if current in (S.FAILED, S.UNDELIVERED) and reported in (S.PARTIALLY_DELIVERED, S.DELIVERED):
        return True
    return receipt_advances(current, reported)


# A person may resend what the Failed view shows. That and a long text's parts (`parts_status_advances`)
# are the only ways out of those final statuses: a receipt for the whole text never reopens them. A partly
# delivered text is shown there too (the customer got part of it; a late `delivered` still moves it on),
# and resending it sends every part again.
FAILED_VIEW = frozenset({S.FAILED, S.UNDELIVERED, S.PARTIALLY_DELIVERED})
RESENDABLE = FAILED_VIEW


def resend_allowed(current: S) -> bool:
    """True when a person's resend may move a message from `current` back to `queued`."""
    return current in RESENDABLE


def view_for(status: S) -> str | None:
    """The sparse index partition a message appears under, if it belongs to a work view."""
    if status in PENDING:
        return "pending"
    if status in FAILED_VIEW:
        return "failed"
    if status is S.SCHEDULED:
        return "scheduled"
    if status is S.SUPPRESSED:
        return "suppressed"
    return None
