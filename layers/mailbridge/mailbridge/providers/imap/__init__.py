"""IMAP adapter: the only code in mailbridge that speaks IMAP.

with connect(ImapSettings(host=..., username=..., password=...)) as mailbox:
    sent = mailbox.sent_folder()
    batch = mailbox.fetch_new("INBOX", after_uid=cursor, limit=100)
"""

from typing import TYPE_CHECKING, Any

from mailbridge.providers.imap.errors import Code, Stage, map_exception
from mailbridge.providers.imap.folders import find_sent_folder, find_special_folder
from mailbridge.providers.imap.models import (
    FetchBatch,
    FetchedMessage,
    Flag,
    FlagChange,
    FlagChanges,
    Folder,
    FolderStatus,
    SpecialUse,
)
from mailbridge.providers.imap.protocol import MailFolderSource
from mailbridge.providers.imap.settings import ImapSettings, Security

if TYPE_CHECKING:
    from mailbridge.providers.imap.client import ImapConnection, build_ssl_context, connect

_CLIENT_NAMES = {"ImapConnection", "build_ssl_context", "connect"}


def __getattr__(name: str) -> Any:
    # The client pulls in IMAPClient (ssl, imaplib...); models importing Security should not.
    if name in _CLIENT_NAMES:
        from mailbridge.providers.imap import client

        return getattr(client, name)
    raise AttributeError(name)


__all__ = [
    "Code",
    "FetchBatch",
    "FetchedMessage",
    "Flag",
    "FlagChange",
    "FlagChanges",
    "Folder",
    "FolderStatus",
    "ImapConnection",
    "ImapSettings",
    "MailFolderSource",
    "Security",
    "SpecialUse",
    "Stage",
    "build_ssl_context",
    "connect",
    "find_sent_folder",
    "find_special_folder",
    "map_exception",
]
