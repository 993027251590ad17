"""Name → factory for CRM plugins, so configuration picks the CRM and nothing else imports one directly.

Adding a CRM is one module plus one `register` call; the composition root calls `build_crm` with the
configured name.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from parley.config import Settings
from parley.crm.webhook import CrmUpsertResult, WebhookCrm

__all__ = ["Crm", "CrmFactory", "UnknownCrm", "build_crm", "names", "register"]

logger = logging.getLogger(__name__)


class Crm(Protocol):
    """What the digest needs from a CRM: an idempotent upsert keyed by our external id."""

    def upsert(self, external_id: str, payload: dict[str, Any]) -> CrmUpsertResult: ...


CrmFactory = Callable[[Settings], Crm]


class UnknownCrm(ValueError):
    """The configured CRM name has no registered plugin."""


_lock = threading.Lock()
_factories: dict[str, CrmFactory] = {}


def _key(name: str) -> str:
    return name.strip().lower()


def register(name: str, factory: CrmFactory) -> None:
    """Register (or replace, e.g. in tests) the factory for `name`."""
    key = _key(name)
    if not key:
        raise ValueError("a CRM needs a non-empty name")
    with _lock:
        if key in _factories:
            logger.debug("replacing CRM factory %r", key)
        _factories[key] = factory


def names() -> list[str]:
    with _lock:
        return sorted(_factories)


def build_crm(name: str, settings: Settings) -> Crm:
    """Build the CRM plugin configured as `name`; raise UnknownCrm if there is none."""
    with _lock:
        factory = _factories.get(_key(name))
    if factory is None:
        raise UnknownCrm(f"unknown CRM {name!r}; registered: {', '.join(names()) or 'none'}")
    return factory(settings)


def _build_webhook(settings: Settings) -> Crm:
    if not settings.crm_webhook_url:
        raise ValueError("the webhook CRM needs PARLEY_CRM_WEBHOOK_URL")
    if not settings.crm_signing_secret:
        raise ValueError("the webhook CRM needs PARLEY_CRM_SIGNING_SECRET (resolved from its parameter)")
    return WebhookCrm(settings.crm_webhook_url, settings.crm_signing_secret)


register("webhook", _build_webhook)
