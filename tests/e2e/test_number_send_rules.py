"""Send rules set per number, on the local stack: the seeded support line (+14155550142) keeps its
own opt-outs and has smart encoding on; the default number (+15005550006) has neither."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import OUR_NUMBER, Stack, wait_until

pytestmark = pytest.mark.e2e

SUPPORT = "+14155550142"  # seeded with opt_out_scope "number" and smart_encoding on
CURLY = "We\u2019re open \u2014 \u201cwalk-ins\u201d welcome"
PLAIN_CURLY = 'We\'re open - "walk-ins" welcome'


def _send(stack: Stack, customer: str, body: str, sender: str) -> dict[str, object]:
    response = stack.api("POST", "/v1/messages", json={"to": [customer], "body": body, "from": sender})
    assert response.status_code == 202, response.text
    (message,) = response.json()["messages"]
    assert isinstance(message, dict)
    return message


def test_stop_to_a_per_number_line_stops_its_texts_but_not_those_of_our_other_numbers(stack: Stack) -> None:
    customer = "+14155550180"
    texted = stack.cli("sim", "sms", "--from", customer, "--to", SUPPORT, "--body", "STOP", "--repeat", "2")
    assert texted.returncode == 0, texted.stderr

    # One confirmation, from the line texted, saying it covers that line only.
    (confirmation,) = wait_until(lambda: stack.sim_messages(customer))
    assert confirmation["from"] == SUPPORT
    assert "from this number" in confirmation["body"]

    blocked = stack.message(str(_send(stack, customer, "Your ticket is closed", SUPPORT)["message_id"]))
    assert blocked["status"] == "suppressed"
    assert blocked["error_reason"] == f"the recipient has opted out of messages from {SUPPORT}"
    # The inbox shows the opt-out as this line's alone.
    listed = stack.api("GET", "/v1/conversations", params={"status": "all", "limit": 100}).json()
    (conversation,) = [c for c in listed["conversations"] if c["customer_number"] == customer]
    assert (conversation["opted_out"], conversation["opted_out_of"]) == (False, [SUPPORT])

    allowed = _send(stack, customer, "Your order has shipped", OUR_NUMBER)
    delivered = stack.wait_status(str(allowed["message_id"]), "delivered")
    assert delivered["our_number"] == OUR_NUMBER
    texts = stack.sim_messages(customer)
    assert [(t["from"], t["body"]) for t in texts][-1] == (OUR_NUMBER, "Your order has shipped")
    assert len(texts) == 2  # the suppressed text never reached the carrier; nor a second confirmation


def test_a_curly_quoted_send_from_the_smart_encoding_line_goes_as_gsm7(stack: Stack) -> None:
    customer = "+14155550181"

    queued = _send(stack, customer, CURLY, SUPPORT)
    assert (queued["encoding"], queued["body"], queued["smart_encoding_applied"]) == (
        "GSM-7",
        PLAIN_CURLY,
        True,
    )

    delivered = stack.wait_status(str(queued["message_id"]), "delivered")
    assert (delivered["encoding"], delivered["segments"]) == ("GSM-7", 1)
    assert delivered["body"] == PLAIN_CURLY and delivered["smart_encoding_applied"] is True
    (text,) = stack.sim_messages(customer)
    assert (text["from"], text["body"]) == (SUPPORT, PLAIN_CURLY)

    # The same text from the default number (no smart encoding) goes as written, in UCS-2.
    other = stack.api("POST", "/v1/messages", json={"to": ["+14155550182"], "body": CURLY})
    assert other.status_code == 202, other.text
    (as_written,) = other.json()["messages"]
    assert (as_written["our_number"], as_written["encoding"], as_written["body"]) == (
        OUR_NUMBER,
        "UCS-2",
        CURLY,
    )


def test_the_preview_applies_the_from_numbers_smart_encoding_unless_told(stack: Stack) -> None:
    def preview(**fields: object) -> dict[str, object]:
        response = stack.api("POST", "/v1/messages/preview", json={"body": CURLY, **fields})
        assert response.status_code == 200, response.text
        result: dict[str, object] = response.json()
        return result

    smart = preview(**{"from": SUPPORT})
    assert (smart["from"], smart["encoding"], smart["text"]) == (SUPPORT, "GSM-7", PLAIN_CURLY)
    assert preview(**{"from": SUPPORT, "smart_encoding": False})["encoding"] == "UCS-2"
    default = preview()  # no `from`: the team's default number, as a send would use
    assert (default["from"], default["encoding"]) == (OUR_NUMBER, "UCS-2")
    assert default["segments_with_smart_encoding"] == default["segments"] == 1  # short either way
    assert preview(smart_encoding=True)["encoding"] == "GSM-7"

    unknown = stack.api("POST", "/v1/messages/preview", json={"body": CURLY, "from": "+15005550099"})
    assert unknown.status_code == 400 and "not one of our numbers" in unknown.text
