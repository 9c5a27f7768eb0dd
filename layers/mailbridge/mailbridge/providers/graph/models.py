"""Typed Graph results (property names as in Graph v1.0's `message` and `mailFolder` resources,
snake_case here). Only the fields the adapter's callers read are modelled; the rest is ignored."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field

from mailbridge.models.base import Model


class _Graph(Model):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class MailFolder(_Graph):
    """GET /me/mailFolders/{id | well-known name} (resources/mailfolder)."""

    id: str
    display_name: str = Field(default="", alias="displayName")
    total_item_count: int = Field(default=0, alias="totalItemCount")
    unread_item_count: int = Field(default=0, alias="unreadItemCount")


class DeltaMessage(_Graph):
    """One entry of a `messages/delta` page: a message as it is now, or `removed` (`@removed`
    present: deleted or moved out of the folder). `id` is the immutable id when asked for."""

    id: str
    removed: bool = False
    conversation_id: str | None = Field(default=None, alias="conversationId")
    internet_message_id: str | None = Field(default=None, alias="internetMessageId")
    is_read: bool | None = Field(default=None, alias="isRead")
    flag_status: str | None = Field(default=None, description="notFlagged | flagged | complete")
    received: datetime | None = Field(default=None, alias="receivedDateTime")
    parent_folder_id: str | None = Field(default=None, alias="parentFolderId")

    @classmethod
    def from_graph(cls, entry: dict[str, Any]) -> DeltaMessage:
        flag = entry.get("flag")
        # isRead as the string "true" (Graph's own delta sample) validates as True too.
        return cls.model_validate(
            {
                **entry,
                "removed": "@removed" in entry,
                "flag_status": flag.get("flagStatus") if isinstance(flag, dict) else None,
            }
        )

    @property
    def flags(self) -> tuple[str, ...]:
        """As IMAP system flags, for the shared ingest: `\\Seen`, `\\Flagged`."""
        out: list[str] = []
        if self.is_read:
            out.append("\\Seen")
        if self.flag_status == "flagged":
            out.append("\\Flagged")
        return tuple(out)


@dataclass(frozen=True)
class DeltaPage:
    """One delta response. Exactly one of `next_link` (more pages in this round) and
    `delta_link` (the round is complete: the cursor for the next one) is set."""

    messages: tuple[DeltaMessage, ...]
    next_link: str | None
    delta_link: str | None


@dataclass
class MimeBatch:
    """What `get_mime_many` fetched: RFC 5322 bytes by id; `missing` were gone; `throttled`
    were refused for rate inside the batch (ask again after `retry_after` seconds)."""

    mime: dict[str, bytes] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    throttled: list[str] = field(default_factory=list)
    retry_after: float | None = None
