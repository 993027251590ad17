"""The web inbox in the template: a small function on the API's own domain, public routes (the page signs
in before it calls /v1), and one SSM parameter with the sign-in settings, which only it reads."""

from __future__ import annotations

import json
import os
import re
from typing import Any

import pytest

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # samtranslator raises NoRegionFound without it

from parley.web_inbox import oidc_config  # noqa: E402
from tests.template.planning import planned  # noqa: E402

pytestmark = pytest.mark.template

ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_abc"
WEB_ROUTES = {("get", "/"), ("get", "/ui/{file+}")}


def web_config(web_sign_in: str) -> Any:
    """The sign-in settings' SSM parameter, planned with this WebSignIn value."""
    return planned({"WebSignIn": web_sign_in}, issuer=ISSUER, audience="web-client").parameters[
        "WebConfigParameter"
    ]


def test_the_web_routes_are_public_and_go_to_the_web_function(cfn: dict[str, Any]) -> None:
    paths = cfn["Resources"]["ParleyHttpApi"]["Properties"]["Body"]["paths"]
    routes = {(method, path): op for path, ops in paths.items() for method, op in ops.items()}

    assert set(routes) >= WEB_ROUTES
    for key in WEB_ROUTES:
        schemes = {name for requirement in routes[key].get("security", []) for name in requirement}
        assert schemes <= {"NONE"}, f"{key} is behind {schemes}"
        assert "WebFunction.Arn" in routes[key]["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
    # nothing else reaches the web function
    others = [k for k, op in routes.items() if k not in WEB_ROUTES]
    assert all("WebFunction" not in json.dumps(routes[k]) for k in others)


def test_the_web_function_reads_exactly_its_parameter_and_nothing_else(cfn: dict[str, Any]) -> None:
    role = cfn["Resources"]["WebFunctionRole"]["Properties"]
    statements = [st for policy in role.get("Policies", []) for st in policy["PolicyDocument"]["Statement"]]
    actions = sorted(
        {a for st in statements for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])}
    )

    assert actions == ["ssm:GetParameter"]
    (statement,) = statements
    assert statement["Resource"]["Fn::Sub"].endswith(":parameter/parley/${Stage}/web/config")
    managed = [a for a in role.get("ManagedPolicyArns", []) if isinstance(a, dict) and "Ref" in a]
    assert managed == [], "no shared policy (carrier or CRM secrets) for the web function"


def test_the_web_function_is_small(source: dict[str, Any]) -> None:
    props = source["Resources"]["WebFunction"]["Properties"]
    assert (props["CodeUri"], props["Handler"]) == ("functions/web/", "app.handler")
    assert props["MemorySize"] <= 256 and props["Timeout"] <= 10
    assert "Environment" not in props


@pytest.mark.parametrize(
    ("web_sign_in", "expected"),
    [
        ("{}", {}),
        ('{"client_id": "web-client"}', {"client_id": "web-client"}),
        (
            '{"client_id":"web-client","token_endpoint":"https://a.example.com/t","authorization_endpoint":'
            '"https://a.example.com/a","scope":"openid email"}',
            {
                "client_id": "web-client",
                "token_endpoint": "https://a.example.com/t",
                "authorization_endpoint": "https://a.example.com/a",
                "scope": "openid email",
            },
        ),
    ],
)
def test_the_parameter_holds_the_trusted_issuer_and_web_sign_in_as_one_flat_object(
    source: dict[str, Any], web_sign_in: str, expected: dict[str, str]
) -> None:
    assert re.fullmatch(source["Parameters"]["WebSignIn"]["AllowedPattern"], web_sign_in)

    parameter = planned({"WebSignIn": web_sign_in}, issuer=ISSUER, audience="web-client").parameters[
        "WebConfigParameter"
    ]

    assert (parameter.name, parameter.type) == ("/parley/dev/web/config", "String")
    assert json.loads(parameter.value) == {"issuer": ISSUER, **expected}


def test_a_complete_parameter_is_what_the_function_serves() -> None:
    web_sign_in = (
        '{"client_id": "web-client", "authorization_endpoint": "https://a.example.com/a",'
        ' "token_endpoint": "https://a.example.com/t"}'
    )
    parameter = planned({"WebSignIn": web_sign_in}, issuer=ISSUER, audience="web-client").parameters[
        "WebConfigParameter"
    ]

    config = oidc_config(parameter.value, parameter=parameter.name)

    assert (config["mode"], config["issuer"], config["client_id"]) == ("oidc", ISSUER, "web-client")


@pytest.mark.parametrize("text", ["", "{ }", "[]", '{"a": {"b": 1}}', "x{}", "{'a': 1}"])
def test_web_sign_in_must_look_like_one_flat_object(source: dict[str, Any], text: str) -> None:
    assert not re.fullmatch(source["Parameters"]["WebSignIn"]["AllowedPattern"], text)
