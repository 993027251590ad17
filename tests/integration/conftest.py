"""Adapters against moto (in-process), one fresh account per test."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from parley.adapters.dynamo import bind_tables, create_all_tables
from parley.config import Settings


@pytest.fixture
def aws_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
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
            inbound_queue_url=urls["inbound"],
            send_queue_url=urls["send"],
            retry_queue_url=urls["retry"],
            event_bus_name="parley-test",
        )
        bind_tables(settings)
        create_all_tables()
        yield settings
