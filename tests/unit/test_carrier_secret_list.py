"""Optional secret lists (Twilio's Webhooks Rule shared keys) read from the environment or SSM."""

from __future__ import annotations

from collections.abc import Mapping

from parley.carriers.config import CarrierConfig
from parley.carriers.twilio import build

TOKEN_PARAM = "/parley/test/twilio/auth-token"
KEYS_PARAM = "/parley/test/twilio/shared-keys"
DEPLOYED = {
    "PARLEY_TWILIO_AUTH_TOKEN_PARAM": TOKEN_PARAM,
    "PARLEY_TWILIO_SHARED_KEYS_PARAM": KEYS_PARAM,
    "AWS_REGION": "eu-west-1",
}


class FakeSsm:
    """GetParameters: answers the stored names asked for and leaves the others out, as SSM does."""

    def __init__(self, stored: Mapping[str, str]) -> None:
        self.stored = dict(stored)
        self.calls: list[tuple[tuple[str, ...], str]] = []

    def __call__(self, names: tuple[str, ...], region: str) -> dict[str, str]:
        self.calls.append((names, region))
        return {n: self.stored[n] for n in names if n in self.stored}


def config(env: Mapping[str, str], ssm: FakeSsm) -> CarrierConfig:
    def no_get_parameter(name: str, region: str) -> str:
        raise AssertionError(f"GetParameter({name}) raises ParameterNotFound for a missing one")

    return CarrierConfig(env, ssm=no_get_parameter, ssm_parameters=ssm)


def test_a_missing_shared_keys_parameter_means_no_keys() -> None:
    ssm = FakeSsm({TOKEN_PARAM: "token"})
    assert config(DEPLOYED, ssm).secret_list("twilio_shared_keys") == ()
    assert ssm.calls == [((KEYS_PARAM,), "eu-west-1")]


def test_a_stored_comma_list_gives_each_key_stripped_and_non_empty() -> None:
    ssm = FakeSsm({KEYS_PARAM: " key-new , key-old,, "})
    assert config(DEPLOYED, ssm).secret_list("twilio_shared_keys") == ("key-new", "key-old")


def test_the_environment_wins_and_ssm_is_not_asked() -> None:
    ssm = FakeSsm({KEYS_PARAM: "from-ssm"})
    env = {**DEPLOYED, "PARLEY_TWILIO_SHARED_KEYS": "local-a,local-b"}
    assert config(env, ssm).secret_list("twilio_shared_keys") == ("local-a", "local-b")
    assert ssm.calls == []


def test_no_parameter_named_means_no_keys_and_no_call() -> None:
    ssm = FakeSsm({KEYS_PARAM: "k"})
    assert config({"AWS_REGION": "eu-west-1"}, ssm).secret_list("twilio_shared_keys") == ()
    assert ssm.calls == []


def test_the_keys_are_read_in_the_auth_token_s_call_once_per_process() -> None:
    ssm = FakeSsm({TOKEN_PARAM: "token", KEYS_PARAM: "key-1"})
    carrier_config = config(DEPLOYED, ssm)
    assert carrier_config.secrets("twilio_auth_token", read_with=("twilio_shared_keys",)) == ("token",)
    assert carrier_config.secret_list("twilio_shared_keys") == ("key-1",)
    assert carrier_config.secret_list("twilio_shared_keys") == ("key-1",)
    assert ssm.calls == [((TOKEN_PARAM, TOKEN_PARAM + "/previous", KEYS_PARAM), "eu-west-1")]


def test_twilio_build_sends_with_the_auth_token_and_never_with_a_shared_key() -> None:
    ssm = FakeSsm({KEYS_PARAM: "key-1"})  # no auth token stored yet
    carrier = build(config(DEPLOYED, ssm))
    assert carrier._auth_token == ""
    assert carrier._secondary_auth_tokens == ("key-1",)
    assert len(ssm.calls) == 1

    ssm = FakeSsm({TOKEN_PARAM: "token", TOKEN_PARAM + "/previous": "old", KEYS_PARAM: "key-1,key-2"})
    carrier = build(config(DEPLOYED, ssm))
    assert carrier._auth_token == "token"
    assert carrier._secondary_auth_tokens == ("old", "key-1", "key-2")
    assert len(ssm.calls) == 1
