"""Campaign sending and suppression dependencies, built once per cold start (api, match and
outbox functions).

The list lives in the CRM table (`CRM_TABLE`, store/suppression.py says why); unsubscribe tokens
use the link-signing secret of tracking and calendar links (`CALENDAR_SECRET_ARN`,
calendar/wiring.py `token_key`), under their own derived key.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from mailbridge.config import get_settings

if TYPE_CHECKING:
    from mailbridge.campaigns.service import CampaignDeps
    from mailbridge.campaigns.suppression import SuppressionDeps
    from mailbridge.store.suppression import DynamoSuppressionStore
    from mailbridge.tracking.service import TrackingDeps


@lru_cache(maxsize=1)
def suppression_store() -> DynamoSuppressionStore:
    from mailbridge.store.suppression import DynamoSuppressionStore

    return DynamoSuppressionStore(get_settings().tables.crm)


def suppression_deps(base_url: str | None = None) -> SuppressionDeps:
    """`base_url`: where `/u/{token}` links point; None: `PUBLIC_API_URL` (what a queue consumer
    has; a request handler passes `tracking.wiring.public_base_url(event)`)."""
    from mailbridge.calendar.wiring import calendar_settings, token_key
    from mailbridge.campaigns.suppression import SuppressionDeps

    if base_url is None:
        base_url = calendar_settings().public_api_url or ""
    return SuppressionDeps(store=suppression_store(), key=token_key, base_url=base_url)


def record_deps() -> SuppressionDeps:
    """What recording bounces, complaints and refusals needs: the store alone (no secret read)."""
    from mailbridge.campaigns.suppression import SuppressionDeps

    return SuppressionDeps(store=suppression_store())


def _tracking(base_url: str) -> TrackingDeps | None:
    """Tracking deps pointing at `base_url` (the API the run was started on)."""
    from mailbridge.tracking.wiring import tracking_deps

    return tracking_deps(base_url) if base_url else None


@lru_cache(maxsize=1)
def campaign_deps() -> CampaignDeps:
    from mailbridge.campaigns.service import CampaignDeps
    from mailbridge.outbox.wiring import outbox_deps
    from mailbridge.store.accounts import AccountStore
    from mailbridge.store.campaigns import CampaignRunStore
    from mailbridge.store.crm import CrmStore
    from mailbridge.store.links import LinkStore
    from mailbridge.templates.wiring import template_deps

    tables = get_settings().tables
    return CampaignDeps(
        crm=CrmStore(tables.crm, timeline_table=tables.links),
        runs=CampaignRunStore(tables.crm),
        accounts=AccountStore(tables.accounts),
        templates=template_deps(),
        links=LinkStore(tables.links),
        outbox=outbox_deps(),
        suppression=suppression_deps(),
        tracking_for=_tracking,
    )


def reset() -> None:
    suppression_store.cache_clear()
    campaign_deps.cache_clear()
