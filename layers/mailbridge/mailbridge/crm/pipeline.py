"""The tenant's deal pipeline: an ordered stage list (default until an admin changes it).

`won` and `lost` are the closed stages and every pipeline has them; every other stage is open.
A changed pipeline does not move existing deals: a deal keeps a stage that was removed until
someone sets a new one (only new and changed stages are checked against the pipeline).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from mailbridge.crm.models import Pipeline, PipelineUpdate, default_pipeline
from mailbridge.errors import Conflict, Invalid
from mailbridge.store.crm import CrmStore
from mailbridge.tenancy import Role, TenantContext


def get_pipeline(ctx: TenantContext, store: CrmStore) -> Pipeline:
    return store.get_pipeline(ctx.tenant_id) or default_pipeline()


def update_pipeline(
    ctx: TenantContext,
    update: PipelineUpdate,
    store: CrmStore,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Pipeline:
    ctx.require(Role.ADMIN)
    current = get_pipeline(ctx, store)
    if update.version is not None and update.version != current.version:
        raise Conflict("the pipeline was changed by someone else", code="version_conflict")
    if update.stages == current.stages:
        return current
    candidate = current.model_copy(
        update={"stages": list(update.stages), "updated_at": now(), "updated_by": ctx.subject}
    )
    return store.save_pipeline(ctx.tenant_id, candidate, expected_version=current.version or None)


def check_stage(pipeline: Pipeline, stage: str) -> str:
    if stage not in pipeline.stages:
        raise Invalid(
            f"{stage!r} is not a stage of the pipeline",
            code="unknown_stage",
            details={"stages": pipeline.stages},
        )
    return stage
