"""Every simulator that offers MMS serves the picture its phone attaches, at a URL Parley can fetch."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from werkzeug.test import Client

from local import sim_bandwidth, sim_media, sim_plivo, sim_telnyx, sim_twilio, sim_vonage_messages
from local.carrier_sims import SIMULATORS

BASE = "http://127.0.0.1:8787"
MAKERS: dict[str, Callable[[], Any]] = {
    "twilio": lambda: sim_twilio.SimulatedTwilio("AC" + "0" * 32, "token", BASE),
    "telnyx": lambda: sim_telnyx.SimulatedTelnyx(BASE),
    "bandwidth": lambda: sim_bandwidth.SimulatedBandwidth(BASE),
    "plivo": lambda: sim_plivo.SimulatedPlivo(BASE),
    "vonage-messages": lambda: sim_vonage_messages.SimulatedVonageMessages(BASE),
}


@pytest.fixture(params=sorted(MAKERS))
def carrier(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sim(carrier: str) -> Iterator[Any]:
    made = MAKERS[carrier]()
    yield made
    _close(made)


def _close(sim: Any) -> None:
    close = getattr(sim, "close", None)
    if close is not None:
        close()


def test_the_picture_is_served_without_credentials(carrier: str, sim: Any) -> None:
    answer = Client(sim).get("/_media/parley.png", base_url=f"{BASE}/_sim/{carrier}")
    assert answer.status_code == 200
    assert answer.mimetype == "image/png"
    assert answer.data.startswith(b"\x89PNG\r\n\x1a\n") and len(answer.data) < 1024


def test_an_unknown_file_is_a_404(carrier: str, sim: Any) -> None:
    assert Client(sim).get("/_media/missing.png").status_code == 404


def test_inbound_with_media_true_attaches_the_simulators_own_picture(
    carrier: str, sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[list[str]] = []

    def send_inbound(from_: str, to: str, body: str = "", **options: Any) -> dict[str, Any]:
        sent.append(list(options.get("media_urls", ())))
        return {"responses": [200]}

    monkeypatch.setattr(sim, "send_inbound", send_inbound)
    client = Client(sim)
    base = f"{BASE}/_sim/{carrier}"
    message = {"from": "+14155550100", "to": "+15005550006", "body": "look"}

    assert client.post("/_inbound", json={**message, "media": True}, base_url=base).status_code == 200
    assert client.post("/_inbound", json=message, base_url=base).status_code == 200
    given = ["https://example.com/own.jpg"]
    assert client.post("/_inbound", json={**message, "media": True, "media_urls": given}, base_url=base)

    assert sent == [[f"{base}/_media/{sim_media.DEFAULT_NAME}"], [], given]


def test_the_local_stack_lets_each_mms_carrier_fetch_from_its_simulator_only() -> None:
    envs: dict[str, dict[str, str]] = {}
    for spec in SIMULATORS:
        if spec.carrier in MAKERS:
            started, envs[spec.carrier] = spec.start(BASE)
            _close(started)
    for carrier, env in envs.items():
        key = f"PARLEY_{carrier.upper().replace('-', '_')}_MEDIA_HOSTS_EXTRA"
        assert env[key] == "127.0.0.1:8787"
        assert env["PARLEY_MEDIA_HOSTS_EXTRA_ONLY"] == "true"
    assert set(envs) == set(MAKERS)
