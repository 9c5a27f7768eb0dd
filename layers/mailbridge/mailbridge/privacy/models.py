"""GDPR erase and export (issue 19 point 5): the request, the job a client follows, the queue message.

Rights served: erasure (GDPR Art. 17) and access / portability (Art. 15, 20) of one data subject,
named by an e-mail address or a CRM contact.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, EmailStr, Field, model_validator

from mailbridge.crm.models import ContactRef, normalize_address
from mailbridge.models.base import Model

JOB_ID = re.compile(r"pj_[0-9a-f]{26}")
JobKind = Literal["erase", "export", "retention"]
JobState = Literal["queued", "running", "done"]
# Synced external CRMs and what this job did there (the Salesforce/HubSpot adapters of issue 18
# are not wired to privacy requests yet: every provider reports `not_synced`).
EXTERNAL_CRMS = ("salesforce", "hubspot")
ExternalOutcome = Literal["not_synced", "erased", "exported"]


def _job_id(value: str) -> str:
    if not JOB_ID.fullmatch(value):
        raise ValueError("not a privacy job id (pj_ and 26 hex digits)")
    return value


JobId = Annotated[str, AfterValidator(_job_id)]


class PrivacySubject(Model):
    """Whom the request is about: exactly one of `email` and `contact_id`."""

    model_config = ConfigDict(extra="forbid")

    email: Annotated[EmailStr, AfterValidator(normalize_address), Field(max_length=254)] | None = Field(
        default=None,
        description="An e-mail address (RFC 5322 addr-spec, compared lower-cased). When it is a "
        "CRM contact's address, the contact and all its addresses are covered too.",
        examples=["ada@example.com"],
    )
    contact_id: ContactRef | None = Field(
        default=None,
        description="A CRM contact: the contact and every address it lists.",
        examples=["ct_018f2a6b3c4d5e6f7a8b9c0d1e"],
    )

    @model_validator(mode="after")
    def _one(self) -> PrivacySubject:
        if (self.email is None) == (self.contact_id is None):
            raise ValueError("name either an email or a contact_id")
        return self


class PrivacyJob(Model):
    """A privacy job as `GET /privacy/jobs/{job_id}` shows it."""

    job_id: str = Field(examples=["pj_018f2a6b3c4d5e6f7a8b9c0d1e"])
    kind: JobKind
    state: JobState = Field(description="queued, running (in chunks on the tasks queue), done")
    phase: str = Field(
        description="What runs now: collect (find the emails and drafts naming the subject), "
        "objects:{area} (the bucket), table:{kind} (a table), package (export), finish, done",
        examples=["table:links"],
    )
    counts: dict[str, int] = Field(
        default_factory=dict,
        description="Per kind, what the job did so far: `{kind}.deleted`, `{kind}.scrubbed` "
        "(the record stays, the subject is taken out of it), `{kind}.exported`, `objects.deleted`, "
        "`objects.exported`, `targets` (emails and drafts naming the subject)",
        examples=[{"targets": 3, "emails.deleted": 9, "links.deleted": 4, "crm.scrubbed": 1}],
    )
    external_crms: dict[str, ExternalOutcome] = Field(
        default_factory=dict, examples=[{"salesforce": "not_synced", "hubspot": "not_synced"}]
    )
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    download_url: str | None = Field(
        default=None, description="Export, when done: a presigned GET of the zip archive (short-lived)"
    )
    download_expires_at: datetime | None = None


class RetentionSetting(Model):
    """`PUT /settings/retention`: how long the tenant's mail is kept."""

    model_config = ConfigDict(extra="forbid")

    retention_days: int | None = Field(
        ge=1,
        le=36500,
        description="Mail (by its Date) older than this many days is deleted with its derived "
        "records and stored objects by the daily retention sweep; null keeps mail for ever",
        examples=[730],
    )


class Retention(RetentionSetting):
    """The tenant's retention setting and its latest sweep (a job of kind `retention`)."""

    updated_at: datetime | None = None
    last_job_id: str | None = Field(default=None, description="GET /privacy/jobs/{job_id} shows it")


class RetentionRun(Model):
    """The daily RetentionSchedule's input to the tasks function: one sweep job per tenant."""

    kind: Literal["retention_run"]


class PrivacyStep(Model):
    """A tasks-queue message: run step `step` of a privacy job."""

    kind: Literal["privacy_step"] = "privacy_step"
    tenant_id: str = Field(min_length=1, max_length=64)
    job_id: JobId
    step: int = Field(ge=0)
