"""A CloudFormation stack on moto, for the CLI commands that find a deployed stack's resources."""

from __future__ import annotations

import json
from typing import Any

import boto3


def cloudformation_stack(name: str, template: dict[str, Any], region: str) -> dict[str, str]:
    """Create a stack on moto: its outputs, plus each DynamoDB table's physical name by logical id."""
    cfn = boto3.client("cloudformation", region_name=region)
    cfn.create_stack(StackName=name, TemplateBody=json.dumps(template))
    (stack,) = cfn.describe_stacks(StackName=name)["Stacks"]
    found = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    for r in cfn.list_stack_resources(StackName=name)["StackResourceSummaries"]:
        if r["ResourceType"] == "AWS::DynamoDB::Table":
            found[r["LogicalResourceId"]] = r["PhysicalResourceId"]
    return found
