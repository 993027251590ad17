"""The CRM chosen and configured through one SSM parameter of JSON, its secrets in SecureStrings (moto).

A deployed stack's environment names only the parameter (PARLEY_CRM_CONFIG_PARAM); the digest and API
functions read it, and the secrets beside it, once per cold start. Each CRM built this way posts a real
digest day to the simulated CRM; each kind of bad config fails with one error naming the parameter.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from moto import mock_aws
from werkzeug.exceptions import NotFound
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from local.sim_crm import SimulatedCrm
from parley.adapters import aws
from parley.config import Settings
from parley.crm.config import SECRETS, CrmConfigError, load_crm_settings, parse_crm_config
from parley.crm.dynamics import DynamicsCrm
from parley.crm.hubspot import HubSpotCrm
from parley.crm.registry import build_crm
from parley.crm.salesforce import SalesforceCrm
from parley.crm.webhook import WebhookCrm
from parley.services.digest import external_id
from parley.wiring import Container
from tests.carrier_api import serving
from tests.fakes import T0

REGION = "us-east-1"
PARAM = "/parley/test/crm/config"
FOLDER = "/parley/test/crm"
TOKEN = "sim-crm-token-7"
WEBHOOK_SECRET = "sim-crm-signing-secret"
OURS = "+15005550006"
ANA = "+14155550100"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def ssm(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name in [n for n in os.environ if n.startswith("PARLEY_CRM")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        aws.client.cache_clear()
        yield boto3.client("ssm", region_name=REGION)
    aws.client.cache_clear()


@pytest.fixture(scope="module")
def sim() -> SimulatedCrm:
    return SimulatedCrm(WEBHOOK_SECRET, token=TOKEN)


@pytest.fixture(scope="module")
def sim_url(sim: SimulatedCrm) -> Iterator[str]:
    with serving(DispatcherMiddleware(NotFound(), {"/_sim/crm": sim})) as base:
        yield base + "/_sim/crm"


def put(ssm: Any, name: str, value: str, *, secret: bool = False) -> None:
    ssm.put_parameter(Name=name, Value=value, Type="SecureString" if secret else "String", Overwrite=True)


def put_config(ssm: Any, config: dict[str, Any] | str) -> None:
    put(ssm, PARAM, config if isinstance(config, str) else json.dumps(config))


def deployed(**given: Any) -> Settings:
    """Settings as a deployed function has them: the config parameter's name, the CRM's settings not."""
    return Settings(crm_config_param=PARAM, region=REGION, **given)


# -- good configs: each CRM built from the parameter, with the secrets beside it ---------------------


def configs(url: str) -> dict[str, tuple[dict[str, Any], dict[str, str]]]:
    """Per CRM: the config parameter's JSON, and the SecureStrings to create (name under FOLDER -> value)."""
    return {
        "webhook": ({"crm": "webhook", "webhook_url": url}, {"signing-secret": WEBHOOK_SECRET}),
        "salesforce": (
            {
                "crm": "salesforce",
                "salesforce_instance_url": url,
                "salesforce_client_id": "parley",
                "salesforce_api_version": "v61.0",
                "salesforce_external_id_field": "Sms_Day__c",
                "timeout_seconds": 7,
            },
            {"salesforce-client-secret": "client-secret"},
        ),
        "hubspot": (
            {"crm": "hubspot", "hubspot_base_url": url, "hubspot_id_property": "sms_day_id"},
            {"hubspot-token": TOKEN},
        ),
        "dynamics": (
            {"crm": "dynamics", "dynamics_instance_url": url, "dynamics_entity_set": "tasks"},
            {"dynamics-access-token": TOKEN},
        ),
    }


DAY = T0.date().isoformat()
EXTERNAL_ID = external_id(ANA, DAY)
# the digest's payload for one conversation's day
PAYLOAD: dict[str, Any] = {
    "type": "sms_digest",
    "day": DAY,
    "customer_number": ANA,
    "subject": f"SMS with {ANA} on {DAY}",
    "message_count": 1,
    "messages": [
        {
            "message_id": "in-1",
            "direction": "inbound",
            "at": T0.isoformat(),
            "from": ANA,
            "to": OURS,
            "body": "Is my order ready?",
            "status": "received",
        }
    ],
}


@pytest.mark.parametrize("name", ["webhook", "salesforce", "hubspot", "dynamics"])
def test_each_crm_is_built_from_the_parameter_and_posts_a_day(
    ssm: Any, sim: SimulatedCrm, sim_url: str, name: str
) -> None:
    config, secrets = configs(sim_url)[name]
    put_config(ssm, config)
    for leaf, value in secrets.items():
        put(ssm, f"{FOLDER}/{leaf}", value, secret=True)

    settings = load_crm_settings(deployed())
    crm = build_crm(settings.crm, settings)

    assert settings.crm == name
    expected = {
        "webhook": WebhookCrm,
        "salesforce": SalesforceCrm,
        "hubspot": HubSpotCrm,
        "dynamics": DynamicsCrm,
    }
    assert type(crm) is expected[name]
    if name == "salesforce":
        assert (crm._version, crm._field, crm._timeout) == ("v61.0", "Sms_Day__c", 7.0)  # type: ignore[attr-defined]
        assert settings.crm_salesforce_client_secret == "client-secret"
    if name == "hubspot":
        assert crm._property == "sms_day_id"  # type: ignore[attr-defined]
    if name == "dynamics":
        assert crm._entity_set == "tasks"  # type: ignore[attr-defined]

    sim.reset()
    assert crm.upsert(EXTERNAL_ID, PAYLOAD).created
    (record,) = sim.records()
    assert record["api"] == name
    if name == "hubspot":
        assert record["payload"]["properties"]["sms_day_id"] == EXTERNAL_ID
    if name == "dynamics":
        assert record["payload"]["entity_set"] == "tasks"


def test_the_container_builds_the_digest_s_crm_from_the_parameter(
    ssm: Any, sim_url: str, aws_settings: Settings
) -> None:
    put_config(ssm, {"crm": "hubspot", "hubspot_base_url": sim_url})
    put(ssm, f"{FOLDER}/hubspot-token", TOKEN, secret=True)
    container = Container(settings=aws_settings.model_copy(update={"crm_config_param": PARAM}))

    crm = container.crm  # what the digest's upserts go to

    assert isinstance(crm, HubSpotCrm)
    assert crm._base == sim_url
    assert container.crm_settings is container.crm_settings  # read once per cold start


def test_only_the_chosen_crm_s_secrets_are_read() -> None:
    reads: list[str] = []
    values = {PARAM: json.dumps({"crm": "hubspot"}), f"{FOLDER}/hubspot-token": "t"}

    def read(name: str) -> str | None:
        reads.append(name)
        return values.get(name)

    settings = load_crm_settings(
        Settings(crm_config_param=PARAM, crm_signing_secret_param=f"{FOLDER}/signing-secret"), read
    )

    assert settings.crm_hubspot_token == "t"
    assert reads == [PARAM, f"{FOLDER}/hubspot-token"]  # not the webhook's signing secret


def test_a_missing_optional_secret_is_left_empty_and_the_crm_says_what_it_needs(ssm: Any) -> None:
    put_config(ssm, {"crm": "salesforce", "salesforce_instance_url": "https://acme.my.salesforce.com"})

    settings = load_crm_settings(deployed())

    assert (settings.crm_salesforce_access_token, settings.crm_salesforce_client_secret) == ("", "")
    with pytest.raises(ValueError, match="needs an access token, or a client id and secret"):
        build_crm(settings.crm, settings)


def test_an_explicit_secret_param_still_wins_over_the_convention(ssm: Any) -> None:
    put_config(ssm, {"crm": "hubspot", "hubspot_base_url": "https://hub.example"})
    put(ssm, f"{FOLDER}/hubspot-token", "by-convention", secret=True)
    put(ssm, "/elsewhere/hubspot", "explicit", secret=True)

    settings = load_crm_settings(deployed(crm_hubspot_token_param="/elsewhere/hubspot"))

    assert settings.crm_hubspot_token == "explicit"


def test_without_a_config_parameter_the_settings_are_used_as_they_are(ssm: Any) -> None:
    put(ssm, "/parley/test/crm/signing-secret", "s3cret", secret=True)
    given = Settings(
        crm_webhook_url="https://crm.example",
        crm_signing_secret_param="/parley/test/crm/signing-secret",
        region=REGION,
    )

    settings = load_crm_settings(given)

    assert (settings.crm, settings.crm_webhook_url, settings.crm_signing_secret) == (
        "webhook",
        "https://crm.example",
        "s3cret",
    )


# -- the environment wins -------------------------------------------------------------------------


def test_a_variable_set_in_the_environment_wins_over_the_parameter(
    ssm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_config(
        ssm,
        {
            "crm": "salesforce",
            "salesforce_instance_url": "https://acme.my.salesforce.com",
            "hubspot_base_url": "https://from-parameter.example",
            "hubspot_id_property": "from_parameter",
        },
    )
    monkeypatch.setenv("PARLEY_CRM", "hubspot")
    monkeypatch.setenv("PARLEY_CRM_HUBSPOT_BASE_URL", "https://from-env.example")
    monkeypatch.setenv("PARLEY_CRM_HUBSPOT_ID_PROPERTY", "")  # empty: as if unset
    monkeypatch.setenv("PARLEY_CRM_HUBSPOT_TOKEN", "env-token")
    monkeypatch.setenv("PARLEY_CRM_CONFIG_PARAM", PARAM)

    settings = load_crm_settings(Settings())

    assert settings.crm == "hubspot"
    assert settings.crm_hubspot_base_url == "https://from-env.example"
    assert settings.crm_hubspot_id_property == "from_parameter"
    assert settings.crm_hubspot_token == "env-token"
    assert settings.crm_salesforce_instance_url == "https://acme.my.salesforce.com"


# -- bad configs: one clear error naming the parameter and the problem ------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{crm: hubspot}", "not valid JSON"),
        ('["crm", "hubspot"]', "must hold a JSON object, not list"),
        (
            '{"crm": "zoho"}',
            "unknown CRM 'zoho' under 'crm' (one of: dynamics, hubspot, salesforce, webhook)",
        ),
        (
            '{"crm": "hubspot", "hubspot_base": "x"}',
            "unknown key 'hubspot_base' (did you mean 'hubspot_base_url'?)",
        ),
        ('{"colour": "blue"}', "unknown key 'colour' (known keys: crm, "),
        ('{"config": "/x"}', "unknown key 'config' ("),
        ('{"crm_webhook_url": "https://x"}', "write the keys without the crm_ prefix, as 'webhook_url'"),
        (
            '{"crm": "hubspot", "hubspot_token": "pat-123"}',
            f"key 'hubspot_token' is a secret: store it as the SecureString {FOLDER}/hubspot-token",
        ),
        ('{"crm": "hubspot", "hubspot_token_param": "/x"}', "unknown key 'hubspot_token_param'"),
        ('{"webhook_url": 42}', "key 'webhook_url' should be a valid string, not 42"),
        ('{"timeout_seconds": "10"}', "key 'timeout_seconds' should be a valid number, not \"10\""),
        ('{"timeout_seconds": true}', "key 'timeout_seconds' should be a valid number, not true"),
        ('{"crm": 3}', "key 'crm' should be a valid string, not 3"),
        ('{"crm": "hubspot", "crm": "salesforce"}', "key 'crm' appears twice"),
    ],
)
def test_a_bad_config_fails_with_one_clear_error(ssm: Any, text: str, problem: str) -> None:
    put_config(ssm, text)

    with pytest.raises(CrmConfigError) as caught:
        load_crm_settings(deployed())

    message = str(caught.value)
    assert message.startswith(f"CRM config parameter {PARAM}: "), message
    assert problem in message, message
    error = caught.value  # no pydantic (or json) exception chained to it
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def test_a_missing_config_parameter_is_named(ssm: Any) -> None:
    with pytest.raises(CrmConfigError, match=f"^CRM config parameter {PARAM}: not found in SSM$"):
        load_crm_settings(deployed())


def test_a_missing_explicit_secret_parameter_is_named(ssm: Any) -> None:
    put_config(ssm, {"crm": "webhook", "webhook_url": "https://crm.example"})

    with pytest.raises(CrmConfigError, match="/parley/test/crm/signing-secret .crm_signing_secret_param."):
        load_crm_settings(deployed(crm_signing_secret_param="/parley/test/crm/signing-secret"))


def test_every_crm_secret_belongs_to_a_crm() -> None:
    """A new secret must be listed in SECRETS, or it would be neither read nor granted (template test)."""
    secrets = {
        f.removesuffix("_param")
        for f in Settings.model_fields
        if f.startswith("crm_") and f.endswith("_param")
    }
    secrets.discard("crm_config")
    assert secrets == {field for fields in SECRETS.values() for field in fields}


def test_every_setting_but_the_secrets_can_be_given_in_the_parameter() -> None:
    every = {
        name.removeprefix("crm_"): ("text" if info.annotation is str else 5.0)
        for name, info in Settings.model_fields.items()
        if name.startswith("crm_") and not name.endswith(("_param", "_token", "_secret"))
    }
    values = parse_crm_config(PARAM, json.dumps({"crm": "dynamics", **every}))
    assert set(values) == {"crm", *(f"crm_{key}" for key in every)}
    assert len(values) >= 15  # the check above is not vacuous


# -- the webhook function stays light ---------------------------------------------------------------

# What importing the webhook handler and building its carrier and intake loads, before this change.
WEBHOOK_MODULES = {
    "parley",
    "parley.adapters",
    "parley.adapters.aws",
    "parley.apigw",
    "parley.carriers",
    "parley.carriers.base",
    "parley.carriers.config",
    "parley.carriers.registry",
    "parley.carriers.twilio",
    "parley.clock",
    "parley.domain",
    # standard library only: the words, number types and Retry-After reading the carriers share
    "parley.domain.keywords",
    "parley.domain.rate",
    "parley.domain.retry",
    "parley.domain.vocabulary",
    "parley.edge",
    "parley.observability",  # standard library only at import time (its log filter and EMF writer)
    "parley.ports",
    "parley.redact",
    "parley.wiring",
}


def test_the_webhook_function_imports_nothing_new_with_a_crm_config_parameter() -> None:
    code = (
        "import sys, json, functions.inbound.webhook;"
        "from parley.wiring import container;"
        "app = container(); app.carrier('twilio'); app.intake;"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('parley')"
        " or m in ('pydantic', 'pydantic_settings', 'requests'))))"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": f"{ROOT / 'layers' / 'common'}:{ROOT}",
        "AWS_DEFAULT_REGION": REGION,
        "PARLEY_INBOUND_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/inbound",
        "PARLEY_CRM_CONFIG_PARAM": PARAM,
        "PARLEY_CRM_SIGNING_SECRET_PARAM": f"{FOLDER}/signing-secret",
    }
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, timeout=60
    )
    loaded = set(json.loads(result.stdout))
    assert loaded - WEBHOOK_MODULES == set()
    assert "parley.wiring" in loaded  # the check above is not vacuous


def twilio_webhook_event(base_url: str, token: str) -> dict[str, Any]:
    """A signed Twilio inbound text, as API Gateway (HTTP API, payload 2.0) hands it to the webhook."""
    path = "/webhooks/twilio/messages"
    form = {
        "MessageSid": "SM" + "b" * 32,
        "AccountSid": "AC" + "0" * 32,
        "From": ANA,
        "To": OURS,
        "Body": "hi",
    }
    signed = base_url + path + "".join(name + form[name] for name in sorted(form))
    signature = base64.b64encode(hmac.new(token.encode(), signed.encode(), hashlib.sha1).digest()).decode()
    return {
        "version": "2.0",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/x-www-form-urlencoded", "x-twilio-signature": signature},
        "requestContext": {
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "http": {"method": "POST", "path": path, "sourceIp": "203.0.113.9"},
            "requestId": "req-crm-config",
        },
        "pathParameters": {"carrier": "twilio", "kind": "messages"},
        "body": urlencode(form),
        "isBase64Encoded": False,
    }


def test_the_webhook_handler_reads_no_parameter(monkeypatch: pytest.MonkeyPatch, ssm: Any) -> None:
    from functions.inbound import webhook
    from parley import wiring

    token, base_url = "test-auth-token-0123456789", "https://sms.example.test"
    queue = boto3.client("sqs", region_name=REGION).create_queue(QueueName="inbound")["QueueUrl"]
    put_config(ssm, {"crm": "hubspot"})
    for name, value in {
        "PARLEY_INBOUND_QUEUE_URL": queue,
        "PARLEY_TWILIO_AUTH_TOKEN": token,
        "PARLEY_PUBLIC_BASE_URL": base_url,
        "PARLEY_CRM_CONFIG_PARAM": PARAM,
    }.items():
        monkeypatch.setenv(name, value)
    services: list[str] = []
    real_client = aws.client

    def recording(service: str, region: str) -> Any:
        services.append(service)
        return real_client(service, region)

    wiring.reset_container()
    try:
        with monkeypatch.context() as patched:
            patched.setattr(aws, "client", recording)
            result = webhook.handler(twilio_webhook_event(base_url, token), LambdaContext())
    finally:
        wiring.reset_container()

    assert result["statusCode"] == 200, result
    assert services == ["sqs"]


@dataclass
class LambdaContext:
    function_name: str = "parley-test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:parley-test"
    aws_request_id: str = "00000000-0000-0000-0000-000000000001"
