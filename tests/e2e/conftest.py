"""End-to-end: start the local stack as `parley local` on a free port and drive it over HTTP.

One stack per test session (starting it takes a few seconds); tests keep out of each other's way
by using their own customer numbers (tests/unit/test_e2e_customer_numbers.py holds them to it).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from local.pollers import WAIT_SECONDS as POLL_SECONDS
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
    log_path: Path | None = None  # the stack's stdout and stderr: every function's log lines

    def url(self, path: str) -> str:
        return self.base_url + path

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return requests.request(method, self.url(path), headers=headers, timeout=60, **kwargs)

    def thread(self, number: str, *, limit: int = 200) -> list[dict[str, Any]]:
        """A conversation's messages, as its team sees them; [] while it has none."""
        response = self.api("GET", f"/v1/conversations/{number}/messages", params={"limit": limit})
        if response.status_code == 404:
            return []
        assert response.status_code == 200, response.text
        messages: list[dict[str, Any]] = response.json()["messages"]
        return messages

    def tied_crm_people(
        self, number: str, *first_names: str, last_name: str, team: str = "default", owner: str = "dev"
    ) -> list[str]:
        """People in the simulated CRM who share `number` and rank equal at every routing rule (the
        same last change), synced in: their record ids, in order."""
        now = datetime.now(UTC)
        tie = (now + timedelta(seconds=2)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        ids = []
        for first in first_names:
            person = {"first_name": first, "last_name": last_name, "phones": [number], "owner": owner}
            made = self.control(
                "POST", "/_sim/crm/_people", expect=201, json={**person, "team": team, "updated_at": tie}
            )
            ids.append(f"crm-{made['ids']['webhook']}")
        wait_until(lambda: datetime.now(UTC) > now + timedelta(seconds=2) or None)  # no change after it
        report = self.fire("CrmSync")
        assert report["error"] is None, report
        return ids

    def tied_conversation(self, number: str) -> dict[str, Any]:
        """The conversation with `number`, once routing has found it ties between records."""

        def tied() -> dict[str, Any] | None:
            response = self.api("GET", "/v1/conversations", params={"limit": 200})
            found = [c for c in response.json()["conversations"] if c["customer_number"] == number]
            # the tied records the caller doesn't see are only counted
            is_tied = found and (found[0]["conflict_candidates"] or found[0].get("hidden_candidates"))
            return found[0] if is_tied else None

        conversation: dict[str, Any] = wait_until(tied)
        return conversation

    def issue_token(self, *args: str) -> str:
        """A dev token from `parley token ARGS` (e.g. "--user", "ana", "--teams", "sales")."""
        made = self.cli("token", *args)
        assert made.returncode == 0, made.stderr
        return made.stdout.strip()

    def as_(self, bearer: str, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A request to the stack with another person's token."""
        headers = {"Authorization": f"Bearer {bearer}", **kwargs.pop("headers", {})}
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
        def reached() -> dict[str, Any] | None:
            message = self.message(message_id)
            return message if message["status"] in statuses else None

        return wait_until(reached, timeout=timeout)

    def control(self, method: str, path: str, *, expect: int = 200, **kwargs: Any) -> Any:
        """A call to the stack's own control plane (`/_local/...`, `/_sim/...`): its JSON, or None."""
        response = requests.request(method, self.url(path), timeout=60, **kwargs)
        assert response.status_code == expect, response.text
        return response.json() if response.content else None

    def fire(self, schedule: str) -> dict[str, Any]:
        """Run a schedule's function now (the sweep, the digest) and return what it answered."""
        result: dict[str, Any] = self.control("POST", f"/_local/schedules/{schedule}/fire", json={})
        return result

    def message_or_none(self, message_id: str) -> dict[str, Any] | None:
        response = self.api("GET", f"/v1/messages/{message_id}")
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def sqs(self) -> Any:
        """A boto3 SQS client on the stack's moto server, for what only SQS itself can do."""
        return boto3.client(
            "sqs",
            endpoint_url=self.control("GET", "/_local/health")["moto"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def queue_urls(self, *logical_ids: str) -> dict[str, str]:
        resources = self.control("GET", "/_local/resources")
        return {lid: str(resources[lid]["url"]) for lid in logical_ids}

    def sim_messages(self, to: str) -> list[dict[str, Any]]:
        response = requests.get(self.url("/_sim/twilio/_messages"), timeout=10)
        assert response.status_code == 200, response.text
        return [m for m in response.json()["messages"] if m["to"] == to]


@contextmanager
def queues_tuned(
    stack: Stack, tune: Callable[[str, dict[str, str]], dict[str, str]], *logical_ids: str
) -> Iterator[None]:
    """Set queue attributes for a while (`tune` gets each queue's current VisibilityTimeout and
    RedrivePolicy and returns the new ones), as one could on AWS; the old ones again afterwards."""
    sqs, urls = stack.sqs(), stack.queue_urls(*logical_ids)
    names = ["VisibilityTimeout", "RedrivePolicy"]
    saved = {
        lid: sqs.get_queue_attributes(QueueUrl=urls[lid], AttributeNames=names)["Attributes"] for lid in urls
    }
    for lid, attributes in saved.items():
        sqs.set_queue_attributes(QueueUrl=urls[lid], Attributes=tune(lid, dict(attributes)))
    # A receive takes the queue's visibility when it starts: let the pollers' current long polls end, or a
    # message they pick up would stay hidden for the old timeout. (A known, bounded wait, not a guess.)
    time.sleep(POLL_SECONDS + 0.5)
    try:
        yield
    finally:
        for lid, attributes in saved.items():
            sqs.set_queue_attributes(QueueUrl=urls[lid], Attributes={k: attributes[k] for k in names})


@pytest.fixture
def move_clock(stack: Stack) -> Iterator[Callable[[dict[str, Any]], dict[str, Any]]]:
    """POST /_local/clock (`{"now": ...}` or `{"advance_seconds": ...}`); real time again afterwards."""

    def move(body: dict[str, Any]) -> dict[str, Any]:
        state: dict[str, Any] = stack.control("POST", "/_local/clock", json=body)
        return state

    try:
        yield move
    finally:
        assert stack.control("DELETE", "/_local/clock")["real_time"]


def _fault_adder(stack: Stack, path: str) -> Iterator[Callable[[dict[str, Any]], dict[str, Any]]]:
    def add(spec: dict[str, Any]) -> dict[str, Any]:
        fault: dict[str, Any] = stack.control("POST", path, expect=201, json=spec)
        return fault

    try:
        yield add
    finally:
        requests.delete(stack.url(path), timeout=10).raise_for_status()


@pytest.fixture
def carrier_fault(stack: Stack) -> Iterator[Callable[[dict[str, Any]], dict[str, Any]]]:
    """POST a fault to the simulated Twilio; all of them are cleared afterwards."""
    yield from _fault_adder(stack, "/_sim/twilio/_faults")


@pytest.fixture
def aws_fault(stack: Stack) -> Iterator[Callable[[dict[str, Any]], dict[str, Any]]]:
    """POST an AWS-side fault to the local stack (local/faults.py); all of them are cleared afterwards."""
    yield from _fault_adder(stack, "/_local/faults")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "PARLEY_CARRIER_TIMEOUT_SECONDS": str(CARRIER_TIMEOUT_SECONDS),
    }
    log_path = tmp_path_factory.mktemp("stack") / "parley-local.log"
    with stack_process(log_path, env=env) as running:
        yield Stack(
            base_url=running.base_url,
            token=running.token("e2e", "default"),
            env=running.env,
            log_path=running.log_path,
        )
