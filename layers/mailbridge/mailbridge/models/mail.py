"""Stored mail: one `Email` per message per tenant, found in one or more mailbox `Location`s."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field

from mailbridge.ai.models import Category
from mailbridge.models.base import Model
from mailbridge.models.email import (
    AttachmentMeta,
    BounceReport,
    CalendarPart,
    EmailAddress,
    ListInfo,
)
from mailbridge.tracking.models import Engagement

Direction = Literal["inbound", "outbound"]
SendStatus = Literal["queued", "scheduled", "sending", "sent", "failed", "cancelled"]


class SendFailure(Model):
    """Why an outbound email failed; SMTP replies are kept as the server gave them."""

    code: str = Field(examples=["smtp_rejected"])
    message: str
    smtp_code: int | None = None
    smtp_reply: str | None = None


class Location(Model):
    """Where a mailbox holds the message: (account, folder, UIDVALIDITY, UID) is the provider id."""

    account_id: str
    folder: str
    uidvalidity: int
    uid: int
    flags: list[str] = Field(default_factory=list)
    modseq: int | None = None


class EmailSummary(Model):
    """A row of `GET /emails`."""

    email_id: str
    thread_id: str
    subject: str | None
    from_: list[EmailAddress] = Field(alias="from", serialization_alias="from")
    to: list[EmailAddress]
    date: datetime
    snippet: str
    read: bool
    flagged: bool
    answered: bool
    has_attachments: bool
    direction: Direction
    accounts: list[str]
    folders: list[str]
    deleted: bool = False
    status: SendStatus | None = Field(default=None, description="Outbound mail sent through mailbridge only")
    send_at: datetime | None = None
    failure: SendFailure | None = None
    category: Category | None = Field(
        default=None, description="AI category (mailbridge.ai); null until categorized or with ai off"
    )
    snoozed_until: datetime | None = Field(
        default=None, description="Snoozed (hidden from default listings) until this time, UTC"
    )

    model_config = ConfigDict(populate_by_name=True)


class TemplateUse(Model):
    """Which template version and A/B variant an outbound email was rendered from."""

    template_id: str
    version: int
    variant: str | None = None


class Email(EmailSummary):
    """`GET /emails/{id}`: everything but the raw bytes (those come from a presigned URL)."""

    message_id: str | None
    in_reply_to: str | None
    references: list[str]
    sender: EmailAddress | None
    reply_to: list[EmailAddress]
    cc: list[EmailAddress]
    bcc: list[EmailAddress]
    date_source: str
    text_body: str | None
    html_body: str | None
    reply_text: str | None = Field(
        default=None,
        description="The new text of a reply: `text_body` without the quoted history and the "
        "signature (mailbridge.ai.reply); null when there is none",
    )
    signature: str | None = Field(
        default=None,
        description="The sender's signature block (after the RFC 3676 4.3 `-- ` delimiter, a "
        "mobile sign-off or a closer such as `Best regards,`); null when none is found",
    )
    attachments: list[AttachmentMeta]
    calendar: CalendarPart | None
    bounce: BounceReport | None
    auto_submitted: str | None
    precedence: str | None
    list_: ListInfo | None = Field(default=None, alias="list", serialization_alias="list")
    size: int
    locations: list[Location] = Field(default_factory=list)
    category_source: Literal["model", "rule", "user"] | None = Field(
        default=None, description="Who set `category`: the model, a rule learnt from corrections, a user"
    )
    is_spam: bool | None = Field(default=None, description="AI: null until categorized")
    is_bulk: bool | None = None
    is_automated: bool | None = None
    needs_reply: bool | None = None
    action_requested: bool | None = None
    is_lead: bool | None = None
    confidence: float | None = Field(default=None, ge=0, le=1)
    reasons: list[str] = Field(
        default_factory=list,
        description="What decided the category (`header:...`, `model:...`, `rule:sender:<id>`)",
    )
    template: TemplateUse | None = Field(
        default=None, description="Sent with `template_id`: the template version and A/B variant used"
    )
    engagement: Engagement | None = Field(
        default=None,
        description="Outbound mail sent with open/click tracking: human and machine opens, human "
        "clicks per link, replies and the score (mailbridge.tracking.models.Engagement)",
    )


class ThreadView(Model):
    thread_id: str
    subject: str | None
    participants: list[EmailAddress]
    messages: list[EmailSummary]
    next_cursor: str | None = None


class ThreadSummary(Model):
    """A row of `GET /threads`: one conversation, placed by its newest email the filters select."""

    thread_id: str
    subject: str | None = Field(description="The subject of the thread's first email")
    participants: list[EmailAddress] = Field(description="From, To and Cc of its emails, each address once")
    message_count: int = Field(description="Emails in the thread a mailbox still holds")
    unread_count: int = Field(description="Of those, the unread ones")
    last_email_id: str = Field(description="The newest email of the thread the filters select")
    last_message_date: datetime = Field(description="That email's date (the listing's order)")
    snippet: str = Field(description="That email's snippet")


class PresignedUrl(Model):
    url: str
    expires_in: int = Field(description="Seconds the URL stays valid")
    filename: str | None = None
    content_type: str | None = None
