"""The sync settings of one CRM integration (field mapping, conflict policy, deletions) and the
messages of the CrmSyncQueue."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints

from mailbridge.models.base import Model

ConflictPolicy = Literal["crm_wins", "mailbridge_wins", "newest_wins"]
DEFAULT_POLICY: ConflictPolicy = "newest_wins"
Deletions = Literal["none", "from_crm", "to_crm", "both"]
STANDARD_FIELDS = ("first_name", "last_name", "email", "phone", "title")
LocalField = Annotated[
    str,
    StringConstraints(
        pattern=r"^(first_name|last_name|email|phone|title|custom\.[A-Za-z][A-Za-z0-9_.-]{0,63})$"
    ),
]
RemoteFieldName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,79}$")]
MAX_MAPPED = 60


class FieldMapping(Model):
    """One of our contact fields and the CRM field it syncs with, both ways."""

    model_config = ConfigDict(extra="forbid")

    local: LocalField = Field(
        description="`first_name`, `last_name` (our `name` split at its last space), `email` (the "
        "primary address), `phone` (the first), `title`, or `custom.<key>`",
        examples=["custom.region"],
    )
    remote: RemoteFieldName = Field(
        description="The CRM's field API name (Salesforce describe, HubSpot properties API)",
        examples=["Region__c"],
    )


class SyncSettingsBody(Model):
    """`PUT /crm/integrations/{id}/mapping`: checked against the CRM's contact fields."""

    model_config = ConfigDict(extra="forbid")

    fields: Annotated[list[FieldMapping], Field(min_length=1, max_length=MAX_MAPPED)] = Field(
        description="Must map `email` (contacts are matched by their primary address)"
    )
    conflict_policy: ConflictPolicy = Field(
        default=DEFAULT_POLICY,
        description="When a contact changed on both sides since the last sync: `crm_wins`, "
        "`mailbridge_wins`, or `newest_wins` (the later modification time; the default)",
    )
    deletions: Deletions = Field(
        default="none",
        description="Which deletions propagate: `from_crm`, `to_crm`, `both`, or `none` (the "
        "default): a deletion not propagated unlinks the pair, and the surviving copy is synced "
        "again as a new contact when the sync next reads it as changed",
    )


class SyncSettings(SyncSettingsBody):
    """The integration's sync settings; `default` when nobody saved any yet."""

    integration_id: str
    default: bool = False
    version: int = 0


class SyncStart(Model):
    """`POST /crm/sync/contacts`: one integration, or every connected one when absent."""

    model_config = ConfigDict(extra="forbid")

    integration_id: Annotated[str, StringConstraints(pattern=r"^int_[0-9a-f]{20}$")] | None = None


class StartedRun(Model):
    integration_id: str
    run_id: str


class SyncStarted(Model):
    """202: the runs queued (one per integration); follow them at `/crm/integrations/{id}/logs`."""

    runs: list[StartedRun]


class ContactSync(Model):
    """A CrmSyncQueue message: run (or continue, when `run_id` is set) a contacts sync of one
    integration; `tenant_id` None with `kind` `contacts` is the schedule's fan-out to every
    connected integration. `remote_ids`: a targeted pull of those records only (webhooks)."""

    kind: Literal["contacts"] = "contacts"
    tenant_id: str | None = None
    integration_id: str | None = None
    run_id: str | None = None
    remote_ids: list[str] | None = None
