"""Twilio's search before a resend: every page is read, and absence is never guessed.

Twilio has no idempotency key for messages, so after an ambiguous attempt (a 5xx, a read timeout,
a worker that died after the call) the text is sent again only if this search proves Twilio never
created it. A text beyond the first page, or one Twilio has not sent yet (its date_sent is empty),
must still be found; a list too long to read must send the text to a person, not out again.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from werkzeug.wrappers import Request, Response

from parley.carriers import twilio
from parley.carriers.base import LookupUnavailable, OutboundText, SendAccepted
from parley.carriers.twilio import TwilioCarrier, TwilioLookupError
from tests.carrier_api import FakeCarrierApi, carrier_api_fixtures

carrier_api_server, fake_twilio = carrier_api_fixtures("fake_twilio")

TOKEN = "f3a9c1e07b5d4e2a9c8b7a6d5e4f3a21"
SID = "ACc0ffee00000000000000000000000000"
TEXT = OutboundText("msg-1", "+15005550006", "+14155551234", "Your order #1234 is ready")
SINCE = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)
LIST_PATH = f"/2010-04-01/Accounts/{SID}/Messages.json"


def rfc2822(at: datetime) -> str:
    return at.strftime("%a, %d %b %Y %H:%M:%S +0000")


def listed(
    body: str, sid: str, *, created: datetime, sent: datetime | None, status: str = "sent"
) -> dict[str, Any]:
    return {
        "sid": sid,
        "status": status,
        "to": TEXT.to_number,
        "from": TEXT.from_number,
        "body": body,
        "direction": "outbound-api",
        "date_created": rfc2822(created),
        "date_sent": rfc2822(sent) if sent else None,
    }


def later_texts(count: int, first: int = 0) -> list[dict[str, Any]]:
    """Other texts to the same person, sent after the one searched for."""
    at = SINCE + timedelta(minutes=10)
    return [listed(f"burst {i:03d}", f"SMb{i:03d}", created=at, sent=at) for i in range(first, first + count)]


def pages(*contents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Twilio-shaped pages, each pointing at the next with next_page_uri."""
    out = []
    for n, messages in enumerate(contents):
        more = n + 1 < len(contents)
        next_uri = f"{LIST_PATH}?To=x&PageSize=50&Page={n + 1}&PageToken=PA{n + 1}" if more else None
        out.append({"messages": messages, "page": n, "next_page_uri": next_uri})
    return out


def serve(fake: FakeCarrierApi, documents: list[dict[str, Any]]) -> None:
    def reply(request: Request) -> Response:
        page = int(request.args.get("Page", "0"))
        return Response(json.dumps(documents[page]), status=200, content_type="application/json")

    fake.reply = reply


def search(fake: FakeCarrierApi) -> SendAccepted | None:
    return TwilioCarrier(SID, TOKEN, api_base=fake.url).find_sent(TEXT, SINCE)


def test_a_text_beyond_the_first_page_is_found(fake_twilio: FakeCarrierApi) -> None:
    first = listed(TEXT.body, "SMfirst", created=SINCE, sent=SINCE + timedelta(seconds=1))
    serve(fake_twilio, pages(later_texts(50), later_texts(10, 50) + [first]))

    assert search(fake_twilio) == SendAccepted("SMfirst", "sent", None)
    assert [s.args.get("Page", "0") for s in fake_twilio.seen] == ["0", "1"]
    assert fake_twilio.seen[1].args["PageToken"] == "PA1"  # the next page exactly as Twilio named it


def test_the_search_reads_to_the_last_page_before_it_says_never_sent(fake_twilio: FakeCarrierApi) -> None:
    serve(fake_twilio, pages(later_texts(50), later_texts(50, 50), later_texts(3, 100)))
    assert search(fake_twilio) is None
    assert len(fake_twilio.seen) == 3


def test_a_text_twilio_has_not_sent_yet_is_found(fake_twilio: FakeCarrierApi) -> None:
    """date_sent stays empty while the text waits in Twilio's queue: no DateSent filter may hide it."""
    queued = listed(TEXT.body, "SMqueued", created=SINCE + timedelta(seconds=2), sent=None, status="queued")
    serve(fake_twilio, pages([queued]))

    assert search(fake_twilio) == SendAccepted("SMqueued", "queued", None)
    (seen,) = fake_twilio.seen
    assert not [name for name, _ in seen.query if name.startswith("DateSent")]
    assert (seen.args["To"], seen.args["From"]) == (TEXT.to_number, TEXT.from_number)


def test_more_pages_than_the_search_reads_is_no_proof_of_absence(
    fake_twilio: FakeCarrierApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(twilio, "SEARCH_PAGES", 3)
    serve(fake_twilio, pages(*(later_texts(50, 50 * n) for n in range(4))))

    with pytest.raises(LookupUnavailable, match="absence can't be proven"):
        search(fake_twilio)
    assert len(fake_twilio.seen) == 3


def test_a_match_read_before_the_bound_is_still_an_answer(
    fake_twilio: FakeCarrierApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(twilio, "SEARCH_PAGES", 2)
    match = listed(TEXT.body, "SMseen", created=SINCE, sent=SINCE)
    serve(fake_twilio, pages(later_texts(50), [match, *later_texts(49, 50)], later_texts(50, 99)))
    assert search(fake_twilio) == SendAccepted("SMseen", "sent", None)


def test_the_earliest_of_several_matches_wins(fake_twilio: FakeCarrierApi) -> None:
    newer = listed(
        TEXT.body, "SMnewer", created=SINCE + timedelta(minutes=3), sent=SINCE + timedelta(minutes=3)
    )
    older = listed(
        TEXT.body, "SMolder", created=SINCE + timedelta(seconds=5), sent=SINCE + timedelta(seconds=6)
    )
    too_old = listed(
        TEXT.body, "SMyesterday", created=SINCE - timedelta(days=1), sent=SINCE - timedelta(days=1)
    )
    serve(fake_twilio, pages([newer], [older, too_old]))
    assert search(fake_twilio) == SendAccepted("SMolder", "sent", None)


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ({"next_page_uri": None}, "without a message list"),
        ({"messages": [], "next_page_uri": "https://elsewhere.example/page2"}, "next_page_uri"),
    ],
    ids=["no-list", "foreign-next-page"],
)
def test_an_answer_that_cannot_be_read_through_raises(
    fake_twilio: FakeCarrierApi, document: dict[str, Any], words: str
) -> None:
    serve(fake_twilio, [document])
    with pytest.raises(TwilioLookupError, match=words):
        search(fake_twilio)


def test_a_failing_later_page_raises_rather_than_claiming_absence(fake_twilio: FakeCarrierApi) -> None:
    fake_twilio.replies((200, pages(later_texts(50), [])[0]), (503, {}))
    with pytest.raises(TwilioLookupError, match="503"):
        search(fake_twilio)


def test_a_set_aside_attempt_is_left_out_and_hides_no_later_match(fake_twilio: FakeCarrierApi) -> None:
    """After a receipt's passing failure, the earlier attempt (same words, earlier) is not this try's text."""
    earlier = listed(TEXT.body, "SMearlier", created=SINCE, sent=SINCE, status="undelivered")
    retry = listed(TEXT.body, "SMretry", created=SINCE + timedelta(seconds=40), sent=None, status="queued")
    serve(fake_twilio, pages([earlier, retry]))
    plugin = TwilioCarrier(SID, TOKEN, api_base=fake_twilio.url)

    assert plugin.find_sent(TEXT, SINCE, skip={"SMearlier"}) == SendAccepted("SMretry", "queued", None)
    serve(fake_twilio, pages([earlier]))
    assert plugin.find_sent(TEXT, SINCE, skip={"SMearlier"}) is None
