"""The inbox page's read-up-to choice (functions/web/static/app.js `markRead`), run in Node: it
reads only the conversation still open, up to that conversation's newest text shown."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

APP = Path(__file__).resolve().parents[2] / "functions" / "web" / "static" / "app.js"
NODE = shutil.which("node")

HARNESS = """
const src = require("fs").readFileSync(process.argv[1], "utf8");
const from = src.indexOf("/** Whether text `a` comes after");
const code = src.slice(from, src.indexOf("function renderThreadHead()"));
const setup = JSON.parse(process.argv[2]);
const store = {
  conversations: new Map(setup.conversations.map((c) => [c.customer_number, c])),
  openConversation: null,
  openNumber: setup.open,
  thread: new Map(setup.thread.map((m) => [m.message_id, m])),
};
const calls = [];
const api = async (method, path, body) => {
  calls.push({ method, path, body: body || null });
  return { unread_count: 0 };
};
const upsert = (c) => store.conversations.set(c.customer_number, c);
const markRead = new Function("store", "document", "api", "upsertConversation", `${code}; return markRead;`)(
  store, { hidden: false }, api, upsert);
markRead(setup.number).then(() => console.log(JSON.stringify(calls)));
"""

A, B = "+14155550100", "+14155550101"


def mark_read(number: str, open_number: str | None, thread: list[dict[str, str]]) -> list[dict[str, Any]]:
    setup = {
        "number": number,
        "open": open_number,
        "conversations": [
            {"customer_number": A, "unread_count": 3},
            {"customer_number": B, "unread_count": 1},
        ],
        "thread": thread,
    }
    assert NODE is not None
    done = subprocess.run(
        [NODE, "-e", HARNESS, str(APP), json.dumps(setup)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    calls: list[dict[str, Any]] = json.loads(done.stdout)
    return calls


def text(message_id: str, number: str, created_at: str) -> dict[str, str]:
    return {"message_id": message_id, "customer_number": number, "created_at": created_at}


pytestmark = pytest.mark.skipif(NODE is None, reason="needs Node")


def test_a_conversation_no_longer_open_is_not_marked_read() -> None:
    assert mark_read(A, B, []) == []
    assert mark_read(A, B, [text("in_b1", B, "2026-11-28T21:00:00Z")]) == []


def test_only_the_open_conversations_texts_are_read_up_to() -> None:
    thread = [text("in_a1", A, "2026-11-28T20:00:00Z"), text("in_b1", B, "2026-11-28T21:00:00Z")]
    (call,) = mark_read(A, A, thread)
    assert call["path"] == f"/v1/conversations/{A.replace('+', '%2B')}/read"
    assert call["body"] == {"seen_message_id": "in_a1"}


def test_the_newest_is_chosen_by_time_then_id_whatever_the_times_precision() -> None:
    # as strings "…:00Z" sorts after "…:00.500000Z", though it is half a second earlier
    thread = [text("in_a1", A, "2026-11-28T20:00:00.500000Z"), text("in_a2", A, "2026-11-28T20:00:00Z")]
    assert mark_read(A, A, thread)[0]["body"] == {"seen_message_id": "in_a1"}
    same_second = [text("in_a9", A, "2026-11-28T20:00:01Z"), text("in_b0", A, "2026-11-28T20:00:01Z")]
    assert mark_read(A, A, same_second)[0]["body"] == {"seen_message_id": "in_b0"}
