"""Texts whose webhook never reached us, found by asking the carrier and stored like any webhook.

Twilio does not retry an inbound webhook our endpoint failed (a deploy, a throttle, a dependency
down): without this sweep such a text never reaches the inbox. Each run looks back `window` for each
of our numbers whose carrier can list what it received (`ReceivedLookup`), reads which of those
texts we already hold (one batch read of ids, which derive from the carrier's id), and puts only the
missing ones on the inbound queue, where the processor stores them exactly as a webhook would: the
same checks first (a text our webhook refused, such as one from an invalid sender, is refused here
too, not queued to fail), then the same conditional insert, so a text that arrives late by webhook
too is still stored once.

Run every 15 minutes over an hour, each text is looked at about four times: an outage shorter than
45 minutes is fully recovered, at the cost of one carrier list call per number and run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from parley.carriers.base import Carrier, PayloadError, ReceivedLookup
from parley.domain.ids import inbound_message_id
from parley.edge import queued_event
from parley.observability import MetricsSink, NoMetrics
from parley.ports import JobQueue, MessageRepository, NumberRepository
from parley.redact import mask

logger = logging.getLogger(__name__)

DEFAULT_WINDOW = timedelta(hours=1)


@dataclass
class SweepReport:
    numbers_checked: int = 0
    texts_listed: int = 0
    recovered: int = 0
    refused: int = 0  # held by the carrier, but what our webhook refuses too (logged each run)
    numbers_failed: list[str] = field(default_factory=list)  # masked: a log line may hold them

    def as_dict(self) -> dict[str, object]:
        return {
            "numbers_checked": self.numbers_checked,
            "texts_listed": self.texts_listed,
            "recovered": self.recovered,
            "refused": self.refused,
            "numbers_failed": self.numbers_failed,
        }


class MissedInboundSweep:
    def __init__(
        self,
        *,
        numbers: NumberRepository,
        carrier: Callable[[str], Carrier],
        messages: MessageRepository,
        inbound_queue: JobQueue,
        clock: Callable[[], datetime],
        metrics: MetricsSink | None = None,
        window: timedelta = DEFAULT_WINDOW,
    ) -> None:
        self._numbers = numbers
        self._carrier = carrier
        self._messages = messages
        self._queue = inbound_queue
        self._clock = clock
        self._metrics = metrics or NoMetrics()
        self._window = window

    def run(self) -> SweepReport:
        """One pass over our numbers; a number whose carrier fails is reported and the rest go on."""
        since = self._clock() - self._window
        report = SweepReport()
        for number in self._numbers.all():
            try:
                carrier = self._carrier(number.carrier)
            except Exception:  # an unconfigured carrier: its webhooks can't work either
                logger.warning("missed-webhook sweep: no carrier %r for a number", number.carrier)
                continue
            if not isinstance(carrier, ReceivedLookup):
                continue  # this carrier retries its webhooks itself, or can't be asked
            report.numbers_checked += 1
            try:
                recovered, listed, refused = self._recover(carrier, number.number, since)
            except Exception as exc:
                report.numbers_failed.append(mask(number.number))
                logger.warning(
                    "missed-webhook sweep: listing failed; the next run looks again",
                    extra={"carrier": carrier.name, "our_number": number.number, "error": str(exc)},
                )
                continue
            report.texts_listed += listed
            report.recovered += recovered
            report.refused += refused
            if recovered:
                self._metrics.put("InboundRecovered", recovered, Carrier=carrier.name)
        return report

    def _recover(self, carrier: ReceivedLookup, our_number: str, since: datetime) -> tuple[int, int, int]:
        """(recovered, listed, refused) for one of our numbers."""
        listed = carrier.list_received(our_number, since)
        ids = {inbound_message_id(t.carrier, t.carrier_message_id): t for t in listed}
        held = self._messages.existing(list(ids))
        missing = [(message_id, text) for message_id, text in ids.items() if message_id not in held]
        recovered = 0
        for message_id, text in missing:
            try:
                event = queued_event(text, self._clock())
            except PayloadError as exc:
                logger.warning(
                    "the carrier holds a text our webhook refuses; not stored",
                    extra={
                        "carrier": text.carrier,
                        "carrier_message_id": text.carrier_message_id,
                        "reason": str(exc),
                    },
                )
                continue
            self._queue.send({"event": event, "correlation_id": f"recovered:{message_id}"})
            recovered += 1
            logger.warning(
                "a text whose webhook never arrived was found at the carrier; storing it",
                extra={
                    "carrier": text.carrier,
                    "carrier_message_id": text.carrier_message_id,
                    "message_id": message_id,
                    "received_at": text.received_at.isoformat(),
                },
            )
        return recovered, len(listed), len(missing) - recovered
