"""Settings, read once per cold start from the environment that template.yaml's Globals set."""

from __future__ import annotations

from functools import cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every function sees the same names (set in Globals), so one process can host them all locally."""

    model_config = SettingsConfigDict(env_prefix="PARLEY_", extra="ignore")

    stage: str = "dev"
    region: str = Field(default="us-east-1", validation_alias="AWS_REGION")

    # tables
    messages_table: str = "parley-messages"
    conversations_table: str = "parley-conversations"
    contacts_table: str = "parley-contacts"
    templates_table: str = "parley-templates"
    numbers_table: str = "parley-numbers"
    receipts_table: str = "parley-receipts"
    digests_table: str = "parley-digests"
    opt_outs_table: str = "parley-opt-outs"
    rate_limits_table: str = "parley-rate-limits"

    # queues and bus
    inbound_queue_url: str = ""
    send_queue_url: str = ""
    retry_queue_url: str = ""
    # their dead-letter queues, drained into visible failed messages by the sweep
    inbound_dlq_url: str = ""
    send_dlq_url: str = ""
    retry_dlq_url: str = ""
    event_bus_name: str = "parley"
    media_bucket: str = ""

    # webhooks: the exact public base URL carriers are configured with (signatures cover it)
    public_base_url: str = ""
    verify_mode: str = "enforce"  # enforce | log-only

    # secrets: a parameter name in SSM, or a value set directly (local use, tests)
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_auth_token_param: str = ""
    twilio_api_base: str = "https://api.twilio.com"
    carrier_timeout_seconds: float = 10.0

    # the digest's CRM plugin (parley.crm.registry): webhook | salesforce | hubspot | dynamics
    crm: str = "webhook"
    # Deployed: the SSM String parameter holding the CRM's other settings as JSON (parley.crm.config),
    # since Lambda's 4 KB environment has no room for them; the digest and API functions read it.
    crm_config_param: str = ""
    crm_webhook_url: str = ""
    crm_signing_secret: str = ""
    crm_signing_secret_param: str = ""
    crm_timeout_seconds: float = 10.0
    # Salesforce: a configured token, or client credentials against {instance}/services/oauth2/token
    crm_salesforce_instance_url: str = ""
    crm_salesforce_api_version: str = "v62.0"
    crm_salesforce_external_id_field: str = "Parley_External_Id__c"
    crm_salesforce_access_token: str = ""
    crm_salesforce_access_token_param: str = ""
    crm_salesforce_client_id: str = ""
    crm_salesforce_client_secret: str = ""
    crm_salesforce_client_secret_param: str = ""
    # HubSpot: a private app's token
    crm_hubspot_base_url: str = "https://api.hubapi.com"
    crm_hubspot_id_property: str = "parley_external_id"
    crm_hubspot_token: str = ""
    crm_hubspot_token_param: str = ""
    # Dynamics 365: a configured token, or Entra ID client credentials (tenant, client id, secret)
    crm_dynamics_instance_url: str = ""
    crm_dynamics_entity_set: str = "phonecalls"
    crm_dynamics_alternate_key: str = "parley_externalid"
    crm_dynamics_access_token: str = ""
    crm_dynamics_access_token_param: str = ""
    crm_dynamics_tenant_id: str = ""
    crm_dynamics_client_id: str = ""
    crm_dynamics_client_secret: str = ""
    crm_dynamics_client_secret_param: str = ""
    crm_dynamics_token_url: str = ""  # default: https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token

    # sending and retries
    default_region: str = "US"
    max_segments: int = 10
    retry_max_attempts: int = 40  # a backstop: the age limit below is what ends a transient failure
    retry_base_seconds: float = 30.0
    retry_max_delay_seconds: int = 900
    # A transient failure this long after a text's first attempt (or its resend) is final.
    retry_max_age_seconds: float = 4 * 3600.0
    # The digest: shards of each day's messages (fixed once data exists), conversations per job, and
    # how many days before yesterday the nightly run looks at again for late messages and receipts.
    digest_shards: int = 4
    digest_page_size: int = Field(default=200, ge=1, le=5000)
    digest_lookback_days: int = Field(default=2, ge=0, le=14)
    digest_queue_url: str = ""
    # auto-log where neither the user nor our number says: nightly | immediate | off
    auto_log_default: Literal["nightly", "immediate", "off"] = "nightly"

    # the legally required answers to keywords ({org} is the organisation's name)
    org_name: str = "us"
    opt_out_reply: str = (
        "You're unsubscribed from {org} texts and will get no more. Reply START to resubscribe."
    )
    opt_in_reply: str = "You're resubscribed to {org} texts. Reply STOP to unsubscribe, HELP for help."
    help_reply: str = "{org}: reply STOP to unsubscribe, START to resubscribe. Msg & data rates may apply."
    # The same answers from a number whose opt_out_scope is "number": they cover that number only.
    opt_out_number_reply: str = (
        "You're unsubscribed from {org} texts from this number and will get no more from it. "
        "Reply START to resubscribe."
    )
    opt_in_number_reply: str = (
        "You're resubscribed to {org} texts from this number. Reply STOP to unsubscribe, HELP for help."
    )
    org_timezone: str = "UTC"
    # No texts in this window of the recipient's local time ("" = none); held ones go when it opens.
    quiet_hours: str = ""
    # Per-number send rates (token buckets in the rate-limits table); off: no limit at all.
    rate_limits_enabled: bool = True


@cache
def get_settings() -> Settings:
    return Settings()
