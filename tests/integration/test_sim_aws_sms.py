"""The local AWS SMS simulator against the real plugin, over real HTTP.

Why: the local stack trusts the simulator to behave like AWS, so it is driven here by the plugin's
own `send` (boto3, SigV4) and its SNS notifications are checked by the plugin's `verify` and `parse`
on a tiny receiver standing in for Parley's webhook, exactly as production would see them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from cryptography import x509
from werkzeug.exceptions import NotFound
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.wrappers import Request, Response

from local.sim_aws_sms import DEFAULT_TOPIC_ARN, SimulatedAwsSms
from parley.carriers.aws_sms import AwsSmsCarrier, build
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
from parley.domain.vocabulary import MessageStatus
from tests.carrier_api import serving

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

OUR_NUMBER = "+15005550006"
CUSTOMER = "+14155550100"
OTHER_CUSTOMER = "+14155550199"
MOUNT = "/_sim/aws"
EVENTS_PATH = "/webhooks/aws/events"


@dataclass(frozen=True)
class Delivery:
    """One SNS POST as our webhook saw it: the answer it gave and what the plugin made of it."""

    status: int
    message_type: str | None
    events: tuple[ParsedEvent, ...]
    error: str | None


class Receiver:
    """Parley's webhook in miniature: verify, parse, answer; scripted failures first if any."""

    def __init__(self) -> None:
        self.carrier: AwsSmsCarrier | None = None
        self.base_url = ""
        self._deliveries: list[Delivery] = []
        self._script: list[int] = []
        self._lock = threading.Lock()

    def reset(self, carrier: AwsSmsCarrier) -> None:
        with self._lock:
            self.carrier = carrier
            self._deliveries.clear()
            self._script.clear()

    def fail_next(self, *statuses: int) -> None:
        with self._lock:
            self._script.extend(statuses)

    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    def events(self) -> list[ParsedEvent]:
        return [e for d in self.deliveries() for e in d.events]

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        if request.path != EVENTS_PATH:
            return NotFound()(environ, start_response)
        webhook = WebhookRequest(
            method=request.method,
            url=self.base_url + request.full_path.rstrip("?"),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=request.get_data(),
        )
        with self._lock:
            scripted = self._script.pop(0) if self._script else None
            carrier = self.carrier
        assert carrier is not None
        events: tuple[ParsedEvent, ...] = ()
        error = None
        if scripted is not None:
            status = scripted
        else:
            try:
                carrier.verify(webhook)
                events = tuple(carrier.parse(WebhookKind.EVENTS, webhook))
                status = carrier.ack(WebhookKind.EVENTS).status_code
            except SignatureError as exc:
                status, error = 403, f"signature: {exc}"
            except PayloadError as exc:
                status, error = 400, f"payload: {exc}"
        with self._lock:
            self._deliveries.append(Delivery(status, webhook.header("x-amz-sns-message-type"), events, error))
        return Response("", status=status)(environ, start_response)


class _SimSlot:
    """Lets a test swap the mounted simulator (e.g. for a SignatureVersion 1 one)."""

    def __init__(self) -> None:
        self.sim: SimulatedAwsSms | None = None

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        assert self.sim is not None
        return self.sim(environ, start_response)


@dataclass
class Stack:
    url: str
    slot: _SimSlot
    receiver: Receiver

    @property
    def sim(self) -> SimulatedAwsSms:
        assert self.slot.sim is not None
        return self.slot.sim


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    receiver = Receiver()
    slot = _SimSlot()
    with serving(DispatcherMiddleware(receiver, {MOUNT: slot})) as url:
        receiver.base_url = url
        slot.sim = SimulatedAwsSms(url)
        try:
            yield Stack(url, slot, receiver)
        finally:
            slot.sim.close()


def plugin_env(url: str, **overrides: str) -> dict[str, str]:
    return {
        "PARLEY_AWS_SMS_ENDPOINT_URL": url + MOUNT,
        "PARLEY_AWS_SNS_CERT_HOSTS_EXTRA": "127.0.0.1",
        "PARLEY_AWS_SNS_TOPIC_ARNS": DEFAULT_TOPIC_ARN,
        "PARLEY_AWS_SMS_CONFIGURATION_SET": "parley-local",
        "PARLEY_CARRIER_TIMEOUT_SECONDS": "5",
        "AWS_REGION": "us-east-1",
        **overrides,
    }


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The local runtime's AWS credentials, which are also the simulator's defaults."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


@pytest.fixture
def local(stack: Stack, aws_env: None) -> Iterator[Stack]:
    stack.sim.reset()
    stack.receiver.reset(build(CarrierConfig(plugin_env(stack.url))))
    try:
        yield stack
    finally:
        stack.sim.clear_faults()
        assert stack.sim.wait_idle(), "the simulator was still posting events"


def plugin(stack: Stack, **overrides: str) -> AwsSmsCarrier:
    return build(CarrierConfig(plugin_env(stack.url, **overrides)))


def text(
    to: str = CUSTOMER, body: str = "Your order #1234 is ready", message_id: str = "msg-1"
) -> OutboundText:
    return OutboundText(message_id=message_id, from_number=OUR_NUMBER, to_number=to, body=body)


def statuses_for(receiver: Receiver, message_id: str) -> list[ParsedStatus]:
    return [
        e for e in receiver.events() if isinstance(e, ParsedStatus) and e.carrier_message_id == message_id
    ]


# -- sending, and the receipts that follow ---------------------------------------------------------------


def test_send_is_accepted_and_signed_receipts_follow(local: Stack) -> None:
    outcome = plugin(local).send(text(message_id="msg-42"))
    assert isinstance(outcome, SendAccepted)
    message_id = outcome.carrier_message_id

    assert local.sim.wait_idle()
    assert all(d.status == 200 and d.error is None for d in local.receiver.deliveries())
    sent, delivered = statuses_for(local.receiver, message_id)
    assert (sent.status, sent.carrier_status) == (MessageStatus.SENT, "TEXT_SUCCESSFUL")
    assert (delivered.status, delivered.carrier_status) == (MessageStatus.DELIVERED, "TEXT_DELIVERED")
    assert (sent.client_ref, delivered.client_ref) == ("msg-42", "msg-42")  # our id comes back

    [stored] = local.sim.messages(to=CUSTOMER)
    assert stored["MessageId"] == message_id
    assert (stored["OriginationIdentity"], stored["MessageBody"], stored["ConfigurationSetName"]) == (
        OUR_NUMBER,
        "Your order #1234 is ready",
        "parley-local",
    )
    assert [(e["eventType"], e["response_code"]) for e in local.sim.messages()[0]["events"]] == [
        ("TEXT_SUCCESSFUL", 200),
        ("TEXT_DELIVERED", 200),
    ]


def test_undelivered_fault_ends_with_the_error_event(local: Stack) -> None:
    answer = requests.post(
        f"{local.url}{MOUNT}/_faults",
        json={"kind": "undelivered", "to": CUSTOMER, "error_code": "TEXT_CARRIER_UNREACHABLE"},
        timeout=5,
    )
    assert answer.status_code == 201
    outcome = plugin(local).send(text())
    assert isinstance(outcome, SendAccepted)
    assert local.sim.wait_idle()
    final = statuses_for(local.receiver, outcome.carrier_message_id)[-1]
    assert (final.status, final.error_code) == (MessageStatus.UNDELIVERED, "TEXT_CARRIER_UNREACHABLE")
    assert plugin(local).classify(final.error_code, None)[0] is FailureKind.TRANSIENT


@pytest.mark.parametrize(
    ("kind", "expected", "code"),
    [
        ("500", FailureKind.AMBIGUOUS, "InternalServerException"),
        ("429", FailureKind.TRANSIENT, "ThrottlingException"),
    ],
)
def test_faults_are_classified_and_consumed(
    local: Stack, kind: str, expected: FailureKind, code: str
) -> None:
    local.sim.add_fault(kind, count=1, to=CUSTOMER)
    carrier = plugin(local)
    other = carrier.send(text(to=OTHER_CUSTOMER))
    failed = carrier.send(text())
    again = carrier.send(text())
    assert isinstance(other, SendAccepted)  # the fault was only for CUSTOMER
    assert isinstance(failed, SendFailed) and (failed.kind, failed.error_code) == (expected, code)
    assert isinstance(again, SendAccepted)  # count=1: used up
    assert len(local.sim.messages(to=CUSTOMER)) == 1


def test_timeout_fault_makes_the_send_ambiguous(local: Stack) -> None:
    local.sim.add_fault("timeout", hold_seconds=10)
    outcome = plugin(local, PARLEY_CARRIER_TIMEOUT_SECONDS="0.2").send(text())
    local.sim.release_held()
    assert isinstance(outcome, SendFailed)
    assert (outcome.kind, outcome.http_status) == (FailureKind.AMBIGUOUS, None)
    assert local.sim.messages() == []


def test_invalid_number_is_permanent(local: Stack) -> None:
    outcome = plugin(local).send(text(to="555-0100"))
    assert isinstance(outcome, SendFailed)
    assert (outcome.kind, outcome.reason, outcome.error_code, outcome.http_status) == (
        FailureKind.PERMANENT,
        "the number is not a valid phone number",
        "INVALID_PARAMETER",
        400,
    )


@pytest.mark.parametrize(
    ("key", "secret", "code"),
    [
        ("testing", "wrong-secret", "InvalidSignatureException"),
        ("AKIDOTHER", "testing", "UnrecognizedClientException"),
    ],
)
def test_wrong_credentials_are_refused(
    local: Stack, monkeypatch: pytest.MonkeyPatch, key: str, secret: str, code: str
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    outcome = plugin(local).send(text())
    assert isinstance(outcome, SendFailed)
    assert (outcome.kind, outcome.error_code, outcome.http_status) == (FailureKind.PERMANENT, code, 403)
    assert local.sim.messages() == []


def test_unsimulated_operation_is_an_aws_error(local: Stack) -> None:
    client = boto3.client(
        "pinpoint-sms-voice-v2",
        region_name="us-east-1",
        endpoint_url=local.url + MOUNT,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with pytest.raises(ClientError) as caught:
        client.describe_phone_numbers()
    assert caught.value.response["Error"]["Code"] == "UnknownOperationException"


# -- inbound texts, opt-outs and the subscription handshake -----------------------------------------


def test_inbound_repeats_are_one_signed_message(local: Stack) -> None:
    answer = requests.post(
        f"{local.url}{MOUNT}/_inbound",
        json={"from": CUSTOMER, "to": OUR_NUMBER, "body": "Is it ready? 😀", "repeat": 2},
        timeout=5,
    )
    assert answer.status_code == 200 and answer.json()["responses"] == [200, 200]
    first, second = local.receiver.deliveries()
    assert first == second  # the same SNS message twice: SNS retrying
    [event] = first.events
    assert isinstance(event, ParsedInbound)
    assert (event.carrier_message_id, event.from_number, event.to_number, event.body, event.opt_out) == (
        answer.json()["inbound_message_id"],
        CUSTOMER,
        OUR_NUMBER,
        "Is it ready? 😀",
        None,
    )


def test_inbound_stop_opts_the_sender_out_at_aws(local: Stack) -> None:
    sent = plugin(local).send(text())
    assert isinstance(sent, SendAccepted)
    local.sim.send_inbound(CUSTOMER, OUR_NUMBER, "STOP")
    inbound = [e for e in local.receiver.events() if isinstance(e, ParsedInbound)]
    assert [e.opt_out for e in inbound] == ["STOP"]
    assert inbound[0].raw["previousPublishedMessageId"] == sent.carrier_message_id
    refused = plugin(local).send(text())
    assert isinstance(refused, SendFailed)
    assert (refused.kind, refused.opted_out, refused.error_code) == (
        FailureKind.PERMANENT,
        True,
        "DESTINATION_PHONE_NUMBER_OPTED_OUT",
    )


def test_subscription_confirmation_is_confirmed_by_the_plugin(local: Stack) -> None:
    answer = requests.post(f"{local.url}{MOUNT}/_subscribe", json={}, timeout=5)
    assert answer.status_code == 200 and answer.json()["response_code"] == 200
    [delivery] = local.receiver.deliveries()
    assert (delivery.message_type, delivery.events) == ("SubscriptionConfirmation", ())
    assert local.sim.confirmed_subscriptions() == 1


def test_sns_retries_while_our_webhook_fails(local: Stack) -> None:
    local.receiver.fail_next(500, 503)
    result = local.sim.send_inbound(CUSTOMER, OUR_NUMBER, "hello")
    assert result["responses"] == [200]
    assert [d.status for d in local.receiver.deliveries()] == [500, 503, 200]


def test_signature_version_1_is_verified_too(stack: Stack, aws_env: None) -> None:
    v1 = SimulatedAwsSms(stack.url, signature_version="1", self_url=stack.url + MOUNT)
    original = stack.slot.sim
    stack.slot.sim = v1
    stack.receiver.reset(plugin(stack))
    try:
        v1.send_inbound(CUSTOMER, OUR_NUMBER, "via SHA1")
    finally:
        stack.slot.sim = original
        v1.close()
    [delivery] = stack.receiver.deliveries()
    [event] = delivery.events
    assert delivery.status == 200 and isinstance(event, ParsedInbound) and event.body == "via SHA1"


def test_a_plugin_that_does_not_trust_the_simulator_rejects_it(local: Stack) -> None:
    local.receiver.reset(build(CarrierConfig(plugin_env(local.url, PARLEY_AWS_SNS_CERT_HOSTS_EXTRA=""))))
    local.sim.send_inbound(CUSTOMER, OUR_NUMBER, "hello")
    [delivery] = local.receiver.deliveries()
    assert delivery.status == 403 and delivery.error is not None and "not an SNS host" in delivery.error


# -- the control plane -------------------------------------------------------------------------------


def test_control_plane_over_http(local: Stack) -> None:
    base = local.url + MOUNT
    assert isinstance(plugin(local).send(text()), SendAccepted)
    listed = requests.get(f"{base}/_messages", timeout=5).json()
    assert [m["DestinationPhoneNumber"] for m in listed["messages"]] == [CUSTOMER]

    assert requests.post(f"{base}/_faults", json={"kind": "teleport"}, timeout=5).status_code == 400
    assert requests.post(f"{base}/_faults", json={"kind": "500", "count": 2}, timeout=5).status_code == 201
    assert [f["remaining"] for f in requests.get(f"{base}/_faults", timeout=5).json()["faults"]] == [2]
    assert requests.delete(f"{base}/_faults", timeout=5).status_code == 204
    assert requests.get(f"{base}/_faults", timeout=5).json()["faults"] == []

    assert requests.post(f"{base}/_inbound", json={"from": CUSTOMER}, timeout=5).status_code == 400
    assert requests.delete(f"{base}/_messages", timeout=5).status_code == 204
    assert local.sim.messages() == []

    cert = requests.get(f"{base}/cert.pem", timeout=5)
    assert cert.status_code == 200
    assert x509.load_pem_x509_certificate(cert.content).public_key() is not None
    assert requests.get(local.sim.cert_url, timeout=5).content == cert.content
    assert local.sim.cert_url.startswith(base + "/SimpleNotificationService-")
    assert requests.get(f"{base}/other.pem", timeout=5).status_code == 404
    assert requests.get(f"{base}/nowhere", timeout=5).status_code == 404


def test_python_api_rejects_bad_faults(local: Stack) -> None:
    for kwargs in ({"kind": "500", "count": 0}, {"kind": "nope"}, {"kind": "undelivered", "error_code": "X"}):
        with pytest.raises(ValueError):
            local.sim.add_fault(**kwargs)
    assert json.loads(json.dumps(local.sim.faults())) == []
