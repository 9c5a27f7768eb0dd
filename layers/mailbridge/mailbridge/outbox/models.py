"""What `POST /emails/send` and `POST /uploads` accept and answer, and the OutboxQueue message.

Text that ends up in a mail header (subject, recipient names, file names) is `HeaderText`: no
control characters, also once RFC 2047 decoded (422 `header_injection` / `control_characters`);
bodies are `MultiLine`; media types and Content-IDs use the same field types as compose
(`mailbridge.models.mime_fields`), so an accepted request never fails when the message is built.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, EmailStr, Field, JsonValue, StringConstraints, model_validator

from mailbridge.models.base import Model
from mailbridge.models.fields import HeaderText, MultiLine
from mailbridge.models.mail import SendStatus, TemplateUse
from mailbridge.models.mime_fields import ContentId, MediaType
from mailbridge.tracking.models import TrackingOverride

MAX_RECIPIENTS = 100
MAX_UPLOAD_BYTES = 25 * 1024 * 1024
MAX_INLINE_BYTES = 4 * 1024 * 1024  # base64 of this still fits API Gateway's 10 MB payload
EMAIL_ID = r"^em_[0-9a-f]{26}$"
TEMPLATE_ID = r"^tpl_[0-9a-f]{20}$"
MAX_TEMPLATE_VARIABLES = 50
MAX_TEMPLATE_RECIPIENTS = 50
"""A template send renders, composes and stores one email per recipient inside the request: at
most this many, so the request stays far inside the api function's 29 s."""
TEMPLATE_RESERVED = frozenset({"contact", "company", "deal", "sender", "custom"})
VariableName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
UPLOAD_ID = r"^up_[0-9a-f]{24}$"


class Recipient(Model):
    model_config = ConfigDict(extra="forbid")

    address: EmailStr
    name: Annotated[HeaderText, Field(max_length=200)] | None = None


class InlineAttachment(Model):
    """A small attachment sent in the request itself (base64)."""

    model_config = ConfigDict(extra="forbid")

    filename: Annotated[HeaderText, Field(min_length=1, max_length=255)]
    content_type: MediaType = "application/octet-stream"
    content_base64: str = Field(max_length=MAX_INLINE_BYTES * 4 // 3 + 4)
    inline: bool = False
    content_id: ContentId | None = Field(
        default=None, description="Makes an inline image the HTML can show as cid:<content_id> (RFC 2392)"
    )


class UploadedAttachment(Model):
    """A large attachment uploaded beforehand through `POST /uploads`."""

    model_config = ConfigDict(extra="forbid")

    upload_id: str = Field(pattern=UPLOAD_ID)
    filename: Annotated[HeaderText, Field(min_length=1, max_length=255)]
    content_type: MediaType = "application/octet-stream"


class MessageFields(Model):
    """What a message to send is made of: `POST /emails/send` without `send_at`, and the body of
    a draft (`POST /drafts`, `PUT /drafts/{id}`)."""

    model_config = ConfigDict(extra="forbid")

    account_id: str = Field(pattern=r"^acc_[0-9a-f]{20}$")
    to: list[Recipient] = Field(default_factory=list, max_length=MAX_RECIPIENTS)
    cc: list[Recipient] = Field(default_factory=list, max_length=MAX_RECIPIENTS)
    bcc: list[Recipient] = Field(default_factory=list, max_length=MAX_RECIPIENTS)
    subject: Annotated[HeaderText, Field(max_length=900)] = ""
    text: Annotated[MultiLine, Field(max_length=2_000_000)] | None = None
    html: Annotated[MultiLine, Field(max_length=4_000_000)] | None = None
    reply_to_email_id: str | None = Field(default=None, pattern=EMAIL_ID)
    forward_email_id: str | None = Field(default=None, pattern=EMAIL_ID)
    forward_as: Literal["attachment", "inline"] = "attachment"
    attachments: list[InlineAttachment | UploadedAttachment] = Field(default_factory=list, max_length=20)
    tracking: TrackingOverride | None = Field(
        default=None,
        description="Open/click tracking of this message (default: the tenant's `tracking` feature "
        "flag); HTML messages only, never for a recipient whose contact has `do_not_track`",
    )


class SendRequest(MessageFields):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "account_id": "acc_5f0c1d2e3a4b5c6d7e8f",
                    "to": [{"address": "carol@customer.example", "name": "Carol"}],
                    "subject": "Your quote",
                    "text": "Hi Carol, the quote is attached.",
                    "reply_to_email_id": "em_3f2a9c4b1d0e8f7a6b5c4d3e2f",
                }
            ]
        },
    )

    send_at: datetime | None = Field(default=None, description="Schedule the send (UTC if no offset)")
    template_id: str | None = Field(
        default=None,
        pattern=TEMPLATE_ID,
        description="Send a template (`/templates`) instead of subject/text/html: one email per `to` "
        "recipient (at most 50), rendered for its CRM contact (contact, company, latest open deal), the "
        "account as `sender` and `variables`, in the recipient's A/B variant; no cc or bcc",
    )
    template_version: int | None = Field(
        default=None, ge=1, le=10**9, description="Default: the latest version"
    )
    variables: dict[VariableName, JsonValue] = Field(
        default_factory=dict,
        max_length=MAX_TEMPLATE_VARIABLES,
        description="Template variables, read as `{{ name }}` (not contact, company, deal, sender, custom)",
    )

    @model_validator(mode="after")
    def _rules(self) -> SendRequest:
        count = len(self.to) + len(self.cc) + len(self.bcc)
        if count == 0:
            raise ValueError("at least one recipient (to, cc or bcc) is required")
        if count > MAX_RECIPIENTS:
            raise ValueError(f"at most {MAX_RECIPIENTS} recipients in total")
        if self.template_id is not None:
            if self.subject or self.text or self.html:
                raise ValueError("template_id replaces subject, text and html")
            if self.cc or self.bcc or not self.to:
                raise ValueError("a template goes to `to` recipients (one email each), without cc or bcc")
            if len(self.to) > MAX_TEMPLATE_RECIPIENTS:
                raise ValueError(f"a template send has at most {MAX_TEMPLATE_RECIPIENTS} recipients")
            if TEMPLATE_RESERVED & set(self.variables):
                raise ValueError("variables cannot be named contact, company, deal, sender or custom")
        elif self.template_version is not None or self.variables:
            raise ValueError("template_version and variables go with template_id")
        elif not (self.text or self.html):
            raise ValueError("text or html is required")
        if self.reply_to_email_id and self.forward_email_id:
            raise ValueError("reply_to_email_id and forward_email_id cannot be combined")
        return self


class RecipientAccepted(Model):
    """One email of a template send (one per `to` recipient)."""

    address: str
    email_id: str
    thread_id: str
    message_id: str
    template: TemplateUse


class SendAccepted(Model):
    email_id: str
    thread_id: str
    status: SendStatus
    send_at: datetime | None = None
    message_id: str
    template: TemplateUse | None = Field(default=None, description="With `template_id`: the first email's")
    recipients: list[RecipientAccepted] = Field(
        default_factory=list, description="With `template_id`: every email queued, one per `to` recipient"
    )


class UploadRequest(Model):
    model_config = ConfigDict(extra="forbid")

    filename: Annotated[HeaderText, Field(min_length=1, max_length=255)]
    content_type: MediaType = "application/octet-stream"
    size: int = Field(ge=1, le=MAX_UPLOAD_BYTES)


class UploadTicket(Model):
    """How to upload the file: an S3 presigned POST (an HTML-form upload, multipart/form-data).

    Send every entry of `fields` unchanged as form fields, then the file as the last part, named
    `file`, to `url`. S3 refuses the upload after `expires_in` seconds, for a file of more than
    `max_size` bytes (the declared `size`), or with any other key or Content-Type
    (docs.aws.amazon.com/AmazonS3/latest/API/RESTObjectPOST.html). Then name `upload_id` in an
    attachment of `POST /emails/send`.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "upload_id": "up_5d0c1f7e9a2b4c6d8e0f1a2b",
                    "method": "POST",
                    "url": "https://mailbridge-dev-mail.s3.amazonaws.com/",
                    "fields": {
                        "Content-Type": "application/pdf",
                        "x-amz-meta-declared-size": "482113",
                        "key": "uploads/acme/up_5d0c1f7e9a2b4c6d8e0f1a2b",
                        "x-amz-algorithm": "AWS4-HMAC-SHA256",
                        "x-amz-credential": "ASIA.../20261121/eu-west-1/s3/aws4_request",
                        "x-amz-date": "20261121T091403Z",
                        "x-amz-security-token": "IQoJb3JpZ2lu...",
                        "policy": "eyJleHBpcmF0aW9uIjogIjIwMjYtMTEtMjFUMDk6MTk6MDNaIiwgLi4ufQ==",
                        "x-amz-signature": "1f3b...",
                    },
                    "expires_in": 300,
                    "max_size": 482113,
                }
            ]
        }
    )

    upload_id: str = Field(description="Name it in `attachments[].upload_id` of `POST /emails/send`")
    method: Literal["POST"] = Field(default="POST", description="Always POST (multipart/form-data)")
    url: str = Field(description="Where to POST the form")
    fields: dict[str, str] = Field(
        description="Form fields to send unchanged, before the file part (named `file`)"
    )
    expires_in: int = Field(description="Seconds from now during which S3 accepts the upload")
    max_size: int = Field(description="Bytes: the declared size; S3 refuses a larger file")


class OutboxMessage(Model):
    kind: Literal["send"] = "send"
    tenant_id: str
    email_id: str


class DraftSyncMessage(Model):
    """OutboxQueue work: bring the provider's copy of a draft in step with the stored draft
    (`mailbridge.drafts.provider`); `account_id` names the mailbox even once the draft is gone."""

    kind: Literal["draft"] = "draft"
    tenant_id: str
    draft_id: str
    account_id: str
