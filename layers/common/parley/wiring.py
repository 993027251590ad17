"""The composition root: the one place that chooses adapters. Handlers ask it for services.

Everything is built lazily and once per cold start, and the heavy modules (pydantic settings,
pynamodb, the services) are imported only when first needed: the webhook touches `carrier()` and
`intake`, which need the standard library and boto3 alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from parley.adapters.aws import SqsQueue
from parley.carriers.base import Carrier
from parley.carriers.config import CarrierConfig
from parley.carriers.registry import build_carrier, webhook_paths
from parley.clock import utc_now
from parley.edge import WebhookIntake
from parley.observability import EmfMetrics, ObservedEvents, correlation_id, emf_metrics

if TYPE_CHECKING:
    from parley.adapters.aws import S3MediaStore
    from parley.adapters.dynamo import (
        DynamoAutoLogSettings,
        DynamoConflicts,
        DynamoContacts,
        DynamoConversations,
        DynamoMessages,
        DynamoNumbers,
        DynamoOptOuts,
        DynamoRateLimiter,
        DynamoReceipts,
        DynamoTemplates,
    )
    from parley.config import Settings
    from parley.crm.registry import Crm
    from parley.domain.keywords import Keyword
    from parley.observability import DlqGauges
    from parley.services.conversations import ConversationService
    from parley.services.dead_letters import DeadLetterService
    from parley.services.digest import DigestService
    from parley.services.digest_jobs import DigestJobs
    from parley.services.erasure import ErasureService
    from parley.services.inbound import InboundProcessor
    from parley.services.inbox import InboxQueries
    from parley.services.mailbox import Mailbox
    from parley.services.missed_inbound import MissedInboundSweep
    from parley.services.record_sync import RecordSync
    from parley.services.records import RecordService
    from parley.services.resend import ResendService
    from parley.services.retention import RetentionSweep
    from parley.services.sending import SendService
    from parley.services.sweep import DueSweep
    from parley.services.templates import TemplateService


class Container:
    """Holds the adapters and services for one process."""

    def __init__(self, settings: Settings | None = None, env: CarrierConfig | None = None) -> None:
        self._given_settings = settings
        self.env = env or CarrierConfig()
        self._carriers: dict[str, Carrier] = {}

    # -- configuration --
    @cached_property
    def settings(self) -> Settings:
        from parley.adapters.dynamo import bind_tables
        from parley.config import get_settings

        settings = self._given_settings or get_settings()
        bind_tables(settings)
        return settings

    @cached_property
    def crm_settings(self) -> Settings:
        """Settings to build the CRM from: the JSON parameter PARLEY_CRM_CONFIG_PARAM names merged in,
        then the chosen CRM's secrets. Only the digest and API functions get here, once per cold start."""
        from parley.crm.config import load_crm_settings

        return load_crm_settings(self.settings)

    # -- the webhook path (light) --
    def carrier(self, name: str) -> Carrier:
        key = name.strip().lower()
        if key not in self._carriers:
            self._carriers[key] = build_carrier(key, self.env)
        return self._carriers[key]

    @cached_property
    def intake(self) -> WebhookIntake:
        queue = SqsQueue(self.env.get("inbound_queue_url"), self.env.region)
        return WebhookIntake(queue, log_only=self.env.verify_log_only_for)

    @property
    def public_base_url(self) -> str:
        return self.env.get("public_base_url")

    def status_callback_url(self, carrier: str) -> str | None:
        """Our receipt URL for this carrier: its `status` webhook, or its single `events` one."""
        base = self.public_base_url.rstrip("/")
        if not base:
            return None
        paths = webhook_paths(carrier)
        path = next((p for p in paths if p.endswith("/status")), paths[-1])
        return base + path

    # -- adapters --
    @cached_property
    def messages(self) -> DynamoMessages:
        from parley.adapters.dynamo import DynamoMessages

        return DynamoMessages(self.settings)

    @cached_property
    def conversations(self) -> DynamoConversations:
        from parley.adapters.dynamo import DynamoConversations

        self.settings  # noqa: B018 - binds the tables
        return DynamoConversations()

    @cached_property
    def numbers(self) -> DynamoNumbers:
        from parley.adapters.dynamo import DynamoNumbers

        self.settings  # noqa: B018
        return DynamoNumbers()

    @cached_property
    def contacts(self) -> DynamoContacts:
        from parley.adapters.dynamo import DynamoContacts

        self.settings  # noqa: B018
        return DynamoContacts()

    @cached_property
    def conflicts(self) -> DynamoConflicts:
        from parley.adapters.dynamo import DynamoConflicts

        self.settings  # noqa: B018
        return DynamoConflicts()

    @cached_property
    def templates(self) -> DynamoTemplates:
        from parley.adapters.dynamo import DynamoTemplates

        self.settings  # noqa: B018
        return DynamoTemplates()

    @cached_property
    def receipts(self) -> DynamoReceipts:
        from parley.adapters.dynamo import DynamoReceipts

        self.settings  # noqa: B018
        return DynamoReceipts()

    @cached_property
    def opt_outs(self) -> DynamoOptOuts:
        from parley.adapters.dynamo import DynamoOptOuts

        self.settings  # noqa: B018
        return DynamoOptOuts()

    @cached_property
    def rate_limiter(self) -> DynamoRateLimiter | None:
        from parley.adapters.dynamo import DynamoRateLimiter

        return DynamoRateLimiter() if self.settings.rate_limits_enabled else None

    @cached_property
    def metrics(self) -> EmfMetrics:
        """CloudWatch metrics (EMF lines on stdout); parley.observability has the names and dimensions."""
        return emf_metrics()

    @cached_property
    def events(self) -> ObservedEvents:
        """The bus, seen on the way out: sends, failures and retries counted, correlation ids stamped."""
        from parley.adapters.aws import EventBridgePublisher

        bus = EventBridgePublisher(self.settings.event_bus_name, self.settings.region)
        return ObservedEvents(bus, self.metrics)

    @cached_property
    def media_store(self) -> S3MediaStore | None:
        """The MMS media bucket; None (media stays at the carriers' URLs) when none is configured."""
        from parley.adapters.aws import S3MediaStore

        bucket = self.settings.media_bucket
        return S3MediaStore(bucket, self.settings.region) if bucket else None

    # -- services --
    @cached_property
    def processor(self) -> InboundProcessor:
        from parley.domain.retry import RetryPolicy
        from parley.services.inbound import InboundProcessor

        settings = self.settings
        url = settings.retry_queue_url
        return InboundProcessor(
            self.messages,
            self.receipts,
            self.numbers,
            self.contacts,
            self.events,
            utc_now,
            opt_outs=self.opt_outs,
            carriers=self.carrier,
            media=self.media_store,
            compliance=self.queue_compliance_reply,
            conversations=self.conversations,
            # a receipt's passing failure is retried within the limits of a failed send
            retry_policy=RetryPolicy(
                max_attempts=settings.retry_max_attempts,
                base_seconds=settings.retry_base_seconds,
                max_delay_seconds=settings.retry_max_delay_seconds,
                max_age_seconds=settings.retry_max_age_seconds,
            ),
            retry_queue=SqsQueue(url, settings.region) if url else None,
        )

    def queue_compliance_reply(self, keyword: Keyword, to: str, our_number: str, reference: str) -> None:
        """The processor answers keywords through the send queue, with the same rules as any text."""
        job = {"keyword": keyword.value, "to": to, "our_number": our_number, "reference": reference}
        journey = correlation_id()
        if journey:  # the reply continues the inbound text's journey
            job["correlation_id"] = journey
        SqsQueue(self.settings.send_queue_url, self.settings.region).send({"compliance": job})

    @cached_property
    def sender(self) -> SendService:
        from parley.domain.keywords import Keyword
        from parley.domain.retry import RetryPolicy
        from parley.services.sending import SendService

        settings = self.settings
        return SendService(
            messages=self.messages,
            conversations=self.conversations,
            numbers=self.numbers,
            templates=self.templates,
            contacts=self.contacts,
            send_queue=SqsQueue(settings.send_queue_url, settings.region),
            retry_queue=SqsQueue(settings.retry_queue_url, settings.region),
            carriers=self.carrier,
            events=self.events,
            clock=utc_now,
            retry_policy=RetryPolicy(
                max_attempts=settings.retry_max_attempts,
                base_seconds=settings.retry_base_seconds,
                max_delay_seconds=settings.retry_max_delay_seconds,
                max_age_seconds=settings.retry_max_age_seconds,
            ),
            max_segments=settings.max_segments,
            status_callback_url=self.status_callback_url,
            on_carrier_id=self.processor.apply_parked,
            opt_outs=self.opt_outs,
            quiet_hours=settings.quiet_hours,
            fallback_zone=settings.org_timezone,
            rate_limiter=self.rate_limiter,
            sleep=time.sleep,
            metrics=self.metrics,
            compliance_texts={
                Keyword.OPT_OUT: settings.opt_out_reply.format(org=settings.org_name),
                Keyword.OPT_IN: settings.opt_in_reply.format(org=settings.org_name),
                Keyword.HELP: settings.help_reply.format(org=settings.org_name),
            },
            number_scope_texts={
                Keyword.OPT_OUT: settings.opt_out_number_reply.format(org=settings.org_name),
                Keyword.OPT_IN: settings.opt_in_number_reply.format(org=settings.org_name),
            },
        )

    @cached_property
    def resender(self) -> ResendService:
        from parley.services.resend import ResendService

        return ResendService(
            messages=self.messages, views=self.messages, sender=self.sender, carriers=self.carrier
        )

    @cached_property
    def due_sweep(self) -> DueSweep:
        """The frequent sweep's pass over due scheduled, held, stuck and lost texts."""
        from parley.services.sweep import DueSweep

        return DueSweep(messages=self.messages, sender=self.sender, clock=utc_now)

    @cached_property
    def missed_inbound(self) -> MissedInboundSweep:
        """The sweep that asks carriers for texts whose webhook never reached us."""
        from parley.services.missed_inbound import MissedInboundSweep

        return MissedInboundSweep(
            numbers=self.numbers,
            carrier=self.carrier,
            messages=self.messages,
            inbound_queue=SqsQueue(self.settings.inbound_queue_url, self.settings.region),
            clock=utc_now,
            metrics=self.metrics,
        )

    @cached_property
    def dead_letters(self) -> DeadLetterService:
        """The sweep's drain of the dead-letter queues (those configured) into failed messages."""
        from parley.adapters.aws import SqsDeadLetterQueue
        from parley.edge import emit_count
        from parley.services.dead_letters import DeadLetterService

        settings = self.settings
        urls = {
            "inbound": settings.inbound_dlq_url,
            "send": settings.send_dlq_url,
            "retry": settings.retry_dlq_url,
        }
        return DeadLetterService(
            queues={name: SqsDeadLetterQueue(url, settings.region) for name, url in urls.items() if url},
            messages=self.messages,
            sender=self.sender,
            events=self.events,
            clock=utc_now,
            count=lambda queue, n: emit_count("DeadLettersDrained", {"queue": queue}, n),
        )

    @cached_property
    def queue_gauges(self) -> DlqGauges:
        """DlqDepth for the sweep: the dead-letter queues configured, and the digest queue's."""
        from parley.adapters.aws import client
        from parley.observability import DlqGauges

        settings = self.settings
        dlqs = {
            "inbound": settings.inbound_dlq_url,
            "send": settings.send_dlq_url,
            "retry": settings.retry_dlq_url,
        }
        digest = {"digest": settings.digest_queue_url} if settings.digest_queue_url else {}
        return DlqGauges(
            {name: url for name, url in dlqs.items() if url},
            self.metrics,
            client("sqs", settings.region),
            redriven_from=digest,
        )

    @cached_property
    def records(self) -> RecordService:
        from parley.services.records import RecordService

        return RecordService(self.contacts, utc_now, region=self.settings.default_region)

    @cached_property
    def template_service(self) -> TemplateService:
        from parley.services.templates import TemplateService

        return TemplateService(self.templates)

    @cached_property
    def mailbox(self) -> Mailbox:
        """The message views, delete and restore, reply and forward."""
        from parley.services.mailbox import Mailbox

        return Mailbox(
            messages=self.messages,
            listing=self.messages,
            numbers=self.numbers,
            sender=self.sender,
            clock=utc_now,
            conversations=self.conversations,
        )

    @cached_property
    def inbox(self) -> InboxQueries:
        from parley.services.inbox import InboxQueries

        return InboxQueries(
            self.messages, self.conversations, self.media_store, region=self.settings.default_region
        )

    @cached_property
    def conversation_service(self) -> ConversationService:
        """Conversations in the inbox: filtered lists, search, read state, close, add a contact."""
        from parley.adapters.dynamo import DynamoSearch
        from parley.services.conversations import ConversationService

        return ConversationService(
            conversations=self.conversations,
            browser=self.conversations,
            search=DynamoSearch(),
            numbers=self.numbers,
            contacts=self.contacts,
            linker=self.conversations,
            records=self.records,
            opt_outs=self.opt_outs,
            region=self.settings.default_region,
            messages=self.messages,
            unread=self.conversations,
        )

    @cached_property
    def digest(self) -> DigestService:
        from parley.adapters.dynamo import DynamoDigestRuns, DynamoDigests
        from parley.domain.models import AutoLog
        from parley.services.digest import DigestService

        return DigestService(
            messages=self.messages,
            contacts=self.contacts,
            digests=DynamoDigests(),
            crm=_CrmOnFirstUse(lambda: self.crm),
            shards=self.settings.digest_shards,
            clock=utc_now,
            conversations=self.conversations,
            conflicts=self.conflicts,
            linker=self.conversations,
            runs=DynamoDigestRuns(self.settings),
            jobs=self.digest_queue,
            numbers=self.numbers,
            auto_log=self.auto_log_settings,
            auto_log_default=AutoLog(self.settings.auto_log_default),
            page_size=self.settings.digest_page_size,
            timezone=self.settings.org_timezone,
        )

    @cached_property
    def crm(self) -> Crm:
        from parley.crm.registry import build_crm

        return build_crm(self.crm_settings.crm, self.crm_settings)

    @cached_property
    def digest_jobs(self) -> DigestJobs:
        from parley.services.digest_jobs import DigestJobs

        return DigestJobs(
            self.digest,
            self.digest_queue,
            timezone=self.settings.org_timezone,
            lookback_days=self.settings.digest_lookback_days,
            count=lambda name, n: self.metrics.put(name, n),
            # a job stops while one more conversation's CRM calls (up to two, each up to the timeout) fit
            reserve_seconds=max(60.0, 4 * self.settings.crm_timeout_seconds),
        )

    @cached_property
    def auto_log_settings(self) -> DynamoAutoLogSettings:
        from parley.adapters.dynamo import DynamoAutoLogSettings

        self.settings  # noqa: B018 - binds the tables
        return DynamoAutoLogSettings()

    @cached_property
    def record_sync(self) -> RecordSync:
        """Records changed in the CRM, stored here every 15 minutes (the `CrmSync` schedule)."""
        from parley.adapters.dynamo import DynamoSyncStates
        from parley.crm.registry import build_record_source
        from parley.services.record_sync import RecordSync

        settings = self.crm_settings
        return RecordSync(
            build_record_source(settings.crm, settings),
            self.contacts,
            DynamoSyncStates(),
            utc_now,
        )

    @cached_property
    def erasure(self) -> ErasureService:
        """A customer's data erased on request (POST /v1/erasures); their opt-out stays."""
        from parley.adapters.dynamo import DynamoErasure
        from parley.services.erasure import ErasureService

        return ErasureService(
            messages=self.messages,
            store=DynamoErasure(),
            contacts=self.contacts,
            media=self.media_store,
            events=self.events,
            clock=utc_now,
            timezone=self.settings.org_timezone,
        )

    def retention(self, days: object) -> RetentionSweep:
        """The nightly sweep that blanks texts older than `days` (RetentionDays, which the schedule
        passes in its input: the shared environment is near Lambda's 4 KB; docs/retention.md)."""
        from parley.services.retention import RetentionSweep, retention_days

        return RetentionSweep(
            messages=self.messages,
            conversations=self.conversations,
            previews=self.conversations,
            clock=utc_now,
            retention_days=retention_days(days),
            timezone=self.settings.org_timezone,
            shards=self.settings.digest_shards,
        )

    @cached_property
    def digest_queue(self) -> SqsQueue | None:
        """Digest jobs: shard pages of a run, and days to log again; absent, runs stay in-process."""
        url = self.settings.digest_queue_url
        return SqsQueue(url, self.settings.region) if url else None


class _CrmOnFirstUse:
    """The CRM, built on the first upsert: reading a run's progress or auto-log settings needs no
    CRM, and a wrong CRM configuration then fails each record with its reason, not the whole call."""

    def __init__(self, build: Callable[[], Crm]) -> None:
        self._build = build

    def upsert(self, external_id: str, payload: dict[str, Any]) -> Any:
        return self._build().upsert(external_id, payload)


_container: Container | None = None


def container() -> Container:
    """The process-wide container, built on first use from the environment."""
    global _container
    if _container is None:
        _container = Container()
    return _container


def reset_container() -> None:
    """Forget the container and settings (tests and the local runtime change the environment)."""
    global _container
    _container = None
    from parley.config import get_settings

    get_settings.cache_clear()
