"""The local Vonage Messages simulator, driven over real HTTP by our plugin.

Why: the local stack trusts this simulator to behave like Vonage, so here our plugin's `send` talks to
it over sockets, its signed webhooks land on a tiny receiver that checks them with the plugin's
`verify` (and the official `vonage_jwt.verify_signature`), and they parse with the plugin's `parse`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
import requests
from vonage_jwt import verify_signature  # type: ignore[import-untyped]
from werkzeug.exceptions import NotFound
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.wrappers import Request, Response

from local.process import wait_until
from local.sim_vonage_messages import (
    DEFAULT_API_KEY,
    DEFAULT_API_SECRET,
    DEFAULT_SIGNATURE_SECRET,
    SimulatedVonageMessages,
    webhook_token,
)
from parley.carriers.base import (
    FailureKind,
    OutboundText,
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
from parley.carriers.vonage_messages import VonageMessagesCarrier, build
from parley.domain.vocabulary import MessageStatus
from tests.carrier_api import serving

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

# Vonage lets people pick short signature secrets; PyJWT (inside vonage_jwt) warns about those.
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

MOUNT = "/_sim/vonage-messages"
OUR_NUMBER = "+15005550006"
CUSTOMER = "+14155550100"
OTHER_CUSTOMER = "+14155550199"
INBOUND = "/webhooks/vonage-messages/messages"
STATUS = "/webhooks/vonage-messages/status"


@dataclass(frozen=True)
class Delivered:
    path: str
    token: str
    body: bytes
    verified: bool
    events: list[ParsedInbound | ParsedStatus]


class Receiver:
    """Our webhook endpoints in miniature: verify with the plugin, parse, record, answer."""

    def __init__(self, plugin: VonageMessagesCarrier) -> None:
        self.plugin = plugin
        self.base_url = ""
        self._changed = threading.Condition()
        self._delivered: list[Delivered] = []
        self._script: dict[str, list[int]] = {}

    def script(self, path: str, *statuses: int) -> None:
        with self._changed:
            self._script.setdefault(path, []).extend(statuses)

    def delivered(self, path: str | None = None) -> list[Delivered]:
        with self._changed:
            return [d for d in self._delivered if path is None or d.path == path]

    def wait_for(self, path: str, count: int, timeout: float = 5.0) -> list[Delivered]:
        """Block until `count` requests reached `path` (no polling sleeps)."""
        with self._changed:
            ok = self._changed.wait_for(
                lambda: len([d for d in self._delivered if d.path == path]) >= count, timeout
            )
            got = [d for d in self._delivered if d.path == path]
        assert ok, f"{len(got)} of {count} webhooks reached {path}"
        return got

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        body = request.get_data()
        webhook = WebhookRequest(
            method=request.method,
            url=self.base_url + request.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
        )
        events: list[ParsedInbound | ParsedStatus] = []
        try:
            self.plugin.verify(webhook)
            verified = True
            kind = WebhookKind.STATUS if request.path.endswith("/status") else WebhookKind.MESSAGES
            events = self.plugin.parse(kind, webhook)
        except SignatureError:
            verified = False
        authorization = request.headers.get("Authorization", "")
        with self._changed:
            queue = self._script.get(request.path) or []
            status = queue.pop(0) if queue else (200 if verified else 401)
            self._delivered.append(Delivered(request.path, authorization[7:], body, verified, events))
            self._changed.notify_all()
        return Response("", status=status)(environ, start_response)


def plugin(secret: str = DEFAULT_SIGNATURE_SECRET, **kwargs: Any) -> VonageMessagesCarrier:
    return VonageMessagesCarrier(DEFAULT_API_KEY, DEFAULT_API_SECRET, (secret,), **kwargs)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    app = Receiver(plugin())
    with serving(app) as base_url:
        app.base_url = base_url
        yield app


@pytest.fixture
def sim(receiver: Receiver) -> Iterator[SimulatedVonageMessages]:
    simulator = SimulatedVonageMessages(receiver.base_url, callback_retry_delay=0.02)
    yield simulator
    simulator.close()


@pytest.fixture
def sim_url(sim: SimulatedVonageMessages) -> Iterator[str]:
    app = DispatcherMiddleware(NotFound(), {MOUNT: sim})  # mounted like the local runtime mounts it
    with serving(app) as base_url:
        yield base_url + MOUNT


def sender(sim_url: str, **kwargs: Any) -> VonageMessagesCarrier:
    """The plugin as the local stack builds it, pointed at the simulator."""
    env = {
        "PARLEY_VONAGE_API_KEY": kwargs.pop("api_key", DEFAULT_API_KEY),
        "PARLEY_VONAGE_API_SECRET": kwargs.pop("api_secret", DEFAULT_API_SECRET),
        "PARLEY_VONAGE_MESSAGES_SIGNATURE_SECRET": DEFAULT_SIGNATURE_SECRET,
        "PARLEY_VONAGE_MESSAGES_API_BASE": sim_url,
        "PARLEY_CARRIER_TIMEOUT_SECONDS": str(kwargs.pop("timeout", 5.0)),
    }
    return build(CarrierConfig(env))


def text(to: str = CUSTOMER, body: str = "Your order #1234 is ready", **kwargs: Any) -> OutboundText:
    return OutboundText(
        message_id=kwargs.pop("message_id", "msg-1"),
        from_number=OUR_NUMBER,
        to_number=to,
        body=body,
        **kwargs,
    )


def statuses(delivered: list[Delivered]) -> list[ParsedStatus]:
    events = [event for d in delivered for event in d.events]
    assert all(isinstance(e, ParsedStatus) for e in events)
    return events  # type: ignore[return-value]


# --- send and status webhooks ----------------------------------------------------------------------


def test_send_is_accepted_and_signed_receipts_follow(
    sim_url: str, sim: SimulatedVonageMessages, receiver: Receiver
) -> None:
    outcome = sender(sim_url).send(text())
    assert isinstance(outcome, SendAccepted) and outcome.carrier_status == "accepted"
    [stored] = sim.messages(CUSTOMER)
    assert stored["message_uuid"] == outcome.carrier_message_id
    assert (stored["to"], stored["from"], stored["client_ref"]) == ("14155550100", "15005550006", "msg-1")
    assert stored["text"] == "Your order #1234 is ready"

    delivered = receiver.wait_for(STATUS, 2)
    assert all(d.verified for d in delivered)
    assert all(verify_signature(d.token, DEFAULT_SIGNATURE_SECRET) for d in delivered)  # the official SDK
    events = statuses(delivered)
    assert [(e.status, e.carrier_status) for e in events] == [
        (MessageStatus.SENT, "submitted"),
        (MessageStatus.DELIVERED, "delivered"),
    ]
    assert {e.carrier_message_id for e in events} == {outcome.carrier_message_id}
    assert all(e.raw["client_ref"] == "msg-1" and e.error_code is None for e in events)
    sim.close()  # wait for the callback thread to record the second answer
    recorded = sim.message(outcome.carrier_message_id)
    assert recorded is not None and recorded["status"] == "delivered"
    assert [c["response_code"] for c in recorded["callbacks"]] == [200, 200]


def test_receipts_go_to_the_message_webhook_url(
    sim_url: str, sim: SimulatedVonageMessages, receiver: Receiver
) -> None:
    outcome = sender(sim_url).send(text(status_callback_url=receiver.base_url + "/custom/status"))
    assert isinstance(outcome, SendAccepted)
    delivered = receiver.wait_for("/custom/status", 2)
    assert [e.status for e in statuses(delivered)] == [MessageStatus.SENT, MessageStatus.DELIVERED]
    assert receiver.delivered(STATUS) == []


def test_a_verifier_with_another_secret_rejects_the_receipts(sim_url: str, receiver: Receiver) -> None:
    receiver.plugin = plugin("not-the-simulator-secret")
    sender(sim_url).send(text())
    delivered = receiver.wait_for(STATUS, 2)
    assert [d.verified for d in delivered] == [False, False]


def test_wrong_credentials_are_a_permanent_401(sim_url: str, sim: SimulatedVonageMessages) -> None:
    outcome = sender(sim_url, api_secret="wrong").send(text())
    assert isinstance(outcome, SendFailed)
    assert (outcome.kind, outcome.http_status, outcome.error_code) == (
        FailureKind.PERMANENT,
        401,
        "unauthorized",
    )
    assert sim.messages() == []


def test_invalid_number_is_a_permanent_422(sim_url: str, sim: SimulatedVonageMessages) -> None:
    outcome = sender(sim_url).send(text(to="+1415"))
    assert outcome == SendFailed(
        FailureKind.PERMANENT, "the number is not a valid phone number", "1150", 422, opted_out=False
    )
    answer = requests.post(
        sim_url + "/v1/messages",
        json={"message_type": "text", "channel": "sms", "to": CUSTOMER, "from": "15005550006", "text": "hi"},
        auth=(DEFAULT_API_KEY, DEFAULT_API_SECRET),
        timeout=5,
    )
    assert answer.status_code == 422 and answer.headers["Content-Type"] == "application/problem+json"
    assert answer.json()["invalid_parameters"] == [
        {"name": "to", "reason": "Invalid value: E.164 without a leading + or 00"}
    ]  # Vonage wants no "+": the plugin strips it, a raw "+" is refused
    assert sim.messages() == []


def test_one_picture_goes_as_mms(sim_url: str, sim: SimulatedVonageMessages, receiver: Receiver) -> None:
    outcome = sender(sim_url).send(text(media_urls=("https://m.example/box.jpg",)))
    assert isinstance(outcome, SendAccepted)
    [stored] = sim.messages()
    assert (stored["channel"], stored["image"]) == (
        "mms",
        {"url": "https://m.example/box.jpg", "caption": "Your order #1234 is ready"},
    )
    assert len(receiver.wait_for(STATUS, 2)) == 2


# --- faults ----------------------------------------------------------------------------------------


def add_fault(sim_url: str, **fault: Any) -> dict[str, Any]:
    answer = requests.post(sim_url + "/_faults", json=fault, timeout=5)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def test_429_fault_is_transient(sim_url: str, sim: SimulatedVonageMessages) -> None:
    add_fault(sim_url, kind="429")
    outcome = sender(sim_url).send(text())
    assert isinstance(outcome, SendFailed)
    assert (outcome.kind, outcome.http_status, outcome.error_code) == (FailureKind.TRANSIENT, 429, "1000")
    assert sim.messages() == [] and sim.faults() == []  # one count, used up


def test_500_fault_is_ambiguous_and_counts_down(sim_url: str, sim: SimulatedVonageMessages) -> None:
    add_fault(sim_url, kind="500", count=2, to=CUSTOMER)
    plugin_sender = sender(sim_url)
    assert isinstance(plugin_sender.send(text(to=OTHER_CUSTOMER)), SendAccepted)  # another recipient
    for _ in range(2):
        outcome = plugin_sender.send(text())
        assert isinstance(outcome, SendFailed)
        assert (outcome.kind, outcome.http_status) == (FailureKind.AMBIGUOUS, 500)
    assert isinstance(plugin_sender.send(text()), SendAccepted)
    assert [m["to"] for m in sim.messages()] == ["14155550199", "14155550100"]


def test_timeout_fault_is_ambiguous(sim_url: str, sim: SimulatedVonageMessages) -> None:
    add_fault(sim_url, kind="timeout", hold_seconds=30)
    outcome = sender(sim_url, timeout=0.2).send(text())
    assert isinstance(outcome, SendFailed)
    assert (outcome.kind, outcome.http_status) == (FailureKind.AMBIGUOUS, None)
    assert wait_until(lambda: sim.held_requests) == 1
    sim.release_held()
    assert sim.messages() == []


def test_undelivered_fault_sends_a_rejected_receipt(
    sim_url: str, sim: SimulatedVonageMessages, receiver: Receiver
) -> None:
    add_fault(sim_url, kind="undelivered", error_code="1240")
    outcome = sender(sim_url).send(text())
    assert isinstance(outcome, SendAccepted)
    events = statuses(receiver.wait_for(STATUS, 2))
    assert [e.status for e in events] == [MessageStatus.SENT, MessageStatus.UNDELIVERED]
    rejected = events[1]
    assert (rejected.error_code, rejected.error_message, rejected.opted_out) == (
        "1240",
        "Illegal Number",
        True,
    )


def test_receipts_are_retried_while_we_answer_5xx(
    sim_url: str, sim: SimulatedVonageMessages, receiver: Receiver
) -> None:
    receiver.script(STATUS, 503, 200, 400)  # submitted: 503 then 200; delivered: 400 (not retried)
    outcome = sender(sim_url).send(text())
    assert isinstance(outcome, SendAccepted)
    receiver.wait_for(STATUS, 3)
    sim.close()  # wait for the callback thread to record its results
    recorded = sim.message(outcome.carrier_message_id)
    assert recorded is not None
    assert [(c["status"], c["attempts"], c["response_code"]) for c in recorded["callbacks"]] == [
        ("submitted", 2, 200),
        ("delivered", 1, 400),
    ]


def test_faults_endpoint_lists_clears_and_validates(sim_url: str, sim: SimulatedVonageMessages) -> None:
    created = add_fault(sim_url, kind="undelivered", to=CUSTOMER)
    assert (created["to"], created["error_code"]) == ("14155550100", "1180")
    assert requests.get(sim_url + "/_faults", timeout=5).json()["faults"] == [created]
    assert requests.delete(sim_url + "/_faults", timeout=5).status_code == 204
    assert sim.faults() == []
    for bad in ({"kind": "meltdown"}, {"kind": "500", "count": 0}, {"kind": "500", "hold_seconds": -1}):
        answer = requests.post(sim_url + "/_faults", json=bad, timeout=5)
        assert answer.status_code == 400 and answer.json()["reason"]
    with pytest.raises(ValueError, match="fault kind"):
        sim.add_fault("timeout_after_accept")


# --- inbound ---------------------------------------------------------------------------------------


def test_inbound_is_signed_and_parsed(sim_url: str, receiver: Receiver) -> None:
    answer = requests.post(
        sim_url + "/_inbound",
        json={"from": CUSTOMER, "to": OUR_NUMBER, "body": "stop texting me", "repeat": 2},
        timeout=5,
    )
    assert answer.status_code == 200
    result = answer.json()
    assert result["responses"] == [200, 200]
    delivered = receiver.wait_for(INBOUND, 2)
    assert all(d.verified and verify_signature(d.token, DEFAULT_SIGNATURE_SECRET) for d in delivered)
    assert delivered[0].body == delivered[1].body  # a carrier retry: the same message, re-signed
    events = [event for d in delivered for event in d.events]
    assert len(events) == 2
    for event in events:
        assert isinstance(event, ParsedInbound)
        assert event.carrier_message_id == result["message_uuid"]
        assert (event.from_number, event.to_number) == ("+14155550100", "+15005550006")  # "+" added
        assert (event.body, event.segments) == ("stop texting me", 1)
        assert event.raw["sms"]["keyword"] == "STOP"


def test_inbound_picture_is_an_mms(sim_url: str, sim: SimulatedVonageMessages, receiver: Receiver) -> None:
    result = sim.send_inbound(CUSTOMER, OUR_NUMBER, "the box", media_urls=["https://m.example/box.jpg"])
    assert result["responses"] == [200]
    [delivered] = receiver.wait_for(INBOUND, 1)
    [event] = delivered.events
    assert isinstance(event, ParsedInbound)
    assert (event.body, event.media) == ("the box", (ParsedMedia("https://m.example/box.jpg"),))
    assert event.raw["channel"] == "mms"


@pytest.mark.parametrize(
    "payload",
    [
        {"to": OUR_NUMBER},
        {"from": CUSTOMER, "to": OUR_NUMBER, "repeat": 0},
        {"from": CUSTOMER, "to": OUR_NUMBER, "body": 5},
    ],
)
def test_inbound_endpoint_validates(sim_url: str, receiver: Receiver, payload: dict[str, Any]) -> None:
    answer = requests.post(sim_url + "/_inbound", json=payload, timeout=5)
    assert answer.status_code == 400 and answer.json()["reason"]
    assert receiver.delivered() == []


# --- control plane and odds and ends ---------------------------------------------------------------


def test_messages_endpoint_lists_and_resets(
    sim_url: str, sim: SimulatedVonageMessages, receiver: Receiver
) -> None:
    sender(sim_url).send(text())
    listed = requests.get(sim_url + "/_messages", timeout=5).json()["messages"]
    assert [m["to"] for m in listed] == ["14155550100"]
    assert sim.messages("+14155550100") == sim.messages("14155550100") != []
    assert requests.delete(sim_url + "/_messages", timeout=5).status_code == 204
    assert sim.messages() == []


def test_unknown_paths_and_methods_are_problems(sim_url: str) -> None:
    missing = requests.get(sim_url + "/v1/nothing", timeout=5)
    assert missing.status_code == 404 and missing.json()["title"] == "Not found"
    wrong_method = requests.get(sim_url + "/v1/messages", timeout=5)
    assert wrong_method.status_code == 405
    not_json = requests.post(
        sim_url + "/v1/messages", data=b"nope", auth=(DEFAULT_API_KEY, DEFAULT_API_SECRET), timeout=5
    )
    assert not_json.status_code == 422


def test_webhook_token_is_what_the_plugin_and_sdk_accept() -> None:
    body = b'{"message_uuid":"u","status":"delivered","channel":"sms"}'
    token = webhook_token(body, "s3cret-for-this-test-only-0123456789")
    assert verify_signature(token, "s3cret-for-this-test-only-0123456789")
    request = WebhookRequest("POST", "https://x/y", {"authorization": f"Bearer {token}"}, body)
    plugin("s3cret-for-this-test-only-0123456789").verify(request)
    assert json.loads(body) == plugin().parse(WebhookKind.STATUS, request)[0].raw
