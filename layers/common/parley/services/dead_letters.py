"""Dead letters: what a queue gave up on becomes something a person sees, with the reason.

Every work queue moves a message to its dead-letter queue after maxReceiveCount failed attempts (and
EventBridge puts a `SendMessage` it could not deliver on the send DLQ). The sweep drains each DLQ,
a bounded number per run, and turns every letter into a failed message in the Failed view:

- a send or retry job naming a message: that message ends `failed` (unless the carrier already has
  it, or it already ended), with what is known about why;
- a send request (raw or an EventBridge envelope) or a keyword answer: its messages end `failed`,
  and recipients with no message yet get a failed one (`SendService.record_rejected`);
- an inbound carrier event the processor could not handle: a failed inbound record, keeping the
  queued payload so that it can be sent back to the inbound queue once the cause is fixed.

A letter is deleted only after what it became is stored, so nothing is lost if the sweep stops
midway; every record's id derives from the letter (its message, its request key, its carrier event
or its body), so the same letter drained twice changes nothing the second time.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from parley.domain.ids import outbound_message_id
from parley.domain.models import (
    CarrierEventEnvelope,
    Direction,
    Message,
    MessageStatus,
    StatusChange,
)
from parley.domain.phone import mask
from parley.ports import (
    Clock,
    ConflictError,
    DeadLetter,
    DeadLetterQueue,
    EventPublisher,
    MessageRepository,
)
from parley.services.sending import SendService, _detail, last_attempt_unsettled, parse_send_record

logger = logging.getLogger(__name__)

QUEUES = ("inbound", "send", "retry")
PER_QUEUE_PER_RUN = 50  # the sweep runs every minute; a backlog drains over several runs
# Characters of the queued payload kept on a failed record, so it can be sent back once the cause is
# fixed: a whole webhook event; a send request is repeated on each recipient's record, so less.
MAX_KEPT_PAYLOAD = {"inbound": 100_000, "send": 16_000, "retry": 16_000}

# Not waiting on the lost job: the carrier has these (receipts will follow), or the sweep releases
# them again when due. A dead job for them changes nothing.
_NOT_WAITING = frozenset(
    {
        MessageStatus.ACCEPTED,
        MessageStatus.SENT,
        MessageStatus.PARTIALLY_DELIVERED,
        MessageStatus.SCHEDULED,
        MessageStatus.HELD,
    }
)
_FINAL = frozenset(
    {
        MessageStatus.DELIVERED,
        MessageStatus.UNDELIVERED,
        MessageStatus.FAILED,
        MessageStatus.READ,
        MessageStatus.SUPPRESSED,
        MessageStatus.CANCELED,
        MessageStatus.RECEIVED,
    }
)

Count = Callable[[str, int], None]


def dead_letter_id(queue: str, key: str) -> str:
    """The id of the failed record a dead letter becomes when it names no message of ours."""
    return "dl_" + hashlib.sha256(f"dead-letter\x1f{queue}\x1f{key}".encode()).hexdigest()[:26]


class DeadLetterService:
    def __init__(
        self,
        *,
        queues: Mapping[str, DeadLetterQueue],
        messages: MessageRepository,
        sender: SendService,
        events: EventPublisher,
        clock: Clock,
        per_queue: int = PER_QUEUE_PER_RUN,
        count: Count | None = None,
    ) -> None:
        unknown = set(queues) - set(QUEUES)
        if unknown:
            raise ValueError(f"unknown dead-letter queues {sorted(unknown)}; expected some of {QUEUES}")
        self._queues = dict(queues)
        self._messages = messages
        self._sender = sender
        self._events = events
        self._clock = clock
        self._per_queue = per_queue
        self._count = count

    def drain(self) -> dict[str, int]:
        """Read up to `per_queue` letters from each DLQ; record each, then delete it. Returns how many
        letters each queue gave up. A letter that could not be recorded stays for the next run."""
        drained: dict[str, int] = {}
        for name, queue in self._queues.items():
            drained[name] = 0
            try:
                letters = queue.receive(self._per_queue)
            except Exception:
                logger.exception("could not read the %s dead-letter queue", name)
                continue
            for letter in letters:
                try:
                    self.record(name, letter)
                except Exception:
                    logger.exception(
                        "could not record a dead letter; it stays in the queue for the next sweep",
                        extra={"queue": name, "sqs_message_id": letter.message_id},
                    )
                    continue
                try:
                    queue.delete(letter)
                except Exception:  # recorded already: the next run finds the same record and moves on
                    logger.exception("could not delete a recorded dead letter", extra={"queue": name})
                    continue
                drained[name] += 1
            if drained[name] and self._count is not None:
                self._count(name, drained[name])
        return drained

    def record(self, queue: str, letter: DeadLetter) -> list[Message]:
        """Make one dead letter visible; returns the messages it failed or created (none on a repeat)."""
        if queue == "inbound":
            return self._record_inbound(letter)
        return self._record_send_job(queue, letter)

    # -- send and retry queues -------------------------------------------------------------------

    def _record_send_job(self, queue: str, letter: DeadLetter) -> list[Message]:
        data = _json(letter.body)
        why = _why_set_aside(queue, letter)
        if isinstance(data, dict) and set(data) == {"message_id"}:
            return self._fail_named(str(data["message_id"]), queue, letter, why)
        if isinstance(data, dict) and set(data) == {"compliance"} and isinstance(data["compliance"], dict):
            return self._record_compliance(data["compliance"], queue, letter, why)
        try:
            job = parse_send_record(letter.body, letter.message_id)
        except (ValueError, ValidationError, KeyError, TypeError) as exc:
            return self._reject(letter, queue, data, f"{why}; it is not a valid send request ({_short(exc)})")
        if job.message_id is not None:
            return self._fail_named(job.message_id, queue, letter, why)
        if job.request is None or job.request_key is None:
            return self._reject(letter, queue, data, why)
        # The request may have been stored before its handler died: fail what is still waiting, and
        # give the recipients it never reached a failed message each (ids as the send would derive).
        changed: list[Message] = []
        missing: list[str] = []
        for to in job.request.to:
            message = self._messages.get(outbound_message_id(job.request_key, to, job.request.team))
            if message is None:
                missing.append(to)
            else:
                changed.extend(self._fail_waiting(message, queue, letter, why))
        if missing:
            request = _request_object(data)
            request.update({"to": missing, "idempotency_key": job.request_key})
            changed.extend(self._reject(letter, queue, request, why))
        return changed

    def _record_compliance(
        self, job: dict[str, Any], queue: str, letter: DeadLetter, why: str
    ) -> list[Message]:
        """A keyword's answer (STOP/START/HELP confirmation) that could not be sent."""
        to, reference = job.get("to"), job.get("reference")
        if isinstance(to, str) and isinstance(reference, str):
            existing = self._messages.get(outbound_message_id(f"compliance:{reference}", to))
            if existing is not None:
                return self._fail_waiting(existing, queue, letter, why)
        keyword = job.get("keyword")
        word = {"opt_out": "STOP", "opt_in": "START", "help": "HELP"}.get(str(keyword), "a keyword")
        request = {
            "to": [to] if isinstance(to, str) else [],
            "body": f"(the answer to {word})",
            "from": job.get("our_number") if isinstance(job.get("our_number"), str) else None,
            "metadata": {"compliance": keyword},
        }
        if isinstance(reference, str):
            request["idempotency_key"] = f"compliance:{reference}"
        return self._reject(
            letter, queue, request, f"{why}; the legally required answer to a keyword was not sent"
        )

    def _fail_named(self, message_id: str, queue: str, letter: DeadLetter, why: str) -> list[Message]:
        message = self._messages.get(message_id)
        if message is None:
            return [
                *self._store_orphan(
                    letter,
                    queue,
                    customer_number="(unknown)",
                    our_number="",
                    body=f"(message {message_id[:80]})",
                    direction=Direction.OUTBOUND,
                    carrier="",
                    reason=f"{why}; it named message {message_id[:80]}, which was never stored",
                )
            ]
        return self._fail_waiting(message, queue, letter, why)

    def _fail_waiting(self, message: Message, queue: str, letter: DeadLetter, why: str) -> list[Message]:
        """Fail a message that was waiting on the lost job; leave one that ended or that the carrier has."""
        for _ in range(5):
            if message.status in _FINAL or message.status in _NOT_WAITING:
                logger.info(
                    "dead letter for a message that is not waiting on it; nothing to change",
                    extra={"message_id": message.message_id, "status": message.status.value, "queue": queue},
                )
                return []
            reason = _reason_for(message, why)
            may_have_gone = message.status is MessageStatus.SENDING or last_attempt_unsettled(message)
            now = self._clock()
            change = StatusChange(
                status=MessageStatus.FAILED,
                at=now,
                source="parley",
                detail=f"dead letter {letter.message_id} on the {queue} queue",
            )
            try:
                stored = self._messages.update(
                    message.model_copy(
                        update={
                            "status": MessageStatus.FAILED,
                            "error_reason": reason[:1000],
                            "next_attempt_at": None,
                            "history": [*message.history, change],
                            "may_have_been_sent": message.may_have_been_sent or may_have_gone,
                        }
                    ),
                    expected_version=message.version,
                )
            except ConflictError:
                fresh = self._messages.get(message.message_id)
                if fresh is None:
                    raise
                message = fresh
                continue
            logger.warning(
                "message failed: its job was dead-lettered",
                extra={"message_id": stored.message_id, "queue": queue, "reason": reason},
            )
            self._events.publish("MessageFailed", _event(stored))
            return [stored]
        raise ConflictError(message.message_id)

    def _reject(self, letter: DeadLetter, queue: str, data: Any, reason: str) -> list[Message]:
        """A request that never became messages: one failed message per recipient it named."""
        if isinstance(data, dict):
            request = _request_object(data)
            metadata = request.get("metadata")
            metadata = metadata if isinstance(metadata, dict) else {}
            request["metadata"] = {**metadata, "dead_letter": _provenance(queue, letter, keep_payload=True)}
            body = json.dumps(request, default=str)
        else:
            body = letter.body
        return self._sender.record_rejected(body, letter.message_id, reason)

    # -- inbound queue ---------------------------------------------------------------------------

    def _record_inbound(self, letter: DeadLetter) -> list[Message]:
        data = _json(letter.body)
        event = data.get("event") if isinstance(data, dict) else None
        event = event if isinstance(event, dict) else {}
        carrier = _text(event.get("carrier"))
        kind = _text(event.get("kind"))
        carrier_id = _text(event.get("carrier_message_id"))
        try:
            envelope = CarrierEventEnvelope.model_validate_json(letter.body)
        except ValidationError as exc:
            known = f"it can't be read ({_short(exc)})"
        else:
            known = f"the processor failed on it each time (correlation id {envelope.correlation_id})"
        if data is None:
            known = "it is not JSON"
        what = {
            "inbound_message": "an inbound text",
            "status_update": "a delivery receipt",
        }.get(kind, "a carrier event")
        source = f" from {carrier}" if carrier else ""
        if carrier_id:
            source += f" (carrier id {carrier_id[:80]})"
        reason = f"{what}{source} could not be processed after repeated attempts and was set aside: {known}"
        # One record per carrier event (a carrier's retry of it carries another correlation id); a
        # receipt is one event per status and part.
        parts = [carrier, kind, carrier_id]
        if kind == "status_update":
            parts += [str(event.get("status") or ""), str(event.get("part") or "")]
        key = "#".join(parts) if carrier and carrier_id else "body:" + letter.body
        body = _text(event.get("body")) if kind == "inbound_message" else ""
        return self._store_orphan(
            letter,
            "inbound",
            customer_number=_text(event.get("from_number"))[:64] or "(unknown)",
            our_number=_text(event.get("to_number"))[:64],
            body=body[:1600] or f"({what} that could not be processed)",
            direction=Direction.INBOUND,
            carrier=carrier[:40],
            reason=reason,
            key=key,
        )

    def _store_orphan(
        self,
        letter: DeadLetter,
        queue: str,
        *,
        customer_number: str,
        our_number: str,
        body: str,
        direction: Direction,
        carrier: str,
        reason: str,
        key: str | None = None,
    ) -> list[Message]:
        """A failed record, in the Failed view, for a letter that names no message of ours."""
        now = self._clock()
        message = Message(
            message_id=dead_letter_id(queue, key or f"sqs:{letter.message_id}"),
            direction=direction,
            customer_number=customer_number,
            our_number=our_number,
            body=body,
            status=MessageStatus.FAILED,
            carrier=carrier,
            created_at=now,
            updated_at=now,
            error_reason=reason[:1000],
            history=[
                StatusChange(status=MessageStatus.FAILED, at=now, source="parley", detail="dead letter")
            ],
            metadata={"dead_letter": _provenance(queue, letter, keep_payload=True)},
        )
        if not self._messages.insert(message):
            return []  # the same letter, drained before
        logger.warning(
            "dead letter recorded as a failed message",
            extra={
                "message_id": message.message_id,
                "queue": queue,
                "customer_number": mask(customer_number),
                "sqs_message_id": letter.message_id,
            },
        )
        self._events.publish("MessageFailed", _event(message))
        return [message]


# -- helpers -------------------------------------------------------------------------------------------


def _json(body: str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def _request_object(data: Any) -> dict[str, Any]:
    """The send request inside a record (an EventBridge envelope's detail, or the record itself)."""
    if isinstance(data, dict) and "detail-type" in data and isinstance(data.get("detail"), dict):
        return dict(data["detail"])
    return dict(data) if isinstance(data, dict) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": str(exc)}
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        more = f" and {len(errors) - 1} more" if len(errors) > 1 else ""
        return f"{where}: {first['msg']}{more}"[:300]
    if isinstance(exc, KeyError):
        return f"missing {exc}"
    return str(exc)[:300] or type(exc).__name__


def _why_set_aside(queue: str, letter: DeadLetter) -> str:
    attrs = letter.attributes or {}
    error = attrs.get("ERROR_MESSAGE") or attrs.get("ERROR_CODE")
    if error:  # EventBridge's dead-letter attributes: it never reached the send queue
        return f"EventBridge could not deliver the send request to the send queue and set it aside: {error}"
    job = "send job" if queue == "send" else "retry job"
    return f"the {job} failed repeatedly and was set aside"


def _reason_for(message: Message, why: str) -> str:
    known = [f"it was {message.status.value}"]
    if message.attempts:
        known.append(f"{len(message.attempts)} carrier attempt(s)")
    if message.error_reason:
        known.append(f"last error: {message.error_reason}")
    text = f"{why}: {'; '.join(known)}"
    if message.status is MessageStatus.SENDING or last_attempt_unsettled(message):
        text += "; the carrier may already have it, so check with the customer before resending"
    return text


def _event(message: Message) -> dict[str, Any]:
    """The MessageFailed detail, without the kept payload (events stay small)."""
    detail = _detail(message)
    metadata = dict(message.metadata)
    if isinstance(metadata.get("dead_letter"), dict):
        metadata["dead_letter"] = {k: v for k, v in metadata["dead_letter"].items() if k != "payload"}
    detail["metadata"] = metadata
    return detail


def _provenance(queue: str, letter: DeadLetter, *, keep_payload: bool) -> dict[str, Any]:
    """Where a failed record came from; with the queued payload, so it can be sent back (redriven)."""
    out: dict[str, Any] = {"queue": queue, "sqs_message_id": letter.message_id}
    if letter.first_received_at is not None:
        out["first_received_at"] = letter.first_received_at.isoformat()
    if letter.sent_at is not None:
        out["sent_at"] = letter.sent_at.isoformat()
    if letter.attributes:
        out["attributes"] = {k: v[:500] for k, v in letter.attributes.items()}
    if keep_payload:
        limit = MAX_KEPT_PAYLOAD.get(queue, 16_000)
        out["payload"] = letter.body[:limit]
        if len(letter.body) > limit:
            out["payload_truncated"] = True
    return out
