"""Two-way contact sync with a connected CRM (mailbridge.crm.sync): the integration's field
mapping, conflict policy and deletions (`GET`/`PUT /crm/integrations/{id}/mapping`) and starting a
sync (`POST /crm/sync/contacts`, 202: the run ids to follow at `/crm/integrations/{id}/logs`)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from mailbridge.api.context import Guards, current_tenant, require_role
from mailbridge.api.crm import CRM
from mailbridge.api.schemas import BEARER, errors
from mailbridge.crm.sync import service
from mailbridge.crm.sync.models import SyncSettings, SyncSettingsBody, SyncStart, SyncStarted
from mailbridge.crm.sync.wiring import sync_deps
from mailbridge.tenancy import Role

router = Router()

ADMIN: Guards = [CRM, require_role(Role.ADMIN)]
MEMBER: Guards = [CRM, require_role(Role.MEMBER)]
MAPPING_CODES = [
    "unknown_remote_field",
    "field_not_updateable",
    "field_type_mismatch",
    "duplicate_field_mapping",
    "email_not_mapped",
]


@router.get(
    "/crm/integrations/<integration_id>/mapping",
    summary="The integration's contact field mapping, conflict policy and deletions",
    description=(
        "`default` is true until an admin saves a mapping: the standard fields (first and last "
        "name, primary email, first phone, title), policy `newest_wins`, deletions `none`."
    ),
    tags=["crm-integrations"],
    security=BEARER,
    middlewares=MEMBER,
    responses=errors({404: ["integration_not_found"]}),
)
def get_mapping(integration_id: str) -> SyncSettings:
    return service.get_settings(current_tenant(router), integration_id, sync_deps())


@router.put(
    "/crm/integrations/<integration_id>/mapping",
    summary="Save the contact field mapping, conflict policy and deletions (checked with the CRM)",
    description=(
        "Each mapped CRM field must exist in the CRM's contact describe / properties, be "
        "updateable and of a type that holds our field (422 with `details.field`); `email` must "
        "be mapped. 409 `integration_not_connected`."
    ),
    tags=["crm-integrations"],
    security=BEARER,
    middlewares=ADMIN,
    responses=errors(
        {
            404: ["integration_not_found"],
            409: ["integration_not_connected"],
            422: [*MAPPING_CODES, "reauth_required"],
            429: ["provider_rate_limited"],
            502: ["provider_error"],
        }
    ),
)
def put_mapping(integration_id: str, body: Annotated[SyncSettingsBody, Body()]) -> SyncSettings:
    return service.put_settings(current_tenant(router), integration_id, body, sync_deps())


@router.post(
    "/crm/sync/contacts",
    summary="Start a two-way contact sync of one integration, or of every connected one",
    description=(
        "Answers 202 at once with a run per integration (state `running`); the CrmSyncQueue runs "
        "it: the CRM's changes since the last sync pulled, ours pushed, conflicts settled by the "
        "integration's policy and logged. 409 `integration_not_connected`."
    ),
    tags=["crm-integrations"],
    security=BEARER,
    status_code=202,
    middlewares=MEMBER,
    responses=errors(
        {404: ["integration_not_found"], 409: ["integration_not_connected"], 503: ["queue_send_failed"]}
    ),
)
def start_contact_sync(body: Annotated[SyncStart, Body()]) -> SyncStarted:
    return service.start(current_tenant(router), body, sync_deps())
