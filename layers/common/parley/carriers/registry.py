"""Carrier plugins by name, so configuration (and the webhook path) picks one without an if-chain.

A factory receives the resolved Settings (secrets from SSM are already filled in) and returns a
ready Carrier; adding a carrier is its module plus one `register` call here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from parley.carriers.base import Carrier
from parley.carriers.twilio import TwilioCarrier
from parley.config import Settings

logger = logging.getLogger(__name__)

CarrierFactory = Callable[[Settings], Carrier]

_FACTORIES: dict[str, CarrierFactory] = {}


class UnknownCarrier(ValueError):
    """No plugin is registered under the requested name (a configuration or URL mistake)."""


def register(name: str, factory: CarrierFactory) -> None:
    """Register (or replace, e.g. with a simulator for local runs) the factory for `name`."""
    key = name.strip().lower()
    if not key:
        raise ValueError("carrier name must not be empty")
    if key in _FACTORIES:
        logger.info("carrier %r re-registered", key)
    _FACTORIES[key] = factory


def build_carrier(name: str, settings: Settings) -> Carrier:
    """A configured carrier for `name`; UnknownCarrier lists the ones we do have."""
    try:
        factory = _FACTORIES[name.strip().lower()]
    except KeyError:
        raise UnknownCarrier(
            f"unknown carrier {name!r}; known carriers: {', '.join(known_carriers()) or 'none'}"
        ) from None
    return factory(settings)


def known_carriers() -> list[str]:
    return sorted(_FACTORIES)


def _twilio(settings: Settings) -> Carrier:
    return TwilioCarrier(
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        api_base=settings.twilio_api_base,
        timeout=settings.carrier_timeout_seconds,
    )


register("twilio", _twilio)
