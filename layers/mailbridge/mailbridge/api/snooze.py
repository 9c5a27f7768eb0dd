"""Snooze: hide an email or a thread until a time (or a preset), cancel, list with `?snoozed=true`."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from mailbridge.api.context import current_tenant, require_role
from mailbridge.api.schemas import BEARER, errors
from mailbridge.snooze.models import Snooze, SnoozeRequest
from mailbridge.tenancy import Role

router = Router()

_PUT_DESCRIPTION = (
    "Hidden from the default `GET /emails` and `GET /threads` (listed with `?snoozed=true`) until "
    "`until`, or the `preset` resolved in `time_zone` (IANA; default UTC: no user time zone is "
    "stored). Then it comes back unread (here and on the mailbox: IMAP `\\Seen` removed, Gmail "
    "`UNREAD`, Graph `isRead=false`) and `email.unsnoozed` is announced; with `wake_on_reply`, a new "
    "email received in the thread wakes it earlier. Snoozing again replaces the snooze. "
    "422 `snooze_in_past` (less than a minute ahead), `snooze_too_far` (more than a year)."
)
_PUT_ERRORS = {400: ["invalid_time_zone"], 422: ["snooze_in_past", "snooze_too_far"]}


@router.put(
    "/emails/<email_id>/snooze",
    summary="Snooze an email until a time or a preset (member or above)",
    description=_PUT_DESCRIPTION,
    tags=["snooze"],
    security=BEARER,
    middlewares=[require_role(Role.MEMBER)],
    responses=errors({**_PUT_ERRORS, 404: ["not_found"]}),
)
def snooze_email(email_id: str, body: Annotated[SnoozeRequest, Body()]) -> Snooze:
    from mailbridge.snooze import service
    from mailbridge.snooze.wiring import snooze_deps

    return service.snooze(current_tenant(router), "email", email_id, body, snooze_deps())


@router.put(
    "/threads/<thread_id>/snooze",
    summary="Snooze every email of a thread until a time or a preset (member or above)",
    description=_PUT_DESCRIPTION,
    tags=["snooze"],
    security=BEARER,
    middlewares=[require_role(Role.MEMBER)],
    responses=errors({**_PUT_ERRORS, 404: ["thread_not_found"]}),
)
def snooze_thread(thread_id: str, body: Annotated[SnoozeRequest, Body()]) -> Snooze:
    from mailbridge.snooze import service
    from mailbridge.snooze.wiring import snooze_deps

    return service.snooze(current_tenant(router), "thread", thread_id, body, snooze_deps())


@router.delete(
    "/emails/<email_id>/snooze",
    summary="Unsnooze an email now (or the snoozed thread it belongs to) and delete its schedule",
    description="The mail is listed again at once; it is not marked unread and nothing is announced.",
    tags=["snooze"],
    security=BEARER,
    middlewares=[require_role(Role.MEMBER)],
    responses=errors({404: ["not_found", "not_snoozed"]}),
)
def cancel_email_snooze(email_id: str) -> Snooze:
    from mailbridge.snooze import service
    from mailbridge.snooze.wiring import snooze_deps

    return service.cancel(current_tenant(router), "email", email_id, snooze_deps())


@router.delete(
    "/threads/<thread_id>/snooze",
    summary="Unsnooze a thread now and delete its schedule",
    description="The thread is listed again at once; it is not marked unread and nothing is announced.",
    tags=["snooze"],
    security=BEARER,
    middlewares=[require_role(Role.MEMBER)],
    responses=errors({404: ["not_snoozed"]}),
)
def cancel_thread_snooze(thread_id: str) -> Snooze:
    from mailbridge.snooze import service
    from mailbridge.snooze.wiring import snooze_deps

    return service.cancel(current_tenant(router), "thread", thread_id, snooze_deps())
