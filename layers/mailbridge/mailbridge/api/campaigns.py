"""Sending a campaign (issue 17 point 4): start or resume its send run, and read its status.

Both routes answer 404 `feature_disabled` while the tenant's `crm` or `campaigns` flag is off.
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Router

from mailbridge.api.context import current_tenant
from mailbridge.api.crm import CAMPAIGN_READ, CAMPAIGN_WRITE
from mailbridge.api.schemas import BEARER, errors
from mailbridge.campaigns.models import SendStatus

router = Router()
IDEMPOTENCY_HEADER = "idempotency-key"
MAX_IDEMPOTENCY_KEY = 512


@router.post(
    "/crm/campaigns/<campaign_id>/send",
    summary="Send the campaign: one email per audience contact, exactly once, throttled",
    description=(
        "Answers 202 with the run's status. The audience is resolved in chunks of 100 on the "
        "outbox queue; each contact with an address that is not suppressed gets one email, "
        "rendered from the campaign's template (its latest version when the run starts) and "
        "`variables`, sent from `account_id` at `schedule_at` or later, at most "
        "`throttle_per_hour` an hour from that account (scheduled sends spaced 3600/throttle s "
        "apart), with RFC 8058 one-click `List-Unsubscribe` headers, and linked to the campaign. "
        "A campaign is sent once: 409 `campaign_sending` while its run is queuing, "
        "`campaign_already_sent` once it is done; the same `Idempotency-Key` (1-512 characters) "
        "again answers the run's status. On a `paused` campaign (PATCH `status: paused` stops "
        "further chunks) it resumes the run where it stopped."
    ),
    tags=["crm"],
    security=BEARER,
    status_code=202,
    middlewares=CAMPAIGN_WRITE,
    responses=errors(
        {
            400: ["account_cannot_send", "invalid_idempotency_key"],
            404: ["campaign_not_found"],
            409: ["campaign_sending", "campaign_already_sent"],
            422: ["campaign_incomplete", "unknown_template", "unknown_account", "throttle_above_limit"],
        }
    ),
)
def send_campaign(campaign_id: str) -> SendStatus:
    from mailbridge.campaigns import service
    from mailbridge.campaigns.wiring import campaign_deps
    from mailbridge.errors import Invalid
    from mailbridge.tracking.wiring import public_base_url

    key = router.current_event.headers.get(IDEMPOTENCY_HEADER)
    if key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
        raise Invalid("the idempotency key must be 1-512 characters", code="invalid_idempotency_key")
    return service.start_send(
        current_tenant(router),
        campaign_id,
        campaign_deps(),
        base_url=public_base_url(router.current_event),
        idempotency_key=key,
    )


@router.get(
    "/crm/campaigns/<campaign_id>/send-status",
    summary="The campaign's send run: state and queued/sent/failed/skipped counts",
    description=(
        "`state`: `sending`, `paused` or `done`; `counts.skipped` by reason (`no_address`, "
        "`suppressed`, `contact_not_found`); `sent` and `failed` as the queued emails stand now."
    ),
    tags=["crm"],
    security=BEARER,
    middlewares=CAMPAIGN_READ,
    responses=errors({404: ["campaign_not_found", "run_not_found"]}),
)
def campaign_send_status(campaign_id: str) -> SendStatus:
    from mailbridge.campaigns import service
    from mailbridge.campaigns.wiring import campaign_deps

    return service.send_status(current_tenant(router), campaign_id, campaign_deps())
