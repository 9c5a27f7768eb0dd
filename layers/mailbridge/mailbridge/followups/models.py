"""Follow-up flags as the API takes and shows them, and the due-time message."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, ConfigDict, Field

from mailbridge.models.base import Model
from mailbridge.models.fields import MultiLine

Priority = Literal["low", "normal", "high"]
FlagState = Literal["open", "done"]
ListState = Literal["due", "overdue", "done"]


class FollowUpRequest(Model):
    """`PUT /emails/{id}/follow-up`: when to follow up, how important, a note."""

    model_config = ConfigDict(extra="forbid")

    due_at: AwareDatetime = Field(
        description="RFC 3339 with an offset; at least a minute ahead (422 otherwise)"
    )
    priority: Priority = "normal"
    note: Annotated[MultiLine, Field(max_length=2000)] | None = None


class FollowUp(Model):
    email_id: str
    thread_id: str
    due_at: datetime
    priority: Priority
    note: str | None = None
    state: FlagState
    created_at: datetime
    completed_at: datetime | None = None
    reminded_at: datetime | None = None


class FollowUpDue(Model):
    """What a follow-up's one-time schedule puts on the RemindersQueue at `due_at`."""

    kind: Literal["follow_up_due"] = "follow_up_due"
    tenant_id: str
    email_id: str
    due_at: str
