"""Typed Gmail API results (field names as in the gmail.v1 discovery document, snake_case here).

Gmail serialises int64 values (historyId, internalDate, expiration) as JSON strings; they are
ints here. Only the fields the adapter's callers read are modelled; the rest is ignored.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import AliasChoices, ConfigDict, Field

from mailbridge.models.base import Model


class _Gmail(Model):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class Profile(_Gmail):
    """users.getProfile."""

    email_address: str = Field(alias="emailAddress")
    messages_total: int = Field(default=0, alias="messagesTotal")
    threads_total: int = Field(default=0, alias="threadsTotal")
    history_id: int = Field(alias="historyId")


class MessageRef(_Gmail):
    """A message as lists and history records name it."""

    id: str
    thread_id: str = Field(alias="threadId")
    label_ids: tuple[str, ...] = Field(default=(), alias="labelIds")


class Message(_Gmail):
    """users.messages.get in format `minimal` or `metadata` (ids, labels, dates, headers)."""

    id: str
    thread_id: str = Field(alias="threadId")
    label_ids: tuple[str, ...] = Field(default=(), alias="labelIds")
    history_id: int | None = Field(default=None, alias="historyId")
    internal_date: int | None = Field(default=None, alias="internalDate", description="epoch ms")
    size_estimate: int | None = Field(default=None, alias="sizeEstimate")
    snippet: str | None = None
    headers: tuple[tuple[str, str], ...] = Field(
        default=(), description="format=metadata: (name, value) in order"
    )

    @property
    def received_at(self) -> datetime | None:
        return datetime.fromtimestamp(self.internal_date / 1000, UTC) if self.internal_date else None


class RawMessage(Message):
    """users.messages.get?format=raw: the RFC 5322 bytes, base64url-decoded."""

    raw: bytes = b""


class MessageList(_Gmail):
    """Every page of users.messages.list, joined."""

    messages: tuple[MessageRef, ...] = ()
    result_size_estimate: int = Field(default=0, alias="resultSizeEstimate")


class LabelChange(_Gmail):
    message: MessageRef
    label_ids: tuple[str, ...] = Field(default=(), alias="labelIds")


class MessageAdded(_Gmail):
    message: MessageRef


class HistoryRecord(_Gmail):
    """One history record (users.history.list): its id and what changed."""

    id: int
    messages_added: tuple[MessageAdded, ...] = Field(default=(), alias="messagesAdded")
    messages_deleted: tuple[MessageAdded, ...] = Field(default=(), alias="messagesDeleted")
    labels_added: tuple[LabelChange, ...] = Field(default=(), alias="labelsAdded")
    labels_removed: tuple[LabelChange, ...] = Field(default=(), alias="labelsRemoved")


class History(_Gmail):
    """Every page of users.history.list from a startHistoryId, joined; `history_id` is the
    mailbox's current historyId (the cursor to store once every page was read)."""

    records: tuple[HistoryRecord, ...] = ()
    history_id: int = Field(validation_alias=AliasChoices("historyId", "history_id"))


class Watch(_Gmail):
    """users.watch: the historyId now and when the watch ends (renew before; Google says daily)."""

    history_id: int = Field(alias="historyId")
    expiration: int = Field(description="epoch ms")

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.expiration / 1000, UTC)


class Label(_Gmail):
    """users.labels.list."""

    id: str
    name: str
    type: str = "user"


class DraftRef(_Gmail):
    """users.drafts.create / update: the draft's immutable id and its current message."""

    id: str
    message: Sent


class Sent(_Gmail):
    """users.messages.send: the stored copy's ids and labels (SENT)."""

    id: str
    thread_id: str = Field(alias="threadId")
    label_ids: tuple[str, ...] = Field(default=(), alias="labelIds")


DraftRef.model_rebuild()
