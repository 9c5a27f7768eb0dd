"""Snooze requests, the snooze as the API shows it, and the wake-up message.

A snooze targets one email (`PUT /emails/{id}/snooze`) or a whole thread (`PUT /threads/{id}/snooze`).
Times are RFC 3339 with an offset (`until`), or a preset resolved in an IANA time zone
(`mailbridge.snooze.presets`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, ConfigDict, Field, model_validator

from mailbridge.models.base import Model
from mailbridge.snooze.presets import Preset

Target = Literal["email", "thread"]
State = Literal["snoozed", "woken", "cancelled"]
WakeReason = Literal["time", "reply"]


class SnoozeRequest(Model):
    """`{"until": <RFC 3339 with offset>}` or `{"preset": ..., "time_zone": <IANA>}`, and
    `wake_on_reply`. Exactly one of `until` and `preset`."""

    model_config = ConfigDict(extra="forbid")

    until: AwareDatetime | None = Field(
        default=None, description="RFC 3339 date-time with an offset; must lie in the future (422 otherwise)"
    )
    preset: Preset | None = Field(
        default=None,
        description="later_today (18:00, or 3 h ahead after 17:00), tomorrow (08:00), next_week "
        "(Monday 08:00), someday (08:00 in 90 days), all local to `time_zone`",
    )
    time_zone: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+\-/]+$")] | None = (
        Field(
            default=None,
            description="IANA time zone the preset is resolved in (mailbridge stores no user time zone "
            "yet); default: the tenant's default, UTC",
        )
    )
    wake_on_reply: bool = Field(
        default=False, description="A new email received in the thread before `until` wakes it at once"
    )

    @model_validator(mode="after")
    def _one_time(self) -> SnoozeRequest:
        if (self.until is None) == (self.preset is None):
            raise ValueError("give exactly one of until and preset")
        return self


class Snooze(Model):
    """A snooze: what it hides (`email_ids`), until when (UTC), and its state."""

    target: Target
    id: str = Field(description="The email id or thread id snoozed")
    thread_id: str
    email_ids: list[str]
    until: datetime
    wake_on_reply: bool
    state: State
    snoozed_at: datetime


class WakeSnooze(Model):
    """What a snooze's one-time schedule puts on the RemindersQueue at `until` (and what a reply
    wakes early). `until` identifies the snooze version: a wake for an older version does nothing."""

    kind: Literal["wake_snooze"] = "wake_snooze"
    tenant_id: str
    target_id: str
    until: str
    reason: WakeReason = "time"


class ReceivedData(Model):
    email_id: str
    thread_id: str


class ReceivedDetail(Model):
    tenant_id: str
    data: ReceivedData


class EmailReceived(Model):
    """The `email.received` bus event as the template's RemindersRule puts it on the queue (only
    what a wake-on-reply needs)."""

    detail_type: Literal["email.received"] = Field(alias="detail-type")
    detail: ReceivedDetail
