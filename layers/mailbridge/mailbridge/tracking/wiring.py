"""Tracking settings and dependencies, built once per cold start (api function).

Tokens are signed with the calendar's link key (`CALENDAR_SECRET_ARN`, calendar/wiring.py): one
secret for every signed link in mail; the purpose inside each MAC keeps the uses apart.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from mailbridge.config import get_settings

if TYPE_CHECKING:
    from mailbridge.store.tracking import DynamoTrackingStore
    from mailbridge.tracking.service import TrackingDeps


class TrackingSettings(BaseSettings):
    """What only tracking needs (set on ApiFunction in template.yaml)."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    tracking_table: str = Field(validation_alias="TRACKING_TABLE", min_length=3)
    hit_retention_days: int = Field(
        default=180,
        ge=1,
        le=3650,
        validation_alias="TRACKING_HIT_RETENTION_DAYS",
        description="Days a hit record is kept (its DynamoDB `ttl`)",
    )


@lru_cache(maxsize=1)
def tracking_settings() -> TrackingSettings:
    return TrackingSettings()


@lru_cache(maxsize=1)
def tracking_store() -> DynamoTrackingStore:
    from mailbridge.store.tracking import DynamoTrackingStore

    return DynamoTrackingStore(tracking_settings().tracking_table)


def tracking_deps(base_url: str = "") -> TrackingDeps:
    """`base_url`: where the pixel and click URLs point (send time only)."""
    from mailbridge.bus import EventPublisher
    from mailbridge.calendar.wiring import signer
    from mailbridge.store.crm import CrmStore
    from mailbridge.store.emails import EmailStore
    from mailbridge.store.links import LinkStore
    from mailbridge.store.settings import DynamoFeatureStore
    from mailbridge.tracking.service import TrackingDeps

    settings = get_settings()
    return TrackingDeps(
        store=tracking_store(),
        signer=signer(),
        emails=EmailStore(settings.tables.emails),
        publisher=EventPublisher(settings.event_bus_name),
        features=DynamoFeatureStore(settings.tables.settings),
        crm=CrmStore(settings.tables.crm),
        links=LinkStore(settings.tables.links),
        base_url=base_url,
        hit_retention_days=tracking_settings().hit_retention_days,
    )


def public_base_url(event: Any) -> str:
    """PUBLIC_API_URL, or the API this request came to (as the calendar's RSVP links do)."""
    from mailbridge.calendar.wiring import calendar_settings

    configured = calendar_settings().public_api_url
    if configured:
        return configured.rstrip("/")
    context = event.request_context
    host = context.domain_name or event.headers.get("host", "localhost")
    proto = event.headers.get("x-forwarded-proto", "https").split(",")[0].strip() or "https"
    stage = context.stage
    prefix = "" if not stage or stage == "$default" else f"/{stage}"
    return f"{proto}://{host}{prefix}"


def reset() -> None:
    for cached in (tracking_settings, tracking_store):
        cached.cache_clear()
