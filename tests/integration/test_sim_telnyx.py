"""The local Telnyx simulator, driven over real HTTP by our Telnyx plugin and the official SDK.

Why: the local stack trusts the simulator to behave like Telnyx, and our plugin must work against
it unchanged: its sends (with the Idempotency-Key), its signature check on the simulator's signed
webhooks, and its parser on what the simulator posts. The official `telnyx` client checks the
simulator's send and fetch shapes independently of our code.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
import requests
import telnyx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from werkzeug.exceptions import NotFound
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.wrappers import Request, Response

from local.sim_telnyx import DEFAULT_API_KEY, DEFAULT_PUBLIC_KEY, DEFAULT_SIGNING_SEED, SimulatedTelnyx
from parley.carriers.base import (
    FailureKind,
    OutboundText,
    ParsedInbound,
    ParsedStatus,
    SendAccepted,
    SendFailed,
    SignatureError,
    WebhookKind,
    WebhookRequest,
)
from parley.carriers.config import CarrierConfig
from parley.carriers.telnyx import TelnyxCarrier, build
from parley.domain.vocabulary import MessageStatus
from tests.carrier_api import serving

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

OUR_NUMBER = "+15005550006"
CUSTOMER = "+14155550100"
OTHER_CUSTOMER = "+14155550199"
MOUNT = "/_sim/telnyx"
EVENTS_PATH = "/webhooks/telnyx/events"


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """For the simulator's internal state, which has no signal to wait on: check every 10 ms."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        pause.wait(0.01)


@dataclass(frozen=True)
class Delivery:
    """One webhook request as our endpoint saw it, with what our plugin made of it."""

    path: str
    body: bytes
    headers: dict[str, str]
    verified: str  # "ok" or the SignatureError text
    events: list[ParsedInbound | ParsedStatus]

    @property
    def document(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.body)
        return loaded


class Receiver:
    """Our webhook endpoint in miniature: verify with the plugin, parse, answer (scripted, else 200)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._deliveries: list[Delivery] = []
        self._script: list[int] = []
        self.base_url = ""
        self.plugin = TelnyxCarrier(public_keys=(DEFAULT_PUBLIC_KEY,))

    def script(self, *statuses: int) -> None:
        with self._changed:
            self._script.extend(statuses)

    def deliveries(self) -> list[Delivery]:
        with self._changed:
            return list(self._deliveries)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Delivery]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._deliveries) >= count, timeout):
                raise AssertionError(f"expected {count} webhooks, got {len(self._deliveries)}")
            return list(self._deliveries)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        body = request.get_data()
        headers = {k.lower(): v for k, v in request.headers.items()}
        hook = WebhookRequest("POST", self.base_url + request.path, headers, body)
        try:
            self.plugin.verify(hook)
        except SignatureError as exc:
            verified, events = str(exc), []
        else:
            verified, events = "ok", self.plugin.parse(WebhookKind.EVENTS, hook)
        with self._changed:
            status = self._script.pop(0) if self._script else (200 if verified == "ok" else 401)
            self._deliveries.append(Delivery(request.path, body, headers, verified, events))
            self._changed.notify_all()
        return Response("", status=status)(environ, start_response)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    app = Receiver()
    with serving(app) as base_url:
        app.base_url = base_url
        yield app


@pytest.fixture
def sim(receiver: Receiver) -> Iterator[SimulatedTelnyx]:
    simulator = SimulatedTelnyx(receiver.base_url, callback_retry_delay=0.01)
    yield simulator
    simulator.close()


@pytest.fixture
def sim_url(sim: SimulatedTelnyx) -> Iterator[str]:
    app = DispatcherMiddleware(NotFound(), {MOUNT: sim})  # as the local runtime mounts it
    with serving(app) as base_url:
        yield base_url + MOUNT


@pytest.fixture
def plugin(sim_url: str) -> TelnyxCarrier:
    """Built the way the local stack configures it."""
    env = {
        "PARLEY_TELNYX_PUBLIC_KEY": DEFAULT_PUBLIC_KEY,
        "PARLEY_TELNYX_API_KEY": DEFAULT_API_KEY,
        "PARLEY_TELNYX_API_BASE": sim_url,
    }
    return build(CarrierConfig(env))


def text(
    receiver: Receiver, message_id: str = "out_0001", to: str = CUSTOMER, body: str = "Order ready"
) -> OutboundText:
    return OutboundText(message_id, OUR_NUMBER, to, body, receiver.base_url + EVENTS_PATH)


def receipts(deliveries: list[Delivery]) -> list[tuple[str, MessageStatus, str | None]]:
    found = []
    for delivery in deliveries:
        assert delivery.verified == "ok", delivery.verified
        for event in delivery.events:
            assert isinstance(event, ParsedStatus)
            found.append((event.carrier_message_id, event.status, event.error_code))
    return found


# --- keys --------------------------------------------------------------------------------------------


def test_default_public_key_is_the_half_of_the_default_seed(sim: SimulatedTelnyx) -> None:
    raw = (
        Ed25519PrivateKey.from_private_bytes(DEFAULT_SIGNING_SEED)
        .public_key()
        .public_bytes(Encoding.Raw, PublicFormat.Raw)
    )
    assert base64.b64encode(raw).decode() == DEFAULT_PUBLIC_KEY == sim.public_key


def test_without_a_seed_each_simulator_has_its_own_key() -> None:
    first, second = (
        SimulatedTelnyx("http://127.0.0.1:9", signing_seed=None),
        SimulatedTelnyx("http://127.0.0.1:9", signing_seed=None),
    )
    assert first.public_key != second.public_key != DEFAULT_PUBLIC_KEY
    assert len(base64.b64decode(first.public_key)) == 32
    assert SimulatedTelnyx("http://x", signing_seed="00" * 32).public_key != DEFAULT_PUBLIC_KEY
    with pytest.raises(ValueError, match="32 bytes"):
        SimulatedTelnyx("http://x", signing_seed=b"short")


# --- sending with our plugin -------------------------------------------------------------------------


def test_plugin_sends_and_verifies_the_signed_receipts(
    plugin: TelnyxCarrier, sim: SimulatedTelnyx, receiver: Receiver
) -> None:
    outcome = plugin.send(text(receiver, body="x" * 161))
    assert isinstance(outcome, SendAccepted)
    assert (outcome.carrier_status, outcome.segments) == ("queued", 2)
    [stored] = sim.messages(CUSTOMER)
    assert stored["id"] == outcome.carrier_message_id
    assert stored["idempotency_key"] == "out_0001"
    assert stored["webhook_url"] == receiver.base_url + EVENTS_PATH

    deliveries = receiver.wait_for(2)
    assert [d.path for d in deliveries] == [EVENTS_PATH, EVENTS_PATH]
    assert [d.document["data"]["event_type"] for d in deliveries] == ["message.sent", "message.finalized"]
    assert receipts(deliveries) == [
        (outcome.carrier_message_id, MessageStatus.SENT, None),
        (outcome.carrier_message_id, MessageStatus.DELIVERED, None),
    ]
    assert all(d.headers["content-type"] == "application/json" for d in deliveries)
    wait_until(lambda: len(sim.messages()[0]["callbacks"]) == 2, what="callback records")
    assert [c["response_code"] for c in sim.messages()[0]["callbacks"]] == [200, 200]


def test_a_resend_with_the_same_message_id_is_the_same_text(
    plugin: TelnyxCarrier, sim: SimulatedTelnyx, receiver: Receiver
) -> None:
    first = plugin.send(text(receiver))
    again = plugin.send(text(receiver))
    assert isinstance(first, SendAccepted) and isinstance(again, SendAccepted)
    assert first.carrier_message_id == again.carrier_message_id
    assert len(sim.messages()) == 1
    other = plugin.send(text(receiver, message_id="out_0002"))
    assert isinstance(other, SendAccepted) and other.carrier_message_id != first.carrier_message_id
    assert len(sim.messages()) == 2


def test_a_reused_key_with_another_body_is_422(sim_url: str, sim: SimulatedTelnyx) -> None:
    headers = {"Authorization": f"Bearer {DEFAULT_API_KEY}", "Idempotency-Key": "k-1"}
    first = requests.post(
        f"{sim_url}/v2/messages",
        json={"from": OUR_NUMBER, "to": CUSTOMER, "text": "a"},
        headers=headers,
        timeout=5,
    )
    clash = requests.post(
        f"{sim_url}/v2/messages",
        json={"from": OUR_NUMBER, "to": CUSTOMER, "text": "b"},
        headers=headers,
        timeout=5,
    )
    assert first.status_code == 200
    assert clash.status_code == 422 and clash.json()["errors"][0]["code"] == "10015"
    assert len(sim.messages()) == 1


def test_timeout_fault_accepts_and_the_retry_gets_the_same_message(
    plugin: TelnyxCarrier, sim: SimulatedTelnyx, sim_url: str, receiver: Receiver
) -> None:
    requests.post(
        f"{sim_url}/_faults", json={"kind": "timeout", "hold_seconds": 30}, timeout=5
    ).raise_for_status()
    impatient = TelnyxCarrier(api_key=DEFAULT_API_KEY, api_base=sim_url, timeout=0.3)

    outcome = impatient.send(text(receiver))
    assert isinstance(outcome, SendFailed) and outcome.kind is FailureKind.TRANSIENT
    wait_until(lambda: sim.held_requests == 1, what="the held response")
    assert len(sim.messages(CUSTOMER)) == 1  # Telnyx has it although we never heard back

    retried = plugin.send(text(receiver))  # the retry function's resend, same message id
    assert isinstance(retried, SendAccepted)
    assert retried.carrier_message_id == sim.messages(CUSTOMER)[0]["id"]
    assert len(sim.messages(CUSTOMER)) == 1  # one text for the customer
    assert requests.delete(f"{sim_url}/_faults", timeout=5).status_code == 204
    wait_until(lambda: sim.held_requests == 0, what="the release")


@pytest.mark.parametrize(("kind", "status", "code"), [("500", 500, "10007"), ("429", 429, "10011")])
def test_error_faults_create_nothing_and_are_transient(
    plugin: TelnyxCarrier, sim: SimulatedTelnyx, receiver: Receiver, kind: str, status: int, code: str
) -> None:
    sim.add_fault(kind, count=2, to=CUSTOMER)
    unaffected = plugin.send(text(receiver, message_id="out_other", to=OTHER_CUSTOMER))
    for remaining in (1, 0):
        outcome = plugin.send(text(receiver))
        assert isinstance(outcome, SendFailed)
        assert (outcome.kind, outcome.http_status, outcome.error_code) == (
            FailureKind.TRANSIENT,
            status,
            code,
        )
        assert [f["remaining"] for f in sim.faults()] == ([remaining] if remaining else [])
    assert sim.messages(CUSTOMER) == []
    assert isinstance(unaffected, SendAccepted)
    assert isinstance(plugin.send(text(receiver)), SendAccepted)  # the same key once Telnyx recovers
    assert len(sim.messages(CUSTOMER)) == 1


def test_undelivered_fault_finalizes_with_the_error_code(
    plugin: TelnyxCarrier, sim: SimulatedTelnyx, sim_url: str, receiver: Receiver
) -> None:
    requests.post(
        f"{sim_url}/_faults", json={"kind": "undelivered", "error_code": "40003"}, timeout=5
    ).raise_for_status()
    outcome = plugin.send(text(receiver))
    assert isinstance(outcome, SendAccepted)
    finalized = receiver.wait_for(2)[1]
    [event] = finalized.events
    assert isinstance(event, ParsedStatus)
    assert (event.status, event.carrier_status, event.error_code) == (
        MessageStatus.UNDELIVERED,
        "delivery_failed",
        "40003",
    )
    assert plugin.classify(event.error_code, None)[0] is FailureKind.PERMANENT


def test_magic_numbers_fail_like_telnyx(
    plugin: TelnyxCarrier, sim: SimulatedTelnyx, receiver: Receiver
) -> None:
    invalid = plugin.send(text(receiver, message_id="m1", to="+15005550001"))
    opted_out = plugin.send(text(receiver, message_id="m2", to="+15005550004"))
    landline = plugin.send(text(receiver, message_id="m3", to="+15005550009"))
    assert isinstance(invalid, SendFailed) and (invalid.error_code, invalid.kind) == (
        "40310",
        FailureKind.PERMANENT,
    )
    assert isinstance(opted_out, SendFailed) and opted_out.opted_out and opted_out.error_code == "40300"
    assert isinstance(landline, SendAccepted)
    assert receipts(receiver.wait_for(2))[-1] == (
        landline.carrier_message_id,
        MessageStatus.UNDELIVERED,
        "40001",
    )
    assert [m["to"][0]["phone_number"] for m in sim.messages()] == ["+15005550009"]


def test_wrong_api_key_is_401_and_sends_nothing(
    sim_url: str, sim: SimulatedTelnyx, receiver: Receiver
) -> None:
    outcome = TelnyxCarrier(api_key="KEY-wrong", api_base=sim_url).send(text(receiver))
    assert outcome == SendFailed(
        FailureKind.PERMANENT,
        "the carrier rejected our credentials (check the Telnyx API key)",
        "10009",
        401,
    )
    assert sim.messages() == []


def test_receipts_go_to_the_profile_url_without_a_webhook_url(
    plugin: TelnyxCarrier, sim: SimulatedTelnyx, receiver: Receiver
) -> None:
    outcome = plugin.send(OutboundText("out_9", OUR_NUMBER, CUSTOMER, "hi"))
    assert isinstance(outcome, SendAccepted)
    assert [d.path for d in receiver.wait_for(2)] == [EVENTS_PATH, EVENTS_PATH]
    assert sim.events_url == receiver.base_url + EVENTS_PATH


def test_a_failed_webhook_is_retried_and_each_attempt_is_signed(
    plugin: TelnyxCarrier, sim: SimulatedTelnyx, receiver: Receiver
) -> None:
    receiver.script(500, 503)
    plugin.send(text(receiver))
    deliveries = receiver.wait_for(4)
    sent_attempts = [d for d in deliveries if d.document["data"]["event_type"] == "message.sent"]
    assert [d.document["meta"]["attempt"] for d in sent_attempts] == [1, 2, 3]
    assert len({d.document["data"]["id"] for d in sent_attempts}) == 1  # one event, three tries
    assert all(d.verified == "ok" for d in deliveries)
    wait_until(lambda: len(sim.messages()[0]["callbacks"]) == 2, what="callback records")
    assert sim.messages()[0]["callbacks"][0]["attempts"] == 3


def test_a_forged_webhook_would_be_refused(receiver: Receiver) -> None:
    """The receiver really checks: a webhook signed by another key gets a 401 and no events."""
    body = b'{"data":{"event_type":"message.finalized"}}'
    timestamp = str(int(time.time()))
    other = Ed25519PrivateKey.generate()
    signature = base64.b64encode(other.sign(timestamp.encode() + b"|" + body)).decode()
    answer = requests.post(
        receiver.base_url + EVENTS_PATH,
        data=body,
        headers={"telnyx-signature-ed25519": signature, "telnyx-timestamp": timestamp},
        timeout=5,
    )
    assert answer.status_code == 401
    [delivery] = receiver.deliveries()
    assert delivery.verified == "signature does not match" and delivery.events == []


# --- inbound texts -----------------------------------------------------------------------------------


def test_inbound_posts_are_signed_and_parsed(sim_url: str, receiver: Receiver) -> None:
    answer = requests.post(
        f"{sim_url}/_inbound",
        json={"from": CUSTOMER, "to": OUR_NUMBER, "body": "Is it ready? \U0001f600", "repeat": 3},
        timeout=5,
    )
    assert answer.status_code == 200 and answer.json()["responses"] == [200, 200, 200]
    deliveries = receiver.wait_for(3)
    assert [d.path for d in deliveries] == [EVENTS_PATH] * 3
    events = [e for d in deliveries for e in d.events]
    assert all(d.verified == "ok" for d in deliveries)
    assert len({(e.carrier_message_id, d.document["data"]["id"]) for d in deliveries for e in d.events}) == 1
    event = events[0]
    assert isinstance(event, ParsedInbound)
    assert (event.from_number, event.to_number, event.body) == (
        CUSTOMER,
        OUR_NUMBER,
        "Is it ready? \U0001f600",
    )
    assert (event.segments, event.opt_out) == (1, None)
    assert event.carrier_message_id == answer.json()["message_id"]


def test_inbound_mms_carries_media(sim: SimulatedTelnyx, receiver: Receiver) -> None:
    sim.send_inbound(CUSTOMER, OUR_NUMBER, "", media_urls=["https://m.example/a.png"])
    [delivery] = receiver.wait_for(1)
    [event] = delivery.events
    assert isinstance(event, ParsedInbound)
    assert [(m.url, m.content_type) for m in event.media] == [("https://m.example/a.png", "image/png")]
    assert delivery.document["data"]["payload"]["type"] == "MMS"


def test_stop_blocks_sends_until_start(
    plugin: TelnyxCarrier, sim: SimulatedTelnyx, receiver: Receiver
) -> None:
    sim.send_inbound(CUSTOMER, OUR_NUMBER, " Stop ")
    [event] = receiver.wait_for(1)[0].events
    assert isinstance(event, ParsedInbound) and event.opt_out == "STOP"
    assert sim.blocked() == [CUSTOMER]

    refused = plugin.send(text(receiver))
    assert isinstance(refused, SendFailed)
    assert (refused.kind, refused.error_code, refused.opted_out) == (FailureKind.PERMANENT, "40300", True)

    sim.send_inbound(CUSTOMER, OUR_NUMBER, "UNSTOP")
    [started] = receiver.wait_for(2)[1].events
    assert isinstance(started, ParsedInbound) and started.opt_out == "START"
    assert sim.blocked() == []
    assert isinstance(plugin.send(text(receiver, message_id="out_after_start")), SendAccepted)


# --- the official SDK against the simulator --------------------------------------------------------


def test_official_sdk_sends_and_fetches(sim_url: str, sim: SimulatedTelnyx) -> None:
    client = telnyx.Telnyx(api_key=DEFAULT_API_KEY, base_url=f"{sim_url}/v2", max_retries=0)
    sent = client.messages.send(from_=OUR_NUMBER, to=CUSTOMER, text="From the SDK", idempotency_key="sdk-1")
    assert sent.data is not None and sent.data.id is not None
    assert sent.data.to is not None and sent.data.to[0].status == "queued"
    assert (sent.data.type, sent.data.parts, sent.data.text) == ("SMS", 1, "From the SDK")
    fetched = client.messages.retrieve(sent.data.id)
    assert fetched.data is not None
    assert [m["id"] for m in sim.messages()] == [sent.data.id]

    with pytest.raises(telnyx.AuthenticationError):
        telnyx.Telnyx(api_key="KEY-wrong", base_url=f"{sim_url}/v2", max_retries=0).messages.send(
            from_=OUR_NUMBER, to=CUSTOMER, text="nope"
        )
    with pytest.raises(telnyx.BadRequestError) as caught:
        client.messages.send(from_=OUR_NUMBER, to="12", text="bad number")
    assert caught.value.status_code == 400


# --- control plane -------------------------------------------------------------------------------


def test_control_plane(sim_url: str, sim: SimulatedTelnyx, plugin: TelnyxCarrier, receiver: Receiver) -> None:
    added = requests.post(f"{sim_url}/_faults", json={"kind": "429", "count": 2, "to": CUSTOMER}, timeout=5)
    assert added.status_code == 201 and added.json()["remaining"] == 2
    assert [f["kind"] for f in requests.get(f"{sim_url}/_faults", timeout=5).json()["faults"]] == ["429"]
    assert requests.delete(f"{sim_url}/_faults", timeout=5).status_code == 204
    assert sim.faults() == []

    for bad in ({"kind": "explode"}, {"kind": "500", "count": 0}, {"kind": "timeout", "hold_seconds": -1}):
        assert requests.post(f"{sim_url}/_faults", json=bad, timeout=5).status_code == 400
    assert requests.post(f"{sim_url}/_inbound", json={"from": CUSTOMER}, timeout=5).status_code == 400
    assert requests.post(f"{sim_url}/_inbound", data=b"[]", timeout=5).status_code == 400
    assert requests.get(f"{sim_url}/v2/nothing", timeout=5).status_code == 404

    plugin.send(text(receiver))
    listed = requests.get(f"{sim_url}/_messages", timeout=5).json()["messages"]
    assert [m["to"][0]["phone_number"] for m in listed] == [CUSTOMER]
    assert requests.delete(f"{sim_url}/_messages", timeout=5).status_code == 204
    assert sim.messages() == []


def test_close_stops_pending_callbacks(receiver: Receiver) -> None:
    slow = SimulatedTelnyx(receiver.base_url, callback_delay=30)
    with serving(DispatcherMiddleware(NotFound(), {MOUNT: slow})) as base:
        outcome = TelnyxCarrier(api_key=DEFAULT_API_KEY, api_base=base + MOUNT).send(text(receiver))
        assert isinstance(outcome, SendAccepted)
        began = time.monotonic()
        slow.close(timeout=5)
        assert time.monotonic() - began < 2
    assert receiver.deliveries() == []


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_unreachable_webhook_is_recorded_not_raised(plugin: TelnyxCarrier, sim: SimulatedTelnyx) -> None:
    outcome = plugin.send(
        OutboundText(
            "out_lost", OUR_NUMBER, CUSTOMER, "hi", f"http://127.0.0.1:{closed_port()}/webhooks/telnyx/events"
        )
    )
    assert isinstance(outcome, SendAccepted)
    wait_until(lambda: len(sim.messages()[0]["callbacks"]) == 2, what="callback records")
    first = sim.messages()[0]["callbacks"][0]
    assert (first["response_code"], first["attempts"]) == (None, 3) and "ConnectionError" in first["error"]
