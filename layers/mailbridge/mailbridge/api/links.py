"""Email <-> CRM links, record timelines and the matching policy.

Every route answers 404 `feature_disabled` while the tenant's `crm` flag is off; campaign links
also need `campaigns`. Viewers read; members link and unlink; admins change the policy.
"""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from mailbridge.api import deps
from mailbridge.api.context import current_tenant, require_role
from mailbridge.api.crm import CRM, READ, WRITE
from mailbridge.api.schemas import BEARER, errors
from mailbridge.crm import links, settings
from mailbridge.crm.links import Link, LinkCreate
from mailbridge.crm.models import Deleted
from mailbridge.crm.policy import CrmPolicyUpdate, CrmSettings
from mailbridge.models.mail import EmailSummary
from mailbridge.store.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page
from mailbridge.tenancy import Role

router = Router()

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size")]
Cursor = Annotated[str | None, Query(max_length=4096, description="`next_cursor` of the previous page")]


@router.post(
    "/emails/<email_id>/links",
    summary="Link an email to a contact, company, deal or campaign by hand",
    description="404 when the email or the record does not exist for the tenant; campaign links "
    "404 `feature_disabled` while the campaigns feature is off. Re-matching never removes a "
    "manual link; an automatic link on the same record becomes manual.",
    tags=["links"],
    security=BEARER,
    status_code=201,
    middlewares=WRITE,
    responses=errors(
        {
            404: [
                "email_not_found",
                "contact_not_found",
                "company_not_found",
                "deal_not_found",
                "campaign_not_found",
            ]
        }
    ),
)
def create_link(email_id: str, body: Annotated[LinkCreate, Body()]) -> Link:
    return links.create_link(current_tenant(router), email_id, body, deps.link_deps())


@router.get(
    "/emails/<email_id>/links",
    summary="The email's links, each with why it was made",
    tags=["links"],
    security=BEARER,
    middlewares=READ,
    responses=errors({404: ["email_not_found"]}),
)
def list_links(email_id: str) -> list[Link]:
    return links.list_links(current_tenant(router), email_id, deps.link_deps())


@router.delete(
    "/emails/<email_id>/links/<link_id>",
    summary="Remove one link of an email (the link id is the linked record's id)",
    tags=["links"],
    security=BEARER,
    middlewares=WRITE,
    responses=errors({404: ["email_not_found", "link_not_found"]}),
)
def delete_link(email_id: str, link_id: str) -> Deleted:
    links.delete_link(current_tenant(router), email_id, link_id, deps.link_deps())
    return Deleted(id=link_id)


@router.get(
    "/crm/contacts/<contact_id>/timeline",
    summary="The contact's emails in both directions, newest first",
    tags=["links"],
    security=BEARER,
    middlewares=READ,
    responses=errors({404: ["contact_not_found"]}),
)
def contact_timeline(
    contact_id: str, limit: Limit = DEFAULT_PAGE_SIZE, cursor: Cursor = None
) -> Page[EmailSummary]:
    return links.timeline(
        current_tenant(router), "contact", contact_id, deps.link_deps(), cursor=cursor, limit=limit
    )


@router.get(
    "/crm/deals/<deal_id>/timeline",
    summary="The deal's emails in both directions, newest first",
    tags=["links"],
    security=BEARER,
    middlewares=READ,
    responses=errors({404: ["deal_not_found"]}),
)
def deal_timeline(
    deal_id: str, limit: Limit = DEFAULT_PAGE_SIZE, cursor: Cursor = None
) -> Page[EmailSummary]:
    return links.timeline(
        current_tenant(router), "deal", deal_id, deps.link_deps(), cursor=cursor, limit=limit
    )


# The paths the issue names (the seed's endpoints); same answers as the /crm/... routes above.
@router.get(
    "/contacts/<contact_id>/timeline",
    summary="Same as GET /crm/contacts/{contact_id}/timeline",
    tags=["links"],
    security=BEARER,
    middlewares=READ,
    responses=errors({404: ["contact_not_found"]}),
)
def contact_timeline_alias(
    contact_id: str, limit: Limit = DEFAULT_PAGE_SIZE, cursor: Cursor = None
) -> Page[EmailSummary]:
    return contact_timeline(contact_id, limit, cursor)


@router.get(
    "/deals/<deal_id>/timeline",
    summary="Same as GET /crm/deals/{deal_id}/timeline",
    tags=["links"],
    security=BEARER,
    middlewares=READ,
    responses=errors({404: ["deal_not_found"]}),
)
def deal_timeline_alias(
    deal_id: str, limit: Limit = DEFAULT_PAGE_SIZE, cursor: Cursor = None
) -> Page[EmailSummary]:
    return deal_timeline(deal_id, limit, cursor)


@router.get(
    "/crm/settings",
    summary="The matching policy: contact auto-creation, own domains, blocklist",
    tags=["links"],
    security=BEARER,
    middlewares=READ,
    responses=errors({}),
)
def get_crm_settings() -> CrmSettings:
    return settings.get_crm_settings(current_tenant(router), deps.policy_store(), deps.account_store())


@router.put(
    "/crm/settings",
    summary="Replace the matching policy (admin or owner); applies to mail matched from now on",
    tags=["links"],
    security=BEARER,
    middlewares=[CRM, require_role(Role.ADMIN)],
    responses=errors({409: ["version_conflict"]}),
)
def put_crm_settings(update: Annotated[CrmPolicyUpdate, Body()]) -> CrmSettings:
    return settings.update_crm_settings(
        current_tenant(router), update, deps.policy_store(), deps.account_store()
    )
