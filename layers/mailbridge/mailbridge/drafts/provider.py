"""Keeps the mailbox's copy of a draft in step with the stored draft (OutboxQueue consumer).

IMAP (RFC 3501 APPEND, RFC 6154 SPECIAL-USE, RFC 4315 UIDPLUS): the draft, composed as the
message it will be, is APPENDed to the Drafts folder with `\\Draft` and `\\Seen`; then every
earlier copy is removed (`UID STORE +FLAGS.SILENT (\\Deleted)` + `UID EXPUNGE` of those UIDs
only), so the folder holds one copy, the newest. Earlier copies are found by UID (the one
recorded) and by Message-ID: a draft's copies carry `<{draft_id}.{version}@{domain}>`, so a copy
whose APPEND was never recorded (a crash in between, a redelivered record) is still found
(`UID SEARCH HEADER Message-ID`). The sent message gets a Message-ID of its own.

Every run reads the draft again and does what its current state asks (copy the current version,
remove the copy of a deleted draft, nothing when the copy already holds the version), so a late
or repeated record changes nothing.

Gmail (users.drafts [D]): `drafts.create` with the raw RFC 5322 message (a reply with the
`threadId` of the message it answers), then `drafts.update` of the same draft id on each edit
(a draft deleted in Gmail meanwhile is created again), `drafts.delete` when deleted here; a sent
draft goes out by `drafts.send`, which removes it in the same call (`mailbridge.outbox.gmail`).

Microsoft 365 (Graph): a draft message made from the MIME (`POST /me/messages`, text/plain
base64: `isDraft`, in Drafts); an edit makes a new one and deletes the old (`_graph_replace`);
`DELETE /me/messages/{id}` on delete, and after a send (which goes by sendMail like any send).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import ValidationError, model_validator

from mailbridge.accounts import imap_settings, load_secrets
from mailbridge.compose import Draft as ComposeDraft
from mailbridge.compose import Mode, OriginalMessage, compose_message
from mailbridge.drafts.models import DraftBody
from mailbridge.errors import Invalid, NotFound, ProviderError
from mailbridge.models.email import EmailAddress
from mailbridge.observability import logger
from mailbridge.outbox.models import DraftSyncMessage
from mailbridge.providers.imap.models import Flag
from mailbridge.store.drafts import ACTIVE, DELETING, SENDING, DraftStore
from mailbridge.tenancy import Role, TenantContext

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterable

    from mailbridge.models.account import Account
    from mailbridge.outbox.service import OutboxDeps
    from mailbridge.providers.imap.models import Folder, FolderStatus

DRAFT_FLAGS = (Flag.DRAFT, Flag.SEEN)


@runtime_checkable
class DraftFolder(Protocol):
    """What keeping drafts needs of an IMAP session (`ImapConnection` has it)."""

    def drafts_folder(self) -> Folder | None: ...

    def folder_status(self, name: str) -> FolderStatus: ...

    def append(
        self, name: str, raw: bytes, *, flags: Iterable[Flag] = (), internal_date: dt.datetime | None = None
    ) -> int | None: ...

    def search_header(self, name: str, header: str, value: str) -> list[int]: ...

    def delete_uids(self, name: str, uids: Iterable[int]) -> None: ...


class UnsentDraft(ComposeDraft):
    """A compose `Draft` that may still lack recipients or a body (a draft is unfinished mail)."""

    @model_validator(mode="after")
    def _sendable(self) -> UnsentDraft:
        return self


def message_id(draft_id: str, version: int, account: Account) -> str:
    """The Message-ID of a draft version's copy (without brackets)."""
    return f"{draft_id}.{version}@{account.address.rpartition('@')[2]}"


def compose_draft(
    tenant_id: str, item: dict[str, Any], body: DraftBody, account: Account, deps: OutboxDeps
) -> bytes:
    """The draft as the RFC 5322 message it will be (a reply threaded on its original, a forward
    with it attached). Raises Invalid (`invalid_message`, every code of `compose_message`)."""
    from mailbridge.outbox.service import original_message, outgoing_attachment

    ctx = TenantContext(
        tenant_id=tenant_id, role=Role.MEMBER, subject=str(item.get("created_by") or "drafts")
    )
    mode: Mode = "new"
    original: OriginalMessage | None = None
    try:
        if body.reply_to_email_id:
            mode, original = "reply", original_message(ctx, body.reply_to_email_id, deps)
        elif body.forward_email_id:
            mode, original = "forward", original_message(ctx, body.forward_email_id, deps)
    except NotFound:  # the original is gone: the copy is written as new mail
        mode, original = "new", None
    try:
        draft = UnsentDraft(
            from_=EmailAddress(name=account.display_name, address=account.address),
            to=[EmailAddress(name=r.name, address=str(r.address)) for r in body.to],
            cc=[EmailAddress(name=r.name, address=str(r.address)) for r in body.cc],
            bcc=[EmailAddress(name=r.name, address=str(r.address)) for r in body.bcc],
            subject=body.subject,
            text=body.text,
            html=body.html,
            attachments=[outgoing_attachment(ctx, a, deps) for a in body.attachments],
            mode=mode,
            forward_as=body.forward_as,
            message_id=message_id(str(item["draft_id"]), int(item["version"]), account),
        )
    except ValidationError:
        raise Invalid("the draft cannot be written as a message", code="invalid_message") from None
    return compose_message(draft, original=original, now=deps.now()).raw


def sync_draft(message: DraftSyncMessage, deps: OutboxDeps, drafts: DraftStore) -> str:
    """Bring the mailbox's copy of one draft in step with its stored state; the outcome.

    Retryable ProviderErrors propagate (the caller retries later); anything else about this
    draft is logged and dropped (the next edit queues another run)."""
    tenant, draft_id = message.tenant_id, message.draft_id
    item = drafts.get_draft(tenant, draft_id)
    state = None if item is None else item.get("state")
    if item is None or state not in (ACTIVE, DELETING):
        return "gone" if item is None else str(state)  # sent (or being sent): the send removes it
    account = _account(tenant, message.account_id, deps)
    if state == DELETING:
        if account is not None and account.imap is not None:
            _imap_remove(account, draft_id, item.get("provider"), deps)
        elif account is not None and account.provider == "gmail":
            _gmail_remove(account, item.get("provider"), deps)
        elif account is not None and account.provider == "graph":
            _graph_remove(account, item.get("provider"))
        drafts.delete_draft(tenant, draft_id, state=DELETING)
        return "removed"
    if account is None or (account.imap is None and account.provider not in ("gmail", "graph")):
        return "not_kept"  # the account is gone (its drafts go with it)
    return _copy(account, item, deps, drafts)


def _account(tenant_id: str, account_id: str, deps: OutboxDeps) -> Account | None:
    try:
        return deps.accounts.get_account(tenant_id, account_id)
    except NotFound:
        return None


def _copy(account: Account, item: dict[str, Any], deps: OutboxDeps, drafts: DraftStore) -> str:
    tenant, draft_id, version = account.tenant_id, str(item["draft_id"]), int(item["version"])
    if item.get("synced_version") == version:
        return "in_step"
    try:
        body = DraftBody.model_validate(deps.blobs.get_json(str(item["body_key"])))
        raw = compose_draft(tenant, item, body, account, deps)
    except (Invalid, NotFound) as exc:
        logger.warning("draft copy not written", extra={"code": exc.code, "draft_id": draft_id})
        return "invalid"
    if account.provider == "gmail":
        provider = _gmail_replace(account, item, body, raw, deps)
    elif account.provider == "graph":
        provider = _graph_replace(account, item, raw)
    else:
        provider = _imap_replace(account, item, raw, deps)
    return (
        "copied" if drafts.record_synced(tenant, draft_id, version=version, provider=provider) else "moved_on"
    )


def remove_sent_draft(account: Account, reference: dict[str, Any], deps: OutboxDeps) -> None:
    """After a successful send: remove the draft's copy from the mailbox, then the draft itself
    (kept, hidden, until now so the sync does not take the copy for a new client draft). The mail
    is sent: a failure here is logged, never retried by sending again."""
    draft_id = str(reference["draft_id"])
    try:
        if account.imap is not None:
            _imap_remove(account, draft_id, reference.get("provider"), deps)
        elif account.provider == "graph":  # sent by sendMail: the draft message is deleted now
            _graph_remove(account, reference.get("provider"))
    except (ProviderError, Invalid) as exc:
        logger.warning("sent draft's copy not removed", extra={"code": exc.code})
    DraftStore(deps.emails.table_name).delete_draft(account.tenant_id, draft_id, state=SENDING)


def _session(account: Account, deps: OutboxDeps) -> Any:
    assert account.imap is not None
    password = str(load_secrets(deps.accounts, account)["imap_password"])
    return deps.connect_imap(imap_settings(account.imap, password, allow_private=deps.allow_private_hosts))


def _folder(imap: Any) -> tuple[DraftFolder, str]:
    if not isinstance(imap, DraftFolder):
        raise Invalid("this IMAP session cannot keep drafts", code="drafts_unsupported")
    folder = imap.drafts_folder()
    if folder is None:
        refused = ProviderError("the mailbox has no Drafts folder", code="no_drafts_folder")
        refused.retryable = False
        raise refused
    return imap, folder.name


def _earlier_copies(
    imap: DraftFolder, folder: str, uidvalidity: int, draft_id: str, recorded: dict[str, Any] | None
) -> set[int]:
    uids = set(imap.search_header(folder, "Message-ID", f"<{draft_id}."))
    if recorded and recorded.get("folder") == folder and int(recorded.get("uidvalidity") or 0) == uidvalidity:
        uids.add(int(recorded["uid"]))
    return uids


def _imap_replace(account: Account, item: dict[str, Any], raw: bytes, deps: OutboxDeps) -> dict[str, Any]:
    """APPEND the new copy, then remove every earlier one; where the copy now is."""
    draft_id, version = str(item["draft_id"]), int(item["version"])
    with _session(account, deps) as session:
        imap, folder = _folder(session)
        uid = imap.append(folder, raw, flags=DRAFT_FLAGS, internal_date=deps.now())
        uidvalidity = imap.folder_status(folder).uidvalidity
        if uid is None:  # no UIDPLUS: find the copy just written by its own Message-ID
            found = imap.search_header(folder, "Message-ID", f"<{message_id(draft_id, version, account)}>")
            uid = max(found) if found else None
        earlier = _earlier_copies(imap, folder, uidvalidity, draft_id, item.get("provider"))
        imap.delete_uids(folder, earlier - {uid} if uid is not None else set())
    return {"kind": "imap", "folder": folder, "uidvalidity": uidvalidity, "uid": uid}


def _gmail_client(account: Account, deps: OutboxDeps) -> Any:
    from mailbridge.outbox import gmail

    return (deps.gmail_client or gmail.default_client)(account)


def _gmail_replace(
    account: Account, item: dict[str, Any], body: DraftBody, raw: bytes, deps: OutboxDeps
) -> dict[str, Any]:
    """users.drafts.update of the recorded Gmail draft, or users.drafts.create (a reply in the
    Gmail thread of the message it answers); a draft deleted in Gmail meanwhile is created
    again. Where the draft now is: `{"kind": "gmail", "draft_id", "message_id"}`."""
    from mailbridge.outbox.gmail import reply_thread_id
    from mailbridge.providers.gmail.errors import DraftNotFound

    client = _gmail_client(account, deps)
    thread_id = reply_thread_id(account, body.reply_to_email_id, deps.emails, client)
    recorded = item.get("provider") or {}
    ref = None
    if recorded.get("kind") == "gmail" and recorded.get("draft_id"):
        try:
            ref = client.update_draft(str(recorded["draft_id"]), raw, thread_id)
        except DraftNotFound:
            ref = None
    if ref is None:
        ref = client.create_draft(raw, thread_id)
    return {"kind": "gmail", "draft_id": ref.id, "message_id": ref.message.id}


def _gmail_remove(account: Account, recorded: dict[str, Any] | None, deps: OutboxDeps) -> None:
    """users.drafts.delete of the recorded Gmail draft (already gone: nothing to do)."""
    from mailbridge.providers.gmail.errors import DraftNotFound

    if not recorded or recorded.get("kind") != "gmail" or not recorded.get("draft_id"):
        return
    try:
        _gmail_client(account, deps).delete_draft(str(recorded["draft_id"]))
    except DraftNotFound:
        return


def _graph_replace(account: Account, item: dict[str, Any], raw: bytes) -> dict[str, Any]:
    """A new draft message from the MIME (POST /me/messages, text/plain base64), then the earlier
    one deleted: Graph PATCHes a message's properties but never its MIME, and the MIME is what
    carries the attachments, threading headers and body exactly as they will be sent. Where the
    draft now is: `{"kind": "graph", "message_id"}` (an immutable id)."""
    from mailbridge.providers.graph.wiring import client_for

    client = client_for(account)
    message_id = client.create_draft_mime(raw)
    _graph_remove(account, item.get("provider"), client)
    return {"kind": "graph", "message_id": message_id}


def _graph_remove(account: Account, recorded: dict[str, Any] | None, client: Any = None) -> None:
    """DELETE /me/messages/{id} of the recorded draft message (already gone: nothing to do)."""
    from mailbridge.providers.graph.errors import MessageNotFound
    from mailbridge.providers.graph.wiring import client_for

    if not recorded or recorded.get("kind") != "graph" or not recorded.get("message_id"):
        return
    try:
        (client or client_for(account)).delete(str(recorded["message_id"]))
    except MessageNotFound:
        return


def gmail_draft_id(reference: dict[str, Any] | None) -> str | None:
    """The Gmail draft a sent draft's reference names (`drafts.send` sends and removes it)."""
    recorded = (reference or {}).get("provider") or {}
    return str(recorded["draft_id"]) if recorded.get("kind") == "gmail" and recorded.get("draft_id") else None


def _imap_remove(account: Account, draft_id: str, recorded: dict[str, Any] | None, deps: OutboxDeps) -> None:
    with _session(account, deps) as session:
        imap, folder = _folder(session)
        uidvalidity = imap.folder_status(folder).uidvalidity
        imap.delete_uids(folder, _earlier_copies(imap, folder, uidvalidity, draft_id, recorded))
