"""Alarms, the alarm topic and the dashboard: every queue and every function is watched, and paged."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

pytestmark = pytest.mark.template

Resources = dict[str, dict[str, Any]]
PLACEHOLDER = re.compile(r"\$\{([^!}][^}]*)\}")


def _of_type(template: dict[str, Any], rtype: str) -> Resources:
    return {lid: r for lid, r in template["Resources"].items() if r["Type"] == rtype}


def _alarms(cfn: dict[str, Any]) -> Resources:
    return _of_type(cfn, "AWS::CloudWatch::Alarm")


def _metrics(alarm: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(namespace, metric, {dimension: value}) for every metric the alarm reads, simple or math."""
    props = alarm["Properties"]
    if "MetricName" in props:
        stats = [{"Namespace": props["Namespace"], "MetricName": props["MetricName"], **props}]
    else:
        stats = [q["MetricStat"]["Metric"] for q in props["Metrics"] if "MetricStat" in q]
    return [
        (s["Namespace"], s["MetricName"], {d["Name"]: d["Value"] for d in s.get("Dimensions", [])})
        for s in stats
    ]


def _watching(cfn: dict[str, Any], namespace: str, metric: str, dimension: str, value: Any) -> Resources:
    return {
        lid: alarm
        for lid, alarm in _alarms(cfn).items()
        if any(
            (ns, name) == (namespace, metric) and dims.get(dimension) == value
            for ns, name, dims in _metrics(alarm)
        )
    }


def _dead_letter_queues(cfn: dict[str, Any]) -> set[str]:
    queues = _of_type(cfn, "AWS::SQS::Queue")
    targets = {
        q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for q in queues.values()
        if "RedrivePolicy" in q["Properties"]
    }
    return targets & set(queues)


def _work_queues(cfn: dict[str, Any]) -> set[str]:
    return set(_of_type(cfn, "AWS::SQS::Queue")) - _dead_letter_queues(cfn)


def test_every_queue_is_either_a_work_queue_with_a_dead_letter_queue_or_a_dead_letter_queue(
    cfn: dict[str, Any],
) -> None:
    queues = _of_type(cfn, "AWS::SQS::Queue")
    work = _work_queues(cfn)
    assert work and _dead_letter_queues(cfn)
    assert all("RedrivePolicy" in queues[q]["Properties"] for q in work)


def test_every_dead_letter_queue_alarms_as_soon_as_it_holds_a_message(cfn: dict[str, Any]) -> None:
    for queue in _dead_letter_queues(cfn):
        alarms = _watching(
            cfn,
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            "QueueName",
            {"Fn::GetAtt": [queue, "QueueName"]},
        )
        assert alarms, f"{queue} has no not-empty alarm"
        props = [a["Properties"] for a in alarms.values()]
        # the sweep drains most DLQs within the minute: letters read from it count as well
        read = {name for alarm in alarms.values() for _, name, _ in _metrics(alarm)}
        assert "NumberOfMessagesReceived" in read, queue
        assert any(
            p["ComparisonOperator"] == "GreaterThanThreshold" and p["Threshold"] == 0 for p in props
        ), queue


def test_every_work_queue_alarms_on_its_oldest_message(cfn: dict[str, Any]) -> None:
    for queue in _work_queues(cfn):
        alarms = _watching(
            cfn, "AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", {"Fn::GetAtt": [queue, "QueueName"]}
        )
        assert alarms, f"{queue} has no oldest-message alarm"
        retention = cfn["Resources"][queue]["Properties"]["MessageRetentionPeriod"]
        for alarm in alarms.values():
            # well before a message could expire unseen
            assert 0 < alarm["Properties"]["Threshold"] < retention / 4, queue


@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_every_function_has_an_errors_and_a_throttles_alarm(
    source: dict[str, Any], cfn: dict[str, Any], metric: str
) -> None:
    functions = set(_of_type(source, "AWS::Serverless::Function")) | set(
        _of_type(cfn, "AWS::Lambda::Function")
    )
    assert "WebhookFunction" in functions
    for function in functions:
        alarms = _watching(cfn, "AWS/Lambda", metric, "FunctionName", {"Ref": function})
        assert alarms, f"{function} has no {metric} alarm"
        assert all(a["Properties"]["Threshold"] == 0 for a in alarms.values())


def test_every_alarm_notifies_the_alarm_topic_and_chooses_how_missing_data_counts(
    cfn: dict[str, Any],
) -> None:
    topics = _of_type(cfn, "AWS::SNS::Topic")
    assert "AlarmTopic" in topics
    alarms = _alarms(cfn)
    assert len(alarms) >= 20
    for lid, alarm in alarms.items():
        props = alarm["Properties"]
        assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}], lid
        assert props["OKActions"] == [{"Ref": "AlarmTopic"}], lid
        assert props["TreatMissingData"] in {"notBreaching", "breaching", "ignore", "missing"}, lid
        assert props["AlarmName"]["Fn::Sub"].startswith("${AWS::StackName}-"), lid


def test_cloudwatch_may_publish_to_the_alarm_topic_and_nobody_else_is_granted(cfn: dict[str, Any]) -> None:
    policies = _of_type(cfn, "AWS::SNS::TopicPolicy")
    (policy,) = (p for p in policies.values() if {"Ref": "AlarmTopic"} in p["Properties"]["Topics"])
    allows = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert [s["Principal"] for s in allows] == [{"Service": "cloudwatch.amazonaws.com"}]
    assert allows[0]["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    # The AWS managed key would stop CloudWatch from publishing at all.
    key = cfn["Resources"]["AlarmTopic"]["Properties"].get("KmsMasterKeyId", "")
    assert "alias/aws/sns" not in str(key)


def test_the_email_subscription_exists_only_when_an_address_is_given(source: dict[str, Any]) -> None:
    parameter = source["Parameters"]["AlarmEmail"]
    assert parameter["Default"] == ""
    assert re.fullmatch(parameter["AllowedPattern"], "")
    assert re.fullmatch(parameter["AllowedPattern"], "ops@example.com")
    assert not re.fullmatch(parameter["AllowedPattern"], "not an address")
    subscriptions = _of_type(source, "AWS::SNS::Subscription")
    assert subscriptions
    for subscription in subscriptions.values():
        assert subscription["Condition"] == "HasAlarmEmail"
        assert subscription["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}
        assert subscription["Properties"]["TopicArn"] == {"Ref": "AlarmTopic"}
    condition = source["Conditions"]["HasAlarmEmail"]
    assert condition == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}


def test_api_error_rates_read_the_http_api_s_own_stage(source: dict[str, Any], cfn: dict[str, Any]) -> None:
    stage = source["Resources"]["ParleyHttpApi"]["Properties"]["StageName"]
    for metric in ("5xx", "4xx"):
        alarms = _watching(cfn, "AWS/ApiGateway", metric, "ApiId", {"Ref": "ParleyHttpApi"})
        assert alarms, metric
        for alarm in alarms.values():
            read = {(name, dims["Stage"]) for ns, name, dims in _metrics(alarm)}
            assert read == {(metric, stage), ("Count", stage)}
            expression = next(q for q in alarm["Properties"]["Metrics"] if q.get("ReturnData"))
            assert "IF(" in expression["Expression"], "a minimum volume before a rate can page"


def test_send_failure_rate_and_digest_alarms_use_the_metric_contract(cfn: dict[str, Any]) -> None:
    stage = {"Ref": "Stage"}
    (rate,) = _watching(cfn, "Parley", "MessagesFailed", "Stage", stage).values()
    assert {name for _, name, _ in _metrics(rate)} == {"MessagesSent", "MessagesFailed"}
    assert all(dims == {"Stage": stage} for _, _, dims in _metrics(rate))
    assert all(q["MetricStat"]["Period"] == 900 for q in rate["Properties"]["Metrics"] if "MetricStat" in q)
    (incomplete,) = _watching(cfn, "Parley", "DigestRunIncomplete", "Stage", stage).values()
    assert incomplete["Properties"]["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert incomplete["Properties"]["Threshold"] == 1
    (failed,) = _watching(cfn, "Parley", "DigestRecordsFailed", "Stage", stage).values()
    assert (failed["Properties"]["ComparisonOperator"], failed["Properties"]["Threshold"]) == (
        "GreaterThanThreshold",
        0,
    )


def _dashboard_body(source: dict[str, Any]) -> str:
    (dashboard,) = _of_type(source, "AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    assert isinstance(body, str)
    return body


def test_dashboard_body_is_valid_json_once_substituted(source: dict[str, Any]) -> None:
    body = _dashboard_body(source)
    names = set(PLACEHOLDER.findall(body))
    known = set(source["Resources"]) | set(source["Parameters"]) | {"AWS::Region", "AWS::AccountId"}
    assert {n.split(".")[0] for n in names} <= known, "a placeholder names nothing in the template"
    parsed = json.loads(PLACEHOLDER.sub(lambda m: m.group(1).replace(".", "-"), body))
    widgets = parsed["widgets"]
    assert {w["type"] for w in widgets} >= {"metric", "alarm", "text"}
    for widget in widgets:
        assert widget["x"] >= 0 and widget["x"] + widget["width"] <= 24
        rows = widget["properties"].get("metrics", [])
        assert widget["type"] != "metric" or (rows and widget["properties"]["region"])
        ids = [row[-1]["id"] for row in rows if isinstance(row[-1], dict) and "id" in row[-1]]
        assert len(ids) == len(set(ids)), widget["properties"]["title"]
        for row in rows:
            # CloudWatch's shape: [namespace, metric, dimension, value, ..., {options}], or [{expression}]
            assert isinstance(row, list), widget["properties"]["title"]
            if isinstance(row[0], dict):
                assert len(row) == 1 and {"expression", "id"} <= set(row[0]), row
                assert re.fullmatch(r"[a-z][A-Za-z0-9_]*", row[0]["id"]), row


def test_dashboard_shows_every_queue_every_function_and_every_alarm(
    source: dict[str, Any], cfn: dict[str, Any]
) -> None:
    body = _dashboard_body(source)
    for queue in _of_type(source, "AWS::SQS::Queue"):
        assert f"${{{queue}.QueueName}}" in body, queue
    for function in _of_type(source, "AWS::Serverless::Function"):
        for metric in ("Errors", "Throttles", "Duration"):
            assert _charted(body, metric, function), (function, metric)
    for alarm in _alarms(cfn):
        assert f"${{{alarm}.Arn}}" in body, alarm
    for metric in ("WebhookReceived", "WebhookRejected", "MessagesSuppressed", "DigestConflicts"):
        assert f"{metric}" in body, metric


def _charted(body: str, metric: str, function: str) -> bool:
    """Whether some widget charts `metric` for `function` (a metric row names both)."""
    parsed = json.loads(PLACEHOLDER.sub(lambda m: m.group(1).replace(".", "-"), body))
    for widget in parsed["widgets"]:
        for row in widget["properties"].get("metrics", []):
            if isinstance(row, list) and metric in row and function in row:
                return True
    return False


def _parley_dimension_sets(source: dict[str, Any], cfn: dict[str, Any]) -> list[tuple[str, frozenset[str]]]:
    """(metric, dimensions besides Stage) for every Parley metric an alarm or the dashboard reads."""
    used = [
        (name, frozenset(dims) - {"Stage"})
        for alarm in _alarms(cfn).values()
        for ns, name, dims in _metrics(alarm)
        if ns == "Parley"
    ]
    body = _dashboard_body(source)
    for schema, name in re.findall(r"SEARCH\('\{Parley,([^}]*)\} MetricName=\\\"(\w+)\\\"", body):
        used.append((name, frozenset(schema.split(",")) - {"Stage"}))
    parsed = json.loads(PLACEHOLDER.sub(lambda m: m.group(1).replace(".", "-"), body))
    for widget in parsed["widgets"]:
        namespace, keys = "?", []  # a "." repeats the row above's value, however many rows up
        for row in widget["properties"].get("metrics", []):
            if not (isinstance(row[0], str) and len(row) > 2):
                continue
            namespace = namespace if row[0] == "." else row[0]
            keys = [k for k in row[2:-1:2] if k != "."] or keys
            if namespace == "Parley":
                used.append((row[1], frozenset(keys) - {"Stage"}))
    return used


def test_parley_metrics_are_read_with_the_dimensions_they_are_emitted_with(
    source: dict[str, Any], cfn: dict[str, Any]
) -> None:
    from parley.observability import DIMENSIONS

    used = _parley_dimension_sets(source, cfn)
    assert {name for name, _ in used} >= set(DIMENSIONS), set(DIMENSIONS) - {n for n, _ in used}
    for name, dims in used:
        assert name in DIMENSIONS, f"{name} is not a metric Parley emits"
        assert dims in {frozenset(s) for s in DIMENSIONS[name]}, (name, sorted(dims), DIMENSIONS[name])
