"""Notifications: the caller's in-app notifications, read / read-all, the caller's preferences,
and the tenant's notification settings (issue 15 point 4). A user only ever sees their own: every
read and write is keyed by the JWT's `sub`."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from mailbridge.api.context import current_tenant, require_role
from mailbridge.api.schemas import BEARER, errors
from mailbridge.notifications.models import (
    Notification,
    NotificationPage,
    NotificationPreferences,
    NotificationPreferencesRequest,
    NotificationSettings,
    NotificationSettingsRequest,
    ReadAllResult,
)
from mailbridge.store.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from mailbridge.tenancy import Role

router = Router()


@router.get(
    "/notifications",
    summary="The caller's in-app notifications, newest first, with the unread count",
    description=(
        "Notifications of nudges, due follow-ups, unsnoozed mail, failed sends, mailboxes to "
        "reconnect and failed automation runs, for the mailboxes (and rules) the caller owns. "
        "`unread=true` lists the unread ones only. Every page but the last holds `limit`; follow "
        "`next_cursor`. `unread_count` counts all unread notifications. 400 `invalid_cursor`."
    ),
    tags=["notifications"],
    security=BEARER,
    responses=errors({400: ["invalid_cursor"]}),
    middlewares=[require_role(Role.VIEWER)],
)
def list_notifications(
    unread: Annotated[bool, Query(description="Only unread notifications")] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size")] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[
        str | None, Query(max_length=4096, description="`next_cursor` of the previous page")
    ] = None,
) -> NotificationPage:
    from mailbridge.notifications import service
    from mailbridge.notifications.wiring import notification_deps

    return service.list_notifications(
        current_tenant(router), notification_deps(), unread=unread, cursor=cursor, limit=limit
    )


@router.post(
    "/notifications/read-all",
    summary="Mark all of the caller's notifications read",
    tags=["notifications"],
    security=BEARER,
    responses=errors({}),
    middlewares=[require_role(Role.VIEWER)],
)
def read_all_notifications() -> ReadAllResult:
    from mailbridge.notifications import service
    from mailbridge.notifications.wiring import notification_deps

    return service.mark_all_read(current_tenant(router), notification_deps())


@router.post(
    "/notifications/<notification_id>/read",
    summary="Mark one of the caller's notifications read (again: no change)",
    tags=["notifications"],
    security=BEARER,
    responses=errors({404: ["notification_not_found"]}),
    middlewares=[require_role(Role.VIEWER)],
)
def read_notification(notification_id: str) -> Notification:
    from mailbridge.notifications import service
    from mailbridge.notifications.wiring import notification_deps

    return service.mark_read(current_tenant(router), notification_id, notification_deps())


@router.get(
    "/notifications/preferences",
    summary="The caller's channel per notification type (in_app until changed) and digest frequency",
    tags=["notifications"],
    security=BEARER,
    responses=errors({}),
    middlewares=[require_role(Role.VIEWER)],
)
def get_notification_preferences() -> NotificationPreferences:
    from mailbridge.notifications import service
    from mailbridge.notifications.wiring import notification_deps

    return service.get_preferences(current_tenant(router), notification_deps())


@router.put(
    "/notifications/preferences",
    summary="Replace the caller's notification preferences",
    description=(
        "Per type: `in_app` (listed here and pushed live), `email_digest` (collected into the "
        "daily or weekly digest email) or `off`. Types left out are `in_app`. Applies to "
        "notifications made from then on."
    ),
    tags=["notifications"],
    security=BEARER,
    responses=errors({}),
    middlewares=[require_role(Role.VIEWER)],
)
def put_notification_preferences(
    body: Annotated[NotificationPreferencesRequest, Body()],
) -> NotificationPreferences:
    from mailbridge.notifications import service
    from mailbridge.notifications.wiring import notification_deps

    return service.put_preferences(current_tenant(router), body, notification_deps())


@router.get(
    "/notifications/settings",
    summary="The tenant's notification settings: the account digest emails are sent from, and the "
    "last digest run's `digest_status` (ok, no_sender, sender_not_found) and time",
    tags=["notifications"],
    security=BEARER,
    responses=errors({}),
    middlewares=[require_role(Role.VIEWER)],
)
def get_notification_settings() -> NotificationSettings:
    from mailbridge.notifications import service
    from mailbridge.notifications.wiring import notification_deps

    return service.get_settings(current_tenant(router), notification_deps())


@router.put(
    "/notifications/settings",
    summary="Set the account digest emails are sent from (admin or owner); null: no digests",
    tags=["notifications"],
    security=BEARER,
    middlewares=[require_role(Role.ADMIN)],
    responses=errors({404: ["account_not_found"]}),
)
def put_notification_settings(
    body: Annotated[NotificationSettingsRequest, Body()],
) -> NotificationSettings:
    from mailbridge.notifications import service
    from mailbridge.notifications.wiring import notification_deps

    return service.put_settings(current_tenant(router), body, notification_deps())
