"""Name → factory for CRM plugins, so configuration picks the CRM and nothing else imports one directly.

Adding a CRM is one module plus one `register` call; the composition root calls `build_crm` with the
configured name.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from parley.config import Settings
from parley.crm.webhook import CrmUpsertResult, WebhookCrm

if TYPE_CHECKING:
    from parley.crm._http import TokenSource
    from parley.crm.changes import RecordSource

__all__ = ["Crm", "CrmFactory", "UnknownCrm", "build_crm", "build_record_source", "names", "register"]

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


def build_record_source(name: str, settings: Settings) -> RecordSource:
    """The configured CRM as a source of changed records, for the record sync."""
    from parley.crm.changes import RecordSource

    crm = build_crm(name, settings)
    if not isinstance(crm, RecordSource):
        raise UnknownCrm(f"the {name!r} CRM can't list changed records, so records can't be synced from it")
    return crm


def _build_webhook(settings: Settings) -> Crm:
    if not settings.crm_webhook_url:
        raise ValueError("the webhook CRM needs PARLEY_CRM_WEBHOOK_URL")
    if not settings.crm_signing_secret:
        raise ValueError("the webhook CRM needs PARLEY_CRM_SIGNING_SECRET (resolved from its parameter)")
    return WebhookCrm(settings.crm_webhook_url, settings.crm_signing_secret, region=settings.default_region)


register("webhook", _build_webhook)


def _token_source(
    settings: Settings,
    *,
    crm: str,
    token: str,
    token_url: str,
    client_id: str,
    client_secret: str,
    scope: str = "",
) -> TokenSource:
    """A configured token wins; otherwise the client-credentials grant (secrets come resolved from SSM)."""
    from parley.crm._http import ClientCredentials, StaticToken

    if token:
        return StaticToken(token)
    if client_id and client_secret and token_url:
        import requests

        return ClientCredentials(
            token_url,
            client_id,
            client_secret,
            scope=scope,
            session=requests.Session(),
            timeout=settings.crm_timeout_seconds,
        )
    raise ValueError(f"the {crm} CRM needs an access token, or a client id and secret")


def _build_salesforce(settings: Settings) -> Crm:
    from parley.crm.salesforce import SalesforceCrm

    instance = settings.crm_salesforce_instance_url.rstrip("/")
    if not instance:
        raise ValueError("the Salesforce CRM needs PARLEY_CRM_SALESFORCE_INSTANCE_URL")
    token = _token_source(
        settings,
        crm="Salesforce",
        token=settings.crm_salesforce_access_token,
        token_url=f"{instance}/services/oauth2/token",
        client_id=settings.crm_salesforce_client_id,
        client_secret=settings.crm_salesforce_client_secret,
    )
    return SalesforceCrm(
        instance,
        token,
        api_version=settings.crm_salesforce_api_version,
        external_id_field=settings.crm_salesforce_external_id_field,
        timeout=settings.crm_timeout_seconds,
        region=settings.default_region,
    )


def _build_hubspot(settings: Settings) -> Crm:
    from parley.crm._http import StaticToken
    from parley.crm.hubspot import HubSpotCrm

    if not settings.crm_hubspot_token:
        raise ValueError("the HubSpot CRM needs PARLEY_CRM_HUBSPOT_TOKEN (resolved from its parameter)")
    return HubSpotCrm(
        StaticToken(settings.crm_hubspot_token),
        base_url=settings.crm_hubspot_base_url,
        id_property=settings.crm_hubspot_id_property,
        timeout=settings.crm_timeout_seconds,
        region=settings.default_region,
    )


def _build_dynamics(settings: Settings) -> Crm:
    from parley.crm.dynamics import DynamicsCrm

    instance = settings.crm_dynamics_instance_url.rstrip("/")
    if not instance:
        raise ValueError("the Dynamics 365 CRM needs PARLEY_CRM_DYNAMICS_INSTANCE_URL")
    token_url = settings.crm_dynamics_token_url or (
        f"https://login.microsoftonline.com/{settings.crm_dynamics_tenant_id}/oauth2/v2.0/token"
        if settings.crm_dynamics_tenant_id
        else ""
    )
    token = _token_source(
        settings,
        crm="Dynamics 365",
        token=settings.crm_dynamics_access_token,
        token_url=token_url,
        client_id=settings.crm_dynamics_client_id,
        client_secret=settings.crm_dynamics_client_secret,
        scope=f"{instance}/.default",
    )
    return DynamicsCrm(
        instance,
        token,
        entity_set=settings.crm_dynamics_entity_set,
        alternate_key=settings.crm_dynamics_alternate_key,
        timeout=settings.crm_timeout_seconds,
        region=settings.default_region,
    )


register("salesforce", _build_salesforce)
register("hubspot", _build_hubspot)
register("dynamics", _build_dynamics)
