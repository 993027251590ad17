"""Carrier plugins by name, so configuration (and the webhook path) picks one without an if-chain.

Registrations name a factory as "module:function" and import it on first use: a webhook for one
carrier never pays for importing the others. Adding a carrier is its module plus one line here.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable

from parley.carriers.base import Carrier
from parley.carriers.config import CarrierConfig

logger = logging.getLogger(__name__)

CarrierFactory = Callable[[CarrierConfig], Carrier]

_FACTORIES: dict[str, str | CarrierFactory] = {}
_WEBHOOK_KINDS: dict[str, tuple[str, ...]] = {}
_SETTINGS: dict[str, tuple[str, ...]] = {}


class UnknownCarrier(ValueError):
    """No plugin is registered under the requested name (a configuration or URL mistake)."""


class CarrierNotEnabled(RuntimeError):
    """The carrier failed to build and none of its settings has a value: this deployment does not use
    it (unlike a carrier with some settings wrong or missing, which the operator is setting up)."""


def register(
    name: str,
    factory: str | CarrierFactory,
    *,
    webhooks: tuple[str, ...] = ("messages", "status"),
    settings: tuple[str, ...] = (),
) -> None:
    """Register (or replace, e.g. with a simulator for local runs) the factory for `name`.

    `factory` is a callable or a "package.module:function" path imported on first use;
    `webhooks` are the URL kinds a person configures at the carrier (/webhooks/<name>/<kind>);
    `settings` are the credentials (CarrierConfig names) whose absence means the carrier is unused.
    """
    key = name.strip().lower()
    if not key:
        raise ValueError("carrier name must not be empty")
    if key in _FACTORIES:
        logger.info("carrier %r re-registered", key)
    _FACTORIES[key] = factory
    _WEBHOOK_KINDS[key] = webhooks
    _SETTINGS[key] = settings


def webhook_paths(name: str) -> list[str]:
    """The paths to paste into the carrier's console, e.g. ["/webhooks/twilio/messages", ...]."""
    key = name.strip().lower()
    if key not in _WEBHOOK_KINDS:
        raise UnknownCarrier(f"unknown carrier {name!r}")
    return [f"/webhooks/{key}/{kind}" for kind in _WEBHOOK_KINDS[key]]


def build_carrier(name: str, config: CarrierConfig | None = None) -> Carrier:
    """A configured carrier for `name`; UnknownCarrier lists the ones we do have.

    A build that fails while none of the carrier's registered settings has a value raises
    CarrierNotEnabled; with some of them set, the build's own error propagates."""
    key = name.strip().lower()
    try:
        factory = _FACTORIES[key]
    except KeyError:
        raise UnknownCarrier(
            f"unknown carrier {name!r}; known carriers: {', '.join(known_carriers()) or 'none'}"
        ) from None
    if isinstance(factory, str):
        module_name, _, function_name = factory.partition(":")
        factory = getattr(importlib.import_module(module_name), function_name)
        _FACTORIES[key] = factory
    config = config or CarrierConfig()
    try:
        return factory(config)
    except Exception:
        settings = _SETTINGS.get(key, ())
        if settings and not config.has_any(*settings):
            raise CarrierNotEnabled(f"carrier {key!r} is not enabled (none of its settings is set)") from None
        raise


def known_carriers() -> list[str]:
    return sorted(_FACTORIES)


register("twilio", "parley.carriers.twilio:build")
register("telnyx", "parley.carriers.telnyx:build", webhooks=("events",))
# Not the API secret: the webhook may read it only alone (GetParameter), and the key and the signature
# secret already tell an unused Vonage from one being set up.
register(
    "vonage",
    "parley.carriers.vonage_sms:build",
    settings=("vonage_api_key", "vonage_signature_secret"),
)
register("vonage-messages", "parley.carriers.vonage_messages:build")
register("bandwidth", "parley.carriers.bandwidth:build", webhooks=("events",))
register("plivo", "parley.carriers.plivo:build", settings=("plivo_auth_id", "plivo_auth_token"))
register("aws", "parley.carriers.aws_sms:build", webhooks=("events",))
