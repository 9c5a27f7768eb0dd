"""Sending: compose and send (now or at `send_at`), upload large attachments, cancel a schedule."""

from __future__ import annotations

import re
from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from mailbridge.api import deps
from mailbridge.api.context import current_tenant, require_role
from mailbridge.api.schemas import BEARER, errors
from mailbridge.errors import NotFound
from mailbridge.models.base import Model
from mailbridge.outbox.models import SendAccepted, SendRequest, UploadRequest, UploadTicket
from mailbridge.tenancy import Role

router = Router()
_EMAIL_ID = re.compile(r"^em_[0-9a-f]{26}$")


class ScheduleCancelled(Model):
    email_id: str
    status: str = "cancelled"


@router.post(
    "/emails/send",
    summary="Send an email from a connected mailbox (now, or scheduled with send_at)",
    description=(
        "Answers 202 with the outbound email's id; `GET /emails/{id}` shows its `status` "
        "(queued, scheduled, sending, sent, failed with the server's reply, cancelled). "
        "`reply_to_email_id` threads the reply (In-Reply-To, References, one `Re:`); "
        "`forward_email_id` attaches the original (message/rfc822) or inlines it. Small attachments "
        "travel base64 in the request; larger ones through `POST /uploads` first. With `template_id` "
        "(+ `template_version`, `variables`) instead of subject/text/html, one email per `to` "
        "recipient is rendered and queued (`recipients` lists them; a render failure queues none)."
    ),
    tags=["sending"],
    security=BEARER,
    status_code=202,
    middlewares=[require_role(Role.MEMBER)],
    responses=errors(
        {
            400: [
                "account_cannot_send",
                "send_at_in_past",
                "send_at_too_far",
                "invalid_attachment",
                "attachment_too_large",
            ],
            404: [
                "account_not_found",
                "email_not_found",
                "upload_not_found",
                "template_not_found",
                "version_not_found",
            ],
            409: ["already_queued", "already_scheduled"],
            422: ["template_render_failed"],
            503: ["queue_send_failed"],
        }
    ),
)
def send_email(body: Annotated[SendRequest, Body()]) -> SendAccepted:
    from dataclasses import replace

    from mailbridge.outbox import service
    from mailbridge.templates.wiring import template_deps
    from mailbridge.tracking.wiring import public_base_url, tracking_deps

    tracking = tracking_deps(public_base_url(router.current_event))
    outbox = replace(deps.outbox_deps(), tracking=tracking, templates=template_deps())
    return service.queue_send(current_tenant(router), body, outbox)


@router.post(
    "/uploads",
    summary="Get a presigned POST to upload a large attachment (up to 25 MB, kept for a day)",
    tags=["sending"],
    security=BEARER,
    status_code=201,
    middlewares=[require_role(Role.MEMBER)],
    responses=errors({}),
)
def create_upload(body: Annotated[UploadRequest, Body()]) -> UploadTicket:
    from mailbridge.outbox import service

    return service.create_upload(current_tenant(router), body, deps.outbox_deps())


@router.delete(
    "/emails/<email_id>/schedule",
    summary="Cancel a scheduled send while it is still scheduled",
    tags=["sending"],
    security=BEARER,
    middlewares=[require_role(Role.MEMBER)],
    responses=errors({404: ["not_found"], 409: ["not_scheduled"]}),
)
def cancel_schedule(email_id: str) -> ScheduleCancelled:
    if not _EMAIL_ID.fullmatch(email_id):
        raise NotFound("no such outbound email", code="not_found")
    from mailbridge.outbox import service

    service.cancel_schedule(current_tenant(router), email_id, deps.outbox_deps())
    return ScheduleCancelled(email_id=email_id)
