"""Feature flags service: read with defaults, merge partial updates with optimistic concurrency.

Flags of planned capabilities (`models.features.PLANNED`) are never reported on and cannot be
switched on (400 `feature_not_available`), so `/features` says only what exists.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from mailbridge.bus import DomainEvent, EventPublisher
from mailbridge.errors import Conflict, FeatureDisabled, Invalid
from mailbridge.models.features import PLANNED, FeatureFlags, FeatureFlagsUpdate, FeatureSettings
from mailbridge.store.settings import FeatureStore
from mailbridge.tenancy import Role, TenantContext

MAX_MERGE_ATTEMPTS = 3


def get_features(ctx: TenantContext, store: FeatureStore) -> FeatureSettings:
    """The tenant's flags (the defaults until an admin saves some); planned capabilities read as off,
    even where an older revision stored them on."""
    settings = store.get_features(ctx.tenant_id) or FeatureSettings(flags=FeatureFlags(), version=0)
    switched_on = [name for name in PLANNED if getattr(settings.flags, name)]
    if not switched_on:
        return settings
    flags = settings.flags.model_copy(update=dict.fromkeys(switched_on, False))
    return settings.model_copy(update={"flags": flags})


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
    planned_on = sorted(name for name, on in changes.items() if on and name in PLANNED)
    if planned_on:
        raise Invalid(
            f"not built yet, so it cannot be switched on: {', '.join(planned_on)}",
            code="feature_not_available",
            details={"features": planned_on},
        )
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
