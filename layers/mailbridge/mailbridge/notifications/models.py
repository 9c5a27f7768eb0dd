"""Notifications as the API shows them, the user's preferences, the tenant's notification
settings, and the bus events the notifications function turns into notifications.

One notification type per source event (the NotificationsRule of template.yaml):

| type | source detail-type | producer |
|---|---|---|
| `nudge` | `nudge.created` | `mailbridge.nudges.service.scan` |
| `follow_up_due` | `follow_up.due` | `mailbridge.followups.service.remind` |
| `email_unsnoozed` | `email.unsnoozed` | `mailbridge.snooze.service.wake` |
| `send_failed` | `email.send_failed` | `mailbridge.outbox.service.fail` |
| `account_reauth_required` | `account.reauth_required` | `mailbridge.oauth.tokens` |
| `automation_failed` | `automation.failed` | `mailbridge.automations.execution` |

Channels per type: `in_app` (listed by `GET /notifications`, announced as `notification.created`),
`email_digest` (kept for the user's daily or weekly digest email, not listed), `off` (nothing is
stored).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, ConfigDict, Field

from mailbridge.models.base import Model

NotificationType = Literal[
    "nudge",
    "follow_up_due",
    "email_unsnoozed",
    "send_failed",
    "account_reauth_required",
    "automation_failed",
]
NOTIFICATION_TYPES: tuple[NotificationType, ...] = (
    "nudge",
    "follow_up_due",
    "email_unsnoozed",
    "send_failed",
    "account_reauth_required",
    "automation_failed",
)
Channel = Literal["in_app", "email_digest", "off"]
DigestFrequency = Literal["daily", "weekly"]
DigestStatus = Literal["ok", "no_sender", "sender_not_found"]

SourceDetailType = Literal[
    "nudge.created",
    "follow_up.due",
    "email.unsnoozed",
    "email.send_failed",
    "account.reauth_required",
    "automation.failed",
]
TYPE_OF: dict[str, NotificationType] = {
    "nudge.created": "nudge",
    "follow_up.due": "follow_up_due",
    "email.unsnoozed": "email_unsnoozed",
    "email.send_failed": "send_failed",
    "account.reauth_required": "account_reauth_required",
    "automation.failed": "automation_failed",
}
NOTIFICATION_CREATED = "notification.created"
NOTIFICATION_ID = re.compile(r"nt_[0-9a-f]{26}")  # checked with fullmatch


class Notification(Model):
    """One in-app notification of the caller's."""

    notification_id: str = Field(description="`nt_` and 26 hex digits")
    type: NotificationType
    title: str = Field(description="A short line to show; never a body, subject or address")
    subject_id: str | None = Field(
        default=None,
        description="What it is about: an email id (`em_`), account id (`acc_`) or rule id (`au_`)",
    )
    data: dict[str, Any] = Field(default_factory=dict, description="Ids and codes from the source event")
    created_at: datetime = Field(description="When the source event happened (UTC)")
    read_at: datetime | None = None


class NotificationPage(Model):
    """`GET /notifications`: a page of notifications, newest first, and the unread count."""

    items: list[Notification]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` to get the next page")
    unread_count: int = Field(description="How many in-app notifications the caller has not read (all pages)")


class ReadAllResult(Model):
    marked: int = Field(description="How many notifications this call marked read")
    unread_count: int


class NotificationPreferencesRequest(Model):
    """`PUT /notifications/preferences`: a channel per type (types left out: `in_app`)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"types": {"nudge": "email_digest", "automation_failed": "off"}, "digest_frequency": "weekly"}
            ]
        },
    )

    types: dict[NotificationType, Channel] = Field(
        default_factory=dict, description="Channel per notification type: in_app, email_digest or off"
    )
    digest_frequency: DigestFrequency = Field(
        default="daily", description="How often the digest email of `email_digest` types is sent"
    )


class NotificationPreferences(Model):
    """The caller's preferences, every type listed (`in_app` until the user changes it)."""

    types: dict[NotificationType, Channel]
    digest_frequency: DigestFrequency
    updated_at: datetime | None = None


class NotificationSettingsRequest(Model):
    """`PUT /notifications/settings` (admin): the account digests are sent from (None: no digests)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"digest_sender_account_id": "acc_5f0c1d2e3a4b5c6d7e8f"}]},
    )

    digest_sender_account_id: Annotated[str, Field(pattern=r"^acc_[0-9a-f]{20}$")] | None = None


class NotificationSettings(NotificationSettingsRequest):
    model_config = ConfigDict(extra="ignore")

    updated_at: datetime | None = None
    updated_by: str | None = None
    digest_status: DigestStatus | None = Field(
        default=None,
        description="`no_sender` while no sender is set; else what the last digest run found: `ok`, "
        "or `sender_not_found` (the account was removed: no digest is sent); null before the "
        "first run after the sender was set",
    )
    digest_last_run_at: datetime | None = Field(
        default=None, description="When the last digest run that had digests of this tenant to send ran (UTC)"
    )


class DigestRun(Model):
    """What the daily DigestSchedule puts on the NotificationsQueue: `scheduled_time` is EventBridge
    Scheduler's `<aws.scheduler.scheduled-time>` context attribute (EventBridge Scheduler User
    Guide, "Adding context attributes"), the instant whose day (UTC) names the digest period."""

    kind: Literal["digest_run"]
    scheduled_time: AwareDatetime | None = None


# ------------------------------------------------------------------------- source bus events


class SourceDetail(Model):
    """`detail` of a domain event (`mailbridge.bus`)."""

    tenant_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    id: str
    occurred_at: datetime
    idempotency_key: Annotated[str, Field(min_length=1, max_length=512)]
    data: dict[str, Any] = Field(default_factory=dict)


class SourceEvent(Model):
    """A source event as the NotificationsRule puts it on the NotificationsQueue."""

    detail_type: SourceDetailType = Field(alias="detail-type")
    detail: SourceDetail
