"""The simulated CRM over real HTTP, and the settings that point each CRM adapter at it (shared by the
integration tests of the digest's upserts and of the record sync)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from werkzeug.exceptions import NotFound
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from local.sim_crm import SimulatedCrm
from parley.config import Settings
from tests.carrier_api import serving

TOKEN = "sim-crm-token-42"
SECRET = "sim-webhook-secret"


@contextmanager
def served(sim: SimulatedCrm) -> Iterator[str]:
    """The simulator's base URL, as the CRM settings take it."""
    with serving(DispatcherMiddleware(NotFound(), {"/_sim/crm": sim})) as base:
        yield base + "/_sim/crm"


def settings_for(name: str, url: str) -> Settings:
    if name == "webhook":
        return Settings(crm=name, crm_webhook_url=url, crm_signing_secret=SECRET)
    if name == "salesforce":  # the client-credentials flow, against the simulator's token endpoint
        return Settings(
            crm=name,
            crm_salesforce_instance_url=url,
            crm_salesforce_client_id="parley",
            crm_salesforce_client_secret="client-secret",
        )
    if name == "hubspot":
        return Settings(crm=name, crm_hubspot_base_url=url, crm_hubspot_token=TOKEN)
    return Settings(crm=name, crm_dynamics_instance_url=url, crm_dynamics_access_token=TOKEN)
