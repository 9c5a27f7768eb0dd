"""Drafts written in the user's mail client, picked up by the IMAP sync (the other way round).

After each IMAP sync run, the Drafts folder (SPECIAL-USE `\\Drafts`, RFC 6154) is compared with
the drafts stored for the mailbox:
- a message no draft records (by UID, under the folder's UIDVALIDITY) becomes a draft (`origin:
  provider`, version 1, already in step: its provider copy is that message), so it appears in
  `GET /drafts` and is editable here; the next edit replaces that copy like any other. Our own
  copies (Message-ID `<dr_...>`, `mailbridge.drafts.provider.message_id`) are never picked up;
- a draft whose recorded copy is gone from the folder while no change made here is pending
  (`synced_version == version`) was deleted or sent in the client: it is deleted here too.
The draft id is derived from (account, folder, UIDVALIDITY, UID), so a repeated run stores
nothing twice. A message that does not fit a draft body (a subject with control characters, an
attachment over the inline limit, more than 100 recipients) is left alone and logged: picking
it up would lose what an edit here could not write back.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import ValidationError

from mailbridge.drafts.models import DraftBody
from mailbridge.drafts.provider import DraftFolder
from mailbridge.drafts.service import body_key
from mailbridge.errors import Conflict
from mailbridge.observability import logger
from mailbridge.store.drafts import ACTIVE, DraftStore
from mailbridge.store.keys import digest

if TYPE_CHECKING:
    from mailbridge.models.account import Account
    from mailbridge.providers.imap.models import FetchBatch
    from mailbridge.store.blobs import BlobStore

MAX_PER_RUN = 50  # new client drafts read per sync run; the next run reads the rest
_OURS = re.compile(r"<?dr_[0-9a-f]{26}\.[0-9]+@")


@runtime_checkable
class DraftSource(DraftFolder, Protocol):
    def list_uids(self, name: str) -> list[int]: ...

    def fetch_new(
        self, name: str, after_uid: int, limit: int, max_bytes: int | None = None
    ) -> FetchBatch: ...


def _recorded_uid(item: dict[str, Any], folder: str, uidvalidity: int) -> int | None:
    provider = item.get("provider") or {}
    if provider.get("folder") != folder or int(provider.get("uidvalidity") or 0) != uidvalidity:
        return None
    uid = provider.get("uid")
    return int(uid) if uid is not None else None


def _draft_id(account: Account, folder: str, uidvalidity: int, uid: int, internal_date: datetime) -> str:
    millis = int(internal_date.timestamp() * 1000)
    return f"dr_{millis:012x}{digest(f'{account.account_id}|{folder}|{uidvalidity}|{uid}', 14)}"


def _body(account: Account, raw: bytes, internal_date: datetime) -> DraftBody | None:
    from mailbridge.mime.errors import MimeError
    from mailbridge.mime.parse import normalize

    try:
        normalized = normalize(raw, internal_date=internal_date)
    except MimeError as exc:
        logger.info("client draft not picked up", extra={"code": exc.code})
        return None
    parsed = normalized.message
    if parsed.message_id and _OURS.match(parsed.message_id):
        return None

    def people(values: Iterable[Any]) -> list[dict[str, Any]]:
        return [{"address": a.address, "name": a.name or None} for a in values]

    try:
        return DraftBody.model_validate(
            {
                "account_id": account.account_id,
                "to": people(parsed.to),
                "cc": people(parsed.cc),
                "bcc": people(parsed.bcc),
                "subject": parsed.subject or "",
                "text": parsed.text_body,
                "html": parsed.html_body,
                "attachments": [
                    {
                        "filename": meta.filename or f"attachment-{meta.id}",
                        "content_type": meta.content_type,
                        "content_base64": base64.b64encode(data).decode(),
                        "inline": meta.inline,
                        "content_id": meta.content_id,
                    }
                    for meta, data in normalized.attachments
                ],
            }
        )
    except ValidationError as exc:
        # Types and places only: a pydantic error carries the values (`input_value`).
        logger.info(
            "client draft not picked up",
            extra={"errors": [{"type": e["type"], "loc": [str(p) for p in e["loc"]]} for e in exc.errors()]},
        )
        return None


def pick_up_drafts(
    source: object, account: Account, store: DraftStore, blobs: BlobStore, now: Callable[[], datetime]
) -> int:
    """Compare the mailbox's Drafts folder with its stored drafts (module docstring); how many
    client drafts were stored as new drafts. Provider errors propagate to the sync's handling."""
    if not isinstance(source, DraftSource):
        return 0
    folder = source.drafts_folder()
    if folder is None:
        return 0
    uidvalidity = source.folder_status(folder.name).uidvalidity
    on_server = set(source.list_uids(folder.name))
    known: dict[int, dict[str, Any]] = {}
    for item in store.account_drafts(account.tenant_id, account.account_id):
        uid = _recorded_uid(item, folder.name, uidvalidity)
        if uid is not None:
            known[uid] = item
    for uid, item in known.items():
        if (
            uid not in on_server
            and item.get("state") == ACTIVE
            and item.get("synced_version") == item["version"]
        ):
            store.delete_if_version(account.tenant_id, str(item["draft_id"]), int(item["version"]))
    new = sorted(on_server - set(known))[:MAX_PER_RUN]
    if not new:
        return 0
    batch = source.fetch_new(folder.name, new[0] - 1, limit=min(1000, new[-1] - new[0] + 1))
    wanted = set(new)
    stored = 0
    for fetched in batch.messages:
        if fetched.uid not in wanted:
            continue
        body = _body(account, fetched.raw, fetched.internal_date)
        if body is None:
            continue
        draft_id = _draft_id(account, folder.name, uidvalidity, fetched.uid, fetched.internal_date)
        key = body_key(account.tenant_id, draft_id, 1)
        blobs.put_json(key, body.model_dump(mode="json"))
        at = now().isoformat()
        try:
            store.create_draft(
                account.tenant_id,
                {
                    "draft_id": draft_id,
                    "account_id": account.account_id,
                    "state": ACTIVE,
                    "body_key": key,
                    "created_at": at,
                    "updated_at": at,
                    "created_by": "mailbox",
                    "origin": "provider",
                    "subject": body.subject,
                    "to": [str(r.address) for r in body.to],
                    "synced_version": 1,
                    "provider": {
                        "kind": "imap",
                        "folder": folder.name,
                        "uidvalidity": uidvalidity,
                        "uid": fetched.uid,
                    },
                },
            )
        except Conflict:
            continue  # stored by an earlier run
        stored += 1
    return stored
