"""Per-tenant feature flags: which capabilities a tenant has switched on."""

from __future__ import annotations

from datetime import datetime

from pydantic import ConfigDict, Field

from mailbridge.models.base import Model

# Capabilities that have a flag but are not built yet: always reported off, cannot be switched on.
PLANNED: frozenset[str] = frozenset()
_PLANNED_NOTE = " (planned, not built yet: always off)"


class FeatureFlags(Model):
    model_config = ConfigDict(frozen=True, extra="forbid")

    crm: bool = Field(default=True, description="Built-in CRM, matching and email links")
    campaigns: bool = Field(default=False, description="Campaign records and campaign links")
    ai: bool = Field(
        default=False,
        description=(
            "AI categorization of every email (`email.categorized`), `/ai/*` routes, corrections "
            "that teach per-tenant rules"
        ),
    )
    automations: bool = Field(default=False, description="No-code automations: rules, runs, dry-run")
    tracking: bool = Field(
        default=False,
        description="Open and click tracking of sent HTML mail by default (`tracking` of "
        "`POST /emails/send` overrides it per message)",
    )
    calendar: bool = Field(
        default=False,
        description=(
            "Ask for calendar access when mailboxes connect or reconnect through OAuth (Google "
            "`calendar.events`, Microsoft `Calendars.ReadWrite`) and pull their provider calendar "
            "into `/calendar/events`"
        ),
    )
    contact_import: bool = Field(
        default=False,
        description=(
            "Ask for read access to the contacts of mailboxes connected through OAuth (Google "
            "`contacts.readonly`) when they connect or reconnect"
        ),
    )


class FeatureFlagsUpdate(Model):
    """A partial update: flags left out keep their current value."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"campaigns": True, "tracking": False}]},
    )

    crm: bool | None = None
    campaigns: bool | None = None
    ai: bool | None = None
    automations: bool | None = None
    tracking: bool | None = None
    calendar: bool | None = None
    contact_import: bool | None = None


class FeatureSettings(Model):
    """The stored flags with their revision, as the API returns them."""

    model_config = ConfigDict(frozen=True)

    flags: FeatureFlags
    planned: list[str] = Field(
        default_factory=lambda: sorted(PLANNED),
        description="Flags of capabilities not built yet: reported off, refused when switched on",
    )
    version: int = Field(description="Revision; 0 while the tenant still has the defaults")
    updated_at: datetime | None = None
    updated_by: str | None = Field(default=None, description="Subject of the last writer")
