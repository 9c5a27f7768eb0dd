"""Builds the match and tasks functions' dependencies once per cold start."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from mailbridge.bus import EventPublisher
from mailbridge.campaigns.wiring import record_deps
from mailbridge.config import get_settings
from mailbridge.crm.matching import MatchDeps
from mailbridge.queues import MatchQueue
from mailbridge.store.accounts import AccountStore
from mailbridge.store.crm import CrmStore
from mailbridge.store.emails import EmailStore
from mailbridge.store.links import LinkStore
from mailbridge.store.policy import PolicyStore
from mailbridge.store.settings import DynamoFeatureStore


class MatchSettings(BaseSettings):
    """What only the match function needs (set on MatchFunction in template.yaml)."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    match_queue_url: str = Field(validation_alias="MATCH_QUEUE_URL", min_length=1)


@lru_cache(maxsize=1)
def match_settings() -> MatchSettings:
    return MatchSettings()


@lru_cache(maxsize=1)
def match_deps() -> MatchDeps:
    settings = get_settings()
    return MatchDeps(
        emails=EmailStore(settings.tables.emails),
        links=LinkStore(settings.tables.links),
        crm=CrmStore(settings.tables.crm),
        policies=PolicyStore(settings.tables.settings),
        accounts=AccountStore(settings.tables.accounts),
        features=DynamoFeatureStore(settings.tables.settings),
        publisher=EventPublisher(settings.event_bus_name),
        queue=MatchQueue(match_settings().match_queue_url),
        suppressions=record_deps(),
    )


@lru_cache(maxsize=1)
def task_deps() -> tuple[CrmStore, EventPublisher]:
    """The tasks function's CRM store and bus publisher (the due-soon scan)."""
    settings = get_settings()
    return CrmStore(settings.tables.crm), EventPublisher(settings.event_bus_name)
