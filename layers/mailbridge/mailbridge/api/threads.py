"""Conversations: a thread's messages oldest first, with its participants."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from mailbridge import emails
from mailbridge.api import deps
from mailbridge.api.context import current_tenant
from mailbridge.api.schemas import BEARER, errors
from mailbridge.models.mail import ThreadView
from mailbridge.store.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

router = Router()


@router.get(
    "/threads/<thread_id>",
    summary="A thread's messages oldest first (paged), its subject and the participants of the page",
    tags=["threads"],
    security=BEARER,
    responses=errors({404: ["thread_not_found"]}),
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
