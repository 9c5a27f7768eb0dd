"""Stored mail as the API shows it: list with filters, read one, flag it (pushed back to the
mailboxes through the SyncQueue), presigned downloads and thread views.

Email items are a persistence shape (keys, string sets, Decimals, bodies possibly in S3, `from`
under "from"); every function here maps them to `mailbridge.models.mail` explicitly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import ConfigDict, Field

from mailbridge.access import Access, Visibility, access_of, project
from mailbridge.ai.models import Category
from mailbridge.ai.reply import split_reply
from mailbridge.bus import DomainEvent, EventPublisher
from mailbridge.errors import EventPublishError, FeatureDisabled, Invalid, NotFound
from mailbridge.models.base import Model
from mailbridge.models.email import (
    AttachmentMeta,
    BounceReport,
    CalendarPart,
    EmailAddress,
    ListInfo,
)
from mailbridge.models.mail import (
    Email,
    EmailSummary,
    Location,
    PresignedUrl,
    SendStatus,
    ThreadSummary,
    ThreadView,
)
from mailbridge.observability import logger
from mailbridge.queues import SyncQueue
from mailbridge.search import MAX_QUERY_WORDS, query_terms, words
from mailbridge.store.base import Item, is_condition_failure
from mailbridge.store.blobs import PRESIGN_SECONDS, BlobStore
from mailbridge.store.conditions import Attr
from mailbridge.store.emails import (
    THREAD_ATTRIBUTES,
    EmailStore,
    Source,
    account_source,
    email_filter,
    sender_source,
    snoozed_source,
    status_source,
    tenant_source,
    thread_source,
    unread_source,
)
from mailbridge.store.fill import PAGE_BUDGET, Budget, Repeats, Resolve, fill
from mailbridge.store.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page
from mailbridge.sync.messages import PushFlags
from mailbridge.tenancy import Role, TenantContext

# Anchored for pydantic `pattern` (api/); Python checks use fullmatch.
EMAIL_ID = re.compile(r"^em_[0-9a-f]{26}$")
THREAD_ID = re.compile(r"^th_[0-9a-f]{24}$")
# A whole address for the `from` filter: something@domain.tld, no spaces (RFC 5322 addr-spec, loosely).
ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")

T = TypeVar("T")

# IMAP system flags (the same names mailbridge.sync.ingest reads; not imported from there because
# that module pulls the MIME stack into the API's cold start).
SEEN, FLAGGED = "\\Seen", "\\Flagged"
IMAP_FLAG = {"read": SEEN, "flagged": FLAGGED}

RAW_CONTENT_TYPE = "message/rfc822"


class EmailQuery(Model):
    """The filters of `GET /emails` (all optional; they combine with AND)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account_id: str | None = None
    folder: str | None = None
    thread_id: str | None = None
    sender: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    unread: bool | None = None
    q: str | None = None
    status: SendStatus | None = None
    category: Category | None = None
    include_deleted: bool = False
    snoozed: bool = False
    limit: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    cursor: str | None = None


class EmailPatch(Model):
    """`PATCH /emails/{id}`: the flags to set; fields left out keep their value."""

    model_config = ConfigDict(extra="forbid")

    read: bool | None = Field(default=None, description="Mark read (IMAP \\Seen) or unread")
    flagged: bool | None = Field(default=None, description="Flag (IMAP \\Flagged) or unflag")
    archived: bool | None = Field(
        default=None,
        description="Archive: out of the inbox, kept (RFC 6154 \\Archive; Gmail: the INBOX label "
        "removed; IMAP: MOVE, RFC 6851, from INBOX to the account's \\Archive folder; Microsoft 365: "
        "move to `archive`); false puts it back in the inbox",
    )
    trashed: bool | None = Field(
        default=None,
        description="Move to the trash (RFC 6154 \\Trash; Gmail `messages.trash`); false restores it "
        "(Gmail `messages.untrash`; IMAP: MOVE to the \\Trash folder, back to INBOX; Microsoft 365: "
        "move to `deleteditems`, back to `inbox`). "
        "`archived: true` with `trashed: true` is 400 `conflicting_changes`",
    )
    category: Category | None = Field(
        default=None,
        description="Correct the AI category (needs the ai flag): stored as the user's, never "
        "overwritten by a later run; repeated corrections for a sender make a rule (GET /ai/rules)",
    )


# ---------------------------------------------------------------------------------- mapping


def _plain(value: Any) -> Any:
    """DynamoDB's Decimals and sets as JSON-ish Python: ints/floats and sorted lists."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set | frozenset):
        return sorted(_plain(v) for v in value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _addresses(value: Any) -> list[EmailAddress]:
    return [EmailAddress(name=a.get("name"), address=str(a["address"])) for a in value or ()]


def _address(value: Any) -> EmailAddress | None:
    return EmailAddress(name=value.get("name"), address=str(value["address"])) if value else None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _strings(value: Any) -> list[str]:
    return sorted(str(v) for v in value or ())


def _summary_fields(item: Item) -> dict[str, Any]:
    return {
        "email_id": str(item["email_id"]),
        "thread_id": str(item["thread_id"]),
        "subject": _text(item.get("subject")),
        "from_": _addresses(item.get("from")),
        "to": _addresses(item.get("to")),
        "date": datetime.fromisoformat(str(item["date"])),
        "snippet": str(item.get("snippet") or ""),
        "read": bool(item.get("read")),
        "flagged": bool(item.get("flagged")),
        "answered": bool(item.get("answered")),
        "has_attachments": bool(item.get("has_attachments")),
        "direction": item.get("direction") or "inbound",
        "accounts": _strings(item.get("accounts")),
        "folders": _strings(item.get("folders")),
        "deleted": bool(item.get("deleted")),
        "status": item.get("send_status"),
        "send_at": datetime.fromisoformat(str(item["send_at"])) if item.get("send_at") else None,
        "failure": _plain(item["failure"]) if item.get("failure") else None,
        "category": item.get("category"),
        "snoozed_until": (
            datetime.fromisoformat(str(item["snoozed_until"])) if item.get("snoozed_until") else None
        ),
    }


def to_summary(item: Item) -> EmailSummary:
    return EmailSummary.model_validate(_summary_fields(item))


def to_location(item: Item) -> Location:
    modseq = item.get("modseq")
    return Location(
        account_id=str(item["account_id"]),
        folder=str(item["folder"]),
        uidvalidity=int(item["uidvalidity"]),
        uid=int(item["uid"]),
        flags=_strings(item.get("flags")),
        modseq=None if modseq is None else int(modseq),
    )


def to_email(item: Item, bodies: Mapping[str, Any], locations: Iterable[Item]) -> Email:
    """`bodies` holds text_body, html_body and calendar (from the item, or its S3 body document).

    `reply_text` and `signature` are computed here, on read, from the text body already loaded
    (plain Python, no further request): nothing to store or migrate when the rules improve."""
    calendar, bounce, listinfo = bodies.get("calendar"), item.get("bounce"), item.get("list")
    text_body = _text(bodies.get("text_body"))
    reply = split_reply(text_body)
    return Email.model_validate(
        {
            **_summary_fields(item),
            "message_id": _text(item.get("message_id")),
            "in_reply_to": _text(item.get("in_reply_to")),
            "references": [str(r) for r in item.get("references") or ()],
            "sender": _address(item.get("sender")),
            "reply_to": _addresses(item.get("reply_to")),
            "cc": _addresses(item.get("cc")),
            "bcc": _addresses(item.get("bcc")),
            "date_source": str(item.get("date_source") or "none"),
            "text_body": text_body,
            "html_body": _text(bodies.get("html_body")),
            "reply_text": reply.reply_text,
            "signature": reply.signature,
            "attachments": [AttachmentMeta.model_validate(_plain(a)) for a in item.get("attachments") or ()],
            "calendar": CalendarPart.model_validate(_plain(calendar)) if calendar else None,
            "bounce": BounceReport.model_validate(_plain(bounce)) if bounce else None,
            "auto_submitted": _text(item.get("auto_submitted")),
            "precedence": _text(item.get("precedence")),
            "list_": ListInfo.model_validate(_plain(listinfo)) if listinfo else None,
            "size": int(item.get("size") or 0),
            "locations": [to_location(loc) for loc in sorted(locations, key=lambda loc: str(loc["sk"]))],
            "template": _plain(item["template"]) if item.get("template") else None,
            **_categorization_fields(item),
        }
    )


_AI_FLAGS = ("is_spam", "is_bulk", "is_automated", "needs_reply", "action_requested", "is_lead")


def _categorization_fields(item: Item) -> dict[str, Any]:
    """What `mailbridge.ai.service` stored on the email (nothing until it is categorized)."""
    if not item.get("category"):
        return {}
    confidence = item.get("confidence")
    return {
        "category_source": item.get("category_source") or "model",
        **{name: bool(item.get(name)) for name in _AI_FLAGS},
        "confidence": None if confidence is None else float(confidence),
        "reasons": [str(r) for r in item.get("reasons") or ()],
    }


def participants(address_lists: Iterable[Iterable[EmailAddress]]) -> list[EmailAddress]:
    """Unique by lower-cased address, in order of first appearance; the first name seen wins."""
    found: dict[str, EmailAddress] = {}
    for addresses in address_lists:
        for address in addresses:
            key = address.address.lower()
            known = found.get(key)
            if known is None:
                found[key] = address
            elif not known.name and address.name:
                found[key] = EmailAddress(name=address.name, address=known.address)
    return list(found.values())


# ---------------------------------------------------------------------------------- filters


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    # A datetime without an offset is taken as UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def normalize_query(query: EmailQuery) -> EmailQuery:
    """Check the rules between filters; blank text filters count as absent, times become UTC."""
    changes: dict[str, Any] = {
        name: (getattr(query, name) or "").strip() or None for name in ("sender", "q", "folder")
    }
    changes.update(since=_utc(query.since), until=_utc(query.until))
    normalized = query.model_copy(update=changes)
    if normalized.folder and not normalized.account_id:
        raise Invalid("folder can only be used together with account_id", code="folder_needs_account")
    if normalized.since and normalized.until and normalized.until < normalized.since:
        raise Invalid("until must not be before since", code="invalid_date_range")
    if len(dict.fromkeys(words(normalized.q or ""))) > MAX_QUERY_WORDS:
        raise Invalid(f"q may hold at most {MAX_QUERY_WORDS} words", code="too_many_search_words")
    return normalized


def is_address(value: str) -> bool:
    """A whole address (local@domain) rather than a part of a name or address."""
    return ADDRESS.fullmatch(value) is not None


def _sender_matches(item: Item, needle: str) -> bool:
    senders = [a for a in item.get("from") or () if a.get("address")]
    if is_address(needle):
        # A whole address names the sender: the first From address (what the sender index holds).
        return bool(senders) and str(senders[0]["address"]).lower() == needle.lower()
    needle = needle.lower()
    return any(
        needle in str(a.get("address") or "").lower() or needle in str(a.get("name") or "").lower()
        for a in senders
    )


def matches(item: Item, query: EmailQuery) -> bool:
    """Every filter of a normalized query, checked on a stored email item."""
    search = str(item.get("search") or "")
    checks = [
        query.include_deleted or not item.get("deleted"),
        query.unread is None or bool(item.get("read")) != query.unread,
        all(term in search for term in query_terms(query.q)),
        not query.sender or _sender_matches(item, query.sender),
        not query.thread_id or item.get("thread_id") == query.thread_id,
        not query.status or item.get("send_status") == query.status,
        not query.category or item.get("category") == query.category,
        not query.account_id or query.account_id in (item.get("accounts") or ()),
        not query.folder or f"{query.account_id}:{query.folder}" in (item.get("folders") or ()),
        bool(item.get("snoozed_until")) == query.snoozed,
    ]
    if query.since or query.until:
        date = datetime.fromisoformat(str(item["date"]))
        checks.append(query.since is None or date >= query.since)
        checks.append(query.until is None or date <= query.until)
    return all(checks)


def choose_source(tenant_id: str, query: EmailQuery) -> Source:
    """The index partition that holds the fewest emails a normalized query does not want.

    Thread, send status and sender address each name a small partition; snoozed mail is a sparse
    index (every email a snooze hides, deleted ones too: a page of `snoozed=true` is one Query
    however much other mail the tenant has); unread mail is a sparse index (without deleted mail,
    so not with `include_deleted`); an account reads its mailboxes' locations. Everything else
    reads the tenant's emails newest first, filtered.
    """
    if query.thread_id:
        return thread_source(tenant_id, query.thread_id)
    if query.snoozed:
        return snoozed_source(tenant_id)
    if query.status:
        return status_source(tenant_id, query.status)
    if query.sender and is_address(query.sender):
        return sender_source(tenant_id, query.sender)
    if query.unread and not query.include_deleted:
        return unread_source(tenant_id)
    return account_source(tenant_id, query.account_id) if query.account_id else tenant_source(tenant_id)


# ---------------------------------------------------------------------------------- listing


@dataclass
class _Walk:
    """The emails a normalized query selects, newest first, read from its source with a budget."""

    ctx: TenantContext
    query: EmailQuery
    store: EmailStore
    budget: Budget
    source: Source = field(init=False)
    on_page: set[str] = field(default_factory=set)
    access: Access = field(init=False)

    def __post_init__(self) -> None:
        self.source = choose_source(self.ctx.tenant_id, self.query)
        self.access = access_of(self.ctx)

    @property
    def by_location(self) -> bool:
        return self.source.partition.endswith(f"#ACC#{self.query.account_id}")

    def read(self, cursor: str | None, limit: int) -> tuple[list[Item], str | None]:
        query = self.query
        if self.by_location:
            # Locations carry the folder; the emails they point to are checked for the rest.
            filters = Attr("folder").eq(query.folder) if query.folder else None
        else:
            filters = email_filter(
                include_deleted=query.include_deleted,
                read=None if query.unread is None else not query.unread,
                search=query_terms(query.q),
                account_id=query.account_id,
                folder=query.folder,
                category=query.category,
                snoozed=query.snoozed,
            )
        return self.store.read_source(
            self.ctx.tenant_id,
            self.source,
            cursor=cursor,
            limit=limit,
            since=query.since.isoformat() if query.since else None,
            until=query.until.isoformat() if query.until else None,
            filters=filters,
        )

    def emails(self, items: list[Item]) -> list[Item | None]:
        """The wanted email of each read item (None: not wanted, or shown by an earlier item)."""
        if not self.by_location:
            return [
                seen(self.access, item, self.query) if matches(item, self.query) else None for item in items
            ]
        folder = self.query.folder
        rest = self.query.model_copy(update={"account_id": None, "folder": None})
        wanted = [loc for loc in items if not folder or loc.get("folder") == folder]
        fresh = [e for e in dict.fromkeys(str(loc["email_id"]) for loc in wanted) if e not in self.on_page]
        found = (
            self.store.batch_get_emails(self.ctx.tenant_id, fresh, self.budget, projection=THREAD_ATTRIBUTES)
            if fresh
            else {}
        )
        out: list[Item | None] = []
        for loc in items:
            email = found.get(str(loc["email_id"])) if not folder or loc.get("folder") == folder else None
            shown = None if email is None or not matches(email, rest) else seen(self.access, email, rest)
            if shown is None or str(shown["email_id"]) in self.on_page:
                out.append(None)
                continue
            self.on_page.add(str(shown["email_id"]))
            out.append(shown)
        return out

    def page(
        self,
        resolve: Resolve[T],
        limit: int,
        cursor: str | None,
        repeats: Repeats[T] | None = None,
        *,
        read_ahead: int = 1,
    ) -> tuple[list[T], str | None]:
        """A page through `fill`; `read_ahead` reads that many items per item asked for (up to
        MAX_PAGE_SIZE a read), for listings where several read items make one result."""

        def read(cursor: str | None, size: int) -> tuple[list[Item], str | None]:
            return self.read(cursor, min(MAX_PAGE_SIZE, size * read_ahead))

        return fill(
            read,
            resolve,
            lambda item: self.store.cursor_after(
                self.ctx.tenant_id,
                self.source,
                item,
                since=self.query.since.isoformat() if self.query.since else None,
                until=self.query.until.isoformat() if self.query.until else None,
            ),
            limit=limit,
            cursor=cursor,
            budget=self.budget,
            max_read=MAX_PAGE_SIZE,
            round_cost=2 if self.by_location else 1,
            repeats=repeats if self.by_location else None,
        )


def seen(access: Access, item: Item, query: EmailQuery) -> Item | None:
    """The item as the caller sees it (`mailbridge.access.project`), or None when it is private to
    them. `q` and `category` select only mail the caller sees in full: the stored word list and
    the AI's category are made from the body, so matching them on mail seen at a lower level
    would tell what its body says."""
    level = access.level(item)
    if level is Visibility.PRIVATE:
        return None
    if (query.q or query.category) and level is not Visibility.FULL:
        return None
    return project(item, level)


def _private_account(ctx: TenantContext, query: EmailQuery) -> bool:
    """The query names a mailbox the caller may see nothing of: its listing is empty."""
    return (
        bool(query.account_id) and access_of(ctx).account_level(str(query.account_id)) is Visibility.PRIVATE
    )


def _shown_again(location: Item, page: list[EmailSummary]) -> bool:
    """A location of an email the page already shows (the same email in another folder)."""
    return any(summary.email_id == location["email_id"] for summary in page)


def list_emails(ctx: TenantContext, query: EmailQuery, store: EmailStore) -> Page[EmailSummary]:
    """Newest first, `limit` per page whenever that many match (see `mailbridge.store.fill`), each
    as the caller may see it (mailbridge.access: mail private to them is not listed)."""
    query = normalize_query(query)
    if _private_account(ctx, query):
        return Page[EmailSummary](items=[], next_cursor=None)
    walk = _Walk(ctx, query, store, Budget(PAGE_BUDGET))

    def resolve(items: list[Item], _wanted: int) -> list[EmailSummary | None]:
        return [None if email is None else to_summary(email) for email in walk.emails(items)]

    summaries, cursor = walk.page(resolve, query.limit, query.cursor, _shown_again)
    return Page[EmailSummary](items=summaries, next_cursor=cursor)


def list_threads(ctx: TenantContext, query: EmailQuery, store: EmailStore) -> Page[ThreadSummary]:
    """Threads with at least one email the filters select, by their newest such email, newest first.

    The emails are walked as `list_emails` walks them (two at a time per thread asked for: a
    conversation's emails often sit side by side); a thread is shown at its newest selected email,
    found by reading the whole thread, so it shows once across all pages. The threads of a read
    are read together: one BatchGetItem of their member lists (THREAD items), one per 100 of the
    members not in hand, so a page costs the same few requests whatever its size (a thread past
    THREAD_MEMBERS_MAX members, or stored before member lists existed, is queried on its own).
    Each page may make `PAGE_BUDGET` requests plus two per thread it shows.
    """
    query = normalize_query(query)
    if _private_account(ctx, query):
        return Page[ThreadSummary](items=[], next_cursor=None)
    walk = _Walk(ctx, query, store, Budget(PAGE_BUDGET + 2 * query.limit))
    decided: set[str] = set()

    def resolve(items: list[Item], wanted: int) -> list[ThreadSummary | None]:
        emails = walk.emails(items)
        out: list[ThreadSummary | None] = []
        shown = 0
        while len(out) < len(emails) and shown < wanted:
            if out and walk.budget.left <= 0:
                break  # out of requests: the page ends here
            # The next threads this read may show, as many as the page still wants.
            group: dict[str, Item] = {}
            for email in emails[len(out) :]:
                thread_id = None if email is None else str(email["thread_id"])
                if email is not None and thread_id not in decided and thread_id not in group:
                    if len(group) == wanted - shown:
                        break
                    group[str(thread_id)] = email
            in_hand = {str(e["email_id"]): e for e in emails if e is not None}
            members = _thread_messages_of(ctx.tenant_id, group, in_hand, store, walk.budget)
            for email in emails[len(out) :]:
                thread_id = None if email is None else str(email["thread_id"])
                if email is None or thread_id in decided:
                    out.append(None)
                    continue
                if thread_id not in group:
                    break  # the next group's
                decided.add(str(thread_id))
                summary = thread_summary(email, members.get(str(thread_id), [email]), query, walk.access)
                shown += summary is not None
                out.append(summary)
                if shown == wanted:
                    break
        return out

    threads, cursor = walk.page(resolve, query.limit, query.cursor, read_ahead=2)
    return Page[ThreadSummary](items=threads, next_cursor=cursor)


def thread_messages(
    tenant_id: str, thread_ids: list[str], in_hand: Mapping[str, Item], store: EmailStore, budget: Budget
) -> dict[str, list[Item]]:
    """Every email of each thread (`THREAD_ATTRIBUTES`), by thread id: the member lists in one
    batched read, then the members not in hand (or in hand without every attribute) in batches."""
    if not thread_ids:
        return {}
    lists = store.thread_members(tenant_id, thread_ids, budget)
    out: dict[str, list[Item]] = {}
    wanted: dict[str, list[str]] = {}
    for thread_id in thread_ids:
        listed = lists.get(thread_id)
        if listed is None or listed.get("overflow") or not listed.get("members"):
            out[thread_id] = store.thread_emails(tenant_id, thread_id, budget)
        else:
            wanted[thread_id] = sorted(str(m) for m in listed["members"])
    complete = {e: item for e, item in in_hand.items() if all(a in item for a in ("cc", "gsi1sk"))}
    missing = [e for ids in wanted.values() for e in ids if e not in complete]
    fetched = (
        store.batch_get_emails(tenant_id, missing, budget, projection=THREAD_ATTRIBUTES) if missing else {}
    )
    found = {**complete, **fetched}
    for thread_id, ids in wanted.items():
        out[thread_id] = [found[e] for e in ids if e in found and found[e].get("thread_id") == thread_id]
    return out


def _thread_messages_of(
    tenant_id: str, group: Mapping[str, Item], in_hand: Mapping[str, Item], store: EmailStore, budget: Budget
) -> dict[str, list[Item]]:
    """`thread_messages` of the group's threads; a list that lacks the group's own email (stored
    before member lists existed) is read again by querying the thread."""
    out = thread_messages(tenant_id, list(group), in_hand, store, budget)
    for thread_id, email in group.items():
        if all(m["email_id"] != email["email_id"] for m in out.get(thread_id, [])):
            out[thread_id] = store.thread_emails(tenant_id, thread_id, budget)
    return out


def thread_summary(
    email: Item, messages: list[Item], query: EmailQuery, access: Access
) -> ThreadSummary | None:
    """The thread of `email` when `email` is its newest message the query selects, else None.

    Counts and participants cover the thread's emails a mailbox still holds (all of them with
    `include_deleted`) that the caller may see (`access`; each as they see it: the subject is
    shown when they see the first email at `subject` or above); the date and snippet are those
    of `email` (as the caller sees it).
    """
    shown = {str(m["email_id"]): seen(access, m, query) for m in messages}
    selected = [m for m in messages if shown[str(m["email_id"])] is not None and matches(m, query)]
    newest = max(selected, key=lambda m: str(m["gsi1sk"]), default=None)
    if newest is None or newest["email_id"] != email["email_id"]:
        return None
    visible = [v for m in messages if (v := access.visible(m)) is not None]
    live = sorted(
        (m for m in visible if query.include_deleted or not m.get("deleted")), key=lambda m: str(m["gsi1sk"])
    )
    return ThreadSummary(
        thread_id=str(email["thread_id"]),
        subject=_text(live[0].get("subject")) if live else _text(email.get("subject")),
        participants=participants(_addresses(m.get(f)) for m in live for f in ("from", "to", "cc")),
        message_count=len(live),
        unread_count=sum(1 for m in live if not m.get("read")),
        last_email_id=str(email["email_id"]),
        last_message_date=datetime.fromisoformat(str(email["date"])),
        snippet=str(email.get("snippet") or ""),
    )


# ---------------------------------------------------------------------------------- one email


def _stored_item(ctx: TenantContext, email_id: str, store: EmailStore) -> Item | None:
    return store.get_email(ctx.tenant_id, email_id) if EMAIL_ID.fullmatch(email_id) else None


def _email_item(ctx: TenantContext, email_id: str, store: EmailStore) -> Item:
    """The email for a write or a read of its body: the caller must see it in full
    (mailbridge.access); 404 `not_found` otherwise, as for an email that does not exist."""
    return access_of(ctx).read_body(_stored_item(ctx, email_id, store), NotFound("no such email"))


def _writable_item(ctx: TenantContext, email_id: str, store: EmailStore) -> Item:
    return access_of(ctx).require_write(_stored_item(ctx, email_id, store), NotFound("no such email"))


def _load_email(ctx: TenantContext, item: Item, store: EmailStore, blobs: BlobStore) -> Email:
    """`item` as projected for the caller: without `body_key` (below `full`) no body is read."""
    body_key = item.get("body_key")
    bodies: Mapping[str, Any] = blobs.get_json(str(body_key)) if body_key else item
    loc_keys = _strings(item.get("loc_keys"))
    locations = store.batch_get_sks(ctx.tenant_id, loc_keys) if loc_keys else []
    shown = set(access_of(ctx).visible_accounts({str(loc.get("account_id")) for loc in locations}))
    return to_email(item, bodies, [loc for loc in locations if str(loc.get("account_id")) in shown])


def get_email(ctx: TenantContext, email_id: str, store: EmailStore, blobs: BlobStore) -> Email:
    """The message with bodies and mailbox locations, as the caller may see it (mailbridge.access:
    404 `not_found` for mail private to them; below `full`, no bodies, no attachments); deleted
    emails too (`deleted: true`). A read of another user's body is audited."""
    access = access_of(ctx)
    item = access.require(_stored_item(ctx, email_id, store), Visibility.METADATA, NotFound("no such email"))
    if access.level(item) is Visibility.FULL:
        item = access.read_body(item, NotFound("no such email"))
    return _load_email(ctx, item, store, blobs)


def read_email(ctx: TenantContext, email_id: str, store: EmailStore, blobs: BlobStore) -> Email:
    """The whole message, for a use of its text (AI context: summaries, replies, lead extraction):
    the caller must see it in full (mailbridge.access), else 404 `not_found`; a read of another
    user's body is audited."""
    return _load_email(ctx, _email_item(ctx, email_id, store), store, blobs)


def fully_visible(ctx: TenantContext, items: Iterable[Item]) -> list[Item]:
    """The items (email items with `accounts`) the caller sees in full (mailbridge.access)."""
    access = access_of(ctx)
    return [item for item in items if access.level(item) is Visibility.FULL]


CategoryCorrection = Callable[[TenantContext, Item, Category], dict[str, Any]]
"""Stores a user's category on an email item and learns from it (`mailbridge.ai.service`);
returns the values it set."""


def update_email(
    ctx: TenantContext,
    email_id: str,
    patch: EmailPatch,
    store: EmailStore,
    blobs: BlobStore,
    queue: SyncQueue,
    correct: CategoryCorrection | None = None,
    publisher: EventPublisher | None = None,
) -> Email:
    """Set read/flagged now and ask the sync function to write the flags to every mailbox; a
    `category` goes to `correct` (the AI corrections, which check the tenant's ai flag). A change
    of read, flagged, archived or trashed is announced as `email.updated` on `publisher`'s bus
    (`data = {email_id, account_id, thread_id, changes}`), which the user's open WebSocket
    connections receive (mailbridge.realtime)."""
    ctx.require(Role.MEMBER)
    changes: dict[str, bool] = patch.model_dump(
        exclude_none=True, exclude={"category", "archived", "trashed"}
    )
    moves = patch.model_dump(exclude_none=True, include={"archived", "trashed"})
    if not changes and not moves and patch.category is None:
        raise Invalid("send at least one of read, flagged, archived, trashed, category", code="empty_patch")
    if patch.archived and patch.trashed:
        raise Invalid("an email is archived or trashed, not both", code="conflicting_changes")
    item = _writable_item(ctx, email_id, store)
    if patch.category is not None:
        if correct is None:
            raise FeatureDisabled("the ai feature is not available here")
        item = {**item, **correct(ctx, item, patch.category)}
    if not changes and not moves:
        return _load_email(ctx, item, store, blobs)
    if changes or moves:
        # archived/trashed are stored as asked too: the sync compares the server's folder change
        # with them, so the mailbox's echo of this move is not announced a second time.
        try:
            store.update_email(ctx.tenant_id, email_id, **changes, **moves)
        except Exception as exc:
            if is_condition_failure(exc):
                raise NotFound("no such email") from exc
            raise
    add = [IMAP_FLAG[name] for name, on in changes.items() if on]
    remove = [IMAP_FLAG[name] for name, on in changes.items() if not on]
    pushes = [
        PushFlags(
            tenant_id=ctx.tenant_id,
            account_id=account_id,
            email_id=email_id,
            add=add,
            remove=remove,
            archived=patch.archived,
            trashed=patch.trashed,
        )
        for account_id in _strings(item.get("accounts"))
    ]
    if pushes:
        queue.send_many(pushes)
    if publisher is not None:
        _announce_update(ctx, email_id, item, {**changes, **moves}, publisher)
    return _load_email(ctx, {**item, **changes}, store, blobs)


def _announce_update(
    ctx: TenantContext, email_id: str, item: Item, changes: dict[str, bool], publisher: EventPublisher
) -> None:
    """`email.updated`, best effort: the change is stored and queued for the mailboxes already,
    and a live update lost to a bus failure is not worth failing the request for."""
    accounts = _strings(item.get("accounts"))
    event = DomainEvent(
        detail_type="email.updated",
        tenant_id=ctx.tenant_id,
        data={
            "email_id": email_id,
            "account_id": accounts[0] if accounts else None,
            "thread_id": item.get("thread_id"),
            "changes": changes,
        },
    )
    try:
        publisher.publish([event])
    except EventPublishError:
        logger.warning("email.updated not announced", extra={"email_id": email_id})


def raw_url(ctx: TenantContext, email_id: str, store: EmailStore, blobs: BlobStore) -> PresignedUrl:
    item = _email_item(ctx, email_id, store)
    if not item.get("raw_key"):
        raise NotFound("the raw message is not stored", code="raw_not_found")
    filename = f"{email_id}.eml"
    url = blobs.presign_get(str(item["raw_key"]), filename=filename, content_type=RAW_CONTENT_TYPE)
    return PresignedUrl(url=url, expires_in=PRESIGN_SECONDS, filename=filename, content_type=RAW_CONTENT_TYPE)


def attachment_url(
    ctx: TenantContext, email_id: str, attachment_id: str, store: EmailStore, blobs: BlobStore
) -> PresignedUrl:
    item = _email_item(ctx, email_id, store)
    meta = next((a for a in item.get("attachments") or () if a.get("id") == attachment_id), None)
    if meta is None:
        raise NotFound("the email has no such attachment", code="attachment_not_found")
    filename = str(meta.get("filename") or attachment_id)
    content_type = str(meta.get("content_type") or "application/octet-stream")
    key = blobs.attachment_key(ctx.tenant_id, email_id, attachment_id)
    if item.get("attachments_stored") is False:
        _extract_attachment(item, attachment_id, key, content_type, blobs)
    url = blobs.presign_get(key, filename=filename, content_type=content_type)
    return PresignedUrl(url=url, expires_in=PRESIGN_SECONDS, filename=filename, content_type=content_type)


def _extract_attachment(
    item: Item, attachment_id: str, key: str, content_type: str, blobs: BlobStore
) -> None:
    """Store one attachment of a message whose attachments the sync left inside the raw MIME
    (messages up to `mailbridge.sync.ingest.LAZY_ATTACHMENTS_MAX_BYTES`): the first download parses
    the raw message and stores the part asked for under its usual key; later ones find it there.
    Attachment ids are the parts' order (`att-{n}`), the same in every normalization."""
    if blobs.head(key) is not None:
        return
    from mailbridge.mime import MimeError, normalize  # the MIME stack only on this path

    try:
        result = normalize(blobs.get(str(item["raw_key"])))
    except MimeError as exc:
        raise NotFound("the attachment cannot be read from the message", code="attachment_not_found") from exc
    data = next((part for meta, part in result.attachments if meta.id == attachment_id), None)
    if data is None:
        raise NotFound("the email has no such attachment", code="attachment_not_found")
    blobs.put(key, data, content_type)


# ---------------------------------------------------------------------------------- threads


def get_thread(
    ctx: TenantContext,
    thread_id: str,
    store: EmailStore,
    *,
    cursor: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
) -> ThreadView:
    """A page of the thread's messages, oldest first, each as the caller may see it
    (mailbridge.access: mail private to them is left out, pages filled); the subject is the
    thread's first visible message's. 404 `thread_not_found` when the caller sees none of it."""
    if not THREAD_ID.fullmatch(thread_id):
        raise NotFound("no such thread", code="thread_not_found")
    access = access_of(ctx)
    source = thread_source(ctx.tenant_id, thread_id)

    def read(page_cursor: str | None, size: int) -> tuple[list[Item], str | None]:
        return store.list_thread(ctx.tenant_id, thread_id, cursor=page_cursor, limit=size)

    def resolve(found: list[Item], _wanted: int) -> list[Item | None]:
        return [access.visible(item) for item in found]

    items, next_cursor = fill(
        read,
        resolve,
        lambda item: store.cursor_after(ctx.tenant_id, source, item),
        limit=limit,
        cursor=cursor,
        budget=Budget(PAGE_BUDGET),
        max_read=MAX_PAGE_SIZE,
    )
    first = items[0] if items and cursor is None else None
    if first is None:
        head, _ = fill(
            read,
            resolve,
            lambda item: store.cursor_after(ctx.tenant_id, source, item),
            limit=1,
            cursor=None,
            budget=Budget(PAGE_BUDGET),
            max_read=MAX_PAGE_SIZE,
        )
        if not head:
            raise NotFound("no such thread", code="thread_not_found")
        first = head[0]
    return ThreadView(
        thread_id=thread_id,
        subject=_text(first.get("subject")),
        participants=participants(
            _addresses(item.get(field)) for item in items for field in ("from", "to", "cc")
        ),
        messages=[to_summary(i) for i in items],
        next_cursor=next_cursor,
    )
