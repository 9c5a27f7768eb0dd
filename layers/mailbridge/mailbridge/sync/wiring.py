"""Builds the sync service's dependencies once per cold start from the settings."""

from __future__ import annotations

import time
from functools import lru_cache

from mailbridge.bus import EventPublisher
from mailbridge.config import get_settings
from mailbridge.queues import SyncQueue
from mailbridge.store.accounts import AccountStore
from mailbridge.store.blobs import BlobStore
from mailbridge.store.emails import EmailStore
from mailbridge.sync.engine import Budget, SyncDeps
from mailbridge.sync.service import SyncServiceDeps

# Leave this much of the Lambda's time for saving state and queueing the continuation.
SAFETY_MARGIN_SECONDS = 60
MAX_MESSAGES_PER_RUN = 2000


@lru_cache(maxsize=1)
def service_deps() -> SyncServiceDeps:
    settings = get_settings()
    return SyncServiceDeps(
        sync=SyncDeps(
            accounts=AccountStore(settings.tables.accounts),
            emails=EmailStore(settings.tables.emails),
            blobs=BlobStore(settings.mail_bucket),
            publisher=EventPublisher(settings.event_bus_name),
        ),
        queue=SyncQueue(settings.sync_queue_url),
        allow_private_hosts=settings.allow_private_mail_hosts,
    )


def budget_for(remaining_ms: int) -> Budget:
    seconds = max(5.0, remaining_ms / 1000 - SAFETY_MARGIN_SECONDS)
    return Budget(max_messages=MAX_MESSAGES_PER_RUN, deadline=time.monotonic() + seconds)
