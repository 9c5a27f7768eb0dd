"""Drafts: `POST/GET/PUT/DELETE /drafts`, `GET /drafts` (signed-cursor pages) and
`POST /drafts/{draft_id}/send`.

Versioning is by the `If-Match` request header (RFC 9110 section 13.1.1), holding the draft's
`version` as read (`7` or the quoted entity-tag form `"7"`): required on `PUT` (428
`precondition_required` without it), optional on `DELETE` and send. A version that is no longer
current is 412 `version_conflict`; anything else in the header (`*`, a list, a weak tag, text) is
400 `invalid_if_match`, since `*` would let an editor overwrite what it never read.
"""

from __future__ import annotations

import re
from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from mailbridge.api.auditing import audit_read
from mailbridge.api.context import current_tenant, require_role
from mailbridge.api.schemas import BEARER, errors
from mailbridge.drafts.models import DRAFT_ID, Draft, DraftBody, DraftDeleted, DraftSend, DraftSummary
from mailbridge.errors import Invalid, NotFound, PreconditionRequired
from mailbridge.outbox.models import SendAccepted
from mailbridge.store.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page
from mailbridge.tenancy import Role

router = Router()

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size")]
Cursor = Annotated[str | None, Query(max_length=4096, description="`next_cursor` of the previous page")]

_DRAFT_ID = re.compile(DRAFT_ID)
_IF_MATCH = re.compile(r'"([1-9][0-9]{0,14})"|([1-9][0-9]{0,14})')
IF_MATCH = "if-match"  # API Gateway (HTTP API, payload 2.0) passes header names lower-cased

_BODY_NOTE = (
    "The body is the body of `POST /emails/send` without `send_at` (new mail, a reply with "
    "`reply_to_email_id`, a forward with `forward_email_id`, attachments inline or by `upload_id`) "
    "and may be unfinished (no recipient, no text yet). The mailbox's copy (IMAP: the Drafts "
    "folder, `\\Draft`; Gmail: a draft; Microsoft 365: a draft message) is written after the answer, "
    "by the outbox: `synced` turns true once it holds this version."
)


def if_match(*, required: bool) -> int | None:
    """The version named by the request's `If-Match`, or None when absent (and not `required`).

    Raises Invalid `invalid_if_match` (400), PreconditionRequired `precondition_required` (428)."""
    raw = router.current_event.headers.get(IF_MATCH)
    if raw is None or raw.strip() == "":
        if required:
            raise PreconditionRequired(
                "send If-Match with the version you read (GET /drafts/{id})", code="precondition_required"
            )
        return None
    found = _IF_MATCH.fullmatch(raw.strip())
    if found is None:
        raise Invalid('If-Match must be the draft\'s version, e.g. "3"', code="invalid_if_match")
    return int(found.group(1) or found.group(2))


def _draft_id(draft_id: str) -> str:
    if not _DRAFT_ID.fullmatch(draft_id):
        raise NotFound("no such draft", code="draft_not_found")
    return draft_id


@router.post(
    "/drafts",
    summary="Save a new draft (version 1) in a connected mailbox",
    description=_BODY_NOTE,
    tags=["drafts"],
    security=BEARER,
    status_code=201,
    middlewares=[require_role(Role.MEMBER)],
    responses=errors({404: ["account_not_found"], 503: ["queue_send_failed"]}),
)
def create_draft(body: Annotated[DraftBody, Body()]) -> Draft:
    from mailbridge.drafts import service
    from mailbridge.drafts.wiring import draft_deps

    return service.create_draft(current_tenant(router), body, draft_deps())


@router.get(
    "/drafts",
    summary="Drafts of the tenant, oldest first (pages may be short: follow `next_cursor`)",
    description="Lists drafts saved here and, once picked up by the sync, drafts started in the "
    "mail client. Deleted and sent drafts are not listed.",
    tags=["drafts"],
    security=BEARER,
    middlewares=[require_role(Role.VIEWER)],
    responses=errors({400: ["invalid_cursor"]}),
)
def list_drafts(limit: Limit = DEFAULT_PAGE_SIZE, cursor: Cursor = None) -> Page[DraftSummary]:
    from mailbridge.drafts import service
    from mailbridge.drafts.wiring import draft_deps

    return service.list_drafts(current_tenant(router), draft_deps(), cursor=cursor, limit=limit)


@router.get(
    "/drafts/<draft_id>",
    summary="One draft with its body and `version`",
    tags=["drafts"],
    security=BEARER,
    middlewares=[require_role(Role.VIEWER), audit_read("the draft's body")],
    responses=errors({404: ["draft_not_found"]}),
)
def get_draft(draft_id: str) -> Draft:
    from mailbridge.drafts import service
    from mailbridge.drafts.wiring import draft_deps

    return service.get_draft(current_tenant(router), _draft_id(draft_id), draft_deps())


@router.put(
    "/drafts/<draft_id>",
    summary="Replace a draft's body, only at the version read (`If-Match`, required)",
    description=_BODY_NOTE
    + ' `If-Match: "<version>"` is required: a draft changed since (by another editor, or in '
    "the mail client) answers 412 `version_conflict` and nothing is overwritten; the answer "
    "holds the new `version`. `account_id` cannot change (400 `account_change`).",
    tags=["drafts"],
    security=BEARER,
    middlewares=[require_role(Role.MEMBER)],
    responses=errors(
        {
            400: ["invalid_if_match", "account_change"],
            404: ["draft_not_found"],
            412: ["version_conflict"],
            428: ["precondition_required"],
            503: ["queue_send_failed"],
        }
    ),
)
def update_draft(draft_id: str, body: Annotated[DraftBody, Body()]) -> Draft:
    from mailbridge.drafts import service
    from mailbridge.drafts.wiring import draft_deps

    version = if_match(required=True)
    assert version is not None
    return service.update_draft(current_tenant(router), _draft_id(draft_id), body, version, draft_deps())


@router.delete(
    "/drafts/<draft_id>",
    summary="Delete a draft (and, after the answer, its copy in the mailbox)",
    description="`If-Match` is optional; when sent, a draft changed since answers 412.",
    tags=["drafts"],
    security=BEARER,
    middlewares=[require_role(Role.MEMBER)],
    responses=errors(
        {
            400: ["invalid_if_match"],
            404: ["draft_not_found"],
            412: ["version_conflict"],
            503: ["queue_send_failed"],
        }
    ),
)
def delete_draft(draft_id: str) -> DraftDeleted:
    from mailbridge.drafts import service
    from mailbridge.drafts.wiring import draft_deps

    version = if_match(required=False)
    service.delete_draft(current_tenant(router), _draft_id(draft_id), version, draft_deps())
    return DraftDeleted(draft_id=draft_id)


@router.post(
    "/drafts/<draft_id>/send",
    summary="Send a draft now, or at `send_at`, exactly as `POST /emails/send` would",
    description=(
        "Answers 202 like `POST /emails/send` (the outbound email's id; `GET /emails/{id}` shows its "
        "`status`) with the same checks and codes. The draft leaves `GET /drafts` at once; its copy in "
        "the mailbox is removed once the send succeeded. A draft without a recipient or a text/html "
        "body is 422 `draft_incomplete` (`details` names the fields). `If-Match` is optional."
    ),
    tags=["drafts"],
    security=BEARER,
    status_code=202,
    middlewares=[require_role(Role.MEMBER)],
    responses=errors(
        {
            400: [
                "invalid_if_match",
                "account_cannot_send",
                "send_at_in_past",
                "send_at_too_far",
                "invalid_attachment",
                "attachment_too_large",
                "invalid_message",
            ],
            404: ["draft_not_found", "account_not_found", "email_not_found", "upload_not_found"],
            409: ["already_queued"],
            412: ["version_conflict"],
            422: ["draft_incomplete"],
            503: ["queue_send_failed"],
        }
    ),
)
def send_draft(draft_id: str, body: Annotated[DraftSend, Body()]) -> SendAccepted:
    from dataclasses import replace

    from mailbridge.api import deps
    from mailbridge.drafts import service
    from mailbridge.drafts.wiring import draft_deps
    from mailbridge.tracking.wiring import public_base_url, tracking_deps

    version = if_match(required=False)
    tracking = tracking_deps(public_base_url(router.current_event))
    outbox = replace(deps.outbox_deps(), tracking=tracking)
    return service.send_draft(
        current_tenant(router), _draft_id(draft_id), body, version, draft_deps(), outbox
    )
