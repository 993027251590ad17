"""Inbound processing: queued carrier events in, stored messages, conversations and statuses out.

The webhook (parley.edge) only verifies, reads and enqueues; everything here runs in the
processor, where a retry costs nothing and a duplicate is a no-op.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from parley.carriers.base import Carrier, MediaRejected, MediaSource
from parley.domain.ids import inbound_message_id
from parley.domain.keywords import Keyword, answered_by_carrier, from_carrier_flag, keyword_of
from parley.domain.models import (
    Attempt,
    CarrierEventEnvelope,
    Conversation,
    Direction,
    InboundMessage,
    Media,
    Message,
    MessageStatus,
    OptOut,
    OurNumber,
    StatusChange,
    StatusUpdate,
)
from parley.domain.phone import mask
from parley.domain.retry import RetryPolicy, describe_span
from parley.domain.routing import NEW_LEAD, Routing, lead_id_for, new_lead, route
from parley.domain.status import (
    CARRIER_REPORTED,
    part_receipt_advances,
    parts_status_advances,
    receipt_advances,
)
from parley.observability import bind_correlation_id, correlation_id, journey_id
from parley.ports import (
    Clock,
    ConflictError,
    ContactRepository,
    ConversationDelta,
    ConversationRepository,
    EventPublisher,
    JobQueue,
    MediaStore,
    MessageRepository,
    NumberRepository,
    OptOutRepository,
    PartStore,
    ReceiptRepository,
)

logger = logging.getLogger(__name__)


# Answer a keyword: (keyword, customer number, our number, the keyword message's id).
ComplianceReply = Callable[[Keyword, str, str, str], None]


# Parts of one long text reach the carrier within seconds, and carriers retry a webhook for a day:
# parts held this long before a group's newest belong to an earlier text.
PART_WINDOW = timedelta(hours=24)
# How long an assembled part's carrier id is remembered, so a part sent again is dropped; past the
# carriers' day of retries and the window above.
ASSEMBLED_MARK_SECONDS = 7 * 24 * 3600
# How long a held part (body and all) is kept: past PART_WINDOW it can never be assembled; the
# extra day covers the carrier's retries of the rest.
HELD_PART_SECONDS = 2 * 24 * 3600
_ASSEMBLED = "assembled#"


def _part_key(part: int, carrier_message_id: str) -> str:
    return f"{part:05d}#{carrier_message_id}"


class ReceiptStore(ReceiptRepository, PartStore, Protocol):
    """The parked-receipts table also holds the parts of long inbound texts until all have arrived."""


class InboundProcessor:
    """Stores each carrier event exactly once and threads it into its conversation.

    With `carriers` and `media`, an MMS's attachments are then copied from the carrier to our store
    (see `copy_media`); without them they stay at the carrier's URLs. With `retry_policy` and
    `retry_queue`, a text a receipt says failed for a passing reason is sent again, within the
    limits a failed send has (see `_retry_failed`).
    """

    def __init__(
        self,
        messages: MessageRepository,
        receipts: ReceiptStore,
        numbers: NumberRepository,
        contacts: ContactRepository,
        events: EventPublisher,
        clock: Clock,
        *,
        opt_outs: OptOutRepository,
        carriers: Callable[[str], Carrier] | None = None,
        media: MediaStore | None = None,
        compliance: ComplianceReply | None = None,
        conversations: ConversationRepository | None = None,
        retry_policy: RetryPolicy | None = None,
        retry_queue: JobQueue | None = None,
    ) -> None:
        self._retry_policy = retry_policy
        self._retry_queue = retry_queue
        self._conversations = conversations
        self._compliance = compliance
        self._carriers = carriers
        self._media = media
        self._opt_outs = opt_outs
        self._messages = messages
        self._receipts = receipts
        self._numbers = numbers
        self._contacts = contacts
        self._events = events
        self._clock = clock

    def handle(self, envelope: CarrierEventEnvelope) -> None:
        event = envelope.event
        if not envelope.verified:  # log-only mode: kept, and said at every step it touches
            logger.warning(
                "processing an event whose signature did not verify (verify mode is log-only)",
                extra={"carrier": event.carrier, "carrier_message_id": event.carrier_message_id},
            )
        if isinstance(event, InboundMessage):
            if event.concat is not None and event.concat.total > 1:
                assembled = self._reassemble(event)
                if assembled is None:
                    return
                whole, group, keys = assembled
                self.store_inbound(whole, correlation_id=envelope.correlation_id)
                # Only now: a failure before this redelivers the last part, which finds every part
                # still there and assembles the same text again (its id derives from the parts').
                # The marks come first, so a part the carrier sends again is known for what it is.
                for key in keys:
                    self._receipts.save_part(
                        group, _ASSEMBLED + key.partition("#")[2], {}, keep_seconds=ASSEMBLED_MARK_SECONDS
                    )
                self._receipts.clear_parts(group, keys)
                return
            self.store_inbound(event, correlation_id=envelope.correlation_id)
        else:
            self.apply_receipt(event)

    def _reassemble(self, part: InboundMessage) -> tuple[InboundMessage, str, list[str]] | None:
        """Keep each part until all have arrived, then yield the whole text with its group and the
        keys of its parts (the caller marks them assembled and clears them once it is stored; the
        conditional insert makes a second assembly a no-op).

        The handset's concat reference is a small counter that wraps, so a group (sender, our
        number, reference, part count) can hold parts of more than one text: each part is kept
        under its own carrier id, a part already assembled is dropped, and parts received more
        than PART_WINDOW before the group's newest are stale and removed. The whole text's id
        derives from its parts' own carrier ids, not from the reference."""
        assert part.concat is not None
        total = part.concat.total
        group = f"{part.carrier}#{part.from_number}#{part.to_number}#{part.concat.ref}#{total}"
        key = _part_key(part.concat.part, part.carrier_message_id)
        self._receipts.save_part(group, key, part.model_dump(mode="json"), keep_seconds=HELD_PART_SECONDS)
        stored = self._receipts.parts(group)
        assembled = {k.removeprefix(_ASSEMBLED) for k in stored if k.startswith(_ASSEMBLED)}
        held = {
            k: InboundMessage.model_validate(v) for k, v in stored.items() if not k.startswith(_ASSEMBLED)
        }
        done = [k for k, p in held.items() if p.carrier_message_id in assembled]
        newest = max((p.received_at for k, p in held.items() if k not in done), default=part.received_at)
        stale = [k for k, p in held.items() if newest - p.received_at > PART_WINDOW and k not in done]
        if done or stale:
            self._receipts.clear_parts(group, done + stale)
            logger.info(
                "parts of a long text dropped: already assembled or received too long before the rest",
                extra={"carrier": part.carrier, "assembled": len(done), "stale": len(stale)},
            )
        if part.carrier_message_id in assembled or key in stale:
            return None
        # Two texts with the same reference within the window: each part number takes the part
        # received nearest to this one.
        chosen: dict[int, tuple[str, InboundMessage]] = {}
        for k, p in sorted(held.items()):
            if k in done or k in stale or p.concat is None:
                continue
            current = chosen.get(p.concat.part)
            if current is None or abs(p.received_at - part.received_at) < abs(
                current[1].received_at - part.received_at
            ):
                chosen[p.concat.part] = (k, p)
        chosen[part.concat.part] = (key, part)
        if any(n not in chosen for n in range(1, total + 1)):
            logger.info(
                "part of a long text stored; waiting for the rest",
                extra={"carrier": part.carrier, "part": part.concat.part, "total": total},
            )
            return None
        pieces = [chosen[n][1] for n in range(1, total + 1)]
        fingerprint = hashlib.sha256("|".join(p.carrier_message_id for p in pieces).encode()).hexdigest()[:16]
        whole = pieces[0].model_copy(
            update={
                "carrier_message_id": f"concat:{part.concat.ref}:{part.from_number}:{fingerprint}",
                "body": "".join(p.body for p in pieces),
                "media": tuple(m for p in pieces for m in p.media),
                "segments": total,
                "received_at": max(p.received_at for p in pieces),
                "concat": None,
                "raw": {"parts": [p.carrier_message_id for p in pieces]},
            }
        )
        return whole, group, [chosen[n][0] for n in range(1, total + 1)]

    def store_inbound(self, event: InboundMessage, *, correlation_id: str | None = None) -> Message | None:
        """Returns the stored message, or None when this carrier id was already stored.

        `correlation_id` (the webhook's) is kept as the message's request id: its journey's id, at no
        extra write.

        The message is stored (and announced) before its media is copied, so a failed copy never
        costs the text: a transient failure raises for the queue to redeliver the event, and the
        redelivery, a duplicate, only finishes the copies still missing.
        """
        now = self._clock()
        our = self._numbers.get(event.to_number)
        carrier_answered = answered_by_carrier(
            event.carrier, event.opt_out, event.body, our.number_type if our else None
        )
        keyword = from_carrier_flag(event.opt_out) or keyword_of(event.body)
        answer_due = True
        # A keyword text is stored only after its consent change and answer, so one already stored is
        # a redelivery (Twilio's and Plivo's carry no time of their own to tell it by): it must not
        # undo a later START or STOP, nor be answered again. One read, for keyword texts alone.
        if keyword is not None and self._messages.get(
            inbound_message_id(event.carrier, event.carrier_message_id)
        ):
            keyword = None
        if keyword in (Keyword.OPT_OUT, Keyword.OPT_IN):
            answer_due = self._record_consent(
                event,
                opted_out=keyword is Keyword.OPT_OUT,
                carrier_answered=carrier_answered,
                number=our.opt_out_number if our else None,
            )
        if keyword is not None and answer_due and not carrier_answered and self._compliance is not None:
            # One answer per keyword message: the reply's id derives from this message's id, so a
            # redelivered webhook can't send it twice.
            self._compliance(
                keyword,
                event.from_number,
                event.to_number,
                inbound_message_id(event.carrier, event.carrier_message_id),
            )
        conversation = self._conversations.get(event.from_number) if self._conversations is not None else None
        # The thread's team, once it has one: a team that texts from the pool's number must see its
        # customer's answer (and act on it); a first text takes our number's team.
        team = conversation.team if conversation is not None else (our.team if our else "default")
        routing = self._route(event.from_number, our, now, conversation)
        contact = routing.record
        message = Message(
            message_id=inbound_message_id(event.carrier, event.carrier_message_id),
            direction=Direction.INBOUND,
            customer_number=event.from_number,
            our_number=event.to_number,
            body=event.body,
            status=MessageStatus.RECEIVED,
            carrier=event.carrier,
            carrier_message_id=event.carrier_message_id,
            created_at=event.received_at,
            updated_at=now,
            segments=event.segments,
            media=list(event.media),
            history=[StatusChange(status=MessageStatus.RECEIVED, at=event.received_at, source=event.carrier)],
            request_id=correlation_id or None,
            team=team,  # our number's: who sees the text, and whose message views list it
        )
        delta = ConversationDelta(
            customer_number=event.from_number,
            team=team,
            our_number=event.to_number,
            at=event.received_at,
            message_id=message.message_id,
            preview=event.body,
            direction=Direction.INBOUND.value,
            unread_increment=1,
            owner=(contact.owner if contact else None) or (our.owner if our else None),
            contact_id=contact.contact_id if contact else None,
            routed=True,
            routing_reason=routing.reason,
            conflict_candidates=tuple(routing.tied_ids),
        )
        if not self._messages.insert_with_conversation(message, delta):
            logger.info(
                "duplicate inbound webhook ignored",
                extra={"carrier": event.carrier, "carrier_message_id": event.carrier_message_id},
            )
            if event.media:  # an earlier delivery may have stored it and failed to copy some media
                stored = self._messages.get(message.message_id)
                if stored is not None:
                    self.copy_media(stored)
            return None
        logger.info(
            "inbound text stored",
            extra={
                "message_id": message.message_id,
                "from": mask(event.from_number),
                "team": team,
                "record": contact.contact_id if contact else None,
                "owner": delta.owner,
                "routing": routing.reason,
                "candidates": [c.contact_id for c in routing.candidates],
            },
        )
        self._events.publish("MessageReceived", _event_detail(message))
        return self.copy_media(message)

    def _route(
        self, customer: str, our: OurNumber | None, now: datetime, conversation: Conversation | None
    ) -> Routing:
        """The record this customer's text belongs to (parley.domain.routing). An E.164 number no
        record has gets a new lead, once: its id derives from the number and the write is conditional,
        so a redelivery or a race with the customer's next text finds the same lead."""
        candidates = self._contacts.find_by_phone(customer)
        if not candidates:
            if not customer.startswith("+"):  # a short code or an alphanumeric sender: no lead
                return route([])
            lead = new_lead(customer, our, now)
            if not self._contacts.create(lead):
                existing = self._contacts.get(lead_id_for(customer))
                if existing is None or customer not in existing.phones:
                    return route([])  # its lead has since lost the number: left for a person
                return route([existing])  # created meanwhile (a redelivery, or a race)
            return Routing(lead, (lead,), NEW_LEAD)
        return route(candidates, linked_id=conversation.contact_id if conversation else None, number=our)

    def copy_media(self, message: Message) -> Message:
        """Copy each attachment not yet copied (nor given up on) to media/<message_id>/<index>.

        A MediaRejected attachment is recorded with its reason and the others go on; any other
        failure is raised once the rest are done and recorded, so the queue redelivers the event
        and a later attempt copies only what is still missing. Returns the message as recorded.
        """
        pending = [i for i, item in enumerate(message.media) if item.pending]
        if not pending or self._media is None or self._carriers is None:
            return message
        source = self._carriers(message.carrier)
        if not isinstance(source, MediaSource):
            logger.warning(
                "carrier can't fetch media; it stays at the carrier's URLs",
                extra={"message_id": message.message_id, "carrier": message.carrier},
            )
            return message
        results: dict[int, Media] = {}
        failure: Exception | None = None
        for index in pending:
            item = message.media[index]
            try:
                fetched = source.fetch_media(item.url)
                location = self._media.put(
                    f"media/{message.message_id}/{index}",
                    fetched.content,
                    fetched.content_type or item.content_type,
                )
            except MediaRejected as exc:
                reason = str(exc)[:300] or "the carrier's media could not be fetched"
                results[index] = item.model_copy(update={"error": reason})
                logger.warning(
                    "MMS media not copied: %s",
                    reason,
                    extra={"message_id": message.message_id, "media_index": index},
                )
            except Exception as exc:  # transient: retried with the event
                failure = failure or exc
                logger.warning(
                    "MMS media copy failed; it will be retried: %s",
                    type(exc).__name__,
                    extra={"message_id": message.message_id, "media_index": index},
                )
            else:
                results[index] = item.model_copy(
                    update={
                        "stored_at": location,
                        "size": len(fetched.content),
                        "content_type": item.content_type or fetched.content_type,
                    }
                )
        recorded = self._record_media(message.message_id, results) if results else None
        if failure is not None:
            raise failure
        return recorded or message

    def _record_media(self, message_id: str, results: dict[int, Media]) -> Message | None:
        """Write the copies' outcomes into the stored message, re-reading it on a lost race."""
        for _ in range(5):
            current = self._messages.get(message_id)
            if current is None:
                return None
            media = list(current.media)
            changed = False
            for index, item in results.items():
                if index < len(media) and media[index].url == item.url and media[index].pending:
                    media[index] = item
                    changed = True
            if not changed:
                return current
            try:
                return self._messages.update(
                    current.model_copy(update={"media": media}), expected_version=current.version
                )
            except ConflictError:
                continue
        raise ConflictError(f"message {message_id} kept changing while its media was recorded")

    def _record_consent(
        self, event: InboundMessage, *, opted_out: bool, carrier_answered: bool, number: str | None
    ) -> bool:
        """One consent record per customer, across our numbers and carriers; repeats change nothing.
        Returns whether the keyword is answered: not when a later decision stands (a redelivered or
        late STOP after a START), nor for an opt-in word from a customer this number may text (a
        "Yes" in a conversation is an ordinary answer). A repeated STOP is answered each time.

        `number` is set when the number texted keeps its own opt-outs (scope "number"): the keyword
        then changes consent for that number alone; otherwise for all our numbers. A START to such a
        number from a customer opted out of all our numbers lets that number text them again
        (`OptOut.blocks`): the opt-in is honoured for the number it was sent to.
        """
        current = self._opt_outs.get(event.from_number)
        # A START to one number is also overtaken by a later opt-out from all of them.
        if _newer_decision(current, number, event.received_at) or (
            not opted_out and number is not None and _newer_decision(current, None, event.received_at)
        ):
            logger.info(
                "a keyword older than the customer's latest consent change; consent unchanged",
                extra={"customer": mask(event.from_number), "scope": number or "all"},
            )
            return False
        if not opted_out:
            blocked = current is not None and (
                current.opted_out if number is None else current.blocks(number)
            )
            if not blocked:  # nothing to lift; answered only if this very text lifted it (a redelivery)
                return current is not None and any(
                    c.number == number and not c.opted_out and c.at == event.received_at
                    for c in current.history
                )
        elif (
            current is not None
            and current.is_opted_out(number)
            and (number is not None or not current.opted_in_since())
        ):
            return True  # already in effect; a STOP is confirmed each time
        self._opt_outs.record(
            event.from_number,
            opted_out=opted_out,
            source=f"{event.carrier}:keyword" if carrier_answered else "keyword",
            at=event.received_at,
            detail=event.body[:40],
            number=number,
        )
        logger.info(
            "customer opted out" if opted_out else "customer opted back in",
            extra={
                "customer": mask(event.from_number),
                "carrier_answered": carrier_answered,
                "scope": number or "all",
            },
        )
        return True

    def _carrier_opt_out(self, message: Message, update: StatusUpdate) -> None:
        """The carrier refused a text because the customer opted out with it: record it, once, unless
        a later consent decision (a START since) stands."""
        if not update.opted_out:
            return
        our = self._numbers.get(message.our_number)  # the carrier refused texts from this number
        number = our.opt_out_number if our else None
        current = self._opt_outs.get(message.customer_number)
        if _newer_decision(current, number, update.occurred_at) or (
            current is not None and current.is_opted_out(number)
        ):
            return
        self._opt_outs.record(
            message.customer_number,
            opted_out=True,
            source=f"{update.carrier}:{update.error_code or update.carrier_status}",
            at=update.occurred_at,
            detail=update.error_message,
            number=number,
        )

    def apply_receipt(self, update: StatusUpdate) -> None:
        message = self._find(update)
        if message is not None and _confirms_ambiguous(message, update):
            message = self._adopt(message, update)
        if message is not None:
            self._carrier_opt_out(message, update)
        if message is None:
            self._receipts.park(update)
            logger.info(
                "receipt for an unknown message parked",
                extra={"carrier_message_id": update.carrier_message_id, "status": update.status.value},
            )
            # The send may have recorded the id while we parked: look again so nothing waits for the sweep.
            message = self._find(update)
            if message is not None:
                self.apply_parked(update.carrier, update.carrier_message_id)
            return
        if _superseded(message, update):
            # An earlier attempt's receipt, come late after a person resent the text: the new
            # attempt has its own carrier id, and this must not move it.
            logger.info(
                "receipt for an attempt made before a resend; ignored",
                extra={"message_id": message.message_id, "status": update.status.value},
            )
            return
        self._apply(message, _with_part(message, update))

    def _apply(self, message: Message, update: StatusUpdate) -> None:
        """Apply one receipt; a passing failure of the text's current attempt is retried instead."""
        applied = self._retry_failed(message, update)
        if applied is not None:
            apply_status(self._messages, self._events, message.message_id, applied)

    def _retry_failed(self, message: Message, update: StatusUpdate) -> StatusUpdate | None:
        """Send again a text whose current attempt a receipt says failed for a passing reason (an
        unreachable phone, throttling), after the backoff and within the attempt and age limits of a
        failed send. None when a retry was scheduled; else the update to apply as it stands, or, past
        the limits, saying so.

        The failed attempt's carrier ids are set aside as a resend's are, so a repeat of this receipt
        or any late one for that attempt can't move the new attempt or schedule a second retry; a
        text already delivered (or failed, or resent) is left to `apply_status`, which keeps it.
        A split text whose parts report one by one is not retried: some parts may have arrived.
        """
        policy, queue = self._retry_policy, self._retry_queue
        if not update.retryable or update.status not in _FAILED_PART or policy is None or queue is None:
            return update
        if update.parts is not None and update.parts > 1:
            return update
        reason = update.error_message or f"the carrier reported the text {update.status.value}"
        for _ in range(5):
            current = {message.carrier_message_id, *message.carrier_part_ids}
            ours = update.carrier_message_id in current
            if not ours or not receipt_advances(message.status, update.status):
                return update
            if message.deleted_at is not None:
                return update  # left failed: only a person's resend (after a restore) sends it again
            now = self._clock()
            attempts = message.attempts[message.attempts_before_resend :]
            age = (now - attempts[0].at).total_seconds() if attempts else 0.0
            if not policy.should_retry(len(attempts), age):
                gave_up = f"gave up after {len(attempts)} attempts over {describe_span(age)}: {reason}"
                return update.model_copy(update={"error_message": gave_up})
            delay = policy.delay_seconds(len(attempts))
            retrying = f"{reason}; trying again in {describe_span(delay)}"
            kept, last = message.attempts[: len(message.attempts) - 1], message.attempts[-1:]
            failed = [a.model_copy(update={"error_code": update.error_code, "detail": reason}) for a in last]
            changes = {
                "status": MessageStatus.RETRYING,
                "attempts": [*kept, *failed],
                "history": [
                    *message.history,
                    StatusChange(
                        status=update.status,
                        at=update.occurred_at,
                        source=f"{update.carrier}:{update.carrier_status}",
                        detail=update.error_code,
                    ),
                    StatusChange(status=MessageStatus.RETRYING, at=now, source="parley", detail=retrying),
                ],
                "next_attempt_at": now + timedelta(seconds=delay),
                "rate_turn_at": None,
                "carrier_message_id": None,
                "carrier_part_ids": [],
                "part_statuses": {},
                "superseded_carrier_ids": list(
                    dict.fromkeys([*message.superseded_carrier_ids, *filter(None, current)])
                ),
                "error_code": update.error_code,
                "error_reason": retrying,
            }
            try:
                stored = self._messages.update(
                    message.model_copy(update=changes), expected_version=message.version
                )
            except ConflictError:
                fresh = self._messages.get(message.message_id)
                if fresh is None:
                    return None
                message = fresh
                continue
            queue.send({"message_id": stored.message_id}, delay_seconds=delay)
            logger.warning(
                "the carrier reported a passing failure; retry scheduled",
                extra={
                    "message_id": stored.message_id,
                    "error_code": update.error_code,
                    "attempt": len(attempts),
                    "delay_seconds": delay,
                },
            )
            self._events.publish("MessageRetried", _event_detail(stored))
            return None
        raise ConflictError(f"message {message.message_id} kept changing while a receipt was applied")

    def _find(self, update: StatusUpdate) -> Message | None:
        """The message a receipt is about: by the carrier's id, else by our id where the carrier echoes it."""
        message = self._messages.find_by_carrier_ref(update.carrier, update.carrier_message_id)
        if message is None and update.client_ref:
            candidate = self._messages.get(update.client_ref)
            known = candidate is not None and (
                update.carrier_message_id == candidate.carrier_message_id
                or update.carrier_message_id in candidate.carrier_part_ids
                or update.carrier_message_id in candidate.superseded_carrier_ids
            )
            # Or a receipt proving an ambiguous send went out, the carrier's id we never learned.
            if candidate is not None and (
                (candidate.carrier == update.carrier and known) or _confirms_ambiguous(candidate, update)
            ):
                message = candidate
        return message

    def _adopt(self, message: Message, update: StatusUpdate) -> Message | None:
        """Take the carrier's id from a receipt that proves an ambiguous send went out, and take the
        text out of `failed` (or its pending retry): it is accepted, and the receipt then moves it on
        as any other would. None when the text has since changed so the receipt no longer speaks for
        it (a person resent it): the caller parks the receipt."""
        detail = "the carrier's receipt shows it has the text; not sent again"
        for _ in range(5):
            now = self._clock()
            changes = {
                "status": MessageStatus.ACCEPTED,
                "carrier_message_id": update.carrier_message_id,
                "attempts": [
                    *message.attempts,
                    Attempt(number=len(message.attempts) + 1, at=now, outcome="reconciled", detail=detail),
                ],
                "history": [
                    *message.history,
                    StatusChange(
                        status=MessageStatus.ACCEPTED,
                        at=now,
                        source=f"{update.carrier}:{update.carrier_status}",
                        detail=detail,
                    ),
                ],
                "next_attempt_at": None,
                "rate_turn_at": None,
                # The receipt settles whether the ambiguous send went out.
                "may_have_been_sent": False,
                # The attempts keep what the ambiguous send said; a failure the receipt reports
                # replaces the advice to check before resending.
                "error_code": None,
                "error_reason": (
                    update.error_message or f"the carrier reported the text {update.status.value}"
                    if update.status in _FAILED_PART
                    else None
                ),
            }
            try:
                stored = self._messages.update(
                    message.model_copy(update=changes), expected_version=message.version
                )
            except ConflictError:
                fresh = self._messages.get(message.message_id)
                if fresh is None or fresh.carrier_message_id == update.carrier_message_id:
                    return fresh
                if not _confirms_ambiguous(fresh, update):
                    return None
                message = fresh
                continue
            logger.warning(
                "a receipt confirms a send that had no answer; the text is not sent again",
                extra={"message_id": stored.message_id, "carrier_message_id": update.carrier_message_id},
            )
            return stored
        raise ConflictError(f"message {message.message_id} kept changing while a receipt was applied")

    def apply_parked(self, carrier: str, carrier_message_id: str) -> int:
        """Apply every parked receipt for this id, oldest first; returns how many were applied."""
        parked = sorted(self._receipts.parked_for(carrier, carrier_message_id), key=lambda u: u.occurred_at)
        if not parked:
            return 0
        message = self._find(parked[0])
        if message is not None and _confirms_ambiguous(message, parked[0]):
            message = self._adopt(message, parked[0])
        if message is None:
            return 0
        for update in parked:
            if not _superseded(message, update):
                self._carrier_opt_out(message, update)
                self._apply(message, _with_part(message, update))
                message = self._messages.get(message.message_id) or message
            self._receipts.remove(update)
        return len(parked)

    def sweep_parked(self, limit: int = 100) -> int:
        applied = 0
        seen: set[tuple[str, str]] = set()
        for update in self._receipts.all_parked(limit):
            key = (update.carrier, update.carrier_message_id)
            if key not in seen:
                seen.add(key)
                applied += self.apply_parked(*key)
        return applied


def apply_status(
    messages: MessageRepository, events: EventPublisher, message_id: str, update: StatusUpdate
) -> Message | None:
    """Move a message forward along the status machine; repeats and late receipts change nothing.

    Per-segment receipts are kept per part; the message itself is `delivered` only when every part
    is, and `partially_delivered` when all parts have reported and only some arrived. Its status
    follows its parts even out of `failed`, whatever order their receipts come in.
    """
    for _ in range(5):
        message = messages.get(message_id)
        if message is None:
            return None
        received_as = correlation_id()
        journey = bind_correlation_id(journey_id(message))  # the receipt joins its message's journey
        if _superseded(message, update):  # resent since the receipt was matched to it: too late now
            return message
        changes: dict[str, object] = {}
        reported = update.status
        advances_to = receipt_advances
        if update.part is not None and update.parts is not None and update.parts > 1:
            key = str(update.part)
            if part_receipt_advances(message.part_statuses.get(key, MessageStatus.ACCEPTED), update.status):
                part_statuses = {**message.part_statuses, key: update.status}
                changes["part_statuses"] = part_statuses
                reported = _overall(part_statuses, update.parts)
                advances_to = parts_status_advances
            else:
                reported = message.status
        advances = advances_to(message.status, reported)
        if not advances and not changes:
            logger.info(
                "receipt does not advance the message; ignored",
                extra={"message_id": message_id, "current": message.status.value, "reported": update.status},
            )
            return message
        if advances:
            change = StatusChange(
                status=reported,
                at=update.occurred_at,
                source=f"{update.carrier}:{update.carrier_status}",
                detail=update.error_code,
            )
            changes.update({"status": reported, "history": [*message.history, change]})
        # A part's failure on a text still on its way is worth showing; on a delivered one (a stray or
        # late part receipt) it would contradict the status.
        if update.error_code and (advances or message.status is not MessageStatus.DELIVERED):
            changes["error_code"] = update.error_code
            if update.error_message:
                changes["error_reason"] = update.error_message
        if advances and reported is MessageStatus.DELIVERED and advances_to is parts_status_advances:
            # Every part arrived: an earlier part's failure no longer says anything about the text.
            changes.update({"error_code": None, "error_reason": None})
        try:
            stored = messages.update(message.model_copy(update=changes), expected_version=message.version)
        except ConflictError:
            continue
        logger.info(
            "receipt applied",
            extra={
                "message_id": message_id,
                "status": stored.status.value,
                "reported": update.status.value,
                "receipt_correlation_id": received_as if received_as != journey else None,
            },
        )
        if advances and reported in (
            MessageStatus.DELIVERED,
            MessageStatus.FAILED,
            MessageStatus.UNDELIVERED,
        ):
            name = "MessageDelivered" if reported is MessageStatus.DELIVERED else "MessageFailed"
            events.publish(name, _event_detail(stored))
        return stored
    raise ConflictError(f"message {message_id} kept changing while a receipt was applied")


def _newer_decision(current: OptOut | None, number: str | None, at: datetime) -> bool:
    """Whether the customer made a consent decision for this scope after `at` (it stands)."""
    if current is None:
        return False
    return any(change.number == number and change.at > at for change in current.history)


# A text waiting on an ambiguous send: failed for a person to check, or waiting to ask the carrier.
_AWAITING_ANSWER = frozenset({MessageStatus.FAILED, MessageStatus.RETRYING})


def _confirms_ambiguous(message: Message, update: StatusUpdate) -> bool:
    """True for a receipt echoing our id (`client_ref`) for a text whose last attempt got no clear
    answer and left us no carrier id: the carrier took that attempt. Not after a person's resend
    (a receipt dated before it belongs to an attempt the resend set aside, and a resend not yet
    tried has no attempt of its own), nor for a text that failed for a clear reason."""
    if (
        update.client_ref != message.message_id
        or update.carrier != message.carrier
        or message.direction is not Direction.OUTBOUND
        or message.status not in _AWAITING_ANSWER
        or message.carrier_message_id is not None
        or message.carrier_part_ids
        or update.carrier_message_id in message.superseded_carrier_ids
        or update.status not in CARRIER_REPORTED
    ):
        return False
    since_resend = message.attempts[message.attempts_before_resend :]
    if not since_resend or since_resend[-1].outcome != "ambiguous":
        return False
    return message.resent_at is None or update.occurred_at >= message.resent_at


def _superseded(message: Message, update: StatusUpdate) -> bool:
    """True for a receipt about an attempt made before a person resent the message."""
    current = {message.carrier_message_id, *message.carrier_part_ids}
    return update.carrier_message_id in message.superseded_carrier_ids and (
        update.carrier_message_id not in current
    )


def _with_part(message: Message, update: StatusUpdate) -> StatusUpdate:
    """A receipt for one part's own carrier id counts as that part of the message."""
    ids = message.carrier_part_ids
    if update.part is None and len(ids) > 1 and update.carrier_message_id in ids:
        return update.model_copy(update={"part": ids.index(update.carrier_message_id) + 1, "parts": len(ids)})
    return update


_FAILED_PART = frozenset({MessageStatus.FAILED, MessageStatus.UNDELIVERED})


def _overall(part_statuses: dict[str, MessageStatus], parts: int) -> MessageStatus:
    """The whole text's status from its parts' statuses."""
    statuses = [part_statuses.get(str(i)) for i in range(1, parts + 1)]
    known = [s for s in statuses if s is not None]
    if len(known) < parts:
        return MessageStatus.SENT if known else MessageStatus.ACCEPTED
    if all(s in (MessageStatus.DELIVERED, MessageStatus.READ) for s in known):
        return MessageStatus.DELIVERED
    if all(s in _FAILED_PART for s in known):
        return MessageStatus.UNDELIVERED if MessageStatus.UNDELIVERED in known else MessageStatus.FAILED
    if any(s is MessageStatus.DELIVERED for s in known) and all(
        s in _FAILED_PART or s is MessageStatus.DELIVERED for s in known
    ):
        return MessageStatus.PARTIALLY_DELIVERED
    return MessageStatus.SENT


def _event_detail(message: Message) -> dict[str, object]:
    return {
        "message_id": message.message_id,
        "direction": message.direction.value,
        "status": message.status.value,
        "customer_number": message.customer_number,
        "our_number": message.our_number,
        "carrier": message.carrier,
        "error_code": message.error_code,
        "error_reason": message.error_reason,
        "metadata": message.metadata,
    }
