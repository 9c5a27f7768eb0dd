"""Store one fetched message: normalize, thread, write S3 + DynamoDB, or quarantine it.

Crash-safe by order: blobs first (overwrites are harmless), then the email (conditional create),
then the location (conditional create), then the email's location sets (set adds). Replaying any
prefix of that sequence ends in the same state, and `announced` tells the caller whether
`email.received` still has to go out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mailbridge.mime import MimeError, normalize
from mailbridge.models.email import ParsedMessage
from mailbridge.providers.imap.models import FetchedMessage
from mailbridge.search import search_text
from mailbridge.store.blobs import BlobStore
from mailbridge.store.emails import EmailStore
from mailbridge.store.keys import digest, location_sk, tenant_pk
from mailbridge.sync.threads import assign_thread

# Bodies above this many characters live in S3 so items stay far below DynamoDB's 400 KB.
INLINE_BODY_LIMIT = 100_000

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
    email_id: str | None
    new_location: bool
    needs_announcement: bool
    quarantined: bool = False
    reason: str | None = None


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
) -> dict[str, Any]:
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
        blobs.put_json(key, bodies)
        item["body_key"] = key
    else:
        item.update(bodies)
    return item


def ingest(mailbox: Mailbox, fetched: FetchedMessage, emails: EmailStore, blobs: BlobStore) -> Ingested:
    tenant = mailbox.tenant_id
    loc_sk = location_sk(mailbox.account_id, mailbox.folder, mailbox.uidvalidity, fetched.uid)
    existing = emails.get_location(tenant, loc_sk)
    if existing is not None:
        # A replay: finish what the earlier attempt may not have (set adds are idempotent).
        email_id = str(existing["email_id"])
        emails.attach_location(tenant, email_id, loc_sk, mailbox.account_id, mailbox.folder)
        item = emails.get_email(tenant, email_id)
        return Ingested(
            email_id, new_location=False, needs_announcement=bool(item and not item.get("announced"))
        )

    try:
        result = normalize(fetched.raw, internal_date=fetched.internal_date)
    except MimeError as exc:
        name = f"{digest(mailbox.folder, 12)}-{mailbox.uidvalidity}-{fetched.uid}"
        key = blobs.quarantine_key(tenant, mailbox.account_id, name)
        blobs.put(key, fetched.raw, "message/rfc822")
        emails.quarantine(
            tenant,
            mailbox.account_id,
            mailbox.folder,
            mailbox.uidvalidity,
            fetched.uid,
            {
                "reason": exc.code,
                "detail": exc.message,
                "raw_key": key,
                "size": fetched.size,
                "folder": mailbox.folder,
                "uid": fetched.uid,
                "created_at": datetime.now(UTC).isoformat(),
            },
        )
        return Ingested(None, new_location=False, needs_announcement=False, quarantined=True, reason=exc.code)

    message = result.message
    email_id = email_id_for(tenant, message, fetched.raw)
    date = message.date or fetched.internal_date
    current = emails.get_email(tenant, email_id)
    created_now = False
    if current is None:
        thread_id = assign_thread(tenant, mailbox.account_id, message, date, email_id, emails)
        raw_key = blobs.raw_key(tenant, mailbox.account_id, email_id)
        blobs.put(raw_key, fetched.raw, "message/rfc822")
        for meta, data in result.attachments:
            blobs.put(blobs.attachment_key(tenant, email_id, meta.id), data, meta.content_type)
        item = build_email_item(mailbox, email_id, thread_id, message, date, raw_key, blobs, fetched.flags)
        # Born with its first location, so no follow-up update is needed for it.
        item |= {
            "loc_keys": {loc_sk},
            "accounts": {mailbox.account_id},
            "folders": {f"{mailbox.account_id}:{mailbox.folder}"},
        }
        created_now = emails.create_email(tenant, item)
        needs_announcement = True
    else:
        needs_announcement = not current.get("announced")

    location = {
        "email_id": email_id,
        "account_id": mailbox.account_id,
        "folder": mailbox.folder,
        "uidvalidity": mailbox.uidvalidity,
        "uid": fetched.uid,
        "flags": sorted(fetched.flags),
        "modseq": fetched.modseq,
        "gsi1pk": f"{tenant_pk(tenant)}#ACC#{mailbox.account_id}",
        "gsi1sk": f"{date.astimezone(UTC).isoformat()}#{email_id}",
    }
    created = emails.create_location(tenant, loc_sk, location)
    if current is not None or not created_now:
        emails.attach_location(tenant, email_id, loc_sk, mailbox.account_id, mailbox.folder)
    if current is not None:
        # The newest mailbox view of the flags wins (the same message read in one mailbox is read).
        emails.update_email(tenant, email_id, **flag_state(fetched.flags))
    return Ingested(email_id, new_location=created, needs_announcement=needs_announcement)
