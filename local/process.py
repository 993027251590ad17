"""`parley local` as a child process, for callers that drive the stack over HTTP (e2e tests, `make bench`).

Only one LocalStack may run per process (moto state and os.environ are process-wide), and a caller that
measures or asserts from outside should see the stack as a client does, so it gets its own interpreter.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import requests

ROOT = Path(__file__).resolve().parent.parent
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class StackProcess:
    base_url: str
    env: dict[str, str]  # what the child runs with; `parley` commands against it need the same
    log_path: Path

    def token(self, user: str = "dev", team: str = "default") -> str:
        """A dev JWT the child accepts (signed with the child's secret, by `parley token`)."""
        return subprocess.run(
            [sys.executable, "-m", "local", "token", "--user", user, "--team", team],
            capture_output=True,
            text=True,
            check=True,
            env=self.env,
            cwd=ROOT,
        ).stdout.strip()


@contextmanager
def stack_process(
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    base_env: Mapping[str, str] | None = None,
    startup_timeout: float = 90.0,
    state_dir: Path | None = None,
    extra_args: Sequence[str] = (),
) -> Iterator[StackProcess]:
    """Start `python -m local local --no-schedules` on a free port, yield once healthy, stop it after.

    The child gets `base_env` (default: this process's environment) plus `env`. Schedules fire only on
    demand, so a caller decides when the sweep runs. If the child exits badly, its log's tail goes to
    stderr. Its data stays in memory (`--no-persist`: a test never reads or writes a developer's saved
    state) unless `state_dir` is given; `extra_args` go on its command line (e.g. `--fresh`).
    """
    port = free_port()
    inherited = os.environ if base_env is None else base_env
    child_env = {**inherited, **(env or {}), "PARLEY_PORT": str(port), "PYTHONUNBUFFERED": "1"}
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):  # the child sets its own endpoint (moto)
        child_env.pop(name, None)
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "local", "local", "--port", str(port), "--no-schedules"),
                *(("--state-dir", str(state_dir)) if state_dir is not None else ("--no-persist",)),
                *extra_args,
            ],
            cwd=ROOT,
            env=child_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"parley local exited early:\n{log_path.read_text()[-4000:]}")
        try:
            return requests.get(f"{base_url}/_local/health", timeout=5).status_code == 200
        except (requests.ConnectionError, requests.Timeout):  # still starting; slow on a busy machine
            return False

    try:
        wait_until(healthy, timeout=startup_timeout, interval=0.2)
        yield StackProcess(base_url=base_url, env=child_env, log_path=log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.returncode not in (0, -15):  # surface the stack's log when something went wrong
            sys.stderr.write(log_path.read_text()[-3000:])
