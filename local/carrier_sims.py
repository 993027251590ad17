"""Every simulated carrier the local stack serves, and the settings that point Parley at each.

Each entry starts a simulator for the stack's base URL and returns the PARLEY_* values that make
the handlers send to it and accept its signed webhooks, the same settings a deployment gives the
real carrier. Adding a carrier's simulator is one entry here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

# Vonage's two APIs share one account's key and secret.
VONAGE_API_KEY = "parley-local-vonage-key"
VONAGE_API_SECRET = "parley-local-vonage-api-secret"


@dataclass(frozen=True)
class SimulatorSpec:
    carrier: str
    start: Callable[[str], tuple[Any, dict[str, str]]]  # base URL -> (WSGI app, env)

    @property
    def mount(self) -> str:
        return f"/_sim/{self.carrier}"


def _media_env(carrier: str, base: str) -> dict[str, str]:
    """Local only: media may come from the simulators (served by the stack, over plain http) and
    from nowhere else, so a sample payload's real carrier URL is refused, not fetched."""
    return {
        f"PARLEY_{carrier.upper().replace('-', '_')}_MEDIA_HOSTS_EXTRA": urlsplit(base).netloc,
        "PARLEY_MEDIA_HOSTS_EXTRA_ONLY": "true",
    }


def _twilio(base: str) -> tuple[Any, dict[str, str]]:
    from local.sim_twilio import SimulatedTwilio

    sid = os.environ.get("TWILIO_ACCOUNT_SID", "AC00000000000000000000000000000000")
    token = os.environ.get("TWILIO_AUTH_TOKEN", "parley-local-auth-token")
    env = {
        "PARLEY_TWILIO_ACCOUNT_SID": sid,
        "PARLEY_TWILIO_AUTH_TOKEN": token,
        "PARLEY_TWILIO_API_BASE": f"{base}/_sim/twilio",
        # The simulator answers no keywords (as an account with Twilio's opt-out handling off): Parley does.
        "PARLEY_TWILIO_SELF_MANAGED_OPT_OUTS": "true",
        **_media_env("twilio", base),
    }
    return SimulatedTwilio(sid, token, base), env


def _telnyx(base: str) -> tuple[Any, dict[str, str]]:
    from local.sim_telnyx import DEFAULT_API_KEY, SimulatedTelnyx

    sim = SimulatedTelnyx(base)
    env = {
        "PARLEY_TELNYX_PUBLIC_KEY": sim.public_key,
        "PARLEY_TELNYX_API_KEY": DEFAULT_API_KEY,
        "PARLEY_TELNYX_API_BASE": f"{base}/_sim/telnyx",
        **_media_env("telnyx", base),
    }
    return sim, env


def _vonage(base: str) -> tuple[Any, dict[str, str]]:
    from local.sim_vonage import DEFAULT_SIGNATURE_METHOD, DEFAULT_SIGNATURE_SECRET, SimulatedVonage

    sim = SimulatedVonage(base, api_key=VONAGE_API_KEY, api_secret=VONAGE_API_SECRET)
    env = {
        "PARLEY_VONAGE_API_KEY": VONAGE_API_KEY,
        "PARLEY_VONAGE_API_SECRET": VONAGE_API_SECRET,
        "PARLEY_VONAGE_SIGNATURE_SECRET": DEFAULT_SIGNATURE_SECRET,
        "PARLEY_VONAGE_SIGNATURE_METHOD": DEFAULT_SIGNATURE_METHOD,
        "PARLEY_VONAGE_API_BASE": f"{base}/_sim/vonage",
    }
    return sim, env


def _vonage_messages(base: str) -> tuple[Any, dict[str, str]]:
    from local.sim_vonage_messages import DEFAULT_SIGNATURE_SECRET, SimulatedVonageMessages

    sim = SimulatedVonageMessages(base, api_key=VONAGE_API_KEY, api_secret=VONAGE_API_SECRET)
    env = {
        "PARLEY_VONAGE_API_KEY": VONAGE_API_KEY,
        "PARLEY_VONAGE_API_SECRET": VONAGE_API_SECRET,
        "PARLEY_VONAGE_MESSAGES_SIGNATURE_SECRET": DEFAULT_SIGNATURE_SECRET,
        "PARLEY_VONAGE_MESSAGES_API_BASE": f"{base}/_sim/vonage-messages",
        **_media_env("vonage-messages", base),
    }
    return sim, env


def _bandwidth(base: str) -> tuple[Any, dict[str, str]]:
    from local import sim_bandwidth as bw

    env = {
        "PARLEY_BANDWIDTH_ACCOUNT_ID": bw.DEFAULT_ACCOUNT_ID,
        "PARLEY_BANDWIDTH_USERNAME": bw.DEFAULT_USERNAME,
        "PARLEY_BANDWIDTH_PASSWORD": bw.DEFAULT_PASSWORD,
        "PARLEY_BANDWIDTH_APPLICATION_ID": bw.DEFAULT_APPLICATION_ID,
        "PARLEY_BANDWIDTH_CALLBACK_USERNAME": bw.DEFAULT_CALLBACK_USERNAME,
        "PARLEY_BANDWIDTH_CALLBACK_PASSWORD": bw.DEFAULT_CALLBACK_PASSWORD,
        "PARLEY_BANDWIDTH_API_BASE": f"{base}/_sim/bandwidth",
        **_media_env("bandwidth", base),
    }
    return bw.SimulatedBandwidth(base), env


def _plivo(base: str) -> tuple[Any, dict[str, str]]:
    from local import sim_plivo

    env = {
        "PARLEY_PLIVO_AUTH_ID": sim_plivo.LOCAL_AUTH_ID,
        "PARLEY_PLIVO_AUTH_TOKEN": sim_plivo.LOCAL_AUTH_TOKEN,
        "PARLEY_PLIVO_API_BASE": f"{base}/_sim/plivo",
        **_media_env("plivo", base),
    }
    return sim_plivo.SimulatedPlivo(base), env


def _aws(base: str) -> tuple[Any, dict[str, str]]:
    from local.sim_aws_sms import DEFAULT_TOPIC_ARN, SimulatedAwsSms

    sim = SimulatedAwsSms(base, self_url=f"{base}/_sim/aws")
    env = {
        "PARLEY_AWS_SMS_ENDPOINT_URL": f"{base}/_sim/aws",
        "PARLEY_AWS_SNS_TOPIC_ARNS": DEFAULT_TOPIC_ARN,
        # Local only: the simulator serves its signing certificate over plain http on loopback.
        "PARLEY_AWS_SNS_CERT_HOSTS_EXTRA": urlsplit(base).netloc,
    }
    return sim, env


SIMULATORS: tuple[SimulatorSpec, ...] = (
    SimulatorSpec("twilio", _twilio),
    SimulatorSpec("telnyx", _telnyx),
    SimulatorSpec("vonage", _vonage),
    SimulatorSpec("vonage-messages", _vonage_messages),
    SimulatorSpec("bandwidth", _bandwidth),
    SimulatorSpec("plivo", _plivo),
    SimulatorSpec("aws", _aws),
)
