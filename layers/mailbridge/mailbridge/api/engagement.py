"""Engagement of a contact and of a campaign (issue 17 point 3): opens and clicks told human from
machine, replies, bounces and the score (`mailbridge.tracking.engagement` says what counts and
gives the formula).

Both routes answer 404 `feature_disabled` while the tenant's `crm` flag is off (campaigns: also
`campaigns`), and 404 `contact_not_found` / `campaign_not_found` for an id the tenant does not
have (another tenant's included). Any role may read.
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Router

from mailbridge.access import access_of
from mailbridge.api import deps
from mailbridge.api.context import current_tenant
from mailbridge.api.crm import CAMPAIGN_READ, READ
from mailbridge.api.schemas import BEARER, errors
from mailbridge.crm import service
from mailbridge.tracking.engagement import CampaignEngagement, ContactEngagement, EngagementDeps

router = Router()


def _deps() -> EngagementDeps:
    from mailbridge.tracking.wiring import tracking_store

    return EngagementDeps(emails=deps.email_store(), tracking=tracking_store(), links=deps.link_store())


@router.get(
    "/crm/contacts/<contact_id>/engagement",
    summary="The contact's engagement over its newest sent emails, with the score",
    description="Over the newest 100 sent emails linked to the contact: emails sent, delivered, "
    "bounces, human and machine opens, human and machine clicks, replies, the last human open, "
    "click and reply, and the score (0-100, decayed by age; formula in the README). `truncated` "
    "says older sent emails were left out. Only mail the caller sees counts (mail of a mailbox "
    "private to the caller does not).",
    tags=["crm"],
    security=BEARER,
    middlewares=READ,
    responses=errors({404: ["contact_not_found"]}),
)
def contact_engagement(contact_id: str) -> ContactEngagement:
    from mailbridge.tracking.engagement import contact_engagement as engagement

    ctx = current_tenant(router)
    service.get_contact(ctx, contact_id, deps.crm_store())
    return engagement(ctx.tenant_id, contact_id, _deps(), access_of(ctx))


@router.get(
    "/crm/campaigns/<campaign_id>/engagement",
    summary="The campaign's engagement: totals, human clicks per link, rates and the score",
    description="Over the newest 100 sent emails linked to the campaign: the totals of the contact "
    "engagement, human clicks per URL and the delivery, bounce, open, click and reply rates "
    "(0-1). Needs the campaigns feature. Only mail the caller sees counts, and the clicked URLs "
    "(a message's body) only of mail the caller sees in full.",
    tags=["crm"],
    security=BEARER,
    middlewares=CAMPAIGN_READ,
    responses=errors({404: ["campaign_not_found"]}),
)
def campaign_engagement(campaign_id: str) -> CampaignEngagement:
    from mailbridge.tracking.engagement import campaign_engagement as engagement

    ctx = current_tenant(router)
    service.get_campaign(ctx, campaign_id, deps.crm_store())
    return engagement(ctx.tenant_id, campaign_id, _deps(), access_of(ctx))
