"""Builds the automations dependencies once per cold start (api and automations functions)."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from mailbridge.automations.scheduling import CronScheduler
from mailbridge.automations.service import AutomationDeps
from mailbridge.config import get_settings
from mailbridge.store.automations import AutomationStore
from mailbridge.store.ratelimit import RateLimiter
from mailbridge.store.settings import DynamoFeatureStore

if TYPE_CHECKING:
    from mailbridge.ai.suggest import SuggestDeps
    from mailbridge.automations.execution import ExecutionDeps


@lru_cache(maxsize=1)
def automation_deps() -> AutomationDeps:
    settings = get_settings()
    return AutomationDeps(
        store=AutomationStore(settings.tables.automations),
        features=DynamoFeatureStore(settings.tables.settings),
        scheduler=CronScheduler(settings.automations_queue_arn, settings.scheduler_role_arn),
        home_queue_url=settings.automations_queue_url,
        limiter=RateLimiter(settings.tables.automations),
    )


@lru_cache(maxsize=1)
def execution_deps() -> ExecutionDeps:
    """The automations function's dependencies; `guard` is set by the handler (Powertools
    idempotency needs the Lambda context it registers)."""
    from mailbridge.automations.execution import ExecutionDeps
    from mailbridge.automations.executors import ExecutorDeps, default_executors
    from mailbridge.bus import EventPublisher
    from mailbridge.outbox.wiring import outbox_deps
    from mailbridge.store.crm import CrmStore

    settings = get_settings()
    store = AutomationStore(settings.tables.automations)
    crm = CrmStore(settings.tables.crm)
    executors = default_executors(
        ExecutorDeps(
            store=store,
            outbox=outbox_deps,
            crm_store=lambda: crm,
            local_mode=settings.allow_private_mail_hosts,
            ai=_ai_generate_deps,
        )
    )
    return ExecutionDeps(
        store=store,
        features=DynamoFeatureStore(settings.tables.settings),
        publisher=EventPublisher(settings.event_bus_name),
        executors=executors,
    )


@lru_cache(maxsize=1)
def _ai_generate_deps() -> tuple[SuggestDeps, DynamoFeatureStore]:
    """What `ai.generate` reads: the email (with its raw message) and the tenant's `ai` flag."""
    from mailbridge.ai.suggest import SuggestDeps
    from mailbridge.store.blobs import BlobStore
    from mailbridge.store.emails import EmailStore

    settings = get_settings()
    return (
        SuggestDeps(EmailStore(settings.tables.emails), BlobStore(settings.mail_bucket)),
        DynamoFeatureStore(settings.tables.settings),
    )
