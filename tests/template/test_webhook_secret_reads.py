"""The webhook tells an unused carrier (404) from a misconfigured one (503) by reading the carrier's
settings from SSM: each read must be one its role allows with the call it uses, or a stranger's post
to an unused carrier meets AccessDenied and answers 503. Moto does not enforce IAM: only this catches it.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # samtranslator raises NoRegionFound without it

from parley.carriers import registry  # noqa: E402
from parley.carriers.config import CarrierConfig  # noqa: E402
from tests.template.planning import planned  # noqa: E402

pytestmark = pytest.mark.template

STAGE = "dev"  # the planned stack's stage


def _allowed(cfn: dict[str, Any], role_id: str, action: str) -> set[str]:
    """The SSM parameter names the role may read with `action`, through its own or our managed policies."""
    role = cfn["Resources"][role_id]["Properties"]
    docs = [p["PolicyDocument"] for p in role.get("Policies", [])]
    for arn in role.get("ManagedPolicyArns", []):
        if isinstance(arn, dict) and "Ref" in arn:
            docs.append(cfn["Resources"][arn["Ref"]]["Properties"]["PolicyDocument"])
    names = set()
    for doc in docs:
        statements = doc["Statement"] if isinstance(doc["Statement"], list) else [doc["Statement"]]
        for st in statements:
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            if st.get("Effect") != "Allow" or action not in actions:
                continue
            for res in st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]:
                text = res["Fn::Sub"] if isinstance(res, dict) else res
                if isinstance(text, str) and ":parameter/" in text:
                    names.add(text.split(":parameter", 1)[1].replace("${Stage}", STAGE))
    return names


@pytest.fixture(scope="module")
def webhook_env() -> dict[str, str]:
    functions = planned({}).functions.values()
    env: dict[str, str] = next(f.environment for f in functions if f.logical_id == "WebhookFunction")
    return env


@pytest.mark.parametrize("carrier", registry.known_carriers())
def test_the_webhook_may_read_every_setting_that_tells_an_unused_carrier(
    carrier: str, cfn: dict[str, Any], webhook_env: dict[str, str]
) -> None:
    settings = registry._SETTINGS.get(carrier, ())
    batches: list[str] = []
    singles: list[str] = []

    def ssm_parameters(names: tuple[str, ...], region: str) -> dict[str, str]:
        batches.extend(names)
        return {}  # none stored: the carrier is unused, so every setting is read

    def ssm(name: str, region: str) -> str:
        singles.append(name)
        return ""

    env = {k: v for k, v in webhook_env.items() if k.removeprefix("PARLEY_").lower() not in settings}
    config = CarrierConfig(env, ssm=ssm, ssm_parameters=ssm_parameters)
    assert not config.has_any(*settings)

    assert set(batches) <= _allowed(cfn, "WebhookFunctionRole", "ssm:GetParameters")
    assert set(singles) <= _allowed(cfn, "WebhookFunctionRole", "ssm:GetParameter")


def test_the_check_sees_the_webhooks_ssm_reads(cfn: dict[str, Any], webhook_env: dict[str, str]) -> None:
    """The test above reads real parameter names and real grants, not empty sets."""
    granted = _allowed(cfn, "WebhookFunctionRole", "ssm:GetParameters")
    assert f"/parley/{STAGE}/vonage/signature-secret/previous" in granted
    assert f"/parley/{STAGE}/vonage/api-secret" not in granted
    assert webhook_env["PARLEY_VONAGE_SIGNATURE_SECRET_PARAM"] == f"/parley/{STAGE}/vonage/signature-secret"
    assert "vonage_signature_secret" in registry._SETTINGS["vonage"]
