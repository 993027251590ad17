"""Create the planned resources in moto, the way CloudFormation would have created them in AWS.

Runs on every start (moto keeps no state) and after `LocalStack.reset()`, so it must work on an empty moto.
Queues are created before any redrive policy is attached because a RedrivePolicy must point at an existing
DLQ.
"""

from __future__ import annotations

import logging
from typing import Any

import boto3
from botocore.config import Config

from local.plan import StackPlan

log = logging.getLogger(__name__)


class ProvisionError(Exception):
    """moto refused a resource; the message names the logical id."""


def client(service: str, plan: StackPlan, config: Config | None = None) -> Any:
    """A boto3 client pinned to this stack's moto (not to whatever AWS_ENDPOINT_URL says later)."""
    return boto3.session.Session().client(
        service, endpoint_url=plan.context.endpoint_url, region_name=plan.context.region, config=config
    )


def provision(plan: StackPlan) -> None:
    _tables(plan)
    _queues(plan)
    _buses_and_rules(plan)
    _buckets(plan)
    _parameters_and_secrets(plan)
    log.info(
        "provisioned in moto: %d tables, %d queues (+%d bridge queues), %d buses, %d rules, %d buckets",
        len(plan.tables),
        len(plan.queues),
        2 * len(plan.bridges),
        len(plan.buses),
        len(plan.rules),
        len(plan.buckets),
    )


def _fail(logical_id: str, what: str, exc: Exception) -> ProvisionError:
    return ProvisionError(f"moto refused {what} for {logical_id}: {exc}")


def _tables(plan: StackPlan) -> None:
    ddb = client("dynamodb", plan)
    for spec in plan.tables.values():
        try:
            ddb.create_table(**spec.create_args)
        except ddb.exceptions.ResourceInUseException:
            log.debug("table %s already exists", spec.name)
        except Exception as exc:
            raise _fail(spec.logical_id, f"table {spec.name}", exc) from exc
        if spec.ttl_attribute:
            ddb.update_time_to_live(
                TableName=spec.name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
            )
            log.debug("table %s: TTL on %s (moto never expires items)", spec.name, spec.ttl_attribute)
        log.debug("table %s (%s) ready", spec.name, spec.logical_id)


def _queues(plan: StackPlan) -> None:
    sqs = client("sqs", plan)
    queues = plan.all_queues
    for spec in queues.values():
        attributes = {k: v for k, v in spec.attributes.items() if k != "RedrivePolicy"}
        try:
            url = sqs.create_queue(QueueName=spec.name, Attributes=attributes)["QueueUrl"]
        except Exception as exc:
            raise _fail(spec.logical_id, f"queue {spec.name}", exc) from exc
        if url != spec.url:
            log.warning("queue %s: moto gave URL %s, the environment has %s", spec.logical_id, url, spec.url)
        log.debug("queue %s (%s) ready at %s", spec.name, spec.logical_id, url)
    for spec in queues.values():
        if "RedrivePolicy" in spec.attributes:
            try:
                sqs.set_queue_attributes(
                    QueueUrl=spec.url, Attributes={"RedrivePolicy": spec.attributes["RedrivePolicy"]}
                )
            except Exception as exc:
                raise _fail(spec.logical_id, "RedrivePolicy", exc) from exc
            log.debug(
                "queue %s: dead-letters to %s after %s receives",
                spec.name,
                spec.dlq_arn,
                spec.max_receive_count,
            )


def _buses_and_rules(plan: StackPlan) -> None:
    events = client("events", plan)
    for bus in plan.buses.values():
        if bus.name == "default":
            continue
        try:
            events.create_event_bus(Name=bus.name)
        except events.exceptions.ResourceAlreadyExistsException:
            log.debug("bus %s already exists", bus.name)
        except Exception as exc:
            raise _fail(bus.logical_id, f"event bus {bus.name}", exc) from exc
    for rule in plan.rules.values():
        try:
            events.put_rule(
                Name=rule.name,
                EventBusName=rule.bus_name,
                EventPattern=rule.pattern,
                State="ENABLED" if rule.enabled else "DISABLED",
            )
            if rule.targets:
                result = events.put_targets(Rule=rule.name, EventBusName=rule.bus_name, Targets=rule.targets)
                if result.get("FailedEntryCount"):
                    raise ProvisionError(f"targets rejected: {result.get('FailedEntries')}")
        except Exception as exc:
            raise _fail(rule.logical_id, f"rule {rule.name} on bus {rule.bus_name}", exc) from exc
        log.debug("rule %s on %s -> %s", rule.name, rule.bus_name, [t["Arn"] for t in rule.targets])


def _buckets(plan: StackPlan) -> None:
    s3 = client("s3", plan)
    for bucket in plan.buckets.values():
        try:
            if plan.context.region == "us-east-1":
                s3.create_bucket(Bucket=bucket.name)
            else:
                s3.create_bucket(
                    Bucket=bucket.name, CreateBucketConfiguration={"LocationConstraint": plan.context.region}
                )
        except (s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
            log.debug("bucket %s already exists", bucket.name)
        except Exception as exc:
            raise _fail(bucket.logical_id, f"bucket {bucket.name}", exc) from exc


def _parameters_and_secrets(plan: StackPlan) -> None:
    if plan.parameters:
        ssm = client("ssm", plan)
        for p in plan.parameters.values():
            ssm.put_parameter(Name=p.name, Value=p.value, Type=p.type, Overwrite=True)
    if plan.secrets:
        sm = client("secretsmanager", plan)
        for s in plan.secrets.values():
            try:
                sm.create_secret(Name=s.name, SecretString=s.value)
            except sm.exceptions.ResourceExistsException:
                sm.put_secret_value(SecretId=s.name, SecretString=s.value)
