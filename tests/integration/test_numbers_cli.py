"""`parley numbers` lists every team's numbers: it asks GET /v1/numbers as an admin, since a team
member sees only their teams' numbers and the pool's (the rule of functions/api/app.py's list_numbers,
with the real dev token and access rules)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from local import cli
from local.auth import dev_jwt_secret, verify_dev_token
from parley.access import Caller

NUMBERS: list[dict[str, Any]] = [
    {"number": "+15005550006", "carrier": "twilio", "team": "default", "owner": "dev", "is_default": True},
    {"number": "+15005550101", "carrier": "telnyx", "team": "sales", "owner": None},
    {"number": "+15005550102", "carrier": "plivo", "team": "support", "owner": "ana"},
]


class _Api(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        caller = Caller.from_claims(verify_dev_token(token, secret=dev_jwt_secret()))
        seen = [n for n in NUMBERS if caller.sees(str(n["team"])) or n["team"] == "default"]
        body = json.dumps({"numbers": seen}).encode()
        self.send_response(200 if self.path == "/v1/numbers" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def api_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_parley_numbers_lists_every_teams_numbers(api_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["numbers", "--url", api_url]) == 0
    listed = capsys.readouterr().out
    for n in NUMBERS:
        assert f"{n['number']}  {n['carrier']}  team {n['team']}" in listed, listed
