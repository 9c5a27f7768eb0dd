"""Gmail API v1 (users.*) over in-memory mailboxes, with Gmail's documented behaviour.

Sources: the gmail.v1 discovery document rev 20240520 (paths, parameters, schemas, scopes) and
the users.history.list / push guide text quoted in notes.md [D]. What Gmail does but does not
document is marked [R] where it is implemented.

Mailbox rules kept here:
* every change (message added, deleted, labels added/removed) is one history record whose id is
  the mailbox's new historyId: ids only grow, with gaps [D];
* records older than the retention (7 days by default: "typically valid for at least a week" [D])
  are dropped, and a `startHistoryId` before the oldest kept record answers 404 [D];
* system labels (Label.type doc [D]): INBOX, UNREAD, STARRED, IMPORTANT, SPAM, TRASH and the
  CATEGORY_* labels can be added or removed; SENT, DRAFT and CHAT cannot;
* trash adds TRASH and takes the message out of INBOX; untrash puts it back where it was [R];
  `messages.delete` is permanent and is the only change recorded as `messagesDeleted` [D];
* messages.send/insert/import join the requested `threadId` only when References or In-Reply-To
  name a message of that thread and the Subject matches (Message.threadId doc [D]); mail delivered
  to the user (import, the control API) joins a thread by the same two rules without a threadId [R].
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, getaddresses, parseaddr, parsedate_to_datetime
from typing import Any, ClassVar

from local.google import mime
from local.google.errors import ApiError, bad_request, not_found
from local.google.ids import Ids

SYSTEM_LABELS = (
    "INBOX",
    "SPAM",
    "TRASH",
    "UNREAD",
    "STARRED",
    "IMPORTANT",
    "SENT",
    "DRAFT",
    "CHAT",
    "CATEGORY_PERSONAL",
    "CATEGORY_SOCIAL",
    "CATEGORY_PROMOTIONS",
    "CATEGORY_UPDATES",
    "CATEGORY_FORUMS",
)
NOT_USER_SETTABLE = frozenset({"SENT", "DRAFT", "CHAT"})
HIDDEN_UNLESS_ASKED = frozenset({"SPAM", "TRASH"})
HISTORY_TYPES = ("messageAdded", "messageDeleted", "labelAdded", "labelRemoved")
MAX_PAGE = 500  # messages.list / history.list maxResults maximum [D]
DEFAULT_PAGE = 100


@dataclass
class Label:
    id: str
    name: str
    type: str
    message_list_visibility: str | None = None
    label_list_visibility: str | None = None
    color: dict[str, str] | None = None


@dataclass
class StoredMessage:
    id: str
    thread_id: str
    raw: bytes
    labels: list[str]
    internal_date: int  # epoch ms
    history_id: int
    was_in_inbox: bool = False  # remembered by trash for untrash [R]

    @property
    def rfc_message_id(self) -> str | None:
        ids = mime.message_ids(mime.header(self.raw, "Message-ID"))
        return ids[0] if ids else None


@dataclass
class HistoryRecord:
    id: int
    at: datetime
    messages: list[dict[str, str]]
    messages_added: list[dict[str, Any]] = field(default_factory=list)
    messages_deleted: list[dict[str, Any]] = field(default_factory=list)
    labels_added: list[dict[str, Any]] = field(default_factory=list)
    labels_removed: list[dict[str, Any]] = field(default_factory=list)
    labels_involved: frozenset[str] = frozenset()

    def types(self) -> set[str]:
        kinds = {
            "messageAdded": self.messages_added,
            "messageDeleted": self.messages_deleted,
            "labelAdded": self.labels_added,
            "labelRemoved": self.labels_removed,
        }
        return {kind for kind, entries in kinds.items() if entries}

    def render(self, wanted: set[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"id": str(self.id), "messages": self.messages}
        for kind, key, entries in (
            ("messageAdded", "messagesAdded", self.messages_added),
            ("messageDeleted", "messagesDeleted", self.messages_deleted),
            ("labelAdded", "labelsAdded", self.labels_added),
            ("labelRemoved", "labelsRemoved", self.labels_removed),
        ):
            if entries and kind in wanted:
                out[key] = entries
        return out


@dataclass
class Watch:
    topic_name: str
    label_ids: list[str]
    behavior: str  # "include" | "exclude"
    expiration: datetime

    def matches(self, record: HistoryRecord, now: datetime) -> bool:
        if now >= self.expiration:
            return False
        if not self.label_ids:
            return True
        hit = bool(record.labels_involved & set(self.label_ids))
        return hit if self.behavior == "include" else not hit


@dataclass
class SentMail:
    message_id: str
    recipients: list[str]
    raw: bytes
    at: datetime


@dataclass
class Mailbox:
    address: str
    history_id: int
    floor: int  # a startHistoryId below this is no longer answerable (404)
    messages: dict[str, StoredMessage] = field(default_factory=dict)
    labels: dict[str, Label] = field(default_factory=dict)
    history: list[HistoryRecord] = field(default_factory=list)
    watch: Watch | None = None
    sent: list[SentMail] = field(default_factory=list)
    next_label: int = 1
    drafts: dict[str, str] = field(default_factory=dict)  # draft id -> the id of its message

    def label_id(self, name_or_id: str) -> str | None:
        if name_or_id in self.labels:
            return name_or_id
        wanted = name_or_id.lower().replace("-", " ").replace("/", " ")
        for label in self.labels.values():
            if label.name.lower().replace("-", " ").replace("/", " ") == wanted:
                return label.id
        return None

    def thread(self, thread_id: str) -> list[StoredMessage]:
        found = [m for m in self.messages.values() if m.thread_id == thread_id]
        return sorted(found, key=lambda m: (m.internal_date, m.id))


@dataclass
class GmailSettings:
    history_retention: timedelta = timedelta(days=7)
    watch_lifetime: timedelta = timedelta(days=7)  # "re-call watch at least every 7 days" [D]


ChangeListener = Callable[[Mailbox, HistoryRecord], None]


class Gmail:
    """Mailboxes and the operations both the API and the control surface perform on them."""

    def __init__(self, ids: Ids, now: Callable[[], datetime], settings: GmailSettings | None = None) -> None:
        self.ids = ids
        self.now = now
        self.settings = settings or GmailSettings()
        self.mailboxes: dict[str, Mailbox] = {}
        self.listeners: list[ChangeListener] = []
        self._page_tokens: dict[str, tuple[str, int]] = {}

    # ------------------------------------------------------------------ mailboxes

    def create_mailbox(self, address: str) -> Mailbox:
        start = self.ids.history_start()
        mailbox = Mailbox(address=address, history_id=start, floor=start)
        for label_id in SYSTEM_LABELS:
            mailbox.labels[label_id] = Label(id=label_id, name=label_id, type="system")
        self.mailboxes[address.lower()] = mailbox
        return mailbox

    def mailbox(self, address: str) -> Mailbox:
        return self.mailboxes[address.lower()]

    # ------------------------------------------------------------------ history

    def _record(self, mailbox: Mailbox, touched: list[StoredMessage], **changes: Any) -> HistoryRecord:
        mailbox.history_id += self.ids.history_gap()
        involved: set[str] = set(changes.pop("involved", ()))
        for message in touched:
            message.history_id = mailbox.history_id
            involved |= set(message.labels)
        record = HistoryRecord(
            id=mailbox.history_id,
            at=self.now(),
            messages=[{"id": m.id, "threadId": m.thread_id} for m in touched],
            labels_involved=frozenset(involved),
            **changes,
        )
        mailbox.history.append(record)
        for listener in self.listeners:
            listener(mailbox, record)
        return record

    def prune_history(self, mailbox: Mailbox) -> None:
        cutoff = self.now() - self.settings.history_retention
        while mailbox.history and mailbox.history[0].at < cutoff:
            mailbox.floor = max(mailbox.floor, mailbox.history.pop(0).id)

    def truncate_history(self, mailbox: Mailbox) -> None:
        """Forget every record so far: any earlier startHistoryId now answers 404."""
        mailbox.history.clear()
        mailbox.floor = mailbox.history_id

    # ------------------------------------------------------------------ changes

    def add_message(
        self,
        mailbox: Mailbox,
        raw: bytes,
        labels: list[str],
        internal_date: datetime | None = None,
        thread_id: str | None = None,
        auto_thread: bool = False,
    ) -> StoredMessage:
        """Store a message (seed, delivery, send, insert, import) and record `messagesAdded`."""
        self._check_labels(mailbox, labels, user_settable_only=False)
        at = internal_date or self.now()
        message_id = self.ids.message_id(at)
        thread = self._thread_for(mailbox, raw, thread_id, auto_thread) or message_id
        ordered = [label for label in labels if label in mailbox.labels]
        message = StoredMessage(
            id=message_id,
            thread_id=thread,
            raw=raw,
            labels=list(dict.fromkeys(ordered)),
            internal_date=int(at.timestamp() * 1000),
            history_id=mailbox.history_id,
        )
        mailbox.messages[message.id] = message
        self._record(mailbox, [message], messages_added=[{"message": _ref(message, labels=True)}])
        return message

    def _thread_for(
        self, mailbox: Mailbox, raw: bytes, thread_id: str | None, auto_thread: bool
    ) -> str | None:
        if thread_id is not None and not mailbox.thread(thread_id):
            raise bad_request("Invalid thread_id value")
        if thread_id is None and not auto_thread:
            return None
        referenced = set(mime.message_ids(mime.header(raw, "References")))
        referenced |= set(mime.message_ids(mime.header(raw, "In-Reply-To")))
        subject = mime.normalized_subject(mime.header(raw, "Subject"))
        candidates = [thread_id] if thread_id else sorted({m.thread_id for m in mailbox.messages.values()})
        for candidate in candidates:
            members = mailbox.thread(candidate)
            if not members or not referenced & {m.rfc_message_id for m in members}:
                continue
            if mime.normalized_subject(mime.header(members[0].raw, "Subject")) == subject:
                return candidate
        return None

    def _check_labels(self, mailbox: Mailbox, labels: list[str], user_settable_only: bool) -> None:
        for label in labels:
            if label not in mailbox.labels or (user_settable_only and label in NOT_USER_SETTABLE):
                raise bad_request(f"Invalid label: {label}")

    def modify(
        self, mailbox: Mailbox, message: StoredMessage, add: list[str], remove: list[str]
    ) -> HistoryRecord | None:
        """Apply label changes; one history record with labelsAdded and/or labelsRemoved [D]."""
        self._check_labels(mailbox, [*add, *remove], user_settable_only=True)
        added = [label for label in dict.fromkeys(add) if label not in message.labels and label not in remove]
        removed = [label for label in dict.fromkeys(remove) if label in message.labels]
        return self._relabel(mailbox, message, added, removed)

    def batch_modify(self, mailbox: Mailbox, ids: list[str], add: list[str], remove: list[str]) -> None:
        """messages.batchModify: ids that are not in the mailbox are skipped [R]."""
        self._check_labels(mailbox, [*add, *remove], user_settable_only=True)
        for message_id in ids:
            message = mailbox.messages.get(message_id)
            if message is not None:
                self.modify(mailbox, message, add, remove)

    def _relabel(
        self, mailbox: Mailbox, message: StoredMessage, added: list[str], removed: list[str]
    ) -> HistoryRecord | None:
        if not added and not removed:
            return None
        message.labels = [label for label in message.labels if label not in removed] + added
        changes: dict[str, Any] = {"involved": [*added, *removed]}
        if added:
            changes["labels_added"] = [{"message": _ref(message, labels=True), "labelIds": added}]
        if removed:
            changes["labels_removed"] = [{"message": _ref(message, labels=True), "labelIds": removed}]
        return self._record(mailbox, [message], **changes)

    def trash(self, mailbox: Mailbox, message: StoredMessage) -> None:
        if "TRASH" in message.labels:
            return
        message.was_in_inbox = "INBOX" in message.labels
        self._relabel(mailbox, message, ["TRASH"], [x for x in ("INBOX", "SPAM") if x in message.labels])

    def untrash(self, mailbox: Mailbox, message: StoredMessage) -> None:
        if "TRASH" not in message.labels:
            return
        restore = ["INBOX"] if message.was_in_inbox and "INBOX" not in message.labels else []
        self._relabel(mailbox, message, restore, ["TRASH"])

    def delete(self, mailbox: Mailbox, message: StoredMessage) -> None:
        del mailbox.messages[message.id]
        self._record(
            mailbox,
            [message],
            messages_deleted=[{"message": _ref(message, labels=False)}],
            involved=message.labels,
        )

    def send(self, mailbox: Mailbox, raw: bytes, thread_id: str | None) -> StoredMessage:
        """messages.send: what Gmail stores in SENT and hands to the recipients [D/R]."""
        fields = mime.header_block(raw)
        names = {name.lower() for name, _ in fields}
        recipients = [
            address
            for _, address in getaddresses([v for k, v in fields if k.lower() in ("to", "cc", "bcc")])
            if address
        ]
        if not recipients:
            raise bad_request("Recipient address required")
        extra: list[str] = []
        now = self.now()
        if "message-id" not in names:
            extra.append(f"Message-ID: <CA{self.ids.token(40)}@mail.gmail.com>")
        if "date" not in names:
            extra.append(f"Date: {format_datetime(now)}")
        sender = parseaddr(next((v for k, v in fields if k.lower() == "from"), ""))[1]
        if sender.lower() != mailbox.address.lower():
            # Gmail sends as the account (or a verified alias) whatever From says [R].
            raw = _without_header(raw, "From")
            extra.append(f"From: {mailbox.address}")
        if extra:
            raw = ("\r\n".join(extra) + "\r\n").encode() + raw
        labels = ["SENT"]
        if mailbox.address.lower() in {r.lower() for r in recipients}:
            labels += ["INBOX", "UNREAD"]
        message = self.add_message(mailbox, raw, labels, thread_id=thread_id)
        mailbox.sent.append(SentMail(message_id=message.id, recipients=recipients, raw=raw, at=now))
        return message

    # ------------------------------------------------------------------ drafts [D: users.drafts]

    def create_draft(self, mailbox: Mailbox, raw: bytes, thread_id: str | None) -> tuple[str, StoredMessage]:
        """drafts.create: the message stored with the DRAFT label under a new, immutable draft id."""
        message = self.add_message(mailbox, raw, ["DRAFT"], thread_id=thread_id)
        draft_id = "r" + self.ids.digits(19)
        mailbox.drafts[draft_id] = message.id
        return draft_id, message

    def draft(self, mailbox: Mailbox, draft_id: str) -> StoredMessage:
        message_id = mailbox.drafts.get(draft_id)
        if message_id is None or message_id not in mailbox.messages:
            raise not_found()
        return mailbox.messages[message_id]

    def update_draft(
        self, mailbox: Mailbox, draft_id: str, raw: bytes, thread_id: str | None
    ) -> StoredMessage:
        """drafts.update: "Replaces a draft's content": the draft keeps its id, its message is a
        new one (the old one deleted) [D/R]."""
        old = self.draft(mailbox, draft_id)
        message = self.add_message(mailbox, raw, ["DRAFT"], thread_id=thread_id)
        self.delete(mailbox, old)
        mailbox.drafts[draft_id] = message.id
        return message

    def delete_draft(self, mailbox: Mailbox, draft_id: str) -> None:
        """drafts.delete: "Immediately and permanently deletes the specified draft" [D]."""
        message = self.draft(mailbox, draft_id)
        self.delete(mailbox, message)
        del mailbox.drafts[draft_id]

    def send_draft(self, mailbox: Mailbox, draft_id: str, raw: bytes | None) -> StoredMessage:
        """drafts.send: sends the existing draft (its content replaced first when the request
        carries a message) to the To, Cc and Bcc recipients, as messages.send does; the draft
        is gone afterwards. A refused send (no recipient) leaves the draft as it was [D/R]."""
        old = self.draft(mailbox, draft_id)
        sent = self.send(mailbox, raw if raw is not None else old.raw, old.thread_id)
        self.delete(mailbox, old)
        del mailbox.drafts[draft_id]
        return sent

    def start_watch(self, mailbox: Mailbox, topic_name: str, label_ids: list[str], behavior: str) -> datetime:
        """users.watch: (re)places the mailbox's one watch; returns its expiration [D]."""
        expiration = self.now() + self.settings.watch_lifetime
        mailbox.watch = Watch(
            topic_name=topic_name, label_ids=label_ids, behavior=behavior, expiration=expiration
        )
        return expiration

    def create_label(self, mailbox: Mailbox, body: dict[str, Any]) -> Label:
        name = str(body.get("name") or "").strip()
        if not name:
            raise bad_request("Invalid label name", location="name")
        if name.upper() in SYSTEM_LABELS or any(
            lbl.name.lower() == name.lower() for lbl in mailbox.labels.values()
        ):
            raise ApiError(409, "Label name exists or conflicts", "alreadyExists", status="ALREADY_EXISTS")
        label = Label(
            id=f"Label_{mailbox.next_label}",
            name=name,
            type="user",
            message_list_visibility=body.get("messageListVisibility") or "show",
            label_list_visibility=body.get("labelListVisibility") or "labelShow",
            color=body.get("color"),
        )
        mailbox.next_label += 1
        mailbox.labels[label.id] = label
        return label

    # ------------------------------------------------------------------ reads

    def find(self, mailbox: Mailbox, message_id: str) -> StoredMessage:
        if not re.fullmatch(r"[0-9a-f]{1,32}", message_id):
            raise bad_request("Invalid id value")
        message = mailbox.messages.get(message_id)
        if message is None:
            raise not_found()
        return message

    def render(
        self, message: StoredMessage, fmt: str = "full", metadata_headers: list[str] | None = None
    ) -> dict[str, Any]:
        """A Message resource in `format` minimal|full|raw|metadata [D]."""
        out: dict[str, Any] = {"id": message.id, "threadId": message.thread_id}
        if message.labels:
            out["labelIds"] = list(message.labels)
        out["snippet"] = mime.snippet(message.raw)
        out["sizeEstimate"] = len(message.raw)
        out["historyId"] = str(message.history_id)
        out["internalDate"] = str(message.internal_date)
        if fmt == "raw":
            out["raw"] = mime.b64url(message.raw)
        elif fmt == "metadata":
            out["payload"] = mime.metadata_payload(message.raw, metadata_headers or [])
        elif fmt == "full":
            out["payload"] = mime.payload(message.id, message.raw)[0]
        return out

    def attachment(self, message: StoredMessage, attachment_id: str) -> bytes:
        body = mime.payload(message.id, message.raw)[1].get(attachment_id)
        if body is None:
            raise not_found()
        return body

    def list_messages(
        self,
        mailbox: Mailbox,
        q: str | None,
        label_ids: list[str],
        include_spam_trash: bool,
        max_results: int,
        page_token: str | None,
    ) -> dict[str, Any]:
        """users.messages.list: `labelIds` are ids, every one must be on the message (discovery:
        "labels that match all of the specified label IDs") [D]; an id the mailbox has no label
        for (a label name, say) is 400 `Invalid label` [R]; SPAM and TRASH are left out unless
        asked for by `includeSpamTrash`, a label id or the query [D]."""
        for label in label_ids:
            if label not in mailbox.labels:
                raise bad_request(f"Invalid label: {label}", location="labelIds")
        matches = _Query(q or "", mailbox, self.now())
        shown = set(HIDDEN_UNLESS_ASKED)
        if include_spam_trash or matches.anywhere:
            shown = set()
        shown -= set(label_ids) | matches.asked_labels
        found = [
            m
            for m in mailbox.messages.values()
            if all(label in m.labels for label in label_ids) and not shown & set(m.labels) and matches(m)
        ]
        found.sort(key=lambda m: (m.internal_date, m.id), reverse=True)
        fingerprint = repr(("messages", q, sorted(label_ids), include_spam_trash))
        start = self._page_start(page_token, fingerprint)
        page = found[start : start + max_results]
        out: dict[str, Any] = {}
        if page:
            out["messages"] = [{"id": m.id, "threadId": m.thread_id} for m in page]
        if start + max_results < len(found):
            out["nextPageToken"] = self._page_token(fingerprint, start + max_results)
        out["resultSizeEstimate"] = len(found)
        return out

    def list_history(
        self,
        mailbox: Mailbox,
        start_history_id: str | None,
        history_types: list[str],
        label_id: str | None,
        max_results: int,
        page_token: str | None,
    ) -> dict[str, Any]:
        if not start_history_id:
            raise bad_request("Required parameter: startHistoryId", location="startHistoryId")
        if not start_history_id.isdigit():
            raise bad_request("Invalid startHistoryId", location="startHistoryId")
        for kind in history_types:
            if kind not in HISTORY_TYPES:
                raise bad_request(f"Invalid value at 'history_types': {kind}", location="historyTypes")
        self.prune_history(mailbox)
        start = int(start_history_id)
        if start < mailbox.floor:
            raise not_found()
        wanted = set(history_types or HISTORY_TYPES)
        fingerprint = repr(("history", start, sorted(wanted), label_id))
        after = max(start, self._page_start(page_token, fingerprint))
        selected: list[HistoryRecord] = []
        more = False
        for record in mailbox.history:
            if record.id <= after or not record.types() & wanted:
                continue
            if label_id and label_id not in record.labels_involved:
                continue
            if len(selected) == max_results:
                more = True
                break
            selected.append(record)
        out: dict[str, Any] = {}
        if selected:
            out["history"] = [record.render(wanted) for record in selected]
        if more:
            out["nextPageToken"] = self._page_token(fingerprint, selected[-1].id)
        out["historyId"] = str(mailbox.history_id)
        return out

    def _page_token(self, fingerprint: str, position: int) -> str:
        token = self.ids.digits(20)
        self._page_tokens[token] = (fingerprint, position)
        return token

    def _page_start(self, page_token: str | None, fingerprint: str) -> int:
        if not page_token:
            return 0
        stored = self._page_tokens.get(page_token)
        if stored is None or stored[0] != fingerprint:
            raise bad_request("Invalid pageToken", location="pageToken")
        return stored[1]

    def render_label(self, mailbox: Mailbox, label: Label, counts: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"id": label.id, "name": label.name}
        if label.message_list_visibility:
            out["messageListVisibility"] = label.message_list_visibility
        if label.label_list_visibility:
            out["labelListVisibility"] = label.label_list_visibility
        out["type"] = label.type
        if counts:
            with_label = [m for m in mailbox.messages.values() if label.id in m.labels]
            unread = [m for m in with_label if "UNREAD" in m.labels]
            out["messagesTotal"] = len(with_label)
            out["messagesUnread"] = len(unread)
            out["threadsTotal"] = len({m.thread_id for m in with_label})
            out["threadsUnread"] = len({m.thread_id for m in unread})
        if label.color:
            out["color"] = label.color
        return out

    def profile(self, mailbox: Mailbox) -> dict[str, Any]:
        return {
            "emailAddress": mailbox.address,
            "messagesTotal": len(mailbox.messages),
            "threadsTotal": len({m.thread_id for m in mailbox.messages.values()}),
            "historyId": str(mailbox.history_id),
        }


def _ref(message: StoredMessage, labels: bool) -> dict[str, Any]:
    ref: dict[str, Any] = {"id": message.id, "threadId": message.thread_id}
    if labels:
        ref["labelIds"] = list(message.labels)
    return ref


def _without_header(raw: bytes, name: str) -> bytes:
    end = re.search(rb"\r?\n\r?\n", raw)
    head, rest = (raw[: end.start()], raw[end.start() :]) if end else (raw, b"")
    lines = re.split(rb"(?<=\n)", head)
    out: list[bytes] = []
    skipping = False
    for line in lines:
        if line[:1] in (b" ", b"\t") and skipping:
            continue
        skipping = line.lower().startswith(name.lower().encode() + b":")
        if not skipping:
            out.append(line)
    return b"".join(out) + rest


class _Query:
    """The Gmail search operators the adapter and tests need (support.google.com/mail/answer/7190).

    in:/is:/label:, from:/to:/cc:/subject:/rfc822msgid:, after:/before: (YYYY/MM/DD or epoch
    seconds), newer_than:/older_than: (Nd, Nm, Ny), a leading `-` to negate, and bare words
    matched against the message text. Unknown operators are matched as words.
    """

    IN: ClassVar[dict[str, str]] = {
        "inbox": "INBOX",
        "sent": "SENT",
        "trash": "TRASH",
        "spam": "SPAM",
        "draft": "DRAFT",
        "drafts": "DRAFT",
        "starred": "STARRED",
        "important": "IMPORTANT",
        "unread": "UNREAD",
        "chats": "CHAT",
    }
    IS: ClassVar[dict[str, str]] = {"unread": "UNREAD", "starred": "STARRED", "important": "IMPORTANT"}

    def __init__(self, q: str, mailbox: Mailbox, now: datetime) -> None:
        self.mailbox = mailbox
        self.now = now
        self.anywhere = False
        self.asked_labels: set[str] = set()
        self.terms: list[tuple[bool, Callable[[StoredMessage], bool]]] = []
        try:
            words = shlex.split(q)
        except ValueError:
            words = q.split()
        for word in words:
            negate = word.startswith("-") and len(word) > 1
            self.terms.append((negate, self._term(word[1:] if negate else word)))

    def __call__(self, message: StoredMessage) -> bool:
        return all(test(message) != negate for negate, test in self.terms)

    def _term(self, word: str) -> Callable[[StoredMessage], bool]:
        operator, _, value = word.partition(":")
        operator, low = operator.lower(), value.lower()
        if operator == "in" and low in ("anywhere", "all"):
            self.anywhere = True
            return lambda _m: True
        if operator == "in" and low in self.IN:
            return self._label(self.IN[low])
        if operator == "is" and low == "read":
            return lambda m: "UNREAD" not in m.labels
        if operator == "is" and low in self.IS:
            return self._label(self.IS[low])
        if operator == "label" and value:
            label_id = self.mailbox.label_id(value) or self.mailbox.label_id(value.upper())
            return self._label(label_id) if label_id else (lambda _m: False)
        if operator in ("from", "to", "cc", "subject"):
            return lambda m: low in (mime.header(m.raw, operator) or "").lower()
        if operator == "rfc822msgid":
            return lambda m: (m.rfc_message_id or "").strip("<>").lower() == low.strip("<>")
        if operator in ("after", "before", "newer_than", "older_than"):
            bound = _time_bound(operator, low, self.now)
            if bound is not None:
                if operator in ("after", "newer_than"):
                    return lambda m: m.internal_date >= bound
                return lambda m: m.internal_date < bound
        return lambda m: word.lower() in m.raw.decode("utf-8", "replace").lower()

    def _label(self, label_id: str) -> Callable[[StoredMessage], bool]:
        self.asked_labels.add(label_id)
        return lambda m: label_id in m.labels


def _time_bound(operator: str, value: str, now: datetime) -> int | None:
    """Epoch ms for an after:/before: date or a newer_than:/older_than: age."""
    if operator in ("after", "before"):
        if value.isdigit():
            return int(value) * 1000
        match = re.fullmatch(r"(\d{4})[/-](\d{1,2})[/-](\d{1,2})", value)
        if not match:
            return None
        year, month, day = (int(g) for g in match.groups())
        return int(datetime(year, month, day, tzinfo=UTC).timestamp() * 1000)
    match = re.fullmatch(r"(\d+)([dmy])", value)
    if not match:
        return None
    days = int(match.group(1)) * {"d": 1, "m": 30, "y": 365}[match.group(2)]
    return int((now - timedelta(days=days)).timestamp() * 1000)


def parse_date_header(raw: bytes) -> datetime | None:
    try:
        value = mime.header(raw, "Date")
        return parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError):
        return None
