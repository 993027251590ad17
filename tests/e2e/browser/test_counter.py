"""The compose counter (functions/web/static/sms.js) counts exactly as the server's preview does.

Three ways round, on the shared vectors in tests/vectors: the module in the page, the live
`POST /v1/messages/preview`, and the counter compose shows as each vector is typed into the Message
box. Then every BMP character once, alone, with smart encoding on and off, against the server's
own code, so the alphabet and the smart-encoding table can't drift apart either.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from parley.domain.encoding import analyze
from tests.e2e.browser.conftest import Browse, person, sign_in
from tests.e2e.conftest import OUR_NUMBER, Stack
from tests.vectors import sms_vectors

pytestmark = pytest.mark.e2e

VECTORS = sms_vectors()
SMART_NUMBER = "+14155550142"  # the seeded support line: smart encoding on (local/seed.py)
PLAIN_NUMBER = OUR_NUMBER  # the default number: smart encoding off
SUMMARY = ("chars", "encoding", "segments", "units", "smart_applied")

# Runs in the page: the module as the page loads it, applied to every vector.
COUNT_IN_PAGE = """async (vectors) => {
  const { countSms } = await import("/ui/sms.js");
  return vectors.map(([text, smart]) => countSms(text, { smart }));
}"""

# Every BMP code point (surrogates excepted) alone, smart encoding on and off: the text sent, its
# encoding and units, in one compact string per character.
SWEEP_IN_PAGE = """async () => {
  const { countSms } = await import("/ui/sms.js");
  const out = [];
  for (let code = 0; code <= 0xffff; code += 1) {
    if (code >= 0xd800 && code <= 0xdfff) continue;
    const ch = String.fromCodePoint(code);
    for (const smart of [false, true]) {
      const r = countSms(ch, { smart });
      out.push([r.text, r.encoding, r.units, r.chars, r.segments, r.smart_applied].join("|"));
    }
  }
  return out;
}"""


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    return {field: result[field] for field in SUMMARY}


def test_sms_js_in_the_page_and_the_live_preview_match_every_vector(stack: Stack, browse: Browse) -> None:
    ana = person(stack, "counter-ana", "default")
    page = browse()
    sign_in(page, stack, ana)

    in_page = page.evaluate(COUNT_IN_PAGE, [[v.text, v.smart] for v in VECTORS])
    previews = []
    for vector in VECTORS:
        answer = ana.api(
            "POST", "/v1/messages/preview", json={"body": vector.text, "smart_encoding": vector.smart}
        )
        assert answer.status_code == 200, (vector.id, answer.text)
        previews.append(vector.from_preview(answer.json()))

    mismatches = {
        v.id: {"expected": v.expected, "sms.js": _summary(js), "preview": server}
        for v, js, server in zip(VECTORS, in_page, previews, strict=True)
        if not (_summary(js) == server == v.expected)
    }
    assert mismatches == {}


def test_sms_js_matches_the_server_on_every_bmp_character(stack: Stack, browse: Browse) -> None:
    page = browse()
    page.goto(stack.url("/"))

    in_page = page.evaluate(SWEEP_IN_PAGE)

    expected = []
    for code in range(0x10000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        for smart in (False, True):
            info = analyze(chr(code), smart_encoding=smart)
            fields = (info.text, info.encoding.value, info.units, info.characters, info.segments)
            expected.append("|".join(map(str, fields)) + "|" + str(info.smart_encoding_applied).lower())
    assert len(in_page) == len(expected)
    differences = [(js, server) for js, server in zip(in_page, expected, strict=True) if js != server]
    assert differences[:10] == [], f"{len(differences)} characters count differently"


def test_the_compose_counter_shows_the_previews_count_for_every_vector(stack: Stack, browse: Browse) -> None:
    """Each vector typed into the Message box, from a number whose smart-encoding setting is the
    vector's: the counter shows what the server's preview says for a send from that number."""
    bo = person(stack, "counter-bo", "default")
    page = browse()
    sign_in(page, stack, bo)
    page.get_by_role("button", name="New message").click()
    compose = page.get_by_test_id("compose")
    expect(compose).to_be_visible()
    counter = compose.get_by_test_id("counter")
    typed = [v for v in VECTORS if v.typeable]  # a CR can't be typed: the in-page check has those

    for vector in typed:
        number = SMART_NUMBER if vector.smart else PLAIN_NUMBER
        compose.get_by_label("From", exact=True).select_option(number)
        expect(compose.get_by_label("Smart encoding", exact=True)).to_be_checked(checked=vector.smart)
        compose.get_by_label("Message", exact=True).fill(vector.text)
        answer = bo.api("POST", "/v1/messages/preview", json={"body": vector.text, "from": number})
        assert answer.status_code == 200, (vector.id, answer.text)
        preview = vector.from_preview(answer.json())
        assert preview == vector.expected, vector.id
        for field in ("chars", "encoding", "segments", "units"):
            expect(counter, vector.id).to_have_attribute(f"data-{field}", str(preview[field]))
        # Smart encoding is shown when it applies, and only then.
        applied = "true" if preview["smart_applied"] else "false"
        expect(counter, vector.id).to_have_attribute("data-smart-applied", applied)
        smart_note = compose.get_by_text("Smart encoding applies")
        expect(smart_note, vector.id).to_be_visible(visible=preview["smart_applied"])
