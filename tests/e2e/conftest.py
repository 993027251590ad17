"""End-to-end: start the local stack as `parley local` on a free port and drive it over HTTP.

One stack per test session (starting it takes a few seconds); tests keep out of each other's way
by using their own customer numbers.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from local.process import stack_process, wait_until

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT_SID = "AC" + "e2e0" * 8
AUTH_TOKEN = "e2e-auth-token"
OUR_NUMBER = "+15005550006"
# The handlers' read timeout for carrier API calls: short, so a held carrier response (a simulator's
# timeout fault) becomes an ambiguous attempt within the test's patience.
CARRIER_TIMEOUT_SECONDS = 2.0


@dataclass
class Stack:
    base_url: str
    token: str
    env: dict[str, str]

    def url(self, path: str) -> str:
        return self.base_url + path

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return requests.request(method, self.url(path), headers=headers, timeout=15, **kwargs)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "local", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**self.env, "PARLEY_PORT": self.base_url.rsplit(":", 1)[1]},
            cwd=ROOT,
        )

    def message(self, message_id: str) -> dict[str, Any]:
        response = self.api("GET", f"/v1/messages/{message_id}")
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def wait_status(self, message_id: str, *statuses: str, timeout: float = 20.0) -> dict[str, Any]:
        return wait_until(
            lambda: (m := self.message(message_id))["status"] in statuses and m, timeout=timeout
        )

    def sim_messages(self, to: str) -> list[dict[str, Any]]:
        response = requests.get(self.url("/_sim/twilio/_messages"), timeout=10)
        assert response.status_code == 200, response.text
        return [m for m in response.json()["messages"] if m["to"] == to]


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "PARLEY_CARRIER_TIMEOUT_SECONDS": str(CARRIER_TIMEOUT_SECONDS),
    }
    log_path = tmp_path_factory.mktemp("stack") / "parley-local.log"
    with stack_process(log_path, env=env) as running:
        yield Stack(base_url=running.base_url, token=running.token("e2e", "default"), env=running.env)
