"""One clock: what the services get from wiring and what the models read are the same, movable one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from parley import clock, wiring
from parley.domain.models import SendRequest


@pytest.fixture(autouse=True)
def real_time_afterwards() -> Iterator[None]:
    yield
    clock.set_offset(timedelta(0))


def test_deployed_the_clock_is_real_time() -> None:
    assert clock.offset() == timedelta(0)
    assert abs(clock.utc_now() - datetime.now(UTC)) < timedelta(seconds=1)
    assert clock.utc_now().tzinfo is UTC


def test_the_services_clock_is_the_movable_one() -> None:
    assert wiring.utc_now is clock.utc_now
    clock.set_offset(timedelta(days=-400))
    assert abs(wiring.utc_now() - (datetime.now(UTC) - timedelta(days=400))) < timedelta(seconds=1)


def test_a_models_check_follows_the_moved_clock() -> None:
    in_six_months = {"to": ["+14155550100"], "body": "hi", "send_at": datetime.now(UTC) + timedelta(days=180)}
    SendRequest.model_validate(in_six_months)
    clock.set_offset(timedelta(days=-200))  # six months from real now is more than a year from Parley's now
    with pytest.raises(ValidationError, match="at most a year ahead"):
        SendRequest.model_validate(in_six_months)
