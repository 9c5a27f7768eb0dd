"""Conversations: the thread listing (newest activity first) and one thread's messages."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from mailbridge import emails
from mailbridge.ai.models import Category
from mailbridge.api import deps
from mailbridge.api.context import current_tenant, require_role
from mailbridge.api.schemas import BEARER, errors
from mailbridge.emails import EmailQuery
from mailbridge.models.mail import ThreadSummary, ThreadView
from mailbridge.store.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page
from mailbridge.tenancy import Role

router = Router()

ACCOUNT_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


@router.get(
    "/threads",
    summary="List threads, newest activity first, with the filters of /emails; follow `next_cursor`",
    description=(
        "A thread is listed when at least one of its emails matches every filter, at the date of the "
        "newest such email (`last_message_date`, `snippet`, `last_email_id`); `message_count`, "
        "`unread_count` and `participants` cover the whole thread. A page holds `limit` threads "
        "whenever that many match, except when a very selective filter ends it early: follow "
        "`next_cursor` until it is null. Other users' mail counts and shows as the caller may see it "
        "(mailbridge.access; their `private` mail not at all; `q` and `category` match only mail "
        "seen in full). 400 `folder_needs_account`, `invalid_date_range`, "
        "`invalid_cursor`, `too_many_search_words`."
    ),
    tags=["threads"],
    security=BEARER,
    responses=errors({400: ["folder_needs_account", "invalid_date_range", "too_many_search_words"]}),
    middlewares=[require_role(Role.VIEWER)],
)
def list_threads(
    account_id: Annotated[
        str | None, Query(pattern=ACCOUNT_ID_PATTERN, description="Only threads with mail in this account")
    ] = None,
    folder: Annotated[
        str | None,
        Query(max_length=1000, description="Only threads with mail in this folder of `account_id`"),
    ] = None,
    sender: Annotated[
        str | None,
        Query(
            alias="from",
            max_length=320,
            description="A whole address: mail from this address (any case); otherwise the sender's "
            "address or name contains this text (any case)",
        ),
    ] = None,
    since: Annotated[
        datetime | None, Query(description="ISO 8601; mail dated at or after this (no offset: UTC)")
    ] = None,
    until: Annotated[
        datetime | None, Query(description="ISO 8601; mail dated at or before this (not before since)")
    ] = None,
    unread: Annotated[
        bool | None, Query(description="true: threads with unread mail; false: with read mail")
    ] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=200,
            description="Words (at most 10) that one email's subject, sender, snippet or body text all "
            "contain, in any case and order",
        ),
    ] = None,
    category: Annotated[
        Category | None,
        Query(
            description="Only threads with an email of this AI category (set by the categorizer or a user)"
        ),
    ] = None,
    include_deleted: Annotated[
        bool, Query(description="Also mail no mailbox holds any more (and count it)")
    ] = False,
    snoozed: Annotated[
        bool, Query(description="true: only threads with snoozed mail (hidden otherwise until they wake)")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size")] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[
        str | None, Query(max_length=4096, description="`next_cursor` of the previous page")
    ] = None,
) -> Page[ThreadSummary]:
    query = EmailQuery(
        account_id=account_id,
        folder=folder,
        sender=sender,
        since=since,
        until=until,
        unread=unread,
        q=q,
        category=category,
        include_deleted=include_deleted,
        snoozed=snoozed,
        limit=limit,
        cursor=cursor,
    )
    return emails.list_threads(current_tenant(router), query, deps.email_store())


@router.get(
    "/threads/<thread_id>",
    summary="A thread's messages oldest first (paged), its subject and the participants of the page",
    description="Only the messages the caller may see, each as they see it (mailbridge.access); 404 "
    "`thread_not_found` when they see none.",
    tags=["threads"],
    security=BEARER,
    responses=errors({404: ["thread_not_found"]}),
    middlewares=[require_role(Role.VIEWER)],
)
def get_thread(
    thread_id: str,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size")] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[
        str | None, Query(max_length=4096, description="`next_cursor` of the previous page")
    ] = None,
) -> ThreadView:
    return emails.get_thread(
        current_tenant(router), thread_id, deps.email_store(), cursor=cursor, limit=limit
    )
