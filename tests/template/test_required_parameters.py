"""Parameters a deploy must supply: none falls back to a value that is wrong for everyone."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from local.cli import LOCAL_PARAMETERS

pytestmark = pytest.mark.template

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = {"JwtIssuer", "JwtAudience", "OrgName"}


def test_the_parameters_without_a_default_are_the_ones_each_deploy_supplies(source: dict[str, Any]) -> None:
    without_default = {name for name, spec in source["Parameters"].items() if "Default" not in spec}
    assert without_default == REQUIRED


def test_samconfig_and_the_deploy_guide_name_every_required_parameter() -> None:
    samconfig = (ROOT / "samconfig.toml").read_text()
    guide = (ROOT / "docs" / "deploy.md").read_text()
    for name in REQUIRED:
        assert name in samconfig.split("version =", 1)[0], name  # the guidance comments at the top
        assert f"Parameter {name}" in guide, name  # a row of the `--guided` prompts table


def test_the_local_stack_supplies_every_required_parameter() -> None:
    assert set(LOCAL_PARAMETERS) == REQUIRED
    assert LOCAL_PARAMETERS["OrgName"].strip()


@pytest.mark.parametrize(
    ("value", "allowed"), [("Acme Dental", True), ("", False), (" ", False), (" Acme", False)]
)
def test_org_name_cannot_be_blank(source: dict[str, Any], value: str, allowed: bool) -> None:
    spec = source["Parameters"]["OrgName"]
    fits = re.fullmatch(spec["AllowedPattern"], value) is not None and len(value) >= spec["MinLength"]
    assert fits is allowed
