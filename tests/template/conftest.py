"""template.yaml as written and after the SAM transform (offline), shared by the template tests."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # samtranslator raises NoRegionFound without it

from samtranslator.translator.transform import transform  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


class _NoManagedPolicies:
    """Managed-policy loader for the offline transform: no IAM calls."""

    def load(self) -> dict[str, str]:
        return {}


@pytest.fixture(scope="module")
def source() -> dict[str, Any]:
    """template.yaml as written (short-form intrinsics parsed)."""
    parsed: dict[str, Any] = yaml_parse(TEMPLATE.read_text())
    return parsed


@pytest.fixture(scope="module")
def cfn(source: dict[str, Any]) -> dict[str, Any]:
    """template.yaml after the SAM transform, offline (local CodeUri/ContentUri rewritten to s3://)."""
    tpl = copy.deepcopy(source)
    for resource in tpl["Resources"].values():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str) and not props[key].startswith("s3://"):
                props[key] = f"s3://local-code/{props[key]}"
    transformed: dict[str, Any] = transform(tpl, {}, _NoManagedPolicies())
    return transformed
