"""The contact sync's dependencies, built once per cold start (the api, crmsync and webhooks functions)."""

from __future__ import annotations

from functools import lru_cache

from mailbridge.bus import EventPublisher
from mailbridge.config import get_settings
from mailbridge.crm.integrations.wiring import integration_deps
from mailbridge.crm.sync.service import SyncDeps
from mailbridge.queues import CrmSyncQueue
from mailbridge.store.crm import CrmStore


@lru_cache(maxsize=1)
def sync_deps() -> SyncDeps:
    settings = get_settings()
    queue = CrmSyncQueue(settings.crm_sync_queue_url)
    return SyncDeps(
        integrations=integration_deps(),
        crm=CrmStore(settings.tables.crm),
        publisher=EventPublisher(settings.event_bus_name),
        send=queue.send_syncs,
    )
