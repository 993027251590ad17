"""The local Twilio and CRM simulators, driven over real HTTP by the official Twilio SDK and our adapter.

Why: the local stack and the e2e tests trust these simulators to behave like the real services, so
their wire formats are checked here with independent implementations (the `twilio` SDK's client and
request validator) rather than with the simulators' own code.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, parse_qsl, quote

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from werkzeug.exceptions import NotFound
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.wrappers import Request, Response

from local.sim_crm import SimulatedCrm
from local.sim_twilio import SimulatedTwilio
from parley.carriers.twilio import TwilioCarrier, TwilioLookupError
from parley.config import Settings
from parley.crm.registry import UnknownCrm, build_crm
from parley.crm.webhook import CrmError, WebhookCrm, sign, verify
from tests.carrier_api import serving

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

ACCOUNT_SID = "AC" + "c0ffee00" * 4
AUTH_TOKEN = "sim-auth-token-0123456789abcdef"
OUR_NUMBER = "+15005550006"
CUSTOMER = "+14155550100"
OTHER_CUSTOMER = "+14155550199"
CRM_SECRET = "crm-signing-secret"
TWILIO_MOUNT = "/_sim/twilio"
CRM_MOUNT = "/_sim/crm"


# --- helpers ---------------------------------------------------------------------------------------


def wait_until(predicate: Callable[[], bool], timeout: float = 3.0, what: str = "condition") -> None:
    """Poll every 20 ms until `predicate` holds; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def mounted(prefix: str, app: WSGIApplication) -> WSGIApplication:
    """Mount like the local runtime does: the app sees SCRIPT_NAME=prefix, PATH_INFO=the rest."""
    return DispatcherMiddleware(NotFound(), {prefix: app})


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/nobody-home"


@dataclass(frozen=True)
class Captured:
    path: str
    raw_body: str
    signature: str | None

    @property
    def params(self) -> dict[str, str]:
        """The form with blank values kept, as a correct webhook receiver must parse it."""
        return dict(parse_qsl(self.raw_body, keep_blank_values=True))


class Receiver:
    """A stand-in for our webhook endpoints: records requests, answers scripted statuses, then 200."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._captured: list[Captured] = []
        self._script: dict[str, list[tuple[int, str]]] = {}
        self.base_url = ""

    def script(self, path: str, *answers: tuple[int, str]) -> None:
        with self._lock:
            self._script.setdefault(path, []).extend(answers)

    def captured(self, path: str | None = None) -> list[Captured]:
        with self._lock:
            return [c for c in self._captured if path is None or c.path == path]

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        captured = Captured(
            path=request.path,
            raw_body=request.get_data(as_text=True),
            signature=request.headers.get("X-Twilio-Signature"),
        )
        with self._lock:
            self._captured.append(captured)
            queue = self._script.get(request.path) or []
            status, body = queue.pop(0) if queue else (200, "<Response/>")
        return Response(body, status=status)(environ, start_response)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    app = Receiver()
    with serving(app) as base_url:
        app.base_url = base_url
        yield app


@pytest.fixture
def sim(receiver: Receiver) -> Iterator[SimulatedTwilio]:
    simulator = SimulatedTwilio(ACCOUNT_SID, AUTH_TOKEN, receiver.base_url, callback_retry_delay=0.02)
    yield simulator
    simulator.close()


@pytest.fixture
def sim_url(sim: SimulatedTwilio) -> Iterator[str]:
    with serving(mounted(TWILIO_MOUNT, sim)) as base_url:
        yield base_url + TWILIO_MOUNT


def twilio_client(sim_url: str, *, token: str = AUTH_TOKEN, timeout: float = 5.0) -> Client:
    """The official SDK pointed at the simulator: the Api domain's base_url is a plain attribute."""
    client = Client(ACCOUNT_SID, token, http_client=TwilioHttpClient(timeout=timeout))
    client.api.base_url = sim_url  # edge/region stay unset, so get_hostname leaves the URL alone
    return client


@pytest.fixture(autouse=True)
def _no_twilio_edge(monkeypatch: pytest.MonkeyPatch) -> None:
    # the SDK rewrites hostnames when TWILIO_EDGE / TWILIO_REGION are set
    monkeypatch.delenv("TWILIO_EDGE", raising=False)
    monkeypatch.delenv("TWILIO_REGION", raising=False)


@pytest.fixture
def client(sim_url: str) -> Client:
    return twilio_client(sim_url)


def messages_url(sim_url: str, account_sid: str = ACCOUNT_SID) -> str:
    return f"{sim_url}/2010-04-01/Accounts/{account_sid}/Messages.json"


# --- Twilio: send API --------------------------------------------------------------------------------


def test_sdk_creates_fetches_and_lists_messages(client: Client, sim: SimulatedTwilio) -> None:
    created = client.messages.create(to=CUSTOMER, from_=OUR_NUMBER, body="Your order is ready")
    second = client.messages.create(to=CUSTOMER, from_=OUR_NUMBER, body="x" * 161)

    assert created.sid is not None and created.sid.startswith("SM") and len(created.sid) == 34
    int(created.sid[2:], 16)  # 32 hex digits
    assert (created.status, created.to, created.from_) == ("queued", CUSTOMER, OUR_NUMBER)
    assert (created.num_segments, second.num_segments) == ("1", "2")
    assert created.direction == "outbound-api" and created.error_code is None
    assert created.account_sid == ACCOUNT_SID and created.date_created is not None

    fetched = client.messages(created.sid).fetch()
    assert (fetched.sid, fetched.body) == (created.sid, "Your order is ready")
    wait_until(lambda: client.messages(created.sid).fetch().status == "delivered", what="delivered")

    listed = client.messages.list(to=CUSTOMER)
    assert [m.sid for m in listed] == [second.sid, created.sid]  # newest first, like Twilio
    assert client.messages.list(to=OTHER_CUSTOMER) == []
    assert [m["sid"] for m in sim.messages(CUSTOMER)] == [created.sid, second.sid]


def test_bad_credentials_and_foreign_account_are_401(sim_url: str, sim: SimulatedTwilio) -> None:
    with pytest.raises(TwilioRestException) as caught:
        twilio_client(sim_url, token="wrong-token").messages.create(to=CUSTOMER, from_=OUR_NUMBER, body="hi")
    assert (caught.value.status, caught.value.code) == (401, 20003)

    other_account = "AC" + "1" * 32
    answer = requests.post(
        messages_url(sim_url, other_account),
        data={"To": CUSTOMER, "From": OUR_NUMBER, "Body": "hi"},
        auth=(ACCOUNT_SID, AUTH_TOKEN),
        timeout=5,
    )
    assert answer.status_code == 401
    assert answer.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    assert sim.messages() == []


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"From": OUR_NUMBER, "Body": "hi"}, 21604),
        ({"To": CUSTOMER, "Body": "hi"}, 21603),
        ({"To": CUSTOMER, "From": OUR_NUMBER, "Body": ""}, 21602),
    ],
)
def test_missing_fields_are_twilio_400s(sim_url: str, form: dict[str, str], code: int) -> None:
    answer = requests.post(messages_url(sim_url), data=form, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)
    assert answer.status_code == 400
    body = answer.json()
    assert (body["code"], body["status"]) == (code, 400)
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}" and body["message"]


@pytest.mark.parametrize(
    ("to", "from_", "code"),
    [
        ("+15005550001", OUR_NUMBER, 21211),
        ("+15005550002", OUR_NUMBER, 21612),
        ("+15005550003", OUR_NUMBER, 21408),
        ("+15005550004", OUR_NUMBER, 21610),
        ("+15005550009", OUR_NUMBER, 21614),
        (CUSTOMER, "+15005550001", 21212),
    ],
)
def test_magic_numbers_fail_like_twilio(
    client: Client, sim: SimulatedTwilio, to: str, from_: str, code: int
) -> None:
    with pytest.raises(TwilioRestException) as caught:
        client.messages.create(to=to, from_=from_, body="hi")
    assert (caught.value.status, caught.value.code) == (400, code)
    assert sim.messages() == []


def test_unknown_message_is_20404(client: Client) -> None:
    with pytest.raises(TwilioRestException) as caught:
        client.messages("SM" + "0" * 32).fetch()
    assert (caught.value.status, caught.value.code) == (404, 20404)


# --- Twilio: faults ----------------------------------------------------------------------------------


def test_500_fault_fails_count_times_then_succeeds(
    client: Client, sim: SimulatedTwilio, sim_url: str
) -> None:
    added = requests.post(f"{sim_url}/_faults", json={"kind": "500", "count": 2}, timeout=5)
    assert added.status_code == 201 and added.json()["id"].startswith("FA")

    for remaining in (1, 0):
        with pytest.raises(TwilioRestException) as caught:
            client.messages.create(to=CUSTOMER, from_=OUR_NUMBER, body="hi")
        assert (caught.value.status, caught.value.code) == (500, 20500)
        active = requests.get(f"{sim_url}/_faults", timeout=5).json()["faults"]
        assert [f["remaining"] for f in active] == ([remaining] if remaining else [])
    assert sim.messages() == []

    sent = client.messages.create(to=CUSTOMER, from_=OUR_NUMBER, body="hi")
    assert [m["sid"] for m in sim.messages()] == [sent.sid]


def test_429_fault_only_hits_its_recipient(client: Client, sim: SimulatedTwilio) -> None:
    sim.add_fault("429", to=OTHER_CUSTOMER)

    unaffected = client.messages.create(to=CUSTOMER, from_=OUR_NUMBER, body="hi")
    with pytest.raises(TwilioRestException) as caught:
        client.messages.create(to=OTHER_CUSTOMER, from_=OUR_NUMBER, body="hi")

    assert (caught.value.status, caught.value.code) == (429, 20429)
    assert [m["sid"] for m in sim.messages()] == [unaffected.sid]
    assert sim.faults() == []


def test_timeout_after_accept_creates_the_message_but_the_client_times_out(
    sim: SimulatedTwilio, sim_url: str
) -> None:
    requests.post(
        f"{sim_url}/_faults", json={"kind": "timeout_after_accept", "hold_seconds": 60}, timeout=5
    ).raise_for_status()
    impatient = twilio_client(sim_url, timeout=0.3)

    with pytest.raises(requests.Timeout):
        impatient.messages.create(to=CUSTOMER, from_=OUR_NUMBER, body="did it go?")

    # the ambiguous outcome: the carrier has it although the client never heard back
    wait_until(lambda: sim.held_requests > 0, what="the held response")
    assert len(sim.messages(CUSTOMER)) == 1
    assert sim.held_requests == 1
    assert requests.delete(f"{sim_url}/_faults", timeout=5).status_code == 204
    wait_until(lambda: sim.held_requests == 0, what="the held response to be released")
    wait_until(lambda: sim.messages(CUSTOMER)[0]["status"] == "delivered", what="delivery")

    # a hold shorter than the client's patience is just a slow 201 with the plain resource
    sim.add_fault("timeout_after_accept", hold_seconds=0.05)
    slow = requests.post(
        messages_url(sim_url),
        data={"To": CUSTOMER, "From": OUR_NUMBER, "Body": "slow"},
        auth=(ACCOUNT_SID, AUTH_TOKEN),
        timeout=5,
    )
    assert slow.status_code == 201 and slow.json()["body"] == "slow" and "callbacks" not in slow.json()
    assert len(sim.messages(CUSTOMER)) == 2


def test_timeout_fault_creates_nothing_and_close_releases_it(sim: SimulatedTwilio, sim_url: str) -> None:
    sim.add_fault("timeout", hold_seconds=60)
    impatient = twilio_client(sim_url, timeout=0.3)

    with pytest.raises(requests.Timeout):
        impatient.messages.create(to=CUSTOMER, from_=OUR_NUMBER, body="hello?")

    wait_until(lambda: sim.held_requests > 0, what="the held request")
    assert sim.held_requests == 1
    started = time.monotonic()
    sim.close()
    wait_until(lambda: sim.held_requests == 0, what="close() to release the hold")
    assert time.monotonic() - started < 2
    assert sim.messages() == []


# --- Twilio: status callbacks ------------------------------------------------------------------------


def test_status_callbacks_arrive_in_order_and_are_signed(
    client: Client, sim: SimulatedTwilio, receiver: Receiver
) -> None:
    callback_url = f"{receiver.base_url}/webhooks/twilio/status?tenant=a"
    sent = client.messages.create(
        to=CUSTOMER, from_=OUR_NUMBER, body="track me", status_callback=callback_url
    )

    wait_until(lambda: len(receiver.captured("/webhooks/twilio/status")) == 2, what="two callbacks")
    callbacks = receiver.captured("/webhooks/twilio/status")
    assert [c.params["MessageStatus"] for c in callbacks] == ["sent", "delivered"]
    validator = RequestValidator(AUTH_TOKEN)
    for callback in callbacks:
        params = callback.params
        assert callback.signature and validator.validate(callback_url, params, callback.signature)
        assert params["MessageSid"] == params["SmsSid"] == sent.sid
        assert params["SmsStatus"] == params["MessageStatus"]
        assert (params["To"], params["From"], params["AccountSid"]) == (CUSTOMER, OUR_NUMBER, ACCOUNT_SID)
        assert params["ApiVersion"] == "2010-04-01" and "ErrorCode" not in params
        forged = {**params, "MessageStatus": "failed"}
        assert not validator.validate(callback_url, forged, callback.signature)

    wait_until(lambda: len(sim.messages()[0]["callbacks"]) == 2, what="callbacks recorded")
    recorded = sim.messages()[0]["callbacks"]
    assert [(r["status"], r["response_code"], r["attempts"]) for r in recorded] == [
        ("sent", 200, 1),
        ("delivered", 200, 1),
    ]


def test_callbacks_are_retried_on_5xx_and_connection_failure(
    client: Client, sim: SimulatedTwilio, receiver: Receiver
) -> None:
    path = "/webhooks/twilio/status"
    receiver.script(path, (500, "boom"), (503, "busy"))
    flaky = client.messages.create(
        to=CUSTOMER, from_=OUR_NUMBER, body="a", status_callback=receiver.base_url + path
    )
    unreachable = client.messages.create(
        to=OTHER_CUSTOMER, from_=OUR_NUMBER, body="b", status_callback=closed_port_url()
    )

    def recorded(sid: str) -> list[dict[str, Any]]:
        found = sim.message(sid)
        return [] if found is None else list(found["callbacks"])

    wait_until(lambda: len(recorded(flaky.sid or "")) == 2, what="flaky callbacks")
    assert [(r["status"], r["response_code"], r["attempts"]) for r in recorded(flaky.sid or "")] == [
        ("sent", 200, 3),
        ("delivered", 200, 1),
    ]
    assert [c.params["MessageStatus"] for c in receiver.captured(path)] == ["sent"] * 3 + ["delivered"]

    wait_until(lambda: len(recorded(unreachable.sid or "")) == 2, what="unreachable callbacks")
    for record in recorded(unreachable.sid or ""):
        assert (record["response_code"], record["attempts"]) == (None, 4)
        assert record["error"]


def test_undelivered_fault_reports_error_code(
    client: Client, sim: SimulatedTwilio, receiver: Receiver
) -> None:
    sim.add_fault("undelivered")
    path = "/webhooks/twilio/status"
    sent = client.messages.create(
        to=CUSTOMER, from_=OUR_NUMBER, body="hi", status_callback=receiver.base_url + path
    )

    wait_until(lambda: len(receiver.captured(path)) == 2, what="two callbacks")
    params = [c.params for c in receiver.captured(path)]
    assert [p["MessageStatus"] for p in params] == ["sent", "undelivered"]
    assert params[1]["ErrorCode"] == "30003" and "ErrorCode" not in params[0]
    fetched = client.messages(sent.sid).fetch()
    assert (fetched.status, fetched.error_code) == ("undelivered", 30003)


# --- Twilio: inbound ---------------------------------------------------------------------------------


def test_inbound_is_signed_with_blank_fields_and_repeated(
    sim: SimulatedTwilio, sim_url: str, receiver: Receiver
) -> None:
    body = "Hi! Is order #1234 ready? \U0001f600 a&b=c + 100%"
    answer = requests.post(
        f"{sim_url}/_inbound",
        json={
            "from": CUSTOMER,
            "to": OUR_NUMBER,
            "body": body,
            "media_urls": ["https://media.example.com/cat.png"],
            "repeat": 3,
        },
        timeout=5,
    )
    assert answer.status_code == 200
    result = answer.json()
    assert result["responses"] == [200, 200, 200]

    posts = receiver.captured("/webhooks/twilio/messages")
    assert len(posts) == 3
    url = f"{receiver.base_url}/webhooks/twilio/messages"
    assert url == sim.inbound_url
    validator = RequestValidator(AUTH_TOKEN)
    for post in posts:
        params = post.params
        assert params["MessageSid"] == params["SmsSid"] == params["SmsMessageSid"] == result["message_sid"]
        assert (params["From"], params["To"], params["Body"]) == (CUSTOMER, OUR_NUMBER, body)
        assert (params["NumMedia"], params["MediaUrl0"]) == ("1", "https://media.example.com/cat.png")
        assert params["MediaContentType0"] == "image/png"
        assert (params["SmsStatus"], params["AccountSid"]) == ("received", ACCOUNT_SID)
        assert params["ToCity"] == params["ToZip"] == params["FromCity"] == ""
        assert "MessagingServiceSid" not in params
        assert post.signature and validator.validate(url, params, post.signature)
        # dropping the blank fields (parse_qs's default) breaks the signature: blanks are signed
        lossy = {k: v[0] for k, v in parse_qs(post.raw_body).items()}
        assert "ToCity" not in lossy and not validator.validate(url, lossy, post.signature)


def test_a_lost_inbound_posts_nothing_but_twilio_lists_it_with_its_media(
    sim: SimulatedTwilio, sim_url: str, receiver: Receiver, client: Client
) -> None:
    """The account keeps a text whose webhook never reached us; the SDK and our adapter both find it."""
    since = datetime.now(UTC) - timedelta(minutes=5)
    answer = requests.post(
        f"{sim_url}/_inbound",
        json={
            "from": CUSTOMER,
            "to": OUR_NUMBER,
            "body": "Did you get my photo?",
            "media_urls": ["https://media.example.com/cat.png"],
            "lost": True,
        },
        timeout=5,
    )
    assert answer.status_code == 200 and answer.json()["responses"] == []
    sid = answer.json()["message_sid"]
    assert receiver.captured() == []

    (listed,) = client.messages.list(to=OUR_NUMBER)
    assert (listed.sid, listed.direction, listed.status, listed.from_) == (
        sid,
        "inbound",
        "received",
        CUSTOMER,
    )
    (media,) = client.messages(sid).media.list()
    assert media.content_type == "image/png"

    (found,) = TwilioCarrier(ACCOUNT_SID, AUTH_TOKEN, api_base=sim_url).list_received(OUR_NUMBER, since)
    assert (found.carrier_message_id, found.from_number, found.to_number) == (sid, CUSTOMER, OUR_NUMBER)
    assert (found.body, found.segments) == ("Did you get my photo?", 1)
    assert since <= found.received_at <= datetime.now(UTC)
    (picture,) = found.media
    assert picture.content_type == "image/png"
    redirect = requests.get(picture.url, auth=(ACCOUNT_SID, AUTH_TOKEN), allow_redirects=False, timeout=5)
    assert (redirect.status_code, redirect.headers["Location"]) == (307, "https://media.example.com/cat.png")


def test_listing_received_texts_pages_through_and_keeps_out_our_own_and_other_numbers(
    sim: SimulatedTwilio, sim_url: str, client: Client
) -> None:
    since = datetime.now(UTC) - timedelta(minutes=5)
    for i in range(120):  # more than one page of 100
        sim.send_inbound(f"+1415555{2000 + i:04d}", OUR_NUMBER, f"text {i}", lost=True)
    sim.send_inbound(CUSTOMER, "+15005550007", "to another of our numbers", lost=True)
    client.messages.create(to=CUSTOMER, from_=OUR_NUMBER, body="ours, outbound")

    found = TwilioCarrier(ACCOUNT_SID, AUTH_TOKEN, api_base=sim_url).list_received(OUR_NUMBER, since)
    assert sorted(f.body for f in found) == sorted(f"text {i}" for i in range(120))
    assert [f.body for f in found[:2]] == ["text 119", "text 118"]  # newest first, as Twilio lists
    later = TwilioCarrier(ACCOUNT_SID, AUTH_TOKEN, api_base=sim_url).list_received(
        OUR_NUMBER, datetime.now(UTC) + timedelta(seconds=1)
    )
    assert later == []


def test_listing_received_texts_raises_when_twilio_refuses(sim_url: str) -> None:
    with pytest.raises(TwilioLookupError, match="401"):
        TwilioCarrier(ACCOUNT_SID, "wrong-token", api_base=sim_url).list_received(
            OUR_NUMBER, datetime.now(UTC) - timedelta(hours=1)
        )


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "JSON"),
        (b'{"from": "+14155550100", "body": "hi"}', "required"),
        (b'{"from": "+14155550100", "to": "+15005550006", "repeat": 0}', "repeat"),
    ],
)
def test_inbound_rejects_bad_requests(sim_url: str, receiver: Receiver, payload: bytes, reason: str) -> None:
    answer = requests.post(
        f"{sim_url}/_inbound", data=payload, headers={"Content-Type": "application/json"}, timeout=5
    )
    assert answer.status_code == 400
    assert reason in answer.json()["reason"]
    assert receiver.captured() == []


def test_sim_messages_endpoint_lists_and_resets(client: Client, sim: SimulatedTwilio, sim_url: str) -> None:
    sent = client.messages.create(to=CUSTOMER, from_=OUR_NUMBER, body="hi")
    sim.add_fault("500")

    listed = requests.get(f"{sim_url}/_messages", timeout=5).json()["messages"]
    assert [m["sid"] for m in listed] == [sent.sid] and "callbacks" in listed[0]
    assert requests.delete(f"{sim_url}/_messages", timeout=5).status_code == 204
    assert sim.messages() == [] and sim.faults() == []


# --- CRM webhook ---------------------------------------------------------------------------------


@pytest.fixture
def crm_sim() -> SimulatedCrm:
    return SimulatedCrm(CRM_SECRET)


@pytest.fixture
def crm_url(crm_sim: SimulatedCrm) -> Iterator[str]:
    with serving(mounted(CRM_MOUNT, crm_sim)) as base_url:
        yield base_url + CRM_MOUNT


def test_crm_upsert_creates_keeps_and_versions(crm_sim: SimulatedCrm, crm_url: str) -> None:
    crm = WebhookCrm(crm_url, CRM_SECRET, timeout=5)
    external_id = "conv/+14155550100#2025-01-31"
    day = {"customer": CUSTOMER, "messages": [{"direction": "inbound", "body": "hi"}]}

    first = crm.upsert(external_id, day)
    again = crm.upsert(external_id, dict(reversed(list(day.items()))))  # same record, other key order
    changed = crm.upsert(external_id, {**day, "messages": [*day["messages"], {"body": "late"}]})

    assert (first.created, first.version) == (True, 1)
    assert (again.crm_id, again.created, again.version) == (first.crm_id, False, 1)
    assert (changed.crm_id, changed.created, changed.version) == (first.crm_id, False, 2)
    fetched = requests.get(f"{crm_url}/records/{quote(external_id, safe='')}", timeout=5).json()
    assert (fetched["external_id"], fetched["version"]) == (external_id, 2)
    assert fetched["payload"]["messages"][-1] == {"body": "late"}
    assert [r["id"] for r in requests.get(f"{crm_url}/records", timeout=5).json()["records"]] == [
        first.crm_id
    ]
    assert requests.get(f"{crm_url}/records/nope", timeout=5).status_code == 404


def test_crm_raw_protocol_status_codes(crm_url: str) -> None:
    body = b'{"a":1}'
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Parley-Timestamp": timestamp,
        "X-Parley-Signature": sign(CRM_SECRET, timestamp, body),
    }
    url = f"{crm_url}/records/ext-1"
    created = requests.put(url, data=body, headers=headers, timeout=5)
    unchanged = requests.put(url, data=body, headers=headers, timeout=5)
    assert created.status_code == 201 and created.json()["created"] is True
    assert unchanged.status_code == 200 and unchanged.json()["version"] == 1

    stale_ts = str(int(time.time()) - 1000)
    stale = requests.put(
        url,
        data=body,
        headers={
            **headers,
            "X-Parley-Timestamp": stale_ts,
            "X-Parley-Signature": sign(CRM_SECRET, stale_ts, body),
        },
        timeout=5,
    )
    altered = requests.put(url, data=b'{"a":2}', headers=headers, timeout=5)
    assert stale.status_code == 401 and "stale" in stale.json()["reason"]
    assert altered.status_code == 401 and "signature" in altered.json()["reason"]


def test_crm_bad_secret_is_permanent(crm_sim: SimulatedCrm, crm_url: str) -> None:
    with pytest.raises(CrmError) as caught:
        WebhookCrm(crm_url, "not-the-secret", timeout=5).upsert("ext-1", {"a": 1})
    assert caught.value.transient is False and caught.value.status_code == 401
    assert "signature" in caught.value.reason
    assert crm_sim.records() == []


def test_crm_500_fault_is_transient(crm_sim: SimulatedCrm, crm_url: str) -> None:
    crm = WebhookCrm(crm_url, CRM_SECRET, timeout=5)
    requests.post(f"{crm_url}/_faults", json={"kind": "500", "count": 1}, timeout=5).raise_for_status()

    with pytest.raises(CrmError) as caught:
        crm.upsert("ext-1", {"a": 1})
    assert caught.value.transient is True and caught.value.status_code == 500
    assert crm_sim.records() == []
    assert crm.upsert("ext-1", {"a": 1}).created is True


def test_crm_unreachable_is_transient_and_2xx_without_id_is_not() -> None:
    with pytest.raises(CrmError) as unreachable:
        WebhookCrm(closed_port_url(), CRM_SECRET, timeout=2).upsert("ext-1", {"a": 1})
    assert unreachable.value.transient is True

    def no_id(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return Response('{"created": true}', status=201, mimetype="application/json")(environ, start_response)

    with serving(no_id) as base_url, pytest.raises(CrmError) as broken:
        WebhookCrm(base_url, CRM_SECRET, timeout=5).upsert("ext-1", {"a": 1})
    assert broken.value.transient is False and "record id" in broken.value.reason


def test_verify_rejects_stale_and_altered() -> None:
    now = 1_700_000_000.0
    timestamp = str(int(now))
    body = b'{"day":"2025-01-31"}'
    signature = sign(CRM_SECRET, timestamp, body)

    assert signature.startswith("v1=")
    assert verify(CRM_SECRET, timestamp, body, signature, now=now + 299)
    assert not verify(CRM_SECRET, timestamp, body, signature, now=now + 301)
    assert not verify(CRM_SECRET, timestamp, body, signature, now=now - 301)
    assert not verify(CRM_SECRET, timestamp, body + b" ", signature, now=now)
    assert not verify("other-secret", timestamp, body, signature, now=now)
    assert not verify(CRM_SECRET, "not-a-number", body, signature, now=now)
    assert verify(CRM_SECRET, timestamp, body, f"v1=deadbeef, {signature}", now=now)  # rotation


def test_registry_builds_the_webhook_crm(crm_url: str) -> None:
    settings = Settings(crm_webhook_url=crm_url, crm_signing_secret=CRM_SECRET)
    crm = build_crm("webhook", settings)
    assert isinstance(crm, WebhookCrm)
    assert crm.upsert("ext-registry", {"a": 1}).version == 1
    with pytest.raises(UnknownCrm):
        build_crm("salesforce-by-carrier-pigeon", settings)
