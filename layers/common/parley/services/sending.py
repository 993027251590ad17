"""Send: one request in, one message per recipient, each delivered (or explained) exactly once.

Every entry point (API, EventBridge, SQS) goes through `SendService.accept`, so the same rules
apply whichever way a request arrives. Message ids derive from the sending team, the request key
and the recipient, which makes a redelivered request a no-op instead of a second text (and keeps
one team's keys from ever answering another's requests).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from parley.carriers.base import (
    Carrier,
    FailureKind,
    LookupUnavailable,
    OutboundText,
    SendAccepted,
    SendFailed,
    SentLookup,
)
from parley.domain.encoding import SegmentInfo, analyze
from parley.domain.ids import outbound_message_id
from parley.domain.keywords import Keyword
from parley.domain.models import (
    MAX_METADATA_BYTES,
    Attempt,
    ContactRecord,
    Direction,
    Message,
    MessageStatus,
    OptOutScope,
    OurNumber,
    SendRequest,
    StatusChange,
    bounded_metadata,
    smart_encoding_for,
)
from parley.domain.phone import mask
from parley.domain.quiet_hours import parse_window, recipient_zone
from parley.domain.rate import rate_for
from parley.domain.retry import RetryPolicy, describe_span, without_retry_promise
from parley.domain.status import PENDING, rank, resend_allowed
from parley.domain.templates import MissingMergeField, render
from parley.observability import MetricsSink, NoMetrics, bind_correlation_id, journey_id, suppression_reason
from parley.ports import (
    Clock,
    ConflictError,
    ContactRepository,
    ConversationDelta,
    ConversationRepository,
    EventPublisher,
    JobQueue,
    MessageRepository,
    NumberRepository,
    OptOutRepository,
    RateLimiter,
    TemplateRepository,
)

logger = logging.getLogger(__name__)

# Anything still "sending" after this long lost its worker mid-call; the sweep reconciles it.
STUCK_SENDING_AFTER = timedelta(minutes=5)
# A queued or retrying text with nothing happening this long after it was due has lost its job (the
# queue send failed after the write, say); the sweep queues it again. Sending twice is impossible:
# delivering is a claim on the message's version.
LOST_JOB_AFTER = timedelta(minutes=5)

# Ordering to one recipient: a text waits while an earlier one to the same person from the same number
# is still on its way (queued, retrying or sending). The texts created just before it are looked at (a
# key range ending at its own creation, at most ORDER_LOOKBACK of them), and an earlier text that has
# been waiting longer than the horizon (its job lost, say) no longer holds the later ones back.
ORDER_LOOKBACK = 20
ORDER_HORIZON = timedelta(hours=1)
# A text held back for order looks again when the earlier text is next due; while that one is in flight
# or overdue, after a wait that grows with how long it has been so, up to this.
ORDER_POLL_MAX_SECONDS = 60
# A text waiting this long or longer for an earlier one writes when it is back (as its next attempt),
# so the texts behind it wait as long; a shorter wait writes nothing, unless the sweep would take its
# job for lost before it is back (counting this much slack, for a job that comes back late).
ORDER_NOTE_SECONDS = 5.0
ORDER_BACK_SLACK = timedelta(minutes=1)
# A `send_at` further in the past than this, asked through the API, is a mistake (a wrong time zone,
# usually) rather than clock skew: refused, not sent at once. A queued request that arrives late sends.
PAST_SEND_AT_TOLERANCE = timedelta(minutes=5)
MAX_QUEUE_DELAY_SECONDS = 900  # SQS's ceiling for DelaySeconds
RESERVE_AHEAD_SECONDS = MAX_QUEUE_DELAY_SECONDS  # a text holds a rate turn at most this far ahead
# A text back from the queue this close to its turn goes: the queue's clock and ours differ a little,
# and one more whole-second delay for a few milliseconds would cost the number a second of its rate.
TURN_TOLERANCE_SECONDS = 0.05
# Why an ambiguous text goes to a person although the carrier answered its search.
SEARCH_UNCLEAR = (
    "the carrier may already have sent this text: its search found a matching text but can't tell "
    "whether it is this one; check with the customer before resending"
)


@dataclass(frozen=True)
class FieldError:
    field: str
    reason: str


class NotCancellable(ValueError):
    """The text has already gone (or is going) to the carrier."""


class NotResendable(ValueError):
    """A person's resend was refused: the message isn't failed, or can't be sent again as it is."""


class SendRejected(ValueError):
    """The request can't be sent as given; nothing was stored. Carries a reason per field."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e.field}: {e.reason}" for e in errors))


class KeyReused(SendRejected):
    """The request key already sent something else (another text, template, merge values, sender or
    time) to a recipient: a repeat must ask for the same, and a new request needs a new key."""


@dataclass(frozen=True)
class Draft:
    """One recipient's message, fully decided but not yet stored."""

    message_id: str
    to: str
    sender: OurNumber
    sender_reason: str
    text: str
    info: SegmentInfo
    contact: ContactRecord | None


class SendService:
    def __init__(
        self,
        *,
        messages: MessageRepository,
        conversations: ConversationRepository,
        numbers: NumberRepository,
        templates: TemplateRepository,
        contacts: ContactRepository,
        send_queue: JobQueue,
        retry_queue: JobQueue,
        carriers: Callable[[str], Carrier],
        events: EventPublisher,
        clock: Clock,
        retry_policy: RetryPolicy,
        max_segments: int,
        status_callback_url: Callable[[str], str | None],
        on_carrier_id: Callable[[str, str], object] | None = None,
        opt_outs: OptOutRepository | None = None,
        compliance_texts: Mapping[Keyword, str] | None = None,
        number_scope_texts: Mapping[Keyword, str] | None = None,
        quiet_hours: str = "",
        fallback_zone: str = "UTC",
        rate_limiter: RateLimiter | None = None,
        sleep: Callable[[float], object] | None = None,
        metrics: MetricsSink | None = None,
    ) -> None:
        self._metrics = metrics or NoMetrics()
        self._rate_limiter = rate_limiter
        # Where given, a rate wait under a second is slept in place: the queue's delays come in whole
        # seconds, and rounding every turn up to one would cost a number up to a second per text.
        self._sleep = sleep
        self._quiet_hours = parse_window(quiet_hours)
        self._fallback_zone = fallback_zone
        self._opt_outs = opt_outs
        self._compliance_texts = dict(compliance_texts or {})
        # STOP/START answers from a number that keeps its own opt-outs: they must not claim "all texts".
        self._number_scope_texts = dict(number_scope_texts or {})
        self._messages = messages
        self._conversations = conversations
        self._numbers = numbers
        self._templates = templates
        self._contacts = contacts
        self._send_queue = send_queue
        self._retry_queue = retry_queue
        self._carriers = carriers
        self._events = events
        self._clock = clock
        self._policy = retry_policy
        self._max_segments = max_segments
        self._status_callback_url = status_callback_url
        self._on_carrier_id = on_carrier_id

    # -- planning: pure decisions, no writes ---------------------------------------------------------

    def plan(
        self, request: SendRequest, request_key: str, *, team: str = "default", compliance: bool = False
    ) -> list[Draft]:
        """Decide sender, text and encoding for every recipient, or reject the whole request.

        A keyword's answer (`compliance`) goes from the number the customer texted, whichever team
        has it, and its id derives from the keyword text alone, whatever the team."""
        errors: list[FieldError] = []
        template_body = None
        if request.template_id is not None:
            template = self._templates.get(request.template_id)
            if template is None:
                errors.append(FieldError("template_id", f"no template with id '{request.template_id}'"))
            else:
                template_body = template.body
        explicit = None
        if request.from_number is not None:
            explicit = self._numbers.get(request.from_number)
            if explicit is None:
                errors.append(FieldError("from", f"{request.from_number} is not one of our numbers"))
            elif not compliance and not may_send_from(explicit, team, request.requested_by):
                errors.append(FieldError("from", f"{request.from_number} belongs to another team"))
        if errors:
            raise SendRejected(errors)

        drafts: list[Draft] = []
        ours = {n.number for n in self._numbers.all()}
        for to in request.to:
            if to in ours:
                errors.append(FieldError("to", f"{to} is one of our own numbers; texts go to customers"))
                continue
            contact = self._contact_for(to, team)
            text = request.body or ""
            if template_body is not None:
                try:
                    text = render(template_body, _merge_values(contact, request.merge_values))
                except MissingMergeField as exc:
                    errors.append(FieldError("merge_values", f"{exc} (for {to})"))
                    continue
                if not text.strip():  # carriers refuse an empty text (Twilio 21602)
                    errors.append(
                        FieldError("merge_values", f"the template renders to an empty text for {to}")
                    )
                    continue
            sender, reason = self._pick_sender(to, explicit, team, contact)
            if sender is None:
                errors.append(FieldError("from", "no sender number is configured for this team"))
                continue
            # Per recipient: each may go from a different number, and each number has its own default.
            info = analyze(text, smart_encoding=smart_encoding_for(request.smart_encoding, sender))
            if info.segments > self._max_segments:
                errors.append(
                    FieldError(
                        "body",
                        f"the text needs {info.segments} segments; the limit is {self._max_segments}",
                    )
                )
                continue
            drafts.append(
                Draft(
                    outbound_message_id(request_key, to, None if compliance else team),
                    to,
                    sender,
                    reason,
                    info.text,
                    info,
                    contact,
                )
            )
        if errors:
            raise SendRejected(errors)
        return drafts

    def _contact_for(self, to: str, team: str | None) -> ContactRecord | None:
        """The sending team's one record with this number, whose fields fill merge fields and which
        the conversation links to. Another team's records never do; neither do several of the team's
        (which one would be a guess)."""
        if team is None:
            return None
        contacts = [c for c in self._contacts.find_by_phone(to) if c.team == team]
        return contacts[0] if len(contacts) == 1 else None

    def render(
        self,
        *,
        body: str | None,
        template_id: str | None,
        merge_values: Mapping[str, str],
        to: str | None = None,
        team: str | None = None,
    ) -> str:
        """The text a request would send (to `to`, whose record in `team`, the sending team, fills
        merge fields, as in `plan`): for previews. Without a team no record fills them."""
        if (body is None) == (template_id is None):
            raise SendRejected([FieldError("body", "give exactly one of 'body' or 'template_id'")])
        if template_id is None:
            return body or ""
        template = self._templates.get(template_id)
        if template is None:
            raise SendRejected([FieldError("template_id", f"no template with id '{template_id}'")])
        contact = self._contact_for(to, team) if to else None
        try:
            return render(template.body, _merge_values(contact, merge_values))
        except MissingMergeField as exc:
            raise SendRejected([FieldError("merge_values", str(exc))]) from exc

    def reschedule(self, message: Message, send_at: datetime) -> Message:
        """Move a scheduled (or held) text to a new time, before it has been sent."""
        now = self._clock()
        if message.status not in (MessageStatus.SCHEDULED, MessageStatus.HELD):
            raise NotCancellable(f"the message is {message.status.value}; only scheduled texts can be moved")
        if send_at.tzinfo is None:
            raise ValueError("send_at needs a time zone (e.g. 2026-12-01T09:00:00Z)")
        if send_at > now + timedelta(days=366):
            raise ValueError("send_at can be at most a year ahead")
        if send_at < now - PAST_SEND_AT_TOLERANCE:
            raise SendRejected([_past_send_at(send_at, now)])
        try:
            return self._messages.update(
                message.model_copy(
                    update={
                        "status": MessageStatus.SCHEDULED,
                        "next_attempt_at": max(send_at, now),
                        "history": [*message.history, _change(MessageStatus.SCHEDULED, now, "rescheduled")],
                    }
                ),
                expected_version=message.version,
            )
        except ConflictError as exc:
            raise NotCancellable("the message changed while being rescheduled; look at it again") from exc

    def cancel(self, message: Message) -> Message:
        """Stop a text that hasn't gone to the carrier yet (scheduled, held or still queued)."""
        if message.status not in (MessageStatus.SCHEDULED, MessageStatus.HELD, MessageStatus.QUEUED):
            raise NotCancellable(
                f"the message is {message.status.value}; only texts not yet sent can be cancelled"
            )
        now = self._clock()
        try:
            return self._messages.update(
                message.model_copy(
                    update={
                        "status": MessageStatus.CANCELED,
                        "next_attempt_at": None,
                        "history": [*message.history, _change(MessageStatus.CANCELED, now, "cancelled")],
                    }
                ),
                expected_version=message.version,
            )
        except ConflictError as exc:  # it changed under us (the sweep fired it): say so, don't guess
            raise NotCancellable("the message changed while being cancelled; look at it again") from exc

    def resend(self, message: Message, *, by: str | None) -> tuple[Message, bool]:
        """A person's resend of a failed text: the same message goes back to `queued` (its attempts and
        history kept) and through every send rule again. Returns (message, resent now).

        An opted-out recipient makes it `suppressed` and quiet hours make it `held`; otherwise it goes
        to the send queue, where the rate limit applies and delivery checks consent again. The carrier
        ids of the earlier attempts are set aside, so their late receipts can't touch the new attempt.
        A message already resent and still on its way is left alone (resent now: False): two resends
        send it once. Anything else that isn't failed is refused with NotResendable.
        """
        for tries in range(5):
            if message.deleted_at is not None:
                raise NotResendable("the message is deleted; restore it first")
            if not resend_allowed(message.status):
                if message.resent_at is not None and message.status in PENDING:
                    if message.status is MessageStatus.QUEUED and tries == 0:
                        # A repeat (not a resend that raced this one: that one queues its own job),
                        # after a queue write that failed, say, and the caller was told to send the
                        # same request again: the job may be missing, so it is queued again. A second
                        # job sends nothing twice: delivering is a claim on the message's version.
                        self._send_queue.send({"message_id": message.message_id})
                    return message, False
                raise NotResendable(f"the message is not failed: it is {message.status.value}")
            if message.direction is not Direction.OUTBOUND or not message.carrier or not message.our_number:
                raise NotResendable(
                    "the send request was rejected before it had a sender; send it again instead"
                )
            now = self._clock()
            was = message.error_reason or message.error_code or "no reason given"
            history = [
                *message.history,
                _change(MessageStatus.QUEUED, now, f"resent by {by or 'an unknown user'} (was: {was})"),
            ]
            status, next_attempt_at, reason = MessageStatus.QUEUED, None, None
            compliance = self._is_compliance(message)
            if not compliance:
                reason = self._suppression(message.customer_number, message.our_number)
            sender = self._numbers.get(message.our_number)
            opens = self._quiet_opens(sender, message.customer_number, now) if sender else None
            if reason is not None:
                status = MessageStatus.SUPPRESSED
                history.append(_change(status, now, reason))
            elif opens is not None and not compliance:
                status, next_attempt_at = MessageStatus.HELD, opens
                history.append(_change(status, now, "quiet hours"))
            superseded = [message.carrier_message_id, *message.carrier_part_ids]
            try:
                stored = self._messages.update(
                    message.model_copy(
                        update={
                            "status": status,
                            "history": history,
                            "next_attempt_at": next_attempt_at,
                            "rate_turn_at": None,
                            "resent_at": now,
                            "attempts_before_resend": len(message.attempts),
                            "carrier_message_id": None,
                            "carrier_part_ids": [],
                            "part_statuses": {},
                            "superseded_carrier_ids": list(
                                dict.fromkeys([*message.superseded_carrier_ids, *filter(None, superseded)])
                            ),
                            "error_code": None,  # earlier errors stay in `attempts` and `history`
                            "error_reason": reason,
                            "may_have_been_sent": False,  # the person resending it has checked
                        }
                    ),
                    expected_version=message.version,
                )
            except ConflictError:
                fresh = self._messages.get(message.message_id)
                if fresh is None:
                    raise
                message = fresh  # a concurrent resend (or a receipt) won: decide again on what is stored
                continue
            if stored.status is MessageStatus.QUEUED:
                self._send_queue.send({"message_id": stored.message_id})
            elif stored.status is MessageStatus.SUPPRESSED:
                self._metrics.put("MessagesSuppressed", Reason=suppression_reason(stored.error_reason))
            logger.info(
                "message resent",
                extra={"message_id": stored.message_id, "status": stored.status.value, "by": by},
            )
            self._events.publish("MessageResent", {**_detail(stored), "resent_by": by})
            return stored, True
        raise NotResendable("the message kept changing while being resent; look at it again")

    def sender_for(self, *, from_number: str | None, to: str | None, team: str) -> OurNumber | None:
        """The number a send with these fields would go from, chosen as `plan` chooses: for previews,
        so that they apply the same number's settings. Without `to`, the team's default."""
        if from_number is not None:
            explicit = self._numbers.get(from_number)
            if explicit is None:
                raise SendRejected([FieldError("from", f"{from_number} is not one of our numbers")])
            return explicit
        if to is None:
            return self._numbers.default_for_team(team)
        return self._pick_sender(to, None, team, self._contact_for(to, team))[0]

    def _pick_sender(
        self, to: str, explicit: OurNumber | None, team: str, contact: ContactRecord | None = None
    ) -> tuple[OurNumber | None, str]:
        """The requested number; else the one this customer last talked to; else a number of the
        customer's owner; else the team's default (or the pool's). The reason is stored with the text."""
        if explicit is not None:
            return explicit, "requested"
        conversation = self._conversations.get(to)
        if conversation and conversation.last_our_number:
            sticky = self._numbers.get(conversation.last_our_number)
            if sticky is not None and may_send_from(sticky, team):
                return sticky, "sticky: the number this customer last talked to"
        if contact is not None and contact.owner:
            owned = [n for n in self._numbers.all() if n.owner == contact.owner and may_send_from(n, team)]
            if owned:
                chosen = min(owned, key=lambda n: (not n.is_default, n.number))
                return chosen, f"the number of the customer's owner ({contact.owner})"
        default = self._numbers.default_for_team(team)
        if default is not None and default.team != team:
            return default, "pool default: this team has no number of its own"
        return default, "team default"

    # -- accepting: store one message per recipient, idempotently --------------------------------

    def accept(
        self,
        request: SendRequest,
        request_key: str,
        *,
        team: str = "default",
        compliance: bool = False,
        refuse_past_send_at: bool = False,
    ) -> list[tuple[Message, bool]]:
        """Store the planned messages. Returns (message, created); created is False for a repeat.

        `compliance` marks the legally required answer to a keyword (the opt-out confirmation, the
        help text): the one text an opted-out customer still gets. Only `send_compliance_reply` sets it.

        Keys are per team (the message ids derive from the team, the key and the recipient). A repeat
        that asks for something else than the request first stored under its key raises KeyReused
        before anything is written. With `refuse_past_send_at` (the API), a new request whose
        `send_at` is well in the past is refused; a repeat of a stored one is answered as before.
        """
        team = request.team or team  # a request that names its team (the API checked the caller's)
        # the journey's id: the request key (stored on each message as its request id), or the inbound
        # text's id that a keyword reply carries in its metadata
        bind_correlation_id(str(request.metadata.get("correlation_id") or request_key))
        now = self._clock()
        scheduled = request.send_at is not None and request.send_at > now
        fingerprint = request_fingerprint(request)
        drafts = self.plan(request, request_key, team=team, compliance=compliance)
        found = {d.message_id: self._messages.get(d.message_id) for d in drafts}
        reused = [
            _key_reused(request_key, d.to)
            for d in drafts
            if (stored := found[d.message_id]) is not None and not _same_request(stored, d, team, fingerprint)
        ]
        if reused and not compliance:
            raise KeyReused(reused)
        if request.send_at is not None and request.send_at < now - PAST_SEND_AT_TOLERANCE:
            if refuse_past_send_at and any(found[d.message_id] is None for d in drafts):
                raise SendRejected([_past_send_at(request.send_at, now)])
            logger.warning(
                "send_at is in the past: sending now", extra={"send_at": _utc_text(request.send_at)}
            )
        out: list[tuple[Message, bool]] = []
        for draft in drafts:
            existing = found[draft.message_id]
            if existing is not None:
                out.append((existing, False))
                continue
            status = MessageStatus.SCHEDULED if scheduled else MessageStatus.QUEUED
            next_attempt_at = request.send_at if scheduled else None
            suppressed_reason = None if compliance else self._suppression(draft.to, draft.sender.number)
            if suppressed_reason is not None:
                status = MessageStatus.SUPPRESSED
                self._metrics.put("MessagesSuppressed", Reason=suppression_reason(suppressed_reason))
            elif not scheduled and not compliance:  # the legally required answers are never held
                opens = self._quiet_opens(draft.sender, draft.to, now)
                if opens is not None:
                    status, next_attempt_at = MessageStatus.HELD, opens
            message = Message(
                message_id=draft.message_id,
                direction=Direction.OUTBOUND,
                customer_number=draft.to,
                our_number=draft.sender.number,
                body=draft.text,
                status=status,
                carrier=draft.sender.carrier,
                created_at=now,
                updated_at=now,
                encoding=draft.info.encoding.value,
                segments=draft.info.segments,
                units=draft.info.units,
                history=[StatusChange(status=status, at=now, source="parley")],
                request_id=request_key,
                requested_by=request.requested_by,
                request_fingerprint=fingerprint,
                metadata=request.metadata,
                compliance=compliance,
                next_attempt_at=next_attempt_at,
                team=team,
                sender_reason=draft.sender_reason,
                smart_encoding_applied=draft.info.smart_encoding_applied,
                error_reason=suppressed_reason,
            )
            delta = ConversationDelta(
                customer_number=draft.to,
                team=team,
                our_number=draft.sender.number,
                at=now,
                message_id=message.message_id,
                preview=draft.text,
                direction=Direction.OUTBOUND.value,
                unread_increment=0,
                owner=draft.contact.owner if draft.contact else draft.sender.owner,
                contact_id=draft.contact.contact_id if draft.contact else None,
            )
            created = self._messages.insert_with_conversation(message, delta)
            if not created:  # a concurrent request under the same key won the race
                stored = self._messages.get(draft.message_id)
                if (
                    stored is not None
                    and not compliance
                    and not _same_request(stored, draft, team, fingerprint)
                ):
                    self._refuse_race_loser(request_key, draft, stored, wrote=any(c for _, c in out))
                out.append((stored or message, False))
                continue
            logger.info(
                "message queued",
                extra={
                    "message_id": message.message_id,
                    "to": mask(draft.to),
                    "from": draft.sender.number,
                    "sender_reason": draft.sender_reason,
                    "segments": draft.info.segments,
                    "encoding": draft.info.encoding.value,
                    "smart_encoding_applied": draft.info.smart_encoding_applied,
                },
            )
            out.append((message, True))
        return out

    @staticmethod
    def _refuse_race_loser(request_key: str, draft: Draft, stored: Message, *, wrote: bool) -> None:
        """A different request stored under this key at the same instant: refused as KeyReused, as
        it would have been a moment later, unless this request already stored a message to another
        recipient (refusing then would leave that one unannounced; the log says what happened)."""
        if not wrote:
            raise KeyReused([_key_reused(request_key, draft.to)])
        logger.warning(
            "idempotency key reused for a different request at the same instant",
            extra={"message_id": stored.message_id, "to": mask(draft.to), "request_id": request_key},
        )

    def _is_compliance(self, message: Message) -> bool:
        """Whether the message is the legally required answer to a keyword (sent whatever the consent).

        Answers stored before the mark had its own field (and before requests were fingerprinted)
        carry `metadata.compliance`; as that key was open to any request's metadata, it counts only on
        such a text that is one of our keyword answers word for word.
        """
        if message.compliance:
            return True
        if message.request_fingerprint is not None or not message.metadata.get("compliance"):
            return False  # stored since the mark has its own field: the metadata key means nothing
        answers = {*self._compliance_texts.values(), *self._number_scope_texts.values()}
        answers |= {analyze(a, smart_encoding=True).text for a in answers}
        return message.body in answers

    def _quiet_opens(self, sender: OurNumber, to: str, now: datetime) -> datetime | None:
        """When the recipient's quiet hours end, if they are in them now (the sender's own window wins)."""
        window = self._quiet_hours if sender.quiet_hours is None else parse_window(sender.quiet_hours)
        if window is None:
            return None
        return window.opens_at(now, recipient_zone(to, self._fallback_zone))

    def _suppression(self, to: str, sender: str) -> str | None:
        """Why this recipient must not be texted from `sender`, if they mustn't (the did-not-trigger
        view shows it): opted out of all our numbers, or of this one alone."""
        if self._opt_outs is None:
            return None
        record = self._opt_outs.get(to)
        if record is None or not record.blocks(sender):
            return None
        if sender in record.numbers and not record.opted_out:
            return f"the recipient has opted out of messages from {sender}"
        return "the recipient has opted out of messages from all our numbers"

    def submit(self, request: SendRequest, request_key: str, *, team: str = "default") -> list[Message]:
        """API entry point: store, then hand each new message to the send queue."""
        results = self.accept(request, request_key, team=team, refuse_past_send_at=True)
        for message, _created in results:
            if message.status is MessageStatus.QUEUED:
                self._send_queue.send({"message_id": message.message_id})
        return [m for m, _ in results]

    def send_compliance_reply(
        self,
        keyword: Keyword,
        to: str,
        our_number: str,
        reference: str,
        *,
        correlation_id: str | None = None,
    ) -> Message | None:
        """Answer STOP, START or HELP from the number the customer texted, exactly once.

        A number that keeps its own opt-outs answers STOP and START with texts that say so. The reply
        keeps the inbound text's `correlation_id` (in its metadata): one journey in the logs. It is
        the conversation's team's, as the keyword was (the number's team on a first contact).
        """
        sender = self._numbers.get(our_number)
        conversation = self._conversations.get(to)
        team = conversation.team if conversation is not None else (sender.team if sender else "default")
        text = None
        if sender is not None and sender.opt_out_scope is OptOutScope.NUMBER:
            text = self._number_scope_texts.get(keyword)
        text = text or self._compliance_texts.get(keyword)
        if not text:
            return None
        metadata = {"compliance": keyword.value}
        if correlation_id:
            metadata["correlation_id"] = correlation_id
        request = SendRequest.model_validate(
            {"to": [to], "body": text, "from": our_number, "metadata": metadata}
        )
        (result,) = self.handle_request(request, f"compliance:{reference}", team=team, compliance=True)
        return result

    def handle_request(
        self, request: SendRequest, request_key: str, *, team: str = "default", compliance: bool = False
    ) -> list[Message]:
        """Queue/EventBridge entry point: store and deliver in the same invocation.

        A redelivered request finds its messages already stored; only those still queued are sent
        (a retrying one waits for its backoff, a scheduled one for its time).
        """
        results = self.accept(request, request_key, team=team, compliance=compliance)
        return [
            (self.deliver(m.message_id) or m) if m.status is MessageStatus.QUEUED else m for m, _ in results
        ]

    # -- delivering --------------------------------------------------------------------------------

    def deliver(self, message_id: str) -> Message | None:
        """Try the carrier once. Safe to call twice: only a queued or retrying message is sent."""
        message = self._messages.get(message_id)
        if message is None:
            logger.error("send job for an unknown message", extra={"message_id": message_id})
            return None
        bind_correlation_id(journey_id(message))
        if message.status not in (MessageStatus.QUEUED, MessageStatus.RETRYING):
            logger.info(
                "message is not waiting to be sent; nothing to do",
                extra={"message_id": message_id, "status": message.status.value},
            )
            return message
        compliance = self._is_compliance(message)
        if not compliance:
            # Checked again here: a STOP may have come in while the text was scheduled, held or waiting.
            reason = self._suppression(message.customer_number, message.our_number)
            if reason is not None:
                return self._suppress(message, reason)
        sender = self._numbers.get(message.our_number)
        if sender is not None and not compliance:
            # Checked again too: a retry, a wait for the rate or for an earlier text, or a sweep's
            # re-queue can reach the recipient's evening. The legally required answers are never held.
            opens = self._quiet_opens(sender, message.customer_number, self._clock())
            if opens is not None:
                return self._hold(message, opens)
        message, wait, why = self._turn(message, sender)
        if 0 < wait < 1 and self._sleep is not None:
            self._metrics.put("RateLimitWaits", Carrier=message.carrier or "none")
            self._sleep(wait)
            message, wait, why = self._turn(message, sender)
        if wait > 0:
            # Back a little early and sleep the rest where we can; else back at or after the turn.
            seconds = math.floor(wait) if self._sleep is not None else math.ceil(wait - 1e-6)
            delay = min(MAX_QUEUE_DELAY_SECONDS, max(1, seconds))
            self._retry_queue.send({"message_id": message.message_id}, delay_seconds=delay)
            self._metrics.put("RateLimitWaits", Carrier=message.carrier or "none")
            logger.info(
                f"{why}: waiting {delay}s",
                extra={"message_id": message_id, "from": message.our_number, "delay_seconds": delay},
            )
            return message
        last = message.attempts[-1] if message.attempts else None
        carrier = self._carriers(message.carrier)
        if last is not None and last.outcome == "ambiguous":
            reconciled = self._reconcile(message, carrier)
            if reconciled is not None:
                return reconciled
            if not self._may_try_again(message):  # out of attempts: this pass was only to ask
                return self._give_up(message, "the carrier has no record of the last attempt")
        try:
            claimed = self._messages.update(
                message.model_copy(
                    update={
                        "status": MessageStatus.SENDING,
                        "history": [*message.history, _change(MessageStatus.SENDING, self._clock())],
                        "rate_turn_at": None,  # used up: a retry waits its own turn
                    }
                ),
                expected_version=message.version,
            )
        except ConflictError:
            logger.info("another worker claimed the message", extra={"message_id": message_id})
            return self._messages.get(message_id)

        outcome = carrier.send(_outbound(claimed, self._status_callback_url(claimed.carrier)))
        if isinstance(outcome, SendAccepted):
            return self._record_accepted(claimed, outcome, outcome="accepted")
        return self._record_failure(claimed, outcome)

    def _turn(self, message: Message, sender: OurNumber | None) -> tuple[Message, float, str]:
        """Seconds until this text may go (0: now), the message as stored, and what it waits for.

        A text never overtakes an earlier one to the same recipient from the same number that is still
        on its way: while there is one, it waits (see `_order_wait`) without asking for a rate turn, so
        it never holds a turn it can't use. Otherwise a text that must wait for its sender's rate
        reserves its turn once: the bucket goes into debt and the turn is kept on the message, so it
        comes back when due and goes without asking again. A burst is then sent at exactly the rate, in
        the order it asked, with one re-queue per waiting text. A turn that finds an earlier text on its
        way after all is given up, never spent later: the text asks for a fresh one when it may go.
        """
        if self._rate_limiter is None:
            return message, 0.0, "rate limit"
        now = self._clock()
        if message.rate_turn_at is not None:
            ahead = (message.rate_turn_at - now).total_seconds()
            if ahead > TURN_TOLERANCE_SECONDS:
                return message, ahead, "rate limit"
        earlier = self._earlier_waiting(message, now)
        if earlier:
            wait = self._order_wait(earlier, now)
            return self._wait_for_order(message, now, wait), wait, "an earlier text to the recipient"
        if message.rate_turn_at is not None:
            return message, 0.0, "rate limit"  # its turn has come
        rate = rate_for(sender.number_type if sender else None, sender.rate_per_second if sender else None)
        wait, reserved = self._rate_limiter.reserve(
            message.our_number, now, float(message.segments or 1), rate, horizon=RESERVE_AHEAD_SECONDS
        )
        if not reserved:  # too far ahead, or the bucket kept changing: ask again after `wait`
            if wait > RESERVE_AHEAD_SECONDS:  # say when it comes back, so the sweep knows it isn't lost
                back = now + timedelta(seconds=MAX_QUEUE_DELAY_SECONDS)
                return self._update(message, {"next_attempt_at": back}), wait, "rate limit"
            return message, wait, "rate limit"
        if wait > 0:
            turn = now + timedelta(seconds=wait)
            return self._update(message, {"rate_turn_at": turn, "next_attempt_at": turn}), wait, "rate limit"
        return message, 0.0, "rate limit"

    def _order_wait(self, earlier: list[Message], now: datetime) -> float:
        """How long a text held back for order waits before looking again: until the last of the
        earlier texts is next due (a retry's backoff, a rate turn, its own wait for order). For one in
        flight or overdue, a second at first and longer the longer it takes (half of how long it has
        been so, at most ORDER_POLL_MAX_SECONDS): a text stuck in `sending` waits for the sweep."""
        waits = [1.0]
        for other in earlier:
            due = other.next_attempt_at
            if other.status is not MessageStatus.SENDING and due is not None and due > now:
                waits.append((due - now).total_seconds())
                continue
            since = max(other.updated_at, due or other.updated_at)
            waits.append(min(ORDER_POLL_MAX_SECONDS, (now - since).total_seconds() / 2))
        return min(float(MAX_QUEUE_DELAY_SECONDS), max(waits))

    def _wait_for_order(self, message: Message, now: datetime, wait: float) -> Message:
        """Note what a text held back for order must: a turn it holds is given up (the bucket's later
        turns went to others meanwhile), and a long wait, or one the sweep would otherwise take for a
        lost job, is written as its next attempt. A short wait writes nothing."""
        back = now + timedelta(seconds=wait)
        changes: dict[str, Any] = {}
        if message.rate_turn_at is not None:
            changes["rate_turn_at"] = None
        # the sweep looks for lost jobs from the latest of these (and of the last write) on
        due = max(
            t for t in (message.created_at, message.resent_at, message.next_attempt_at) if t is not None
        )
        if wait >= ORDER_NOTE_SECONDS or back + ORDER_BACK_SLACK > due + LOST_JOB_AFTER:
            changes["next_attempt_at"] = back
        return self._update(message, changes) if changes else message

    def _hold(self, message: Message, opens: datetime) -> Message:
        """A text about to go inside the recipient's quiet hours waits, `held`, until they end; the
        sweep releases it then. A turn it held is given up. If it changed meanwhile (another job
        claimed it, a person cancelled it), that change stands."""
        now = self._clock()
        try:
            stored = self._messages.update(
                message.model_copy(
                    update={
                        "status": MessageStatus.HELD,
                        "next_attempt_at": opens,
                        "rate_turn_at": None,
                        "history": [*message.history, _change(MessageStatus.HELD, now, "quiet hours")],
                    }
                ),
                expected_version=message.version,
            )
        except ConflictError:
            return self._messages.get(message.message_id) or message
        logger.info(
            "quiet hours: held until they end",
            extra={
                "message_id": message.message_id,
                "status": message.status.value,
                "until": _utc_text(opens),
            },
        )
        return stored

    def _suppress(self, message: Message, reason: str) -> Message:
        now = self._clock()
        stored = self._update(
            message,
            {
                "status": MessageStatus.SUPPRESSED,
                "error_reason": reason,
                "next_attempt_at": None,
                "history": [*message.history, _change(MessageStatus.SUPPRESSED, now, reason)],
            },
        )
        self._metrics.put("MessagesSuppressed", Reason=suppression_reason(reason))
        logger.info(
            "message suppressed before sending", extra={"message_id": message.message_id, "reason": reason}
        )
        return stored

    def _earlier_waiting(self, message: Message, now: datetime) -> list[Message]:
        """The texts to the same recipient from the same number, created before this one and still on
        their way, among the conversation's ORDER_LOOKBACK messages created just before it (within the
        horizon). Each of those waits behind the one before it, so the nearest ones tell."""
        earlier = self._messages.list_for_conversation(
            message.customer_number,
            limit=ORDER_LOOKBACK,
            cursor=None,
            since=now - ORDER_HORIZON,
            before=message.created_at,
        ).items
        return [
            other
            for other in earlier
            if other.message_id != message.message_id
            and other.direction is Direction.OUTBOUND
            and other.our_number == message.our_number
            and other.status in (MessageStatus.QUEUED, MessageStatus.RETRYING, MessageStatus.SENDING)
            and other.created_at < message.created_at
            and now - other.created_at < ORDER_HORIZON
        ]

    def _reconcile(self, message: Message, carrier: Carrier) -> Message | None:
        """Before resending after an ambiguous outcome, ask the carrier whether it already has the text.

        A lookup failure propagates: the job is retried later rather than risking a second text.
        Where the carrier can't be searched at all, the message fails for a person to check: we
        never resend what the customer may already have.
        """
        try:
            if not isinstance(carrier, SentLookup):
                raise LookupUnavailable(f"{carrier.name} offers no message search")
            since = _first_handed_over(message)
            found = carrier.find_sent(_outbound(message, None), since, skip=message.superseded_carrier_ids)
        except LookupUnavailable:
            if len(message.attempts) <= message.attempts_before_resend:
                # A person was asked to check, and resent it: that was their call to make.
                return None
            return self._needs_a_person(message)
        if found is None:
            return None
        if found.carrier_message_id in message.superseded_carrier_ids:
            # A search that ignored `skip` matched an earlier, set-aside attempt: it may have hidden
            # this one's text behind it.
            return self._needs_a_person(message, SEARCH_UNCLEAR)
        owner = self._messages.find_by_carrier_ref(message.carrier, found.carrier_message_id)
        if owner is not None and owner.message_id != message.message_id:
            # The carrier's search matched a text we already own (same people, same words, close
            # in time): we can't tell whether this one went out, so neither resend nor claim it.
            return self._needs_a_person(message, SEARCH_UNCLEAR)
        logger.info(
            "ambiguous send reconciled: the carrier already had the text",
            extra={"message_id": message.message_id, "carrier_message_id": found.carrier_message_id},
        )
        return self._record_accepted(message, found, outcome="reconciled")

    def _needs_a_person(self, message: Message, reason: str | None = None) -> Message:
        now = self._clock()
        reason = reason or (
            "the carrier may already have sent this text and can't be asked; "
            "check with the customer before resending"
        )
        stored = self._update(
            message,
            {
                "status": MessageStatus.FAILED,
                "history": [*message.history, _change(MessageStatus.FAILED, now, reason)],
                "next_attempt_at": None,
                "error_reason": reason,
                "may_have_been_sent": True,
            },
        )
        logger.warning(
            "ambiguous send can't be reconciled; left for a person", extra={"message_id": message.message_id}
        )
        self._events.publish("MessageFailed", _detail(stored))
        return stored

    def _record_accepted(self, message: Message, accepted: SendAccepted, *, outcome: str) -> Message:
        now = self._clock()
        attempt = Attempt(number=len(message.attempts) + 1, at=now, outcome=outcome)
        stored = self._update(
            message,
            {
                "status": MessageStatus.ACCEPTED,
                "carrier_message_id": accepted.carrier_message_id,
                "carrier_part_ids": list(accepted.part_ids),
                "attempts": [*message.attempts, attempt],
                "history": [*message.history, _change(MessageStatus.ACCEPTED, now, accepted.carrier_status)],
                "next_attempt_at": None,
                "segments": accepted.segments or message.segments,
                "error_code": None,  # earlier attempts' errors stay in `attempts`
                "error_reason": None,
                # A search match proves the ambiguous send went out.
                **({"may_have_been_sent": False} if outcome == "reconciled" else {}),
            },
        )
        logger.info(
            "carrier accepted the message",
            extra={"message_id": message.message_id, "carrier_message_id": accepted.carrier_message_id},
        )
        self._events.publish("MessageSent", _detail(stored))
        if self._on_carrier_id is not None:
            # Receipts that raced ahead of this write were parked; apply them now.
            for carrier_id in dict.fromkeys((accepted.carrier_message_id, *accepted.part_ids)):
                self._on_carrier_id(stored.carrier, carrier_id)
        return self._messages.get(stored.message_id) or stored

    def _this_round(self, message: Message) -> tuple[list[Attempt], float]:
        """The attempts the retry limits count (since a person's resend, if any), and their age."""
        attempts = message.attempts[message.attempts_before_resend :]
        age = (self._clock() - attempts[0].at).total_seconds() if attempts else 0.0
        return attempts, age

    def _may_try_again(self, message: Message) -> bool:
        attempts, age = self._this_round(message)
        return self._policy.should_retry(len(attempts), age)

    def _give_up(self, message: Message, why: str) -> Message:
        attempts, age = self._this_round(message)
        last = attempts[-1] if attempts else None
        reason = f"gave up after {len(attempts)} attempts over {describe_span(age)}: " + (
            f"{without_retry_promise(last.detail)}; {why}" if last is not None and last.detail else why
        )
        stored = self._update(
            message,
            {
                "status": MessageStatus.FAILED,
                "history": [*message.history, _change(MessageStatus.FAILED, self._clock(), reason)],
                "next_attempt_at": None,
                "error_reason": reason,
            },
        )
        logger.warning("message failed", extra={"message_id": message.message_id, "reason": reason})
        self._events.publish("MessageFailed", _detail(stored))
        return stored

    def _record_failure(self, message: Message, failure: SendFailed) -> Message:
        now = self._clock()
        attempt = Attempt(
            number=len(message.attempts) + 1,
            at=now,
            outcome=failure.kind.value,
            error_code=failure.error_code,
            detail=failure.reason,
        )
        attempts = [*message.attempts, attempt]
        # The limits count this round of attempts: since a person's resend, if there was one.
        this_round = attempts[message.attempts_before_resend :]
        age = (now - this_round[0].at).total_seconds()
        if failure.opted_out and self._opt_outs is not None:
            sender = self._numbers.get(message.our_number)  # the carrier refused texts from this number
            self._opt_outs.record(
                message.customer_number,
                opted_out=True,
                source=f"{message.carrier}:{failure.error_code or 'send'}",
                at=now,
                detail=failure.reason,
                number=sender.opt_out_number if sender else None,
            )
        retryable = failure.kind in (FailureKind.TRANSIENT, FailureKind.AMBIGUOUS)
        # An ambiguous last attempt may have reached the customer: it is never given up on unasked.
        # One more pass asks the carrier, and fails it only if the carrier has no record of it.
        if retryable and (
            self._policy.should_retry(len(this_round), age) or failure.kind is FailureKind.AMBIGUOUS
        ):
            delay = self._policy.delay_seconds(len(this_round), at_least=failure.retry_after)
            stored = self._update(
                message,
                {
                    "status": MessageStatus.RETRYING,
                    "attempts": attempts,
                    "history": [*message.history, _change(MessageStatus.RETRYING, now, failure.reason)],
                    "next_attempt_at": now + timedelta(seconds=delay),
                    "error_code": failure.error_code,
                    "error_reason": failure.reason,
                },
            )
            self._retry_queue.send({"message_id": message.message_id}, delay_seconds=delay)
            logger.warning(
                "transient carrier failure; retry scheduled",
                extra={
                    "message_id": message.message_id,
                    "attempt": len(attempts),
                    "delay_seconds": delay,
                    "reason": failure.reason,
                    "error_code": failure.error_code,
                },
            )
            self._events.publish("MessageRetried", _detail(stored))
            return stored
        reason = failure.reason
        if retryable:  # the carrier's reason may promise a retry: not any more
            why = without_retry_promise(failure.reason)
            reason = f"gave up after {len(this_round)} attempts over {describe_span(age)}: {why}"
        stored = self._update(
            message,
            {
                "status": MessageStatus.FAILED,
                "attempts": attempts,
                "history": [*message.history, _change(MessageStatus.FAILED, now, reason)],
                "next_attempt_at": None,
                "error_code": failure.error_code,
                "error_reason": reason,
            },
        )
        logger.warning(
            "message failed",
            extra={"message_id": message.message_id, "reason": reason, "error_code": failure.error_code},
        )
        self._events.publish("MessageFailed", _detail(stored))
        return stored

    def _update(self, message: Message, changes: Mapping[str, Any]) -> Message:
        """Write our own transition. On a conflict, re-read and re-apply without moving backwards."""
        current = message
        for _ in range(5):
            update = dict(changes)
            if current is not message:
                new_entries = [h for h in changes.get("history", []) if h not in message.history]
                update["history"] = [*current.history, *new_entries]
                if "status" in update and rank(current.status) > rank(update["status"]):
                    update["status"] = current.status
            try:
                return self._messages.update(
                    current.model_copy(update=update), expected_version=current.version
                )
            except ConflictError:
                fresh = self._messages.get(message.message_id)
                if fresh is None:
                    raise
                current = fresh
        raise ConflictError(message.message_id)

    def record_rejected(self, body: str, record_id: str, reason: str) -> list[Message]:
        """A queued or EventBridge request that can't be sent becomes visible failed messages (one per
        recipient it named, in the Failed view) instead of vanishing; redelivery adds nothing."""
        data = _request_data(body)
        raw_to = data.get("to")
        recipients = (
            [str(t)[:64] for t in raw_to] if isinstance(raw_to, list) and raw_to else ["(no recipient)"]
        )
        key = str(data.get("idempotency_key") or f"rejected:{record_id}")
        team = data.get("team") if isinstance(data.get("team"), str) and data.get("team") else None
        raw_metadata = data.get("metadata")
        metadata: dict[str, Any] = raw_metadata if isinstance(raw_metadata, dict) else {}
        try:
            metadata = bounded_metadata(metadata)
        except (ValueError, TypeError, RecursionError):
            metadata = {"dropped": f"the request's metadata was over the limits ({MAX_METADATA_BYTES} bytes)"}
        text = (
            data.get("body") if isinstance(data.get("body"), str) else f"(template {data.get('template_id')})"
        )
        now = self._clock()
        stored = []
        for raw in recipients[:100]:
            message = Message(
                message_id=outbound_message_id(key, raw, team),
                direction=Direction.OUTBOUND,
                customer_number=raw,
                our_number=str(data.get("from") or ""),
                body=str(text)[:1600],
                status=MessageStatus.FAILED,
                carrier="",
                created_at=now,
                updated_at=now,
                error_reason=f"the send request was rejected: {reason}"[:1000],
                history=[_change(MessageStatus.FAILED, now, "request rejected")],
                request_id=key,
                metadata=metadata,
            )
            if self._messages.insert(message):
                stored.append(message)
                self._events.publish("MessageFailed", _detail(message))
        logger.error("send request rejected", extra={"reason": reason, "messages": len(stored)})
        return stored

    # -- the sweep ---------------------------------------------------------------------------------

    def recover_stuck(self, pending: list[Message]) -> int:
        """Messages left in `sending` by a worker that stopped mid-call: the carrier may have them.

        Each becomes an ambiguous attempt and goes to the retry queue, where the carrier is asked
        before anything is resent. One message that can't be written is logged and left for the next
        sweep; the others are still recovered.
        """
        return self._one_by_one(pending, self._recover_one, "recover")

    def _one_by_one(
        self, messages: list[Message], step: Callable[[Message, datetime], int], what: str
    ) -> int:
        """`step` for each message, counting what it did; one that raises is logged and skipped."""
        now = self._clock()
        done = 0
        for message in messages:
            try:
                done += step(message, now)
            except Exception:
                logger.exception(
                    f"the sweep could not {what} a message; the next sweep tries again",
                    extra={"message_id": message.message_id, "status": message.status.value},
                )
        return done

    def _recover_one(self, message: Message, now: datetime) -> int:
        if message.status in (MessageStatus.QUEUED, MessageStatus.RETRYING):
            return self._requeue_if_lost(message, now)
        if message.status is not MessageStatus.SENDING or now - message.updated_at < STUCK_SENDING_AFTER:
            return 0
        failure = SendFailed(FailureKind.AMBIGUOUS, "the send was interrupted; checking with the carrier")
        try:
            self._record_failure(message, failure)
        except ConflictError:
            return 0
        return 1

    def _requeue_if_lost(self, message: Message, now: datetime) -> int:
        """Queue a waiting text again if its job seems lost; 1 if it was."""
        due = max(message.updated_at, message.next_attempt_at or message.updated_at)
        if now - due < LOST_JOB_AFTER:
            return 0
        try:  # the write dates the recovery (and its due key), so the next sweep waits again
            stored = self._update(
                message,
                {
                    "next_attempt_at": now,
                    "history": [
                        *message.history,
                        _change(message.status, now, "its job was lost; queued again"),
                    ],
                },
            )
        except ConflictError:
            return 0
        queue = self._send_queue if message.status is MessageStatus.QUEUED else self._retry_queue
        queue.send({"message_id": stored.message_id})
        logger.warning(
            "a waiting text's job was lost; queued again",
            extra={"message_id": message.message_id, "status": message.status.value},
        )
        return 1

    def release_due(self, due: list[Message]) -> int:
        """Hand scheduled or held messages whose time has come to the send queue. One message that
        can't be written is logged and left for the next sweep; the others are still released."""
        return self._one_by_one(due, self._release_one, "release")

    def _release_one(self, message: Message, now: datetime) -> int:
        if message.status not in (MessageStatus.SCHEDULED, MessageStatus.HELD):
            return 0  # cancelled or already released since the view was read
        if message.next_attempt_at is not None and message.next_attempt_at > now:
            return 0
        sender = self._numbers.get(message.our_number)
        opens = self._quiet_opens(sender, message.customer_number, now) if sender else None
        if opens is not None:  # a scheduled text that falls due at night waits for the morning
            with contextlib.suppress(ConflictError):
                self._messages.update(
                    message.model_copy(
                        update={
                            "status": MessageStatus.HELD,
                            "next_attempt_at": opens,
                            "history": [*message.history, _change(MessageStatus.HELD, now, "quiet hours")],
                        }
                    ),
                    expected_version=message.version,
                )
            return 0
        try:  # a plain versioned write: if it was cancelled meanwhile, the write loses
            self._messages.update(
                message.model_copy(
                    update={
                        "status": MessageStatus.QUEUED,
                        "history": [*message.history, _change(MessageStatus.QUEUED, now, "due")],
                    }
                ),
                expected_version=message.version,
            )
        except ConflictError:
            return 0
        self._send_queue.send({"message_id": message.message_id})
        return 1


def may_send_from(number: OurNumber, team: str, user: str | None = None) -> bool:
    """A team sends from its own numbers, the pool's (numbers left on the default team) and, for a
    person, the numbers they own."""
    return number.team in (team, "default") or (user is not None and number.owner == user)


def last_attempt_unsettled(message: Message) -> bool:
    """The last attempt since a person's resend was ambiguous: the customer may have the text, unless
    the carrier was asked since and had no record of it."""
    attempts = message.attempts[message.attempts_before_resend :]
    return bool(attempts) and attempts[-1].outcome == FailureKind.AMBIGUOUS.value


def request_fingerprint(request: SendRequest) -> str:
    """What a request asks each recipient for, hashed: its text or template with merge values, its
    sender and its time. Who asked, the metadata and the recipient list are not part of it."""
    asked = {
        "body": request.body,
        "template_id": request.template_id,
        "merge_values": request.merge_values,
        "from": request.from_number,
        "send_at": request.send_at.astimezone(UTC).isoformat() if request.send_at else None,
    }
    text = json.dumps(asked, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _utc_text(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _past_send_at(send_at: datetime, now: datetime) -> FieldError:
    return FieldError(
        "send_at",
        f"{_utc_text(send_at)} is {_ago(now - send_at)} in the past (now {_utc_text(now)}); "
        "leave send_at out to send now, or check its time zone",
    )


def _ago(elapsed: timedelta) -> str:
    minutes = int(elapsed.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} minutes"
    if minutes < 48 * 60:
        return f"{minutes // 60} hours"
    return f"{minutes // (24 * 60)} days"


def _key_reused(request_key: str, to: str) -> FieldError:
    return FieldError(
        "idempotency_key",
        f"{request_key!r:.80} was already used for a different request to {to}; "
        "a new request needs a new key",
    )


def _same_request(stored: Message, draft: Draft, team: str, fingerprint: str) -> bool:
    """Whether a message already stored under a draft's id answers this request: the same team's, and
    what it asked for (for a message stored before fingerprints, its text)."""
    if stored.team != team:
        return False
    if stored.request_fingerprint is not None:
        return stored.request_fingerprint == fingerprint
    return stored.body == draft.text


def _merge_values(contact: ContactRecord | None, values: Mapping[str, str]) -> dict[str, str | None]:
    merged: dict[str, str | None] = {}
    if contact is not None:
        merged.update(contact.fields)
        merged.update(
            {
                "name": contact.name,
                "first_name": contact.first_name,
                "last_name": contact.last_name,
                "email": contact.email,
            }
        )
    merged.update(values)
    return merged


def _outbound(message: Message, status_callback_url: str | None) -> OutboundText:
    return OutboundText(
        message_id=message.message_id,
        from_number=message.our_number,
        to_number=message.customer_number,
        body=message.body,
        status_callback_url=status_callback_url,
        attempts_before_resend=message.attempts_before_resend,
    )


def _first_handed_over(message: Message) -> datetime:
    """Since when the carrier may have the text: its first claim (`sending`), else its first attempt,
    of the current round (since a person's resend, if there was one, and since the carrier last took
    it: a receipt's passing failure set that text aside, and what follows is a new try).

    Not simply the first recorded attempt: a worker that died after the carrier call recorded none,
    and the attempt the sweep records for it comes minutes later, past the text the search must find.
    """
    since = message.resent_at  # after a person's resend, the earlier round's text is not this one
    attempts = message.attempts[message.attempts_before_resend :]
    taken = [i for i, a in enumerate(attempts) if a.outcome in ("accepted", "reconciled")]
    claims = [h.at for h in message.history if h.status is MessageStatus.SENDING]
    if taken:  # recorded once the carrier took it: after that try's claim, before the next one's
        since = attempts[taken[-1]].at
        attempts = attempts[taken[-1] + 1 :]
        tried = [at for at in claims if at > since]
    else:
        tried = [at for at in claims if since is None or at >= since]
    tried += [a.at for a in attempts[:1]]
    return min(tried, default=since or message.created_at)


def _change(status: MessageStatus, at: datetime, detail: str | None = None) -> StatusChange:
    return StatusChange(status=status, at=at, source="parley", detail=detail)


def _detail(message: Message) -> dict[str, Any]:
    return {
        "message_id": message.message_id,
        "status": message.status.value,
        "customer_number": message.customer_number,
        "our_number": message.our_number,
        "carrier": message.carrier,
        "carrier_message_id": message.carrier_message_id,
        "error_code": message.error_code,
        "error_reason": message.error_reason,
        "attempts": len(message.attempts),
        "metadata": message.metadata,
    }


@dataclass(frozen=True)
class ComplianceJob:
    keyword: Keyword
    to: str
    our_number: str
    reference: str
    correlation_id: str | None = None  # the inbound text's journey


@dataclass(frozen=True)
class SendJob:
    """What one send-queue record asks for: deliver a stored message, accept a whole request, or
    answer a keyword."""

    message_id: str | None = None
    request: SendRequest | None = None
    request_key: str | None = None
    compliance: ComplianceJob | None = None


def _request_data(body: str) -> dict[str, Any]:
    """The request object inside a send record, however it arrived; {} when there is none."""
    import json

    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return {}
    if isinstance(data, dict) and "detail-type" in data and isinstance(data.get("detail"), dict):
        data = data["detail"]
    return data if isinstance(data, dict) else {}


def parse_send_record(body: str, record_id: str) -> SendJob:
    """Read a send-queue record: a message job, an EventBridge `SendMessage` envelope, or a raw request.

    The request key defaults to the EventBridge event id or the SQS message id, both stable across
    redeliveries, so a request delivered twice still sends once.
    """
    import json

    try:
        data = json.loads(body)
    except RecursionError as exc:  # a bad request, which retrying can't fix
        raise ValueError("the send record's JSON is nested too deeply to read") from exc
    if not isinstance(data, dict):
        raise ValueError("a send record must be a JSON object")
    if set(data) == {"message_id"}:
        return SendJob(message_id=str(data["message_id"]))
    if set(data) == {"compliance"} and isinstance(data["compliance"], dict):
        job = data["compliance"]
        return SendJob(
            compliance=ComplianceJob(
                Keyword(job["keyword"]),
                str(job["to"]),
                str(job["our_number"]),
                str(job["reference"]),
                str(job["correlation_id"]) if job.get("correlation_id") else None,
            )
        )
    if "detail-type" in data and "detail" in data:
        if data["detail-type"] != "SendMessage":
            raise ValueError(f"unexpected event type {data['detail-type']!r}")
        request = SendRequest.model_validate(data["detail"])
        event_key = f"eb:{data['id']}" if data.get("id") else f"sqs:{record_id}"
        return SendJob(request=request, request_key=request.idempotency_key or event_key)
    request = SendRequest.model_validate(data)
    return SendJob(request=request, request_key=request.idempotency_key or f"sqs:{record_id}")
