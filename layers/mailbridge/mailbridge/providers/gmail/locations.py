"""Where a Gmail message is stored: the one place the Gmail sync, write-back and send agree on.

A Gmail message has one mailbox location per account (labels are not folders of their own):

- `Mailbox.folder` = `FOLDER`, `Mailbox.uidvalidity` = `UIDVALIDITY`;
- `FetchedMessage.uid` = `uid_for(gmail_message_id)`: the Gmail message id (users.messages
  resource `id`: a 64-bit number written in hexadecimal, no leading zeros, e.g.
  `18c9f0a1b2c3d4e5`) read as that number, so the location key (`store.keys.location_sk`) is
  deterministic and the location item's `uid` gives the id back (`gmail_message_id`).

Write-back (`mailbridge.sync.writeback_gmail`) reads `gmail_message_id(location)` to call
`users.messages.modify`; the outbox records a sent message's location with `location_of_sent`,
so the sync meets the copy in SENT at a location (and an email) that already exist.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

FOLDER: Final = "[Gmail]/All Mail"
UIDVALIDITY: Final = 1
GMAIL_ID = re.compile(r"[1-9a-f][0-9a-f]{0,15}")
"""A Gmail message id: hexadecimal without leading zeros, at most 64 bits."""


def uid_for(gmail_message_id: str) -> int:
    """The location `uid` of a Gmail message id. ValueError when it is not one."""
    if not GMAIL_ID.fullmatch(gmail_message_id):
        raise ValueError("not a Gmail message id")
    return int(gmail_message_id, 16)


def gmail_message_id(location: Mapping[str, Any]) -> str | None:
    """The Gmail message id of a location item of a Gmail account (None for any other location)."""
    if location.get("folder") != FOLDER or int(location.get("uidvalidity") or 0) != UIDVALIDITY:
        return None
    uid = location.get("uid")
    if uid is None:
        return None
    return f"{int(uid):x}"
