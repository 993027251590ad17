"""The local runtime (`make dev`) against a tiny fixture stack, driven over HTTP like a developer would.

The fixture template and handlers live in tests/fixtures/runtime/ so these tests do not depend on Parley's
own functions: they pin the emulation (API Gateway v2 events, JWT gate, SQS partial batches and redrive,
EventBridge envelopes, schedules, control endpoints, CLI) rather than business behaviour.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo

import boto3
import pytest
import requests
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayProxyEventV2Model,
    EventBridgeModel,
    SqsModel,
)
from werkzeug.test import Client

from local.auth import dev_jwt_secret, issue_dev_token, verify_dev_token
from local.cli import main as cli_main
from local.http_front import ControlPlane, Front, claims_as_api_gateway
from local.runtime import LocalStack, LocalStackError
from local.schedules import ScheduleError, parse_expression
from parley import clock
from parley.access import Caller

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "runtime" / "template.yaml"

T = TypeVar("T")


def wait_for(predicate: Callable[[], T | None], *, timeout: float = 10.0, what: str = "condition") -> T:
    """Poll every 25 ms until predicate() is truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.025)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


# Runs first, before the shared stack exists: one LocalStack per process at a time (moto state is global).
def test_start_stop_is_prompt_and_frees_the_port() -> None:
    endpoint_before = os.environ.get("AWS_ENDPOINT_URL")
    stack = LocalStack(FIXTURE, port=0, auto_schedules=False, seed=False)
    stack.start()
    port = stack._front.port if stack._front else 0
    assert requests.get(f"{stack.base_url}/_local/health", timeout=5).status_code == 200
    started = time.monotonic()
    stack.stop()
    assert time.monotonic() - started < 3.0
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/_local/health", timeout=2)
    assert port_is_free(port)
    stack.stop()  # idempotent
    assert os.environ.get("AWS_ENDPOINT_URL") == endpoint_before  # the environment is restored


def test_a_busy_port_is_one_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with pytest.raises(LocalStackError, match=f"port {port} on 127.0.0.1 is already in use"):
            LocalStack(FIXTURE, port=port, seed=False).start()


class _NotReady:
    ready = False


def test_everything_but_health_answers_503_until_ready() -> None:
    front = Front(cast(ControlPlane, _NotReady()), port=0)
    try:
        client = Client(front)
        health = client.get("/_local/health")
        assert (health.status_code, health.get_json()) == (503, {"status": "starting"})
        assert client.get("/v1/me").status_code == 503
        assert client.post("/_local/schedules/Every/fire").status_code == 503
    finally:
        front.stop()


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(
        FIXTURE, port=0, auto_schedules=False, seed=False, env_overrides={"FIXTURE_EXTRA": "yes"}
    ) as running:
        yield running


@pytest.fixture(scope="module")
def token() -> str:
    return issue_dev_token("ada", "support", secret=dev_jwt_secret())


def module_of(stack: LocalStack, function_id: str) -> Any:
    module = stack.functions[function_id].module
    assert module is not None
    return module


def resources(stack: LocalStack) -> dict[str, Any]:
    result: dict[str, Any] = requests.get(f"{stack.base_url}/_local/resources", timeout=5).json()
    return result


def queues(stack: LocalStack) -> dict[str, dict[str, int]]:
    result: dict[str, dict[str, int]] = requests.get(f"{stack.base_url}/_local/queues", timeout=5).json()
    return result


def sqs() -> Any:
    return boto3.client("sqs")


# -- HTTP front


def test_jwt_route_rejects_requests_without_a_valid_dev_token(stack: LocalStack) -> None:
    calls = module_of(stack, "ApiFunction").CALLS
    before = len(calls)
    other_secret = issue_dev_token("ada", "support", secret="another-secret-that-is-32-bytes-long!!")
    expired = issue_dev_token(
        "ada", "support", secret=dev_jwt_secret(), now=int(time.time()) - 7200, ttl_seconds=60
    )
    attempts: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": f"Bearer {other_secret}"},
        {"Authorization": f"Bearer {expired}"},
    ]
    for headers in attempts:
        response = requests.get(f"{stack.base_url}/v1/me", headers=headers, timeout=5)
        assert response.status_code == 401, headers
        assert response.json() == {"message": "Unauthorized"}
    assert len(calls) == before, "the function must not run when the authorizer rejects"


def test_jwt_route_passes_claims_and_resolved_environment(stack: LocalStack, token: str) -> None:
    response = requests.get(
        f"{stack.base_url}/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["set-cookie"] == "seen=1; Path=/"
    body = response.json()
    assert body["sub"] == "ada" and body["team"] == "support"
    # Fn::Sub of a parameter and pseudo parameters, resolved into the process environment
    assert body["greeting"] == "hello from parley-local in us-east-1"
    assert body["function"] == "parley-local-ApiFunction"
    assert 0 < body["remaining_ms"] <= 5000  # the template's Timeout
    event = module_of(stack, "ApiFunction").CALLS[-1]
    claims = event["requestContext"]["authorizer"]["jwt"]["claims"]
    # API Gateway hands claims over as strings, numbers included
    assert claims["iss"] == "parley-local" and claims["exp"] == str(claims["exp"])
    assert event["routeKey"] == "GET /v1/me"
    APIGatewayProxyEventV2Model.model_validate(event)

    res = resources(stack)
    assert os.environ["FIXTURE_QUEUE_URL"] == res["WorkQueue"]["url"]
    assert os.environ["FIXTURE_QUEUE_ARN"] == res["WorkQueue"]["arn"]
    assert os.environ["FIXTURE_TABLE"] == "parley-local-RecordsTable"
    assert os.environ["FIXTURE_BUS"] == "parley-local-bus"
    assert os.environ["FIXTURE_EXTRA"] == "yes"
    assert os.environ["PARLEY_PUBLIC_BASE_URL"] == stack.base_url


def test_open_route_gets_a_base64_form_body_and_a_valid_v2_event(stack: LocalStack) -> None:
    response = requests.post(
        f"{stack.base_url}/hooks/sms/a/b%20c?x=1&x=2&y=",
        data={"From": "+14155550100", "Body": "hi there"},
        headers={"X-Twilio-Signature": "sig", "Cookie": "a=1; b=2"},
        timeout=5,
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"  # no statusCode: a 200 JSON body
    assert response.json() == {"kind": "sms", "rest": "a/b c", "base64": True}
    event = module_of(stack, "ApiFunction").CALLS[-1]
    assert event["routeKey"] == "POST /hooks/{kind}/{rest+}"
    assert event["rawPath"] == "/hooks/sms/a/b%20c"
    assert event["rawQueryString"] == "x=1&x=2&y="
    assert event["queryStringParameters"] == {"x": "1,2", "y": ""}
    assert event["pathParameters"] == {"kind": "sms", "rest": "a/b c"}
    assert event["cookies"] == ["a=1", "b=2"] and "cookie" not in event["headers"]
    assert event["headers"]["x-twilio-signature"] == "sig"
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"From=%2B14155550100&Body=hi+there"
    assert "authorizer" not in event["requestContext"]
    parsed = APIGatewayProxyEventV2Model.model_validate(event)
    assert parsed.requestContext.http.method == "POST"
    assert parsed.requestContext.domainName == f"127.0.0.1:{stack.base_url.rsplit(':', 1)[1]}"


def test_json_bodies_are_passed_as_text(stack: LocalStack) -> None:
    response = requests.post(f"{stack.base_url}/hooks/json/x", json={"a": 1}, timeout=5)
    assert response.json()["base64"] is False
    event = module_of(stack, "ApiFunction").CALLS[-1]
    assert json.loads(event["body"]) == {"a": 1}


def test_errors_are_mapped_like_api_gateway(stack: LocalStack) -> None:
    base = stack.base_url
    assert requests.post(f"{base}/hooks/boom/x", timeout=5).status_code == 500
    assert requests.post(f"{base}/hooks/boom/x", timeout=5).json() == {"message": "Internal Server Error"}
    assert requests.post(f"{base}/hooks/bad-body/x", timeout=5).status_code == 500
    missing = requests.get(f"{base}/nowhere", timeout=5)
    assert (missing.status_code, missing.json()) == (404, {"message": "Not Found"})
    wrong_method = requests.get(f"{base}/hooks/sms/x", timeout=5)
    assert wrong_method.status_code == 404
    too_big = requests.post(f"{base}/hooks/big/x", data=b"x" * (10 * 1024 * 1024 + 1), timeout=30)
    assert (too_big.status_code, too_big.json()) == (413, {"message": "Request Entity Too Large"})


# -- SQS event source mapping


def test_queue_message_reaches_the_handler_as_a_lambda_sqs_record(stack: LocalStack) -> None:
    res = resources(stack)
    sqs().send_message(
        QueueUrl=res["WorkQueue"]["url"],
        MessageBody="hello-record",
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "greeting"}},
    )
    records = module_of(stack, "WorkerFunction").RECORDS
    record = wait_for(
        lambda: next((r for r in records if r["body"] == "hello-record"), None), what="the SQS record"
    )
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == res["WorkQueue"]["arn"]
    assert record["awsRegion"] == "us-east-1"
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"]["kind"]["stringValue"] == "greeting"
    assert record["messageAttributes"]["kind"]["dataType"] == "String"
    SqsModel.model_validate({"Records": [record]})
    wait_for(lambda: queues(stack)["WorkQueue"] == {"visible": 0, "in_flight": 0, "delayed": 0}, what="drain")


def test_poison_message_is_retried_then_dead_lettered(stack: LocalStack) -> None:
    res = resources(stack)
    sqs().send_message(QueueUrl=res["WorkQueue"]["url"], MessageBody="poison")
    sqs().send_message(QueueUrl=res["WorkQueue"]["url"], MessageBody="fine-neighbour")
    wait_for(
        lambda: queues(stack)["WorkDLQ"]["visible"] == 1, timeout=15, what="the poison message in WorkDLQ"
    )
    records = module_of(stack, "WorkerFunction").RECORDS
    counts = [r["attributes"]["ApproximateReceiveCount"] for r in records if r["body"] == "poison"]
    assert counts == ["1", "2"]  # maxReceiveCount 2 in the fixture, then moto redrives
    assert sum(r["body"] == "fine-neighbour" for r in records) == 1  # partial batch: the good one was deleted
    assert queues(stack)["WorkQueue"] == {"visible": 0, "in_flight": 0, "delayed": 0}
    dead = sqs().receive_message(QueueUrl=res["WorkDLQ"]["url"], WaitTimeSeconds=1)["Messages"]
    assert [m["Body"] for m in dead] == ["poison"]
    sqs().delete_message(QueueUrl=res["WorkDLQ"]["url"], ReceiptHandle=dead[0]["ReceiptHandle"])


# -- EventBridge


def test_put_events_reaches_an_sqs_target_with_an_aws_shaped_envelope(stack: LocalStack) -> None:
    res = resources(stack)
    result = boto3.client("events").put_events(
        Entries=[
            {
                "EventBusName": res["FixtureBus"]["name"],
                "Source": "fixture.app",
                "DetailType": "Forward",
                "Detail": json.dumps({"n": 7}),
            }
        ]
    )
    assert result["FailedEntryCount"] == 0
    messages = sqs().receive_message(QueueUrl=res["EventsQueue"]["url"], WaitTimeSeconds=2)["Messages"]
    envelope = json.loads(messages[0]["Body"])
    assert envelope["account"] == "123456789012"
    assert envelope["detail"] == {"n": 7} and envelope["detail-type"] == "Forward"
    EventBridgeModel.model_validate(envelope)
    sqs().delete_message(QueueUrl=res["EventsQueue"]["url"], ReceiptHandle=messages[0]["ReceiptHandle"])


def test_rule_with_a_lambda_target_invokes_the_function_with_the_envelope(stack: LocalStack) -> None:
    events = module_of(stack, "ListenerFunction").EVENTS
    boto3.client("events").put_events(
        Entries=[
            {
                "EventBusName": resources(stack)["FixtureBus"]["name"],
                "Source": "fixture.app",
                "DetailType": "Ping",
                "Detail": json.dumps({"ping": "pong"}),
            }
        ]
    )
    envelope = wait_for(
        lambda: next((e for e in events if e["detail"] == {"ping": "pong"}), None), what="Ping"
    )
    EventBridgeModel.model_validate(envelope)
    assert envelope["source"] == "fixture.app"


# -- schedules and control endpoints


def test_fire_merges_the_schedule_input_with_overrides(stack: LocalStack) -> None:
    base = stack.base_url
    fired = requests.post(f"{base}/_local/schedules/Every/fire", json={"n": 2, "extra": "x"}, timeout=5)
    assert fired.status_code == 200
    assert fired.json() == {"got": {"kind": "tick", "n": 2, "extra": "x"}}
    by_id = requests.post(f"{base}/_local/schedules/TickFunctionEvery/fire", timeout=5)
    assert by_id.json() == {"got": {"kind": "tick", "n": 1}}
    # ScheduleV2 without Input: {} merged with the overrides
    assert stack.fire("Nightly", {"day": "2024-05-31"}) == {"got": {"day": "2024-05-31"}}
    # SAM Schedule (an EventBridge rule) without Input: the scheduled-event envelope
    legacy = stack.fire("Legacy")["got"]
    assert legacy["detail-type"] == "Scheduled Event" and legacy["source"] == "aws.events"
    unknown = requests.post(f"{base}/_local/schedules/Nope/fire", timeout=5)
    assert unknown.status_code == 404 and "Every" in unknown.json()["message"]
    assert requests.post(f"{base}/_local/schedules/Every/fire", data="[1]", timeout=5).status_code == 400


def test_health_resources_and_queue_depths(stack: LocalStack) -> None:
    base = stack.base_url
    health = requests.get(f"{base}/_local/health", timeout=5)
    assert health.status_code == 200
    assert health.json()["status"] == "ok" and health.json()["api"] == base

    table = resources(stack)["RecordsTable"]
    assert table["name"] == "parley-local-RecordsTable"
    described = boto3.client("dynamodb").describe_table(TableName=table["name"])["Table"]
    assert [g["IndexName"] for g in described["GlobalSecondaryIndexes"]] == ["gsi1"]
    ttl = boto3.client("dynamodb").describe_time_to_live(TableName=table["name"])["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at"

    url = resources(stack)["EventsQueue"]["url"]
    sqs().send_message(QueueUrl=url, MessageBody="depth")
    assert queues(stack)["EventsQueue"] == {"visible": 1, "in_flight": 0, "delayed": 0}
    message = sqs().receive_message(QueueUrl=url)["Messages"][0]
    assert queues(stack)["EventsQueue"] == {"visible": 0, "in_flight": 1, "delayed": 0}
    sqs().delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    assert set(queues(stack)) >= {"WorkQueue", "WorkDLQ", "EventsQueue", "ListenerFunctionOnPingBridgeQueue"}


def test_reset_empties_queues_and_recreates_resources(stack: LocalStack) -> None:
    url = resources(stack)["EventsQueue"]["url"]
    sqs().send_message(QueueUrl=url, MessageBody="left over")
    assert queues(stack)["EventsQueue"]["visible"] == 1
    stack.reset()
    assert queues(stack)["EventsQueue"] == {"visible": 0, "in_flight": 0, "delayed": 0}
    assert boto3.client("dynamodb").describe_table(TableName="parley-local-RecordsTable")["Table"]
    # the pollers came back: the worker still consumes its queue
    sqs().send_message(QueueUrl=resources(stack)["WorkQueue"]["url"], MessageBody="after-reset")
    records = module_of(stack, "WorkerFunction").RECORDS
    wait_for(lambda: any(r["body"] == "after-reset" for r in records), what="a record after reset")


def test_a_second_stack_in_the_same_process_is_refused(stack: LocalStack) -> None:
    with pytest.raises(LocalStackError, match="another LocalStack"):
        LocalStack(FIXTURE, port=0, seed=False).start()
    assert requests.get(f"{stack.base_url}/_local/health", timeout=5).status_code == 200


@pytest.mark.parametrize(
    ("expression", "timezone", "expected"),
    [
        ("cron(30 2 ? * MON-FRI *)", "Europe/Paris", "2026-03-30T02:30:00+02:00"),  # after the DST switch
        ("cron(15 0 * * ? *)", "UTC", "2026-03-28T00:15:00+00:00"),
        ("cron(0 10 ? * 1 *)", "UTC", "2026-03-29T10:00:00+00:00"),  # AWS day 1 is Sunday
        ("cron(0 12 ? * 6L *)", "UTC", "2026-04-24T12:00:00+00:00"),  # last Friday, strictly after now
        ("cron(0 9 ? * 2#1 *)", "UTC", "2026-04-06T09:00:00+00:00"),  # first Monday
        ("cron(0 0 1 1 ? 2030)", "UTC", "2030-01-01T00:00:00+00:00"),
        ("rate(5 minutes)", "UTC", "2026-03-27T12:05:00+00:00"),
    ],
)
def test_schedule_expressions_follow_aws_semantics(expression: str, timezone: str, expected: str) -> None:
    now = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)  # a Friday
    assert parse_expression(expression, timezone)(now) == datetime.fromisoformat(expected)


@pytest.mark.parametrize("expression", ["cron(0 0 * * *)", "rate(0 minutes)", "every 5 minutes"])
def test_bad_schedule_expressions_are_refused(expression: str) -> None:
    with pytest.raises(ScheduleError):
        parse_expression(expression, "UTC")


# -- CLI


def test_cli_token_prints_a_verifiable_dev_token(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["token", "--user", "grace", "--team", "ops", "--ttl", "600"]) == 0
    claims = verify_dev_token(capsys.readouterr().out.strip(), secret=dev_jwt_secret())
    assert (claims["sub"], claims["team"], claims["exp"] - claims["iat"]) == ("grace", "ops", 600)


def test_cli_token_with_teams_and_admin_reaches_the_api_as_api_gateway_renders_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli_main(["token", "--user", "grace", "--teams", "sales,support", "--admin"]) == 0
    claims = verify_dev_token(capsys.readouterr().out.strip(), secret=dev_jwt_secret())
    assert (claims["teams"], claims["team"], claims["roles"]) == (["sales", "support"], "sales", ["admin"])
    rendered = claims_as_api_gateway(claims)  # what the local front hands the function
    assert (rendered["teams"], rendered["roles"]) == ("[sales support]", "[admin]")
    assert Caller.from_claims(rendered) == Caller("grace", frozenset({"sales", "support"}), admin=True)


def test_cli_token_needs_a_team(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["token", "--user", "grace"]) == 2
    assert "--teams" in capsys.readouterr().err


@pytest.mark.parametrize("day", ["bad", "2024-02-30", "2024-5-1"])
def test_cli_digest_rejects_a_bad_day_in_one_line(day: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["digest", "--day", day, "--url", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("parley: ") and err.count("\n") == 1, err


def test_cli_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["digest"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("parley: digest: ") and err.count("\n") == 1, err


def test_cli_sim_sms_against_a_stopped_port_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    base = f"http://127.0.0.1:{free_port()}"
    code = cli_main(
        ["sim", "sms", "--from", "+14155550100", "--to", "+15005550006", "--body", "hi", "--url", base]
    )
    assert code == 1
    expected = f"parley: can't reach the local stack at {base} — is `make dev` running?\n"
    assert capsys.readouterr().err == expected


# `parley digest` against the API it drives: tests/integration/test_cli_digest.py


# -- the clock (tests control time; see local/README.md)


def test_the_clock_moves_for_every_handler_in_the_process_and_returns_to_real_time(stack: LocalStack) -> None:
    url = f"{stack.base_url}/_local/clock"
    assert requests.get(url, timeout=5).json()["real_time"] is True
    night = datetime(2026, 1, 14, 23, tzinfo=ZoneInfo("America/Los_Angeles"))
    try:
        state = requests.post(url, json={"now": night.isoformat()}, timeout=5).json()
        assert state["real_time"] is False
        assert abs(datetime.fromisoformat(state["now"]) - night) < timedelta(seconds=5)
        assert abs(clock.utc_now() - night) < timedelta(seconds=5)  # what the handlers read
        later = requests.post(url, json={"advance_seconds": 3600}, timeout=5).json()
        assert later["offset_seconds"] == pytest.approx(state["offset_seconds"] + 3600)
        for bad in (
            {"now": "2026-01-14T23:00:00"},  # no zone: which 23:00?
            {"now": "tonight"},
            {"advance_seconds": "60"},
            {"advance_seconds": True},
            {"now": night.isoformat(), "advance_seconds": 1},
            {},
        ):
            response = requests.post(url, json=bad, timeout=5)
            assert response.status_code == 400, bad
        assert requests.get(url, timeout=5).json()["offset_seconds"] == later["offset_seconds"]
    finally:
        back = requests.delete(url, timeout=5)
    assert back.status_code == 200 and back.json()["real_time"] is True
    assert clock.offset() == timedelta(0)


def test_moving_the_clock_back_forgets_rate_buckets(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bucket charged while the clock ran ahead would refill nothing until real time caught up."""
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(
        TableName="clock-rate-limits",
        KeySchema=[{"AttributeName": "number", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "number", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    monkeypatch.setenv("PARLEY_RATE_LIMITS_TABLE", "clock-rate-limits")
    try:
        stack.advance_clock(3600)
        dynamodb.put_item(TableName="clock-rate-limits", Item={"number": {"S": "+15005550006"}})
        stack.advance_clock(60)  # forward: the bucket stays
        assert dynamodb.scan(TableName="clock-rate-limits")["Count"] == 1
        stack.reset_clock()  # back
        assert dynamodb.scan(TableName="clock-rate-limits")["Count"] == 0
    finally:
        stack.reset_clock()
        dynamodb.delete_table(TableName="clock-rate-limits")


def test_aws_faults_are_added_listed_and_cleared_over_http(stack: LocalStack) -> None:
    """local/faults.py's control endpoint (the e2e suite, tests/e2e/test_faults.py, makes them fire)."""
    url = f"{stack.base_url}/_local/faults"
    spec = {"service": "sqs", "operation": "SendMessage", "queue": "WorkQueue", "error": "crash", "skip": 2}
    try:
        added = requests.post(url, json=spec, timeout=5)
        assert added.status_code == 201, added.text
        assert added.json()["queue"] == resources(stack)["WorkQueue"]["name"]  # the logical id, resolved
        assert [f["id"] for f in requests.get(url, timeout=5).json()["faults"]] == [added.json()["id"]]
        for bad in ({"service": "sqs"}, {"service": "sqs", "error": "crash", "function": "Nope"}, []):
            response = requests.post(url, json=bad, timeout=5)
            assert response.status_code == 400, bad
    finally:
        cleared = requests.delete(url, timeout=5)
    assert cleared.status_code == 200 and len(cleared.json()["cleared"]) == 1
    assert stack.active_faults() == []


def test_python_dash_m_local_runs_the_stack_until_sigterm() -> None:
    """`python -m local local` end to end in a child process: banner, health, clean exit on SIGTERM."""
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("AWS_ENDPOINT_URL", None)
    command = [sys.executable, "-m", "local", "local", "--template", str(FIXTURE), "--port", str(port)]
    child = subprocess.Popen(
        [*command, "--no-seed", "--no-schedules"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def healthy() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{port}/_local/health", timeout=5).status_code == 200
            except (requests.ConnectionError, requests.Timeout):  # still starting (slow on a busy machine)
                assert child.poll() is None, child.stdout.read() if child.stdout else ""
                return False

        wait_for(healthy, timeout=90, what="the CLI stack to become healthy")
        child.send_signal(signal.SIGTERM)
        output, _ = child.communicate(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0, output
    assert f"http://127.0.0.1:{port}/_local/health" in output
    token = output.split("Dev token", 1)[1].split("\n")[1].strip().removeprefix("export TOKEN=")
    assert verify_dev_token(token, secret=dev_jwt_secret())["sub"] == "dev"
    assert port_is_free(port)
