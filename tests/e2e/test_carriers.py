"""Every carrier end to end over HTTP: its simulator as the phone network, the inbox API as the client.

Each carrier has its own block of customer numbers (+1415555 03xx/04xx, 20 per carrier), and each
test its own numbers within that block, so tests neither reset the shared stack nor see each other's
texts. Faults a test injects are cleared (DELETE /_faults on that simulator) in a `finally`.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from local import sim_bandwidth, sim_plivo, sim_telnyx, sim_vonage, sim_vonage_messages
from local.carrier_sims import VONAGE_API_KEY
from local.sim_aws_sms import DEFAULT_TOPIC_ARN, sns_string_to_sign
from local.sim_twilio import twilio_signature
from parley.carriers.registry import webhook_paths
from tests.e2e.conftest import AUTH_TOKEN, CARRIER_TIMEOUT_SECONDS, ROOT, Stack, wait_until

pytestmark = pytest.mark.e2e

# Our number at each carrier, as local/seed.py seeds them.
OUR_NUMBERS: dict[str, str] = {
    "twilio": "+15005550006",
    "telnyx": "+14155550143",
    "vonage": "+14155550144",
    "vonage-messages": "+14155550145",
    "bandwidth": "+14155550146",
    "plivo": "+14155550147",
    "aws": "+14155550148",
}
CARRIERS = list(OUR_NUMBERS)

# Slots within a carrier's block of customer numbers.
INBOUND, REPLY, UNDELIVERED, TRANSIENT, RACE, PARTS = range(6)
SAMPLE_SLOTS = range(6, 10)  # one customer per genuine sample
FORGED_SLOTS = range(10, 20)  # two per forged sample: signed for one, altered into the next
SLOTS_PER_CARRIER = 20

# Two carrier 5xx answers, then success. Where the carrier can be searched (`find_sent`) or the send
# is idempotent, the message is delivered once; the first attempts' outcome says which path it took.
RECOVERS_FROM_5XX: dict[str, str] = {
    "twilio": "ambiguous",  # no idempotency key; reconciled through the message list
    "plivo": "ambiguous",  # no idempotency key; reconciled through the message list
    "telnyx": "transient",  # Idempotency-Key: a resend can't text twice
    "bandwidth": "transient",  # Bandwidth's own 5xx error body means "not sent"
}
# No idempotency key and no message search: an ambiguous send is left for a person.
CANNOT_BE_SEARCHED = ("vonage", "vonage-messages", "aws")

SAMPLE_CUSTOMER = "14155550100"  # the customer in every sample payload (digits)
SAMPLE_OUR_NUMBER = "15005550006"  # our number in every sample payload (digits)
SAMPLE_ID_KEYS = frozenset(
    {"MessageSid", "SmsSid", "SmsMessageSid", "MessageUUID", "messageId", "message_uuid", "id"}
    | {"inboundMessageId", "ParentMessageUUID"}
)


def customer(carrier: str, slot: int) -> str:
    assert 0 <= slot < SLOTS_PER_CARRIER
    return f"+1415555{300 + SLOTS_PER_CARRIER * CARRIERS.index(carrier) + slot:04d}"


def _digits(number: str) -> str:
    return re.sub(r"\D", "", number)


# -- the stack over HTTP -------------------------------------------------------------------------


def _conversation(stack: Stack, number: str) -> dict[str, Any] | None:
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        response = stack.api("GET", "/v1/conversations", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        found = next((c for c in page["conversations"] if c["customer_number"] == number), None)
        if found is not None or not page.get("cursor"):
            return found
        cursor = page["cursor"]


def _inbound_drained(stack: Stack) -> bool:
    depth: dict[str, int] = requests.get(stack.url("/_local/queues"), timeout=10).json()["InboundQueue"]
    return depth["visible"] == 0 and depth["in_flight"] == 0 and depth["delayed"] == 0


def _send(stack: Stack, to: str, body: str, *, from_number: str | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {"to": [to], "body": body}
    if from_number is not None:
        request["from"] = from_number
    response = stack.api("POST", "/v1/messages", json=request)
    assert response.status_code == 202, response.text
    (message,) = response.json()["messages"]
    result: dict[str, Any] = message
    return result


def _phone_texts(stack: Stack, carrier: str, from_: str, to: str, body: str, repeat: int = 1) -> None:
    """A customer texts us through the carrier's simulator; `repeat` > 1 is the carrier retrying."""
    response = requests.post(
        stack.url(f"/_sim/{carrier}/_inbound"),
        json={"from": from_, "to": to, "body": body, "repeat": repeat},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    codes = response.json()["responses"]
    assert len(codes) == repeat and all(c is not None and 200 <= c < 300 for c in codes), codes


# -- the simulators' records -------------------------------------------------------------------------


def _recipient(carrier: str, text: dict[str, Any]) -> str:
    if carrier == "telnyx":
        return str(text["to"][0]["phone_number"])
    if carrier == "bandwidth":
        return str(text["to"][0])
    if carrier == "plivo":
        return str(text["to_number"])
    if carrier == "aws":
        return str(text["DestinationPhoneNumber"])
    return str(text["to"])  # twilio (E.164), vonage and vonage-messages (digits)


def _text_body(carrier: str, text: dict[str, Any]) -> str:
    key = {"twilio": "body", "aws": "MessageBody"}.get(carrier, "text")
    return str(text[key])


def _receipts(text: dict[str, Any]) -> list[dict[str, Any]]:
    """How our webhook answered each receipt the simulator posted for this text."""
    for key in ("callbacks", "receipts", "events"):
        if isinstance(text.get(key), list):
            records: list[dict[str, Any]] = text[key]
            return records
    raise AssertionError(f"no receipt records in {sorted(text)}")


def sim_texts(stack: Stack, carrier: str, to: str) -> list[dict[str, Any]]:
    """Texts the carrier's simulator accepted for `to`, oldest first."""
    response = requests.get(stack.url(f"/_sim/{carrier}/_messages"), timeout=10)
    assert response.status_code == 200, response.text
    return [t for t in response.json()["messages"] if _digits(_recipient(carrier, t)) == _digits(to)]


@dataclass
class Faults:
    stack: Stack
    carrier: str

    def add(self, kind: str, to: str, count: int = 1, **extra: Any) -> dict[str, Any]:
        payload = {"kind": kind, "count": count, "to": to, **extra}
        response = requests.post(self.stack.url(f"/_sim/{self.carrier}/_faults"), json=payload, timeout=10)
        assert response.status_code == 201, response.text
        fault: dict[str, Any] = response.json()
        return fault

    def active(self) -> list[dict[str, Any]]:
        response = requests.get(self.stack.url(f"/_sim/{self.carrier}/_faults"), timeout=10)
        assert response.status_code == 200, response.text
        faults: list[dict[str, Any]] = response.json()["faults"]
        return faults

    def clear(self) -> None:
        response = requests.delete(self.stack.url(f"/_sim/{self.carrier}/_faults"), timeout=10)
        assert response.status_code in (200, 204), response.text


@pytest.fixture
def faults(stack: Stack, request: pytest.FixtureRequest) -> Iterator[Faults]:
    """The simulator's fault control for this test's carrier; every fault is cleared afterwards."""
    control = Faults(stack, request.node.callspec.params["carrier"])
    try:
        yield control
    finally:
        control.clear()


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _plain_words(reason: str) -> bool:
    """Words a person reads, not a code or a machine slug like 'destination-subscriber-unavailable'."""
    return re.search(r"[A-Za-z]{2,} [A-Za-z]{2,}", reason) is not None


# -- 1. a text from a phone, delivered three times by the carrier -------------------------------------


@pytest.mark.parametrize("carrier", CARRIERS)
def test_a_text_the_carrier_delivers_three_times_is_one_unread_message(stack: Stack, carrier: str) -> None:
    phone, ours = customer(carrier, INBOUND), OUR_NUMBERS[carrier]

    _phone_texts(stack, carrier, phone, ours, f"Hello over {carrier}", repeat=3)

    wait_until(lambda: _conversation(stack, phone))
    wait_until(lambda: _inbound_drained(stack))  # all three deliveries processed
    conversation = _conversation(stack, phone)
    assert conversation is not None
    assert conversation["unread_count"] == 1 and conversation["message_count"] == 1
    assert conversation["our_numbers"] == [ours]
    (message,) = stack.thread(phone)
    assert message["direction"] == "inbound" and message["carrier"] == carrier
    assert message["body"] == f"Hello over {carrier}" and message["our_number"] == ours


# -- 2. a reply goes out through the carrier the customer texted ----------------------------------


@pytest.mark.parametrize("carrier", CARRIERS)
def test_a_reply_goes_out_through_that_carrier_and_is_delivered(stack: Stack, carrier: str) -> None:
    phone, ours = customer(carrier, REPLY), OUR_NUMBERS[carrier]
    _phone_texts(stack, carrier, phone, ours, "Can I change my booking?")
    wait_until(lambda: _conversation(stack, phone))

    reply = _send(stack, phone, f"Of course - replying over {carrier}.")

    assert reply["carrier"] == carrier and reply["our_number"] == ours  # sticky sender
    delivered = stack.wait_status(reply["message_id"], "delivered")
    receipts = [h["source"] for h in delivered["history"] if h["source"] != "parley"]
    assert receipts and all(s.startswith(f"{carrier}:") for s in receipts), delivered["history"]
    assert [a["outcome"] for a in delivered["attempts"]] == ["accepted"]
    (text,) = sim_texts(stack, carrier, phone)
    assert _text_body(carrier, text) == f"Of course - replying over {carrier}."
    answered = wait_until(lambda: _all_receipts_answered(stack, carrier, phone))
    assert all(200 <= r["response_code"] < 300 for r in answered), answered  # signed receipts accepted


def _all_receipts_answered(stack: Stack, carrier: str, phone: str) -> list[dict[str, Any]] | None:
    """The simulator's record of our answers to the text's receipts, once it has both (sent, final)."""
    (text,) = sim_texts(stack, carrier, phone)
    receipts = _receipts(text)
    return receipts if len(receipts) >= 2 else None


# -- 3. a delivery receipt reporting failure ---------------------------------------------------------

# A failure each carrier's receipts report that retrying won't cure (a landline, a dead number); the
# simulators' default codes are passing failures, which are retried.
PERMANENT_RECEIPT_CODES: dict[str, str] = {
    "twilio": "30006",
    "telnyx": "40001",
    "vonage": "3",
    "vonage-messages": "1190",
    "bandwidth": "4720",
    "plivo": "50",
}


@pytest.mark.parametrize("carrier", CARRIERS)
def test_a_failed_delivery_receipt_ends_the_message_with_a_reason(
    stack: Stack, carrier: str, faults: Faults
) -> None:
    phone, ours = customer(carrier, UNDELIVERED), OUR_NUMBERS[carrier]
    code = PERMANENT_RECEIPT_CODES.get(carrier)
    faults.add("undelivered", phone, **({"error_code": code} if code else {}))

    sent = _send(stack, phone, "Your parcel is at the depot", from_number=ours)

    final = stack.wait_status(sent["message_id"], "undelivered", "failed")
    assert final["carrier"] == carrier
    assert final["error_code"], final
    assert final["error_reason"] and final["error_reason"].strip(), final
    assert [a["outcome"] for a in final["attempts"]] == ["accepted"]  # a receipt failure is not resent
    assert len(sim_texts(stack, carrier, phone)) == 1
    assert _plain_words(final["error_reason"]), f"error_reason is not plain words: {final['error_reason']!r}"


# -- 4. transient carrier faults -----------------------------------------------------------------


@pytest.mark.parametrize("carrier", CARRIERS)
def test_two_carrier_5xx_answers_never_lose_or_double_a_text(
    stack: Stack, carrier: str, faults: Faults
) -> None:
    phone, ours = customer(carrier, TRANSIENT), OUR_NUMBERS[carrier]
    fault = faults.add("500", phone, count=2)

    sent = _send(stack, phone, "Your appointment is confirmed", from_number=ours)

    if carrier in RECOVERS_FROM_5XX:
        delivered = stack.wait_status(sent["message_id"], "delivered", timeout=40)
        first = RECOVERS_FROM_5XX[carrier]
        assert [a["outcome"] for a in delivered["attempts"]] == [first, first, "accepted"]
        (text,) = sim_texts(stack, carrier, phone)
        assert _text_body(carrier, text) == "Your appointment is confirmed"
        assert delivered["carrier_message_id"] and fault["id"] not in [f["id"] for f in faults.active()]
    else:
        assert carrier in CANNOT_BE_SEARCHED
        failed = stack.wait_status(sent["message_id"], "failed", timeout=40)
        assert [a["outcome"] for a in failed["attempts"]] == ["ambiguous"]
        assert "check with the customer" in failed["error_reason"], failed["error_reason"]
        assert len(sim_texts(stack, carrier, phone)) <= 1
        # Never sent again: the second 500 is still waiting for a send that didn't come.
        (left,) = [f for f in faults.active() if f["id"] == fault["id"]]
        assert left["remaining"] == 1


# -- 5. Twilio: the delivery receipts arrive before we know the message's id ---------------------------


@pytest.mark.parametrize("carrier", ["twilio"])
def test_receipts_that_beat_the_send_answer_are_parked_and_applied_after_reconciling(
    stack: Stack, carrier: str, faults: Faults
) -> None:
    phone, ours = customer(carrier, RACE), OUR_NUMBERS[carrier]
    # Twilio creates the message (and posts its receipts) but holds the answer past our read timeout.
    faults.add("timeout_after_accept", phone, hold_seconds=CARRIER_TIMEOUT_SECONDS + 6)

    sent = _send(stack, phone, "See you at 10", from_number=ours)

    delivered = stack.wait_status(sent["message_id"], "delivered", timeout=30)
    outcomes = [a["outcome"] for a in delivered["attempts"]]
    # With the default 10 s timeout the held answer would arrive first: ["accepted"].
    assert outcomes == ["ambiguous", "reconciled"], (outcomes, "PARLEY_CARRIER_TIMEOUT_SECONDS unset?")
    (text,) = sim_texts(stack, carrier, phone)
    assert delivered["carrier_message_id"] == text["sid"]
    reconciled_at = _when(delivered["attempts"][-1]["at"])
    receipts = [h for h in delivered["history"] if h["source"].startswith("twilio:")]
    assert {h["status"] for h in receipts} == {"sent", "delivered"}
    assert all(_when(h["at"]) < reconciled_at for h in receipts)  # they came while the id was unknown
    assert all(200 <= r["response_code"] < 300 for r in _receipts(text))  # parked, not refused


# -- 6. the carriers' sample payloads, signed as the carrier signs them ----------------------------------


@dataclass(frozen=True)
class Sample:
    carrier: str
    name: str  # e.g. "inbound_sms", "status_failed"
    content_type: str
    text: str  # the raw body, as the carrier sends it

    @property
    def inbound(self) -> bool:
        return self.name.startswith("inbound")

    @property
    def path(self) -> str:
        kinds = [p.rsplit("/", 1)[1] for p in webhook_paths(self.carrier)]
        wanted = "messages" if self.inbound else "status"
        kind = wanted if wanted in kinds else "events"
        assert kind in kinds, (self.carrier, kinds)
        return f"/webhooks/{self.carrier}/{kind}"


def _load_samples() -> list[Sample]:
    samples: list[Sample] = []
    for directory in sorted((ROOT / "events" / "carriers").iterdir()):
        for file in sorted(directory.glob("*.json")):
            if file.stem == "send_error":
                continue
            data = json.loads(file.read_text())
            body = data["body"]
            text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
            samples.append(Sample(directory.name, file.stem, data["content_type"], text))
    # Twilio's samples are the API Gateway events the webhook function is tested with.
    twilio = (("webhook_twilio_inbound", "inbound_sms"), ("webhook_twilio_status", "status_delivered"))
    for stem, name in twilio:
        event = json.loads((ROOT / "events" / f"{stem}.json").read_text())
        raw = base64.b64decode(event["body"]) if event.get("isBase64Encoded") else event["body"].encode()
        samples.append(Sample("twilio", name, event["headers"]["content-type"], raw.decode()))
    return sorted(samples, key=lambda s: (CARRIERS.index(s.carrier), s.name))


SAMPLES = _load_samples()
GENUINE = [s for s in SAMPLES if s.name != "inbound_sms_part"]  # a lone part has its own test below


def _index(sample: Sample, among: list[Sample]) -> int:
    return [s for s in among if s.carrier == sample.carrier].index(sample)


def _sample_ids(sample: Sample) -> set[str]:
    """The carrier's ids in the sample, to be replaced by fresh ones."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key in SAMPLE_ID_KEYS and isinstance(item, str) and len(item) >= 8:
                    found.add(item)
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str) and value.startswith("{"):
            walk(json.loads(value))  # SNS carries the carrier's event as a JSON string

    if sample.content_type.startswith("application/x-www-form-urlencoded"):
        walk(dict(parse_qsl(sample.text, keep_blank_values=True)))
    else:
        walk(json.loads(sample.text))
    return found


def _personalise(sample: Sample, phone: str) -> str:
    """The sample's body for this customer and our number at the carrier, with fresh carrier ids."""
    text = sample.text.replace(SAMPLE_CUSTOMER, _digits(phone))
    text = text.replace(SAMPLE_OUR_NUMBER, _digits(OUR_NUMBERS[sample.carrier]))
    for old in _sample_ids(sample):
        text = text.replace(old, old[:-8] + secrets.token_hex(4))
    return text


def _sign(stack: Stack, sample: Sample, text: str) -> tuple[bytes, dict[str, str]]:
    """The body and headers the carrier would send, signed with the local stack's credentials."""
    url = stack.url(sample.path)
    headers = {"Content-Type": sample.content_type}
    carrier = sample.carrier
    if carrier == "twilio":
        form = dict(parse_qsl(text, keep_blank_values=True))
        headers["X-Twilio-Signature"] = twilio_signature(AUTH_TOKEN, url, form)
    elif carrier == "telnyx":
        key = Ed25519PrivateKey.from_private_bytes(sim_telnyx.DEFAULT_SIGNING_SEED)
        stamp = str(int(time.time()))
        headers["telnyx-timestamp"] = stamp
        headers["telnyx-signature-ed25519"] = sim_telnyx.telnyx_signature(key, stamp, text.encode())
    elif carrier == "plivo":
        nonce = str(secrets.randbelow(10**20)).zfill(20)
        form = dict(parse_qsl(text, keep_blank_values=True))
        signature = sim_plivo.plivo_v3_signature(sim_plivo.LOCAL_AUTH_TOKEN, "POST", url, form, nonce)
        headers.update({"X-Plivo-Signature-V3": signature, "X-Plivo-Signature-V3-Nonce": nonce})
    elif carrier == "vonage":  # the signature travels in the parameters, with a fresh timestamp
        is_form = sample.content_type.startswith("application/x-www-form-urlencoded")
        fields = dict(parse_qsl(text, keep_blank_values=True)) if is_form else json.loads(text)
        fields.pop("sig", None)
        fields.update({"api-key": VONAGE_API_KEY, "timestamp": str(int(time.time()))})
        fields["sig"] = sim_vonage.vonage_signature(
            fields, sim_vonage.DEFAULT_SIGNATURE_SECRET, sim_vonage.DEFAULT_SIGNATURE_METHOD
        )
        text = urlencode(fields) if is_form else json.dumps(fields, ensure_ascii=False)
    elif carrier == "vonage-messages":
        token = sim_vonage_messages.webhook_token(
            text.encode(), sim_vonage_messages.DEFAULT_SIGNATURE_SECRET, api_key=VONAGE_API_KEY
        )
        headers["Authorization"] = f"Bearer {token}"
    elif carrier == "bandwidth":  # HTTP Basic is Bandwidth's only proof of origin
        headers["Authorization"] = _basic(
            sim_bandwidth.DEFAULT_CALLBACK_USERNAME, sim_bandwidth.DEFAULT_CALLBACK_PASSWORD
        )
    elif carrier == "aws":  # signed by the simulator's own key, which the stack trusts locally
        message = json.loads(text)
        message["Timestamp"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        signed = requests.post(stack.url("/_sim/aws/_sign"), json=message, timeout=15)
        assert signed.status_code == 200, signed.text
        text = json.dumps(signed.json())
        headers = {"Content-Type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": message["Type"]}
    else:
        raise AssertionError(f"can't sign for {carrier}")
    return text.encode(), headers


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _sns_signed_by_an_impostor(stack: Stack, text: str) -> tuple[bytes, dict[str, str]]:
    """A well-formed, fresh SNS message for our topic naming the simulator's certificate, signed with a
    key that isn't the simulator's."""
    message = json.loads(text)
    now = datetime.now(UTC)
    message.update(
        TopicArn=DEFAULT_TOPIC_ARN,
        Timestamp=now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
        SignatureVersion="2",
        SigningCertURL=stack.url("/_sim/aws/cert.pem"),
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signature = key.sign(sns_string_to_sign(message), padding.PKCS1v15(), hashes.SHA256())
    message["Signature"] = base64.b64encode(signature).decode()
    headers = {"Content-Type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": "Notification"}
    return json.dumps(message).encode(), headers


def _post(stack: Stack, sample: Sample, body: bytes, headers: dict[str, str]) -> requests.Response:
    return requests.post(stack.url(sample.path), data=body, headers=headers, timeout=15)


def _genuine_param(sample: Sample) -> Any:
    return pytest.param(sample, id=f"{sample.carrier}-{sample.name}")


@pytest.mark.parametrize("sample", [_genuine_param(s) for s in GENUINE])
def test_a_signed_sample_payload_is_accepted_and_stored_at_most_once(stack: Stack, sample: Sample) -> None:
    phone = customer(sample.carrier, SAMPLE_SLOTS[_index(sample, GENUINE)])
    body, headers = _sign(stack, sample, _personalise(sample, phone))

    answers = [_post(stack, sample, body, headers) for _ in range(2)]  # the carrier retrying

    assert all(200 <= a.status_code < 300 for a in answers), [(a.status_code, a.text) for a in answers]
    if sample.inbound:
        wait_until(lambda: _conversation(stack, phone))
    wait_until(lambda: _inbound_drained(stack))
    thread = stack.thread(phone)
    if not sample.inbound:  # a receipt for an id we never sent: parked, nothing stored
        assert thread == [] and _conversation(stack, phone) is None
        return
    (message,) = thread
    assert message["direction"] == "inbound" and message["carrier"] == sample.carrier
    assert message["our_number"] == OUR_NUMBERS[sample.carrier]
    assert message["body"] or message["media"]
    if sample.name == "inbound_mms":
        assert message["media"], message
    conversation = _conversation(stack, phone)
    assert conversation is not None
    assert conversation["message_count"] == 1 and conversation["unread_count"] == 1


@pytest.mark.parametrize("sample", [pytest.param(s, id=f"{s.carrier}-{s.name}") for s in SAMPLES])
def test_a_sample_payload_altered_after_signing_is_refused_and_stores_nothing(
    stack: Stack, sample: Sample
) -> None:
    slot = FORGED_SLOTS[2 * _index(sample, SAMPLES)]
    signed_for, altered_to = customer(sample.carrier, slot), customer(sample.carrier, slot + 1)
    assert _digits(signed_for)[:-1] == _digits(altered_to)[:-1]  # one byte apart
    text = _personalise(sample, signed_for)
    if sample.carrier == "aws":
        body, headers = _sns_signed_by_an_impostor(stack, text)
    else:
        body, headers = _sign(stack, sample, text)
    if sample.carrier == "bandwidth":
        # Basic auth does not cover the body, so an altered body can't be caught: send an impostor's.
        headers["Authorization"] = _basic(sim_bandwidth.DEFAULT_CALLBACK_USERNAME, "not-the-password")
    else:
        assert body.count(_digits(signed_for).encode()) >= 1
        body = body.replace(_digits(signed_for).encode(), _digits(altered_to).encode(), 1)

    answer = _post(stack, sample, body, headers)

    assert answer.status_code in (401, 403), (answer.status_code, answer.text)
    wait_until(lambda: _inbound_drained(stack))
    for number in (signed_for, altered_to):
        assert stack.thread(number) == [] and _conversation(stack, number) is None


# -- Vonage: a long inbound text arrives in parts ---------------------------------------------------


@pytest.mark.parametrize("carrier", ["vonage"])
def test_a_long_text_in_parts_is_stored_once_when_the_last_part_arrives(stack: Stack, carrier: str) -> None:
    (part_one,) = [s for s in SAMPLES if s.carrier == carrier and s.name == "inbound_sms_part"]
    phone = customer(carrier, PARTS)
    first = _personalise(part_one, phone)
    fields = dict(parse_qsl(first, keep_blank_values=True))
    assert (fields["concat-part"], fields["concat-total"]) == ("1", "2")
    second = urlencode(
        {**fields, "concat-part": "2", "messageId": fields["messageId"][:-4] + "FFFF", "text": " Thanks!"}
    )

    for _ in range(2):  # part one, delivered twice
        assert 200 <= _post(stack, part_one, *_sign(stack, part_one, first)).status_code < 300
    wait_until(lambda: _inbound_drained(stack))
    assert stack.thread(phone) == []  # waiting for the rest

    assert 200 <= _post(stack, part_one, *_sign(stack, part_one, second)).status_code < 300

    wait_until(lambda: stack.thread(phone))
    wait_until(lambda: _inbound_drained(stack))
    (message,) = stack.thread(phone)
    assert message["body"] == fields["text"] + " Thanks!"
    assert message["segments"] == 2
