"""What a campaign sends (its template, audience, sending account, schedule, throttle and
variables), the provider sending limits its throttle respects, a send run's status as the API
shows it, and the OutboxQueue message that carries one chunk of a run.

The campaign's own fields (`mailbridge.crm.models.CampaignFields`) use the types below; this
module imports nothing of the CRM so the CRM models can import it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    model_validator,
)

from mailbridge.models.base import Model
from mailbridge.models.fields import SingleLine

MAX_AUDIENCE_CONTACTS = 10_000
MAX_AUDIENCE_TAGS = 20
MAX_VARIABLES = 50
CHUNK_SIZE = 100
"""Recipients handled per OutboxQueue message (one chunk, one invocation)."""

TemplateRef = Annotated[str, StringConstraints(pattern=r"^tpl_[0-9a-f]{20}$")]
AccountRef = Annotated[str, StringConstraints(pattern=r"^acc_[0-9a-f]{20}$")]
ContactRef = Annotated[str, StringConstraints(pattern=r"^ct_[0-9a-f]{26}$")]
AudienceTag = Annotated[SingleLine, Field(min_length=1, max_length=50)]
VariableName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
ScheduleAt = Annotated[AwareDatetime, AfterValidator(lambda value: value.astimezone(UTC))]
"""An RFC 3339 date-time with an offset (section 5.6), stored in UTC."""
RESERVED_VARIABLES = frozenset({"contact", "company", "deal", "sender", "custom"})

# ------------------------------------------------------------------------------ provider limits
# Hourly ceilings derived from each provider's documented sending limit, so that a campaign
# running all day at its throttle stays inside the daily limit (daily limit // 24):
# - Gmail: 2,000 messages a day per user (Google Workspace "Gmail sending limits",
#   support.google.com/a/answer/166852) -> 83 an hour.
# - Microsoft 365: 10,000 recipients a day and 30 messages a minute per mailbox (Exchange Online
#   limits, "Sending limits", learn.microsoft.com/office365/servicedescriptions/
#   exchange-online-service-description/exchange-online-limits#sending-limits-1) -> 416 an hour
#   (far below 30 a minute).
# - IMAP/SMTP: the server's own policy, unknown to us: 500 an hour at most, 100 by default.
PROVIDER_MAX_PER_HOUR: dict[str, int] = {"gmail": 2000 // 24, "graph": 10_000 // 24, "imap": 500}
PROVIDER_DEFAULT_PER_HOUR: dict[str, int] = {"gmail": 2000 // 24, "graph": 10_000 // 24, "imap": 100}
MAX_THROTTLE = max(PROVIDER_MAX_PER_HOUR.values())


def max_per_hour(provider: str) -> int:
    return PROVIDER_MAX_PER_HOUR.get(provider, PROVIDER_MAX_PER_HOUR["imap"])


def default_per_hour(provider: str) -> int:
    return PROVIDER_DEFAULT_PER_HOUR.get(provider, PROVIDER_DEFAULT_PER_HOUR["imap"])


class Audience(Model):
    """Who a campaign goes to: contacts having any of `tags`, and the contacts `contact_ids`
    names (a contact in both is sent to once)."""

    model_config = ConfigDict(extra="forbid")

    tags: Annotated[list[AudienceTag], Field(max_length=MAX_AUDIENCE_TAGS)] = Field(
        default_factory=list, description="Contacts having any of these tags"
    )
    contact_ids: Annotated[list[ContactRef], Field(max_length=MAX_AUDIENCE_CONTACTS)] = Field(
        default_factory=list, description=f"Contacts by id, at most {MAX_AUDIENCE_CONTACTS:,}"
    )

    @model_validator(mode="after")
    def _rules(self) -> Audience:
        if not self.tags and not self.contact_ids:
            raise ValueError("an audience names tags, contact_ids or both")
        if len(set(self.tags)) != len(self.tags) or len(set(self.contact_ids)) != len(self.contact_ids):
            raise ValueError("tags and contact_ids must be unique")
        return self


Variables = Annotated[dict[VariableName, JsonValue], Field(max_length=MAX_VARIABLES)]


def check_variables(value: dict[str, JsonValue] | None) -> dict[str, JsonValue] | None:
    if value and RESERVED_VARIABLES & set(value):
        raise ValueError("variables cannot be named contact, company, deal, sender or custom")
    return value


SEND_FIELDS = frozenset(
    {"template_id", "audience", "account_id", "schedule_at", "throttle_per_hour", "variables"}
)
"""The fields a campaign sends with: changeable only while it is `draft` or `paused`."""
EDITABLE_STATUSES = frozenset({"draft", "paused"})


# ------------------------------------------------------------------------------ send runs
RunState = Literal["sending", "paused", "done"]
SkipReason = Literal["no_address", "suppressed", "contact_not_found"]


class SendCounts(Model):
    queued: int = Field(description="Emails queued in the outbox (sent or not yet)")
    sent: int = Field(description="Of those, sent")
    failed: int = Field(description="Of those, failed (the email's status says why)")
    skipped: dict[str, int] = Field(
        description="Contacts not sent to, by reason: `no_address`, `suppressed`, `contact_not_found`"
    )


class SendStatus(Model):
    """`POST /crm/campaigns/{id}/send` and `GET /crm/campaigns/{id}/send-status`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "campaign_id": "cp_0190f7a1c2d3e4f5a6b7c8d9e0",
                    "state": "sending",
                    "started_at": "2026-11-30T09:00:00+00:00",
                    "template_version": 3,
                    "throttle_per_hour": 83,
                    "counts": {"queued": 200, "sent": 12, "failed": 0, "skipped": {"suppressed": 3}},
                }
            ]
        }
    )

    campaign_id: str
    state: RunState = Field(
        description="`sending` while chunks are being queued, `paused` when stopped (send again to "
        "resume), `done` once every recipient was queued or skipped"
    )
    started_at: datetime
    template_version: int = Field(description="The template version every email of the run renders")
    throttle_per_hour: int = Field(description="At most this many sends per hour from the account")
    counts: SendCounts


class CampaignChunkMessage(Model):
    """OutboxQueue work: queue the next chunk of a campaign's send run, from `cursor`."""

    kind: Literal["campaign"] = "campaign"
    tenant_id: str
    campaign_id: str
    cursor: str = Field(description="The run's cursor this chunk starts at (stale: dropped)")
