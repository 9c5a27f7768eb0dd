"""AI assist: company enrichment of a contact or company, and the tenant's enrichment provider.

Every route answers 404 `feature_disabled` while the tenant's `ai` flag is off (checked first).
`POST /ai/assist/enrich` counts towards the 10 AI requests a minute per tenant (429
`rate_limited` with Retry-After). Service: `mailbridge.ai.enrich`.
"""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from mailbridge.ai.enrich import (
    EnrichDeps,
    Enrichment,
    EnrichmentSetting,
    EnrichmentSettingUpdate,
    EnrichRequest,
)
from mailbridge.api.context import RouteGuard, current_tenant, require_role
from mailbridge.api.schemas import BEARER, errors
from mailbridge.tenancy import Role

router = Router()


def _deps() -> EnrichDeps:
    from mailbridge.ai.enrich_wiring import enrich_deps

    return enrich_deps()


def _ai_on(app: Any) -> None:
    from mailbridge.ai.service import require_ai
    from mailbridge.api import deps

    require_ai(current_tenant(app).tenant_id, deps.feature_store())


AI = RouteGuard("require_ai", _ai_on, {404: ["feature_disabled"]})


@router.post(
    "/ai/assist/enrich",
    summary="Company facts for a contact or company, each with its source and confidence",
    description=(
        "Body: exactly one of `contact_id`, `company_id`; `apply` (default false). Facts: name, "
        "domain, website, phone, address, industry, size, founded, linkedin, facebook, twitter; "
        "each with `source` (`crm`, `signature`, `domain_contacts`, `provider`) and `confidence` "
        "(0-1). A `crm` value always wins; otherwise the most confident. The provider (off "
        "until `PUT /ai/enrichment`) is asked once per domain and its answer cached 30 days "
        "(no match: 1 day); a failed provider call never fails the request (`provider`: "
        "`failed:<code>`). `apply: true` writes only what is missing: a company for the domain "
        "(or the existing one linked), the domain on a company without one, the company and the "
        "signature's phone on a contact without them. 404 `contact_not_found` / "
        "`company_not_found` for a record the tenant does not hold."
    ),
    tags=["ai"],
    security=BEARER,
    middlewares=[AI, require_role(Role.MEMBER)],
    responses=errors(
        {
            404: ["contact_not_found", "company_not_found"],
            409: ["version_conflict", "conflict", "domain_in_use"],
            429: ["rate_limited"],
            503: ["event_publish_failed"],
        }
    ),
)
def enrich(body: Annotated[EnrichRequest, Body()]) -> Enrichment:
    from mailbridge.ai.enrich import enrich as run
    from mailbridge.ai.wiring import ai_limits

    ai_limits().check(current_tenant(router).tenant_id)
    return run(current_tenant(router), body, _deps())


@router.get(
    "/ai/enrichment",
    summary="The tenant's enrichment provider setting (admin or owner); the API key is never returned",
    tags=["ai"],
    security=BEARER,
    middlewares=[AI, require_role(Role.ADMIN)],
    responses=errors({}),
)
def get_enrichment() -> EnrichmentSetting:
    from mailbridge.ai.enrich import get_setting

    return get_setting(current_tenant(router), _deps())


@router.put(
    "/ai/enrichment",
    summary="Change the tenant's enrichment provider (admin or owner); fields left out keep their value",
    description=(
        "`enabled` (off by default), `base_url` (the provider's API root, https; a private, "
        "loopback or reserved address is refused, and every call checks the addresses the host "
        "resolves to), `api_key` (sent as `X-Api-Key`, stored KMS-sealed, never returned). The "
        "provider is called as the People Data Labs Company Enrichment API: "
        "`GET {base_url}/v5/company/enrich?website={domain}`. A new base URL or key drops the "
        "cached answers. 400 `invalid_url`, `insecure_url`, `host_not_allowed`, "
        "`enrichment_not_configured` (switched on without a base URL and a key)."
    ),
    tags=["ai"],
    security=BEARER,
    middlewares=[AI, require_role(Role.ADMIN)],
    responses=errors(
        {
            400: ["invalid_url", "insecure_url", "host_not_allowed", "enrichment_not_configured"],
            409: ["version_conflict", "already_exists"],
        }
    ),
)
def put_enrichment(update: Annotated[EnrichmentSettingUpdate, Body()]) -> EnrichmentSetting:
    from mailbridge.ai.enrich import put_setting

    return put_setting(current_tenant(router), update, _deps())
