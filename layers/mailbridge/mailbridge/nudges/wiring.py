"""Builds the nudge dependencies once per cold start (the api and reminders functions)."""

from __future__ import annotations

from functools import lru_cache

from mailbridge.bus import EventPublisher
from mailbridge.config import get_settings
from mailbridge.nudges.service import NudgeDeps
from mailbridge.queues import RemindersQueue
from mailbridge.store.crm import CrmStore
from mailbridge.store.emails import EmailStore
from mailbridge.store.nudges import NudgeStore


@lru_cache(maxsize=1)
def nudge_deps() -> NudgeDeps:
    settings = get_settings()
    return NudgeDeps(
        nudges=NudgeStore(settings.tables.flags),
        emails=EmailStore(settings.tables.emails),
        crm=CrmStore(settings.tables.crm),
        publisher=EventPublisher(settings.event_bus_name),
        queue=RemindersQueue(settings.reminders_queue_url),
    )
