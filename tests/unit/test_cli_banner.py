"""The `make dev` banner: every label is set off from its URL, whatever the simulator's name."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from local import cli


def test_every_simulator_line_separates_its_label_from_its_url(capsys: pytest.CaptureFixture[str]) -> None:
    stack = SimpleNamespace(
        base_url="http://127.0.0.1:8787",
        simulators={"twilio": None, "bandwidth": None, "vonage-messages": None, "crm": None},
        endpoint_url="http://127.0.0.1:5000",
        state_dir=Path("/tmp/parley-state"),
    )
    cli._print_banner(stack)
    banner = capsys.readouterr().out
    for name in ("twilio", "bandwidth", "vonage-messages"):
        assert re.search(
            rf"^  simulated {re.escape(name)} +http://127\.0\.0\.1:8787/_sim/{name}$", banner, re.M
        ), banner
    assert "  simulated twilio  " in banner  # short names keep the column
