"""End-to-end: start the local stack as `parley local` on a free port and drive it over HTTP.

One stack per test session (starting it takes a few seconds); tests keep out of each other's way
by using their own customer numbers.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT_SID = "AC" + "e2e0" * 8
AUTH_TOKEN = "e2e-auth-token"
OUR_NUMBER = "+15005550006"
# The handlers' read timeout for carrier API calls: short, so a held carrier response (a simulator's
# timeout fault) becomes an ambiguous attempt within the test's patience.
CARRIER_TIMEOUT_SECONDS = 2.0

T = TypeVar("T")


def wait_until(predicate: Callable[[], T | None], *, timeout: float = 20.0, interval: float = 0.05) -> T:
    """Poll until `predicate` returns something truthy; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    port = _free_port()
    env = {
        **os.environ,
        "PARLEY_PORT": str(port),
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "PARLEY_CARRIER_TIMEOUT_SECONDS": str(CARRIER_TIMEOUT_SECONDS),
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        env.pop(name, None)
    log_path = tmp_path_factory.mktemp("stack") / "parley-local.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "local", "local", "--port", str(port), "--no-schedules"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"parley local exited early:\n{log_path.read_text()[-4000:]}")
        try:
            return requests.get(f"{base_url}/_local/health", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_until(healthy, timeout=90, interval=0.2)
        token = subprocess.run(
            [sys.executable, "-m", "local", "token", "--user", "e2e", "--team", "default"],
            capture_output=True,
            text=True,
            check=True,
            env=env,
            cwd=ROOT,
        ).stdout.strip()
        yield Stack(base_url=base_url, token=token, env=env)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        # Surface the stack's log when something went wrong.
        sys.stderr.write(log_path.read_text()[-3000:] if process.returncode not in (0, -15) else "")
