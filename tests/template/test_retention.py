"""Retention in the template: RetentionDays reaches the code, S3 expires the media at the same age,
the sweep is scheduled and may rewrite messages; message items carry no TTL'd body of their own."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from parley.services.retention import MIN_RETENTION_DAYS, retention_days

pytestmark = pytest.mark.template


def test_retention_days_defaults_to_a_year_and_refuses_less_than_the_digest_needs(
    source: dict[str, Any],
) -> None:
    parameter = source["Parameters"]["RetentionDays"]
    pattern = re.compile(parameter["AllowedPattern"])
    assert parameter["Default"] == "365" and pattern.fullmatch(parameter["Default"])
    assert pattern.fullmatch("0") and pattern.fullmatch(str(MIN_RETENTION_DAYS)) and pattern.fullmatch("3650")
    for refused in ("1", "6", "-1", "07", "", "30d"):
        assert not pattern.fullmatch(refused), refused


def test_retention_days_reaches_the_sweep_in_its_schedule_input(source: dict[str, Any]) -> None:
    """Not through the shared environment, which is near Lambda's 4 KB (test_lambda_environment)."""
    variables = source["Globals"]["Function"]["Environment"]["Variables"]
    assert not any("RETENTION" in name for name in variables)
    schedule = source["Resources"]["DigestFunction"]["Properties"]["Events"]["Retention"]["Properties"]
    template = schedule["Input"]["Fn::Sub"]
    assert json.loads(template.replace("${RetentionDays}", "365")) == {"retention": "sweep", "days": 365}
    assert retention_days(json.loads(template.replace("${RetentionDays}", "0"))["days"]) == 0


def test_media_expires_after_retention_days_unless_kept_forever(source: dict[str, Any]) -> None:
    rules = source["Resources"]["MediaBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    (conditional,) = [r for r in rules if "Fn::If" in r]
    condition, if_forever, rule = conditional["Fn::If"]
    assert source["Conditions"][condition] == {"Fn::Equals": [{"Ref": "RetentionDays"}, "0"]}
    assert if_forever == {"Ref": "AWS::NoValue"}
    assert rule["Status"] == "Enabled" and rule["Prefix"] == "media/"
    assert rule["ExpirationInDays"] == {"Ref": "RetentionDays"}


def test_ttl_stays_enabled_on_the_tables_whose_items_expire_whole(source: dict[str, Any]) -> None:
    resources = source["Resources"]
    for table in ("ReceiptsTable", "MessagesTable"):
        ttl = resources[table]["Properties"]["TimeToLiveSpecification"]
        assert ttl == {"AttributeName": "expires_at", "Enabled": True}, table


def test_the_sweep_is_scheduled_and_may_rewrite_messages_only(source: dict[str, Any]) -> None:
    digest = source["Resources"]["DigestFunction"]["Properties"]
    schedule = digest["Events"]["Retention"]
    assert schedule["Type"] == "ScheduleV2"
    assert schedule["Properties"]["ScheduleExpressionTimezone"] == {"Ref": "OrgTimezone"}
    statements = [s for p in digest["Policies"] if isinstance(p, dict) for s in p.get("Statement", [])]
    (rewrite,) = [s for s in statements if s.get("Sid") == "ExpireMessageBodies"]
    assert rewrite["Action"] == "dynamodb:PutItem"
    assert rewrite["Resource"] == {"Fn::GetAtt": ["MessagesTable", "Arn"]}


def test_the_erasure_may_delete_media_objects_only(source: dict[str, Any]) -> None:
    api = source["Resources"]["ApiFunction"]["Properties"]
    statements = [s for p in api["Policies"] if isinstance(p, dict) for s in p.get("Statement", [])]
    (delete,) = [s for s in statements if s.get("Sid") == "EraseCustomerMedia"]
    assert delete["Action"] == "s3:DeleteObject"
    assert delete["Resource"] == {"Fn::Sub": "${MediaBucket.Arn}/media/*"}
    route = api["Events"]["EraseCustomer"]["Properties"]
    assert (route["Method"], route["Path"]) == ("POST", "/v1/erasures")
