"""`parley digest`: starts the day's run through the API and follows it to its counts, against a small
fake of the two routes (the routes themselves are tested in test_crm_api.py)."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from local import cli
from local.auth import dev_jwt_secret, verify_dev_token
from local.cli import main as cli_main

DAY = "2024-05-31"


def progress(done: int, *, conversations: int = 0, created: int = 0, failed: int = 0) -> dict[str, Any]:
    counts = dict.fromkeys(
        ("conversations", "created", "updated", "unchanged", "conflicts", "skipped", "merged", "failed"), 0
    )
    counts.update(conversations=conversations, created=created, failed=failed)
    failures = [{"customer_number": "+14155550100", "day": DAY, "reason": "HTTP 503 from the CRM"}] * failed
    return {
        "day": DAY,
        "shards": 2,
        "shards_done": done,
        "finished": done >= 2,
        "started_at": "2024-06-01T02:00:00+00:00",
        "counts": counts,
        "failures": failures,
    }


@dataclass
class FakeApi:
    """POST /v1/crm/digest and GET /v1/crm/digest/{day}: the run moves one step per poll."""

    steps: list[dict[str, Any] | None]  # None: 404, no run (yet)
    start_status: int = 202
    posted: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    polls: int = 0
    url: str = ""


@pytest.fixture
def api() -> Iterator[FakeApi]:
    fake = FakeApi(steps=[])

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            fake.posted.append((body, self.headers.get("Authorization", "")))
            if self.path != "/v1/crm/digest":
                self._answer(404, {"message": "Not Found"})
            elif fake.start_status != 202:
                self._answer(fake.start_status, {"error": "'day' 2024-05-31 is in the future"})
            else:
                self._answer(202, {"days": [body["day"]], "jobs": 2, "queued": True})

        def do_GET(self) -> None:  # noqa: N802
            if self.path != f"/v1/crm/digest/{DAY}":
                self._answer(404, {"message": "Not Found"})
                return
            step = fake.steps[min(fake.polls, len(fake.steps) - 1)]
            fake.polls += 1
            if step is None:
                self._answer(404, {"error": f"no digest run for {DAY}"})
            else:
                self._answer(200, step)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "POLL_SECONDS", 0.01)
    monkeypatch.setattr(cli, "PLAIN_EVERY_SECONDS", 0.0)  # a plain line at every poll
    monkeypatch.setattr(cli, "NOT_FOUND_GRACE_SECONDS", 0.2)


def test_it_starts_the_run_follows_it_and_prints_the_counts(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.steps = [
        progress(0),
        progress(1, conversations=3, created=2),
        progress(2, conversations=5, created=4),
    ]

    assert cli_main(["digest", "--day", DAY, "--url", api.url]) == 0

    out, err = capsys.readouterr()
    assert json.loads(out) == {"day": DAY, **progress(2, conversations=5, created=4)["counts"]}
    assert err.splitlines() == [
        f"digest {DAY}: 0/2 shards, 0 conversations, 0 records posted",
        f"digest {DAY}: 1/2 shards, 3 conversations, 2 records posted",
        f"digest {DAY}: 2/2 shards, 5 conversations, 4 records posted",
    ]
    ((body, auth),) = api.posted
    assert body == {"day": DAY}
    claims = verify_dev_token(auth.removeprefix("Bearer "), secret=dev_jwt_secret())
    assert claims["exp"] - claims["iat"] > 600  # outlives the default --timeout


def test_failed_records_exit_1_saying_how_many_and_where_to_look(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.steps = [progress(2, conversations=3, created=1, failed=2)]

    assert cli_main(["digest", "--day", DAY, "--url", api.url]) == 1

    out, err = capsys.readouterr()
    assert json.loads(out)["failed"] == 2
    *progress_lines, last = err.splitlines()
    assert progress_lines == [f"digest {DAY}: 2/2 shards, 3 conversations, 1 records posted, 2 failed"]
    assert last.startswith("parley: 2 record(s) failed to reach the CRM (first: HTTP 503 from the CRM)")
    assert f"GET {api.url}/v1/crm/digest/{DAY}" in last and "digest function's log" in last


def test_on_a_terminal_it_redraws_one_progress_bar(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    api.steps = [
        progress(0),
        progress(1, conversations=2, created=2),
        progress(2, conversations=2, created=2),
    ]

    assert cli_main(["digest", "--day", DAY, "--url", api.url]) == 0

    drawn = terminal.getvalue()
    assert drawn.count("\n") == 1 and drawn.endswith("\n")
    frames = [frame.removesuffix("\x1b[K") for frame in drawn.rstrip("\n").split("\r")[1:]]
    assert frames[0] == "[........................] 0/2 shards, 0 conversations, 0 records posted"
    assert frames[-1] == "[########################] 2/2 shards, 2 conversations, 2 records posted"
    assert json.loads(capsys.readouterr().out)["created"] == 2


def test_a_run_that_does_not_finish_in_time_is_one_line_and_exit_1(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.steps = [progress(1, conversations=3)]

    assert cli_main(["digest", "--day", DAY, "--url", api.url, "--timeout", "0.3"]) == 1

    out, err = capsys.readouterr()
    assert out == ""
    last = err.splitlines()[-1]
    assert last.startswith(f"parley: the digest of {DAY} did not finish within 0.3 s (1/2 shards")
    assert f"follow it with GET {api.url}/v1/crm/digest/{DAY}" in last


def test_a_run_the_stack_never_shows_is_one_line(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.steps = [None]
    assert cli_main(["digest", "--day", DAY, "--url", api.url]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"parley: {api.url}/v1/crm/digest/{DAY} answered 404")


def test_a_run_that_appears_after_a_moment_is_followed(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.steps = [None, progress(2, conversations=1, created=1)]
    assert cli_main(["digest", "--day", DAY, "--url", api.url]) == 0
    assert json.loads(capsys.readouterr().out)["created"] == 1


def test_a_refused_start_is_one_line_with_the_apis_reason(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.start_status = 400
    assert cli_main(["digest", "--day", DAY, "--url", api.url]) == 1
    out, err = capsys.readouterr()
    assert out == "" and api.polls == 0
    assert err == f"parley: {api.url}/v1/crm/digest answered 400: 'day' 2024-05-31 is in the future\n"


@pytest.mark.parametrize("timeout", ["0", "-5", "nan"])
def test_a_bad_timeout_is_a_usage_error(timeout: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["digest", "--day", DAY, "--url", "http://127.0.0.1:9", "--timeout", timeout]) == 2
    err = capsys.readouterr().err
    assert err.startswith("parley: ") and err.count("\n") == 1, err
