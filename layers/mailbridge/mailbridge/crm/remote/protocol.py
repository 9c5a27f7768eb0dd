"""The one protocol every external CRM adapter (Salesforce, HubSpot) implements.

The operations are the Salesforce seed's CRM provider pattern: get/sync/update/delete a contact,
bulk-sync contacts, sync a campaign, log an email activity, sync list membership, read the
custom fields, and say which features the CRM supports. Field mapping (our contact <-> the CRM's
field API names) is not the adapter's business: the sync service maps, the adapter speaks the
CRM's own field names and converts values to and from their wire form.

Records cross the protocol in the CRM's field names:
- Salesforce: `Contact` field API names (`FirstName`, `LastName`, `Email`, `Title`, `Phone`,
  custom fields end in `__c`), from `GET /services/data/vXX.X/sobjects/Contact/describe`.
- HubSpot: contact property names (`firstname`, `lastname`, `email`, `jobtitle`, `phone`,
  custom properties by their internal name), from `GET /crm/v3/properties/contacts`.

Values (`RemoteValue`) are JSON scalars in the CRM's wire form: strings, numbers, booleans, None
(clear the field); dates as `YYYY-MM-DD`, date-times as ISO 8601 UTC. HubSpot sends every
property as a string: its adapter converts by the property's `type` so both CRMs hand the service
the same Python types (`FieldInfo.type` says which).

Errors (typed, from `mailbridge.errors`; the message never holds a token, an address or a
record's values): `ProviderAuthError` (code `reauth_required`) when the token is revoked or the
refresh fails; `ProviderRateLimited` with `retry_after` (Salesforce `REQUEST_LIMIT_EXCEEDED`,
HubSpot 429); `ProviderUnreachable`/`ProviderError` (retryable 5xx and transport errors, after the
adapter's own bounded retries); `CrmRecordRejected` for one record the CRM refused (validation
rule, duplicate rule, bad value): never raised by the bulk and batch operations, which report
per record instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from enum import StrEnum
from typing import Literal, Protocol, runtime_checkable

from pydantic import Field

from mailbridge.errors import ProviderError
from mailbridge.models.base import Model

CrmName = Literal["salesforce", "hubspot"]
RemoteValue = str | int | float | bool | None
RemoteRecord = dict[str, RemoteValue]
"""One record's fields by the CRM's field API names."""


class CrmRecordRejected(ProviderError):
    """The CRM refused one record (Salesforce `FIELD_CUSTOM_VALIDATION_EXCEPTION`,
    `DUPLICATES_DETECTED`, `INVALID_EMAIL_ADDRESS` ...; HubSpot 400 `VALIDATION_ERROR`, 409
    `CONFLICT`). `details`: `{"remote_code": the CRM's error code, "fields": [field names]}`."""

    code = "crm_record_rejected"


class Feature(StrEnum):
    """What a CRM supports; the service asks before it tries."""

    BULK = "bulk"
    """Bulk API 2.0 ingest and query jobs (Salesforce) or batch endpoints of 100 (HubSpot)."""
    CAMPAIGNS = "campaigns"
    """Salesforce Campaign + CampaignMember; HubSpot has no campaign object in CRM v3, it uses lists."""
    LISTS = "lists"
    """List membership (HubSpot lists v3, Salesforce CampaignMember)."""
    CUSTOM_FIELDS = "custom_fields"
    EMAIL_ACTIVITY = "email_activity"
    DEVICE_FLOW = "device_flow"
    """OAuth 2.0 device authorization (RFC 8628): Salesforce only."""
    WEBHOOKS = "webhooks"
    """Real-time changes in: Salesforce outbound messages, HubSpot webhooks v3."""


FieldType = Literal[
    "string", "textarea", "email", "phone", "url", "number", "boolean", "date", "datetime",
    "picklist", "multipicklist", "reference", "other",
]  # fmt: skip


class FieldInfo(Model):
    """One contact field as the CRM describes it (Salesforce describe `fields[]`; HubSpot
    properties API)."""

    name: str = Field(description="API name: `Email`, `Region__c`; `email`, `region`")
    label: str
    type: FieldType
    custom: bool = Field(description="Salesforce `custom`; HubSpot not `hubspotDefined`")
    updateable: bool = Field(description="Salesforce `updateable`; HubSpot not `readOnlyValue`")
    required: bool = Field(default=False, description="Salesforce: not `nillable` and no default")
    length: int | None = Field(default=None, description="Maximum characters, for text types")
    options: list[str] = Field(default_factory=list, description="Picklist values, active only")


class RemoteContact(Model):
    """One contact as the CRM holds it."""

    remote_id: str = Field(description="Salesforce 18-character Id; HubSpot object id")
    fields: RemoteRecord = Field(default_factory=dict)
    modified_at: datetime = Field(
        description="UTC; Salesforce `SystemModstamp`, HubSpot `hs_lastmodifieddate` / `updatedAt`"
    )
    deleted: bool = Field(default=False, description="Salesforce `IsDeleted` (queryAll); HubSpot archived")


class ContactPage(Model):
    """One page of contacts changed since a watermark, oldest change first."""

    contacts: list[RemoteContact]
    next_page: str | None = Field(
        default=None, description="Opaque: pass back to get the next page; None on the last page"
    )
    watermark: str | None = Field(
        default=None,
        description="Opaque: pass as `since` next run to get only later changes; set on every page",
    )


class ContactWrite(Model):
    """One contact to create or update, keyed by our own id so results can be matched back."""

    key: str = Field(description="Our contact_id; echoed in the result")
    remote_id: str | None = Field(default=None, description="None: create (or match by email)")
    fields: RemoteRecord


class RecordResult(Model):
    """The outcome for one record of a bulk or batch write (Salesforce Bulk API 2.0
    successfulResults/failedResults/unprocessedrecords; HubSpot batch results/errors)."""

    key: str
    state: Literal["succeeded", "failed", "unprocessed"]
    remote_id: str | None = None
    created: bool = False
    error_code: str | None = None
    error_message: str | None = Field(
        default=None, description="The CRM's message, without record values", max_length=500
    )


class CampaignWrite(Model):
    """Our campaign as the CRM sees it: Salesforce Campaign, HubSpot static list."""

    key: str = Field(description="Our campaign_id")
    remote_id: str | None = None
    name: str
    status: str | None = Field(default=None, description="Salesforce Campaign.Status picklist value")
    start_date: str | None = Field(default=None, description="YYYY-MM-DD")
    end_date: str | None = None


class MembershipResult(Model):
    added: list[str] = Field(default_factory=list, description="Remote contact ids now members")
    removed: list[str] = Field(default_factory=list)
    failed: list[RecordResult] = Field(default_factory=list)


class EmailActivity(Model):
    """One email to log against the CRM contacts it involves (Salesforce Task with
    `TaskSubtype = 'Email'` or EmailMessage + EmailMessageRelation; HubSpot email engagement
    `POST /crm/v3/objects/emails` with `hs_timestamp`, `hs_email_direction`, associations to
    contacts). Deduplicated on `message_id`: the adapter looks for an activity already logged
    with this Message-ID before creating one, so two mailboxes or a retry never log it twice."""

    message_id: str = Field(description="RFC 5322 Message-ID, with angle brackets")
    subject: str = Field(default="", max_length=255)
    sent_at: datetime
    direction: Literal["incoming", "outgoing"]
    from_address: str
    to_addresses: list[str] = Field(default_factory=list)
    body_preview: str = Field(default="", max_length=2000, description="Plain text, never HTML")
    remote_contact_ids: list[str] = Field(min_length=1)


class ActivityResult(Model):
    remote_id: str
    created: bool = Field(description="False when an activity with this Message-ID already existed")


@runtime_checkable
class CrmProvider(Protocol):
    """One connected CRM org/portal with a valid access token (the adapter refreshes it).

    Implementations: `mailbridge.crm.remote.salesforce.SalesforceProvider`,
    `mailbridge.crm.remote.hubspot.HubSpotProvider`. Every call may raise the errors listed in
    the module docstring.
    """

    name: CrmName

    def features(self) -> frozenset[Feature]: ...

    def contact_fields(self) -> list[FieldInfo]:
        """Every contact field, standard and custom ("get custom fields")."""
        ...

    def get_contact(self, remote_id: str, fields: Iterable[str]) -> RemoteContact | None:
        """None when there is no such contact (or it is deleted)."""
        ...

    def find_contact_by_email(self, email: str, fields: Iterable[str]) -> RemoteContact | None:
        """Exact, case-insensitive match on the primary email; the oldest when several match."""
        ...

    def save_contact(self, contact: ContactWrite) -> RecordResult:
        """Create or update one contact ("sync contact" / "update contact"). A refused record is
        a `failed` result, not an exception."""
        ...

    def delete_contact(self, remote_id: str) -> bool:
        """False when it was already gone."""
        ...

    def changed_contacts(
        self, since: str | None, fields: Iterable[str], page: str | None = None
    ) -> ContactPage:
        """Contacts modified after the `since` watermark (None: all), deletions included, each
        change once, a page at a time; a watermark from any page resumes without loss or repeat.
        Live changes come oldest first; where deletions fall is the CRM's (Salesforce SOQL
        `queryAll` returns them in SystemModstamp order among the rest; HubSpot search on
        `lastmodifieddate` has no archived contacts, so they follow, from `archived=true`)."""
        ...

    def bulk_save_contacts(self, contacts: Iterable[ContactWrite]) -> Iterator[RecordResult]:
        """Many contacts at once, streamed: Salesforce Bulk API 2.0 ingest job (CSV upload,
        `UploadComplete`, poll, then successful/failed/unprocessed results); HubSpot
        `batch/create` and `batch/update` of 100. Memory stays flat in the number of records:
        the input is consumed and results yielded in chunks. One result per input record."""
        ...

    def bulk_changed_contacts(self, since: str | None, fields: Iterable[str]) -> Iterator[RemoteContact]:
        """Like `changed_contacts` for large pulls, streamed: Salesforce Bulk API 2.0 query job
        (`queryAll`, results read with `Sforce-Locator` paging); HubSpot search pages of 100 (or
        batch/read). After the iterator ends, `last_watermark` holds the watermark to store."""
        ...

    @property
    def last_watermark(self) -> str | None:
        """The watermark reached by the last `bulk_changed_contacts` iteration."""
        ...

    def save_campaign(self, campaign: CampaignWrite) -> RecordResult:
        """Create or update the campaign (Salesforce Campaign; HubSpot a static contact list)."""
        ...

    def set_campaign_members(
        self, remote_campaign_id: str, add: Iterable[str], remove: Iterable[str]
    ) -> MembershipResult:
        """Sync list membership: Salesforce CampaignMember (composite, 200 per call); HubSpot
        lists v3 `memberships/add` and `memberships/remove`. Adding a member twice is not an error."""
        ...

    def log_email(self, activity: EmailActivity) -> ActivityResult:
        """Log one email against its contacts, at most once per Message-ID."""
        ...
