"""Exchange Online mailboxes as Graph shows them: folders, messages, ids, conversations, changes.

Rules kept here, with their sources:
* well-known folder names `inbox`, `drafts`, `sentitems`, `deleteditems`, `archive`, `junkemail`,
  `outbox`, `msgfolderroot`, `recoverableitemsdeletions` resolve to the folder's id anywhere an id
  is accepted [D: graph/api/resources/mailfolder "Use well-known folder names"]; folder ids never
  change [D: outlook-immutable-id "Container types ... regular IDs were already constant"];
* message ids: the default (REST) id changes when the item moves to another folder; the immutable
  id (asked for with `Prefer: IdType="ImmutableId"`) does not, as long as the item stays in the
  mailbox; both are accepted as input [D: outlook-immutable-id];
* `DELETE /messages/{id}` moves the item to Recoverable Items (out of every visible folder)
  [R: Graph's delete is Exchange's soft delete]; a user deleting in Outlook moves it to Deleted
  Items, `purge` removes it for good;
* `conversationId`: a message joins the conversation of a message it references (In-Reply-To /
  References) or whose Thread-Index it continues, else starts one [R: Exchange threads by
  Thread-Index and references; the exact rule is not documented];
* sendMail keeps the Internet Message-ID of the MIME it is given and saves a copy in Sent Items
  (MIME: always; JSON: unless `saveToSentItems` is false) [D: api/user-sendmail]; a From other
  than the mailbox is refused without Send As rights [R: ErrorSendAsDenied].
Every change gets the next value of a mailbox-wide sequence; delta rounds and change
notifications are computed from it.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime, getaddresses
from typing import Any

from local.microsoft import render
from local.microsoft.errors import GraphError, bad_request, item_not_found
from local.microsoft.ids import Ids

WELL_KNOWN = {
    "inbox": "Inbox",
    "drafts": "Drafts",
    "sentitems": "Sent Items",
    "deleteditems": "Deleted Items",
    "archive": "Archive",
    "junkemail": "Junk Email",
    "outbox": "Outbox",
}
HIDDEN_WELL_KNOWN = ("msgfolderroot", "recoverableitemsdeletions")
FLAG_STATUSES = ("notFlagged", "flagged", "complete")
IMPORTANCES = ("low", "normal", "high")
CLASSIFICATIONS = ("focused", "other")
ALWAYS_UPDATABLE = ("isRead", "flag", "categories", "importance", "inferenceClassification")
DRAFT_UPDATABLE = (
    "subject",
    "body",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "internetMessageHeaders",
)


@dataclass
class Folder:
    id: str
    display_name: str
    parent_id: str
    well_known: str | None = None
    hidden: bool = False


@dataclass
class Message:
    immutable_id: str
    rest_id: str
    folder_id: str
    raw: bytes
    received: datetime
    created: datetime
    modified: datetime
    conversation_id: str
    conversation_index: str
    change_key: str
    seq: int
    entered_seq: int
    is_read: bool = False
    is_draft: bool = False
    flag: dict[str, Any] = field(default_factory=lambda: {"flagStatus": "notFlagged"})
    categories: list[str] = field(default_factory=list)
    importance: str = "normal"
    inference: str = "focused"
    draft: dict[str, Any] | None = None  # the JSON a draft was made from (PATCHable)
    internet_message_id: str | None = None
    mime_fields: dict[bool, dict[str, Any]] = field(
        default_factory=dict, repr=False
    )  # parsed once per body type

    def id(self, immutable: bool) -> str:
        return self.immutable_id if immutable else self.rest_id


@dataclass
class Removal:
    seq: int
    folder_id: str
    immutable_id: str
    rest_id: str


@dataclass
class Change:
    """One change as notifications see it: `created`, `updated` or `deleted` in a folder."""

    kind: str
    folder_id: str
    message_id: str  # rest id at the time
    immutable_id: str
    change_key: str


@dataclass
class SentMail:
    internet_message_id: str | None
    recipients: list[str]
    raw: bytes
    at: datetime
    saved_to_sent_items: bool


@dataclass
class Mailbox:
    address: str
    name: str
    oid: str
    folders: dict[str, Folder] = field(default_factory=dict)
    messages: dict[str, Message] = field(default_factory=dict)  # by immutable id
    by_rest: dict[str, str] = field(default_factory=dict)  # rest id -> immutable id
    removals: list[Removal] = field(default_factory=list)
    sent: list[SentMail] = field(default_factory=list)
    thread_index: dict[bytes, str] = field(default_factory=dict)  # Thread-Index root -> conversationId
    conversations: dict[str, str] = field(default_factory=dict)  # Internet Message-ID -> conversationId

    def well_known(self, name: str) -> Folder:
        return next(f for f in self.folders.values() if f.well_known == name)

    def in_folder(self, folder_id: str) -> list[Message]:
        return [m for m in self.messages.values() if m.folder_id == folder_id]


ChangeListener = Callable[[Mailbox, Change], None]


class FolderSource:
    """A folder's messages as the delta engine tracks them."""

    def __init__(self, mail: Mail, mailbox: Mailbox, folder_id: str) -> None:
        self.mail, self.mailbox, self.folder_id = mail, mailbox, folder_id

    def current(self) -> dict[str, tuple[int, int]]:
        return {m.immutable_id: (m.seq, m.entered_seq) for m in self.mailbox.in_folder(self.folder_id)}

    def removed_since(self, watermark: int) -> dict[str, int]:
        return {
            r.immutable_id: r.seq
            for r in self.mailbox.removals
            if r.folder_id == self.folder_id and r.seq > watermark
        }

    def sequence(self) -> int:
        return self.mail.seq


class Mail:
    """Mailboxes and the operations both Graph and the control surface perform on them."""

    def __init__(self, ids: Ids, now: Callable[[], datetime]) -> None:
        self.ids = ids
        self.now = now
        self.mailboxes: dict[str, Mailbox] = {}
        self.listeners: list[ChangeListener] = []
        self.seq = 0

    # ------------------------------------------------------------------ mailboxes and folders

    def create_mailbox(self, address: str, name: str, oid: str) -> Mailbox:
        mailbox = Mailbox(address=address, name=name, oid=oid)
        root = Folder(self.ids.folder_id(), "Top of Information Store", "", "msgfolderroot", hidden=True)
        mailbox.folders[root.id] = root
        for key, display in WELL_KNOWN.items():
            folder = Folder(self.ids.folder_id(), display, root.id, key)
            mailbox.folders[folder.id] = folder
        recoverable = Folder(
            self.ids.folder_id(), "Deletions", root.id, "recoverableitemsdeletions", hidden=True
        )
        mailbox.folders[recoverable.id] = recoverable
        self.mailboxes[address.lower()] = mailbox
        return mailbox

    def mailbox(self, address: str) -> Mailbox:
        return self.mailboxes[address.lower()]

    def folder(self, mailbox: Mailbox, id_or_name: str) -> Folder:
        """A folder by id or well-known name; Graph answers ErrorItemNotFound otherwise [R]."""
        found = mailbox.folders.get(id_or_name)
        if found is not None:
            return found
        lowered = id_or_name.lower()
        for folder in mailbox.folders.values():
            if folder.well_known == lowered:
                return folder
        raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")

    def create_folder(
        self, mailbox: Mailbox, display_name: str, parent_id: str, hidden: bool = False
    ) -> Folder:
        if not display_name.strip():
            raise bad_request("The display name is required.", "ErrorInvalidRequest")
        siblings = [f for f in mailbox.folders.values() if f.parent_id == parent_id]
        if any(f.display_name.lower() == display_name.lower() for f in siblings):
            raise GraphError(409, "ErrorFolderExists", "A folder with the specified name already exists.")
        folder = Folder(self.ids.folder_id(), display_name, parent_id, hidden=hidden)
        mailbox.folders[folder.id] = folder
        return folder

    def folder_json(self, mailbox: Mailbox, folder: Folder) -> dict[str, Any]:
        items = mailbox.in_folder(folder.id)
        return {
            "id": folder.id,
            "displayName": folder.display_name,
            "parentFolderId": folder.parent_id,
            "childFolderCount": sum(1 for f in mailbox.folders.values() if f.parent_id == folder.id),
            "unreadItemCount": sum(1 for m in items if not m.is_read),
            "totalItemCount": len(items),
            "sizeInBytes": sum(len(m.raw) for m in items),
            "isHidden": folder.hidden,
        }

    # ------------------------------------------------------------------ messages

    def find(self, mailbox: Mailbox, message_id: str) -> Message:
        """A message by its REST id or its immutable id (Graph accepts both [D])."""
        found = mailbox.messages.get(message_id)
        if found is None and message_id in mailbox.by_rest:
            found = mailbox.messages.get(mailbox.by_rest[message_id])
        if found is None or mailbox.folders[found.folder_id].well_known == "recoverableitemsdeletions":
            raise item_not_found()
        return found

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def _emit(self, mailbox: Mailbox, kind: str, folder_id: str, message: Message) -> None:
        change = Change(kind, folder_id, message.rest_id, message.immutable_id, message.change_key)
        for listener in self.listeners:
            listener(mailbox, change)

    def add(
        self,
        mailbox: Mailbox,
        raw: bytes,
        folder: Folder,
        received: datetime | None = None,
        is_read: bool = False,
        is_draft: bool = False,
        flagged: bool = False,
    ) -> Message:
        """A message arrives in (or is seeded into) `folder`: `created` there."""
        now = self.now()
        seq = self.next_seq()
        internet_id = _internet_message_id(raw)
        conversation, index = self._conversation(mailbox, raw)
        if internet_id is not None:
            mailbox.conversations.setdefault(internet_id, conversation)
        message = Message(
            immutable_id=self.ids.immutable_id(),
            rest_id=self.ids.rest_id(),
            folder_id=folder.id,
            raw=raw,
            received=received or now,
            created=received or now,
            modified=now,
            conversation_id=conversation,
            conversation_index=index,
            change_key=self.ids.change_key(),
            seq=seq,
            entered_seq=seq,
            is_read=is_read,
            is_draft=is_draft,
            internet_message_id=internet_id,
        )
        if flagged:
            message.flag = {"flagStatus": "flagged"}
        mailbox.messages[message.immutable_id] = message
        mailbox.by_rest[message.rest_id] = message.immutable_id
        self._emit(mailbox, "created", folder.id, message)
        return message

    def _conversation(self, mailbox: Mailbox, raw: bytes) -> tuple[str, str]:
        parsed = render.parse(raw)
        referenced = set(render.message_ids(render.header_text(parsed, "In-Reply-To")))
        referenced |= set(render.message_ids(render.header_text(parsed, "References")))
        thread_index = _thread_index(render.header_text(parsed, "Thread-Index"))
        conversation: str | None = None
        for reference in render.message_ids(render.header_text(parsed, "References")) + render.message_ids(
            render.header_text(parsed, "In-Reply-To")
        ):
            if reference in referenced and reference in mailbox.conversations:
                conversation = mailbox.conversations[reference]
                break
        if conversation is None and thread_index is not None:
            conversation = mailbox.thread_index.get(thread_index[:22])
        if conversation is None:
            conversation = self.ids.exchange_id(b"\x00\x04$\x00", 60)
        root = thread_index[:22] if thread_index is not None else base64.b64decode(self.ids.change_key())[:22]
        mailbox.thread_index.setdefault(root, conversation)
        index = thread_index if thread_index is not None else root
        return conversation, base64.b64encode(index).decode("ascii")

    def update(self, mailbox: Mailbox, message: Message, changes: dict[str, Any]) -> Message:
        """PATCH: the properties a message allows [D: api/message-update]; one `updated`."""
        if not isinstance(changes, dict) or not changes:
            raise bad_request("Empty Payload. JSON content expected.", "BadRequest")
        for name in changes:
            if name.startswith("@odata"):
                continue
            if name in DRAFT_UPDATABLE:
                if not message.is_draft:
                    raise bad_request(
                        "Update is not allowed on properties of a sent message.",
                        "ErrorInvalidPropertyUpdateSentMessage",
                    )
                continue
            if name not in ALWAYS_UPDATABLE:
                if name.lower() in render.ALL_PROPERTIES:
                    raise bad_request(
                        f"The property '{name}' is read-only and cannot be set.", "ErrorInvalidProperty"
                    )
                raise bad_request(
                    f"The property '{name}' does not exist on type 'microsoft.graph.message'.",
                    "RequestBodyRead",
                )
        if "isRead" in changes:
            if not isinstance(changes["isRead"], bool):
                raise bad_request(
                    "Cannot convert the literal to the expected type 'Edm.Boolean'.", "RequestBodyRead"
                )
            message.is_read = changes["isRead"]
        if "flag" in changes:
            flag = changes["flag"]
            status = flag.get("flagStatus") if isinstance(flag, dict) else None
            if status not in FLAG_STATUSES:
                raise bad_request("Invalid flagStatus value.", "RequestBodyRead")
            message.flag = {
                k: v
                for k, v in flag.items()
                if k in ("flagStatus", "dueDateTime", "startDateTime", "completedDateTime")
            }
        if "categories" in changes:
            value = changes["categories"]
            if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
                raise bad_request("Invalid categories value.", "RequestBodyRead")
            message.categories = list(value)
        if "importance" in changes:
            if changes["importance"] not in IMPORTANCES:
                raise bad_request("Invalid importance value.", "RequestBodyRead")
            message.importance = changes["importance"]
        if "inferenceClassification" in changes:
            if changes["inferenceClassification"] not in CLASSIFICATIONS:
                raise bad_request("Invalid inferenceClassification value.", "RequestBodyRead")
            message.inference = changes["inferenceClassification"]
        draft_changes = {k: v for k, v in changes.items() if k in DRAFT_UPDATABLE}
        if draft_changes and message.draft is not None:
            message.draft.update(draft_changes)
            message.raw = render.build_mime(
                message.draft, mailbox.address, mailbox.name, message.internet_message_id or "", self.now()
            )
            message.mime_fields.clear()
        self._touch(message)
        self._emit(mailbox, "updated", message.folder_id, message)
        return message

    def _touch(self, message: Message) -> None:
        message.seq = self.next_seq()
        message.modified = self.now()
        message.change_key = self.ids.change_key()

    def move(self, mailbox: Mailbox, message: Message, destination: Folder) -> Message:
        """Move: `deleted` in the source folder, `created` in the destination; a new REST id."""
        if destination.id == message.folder_id:
            return message
        source = message.folder_id
        mailbox.removals.append(Removal(self.next_seq(), source, message.immutable_id, message.rest_id))
        self._emit(mailbox, "deleted", source, message)
        del mailbox.by_rest[message.rest_id]
        message.rest_id = self.ids.rest_id()
        mailbox.by_rest[message.rest_id] = message.immutable_id
        message.folder_id = destination.id
        self._touch(message)
        message.entered_seq = message.seq
        self._emit(mailbox, "created", destination.id, message)
        return message

    def soft_delete(self, mailbox: Mailbox, message: Message) -> None:
        """Graph's DELETE: into Recoverable Items, out of sight."""
        self.move(mailbox, message, mailbox.well_known("recoverableitemsdeletions"))

    def purge(self, mailbox: Mailbox, message: Message) -> None:
        """Gone for good (the user empties Deleted Items / shift-deletes)."""
        mailbox.removals.append(
            Removal(self.next_seq(), message.folder_id, message.immutable_id, message.rest_id)
        )
        self._emit(mailbox, "deleted", message.folder_id, message)
        del mailbox.messages[message.immutable_id]
        del mailbox.by_rest[message.rest_id]

    # ------------------------------------------------------------------ sending

    def send_mime(self, mailbox: Mailbox, raw: bytes, save: bool = True) -> Message | None:
        """sendMail with MIME (or a draft's send): checks, Message-ID kept, Sent Items copy, delivery."""
        parsed = render.parse(raw)
        recipients = [
            a
            for _, a in getaddresses([str(v) for k in ("To", "Cc", "Bcc") for v in parsed.get_all(k) or []])
            if a
        ]
        if not recipients:
            raise bad_request(
                "At least one recipient is not valid., A message can't be sent because it contains "
                "no recipients.",
                "ErrorInvalidRecipients",
            )
        sender = render.sender_address(raw)
        if sender and sender.lower() != mailbox.address.lower():
            raise GraphError(
                403,
                "ErrorSendAsDenied",
                "The user account which was used to submit this request does not have the right to "
                "send mail on behalf "
                "of the specified sending account., Cannot submit message.",
            )
        extra: list[str] = []
        now = self.now()
        if parsed.get("Message-ID") is None:
            extra.append(f"Message-ID: {self._message_id(mailbox)}")
        if parsed.get("Date") is None:
            extra.append(f"Date: {format_datetime(now)}")
        if sender is None:
            extra.append(f"From: {mailbox.name} <{mailbox.address}>")
        if extra:
            raw = ("\r\n".join(extra) + "\r\n").encode() + raw
        saved = self.add(mailbox, raw, mailbox.well_known("sentitems"), is_read=True) if save else None
        sent = SentMail(_internet_message_id(raw), recipients, raw, now, save)
        mailbox.sent.append(sent)
        delivered = _without_bcc(raw)
        for address in dict.fromkeys(r.lower() for r in recipients):
            target = self.mailboxes.get(address)
            if target is not None:
                self.add(target, delivered, target.well_known("inbox"))
        return saved

    def send_json(self, mailbox: Mailbox, message: dict[str, Any], save: bool) -> None:
        if not isinstance(message, dict):
            raise bad_request("The message is required.", "ErrorInvalidRequest")
        raw = render.build_mime(message, mailbox.address, mailbox.name, self._message_id(mailbox), self.now())
        self.send_mime(mailbox, raw, save)

    def create_draft(self, mailbox: Mailbox, message: dict[str, Any] | None, raw: bytes | None) -> Message:
        if raw is None:
            body = message or {}
            raw = render.build_mime(
                body, mailbox.address, mailbox.name, self._message_id(mailbox), self.now()
            )
        draft = self.add(mailbox, raw, mailbox.well_known("drafts"), is_read=True, is_draft=True)
        draft.draft = dict(message) if message is not None else None
        return draft

    def send_draft(self, mailbox: Mailbox, message: Message) -> None:
        """POST /messages/{id}/send: the draft becomes the Sent Items copy (the immutable id survives [D])."""
        if not message.is_draft:
            raise bad_request("The item is not a draft and cannot be sent.", "ErrorInvalidOperation")
        recipients = render.recipients(render.parse(message.raw), "To", "Cc", "Bcc")
        if not recipients:
            raise bad_request(
                "At least one recipient is not valid., A message can't be sent because it contains "
                "no recipients.",
                "ErrorInvalidRecipients",
            )
        now = self.now()
        message.is_draft = False
        message.draft = None
        self.move(mailbox, message, mailbox.well_known("sentitems"))
        addresses = [r["emailAddress"]["address"] for r in recipients]
        mailbox.sent.append(SentMail(message.internet_message_id, addresses, message.raw, now, True))
        for address in dict.fromkeys(a.lower() for a in addresses):
            target = self.mailboxes.get(address)
            if target is not None:
                self.add(target, _without_bcc(message.raw), target.well_known("inbox"))

    def _message_id(self, mailbox: Mailbox) -> str:
        return f"<{self.ids.token(32).replace('-', 'A').replace('_', 'B')}@{_host(mailbox.address)}>"

    # ------------------------------------------------------------------ rendering

    def render(
        self,
        message: Message,
        select: list[str] | None,
        immutable: bool,
        prefer_text: bool = False,
        delta: bool = False,
    ) -> dict[str, Any]:
        if prefer_text not in message.mime_fields:
            message.mime_fields[prefer_text] = render.message_fields(message.raw, prefer_text)
        fields = dict(message.mime_fields[prefer_text])
        fields |= {
            "createdDateTime": render.iso(message.created),
            "lastModifiedDateTime": render.iso(message.modified),
            "changeKey": message.change_key,
            "categories": list(message.categories),
            "receivedDateTime": render.iso(message.received),
            "importance": message.importance,
            "parentFolderId": message.folder_id,
            "conversationId": message.conversation_id,
            "conversationIndex": message.conversation_index,
            "isRead": message.is_read,
            "isDraft": message.is_draft,
            "webLink": f"https://outlook.office365.com/owa/?ItemID={message.id(immutable)}&exvsurl=1&viewmodel=ReadMessageItem",
            "inferenceClassification": message.inference,
            "flag": dict(message.flag),
        }
        if fields["sentDateTime"] is None:
            fields["sentDateTime"] = render.iso(message.received)
        out: dict[str, Any] = {}
        if delta:
            out["@odata.type"] = "#microsoft.graph.message"
        out["@odata.etag"] = f'W/"{message.change_key}"'
        out["id"] = message.id(immutable)
        wanted = select if select is not None else list(render.DEFAULT_PROPERTIES)
        by_lower = {k.lower(): k for k in fields}
        for name in wanted:
            key = by_lower.get(name.lower())
            if key is not None and name.lower() != "id":
                out[key] = fields[key]
        return out

    def mime(self, message: Message) -> bytes:
        """GET /messages/{id}/$value: the MIME Exchange keeps, CRLF line ends [R: Exchange re-serialises]."""
        return re.sub(rb"\r?\n", b"\r\n", message.raw)


def _internet_message_id(raw: bytes) -> str | None:
    ids = render.message_ids(render.header_text(render.parse(raw), "Message-ID"))
    return ids[0] if ids else None


def _thread_index(value: str | None) -> bytes | None:
    if not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=False)
    except ValueError:
        return None
    return decoded if len(decoded) >= 22 else None


def _without_bcc(raw: bytes) -> bytes:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = raw.partition(b"\n\n")
    lines = re.split(rb"\r?\n", head)
    kept: list[bytes] = []
    skipping = False
    for line in lines:
        if line[:1] in (b" ", b"\t") and skipping:
            continue
        skipping = line.lower().startswith(b"bcc:")
        if not skipping:
            kept.append(line)
    return b"\r\n".join(kept) + (sep or b"\r\n\r\n") + body


def _host(address: str) -> str:
    domain = address.rpartition("@")[2].replace(".", "")[:20] or "contoso"
    return f"{domain.upper()}PR01MB0001.eurprd01.prod.outlook.com"
