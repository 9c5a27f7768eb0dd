"""The normalized message: what `mailbridge.mime.normalize` makes of raw MIME bytes.

Everything here is JSON-serializable and free of bodies' raw bytes: attachment bytes travel
separately (the caller stores them in S3) and the model keeps their metadata and sha256.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field

from mailbridge.models.base import Model

DateSource = Literal["header", "internal", "none"]


class EmailAddress(Model):
    """One mailbox; the domain is lower-cased, the local part kept as sent (it may be case-sensitive)."""

    model_config = ConfigDict(frozen=True)

    name: str | None = None
    address: str


class AttachmentMeta(Model):
    model_config = ConfigDict(frozen=True)

    # Stable within one message (position in the part walk), so re-normalizing gives the same ids.
    id: str
    filename: str | None = None
    content_type: str
    size: int
    content_id: str | None = None
    inline: bool = False
    sha256: str
    # Set when the attachment came out of a TNEF (winmail.dat) container.
    from_tnef: bool = False


class CalendarPart(Model):
    model_config = ConfigDict(frozen=True)

    method: str | None = None
    ics: str


class BounceRecipient(Model):
    model_config = ConfigDict(frozen=True)

    final_recipient: str | None = None
    original_recipient: str | None = None
    action: str | None = None
    status: str | None = None
    diagnostic_code: str | None = None
    remote_mta: str | None = None


class BounceReport(Model):
    """A multipart/report; report-type=delivery-status (RFC 3464)."""

    model_config = ConfigDict(frozen=True)

    reporting_mta: str | None = None
    original_envelope_id: str | None = None
    recipients: list[BounceRecipient] = Field(default_factory=list)
    original_message_id: str | None = None


class FeedbackReport(Model):
    """A multipart/report; report-type=feedback-report (RFC 5965, the Abuse Reporting Format)."""

    model_config = ConfigDict(frozen=True)

    feedback_type: str | None = Field(default=None, description="`Feedback-Type`: abuse, fraud, ...")
    original_rcpt_to: list[str] = Field(default_factory=list, description="`Original-Rcpt-To` fields")
    original_to: list[str] = Field(default_factory=list, description="`To` of the returned message")
    original_message_id: str | None = None


class ListInfo(Model):
    """RFC 2369 / 2919 / 8058 list headers; the unsubscribe targets are the bracketed URIs in order."""

    model_config = ConfigDict(frozen=True)

    list_id: str | None = None
    list_unsubscribe: list[str] = Field(default_factory=list)
    list_unsubscribe_post: str | None = None
    list_post: str | None = None
    list_archive: str | None = None
    list_help: str | None = None


class ParsedMessage(Model):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    message_id: str | None = None
    in_reply_to: str | None = None
    references: list[str] = Field(default_factory=list)
    subject: str | None = None

    from_: list[EmailAddress] = Field(default_factory=list, alias="from")
    sender: EmailAddress | None = None
    reply_to: list[EmailAddress] = Field(default_factory=list)
    to: list[EmailAddress] = Field(default_factory=list)
    cc: list[EmailAddress] = Field(default_factory=list)
    bcc: list[EmailAddress] = Field(default_factory=list)

    # UTC and aware; None only when the message has no usable Date and the caller gave no internal date.
    date: datetime | None = None
    date_source: DateSource = "none"

    text_body: str | None = None
    html_body: str | None = None
    snippet: str = ""

    attachments: list[AttachmentMeta] = Field(default_factory=list)
    calendar: CalendarPart | None = None
    bounce: BounceReport | None = None
    feedback: FeedbackReport | None = None

    auto_submitted: str | None = None
    precedence: str | None = None
    # `list_` because a field called `list` would shadow the builtin in the annotations below.
    list_: ListInfo | None = Field(default=None, alias="list")
    return_path: str | None = None
    # A fixed allow-list of further headers categorization looks at (X-Auto-Response-Suppress, ...).
    headers_of_interest: dict[str, str] = Field(default_factory=dict)

    size: int
    # Parser defects and our own fallbacks, by name only (never values from the message).
    defects: list[str] = Field(default_factory=list)
