"""Feature flags service: read with defaults, merge partial updates with optimistic concurrency."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from mailbridge.bus import DomainEvent, EventPublisher
from mailbridge.errors import Conflict, FeatureDisabled
from mailbridge.models.features import FeatureFlags, FeatureFlagsUpdate, FeatureSettings
from mailbridge.store.settings import FeatureStore
from mailbridge.tenancy import Role, TenantContext

MAX_MERGE_ATTEMPTS = 3


def get_features(ctx: TenantContext, store: FeatureStore) -> FeatureSettings:
    return store.get_features(ctx.tenant_id) or FeatureSettings(flags=FeatureFlags(), version=0)


def require_feature(ctx: TenantContext, store: FeatureStore, name: str) -> None:
    """Routes of a switched-off capability answer 404 as if they did not exist."""
    if not getattr(get_features(ctx, store).flags, name):
        raise FeatureDisabled(f"the {name} feature is switched off for this tenant")


def update_features(
    ctx: TenantContext,
    update: FeatureFlagsUpdate,
    store: FeatureStore,
    publisher: EventPublisher | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> FeatureSettings:
    ctx.require(Role.ADMIN)
    changes = update.model_dump(exclude_none=True)
    for attempt in range(MAX_MERGE_ATTEMPTS):
        current = get_features(ctx, store)
        merged = current.flags.model_copy(update=changes)
        if merged == current.flags:
            return current
        candidate = FeatureSettings(
            flags=merged, version=current.version, updated_at=now(), updated_by=ctx.subject
        )
        try:
            saved = store.save_features(ctx.tenant_id, candidate, expected_version=current.version or None)
        except Conflict:
            # Another admin saved in between: merge onto their revision instead of failing.
            if attempt == MAX_MERGE_ATTEMPTS - 1:
                raise
            continue
        if publisher is not None:
            publisher.publish(
                [
                    DomainEvent(
                        detail_type="features.updated",
                        tenant_id=ctx.tenant_id,
                        idempotency_key=f"features:{ctx.tenant_id}:{saved.version}",
                        data={"flags": saved.flags.model_dump(), "changed": sorted(changes)},
                    )
                ]
            )
        return saved
    raise Conflict("the feature flags kept changing; try again", code="version_conflict")
