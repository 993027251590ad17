"""The local Vonage simulator against the Vonage plugin, over real HTTP.

Why: the local stack trusts the simulator to behave like Vonage's SMS API, and the plugin to
understand Vonage. Here the plugin's `send` talks to the simulator, the simulator's signed receipts
and inbound texts land on a tiny receiver that runs the plugin's `verify` and `parse`, and the
simulator's signer is checked against Vonage's SDK, so neither side only agrees with itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
import requests
from vonage_http_client.auth import Auth  # type: ignore[import-untyped]
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.wrappers import Request, Response

from local.process import wait_until
from local.sim_vonage import (
    DEFAULT_API_KEY,
    DEFAULT_API_SECRET,
    DEFAULT_SIGNATURE_SECRET,
    SimulatedVonage,
    vonage_signature,
)
from parley.carriers.base import (
    FailureKind,
    OutboundText,
    ParsedEvent,
    ParsedInbound,
    ParsedStatus,
    SendAccepted,
    SendFailed,
    SignatureError,
    WebhookKind,
    WebhookRequest,
)
from parley.carriers.config import CarrierConfig
from parley.carriers.vonage_sms import VonageSmsCarrier, build
from parley.domain.vocabulary import MessageStatus
from tests.carrier_api import serving

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

MOUNT = "/_sim/vonage"
OUR_NUMBER = "+15005550006"
CUSTOMER = "+14155550100"
WAIT = 5.0


@dataclass(frozen=True)
class Call:
    path: str
    method: str
    content_type: str
    events: list[ParsedEvent]
    error: str | None


class Receiver:
    """Our webhook endpoints in miniature: verify, parse, ack with the plugin; record every call."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._calls: list[Call] = []
        self._script: list[int] = []
        self.verifier: VonageSmsCarrier | None = None

    def reset(self, verifier: VonageSmsCarrier) -> None:
        with self._changed:
            self._calls.clear()
            self._script.clear()
            self.verifier = verifier

    def answer_next(self, *statuses: int) -> None:
        """Answer the next requests with these statuses (after verifying them) instead of the ack."""
        with self._changed:
            self._script.extend(statuses)

    def calls(self) -> list[Call]:
        with self._changed:
            return list(self._calls)

    def wait_for(self, predicate: Callable[[list[Call]], bool], what: str) -> list[Call]:
        with self._changed:
            if not self._changed.wait_for(lambda: predicate(self._calls), timeout=WAIT):
                raise AssertionError(f"timed out waiting for {what}; got {self._calls}")
            return list(self._calls)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        assert self.verifier is not None
        hook = WebhookRequest(
            method=request.method,
            url=request.url,
            headers={name.lower(): value for name, value in request.headers.items()},
            body=request.get_data(),
            query=dict(request.args.items()),
        )
        kind = WebhookKind.STATUS if request.path.endswith("/status") else WebhookKind.MESSAGES
        ack = self.verifier.ack(kind)
        status, events, error = ack.status_code, [], None
        try:
            self.verifier.verify(hook)
            events = self.verifier.parse(kind, hook)
        except SignatureError as exc:
            status, error = 401, str(exc)
        with self._changed:
            if self._script and error is None:
                status = self._script.pop(0)
            self._calls.append(Call(request.path, request.method, request.mimetype, events, error))
            self._changed.notify_all()
        return Response(ack.body, status=status, content_type=ack.content_type)(environ, start_response)


@dataclass
class Stack:
    url: str
    receiver: Receiver
    sim: SimulatedVonage | None = None

    @property
    def api_base(self) -> str:
        return self.url + MOUNT

    def sim_app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        assert self.sim is not None
        return self.sim(environ, start_response)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    receiver = Receiver()
    holder = Stack(url="", receiver=receiver)
    with serving(DispatcherMiddleware(receiver, {MOUNT: holder.sim_app})) as url:
        holder.url = url
        yield holder


@pytest.fixture
def make_sim(stack: Stack) -> Iterator[Callable[..., SimulatedVonage]]:
    """A fresh simulator on the shared server, with the receiver verifying by the same method."""
    made: list[SimulatedVonage] = []

    def make(**options: Any) -> SimulatedVonage:
        sim = SimulatedVonage(stack.url, **options)
        stack.sim = sim
        method = options.get("signature_method", "md5hash")
        stack.receiver.reset(
            VonageSmsCarrier(
                api_key=DEFAULT_API_KEY,
                api_secret=DEFAULT_API_SECRET,
                signature_secrets=(DEFAULT_SIGNATURE_SECRET,),
                signature_method=method,
            )
        )
        made.append(sim)
        return sim

    try:
        yield make
    finally:
        for sim in made:
            sim.close()
        stack.sim = None


def plugin(stack: Stack, **env: str) -> VonageSmsCarrier:
    """The plugin as the functions build it, from the settings matching the simulator's defaults."""
    settings = {
        "PARLEY_VONAGE_API_KEY": DEFAULT_API_KEY,
        "PARLEY_VONAGE_API_SECRET": DEFAULT_API_SECRET,
        "PARLEY_VONAGE_SIGNATURE_SECRET": DEFAULT_SIGNATURE_SECRET,
        "PARLEY_VONAGE_API_BASE": stack.api_base,
        "PARLEY_CARRIER_TIMEOUT_SECONDS": "5",
        **env,
    }
    return build(CarrierConfig(settings))


def text_for(
    stack: Stack, body: str = "Your order #1234 is ready & waiting", message_id: str = "msg-1"
) -> OutboundText:
    return OutboundText(
        message_id=message_id,
        from_number=OUR_NUMBER,
        to_number=CUSTOMER,
        body=body,
        status_callback_url=f"{stack.url}/webhooks/vonage/status",
    )


def statuses(calls: list[Call]) -> list[ParsedStatus]:
    return [e for c in calls for e in c.events if isinstance(e, ParsedStatus)]


def receipts_done(count: int) -> Callable[[list[Call]], bool]:
    return lambda calls: len(statuses(calls)) >= count


# -- sending and receipts ---------------------------------------------------------------------------


@pytest.mark.parametrize("webhook_format", ["form", "json", "get"])
@pytest.mark.parametrize("signature_method", ["md5hash", "sha256"])
def test_send_then_signed_receipts_are_verified(
    stack: Stack, make_sim: Callable[..., SimulatedVonage], webhook_format: str, signature_method: str
) -> None:
    sim = make_sim(webhook_format=webhook_format, signature_method=signature_method)
    outcome = plugin(stack).send(text_for(stack))
    assert isinstance(outcome, SendAccepted)
    assert (outcome.carrier_status, outcome.segments) == ("submitted", 1)
    [stored] = sim.messages(CUSTOMER)
    assert (stored["to"], stored["from"], stored["client_ref"]) == ("14155550100", "15005550006", "msg-1")
    assert stored["text"] == "Your order #1234 is ready & waiting"

    calls = stack.receiver.wait_for(receipts_done(2), "two receipts")
    assert [c.error for c in calls] == [None, None]  # every receipt passed verify
    assert {c.method for c in calls} == {"GET" if webhook_format == "get" else "POST"}
    assert [(s.carrier_status, s.status) for s in statuses(calls)] == [
        ("accepted", MessageStatus.SENT),
        ("delivered", MessageStatus.DELIVERED),
    ]
    assert {s.carrier_message_id for s in statuses(calls)} == {outcome.carrier_message_id}
    assert {s.raw["client-ref"] for s in statuses(calls)} == {"msg-1"}


def test_long_text_has_one_id_and_one_receipt_per_part(
    stack: Stack, make_sim: Callable[..., SimulatedVonage]
) -> None:
    sim = make_sim()
    outcome = plugin(stack).send(text_for(stack, body="word " * 80))  # 400 GSM-7 characters
    assert isinstance(outcome, SendAccepted)
    assert outcome.segments == 3
    [stored] = sim.messages()
    assert stored["message_ids"][0] == outcome.carrier_message_id
    calls = stack.receiver.wait_for(receipts_done(6), "a receipt per part per step")
    by_part = {s.carrier_message_id for s in statuses(calls)}
    assert by_part == set(stored["message_ids"]) and len(by_part) == 3
    assert {s.raw["client-ref"] for s in statuses(calls)} == {"msg-1"}  # how parts tie back to us


def test_unicode_text_is_sent_as_unicode(stack: Stack, make_sim: Callable[..., SimulatedVonage]) -> None:
    sim = make_sim()
    assert isinstance(plugin(stack).send(text_for(stack, body="Grüße \U0001f600")), SendAccepted)
    assert sim.messages()[0]["type"] == "unicode"


def test_wrong_credentials_are_refused_with_http_200(
    stack: Stack, make_sim: Callable[..., SimulatedVonage]
) -> None:
    sim = make_sim()
    outcome = plugin(stack, PARLEY_VONAGE_API_SECRET="wrong-secret-000").send(text_for(stack))
    assert outcome == SendFailed(
        FailureKind.PERMANENT,
        "the carrier rejected our credentials (check the Vonage API key and secret)",
        "4",
        200,
    )
    assert sim.messages() == []


def test_invalid_number_is_refused(stack: Stack, make_sim: Callable[..., SimulatedVonage]) -> None:
    make_sim()
    text = OutboundText("m", OUR_NUMBER, "+1415", "hi")
    outcome = plugin(stack).send(text)
    assert isinstance(outcome, SendFailed)
    assert (outcome.kind, outcome.error_code, outcome.http_status) == (FailureKind.PERMANENT, "3", 200)


@pytest.mark.parametrize(
    ("kind", "expected", "code", "http"),
    [
        ("500", FailureKind.AMBIGUOUS, None, 500),
        ("429", FailureKind.TRANSIENT, None, 429),
        ("throttled", FailureKind.TRANSIENT, "1", 200),
    ],
)
def test_faults_posted_over_http_are_classified(
    stack: Stack,
    make_sim: Callable[..., SimulatedVonage],
    kind: str,
    expected: FailureKind,
    code: str | None,
    http: int,
) -> None:
    sim = make_sim()
    answer = requests.post(
        f"{stack.api_base}/_faults", json={"kind": kind, "count": 1, "to": CUSTOMER}, timeout=5
    )
    assert answer.status_code == 201 and answer.json()["remaining"] == 1
    vonage = plugin(stack)
    outcome = vonage.send(text_for(stack))
    assert isinstance(outcome, SendFailed)
    assert (outcome.kind, outcome.error_code, outcome.http_status) == (expected, code, http)
    assert sim.messages() == [] and sim.faults() == []
    assert isinstance(vonage.send(text_for(stack)), SendAccepted)  # the fault was used up


def test_undelivered_fault_with_opt_out_code(stack: Stack, make_sim: Callable[..., SimulatedVonage]) -> None:
    sim = make_sim()
    sim.add_fault("undelivered", to=CUSTOMER, error_code="9")
    outcome = plugin(stack).send(text_for(stack))
    assert isinstance(outcome, SendAccepted)
    calls = stack.receiver.wait_for(receipts_done(2), "accepted and failed receipts")
    final = statuses(calls)[-1]
    assert (final.status, final.error_code, final.opted_out) == (MessageStatus.UNDELIVERED, "9", True)


def test_timeout_before_acceptance_is_ambiguous_and_sends_nothing(
    stack: Stack, make_sim: Callable[..., SimulatedVonage]
) -> None:
    sim = make_sim()
    sim.add_fault("timeout", hold_seconds=10)
    outcome = plugin(stack, PARLEY_CARRIER_TIMEOUT_SECONDS="0.2").send(text_for(stack))
    assert isinstance(outcome, SendFailed)
    assert outcome.kind is FailureKind.AMBIGUOUS
    assert wait_until(lambda: sim.held_requests) == 1
    sim.release_held()
    assert sim.messages() == []


def test_timeout_after_acceptance_is_ambiguous_but_sent(
    stack: Stack, make_sim: Callable[..., SimulatedVonage]
) -> None:
    sim = make_sim()
    sim.add_fault("timeout_after_accept", hold_seconds=10)
    outcome = plugin(stack, PARLEY_CARRIER_TIMEOUT_SECONDS="0.2").send(text_for(stack))
    assert isinstance(outcome, SendFailed) and outcome.kind is FailureKind.AMBIGUOUS
    wait_until(lambda: sim.held_requests)  # accepted and held (the client may give up before that)
    assert len(sim.messages()) == 1  # the customer gets it: exactly why a blind retry is wrong
    sim.release_held()
    calls = stack.receiver.wait_for(receipts_done(2), "receipts of the text sent anyway")
    assert {s.raw["client-ref"] for s in statuses(calls)} == {"msg-1"}  # the way to reconcile it


def test_receipts_are_retried_while_we_answer_5xx(
    stack: Stack, make_sim: Callable[..., SimulatedVonage]
) -> None:
    sim = make_sim(callback_retry_delay=0.01)
    stack.receiver.answer_next(500)
    assert isinstance(plugin(stack).send(text_for(stack)), SendAccepted)
    stack.receiver.wait_for(lambda calls: len(calls) >= 3, "a retried receipt and the next one")
    receipts = sim.messages()[0]["receipts"]
    assert [(r["status"], r["response_code"], r["attempts"]) for r in receipts][:1] == [("accepted", 204, 2)]


def test_receipts_signed_with_another_secret_are_rejected(
    stack: Stack, make_sim: Callable[..., SimulatedVonage]
) -> None:
    sim = make_sim(signature_secret="not-the-configured-secret")
    assert isinstance(plugin(stack).send(text_for(stack)), SendAccepted)
    calls = stack.receiver.wait_for(lambda c: len(c) >= 2, "two rejected receipts")
    assert [c.error for c in calls] == ["signature does not match"] * 2
    assert statuses(calls) == []
    sim.close()  # waits for the receipt thread to record the answers
    assert {r["response_code"] for r in sim.messages()[0]["receipts"]} == {401}  # 4xx: not retried


# -- inbound ----------------------------------------------------------------------------------------


def test_inbound_is_signed_and_repeated(stack: Stack, make_sim: Callable[..., SimulatedVonage]) -> None:
    make_sim(webhook_format="json")
    answer = requests.post(
        f"{stack.api_base}/_inbound",
        json={"from": CUSTOMER, "to": OUR_NUMBER, "body": "STOP sending me deals", "repeat": 2},
        timeout=5,
    )
    assert answer.status_code == 200
    result = answer.json()
    assert result["responses"] == [204, 204]
    calls = stack.receiver.calls()
    assert [(c.path, c.content_type, c.error) for c in calls] == [
        ("/webhooks/vonage/messages", "application/json", None)
    ] * 2
    texts = [e for c in calls for e in c.events]
    assert all(isinstance(t, ParsedInbound) for t in texts)
    assert {t.carrier_message_id for t in texts} == {result["message_id"]}  # a retry, not a new text
    first = texts[0]
    assert isinstance(first, ParsedInbound)
    assert (first.from_number, first.to_number, first.body) == (CUSTOMER, OUR_NUMBER, "STOP sending me deals")
    assert first.raw["keyword"] == "STOP"


def test_long_inbound_arrives_in_parts_that_reassemble(
    stack: Stack, make_sim: Callable[..., SimulatedVonage]
) -> None:
    sim = make_sim()
    body = "Hello from a long text, " * 15 + "\u00e9 the end"
    result = sim.send_inbound(CUSTOMER, OUR_NUMBER, body)
    parts = [e for c in stack.receiver.calls() for e in c.events]
    assert len(parts) == len(result["message_ids"]) == 3
    assert all(isinstance(p, ParsedInbound) and p.concat is not None for p in parts)
    ordered = sorted(parts, key=lambda p: p.concat.part if isinstance(p, ParsedInbound) and p.concat else 0)
    assert "".join(p.body for p in ordered if isinstance(p, ParsedInbound)) == body
    refs = {(p.concat.ref, p.concat.total) for p in parts if isinstance(p, ParsedInbound) and p.concat}
    assert len(refs) == 1 and next(iter(refs))[1] == 3


# -- control plane and signer -----------------------------------------------------------------------


def test_control_plane(stack: Stack, make_sim: Callable[..., SimulatedVonage]) -> None:
    sim = make_sim()
    assert isinstance(plugin(stack).send(text_for(stack)), SendAccepted)
    listed = requests.get(f"{stack.api_base}/_messages", timeout=5).json()["messages"]
    assert [m["to"] for m in listed] == ["14155550100"]
    bad = requests.post(f"{stack.api_base}/_faults", json={"kind": "explode"}, timeout=5)
    assert bad.status_code == 400 and "unknown fault kind" in bad.json()["reason"]
    requests.post(f"{stack.api_base}/_faults", json={"kind": "500", "count": 2}, timeout=5)
    assert [
        f["remaining"] for f in requests.get(f"{stack.api_base}/_faults", timeout=5).json()["faults"]
    ] == [2]
    assert requests.delete(f"{stack.api_base}/_faults", timeout=5).status_code == 204
    assert sim.faults() == []
    assert requests.delete(f"{stack.api_base}/_messages", timeout=5).status_code == 204
    assert sim.messages() == []
    assert requests.get(f"{stack.api_base}/nowhere", timeout=5).status_code == 404


@pytest.mark.parametrize("method", ["md5", "sha1", "sha256", "sha512"])
def test_simulator_signs_like_the_sdk(method: str) -> None:
    params = {"msisdn": "14155550100", "text": "a&b=c \U0001f600", "timestamp": "1700000000", "nonce": "n"}
    sdk = Auth(api_key=DEFAULT_API_KEY, signature_secret=DEFAULT_SIGNATURE_SECRET, signature_method=method)
    assert vonage_signature(params, DEFAULT_SIGNATURE_SECRET, method) == sdk.sign_params(dict(params))


def test_simulator_md5hash_matches_the_published_vector() -> None:
    params = {
        "msisdn": "447700900001",
        "to": "447700900000",
        "messageId": "0A0000000123ABCD1",
        "text": "Hello & good=bye",
        "type": "text",
        "keyword": "HELLO",
        "message-timestamp": "2020-01-01 12:00:00",
        "timestamp": "1577880000",
        "nonce": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
        "api-key": "abcd1234",
    }
    assert (
        vonage_signature(params, "fake-signature-secret-0123456789abcdef")
        == "51d635109313f6e3f78f6e9ba56175b0"
    )
