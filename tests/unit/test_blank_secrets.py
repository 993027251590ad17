"""A secret of blanks only is unset: as an HMAC key anyone could compute it and sign with it."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from parley.carriers import twilio
from parley.carriers.base import SignatureError, WebhookRequest
from parley.carriers.config import CarrierConfig

URL = "https://sms.example.test/webhooks/twilio/messages"
FORM = {"Body": "hi", "From": "+14155550100", "MessageSid": "SM1", "To": "+14155550101"}
BODY = b"MessageSid=SM1&From=%2B14155550100&To=%2B14155550101&Body=hi"
ENV = {
    "PARLEY_TWILIO_ACCOUNT_SID": "AC1",
    "PARLEY_TWILIO_AUTH_TOKEN_PARAM": "/p/token",
    "PARLEY_TWILIO_SHARED_KEYS_PARAM": "/p/keys",
}


def _config(stored: dict[str, str], env: dict[str, str] | None = None) -> CarrierConfig:
    return CarrierConfig(
        {**ENV, **(env or {})},
        ssm=lambda name, region: stored.get(name, ""),
        ssm_parameters=lambda names, region: {n: stored[n] for n in names if n in stored},
    )


def _signed(key: str, algorithm: str) -> WebhookRequest:
    digest = hashlib.sha1 if algorithm == "HMAC_SHA1" else hashlib.sha256
    text = URL + "".join(k + v for k, v in sorted(FORM.items()))
    signature = base64.b64encode(hmac.new(key.encode(), text.encode(), digest).digest()).decode()
    headers = {"x-twilio-signature": signature, "content-type": "application/x-www-form-urlencoded"}
    if algorithm != "HMAC_SHA1":
        headers["x-twilio-webhooks-signature-settings"] = f"algorithm={algorithm}"
    return WebhookRequest(method="POST", url=URL, headers=headers, body=BODY)


@pytest.mark.parametrize("algorithm", ["HMAC_SHA1", "HMAC_SHA256"])
@pytest.mark.parametrize(
    "stored",
    [
        {"/p/token": " ", "/p/keys": " "},
        {"/p/token": "token", "/p/token/previous": " \n", "/p/keys": " , "},
    ],
    ids=["blank-token", "blank-previous"],
)
def test_a_blank_stored_key_verifies_nothing(algorithm: str, stored: dict[str, str]) -> None:
    carrier = twilio.build(_config(stored))
    for key in (" ", " \n", ""):
        with pytest.raises(SignatureError):
            carrier.verify(_signed(key, algorithm))


@pytest.mark.parametrize("algorithm", ["HMAC_SHA1", "HMAC_SHA256"])
def test_a_stored_key_is_stripped_of_surrounding_blanks(algorithm: str) -> None:
    carrier = twilio.build(_config({"/p/token": " token\n"}))
    carrier.verify(_signed("token", algorithm))


def test_blank_values_are_dropped_from_every_reader() -> None:
    config = _config(
        {"/p/token": "  ", "/p/keys": " ,k1 , "},
        {"PARLEY_TWILIO_AUTH_TOKEN_PREVIOUS": " , old ", "PARLEY_TELNYX_API_KEY": "  "},
    )
    assert config.secrets("twilio_auth_token") == ("old",)
    assert config.secret("twilio_auth_token") == ""
    assert config.secret("telnyx_api_key") == ""
    assert config.secret_list("twilio_shared_keys") == ("k1",)
