"""Builds the campaign sender's dependencies once per cold start (api and outbox functions)."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from mailbridge.campaigns.service import CampaignDeps
from mailbridge.campaigns.suppression import SuppressionDeps
from mailbridge.config import get_settings

if TYPE_CHECKING:
    from mailbridge.tracking.service import TrackingDeps


def _tracking(base_url: str) -> TrackingDeps | None:
    """Tracking deps pointing at `base_url` (the API the run was started on)."""
    from mailbridge.tracking.wiring import tracking_deps

    return tracking_deps(base_url) if base_url else None


@lru_cache(maxsize=1)
def campaign_deps() -> CampaignDeps:
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
        suppression=SuppressionDeps(),
        tracking_for=_tracking,
    )
