"""Builds the follow-up dependencies once per cold start (the api and reminders functions)."""

from __future__ import annotations

from functools import lru_cache

from mailbridge.bus import EventPublisher
from mailbridge.config import get_settings
from mailbridge.followups.service import FollowUpDeps
from mailbridge.queues import SyncQueue
from mailbridge.schedules import OneTimeScheduler
from mailbridge.store.emails import EmailStore
from mailbridge.store.flags import FlagStore


@lru_cache(maxsize=1)
def follow_up_deps() -> FollowUpDeps:
    settings = get_settings()
    return FollowUpDeps(
        flags=FlagStore(settings.tables.flags),
        emails=EmailStore(settings.tables.emails),
        scheduler=OneTimeScheduler(settings.reminders_queue_arn, settings.scheduler_role_arn),
        sync_queue=SyncQueue(settings.sync_queue_url),
        publisher=EventPublisher(settings.event_bus_name),
    )
