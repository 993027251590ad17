"""Turn the transformed template into a local plan: deterministic names, resolved properties, what runs where.

Naming: every physical name is `<stack>-<LogicalId>`
with stack `parley-local`, unless the template names the resource itself (TableName, QueueName, Name, ...), in
which case that resolved name is used. FIFO queues keep the `.fifo` suffix; bucket names are lower-cased to be
valid S3 names. Names are deterministic so logs, `/_local/resources` and moto's console agree across restarts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.template import LoadedTemplate, Registry, Resolver, TemplateError

log = logging.getLogger(__name__)

NAME_PROPERTY = {
    "AWS::DynamoDB::Table": "TableName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::Events::EventBus": "Name",
    "AWS::S3::Bucket": "BucketName",
    "AWS::SSM::Parameter": "Name",
    "AWS::SecretsManager::Secret": "Name",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Lambda::LayerVersion": "LayerName",
    "AWS::Events::Rule": "Name",
    "AWS::Scheduler::Schedule": "Name",
    "AWS::IAM::Role": "RoleName",
    "AWS::SNS::Topic": "TopicName",
}

# Resources that refer to functions: planned after every function is known.
DEFERRED_TYPES = {
    "AWS::ApiGatewayV2::Api",
    "AWS::Events::Rule",
    "AWS::Scheduler::Schedule",
    "AWS::Lambda::EventSourceMapping",
}

# Resources with no local meaning (permissions, roles, stages, alarms): they resolve (Ref), create nothing.
IGNORED_TYPES = {
    "AWS::IAM::Role",
    "AWS::IAM::Policy",
    "AWS::IAM::ManagedPolicy",
    "AWS::Lambda::Permission",
    "AWS::Lambda::LayerVersion",
    "AWS::Lambda::LayerVersionPermission",
    "AWS::Lambda::Version",
    "AWS::Lambda::Alias",
    "AWS::Lambda::EventInvokeConfig",
    "AWS::ApiGatewayV2::Stage",
    "AWS::ApiGatewayV2::Deployment",
    "AWS::ApiGatewayV2::DomainName",
    "AWS::ApiGatewayV2::ApiMapping",
    "AWS::Logs::LogGroup",
    "AWS::Logs::SubscriptionFilter",
    "AWS::SQS::QueuePolicy",
    "AWS::Events::EventBusPolicy",
    "AWS::S3::BucketPolicy",
    "AWS::CloudWatch::Alarm",
    "AWS::CloudWatch::Dashboard",
    "AWS::Scheduler::ScheduleGroup",
    "AWS::KMS::Key",
    "AWS::KMS::Alias",
    "AWS::CDK::Metadata",
}

SQS_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
)

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "x-amazon-apigateway-any-method")
BRIDGE_MAX_RECEIVE = 3  # Lambda async invocation: the first try plus two retries, then the bridge DLQ


@dataclass(frozen=True)
class StackContext:
    stack_name: str
    region: str
    account_id: str
    endpoint_url: str  # moto
    base_url: str  # the local HTTP front


@dataclass(frozen=True)
class TableSpec:
    logical_id: str
    name: str
    arn: str
    create_args: dict[str, Any]
    ttl_attribute: str | None


@dataclass(frozen=True)
class QueueSpec:
    logical_id: str
    name: str
    arn: str
    url: str
    attributes: dict[str, str]
    dlq_arn: str | None = None
    max_receive_count: int | None = None


@dataclass(frozen=True)
class BusSpec:
    logical_id: str
    name: str
    arn: str


@dataclass(frozen=True)
class BucketSpec:
    logical_id: str
    name: str


@dataclass(frozen=True)
class ParameterSpec:
    logical_id: str
    name: str
    value: str
    type: str


@dataclass(frozen=True)
class SecretSpec:
    logical_id: str
    name: str
    value: str


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str
    arn: str
    code_dir: Path | None
    handler: str
    timeout: int
    memory: int
    runtime: str
    environment: dict[str, str]


@dataclass(frozen=True)
class RuleSpec:
    """An event-pattern rule registered in moto; Lambda targets are replaced by their bridge queue."""

    logical_id: str
    name: str
    bus_name: str
    pattern: str
    enabled: bool
    targets: list[dict[str, Any]]


@dataclass(frozen=True)
class BridgeSpec:
    """A rule -> Lambda target, emulated as rule -> SQS bridge queue -> poller -> handler(envelope)."""

    rule_id: str
    target_id: str
    function_id: str
    queue: QueueSpec
    dlq: QueueSpec
    input: str | None
    input_path: str | None
    custom_transformer: bool


@dataclass(frozen=True)
class EsmSpec:
    logical_id: str
    function_id: str
    queue_id: str
    batch_size: int
    report_failures: bool
    enabled: bool


@dataclass(frozen=True)
class ScheduleSpec:
    logical_id: str
    names: tuple[str, ...]  # logical id first, then the SAM event name (what people type)
    expression: str
    timezone: str
    kind: str  # "scheduler" (ScheduleV2) or "rule" (Schedule)
    function_id: str | None
    queue_id: str | None
    input: str | None
    enabled: bool
    rule_arn: str


@dataclass(frozen=True)
class Authorizer:
    name: str
    type: str  # "jwt" or another API Gateway authorizer type (not emulated)
    header: str  # lower-cased header carrying the token


@dataclass(frozen=True)
class RouteSpec:
    api_id: str
    method: str  # GET, POST, ... or ANY
    path: str  # OpenAPI path (/v1/things/{id}) or $default
    function_id: str
    authorizer: Authorizer | None
    scopes: tuple[str, ...]

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"


@dataclass
class StackPlan:
    template: LoadedTemplate
    context: StackContext
    resolver: Resolver
    tables: dict[str, TableSpec] = field(default_factory=dict)
    queues: dict[str, QueueSpec] = field(default_factory=dict)
    buses: dict[str, BusSpec] = field(default_factory=dict)
    buckets: dict[str, BucketSpec] = field(default_factory=dict)
    parameters: dict[str, ParameterSpec] = field(default_factory=dict)
    secrets: dict[str, SecretSpec] = field(default_factory=dict)
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    rules: dict[str, RuleSpec] = field(default_factory=dict)
    bridges: list[BridgeSpec] = field(default_factory=list)
    esms: dict[str, EsmSpec] = field(default_factory=dict)
    schedules: dict[str, ScheduleSpec] = field(default_factory=dict)
    routes: list[RouteSpec] = field(default_factory=list)
    api_ids: dict[str, str] = field(default_factory=dict)  # logical id -> local api id
    notes: list[str] = field(default_factory=list)  # what is not emulated, for one startup warning

    @property
    def all_queues(self) -> dict[str, QueueSpec]:
        """Template queues plus the bridge queues (keyed by their synthetic logical ids)."""
        out = dict(self.queues)
        for bridge in self.bridges:
            out[bridge.queue.logical_id] = bridge.queue
            out[bridge.dlq.logical_id] = bridge.dlq
        return out

    def environment(self) -> tuple[dict[str, str], dict[str, list[str]]]:
        """One environment for the process: the union of every function's variables.

        Returns (variables, clashes): a clash is a name two functions set to different values; locally the
        first function's value wins, so the caller warns about clashes nothing overrides.
        """
        merged: dict[str, str] = {}
        clashes: dict[str, list[str]] = {}
        for fn in self.functions.values():
            for key, value in fn.environment.items():
                if key not in merged:
                    merged[key] = value
                elif merged[key] != value:
                    clashes.setdefault(key, []).append(f"{fn.logical_id}={value!r}")
        return merged, clashes

    def resources_view(self) -> dict[str, dict[str, Any]]:
        """Logical id -> what it is locally (served at /_local/resources)."""
        view: dict[str, dict[str, Any]] = {}
        for t in self.tables.values():
            view[t.logical_id] = {"type": "AWS::DynamoDB::Table", "name": t.name, "arn": t.arn}
        for q in self.all_queues.values():
            view[q.logical_id] = {"type": "AWS::SQS::Queue", "name": q.name, "url": q.url, "arn": q.arn}
        for b in self.buses.values():
            view[b.logical_id] = {"type": "AWS::Events::EventBus", "name": b.name, "arn": b.arn}
        for s in self.buckets.values():
            view[s.logical_id] = {"type": "AWS::S3::Bucket", "name": s.name}
        for p in self.parameters.values():
            view[p.logical_id] = {"type": "AWS::SSM::Parameter", "name": p.name}
        for c in self.secrets.values():
            view[c.logical_id] = {"type": "AWS::SecretsManager::Secret", "name": c.name}
        for f in self.functions.values():
            view[f.logical_id] = {"type": "AWS::Lambda::Function", "name": f.name, "handler": f.handler}
        for r in self.rules.values():
            view[r.logical_id] = {"type": "AWS::Events::Rule", "name": r.name, "bus": r.bus_name}
        for s2 in self.schedules.values():
            view[s2.logical_id] = {"type": "schedule", "names": list(s2.names), "expression": s2.expression}
        for logical_id, api_id in self.api_ids.items():
            view[logical_id] = {"type": "AWS::ApiGatewayV2::Api", "id": api_id, "url": self.context.base_url}
        return view


# ----------------------------------------------------------------------------------------------------


def bucket_name(stack: str, logical_id: str) -> str:
    """S3 names are 3-63 chars of lowercase letters, digits, dots and hyphens."""
    name = re.sub(r"[^a-z0-9-]+", "-", f"{stack}-{logical_id}".lower()).strip("-")
    if len(name) > 63:
        name = name[:54].rstrip("-") + "-" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return name.ljust(3, "0")


def _short(name: str, limit: int) -> str:
    """Keep generated names under AWS length limits, deterministic (hash suffix) when cut."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9]}-{digest}"


def _api_id(logical_id: str) -> str:
    return hashlib.sha1(logical_id.encode()).hexdigest()[:10]


def plan_stack(template: LoadedTemplate, ctx: StackContext) -> StackPlan:
    """Name every resource, then resolve what the provisioner, the front, the pollers and the ticker need."""
    registry = Registry()
    registry.refs.update(
        {
            "AWS::Region": ctx.region,
            "AWS::AccountId": ctx.account_id,
            "AWS::StackName": ctx.stack_name,
            "AWS::StackId": (
                f"arn:aws:cloudformation:{ctx.region}:{ctx.account_id}:stack/{ctx.stack_name}/local"
            ),
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NotificationARNs": [],
        }
    )
    registry.refs.update(template.parameters)
    resolver = Resolver(template.cfn, registry)
    plan = StackPlan(template=template, context=ctx, resolver=resolver)

    enabled = {lid: r for lid, r in template.resources.items() if resolver.resource_enabled(r)}
    _name_resources(enabled, plan, registry)

    for logical_id, resource in enabled.items():
        rtype = resource.get("Type", "")
        props = resource.get("Properties") or {}
        where = logical_id
        if rtype == "AWS::DynamoDB::Table":
            _plan_table(plan, logical_id, resolver.resolve(props, where))
        elif rtype == "AWS::SQS::Queue":
            _plan_queue(plan, logical_id, resolver.resolve(props, where))
        elif rtype == "AWS::Events::EventBus":
            plan.buses[logical_id] = BusSpec(
                logical_id, registry.refs[logical_id], registry.attrs[logical_id]["Arn"]
            )
        elif rtype == "AWS::S3::Bucket":
            plan.buckets[logical_id] = BucketSpec(logical_id, registry.refs[logical_id])
            if props.get("NotificationConfiguration"):
                plan.notes.append(f"{logical_id}: S3 event notifications are not delivered locally")
        elif rtype == "AWS::SSM::Parameter":
            p = resolver.resolve(props, where)
            plan.parameters[logical_id] = ParameterSpec(
                logical_id, registry.refs[logical_id], str(p.get("Value", "")), str(p.get("Type", "String"))
            )
        elif rtype == "AWS::SecretsManager::Secret":
            p = resolver.resolve(props, where)
            value = p.get("SecretString")
            if value is None:
                value = hashlib.sha256(f"{ctx.stack_name}/{logical_id}".encode()).hexdigest()[:32]
                plan.notes.append(f"{logical_id}: GenerateSecretString replaced by a fixed local value")
            plan.secrets[logical_id] = SecretSpec(logical_id, str(registry.refs[logical_id]), str(value))
        elif rtype == "AWS::Lambda::Function":
            _plan_function(plan, logical_id, props)
        elif rtype in DEFERRED_TYPES:
            continue  # planned in the second loop, once every function is known
        elif rtype not in IGNORED_TYPES:
            plan.notes.append(f"{logical_id} ({rtype}) is not emulated")

    for logical_id, resource in enabled.items():
        rtype = resource.get("Type", "")
        props = resource.get("Properties") or {}
        if rtype == "AWS::ApiGatewayV2::Api":
            _plan_api(plan, logical_id, props)
        elif rtype == "AWS::Events::Rule":
            _plan_rule(plan, logical_id, props)
        elif rtype == "AWS::Scheduler::Schedule":
            _plan_scheduler(plan, logical_id, props)
        elif rtype == "AWS::Lambda::EventSourceMapping":
            _plan_esm(plan, logical_id, props)
    return plan


def _name_resources(resources: dict[str, dict[str, Any]], plan: StackPlan, registry: Registry) -> None:
    """Give every resource its Ref/GetAtt values; explicit names may use others, so loop to a fixpoint."""
    ctx = plan.context
    pending = dict(resources)
    while pending:
        progressed = False
        errors: dict[str, TemplateError] = {}
        for logical_id, resource in list(pending.items()):
            try:
                _name_one(logical_id, resource, plan, registry, ctx)
            except TemplateError as exc:
                errors[logical_id] = exc
                continue
            del pending[logical_id]
            progressed = True
        if not progressed:
            first = next(iter(errors.values()))
            raise first


def _name_one(
    logical_id: str, resource: dict[str, Any], plan: StackPlan, registry: Registry, ctx: StackContext
) -> None:
    rtype = resource.get("Type", "")
    props = resource.get("Properties") or {}
    prop = NAME_PROPERTY.get(rtype)
    explicit = plan.resolver.resolve(props[prop], f"{logical_id}.{prop}") if prop and prop in props else None
    default = f"{ctx.stack_name}-{logical_id}"
    region, account = ctx.region, ctx.account_id
    if rtype == "AWS::DynamoDB::Table":
        name = str(explicit or default)
        arn = f"arn:aws:dynamodb:{region}:{account}:table/{name}"
        registry.add(logical_id, name, Arn=arn, StreamArn=f"{arn}/stream/local")
    elif rtype == "AWS::SQS::Queue":
        fifo = str(plan.resolver.resolve(props.get("FifoQueue", False), logical_id)).lower() == "true"
        name = str(explicit or _short(default, 75))
        if fifo and not name.endswith(".fifo"):
            name += ".fifo"
        url = f"{ctx.endpoint_url}/{account}/{name}"
        arn = f"arn:aws:sqs:{region}:{account}:{name}"
        registry.add(logical_id, url, Arn=arn, QueueName=name, QueueUrl=url)
    elif rtype == "AWS::Events::EventBus":
        name = str(explicit or default)
        registry.add(logical_id, name, Arn=f"arn:aws:events:{region}:{account}:event-bus/{name}", Name=name)
    elif rtype == "AWS::S3::Bucket":
        name = str(explicit or bucket_name(ctx.stack_name, logical_id))
        registry.add(
            logical_id,
            name,
            Arn=f"arn:aws:s3:::{name}",
            DomainName=f"{name}.s3.amazonaws.com",
            RegionalDomainName=f"{name}.s3.{region}.amazonaws.com",
        )
    elif rtype == "AWS::SSM::Parameter":
        name = str(explicit or f"/{ctx.stack_name}/{logical_id}")
        value = plan.resolver.resolve(props.get("Value", ""), f"{logical_id}.Value")
        registry.add(logical_id, name, Type=props.get("Type", "String"), Value=value)
    elif rtype == "AWS::SecretsManager::Secret":
        name = str(explicit or default)
        arn = f"arn:aws:secretsmanager:{region}:{account}:secret:{name}"
        registry.add(logical_id, arn, Id=arn, Name=name)
    elif rtype == "AWS::Lambda::Function":
        name = str(explicit or _short(default, 64))
        registry.add(logical_id, name, Arn=f"arn:aws:lambda:{region}:{account}:function:{name}")
    elif rtype == "AWS::Lambda::LayerVersion":
        name = str(explicit or _short(default, 64))
        registry.add(logical_id, f"arn:aws:lambda:{region}:{account}:layer:{name}:1")
    elif rtype == "AWS::ApiGatewayV2::Api":
        api_id = _api_id(logical_id)
        plan.api_ids[logical_id] = api_id
        registry.add(logical_id, api_id, ApiEndpoint=ctx.base_url, ApiId=api_id)
    elif rtype == "AWS::ApiGatewayV2::Stage":
        registry.add(logical_id, props.get("StageName", "$default"))
    elif rtype == "AWS::Events::Rule":
        name = str(explicit or _short(default, 64))
        registry.add(logical_id, name, Arn=f"arn:aws:events:{region}:{account}:rule/{name}")
    elif rtype == "AWS::Scheduler::Schedule":
        name = str(explicit or logical_id)
        registry.add(logical_id, name, Arn=f"arn:aws:scheduler:{region}:{account}:schedule/default/{name}")
    elif rtype == "AWS::IAM::Role":
        name = str(explicit or _short(default, 64))
        registry.add(logical_id, name, Arn=f"arn:aws:iam::{account}:role/{name}", RoleId=name)
    elif rtype == "AWS::SNS::Topic":
        name = str(explicit or default)
        arn = f"arn:aws:sns:{region}:{account}:{name}"
        registry.add(logical_id, arn, TopicArn=arn, TopicName=name)
    else:
        registry.add(logical_id, default)


def _truthy(value: Any) -> bool:
    return str(value).lower() == "true"


def _plan_table(plan: StackPlan, logical_id: str, props: dict[str, Any]) -> None:
    name = plan.resolver.registry.refs[logical_id]
    billing = props.get("BillingMode") or (
        "PROVISIONED" if "ProvisionedThroughput" in props else "PAY_PER_REQUEST"
    )
    args: dict[str, Any] = {
        "TableName": name,
        "KeySchema": props["KeySchema"],
        "AttributeDefinitions": props["AttributeDefinitions"],
        "BillingMode": billing,
    }
    if billing == "PROVISIONED":
        args["ProvisionedThroughput"] = props.get(
            "ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
        )
    gsis = []
    for gsi in props.get("GlobalSecondaryIndexes") or []:
        index = {k: gsi[k] for k in ("IndexName", "KeySchema", "Projection") if k in gsi}
        if billing == "PROVISIONED":
            index["ProvisionedThroughput"] = gsi.get(
                "ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
            )
        gsis.append(index)
    if gsis:
        args["GlobalSecondaryIndexes"] = gsis
    lsis = [
        {k: lsi[k] for k in ("IndexName", "KeySchema", "Projection") if k in lsi}
        for lsi in props.get("LocalSecondaryIndexes") or []
    ]
    if lsis:
        args["LocalSecondaryIndexes"] = lsis
    stream = props.get("StreamSpecification")
    if stream:
        args["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
        plan.notes.append(f"{logical_id}: DynamoDB stream is created but nothing consumes it locally")
    ttl = props.get("TimeToLiveSpecification") or {}
    ttl_attribute = ttl.get("AttributeName") if _truthy(ttl.get("Enabled", False)) else None
    arn = plan.resolver.registry.attrs[logical_id]["Arn"]
    plan.tables[logical_id] = TableSpec(logical_id, name, arn, args, ttl_attribute)


def _plan_queue(plan: StackPlan, logical_id: str, props: dict[str, Any]) -> None:
    attrs = plan.resolver.registry.attrs[logical_id]
    attributes: dict[str, str] = {}
    for key in SQS_ATTRIBUTES:
        if key in props:
            value = props[key]
            attributes[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    dlq_arn: str | None = None
    max_receive: int | None = None
    redrive = props.get("RedrivePolicy")
    if redrive:
        if isinstance(redrive, str):
            redrive = json.loads(redrive)
        dlq_arn = str(redrive["deadLetterTargetArn"])
        max_receive = int(redrive["maxReceiveCount"])
        attributes["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive}
        )
    plan.queues[logical_id] = QueueSpec(
        logical_id, attrs["QueueName"], attrs["Arn"], attrs["QueueUrl"], attributes, dlq_arn, max_receive
    )


def _plan_function(plan: StackPlan, logical_id: str, props: dict[str, Any]) -> None:
    registry = plan.resolver.registry
    code_dir = plan.template.code_dirs.get(logical_id)
    handler = str(props.get("Handler", ""))
    runtime = str(plan.resolver.resolve(props.get("Runtime", ""), f"{logical_id}.Runtime"))
    if code_dir is None:
        plan.notes.append(
            f"{logical_id}: no local CodeUri (inline or S3 code) - the function can't run locally"
        )
    elif runtime and not runtime.startswith("python"):
        plan.notes.append(f"{logical_id}: runtime {runtime} can't run in-process (python only)")
        code_dir = None
    variables = (props.get("Environment") or {}).get("Variables") or {}
    environment: dict[str, str] = {}
    for key, raw in variables.items():
        where = f"{logical_id}.Environment.Variables.{key}"
        value = plan.resolver.resolve(raw, where)
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, str | int | float):
            raise TemplateError(f"{where}: resolved to {value!r}, not a string")
        environment[key] = str(value)
    plan.functions[logical_id] = FunctionSpec(
        logical_id=logical_id,
        name=registry.refs[logical_id],
        arn=registry.attrs[logical_id]["Arn"],
        code_dir=code_dir,
        handler=handler,
        timeout=int(props.get("Timeout", 3)),
        memory=int(props.get("MemorySize", 128)),
        runtime=runtime,
        environment=environment,
    )


def _function_for(plan: StackPlan, value: Any) -> str | None:
    """A function logical id from a resolved name or ARN (qualifiers and /invocations suffixes allowed)."""
    text = str(value)
    match = re.search(r":function:([^:/]+)", text)
    name = match.group(1) if match else text
    for fn in plan.functions.values():
        if fn.name == name:
            return fn.logical_id
    return None


def _queue_for(plan: StackPlan, arn: Any) -> str | None:
    for q in plan.queues.values():
        if arn in (q.arn, q.url):
            return q.logical_id
    return None


def _plan_esm(plan: StackPlan, logical_id: str, props: dict[str, Any]) -> None:
    resolved = plan.resolver.resolve(props, logical_id)
    function_id = _function_for(plan, resolved.get("FunctionName"))
    queue_id = _queue_for(plan, resolved.get("EventSourceArn"))
    if queue_id is None:
        plan.notes.append(
            f"{logical_id}: event source {resolved.get('EventSourceArn')} is not an SQS queue here"
        )
        return
    if function_id is None:
        plan.notes.append(f"{logical_id}: target function {resolved.get('FunctionName')} is unknown")
        return
    batch_size = int(resolved.get("BatchSize", 10))
    if batch_size > 10:
        plan.notes.append(f"{logical_id}: BatchSize {batch_size} polled as 10 (SQS receive limit)")
    if resolved.get("MaximumBatchingWindowInSeconds"):
        plan.notes.append(
            f"{logical_id}: MaximumBatchingWindowInSeconds is ignored (batches form per receive)"
        )
    plan.esms[logical_id] = EsmSpec(
        logical_id=logical_id,
        function_id=function_id,
        queue_id=queue_id,
        batch_size=max(1, min(batch_size, 10)),
        report_failures="ReportBatchItemFailures" in (resolved.get("FunctionResponseTypes") or []),
        enabled=_truthy(resolved.get("Enabled", True)),
    )


def _schedule_names(plan: StackPlan, logical_id: str) -> tuple[str, ...]:
    """Logical id, the physical Name if the template sets one, then the SAM event name (shown in logs)."""
    names = [logical_id]
    physical = plan.resolver.registry.refs.get(logical_id)
    if (
        isinstance(physical, str)
        and physical not in names
        and not physical.startswith(plan.context.stack_name)
    ):
        names.append(physical)
    event = plan.template.sam_events.get(logical_id)
    if event and event.name not in names:
        names.append(event.name)
    return tuple(names)


def _plan_scheduler(plan: StackPlan, logical_id: str, props: dict[str, Any]) -> None:
    resolved = plan.resolver.resolve(props, logical_id)
    target = resolved.get("Target") or {}
    arn = target.get("Arn")
    function_id = _function_for(plan, arn) if ":lambda:" in str(arn) else None
    queue_id = _queue_for(plan, arn)
    if function_id is None and queue_id is None:
        plan.notes.append(f"{logical_id}: schedule target {arn} is not a local function or queue")
        return
    plan.schedules[logical_id] = ScheduleSpec(
        logical_id=logical_id,
        names=_schedule_names(plan, logical_id),
        expression=str(resolved["ScheduleExpression"]),
        timezone=str(resolved.get("ScheduleExpressionTimezone") or "UTC"),
        kind="scheduler",
        function_id=function_id,
        queue_id=queue_id,
        input=target.get("Input"),
        enabled=str(resolved.get("State", "ENABLED")).upper() == "ENABLED",
        rule_arn=plan.resolver.registry.attrs[logical_id]["Arn"],
    )


def _plan_rule(plan: StackPlan, logical_id: str, props: dict[str, Any]) -> None:
    resolved = plan.resolver.resolve(props, logical_id)
    registry = plan.resolver.registry
    enabled = str(resolved.get("State", "ENABLED")).upper() == "ENABLED"
    targets = resolved.get("Targets") or []
    if resolved.get("ScheduleExpression"):
        for index, target in enumerate(targets):
            arn = target.get("Arn")
            function_id = _function_for(plan, arn) if ":lambda:" in str(arn) else None
            queue_id = _queue_for(plan, arn)
            if function_id is None and queue_id is None:
                plan.notes.append(f"{logical_id}: schedule target {arn} is not a local function or queue")
                continue
            if target.get("InputTransformer") or target.get("InputPath"):
                plan.notes.append(
                    f"{logical_id}: InputTransformer/InputPath on a schedule target are ignored"
                )
            schedule_id = logical_id if len(targets) == 1 else f"{logical_id}{index}"
            plan.schedules[schedule_id] = ScheduleSpec(
                logical_id=schedule_id,
                names=_schedule_names(plan, logical_id),
                expression=str(resolved["ScheduleExpression"]),
                timezone="UTC",
                kind="rule",
                function_id=function_id,
                queue_id=queue_id,
                input=target.get("Input"),
                enabled=enabled,
                rule_arn=registry.attrs[logical_id]["Arn"],
            )
        return

    pattern = resolved.get("EventPattern")
    if pattern is None:
        plan.notes.append(f"{logical_id}: rule without EventPattern or ScheduleExpression ignored")
        return
    bus = str(resolved.get("EventBusName") or "default")
    bus_name = bus.rsplit("event-bus/", 1)[-1] if bus.startswith("arn:") else bus
    moto_targets: list[dict[str, Any]] = []
    for target in targets:
        target_id = str(target.get("Id"))
        arn = str(target.get("Arn"))
        if _queue_for(plan, arn) is not None:
            entry: dict[str, Any] = {"Id": target_id, "Arn": arn}
            if target.get("InputTransformer"):
                entry["InputTransformer"] = target["InputTransformer"]
            elif target.get("Input") is not None:
                # moto ignores Input on SQS targets: a transformer with no paths delivers the constant.
                entry["InputTransformer"] = {"InputTemplate": str(target["Input"])}
            elif target.get("InputPath"):
                entry["InputTransformer"] = {
                    "InputPathsMap": {"value": target["InputPath"]},
                    "InputTemplate": "<value>",
                }
            else:
                entry["InputTransformer"] = ENVELOPE_TRANSFORMER
            if target.get("SqsParameters"):
                entry["SqsParameters"] = target["SqsParameters"]
            moto_targets.append(entry)
        elif ":lambda:" in arn and (function_id := _function_for(plan, arn)) is not None:
            bridge = _plan_bridge(plan, logical_id, target_id, function_id, target)
            moto_targets.append(
                {
                    "Id": target_id,
                    "Arn": bridge.queue.arn,
                    "InputTransformer": target.get("InputTransformer") or ENVELOPE_TRANSFORMER,
                }
            )
        else:
            plan.notes.append(f"{logical_id}: target {target_id} ({arn}) is not emulated")
    plan.rules[logical_id] = RuleSpec(
        logical_id=logical_id,
        name=registry.refs[logical_id],
        bus_name=bus_name,
        pattern=json.dumps(pattern),
        enabled=enabled,
        targets=moto_targets,
    )


def _plan_bridge(
    plan: StackPlan, rule_id: str, target_id: str, function_id: str, target: dict[str, Any]
) -> BridgeSpec:
    ctx = plan.context
    suffix = "" if not any(b.rule_id == rule_id for b in plan.bridges) else f"-{len(plan.bridges)}"
    base = _short(f"{ctx.stack_name}-{rule_id}{suffix}", 68)
    timeout = plan.functions[function_id].timeout

    def queue(kind: str, label: str, attributes: dict[str, str], dlq: QueueSpec | None) -> QueueSpec:
        name = f"{base}-{kind}"
        arn = f"arn:aws:sqs:{ctx.region}:{ctx.account_id}:{name}"
        if dlq is not None:
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": dlq.arn, "maxReceiveCount": BRIDGE_MAX_RECEIVE}
            )
        return QueueSpec(
            logical_id=f"{rule_id}{suffix.replace('-', '')}{label}",
            name=name,
            arn=arn,
            url=f"{ctx.endpoint_url}/{ctx.account_id}/{name}",
            attributes=attributes,
            dlq_arn=dlq.arn if dlq else None,
            max_receive_count=BRIDGE_MAX_RECEIVE if dlq else None,
        )

    dlq = queue("bridge-dlq", "BridgeDLQ", {}, None)
    main = queue("bridge", "BridgeQueue", {"VisibilityTimeout": str(timeout + 1)}, dlq)
    input_path = target.get("InputPath")
    if input_path and not re.fullmatch(r"\$(\.[A-Za-z0-9_-]+)*", str(input_path)):
        plan.notes.append(f"{rule_id}: InputPath {input_path} not supported locally (only $.a.b paths)")
        input_path = None
    bridge = BridgeSpec(
        rule_id=rule_id,
        target_id=target_id,
        function_id=function_id,
        queue=main,
        dlq=dlq,
        input=target.get("Input"),
        input_path=input_path,
        custom_transformer=bool(target.get("InputTransformer")),
    )
    plan.bridges.append(bridge)
    return bridge


# moto's SQS delivery drops `account` from the envelope (reference B4); this restores the AWS shape.
ENVELOPE_TRANSFORMER: dict[str, Any] = {
    "InputPathsMap": {
        k: f"$.{k}"
        for k in ("id", "detail-type", "source", "account", "time", "region", "resources", "detail")
    },
    "InputTemplate": (
        '{"version":"0","id":"<id>","detail-type":"<detail-type>","source":"<source>","account":"<account>",'
        '"time":"<time>","region":"<region>","resources":<resources>,"detail":<detail>}'
    ),
}


def _plan_api(plan: StackPlan, logical_id: str, props: dict[str, Any]) -> None:
    body = props.get("Body")
    if not isinstance(body, dict):
        plan.notes.append(
            f"{logical_id}: HTTP API without an inline Body (DefinitionUri/S3) - no local routes"
        )
        return
    body = plan.resolver.resolve(body, f"{logical_id}.Body")
    schemes: dict[str, Any] = (body.get("components") or {}).get("securitySchemes") or {}
    authorizers: dict[str, Authorizer] = {}
    for name, scheme in schemes.items():
        config = scheme.get("x-amazon-apigateway-authorizer") or {}
        source = str(config.get("identitySource") or "$request.header.Authorization")
        header = source.split(",")[0].strip().removeprefix("$request.header.").lower()
        authorizers[name] = Authorizer(
            name=name, type=str(config.get("type", "unknown")).lower(), header=header
        )
        if authorizers[name].type != "jwt":
            plan.notes.append(
                f"{logical_id}: authorizer {name} ({authorizers[name].type}) answers 501 locally"
            )
    default_security = body.get("security")
    for path, operations in (body.get("paths") or {}).items():
        for method_key, operation in operations.items():
            if method_key not in HTTP_METHODS or not isinstance(operation, dict):
                continue
            integration = operation.get("x-amazon-apigateway-integration") or {}
            function_id = _function_for(plan, integration.get("uri", ""))
            if function_id is None:
                plan.notes.append(
                    f"{logical_id}: {method_key.upper()} {path} integration is not a local function"
                )
                continue
            security = operation.get("security", default_security) or []
            authorizer: Authorizer | None = None
            scopes: tuple[str, ...] = ()
            for requirement in security:
                for name, required_scopes in requirement.items():
                    if name in authorizers:
                        authorizer = authorizers[name]
                        scopes = tuple(required_scopes or ())
            method = "ANY" if method_key == "x-amazon-apigateway-any-method" else method_key.upper()
            plan.routes.append(RouteSpec(logical_id, method, path, function_id, authorizer, scopes))
    if body.get("x-amazon-apigateway-cors"):
        plan.notes.append(f"{logical_id}: CORS configuration is not emulated (no preflight answers)")
