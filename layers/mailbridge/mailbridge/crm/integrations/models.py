"""The CRM integration and sync-log models (what the API answers; the store maps them to items)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from mailbridge.models.base import Model
from mailbridge.models.fields import SingleLine

CrmProviderName = Literal["salesforce", "hubspot"]
IntegrationState = Literal["pending", "connected", "reauth_required", "failed"]
SyncKind = Literal["contacts", "campaigns", "activity"]
SyncDirection = Literal["pull", "push"]
RunDirection = Literal["pull", "push", "both"]
"""A run's: a two-way contacts sync is `both` (its records say `pull` or `push` each)."""
RecordState = Literal["succeeded", "failed", "conflict", "skipped"]
RunState = Literal["running", "succeeded", "partial", "failed"]

INTEGRATION_ID = re.compile(r"int_[0-9a-f]{20}")
RUN_ID = re.compile(r"run_[0-9a-f]{12}[0-9a-f]{8}")
ERROR_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")
INTEGRATION_REAUTH_REQUIRED = "crm.integration.reauth_required"
"""Bus detail-type: `data = {integration_id, provider, org_id, reason}` when a CRM grant stops working."""


class Integration(Model):
    """One connected (or connecting) Salesforce org or HubSpot portal of a tenant."""

    integration_id: str = Field(description="`int_` and 20 hex digits")
    tenant_id: str
    provider: CrmProviderName
    name: str | None = Field(default=None, description="A label the admin chose")
    state: IntegrationState = Field(
        description="`pending` (consent or device approval awaited), `connected`, `reauth_required` "
        "(the provider refused the refresh token: connect again), `failed` (see `reason`)"
    )
    flow: Literal["web", "device"] = "web"
    reason: str | None = Field(default=None, description="Why it failed (a code), e.g. `expired_token`")
    org_id: str | None = Field(default=None, description="Salesforce organization id / HubSpot hub id")
    org_name: str | None = Field(default=None, description="HubSpot hub domain; Salesforce: not known")
    instance_url: str | None = Field(default=None, description="Salesforce instance URL (token answer)")
    remote_user_id: str | None = Field(default=None, description="The CRM user who consented")
    scopes: list[str] = Field(default_factory=list)
    log_activity: bool = Field(
        default=True,
        description="Log email to synced contacts as CRM activities (Salesforce Task, HubSpot email)",
    )
    log_body: bool = Field(
        default=False,
        description="Put the email's text preview in the logged activity; off: subject, direction, date "
        "and participants only (`mailbridge.crm.integrations.activity`)",
    )
    created_at: datetime
    created_by: str = Field(description="JWT `sub` of who started the connection")
    connected_at: datetime | None = None
    updated_at: datetime


class IntegrationCreate(Model):
    """`POST /crm/integrations` and `POST /crm/integrations/device`."""

    provider: CrmProviderName
    name: Annotated[SingleLine, Field(max_length=100)] | None = None


class IntegrationStart(Model):
    """`POST /crm/integrations`: open `authorization_url`; the callback connects `integration`."""

    integration: Integration
    authorization_url: str = Field(description="The provider's consent page, with state and PKCE challenge")
    expires_at: datetime = Field(description="The state is single-use and expires at this time")


class DeviceStart(Model):
    """`POST /crm/integrations/device` (RFC 8628 section 3.2): show `user_code` and `verification_uri`;
    poll `POST /crm/integrations/{id}/device/poll` every `interval` seconds."""

    integration: Integration
    user_code: str
    verification_uri: str
    interval: int = Field(description="Seconds between polls")
    expires_in: int = Field(description="Seconds until the user code expires")


class DevicePoll(Model):
    """A poll's answer: `state` is `pending` (`authorization_pending`, or `slow_down` with a longer
    `interval`), `connected`, or `failed` with `reason`."""

    integration: Integration
    status: Literal["authorization_pending", "slow_down", "connected", "failed"]
    interval: int | None = None


class Org(Model):
    """`GET /crm/orgs`: one connected org or portal."""

    integration_id: str
    provider: CrmProviderName
    org_id: str
    instance_url: str | None
    name: str | None
    state: IntegrationState


class Orgs(Model):
    items: list[Org]


class Deleted(Model):
    integration_id: str
    deleted: bool = True


class SyncErrorCount(Model):
    code: str
    count: int


class SyncRun(Model):
    """One sync run (`crm_sync_logs`): counts and error codes, never values."""

    run_id: str
    integration_id: str
    kind: SyncKind
    direction: RunDirection
    state: RunState
    started_at: datetime
    ended_at: datetime | None = None
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    conflicts: int = 0
    errors: list[SyncErrorCount] = Field(default_factory=list, description="Error codes and how often")


class SyncRecord(Model):
    """One record of a run: which remote and local record, which way, and what happened."""

    remote_id: Annotated[str, Field(min_length=1, max_length=64)]
    local_id: Annotated[str | None, Field(max_length=64)] = None
    direction: SyncDirection
    state: RecordState
    error_code: Annotated[str | None, Field(pattern=ERROR_CODE.pattern)] = None
    winner: Literal["crm", "mailbridge"] | None = Field(
        default=None, description="A conflict's outcome: whose values were kept (never the values)"
    )


class SyncStatus(Model):
    """`crm_sync_status`: per integration, its last run and watermarks."""

    integration_id: str
    state: Literal["never", "running", "succeeded", "partial", "failed"] = "never"
    last_run_id: str | None = None
    last_run_at: datetime | None = None
    last_error: str | None = Field(default=None, description="The last run's first error code")
    watermarks: dict[str, str] = Field(default_factory=dict, description="Per kind, opaque")


class RemoteLink(Model):
    """Which CRM record one of our contacts is, per integration, and where each side stood at the
    last sync that touched the pair: the two-way sync reads a change on our side as
    `local_updated_at` newer than the one kept here, and on the provider's as `remote_modified`
    (Salesforce `SystemModstamp`, HubSpot `lastmodifieddate`) newer than the one kept here; a pair
    changed on both sides is a conflict for the integration's policy. `fields_hash` is the digest of
    the mapped values as last synced (sha256 hex), so an edit that changes nothing mapped is no change."""

    integration_id: Annotated[str, Field(min_length=1, max_length=64)]
    contact_id: Annotated[str, Field(min_length=1, max_length=64)]
    remote_id: Annotated[str, Field(min_length=1, max_length=64)]
    remote_modified: str | None = None
    local_updated_at: str | None = None
    fields_hash: Annotated[str | None, Field(max_length=64)] = None
    synced_at: datetime


class CampaignSyncRequest(Model):
    """`POST /crm/sync/campaigns`: which campaigns to which integrations (each: all when left out)."""

    model_config = ConfigDict(extra="forbid")

    integration_id: Annotated[SingleLine, Field(min_length=1, max_length=64)] | None = Field(
        default=None, description="One integration; default every connected one"
    )
    campaign_id: Annotated[SingleLine, Field(min_length=1, max_length=64)] | None = Field(
        default=None, description="One campaign; default every campaign of the tenant"
    )


class CampaignSyncQueued(Model):
    """The campaign syncs queued: one per (integration, campaign) pair."""

    queued: int
    integration_ids: list[str]
    campaign_ids: list[str]


class CampaignSyncMessage(Model):
    """One campaign to one integration, on the CrmActivityQueue (`kind` tells it from the
    `email.linked` events on the same queue)."""

    kind: Literal["campaign_sync"] = "campaign_sync"
    tenant_id: str
    integration_id: str
    campaign_id: str


class ActivityLogging(Model):
    """`PUT /crm/integrations/{id}/activity`: whether linked email is logged at this CRM, and with
    its text (`mailbridge.crm.integrations.activity` says why bodies are off by default)."""

    model_config = ConfigDict(extra="forbid")

    log_activity: bool = Field(description="Log email to synced contacts as activities")
    log_body: bool = Field(default=False, description="Include the email's plain-text preview")
