"""On moto: a send job lost while its text was with the carrier is drained into the Failed view
flagged, the flag survives DynamoDB, and the resend API's filter leaves the text for a person."""

from __future__ import annotations

from parley import wiring
from parley.adapters.dynamo import DynamoMessages
from parley.domain.models import Message, MessageStatus, SendRequest
from parley.services.resend import MAY_HAVE_GONE
from tests.integration.test_dead_letters import Queues, sweep
from tests.integration.test_dead_letters import queues as queues  # noqa: F401 - the moto DLQ fixture
from tests.integration.test_handlers import post_json

ANA = "+14155550100"
BO = "+14155550101"


def stored(queues: Queues, message_id: str) -> Message:
    found = DynamoMessages(queues.settings).get(message_id)
    assert found is not None, message_id
    return found


def test_a_text_lost_mid_send_is_left_out_of_a_filter_resend_but_resent_by_id(queues: Queues) -> None:
    app = wiring.container()
    accepted = app.sender.accept(SendRequest.model_validate({"to": [ANA, BO], "body": "Code 1234"}), "otp-1")
    mid_send, waiting = (m.message_id for m, _ in accepted)
    messages = DynamoMessages(queues.settings)
    claimed = stored(queues, mid_send)
    messages.update(
        claimed.model_copy(update={"status": MessageStatus.SENDING}), expected_version=claimed.version
    )
    queues.poison("send", {"message_id": mid_send})
    queues.poison("retry", {"message_id": waiting})  # one letter per DLQ: `poison` counts one

    assert sweep()["dead_letters"] == {"inbound": 0, "send": 1, "retry": 1}

    assert (stored(queues, mid_send).status, stored(queues, mid_send).may_have_been_sent) == (
        MessageStatus.FAILED,
        True,
    )
    assert (stored(queues, waiting).status, stored(queues, waiting).may_have_been_sent) == (
        MessageStatus.FAILED,
        False,
    )

    status, body = post_json("/v1/messages/resend", {"view": "failed"})

    assert status == 200, body
    results = {r["message_id"]: (r["result"], r["status"], r.get("reason")) for r in body["results"]}
    assert results == {
        mid_send: ("refused", "failed", MAY_HAVE_GONE),
        waiting: ("resent", "queued", None),
    }
    assert stored(queues, mid_send).status is MessageStatus.FAILED

    status, body = post_json(f"/v1/messages/{mid_send}/resend", {})

    assert status == 200, body
    assert body["status"] == "queued"
    assert stored(queues, mid_send).may_have_been_sent is False
