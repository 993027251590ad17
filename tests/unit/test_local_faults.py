"""local/faults.py: AWS-side faults for the local stack, against a moto server as the local stack runs it.

Not moto's in-process `mock_aws`: botocore runs every `before-send` handler, so its stubber would still
apply a request a fault has already answered with an error."""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from local.faults import BadFault, FaultInjector, SimulatedCrash, guard, running_as
from local.lambdas import FunctionError, LocalFunction
from local.plan import FunctionSpec

TABLE = "parley-local-MessagesTable"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def injector(monkeypatch: pytest.MonkeyPatch, moto_url: str) -> Iterator[FaultInjector]:
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    requests.post(f"{moto_url}/moto-api/reset", timeout=10).raise_for_status()
    faults = FaultInjector({"MessagesTable": TABLE}, ["SendFunction", "ApiFunction"])
    faults.activate()  # before any client below is made
    try:
        dynamodb().create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield faults
    finally:
        faults.deactivate()


def dynamodb() -> Any:
    return boto3.client("dynamodb", region_name="us-east-1")


def put(client: Any, item_id: str, text: str = "hello") -> None:
    client.put_item(TableName=TABLE, Item={"id": {"S": item_id}, "text": {"S": text}})


def stored(item_id: str) -> bool:
    return "Item" in dynamodb().get_item(TableName=TABLE, Key={"id": {"S": item_id}})


def fault(**spec: Any) -> dict[str, Any]:
    return {"service": "dynamodb", "operation": "PutItem", "table": "MessagesTable", **spec}


def test_a_throttle_outlasting_the_sdk_retries_raises_the_modeled_exception(injector: FaultInjector) -> None:
    client = dynamodb()
    injector.add(fault(error="ProvisionedThroughputExceededException", count=50))

    with running_as("SendFunction"), pytest.raises(client.exceptions.ProvisionedThroughputExceededException):
        put(client, "a")

    (active,) = injector.active()
    assert active["fired"] == active["seen"] > 1  # every attempt the SDK made was throttled
    assert not stored("a")


def test_a_throttle_within_the_sdk_retries_is_retried_away(injector: FaultInjector) -> None:
    client = dynamodb()
    injector.add(fault(error="ProvisionedThroughputExceededException", count=1))

    with running_as("SendFunction"):
        put(client, "a")

    assert stored("a")
    assert injector.active() == []  # spent


def test_only_calls_made_inside_a_function_are_candidates(injector: FaultInjector) -> None:
    client = dynamodb()
    injector.add(fault(error="crash"))

    put(client, "a")  # the runtime's own call, not a handler's

    assert stored("a")
    assert injector.active()[0]["seen"] == 0


def test_skip_lets_the_first_writes_through_and_a_crash_is_not_caught_by_the_code(
    injector: FaultInjector,
) -> None:
    client = dynamodb()
    injector.add(fault(error="crash", skip=1))

    with running_as("SendFunction"):
        put(client, "claim")
        with pytest.raises(SimulatedCrash):
            try:
                put(client, "accepted")
            except Exception:  # what the code under test may do; a crash goes through it
                pytest.fail("the crash was caught as an Exception")

    assert stored("claim") and not stored("accepted")


def test_filters_name_the_function_the_table_and_a_substring_of_the_parameters(
    injector: FaultInjector,
) -> None:
    client = dynamodb()
    injector.add(fault(error="crash", function="SendFunction", match="+14155550799"))

    with running_as("ApiFunction"):
        put(client, "other-function", "+14155550799")
    with running_as("SendFunction"):
        put(client, "other-customer", "+14155550100")
        client.get_item(TableName=TABLE, Key={"id": {"S": "x"}})  # another operation
        with pytest.raises(SimulatedCrash):
            put(client, "this-one", "+14155550799")


def test_a_transaction_matches_the_tables_it_writes(injector: FaultInjector) -> None:
    client = dynamodb()
    injector.add(
        {"service": "dynamodb", "table": "MessagesTable", "error": "InternalServerError", "count": 9}
    )

    with running_as("SendFunction"), pytest.raises(client.exceptions.InternalServerError):
        client.transact_write_items(TransactItems=[{"Put": {"TableName": TABLE, "Item": {"id": {"S": "t"}}}}])


def test_other_services_answer_in_their_own_protocol(injector: FaultInjector) -> None:
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    injector.add({"service": "sqs", "operation": "SendMessage", "error": "KmsThrottled", "count": 9})

    with running_as("ApiFunction"), pytest.raises(sqs.exceptions.KmsThrottled):
        sqs.send_message(QueueUrl=url, MessageBody="x")


def test_a_timeout_never_reaches_aws(injector: FaultInjector) -> None:
    from botocore.exceptions import ConnectTimeoutError

    client = dynamodb()
    injector.add(fault(error="timeout", count=9))

    with running_as("SendFunction"), pytest.raises(ConnectTimeoutError):
        put(client, "a")
    assert not stored("a")


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"error": "crash"}, "service is required"),
        ({"service": "dynamodb"}, "error is required"),
        ({"service": "dynamodb", "error": "not a code!"}, "error must be"),
        ({"service": "dynamodb", "error": "crash", "function": "Nope"}, "no function 'Nope'"),
        ({"service": "dynamodb", "error": "crash", "count": 0}, "count must be"),
        ({"service": "dynamodb", "error": "crash", "skip": -1}, "skip must be"),
        ({"service": "dynamodb", "error": "crash", "status": 200}, "status must be"),
        ({"service": "dynamodb", "error": "crash", "tabel": "x"}, "unknown field(s) tabel"),
    ],
)
def test_a_bad_fault_is_refused_with_the_reason(spec: dict[str, Any], reason: str) -> None:
    with pytest.raises(BadFault, match=reason.replace("(", r"\(").replace(")", r"\)")):
        FaultInjector({}, ["SendFunction"]).add(spec)


def test_clear_returns_and_drops_every_fault() -> None:
    faults = FaultInjector({"MessagesTable": TABLE})
    added = faults.add(fault(error="crash"))
    assert added["table"] == TABLE  # the logical id, resolved

    assert [f["id"] for f in faults.clear()] == [added["id"]]
    assert faults.active() == []


def test_a_crashed_invocation_is_a_function_error(injector: FaultInjector, tmp_path: Path) -> None:
    package = f"faultpkg_{uuid.uuid4().hex[:8]}"
    code_dir = tmp_path / package
    code_dir.mkdir()
    (code_dir / "__init__.py").write_text("")
    (code_dir / "app.py").write_text(
        textwrap.dedent(
            f"""
            import boto3

            def handler(event, context):
                client = boto3.client("dynamodb", region_name="us-east-1")
                try:
                    client.put_item(TableName="{TABLE}", Item={{"id": {{"S": "from-handler"}}}})
                except Exception:
                    return "caught"
                return "done"
            """
        )
    )
    spec = FunctionSpec(
        logical_id="SendFunction",
        name="parley-local-SendFunction",
        arn="arn:aws:lambda:us-east-1:123456789012:function:parley-local-SendFunction",
        code_dir=code_dir,
        handler="app.handler",
        timeout=30,
        memory=128,
        runtime="python3.11",
        environment={},
    )
    function = LocalFunction(spec)
    guard(function)
    injector.add(fault(error="crash"))

    with pytest.raises(FunctionError) as raised:
        function.invoke({}, trigger="test")

    assert raised.value.error_type == "FunctionCrashed"
    assert function.invoke({}, trigger="test") == "done"  # spent: the next invocation is fine
