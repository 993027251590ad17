"""The inbox API's OpenAPI 3.1 document, generated from the models the API reads and writes.

The routes are in functions/api/app.py; `OPERATIONS` says what each one takes and answers, and the
tests hold the two together (every routed operation documented, nothing documented that isn't
routed). Every schema comes from a pydantic model with `model_json_schema`'s machinery. The send
request's is `send_request_schema()`, which also writes events/schemas/send-request.v1.schema.json,
so the document and the published file can't drift apart.

Powertools' own generator (`app.get_openapi_json_schema`) isn't used: it reads bodies and query
parameters only from typed handler arguments, which are only filled in with request validation on
(whose 422 `{"detail": [...]}` answers would replace our error bodies), and it always adds those
validation error schemas to the document.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field, TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from parley.domain.encoding import SegmentInfo
from parley.domain.models import (
    AutoLog,
    ContactRecord,
    ConversationView,
    Message,
    MessageStatus,
    OurNumber,
    SendRequest,
    Template,
)
from parley.domain.views import VIEWS
from parley.services.records import NewRecord, RecordDraft
from parley.services.templates import TemplateDraft

OPENAPI_VERSION = "3.1.0"
DOCUMENT_VERSION = "v1"
SEND_REQUEST_SCHEMA_ID = "https://parley.dev/schemas/send-request/v1.json"
SECURITY_SCHEME = "ParleyJwt"  # the name of the JWT authorizer in template.yaml
_REF = "#/components/schemas/{model}"


def send_request_schema() -> dict[str, Any]:
    """The published JSON Schema of a send request (v1), for POST /v1/messages, EventBridge and SQS."""
    schema = SendRequest.model_json_schema(by_alias=True)
    schema["$id"] = SEND_REQUEST_SCHEMA_ID
    schema["title"] = "SendMessage (v1)"
    return schema


# ---------------------------------------------------------------- what the handlers read and answer
# Request bodies the handlers check field by field themselves (their errors are ours, not pydantic's):
# these models only describe them.


class PreviewRequest(BaseModel):
    """The text to cost: a `body`, or a `template_id` with `merge_values`, exactly as for a send."""

    body: str | None = None
    template_id: str | None = None
    merge_values: dict[str, str] = Field(default_factory=dict)
    to: str | list[str] | None = Field(
        default=None,
        description="One recipient (or a list of one, as a send has it), for merge fields from their record.",
    )
    from_number: str | None = Field(
        default=None, alias="from", description="One of our numbers; else the one the send would pick."
    )
    smart_encoding: bool | None = Field(default=None, description="null follows the sender number's setting.")
    team: str | None = Field(default=None, description="The caller's team the send would go out as.")


class RescheduleRequest(BaseModel):
    """When a scheduled text should go instead: at most a year ahead."""

    send_at: AwareDatetime = Field(description="ISO 8601 with a time zone, e.g. 2026-12-01T09:00:00Z.")


class ResendRequest(BaseModel):
    """Which failed messages to resend: give `ids`, or `view` ("failed") with an optional filter."""

    ids: list[str] | None = Field(
        default=None, min_length=1, max_length=500, description="Message ids; at most 500."
    )
    view: Literal["failed"] | None = Field(
        default=None,
        description="Resend the team's Failed view, newest first: at most 100 a call, from a bounded "
        "slice of the view.",
    )
    our_number: str | None = Field(default=None, description="With `view`: only texts from this number.")
    since: AwareDatetime | None = Field(
        default=None, description="With `view`: only texts created at or after this time (ISO 8601)."
    )
    cursor: str | None = Field(
        default=None, description="With `view`: the `cursor` a previous call answered, to go on from there."
    )
    partially_delivered: bool | None = Field(
        default=None,
        description="With `view`: true to resend partly delivered texts too, whose delivered parts then "
        "reach the customer again. Left out (the default), they are refused with that reason.",
    )


class ResendOutcome(BaseModel):
    """What became of one message: `resent` (back on its way, through every send rule) or `refused`."""

    message_id: str
    result: Literal["resent", "refused"]
    status: MessageStatus | None = Field(
        description="Where the message is now (queued, held or suppressed when resent); null if unknown."
    )
    reason: str | None = Field(
        description="Why it was refused, held or suppressed, that it had already been resent, or that the "
        "parts of a partly delivered text already delivered are sent again."
    )


class ResendAnswer(BaseModel):
    """One result per message named, in the order named (by `ids`) or newest first (by `view`)."""

    results: list[ResendOutcome]
    more: bool = Field(description="The call stopped early and more may match: call again for the rest.")
    cursor: str | None = Field(
        default=None,
        description="With `more` (by `view`): pass it in the next call, which goes on from where this one "
        "stopped. Without it, a call starts from the newest again.",
    )


class ErasureRequest(BaseModel):
    """Whose data to erase."""

    number: str = Field(description="The customer's number, in E.164 or as a person types it.")


class ErasureAnswer(BaseModel):
    """What this call removed, by kind; a second erasure of the same number answers zeros."""

    customer_number: str = Field(description="The number erased, in E.164.")
    done: bool = Field(description="Nothing of the customer is left but the opt-out record.")
    cancelled: int = Field(description="Texts still waiting to go out (scheduled, queued, held), cancelled.")
    messages: int = Field(description="Messages deleted, both directions, through any of our numbers.")
    media: int = Field(description="Media objects (MMS attachments) deleted.")
    conversations: int = Field(description="Conversations deleted (one per customer number).")
    search_terms: int = Field(description="The conversation's search terms deleted.")
    records_deleted: int = Field(description="Records deleted: those with no other number.")
    records_updated: int = Field(description="Records with other numbers, which lost this one.")
    digest_items: int = Field(description="The digest's entries and held conflicts for the customer's days.")
    parts: int = Field(description="Held parts of their long texts, and the marks of those assembled.")


class MessageViewPage(BaseModel):
    """One page of a message view, newest first. With a filter (`our_number`) a page may hold fewer
    than `limit` messages, even none, and still have a cursor: each page reads a bounded slice."""

    view: str
    messages: list[Message]
    cursor: str | None = Field(description="Pass back as `cursor` for the next page; null on the last.")


class MessageIds(BaseModel):
    """The messages to act on."""

    ids: list[str] = Field(min_length=1, max_length=500, description="Message ids; at most 500.")


class MessageOutcome(BaseModel):
    """What became of one message named: `ok` (done, or it already was), `not_found` (absent or not
    the caller's), `conflict` (it kept changing: ask again), `rejected` (a reply that can't be sent,
    with the reason), `skipped` (another selected message's reply went to the same customer) or
    `not_tried` (a bulk reply ran out of time first: ask again for it, with the same key)."""

    message_id: str
    result: Literal["ok", "not_found", "conflict", "rejected", "skipped", "not_tried"]
    deleted: bool | None = Field(description="Delete and restore: whether the message is now deleted.")
    reason: str | None
    reply_id: str | None = Field(description="Reply: the id of the reply sent.")


class MessageOutcomes(BaseModel):
    """One result per message named, in the order named (each id once)."""

    results: list[MessageOutcome]


class ReplyOutcomes(MessageOutcomes):
    """One result per message named, in the order named (each id once)."""

    more: bool = Field(
        description="The call stopped before the invocation's time ran out: the ids answered "
        "`not_tried` are still to do; ask again for them with the same idempotency key."
    )
    idempotency_key: str = Field(
        description="The key the replies went out under: the request's, or one made up for a request "
        "with none. Asking again (for `not_tried` ids) with it sends no customer a second reply."
    )


class ReplyRequest(BaseModel):
    """The reply's text: a `body`, or a `template_id` with `merge_values`, exactly as for a send."""

    body: str | None = Field(default=None, min_length=1, max_length=1600)
    template_id: str | None = None
    merge_values: dict[str, str] = Field(default_factory=dict)
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=200, description="Else the Idempotency-Key header."
    )


class BulkReplyRequest(ReplyRequest):
    """One reply per selected message's customer; each customer's key is derived from the request's."""

    ids: list[str] = Field(min_length=1, max_length=100, description="Message ids; at most 100.")


class ForwardRequest(BaseModel):
    """Where to forward the message, and the text if edited."""

    to: str | list[str] = Field(description="A number, or up to 100, in E.164; each its own conversation.")
    body: str | None = Field(
        default=None, min_length=1, max_length=1600, description="Left out: the original text."
    )
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=200, description="Else the Idempotency-Key header."
    )


class ConversationPage(BaseModel):
    """The caller's teams' conversations, newest activity first (with `q`: in the order of the term
    matched). A page reads at most `limit` index items per team, so with a filter or a search it
    may hold fewer than `limit`, even none, and still have a cursor."""

    conversations: list[ConversationView]
    cursor: str | None = Field(description="Pass back as `cursor` for the next page; null on the last.")


class MarkAllReadRequest(BaseModel):
    """Which conversations to mark read: all the caller sees, or those that used `our_number`."""

    our_number: str | None = Field(default=None, description="Only conversations that used this number.")
    cursor: str | None = Field(default=None, description="The `cursor` of the previous call, to go on.")


class MarkReadRequest(BaseModel):
    """Optional: how far the person read."""

    seen_message_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The newest message the person was shown: inbound texts after it (by time, then "
        "by id) stay unread. Left out: every text is read.",
    )


class MarkedRead(BaseModel):
    """How many were marked read by this call. Each call works through at most 1,000 conversations per
    team; `cursor` is set when there may be more: call again with it."""

    marked: int
    cursor: str | None


class ConversationContact(NewRecord):
    """The record to create for the conversation's number: a record's fields; `phones` may be left
    out (the conversation's number is always the first)."""

    phones: list[str] = Field(default_factory=list, max_length=39, description="More numbers, if any.")


class ContactAdded(BaseModel):
    record: ContactRecord
    conversation: ConversationView


class MessagePage(BaseModel):
    """One conversation's messages, newest first: each next page holds older ones."""

    messages: list[Message]
    cursor: str | None = Field(description="Pass back as `cursor` for the next page; null on the last.")


class AcceptedMessages(BaseModel):
    """One message per recipient, in the order of `to`; the same idempotency key gives the same ones."""

    messages: list[Message]


class ConflictCandidateModel(BaseModel):
    """One of the records that tied for the customer's number."""

    record_id: str
    name: str
    record_type: str = Field(description="contact, account, opportunity or lead.")
    owner: str | None


class CrmConflict(BaseModel):
    """A conversation's day held back from the CRM: several records have the number and none is
    linked to the conversation."""

    conflict_id: str = Field(description="Derived from the customer number and the day.")
    customer_number: str
    day: str = Field(description="The day (org time zone), YYYY-MM-DD.")
    team: str
    candidates: list[ConflictCandidateModel] = Field(
        description="The tied records the caller sees (an admin: all); only these may be picked."
    )
    hidden_candidates: int = Field(
        description="How many tied records are of teams the caller doesn't see. With no candidate "
        "left to pick, a member of the records' team or an admin resolves the conflict."
    )
    found_at: AwareDatetime = Field(description="When the digest held the day.")
    resolved: bool
    resolved_at: AwareDatetime | None = None
    resolved_by: str | None = None
    record_id: str | None = Field(default=None, description="The record picked, once resolved.")


class CrmConflictPage(BaseModel):
    """The caller's teams' open conflicts (an admin's: every team's), one team after another, each
    team's most recently found first."""

    conflicts: list[CrmConflict]
    cursor: str | None = Field(description="Pass back as `cursor` for the next page; null on the last.")


class ResolveConflictRequest(BaseModel):
    record_id: str = Field(min_length=1, description="One of the conflict's candidates.")


class ResolvedConflict(CrmConflict):
    """The resolved conflict, and whether its day reached the CRM."""

    logged: bool = Field(description="false: the CRM refused the day; it is retried from the digest queue.")
    error: str | None = Field(description="Why the CRM refused the day; null when logged.")


class StartDigestRequest(BaseModel):
    day: date = Field(
        description="YYYY-MM-DD, in the organisation's time zone; at most tomorrow there (a 400 after)."
    )


class DigestStarted(BaseModel):
    """The run has begun; follow it with GET /v1/crm/digest/{day}."""

    days: list[str]
    jobs: int = Field(description="Shard jobs begun: one per shard.")
    queued: bool = Field(
        description="true: the jobs are on the digest queue, worked in parallel; false: no queue is "
        "configured and the run finished within this call."
    )


class DigestCounts(BaseModel):
    conversations: int = Field(description="Conversations with texts that day.")
    created: int = Field(description="CRM records created.")
    updated: int = Field(description="CRM records updated (a late text or a new status).")
    unchanged: int = Field(description="Days already logged as they are: nothing posted.")
    conflicts: int = Field(description="Days held because several records have the number.")
    skipped: int = Field(description="Auto-log off: not logged until a person asks.")
    merged: int = Field(description="Posted with another number of the same record.")
    no_texts: int = Field(description="Conversations with no texts that day to log.")
    expired: int = Field(
        description="Days whose texts retention has blanked: not posted, the CRM keeps what it was sent."
    )
    failed: int = Field(description="Records the CRM refused (a refusal logged on a later try moves out).")


class DigestFailure(BaseModel):
    customer_number: str
    day: str
    reason: str = Field(description="What the CRM said.")


class DigestProgress(BaseModel):
    """A day's run: its shards finish one by one, in any order; the counts add up as they do."""

    day: str
    shards: int
    shards_done: int
    finished: bool = Field(description="Every shard is done: the counts are final.")
    started_at: AwareDatetime | None = Field(
        description="null: jobs ran for the day without a start (left from an earlier run)."
    )
    counts: DigestCounts
    failures: list[DigestFailure] = Field(description="The first 20; the digest function's log has all.")


class LogDayRequest(BaseModel):
    customer_number: str = Field(description="The conversation's customer number, e.g. +14155550100.")
    day: date = Field(description="YYYY-MM-DD, in the organisation's time zone; at most tomorrow there.")


class DayLogged(BaseModel):
    """What logging one conversation's day did: one of created, updated or unchanged is 1, or
    `no_texts` when the conversation had no texts that day; `merged` is never counted here."""

    day: str
    conversations: int
    created: int
    updated: int
    unchanged: int
    conflicts: int
    skipped: int
    merged: int
    no_texts: int = Field(description="1: the conversation had no texts that day, nothing was posted.")
    expired: int
    failed: list[DigestFailure]


class CrmRefused(BaseModel):
    """The CRM refused the day: nothing is recorded as logged, so the same request again is safe."""

    error: str
    report: DayLogged


class NumberAutoLog(BaseModel):
    number: str
    auto_log: AutoLog | None = Field(description="null follows the users' and the organisation's choice.")


class AutoLogState(BaseModel):
    """How conversations reach the CRM. Where choices differ, `off` wins, then `immediate`, then
    `nightly`: a conversation follows its owner's choice and those of the numbers it went through."""

    default: AutoLog = Field(description="The organisation's, where neither the user nor the number says.")
    user: AutoLog | None = Field(description="The caller's own choice; null follows the default.")
    effective_for_user: AutoLog = Field(
        description="What the caller's conversations get, unless one of their numbers says otherwise."
    )
    numbers: list[NumberAutoLog] = Field(description="The caller's team's numbers.")


class SetAutoLogRequest(BaseModel):
    auto_log: AutoLog | None = Field(description="null: follow the default (or, for a number, the users').")
    our_number: str | None = Field(
        default=None,
        description="One of the team's numbers: set its choice. Left out: set the caller's own.",
    )


class RecordList(BaseModel):
    """The caller's team's records with that number (several records may share one)."""

    records: list[ContactRecord]


class TemplateList(BaseModel):
    """The team's shared templates and the caller's personal ones."""

    templates: list[Template]


class NumberWithWebhooks(OurNumber):
    """One of our numbers, with the URLs to paste into its carrier's console."""

    webhooks: list[str]


class NumberList(BaseModel):
    numbers: list[NumberWithWebhooks]


class FieldError(BaseModel):
    field: str = Field(description='The field at fault: a dotted path into the body ("to.0"), or "body".')
    reason: str


class Error(BaseModel):
    """What the API answers for a request it refuses. `errors` comes with a body that isn't valid or
    can't be sent (a 400), one entry per field."""

    error: str
    errors: list[FieldError] = Field(default_factory=list)
    conflict_id: str | None = Field(
        default=None, description="With a 409 from POST /v1/crm/log: the conflict holding the day."
    )
    idempotency_key: str | None = Field(
        default=None,
        description="With a 503 for a send, reply or forward made without a key: the key it was given. "
        "Part of it may be stored and go out: repeat the request with this key, and it goes out once.",
    )


class GatewayError(BaseModel):
    """What API Gateway answers itself: 401 without a valid token, 404 for a route it doesn't have,
    413 for a body that's too large, 429 when throttled, 500 when the function fails."""

    message: str


# ---------------------------------------------------------------- the operations

_ERRORS = {
    400: "The request is not valid, or can't be sent as given.",
    403: "The caller's role doesn't allow this (the operation is for admins).",
    404: "Not found, or not visible to the caller (the API says the same in both cases).",
    409: "The message is not in a state that allows this (no longer scheduled, or not failed), or it "
    "changed meanwhile: look at it again. For a CRM conflict: it was resolved with another record.",
    413: "Too large to return in one response (more than 4 MB); the reason names its size.",
}
_TEMPLATE_CHANGE = (
    "The caller sees the template but may not change it: an org-wide template (no team) is changed by "
    "admins only, a team's by its members (and admins), a personal one by its owner. Only its owner can "
    "make a shared template personal (`shared: false`)."
)
_PATH_PARAMETERS = {
    "number": "The customer's number in E.164, e.g. +14155550100.",
    "message_id": "A message id, as the API returned it.",
    "template_id": "A template id, as the API returned it.",
    "conflict_id": "A conflict id, as `GET /v1/crm/conflicts` returned it.",
    "day": "A day, YYYY-MM-DD, in the organisation's time zone.",
    "record_id": "A record id, as the API returned it.",
    "index": "An attachment's place in the message's `media`, from 0.",
}
_QUERY_PARAMETERS: dict[str, dict[str, Any]] = {
    "limit": {
        "description": "How many items per page.",
        "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
    },
    "cursor": {
        "description": "The `cursor` of the previous page; leave out for the first.",
        "schema": {"type": "string"},
    },
    "view": {
        "description": "Which messages: all (the default), received, sent, failed, pending (queued, "
        "sending, retrying, held), scheduled, did-not-trigger (suppressed, with the reason) or deleted.",
        "schema": {
            "type": "string",
            "enum": list(VIEWS),
            "default": "all",
        },
    },
    "our_number": {
        "description": "Only those that went through this number of ours (E.164).",
        "schema": {"type": "string", "minLength": 1, "maxLength": 32},
    },
    "since": {
        "description": "Only those created at or after this time (ISO 8601 with a time zone).",
        "schema": {"type": "string", "format": "date-time"},
    },
    "until": {
        "description": "Only those created at or before this time (ISO 8601 with a time zone).",
        "schema": {"type": "string", "format": "date-time"},
    },
    "q": {
        "description": "Search instead of list: 3 or more digits of the customer's number (in a row), or "
        "the start of words of the linked record's name (case-insensitive, any word).",
        "schema": {"type": "string", "minLength": 1, "maxLength": 100},
    },
    "owner": {
        "description": "Only conversations with this owner.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 200},
    },
    "unread": {
        "description": "true: only conversations with unread texts; false: only those without.",
        "schema": {"type": "string", "enum": ["true", "false"]},
    },
    "status": {
        "description": "open (the list's default: closed ones hidden), closed, or all (a search's default).",
        "schema": {"type": "string", "enum": ["open", "closed", "all"]},
    },
    "team": {
        "description": "Only this one of the caller's teams (an admin: any team).",
        "schema": {"type": "string", "minLength": 1, "maxLength": 100},
    },
    "include_deleted": {
        "description": "Also show messages deleted (soft); left out by default, so a page may be short.",
        "schema": {"type": "boolean", "default": False},
    },
    "phone": {
        "description": "One of the record's numbers, in E.164 or as a person types it.",
        "required": True,
        "schema": {"type": "string", "minLength": 1, "maxLength": 32},
    },
}
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Used when the body has no `idempotency_key`: the same key twice sends once.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
}


@dataclass(frozen=True, kw_only=True)
class Operation:
    method: str = field(kw_only=False)
    path: str = field(kw_only=False)  # an OpenAPI path template: /v1/messages/{message_id}
    operation_id: str = field(kw_only=False)  # the handler's name in functions/api/app.py
    tag: str
    summary: str
    description: str | None = None
    body: type[BaseModel] | None = None  # the JSON request body
    body_required: bool = True
    query: tuple[str, ...] = ()  # names in _QUERY_PARAMETERS
    status: int  # the success status
    answer: type[BaseModel] | type[SegmentInfo] | None  # None: no body (204), or a free-form object
    answer_description: str
    answer_also: dict[str, Any] | None = None  # properties the handler adds to `answer`'s
    errors: tuple[int, ...] = ()  # the statuses the handler answers with an Error
    error_notes: tuple[tuple[int, str], ...] = ()  # (status, description) where _ERRORS' is too general
    other_answers: tuple[tuple[int, type[BaseModel], str], ...] = ()  # (status, body, description)
    public: bool = False  # served without a token
    binary: bool = False  # the success body is a file's bytes, in its own content type


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "get", "/v1/conversations", "list_conversations", tag="conversations",
        summary="List or search the caller's conversations",
        description=(
            "Newest activity first across the caller's teams (an admin: all), filtered by our "
            "number, owner, team, unread and open/closed; or, with `q`, a search by partial number or "
            "name. Reads are bounded per page: a page may be short, or empty, and have a cursor."
        ),
        status=200, answer=ConversationPage, answer_description="One page of conversations.",
        query=("limit", "cursor", "q", "our_number", "owner", "unread", "status", "team"), errors=(400,),
    ),
    Operation(
        "post", "/v1/conversations/read", "mark_all_conversations_read", tag="conversations",
        summary="Mark every conversation the caller sees read (optionally one number's)",
        body=MarkAllReadRequest,
        status=200, answer=MarkedRead, answer_description="How many were marked, and a cursor if more.",
        errors=(400,),
    ),
    Operation(
        "post", "/v1/conversations/{number}/read", "mark_conversation_read", tag="conversations",
        summary="Mark a conversation read (reading its messages doesn't)",
        description=(
            "The body is optional. With `seen_message_id` (the newest message shown), texts that "
            "arrived after it stay unread; the answer's `unread_count` says how many."
        ),
        body=MarkReadRequest, body_required=False,
        status=200, answer=ConversationView, answer_description="The conversation, read.",
        errors=(400, 404),
    ),
    Operation(
        "post", "/v1/conversations/{number}/close", "close_conversation", tag="conversations",
        summary="Close a conversation: hidden from the default list until a new text or a reopen",
        status=200, answer=ConversationView, answer_description="The conversation, closed.",
        errors=(404,),
    ),
    Operation(
        "post", "/v1/conversations/{number}/reopen", "reopen_conversation", tag="conversations",
        summary="Reopen a closed conversation",
        status=200, answer=ConversationView, answer_description="The conversation, open.",
        errors=(404,),
    ),
    Operation(
        "post", "/v1/conversations/{number}/contact", "add_conversation_contact", tag="conversations",
        summary="Add a contact from a conversation: a record for its number, linked to it",
        description=(
            "For a conversation with no record, or only the lead the routing made for its unknown "
            "number (a lead from the CRM or a person is a real record: 409). The record belongs to "
            "the conversation's team."
        ),
        body=ConversationContact,
        status=201, answer=ContactAdded, answer_description="The new record and the conversation.",
        errors=(400, 404, 409),
        error_notes=((409, "The conversation is linked to a record other than the routing's lead "
                      "already, or a record with the `record_id` given exists."),),
    ),
    Operation(
        "get", "/v1/conversations/{number}/messages", "list_messages", tag="conversations",
        summary="List one conversation's messages",
        status=200, answer=MessagePage, answer_description="One page of messages.",
        query=("limit", "cursor", "include_deleted"), errors=(400, 404),
    ),
    Operation(
        "post", "/v1/messages", "send_messages", tag="messages",
        summary="Send a text to one or more people",
        description=(
            "The body is the published send request (v1), as for EventBridge and SQS. "
            "`requested_by` is the token's `sub`: a value in the body is replaced. `team` must be one "
            "of the caller's teams (any, for an admin), else 400; left out, their first."
        ),
        body=SendRequest,
        status=202, answer=AcceptedMessages,
        answer_description="Accepted: one message per recipient, queued, scheduled, held or suppressed.",
        errors=(400,),
    ),
    Operation(
        "get", "/v1/messages/{message_id}", "get_message", tag="messages",
        summary="Get one message, with its attempts and status history",
        status=200, answer=Message, answer_description="The message.",
        errors=(404,),
    ),
    Operation(
        "get", "/v1/messages/{message_id}/media/{index}", "get_message_media", tag="messages",
        summary="Get our copy of one of a message's attachments (MMS media), as bytes",
        description=(
            "Visible as the message is. The body is the file in the content type it was stored with; "
            "pictures are `Content-Disposition: inline`, anything else `attachment`. 404 when the "
            "message has no such attachment, it was not copied (refused, or failed), or retention "
            "expired it; 413 when it is larger than one response can carry."
        ),
        status=200, answer=None, binary=True,
        answer_description="The attachment's bytes, in the content type it was stored with.",
        errors=(404, 413),
    ),
    Operation(
        "post", "/v1/messages/preview", "preview_message", tag="messages",
        summary="Render a text and count what it costs, without sending it",
        body=PreviewRequest,
        status=200, answer=SegmentInfo,
        answer_description="The text as it would be sent, its encoding and its segments.",
        answer_also={
            "from": {
                "anyOf": [{"type": "string"}, {"type": "null"}],
                "description": "The number the send would go from; null if there is none.",
            },
            "segments_with_smart_encoding": {
                "type": "integer",
                "description": "The segments with smart encoding on: fewer than `segments` when look-alike"
                " characters (curly quotes, dashes) force UCS-2 and smart encoding is off.",
            },
            "max_segments": {
                "type": "integer",
                "description": "The most segments a send takes; a longer text is still counted here.",
            },
            "within_limit": {
                "type": "boolean",
                "description": "Whether a send would take it: not empty, at most `max_segments` segments and"
                " a body of at most 1600 characters.",
            },
        },
        errors=(400,),
    ),
    Operation(
        "post", "/v1/messages/{message_id}/reschedule", "reschedule_message", tag="messages",
        summary="Move a scheduled text to another time",
        body=RescheduleRequest,
        status=200, answer=Message, answer_description="The rescheduled message.",
        errors=(400, 404, 409),
    ),
    Operation(
        "post", "/v1/messages/{message_id}/cancel", "cancel_message", tag="messages",
        summary="Cancel a scheduled text",
        status=200, answer=Message, answer_description="The cancelled message.",
        errors=(404, 409),
    ),
    Operation(
        "post", "/v1/messages/resend", "resend_messages", tag="messages",
        summary="Resend failed texts: by ids, or from the Failed view with a filter",
        description=(
            "Each failed message goes back to pending (same id; its attempts and history kept) and "
            "through every send rule again: an opted-out recipient ends suppressed, quiet hours hold "
            "it, the rate limit applies. Answers per message: an unknown id or a message that is "
            "not failed is refused with the reason, and the rest are still resent. A message already "
            "resent and still on its way is not resent again. A partly delivered text is resent whole. "
            "By `view`, texts whose last failure the carrier calls permanent (a landline, an invalid "
            "number) or that can't be classified are refused with the carrier's reason, and partly "
            "delivered ones unless `partially_delivered` is true; by `ids` each is resent as named."
        ),
        body=ResendRequest,
        status=200, answer=ResendAnswer, answer_description="One result per message.",
        errors=(400,),
    ),
    Operation(
        "post", "/v1/messages/{message_id}/resend", "resend_message", tag="messages",
        summary="Resend one failed text",
        description="As for many, for one: refused with 409 when the message is not failed. A partly "
        "delivered text is resent whole: the customer gets the parts already delivered again.",
        status=200, answer=Message, answer_description="The message, queued, held or suppressed.",
        errors=(404, 409),
    ),
    Operation(
        "get", "/v1/messages", "list_message_view", tag="messages",
        summary="List a message view (all, received, sent, failed, pending, scheduled, ...)",
        description=(
            "The caller's teams' messages (an admin's: every team's), newest first; in `pending` and "
            "`scheduled` by when each is next due, which `since`/`until` then filter. A deleted message "
            "is only in `deleted`, keeping its status; conversation threads leave it out too."
        ),
        status=200, answer=MessageViewPage, answer_description="One page of the view.",
        query=("view", "our_number", "since", "until", "limit", "cursor"), errors=(400,),
    ),
    Operation(
        "post", "/v1/messages/delete", "delete_messages", tag="messages",
        summary="Delete messages (soft: they move to the Deleted view, status kept)",
        description=(
            "Idempotent. A scheduled or pending text still goes out: cancel it to stop it. Bad input "
            "refuses the whole request before anything is written."
        ),
        body=MessageIds,
        status=200, answer=MessageOutcomes, answer_description="One result per message.",
        errors=(400,),
    ),
    Operation(
        "post", "/v1/messages/restore", "restore_messages", tag="messages",
        summary="Restore deleted messages to the views they were in",
        description="Idempotent: a message not deleted is `ok` and left as it is.",
        body=MessageIds,
        status=200, answer=MessageOutcomes, answer_description="One result per message.",
        errors=(400,),
    ),
    Operation(
        "post", "/v1/messages/{message_id}/reply", "reply_to_message", tag="messages",
        summary="Reply to a message: to its customer, from the number of ours it used",
        description=(
            "A send (every send rule applies), threaded into the message's conversation. It goes from "
            "the number of ours the message used when the conversation's team may send from it; a "
            "text to another team's number is answered from one the team may use, chosen as for any "
            "send. The same idempotency key (body or Idempotency-Key header) sends once."
        ),
        body=ReplyRequest,
        status=202, answer=AcceptedMessages, answer_description="Accepted: the reply.",
        errors=(400, 404),
    ),
    Operation(
        "post", "/v1/messages/reply", "reply_to_messages", tag="messages",
        summary="Reply to many selected messages at once, each in its own conversation",
        description=(
            "One reply per customer among the messages named (at most 100). Each customer's reply has a "
            "key derived from the request's idempotency key, the team and the customer, so the same "
            "request again, in any order, sends nothing twice (without a key, a retried request sends "
            "again). A call that nears the invocation's time limit stops: the ids it did not reach are "
            "`not_tried` and `more` is true; ask again for them with the same key."
        ),
        body=BulkReplyRequest,
        status=200, answer=ReplyOutcomes, answer_description="One result per message.",
        errors=(400,),
    ),
    Operation(
        "post", "/v1/messages/{message_id}/forward", "forward_message", tag="messages",
        summary="Forward a message's text, edited or not, to one or many numbers",
        description="Each recipient gets its own message in its own conversation; attachments stay behind.",
        body=ForwardRequest,
        status=202, answer=AcceptedMessages, answer_description="Accepted: one message per recipient.",
        errors=(400, 404),
    ),
    Operation(
        "get", "/v1/templates", "list_templates", tag="templates",
        summary="List the templates the caller can use",
        status=200, answer=TemplateList, answer_description="The templates.",
    ),
    Operation(
        "post", "/v1/templates", "create_template", tag="templates",
        summary="Create a template",
        description="Owned by the caller, and the caller's team's. A personal one (`shared: false`) "
        "needs a token naming a user: without one it is refused (400).",
        body=TemplateDraft,
        status=201, answer=Template, answer_description="The new template.",
        errors=(400,),
    ),
    Operation(
        "get", "/v1/templates/{template_id}", "get_template", tag="templates",
        summary="Get one template",
        status=200, answer=Template, answer_description="The template.",
        errors=(404,),
    ),
    Operation(
        "put", "/v1/templates/{template_id}", "update_template", tag="templates",
        summary="Replace a template's name, body and sharing",
        body=TemplateDraft,
        status=200, answer=Template, answer_description="The updated template.",
        errors=(400, 403, 404), error_notes=((403, _TEMPLATE_CHANGE),),
    ),
    Operation(
        "delete", "/v1/templates/{template_id}", "delete_template", tag="templates",
        summary="Delete a template",
        status=204, answer=None, answer_description="Deleted; no body.",
        errors=(403, 404), error_notes=((403, _TEMPLATE_CHANGE),),
    ),
    Operation(
        "post", "/v1/records", "create_record", tag="records",
        summary="Create a record (contact, account, opportunity or lead) for the caller's team",
        description="Its numbers are stored in E.164; routing and the digest find it by any of them. "
        "The owner defaults to the caller.",
        body=NewRecord,
        status=201, answer=ContactRecord, answer_description="The new record.",
        errors=(400, 409), error_notes=((409, "A record with this `record_id` exists already."),),
    ),
    Operation(
        "get", "/v1/records", "find_records", tag="records",
        summary="Find the team's records by one of their numbers",
        query=("phone",),
        status=200, answer=RecordList, answer_description="The records with that number.",
        errors=(400,),
    ),
    Operation(
        "get", "/v1/records/{record_id}", "get_record", tag="records",
        summary="Get one record",
        status=200, answer=ContactRecord, answer_description="The record.",
        errors=(404,),
    ),
    Operation(
        "put", "/v1/records/{record_id}", "update_record", tag="records",
        summary="Replace a record's fields (a number left out stops finding it)",
        body=RecordDraft,
        status=200, answer=ContactRecord, answer_description="The updated record.",
        errors=(400, 404),
    ),
    Operation(
        "get", "/v1/numbers", "list_numbers", tag="numbers",
        summary="List our numbers and the webhook URLs each carrier must be given",
        status=200, answer=NumberList, answer_description="Our numbers.",
    ),
    Operation(
        "get", "/v1/crm/conflicts", "list_crm_conflicts", tag="crm",
        summary="List the days held back from the CRM because several records have the number",
        status=200, answer=CrmConflictPage, answer_description="One page of open conflicts.",
        query=("limit", "cursor"), errors=(400,),
    ),
    Operation(
        "post", "/v1/crm/conflicts/{conflict_id}/resolve", "resolve_crm_conflict", tag="crm",
        summary="Pick the record for a conflict: link the conversation and log the day to it",
        description=(
            "The record must be one of the candidates (else 400). The conversation is linked to it "
            "(`routing_reason` 'chosen by <user>'), the day is posted to the CRM at once (the "
            "digest's idempotent upsert) and later days follow the link. Resolving again with the "
            "same record answers 200 with the resolved conflict; with another record, 409. If the "
            "CRM refuses the day, 202: the choice is saved (linked and resolved, nobody picks "
            "again) and the day is retried from the digest queue until the CRM takes it."
        ),
        body=ResolveConflictRequest,
        status=200, answer=ResolvedConflict, answer_description="Resolved, and the day logged.",
        other_answers=(
            (202, ResolvedConflict, "Resolved (the choice is saved), but the CRM refused the day: "
             "`logged` is false and `error` says why; the day is retried from the digest queue."),
        ),
        errors=(400, 404, 409),
    ),
    Operation(
        "post", "/v1/crm/digest", "start_crm_digest", tag="crm",
        summary="Start the digest run of one day (every conversation with texts that day)",
        description=(
            "Safe to repeat: an unchanged day posts nothing. The run's counts start again from zero. "
            "With the digest queue, one job per shard is queued and the call returns at once; follow "
            "the run with `GET /v1/crm/digest/{day}`. Each conversation follows its auto-log: `off` "
            "is skipped. A day past retention (`RetentionDays`: its texts are blanked) is 400."
        ),
        body=StartDigestRequest,
        status=202, answer=DigestStarted, answer_description="Started.",
        errors=(400,),
    ),
    Operation(
        "get", "/v1/crm/digest/{day}", "get_crm_digest", tag="crm",
        summary="How far the day's run has got, and what it has done",
        status=200, answer=DigestProgress, answer_description="The day's latest run.",
        errors=(400, 404),
        error_notes=((404, "No run for that day."),),
    ),
    Operation(
        "post", "/v1/crm/log", "log_crm_day", tag="crm",
        summary="Log one conversation's day to the CRM now, whatever auto-log says",
        description=(
            "The same idempotent upsert as the digest: asking twice posts once. The conversation "
            "must be the caller's team's (else 404). A day held as a conflict is 409 with its "
            "`conflict_id`: resolve it, which logs the day. If the CRM refuses the day, 502 with "
            "the reason: nothing is recorded as logged, so asking again is safe. A day past "
            "retention (`RetentionDays`: its texts are blanked) is 400."
        ),
        body=LogDayRequest,
        status=200, answer=DayLogged, answer_description="Logged (or already logged as it is).",
        other_answers=((502, CrmRefused, "The CRM refused the day; the same request again is safe."),),
        errors=(400, 404, 409),
        error_notes=((409, "Several records have the number: resolve the conflict `conflict_id`."),),
    ),
    Operation(
        "get", "/v1/crm/auto-log", "get_crm_auto_log", tag="crm",
        summary="Auto-log: the organisation's default, the caller's choice and the team's numbers'",
        status=200, answer=AutoLogState, answer_description="The choices.",
    ),
    Operation(
        "put", "/v1/crm/auto-log", "set_crm_auto_log", tag="crm",
        summary="Set the caller's auto-log, or one of the team's numbers'",
        description=(
            "`nightly`: the nightly digest logs the day; `immediate`: also within moments of each "
            "text; `off`: only when a person asks (`POST /v1/crm/log`). null clears the choice."
        ),
        body=SetAutoLogRequest,
        status=200, answer=AutoLogState, answer_description="The choices, as now set.",
        errors=(400, 404),
        error_notes=((404, "The number is not one of the caller's team's."),),
    ),
    Operation(
        "post", "/v1/erasures", "erase_customer", tag="privacy",
        summary="Erase one customer's data (admins only); their opt-out record stays",
        description=(
            "Deletes the customer's messages (both directions, through any of our numbers; texts "
            "still waiting to go out are cancelled first), the media copied from their texts, their "
            "conversation and its search terms, the records that hold their number (a record with "
            "other numbers keeps them and loses this one) and the digest's entries for their days. "
            "The opt-out record and its consent trail stay, so they are still never texted. Each call "
            "works for a bounded time: 202 means more is left, and the same call again goes on; 200 "
            "means done. Idempotent: erasing again answers 200 with zeros."
        ),
        body=ErasureRequest,
        status=200, answer=ErasureAnswer, answer_description="Done: nothing of the customer is left.",
        other_answers=((202, ErasureAnswer, "More is left (a long history): call again to go on."),),
        errors=(400, 403),
    ),
    Operation(
        "get", "/v1/openapi.json", "get_openapi_document", tag="meta",
        summary="This document (no token needed)",
        status=200, answer=None, answer_description="The OpenAPI 3.1 document.",
        public=True,
    ),
)  # fmt: skip

_TAGS = [
    {"name": "conversations", "description": "One conversation per customer number, across our numbers."},
    {
        "name": "messages",
        "description": "Send, preview, look at, reschedule, cancel and resend texts; the message views; "
        "delete and restore, reply and forward.",
    },
    {"name": "templates", "description": "Texts with merge fields, shared with the team or personal."},
    {"name": "numbers", "description": "Our numbers and where their carriers must post."},
    {
        "name": "crm",
        "description": "The CRM digest: its runs, one conversation's day on request, auto-log, and days "
        "held for a person to pick the record.",
    },
    {
        "name": "privacy",
        "description": "A customer's data erased on request; their opt-out record is kept.",
    },
    {"name": "meta", "description": "About the API itself."},
]


# ---------------------------------------------------------------- the document


@cache
def openapi_json() -> str:
    """The document, serialised once per process (it only changes with the code)."""
    return json.dumps(openapi_document())


def openapi_document() -> dict[str, Any]:
    schemas, refs = _component_schemas()
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op, refs)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Parley inbox API",
            "version": DOCUMENT_VERSION,
            "description": (
                "Conversations, messages, sending and templates. Every operation but this document "
                "needs a bearer JWT, checked by API Gateway; the caller's `sub`, `teams` (or `team`) "
                "and `roles` claims say who they are: a caller sees their teams' conversations, "
                "messages, records and conflicts (an admin, all), and anything else answers 404. "
                "Send requests are also accepted as EventBridge `SendMessage` "
                f"events and SQS messages, with the same schema ({SEND_REQUEST_SCHEMA_ID})."
            ),
        },
        "tags": _TAGS,
        "security": [{SECURITY_SCHEME: []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                SECURITY_SCHEME: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
        },
    }


def _component_schemas() -> tuple[dict[str, Any], dict[type[Any], dict[str, Any]]]:
    """Every model's schema under components/schemas, and the $ref to each model by type."""
    models: dict[type[Any], JsonSchemaMode] = {}
    for op in OPERATIONS:
        if op.body is not None and op.body is not SendRequest:
            models[op.body] = "validation"
        if op.answer is not None:
            models[op.answer] = "serialization"
        for _, model, _ in op.other_answers:
            models[model] = "serialization"
    models[Error] = models[GatewayError] = "serialization"
    adapters: dict[str, TypeAdapter[Any]] = {model.__name__: TypeAdapter(model) for model in models}
    top, definitions = TypeAdapter.json_schemas(
        [(model.__name__, mode, adapters[model.__name__]) for model, mode in models.items()],
        ref_template=_REF,
    )
    refs = {model: top[(model.__name__, mode)] for model, mode in models.items()}
    schemas: dict[str, Any] = dict(definitions.get("$defs", {}))
    schemas["SendRequest"] = as_component(send_request_schema(), schemas)
    refs[SendRequest] = {"$ref": _REF.format(model="SendRequest")}
    return schemas, refs


def as_component(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """A standalone JSON Schema as it goes under components/schemas: as published while it has no
    $defs; else with them moved into `schemas` and its refs pointing there (OpenAPI tools resolve
    "#/..." against the document), and without its $id, which would rebase those refs."""
    defs: dict[str, Any] = schema.get("$defs", {})
    if not defs:
        return schema

    def rebase(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                key: _REF.format(model=value.removeprefix("#/$defs/"))
                if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/")
                else rebase(value)
                for key, value in node.items()
            }
        if isinstance(node, list):
            return [rebase(item) for item in node]
        return node

    for name, definition in defs.items():
        definition = rebase(definition)
        if schemas.setdefault(name, definition) != definition:
            raise ValueError(f"two different schemas are both named {name!r}")
    result: dict[str, Any] = rebase({k: v for k, v in schema.items() if k not in ("$defs", "$id")})
    return result


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _operation(op: Operation, refs: dict[type[Any], dict[str, Any]]) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "description": _PATH_PARAMETERS[name]}
        | {"schema": {"type": "string"}}
        for name in re.findall(r"\{(\w+)\}", op.path)
    ]
    parameters += [
        {"name": name, "in": "query", "required": False} | _QUERY_PARAMETERS[name] for name in op.query
    ]
    if op.body is SendRequest:
        parameters.append(_IDEMPOTENCY_KEY)

    answer: dict[str, Any] = {"description": op.answer_description}
    if op.answer is not None and op.answer_also:
        also = {"type": "object", "properties": op.answer_also, "required": sorted(op.answer_also)}
        answer["content"] = _json_content({"allOf": [refs[op.answer], also]})
    elif op.answer is not None:
        answer["content"] = _json_content(refs[op.answer])
    elif op.binary:
        answer["content"] = {"*/*": {}}  # whatever type the file was stored with
    elif op.status != 204:
        answer["content"] = _json_content({"type": "object"})
    responses: dict[str, Any] = {str(op.status): answer}
    for status, model, description in op.other_answers:
        responses[str(status)] = {"description": description, "content": _json_content(refs[model])}
    notes = dict(op.error_notes)
    for status in op.errors:
        description = notes.get(status, _ERRORS[status])
        responses[str(status)] = {"description": description, "content": _json_content(refs[Error])}
    if not op.public:
        responses["401"] = {
            "description": "No valid bearer token (API Gateway's JWT authorizer).",
            "content": _json_content(refs[GatewayError]),
        }
    if not op.public:
        responses.setdefault(
            "403",
            {
                "description": "The token names no team (and is not an admin's).",
                "content": _json_content(refs[Error]),
            },
        )
    if not op.public and op.body is not None:
        responses.setdefault(
            "413",
            {
                "description": "Too large to store (DynamoDB keeps at most 400 KB a message or record): "
                "the same request again fails again.",
                "content": _json_content(refs[Error]),
            },
        )
    if not op.public:
        responses["503"] = {
            "description": "DynamoDB or SQS failed past the SDK's retries; the same request again is safe "
            "(for a send made without an idempotency key: again with the `idempotency_key` answered).",
            "content": _json_content(refs[Error]),
        }
    responses["default"] = {
        "description": "API Gateway's own answers: 413, 429, 500.",
        "content": _json_content(refs[GatewayError]),
    }

    operation: dict[str, Any] = {
        "operationId": op.operation_id,
        "tags": [op.tag],
        "summary": op.summary,
    }
    if op.description:
        operation["description"] = op.description
    if parameters:
        operation["parameters"] = parameters
    if op.body is not None:
        operation["requestBody"] = {"required": op.body_required, "content": _json_content(refs[op.body])}
    operation["responses"] = responses
    if op.public:
        operation["security"] = []  # served without a token (see template.yaml)
    return operation
