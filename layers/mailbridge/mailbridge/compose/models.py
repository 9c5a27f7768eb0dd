"""What the composer takes (a draft, the message it answers) and what it gives back.

Structural rules (address syntax, recipient count, "some body", media types and Content-IDs, the
latter two with the same field types as the API's request models) are pydantic validation.
Rules about content the composer has to look at (a header value that decodes to a line break,
the encoded size) are checked by `compose_message` and raised as `Invalid` with a code.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import ConfigDict, Field, field_validator, model_validator

from mailbridge.models.base import Model
from mailbridge.models.email import EmailAddress, ParsedMessage
from mailbridge.models.mime_fields import ContentId, MediaType

MAX_RECIPIENTS = 100
MAX_ATTACHMENTS = 100
MAX_REFERENCES = 20

# RFC 5322 msg-id without the brackets: id-left "@" id-right, both printable ASCII, no specials
# that would end the header or the bracket.
ListHeaderName = Literal["List-Unsubscribe", "List-Unsubscribe-Post"]
LIST_HEADER_NAMES: tuple[ListHeaderName, ...] = ("List-Unsubscribe", "List-Unsubscribe-Post")
_LIST_URI = re.compile(r"<(?:https://|mailto:)[!-;=?-~]{1,800}>")
ONE_CLICK = "List-Unsubscribe=One-Click"


def check_list_headers(values: dict[ListHeaderName, str]) -> dict[ListHeaderName, str]:
    """`List-Unsubscribe`: one or more `<https://...>` / `<mailto:...>` URIs, comma separated
    (RFC 2369 section 3.2; printable ASCII without spaces inside the brackets, 900 characters at
    most). `List-Unsubscribe-Post`: exactly `List-Unsubscribe=One-Click`, and only beside a
    `List-Unsubscribe` holding an https URI (RFC 8058 section 3.1). ValueError otherwise."""
    unsubscribe = values.get("List-Unsubscribe")
    if unsubscribe is not None:
        uris = [part.strip() for part in unsubscribe.split(",")]
        if len(unsubscribe) > 900 or not all(_LIST_URI.fullmatch(uri) for uri in uris):
            raise ValueError("List-Unsubscribe must be <https://...> or <mailto:...> URIs")
    post = values.get("List-Unsubscribe-Post")
    if post is not None:
        if post != ONE_CLICK:
            raise ValueError(f"List-Unsubscribe-Post must be {ONE_CLICK!r}")
        if unsubscribe is None or "<https://" not in unsubscribe:
            raise ValueError("List-Unsubscribe-Post needs an https List-Unsubscribe URI")
    return values


_MSG_ID = re.compile(r"<?([!-;=?-~]{1,200}@[!-;=?-~]{1,200})>?")

Mode = Literal["new", "reply", "forward"]
ForwardAs = Literal["attachment", "inline"]


def normalize_address(address: str) -> str:
    """Syntax-checked, domain lower-cased (IDNA A-label when the local part is ASCII); no DNS.

    Raises ValueError (pydantic turns it into a validation error) without echoing the address.
    """
    try:
        checked = validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from None
    return checked.ascii_email or checked.normalized


def _normalized(value: EmailAddress) -> EmailAddress:
    address = normalize_address(value.address)
    return value if address == value.address else EmailAddress(name=value.name, address=address)


def normalize_message_id(value: str) -> str:
    """A Message-ID as `left@right`, brackets stripped; ValueError when it is not one."""
    match = _MSG_ID.fullmatch(value.strip())
    if match is None:
        raise ValueError("not a valid Message-ID (expected <left@right>)")
    return match.group(1)


class OutgoingAttachment(Model):
    """A file to attach; `inline` + `content_id` make it an image the HTML can show as cid:."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    filename: str = Field(min_length=1, max_length=255)
    content_type: MediaType = "application/octet-stream"
    data: bytes
    inline: bool = False
    content_id: ContentId | None = None


ItipMethod = Literal["PUBLISH", "REQUEST", "REPLY", "ADD", "CANCEL", "REFRESH", "COUNTER", "DECLINECOUNTER"]


class CalendarBody(Model):
    """An iTIP message (RFC 5546) carried in the mail itself (iMIP, RFC 6047 section 2.4): the
    last alternative of the body, `text/calendar; method=...`, whose METHOD must be `method`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: ItipMethod
    ics: str = Field(min_length=1, max_length=5_000_000)


class Draft(Model):
    """A message to send. `message_id` (without brackets) makes a retried send reuse its id."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    from_: EmailAddress = Field(alias="from")
    to: list[EmailAddress] = Field(default_factory=list)
    cc: list[EmailAddress] = Field(default_factory=list)
    bcc: list[EmailAddress] = Field(default_factory=list)
    reply_to: list[EmailAddress] = Field(default_factory=list, max_length=10)
    subject: str = Field(default="", max_length=998)
    text: str | None = None
    html: str | None = None
    attachments: list[OutgoingAttachment] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)
    mode: Mode = "new"
    forward_as: ForwardAs = "attachment"
    message_id: str | None = None
    calendar: CalendarBody | None = None
    # RFC 3834 section 5: `Auto-Submitted: auto-generated` on mail a process writes, not a person
    # (the notification digest); mail tools and our own nudges expect no reply to it.
    auto_submitted: Literal["auto-generated"] | None = None
    # RFC 2369 section 3.2 `List-Unsubscribe` and RFC 8058 section 3.1 `List-Unsubscribe-Post`
    # (campaign mail, `mailbridge.campaigns`): these two names only, values checked below.
    list_headers: dict[ListHeaderName, str] = Field(default_factory=dict)

    @field_validator("list_headers")
    @classmethod
    def _valid_list_headers(cls, values: dict[ListHeaderName, str]) -> dict[ListHeaderName, str]:
        return check_list_headers(values)

    @field_validator("from_")
    @classmethod
    def _valid_sender(cls, value: EmailAddress) -> EmailAddress:
        return _normalized(value)

    @field_validator("to", "cc", "bcc", "reply_to")
    @classmethod
    def _valid_addresses(cls, values: list[EmailAddress]) -> list[EmailAddress]:
        return [_normalized(value) for value in values]

    @field_validator("message_id")
    @classmethod
    def _valid_message_id(cls, value: str | None) -> str | None:
        return normalize_message_id(value) if value is not None else None

    @model_validator(mode="after")
    def _sendable(self) -> Draft:
        total = len(self.to) + len(self.cc) + len(self.bcc)
        if total == 0:
            raise ValueError("a message needs at least one recipient (to, cc or bcc)")
        if total > MAX_RECIPIENTS:
            raise ValueError(f"at most {MAX_RECIPIENTS} recipients in total (to + cc + bcc)")
        if self.text is None and self.html is None:
            raise ValueError("a message needs a text or an html body")
        return self


class OriginalMessage(Model):
    """What the caller knows of the message replied to or forwarded.

    `raw` is needed to forward as an attachment; the rest feeds threading headers, the subject
    and the quoted block of an inline forward.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    message_id: str | None = None
    references: list[str] = Field(default_factory=list)
    subject: str | None = None
    from_: EmailAddress | None = Field(default=None, alias="from")
    to: list[EmailAddress] = Field(default_factory=list)
    cc: list[EmailAddress] = Field(default_factory=list)
    date: datetime | None = None
    text: str | None = None
    raw: bytes | None = None

    @classmethod
    def from_parsed(cls, parsed: ParsedMessage, raw: bytes | None = None) -> OriginalMessage:
        """From what `mailbridge.mime.normalize` made of the stored message."""
        return cls(
            message_id=parsed.message_id,
            references=parsed.references,
            subject=parsed.subject,
            from_=parsed.from_[0] if parsed.from_ else None,
            to=parsed.to,
            cc=parsed.cc,
            date=parsed.date,
            text=parsed.text_body,
            raw=raw,
        )


class ComposedMessage(Model):
    """Ready to send: `raw` is the exact byte string for SMTP DATA (CRLF line ends).

    `message_id` is without brackets (as `ParsedMessage.message_id`); `recipients` is the SMTP
    envelope: to + cc + bcc, deduplicated, domains lower-cased. Bcc addresses are only here.
    """

    model_config = ConfigDict(frozen=True)

    raw: bytes
    message_id: str
    envelope_from: str
    recipients: list[str]
    subject: str
