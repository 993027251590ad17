"""An ambiguous try after a receipt's passing failure is settled by the carrier's search, not by a person.

A receipt with a passing failure (Twilio 30003, an unreachable phone) sets the failed attempt aside
and sends the text again. If that new try ends ambiguous (a 5xx, a read timeout), the search before
sending once more must look for the new try's text only: the set-aside attempt is still in the
carrier's list, same numbers, same words, earlier, and the search picks the earliest match.
The Twilio and Plivo plugins run here against a stand-in of their REST API.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from werkzeug.wrappers import Request, Response

from parley.carriers.base import Carrier, FailureKind, OutboundText, SendAccepted, SendFailed
from parley.carriers.plivo import PlivoCarrier
from parley.carriers.twilio import TwilioCarrier
from parley.domain.models import Message, MessageStatus, OurNumber, SendRequest, StatusUpdate
from parley.services.sending import SEARCH_UNCLEAR, SendService
from tests.carrier_api import FakeCarrierApi, carrier_api_fixtures
from tests.fakes import FakeLookupCarrier, World

carrier_api_server, fake_api = carrier_api_fixtures("fake_api")

OURS = "+15005550006"
ANA = "+14155550100"
TWILIO_SID = "ACc0ffee00000000000000000000000000"
PLIVO_ID = "MAPARLEY000000000001"
TOKEN = "f3a9c1e07b5d4e2a9c8b7a6d5e4f3a21"


@dataclass
class CarrierAccount:
    """The texts one account holds, created at the world's time, and how the next sends answer:
    "ok" (created, id returned), "lost" (created, HTTP 500) or "down" (not created, HTTP 500)."""

    name: str
    clock: Callable[[], datetime]
    answers: list[str] = field(default_factory=list)
    texts: list[tuple[str, datetime, str]] = field(default_factory=list)  # (id, created, body)
    sends: int = 0
    searches: int = 0

    def reply(self, request: Request) -> Response:
        if request.method == "GET":
            self.searches += 1
            return self._json(200, self._listing())
        self.sends += 1
        answer = self.answers.pop(0) if self.answers else "ok"
        body = (
            request.form.get("Body")
            if self.name == "twilio"
            else (request.get_json(force=True) or {})["text"]
        )
        if answer == "down":
            return self._json(500, {})
        carrier_id = f"{self.name}-{len(self.texts) + 1}"
        self.texts.append((carrier_id, self.clock(), str(body)))
        if answer == "lost":
            return self._json(500, {})
        if self.name == "twilio":
            return self._json(201, {"sid": carrier_id, "status": "queued", "num_segments": "1"})
        return self._json(
            202, {"api_id": "a-1", "message": "message(s) queued", "message_uuid": [carrier_id]}
        )

    def _listing(self) -> dict[str, Any]:
        if self.name == "twilio":
            messages = [
                {
                    "sid": sid,
                    "status": "undelivered" if n == 0 else "sent",
                    "to": ANA,
                    "from": OURS,
                    "body": body,
                    "direction": "outbound-api",
                    "date_created": at.strftime("%a, %d %b %Y %H:%M:%S +0000"),
                    "date_sent": at.strftime("%a, %d %b %Y %H:%M:%S +0000"),
                }
                for n, (sid, at, body) in enumerate(self.texts)
            ]
            return {"messages": messages, "page": 0, "next_page_uri": None}
        objects = [
            {
                "message_uuid": uuid,
                "message_direction": "outbound",
                "from_number": OURS.lstrip("+"),
                "to_number": ANA.lstrip("+"),
                "message_state": "undelivered" if n == 0 else "sent",
                "message_time": at.strftime("%Y-%m-%d %H:%M:%S"),
                "units": 1,
            }
            for n, (uuid, at, _) in enumerate(self.texts)
        ]
        return {"api_id": "l-1", "meta": {"limit": 20, "offset": 0, "next": None}, "objects": objects}

    @staticmethod
    def _json(status: int, body: dict[str, Any]) -> Response:
        return Response(json.dumps(body), status=status, content_type="application/json")


@dataclass
class PluginWorld(World):
    """The in-memory world, sending through a real carrier plugin."""

    plugin: Carrier | None = None

    def carriers(self, name: str) -> Carrier:
        assert self.plugin is not None and name == self.plugin.name
        return self.plugin


def deliver(sender: SendService, message_id: str) -> Message:
    done = sender.deliver(message_id)
    assert done is not None
    return done


def setup(kind: str, fake: FakeCarrierApi) -> tuple[PluginWorld, CarrierAccount]:
    world = PluginWorld()
    account = CarrierAccount(kind, world.clock)
    fake.reply = account.reply
    if kind == "twilio":
        world.plugin = TwilioCarrier(TWILIO_SID, TOKEN, api_base=fake.url)
    else:
        world.plugin = PlivoCarrier(PLIVO_ID, TOKEN, api_base=fake.url + "/")
    world.numbers.save(OurNumber(number=OURS, carrier=kind, is_default=True))
    return world, account


def first_try_fails_on_the_phone(world: PluginWorld, kind: str) -> tuple[Message, str]:
    """Sent and taken by the carrier, then a receipt says the phone was unreachable: retrying."""
    sender = world.sender()
    (queued,) = sender.submit(SendRequest.model_validate({"to": [ANA], "body": "Your table is ready"}), "r-1")
    first = deliver(sender, queued.message_id)
    assert first.status is MessageStatus.ACCEPTED and first.carrier_message_id
    world.processor().apply_receipt(
        StatusUpdate(
            carrier=kind,
            carrier_message_id=first.carrier_message_id,
            status=MessageStatus.UNDELIVERED,
            carrier_status="undelivered",
            error_code="30003",
            retryable=True,
        )
    )
    retrying = world.messages.get(queued.message_id)
    assert retrying is not None and retrying.status is MessageStatus.RETRYING
    assert retrying.superseded_carrier_ids == [first.carrier_message_id]
    return retrying, first.carrier_message_id


def ambiguous_retry_then_reconcile(world: PluginWorld, message: Message, pause: timedelta) -> Message:
    sender = world.sender()
    world.clock.advance(pause)
    retried = deliver(sender, message.message_id)
    assert retried.status is MessageStatus.RETRYING  # the carrier's answer was a 5xx: ambiguous
    assert retried.attempts[-1].outcome == "ambiguous"
    world.clock.advance(pause)
    return deliver(sender, message.message_id)


@pytest.mark.parametrize("kind", ["twilio", "plivo"])
def test_the_retrys_own_text_is_found_and_adopted_not_sent_again(kind: str, fake_api: FakeCarrierApi) -> None:
    world, account = setup(kind, fake_api)
    message, set_aside = first_try_fails_on_the_phone(world, kind)
    account.answers = ["lost"]  # the carrier created the retry's text, then answered 500

    done = ambiguous_retry_then_reconcile(world, message, timedelta(seconds=30))

    retry_id = account.texts[1][0]
    assert (done.status, done.carrier_message_id) == (MessageStatus.ACCEPTED, retry_id)
    assert retry_id != set_aside
    assert done.attempts[-1].outcome == "reconciled"
    assert account.sends == 2 and account.searches == 1  # found, so never sent a third time


@pytest.mark.parametrize("kind", ["twilio", "plivo"])
def test_only_the_set_aside_attempt_listed_is_not_this_try_and_the_text_goes_again(
    kind: str, fake_api: FakeCarrierApi
) -> None:
    """Within the search's clock-skew margin, only the set-aside text matches: it is not this try."""
    world, account = setup(kind, fake_api)
    message, set_aside = first_try_fails_on_the_phone(world, kind)
    account.answers = ["down"]  # 500 without creating anything

    done = ambiguous_retry_then_reconcile(world, message, timedelta(seconds=20))

    assert account.searches == 1
    assert [t[0] for t in account.texts] == [set_aside, f"{kind}-2"]  # listed, skipped, then sent again
    assert (done.status, done.carrier_message_id) == (MessageStatus.ACCEPTED, f"{kind}-2")
    assert account.sends == 3
    assert done.superseded_carrier_ids == [set_aside]


@pytest.mark.parametrize("kind", ["twilio", "plivo"])
def test_nothing_found_for_the_retry_sends_it_again(kind: str, fake_api: FakeCarrierApi) -> None:
    world, account = setup(kind, fake_api)
    message, _ = first_try_fails_on_the_phone(world, kind)
    account.answers = ["down"]

    done = ambiguous_retry_then_reconcile(world, message, timedelta(minutes=10))

    assert account.searches == 1
    assert (done.status, done.carrier_message_id, account.sends) == (MessageStatus.ACCEPTED, f"{kind}-2", 3)


class SkipIgnoringCarrier(FakeLookupCarrier):
    """A search that returns its earliest match whatever it is told to leave out."""

    def find_sent(
        self, text: OutboundText, since: datetime, skip: Collection[str] = ()
    ) -> SendAccepted | None:
        return super().find_sent(text, since)


def fake_world(carrier: FakeLookupCarrier) -> tuple[World, Message, str]:
    world = World(carrier=carrier)
    world.numbers.save(OurNumber(number=OURS, carrier="fake", is_default=True))
    sender = world.sender()
    (queued,) = sender.submit(SendRequest.model_validate({"to": [ANA], "body": "Hi"}), "r-1")
    first = deliver(sender, queued.message_id)
    assert first.carrier_message_id
    world.processor().apply_receipt(
        StatusUpdate(
            carrier="fake",
            carrier_message_id=first.carrier_message_id,
            status=MessageStatus.UNDELIVERED,
            carrier_status="undelivered",
            error_code="30003",
            retryable=True,
        )
    )

    world.clock.advance(seconds=60)
    carrier.script(SendFailed(FailureKind.AMBIGUOUS, "the carrier's answer never came (read timeout)"))
    retried = deliver(sender, queued.message_id)
    assert retried.status is MessageStatus.RETRYING
    return world, retried, first.carrier_message_id


def test_the_search_starts_at_the_retrys_claim_and_leaves_out_the_set_aside_text() -> None:
    carrier = FakeLookupCarrier()
    world, message, set_aside = fake_world(carrier)
    carrier.known[ANA] = SendAccepted(carrier_message_id=set_aside, carrier_status="undelivered")
    world.clock.advance(seconds=60)

    done = deliver(world.sender(), message.message_id)

    retry_claim = max(h.at for h in message.history if h.status is MessageStatus.SENDING)
    assert carrier.lookups[-1][1] == retry_claim > message.attempts[0].at
    assert done.status is MessageStatus.ACCEPTED and done.carrier_message_id != set_aside


def test_a_search_that_matches_the_set_aside_text_anyway_goes_to_a_person_saying_it_was_asked() -> None:
    carrier = SkipIgnoringCarrier()
    world, message, set_aside = fake_world(carrier)
    carrier.known[ANA] = SendAccepted(carrier_message_id=set_aside, carrier_status="undelivered")

    done = deliver(world.sender(), message.message_id)

    assert done.status is MessageStatus.FAILED
    assert done.error_reason == SEARCH_UNCLEAR
    assert "can't be asked" not in (done.error_reason or "")
    assert len(carrier.sent) == 2
