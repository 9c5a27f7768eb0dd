"""Cached factories for what routes depend on, built from the cold-start settings."""

from __future__ import annotations

from functools import lru_cache

from mailbridge.bus import EventPublisher
from mailbridge.config import get_settings
from mailbridge.store.settings import DynamoFeatureStore, FeatureStore


@lru_cache(maxsize=1)
def feature_store() -> FeatureStore:
    return DynamoFeatureStore(get_settings().tables.settings)


@lru_cache(maxsize=1)
def publisher() -> EventPublisher:
    return EventPublisher(get_settings().event_bus_name)
