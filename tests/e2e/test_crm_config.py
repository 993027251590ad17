"""The local stack creates the template's CRM config parameter in its moto, as CloudFormation would."""

from __future__ import annotations

import json

import boto3
import pytest

from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e


def test_the_crm_config_parameter_exists_locally_with_the_template_s_default(stack: Stack) -> None:
    resources = stack.control("GET", "/_local/resources")
    assert resources["CrmConfigParameter"] == {
        "type": "AWS::SSM::Parameter",
        "name": "/parley/dev/crm/config",
    }

    ssm = boto3.client(
        "ssm",
        endpoint_url=stack.control("GET", "/_local/health")["moto"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    parameter = ssm.get_parameter(Name="/parley/dev/crm/config")["Parameter"]

    assert parameter["Type"] == "String"
    assert json.loads(parameter["Value"]) == {"crm": "webhook"}
