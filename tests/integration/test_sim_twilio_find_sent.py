"""The Twilio simulator lists messages as Twilio does, and our search finds a text on it wherever it is.

Checked with the official SDK: Twilio's DateSent filter only lists texts Twilio has sent (date_sent
is empty while a text waits in its queue), and the list goes on page after page. Our plugin's
search must find a queued text, and a text behind more pages than one.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from werkzeug.exceptions import NotFound
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.wrappers import Request, Response

from local.sim_twilio import SimulatedTwilio
from parley.carriers import twilio
from parley.carriers.base import OutboundText
from parley.carriers.twilio import TwilioCarrier
from tests.carrier_api import serving

ACCOUNT_SID = "AC" + "5eed0000" * 4
AUTH_TOKEN = "sim-auth-token-find-sent"
OUR_NUMBER = "+15005550006"
CUSTOMER = "+14155550100"
MOUNT = "/_sim/twilio"


@Request.application
def _ok(_request: Request) -> Response:
    """Our webhook endpoint, for the simulator's receipts: takes them all."""
    return Response("", status=200)


def _simulator(callback_delay: float) -> Iterator[tuple[SimulatedTwilio, str, Client]]:
    with serving(_ok) as receiver_url:
        simulator = SimulatedTwilio(ACCOUNT_SID, AUTH_TOKEN, receiver_url, callback_delay=callback_delay)
        try:
            with serving(DispatcherMiddleware(NotFound(), {MOUNT: simulator})) as base_url:
                client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=TwilioHttpClient(timeout=5))
                client.api.base_url = base_url + MOUNT
                yield simulator, base_url + MOUNT, client
        finally:
            simulator.close()


@pytest.fixture(autouse=True)
def _no_twilio_edge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TWILIO_EDGE", raising=False)
    monkeypatch.delenv("TWILIO_REGION", raising=False)


@pytest.fixture
def held_in_queue() -> Iterator[tuple[SimulatedTwilio, str, Client]]:
    """Twilio holding every text in its queue (not sent within the test)."""
    yield from _simulator(callback_delay=60.0)


@pytest.fixture
def sending() -> Iterator[tuple[SimulatedTwilio, str, Client]]:
    """Twilio sending every text at once."""
    yield from _simulator(callback_delay=0.0)


def test_a_queued_text_has_no_date_sent_and_the_date_sent_filter_leaves_it_out(
    held_in_queue: tuple[SimulatedTwilio, str, Client],
) -> None:
    sim, _, client = held_in_queue
    created = client.messages.create(to=CUSTOMER, from_=OUR_NUMBER, body="Your order is ready")
    received = sim.send_inbound(CUSTOMER, OUR_NUMBER, "a text Twilio has delivered to us", lost=True)
    today = datetime.now(UTC).date()

    assert created.status == "queued" and created.date_sent is None
    assert [m.sid for m in client.messages.list(to=CUSTOMER, from_=OUR_NUMBER)] == [created.sid]
    assert client.messages.list(to=CUSTOMER, date_sent_after=today) == []
    sent_today = client.messages.list(to=OUR_NUMBER, date_sent_after=today)  # a sent text is listed
    assert [m.sid for m in sent_today] == [received["message_sid"]]
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert client.messages.list(to=OUR_NUMBER, date_sent_after=later) == []


def test_our_search_finds_a_text_twilio_has_not_sent_yet(
    held_in_queue: tuple[SimulatedTwilio, str, Client],
) -> None:
    _, sim_url, client = held_in_queue
    since = datetime.now(UTC) - timedelta(seconds=1)
    created = client.messages.create(to=CUSTOMER, from_=OUR_NUMBER, body="Your order is ready")

    text = OutboundText("msg-1", OUR_NUMBER, CUSTOMER, "Your order is ready")
    found = TwilioCarrier(ACCOUNT_SID, AUTH_TOKEN, api_base=sim_url).find_sent(text, since)
    assert found is not None and (found.carrier_message_id, found.carrier_status) == (created.sid, "queued")


def test_our_search_pages_through_to_a_text_behind_newer_ones(
    sending: tuple[SimulatedTwilio, str, Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    sim, sim_url, client = sending
    monkeypatch.setattr(twilio, "SEARCH_PAGE_SIZE", 20)  # small pages, so paging is at work
    since = datetime.now(UTC) - timedelta(seconds=1)
    first = client.messages.create(to=CUSTOMER, from_=OUR_NUMBER, body="first text")
    later = [client.messages.create(to=CUSTOMER, from_=OUR_NUMBER, body=f"burst {i:03d}") for i in range(60)]
    assert len(client.messages.list(to=CUSTOMER, from_=OUR_NUMBER, page_size=20)) == 61  # the SDK pages too

    plugin = TwilioCarrier(ACCOUNT_SID, AUTH_TOKEN, api_base=sim_url)
    found = plugin.find_sent(OutboundText("msg-1", OUR_NUMBER, CUSTOMER, "first text"), since)
    assert found is not None and found.carrier_message_id == first.sid
    assert plugin.find_sent(OutboundText("msg-2", OUR_NUMBER, CUSTOMER, "never sent"), since) is None
    assert len(sim.messages(CUSTOMER)) == 1 + len(later)
