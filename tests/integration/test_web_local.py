"""The web inbox end to end, minus the browser: its sign-in settings from SSM (moto), the local front's
/_local/token, and `parley local` serving the page and everything it loads at "/"."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from werkzeug.test import Client

from functions.web import app as web
from local.auth import DEFAULT_TTL_SECONDS, verify_dev_token
from local.http_front import Front
from local.process import StackProcess, stack_process

SECRET = "web-inbox-test-secret-of-at-least-32-bytes"


# ---------------------------------------------------------------- sign-in settings from SSM


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch, moto_account: None) -> Iterator[None]:
    """The function as deployed at stage prod, against moto's SSM; a fresh container each test."""
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("PARLEY_STAGE", "prod")
    monkeypatch.setattr(web, "_site", None)
    yield


def config_event() -> dict[str, Any]:
    return {
        "rawPath": "/ui/config.json",
        "pathParameters": {"file": "config.json"},
        "requestContext": {"http": {"method": "GET"}},
    }


def test_the_deployed_function_reads_its_one_parameter_from_ssm(deployed: None) -> None:
    value = {
        "issuer": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_abc",
        "client_id": "web-client",
        "authorization_endpoint": "https://parley.auth.us-east-1.amazoncognito.com/oauth2/authorize",
        "token_endpoint": "https://parley.auth.us-east-1.amazoncognito.com/oauth2/token",
    }
    boto3.client("ssm", region_name="us-east-1").put_parameter(
        Name="/parley/prod/web/config", Type="String", Value=json.dumps(value)
    )

    answer = web.handler(config_event(), None)

    assert answer["statusCode"] == 200
    assert json.loads(answer["body"]) == {
        "mode": "oidc",
        **value,
        "scope": "openid",
        "use_token": "access_token",
    }
    policy = answer["headers"]["Content-Security-Policy"]
    assert "connect-src 'self' https://parley.auth.us-east-1.amazoncognito.com;" in policy


def test_a_missing_parameter_is_a_503_naming_it(deployed: None) -> None:
    answer = web.handler(config_event(), None)

    assert answer["statusCode"] == 503
    assert json.loads(answer["body"]) == {
        "error": "sign-in parameter /parley/prod/web/config: not found in SSM"
    }


# ---------------------------------------------------------------- /_local/token


class Ready:
    """The little of the control plane /_local/token needs: a stack that is up."""

    ready = True


@pytest.fixture(scope="module")
def front() -> Iterator[Client]:
    served = Front(Ready(), port=0)  # type: ignore[arg-type]
    served.configure(routes=[], functions={}, api_ids={}, account_id="123456789012", jwt_secret=SECRET)
    try:
        yield Client(served)
    finally:
        served.stop()


def test_the_local_sign_in_mints_a_dev_token_the_front_accepts(front: Client) -> None:
    response = front.post("/_local/token", json={"user": "ana", "teams": ["sales", "support"], "admin": True})

    assert response.status_code == 200
    body = response.get_json()
    assert body["expires_in"] == DEFAULT_TTL_SECONDS
    claims = verify_dev_token(body["token"], secret=SECRET)
    assert (claims["sub"], claims["teams"], claims["roles"]) == ("ana", ["sales", "support"], ["admin"])


def test_teams_may_come_as_the_form_types_them(front: Client) -> None:
    response = front.post("/_local/token", json={"user": " bo ", "teams": "sales, support"})

    claims = verify_dev_token(response.get_json()["token"], secret=SECRET)
    assert (claims["sub"], claims["teams"]) == ("bo", ["sales", "support"])
    assert "roles" not in claims


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json", "body is not JSON"),
        ("[1]", "body must be a JSON object"),
        (json.dumps({"teams": ["sales"]}), "user: a non-empty string"),
        (json.dumps({"user": "  ", "teams": ["sales"]}), "user: a non-empty string"),
        (json.dumps({"user": "ana", "teams": [1]}), "teams:"),
        (json.dumps({"user": "ana", "teams": " , "}), "at least one team"),
        (json.dumps({"user": "ana", "teams": ["sales"], "admin": "yes"}), "admin: true or false"),
    ],
)
def test_a_bad_sign_in_is_a_400_with_the_reason(front: Client, body: str, reason: str) -> None:
    response = front.post("/_local/token", data=body, content_type="application/json")

    assert response.status_code == 400
    assert reason in response.get_json()["message"]


def test_the_token_endpoint_takes_only_post(front: Client) -> None:
    assert front.get("/_local/token").status_code == 405


# ---------------------------------------------------------------- `parley local` serves the inbox


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    log = tmp_path_factory.mktemp("web-stack") / "stack.log"
    with stack_process(log) as stack:
        yield stack


def assets(page: str, fetch: Any) -> set[str]:
    """Every /ui/ file the page names, and every module those scripts import, followed to the end."""
    found: set[str] = set()
    pending = set(re.findall(r'"/ui/([^"]+)"', page))
    while pending:
        name = pending.pop()
        found.add(name)
        if name.endswith(".js"):
            pending |= set(re.findall(r'from "\./([^"]+)"', fetch(name))) - found
    return found


def test_the_local_stack_serves_the_page_and_everything_it_loads(running: StackProcess) -> None:
    page = requests.get(f"{running.base_url}/", timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]

    def fetch(name: str) -> str:
        answer = requests.get(f"{running.base_url}/ui/{name}", timeout=10)
        assert answer.status_code == 200, name
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        return answer.text

    names = assets(page.text, fetch)
    assert {"app.js", "app.css", "auth.js", "api.js", "compose.js", "sms.js"} <= names
    for name in names:
        fetch(name)
    missing = requests.get(f"{running.base_url}/ui/..%2Fapp.py", timeout=10)
    assert missing.status_code == 404


def test_locally_the_page_signs_in_through_the_dev_endpoint_and_calls_the_api(running: StackProcess) -> None:
    config = requests.get(f"{running.base_url}/ui/config.json", timeout=10).json()
    assert config == {"mode": "dev", "token_url": "/_local/token"}

    signed = requests.post(
        f"{running.base_url}{config['token_url']}", json={"user": "web", "teams": ["default"]}, timeout=10
    )
    token = signed.json()["token"]
    numbers = requests.get(
        f"{running.base_url}/v1/numbers", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )

    assert numbers.status_code == 200
    assert numbers.json()["numbers"], "the seeded numbers"


def test_the_page_needs_no_token_but_the_api_does(running: StackProcess) -> None:
    assert requests.get(f"{running.base_url}/ui/app.js", timeout=10).status_code == 200
    assert requests.get(f"{running.base_url}/v1/numbers", timeout=10).status_code == 401
