"""Built-in CRM: contacts, companies, deals, campaigns and the deal pipeline under /crm.

Every route answers 404 `feature_disabled` while the tenant's `crm` flag is off (campaign routes
also while `campaigns` is off). Viewers read; members create, change and delete; admins change
the pipeline.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from mailbridge.api import deps
from mailbridge.api.context import Guards, RouteGuard, current_tenant, require_role
from mailbridge.api.schemas import BEARER, errors
from mailbridge.crm import pipeline as pipelines
from mailbridge.crm import service
from mailbridge.crm.models import (
    COMPANY_ID,
    CONTACT_ID,
    Campaign,
    CampaignCreate,
    CampaignPatch,
    Company,
    CompanyCreate,
    CompanyPatch,
    Contact,
    ContactCreate,
    ContactPatch,
    ContactView,
    Deal,
    DealCreate,
    DealPatch,
    Deleted,
    Pipeline,
    PipelineUpdate,
)
from mailbridge.features import require_feature
from mailbridge.store.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page
from mailbridge.tenancy import Role

router = Router()


def feature_gate(*names: str) -> RouteGuard:
    """Route guard, first in the list: a switched-off capability is 404 before any role check."""

    def check(app: Any) -> None:
        ctx = current_tenant(app)
        for name in names:
            require_feature(ctx, deps.feature_store(), name)

    return RouteGuard("require_" + "_".join(names), check, {404: ["feature_disabled"]})


CRM = feature_gate("crm")
CAMPAIGNS = feature_gate("crm", "campaigns")
READ: Guards = [CRM, require_role(Role.VIEWER)]
WRITE: Guards = [CRM, require_role(Role.MEMBER)]
CAMPAIGN_READ: Guards = [CAMPAIGNS, require_role(Role.VIEWER)]
CAMPAIGN_WRITE: Guards = [CAMPAIGNS, require_role(Role.MEMBER)]

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size")]
Cursor = Annotated[str | None, Query(max_length=4096, description="`next_cursor` of the previous page")]
CompanyFilter = Annotated[str | None, Query(pattern=COMPANY_ID.pattern, description="Only this company's")]

VERSIONED = (
    "Send only the fields to change; `null` clears an optional field. With `version` the change "
    "applies only to that version (409 `version_conflict` otherwise); without it the last write wins."
)


# ---------------------------------------------------------------------------------- contacts


@router.post(
    "/crm/contacts",
    summary="Create a contact",
    description="400 `unknown_company` when company_id names no company; 409 `email_in_use` when "
    "another contact of the tenant has one of the addresses (`details.address`, and the contact "
    "holding it in `details.contact_id`).",
    tags=["crm"],
    security=BEARER,
    status_code=201,
    middlewares=WRITE,
    responses=errors({400: ["unknown_company"], 409: ["email_in_use"], 503: ["event_publish_failed"]}),
)
def create_contact(body: Annotated[ContactCreate, Body()]) -> Contact:
    return service.create_contact(current_tenant(router), body, deps.crm_store(), deps.publisher())


@router.get(
    "/crm/contacts",
    summary="Contacts in creation order, with filters (pages may be short: follow `next_cursor`)",
    tags=["crm"],
    security=BEARER,
    middlewares=READ,
    responses=errors({}),
)
def list_contacts(
    q: Annotated[
        str | None, Query(max_length=200, description="Name or address contains this (any case)")
    ] = None,
    company_id: CompanyFilter = None,
    tag: Annotated[str | None, Query(min_length=1, max_length=50, description="Has this tag")] = None,
    limit: Limit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
) -> Page[Contact]:
    return service.list_contacts(
        current_tenant(router),
        deps.crm_store(),
        q=q,
        company_id=company_id,
        tag=tag,
        cursor=cursor,
        limit=limit,
    )


@router.get(
    "/crm/contacts/by-email/<address>",
    summary="The contact that owns an address (any case), with its company and open deals",
    description="404 `contact_not_found` when no contact has the address. `last_emails`: the "
    "contact's 5 newest linked emails.",
    tags=["crm"],
    security=BEARER,
    middlewares=READ,
    responses=errors({404: ["contact_not_found"]}),
)
def contact_by_email(address: str) -> ContactView:
    from mailbridge.crm.links import contact_by_email as view  # the email stack only on this route

    return view(current_tenant(router), unquote(address), deps.link_deps())


@router.get(
    "/crm/contacts/<contact_id>",
    summary="One contact",
    tags=["crm"],
    security=BEARER,
    middlewares=READ,
    responses=errors({404: ["contact_not_found"]}),
)
def get_contact(contact_id: str) -> Contact:
    return service.get_contact(current_tenant(router), contact_id, deps.crm_store())


@router.patch(
    "/crm/contacts/<contact_id>",
    summary="Change a contact",
    description=VERSIONED + " 409 `email_in_use` as for create.",
    tags=["crm"],
    security=BEARER,
    middlewares=WRITE,
    responses=errors(
        {
            400: ["empty_patch", "invalid_record", "unknown_company"],
            404: ["contact_not_found"],
            409: ["version_conflict", "email_in_use"],
            503: ["event_publish_failed"],
        }
    ),
)
def update_contact(contact_id: str, patch: Annotated[ContactPatch, Body()]) -> Contact:
    return service.update_contact(
        current_tenant(router), contact_id, patch, deps.crm_store(), deps.publisher()
    )


@router.delete(
    "/crm/contacts/<contact_id>",
    summary="Delete a contact and free its addresses (deals keep its id)",
    tags=["crm"],
    security=BEARER,
    middlewares=WRITE,
    responses=errors({404: ["contact_not_found"], 409: ["version_conflict"], 503: ["event_publish_failed"]}),
)
def delete_contact(contact_id: str) -> Deleted:
    service.delete_contact(current_tenant(router), contact_id, deps.crm_store(), deps.publisher())
    return Deleted(id=contact_id)


# ---------------------------------------------------------------------------------- companies


@router.post(
    "/crm/companies",
    summary="Create a company",
    description="409 `domain_in_use` when another company of the tenant has one of the domains "
    "(`details.domain`, and the company holding it in `details.company_id`).",
    tags=["crm"],
    security=BEARER,
    status_code=201,
    middlewares=WRITE,
    responses=errors({409: ["domain_in_use"], 503: ["event_publish_failed"]}),
)
def create_company(body: Annotated[CompanyCreate, Body()]) -> Company:
    return service.create_company(current_tenant(router), body, deps.crm_store(), deps.publisher())


@router.get(
    "/crm/companies",
    summary="Companies in creation order",
    tags=["crm"],
    security=BEARER,
    middlewares=READ,
    responses=errors({}),
)
def list_companies(
    q: Annotated[str | None, Query(max_length=200, description="Name contains this (any case)")] = None,
    limit: Limit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
) -> Page[Company]:
    return service.list_companies(current_tenant(router), deps.crm_store(), q=q, cursor=cursor, limit=limit)


@router.get(
    "/crm/companies/<company_id>",
    summary="One company",
    tags=["crm"],
    security=BEARER,
    middlewares=READ,
    responses=errors({404: ["company_not_found"]}),
)
def get_company(company_id: str) -> Company:
    return service.get_company(current_tenant(router), company_id, deps.crm_store())


@router.patch(
    "/crm/companies/<company_id>",
    summary="Change a company",
    description=VERSIONED + " 409 `domain_in_use` as for create.",
    tags=["crm"],
    security=BEARER,
    middlewares=WRITE,
    responses=errors(
        {
            400: ["empty_patch", "invalid_record"],
            404: ["company_not_found"],
            409: ["version_conflict", "domain_in_use"],
        }
    ),
)
def update_company(company_id: str, patch: Annotated[CompanyPatch, Body()]) -> Company:
    return service.update_company(current_tenant(router), company_id, patch, deps.crm_store())


@router.delete(
    "/crm/companies/<company_id>",
    summary="Delete a company and free its domains (contacts and deals keep its id)",
    tags=["crm"],
    security=BEARER,
    middlewares=WRITE,
    responses=errors({404: ["company_not_found"], 409: ["version_conflict"]}),
)
def delete_company(company_id: str) -> Deleted:
    service.delete_company(current_tenant(router), company_id, deps.crm_store())
    return Deleted(id=company_id)


# ---------------------------------------------------------------------------------- deals


@router.post(
    "/crm/deals",
    summary="Create a deal (stage defaults to the pipeline's first)",
    description="400 `unknown_stage`, `unknown_company` or `unknown_contact` for references that "
    "do not exist.",
    tags=["crm"],
    security=BEARER,
    status_code=201,
    middlewares=WRITE,
    responses=errors(
        {
            400: ["unknown_stage", "unknown_company", "unknown_contact"],
            409: ["conflict"],
            503: ["event_publish_failed"],
        }
    ),
)
def create_deal(body: Annotated[DealCreate, Body()]) -> Deal:
    return service.create_deal(current_tenant(router), body, deps.crm_store(), deps.publisher())


@router.get(
    "/crm/deals",
    summary="Deals: by contact or company last updated first, otherwise in creation order",
    tags=["crm"],
    security=BEARER,
    middlewares=READ,
    responses=errors({}),
)
def list_deals(
    stage: Annotated[str | None, Query(max_length=40, description="Only deals in this stage")] = None,
    company_id: CompanyFilter = None,
    contact_id: Annotated[
        str | None, Query(pattern=CONTACT_ID.pattern, description="Only deals naming this contact")
    ] = None,
    open_: Annotated[
        bool | None, Query(alias="open", description="true: not won/lost; false: won or lost")
    ] = None,
    limit: Limit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
) -> Page[Deal]:
    return service.list_deals(
        current_tenant(router),
        deps.crm_store(),
        stage=stage,
        company_id=company_id,
        contact_id=contact_id,
        open_=open_,
        cursor=cursor,
        limit=limit,
    )


@router.get(
    "/crm/deals/<deal_id>",
    summary="One deal",
    tags=["crm"],
    security=BEARER,
    middlewares=READ,
    responses=errors({404: ["deal_not_found"]}),
)
def get_deal(deal_id: str) -> Deal:
    return service.get_deal(current_tenant(router), deal_id, deps.crm_store())


@router.patch(
    "/crm/deals/<deal_id>",
    summary="Change a deal (a new stage also announces `deal.stage_changed`)",
    description=VERSIONED,
    tags=["crm"],
    security=BEARER,
    middlewares=WRITE,
    responses=errors(
        {
            400: ["empty_patch", "invalid_record", "unknown_stage", "unknown_company", "unknown_contact"],
            404: ["deal_not_found"],
            409: ["version_conflict", "conflict"],
            503: ["event_publish_failed"],
        }
    ),
)
def update_deal(deal_id: str, patch: Annotated[DealPatch, Body()]) -> Deal:
    return service.update_deal(current_tenant(router), deal_id, patch, deps.crm_store(), deps.publisher())


@router.delete(
    "/crm/deals/<deal_id>",
    summary="Delete a deal",
    tags=["crm"],
    security=BEARER,
    middlewares=WRITE,
    responses=errors({404: ["deal_not_found"], 409: ["version_conflict", "conflict"]}),
)
def delete_deal(deal_id: str) -> Deleted:
    service.delete_deal(current_tenant(router), deal_id, deps.crm_store())
    return Deleted(id=deal_id)


# ---------------------------------------------------------------------------------- pipeline


@router.get(
    "/crm/pipeline",
    summary="The tenant's deal stages (the default until an admin changes them)",
    tags=["crm"],
    security=BEARER,
    middlewares=READ,
    responses=errors({}),
)
def get_pipeline() -> Pipeline:
    return pipelines.get_pipeline(current_tenant(router), deps.crm_store())


@router.put(
    "/crm/pipeline",
    summary="Replace the deal stages (admin or owner); existing deals keep their stage",
    tags=["crm"],
    security=BEARER,
    middlewares=[CRM, require_role(Role.ADMIN)],
    responses=errors({409: ["version_conflict"]}),
)
def put_pipeline(update: Annotated[PipelineUpdate, Body()]) -> Pipeline:
    return pipelines.update_pipeline(current_tenant(router), update, deps.crm_store())


# ---------------------------------------------------------------------------------- campaigns
CAMPAIGN_REFERENCES = ["unknown_template", "unknown_account", "throttle_above_limit"]
CAMPAIGN_FIELDS = (
    "`template_id`, `audience`, `account_id`, `schedule_at`, `throttle_per_hour` and `variables` "
    "say what `POST /crm/campaigns/{campaign_id}/send` sends; they change only while the campaign "
    "is `draft` or `paused` (409 `campaign_not_editable`). The template and the account must be "
    "the tenant's (422 `unknown_template`, `unknown_account`); `throttle_per_hour` at most the "
    "account provider's ceiling (422 `throttle_above_limit`)."
)


@router.post(
    "/crm/campaigns",
    summary="Create a campaign (needs the campaigns feature)",
    description=CAMPAIGN_FIELDS,
    tags=["crm"],
    security=BEARER,
    status_code=201,
    middlewares=CAMPAIGN_WRITE,
    responses=errors({422: CAMPAIGN_REFERENCES}),
)
def create_campaign(body: Annotated[CampaignCreate, Body()]) -> Campaign:
    from mailbridge.campaigns import service as campaigns
    from mailbridge.campaigns.wiring import campaign_deps

    return campaigns.create_campaign(current_tenant(router), body, campaign_deps())


@router.get(
    "/crm/campaigns",
    summary="Campaigns in creation order",
    tags=["crm"],
    security=BEARER,
    middlewares=CAMPAIGN_READ,
    responses=errors({}),
)
def list_campaigns(limit: Limit = DEFAULT_PAGE_SIZE, cursor: Cursor = None) -> Page[Campaign]:
    return service.list_campaigns(current_tenant(router), deps.crm_store(), cursor=cursor, limit=limit)


@router.get(
    "/crm/campaigns/<campaign_id>",
    summary="One campaign",
    tags=["crm"],
    security=BEARER,
    middlewares=CAMPAIGN_READ,
    responses=errors({404: ["campaign_not_found"]}),
)
def get_campaign(campaign_id: str) -> Campaign:
    return service.get_campaign(current_tenant(router), campaign_id, deps.crm_store())


@router.patch(
    "/crm/campaigns/<campaign_id>",
    summary="Change a campaign",
    description=f"{VERSIONED} {CAMPAIGN_FIELDS} Set `status: paused` to stop a send run after its "
    "current chunk (`POST .../send` resumes it).",
    tags=["crm"],
    security=BEARER,
    middlewares=CAMPAIGN_WRITE,
    responses=errors(
        {
            400: ["empty_patch", "invalid_record"],
            404: ["campaign_not_found"],
            409: ["version_conflict", "campaign_not_editable"],
            422: CAMPAIGN_REFERENCES,
        }
    ),
)
def update_campaign(campaign_id: str, patch: Annotated[CampaignPatch, Body()]) -> Campaign:
    from mailbridge.campaigns import service as campaigns
    from mailbridge.campaigns.wiring import campaign_deps

    return campaigns.update_campaign(current_tenant(router), campaign_id, patch, campaign_deps())


@router.delete(
    "/crm/campaigns/<campaign_id>",
    summary="Delete a campaign",
    tags=["crm"],
    security=BEARER,
    middlewares=CAMPAIGN_WRITE,
    responses=errors({404: ["campaign_not_found"], 409: ["version_conflict"]}),
)
def delete_campaign(campaign_id: str) -> Deleted:
    service.delete_campaign(current_tenant(router), campaign_id, deps.crm_store())
    return Deleted(id=campaign_id)
