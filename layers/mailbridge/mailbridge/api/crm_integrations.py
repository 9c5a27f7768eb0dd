"""CRM integrations under /crm: connecting Salesforce orgs and HubSpot portals, their orgs, sync
logs and status (mailbridge.crm.integrations). Admins connect and remove; members read and use the
device flow (a headless setup: the user approves on another device)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from mailbridge.api.context import Guards, callback_base_url, current_tenant, require_role
from mailbridge.api.crm import CRM
from mailbridge.api.schemas import BEARER, errors
from mailbridge.crm.integrations import campaigns, service
from mailbridge.crm.integrations.models import (
    ActivityLogging,
    CampaignSyncQueued,
    CampaignSyncRequest,
    Deleted,
    DevicePoll,
    DeviceStart,
    Integration,
    IntegrationCreate,
    IntegrationStart,
    Orgs,
    SyncRun,
    SyncStatus,
)
from mailbridge.crm.integrations.wiring import activity_queue, campaign_sync_deps, integration_deps
from mailbridge.store.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page
from mailbridge.tenancy import Role

router = Router()

ADMIN: Guards = [CRM, require_role(Role.ADMIN)]
MEMBER: Guards = [CRM, require_role(Role.MEMBER)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size")]
Cursor = Annotated[str | None, Query(max_length=4096, description="`next_cursor` of the previous page")]
NOT_FOUND = {404: ["integration_not_found"]}


@router.post(
    "/crm/integrations",
    summary="Start connecting a Salesforce org or HubSpot portal: the provider's consent URL",
    description=(
        "Creates the integration in state `pending` and answers the consent URL to open; the "
        "provider sends the browser to `/oauth/{provider}/callback`, which connects it (outcome "
        "`connected` with `integration_id`, or an error code such as `already_connected`). "
        "Salesforce: web server flow with PKCE S256; HubSpot: authorization code flow. The state "
        "is single-use and valid for 10 minutes. 404 `provider_not_configured`."
    ),
    tags=["crm-integrations"],
    security=BEARER,
    status_code=201,
    middlewares=ADMIN,
    responses=errors({404: ["provider_not_configured"]}),
)
def create_integration(body: Annotated[IntegrationCreate, Body()]) -> IntegrationStart:
    return service.start(
        current_tenant(router), body, integration_deps(), callback_base_url=callback_base_url(router)
    )


@router.post(
    "/crm/integrations/device",
    summary="Connect Salesforce by the device flow (RFC 8628): a user code to enter elsewhere",
    description=(
        "Show `user_code` and `verification_uri` to the user, then poll "
        "`POST /crm/integrations/{id}/device/poll` every `interval` seconds until it answers "
        "`connected` or `failed`. 400 `device_flow_unsupported` (HubSpot has none); 404 "
        "`provider_not_configured`."
    ),
    tags=["crm-integrations"],
    security=BEARER,
    status_code=201,
    middlewares=MEMBER,
    responses=errors({400: ["device_flow_unsupported"], 404: ["provider_not_configured"]}),
)
def start_device(body: Annotated[IntegrationCreate, Body()]) -> DeviceStart:
    return service.start_device(current_tenant(router), body, integration_deps())


@router.post(
    "/crm/integrations/<integration_id>/device/poll",
    summary="Poll a device authorization: pending, slow_down, connected or failed",
    description=(
        "`authorization_pending`: the user has not approved yet; `slow_down`: poll less often "
        "(`interval` grew); `connected`; `failed` with the integration's `reason` "
        "(`access_denied`, `expired_token`). 409 `already_connected` when the tenant has this org "
        "connected already (the integration is failed with that reason)."
    ),
    tags=["crm-integrations"],
    security=BEARER,
    middlewares=MEMBER,
    responses=errors(
        {400: ["device_flow_unsupported"], 404: ["integration_not_found"], 409: ["already_connected"]}
    ),
)
def poll_device(integration_id: str) -> DevicePoll:
    return service.poll_device(current_tenant(router), integration_id, integration_deps())


@router.post(
    "/crm/integrations/<integration_id>/reconnect",
    summary="Connect an integration again in place after reauth_required (or failed): a new consent URL",
    description=(
        "For an integration in `reauth_required` (the CRM revoked or expired its refresh token) or "
        "`failed`: it goes back to `pending` and the answer holds a new consent URL (the web server "
        "flow, as `POST /crm/integrations`); the callback connects it again with its id, field "
        "mapping, CRM record links and logs kept. The consent must be given for the same org or "
        "portal: another one fails the integration with reason `org_mismatch`. 409 "
        "`not_reconnectable` when it is connected or connecting; 409 `conflict` when its state "
        "changed meanwhile."
    ),
    tags=["crm-integrations"],
    security=BEARER,
    middlewares=ADMIN,
    responses=errors(
        {404: ["integration_not_found", "provider_not_configured"], 409: ["not_reconnectable", "conflict"]}
    ),
)
def reconnect_integration(integration_id: str) -> IntegrationStart:
    return service.reconnect(
        current_tenant(router),
        integration_id,
        integration_deps(),
        callback_base_url=callback_base_url(router),
    )


@router.get(
    "/crm/integrations",
    summary="The tenant's CRM integrations, oldest first",
    tags=["crm-integrations"],
    security=BEARER,
    middlewares=MEMBER,
    responses=errors({}),
)
def list_integrations(limit: Limit = DEFAULT_PAGE_SIZE, cursor: Cursor = None) -> Page[Integration]:
    items, next_cursor = service.list_integrations(
        current_tenant(router), integration_deps(), cursor=cursor, limit=limit
    )
    return Page[Integration](items=items, next_cursor=next_cursor)


@router.get(
    "/crm/integrations/<integration_id>",
    summary="One CRM integration (state, org, instance; never its tokens)",
    tags=["crm-integrations"],
    security=BEARER,
    middlewares=MEMBER,
    responses=errors(NOT_FOUND),
)
def get_integration(integration_id: str) -> Integration:
    return service.get(current_tenant(router), integration_id, integration_deps())


@router.delete(
    "/crm/integrations/<integration_id>",
    summary="Remove a CRM integration: its token revoked at the provider, its secrets and logs deleted",
    tags=["crm-integrations"],
    security=BEARER,
    middlewares=ADMIN,
    responses=errors(NOT_FOUND),
)
def delete_integration(integration_id: str) -> Deleted:
    service.delete(current_tenant(router), integration_id, integration_deps())
    return Deleted(integration_id=integration_id)


@router.get(
    "/crm/orgs",
    summary="The connected Salesforce orgs and HubSpot portals (provider, org id, instance, name, state)",
    tags=["crm-integrations"],
    security=BEARER,
    middlewares=MEMBER,
    responses=errors({}),
)
def list_orgs() -> Orgs:
    return service.orgs(current_tenant(router), integration_deps())


@router.get(
    "/crm/integrations/<integration_id>/logs",
    summary="The integration's sync runs, newest first (counts and error codes, never values)",
    tags=["crm-integrations"],
    security=BEARER,
    middlewares=MEMBER,
    responses=errors(NOT_FOUND),
)
def list_logs(integration_id: str, limit: Limit = DEFAULT_PAGE_SIZE, cursor: Cursor = None) -> Page[SyncRun]:
    items, next_cursor = service.logs(
        current_tenant(router), integration_id, integration_deps(), cursor=cursor, limit=limit
    )
    return Page[SyncRun](items=items, next_cursor=next_cursor)


@router.get(
    "/crm/integrations/<integration_id>/status",
    summary="The integration's sync status: last run, state, last error, watermarks",
    tags=["crm-integrations"],
    security=BEARER,
    middlewares=MEMBER,
    responses=errors(NOT_FOUND),
)
def get_status(integration_id: str) -> SyncStatus:
    return service.status(current_tenant(router), integration_id, integration_deps())


@router.post(
    "/crm/sync/campaigns",
    summary="Sync campaigns to the connected CRMs: Salesforce Campaigns and members, HubSpot lists",
    description=(
        "Queues one sync per (connected integration, campaign): `integration_id` and `campaign_id` "
        "narrow it to one, each defaults to all. A sync creates the Salesforce Campaign (status from "
        "ours) or HubSpot static list, or renames it when our name changed, and sets its members to "
        "the campaign's recipients that are synced contacts there, adding and removing only what "
        "changed: a second sync writes nothing. Runs show in `GET /crm/integrations/{id}/logs` "
        "(`kind` `campaigns`); a named integration that is not connected when its sync runs "
        "(pending, `reauth_required`) is skipped. 404 `integration_not_found`, `campaign_not_found`."
    ),
    tags=["crm-integrations"],
    security=BEARER,
    status_code=202,
    middlewares=ADMIN,
    responses=errors({404: ["integration_not_found", "campaign_not_found"]}),
)
def sync_campaigns(body: Annotated[CampaignSyncRequest, Body()]) -> CampaignSyncQueued:
    return campaigns.request_sync(current_tenant(router), body, campaign_sync_deps(), activity_queue())


@router.put(
    "/crm/integrations/<integration_id>/activity",
    summary="Switch email activity logging for one CRM integration, and bodies in it",
    description=(
        "`log_activity` (on for a new integration): email linked to a contact that is synced to "
        "this CRM is logged there once per Message-ID (Salesforce Task, HubSpot email engagement) "
        "with its subject, direction, date and participants. `log_body` (off for a new integration) "
        "adds the plain-text preview: the CRM has its own users and retention, so the body stays "
        "out unless an admin decides otherwise. 404 `integration_not_found`."
    ),
    tags=["crm-integrations"],
    security=BEARER,
    middlewares=ADMIN,
    responses=errors(NOT_FOUND),
)
def put_activity_logging(integration_id: str, body: Annotated[ActivityLogging, Body()]) -> Integration:
    return service.set_activity_logging(current_tenant(router), integration_id, body, integration_deps())
