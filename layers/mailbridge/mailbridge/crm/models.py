"""Built-in CRM records: what the API accepts (`*Create`, `*Patch`) and what it returns.

Records are tenant-scoped by their store keys, never by a field: no model here carries a tenant.
Email addresses and domains are lower-cased on the way in so matching mail against them is an
exact key lookup. `*Patch` models hold only what the caller sent (`model_fields_set`); `null`
clears an optional field, and the optional `version` makes the change conditional on it.
"""

from __future__ import annotations

import re
import secrets
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    EmailStr,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic import Tag as UnionTag  # `Tag` is a CRM tag below

from mailbridge.campaigns.models import (
    MAX_THROTTLE,
    AccountRef,
    Audience,
    ScheduleAt,
    TemplateRef,
    Variables,
    check_variables,
)
from mailbridge.models.base import Model
from mailbridge.models.fields import MultiLine, SingleLine
from mailbridge.models.mail import EmailSummary
from mailbridge.models.numbers import DynamoInt, DynamoNumber

# ------------------------------------------------------------------------------- identifiers

CONTACT_PREFIX, COMPANY_PREFIX, DEAL_PREFIX, CAMPAIGN_PREFIX = "ct_", "co_", "dl_", "cp_"
TASK_PREFIX, ACTIVITY_PREFIX = "tk_", "ac_"
ID_PATTERN = r"^(ct|co|dl|cp)_[0-9a-f]{26}$"
CONTACT_ID = re.compile(r"^ct_[0-9a-f]{26}$")
COMPANY_ID = re.compile(r"^co_[0-9a-f]{26}$")
DEAL_ID = re.compile(r"^dl_[0-9a-f]{26}$")
CAMPAIGN_ID = re.compile(r"^cp_[0-9a-f]{26}$")
TASK_ID = re.compile(r"^tk_[0-9a-f]{26}$")
ACTIVITY_ID = re.compile(r"^ac_[0-9a-f]{26}$")
EMAIL_ID = re.compile(r"^em_[0-9a-f]{26}$")


def new_id(prefix: str, now_ms: int | None = None) -> str:
    """`{prefix}` + 26 hex: 12 of milliseconds then 14 random, so ids sort by creation time."""
    millis = int(time.time() * 1000) if now_ms is None else now_ms
    return f"{prefix}{millis:012x}{secrets.token_hex(7)}"


# ------------------------------------------------------------------------------- field rules

MAX_EMAILS = 10
MAX_PHONES = 10
MAX_TAGS = 50
MAX_DOMAINS = 20
MAX_DEAL_CONTACTS = 20
MAX_CUSTOM_FIELDS = 50
MAX_CUSTOM_VALUE = 1000
MAX_STAGES = 20

CLOSED_STAGES = frozenset({"won", "lost"})
DEFAULT_STAGES = ("lead", "qualified", "proposal", "negotiation", "won", "lost")

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$"
)
_CUSTOM_KEY = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"


def normalize_domain(value: str) -> str:
    """Lower-case, without surrounding spaces or a trailing dot; a valid public hostname."""
    domain = value.strip().lower().rstrip(".")
    if not _HOSTNAME.fullmatch(domain):
        raise ValueError(f"{value!r} is not a valid domain name")
    return domain


def normalize_address(value: str) -> str:
    return value.strip().lower()


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


def _unique(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise ValueError("values must be unique")
    return values


# Free text is SingleLine/MultiLine (mailbridge.models.fields): no control characters, 422
# `control_characters` otherwise. Stripped of surrounding spaces, then measured.
Name = Annotated[SingleLine, Field(min_length=1, max_length=200)]
Text = Annotated[SingleLine, Field(min_length=1, max_length=200)]
Subject = Annotated[SingleLine, Field(min_length=1, max_length=200)]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9+()./ x-]{3,40}$")]
Tag = Annotated[SingleLine, Field(min_length=1, max_length=50)]
Domain = Annotated[str, AfterValidator(normalize_domain)]
Currency = Annotated[str, BeforeValidator(_upper), StringConstraints(pattern=r"^[A-Z]{3}$")]
Stage = Annotated[
    str, BeforeValidator(_strip), StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,39}$", to_lower=True)
]


def _plain_decimal(value: Decimal) -> Decimal:
    """Without trailing zeros or an exponent (12500.50 -> 12500.5), as DynamoDB will hand it back."""
    return Decimal(format(value.normalize(), "f"))


Amount = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=4), AfterValidator(_plain_decimal)]
CustomText = Annotated[MultiLine, Field(max_length=MAX_CUSTOM_VALUE)]  # a note may have line breaks
CompanyRef = Annotated[str, StringConstraints(pattern=COMPANY_ID.pattern)]
ContactRef = Annotated[str, StringConstraints(pattern=CONTACT_ID.pattern)]
DealRef = Annotated[str, StringConstraints(pattern=DEAL_ID.pattern)]
EmailRef = Annotated[str, StringConstraints(pattern=EMAIL_ID.pattern)]


def _custom_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "text"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return None


# Tagged by the JSON type, so a refused value gets the one error of its kind (not one per member).
CustomValue = Annotated[
    Annotated[CustomText, UnionTag("text")]
    | Annotated[bool, UnionTag("boolean")]
    | Annotated[DynamoNumber, UnionTag("number")],
    Discriminator(
        _custom_kind,
        custom_error_type="custom_value_type",
        custom_error_message="a custom field value is a string, a boolean or a number",
    ),
]
CustomKey = Annotated[str, StringConstraints(pattern=_CUSTOM_KEY)]
CustomFields = Annotated[dict[CustomKey, CustomValue], Field(max_length=MAX_CUSTOM_FIELDS)]
Tags = Annotated[list[Tag], Field(max_length=MAX_TAGS), AfterValidator(_unique)]
Domains = Annotated[list[Domain], Field(max_length=MAX_DOMAINS), AfterValidator(_unique)]
ContactIds = Annotated[list[ContactRef], Field(max_length=MAX_DEAL_CONTACTS), AfterValidator(_unique)]


class Versioned(Model):
    """What every stored record carries besides its own fields."""

    created_at: datetime
    updated_at: datetime
    created_by: str = Field(description="Subject of the creator")
    version: int = Field(ge=1, description="Goes up by one on every change; send it back to update safely")


class _Patch(Model):
    model_config = ConfigDict(extra="forbid")

    version: DynamoInt | None = Field(
        default=None,
        ge=1,
        description="Optional: the version you read; the update fails with 409 `version_conflict` "
        "if the record changed since. Without it the last write wins.",
    )

    def changes(self) -> dict[str, Any]:
        """The fields the caller sent (null included), without `version`."""
        return {name: getattr(self, name) for name in self.model_fields_set if name != "version"}


# ------------------------------------------------------------------------------- contacts


class ContactEmail(Model):
    model_config = ConfigDict(extra="forbid")

    address: Annotated[EmailStr, AfterValidator(normalize_address)] = Field(
        description="Stored lower-cased; unique across the tenant's contacts", examples=["ada@example.com"]
    )
    primary: bool = False
    label: Text | None = Field(default=None, examples=["work"])


def _one_primary(emails: list[ContactEmail]) -> list[ContactEmail]:
    """No address marked primary: the first one is. More than one: refused."""
    if len({e.address for e in emails}) != len(emails):
        raise ValueError("the same address is listed twice")
    primaries = sum(e.primary for e in emails)
    if primaries > 1:
        raise ValueError("exactly one address may be primary")
    if primaries == 0 and emails:
        emails = [emails[0].model_copy(update={"primary": True}), *emails[1:]]
    return emails


ContactEmails = Annotated[
    list[ContactEmail], Field(min_length=1, max_length=MAX_EMAILS), AfterValidator(_one_primary)
]


class ContactFields(Model):
    model_config = ConfigDict(extra="forbid")

    name: Name = Field(examples=["Ada Lovelace"])
    emails: ContactEmails = Field(
        description="At least one; exactly one is primary (the first, when none is marked)"
    )
    phones: Annotated[list[Phone], Field(max_length=MAX_PHONES)] = Field(default_factory=list)
    title: Text | None = None
    company_id: CompanyRef | None = None
    tags: Tags = Field(default_factory=list)
    owner: Subject | None = Field(default=None, description="Subject of the owning user (default: creator)")
    custom: CustomFields = Field(
        default_factory=dict,
        description=f"Up to {MAX_CUSTOM_FIELDS} custom fields: string (<= {MAX_CUSTOM_VALUE} chars), "
        "boolean, or number (an integer of at most 38 digits, or a finite number of magnitude "
        "1E-130 to 9.9E+125; 422 `number_out_of_range` / `number_not_finite` otherwise)",
    )
    do_not_track: bool = Field(
        default=False,
        description="Never add open or click tracking to mail sent to this contact (issue 17)",
    )


class ContactCreate(ContactFields):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Ada Lovelace",
                    "emails": [{"address": "ada@example.com", "primary": True}],
                    "title": "CTO",
                    "tags": ["vip"],
                    "custom": {"source": "conference", "score": 42},
                }
            ]
        },
    )


class ContactPatch(_Patch):
    name: Name | None = None
    emails: ContactEmails | None = None
    phones: Annotated[list[Phone], Field(max_length=MAX_PHONES)] | None = None
    title: Text | None = None
    company_id: CompanyRef | None = None
    tags: Tags | None = None
    owner: Subject | None = None
    custom: CustomFields | None = None
    do_not_track: bool | None = None


class Contact(ContactFields, Versioned):
    model_config = ConfigDict(extra="forbid")

    contact_id: str

    @property
    def addresses(self) -> list[str]:
        return [e.address for e in self.emails]


# ------------------------------------------------------------------------------- companies


class CompanyFields(Model):
    model_config = ConfigDict(extra="forbid")

    name: Name = Field(examples=["Example Corp"])
    domains: Domains = Field(
        default_factory=list,
        description="Hostnames, stored lower-cased; each unique across the tenant's companies",
        examples=[["example.com"]],
    )
    owner: Subject | None = None


class CompanyCreate(CompanyFields):
    pass


class CompanyPatch(_Patch):
    name: Name | None = None
    domains: Domains | None = None
    owner: Subject | None = None


class Company(CompanyFields, Versioned):
    company_id: str


# ------------------------------------------------------------------------------- pipeline


class PipelineUpdate(Model):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"stages": ["lead", "demo", "proposal", "won", "lost"]}]},
    )

    stages: Annotated[list[Stage], Field(min_length=3, max_length=MAX_STAGES)] = Field(
        description="Ordered deal stages; must include `won` and `lost` (the closed stages)"
    )
    version: DynamoInt | None = Field(default=None, ge=0, description="Optional: the version you read")

    @field_validator("stages")
    @classmethod
    def _closed_and_unique(cls, stages: list[str]) -> list[str]:
        if len(set(stages)) != len(stages):
            raise ValueError("stage names must be unique")
        missing = sorted(CLOSED_STAGES - set(stages))
        if missing:
            raise ValueError(f"the pipeline must include the closed stages: {', '.join(missing)}")
        return stages


class Pipeline(Model):
    stages: list[str]
    closed_stages: list[str] = Field(default_factory=lambda: sorted(CLOSED_STAGES))
    version: int = Field(description="Revision; 0 while the tenant still has the default pipeline")
    updated_at: datetime | None = None
    updated_by: str | None = None


def default_pipeline() -> Pipeline:
    return Pipeline(stages=list(DEFAULT_STAGES), version=0)


def is_open(stage: str) -> bool:
    return stage not in CLOSED_STAGES


# ------------------------------------------------------------------------------- deals


class DealFields(Model):
    model_config = ConfigDict(extra="forbid")

    name: Name = Field(examples=["Example Corp: 50 seats"])
    stage: Stage | None = Field(
        default=None, description="One of the tenant's pipeline stages (default: the first)"
    )
    amount: Amount | None = Field(
        default=None, description="Decimal >= 0 in `currency`; returned as a decimal string"
    )
    currency: Currency | None = Field(default=None, description="ISO 4217 code; required with amount")
    contact_ids: ContactIds = Field(default_factory=list)
    company_id: CompanyRef | None = None
    owner: Subject | None = None
    close_date: date | None = None

    @model_validator(mode="after")
    def _amount_needs_currency(self) -> DealFields:
        if self.amount is not None and self.currency is None:
            raise ValueError("currency is required when amount is set")
        return self


class DealCreate(DealFields):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"name": "Example Corp: 50 seats", "amount": "12500.00", "currency": "EUR"}]
        },
    )


class DealPatch(_Patch):
    name: Name | None = None
    stage: Stage | None = None
    amount: Amount | None = None
    currency: Currency | None = None
    contact_ids: ContactIds | None = None
    company_id: CompanyRef | None = None
    owner: Subject | None = None
    close_date: date | None = None


class Deal(DealFields, Versioned):
    deal_id: str
    stage: str
    open: bool = Field(description="False once the stage is `won` or `lost`")


# ------------------------------------------------------------------------------- campaigns


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"
    DONE = "done"


class CampaignFields(Model):
    """What a campaign sends (`mailbridge.campaigns`): set while `draft` or `paused`; the
    template and account are checked to exist (422 `unknown_template`, `unknown_account`)."""

    model_config = ConfigDict(extra="forbid")

    name: Name = Field(examples=["Spring launch"])
    status: CampaignStatus = CampaignStatus.DRAFT
    template_id: TemplateRef | None = Field(default=None, description="The template (`/templates`) sent")
    audience: Audience | None = Field(default=None, description="Who it goes to, minus the suppression list")
    account_id: AccountRef | None = Field(default=None, description="The tenant's mailbox it is sent from")
    schedule_at: ScheduleAt | None = Field(
        default=None, description="Send from this RFC 3339 instant on (default: when `send` is called)"
    )
    throttle_per_hour: int | None = Field(
        default=None,
        ge=1,
        le=MAX_THROTTLE,
        description="At most this many sends per hour from the account (default and ceiling per "
        "provider: Gmail 83, Microsoft 365 416, IMAP/SMTP 100 by default and 500 at most)",
    )
    variables: Variables = Field(
        default_factory=dict,
        description="Template variables, read as `{{ name }}` (defaults for the template)",
    )

    _variables = field_validator("variables")(check_variables)


class CampaignCreate(CampaignFields):
    pass


class CampaignPatch(_Patch):
    name: Name | None = None
    status: CampaignStatus | None = None
    template_id: TemplateRef | None = None
    audience: Audience | None = None
    account_id: AccountRef | None = None
    schedule_at: ScheduleAt | None = None
    throttle_per_hour: int | None = Field(default=None, ge=1, le=MAX_THROTTLE)
    variables: Variables | None = None

    _variables = field_validator("variables")(check_variables)


class Campaign(CampaignFields, Versioned):
    campaign_id: str


# ------------------------------------------------------------------------------- tasks

MAX_TASK_TEXT = 10_000
MIN_YEAR, MAX_YEAR = 1970, 9998


def _utc(value: datetime) -> datetime:
    """An aware instant in UTC, so stored keys (`{ISO date}#{id}`) sort as time does."""
    try:
        utc = value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("the date is out of range") from exc
    if not MIN_YEAR <= utc.year <= MAX_YEAR:
        raise ValueError(f"the year must be between {MIN_YEAR} and {MAX_YEAR}")
    return utc


# A client's date-time: with a UTC offset (RFC 3339 section 5.6), normalised to UTC; 422 otherwise.
Instant = Annotated[AwareDatetime, AfterValidator(_utc)]
TaskPriority = Literal["low", "normal", "high"]
TaskStatus = Literal["open", "done"]
LongText = Annotated[MultiLine, Field(min_length=1, max_length=MAX_TASK_TEXT)]


class TaskFields(Model):
    model_config = ConfigDict(extra="forbid")

    title: Name = Field(examples=["Call Ada about the renewal"])
    description: LongText | None = None
    due: Instant | None = Field(
        default=None,
        description="When the task is due: an RFC 3339 date-time with an offset, stored in UTC; "
        "`activity.due_soon` is announced once in the 24 hours before it",
        examples=["2026-12-01T09:00:00Z"],
    )
    priority: TaskPriority = "normal"
    assignee: Subject | None = Field(default=None, description="Subject of the user doing it")
    contact_id: ContactRef | None = None
    company_id: CompanyRef | None = None
    deal_id: DealRef | None = None
    email_id: EmailRef | None = None


class TaskCreate(TaskFields):
    """`POST /crm/tasks` (and the automations `task.create` action). Every related id must name
    a record of the tenant (400 `unknown_contact` / `unknown_company` / `unknown_deal` /
    `unknown_email`)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "title": "Call Ada about the renewal",
                    "due": "2026-12-01T09:00:00Z",
                    "priority": "high",
                    "contact_id": "ct_018f2a6b3c4d5e6f7a8b9c0d1e",
                }
            ]
        },
    )


class TaskPatch(_Patch):
    title: Name | None = None
    description: LongText | None = None
    due: Instant | None = None
    priority: TaskPriority | None = None
    assignee: Subject | None = None
    contact_id: ContactRef | None = None
    company_id: CompanyRef | None = None
    deal_id: DealRef | None = None
    email_id: EmailRef | None = None
    status: TaskStatus | None = Field(
        default=None, description="`done` completes the task (`task.completed`, once); `open` reopens it"
    )


class Task(TaskFields, Versioned):
    task_id: str
    status: TaskStatus = "open"
    completed_at: datetime | None = Field(default=None, description="When it was last set `done`")
    due_soon_for: datetime | None = Field(
        default=None,
        description="The due time `activity.due_soon` was announced for (null: not yet); a new "
        "due time may be announced again",
    )


# ------------------------------------------------------------------------------- activities

# Written by users; `task_done` is written when a task with a contact or deal is completed.
# Sent and received mail is on the timelines through email links, never as activity items.
UserActivityKind = Literal["note", "call", "meeting"]
ActivityKind = Literal["note", "call", "meeting", "task_done"]


class ActivityCreate(Model):
    """`POST /crm/activities`: a note, call or meeting about a contact and/or a deal."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "kind": "call",
                    "body": "Discussed the renewal; send a quote by Friday.",
                    "occurred_at": "2026-11-28T15:30:00Z",
                    "contact_id": "ct_018f2a6b3c4d5e6f7a8b9c0d1e",
                }
            ]
        },
    )

    kind: UserActivityKind
    body: LongText
    occurred_at: Instant | None = Field(default=None, description="Default: now")
    contact_id: ContactRef | None = None
    deal_id: DealRef | None = None
    company_id: CompanyRef | None = None

    @model_validator(mode="after")
    def _about_a_record(self) -> ActivityCreate:
        if self.contact_id is None and self.deal_id is None:
            raise ValueError("name a contact_id or a deal_id (or both)")
        return self


class Activity(Model):
    activity_id: str
    kind: ActivityKind
    body: str
    occurred_at: datetime
    contact_id: str | None = None
    deal_id: str | None = None
    company_id: str | None = None
    task_id: str | None = Field(default=None, description="The completed task (`task_done`)")
    created_at: datetime
    created_by: str


# ------------------------------------------------------------------------------- views


class Deleted(Model):
    id: str
    deleted: bool = True


class EmailLookup(Model):
    """What an address resolves to without reading the contact: enough for linking mail."""

    address: str
    contact_id: str
    company_id: str | None = None


class ContactView(Model):
    """`GET /crm/contacts/by-email/{address}`: the contact and what hangs off it."""

    contact: Contact
    company: Company | None = Field(description="The contact's company, if set and still present")
    open_deals: list[Deal] = Field(description="Open deals naming the contact, last updated first")
    last_emails: list[EmailSummary] = Field(
        default_factory=list,
        description="The contact's 5 newest linked emails, newest first",
    )


class ActivityTimelineItem(Model):
    """An activity on a contact's or deal's timeline, at `date` (when it happened)."""

    type: Literal["activity"] = "activity"
    activity_id: str
    kind: ActivityKind
    body: str
    date: datetime = Field(description="`occurred_at` as a UTC instant: where the timeline places it")
    contact_id: str | None = None
    deal_id: str | None = None
    company_id: str | None = None
    task_id: str | None = None
    created_by: str
