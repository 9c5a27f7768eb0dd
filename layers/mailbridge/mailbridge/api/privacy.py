"""GDPR erase and export of one data subject (issue 19 point 5): owners and admins only.

Both start a job that runs in chunks on the tasks queue (mailbridge.privacy.service) and answer
202 with it; `GET /privacy/jobs/{job_id}` follows it.
"""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from mailbridge.api.context import Guards, current_tenant, require_role
from mailbridge.api.schemas import BEARER, errors
from mailbridge.errors import NotFound
from mailbridge.privacy.models import JOB_ID, PrivacyJob, PrivacySubject, Retention, RetentionSetting
from mailbridge.tenancy import Role

router = Router()

ADMIN: Guards = [require_role(Role.ADMIN)]
START_ERRORS = errors(
    {404: ["contact_not_found"], 409: ["address_is_connected_mailbox"], 503: ["queue_send_failed"]}
)


@router.post(
    "/privacy/erase",
    summary="Erase everything held about an address or a contact (owner or admin); 202 with the job",
    description=(
        'Body: `{"email": address}` or `{"contact_id": id}`. Erases the emails and drafts that name '
        "the address as a participant (From, Sender, Reply-To, To, Cc, Bcc) with their raw MIME, "
        "attachments and bodies (every version in the bucket), everything keyed by them (links, "
        "timeline entries, tracking hits, flags, snoozes, nudges, AI results, notifications, "
        "automation runs), the CRM contact with its address lookups and deal memberships, and takes "
        "the address out of the records that stay (other emails, deals, activities, calendar "
        "attendees). Mail in the user's own mailbox at the provider is not touched (our copy is "
        "erased). Synced external CRMs are reported `not_synced`. Resumable; running it twice is "
        "harmless. 409 `address_is_connected_mailbox`: the address is one of the tenant's own "
        "mailboxes (disconnect the account instead)."
    ),
    tags=["privacy"],
    security=BEARER,
    status_code=202,
    middlewares=ADMIN,
    responses=START_ERRORS,
)
def erase(body: Annotated[PrivacySubject, Body()]) -> PrivacyJob:
    from mailbridge.privacy import service
    from mailbridge.privacy.wiring import privacy_deps

    return service.start(current_tenant(router), "erase", body, privacy_deps())


@router.post(
    "/privacy/export",
    summary="Export all held about an address or a contact as a zip (owner or admin); 202 with the job",
    description=(
        "Same body as `/privacy/erase`. The archive holds one JSON file per kind of record "
        "(`emails.json`, `links.json`, `crm.json` ...: every stored record that mentions the "
        "subject, as stored), the raw .eml of each email naming it (`eml/`), its other stored "
        "objects (`objects/`) and `subject.json`; it is written KMS-encrypted to the bucket and "
        "`GET /privacy/jobs/{job_id}` gives a presigned download URL (15 minutes) once done. "
        "An erase of the same subject deletes its archives."
    ),
    tags=["privacy"],
    security=BEARER,
    status_code=202,
    middlewares=ADMIN,
    responses=START_ERRORS,
)
def export(body: Annotated[PrivacySubject, Body()]) -> PrivacyJob:
    from mailbridge.privacy import service
    from mailbridge.privacy.wiring import privacy_deps

    return service.start(current_tenant(router), "export", body, privacy_deps())


@router.get(
    "/privacy/jobs/<job_id>",
    summary="A privacy job: state, phase, counts per kind; a finished export's download URL (owner or admin)",
    tags=["privacy"],
    security=BEARER,
    middlewares=ADMIN,
    responses=errors({404: ["job_not_found"]}),
)
def get_job(job_id: str) -> PrivacyJob:
    from mailbridge.privacy import service
    from mailbridge.privacy.wiring import privacy_deps

    if not JOB_ID.fullmatch(job_id):
        raise NotFound("no such privacy job", code="job_not_found")
    return service.get_job(current_tenant(router), job_id, privacy_deps())


@router.get(
    "/settings/retention",
    summary="The tenant's mail retention: days, and the latest daily sweep's job (owner or admin)",
    tags=["privacy"],
    security=BEARER,
    middlewares=ADMIN,
    responses=errors({}),
)
def get_retention() -> Retention:
    from mailbridge.privacy import service
    from mailbridge.privacy.wiring import privacy_deps

    return service.get_retention(current_tenant(router), privacy_deps())


@router.put(
    "/settings/retention",
    summary="Set the tenant's mail retention in days, or null to keep mail (owner or admin)",
    description=(
        "Each day a sweep (a `retention` job, followed by `GET /privacy/jobs/{job_id}` with the "
        "`last_job_id` shown here) deletes the emails dated more than `retention_days` ago, with "
        "their raw MIME, attachments and bodies (every version), links, timeline entries, tracking "
        "hits, flags, snoozes, nudges, AI results and notifications; outbound mail not sent yet and "
        "drafts stay. Mail in the user's own mailbox at the provider is not touched."
    ),
    tags=["privacy"],
    security=BEARER,
    middlewares=ADMIN,
    responses=errors({}),
)
def put_retention(body: Annotated[RetentionSetting, Body()]) -> Retention:
    from mailbridge.privacy import service
    from mailbridge.privacy.wiring import privacy_deps

    return service.put_retention(current_tenant(router), body, privacy_deps())
