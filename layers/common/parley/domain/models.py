"""Canonical events and records shared by every flow.

Carrier payloads are parsed into these at the edge so the rest of Parley never sees a carrier's
vocabulary; records are what the repositories store and the API returns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from contextlib import suppress
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, cast

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.config import JsonDict

from parley.clock import utc_now as utc_now  # the clock the local runtime can move; see parley.clock
from parley.domain.phone import normalize_e164
from parley.domain.rate import NumberType
from parley.domain.vocabulary import Direction as Direction
from parley.domain.vocabulary import MessageStatus as MessageStatus
from parley.domain.vocabulary import OptOutScope as OptOutScope

_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Media(Frozen):
    """One MMS attachment. `url` is where the carrier has it (it may expire); once the processor has
    copied it, `stored_at` is our copy (s3://bucket/key) and `size` its length in bytes. `error` says
    why it could not be copied and never will be (refused, gone, too large)."""

    url: str
    content_type: str | None = None
    stored_at: str | None = None
    size: int | None = None
    error: str | None = None

    @property
    def pending(self) -> bool:
        """Not copied yet and not given up on."""
        return self.stored_at is None and self.error is None


class Concat(Frozen):
    """One part of a long text the carrier delivered in pieces (Vonage's SMS API does)."""

    ref: str
    part: int = Field(ge=1)
    total: int = Field(ge=1)


class InboundMessage(Frozen):
    """A text a customer sent to one of our numbers, as any carrier reports it."""

    kind: Literal["inbound_message"] = "inbound_message"
    carrier: str
    carrier_message_id: str
    from_number: str
    to_number: str
    body: str = ""
    media: tuple[Media, ...] = ()
    segments: int | None = None
    received_at: datetime = Field(default_factory=utc_now)
    concat: Concat | None = None
    opt_out: Literal["STOP", "START", "HELP"] | None = None  # a keyword the carrier itself acted on
    raw: dict[str, Any] = Field(default_factory=dict)

    @field_validator("from_number", "to_number")
    @classmethod
    def _e164_when_possible(cls, value: str) -> str:
        """Phones become E.164; short codes and alphanumeric senders stay as the carrier wrote them.

        Carriers write numbers in international form, some without the "+" (Vonage, Plivo; their
        plugins add it), so bare digits are read as international first: 6598765432 is Singapore,
        not a North American number. The national (US) reading is the fallback for the rest; it
        is meant for what people type into the API, not for carriers.
        """
        text = value.strip()
        candidates = [text]
        if text.isdigit() and len(text) >= 10:
            candidates.insert(0, "+" + text)
        for candidate in candidates:
            with suppress(ValueError):
                return normalize_e164(candidate, require_mobile=False)
        return text


class StatusUpdate(Frozen):
    """A delivery receipt: the carrier's word about one message we sent (or one part of it)."""

    kind: Literal["status_update"] = "status_update"
    carrier: str
    carrier_message_id: str
    status: MessageStatus
    carrier_status: str
    error_code: str | None = None
    error_message: str | None = None
    occurred_at: datetime = Field(default_factory=utc_now)
    part: int | None = None  # per-segment receipts: which part, of how many
    parts: int | None = None
    opted_out: bool = False  # the carrier says the recipient has opted out
    client_ref: str | None = None  # our message id, where the carrier echoes it back
    retryable: bool = False  # a failure the carrier calls passing: worth another attempt
    raw: dict[str, Any] = Field(default_factory=dict)


CarrierEvent = Annotated[InboundMessage | StatusUpdate, Field(discriminator="kind")]


class CarrierEventEnvelope(BaseModel):
    """What the webhook puts on the inbound queue: one parsed event plus its correlation id, and
    whether its signature verified (False only in log-only mode, kept so the processor says so)."""

    event: CarrierEvent
    correlation_id: str
    verified: bool = True


MAX_METADATA_BYTES = 4096  # a send request's `metadata`, as compact JSON
MAX_METADATA_DEPTH = 8  # objects and lists inside one another


def metadata_size(value: Any) -> int:
    """The size of `value` as compact UTF-8 JSON, the way the API and the table hold it."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return len(text.encode())


def bounded_metadata(value: dict[str, Any]) -> dict[str, Any]:
    """`value` if it is within the metadata limits, else a ValueError that says which."""
    level: list[Any] = [value]
    depth = 1
    while level:
        inner = [v for item in level for v in (item.values() if isinstance(item, dict) else item)]
        level = [v for v in inner if isinstance(v, dict | list)]
        if level:
            depth += 1
            if depth > MAX_METADATA_DEPTH:
                raise ValueError(f"metadata can nest at most {MAX_METADATA_DEPTH} levels deep")
    size = metadata_size(value)
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"metadata is {size} bytes as JSON; the limit is {MAX_METADATA_BYTES}")
    return value


# A character `str.strip()` keeps, spelled out so ECMA-262 (JSON Schema) and Python regexes agree.
NOT_BLANK = r"[^\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"


def _send_request_rules(schema: JsonDict) -> None:
    """What the validators check, in the published schema too: exactly one of `body` (not blank) and
    `template_id`."""
    body = cast(JsonDict, cast(JsonDict, schema["properties"])["body"])
    for branch in cast(list[JsonDict], body["anyOf"]):
        if branch.get("type") == "string":
            branch["pattern"] = NOT_BLANK
    schema["oneOf"] = [
        {"required": [name], "properties": {name: {"type": "string"}}} for name in ("body", "template_id")
    ]


class SendRequest(BaseModel):
    """One request to text one or more people; each recipient becomes its own message."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_send_request_rules)

    to: list[str] = Field(min_length=1, max_length=100)
    body: str | None = Field(
        default=None,
        max_length=1600,
        description="The text, not blank. Give either it or `template_id`, not both.",
    )
    template_id: str | None = None
    merge_values: dict[str, str] = Field(default_factory=dict)
    from_number: str | None = Field(default=None, alias="from")
    # a naive time can't be compared with now (and means nothing)
    send_at: AwareDatetime | None = Field(
        default=None,
        description=(
            "When to send: an ISO 8601 time with its offset (2026-12-01T09:00:00-05:00), at most a year"
            " ahead; leave it out to send now. Through the API a time more than 5 minutes past is"
            " refused; a queued request that arrives after its time sends at once."
        ),
    )
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)
    # In the published schema, so services that send know what null means.
    smart_encoding: bool | None = Field(
        default=None,
        strict=True,  # 0 or "no" is a mistake, not false
        description=(
            "Replace look-alike characters (curly quotes, dashes, odd spaces) with GSM-7 ones when that"
            " makes the whole text GSM-7 without costing more segments. null (the default) follows the"
            " sending number's own setting; true or false overrides it."
        ),
    )
    metadata: dict[str, Any] = Field(default_factory=dict)
    requested_by: str | None = None
    team: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description=(
            "The team that sends (its numbers, its conversations). Through the API, one of the"
            " caller's teams (by default their first); through EventBridge or SQS, the default team"
            " unless given."
        ),
    )

    @field_validator("to")
    @classmethod
    def _normalise_recipients(cls, values: list[str]) -> list[str]:
        normalised = [normalize_e164(v) for v in values]
        return list(dict.fromkeys(normalised))

    @field_validator("metadata")
    @classmethod
    def _bounded_metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        """Metadata travels with every copy of the message (the table, events, the API): keep it small."""
        return bounded_metadata(value)

    @field_validator("send_at", mode="before")
    @classmethod
    def _written_time(cls, value: Any) -> Any:
        """A number could be seconds or milliseconds since 1970, and pydantic would guess: refuse it."""
        if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value.strip())):
            raise ValueError(
                "send_at must be an ISO 8601 time with a time zone (e.g. 2026-12-01T09:00:00Z), not a number"
            )
        return value

    @field_validator("send_at")
    @classmethod
    def _within_a_year(cls, value: datetime | None) -> datetime | None:
        if value is not None and value > utc_now() + timedelta(days=366):
            raise ValueError("send_at can be at most a year ahead")
        return value

    @field_validator("from_number")
    @classmethod
    def _normalise_sender(cls, value: str | None) -> str | None:
        """E.164, or one of our short codes (3-8 digits) as written: sending checks it is ours."""
        if value is not None and re.fullmatch(r"[0-9]{3,8}", value.strip()):
            return value.strip()
        return None if value is None else normalize_e164(value, require_mobile=False)

    @model_validator(mode="after")
    def _body_or_template(self) -> SendRequest:
        if (self.body is None) == (self.template_id is None):
            raise ValueError("give exactly one of 'body' or 'template_id'")
        if self.body is not None and not self.body.strip():
            raise ValueError("'body' must not be empty")
        return self


class StatusChange(BaseModel):
    status: MessageStatus
    at: datetime
    # Who moved it: Parley itself, or "<carrier>:<its word>". The default is left out of the stored
    # item (a short text's item stays under the 1 KB a write unit covers).
    source: str = "parley"
    detail: str | None = None


class Attempt(BaseModel):
    number: int
    at: datetime
    outcome: Literal["accepted", "transient", "ambiguous", "permanent", "reconciled"]
    error_code: str | None = None
    detail: str | None = None


class Message(BaseModel):
    """One text in one conversation, either direction."""

    message_id: str
    direction: Direction
    customer_number: str
    our_number: str
    body: str
    status: MessageStatus
    carrier: str
    carrier_message_id: str | None = None
    created_at: datetime
    updated_at: datetime
    encoding: str | None = None
    segments: int | None = None
    units: int | None = None
    media: list[Media] = Field(default_factory=list)
    error_code: str | None = None
    error_reason: str | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    history: list[StatusChange] = Field(default_factory=list)
    request_id: str | None = None
    requested_by: str | None = None
    # What the request asked for (its text or template, merge values, sender, time), hashed: a repeat
    # of the request key that asks for something else is refused rather than answered with this one.
    request_fingerprint: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    # The legally required answer to a keyword (STOP, START, HELP), which reaches even an opted-out
    # customer. Only Parley's own keyword answer sets it; no send request can.
    compliance: bool = False
    next_attempt_at: datetime | None = None
    rate_turn_at: datetime | None = None  # the turn this text reserved at its sender's rate, while it waits
    team: str = "default"
    sender_reason: str | None = None
    smart_encoding_applied: bool = False  # `body` is the look-alike-free text that was (or will be) sent
    part_statuses: dict[str, MessageStatus] = Field(default_factory=dict)  # per-segment receipts
    carrier_part_ids: list[str] = Field(default_factory=list)  # one id per part, where carriers do that
    # A person's resend: when, after how many attempts (the retry limits count attempts and age from
    # there), and the carrier ids of the earlier attempts, whose late receipts no longer count.
    resent_at: datetime | None = None
    attempts_before_resend: int = 0
    superseded_carrier_ids: list[str] = Field(default_factory=list)
    # Failed while the carrier may already have it (an ambiguous send it can't be asked about, a job
    # lost mid-send): only a person's resend by id sends it again, once they have checked.
    may_have_been_sent: bool = False
    # Soft deletion (POST /v1/messages/delete): out of its view and into Deleted, status kept, so a
    # restore puts it back where it was.
    deleted_at: datetime | None = None
    deleted_by: str | None = None
    deleted_unread: bool = False  # deleted while unread: its conversation counts it unread again if restored
    # When retention blanked the body and dropped the media (docs/retention.md); the rest stays.
    expired_at: datetime | None = None
    version: int = 0


class Conversation(BaseModel):
    """The one thread per customer number, whichever of our numbers was used."""

    customer_number: str
    team: str = "default"
    last_activity_at: datetime
    last_message_id: str | None = None
    last_message_preview: str = ""
    last_direction: Direction | None = None
    last_our_number: str | None = None
    our_numbers: list[str] = Field(default_factory=list)
    unread_count: int = 0
    message_count: int = 0
    contact_id: str | None = None
    owner: str | None = None
    closed: bool = False
    # How the last inbound text was routed to a record (parley.domain.routing), and, when several
    # records tied at every rule, their ids: the conversation is then left unlinked for a person.
    routing_reason: str | None = None
    conflict_candidates: list[str] = Field(default_factory=list)


class ConversationView(Conversation):
    """A conversation as the inbox shows it: with the customer's consent, which lives in their opt-out
    record (it outlives the conversation, and one STOP covers every thread), read when it is shown."""

    opted_out: bool = False  # from all our numbers
    opted_out_of: list[str] = Field(default_factory=list)  # our numbers they opted out of one by one
    opted_in_to: list[str] = Field(
        default_factory=list,
        description="With `opted_out`: our numbers the customer texted START to since, which may text "
        "them again (an opt-in counts for the number it was sent to).",
    )
    hidden_candidates: int = Field(
        default=0,
        description="How many tied records the caller doesn't see (another team's, or since deleted): "
        "their ids are left out of `conflict_candidates`.",
    )


RecordType = Literal["contact", "account", "opportunity", "lead"]
RECORD_TYPES: tuple[RecordType, ...] = ("contact", "account", "opportunity", "lead")  # routing's order


class ContactRecord(BaseModel):
    """A record kept in Parley (a contact, account, opportunity or lead), found by any of its numbers.

    `phones` holds every number; `phone` is the primary one (the first of `phones`), kept for the
    callers that know one. Either may be given: `phone` alone means `phones=[phone]`, and a `phone`
    missing from `phones` is put first.
    """

    contact_id: str
    name: str
    phone: str = ""  # filled from `phones` when left out
    phones: list[str] = Field(default_factory=list, max_length=40)  # record + lookups: one transaction
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    owner: str | None = None
    team: str = "default"
    record_type: RecordType = "contact"
    active: bool = True
    updated_at: datetime | None = None
    crm_id: str | None = None
    fields: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _primary_and_all_numbers(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        phones = [p for p in (data.get("phones") or []) if isinstance(p, str)]
        phone = data.get("phone") or (phones[0] if phones else None)
        if phone is None:
            raise ValueError("a record needs at least one phone number")
        return {**data, "phone": phone, "phones": list(dict.fromkeys([phone, *phones]))}


class Template(BaseModel):
    template_id: str
    name: str
    body: str
    owner: str | None = None
    shared: bool = True
    team: str | None = None  # whose a shared template is; None: the whole organisation's


def day_of(at: datetime, tz_name: str) -> str:
    """The organisation's calendar day of a moment: what the digest calls a day."""
    from zoneinfo import ZoneInfo

    return at.astimezone(ZoneInfo(tz_name)).date().isoformat()


class AutoLog(StrEnum):
    """How a conversation's days reach the CRM, set per user and per our number.

    When they differ, `off` wins (someone chose not to log), then `immediate`, then `nightly`.
    """

    NIGHTLY = "nightly"  # the nightly digest logs the day (and a re-run or a late message updates it)
    IMMEDIATE = "immediate"  # also logged within moments of each message or status change
    OFF = "off"  # nothing is logged until a person asks for that conversation and day


def effective_auto_log(choices: Iterable[AutoLog | None], default: AutoLog) -> AutoLog:
    chosen = {c for c in choices if c is not None} or {default}
    for mode in (AutoLog.OFF, AutoLog.IMMEDIATE):
        if mode in chosen:
            return mode
    return AutoLog.NIGHTLY


class OurNumber(BaseModel):
    """One of our sender numbers and who it belongs to."""

    number: str
    carrier: str
    owner: str | None = None
    team: str = "default"
    is_default: bool = False
    capabilities: list[str] = Field(default_factory=lambda: ["sms"])
    quiet_hours: str | None = None  # "21:00-08:00" for this number; None follows the organisation
    number_type: NumberType = NumberType.LONG_CODE  # sets the default send rate (domain/rate.py)
    rate_per_second: float | None = Field(default=None, gt=0)  # segments per second; None: the type's default
    smart_encoding: bool = False  # the default for sends from this number that don't say
    opt_out_scope: OptOutScope = OptOutScope.ALL  # what a STOP to this number opts the customer out of
    auto_log: AutoLog | None = None  # how its conversations reach the CRM; None follows the organisation

    @property
    def opt_out_number(self) -> str | None:
        """What an opt-out through this number is recorded against: this number alone, or None (all)."""
        return self.number if self.opt_out_scope is OptOutScope.NUMBER else None


def team_default(numbers: Iterable[OurNumber], team: str) -> OurNumber | None:
    """The team's default number, else any of its numbers, else the pool's (the default team's)."""
    listed = list(numbers)
    team_numbers = [n for n in listed if n.team == team] or [n for n in listed if n.team == "default"]
    defaults = [n for n in team_numbers if n.is_default] or team_numbers
    return min(defaults, key=lambda n: n.number) if defaults else None


def smart_encoding_for(requested: bool | None, sender: OurNumber | None) -> bool:
    """Whether a text gets smart encoding: an explicit request wins, else the sender number's setting,
    so a preview and the send it previews decide the same way."""
    if requested is not None:
        return requested
    return sender.smart_encoding if sender is not None else False


class ConsentChange(BaseModel):
    opted_out: bool
    at: datetime
    source: str  # e.g. "twilio:keyword", "telnyx:40300", "api"
    detail: str | None = None
    number: str | None = None  # the one of our numbers this change was about; None: all of them


class OptOut(BaseModel):
    """A customer's consent state. Kept when everything else about them is erased: it is the legal record.

    One record per customer holds both scopes: `opted_out` is the opt-out from all our numbers, and
    `numbers` the numbers they opted out of one by one (numbers whose `opt_out_scope` is "number").
    The two are independent: lifting one never lifts the other.
    """

    customer_number: str
    opted_out: bool
    updated_at: datetime
    numbers: list[str] = Field(default_factory=list)
    history: list[ConsentChange] = Field(default_factory=list)

    def is_opted_out(self, number: str | None) -> bool:
        """The state one change would set: from all numbers (None), or from `number` alone."""
        return self.opted_out if number is None else number in self.numbers

    def blocks(self, number: str) -> bool:
        """Whether texts from our `number` are refused: opted out of it alone, or of all our numbers
        without a START to `number` itself since (an opt-in counts for the number it was sent to)."""
        if number in self.numbers:
            return True
        return self.opted_out and number not in self.opted_in_since()

    def opted_in_since(self) -> set[str]:
        """The numbers the customer sent a START to since opting out of all our numbers."""
        if not self.opted_out:
            return set()
        since = max((c.at for c in self.history if c.number is None and c.opted_out), default=None)
        return {
            c.number
            for c in self.history
            if c.number is not None and not c.opted_out and (since is None or c.at > since)
        }

    def with_change(self, change: ConsentChange) -> OptOut:
        """This record with `change` applied and appended to the trail (the repositories share this)."""
        numbers = [n for n in self.numbers if n != change.number]
        if change.number is not None and change.opted_out:
            numbers.append(change.number)
        return self.model_copy(
            update={
                "opted_out": change.opted_out if change.number is None else self.opted_out,
                "numbers": numbers,
                "updated_at": change.at,
                "history": [*self.history, change],
            }
        )
