"""What the `/drafts` routes accept and answer.

A draft's body is the body of `POST /emails/send` without `send_at` (`MessageFields`: new mail,
replies with `reply_to_email_id`, forwards with `forward_email_id`, attachments inline or by
`upload_id`), with the same field checks, but it may be unfinished: no recipient and no text yet
are fine until it is sent (`POST /drafts/{id}/send` then answers 422 `draft_incomplete`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from mailbridge.models.base import Model
from mailbridge.outbox.models import MAX_RECIPIENTS, MessageFields

DRAFT_ID = r"dr_[0-9a-f]{26}"


class DraftBody(MessageFields):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "account_id": "acc_5f0c1d2e3a4b5c6d7e8f",
                    "to": [{"address": "carol@customer.example", "name": "Carol"}],
                    "subject": "Your quote",
                    "text": "Hi Carol, the quote is",
                    "reply_to_email_id": "em_3f2a9c4b1d0e8f7a6b5c4d3e2f",
                }
            ]
        },
    )

    @model_validator(mode="after")
    def _rules(self) -> DraftBody:
        if len(self.to) + len(self.cc) + len(self.bcc) > MAX_RECIPIENTS:
            raise ValueError(f"at most {MAX_RECIPIENTS} recipients in total")
        if self.reply_to_email_id and self.forward_email_id:
            raise ValueError("reply_to_email_id and forward_email_id cannot be combined")
        return self


class Draft(DraftBody):
    """A stored draft: its body, and `version` to send back in `If-Match` when changing it."""

    model_config = ConfigDict(extra="forbid")

    draft_id: str = Field(pattern=f"^{DRAFT_ID}$")
    version: int = Field(description="Goes up by one on every change; `If-Match` names it")
    created_at: datetime
    updated_at: datetime
    origin: Literal["mailbridge", "provider"] = Field(
        default="mailbridge",
        description="`provider`: started in the user's mail client and picked up by the sync",
    )
    synced: bool = Field(
        description="The mailbox's copy (IMAP Drafts, Gmail draft, Outlook draft) holds this version"
    )


class DraftSummary(Model):
    draft_id: str
    account_id: str
    version: int
    subject: str
    to: list[str] = Field(description="Recipient addresses (To)")
    updated_at: datetime
    synced: bool


class DraftSend(Model):
    """`POST /drafts/{id}/send`: now, or at `send_at` (at least a minute, at most a year ahead)."""

    model_config = ConfigDict(extra="forbid")

    send_at: datetime | None = Field(default=None, description="Schedule the send (UTC if no offset)")


class DraftDeleted(Model):
    draft_id: str
    status: Literal["deleted"] = "deleted"
