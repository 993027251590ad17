"""Through the real API handler against moto: deleting and restoring an unread text moves its
conversation's unread count and preview, a read up to a stale message leaves newer texts unread, and
a bulk reply answers once per customer, at most 100 ids, within the invocation's time."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from functions.api import app as api
from functions.inbound import processor
from parley import wiring
from parley.domain.ids import inbound_message_id
from parley.domain.models import InboundMessage
from parley.services.mailbox import MAX_REPLIES
from tests.integration.test_handlers import (
    CLAIMS,
    CONTEXT,
    CUSTOMER,
    OURS,
    LambdaContext,
    Stack,
    call_api,
    call_webhook,
    get,
    http_event,
    inbound_form,
    post_json,
    sqs_event,
    webhook_event,
)
from tests.integration.test_handlers import stack as stack  # noqa: F401 - the moto stack fixture


def receive(stack: Stack, *, sid: str, body: str) -> str:
    assert call_webhook(webhook_event(inbound_form(sid=sid, body=body)))["statusCode"] == 200
    queued = stack.queue_messages(stack.settings.inbound_queue_url)
    assert processor.handler(sqs_event(queued), CONTEXT) == {"batchItemFailures": []}
    status, thread = get(f"/v1/conversations/{CUSTOMER}/messages")
    assert status == 200
    return str(thread["messages"][0]["message_id"])  # newest first


def conversation() -> dict[str, Any]:
    status, page = get("/v1/conversations", query={"status": "all"})
    assert status == 200
    (found,) = [c for c in page["conversations"] if c["customer_number"] == CUSTOMER]
    return dict(found)


def unread_listed() -> list[str]:
    _, page = get("/v1/conversations", query={"unread": "true"})
    return [c["customer_number"] for c in page["conversations"]]


def test_deleting_an_unread_text_lowers_the_count_and_blanks_the_preview(stack: Stack) -> None:
    text = receive(stack, sid="SM" + "a" * 32, body="SPAM offensive text")
    assert (conversation()["unread_count"], conversation()["last_message_preview"]) == (
        1,
        "SPAM offensive text",
    )

    status, answer = post_json("/v1/messages/delete", {"ids": [text]})
    assert status == 200 and answer["results"][0]["result"] == "ok"
    assert (conversation()["unread_count"], conversation()["last_message_preview"]) == (0, "")
    assert CUSTOMER not in unread_listed()

    assert post_json("/v1/messages/restore", {"ids": [text]})[0] == 200
    assert (conversation()["unread_count"], conversation()["last_message_preview"]) == (
        1,
        "SPAM offensive text",
    )
    assert CUSTOMER in unread_listed()


def test_a_read_up_to_a_stale_message_leaves_the_newer_text_unread(stack: Stack) -> None:
    shown = receive(stack, sid="SM" + "a" * 32, body="first")
    newest = receive(stack, sid="SM" + "b" * 32, body="arrived while the thread was open")

    status, read = post_json(f"/v1/conversations/{CUSTOMER}/read", {"seen_message_id": shown})
    assert status == 200 and read["unread_count"] == 1
    assert conversation()["unread_count"] == 1

    status, read = post_json(f"/v1/conversations/{CUSTOMER}/read", {"seen_message_id": newest})
    assert status == 200 and read["unread_count"] == 0 and conversation()["unread_count"] == 0


def test_a_read_with_no_body_reads_everything_and_a_bad_seen_id_is_refused(stack: Stack) -> None:
    receive(stack, sid="SM" + "a" * 32, body="first")
    status, answer = post_json(f"/v1/conversations/{CUSTOMER}/read", {"seen_message_id": "in_nope"})
    assert status == 400 and "seen_message_id" in json.dumps(answer)
    assert post_json(f"/v1/conversations/{CUSTOMER}/read", {"seen": "x"})[0] == 400

    status, read = call_api(http_event("POST", f"/v1/conversations/{CUSTOMER}/read", claims=CLAIMS))
    assert status == 200 and read["unread_count"] == 0 and conversation()["unread_count"] == 0


def replies_sent() -> int:
    _, thread = get(f"/v1/conversations/{CUSTOMER}/messages", query={"limit": "50"})
    return sum(1 for m in thread["messages"] if m["direction"] == "outbound")


def test_a_bulk_reply_retried_in_another_order_replies_once(stack: Stack) -> None:
    first = receive(stack, sid="SM" + "a" * 32, body="first")
    second = receive(stack, sid="SM" + "b" * 32, body="second")
    body = {"body": "On it", "idempotency_key": "bulk-k1"}

    status, done = post_json("/v1/messages/reply", {"ids": [first, second], **body})
    assert status == 200 and done["more"] is False
    status, again = post_json("/v1/messages/reply", {"ids": [second, first], **body})
    assert status == 200
    assert again["results"][0]["reply_id"] == done["results"][0]["reply_id"]
    assert replies_sent() == 1


def test_a_bulk_reply_names_at_most_100_and_stops_before_the_invocation_ends(stack: Stack) -> None:
    text = receive(stack, sid="SM" + "a" * 32, body="first")
    status, answer = post_json("/v1/messages/reply", {"ids": [text] * (MAX_REPLIES + 1), "body": "x"})
    assert status == 400 and str(MAX_REPLIES) in json.dumps(answer)

    @dataclass
    class NearlyOut(LambdaContext):
        def get_remaining_time_in_millis(self) -> int:
            return 2_000

    payload = json.dumps({"ids": [text], "body": "On it", "idempotency_key": "bulk-k2"})
    event = http_event(
        "POST",
        "/v1/messages/reply",
        body=payload,
        headers={"content-type": "application/json"},
        claims=CLAIMS,
    )
    result = api.handler(event, NearlyOut())
    answer = json.loads(result["body"])
    assert result["statusCode"] == 200 and answer["more"] is True
    assert [r["result"] for r in answer["results"]] == ["not_tried"]
    assert replies_sent() == 0

    status, done = post_json(
        "/v1/messages/reply", {"ids": [text], "body": "On it", "idempotency_key": "bulk-k2"}
    )
    assert status == 200 and done["more"] is False and done["results"][0]["result"] == "ok"
    assert replies_sent() == 1


def test_a_keyless_bulk_reply_answers_its_key_and_asking_again_with_it_replies_once(
    stack: Stack,
) -> None:
    first = receive(stack, sid="SM" + "a" * 32, body="first")
    second = receive(stack, sid="SM" + "b" * 32, body="second")
    left = iter([20_000, 2_000])

    @dataclass
    class RunningOut(LambdaContext):
        def get_remaining_time_in_millis(self) -> int:
            return next(left, 2_000)

    payload = json.dumps({"ids": [first, second], "body": "On it"})  # no idempotency key
    event = http_event(
        "POST",
        "/v1/messages/reply",
        body=payload,
        headers={"content-type": "application/json"},
        claims=CLAIMS,
    )
    answer = json.loads(api.handler(event, RunningOut())["body"])
    assert [r["result"] for r in answer["results"]] == ["ok", "not_tried"] and answer["more"] is True
    key = answer["idempotency_key"]
    assert isinstance(key, str) and key

    retry = {"ids": [second], "body": "On it", "idempotency_key": key}
    status, again = post_json("/v1/messages/reply", retry)
    assert status == 200 and again["idempotency_key"] == key
    assert again["results"][0]["reply_id"] == answer["results"][0]["reply_id"]
    assert replies_sent() == 1

    status, keyed = post_json("/v1/messages/reply", {"ids": [first], "body": "x", "idempotency_key": "k9"})
    assert status == 200 and keyed["idempotency_key"] == "k9"


def test_texts_stamped_the_same_second_are_read_and_deleted_in_time_then_id_order(stack: Stack) -> None:
    # Vonage stamps texts to the second: two texts can share a time, and then their ids order them
    earlier, later = sorted(["SM" + "c" * 32, "SM" + "d" * 32], key=lambda s: inbound_message_id("twilio", s))
    at = datetime(2026, 11, 28, 21, 0, tzinfo=UTC)
    for sid in (earlier, later):
        stored = wiring.container().processor.store_inbound(
            InboundMessage(
                carrier="twilio", carrier_message_id=sid, from_number=CUSTOMER, to_number=OURS, body=sid,
                received_at=at,
            )
        )  # fmt: skip
        assert stored is not None
    first, second = (inbound_message_id("twilio", s) for s in (earlier, later))
    assert conversation()["unread_count"] == 2

    status, read = post_json(f"/v1/conversations/{CUSTOMER}/read", {"seen_message_id": first})
    assert status == 200 and read["unread_count"] == 1 and conversation()["unread_count"] == 1

    assert post_json("/v1/messages/delete", {"ids": [first]})[0] == 200  # the read one
    assert conversation()["unread_count"] == 1
    assert post_json("/v1/messages/delete", {"ids": [second, first]})[0] == 200
    assert conversation()["unread_count"] == 0
