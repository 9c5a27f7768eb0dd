"""Stored emails: list with filters, read one, mark read/flagged, presigned raw and attachment downloads."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from mailbridge import emails
from mailbridge.ai.models import Category
from mailbridge.api import deps
from mailbridge.api.auditing import audit_read
from mailbridge.api.context import current_tenant, require_role
from mailbridge.api.schemas import BEARER, errors
from mailbridge.emails import EmailPatch, EmailQuery
from mailbridge.models.mail import Email, EmailSummary, PresignedUrl, SendStatus
from mailbridge.store.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page
from mailbridge.tenancy import Role

router = Router()

ACCOUNT_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
THREAD_ID_PATTERN = emails.THREAD_ID.pattern


@router.get(
    "/emails",
    summary="List emails, newest first, with filters; follow `next_cursor`",
    description=(
        "A page holds `limit` emails whenever that many match. A rare, very selective filter may "
        "end a page early (each page reads a bounded amount): follow `next_cursor` until it is null. "
        "Each email shows as the caller may see it (mailbridge.access): other users' mailboxes at their "
        "visibility (`metadata`: no subject or snippet; `subject`: no snippet), their `private` mail "
        "not at all; `q` and `category` match only mail the caller sees in full. "
        "400 `folder_needs_account`, `invalid_date_range`, `invalid_cursor`, `too_many_search_words`."
    ),
    tags=["emails"],
    security=BEARER,
    responses=errors({400: ["folder_needs_account", "invalid_date_range", "too_many_search_words"]}),
    middlewares=[require_role(Role.VIEWER)],
)
def list_emails(
    account_id: Annotated[
        str | None, Query(pattern=ACCOUNT_ID_PATTERN, description="Only emails held by this account")
    ] = None,
    folder: Annotated[
        str | None,
        Query(max_length=1000, description="Only emails in this folder of `account_id` (needs account_id)"),
    ] = None,
    thread_id: Annotated[
        str | None, Query(pattern=THREAD_ID_PATTERN, description="Only emails of this thread")
    ] = None,
    sender: Annotated[
        str | None,
        Query(
            alias="from",
            max_length=320,
            description="A whole address: sent from this address (any case); otherwise the sender's "
            "address or name contains this text (any case)",
        ),
    ] = None,
    since: Annotated[
        datetime | None, Query(description="ISO 8601; emails dated at or after this (no offset: UTC)")
    ] = None,
    until: Annotated[
        datetime | None, Query(description="ISO 8601; emails dated at or before this (not before since)")
    ] = None,
    unread: Annotated[bool | None, Query(description="true: only unread; false: only read")] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=200,
            description="Words (at most 10) that the subject, sender, snippet or body text all contain, "
            "in any case and order; punctuation is ignored",
        ),
    ] = None,
    status: Annotated[
        SendStatus | None, Query(description="Only outbound mail sent through mailbridge in this state")
    ] = None,
    category: Annotated[
        Category | None,
        Query(description="Only emails of this AI category (set by the categorizer or a user)"),
    ] = None,
    include_deleted: Annotated[bool, Query(description="Also emails no mailbox holds any more")] = False,
    snoozed: Annotated[
        bool, Query(description="true: only snoozed emails (hidden otherwise until they wake)")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size")] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[
        str | None, Query(max_length=4096, description="`next_cursor` of the previous page")
    ] = None,
) -> Page[EmailSummary]:
    query = EmailQuery(
        account_id=account_id,
        folder=folder,
        thread_id=thread_id,
        sender=sender,
        since=since,
        until=until,
        unread=unread,
        q=q,
        status=status,
        category=category,
        include_deleted=include_deleted,
        snoozed=snoozed,
        limit=limit,
        cursor=cursor,
    )
    return emails.list_emails(current_tenant(router), query, deps.email_store())


@router.get(
    "/emails/<email_id>",
    summary="One email with bodies, attachments' metadata and mailbox locations",
    description=(
        "As the caller may see it: another user's mailbox at its visibility (`metadata`: participants, "
        "dates and flags only; `subject`: also the subject and headers; `full`: everything) and 404 "
        "`not_found` for their `private` mail, as for mail that does not exist. Reading another "
        "user's body is audited."
    ),
    tags=["emails"],
    security=BEARER,
    responses=errors({404: ["not_found"]}),
    middlewares=[require_role(Role.VIEWER), audit_read("the message bodies")],
)
def get_email(email_id: str) -> Email:
    ctx = current_tenant(router)
    email = emails.get_email(ctx, email_id, deps.email_store(), deps.blob_store())
    if email.direction != "outbound" or email.status is None:
        return email  # only mail sent through mailbridge can have been tracked
    from mailbridge.tracking.service import engagement
    from mailbridge.tracking.wiring import tracking_deps

    return email.model_copy(update={"engagement": engagement(ctx.tenant_id, email, tracking_deps())})


@router.patch(
    "/emails/<email_id>",
    summary=(
        "Mark read/unread or flagged/unflagged, archive or trash (written back to every mailbox), "
        "or correct the AI `category` (member or above)"
    ),
    description=(
        "`archived` and `trashed` (RFC 6154's `\\Archive` and `\\Trash`) are written back by the sync "
        "function: Gmail `messages.modify` (INBOX label) and `messages.trash`/`untrash`; IMAP `MOVE` "
        "(RFC 6851) to the `\\Archive`/`\\Trash` folder (RFC 6154); Microsoft Graph `move` to "
        "`archive`/`deleteditems`. The answer "
        "is the email as stored now; its folders follow once the mailbox has changed. "
        "A `category` is stored as the user's (`category_source: user`) and never overwritten by a "
        "later categorization; two corrections to one category for a sender address (or for two "
        "addresses of one domain) make a rule (`GET /ai/rules`) that decides that sender's next mail. "
        "404 `feature_disabled` for `category` while the tenant's ai flag is off. A change to another "
        "user's mail needs it in full (mailbox shared `full`, or an admin under `admin_view: full`): "
        "404 `not_found` otherwise."
    ),
    tags=["emails"],
    security=BEARER,
    middlewares=[require_role(Role.MEMBER)],
    responses=errors(
        {
            400: ["empty_patch", "conflicting_changes"],
            404: ["not_found", "feature_disabled"],
            503: ["queue_send_failed"],
        }
    ),
)
def patch_email(email_id: str, patch: Annotated[EmailPatch, Body()]) -> Email:
    from mailbridge.ai.wiring import category_corrector

    return emails.update_email(
        current_tenant(router),
        email_id,
        patch,
        deps.email_store(),
        deps.blob_store(),
        deps.sync_queue(),
        category_corrector(),
        deps.publisher(),
    )


@router.get(
    "/emails/<email_id>/raw",
    summary="A short-lived download URL for the original message (message/rfc822)",
    description="Needs the email in full (its owner, a mailbox shared `full`, or an admin under "
    "`admin_view: full`): 404 `not_found` otherwise. Another user's mail is an audited read.",
    tags=["emails"],
    security=BEARER,
    responses=errors({404: ["not_found", "raw_not_found"]}),
    middlewares=[require_role(Role.VIEWER), audit_read("the original message")],
)
def get_email_raw(email_id: str) -> PresignedUrl:
    return emails.raw_url(current_tenant(router), email_id, deps.email_store(), deps.blob_store())


@router.get(
    "/emails/<email_id>/attachments/<attachment_id>",
    summary="A short-lived download URL for one attachment",
    description="Needs the email in full (its owner, a mailbox shared `full`, or an admin under "
    "`admin_view: full`): 404 `not_found` otherwise. Another user's mail is an audited read.",
    tags=["emails"],
    security=BEARER,
    responses=errors({404: ["not_found", "attachment_not_found"]}),
    middlewares=[require_role(Role.VIEWER), audit_read("an attachment")],
)
def get_attachment(email_id: str, attachment_id: str) -> PresignedUrl:
    return emails.attachment_url(
        current_tenant(router), email_id, attachment_id, deps.email_store(), deps.blob_store()
    )
