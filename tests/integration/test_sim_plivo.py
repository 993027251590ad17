"""The local Plivo simulator against our Plivo plugin and the official `plivo` SDK, over real HTTP.

Why: the local stack and the e2e tests trust the simulator to behave like Plivo, so its wire format
is checked from both ends: our plugin sends through it and verifies and parses its signed webhooks
on a tiny receiver, and the SDK (an independent implementation) drives its API and validates its
V3 signatures.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlparse

import plivo  # type: ignore[import-untyped]
import plivo.exceptions  # type: ignore[import-untyped]
import plivo.rest.client  # type: ignore[import-untyped]
import pytest
import requests
from plivo.utils import validate_signature, validate_v3_signature  # type: ignore[import-untyped]
from werkzeug.exceptions import NotFound
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.wrappers import Request, Response

from local.process import wait_until
from local.sim_plivo import LOCAL_AUTH_ID, LOCAL_AUTH_TOKEN, SimulatedPlivo
from parley.carriers.base import (
    FailureKind,
    OutboundText,
    ParsedEvent,
    ParsedInbound,
    ParsedStatus,
    PayloadError,
    SendAccepted,
    SendFailed,
    SignatureError,
    WebhookKind,
    WebhookRequest,
)
from parley.carriers.config import CarrierConfig
from parley.carriers.plivo import PlivoCarrier, build
from parley.domain.vocabulary import MessageStatus
from tests.carrier_api import serving

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

OUR_NUMBER = "+15005550006"
CUSTOMER = "+14155550100"
OTHER_CUSTOMER = "+14155550199"
MOUNT = "/_sim/plivo"
WAIT = 5.0


@dataclass(frozen=True)
class Captured:
    """One webhook as the receiver saw it, with what our plugin made of it."""

    method: str
    url: str
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    reason: str
    events: list[ParsedEvent]

    @property
    def params(self) -> dict[str, str]:
        source = urlparse(self.url).query if self.method == "GET" else self.body.decode()
        return dict(parse_qsl(source, keep_blank_values=True))


class Receiver:
    """Our webhook endpoints in miniature: verify with the plugin, parse, answer (scripted, else the ack)."""

    def __init__(self, plugin: PlivoCarrier) -> None:
        self.plugin = plugin
        self.base_url = ""
        self._changed = threading.Condition()
        self._captured: list[Captured] = []
        self._script: dict[str, list[int]] = {}

    def script(self, path: str, *statuses: int) -> None:
        with self._changed:
            self._script.setdefault(path, []).extend(statuses)

    def captured(self, path: str | None = None) -> list[Captured]:
        with self._changed:
            return [c for c in self._captured if path is None or c.path == path]

    def wait_for(self, path: str, count: int, timeout: float = WAIT) -> list[Captured]:
        """Block until `count` webhooks reached `path` (no polling: the handler notifies)."""
        with self._changed:
            done = self._changed.wait_for(lambda: len(self._matching(path)) >= count, timeout)
            found = self._matching(path)
        assert done, f"expected {count} webhooks at {path}, got {len(found)}"
        return found

    def _matching(self, path: str) -> list[Captured]:
        return [c for c in self._captured if c.path == path]

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        raw_uri = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or request.full_path)
        webhook = WebhookRequest(
            method=request.method,
            url=self.base_url + raw_uri,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=request.get_data(),
        )
        kind = WebhookKind(request.path.rsplit("/", 1)[-1])
        verified, reason, events = True, "", []
        try:
            self.plugin.verify(webhook)
            events = self.plugin.parse(kind, webhook)
        except (SignatureError, PayloadError) as exc:
            verified, reason = isinstance(exc, PayloadError), f"{type(exc).__name__}: {exc}"
        captured = Captured(
            request.method, webhook.url, request.path, webhook.headers, webhook.body, verified, reason, events
        )
        with self._changed:
            queue = self._script.get(request.path) or []
            scripted = queue.pop(0) if queue else None
            self._captured.append(captured)
            self._changed.notify_all()
        if scripted is not None:
            response = Response("scripted", status=scripted)
        elif not verified:
            response = Response("forbidden", status=403)
        else:
            ack = self.plugin.ack(kind)
            response = Response(ack.body, status=ack.status_code, content_type=ack.content_type)
        return response(environ, start_response)


def local_plugin(sim_url: str, **extra: str) -> PlivoCarrier:
    """The plugin as the local stack builds it: from the environment, with the simulator's defaults."""
    environ = {
        "PARLEY_PLIVO_AUTH_ID": LOCAL_AUTH_ID,
        "PARLEY_PLIVO_AUTH_TOKEN": LOCAL_AUTH_TOKEN,
        "PARLEY_PLIVO_API_BASE": sim_url,
        "PARLEY_CARRIER_TIMEOUT_SECONDS": "5",
        **extra,
    }
    return build(CarrierConfig(environ))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    app = Receiver(PlivoCarrier(LOCAL_AUTH_ID, LOCAL_AUTH_TOKEN))
    with serving(app) as base_url:
        app.base_url = base_url
        yield app


@pytest.fixture
def sim(receiver: Receiver) -> Iterator[SimulatedPlivo]:
    simulator = SimulatedPlivo(receiver.base_url, callback_retry_delay=0.02)
    yield simulator
    simulator.close()


@pytest.fixture
def sim_url(sim: SimulatedPlivo) -> Iterator[str]:
    with serving(DispatcherMiddleware(NotFound(), {MOUNT: sim})) as base_url:
        yield base_url + MOUNT


@pytest.fixture
def plugin(sim_url: str) -> PlivoCarrier:
    return local_plugin(sim_url)


def text(receiver: Receiver, body: str = "Your order #1234 is ready", to: str = CUSTOMER) -> OutboundText:
    callback = f"{receiver.base_url}/webhooks/plivo/status?tenant=acme"
    return OutboundText("msg-1", OUR_NUMBER, to, body, status_callback_url=callback)


def statuses(captured: list[Captured]) -> list[ParsedStatus]:
    found = [e for c in captured for e in c.events if isinstance(e, ParsedStatus)]
    assert len(found) == len(captured)
    return found


# --- send through the simulator, receipts back through our verify and parse ---------------------


def test_send_is_accepted_and_signed_receipts_verify_and_parse(
    plugin: PlivoCarrier, sim: SimulatedPlivo, receiver: Receiver
) -> None:
    outcome = plugin.send(text(receiver))
    assert isinstance(outcome, SendAccepted)
    assert outcome.carrier_status == "queued"
    captured = receiver.wait_for("/webhooks/plivo/status", 2)
    assert all(c.verified for c in captured), [c.reason for c in captured]
    assert all("x-plivo-signature-v3" in c.headers and "x-plivo-signature-v2" in c.headers for c in captured)
    sent, delivered = statuses(captured)
    assert (sent.status, delivered.status) == (MessageStatus.SENT, MessageStatus.DELIVERED)
    assert {sent.carrier_message_id, delivered.carrier_message_id} == {outcome.carrier_message_id}
    assert [c.params["Sequence"] for c in captured] == ["1", "2"]
    assert captured[0].params["To"] == "14155550100"  # Plivo writes numbers without "+"
    [stored] = sim.messages(CUSTOMER)
    assert (stored["message_uuid"], stored["text"]) == (
        outcome.carrier_message_id,
        "Your order #1234 is ready",
    )
    assert stored["callback_url"].endswith("/webhooks/plivo/status?tenant=acme")


def test_the_official_sdk_accepts_the_simulators_signatures(plugin: PlivoCarrier, receiver: Receiver) -> None:
    plugin.send(text(receiver))
    for captured in receiver.wait_for("/webhooks/plivo/status", 2):
        headers = captured.headers
        assert validate_v3_signature(
            "POST",
            captured.url,
            headers["x-plivo-signature-v3-nonce"],
            LOCAL_AUTH_TOKEN,
            headers["x-plivo-signature-v3"],
            captured.params,
        )
        assert validate_signature(
            captured.url,
            headers["x-plivo-signature-v2-nonce"],
            headers["x-plivo-signature-v2"],
            LOCAL_AUTH_TOKEN,
        )


def test_a_long_text_gets_a_receipt_per_part(plugin: PlivoCarrier, receiver: Receiver) -> None:
    outcome = plugin.send(text(receiver, body="x" * 200))  # two GSM-7 segments
    assert isinstance(outcome, SendAccepted)
    parsed = statuses(receiver.wait_for("/webhooks/plivo/status", 4))
    assert {(s.status, s.part, s.parts) for s in parsed} == {
        (MessageStatus.SENT, 1, 2),
        (MessageStatus.SENT, 2, 2),
        (MessageStatus.DELIVERED, 1, 2),
        (MessageStatus.DELIVERED, 2, 2),
    }
    assert {s.carrier_message_id for s in parsed} == {outcome.carrier_message_id}  # the parent
    assert len({s.raw["MessageUUID"] for s in parsed}) == 2


def test_v2_only_callbacks_verify_unless_v3_is_required(receiver: Receiver, sim_url: str) -> None:
    v2_sim = SimulatedPlivo(receiver.base_url, signature_versions=("v2",))
    try:
        with serving(DispatcherMiddleware(NotFound(), {MOUNT: v2_sim})) as base:
            assert isinstance(local_plugin(base + MOUNT).send(text(receiver)), SendAccepted)
            first, second = receiver.wait_for("/webhooks/plivo/status", 2)
    finally:
        v2_sim.close()
    assert "x-plivo-signature-v3" not in first.headers
    assert first.verified and second.verified
    strict = local_plugin(sim_url, PARLEY_PLIVO_REQUIRE_V3="true")
    request = WebhookRequest(first.method, first.url, first.headers, first.body)
    with pytest.raises(SignatureError, match="V2 is not accepted"):
        strict.verify(request)


def test_callbacks_by_get_are_signed_over_the_query(sim_url: str, receiver: Receiver) -> None:
    answer = requests.post(
        f"{sim_url}/v1/Account/{LOCAL_AUTH_ID}/Message/",
        json={
            "src": OUR_NUMBER,
            "dst": CUSTOMER,
            "text": "by GET",
            "url": f"{receiver.base_url}/webhooks/plivo/status?tenant=acme",
            "method": "GET",
        },
        auth=(LOCAL_AUTH_ID, LOCAL_AUTH_TOKEN),
        timeout=5,
    )
    assert answer.status_code == 202
    captured = receiver.wait_for("/webhooks/plivo/status", 2)
    assert [c.method for c in captured] == ["GET", "GET"]
    assert all(c.verified for c in captured), [c.reason for c in captured]
    first = captured[0]
    configured = first.url.split("&")[0]  # the URL as configured, before Plivo's fields
    params = {k: v for k, v in first.params.items() if k != "tenant"}
    nonce, signature = first.headers["x-plivo-signature-v3-nonce"], first.headers["x-plivo-signature-v3"]
    assert validate_v3_signature("GET", configured, nonce, LOCAL_AUTH_TOKEN, signature, params)


def test_receipts_are_retried_while_our_server_fails(
    plugin: PlivoCarrier, sim: SimulatedPlivo, receiver: Receiver
) -> None:
    receiver.script("/webhooks/plivo/status", 500, 503)
    outcome = plugin.send(text(receiver))
    assert isinstance(outcome, SendAccepted)
    captured = receiver.wait_for("/webhooks/plivo/status", 4)
    assert [c.params["Status"] for c in captured] == ["sent", "sent", "sent", "delivered"]
    sim.close()  # joins the callback thread, so its record of the last callback is complete
    [stored] = sim.messages()
    assert [(c["status"], c["attempts"], c["response_code"]) for c in stored["callbacks"]] == [
        ("sent", 3, 200),
        ("delivered", 1, 200),
    ]


# --- inbound ---------------------------------------------------------------------------------------


def test_inbound_is_signed_repeated_and_parsed(sim_url: str, receiver: Receiver) -> None:
    answer = requests.post(
        f"{sim_url}/_inbound",
        json={"from": CUSTOMER, "to": OUR_NUMBER, "body": "Hi! Is it ready? \U0001f600", "repeat": 2},
        timeout=5,
    )
    assert answer.status_code == 200
    assert answer.json()["responses"] == [200, 200]
    first, second = receiver.wait_for("/webhooks/plivo/messages", 2)
    assert first.verified and second.verified
    [event] = first.events
    assert isinstance(event, ParsedInbound)
    assert (event.from_number, event.to_number, event.body) == (
        "+14155550100",  # Plivo writes no "+"; the plugin adds it
        "+15005550006",
        "Hi! Is it ready? \U0001f600",
    )
    assert event.opt_out is None
    assert second.events[0].carrier_message_id == event.carrier_message_id  # a retry, not a new text
    assert answer.json()["message_uuid"] == event.carrier_message_id
    assert first.body.startswith(b"From=14155550100&")


def test_inbound_mms_carries_the_media(sim: SimulatedPlivo, receiver: Receiver) -> None:
    urls = ["https://media.example/a.jpg", "https://media.example/b.png"]
    sim.send_inbound(CUSTOMER, OUR_NUMBER, "photos", media_urls=urls)
    [captured] = receiver.wait_for("/webhooks/plivo/messages", 1)
    [event] = captured.events
    assert isinstance(event, ParsedInbound)
    assert [m.url for m in event.media] == urls
    assert event.body == "photos"
    assert captured.params["Type"] == "mms"


def test_stop_blocks_later_sends_with_error_200_until_start(
    plugin: PlivoCarrier, sim: SimulatedPlivo, receiver: Receiver
) -> None:
    assert sim.send_inbound(CUSTOMER, OUR_NUMBER, "stop")["message_intent"] == "optout"
    [stop] = receiver.wait_for("/webhooks/plivo/messages", 1)
    assert isinstance(stop.events[0], ParsedInbound) and stop.events[0].opt_out == "STOP"
    assert sim.opted_out(OUR_NUMBER, CUSTOMER)

    assert isinstance(plugin.send(text(receiver)), SendAccepted)  # Plivo accepts, then blocks it
    [blocked] = statuses(receiver.wait_for("/webhooks/plivo/status", 1))
    assert (blocked.status, blocked.error_code, blocked.opted_out) == (MessageStatus.FAILED, "200", True)
    assert plugin.classify(blocked.error_code, None)[0] is FailureKind.PERMANENT

    sim.send_inbound(CUSTOMER, OUR_NUMBER, "START")
    [start] = receiver.wait_for("/webhooks/plivo/messages", 2)[1].events
    assert isinstance(start, ParsedInbound) and start.opt_out == "START"
    assert not sim.opted_out(OUR_NUMBER, CUSTOMER)
    plugin.send(text(receiver))
    later = statuses(receiver.wait_for("/webhooks/plivo/status", 3))
    assert [s.status for s in later[1:]] == [MessageStatus.SENT, MessageStatus.DELIVERED]


# --- faults, errors and reconciliation ---------------------------------------------------------------


def test_500_fault_is_ambiguous_and_nothing_was_queued(
    plugin: PlivoCarrier, sim: SimulatedPlivo, sim_url: str, receiver: Receiver
) -> None:
    added = requests.post(f"{sim_url}/_faults", json={"kind": "500", "count": 1}, timeout=5)
    assert added.status_code == 201
    assert [f["kind"] for f in requests.get(f"{sim_url}/_faults", timeout=5).json()["faults"]] == ["500"]
    outcome = plugin.send(text(receiver))
    assert isinstance(outcome, SendFailed)
    assert (outcome.kind, outcome.http_status) == (FailureKind.AMBIGUOUS, 500)
    assert sim.messages() == [] and sim.faults() == []
    assert plugin.find_sent(text(receiver), _now()) is None  # reconcile: it was not sent


def test_429_fault_is_transient_and_only_hits_its_recipient(
    plugin: PlivoCarrier, sim: SimulatedPlivo, receiver: Receiver
) -> None:
    sim.add_fault("429", to=OTHER_CUSTOMER)
    unaffected = plugin.send(text(receiver, to=CUSTOMER))
    throttled = plugin.send(text(receiver, to=OTHER_CUSTOMER))
    assert isinstance(unaffected, SendAccepted)
    assert isinstance(throttled, SendFailed)
    assert (throttled.kind, throttled.http_status) == (FailureKind.TRANSIENT, 429)
    assert [m["message_uuid"] for m in sim.messages()] == [unaffected.carrier_message_id]


def test_timeout_after_accept_is_reconciled_by_find_sent(
    plugin: PlivoCarrier, sim: SimulatedPlivo, sim_url: str, receiver: Receiver
) -> None:
    since = _now()
    sim.add_fault("timeout_after_accept", hold_seconds=10)
    impatient = local_plugin(sim_url, PARLEY_CARRIER_TIMEOUT_SECONDS="0.3")
    outcome = impatient.send(text(receiver))
    assert isinstance(outcome, SendFailed) and outcome.kind is FailureKind.AMBIGUOUS
    wait_until(lambda: sim.held_requests)  # the client gave up; the simulator may not have got that far yet
    sim.release_held()
    found = plugin.find_sent(text(receiver), since)
    [stored] = sim.messages()
    assert isinstance(found, SendAccepted)
    assert found.carrier_message_id == stored["message_uuid"]  # so the retry must not send again
    assert plugin.find_sent(text(receiver, to=OTHER_CUSTOMER), since) is None


def test_timeout_fault_holds_then_nothing_was_queued(
    plugin: PlivoCarrier, sim: SimulatedPlivo, sim_url: str, receiver: Receiver
) -> None:
    sim.add_fault("timeout", hold_seconds=10)
    impatient = local_plugin(sim_url, PARLEY_CARRIER_TIMEOUT_SECONDS="0.3")
    outcome = impatient.send(text(receiver))
    assert isinstance(outcome, SendFailed) and outcome.kind is FailureKind.AMBIGUOUS
    assert wait_until(lambda: sim.held_requests) == 1
    sim.release_held()
    assert plugin.find_sent(text(receiver), _now()) is None
    assert sim.messages() == []


def test_undelivered_fault_reports_the_error_code(
    plugin: PlivoCarrier, sim: SimulatedPlivo, receiver: Receiver
) -> None:
    sim.add_fault("undelivered", error_code="30")
    assert isinstance(plugin.send(text(receiver)), SendAccepted)
    sent, undelivered = statuses(receiver.wait_for("/webhooks/plivo/status", 2))
    assert (sent.status, undelivered.status, undelivered.error_code) == (
        MessageStatus.SENT,
        MessageStatus.UNDELIVERED,
        "30",
    )
    assert "spam" in (undelivered.error_message or "")


@pytest.mark.parametrize(
    ("to", "words"), [("+15005550001", "not a valid phone number"), ("+1415", "not a valid phone number")]
)
def test_invalid_numbers_are_permanent(
    plugin: PlivoCarrier, sim: SimulatedPlivo, receiver: Receiver, to: str, words: str
) -> None:
    outcome = plugin.send(text(receiver, to=to))
    assert isinstance(outcome, SendFailed)
    assert (outcome.kind, outcome.http_status) == (FailureKind.PERMANENT, 400)
    assert words in outcome.reason
    assert sim.messages() == []


def test_wrong_credentials_are_refused(sim: SimulatedPlivo, sim_url: str, receiver: Receiver) -> None:
    outcome = PlivoCarrier(LOCAL_AUTH_ID, "wrong-token", api_base=sim_url).send(text(receiver))
    assert isinstance(outcome, SendFailed)
    assert (outcome.kind, outcome.http_status) == (FailureKind.PERMANENT, 401)
    assert "credentials" in outcome.reason
    other = "MAOTHERACCOUNT000001"
    answer = requests.get(f"{sim_url}/v1/Account/{other}/Message/", auth=(other, LOCAL_AUTH_TOKEN), timeout=5)
    assert answer.status_code == 401 and "error" in answer.json()
    assert sim.messages() == []


def test_messages_endpoint_lists_and_resets(
    plugin: PlivoCarrier, sim: SimulatedPlivo, sim_url: str, receiver: Receiver
) -> None:
    accepted = plugin.send(text(receiver))
    assert isinstance(accepted, SendAccepted)
    listed = requests.get(f"{sim_url}/_messages", timeout=5).json()["messages"]
    assert [m["message_uuid"] for m in listed] == [accepted.carrier_message_id]
    assert requests.delete(f"{sim_url}/_messages", timeout=5).status_code == 204
    assert sim.messages() == [] and requests.get(f"{sim_url}/_messages", timeout=5).json() == {"messages": []}


def test_control_plane_rejects_nonsense(sim_url: str) -> None:
    assert requests.post(f"{sim_url}/_faults", json={"kind": "flood"}, timeout=5).status_code == 400
    assert requests.post(f"{sim_url}/_inbound", json={"from": CUSTOMER}, timeout=5).status_code == 400
    assert (
        requests.post(
            f"{sim_url}/_inbound", json={"from": CUSTOMER, "to": OUR_NUMBER, "repeat": 99}, timeout=5
        ).status_code
        == 400
    )


# --- the official SDK as an independent client ------------------------------------------------------


def test_official_sdk_creates_fetches_and_lists(
    sim_url: str, sim: SimulatedPlivo, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plivo.rest.client, "PLIVO_API_BASE_URI", f"{sim_url}/v1/Account")
    client = plivo.RestClient(LOCAL_AUTH_ID, LOCAL_AUTH_TOKEN, timeout=5)
    created = client.messages.create(
        src=OUR_NUMBER, dst=CUSTOMER, text="from the SDK", url=f"{receiver.base_url}/webhooks/plivo/status"
    )
    [message_uuid] = created.message_uuid
    fetched = client.messages.get(message_uuid)
    assert (fetched.message_uuid, fetched.to_number, fetched.message_direction) == (
        message_uuid,
        "14155550100",
        "outbound",
    )
    listed = client.messages.list(message_direction="outbound", to_number=CUSTOMER, limit=20)
    assert [m.message_uuid for m in listed] == [message_uuid]
    assert listed.meta["total_count"] == 1
    with pytest.raises(plivo.exceptions.ResourceNotFoundError):
        client.messages.get("00000000-0000-0000-0000-000000000000")
    receiver.wait_for("/webhooks/plivo/status", 2)


def _now() -> datetime:
    return datetime.now(UTC)
