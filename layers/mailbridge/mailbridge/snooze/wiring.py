"""Builds the snooze dependencies once per cold start (the api and reminders functions)."""

from __future__ import annotations

from functools import lru_cache

from mailbridge.bus import EventPublisher
from mailbridge.config import get_settings
from mailbridge.queues import SyncQueue
from mailbridge.schedules import OneTimeScheduler
from mailbridge.snooze.service import SnoozeDeps
from mailbridge.store.emails import EmailStore
from mailbridge.store.snoozes import SnoozeStore


@lru_cache(maxsize=1)
def snooze_deps() -> SnoozeDeps:
    settings = get_settings()
    return SnoozeDeps(
        snoozes=SnoozeStore(settings.tables.snoozes),
        emails=EmailStore(settings.tables.emails),
        scheduler=OneTimeScheduler(settings.reminders_queue_arn, settings.scheduler_role_arn),
        sync_queue=SyncQueue(settings.sync_queue_url),
        publisher=EventPublisher(settings.event_bus_name),
    )
