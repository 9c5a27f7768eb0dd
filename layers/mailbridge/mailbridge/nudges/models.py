"""Nudge settings as the API takes and shows them, the nudge itself, and the daily scan message.

Kinds follow Gmail's nudges (Gmail Help "Get reminders to reply to or follow up on emails"):
`awaiting_reply` (you sent it, nobody answered) and `needs_reply` (a CRM contact wrote, you did
not answer).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, ConfigDict, Field, field_validator

from mailbridge.models.base import Model

NudgeKind = Literal["awaiting_reply", "needs_reply"]
NudgeState = Literal["open", "dismissed"]
IsoWeekday = Annotated[int, Field(ge=1, le=7)]

DEFAULT_BUSINESS_DAYS = 3
MAX_BUSINESS_DAYS = 30
MAX_HOLIDAYS = 366


class NudgeSettingsRequest(Model):
    """`PUT /nudges/settings`: the whole settings document (fields left out take their default)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "enabled": True,
                    "business_days": 3,
                    "working_days": [1, 2, 3, 4, 5],
                    "time_zone": "Europe/Berlin",
                    "holidays": ["2026-12-24", "2026-12-25"],
                }
            ]
        },
    )

    enabled: bool = False
    business_days: int = Field(
        default=DEFAULT_BUSINESS_DAYS,
        ge=1,
        le=MAX_BUSINESS_DAYS,
        description="Business days without an answer before a nudge appears",
    )
    working_days: list[IsoWeekday] = Field(
        default_factory=lambda: [1, 2, 3, 4, 5],
        min_length=1,
        max_length=7,
        description="ISO 8601 weekday numbers (Monday = 1 ... Sunday = 7) the tenant works on",
    )
    time_zone: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+\-/]+$")] = Field(
        default="UTC", description="IANA time zone the business days are counted in (400 `invalid_time_zone`)"
    )
    holidays: list[date] = Field(
        default_factory=list,
        max_length=MAX_HOLIDAYS,
        description="Dates (ISO 8601, local to `time_zone`) that are not business days",
    )

    @field_validator("working_days", "holidays")
    @classmethod
    def _sorted_once(cls, values: list[int] | list[date]) -> list[int] | list[date]:
        return sorted(set(values))  # type: ignore[return-value, type-var]


class NudgeSettings(NudgeSettingsRequest):
    """The tenant's nudge settings (the defaults, nudges off, until an admin saves some)."""

    model_config = ConfigDict(extra="ignore")

    updated_at: datetime | None = None
    updated_by: str | None = None


class Nudge(Model):
    """A nudge on one email: `awaiting_reply` on mail sent, `needs_reply` on mail received."""

    id: str = Field(description="The nudge id: the id of the email it is about")
    kind: NudgeKind
    email_id: str
    thread_id: str
    since: datetime = Field(description="When the email was sent or received (UTC)")
    due_at: datetime = Field(description="`business_days` business days after `since` (UTC)")
    state: NudgeState
    created_at: datetime
    dismissed_at: datetime | None = None


class NudgeScan(Model):
    """What the daily NudgeSchedule puts on the RemindersQueue: `scheduled_time` is EventBridge
    Scheduler's `<aws.scheduler.scheduled-time>` context attribute (EventBridge Scheduler User
    Guide, "Adding context attributes"), the instant the run counts business days up to.

    Without `tenant_id` (the schedule's input) the run fans out: one `NudgeScan` per tenant with
    nudges on, naming it and the same `scheduled_time`, back onto the RemindersQueue, so each
    tenant is scanned in a record of its own and a failure retries only that tenant."""

    kind: Literal["nudge_scan"]
    scheduled_time: AwareDatetime | None = None
    tenant_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class SentData(Model):
    email_id: str
    thread_id: str | None = None


class SentDetail(Model):
    tenant_id: str
    data: SentData


class EmailSent(Model):
    """The `email.sent` bus event as the RemindersRule puts it on the queue (what a nudge needs)."""

    detail_type: Literal["email.sent"] = Field(alias="detail-type")
    detail: SentDetail
