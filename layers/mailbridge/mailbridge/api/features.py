"""Per-tenant feature flags. Everyone in the tenant reads them; admins and owners change them."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from mailbridge import features
from mailbridge.api import deps
from mailbridge.api.context import current_tenant, require_role
from mailbridge.api.schemas import BEARER, errors
from mailbridge.models.features import FeatureFlagsUpdate, FeatureSettings
from mailbridge.tenancy import Role

router = Router()


@router.get(
    "/features",
    summary="The tenant's feature flags (defaults until an admin changes them)",
    tags=["settings"],
    security=BEARER,
    responses=errors({}),
    middlewares=[require_role(Role.VIEWER)],
)
def get_features() -> FeatureSettings:
    return features.get_features(current_tenant(router), deps.feature_store())


@router.put(
    "/features",
    summary="Change feature flags (admin or owner); flags left out keep their value",
    description=(
        "Flags listed in `planned` belong to capabilities not built yet: switching one on answers "
        "400 `feature_not_available`."
    ),
    tags=["settings"],
    security=BEARER,
    middlewares=[require_role(Role.ADMIN)],
    responses=errors({409: ["version_conflict"], 503: ["event_publish_failed"]}),
)
def put_features(update: Annotated[FeatureFlagsUpdate, Body()]) -> FeatureSettings:
    return features.update_features(current_tenant(router), update, deps.feature_store(), deps.publisher())
