"""Lambda refuses a function whose environment variables exceed 4 KB in all: keep clear of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from local.plan import StackContext, plan_stack
from local.template import load_template

pytestmark = pytest.mark.template

ROOT = Path(__file__).resolve().parents[2]
LAMBDA_LIMIT = 4096
# What AWS adds to the names we see locally: a physical-id suffix on each table, bucket and queue
# (CloudFormation appends about 13 characters), and carrier settings that are empty by default but
# hold account ids, topic ARNs and the like once configured.
SUFFIX = 14
CONFIGURED_CARRIERS = 600


def test_every_function_environment_stays_well_under_lambda_s_limit() -> None:
    template = load_template(
        ROOT / "template.yaml", {"JwtIssuer": "x", "JwtAudience": "x"}, fill_missing=True
    )
    context = StackContext(
        stack_name="parley-production-eu-customer-stack",  # a long stack name
        region="ap-southeast-2",
        account_id="123456789012",
        endpoint_url="https://sqs.ap-southeast-2.amazonaws.com",
        base_url="https://abcdefghij.execute-api.ap-southeast-2.amazonaws.com",
    )
    plan = plan_stack(template, context)
    functions = plan.functions.values() if isinstance(plan.functions, dict) else plan.functions
    sizes = {}
    for function in functions:
        env = function.environment
        named = sum(1 for v in env.values() if context.stack_name in v)
        sizes[function.logical_id] = (
            sum(len(k) + len(v) for k, v in env.items()) + named * SUFFIX + CONFIGURED_CARRIERS
        )

    assert sizes and max(sizes.values()) < LAMBDA_LIMIT * 0.9, sizes
