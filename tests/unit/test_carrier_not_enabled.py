"""A carrier with none of its settings is not enabled; one with some of them is misconfigured."""

from __future__ import annotations

import pytest

from parley.carriers.base import SignatureError, WebhookRequest
from parley.carriers.config import CarrierConfig
from parley.carriers.plivo import PlivoConfigError
from parley.carriers.registry import CarrierNotEnabled, build_carrier
from parley.carriers.vonage_messages import UnsignedRequest
from parley.carriers.vonage_sms import VonageConfigError

# What template.yaml sets for every carrier, used or not: SSM parameter names and defaults.
TEMPLATE_ENV = {
    "PARLEY_VONAGE_API_KEY": "",
    "PARLEY_VONAGE_API_SECRET_PARAM": "/parley/prod/vonage/api-secret",
    "PARLEY_VONAGE_SIGNATURE_SECRET_PARAM": "/parley/prod/vonage/signature-secret",
    "PARLEY_VONAGE_SIGNATURE_METHOD": "md5hash",
    "PARLEY_VONAGE_MESSAGES_SIGNATURE_SECRET_PARAM": "/parley/prod/vonage/messages-signature-secret",
    "PARLEY_PLIVO_AUTH_ID": "",
    "PARLEY_PLIVO_AUTH_TOKEN_PARAM": "/parley/prod/plivo/auth-token",
}


def _config(env: dict[str, str], stored: dict[str, str] | None = None) -> CarrierConfig:
    values = stored or {}
    return CarrierConfig(
        env,
        ssm=lambda name, region: values.get(name, ""),
        ssm_parameters=lambda names, region: {n: values[n] for n in names if n in values},
    )


def _unsigned() -> WebhookRequest:
    return WebhookRequest(
        method="POST",
        url="https://sms.example.test/webhooks/vonage-messages/messages",
        headers={"content-type": "application/json"},
        body=b"{}",
    )


@pytest.mark.parametrize("carrier", ["vonage", "plivo"])
@pytest.mark.parametrize("env", [{}, TEMPLATE_ENV], ids=["nothing", "template-defaults"])
def test_a_carrier_with_no_settings_is_not_enabled(carrier: str, env: dict[str, str]) -> None:
    with pytest.raises(CarrierNotEnabled, match="not enabled"):
        build_carrier(carrier, _config(env))


@pytest.mark.parametrize(
    ("carrier", "env", "stored", "error"),
    [
        ("vonage", {"PARLEY_VONAGE_API_KEY": "key"}, {}, VonageConfigError),
        (
            "vonage",
            {**TEMPLATE_ENV, "PARLEY_VONAGE_API_KEY": "key", "PARLEY_VONAGE_SIGNATURE_METHOD": "x"},
            {},
            VonageConfigError,
        ),
        ("vonage", TEMPLATE_ENV, {"/parley/prod/vonage/signature-secret": "s"}, VonageConfigError),
        ("plivo", {**TEMPLATE_ENV, "PARLEY_PLIVO_AUTH_ID": "MA0000"}, {}, PlivoConfigError),
        ("plivo", TEMPLATE_ENV, {"/parley/prod/plivo/auth-token": "t"}, PlivoConfigError),
    ],
    ids=[
        "vonage-key-only",
        "vonage-bad-method",
        "vonage-stored-secret",
        "plivo-id-only",
        "plivo-stored-token",
    ],
)
def test_a_carrier_with_some_settings_keeps_its_own_error(
    carrier: str, env: dict[str, str], stored: dict[str, str], error: type[Exception]
) -> None:
    with pytest.raises(error) as caught:
        build_carrier(carrier, _config(env, stored))
    assert not isinstance(caught.value, CarrierNotEnabled)


def test_has_any_counts_direct_values_and_stored_parameters_only() -> None:
    config = _config(TEMPLATE_ENV, {"/parley/prod/plivo/auth-token": "t"})
    assert not config.has_any("vonage_api_key", "vonage_api_secret", "vonage_signature_secret")
    assert config.has_any("plivo_auth_token")
    assert _config({"PARLEY_PLIVO_AUTH_ID": "MA0000"}).has_any("plivo_auth_id")
    assert not _config({"PARLEY_PLIVO_AUTH_ID": "  "}).has_any("plivo_auth_id")


def test_vonage_messages_unsigned_without_a_signature_secret_is_not_retryable() -> None:
    carrier = build_carrier("vonage-messages", _config(TEMPLATE_ENV))
    with pytest.raises(SignatureError, match="no signature secret") as caught:
        carrier.verify(_unsigned())
    assert not caught.value.retryable and not isinstance(caught.value, UnsignedRequest)


def test_vonage_messages_unsigned_with_a_stored_signature_secret_is_retryable() -> None:
    stored = {"/parley/prod/vonage/messages-signature-secret": "secret-0123456789abcdef"}
    carrier = build_carrier("vonage-messages", _config(TEMPLATE_ENV, stored))
    with pytest.raises(UnsignedRequest) as caught:
        carrier.verify(_unsigned())
    assert caught.value.retryable


def test_an_unused_vonage_reads_only_the_signature_secret_with_getparameters() -> None:
    """The webhook may read the API secret only alone (GetParameter): not enabled costs no other call."""
    batches: list[tuple[str, ...]] = []
    singles: list[str] = []

    def ssm_parameters(names: tuple[str, ...], region: str) -> dict[str, str]:
        batches.append(names)
        return {}

    def ssm(name: str, region: str) -> str:
        singles.append(name)
        return ""

    config = CarrierConfig(TEMPLATE_ENV, ssm=ssm, ssm_parameters=ssm_parameters)
    with pytest.raises(CarrierNotEnabled):
        build_carrier("vonage", config)
    assert batches == [
        ("/parley/prod/vonage/signature-secret", "/parley/prod/vonage/signature-secret/previous")
    ]
    assert singles == []


def test_a_carrier_found_unused_costs_later_posts_no_ssm_call() -> None:
    calls: list[tuple[str, ...]] = []

    def ssm_parameters(names: tuple[str, ...], region: str) -> dict[str, str]:
        calls.append(names)
        return {}

    config = CarrierConfig(TEMPLATE_ENV, ssm=lambda n, r: "", ssm_parameters=ssm_parameters)
    for _ in range(3):
        with pytest.raises(CarrierNotEnabled):
            build_carrier("plivo", config)
    assert len(calls) == 1


def test_a_blank_stored_secret_counts_as_unset() -> None:
    config = _config(TEMPLATE_ENV, {"/parley/prod/plivo/auth-token": "  \n"})
    assert not config.has_any("plivo_auth_id", "plivo_auth_token")
    with pytest.raises(CarrierNotEnabled):
        build_carrier("plivo", _config(TEMPLATE_ENV, {"/parley/prod/plivo/auth-token": " "}))
