"""The composition root: the one place that chooses adapters. Handlers ask it for services.

Everything is built lazily and once per cold start, so a handler pays only for what it uses
(the webhook path builds a carrier and a queue, nothing else).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cached_property

from parley.adapters.aws import EventBridgePublisher, SqsQueue, read_secret
from parley.adapters.dynamo import (
    DynamoContacts,
    DynamoConversations,
    DynamoDigests,
    DynamoMessages,
    DynamoNumbers,
    DynamoReceipts,
    DynamoTemplates,
    bind_tables,
)
from parley.carriers.base import Carrier
from parley.carriers.registry import build_carrier
from parley.config import Settings, get_settings
from parley.crm.registry import build_crm
from parley.domain.retry import RetryPolicy
from parley.services.digest import DigestService
from parley.services.inbound import InboundProcessor, WebhookIntake
from parley.services.inbox import InboxQueries
from parley.services.sending import SendService


def utc_now() -> datetime:
    return datetime.now(UTC)


def resolve_secrets(settings: Settings) -> Settings:
    """Fill secret values from SSM where only a parameter name is configured (deployed stacks)."""
    updates: dict[str, str] = {}
    if not settings.twilio_auth_token and settings.twilio_auth_token_param:
        updates["twilio_auth_token"] = read_secret(settings.twilio_auth_token_param, settings.region)
    if not settings.crm_signing_secret and settings.crm_signing_secret_param:
        updates["crm_signing_secret"] = read_secret(settings.crm_signing_secret_param, settings.region)
    return settings.model_copy(update=updates) if updates else settings


class Container:
    """Holds the adapters and services for one process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        bind_tables(settings)
        self._carriers: dict[str, Carrier] = {}
        self._secrets: Settings | None = None

    # -- adapters --
    @property
    def secrets(self) -> Settings:
        if self._secrets is None:
            self._secrets = resolve_secrets(self.settings)
        return self._secrets

    def carrier(self, name: str) -> Carrier:
        if name not in self._carriers:
            self._carriers[name] = build_carrier(name, self.secrets)
        return self._carriers[name]

    @cached_property
    def messages(self) -> DynamoMessages:
        return DynamoMessages(self.settings)

    @cached_property
    def conversations(self) -> DynamoConversations:
        return DynamoConversations()

    @cached_property
    def numbers(self) -> DynamoNumbers:
        return DynamoNumbers()

    @cached_property
    def contacts(self) -> DynamoContacts:
        return DynamoContacts()

    @cached_property
    def templates(self) -> DynamoTemplates:
        return DynamoTemplates()

    @cached_property
    def receipts(self) -> DynamoReceipts:
        return DynamoReceipts()

    @cached_property
    def events(self) -> EventBridgePublisher:
        return EventBridgePublisher(self.settings.event_bus_name, self.settings.region)

    def status_callback_url(self, carrier: str) -> str | None:
        base = self.settings.public_base_url.rstrip("/")
        return f"{base}/webhooks/{carrier}/status" if base else None

    # -- services --
    @cached_property
    def intake(self) -> WebhookIntake:
        queue = SqsQueue(self.settings.inbound_queue_url, self.settings.region)
        return WebhookIntake(queue, log_only=self.settings.verify_mode == "log-only")

    @cached_property
    def processor(self) -> InboundProcessor:
        return InboundProcessor(
            self.messages, self.receipts, self.numbers, self.contacts, self.events, utc_now
        )

    @cached_property
    def sender(self) -> SendService:
        return SendService(
            messages=self.messages,
            conversations=self.conversations,
            numbers=self.numbers,
            templates=self.templates,
            contacts=self.contacts,
            send_queue=SqsQueue(self.settings.send_queue_url, self.settings.region),
            retry_queue=SqsQueue(self.settings.retry_queue_url, self.settings.region),
            carriers=self.carrier,
            events=self.events,
            clock=utc_now,
            retry_policy=RetryPolicy(
                max_attempts=self.settings.retry_max_attempts,
                base_seconds=self.settings.retry_base_seconds,
                max_delay_seconds=self.settings.retry_max_delay_seconds,
            ),
            max_segments=self.settings.max_segments,
            status_callback_url=self.status_callback_url,
            on_carrier_id=self.processor.apply_parked,
        )

    @cached_property
    def inbox(self) -> InboxQueries:
        return InboxQueries(self.messages, self.conversations)

    @cached_property
    def digest(self) -> DigestService:
        return DigestService(
            messages=self.messages,
            contacts=self.contacts,
            digests=DynamoDigests(),
            crm=build_crm("webhook", self.secrets),
            shards=self.settings.digest_shards,
            clock=utc_now,
        )


_container: Container | None = None


def container() -> Container:
    """The process-wide container, built on first use from the environment."""
    global _container
    if _container is None:
        _container = Container(get_settings())
    return _container


def reset_container() -> None:
    """Forget the container and settings (tests and the local runtime change the environment)."""
    global _container
    _container = None
    get_settings.cache_clear()
