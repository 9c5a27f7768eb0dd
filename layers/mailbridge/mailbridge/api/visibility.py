"""The tenant's mailbox privacy policy (mailbridge.access): the default visibility of mailboxes and
what tenant owners and admins see of other users' mail. Admins and owners read and change it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from mailbridge import access
from mailbridge.access import PrivacySettings, PrivacyUpdate
from mailbridge.api import deps
from mailbridge.api.context import current_tenant, require_role
from mailbridge.api.schemas import BEARER, errors
from mailbridge.tenancy import Role

router = Router()


@router.get(
    "/settings/privacy",
    summary="The mailbox privacy policy (admin or owner): default visibility and the admins' view",
    description=(
        "`default_visibility` is what the rest of the tenant sees of a mailbox whose owner set "
        "none (`private`, `metadata`, `subject`, `full`; `metadata` until set). `admin_view`: "
        "`full` lets tenant owners and admins see every mailbox in full, `as_shared` (the default) "
        "shows them other users' mailboxes as every member sees them."
    ),
    tags=["settings"],
    security=BEARER,
    responses=errors({}),
    middlewares=[require_role(Role.ADMIN)],
)
def get_privacy() -> PrivacySettings:
    return access.get_privacy(current_tenant(router), deps.privacy_store())


@router.put(
    "/settings/privacy",
    summary="Replace the mailbox privacy policy (admin or owner); applies to every read from now on",
    description="Fields left out take their default. 409 `version_conflict` when `version` is given "
    "and the policy changed since.",
    tags=["settings"],
    security=BEARER,
    middlewares=[require_role(Role.ADMIN)],
    responses=errors({409: ["version_conflict"]}),
)
def put_privacy(update: Annotated[PrivacyUpdate, Body()]) -> PrivacySettings:
    return access.update_privacy(current_tenant(router), update, deps.privacy_store(), datetime.now(UTC))
