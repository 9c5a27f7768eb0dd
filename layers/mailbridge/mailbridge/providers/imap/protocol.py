"""The interface the sync service and the accounts API depend on; fakes implement it too."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from types import TracebackType
from typing import Protocol, Self

from mailbridge.providers.imap.models import FetchBatch, Flag, FlagChanges, Folder, FolderStatus


class MailFolderSource(Protocol):
    """One logged-in mailbox session.

    Every method raises `mailbridge.errors.ProviderError` subclasses only: `ProviderAuthError`,
    `ProviderUnreachable` (codes unreachable, tls_failed, timeout, connection_lost) or
    `ProviderError` (codes protocol_error, folder_not_found, unavailable), and `Invalid` for bad
    arguments.
    """

    def capabilities(self) -> frozenset[str]: ...

    def list_folders(self) -> list[Folder]: ...

    def sent_folder(self) -> Folder | None: ...

    def folder_status(self, name: str) -> FolderStatus: ...

    def select(self, name: str) -> FolderStatus: ...

    def fetch_new(
        self, name: str, after_uid: int, limit: int, max_bytes: int | None = None
    ) -> FetchBatch: ...

    def fetch_flag_changes(self, name: str, since_modseq: int) -> FlagChanges | None: ...

    def list_uids(self, name: str) -> list[int]: ...

    def set_flags(
        self, name: str, uid: int, *, add: Iterable[Flag] = (), remove: Iterable[Flag] = ()
    ) -> None: ...

    def move(self, name: str, uid: int, target: str) -> tuple[int, int] | None: ...

    def append(
        self,
        name: str,
        raw: bytes,
        *,
        flags: Iterable[Flag] = (),
        internal_date: dt.datetime | None = None,
    ) -> int | None: ...

    def logout(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
