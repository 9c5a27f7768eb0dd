"""Builds the notification dependencies once per cold start (the api and notifications functions)."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from mailbridge.bus import EventPublisher
from mailbridge.config import get_settings
from mailbridge.notifications.service import NotificationDeps
from mailbridge.store.accounts import AccountStore
from mailbridge.store.emails import EmailStore
from mailbridge.store.notifications import NotificationStore
from mailbridge.store.nudges import NudgeStore

if TYPE_CHECKING:
    from mailbridge.outbox.service import OutboxDeps


@lru_cache(maxsize=1)
def notification_deps() -> NotificationDeps:
    settings = get_settings()
    return NotificationDeps(
        notifications=NotificationStore(settings.tables.notifications),
        emails=EmailStore(settings.tables.emails),
        accounts=AccountStore(settings.tables.accounts),
        publisher=EventPublisher(settings.event_bus_name),
        nudges=NudgeStore(settings.tables.flags),
        outbox=_outbox_deps,
    )


def _outbox_deps() -> OutboxDeps:
    from mailbridge.outbox.wiring import outbox_deps

    return outbox_deps()
