"""What the IMAP adapter returns: plain immutable records, no protocol types."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum


class Flag(StrEnum):
    """System flags the adapter sets (other flags and keywords are returned as read)."""

    SEEN = "\\Seen"
    FLAGGED = "\\Flagged"
    ANSWERED = "\\Answered"
    DRAFT = "\\Draft"


class SpecialUse(StrEnum):
    """RFC 6154 SPECIAL-USE attributes."""

    ALL = "\\All"
    ARCHIVE = "\\Archive"
    DRAFTS = "\\Drafts"
    FLAGGED = "\\Flagged"
    JUNK = "\\Junk"
    SENT = "\\Sent"
    TRASH = "\\Trash"


@dataclass(frozen=True, slots=True)
class Folder:
    name: str
    delimiter: str | None
    attributes: frozenset[str]

    @property
    def selectable(self) -> bool:
        lowered = {a.lower() for a in self.attributes}
        return "\\noselect" not in lowered and "\\nonexistent" not in lowered

    @property
    def special_use(self) -> SpecialUse | None:
        by_lower = {use.value.lower(): use for use in SpecialUse}
        for attribute in self.attributes:
            if (use := by_lower.get(attribute.lower())) is not None:
                return use
        return None

    @property
    def leaf(self) -> str:
        return self.name.rsplit(self.delimiter, 1)[-1] if self.delimiter else self.name


@dataclass(frozen=True, slots=True)
class FolderStatus:
    name: str
    uidvalidity: int
    uidnext: int
    messages: int
    highestmodseq: int | None  # None when the server has no CONDSTORE


@dataclass(frozen=True, slots=True)
class FetchedMessage:
    uid: int
    flags: tuple[str, ...]
    internal_date: dt.datetime  # timezone-aware
    modseq: int | None
    size: int
    raw: bytes
    # Providers with their own ids. Graph: `location_id`, the immutable message id, keys the location
    # instead of the UID. Gmail: the location keeps its UID (the id read as a number) and names the
    # message in `provider_id`. Both: the provider's thread (`threadId`, `conversationId`) and
    # Gmail's labels, kept on the location so write-back and send can name the message.
    location_id: str | None = None
    provider_id: str | None = None
    provider_thread_id: str | None = None
    labels: tuple[str, ...] = ()

    def __repr__(self) -> str:  # never show message content
        return f"FetchedMessage(uid={self.uid}, flags={self.flags}, size={self.size}, modseq={self.modseq})"


@dataclass(frozen=True, slots=True)
class FetchBatch:
    """Up to `limit` messages after a UID, in UID order; `has_more` when the folder holds more."""

    folder: str
    uidvalidity: int
    messages: tuple[FetchedMessage, ...]
    has_more: bool

    @property
    def last_uid(self) -> int | None:
        return self.messages[-1].uid if self.messages else None


@dataclass(frozen=True, slots=True)
class FlagChange:
    uid: int
    flags: tuple[str, ...]
    modseq: int


@dataclass(frozen=True, slots=True)
class FlagChanges:
    """Changes since a MODSEQ. `vanished` is None without QRESYNC: diff `list_uids` instead."""

    folder: str
    uidvalidity: int
    highestmodseq: int
    changed: tuple[FlagChange, ...]
    vanished: tuple[int, ...] | None
