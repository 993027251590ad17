"""Inbound: carrier webhooks in, conversations and statuses out.

The webhook side does only what must happen before the carrier gets its 2xx (verify, parse,
enqueue); everything else runs in the processor, where a retry costs nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from parley.carriers.base import (
    Carrier,
    SignatureError,
    WebhookAck,
    WebhookKind,
    WebhookRequest,
)
from parley.domain.ids import inbound_message_id
from parley.domain.models import (
    CarrierEventEnvelope,
    Direction,
    InboundMessage,
    Message,
    MessageStatus,
    StatusChange,
    StatusUpdate,
)
from parley.domain.phone import mask
from parley.domain.status import receipt_advances
from parley.ports import (
    Clock,
    ConflictError,
    ContactRepository,
    ConversationDelta,
    EventPublisher,
    JobQueue,
    MessageRepository,
    NumberRepository,
    ReceiptRepository,
)

logger = logging.getLogger(__name__)

MAX_WEBHOOK_BYTES = 256 * 1024


class WebhookTooLarge(ValueError):
    """No carrier sends webhooks this big; refusing early keeps a bad actor from filling the queue."""


@dataclass(frozen=True)
class WebhookOutcome:
    ack: WebhookAck
    events: int
    verified: bool


class WebhookIntake:
    """Verify → parse → enqueue → ack. At most one AWS call per request (the enqueue)."""

    def __init__(self, queue: JobQueue, *, log_only: bool = False) -> None:
        self._queue = queue
        self._log_only = log_only

    def accept(
        self, carrier: Carrier, kind: WebhookKind, request: WebhookRequest, correlation_id: str
    ) -> WebhookOutcome:
        if len(request.body) > MAX_WEBHOOK_BYTES:
            raise WebhookTooLarge(f"body is {len(request.body)} bytes; the limit is {MAX_WEBHOOK_BYTES}")
        verified = True
        try:
            carrier.verify(request)
        except SignatureError as exc:
            if not self._log_only:
                raise
            verified = False
            logger.warning(
                "signature check failed but verify mode is log-only; keeping the webhook",
                extra={"carrier": carrier.name, "reason": str(exc), "verification": "failed-log-only"},
            )
        events = carrier.parse(kind, request)
        for event in events:
            envelope = CarrierEventEnvelope(event=event, correlation_id=correlation_id)
            self._queue.send(envelope.model_dump(mode="json"))
        return WebhookOutcome(ack=carrier.ack(kind), events=len(events), verified=verified)


class InboundProcessor:
    """Stores each carrier event exactly once and threads it into its conversation."""

    def __init__(
        self,
        messages: MessageRepository,
        receipts: ReceiptRepository,
        numbers: NumberRepository,
        contacts: ContactRepository,
        events: EventPublisher,
        clock: Clock,
    ) -> None:
        self._messages = messages
        self._receipts = receipts
        self._numbers = numbers
        self._contacts = contacts
        self._events = events
        self._clock = clock

    def handle(self, envelope: CarrierEventEnvelope) -> None:
        event = envelope.event
        if isinstance(event, InboundMessage):
            self.store_inbound(event)
        else:
            self.apply_receipt(event)

    def store_inbound(self, event: InboundMessage) -> Message | None:
        """Returns the stored message, or None when this carrier id was already stored."""
        now = self._clock()
        our = self._numbers.get(event.to_number)
        team = our.team if our else "default"
        contacts = self._contacts.find_by_phone(event.from_number)
        contact = contacts[0] if len(contacts) == 1 else None
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
        )
        if not self._messages.insert_with_conversation(message, delta):
            logger.info(
                "duplicate inbound webhook ignored",
                extra={"carrier": event.carrier, "carrier_message_id": event.carrier_message_id},
            )
            return None
        logger.info(
            "inbound text stored",
            extra={"message_id": message.message_id, "from": mask(event.from_number), "team": team},
        )
        self._events.publish("MessageReceived", _event_detail(message))
        return message

    def apply_receipt(self, update: StatusUpdate) -> None:
        message = self._messages.find_by_carrier_ref(update.carrier, update.carrier_message_id)
        if message is None:
            self._receipts.park(update)
            logger.info(
                "receipt for an unknown message parked",
                extra={"carrier_message_id": update.carrier_message_id, "status": update.status.value},
            )
            # The send may have recorded the id while we parked: look again so nothing waits for the sweep.
            message = self._messages.find_by_carrier_ref(update.carrier, update.carrier_message_id)
            if message is not None:
                self.apply_parked(message.carrier, update.carrier_message_id)
            return
        apply_status(self._messages, self._events, message.message_id, update)

    def apply_parked(self, carrier: str, carrier_message_id: str) -> int:
        """Apply every parked receipt for this id, oldest first; returns how many were applied."""
        parked = sorted(self._receipts.parked_for(carrier, carrier_message_id), key=lambda u: u.occurred_at)
        if not parked:
            return 0
        message = self._messages.find_by_carrier_ref(carrier, carrier_message_id)
        if message is None:
            return 0
        for update in parked:
            apply_status(self._messages, self._events, message.message_id, update)
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
    """Move a message forward along the status machine; repeats and late receipts change nothing."""
    for _ in range(5):
        message = messages.get(message_id)
        if message is None:
            return None
        if not receipt_advances(message.status, update.status):
            logger.info(
                "receipt does not advance the message; ignored",
                extra={"message_id": message_id, "current": message.status.value, "reported": update.status},
            )
            return message
        change = StatusChange(
            status=update.status,
            at=update.occurred_at,
            source=f"{update.carrier}:{update.carrier_status}",
            detail=update.error_code,
        )
        changes: dict[str, object] = {"status": update.status, "history": [*message.history, change]}
        if update.error_code:
            changes["error_code"] = update.error_code
            if update.error_message:
                changes["error_reason"] = update.error_message
        try:
            stored = messages.update(message.model_copy(update=changes), expected_version=message.version)
        except ConflictError:
            continue
        if update.status in (MessageStatus.DELIVERED, MessageStatus.FAILED, MessageStatus.UNDELIVERED):
            name = "MessageDelivered" if update.status is MessageStatus.DELIVERED else "MessageFailed"
            events.publish(name, _event_detail(stored))
        return stored
    raise ConflictError(f"message {message_id} kept changing while a receipt was applied")


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
