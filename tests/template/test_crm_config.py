"""The CRM is chosen at deploy time through one SSM parameter: the environment grows by one name only,
and only the functions that post to the CRM may read its parameters."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # samtranslator raises NoRegionFound without it


from parley.crm import registry  # noqa: E402
from parley.crm.config import SECRETS, parse_crm_config, secret_name  # noqa: E402
from tests.template.planning import planned  # noqa: E402

pytestmark = pytest.mark.template

ROOT = Path(__file__).resolve().parents[2]
CRM_FUNCTIONS = {"DigestFunction", "ApiFunction"}  # the digest, and the API resolving a CRM conflict


def readme_crm_configs() -> dict[str, dict[str, Any]]:
    """Crm -> CrmConfig in README's Choosing the CRM, as `sam deploy --parameter-overrides` reads them."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Choosing the CRM") :]
    section = section[: section.index("\n## ") if "\n## " in section else None]
    found = re.findall(r"Crm=(\w+) \\\n  ('CrmConfig=.*')$", section, re.M)
    configs = {}
    for crm, quoted in found:
        (arg,) = shlex.split(quoted)
        value = arg.removeprefix('CrmConfig="').removesuffix('"').replace('\\"', '"')
        configs[crm] = json.loads(value)
    return configs


def test_readme_has_an_example_for_every_rest_crm() -> None:
    assert set(readme_crm_configs()) == {"salesforce", "hubspot", "dynamics"}


def test_crm_allowed_values_are_the_registered_crms(source: dict[str, Any]) -> None:
    crm = source["Parameters"]["Crm"]
    assert sorted(crm["AllowedValues"]) == registry.names()
    assert crm["Default"] == "webhook"


@pytest.mark.parametrize(
    ("crm", "config"),
    [
        ("webhook", {}),
        ("webhook", {"webhook_url": "https://crm.example.com/parley"}),
        *readme_crm_configs().items(),
    ],
)
def test_the_config_parameter_holds_crm_and_crm_config_as_one_flat_object(
    source: dict[str, Any], crm: str, config: dict[str, Any]
) -> None:
    text = json.dumps(config) if config else "{}"
    assert re.fullmatch(source["Parameters"]["CrmConfig"]["AllowedPattern"], text)

    parameter = planned({"Crm": crm, "CrmConfig": text}).parameters["CrmConfigParameter"]

    assert (parameter.name, parameter.type) == ("/parley/dev/crm/config", "String")
    assert json.loads(parameter.value) == {"crm": crm, **config}
    values = parse_crm_config(parameter.name, parameter.value)
    assert values == {"crm": crm, **{f"crm_{key}": value for key, value in config.items()}}


@pytest.mark.parametrize("text", ["", "{ }", "[]", '{"a": {"b": 1}}', 'x{"a": 1}', "{'a': 1}"])
def test_crm_config_must_look_like_one_flat_object(source: dict[str, Any], text: str) -> None:
    assert not re.fullmatch(source["Parameters"]["CrmConfig"]["AllowedPattern"], text)


def test_the_crm_settings_do_not_grow_the_environment(source: dict[str, Any]) -> None:
    env = source["Globals"]["Function"]["Environment"]["Variables"]
    crm_names = {name for name in env if name.startswith("PARLEY_CRM")}
    assert crm_names == {
        "PARLEY_CRM_WEBHOOK_URL",
        "PARLEY_CRM_SIGNING_SECRET_PARAM",
        "PARLEY_CRM_CONFIG_PARAM",
    }
    assert env["PARLEY_CRM_CONFIG_PARAM"] == {"Ref": "CrmConfigParameter"}

    big = json.dumps({"salesforce_instance_url": "https://" + "a" * 900 + ".my.salesforce.com"})
    default = {f.logical_id: f.environment for f in planned({}).functions.values()}
    configured = {
        f.logical_id: f.environment
        for f in planned({"Crm": "salesforce", "CrmConfig": big}).functions.values()
    }
    assert configured == default
    assert default["DigestFunction"]["PARLEY_CRM_CONFIG_PARAM"] == "/parley/dev/crm/config"


def _ssm_paths(cfn: dict[str, Any], role_id: str) -> set[str]:
    """The SSM parameters a role may read, through its own statements or a managed policy of ours."""
    role = cfn["Resources"][role_id]["Properties"]
    docs = [p["PolicyDocument"] for p in role.get("Policies", [])]
    for arn in role.get("ManagedPolicyArns", []):
        if isinstance(arn, dict) and "Ref" in arn:
            docs.append(cfn["Resources"][arn["Ref"]]["Properties"]["PolicyDocument"])
    paths = set()
    for doc in docs:
        for st in doc["Statement"] if isinstance(doc["Statement"], list) else [doc["Statement"]]:
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            if not any(a.startswith("ssm:") for a in actions):
                continue
            assert set(actions) <= {"ssm:GetParameter", "ssm:GetParameters"}, f"{role_id}: {actions}"
            for res in st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]:
                text = res["Fn::Sub"] if isinstance(res, dict) else res
                paths.add(re.sub(r"^arn:.*:parameter", "", text))
    return paths


def test_only_the_digest_and_api_functions_may_read_the_crm_parameters(cfn: dict[str, Any]) -> None:
    functions = [lid for lid, r in cfn["Resources"].items() if r["Type"] == "AWS::Lambda::Function"]
    assert len(functions) == 7
    readers = {fn for fn in functions if any("/crm/" in p for p in _ssm_paths(cfn, f"{fn}Role"))}
    assert readers == CRM_FUNCTIONS

    # exactly the config and each CRM secret, under the names parley.crm.config derives
    secrets = {secret_name(field) for fields in SECRETS.values() for field in fields}
    expected = {f"/parley/${{Stage}}/crm/{name}" for name in {"config", *secrets}}
    for fn in CRM_FUNCTIONS:
        assert {p for p in _ssm_paths(cfn, f"{fn}Role") if "/crm/" in p} == expected


def test_the_functions_that_call_the_crm_are_not_in_a_vpc(cfn: dict[str, Any]) -> None:
    for fn in CRM_FUNCTIONS:
        assert "VpcConfig" not in cfn["Resources"][fn]["Properties"], fn
