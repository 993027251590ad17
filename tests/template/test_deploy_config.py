"""samconfig.toml: each stage's overrides name real template parameters, with values they allow."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.template

ROOT = Path(__file__).resolve().parents[2]
STAGE_PARAMETERS = {
    "Stage",
    "OrgTimezone",
    "QuietHours",
    "DigestCron",
    "RetentionDays",
    "VerifyMode",
    "LogLevel",
    "AlarmEmail",
}


def _overrides(section: str) -> dict[str, str]:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    text = config[section]["deploy"]["parameters"]["parameter_overrides"]
    return dict(item.split("=", 1) for item in shlex.split(text))


@pytest.mark.parametrize(("section", "stage"), [("default", "dev"), ("prod", "prod")])
def test_each_stage_sets_its_parameters_to_values_the_template_allows(
    source: dict[str, Any], section: str, stage: str
) -> None:
    overrides = _overrides(section)
    parameters = source["Parameters"]
    assert set(overrides) <= set(parameters), set(overrides) - set(parameters)
    assert set(overrides) >= STAGE_PARAMETERS
    assert overrides["Stage"] == stage
    for name, value in overrides.items():
        spec = parameters[name]
        if "AllowedValues" in spec:
            assert value in spec["AllowedValues"], (name, value)
        if "AllowedPattern" in spec:
            assert re.fullmatch(spec["AllowedPattern"], value), (name, value)


def test_prod_enforces_signatures_and_logs_at_info() -> None:
    prod = _overrides("prod")
    assert (prod["VerifyMode"], prod["LogLevel"]) == ("enforce", "INFO")
    days = [int(_overrides(s)["RetentionDays"]) or float("inf") for s in ("default", "prod")]  # 0: forever
    assert days[1] >= days[0], "prod keeps texts at least as long as dev"
