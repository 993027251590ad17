"""Records a person creates or edits through the API: contacts, accounts, opportunities and leads.

A record belongs to a team; a caller sees and changes only their teams' records (another team's
record answers as absent; an admin sees all). Numbers are stored in E.164, so routing and the
digest find the record by any of them whatever way they were typed.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from parley.access import Caller
from parley.domain.models import ContactRecord, RecordType
from parley.domain.phone import normalize_e164
from parley.domain.routing import LEAD_ID_PREFIX
from parley.ports import Clock, ContactRepository


class RecordNotFound(LookupError):
    """Absent, or another team's: the API says the same in both cases (404)."""


class RecordExists(Exception):
    """A record with this id exists already (409)."""


# Custom fields are bounded so a record is refused with a reason long before DynamoDB's 400 KB item
# limit: a field's name and value, and all of them together (as stored, in UTF-8 JSON).
MAX_FIELD_NAME = 100
MAX_FIELD_VALUE = 2000
MAX_FIELDS_BYTES = 32 * 1024


class RecordDraft(BaseModel):
    """What a person may set on a record."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    phones: list[str] = Field(min_length=1, max_length=40)
    record_type: RecordType = "contact"
    first_name: str | None = Field(default=None, max_length=100)
    last_name: str | None = Field(default=None, max_length=100)
    email: str | None = Field(default=None, max_length=254)
    owner: str | None = Field(default=None, max_length=200)
    active: bool = Field(default=True, strict=True)  # 0 or "no" is a mistake, not false
    crm_id: str | None = Field(default=None, max_length=200)
    fields: dict[
        Annotated[str, StringConstraints(min_length=1, max_length=MAX_FIELD_NAME)],
        Annotated[str, StringConstraints(max_length=MAX_FIELD_VALUE)],
    ] = Field(default_factory=dict, max_length=50)

    @field_validator("phones")
    @classmethod
    def _e164(cls, phones: list[str]) -> list[str]:
        # a landline may be a record's number (an office line), so any valid number is accepted
        return list(dict.fromkeys(normalize_e164(p, require_mobile=False) for p in phones))

    @field_validator("fields")
    @classmethod
    def _fields_fit(cls, fields: dict[str, str]) -> dict[str, str]:
        size = len(json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode())
        if size > MAX_FIELDS_BYTES:
            raise ValueError(
                f"the fields take {size} bytes together; at most {MAX_FIELDS_BYTES} fit in a record"
            )
        return fields


class NewRecord(RecordDraft):
    record_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.:-]{1,100}$",
        description=f"Else one is made. Ids starting `{LEAD_ID_PREFIX}` are the routing's: refused (400).",
    )

    @field_validator("record_id")
    @classmethod
    def _not_reserved(cls, record_id: str | None) -> str | None:
        # The routing's lead ids derive from a number: one taken would tell that the number texted us.
        if record_id is not None and record_id.startswith(LEAD_ID_PREFIX):
            raise ValueError(
                f"ids starting {LEAD_ID_PREFIX!r} are reserved for the leads routing makes: "
                "choose another id, or leave it out"
            )
        return record_id


class RecordService:
    def __init__(self, contacts: ContactRepository, clock: Clock, *, region: str = "US") -> None:
        self._contacts = contacts
        self._clock = clock
        self._region = region

    def create(self, draft: NewRecord, *, team: str, user: str) -> ContactRecord:
        record_id = draft.record_id or f"r-{uuid.uuid4().hex[:16]}"
        record = self._record(record_id, draft, team=team, owner=draft.owner or user)
        if not self._contacts.create(record):
            raise RecordExists(f"a record with id {record_id!r} exists already")
        return record

    def get(self, record_id: str, *, caller: Caller) -> ContactRecord:
        record = self._contacts.get(record_id)
        if record is None or not caller.sees(record.team):
            raise RecordNotFound(f"no record {record_id!r}")
        return record

    def update(self, record_id: str, draft: RecordDraft, *, caller: Caller) -> ContactRecord:
        current = self.get(record_id, caller=caller)
        # it stays its team's: an admin (or a member of several teams) editing it doesn't move it
        record = self._record(record_id, draft, team=current.team, owner=draft.owner or current.owner)
        self._contacts.save(record)
        return record

    def find(self, phone: str, *, caller: Caller) -> list[ContactRecord]:
        number = normalize_e164(phone, region=self._region, require_mobile=False)
        return [r for r in self._contacts.find_by_phone(number) if caller.sees(r.team)]

    def _record(self, record_id: str, draft: RecordDraft, *, team: str, owner: str | None) -> ContactRecord:
        values: dict[str, Any] = draft.model_dump(exclude={"record_id"})
        values.update(contact_id=record_id, team=team, owner=owner, updated_at=self._clock())
        return ContactRecord.model_validate(values)
