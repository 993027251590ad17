"""template.yaml: cfn-lint, `sam validate --lint`, and the structural rules the system relies on."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # samtranslator raises NoRegionFound without it

from cfnlint.api import ManualArgs, lint  # noqa: E402

from parley.adapters import dynamo  # noqa: E402
from parley.config import Settings  # noqa: E402

pytestmark = pytest.mark.template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"

TABLES = {
    "MessagesTable",
    "ConversationsTable",
    "ContactsTable",
    "TemplatesTable",
    "NumbersTable",
    "ReceiptsTable",
    "DigestsTable",
    "OptOutsTable",
    "RateLimitsTable",
}
FUNCTIONS = {
    "WebhookFunction",
    "InboundProcessorFunction",
    "SendFunction",
    "RetryFunction",
    "DigestFunction",
    "ApiFunction",
    "WebFunction",
}
API_ROUTES = {
    ("get", "/v1/conversations"),
    ("get", "/v1/conversations/{number}/messages"),
    ("post", "/v1/conversations/read"),
    ("post", "/v1/conversations/{number}/read"),
    ("post", "/v1/conversations/{number}/close"),
    ("post", "/v1/conversations/{number}/reopen"),
    ("post", "/v1/conversations/{number}/contact"),
    ("post", "/v1/messages"),
    ("get", "/v1/messages/{message_id}"),
    ("get", "/v1/messages/{message_id}/media/{index}"),
    ("post", "/v1/messages/preview"),
    ("get", "/v1/numbers"),
    ("post", "/v1/records"),
    ("get", "/v1/records"),
    ("get", "/v1/records/{record_id}"),
    ("put", "/v1/records/{record_id}"),
    ("post", "/v1/messages/{message_id}/cancel"),
    ("post", "/v1/messages/resend"),
    ("post", "/v1/messages/{message_id}/resend"),
    ("get", "/v1/messages"),
    ("post", "/v1/messages/delete"),
    ("post", "/v1/messages/restore"),
    ("post", "/v1/messages/{message_id}/reply"),
    ("post", "/v1/messages/reply"),
    ("post", "/v1/messages/{message_id}/forward"),
    ("post", "/v1/messages/{message_id}/reschedule"),
    ("get", "/v1/templates"),
    ("post", "/v1/templates"),
    ("get", "/v1/templates/{template_id}"),
    ("put", "/v1/templates/{template_id}"),
    ("delete", "/v1/templates/{template_id}"),
    ("get", "/v1/crm/conflicts"),
    ("post", "/v1/crm/conflicts/{conflict_id}/resolve"),
    ("post", "/v1/crm/digest"),
    ("get", "/v1/crm/digest/{day}"),
    ("post", "/v1/crm/log"),
    ("get", "/v1/crm/auto-log"),
    ("put", "/v1/crm/auto-log"),
    ("get", "/v1/openapi.json"),
    ("post", "/v1/erasures"),
}
PUBLIC_API_ROUTES = {("get", "/v1/openapi.json")}  # the API's own description, readable without a token
WEBHOOK_ROUTE = ("post", "/webhooks/{carrier}/{kind}")
WEB_ROUTES = {("get", "/"), ("get", "/ui/{file+}")}  # the web inbox's files: public, the page signs in
JWT_AUTHORIZER = "ParleyJwt"


def _of_type(tpl: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in tpl["Resources"].items() if r["Type"] == type_}


def _ref_target(value: Any) -> str | None:
    """Logical id behind {"Ref": X} or {"Fn::GetAtt": [X, attr]} (also the "X.attr" string form)."""
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            att = value["Fn::GetAtt"]
            return str(att[0] if isinstance(att, list) else att.split(".")[0])
    return None


def _function_globals(source: dict[str, Any]) -> dict[str, Any]:
    return source.get("Globals", {}).get("Function", {})


# ---------------------------------------------------------------- linters


def test_cfn_lint_reports_no_errors_or_warnings() -> None:
    matches = lint(TEMPLATE.read_text(), config=ManualArgs(regions=["us-east-1"]))
    bad = [m for m in matches if m.rule.id[0] in "EW"]
    assert bad == [], "cfn-lint:\n" + "\n".join(str(m) for m in bad)


def _sam_executable() -> str | None:
    found = shutil.which("sam")
    if found:
        return found
    local = ROOT / ".venv-sam" / "bin" / "sam"
    return str(local) if local.exists() else None


def test_sam_validate_lint_passes() -> None:
    sam = _sam_executable()
    assert sam is not None, "SAM CLI not on PATH nor in .venv-sam/bin: run `make test`, which installs it"
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    result = subprocess.run(
        [sam, "validate", "--lint", "--region", "us-east-1", "--template-file", str(TEMPLATE)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "is a valid SAM Template" in output, output


# ---------------------------------------------------------------- functions and code


def test_every_expected_function_is_declared(source: dict[str, Any]) -> None:
    assert set(_of_type(source, "AWS::Serverless::Function")) == FUNCTIONS


@pytest.mark.parametrize("function_id", sorted(FUNCTIONS))
def test_function_code_folder_and_handler_exist(source: dict[str, Any], function_id: str) -> None:
    props = source["Resources"][function_id]["Properties"]
    code_dir = ROOT / props["CodeUri"]
    assert code_dir.is_dir(), f"{function_id}: CodeUri {props['CodeUri']} is not a folder"

    module, _, func = props["Handler"].rpartition(".")
    module_file = code_dir / (module.replace(".", "/") + ".py")
    assert module_file.is_file(), f"{function_id}: handler module {module_file} missing"

    tree = ast.parse(module_file.read_text(), filename=str(module_file))
    defined = {
        node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    } | {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    assert func in defined, f"{function_id}: {module_file} defines no top-level {func!r}"


def test_layer_is_built_by_sam_from_layers_common(source: dict[str, Any]) -> None:
    layer = source["Resources"]["CommonLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["ContentUri"].rstrip("/") == "layers/common"
    assert layer["Metadata"]["BuildMethod"] == _function_globals(source)["Runtime"]
    assert (ROOT / "layers/common/requirements.txt").is_file()
    assert (ROOT / "layers/common/parley/__init__.py").is_file()
    assert _function_globals(source)["Layers"] == [{"Ref": "CommonLayer"}]


# ---------------------------------------------------------------- environment


def _carrier_options() -> set[str]:
    """PARLEY_<CARRIER>_<OPTION> names the carrier plugins read through CarrierConfig."""
    names: set[str] = set()
    for module in (ROOT / "layers/common/parley/carriers").glob("*.py"):
        source = module.read_text()
        for option in re.findall(r"""(?:get|secret|secrets|secret_list)\(\s*["']([a-z0-9_]+)["']""", source):
            names.add(f"PARLEY_{option.upper()}")
            names.add(f"PARLEY_{option.upper()}_PARAM")  # a secret's SSM parameter name
    return names


def test_global_env_names_are_settings_fields_or_carrier_options(source: dict[str, Any]) -> None:
    names = set(_function_globals(source)["Environment"]["Variables"])
    fields = {f"PARLEY_{name.upper()}" for name in Settings.model_fields} | _carrier_options()
    app_names = {n for n in names if not (n.startswith("POWERTOOLS_") or n == "LOG_LEVEL")}
    unknown = sorted(app_names - fields)
    assert unknown == [], f"env vars in Globals that neither Settings nor a carrier reads: {unknown}"
    assert "PARLEY_MESSAGES_TABLE" in app_names  # the check above is not vacuous


# Only these may be set per function. Send and Retry name our status-callback URL, and only functions
# that are not API integrations can reference the API without a dependency cycle. The webhook alone
# names Twilio's optional shared keys: it alone verifies webhooks, so it alone may read them. Each
# means the same thing in every function, so one process hosting them all locally is unaffected.
PER_FUNCTION_ENV_ALLOWED = {"PARLEY_PUBLIC_BASE_URL", "PARLEY_TWILIO_SHARED_KEYS_PARAM"}


def test_no_function_overrides_the_shared_environment(source: dict[str, Any]) -> None:
    # one process hosts every function locally: per-function env values would leak between them
    overriding = {
        lid: set(r["Properties"]["Environment"]["Variables"]) - PER_FUNCTION_ENV_ALLOWED
        for lid, r in _of_type(source, "AWS::Serverless::Function").items()
        if "Environment" in r["Properties"]
    }
    assert {lid: names for lid, names in overriding.items() if names} == {}


def test_only_the_webhook_names_twilio_s_shared_keys_and_the_name_is_a_carrier_option(
    source: dict[str, Any],
) -> None:
    named = {
        lid: r["Properties"]["Environment"]["Variables"]["PARLEY_TWILIO_SHARED_KEYS_PARAM"]
        for lid, r in _of_type(source, "AWS::Serverless::Function").items()
        if "PARLEY_TWILIO_SHARED_KEYS_PARAM" in r["Properties"].get("Environment", {}).get("Variables", {})
    }
    assert named == {"WebhookFunction": {"Fn::Sub": "/parley/${Stage}/twilio/shared-keys"}}
    assert "PARLEY_TWILIO_SHARED_KEYS_PARAM" in _carrier_options()


def test_global_env_points_at_every_table_queue_bus_and_bucket(source: dict[str, Any]) -> None:
    env = _function_globals(source)["Environment"]["Variables"]
    referenced = {_ref_target(v) for v in env.values()}
    queues = {lid for lid in _of_type(source, "AWS::SQS::Queue") if not lid.endswith("DLQ")}
    expected = TABLES | queues | {"ParleyBus", "MediaBucket"}
    assert expected - referenced == set()


# ---------------------------------------------------------------- queues


def test_every_work_queue_has_a_dead_letter_queue(source: dict[str, Any]) -> None:
    queues = _of_type(source, "AWS::SQS::Queue")
    dlqs = {lid for lid in queues if lid.endswith("DLQ")}
    work = set(queues) - dlqs
    assert work, "no work queues found"
    for lid in sorted(work):
        redrive = queues[lid]["Properties"].get("RedrivePolicy")
        assert redrive, f"{lid} has no RedrivePolicy"
        target = _ref_target(redrive["deadLetterTargetArn"])
        assert target in dlqs, f"{lid} dead-letters to {target!r}, not a DLQ"
        assert 1 <= int(redrive["maxReceiveCount"]) <= 1000
    used = {_ref_target(queues[lid]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]) for lid in work}
    assert len(used) == len(work), "work queues share a DLQ"


def test_every_queue_is_encrypted(source: dict[str, Any]) -> None:
    queues = _of_type(source, "AWS::SQS::Queue")
    assert [lid for lid, q in queues.items() if q["Properties"].get("SqsManagedSseEnabled") is not True] == []


def _esms(cfn: dict[str, Any]) -> dict[str, dict[str, Any]]:
    esms = _of_type(cfn, "AWS::Lambda::EventSourceMapping")
    assert esms, "no event source mappings in the transformed template"
    return esms


def test_every_sqs_event_source_reports_batch_item_failures(cfn: dict[str, Any]) -> None:
    for lid, esm in _esms(cfn).items():
        assert "ReportBatchItemFailures" in esm["Properties"].get("FunctionResponseTypes", []), lid


def test_queue_visibility_is_at_least_six_times_the_consumer_timeout(cfn: dict[str, Any]) -> None:
    queues = _of_type(cfn, "AWS::SQS::Queue")
    for lid, esm in _esms(cfn).items():
        queue_id = _ref_target(esm["Properties"]["EventSourceArn"])
        function_id = _ref_target(esm["Properties"]["FunctionName"])
        assert queue_id in queues, f"{lid}: source {queue_id!r} is not a queue in the template"
        visibility = int(queues[queue_id]["Properties"].get("VisibilityTimeout", 30))
        timeout = int(cfn["Resources"][function_id]["Properties"].get("Timeout", 3))
        assert visibility >= 6 * timeout, f"{queue_id}: visibility {visibility} < 6 x {function_id} {timeout}"


def test_each_work_queue_has_exactly_its_consumer(cfn: dict[str, Any]) -> None:
    consumers = {
        _ref_target(esm["Properties"]["EventSourceArn"]): _ref_target(esm["Properties"]["FunctionName"])
        for esm in _esms(cfn).values()
    }
    assert consumers == {
        "InboundQueue": "InboundProcessorFunction",
        "SendQueue": "SendFunction",
        "RetryQueue": "RetryFunction",
        "DigestQueue": "DigestFunction",
    }


# ---------------------------------------------------------------- events


def test_send_message_rule_targets_the_send_queue_with_a_dlq(source: dict[str, Any]) -> None:
    rule = source["Resources"]["SendMessageRule"]["Properties"]
    assert _ref_target(rule["EventBusName"]) == "ParleyBus"
    assert rule["EventPattern"] == {"detail-type": ["SendMessage"]}
    (target,) = rule["Targets"]
    assert _ref_target(target["Arn"]) == "SendQueue"
    assert _ref_target(target["DeadLetterConfig"]["Arn"]) == "SendDLQ"
    assert "RetryPolicy" in target

    policy = source["Resources"]["SendQueuePolicy"]["Properties"]
    assert {_ref_target(q) for q in policy["Queues"]} == {"SendQueue", "SendDLQ"}
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert _ref_target(statement["Condition"]["ArnEquals"]["aws:SourceArn"]) == "SendMessageRule"


def test_no_eventbridge_rule_targets_a_lambda(cfn: dict[str, Any]) -> None:
    # moto's PutEvents fails for every event when any rule has a Lambda target (local runtime)
    functions = set(_of_type(cfn, "AWS::Lambda::Function"))
    for lid, rule in _of_type(cfn, "AWS::Events::Rule").items():
        for target in rule["Properties"].get("Targets", []):
            assert _ref_target(target["Arn"]) not in functions, f"{lid} targets a Lambda function"


def test_schedules_are_stage_scoped(cfn: dict[str, Any]) -> None:
    schedules = _of_type(cfn, "AWS::Scheduler::Schedule")
    assert set(schedules) == {
        "RetryFunctionSweep",
        "RetryFunctionMissedInbound",
        "DigestFunctionNightly",
        "DigestFunctionCrmSync",
        "DigestFunctionRetention",
    }
    for lid, schedule in schedules.items():
        name = schedule["Properties"]["Name"]
        assert isinstance(name, dict) and "${Stage}" in name["Fn::Sub"], f"{lid}: name {name!r} not per stage"
    nightly = schedules["DigestFunctionNightly"]["Properties"]
    assert nightly["ScheduleExpression"] == {"Ref": "DigestCron"}
    assert nightly["ScheduleExpressionTimezone"] == {"Ref": "OrgTimezone"}
    sync = schedules["DigestFunctionCrmSync"]["Properties"]
    assert sync["ScheduleExpression"] == "rate(15 minutes)"
    assert json.loads(sync["Target"]["Input"]) == {"sync": "crm"}
    missed = schedules["RetryFunctionMissedInbound"]["Properties"]
    assert missed["ScheduleExpression"] == "rate(15 minutes)"  # the sweep looks back an hour
    assert json.loads(missed["Target"]["Input"]) == {"task": "missed-inbound"}
    assert _ref_target(missed["Target"]["Arn"]) == "RetryFunction"


# ---------------------------------------------------------------- IAM


def _statements(cfn: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for lid, r in cfn["Resources"].items():
        props = r.get("Properties", {})
        docs = [p["PolicyDocument"] for p in props.get("Policies", [])]
        if "PolicyDocument" in props:
            docs.append(props["PolicyDocument"])
        if "AssumeRolePolicyDocument" in props:
            docs.append(props["AssumeRolePolicyDocument"])
        for doc in docs:
            statements = doc["Statement"]
            for st in statements if isinstance(statements, list) else [statements]:
                found.append((lid, st))
    return found


def test_no_iam_statement_uses_a_wildcard_action(cfn: dict[str, Any]) -> None:
    statements = _statements(cfn)
    assert len(statements) > len(FUNCTIONS)
    for lid, st in statements:
        actions = st.get("Action", []) or st.get("NotAction", [])
        actions = [actions] if isinstance(actions, str) else actions
        assert actions, f"{lid}: statement without Action"
        assert [a for a in actions if "*" in str(a)] == [], f"{lid}: wildcard action in {st}"


def _queues_a_role_may_send_to(cfn: dict[str, Any], role_id: str) -> set[str]:
    queues: set[str] = set()
    for lid, st in _statements(cfn):
        actions = st.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if lid != role_id or st.get("Effect") != "Allow" or "sqs:SendMessage" not in actions:
            continue
        resources = st.get("Resource", [])
        for resource in resources if isinstance(resources, list) else [resources]:
            if isinstance(resource, dict) and "Fn::GetAtt" in resource:
                queues.add(resource["Fn::GetAtt"][0])
    return queues


def test_the_inbound_processor_may_queue_keyword_answers_and_receipt_retries(cfn: dict[str, Any]) -> None:
    """Moto does not enforce IAM, so only this test sees a STOP confirmation refused in AWS."""
    allowed = _queues_a_role_may_send_to(cfn, "InboundProcessorFunctionRole")
    assert {"SendQueue", "RetryQueue"} <= allowed


# Each CRM secret's SecureString, named by the convention parley.crm.config follows.
CRM_SECRETS = (
    "signing-secret",
    "salesforce-access-token",
    "salesforce-client-secret",
    "hubspot-token",
    "dynamics-access-token",
    "dynamics-client-secret",
)


def _ssm_parameter_paths(cfn: dict[str, Any], role_id: str) -> set[str]:
    """SSM parameters a role may read, through its own statements or a managed policy of ours."""
    arns = cfn["Resources"][role_id]["Properties"].get("ManagedPolicyArns", [])
    sources = {role_id} | {a["Ref"] for a in arns if isinstance(a, dict) and "Ref" in a}
    paths = set()
    for lid, st in _statements(cfn):
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        if lid in sources and any(a.startswith("ssm:") for a in actions):
            resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            for res in resources:
                text = res["Fn::Sub"] if isinstance(res, dict) else res
                match = re.search(r":parameter(/.*)$", text)
                assert match, f"{role_id}: SSM resource {text!r} is not one parameter"
                paths.add(match.group(1))
    return paths


def test_secrets_are_read_from_exactly_their_ssm_parameters(cfn: dict[str, Any]) -> None:
    carriers = {
        f"/parley/${{Stage}}/{name}"
        for name in (
            "twilio/auth-token",
            "telnyx/api-key",
            "vonage/api-secret",
            "vonage/signature-secret",
            "vonage/messages-signature-secret",
            "bandwidth/password",
            "bandwidth/callback-password",
            "plivo/auth-token",
        )
    }
    # the secrets that verify webhooks, and their value during a rotation (docs/deploy.md)
    rotated = ("twilio/auth-token", "vonage/signature-secret", "vonage/messages-signature-secret")
    rotated += ("bandwidth/callback-password", "plivo/auth-token")
    carriers |= {f"/parley/${{Stage}}/{name}/previous" for name in rotated}
    crm = {f"/parley/${{Stage}}/crm/{name}" for name in ("config", *CRM_SECRETS)}
    expected = {
        # Twilio's optional shared keys (HMAC-SHA256) verify webhooks only, so only the webhook reads them
        "WebhookFunction": carriers | {"/parley/${Stage}/twilio/shared-keys"},
        "InboundProcessorFunction": carriers,
        "SendFunction": carriers,
        "RetryFunction": carriers,
        "DigestFunction": crm,
        "ApiFunction": crm,  # resolving a CRM conflict posts that day at once
        "WebFunction": {"/parley/${Stage}/web/config"},  # the web inbox's sign-in settings, no secret
    }
    actual = {fn: _ssm_parameter_paths(cfn, f"{fn}Role") for fn in FUNCTIONS}
    assert actual == expected


# ---------------------------------------------------------------- HTTP API


def _routes(cfn: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    body = cfn["Resources"]["ParleyHttpApi"]["Properties"]["Body"]
    return {(method, path): op for path, ops in body["paths"].items() for method, op in ops.items()}


def test_http_api_routes_are_exactly_the_api_and_the_webhook(cfn: dict[str, Any]) -> None:
    assert set(_routes(cfn)) == API_ROUTES | {WEBHOOK_ROUTE} | WEB_ROUTES


def test_webhook_route_has_no_authorizer(cfn: dict[str, Any]) -> None:
    op = _routes(cfn)[WEBHOOK_ROUTE]
    schemes = {name for requirement in op.get("security", []) for name in requirement}
    assert schemes <= {"NONE"}, f"webhook route is behind {schemes}"
    assert "WebhookFunction.Arn" in op["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]


def test_every_v1_route_but_the_public_ones_requires_the_jwt_authorizer(cfn: dict[str, Any]) -> None:
    routes = _routes(cfn)
    v1 = {key for key in routes if key[1].startswith("/v1/")}
    assert v1 == API_ROUTES
    for key in sorted(v1 - PUBLIC_API_ROUTES):
        assert routes[key].get("security") == [{JWT_AUTHORIZER: []}], f"{key} is not JWT-protected"
    for key in sorted(PUBLIC_API_ROUTES):
        schemes = {name for requirement in routes[key].get("security", []) for name in requirement}
        assert schemes <= {"NONE"}, f"{key} is behind {schemes}"
    scheme = cfn["Resources"]["ParleyHttpApi"]["Properties"]["Body"]["components"]["securitySchemes"]
    authorizer = scheme[JWT_AUTHORIZER]["x-amazon-apigateway-authorizer"]
    assert authorizer["type"] == "jwt"
    assert authorizer["identitySource"] == "$request.header.Authorization"
    expected = {"issuer": {"Ref": "JwtIssuer"}, "audience": {"Ref": "JwtAudience"}}
    assert authorizer["jwtConfiguration"] == expected


# ---------------------------------------------------------------- data


@pytest.mark.parametrize("table_id", sorted(TABLES))
def test_table_is_on_demand_recoverable_encrypted_and_retained(source: dict[str, Any], table_id: str) -> None:
    table = source["Resources"][table_id]
    props = table["Properties"]
    assert table["Type"] == "AWS::DynamoDB::Table"
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
    assert "TableName" not in props, "a fixed TableName collides between stages"


_MODELS = {
    "MessagesTable": dynamo.MessageItem,
    "ConversationsTable": dynamo.ConversationItem,
    "ContactsTable": dynamo.ContactItem,
    "TemplatesTable": dynamo.TemplateItem,
    "NumbersTable": dynamo.NumberItem,
    "ReceiptsTable": dynamo.ReceiptItem,
    "DigestsTable": dynamo.ConflictItem,  # shares the table with DigestItem, and carries its index
    "OptOutsTable": dynamo.OptOutItem,
    "RateLimitsTable": dynamo.RateLimitItem,
}


@pytest.mark.parametrize("table_id", sorted(TABLES))
def test_table_keys_and_indexes_match_the_code(source: dict[str, Any], table_id: str) -> None:
    """Tests and benches create tables from the pynamodb models; the deployed ones come from here."""
    props = source["Resources"][table_id]["Properties"]
    model = _MODELS[table_id]
    declared = {
        gsi["IndexName"]: (_keys(gsi["KeySchema"]), gsi["Projection"]["ProjectionType"])
        for gsi in props.get("GlobalSecondaryIndexes", [])
    }
    in_code = {
        index.Meta.index_name: (
            _keys(index._get_schema()["key_schema"]),
            index.Meta.projection.projection_type,
        )
        for index in model._indexes.values()
    }
    assert declared == in_code
    assert _keys(props["KeySchema"]) == _keys(model._get_schema()["key_schema"])


def _keys(schema: list[dict[str, str]]) -> dict[str, str]:
    return {k["KeyType"]: k["AttributeName"] for k in schema}


def test_tables_are_exactly_the_declared_set(source: dict[str, Any]) -> None:
    assert set(_of_type(source, "AWS::DynamoDB::Table")) == TABLES


def test_messages_table_indexes(source: dict[str, Any]) -> None:
    props = source["Resources"]["MessagesTable"]["Properties"]
    keys = {
        gsi["IndexName"]: tuple(k["AttributeName"] for k in gsi["KeySchema"])
        for gsi in props["GlobalSecondaryIndexes"]
    }
    assert keys == {
        "by-conversation": ("customer_number", "created_at"),
        "by-carrier-ref": ("carrier_ref",),
        "by-view": ("view", "created_at"),
        "by-due": ("due_view", "due_at"),
        "by-team": ("team_box", "created_at"),
        "by-day": ("day_shard", "day_order"),
    }
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


def test_media_bucket_is_private_encrypted_and_retained(source: dict[str, Any]) -> None:
    bucket = source["Resources"]["MediaBucket"]
    props = bucket["Properties"]
    assert bucket["DeletionPolicy"] == "Retain"
    assert all(props["PublicAccessBlockConfiguration"].values())
    assert len(props["PublicAccessBlockConfiguration"]) == 4
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    # its expiry follows RetentionDays: tests/template/test_retention.py


def test_only_the_api_may_read_media_objects_and_only_those(source: dict[str, Any]) -> None:
    """The inbox shows our copies through GET /v1/messages/{message_id}/media/{index}: the API may
    get objects under media/, nothing more, and no other function may read them."""
    readers: dict[str, list[dict[str, Any]]] = {}
    for lid, function in _of_type(source, "AWS::Serverless::Function").items():
        policies = function["Properties"].get("Policies", [])
        statements = [s for p in policies if isinstance(p, dict) for s in p.get("Statement", [])]
        reads = [s for s in statements if "s3:GetObject" in str(s.get("Action"))]
        if reads:
            readers[lid] = reads
    assert set(readers) == {"ApiFunction"}
    (read,) = readers["ApiFunction"]
    assert read["Sid"] == "ReadMessageMedia"
    assert read["Action"] == "s3:GetObject"
    assert read["Resource"] == {"Fn::Sub": "${MediaBucket.Arn}/media/*"}
