"""Shared fixtures for the unit tests."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture(autouse=True)
def log_everything(caplog: pytest.LogCaptureFixture) -> None:
    """Log everything (Powertools puts the `parley` logger at INFO in the functions), so a log call
    that can't be made - e.g. an `extra` key LogRecord reserves - fails here, not in Lambda."""
    caplog.set_level(logging.DEBUG, logger="parley")
