"""The local Bandwidth simulator, driven over real HTTP by our Bandwidth plugin.

Why: the local stack trusts the simulator to behave like Bandwidth, and the plugin trusts it in
turn, so both directions are exercised over sockets: the plugin's `send` and `find_sent` against the
simulated API, and the simulator's callbacks (receipts and inbound texts) arriving at a tiny
receiver that checks them with the plugin's own `verify` and `parse`, exactly as the webhook does.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
import requests
from werkzeug.exceptions import NotFound
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.wrappers import Request, Response

from local.process import wait_until
from local.sim_bandwidth import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_APPLICATION_ID,
    DEFAULT_CALLBACK_PASSWORD,
    DEFAULT_CALLBACK_USERNAME,
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
    EVENTS_PATH,
    SimulatedBandwidth,
)
from parley.carriers.bandwidth import BandwidthCarrier, build
from parley.carriers.base import (
    FailureKind,
    OutboundText,
    ParsedEvent,
    ParsedInbound,
    ParsedMedia,
    ParsedStatus,
    SendAccepted,
    SendFailed,
    SignatureError,
    WebhookKind,
    WebhookRequest,
)
from parley.carriers.config import CarrierConfig
from parley.domain.vocabulary import MessageStatus
from tests.carrier_api import serving

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

MOUNT = "/_sim/bandwidth"
OURS = "+15005550006"
CUSTOMER = "+14155550100"
OTHER_CUSTOMER = "+14155550199"


@dataclass
class Delivery:
    """One webhook POST as our receiver saw it."""

    authorized: bool
    events: list[ParsedEvent]
    headers: dict[str, str]
    body: Any


@dataclass
class Receiver:
    """Plays our webhook: verify with the plugin, parse with the plugin, answer with its ack."""

    plugin: BandwidthCarrier
    deliveries: list[Delivery] = field(default_factory=list)
    fail_next: int = 0  # answer 500 to this many requests first (to watch the simulator retry)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        if request.path != EVENTS_PATH or request.method != "POST":
            return Response(status=404)(environ, start_response)
        webhook = WebhookRequest(
            method=request.method,
            url=request.url,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=request.get_data(),
        )
        with self.changed:
            if self.fail_next > 0:
                self.fail_next -= 1
                self.changed.notify_all()
                return Response(status=500)(environ, start_response)
        try:
            self.plugin.verify(webhook)
        except SignatureError:
            self._record(Delivery(False, [], webhook.headers, json.loads(webhook.body)))
            return Response(status=401)(environ, start_response)
        events = self.plugin.parse(WebhookKind.EVENTS, webhook)
        self._record(Delivery(True, events, webhook.headers, json.loads(webhook.body)))
        ack = self.plugin.ack(WebhookKind.EVENTS)
        return Response(ack.body, status=ack.status_code, content_type=ack.content_type)(
            environ, start_response
        )

    def _record(self, delivery: Delivery) -> None:
        with self.changed:
            self.deliveries.append(delivery)
            self.changed.notify_all()

    def wait_for(self, predicate: Callable[[list[Delivery]], bool], what: str, timeout: float = 5.0) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: predicate(self.deliveries), timeout=timeout):
                raise AssertionError(f"timed out waiting for {what}; got {self.deliveries!r}")

    def wait_statuses(self, message_id: str, count: int) -> list[ParsedStatus]:
        self.wait_for(
            lambda _: len(self.statuses_for(message_id)) >= count, f"{count} receipts for {message_id}"
        )
        return self.statuses_for(message_id)

    def statuses_for(self, message_id: str) -> list[ParsedStatus]:
        with self.changed:
            return [
                e
                for d in self.deliveries
                for e in d.events
                if isinstance(e, ParsedStatus) and e.carrier_message_id == message_id
            ]


@dataclass
class World:
    sim: SimulatedBandwidth
    receiver: Receiver
    api_base: str  # the simulator's mount, as the plugin's api_base

    def plugin(self, **overrides: str) -> BandwidthCarrier:
        env = self.env()
        env.update({f"PARLEY_BANDWIDTH_{k.upper()}": v for k, v in overrides.items()})
        return build(CarrierConfig(env))

    def env(self) -> dict[str, str]:
        """The settings `parley local` would give the plugin (the simulator's documented defaults)."""
        return {
            "PARLEY_BANDWIDTH_ACCOUNT_ID": DEFAULT_ACCOUNT_ID,
            "PARLEY_BANDWIDTH_USERNAME": DEFAULT_USERNAME,
            "PARLEY_BANDWIDTH_PASSWORD": DEFAULT_PASSWORD,
            "PARLEY_BANDWIDTH_APPLICATION_ID": DEFAULT_APPLICATION_ID,
            "PARLEY_BANDWIDTH_CALLBACK_USERNAME": DEFAULT_CALLBACK_USERNAME,
            "PARLEY_BANDWIDTH_CALLBACK_PASSWORD": DEFAULT_CALLBACK_PASSWORD,
            "PARLEY_BANDWIDTH_API_BASE": self.api_base,
            "PARLEY_CARRIER_TIMEOUT_SECONDS": "5",
        }

    def control(self, method: str, path: str, payload: Any = None) -> requests.Response:
        return requests.request(method, f"{self.api_base}{path}", json=payload, timeout=10)


@pytest.fixture(scope="module")
def world_for_module() -> Iterator[World]:
    receiver = Receiver(
        plugin=BandwidthCarrier(
            account_id="",
            username="",
            password="",
            application_id="",
            callback_username=DEFAULT_CALLBACK_USERNAME,
            callback_passwords=(DEFAULT_CALLBACK_PASSWORD,),
        )
    )
    with serving(receiver) as receiver_url:
        sim = SimulatedBandwidth(receiver_url)
        with serving(DispatcherMiddleware(NotFound(), {MOUNT: sim})) as sim_url:
            try:
                yield World(sim=sim, receiver=receiver, api_base=sim_url + MOUNT)
            finally:
                sim.close()


@pytest.fixture
def world(world_for_module: World) -> Iterator[World]:
    try:
        yield world_for_module
    finally:
        world_for_module.sim.reset()
        assert world_for_module.sim.wait_idle(), "callbacks still running after the test"
        with world_for_module.receiver.changed:
            world_for_module.receiver.deliveries.clear()
            world_for_module.receiver.fail_next = 0


def text_to(
    number: str = CUSTOMER, body: str = "Your order #1234 is ready \U0001f600", **kw: Any
) -> OutboundText:
    return OutboundText(
        message_id=f"msg-{number[-4:]}-{len(body)}", from_number=OURS, to_number=number, body=body, **kw
    )


# -- sending and receipts -------------------------------------------------------------------------


def test_send_is_accepted_and_signed_receipts_follow(world: World) -> None:
    text = text_to()
    outcome = world.plugin().send(text)
    assert isinstance(outcome, SendAccepted)
    assert outcome.carrier_status == "accepted" and outcome.segments == 1
    statuses = world.receiver.wait_statuses(outcome.carrier_message_id, 2)
    assert all(d.authorized for d in world.receiver.deliveries)  # the plugin's verify accepted them
    assert [s.status for s in statuses] == [MessageStatus.SENT, MessageStatus.DELIVERED]
    assert [s.carrier_status for s in statuses] == ["message-sent", "message-delivered"]
    assert all(s.raw["message"]["tag"] == text.message_id for s in statuses)
    assert all(s.raw["message"]["text"] == "" for s in statuses)  # receipts never carry the text
    headers = world.receiver.deliveries[0].headers
    assert headers["user-agent"] == "BandwidthAPI/v2"
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert world.sim.wait_idle()  # the simulator records a callback once our answer is back
    [stored] = world.sim.messages(CUSTOMER)
    assert (stored["id"], stored["text"], stored["tag"], stored["status"]) == (
        outcome.carrier_message_id,
        text.body,
        text.message_id,
        "DELIVERED",
    )
    assert [c["response_code"] for c in stored["callbacks"]] == [200, 200]


def test_picture_message_keeps_its_media(world: World) -> None:
    text = text_to(body="", media_urls=("https://m.example/a.jpg",))
    outcome = world.plugin().send(text)
    assert isinstance(outcome, SendAccepted)
    [stored] = world.sim.messages()
    assert stored["media"] == ["https://m.example/a.jpg"]


def test_invalid_number_is_a_permanent_failure(world: World) -> None:
    outcome = world.plugin().send(text_to("+1415555"))
    assert outcome == SendFailed(
        FailureKind.PERMANENT, "the number is not a valid phone number", "request-validation", 400
    )
    assert world.sim.messages() == []


@pytest.mark.parametrize(
    ("overrides", "status", "code"),
    [({"password": "wrong"}, 401, "unauthorized"), ({"account_id": "1234567"}, 403, "forbidden")],
)
def test_bad_credentials_are_permanent(
    world: World, overrides: dict[str, str], status: int, code: str
) -> None:
    outcome = world.plugin(**overrides).send(text_to())
    assert isinstance(outcome, SendFailed)
    assert (outcome.kind, outcome.http_status, outcome.error_code) == (FailureKind.PERMANENT, status, code)


def test_wrong_application_is_permanent(world: World) -> None:
    outcome = world.plugin(application_id="someone-elses-app").send(text_to())
    assert outcome == SendFailed(
        FailureKind.PERMANENT,
        "the Bandwidth application id is wrong (check the Bandwidth settings)",
        "request-validation",
        400,
    )


@pytest.mark.parametrize(("kind", "status"), [("429", 429), ("500", 500)])
def test_rate_limit_and_server_error_faults_are_transient(world: World, kind: str, status: int) -> None:
    response = world.control("POST", "/_faults", {"kind": kind, "count": 1, "to": CUSTOMER})
    assert response.status_code == 201
    outcome = world.plugin().send(text_to())
    assert isinstance(outcome, SendFailed)
    assert (outcome.kind, outcome.http_status) == (FailureKind.TRANSIENT, status)
    assert world.sim.messages() == []  # Bandwidth sends nothing on a 4xx/5xx
    assert isinstance(world.plugin().send(text_to()), SendAccepted)  # the fault was used up


def test_fault_for_another_number_leaves_this_one_alone(world: World) -> None:
    world.sim.add_fault("429", to=OTHER_CUSTOMER)
    assert isinstance(world.plugin().send(text_to()), SendAccepted)
    assert [f["to"] for f in world.control("GET", "/_faults").json()["faults"]] == [OTHER_CUSTOMER]


def test_undelivered_fault_sends_a_failed_receipt_with_the_opt_out_code(world: World) -> None:
    world.control("POST", "/_faults", {"kind": "undelivered", "error_code": "4775"})
    outcome = world.plugin().send(text_to())
    assert isinstance(outcome, SendAccepted)
    sent, failed = world.receiver.wait_statuses(outcome.carrier_message_id, 2)
    assert sent.status is MessageStatus.SENT
    assert (failed.status, failed.error_code, failed.opted_out) == (MessageStatus.UNDELIVERED, "4775", True)
    assert failed.error_message is not None and "opted out" in failed.error_message


def test_timeout_fault_is_ambiguous_and_nothing_is_found(world: World) -> None:
    world.sim.add_fault("timeout", hold_seconds=10)
    since = datetime.now(UTC)
    outcome = _send_with_timeout(world, 0.3)
    assert isinstance(outcome, SendFailed) and outcome.kind is FailureKind.AMBIGUOUS
    assert wait_until(lambda: world.sim.held_requests) == 1
    world.sim.release_held()
    assert world.plugin().find_sent(text_to(), since) is None  # the held request created nothing


def _send_with_timeout(world: World, timeout: float) -> SendAccepted | SendFailed:
    """Send with a short read timeout, as PARLEY_CARRIER_TIMEOUT_SECONDS would set it."""
    plugin = build(CarrierConfig({**world.env(), "PARLEY_CARRIER_TIMEOUT_SECONDS": str(timeout)}))
    return plugin.send(text_to())


def test_timeout_after_accept_is_reconciled_by_find_sent(world: World) -> None:
    world.sim.add_fault("timeout_after_accept", hold_seconds=10)
    since = datetime.now(UTC)
    outcome = _send_with_timeout(world, 0.3)
    assert isinstance(outcome, SendFailed) and outcome.kind is FailureKind.AMBIGUOUS
    wait_until(lambda: world.sim.held_requests)  # accepted and held (the client may give up before that)
    world.sim.release_held()
    [stored] = world.sim.messages()
    found = world.plugin().find_sent(text_to(), since)
    assert found is not None and found.carrier_message_id == stored["id"]
    assert found.segments == 1


def test_find_sent_tells_texts_apart(world: World) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    first = world.plugin().send(text_to(body="First text"))
    second = world.plugin().send(text_to(body="A second, longer text"))
    other = world.plugin().send(text_to(OTHER_CUSTOMER, body="First text"))
    assert (
        isinstance(first, SendAccepted)
        and isinstance(second, SendAccepted)
        and isinstance(other, SendAccepted)
    )
    plugin = world.plugin()
    found = plugin.find_sent(text_to(body="First text"), since)
    assert found is not None and found.carrier_message_id == first.carrier_message_id
    assert found.carrier_status in ("ACCEPTED", "SENT", "DELIVERED") and found.segments == 1
    found = plugin.find_sent(text_to(body="A second, longer text"), since)
    assert found is not None and found.carrier_message_id == second.carrier_message_id
    assert plugin.find_sent(text_to(body="never sent at all, not this one"), since) is None
    assert plugin.find_sent(text_to(body="First text"), datetime.now(UTC) + timedelta(minutes=5)) is None


def test_message_search_pages_and_requires_a_filter(world: World) -> None:
    for body in ("one", "two", "three"):
        assert isinstance(world.plugin().send(text_to(body=body)), SendAccepted)
    auth = (DEFAULT_USERNAME, DEFAULT_PASSWORD)
    url = f"{world.api_base}/api/v2/users/{DEFAULT_ACCOUNT_ID}/messages"
    assert requests.get(url, auth=auth, timeout=5).status_code == 400
    first = requests.get(url, params={"sourceTn": OURS, "limit": "2"}, auth=auth, timeout=5).json()
    assert first["totalCount"] == 3 and len(first["messages"]) == 2
    assert "text" not in first["messages"][0]  # Bandwidth keeps no message text
    token = first["pageInfo"]["nextPageToken"]
    rest = requests.get(
        url, params={"sourceTn": OURS, "limit": "2", "pageToken": token}, auth=auth, timeout=5
    )
    assert [m["messageLength"] for m in first["messages"] + rest.json()["messages"]] == [3, 3, 5]
    assert rest.json()["pageInfo"] == {}


def test_api_checks_content_type(world: World) -> None:
    url = f"{world.api_base}/api/v2/users/{DEFAULT_ACCOUNT_ID}/messages"
    response = requests.post(url, data="to=+1", auth=(DEFAULT_USERNAME, DEFAULT_PASSWORD), timeout=5)
    assert response.status_code == 415
    assert response.json()["type"] == "unsupported-content-type"


# -- inbound texts --------------------------------------------------------------------------------


def test_inbound_endpoint_posts_signed_texts_that_parse(world: World) -> None:
    response = world.control(
        "POST", "/_inbound", {"from": CUSTOMER, "to": OURS, "body": "Is it ready? \U0001f600", "repeat": 2}
    )
    assert response.status_code == 200
    result = response.json()
    assert result["responses"] == [200, 200]
    world.receiver.wait_for(lambda ds: len(ds) >= 2, "two inbound posts")
    parsed = [e for d in world.receiver.deliveries for e in d.events]
    assert len(parsed) == 2 and parsed[0] == parsed[1]  # the same text twice: a carrier retry
    first = parsed[0]
    assert isinstance(first, ParsedInbound)
    assert (first.carrier_message_id, first.from_number, first.to_number) == (
        result["message_id"],
        CUSTOMER,
        OURS,
    )
    assert (first.body, first.segments) == ("Is it ready? \U0001f600", 1)
    assert all(d.authorized for d in world.receiver.deliveries)


def test_inbound_picture_message(world: World) -> None:
    result = world.sim.send_inbound(CUSTOMER, OURS, "look", media_urls=["https://m.example/photo.jpg"])
    assert result["responses"] == [200]
    [delivery] = world.receiver.deliveries
    [event] = delivery.events
    assert isinstance(event, ParsedInbound)
    assert event.media == (ParsedMedia("https://m.example/photo.jpg"),)


def test_callbacks_with_other_credentials_are_refused_by_verify(world: World) -> None:
    impostor = SimulatedBandwidth(world.sim.webhook_base_url, callback_password="not-the-password")
    try:
        assert impostor.send_inbound(CUSTOMER, OURS, "hi")["responses"] == [401]
    finally:
        impostor.close()
    [delivery] = world.receiver.deliveries
    assert delivery.authorized is False and delivery.events == []


def test_simulator_retries_receipts_our_server_failed(world: World) -> None:
    with world.receiver.changed:
        world.receiver.fail_next = 2
    outcome = world.plugin().send(text_to())
    assert isinstance(outcome, SendAccepted)
    world.receiver.wait_statuses(outcome.carrier_message_id, 2)
    assert world.sim.wait_idle()
    stored = world.sim.message(outcome.carrier_message_id)
    assert stored is not None
    assert [(c["type"], c["attempts"], c["response_code"]) for c in stored["callbacks"]] == [
        ("message-sent", 3, 200),
        ("message-delivered", 1, 200),
    ]


# -- control plane --------------------------------------------------------------------------------


def test_control_plane_over_http(world: World) -> None:
    assert world.control("POST", "/_faults", {"kind": "bogus"}).status_code == 400
    assert world.control("POST", "/_faults", {"kind": "500", "count": 0}).status_code == 400
    assert world.control("POST", "/_faults", {"kind": "undelivered", "error_code": "abc"}).status_code == 400
    assert world.control("POST", "/_faults", {"kind": "500", "count": 2}).json()["remaining"] == 2
    assert len(world.control("GET", "/_faults").json()["faults"]) == 1
    assert world.control("DELETE", "/_faults").status_code == 204
    assert world.control("GET", "/_faults").json() == {"faults": []}
    assert isinstance(world.plugin().send(text_to()), SendAccepted)
    assert len(world.control("GET", "/_messages").json()["messages"]) == 1
    assert world.control("DELETE", "/_messages").status_code == 204
    assert world.control("GET", "/_messages").json() == {"messages": []}
    assert world.control("POST", "/_inbound", {"from": CUSTOMER}).status_code == 400
    assert world.control("POST", "/_inbound", {"from": CUSTOMER, "to": OURS, "repeat": 0}).status_code == 400
    missing = world.control("GET", "/nowhere")
    assert missing.status_code == 404 and missing.json()["error"] == "Not Found"


def test_python_api_validates_faults() -> None:
    sim = SimulatedBandwidth("http://127.0.0.1:9")
    try:
        with pytest.raises(ValueError, match="kind"):
            sim.add_fault("explode")
        with pytest.raises(ValueError, match="count"):
            sim.add_fault("500", 0)
        fault = sim.add_fault("undelivered", to=CUSTOMER)
        assert fault["error_code"] == "4702" and sim.faults() == [fault]
        sim.reset()
        assert sim.faults() == [] and sim.messages() == []
    finally:
        sim.close()
