"""template.yaml planned the way the local runtime plans it, for tests that read resolved parameters and
environments (SSM parameter values, each function's environment)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # samtranslator raises NoRegionFound without it

from local.plan import StackContext, plan_stack  # noqa: E402
from local.template import load_template  # noqa: E402

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


def planned(parameters: dict[str, str], *, issuer: str = "x", audience: str = "x") -> Any:
    """The stack planned with these parameter values (the JWT ones given, the rest filled in)."""
    template = load_template(
        TEMPLATE, {"JwtIssuer": issuer, "JwtAudience": audience, **parameters}, fill_missing=True
    )
    context = StackContext(
        stack_name="parley-test",
        region="us-east-1",
        account_id="123456789012",
        endpoint_url="https://sqs.us-east-1.amazonaws.com",
        base_url="https://abcdefghij.execute-api.us-east-1.amazonaws.com",
    )
    return plan_stack(template, context)
