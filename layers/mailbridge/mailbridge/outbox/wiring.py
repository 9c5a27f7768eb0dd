"""Builds the outbox function's dependencies once per cold start."""

from __future__ import annotations

from functools import lru_cache

from mailbridge.bus import EventPublisher
from mailbridge.campaigns.wiring import record_deps
from mailbridge.config import get_settings
from mailbridge.outbox.service import OutboxDeps
from mailbridge.queues import OutboxQueue
from mailbridge.schedules import OneTimeScheduler
from mailbridge.store.accounts import AccountStore
from mailbridge.store.blobs import BlobStore
from mailbridge.store.emails import EmailStore


@lru_cache(maxsize=1)
def outbox_deps() -> OutboxDeps:
    settings = get_settings()
    return OutboxDeps(
        emails=EmailStore(settings.tables.emails),
        accounts=AccountStore(settings.tables.accounts),
        blobs=BlobStore(settings.mail_bucket),
        queue=OutboxQueue(settings.outbox_queue_url),
        scheduler=OneTimeScheduler(settings.outbox_queue_arn, settings.scheduler_role_arn),
        publisher=EventPublisher(settings.event_bus_name),
        allow_private_hosts=settings.allow_private_mail_hosts,
        suppressions=record_deps(),
    )
