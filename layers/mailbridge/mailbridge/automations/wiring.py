"""Builds the automations dependencies once per cold start (api and automations functions)."""

from __future__ import annotations

from functools import lru_cache

from mailbridge.automations.scheduling import CronScheduler
from mailbridge.automations.service import AutomationDeps
from mailbridge.config import get_settings
from mailbridge.store.automations import AutomationStore
from mailbridge.store.settings import DynamoFeatureStore


@lru_cache(maxsize=1)
def automation_deps() -> AutomationDeps:
    settings = get_settings()
    return AutomationDeps(
        store=AutomationStore(settings.tables.automations),
        features=DynamoFeatureStore(settings.tables.settings),
        scheduler=CronScheduler(settings.automations_queue_arn, settings.scheduler_role_arn),
    )
