"""Store fetched messages: normalize, thread, write S3 + DynamoDB, or quarantine them.

A fetch batch is ingested as a batch, in stages; each stage is durable before the next starts:

  1. plan       normalize every message (CPU only), then read in one consistent BatchGetItem round
                what is stored already: the batch's locations, its emails, the Message-ID ->
                thread keys and the subject keys it needs. Threads are assigned in memory, in UID
                order, by the same `assign_thread` as one message after another would be.
  2. blobs      raw MIME, large bodies, quarantined input and (for big messages only) attachments,
                concurrently in a bounded pool (`BlobStore.put_many`; a rewrite stores the same bytes).
  3. keys and emails   TransactWriteItems, in this order: new Message-ID -> thread keys (first
                writer wins) and subject keys (newest wins), thread membership (set adds), new
                emails (conditional create, born with their locations) and existing emails gaining
                a location (set adds, the newest flags).
  4. locations  BatchWriteItem, with quarantine records: deterministic keys, plain puts.
The caller then announces (`Ingested.needs_announcement`) and only then moves the folder cursor.

Crash-safe by that order: replaying any prefix of the stages ends in the same state, because the
next attempt's read sees what the earlier one stored (an email that exists is attached to, not
created; a registered Message-ID gives the thread it was given). A lost condition (a concurrent
sync of another mailbox of the tenant got there first) writes nothing of its transaction: the
batch is planned again from a fresh read, which sees the winner.

Attachments are decided per message: a message of up to `LAZY_ATTACHMENTS_MAX_BYTES` keeps its
attachments only inside the raw MIME, and the first download extracts and stores the one asked
for (`mailbridge.emails.attachment_url`); a bigger message has them stored now, while it is
parsed anyway, so no API request ever parses a message that large.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mailbridge.errors import Conflict
from mailbridge.mime import MimeError, NormalizeResult, base_subject, normalize
from mailbridge.models.email import ParsedMessage
from mailbridge.providers.imap.models import FetchedMessage
from mailbridge.search import search_text
from mailbridge.store.batch import TransactionLost
from mailbridge.store.blobs import BlobStore, Upload
from mailbridge.store.emails import EmailStore, EmailWrites
from mailbridge.store.keys import (
    digest,
    email_sk,
    location_sk,
    message_id_sk,
    quarantine_sk,
    subject_sk,
    tenant_pk,
)
from mailbridge.sync.threads import assign_thread, provider_thread

# Bodies above this many characters live in S3 so items stay far below DynamoDB's 400 KB.
INLINE_BODY_LIMIT = 100_000
# Messages up to this size keep their attachments in the raw MIME until first downloaded.
LAZY_ATTACHMENTS_MAX_BYTES = 10_000_000
# Fresh plans after a lost condition before the batch is left to the queue's retry.
PLAN_ATTEMPTS = 4

SEEN, FLAGGED, ANSWERED = "\\Seen", "\\Flagged", "\\Answered"


@dataclass(frozen=True)
class Mailbox:
    """Where the message was found."""

    tenant_id: str
    account_id: str
    address: str
    folder: str
    uidvalidity: int
    is_sent_folder: bool = False


@dataclass(frozen=True)
class Ingested:
    """What became of one fetched message. `announcement` holds what `email.received` (or
    `email.sent`) tells of the email when `needs_announcement`."""

    email_id: str | None
    new_location: bool
    needs_announcement: bool
    quarantined: bool = False
    reason: str | None = None
    announcement: dict[str, Any] | None = None


def email_id_for(tenant_id: str, message: ParsedMessage, raw: bytes) -> str:
    """Same message in two mailboxes -> same id; without a Message-ID, the content decides."""
    if message.message_id:
        sender = message.from_[0].address.lower() if message.from_ else ""
        basis = f"mid\n{message.message_id}\n{sender}\n{message.subject or ''}"
    else:
        basis = f"raw\n{digest(raw.decode('latin-1'), 64)}"
    return "em_" + digest(f"{tenant_id}\n{basis}", 26)


def flag_state(flags: list[str] | tuple[str, ...]) -> dict[str, bool]:
    lowered = {f.lower() for f in flags}
    return {
        "read": SEEN.lower() in lowered,
        "flagged": FLAGGED.lower() in lowered,
        "answered": ANSWERED.lower() in lowered,
    }


def _addresses(values: Any) -> list[dict[str, Any]]:
    return [v.model_dump() for v in values]


def build_email_item(
    mailbox: Mailbox,
    email_id: str,
    thread_id: str,
    message: ParsedMessage,
    date: datetime,
    raw_key: str,
    blobs: BlobStore,
    flags: tuple[str, ...],
    uploads: list[Upload] | None = None,
) -> dict[str, Any]:
    """The email item. Bodies above INLINE_BODY_LIMIT go to S3: written now, or appended to
    `uploads` for the caller to write (before the item)."""
    tenant = mailbox.tenant_id
    iso = date.astimezone(UTC).isoformat()
    senders = {a.address.lower() for a in message.from_}
    outbound = mailbox.is_sent_folder or mailbox.address.lower() in senders
    bodies = {
        "text_body": message.text_body,
        "html_body": message.html_body,
        "calendar": message.calendar.model_dump() if message.calendar else None,
    }
    size = sum(len(v) for v in (message.text_body, message.html_body) if v)
    size += len(message.calendar.ics) if message.calendar else 0
    item: dict[str, Any] = {
        "email_id": email_id,
        "thread_id": thread_id,
        "message_id": message.message_id,
        "in_reply_to": message.in_reply_to,
        "references": message.references,
        "date": iso,
        "date_source": message.date_source if message.date else "internal",
        "subject": message.subject,
        "from": _addresses(message.from_),
        "sender": message.sender.model_dump() if message.sender else None,
        "reply_to": _addresses(message.reply_to),
        "to": _addresses(message.to),
        "cc": _addresses(message.cc),
        "bcc": _addresses(message.bcc),
        "snippet": message.snippet,
        "size": message.size,
        "attachments": [a.model_dump() for a in message.attachments],
        "has_attachments": any(not a.inline for a in message.attachments),
        "bounce": message.bounce.model_dump() if message.bounce else None,
        "feedback": message.feedback.model_dump() if message.feedback else None,
        "auto_submitted": message.auto_submitted,
        "precedence": message.precedence,
        "list": message.list_.model_dump() if message.list_ else None,
        "headers_of_interest": message.headers_of_interest,
        "defects": message.defects,
        "direction": "outbound" if outbound else "inbound",
        "deleted": False,
        "announced": False,
        "raw_key": raw_key,
        "search": search_text(
            [
                message.subject,
                *(f"{a.name or ''} {a.address}" for a in message.from_),
                message.snippet,
                message.text_body,
            ]
        ),
        "created_at": datetime.now(UTC).isoformat(),
        "gsi1pk": tenant_pk(tenant),
        "gsi1sk": f"{iso}#{email_id}",
        "gsi2pk": f"{tenant_pk(tenant)}#THREAD#{thread_id}",
        "gsi2sk": f"{iso}#{email_id}",
        **flag_state(flags),
    }
    if message.message_id:
        item["gsi3pk"] = f"{tenant_pk(tenant)}#MSGID#{digest(message.message_id)}"
    if size > INLINE_BODY_LIMIT:
        key = blobs.body_key(tenant, email_id)
        if uploads is None:
            blobs.put_json(key, bodies)
        else:
            uploads.append(Upload(key, _json_bytes(bodies), "application/json"))
        item["body_key"] = key
    else:
        item.update(bodies)
    return item


def _json_bytes(document: Any) -> bytes:
    import json

    return json.dumps(document, separators=(",", ":")).encode()


def ingest(mailbox: Mailbox, fetched: FetchedMessage, emails: EmailStore, blobs: BlobStore) -> Ingested:
    """One message: `ingest_batch` of one."""
    return ingest_batch(mailbox, [fetched], emails, blobs)[0]


def ingest_batch(
    mailbox: Mailbox,
    batch: Sequence[FetchedMessage],
    emails: EmailStore,
    blobs: BlobStore,
    *,
    sleep: Callable[[float], None] = time.sleep,
    prepared: PreparedBatch | None = None,
) -> list[Ingested]:
    """Store a fetch batch (see the module docstring); one result per message, in order.

    `prepared`: the batch already normalized by `prepare_batch` (the sync does that for the next
    batch while it stores the current one); one made for another mailbox or other messages is
    ignored and the batch normalized here.

    Raises `Conflict` when concurrent writers kept winning PLAN_ATTEMPTS times (the queue retries
    the record), and whatever S3 or DynamoDB raise: nothing is lost, the next attempt resumes.
    """
    if prepared is None or not prepared.matches(mailbox, batch):
        prepared = prepare_batch(mailbox, batch)
    return _ingest_prepared(mailbox, prepared.messages, emails, blobs, sleep)


@dataclass(frozen=True)
class PreparedBatch:
    """A fetch batch normalized for `ingest_batch`, one entry per message in fetch order: the
    normalized message (or the `MimeError` that quarantines it), its email id and location key.
    Nothing of it depends on what is stored, so it may be made before the batch before it is."""

    mailbox: Mailbox
    messages: tuple[_Prepared, ...]

    def matches(self, mailbox: Mailbox, batch: Sequence[FetchedMessage]) -> bool:
        """Whether this is `batch` (the same fetched objects, in order) normalized for `mailbox`."""
        return (
            self.mailbox == mailbox
            and len(self.messages) == len(batch)
            and all(p.fetched is f for p, f in zip(self.messages, batch, strict=True))
        )


def prepare_batch(mailbox: Mailbox, batch: Sequence[FetchedMessage]) -> PreparedBatch:
    """Normalize every message of `batch` (`mailbridge.mime.normalize`, CPU only: no request)."""
    return PreparedBatch(mailbox, tuple(_prepare(mailbox, fetched) for fetched in batch))


def _ingest_prepared(
    mailbox: Mailbox,
    prepared: Sequence[_Prepared],
    emails: EmailStore,
    blobs: BlobStore,
    sleep: Callable[[float], None],
) -> list[Ingested]:
    full_threads: set[str] = set()
    for attempt in range(PLAN_ATTEMPTS):
        stored = emails.plan_read(mailbox.tenant_id, _plan_keys(mailbox, prepared))
        plan = _Plan(mailbox, stored, emails, blobs)
        for message in prepared:
            plan.add(message)
        blobs.put_many(plan.uploads)
        try:
            plan.write_keys_and_emails(full_threads)
        except _ThreadsFull as full:
            # A thread lists THREAD_MEMBERS_MAX members: plan again, marking it overflowing.
            full_threads |= full.thread_ids
            continue
        except TransactionLost:
            sleep(0.05 * 2**attempt)
            continue
        emails.put_items(mailbox.tenant_id, plan.plain_items)
        return plan.results
    raise Conflict("concurrent writers kept winning; the batch is retried later", code="conflict")


class _ThreadsFull(Exception):
    def __init__(self, thread_ids: set[str]) -> None:
        super().__init__("threads full")
        self.thread_ids = thread_ids


@dataclass
class _Prepared:
    fetched: FetchedMessage
    loc_sk: str
    result: NormalizeResult | None = None
    error: MimeError | None = None
    email_id: str | None = None


def _prepare(mailbox: Mailbox, fetched: FetchedMessage) -> _Prepared:
    loc_sk = location_sk(mailbox.account_id, mailbox.folder, mailbox.uidvalidity, _location_id(fetched))
    try:
        result = normalize(fetched.raw, internal_date=fetched.internal_date)
    except MimeError as exc:
        return _Prepared(fetched, loc_sk, error=exc)
    return _Prepared(
        fetched, loc_sk, result=result, email_id=email_id_for(mailbox.tenant_id, result.message, fetched.raw)
    )


def _location_id(fetched: FetchedMessage) -> int | str:
    """The UID, or the provider's own message id where it has one (Graph's immutable id)."""
    return fetched.location_id if fetched.location_id is not None else fetched.uid


def _relatives(message: ParsedMessage) -> list[str]:
    return [m for m in [message.message_id, message.in_reply_to, *message.references] if m]


def _plan_keys(mailbox: Mailbox, prepared: Sequence[_Prepared]) -> list[str]:
    """Everything the plan may need to know: locations, emails, thread and subject keys."""
    keys: list[str] = []
    for p in prepared:
        keys.append(p.loc_sk)
        if p.result is None or p.email_id is None:
            continue
        keys.append(email_sk(p.email_id))
        keys.extend(message_id_sk(m) for m in _relatives(p.result.message))
        if p.result.message.subject:
            keys.append(subject_sk(mailbox.account_id, base_subject(p.result.message.subject)))
    return keys


class _PlannedIndex:
    """`ThreadIndex` over the prefetched keys, recording what the batch registers."""

    def __init__(self, mailbox: Mailbox, stored: dict[str, Any]) -> None:
        self.stored = stored
        self.message_ids: dict[str, str] = {}  # new this batch, in first-registered order
        self.subjects: dict[str, tuple[str, str, str]] = {}  # sk -> (base subject, thread, date)
        self.scope = mailbox.account_id

    # `tenant_id` is part of the `ThreadIndex` protocol; this index holds one tenant's keys.
    def threads_for_message_ids(self, tenant_id: str, message_ids: list[str]) -> dict[str, str]:  # noqa: ARG002
        found: dict[str, str] = {}
        for message_id in message_ids:
            if message_id in self.message_ids:
                found[message_id] = self.message_ids[message_id]
            elif (item := self.stored.get(message_id_sk(message_id))) is not None:
                found[message_id] = str(item["thread_id"])
        return found

    def remember_message_ids(self, tenant_id: str, message_ids: list[str], thread_id: str) -> None:  # noqa: ARG002
        for message_id in message_ids:
            if message_id not in self.message_ids and message_id_sk(message_id) not in self.stored:
                self.message_ids[message_id] = thread_id

    def subject_thread(self, tenant_id: str, scope: str, base_subject: str) -> dict[str, Any] | None:  # noqa: ARG002
        sk = subject_sk(scope, base_subject)
        if sk in self.subjects:
            _, thread_id, date = self.subjects[sk]
            return {"thread_id": thread_id, "date": date}
        return self.stored.get(sk)

    def remember_subject(
        self, tenant_id: str, scope: str, base_subject: str, thread_id: str, date: str
    ) -> None:
        sk = subject_sk(scope, base_subject)
        current = self.subject_thread(tenant_id, scope, base_subject)
        if current is not None and str(current.get("date", "")) > date:
            return  # a newer conversation holds the subject
        if current is not None and (current.get("thread_id"), str(current.get("date", ""))) == (
            thread_id,
            date,
        ):
            return  # already so (a replay)
        self.subjects[sk] = (base_subject, thread_id, date)


@dataclass
class _Attach:
    loc_keys: set[str] = field(default_factory=set)
    flags: dict[str, bool] | None = None


class _Plan:
    """The writes one batch needs, worked out in memory from what is stored."""

    def __init__(
        self, mailbox: Mailbox, stored: dict[str, Any], emails: EmailStore, blobs: BlobStore
    ) -> None:
        self.mailbox = mailbox
        self.stored = stored
        self.emails = emails
        self.blobs = blobs
        self.index = _PlannedIndex(mailbox, stored)
        self.uploads: list[Upload] = []
        self.new_emails: dict[str, dict[str, Any]] = {}
        self.attach: dict[str, _Attach] = {}
        self.plain_items: list[tuple[str, dict[str, Any]]] = []
        self.results: list[Ingested] = []
        self.located: set[str] = set()

    # ------------------------------------------------------------------ per message
    def add(self, p: _Prepared) -> None:
        if p.loc_sk in self.located:
            self.results.append(Ingested(None, new_location=False, needs_announcement=False))
        elif p.loc_sk in self.stored:
            self.located.add(p.loc_sk)
            self._replay(p, str(self.stored[p.loc_sk]["email_id"]))
        elif p.error is not None:
            self.located.add(p.loc_sk)
            self._quarantine(p, p.error)
        else:
            self.located.add(p.loc_sk)
            self._store(p)

    def _store(self, p: _Prepared) -> None:
        assert p.result is not None
        assert p.email_id is not None
        message, fetched, email_id = p.result.message, p.fetched, p.email_id
        date = message.date or fetched.internal_date
        flags = flag_state(fetched.flags)
        announcement: dict[str, Any] | None
        if email_id in self.new_emails:
            # The same message twice in this batch: one email, both locations, the later flags.
            item = self.new_emails[email_id]
            item["loc_keys"].add(p.loc_sk)
            item.update(flags)
            needs, announcement = True, _announcement(item)
        elif (known := self.stored.get(email_sk(email_id))) is not None:
            attach = self.attach.setdefault(email_id, _Attach())
            attach.loc_keys.add(p.loc_sk)
            # The newest mailbox view of the flags wins (the same message read in one mailbox is read).
            attach.flags = flags
            needs = not known.get("announced")
            announcement = _announcement(known) if needs else None
        else:
            item = self._new_email(p, date)
            needs, announcement = True, _announcement(item)
        self.plain_items.append((p.loc_sk, self._location(p, email_id, date)))
        self.results.append(Ingested(email_id, True, needs, announcement=announcement))

    def _replay(self, p: _Prepared, email_id: str) -> None:
        """The location is stored (an earlier attempt got that far): finish what it may not have."""
        current: dict[str, Any] | None = (
            None if email_id in self.new_emails else self.stored.get(email_sk(email_id))
        )
        if current is None and email_id not in self.new_emails:
            # Only when the stored location names another id than normalizing gives now.
            current = self.emails.get_email(self.mailbox.tenant_id, email_id)
            if current is not None:
                self.stored[email_sk(email_id)] = current
        if current is None:
            if email_id in self.new_emails:  # created by another message of this batch, announced there
                self.new_emails[email_id]["loc_keys"].add(p.loc_sk)
            self.results.append(Ingested(email_id, new_location=False, needs_announcement=False))
            return
        self.attach.setdefault(email_id, _Attach()).loc_keys.add(p.loc_sk)
        needs = not current.get("announced")
        self.results.append(
            Ingested(email_id, False, needs, announcement=_announcement(current) if needs else None)
        )

    def _quarantine(self, p: _Prepared, exc: MimeError) -> None:
        mailbox, fetched = self.mailbox, p.fetched
        uid = fetched.uid if fetched.location_id is None else digest(fetched.location_id, 24)
        name = f"{digest(mailbox.folder, 12)}-{mailbox.uidvalidity}-{uid}"
        key = self.blobs.quarantine_key(mailbox.tenant_id, mailbox.account_id, name)
        self.uploads.append(Upload(key, fetched.raw, "message/rfc822"))
        sk = quarantine_sk(mailbox.account_id, mailbox.folder, mailbox.uidvalidity, _location_id(fetched))
        record = {
            "reason": exc.code,
            "detail": exc.message,
            "raw_key": key,
            "size": fetched.size,
            "folder": mailbox.folder,
            "uid": fetched.uid,
            "created_at": datetime.now(UTC).isoformat(),
        }
        self.plain_items.append((sk, record))
        self.results.append(
            Ingested(None, new_location=False, needs_announcement=False, quarantined=True, reason=exc.code)
        )

    def _new_email(self, p: _Prepared, date: datetime) -> dict[str, Any]:
        assert p.result is not None
        assert p.email_id is not None
        mailbox, message, fetched, email_id = self.mailbox, p.result.message, p.fetched, p.email_id
        tenant = mailbox.tenant_id
        if fetched.provider_thread_id:
            thread_id = provider_thread(
                tenant, mailbox.account_id, fetched.provider_thread_id, message, self.index
            )
        else:
            thread_id = assign_thread(tenant, mailbox.account_id, message, date, email_id, self.index)
        raw_key = self.blobs.raw_key(tenant, mailbox.account_id, email_id)
        self.uploads.append(Upload(raw_key, fetched.raw, "message/rfc822"))
        stored_now = len(fetched.raw) > LAZY_ATTACHMENTS_MAX_BYTES
        if stored_now:
            for meta, data in p.result.attachments:
                self.uploads.append(
                    Upload(self.blobs.attachment_key(tenant, email_id, meta.id), data, meta.content_type)
                )
        item = build_email_item(
            mailbox, email_id, thread_id, message, date, raw_key, self.blobs, fetched.flags, self.uploads
        )
        # Born with its first location, so no follow-up update is needed for it.
        item |= {
            "attachments_stored": stored_now or not message.attachments,
            "loc_keys": {p.loc_sk},
            "accounts": {mailbox.account_id},
            "folders": {f"{mailbox.account_id}:{mailbox.folder}"},
        }
        self.new_emails[email_id] = item
        return item

    def _location(self, p: _Prepared, email_id: str, date: datetime) -> dict[str, Any]:
        mailbox, fetched = self.mailbox, p.fetched
        location: dict[str, Any] = {
            "email_id": email_id,
            "account_id": mailbox.account_id,
            "folder": mailbox.folder,
            "uidvalidity": mailbox.uidvalidity,
            "uid": fetched.uid,
            "flags": sorted(fetched.flags),
            "modseq": fetched.modseq,
            **({"provider_id": fetched.location_id} if fetched.location_id is not None else {}),
            "gsi1pk": f"{tenant_pk(mailbox.tenant_id)}#ACC#{mailbox.account_id}",
            "gsi1sk": f"{date.astimezone(UTC).isoformat()}#{email_id}",
        }
        if fetched.provider_id is not None:
            location |= {
                "provider_id": fetched.provider_id,
                "provider_thread_id": fetched.provider_thread_id,
                "labels": sorted(fetched.labels),
            }
        return location

    # ------------------------------------------------------------------ writing
    def write_keys_and_emails(self, full_threads: set[str]) -> None:
        writes = EmailWrites(self.mailbox.tenant_id)
        for message_id, thread_id in self.index.message_ids.items():
            writes.register_message_id(message_id, thread_id)
        for base, thread_id, date in self.index.subjects.values():
            writes.remember_subject(self.index.scope, base, thread_id, date)
        members: dict[str, list[str]] = {}
        for email_id, item in self.new_emails.items():
            members.setdefault(str(item["thread_id"]), []).append(email_id)
        for thread_id, email_ids in members.items():
            writes.join_thread(thread_id, email_ids, full=thread_id in full_threads)
        for item in self.new_emails.values():
            writes.create_email(item)
        for email_id, attach in self.attach.items():
            writes.attach(email_id, attach.loc_keys, attach.flags)
        try:
            self.emails.write(writes)
        except TransactionLost as lost:
            full = {writes.keys[i] for i in lost.failed if writes.tags[i] == "thread"}
            if full and writes.tags_of(lost.failed) == {"thread"}:
                raise _ThreadsFull(full) from lost
            raise


def _announcement(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "thread_id": item.get("thread_id"),
        "message_id": item.get("message_id"),
        "direction": item.get("direction"),
        "date": item.get("date"),
    }
