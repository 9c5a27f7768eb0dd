"""AI: categorize an email on demand and the per-tenant category rules learnt from corrections.

Every route answers 404 `feature_disabled` while the tenant's `ai` flag is off (checked first).
Routes that run the categorizer count towards 10 AI requests a minute per tenant: past that,
429 `rate_limited` with Retry-After (the seconds to the next minute). Corrections are
`PATCH /emails/{id}` with `category` (api/emails.py).
"""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import ConfigDict, Field

from mailbridge.ai.bedrock import BedrockSettingUpdate, BedrockStatus
from mailbridge.ai.lead import LeadExtraction
from mailbridge.ai.service import BackfillJob, CategorizeDeps, CategoryRuleList, EmailCategorization
from mailbridge.api.context import RouteGuard, current_tenant, require_role
from mailbridge.api.schemas import BEARER, errors
from mailbridge.models.base import Model
from mailbridge.tenancy import Role

router = Router()


def _deps() -> CategorizeDeps:
    from mailbridge.ai.wiring import categorize_deps

    return categorize_deps()


def _ai_on(app: Any) -> None:
    from mailbridge.ai.service import require_ai

    require_ai(current_tenant(app).tenant_id, _deps().features)


def _count_request() -> None:
    """One AI request of the caller's tenant; 429 `rate_limited` past the limit. Called first in
    the routes that run the categorizer, after validation: a refused or invalid request counts
    nothing."""
    from mailbridge.ai.wiring import ai_limits

    ai_limits().check(current_tenant(router).tenant_id)


# First in every route's list: a switched-off capability is 404 before any role check.
AI = RouteGuard("require_ai", _ai_on, {404: ["feature_disabled"]})


class CategorizeEmailRequest(Model):
    model_config = ConfigDict(extra="forbid")

    email_id: str = Field(pattern=r"^em_[0-9a-f]{26}$", description="The stored email to categorize")


class ExtractLeadRequest(Model):
    model_config = ConfigDict(extra="forbid")

    email_id: str = Field(
        pattern=r"^em_[0-9a-f]{26}$", description="The stored email whose sender is the lead"
    )
    apply: bool = Field(
        default=False, description="Also create or update the CRM contact and company (member role and above)"
    )


class RuleDeleted(Model):
    rule_id: str
    deleted: bool = True


@router.post(
    "/ai/categorize-email",
    summary="Categorize one stored email now; the result is stored on the email and returned",
    description=(
        "Header evidence, then the local model, then the tenant's rules (`reasons` names what "
        "decided). A category a user set is returned as it stands, never overwritten. Announces "
        "`email.categorized`. 404 `not_found`; 400 `not_categorizable` when the raw message is "
        "missing or cannot be parsed."
    ),
    tags=["ai"],
    security=BEARER,
    middlewares=[AI, require_role(Role.MEMBER)],
    responses=errors(
        {
            400: ["not_categorizable"],
            404: ["not_found"],
            429: ["rate_limited"],
            503: ["event_publish_failed"],
        }
    ),
)
def categorize_email(body: Annotated[CategorizeEmailRequest, Body()]) -> EmailCategorization:
    from mailbridge.ai.service import categorize_now

    _count_request()
    return categorize_now(current_tenant(router), body.email_id, _deps())


@router.post(
    "/ai/categorize/backfill",
    summary="Categorize the tenant's stored mail in resumable steps; follow the job's progress",
    description=(
        "Creates a job and queues its first step; each step categorizes 25 stored emails, newest "
        "first, and queues the next, so no single run reads everything. A category a user set is "
        "kept. Progress: `GET /ai/categorize/backfill/{job_id}`."
    ),
    tags=["ai"],
    security=BEARER,
    status_code=202,
    middlewares=[AI, require_role(Role.MEMBER)],
    responses=errors({429: ["rate_limited"], 503: ["queue_send_failed"]}),
)
def start_backfill() -> BackfillJob:
    from mailbridge.ai.service import start_backfill as start

    _count_request()
    return start(current_tenant(router), _deps())


@router.get(
    "/ai/categorize/backfill/<job_id>",
    summary="A categorize backfill's progress (`status`: running, done, stopped)",
    tags=["ai"],
    security=BEARER,
    middlewares=[AI, require_role(Role.VIEWER)],
    responses=errors({404: ["job_not_found"]}),
)
def get_backfill(job_id: str) -> BackfillJob:
    from mailbridge.ai.service import get_backfill as progress

    return progress(current_tenant(router), job_id, _deps())


@router.get(
    "/ai/rules",
    summary="The tenant's category rules learnt from corrections (sender address or domain -> category)",
    tags=["ai"],
    security=BEARER,
    middlewares=[AI, require_role(Role.VIEWER)],
    responses=errors({}),
)
def list_rules() -> CategoryRuleList:
    from mailbridge.ai.service import list_rules as listing

    return listing(current_tenant(router), _deps().rules)


@router.delete(
    "/ai/rules/<rule_id>",
    summary="Delete a category rule (the model decides that sender's mail again)",
    tags=["ai"],
    security=BEARER,
    middlewares=[AI, require_role(Role.MEMBER)],
    responses=errors({404: ["not_found"]}),
)
def delete_rule(rule_id: str) -> RuleDeleted:
    from mailbridge.ai.service import delete_rule as remove

    remove(current_tenant(router), rule_id, _deps().rules)
    return RuleDeleted(rule_id=rule_id)


@router.post(
    "/ai/extract-lead",
    summary="The other party of an email as a lead: name, title, company, company domain, phone, website",
    description=(
        "Read from the From header and the signature block (`GET /emails/{id}` `signature`); on "
        "mail the user sent (`direction` outbound), from the first To recipient's header alone. "
        "Each field has a `confidence` (0-1) and its `source`; null when not found. A free-mail "
        "domain is never a `company_domain`. With `apply: true` the contact of the sender's "
        "address is created, or given what it lacks (title, phone, company), and the company of "
        "the domain is created or linked, through the CRM's own services (`contact.created`, "
        "`company.created` ... are announced as for the CRM routes). 404 `not_found` for an "
        "email the tenant does not hold; 400 `no_sender` when `apply` finds no From address, "
        "`invalid_record` when an extracted value fails the CRM's field rules."
    ),
    tags=["ai"],
    security=BEARER,
    middlewares=[AI, require_role(Role.MEMBER)],
    responses=errors(
        {
            400: ["no_sender", "invalid_record"],
            404: ["not_found", "contact_not_found"],
            409: ["version_conflict", "conflict", "email_in_use", "domain_in_use"],
            429: ["rate_limited"],
            503: ["event_publish_failed"],
        }
    ),
)
def extract_lead(body: Annotated[ExtractLeadRequest, Body()]) -> LeadExtraction:
    from mailbridge.ai.lead import extract_lead_of_email
    from mailbridge.api import deps

    _count_request()
    ai = _deps()
    return extract_lead_of_email(
        current_tenant(router),
        body.email_id,
        apply=body.apply,
        emails=ai.emails,
        blobs=ai.blobs,
        crm=deps.crm_store(),
        publisher=ai.publisher,
        bedrock=ai.bedrock,
    )


@router.get(
    "/ai/bedrock",
    summary="The tenant's Bedrock setting, today's token usage and its status (off, on, budget_exhausted)",
    description=(
        "Bedrock is asked only about mail the local categorizer is unsure of and about lead fields "
        "the rules did not find. `usage` counts today's (UTC) input and output tokens from "
        "Converse's `usage`, the calls, and the fallbacks by reason; at `daily_token_budget` the "
        "status is `budget_exhausted` and no call is made until the next UTC day."
    ),
    tags=["ai"],
    security=BEARER,
    middlewares=[AI, require_role(Role.VIEWER)],
    responses=errors({}),
)
def get_bedrock() -> BedrockStatus:
    from mailbridge.ai.bedrock import get_status
    from mailbridge.ai.wiring import bedrock_deps

    return get_status(current_tenant(router), bedrock_deps())


@router.put(
    "/ai/bedrock",
    summary="Change the tenant's Bedrock setting (admin or owner); fields left out keep their value",
    description=(
        "`enabled` (off by default), `model_id` (a Bedrock model or inference profile id; null: the "
        "deployment's BedrockModelId), `region` (null: the functions' region), "
        "`daily_token_budget` (input + output tokens a UTC day, 0 to 100,000,000)."
    ),
    tags=["ai"],
    security=BEARER,
    middlewares=[AI, require_role(Role.ADMIN)],
    responses=errors({409: ["version_conflict", "already_exists"]}),
)
def put_bedrock(update: Annotated[BedrockSettingUpdate, Body()]) -> BedrockStatus:
    from mailbridge.ai.bedrock import put_setting
    from mailbridge.ai.wiring import bedrock_deps

    return put_setting(current_tenant(router), update, bedrock_deps())
