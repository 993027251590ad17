"""Which record an incoming text belongs to, when its customer number matches records. Pure.

First, the lead Parley made for an unknown number (`lead-<digits>`, no `crm_id`) stands in only until
a real record has the number: once one from the CRM or made by a person does, the lead is no longer
a candidate, even when the conversation is linked to it, so the conversation moves to the real record
(or, when several tie, becomes a conflict).

Then the rules, in order; each keeps the candidates it prefers and decides when one is left:

1. the record already linked to the conversation (while it still has this number);
2. a record owned by the user the text is addressed to (the owner of our number);
3. a record of the team that owns our number (`record.team == number.team`);
4. by record type: contact, then account, then opportunity, then lead;
5. active over inactive;
6. the most recently updated (a record with no `updated_at` counts as the oldest).

A rule no candidate satisfies (or that every candidate satisfies) keeps them all, and the next rule
decides. Records still tied after rule 6 are a conflict: nothing is chosen, and the candidates are
kept for a person to pick.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from parley.domain.models import RECORD_TYPES, ContactRecord, OurNumber

LINKED = "the record already linked to this conversation"
ONLY = "the only record with this number"
OWNER = "owned by the number's owner"
TEAM = "owned by a member of the number's team"
ACTIVE = "the only active record"
RECENT = "the most recently updated record"
NEW_LEAD = "created a lead for an unknown number"
NO_RECORD = "no record has this number"
OVER_LEAD = "the only record with this number besides the lead Parley made for it"


def _type_reason(record_type: str) -> str:
    return f"its type ({record_type}) ranks first: contact, account, opportunity, lead"


@dataclass(frozen=True)
class Routing:
    """The decision: the chosen record (None for none or a conflict), the records considered, why,
    and in a conflict the records that tied at every rule."""

    record: ContactRecord | None
    candidates: tuple[ContactRecord, ...]
    reason: str
    tied: tuple[ContactRecord, ...] = ()

    @property
    def conflict(self) -> bool:
        return bool(self.tied)

    @property
    def tied_ids(self) -> list[str]:
        return [c.contact_id for c in self.tied]


_OLDEST = datetime.min.replace(tzinfo=UTC)


def _updated(record: ContactRecord) -> datetime:
    at = record.updated_at
    if at is None:
        return _OLDEST
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def route(
    candidates: Sequence[ContactRecord],
    *,
    linked_id: str | None = None,
    number: OurNumber | None = None,
) -> Routing:
    """Pick the record for a text from `candidates` (the records with the customer's number).

    `linked_id` is the record the conversation is linked to; `number` is our number the text was
    sent to (its owner and team), None when it is not one of ours.
    """
    records = tuple({c.contact_id: c for c in candidates}.values())  # each record once
    if not records:
        return Routing(None, (), NO_RECORD)
    if len(records) == 1:
        return Routing(records[0], records, ONLY)
    real = [r for r in records if not made_by_parley(r)]
    if real and len(real) < len(records):  # the lead yields to the real records
        if len(real) == 1:
            return Routing(real[0], records, OVER_LEAD)
        return _ranked(real, records, linked_id=linked_id, number=number)
    return _ranked(list(records), records, linked_id=linked_id, number=number)


def _ranked(
    remaining: list[ContactRecord],
    records: tuple[ContactRecord, ...],
    *,
    linked_id: str | None,
    number: OurNumber | None,
) -> Routing:
    """Rules 1 to 6 over `remaining` (`records`: every record considered, kept on the decision)."""
    if linked_id is not None:
        for record in remaining:
            if record.contact_id == linked_id:
                return Routing(record, records, LINKED)
    rules: list[
        tuple[Callable[[list[ContactRecord]], list[ContactRecord]], Callable[[ContactRecord], str]]
    ] = []
    if number is not None and number.owner:
        owner = number.owner
        rules.append((lambda rs: [r for r in rs if r.owner == owner], lambda _: OWNER))
    if number is not None:
        team = number.team
        rules.append((lambda rs: [r for r in rs if r.team == team], lambda _: TEAM))
    rules += [
        (_best_type, lambda r: _type_reason(r.record_type)),
        (lambda rs: [r for r in rs if r.active], lambda _: ACTIVE),
        (_most_recent, lambda _: RECENT),
    ]
    for keep, reason in rules:
        kept = keep(remaining)
        if kept:
            remaining = kept
        if len(remaining) == 1:
            return Routing(remaining[0], records, reason(remaining[0]))
    tied = ", ".join(r.contact_id for r in remaining)
    return Routing(
        None,
        records,
        f"conflict: {len(remaining)} records tie on every rule ({tied}); not linked until a person picks one",
        tuple(remaining),
    )


def _best_type(records: list[ContactRecord]) -> list[ContactRecord]:
    best = min(RECORD_TYPES.index(r.record_type) for r in records)
    return [r for r in records if RECORD_TYPES.index(r.record_type) == best]


def _most_recent(records: list[ContactRecord]) -> list[ContactRecord]:
    latest = max(_updated(r) for r in records)
    return [r for r in records if _updated(r) == latest]


def made_by_parley(record: ContactRecord) -> bool:
    """Whether `record` is the lead routing made for an unknown number: its id derives from one of its
    numbers, and it is a lead with no CRM id. A record from the CRM, or one a person made or gave a
    CRM id or another type, is a real record."""
    return (
        record.record_type == "lead"
        and record.crm_id is None
        and any(record.contact_id == lead_id_for(phone) for phone in record.phones)
    )


LEAD_ID_PREFIX = "lead-"  # reserved: a record id a person chooses can't start with it


def lead_id_for(number: str) -> str:
    """The id of the lead created for an unknown number: derived from it, so it is created once."""
    return LEAD_ID_PREFIX + number.lstrip("+")


def new_lead(number: str, our: OurNumber | None, at: datetime) -> ContactRecord:
    """The lead a text from an unknown number creates: owned as our number is."""
    return ContactRecord(
        contact_id=lead_id_for(number),
        name=number,
        phone=number,
        record_type="lead",
        owner=our.owner if our else None,
        team=our.team if our else "default",
        updated_at=at,
    )
