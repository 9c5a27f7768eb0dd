"""Drafts written in the user's mail client, picked up by the sync (the other way round): IMAP
below, Gmail (`pick_up_gmail_drafts`) and Microsoft 365 (`pick_up_graph_drafts`) the same way.

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


def _draft_id(account: Account, where: str, internal_date: datetime) -> str:
    """Deterministic for one provider copy (`where`), sorting by the copy's date."""
    millis = int(internal_date.timestamp() * 1000)
    return f"dr_{millis:012x}{digest(f'{account.account_id}|{where}', 14)}"


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
    _forget_gone(
        account,
        list(known.values()),
        lambda i: _recorded_uid(i, folder.name, uidvalidity) in on_server,
        store,
    )
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
        where = f"{folder.name}|{uidvalidity}|{fetched.uid}"
        provider = {"kind": "imap", "folder": folder.name, "uidvalidity": uidvalidity, "uid": fetched.uid}
        stored += _store(
            account, _draft_id(account, where, fetched.internal_date), body, provider, store, blobs, now
        )
    return stored


def _store(
    account: Account,
    draft_id: str,
    body: DraftBody,
    provider: dict[str, Any],
    store: DraftStore,
    blobs: BlobStore,
    now: Callable[[], datetime],
) -> int:
    """Store one client draft (version 1, in step with `provider`); 1, or 0 when an earlier run did."""
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
                "provider": provider,
            },
        )
    except Conflict:
        return 0
    return 1


def _forget_gone(
    account: Account,
    items: list[dict[str, Any]],
    present: Callable[[dict[str, Any]], bool],
    store: DraftStore,
) -> None:
    """Delete the drafts whose provider copy is gone while no change made here is pending."""
    for item in items:
        if (
            item.get("state") == ACTIVE
            and item.get("synced_version") == item["version"]
            and not present(item)
        ):
            store.delete_if_version(account.tenant_id, str(item["draft_id"]), int(item["version"]))


def pick_up_gmail_drafts(
    client: Any, account: Account, store: DraftStore, blobs: BlobStore, now: Callable[[], datetime]
) -> int:
    """The same for a Gmail mailbox (users.drafts.list, then messages.get?format=raw of each new
    draft's message): a Gmail draft no stored draft records becomes one (`provider: {"kind":
    "gmail", "draft_id", "message_id"}`); a recorded Gmail draft gone from the list was deleted
    or sent in Gmail, and is deleted here unless a change made here is pending."""
    listed = {ref.id: ref for ref in client.list_drafts()}
    items = [
        i
        for i in store.account_drafts(account.tenant_id, account.account_id)
        if (i.get("provider") or {}).get("kind") == "gmail"
    ]
    known = {str(i["provider"].get("draft_id")) for i in items}
    _forget_gone(account, items, lambda i: str(i["provider"].get("draft_id")) in listed, store)
    stored = 0
    for gmail_draft_id in sorted(set(listed) - known)[:MAX_PER_RUN]:
        message = client.get_raw(listed[gmail_draft_id].message.id)
        at = message.received_at or now()
        body = _body(account, message.raw, at)
        if body is None:
            continue
        provider = {"kind": "gmail", "draft_id": gmail_draft_id, "message_id": message.id}
        draft_id = _draft_id(account, f"gmail|{gmail_draft_id}", at)
        stored += _store(account, draft_id, body, provider, store, blobs, now)
    return stored


def pick_up_graph_drafts(
    client: Any, account: Account, store: DraftStore, blobs: BlobStore, now: Callable[[], datetime]
) -> int:
    """The same for a Microsoft 365 mailbox: the messages of the well-known `drafts` folder
    (mailfolder-list-messages, then `$value` of each new one); a message no stored draft records
    becomes one (`provider: {"kind": "graph", "message_id"}`, an immutable id); a recorded draft
    message gone from the folder was deleted or sent in Outlook, and is deleted here unless a
    change made here is pending."""
    folder = client.folder("drafts")
    listed = {m.id: m for m in client.list_messages(folder.id)}
    items = [
        i
        for i in store.account_drafts(account.tenant_id, account.account_id)
        if (i.get("provider") or {}).get("kind") == "graph"
    ]
    known = {str(i["provider"].get("message_id")) for i in items}
    _forget_gone(account, items, lambda i: str(i["provider"].get("message_id")) in listed, store)
    stored = 0
    for message_id in sorted(set(listed) - known)[:MAX_PER_RUN]:
        at = listed[message_id].received or now()
        body = _body(account, client.get_mime(message_id), at)
        if body is None:
            continue
        provider = {"kind": "graph", "message_id": message_id}
        stored += _store(
            account, _draft_id(account, f"graph|{message_id}", at), body, provider, store, blobs, now
        )
    return stored
