"""The whole pipeline over HTTP, as a phone, Twilio and a client see it."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from urllib.parse import urlencode

import requests
from twilio.request_validator import RequestValidator

from tests.e2e.conftest import AUTH_TOKEN, OUR_NUMBER, Stack, wait_until

pytestmark = __import__("pytest").mark.e2e


def _conversation(stack: Stack, number: str) -> dict[str, Any] | None:
    response = stack.api("GET", "/v1/conversations", params={"limit": 200})
    assert response.status_code == 200, response.text
    return next((c for c in response.json()["conversations"] if c["customer_number"] == number), None)


def _inbound_form(sid: str, from_number: str, body: str) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "SmsMessageSid": sid,
        "AccountSid": "AC" + "e2e0" * 8,
        "From": from_number,
        "To": OUR_NUMBER,
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
        "ToCity": "",
        "ToZip": "",
        "FromCity": "SAN FRANCISCO",
    }


def _post_webhook(stack: Stack, form: dict[str, str], signature: str) -> requests.Response:
    return requests.post(
        stack.url("/webhooks/twilio/messages"),
        data=urlencode(form),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
        timeout=10,
    )


def test_a_text_from_a_phone_becomes_an_unread_conversation_and_a_reply_is_delivered(stack: Stack) -> None:
    customer = "+14155550100"
    sim = stack.cli("sim", "sms", "--from", customer, "--to", OUR_NUMBER, "--body", "Is my order ready?")
    assert sim.returncode == 0, sim.stderr

    conversation = wait_until(lambda: _conversation(stack, customer))
    assert conversation["unread_count"] == 1
    assert conversation["last_message_preview"] == "Is my order ready?"
    assert conversation["our_numbers"] == [OUR_NUMBER]

    sent = stack.api("POST", "/v1/messages", json={"to": [customer], "body": "Yes, it's ready for pickup."})
    assert sent.status_code == 202, sent.text
    (message,) = sent.json()["messages"]
    assert message["our_number"] == OUR_NUMBER  # sticky: the number the customer texted

    delivered = stack.wait_status(message["message_id"], "delivered")
    assert [h["status"] for h in delivered["history"]][-1] == "delivered"
    assert "sent" in [h["status"] for h in delivered["history"]]
    assert delivered["encoding"] == "GSM-7" and delivered["segments"] == 1
    assert len(stack.sim_messages(customer)) == 1

    thread = stack.api("GET", f"/v1/conversations/{customer}/messages").json()["messages"]
    assert [m["direction"] for m in thread] == ["outbound", "inbound"]  # newest first


def test_a_webhook_signed_by_the_twilio_sdk_is_accepted_and_stored_once(stack: Stack) -> None:
    customer = "+14155550111"
    form = _inbound_form("SM" + uuid.uuid4().hex, customer, "Hello from the SDK")
    signature = RequestValidator(AUTH_TOKEN).compute_signature(stack.url("/webhooks/twilio/messages"), form)

    responses = [_post_webhook(stack, form, signature) for _ in range(3)]

    assert [r.status_code for r in responses] == [200, 200, 200]
    assert "<Response" in responses[0].text
    conversation = wait_until(lambda: _conversation(stack, customer))
    messages = stack.api("GET", f"/v1/conversations/{customer}/messages").json()["messages"]
    assert len(messages) == 1
    assert conversation["message_count"] == 1 and conversation["unread_count"] == 1


def test_forged_and_altered_webhooks_are_rejected_and_store_nothing(stack: Stack) -> None:
    customer = "+14155550112"
    form = _inbound_form("SM" + uuid.uuid4().hex, customer, "Send me your password")
    good = RequestValidator(AUTH_TOKEN).compute_signature(stack.url("/webhooks/twilio/messages"), form)
    forged = RequestValidator("not-the-token").compute_signature(stack.url("/webhooks/twilio/messages"), form)

    assert _post_webhook(stack, form, forged).status_code == 403
    assert _post_webhook(stack, {**form, "Body": "Send me your PIN"}, good).status_code == 403
    assert _post_webhook(stack, form, "").status_code == 403

    # A genuine webhook for another customer, sent afterwards, proves the queue was drained.
    marker = "+14155550113"
    marker_form = _inbound_form("SM" + uuid.uuid4().hex, marker, "marker")
    signed = RequestValidator(AUTH_TOKEN).compute_signature(
        stack.url("/webhooks/twilio/messages"), marker_form
    )
    assert _post_webhook(stack, marker_form, signed).status_code == 200
    wait_until(lambda: _conversation(stack, marker))
    assert _conversation(stack, customer) is None


def test_two_carrier_500s_then_success_sends_one_text(stack: Stack) -> None:
    customer = "+14155550120"
    fault = requests.post(
        stack.url("/_sim/twilio/_faults"), json={"kind": "500", "count": 2, "to": customer}, timeout=10
    )
    assert fault.status_code == 201, fault.text

    sent = stack.api("POST", "/v1/messages", json={"to": [customer], "body": "Your table is ready"})
    assert sent.status_code == 202, sent.text
    message_id = sent.json()["messages"][0]["message_id"]

    delivered = stack.wait_status(message_id, "delivered", timeout=40)
    assert [a["outcome"] for a in delivered["attempts"]] == ["ambiguous", "ambiguous", "accepted"]
    assert len(stack.sim_messages(customer)) == 1


def test_a_send_to_an_invalid_number_fails_with_a_reason_and_is_not_retried(stack: Stack) -> None:
    invalid = "+15005550001"  # Twilio's test number for "invalid 'To' number" (21211)
    sent = stack.api("POST", "/v1/messages", json={"to": [invalid], "body": "Hello?"})
    assert sent.status_code == 202, sent.text

    failed = stack.wait_status(sent.json()["messages"][0]["message_id"], "failed")
    assert failed["error_code"] == "21211"
    assert "not a valid phone number" in failed["error_reason"]
    assert len(failed["attempts"]) == 1
    assert stack.sim_messages(invalid) == []


def test_bad_requests_get_a_clear_4xx(stack: Stack) -> None:
    no_token = requests.post(
        stack.url("/v1/messages"), json={"to": ["+14155550100"], "body": "x"}, timeout=10
    )
    assert no_token.status_code == 401

    bad_number = stack.api("POST", "/v1/messages", json={"to": ["12"], "body": "x"})
    assert bad_number.status_code == 400
    assert bad_number.json()["errors"][0]["field"].startswith("to")

    not_json = stack.api("POST", "/v1/messages", data="{nope", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400

    missing_field = stack.api(
        "POST", "/v1/messages", json={"to": ["+14155550199"], "template_id": "appointment"}
    )
    assert missing_field.status_code == 400
    assert "date" in missing_field.json()["errors"][0]["reason"]

    unknown_carrier = requests.post(stack.url("/webhooks/nope/messages"), data="a=b", timeout=10)
    assert unknown_carrier.status_code == 404

    huge = requests.post(
        stack.url("/webhooks/twilio/messages"),
        data="Body=" + "x" * 300_000,
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "x"},
        timeout=10,
    )
    assert huge.status_code == 413


def test_preview_counts_encoding_and_segments(stack: Stack) -> None:
    response = stack.api("POST", "/v1/messages/preview", json={"body": "Olá 😀 " * 12})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["encoding"] == "UCS-2"
    assert body["segments"] == 2 and body["units"] == sum(body["parts"])


def test_the_digest_posts_one_record_per_conversation_per_day_and_reruns_change_nothing(stack: Stack) -> None:
    customer = "+14155550130"
    assert (
        stack.cli("sim", "sms", "--from", customer, "--to", OUR_NUMBER, "--body", "Digest me").returncode == 0
    )
    wait_until(lambda: _conversation(stack, customer))
    day = dt.datetime.now(dt.UTC).date().isoformat()

    first = stack.cli("digest", "--day", day)
    assert first.returncode == 0, first.stderr
    records = requests.get(stack.url("/_sim/crm/records"), timeout=10).json()["records"]
    mine = [r for r in records if r["payload"]["customer_number"] == customer]
    assert len(mine) == 1
    assert [m["body"] for m in mine[0]["payload"]["messages"]] == ["Digest me"]

    again = stack.cli("digest", "--day", day)
    assert again.returncode == 0, again.stderr
    records_after = requests.get(stack.url("/_sim/crm/records"), timeout=10).json()["records"]
    assert len(records_after) == len(records)
    assert {r["external_id"]: r["version"] for r in records_after} == {
        r["external_id"]: r["version"] for r in records
    }


def _consent(stack: Stack, customer: str) -> tuple[bool, list[str]]:
    """(opted out of all our numbers, our numbers opted out of one by one), as the inbox list says."""
    listed = stack.api("GET", "/v1/conversations", params={"status": "all", "limit": 100})
    assert listed.status_code == 200, listed.text
    (conversation,) = [c for c in listed.json()["conversations"] if c["customer_number"] == customer]
    return conversation["opted_out"], conversation["opted_out_of"]


def test_stop_gets_one_confirmation_suppresses_later_sends_and_start_restores_them(stack: Stack) -> None:
    customer = "+14155550150"
    assert (
        stack.cli(
            "sim", "sms", "--from", customer, "--to", OUR_NUMBER, "--body", "stop", "--repeat", "2"
        ).returncode
        == 0
    )

    confirmation = wait_until(lambda: stack.sim_messages(customer))
    assert len(confirmation) == 1 and "START" in confirmation[0]["body"]
    assert confirmation[0]["from"] == OUR_NUMBER

    blocked = stack.api("POST", "/v1/messages", json={"to": [customer], "body": "Our sale starts now"})
    assert blocked.status_code == 202, blocked.text
    suppressed = stack.message(blocked.json()["messages"][0]["message_id"])
    assert suppressed["status"] == "suppressed"
    assert "opted out" in suppressed["error_reason"]
    # The inbox says so wherever the conversation shows: its list and a search for the number.
    assert _consent(stack, customer) == (True, [])
    found = stack.api("GET", "/v1/conversations", params={"q": customer[1:]}).json()["conversations"]
    assert [(c["customer_number"], c["opted_out"]) for c in found] == [(customer, True)]

    assert stack.cli("sim", "sms", "--from", customer, "--to", OUR_NUMBER, "--body", "START").returncode == 0
    wait_until(lambda: len(stack.sim_messages(customer)) == 2)  # the resubscribe confirmation
    assert _consent(stack, customer) == (False, [])
    allowed = stack.api("POST", "/v1/messages", json={"to": [customer], "body": "Welcome back"})
    stack.wait_status(allowed.json()["messages"][0]["message_id"], "delivered")
    assert [m["body"] for m in stack.sim_messages(customer)][-1] == "Welcome back"
    assert len(stack.sim_messages(customer)) == 3  # the suppressed text never reached the carrier


def test_preview_renders_a_template_for_a_recipient(stack: Stack) -> None:
    response = stack.api(
        "POST", "/v1/messages/preview", json={"template_id": "welcome", "to": "+14155550100"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["text"].startswith("Hi Ada, thanks for reaching out to Analytical Engines!")
    assert (body["encoding"], body["segments"]) == ("GSM-7", 1)

    missing = stack.api(
        "POST", "/v1/messages/preview", json={"template_id": "appointment", "to": "+14155550101"}
    )
    assert missing.status_code == 400 and "date" in missing.text


def test_a_scheduled_text_is_cancelled_and_never_sent(stack: Stack) -> None:
    customer = "+14155550151"
    send_at = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)).isoformat()
    created = stack.api(
        "POST", "/v1/messages", json={"to": [customer], "body": "Reminder", "send_at": send_at}
    )
    assert created.status_code == 202, created.text
    message_id = created.json()["messages"][0]["message_id"]
    assert stack.message(message_id)["status"] == "scheduled"

    cancelled = stack.api("POST", f"/v1/messages/{message_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    swept = requests.post(stack.url("/_local/schedules/Sweep/fire"), json={}, timeout=30)
    assert swept.status_code == 200, swept.text
    wait_until(lambda: dt.datetime.now(dt.UTC).isoformat() > send_at)
    assert requests.post(stack.url("/_local/schedules/Sweep/fire"), json={}, timeout=30).status_code == 200

    assert stack.message(message_id)["status"] == "canceled"
    assert stack.sim_messages(customer) == []
    again = stack.api("POST", f"/v1/messages/{message_id}/cancel")
    assert again.status_code == 409


def test_a_scheduled_text_can_be_rescheduled_until_it_is_cancelled(stack: Stack) -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    created = stack.api(
        "POST", "/v1/messages", json={"to": ["+14155550152"], "body": "See you", "send_at": later.isoformat()}
    )
    message_id = created.json()["messages"][0]["message_id"]

    moved = stack.api(
        "POST", f"/v1/messages/{message_id}/reschedule", json={"send_at": "2099-01-01T00:00:00Z"}
    )
    assert moved.status_code == 400 and "a year" in moved.text
    moved = stack.api(
        "POST",
        f"/v1/messages/{message_id}/reschedule",
        json={"send_at": (later + dt.timedelta(hours=1)).isoformat()},
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["status"] == "scheduled"
    assert dt.datetime.fromisoformat(moved.json()["next_attempt_at"]) == later + dt.timedelta(hours=1)

    assert stack.api("POST", f"/v1/messages/{message_id}/cancel").status_code == 200
    too_late = stack.api("POST", f"/v1/messages/{message_id}/reschedule", json={"send_at": later.isoformat()})
    assert too_late.status_code == 409


def test_templates_are_created_used_and_deleted_through_the_api(stack: Stack) -> None:
    created = stack.api(
        "POST",
        "/v1/templates",
        json={"name": "Pickup", "body": "Hi {{first_name}}, order {{order}} is ready"},
    )
    assert created.status_code == 201, created.text
    template_id = created.json()["template_id"]
    bad = stack.api("POST", "/v1/templates", json={"name": "Bad", "body": "Hi {{first-name}}"})
    assert bad.status_code == 400 and "merge field" in bad.text

    sent = stack.api(
        "POST",
        "/v1/messages",
        json={"to": ["+14155550100"], "template_id": template_id, "merge_values": {"order": "#1234"}},
    )
    assert sent.status_code == 202, sent.text
    assert sent.json()["messages"][0]["body"] == "Hi Ada, order #1234 is ready"

    assert stack.api("DELETE", f"/v1/templates/{template_id}").status_code == 204
    assert stack.api("GET", f"/v1/templates/{template_id}").status_code == 404
    names = [t["name"] for t in stack.api("GET", "/v1/templates").json()["templates"]]
    assert "Pickup" not in names and "Welcome" in names
