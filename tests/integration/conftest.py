"""Adapters against moto (in-process), one fresh account per test."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import botocore.session
import pynamodb.connection.base
import pytest
from moto import mock_aws

from local.moto_atomic import make_dynamodb_requests_atomic
from parley.adapters.dynamo import bind_tables, create_all_tables
from parley.config import Settings


@pytest.fixture(scope="package", autouse=True)
def _one_botocore_session() -> Iterator[None]:
    """Share one botocore session among pynamodb's connections while these tests run.

    pynamodb builds a session per connection, and each new session parses the DynamoDB service model
    again (about 0.15 s); with seven tables per test that dominated the suite. The session is made on
    first use, after moto is imported, so moto's hooks are in it. Behaviour is otherwise unchanged.
    """
    shared: list[botocore.session.Session] = []

    def get_session() -> botocore.session.Session:
        if not shared:
            shared.append(botocore.session.get_session())
        return shared[0]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pynamodb.connection.base, "get_session", get_session)
        yield


@pytest.fixture
def moto_account(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fresh moto account with test credentials, whatever AWS endpoint or profile the shell has."""
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    make_dynamodb_requests_atomic()  # DynamoDB is atomic per request; moto under threads is not
    with mock_aws():
        yield


@pytest.fixture
def aws_settings(monkeypatch: pytest.MonkeyPatch, moto_account: None) -> Iterator[Settings]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    urls = {n: sqs.create_queue(QueueName=n)["QueueUrl"] for n in ("inbound", "send", "retry")}
    boto3.client("events", region_name="us-east-1").create_event_bus(Name="parley-test")
    settings = Settings(
        messages_table="t-messages",
        conversations_table="t-conversations",
        contacts_table="t-contacts",
        templates_table="t-templates",
        numbers_table="t-numbers",
        receipts_table="t-receipts",
        digests_table="t-digests",
        rate_limits_table="t-rate-limits",
        inbound_queue_url=urls["inbound"],
        send_queue_url=urls["send"],
        retry_queue_url=urls["retry"],
        event_bus_name="parley-test",
    )
    bind_tables(settings)
    create_all_tables()
    yield settings
