"""The outbox: accept a send (compose once, store it like any other email, queue or schedule it),
then send it exactly once (over SMTP, or through the Gmail API for a Gmail account:
`mailbridge.outbox.gmail`), keep a copy in the mailbox's Sent folder and announce it.

The raw message is composed at request time with its final Message-ID and Date (the send time
for scheduled mail), stored in S3 and sent byte for byte later. The email id follows the same rule
as synced mail, so when the sync later meets the copy in Sent it finds this email, not a new one.
Status moves queued|scheduled -> sending -> sent|failed (or scheduled -> cancelled), each step a
conditional write, so a duplicate or late delivery of the queue record never sends twice.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from pydantic import ValidationError

from mailbridge.access import Visibility, access_of
from mailbridge.accounts import Connector, imap_connect, imap_settings, load_secrets, smtp_settings
from mailbridge.bus import DomainEvent, EventPublisher
from mailbridge.compose import (
    ComposedMessage,
    Draft,
    Mode,
    OriginalMessage,
    OutgoingAttachment,
    compose_and_normalize,
)
from mailbridge.errors import Conflict, Invalid, MailbridgeError, NotFound, ProviderError
from mailbridge.models.account import Account
from mailbridge.models.email import EmailAddress
from mailbridge.models.mail import SendStatus, TemplateUse
from mailbridge.observability import logger
from mailbridge.outbox.models import (
    MAX_UPLOAD_BYTES,
    InlineAttachment,
    OutboxMessage,
    RecipientAccepted,
    SendAccepted,
    SendRequest,
    UploadedAttachment,
    UploadRequest,
    UploadTicket,
)
from mailbridge.providers.imap.models import FetchedMessage
from mailbridge.queues import OutboxQueue
from mailbridge.schedules import OneTimeScheduler
from mailbridge.store.accounts import AccountStore
from mailbridge.store.blobs import PRESIGN_SECONDS, BlobStore
from mailbridge.store.emails import EmailStore
from mailbridge.sync.engine import SyncDeps, announce
from mailbridge.sync.ingest import Mailbox, build_email_item, email_id_for, ingest
from mailbridge.sync.threads import assign_thread
from mailbridge.tenancy import Role, TenantContext

if TYPE_CHECKING:
    from mailbridge.campaigns.suppression import SuppressionDeps
    from mailbridge.compose.models import ListHeaderName
    from mailbridge.templates.service import TemplateDeps
    from mailbridge.tracking.models import TrackedMessage, TrackingOverride
    from mailbridge.tracking.service import TrackingDeps

MIN_SCHEDULE_AHEAD = timedelta(seconds=60)
MAX_SCHEDULE_AHEAD = timedelta(days=365)
PENDING = ("queued", "scheduled", "sending")
UPLOAD_SECONDS = PRESIGN_SECONDS  # how long a presigned upload stays usable
DECLARED_SIZE = "declared-size"  # object metadata: the size POST /uploads was asked for


@dataclass
class OutboxDeps:
    emails: EmailStore
    accounts: AccountStore
    blobs: BlobStore
    queue: OutboxQueue
    scheduler: OneTimeScheduler
    publisher: EventPublisher
    connect_imap: Connector = imap_connect
    send_smtp: Callable[..., Any] | None = None
    send_graph: Callable[[Account, ComposedMessage], None] | None = None  # None: sendMail
    gmail_client: Callable[[Account], Any] | None = None  # tests: a GmailClient per account
    allow_private_hosts: bool = False
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    tracking: TrackingDeps | None = None  # None: never tracked (only the send route sets it)
    templates: TemplateDeps | None = None  # None: `template_id` refused (only the send route sets it)
    suppressions: SuppressionDeps | None = None  # recipients refused 5xx go on the suppression list


# ---------------------------------------------------------------------------------- requests
def create_upload(ctx: TenantContext, request: UploadRequest, deps: OutboxDeps) -> UploadTicket:
    """A presigned S3 POST for one file of `request.size` bytes (1 B .. 25 MB).

    The POST policy binds the key (`uploads/{tenant}/{upload_id}`), the Content-Type, the declared
    size (kept as the object's `declared-size` metadata) and `content-length-range` [1, size], and
    expires after UPLOAD_SECONDS; S3 refuses any other upload. `_uploaded` checks the stored object
    against the declared size again before reading it.
    """
    ctx.require(Role.MEMBER)
    upload_id = "up_" + uuid.uuid4().hex[:24]
    post = deps.blobs.presign_post(
        deps.blobs.upload_key(ctx.tenant_id, upload_id),
        content_type=request.content_type,
        max_size=request.size,
        metadata={DECLARED_SIZE: str(request.size)},
        expires_in=UPLOAD_SECONDS,
    )
    return UploadTicket(
        upload_id=upload_id,
        url=post.url,
        fields=post.fields,
        expires_in=UPLOAD_SECONDS,
        max_size=request.size,
    )


def _uploaded_limit(metadata: dict[str, str]) -> int:
    """Bytes an upload may hold: its declared size, never more than MAX_UPLOAD_BYTES."""
    declared = metadata.get(DECLARED_SIZE, "")
    return min(int(declared), MAX_UPLOAD_BYTES) if declared.isdigit() else MAX_UPLOAD_BYTES


def _uploaded(ctx: TenantContext, spec: UploadedAttachment, deps: OutboxDeps) -> OutgoingAttachment:
    """Read an uploaded file, after a HEAD shows it holds no more than its declared size (and 25 MB).

    Raises NotFound `upload_not_found` (expired or never uploaded) or Invalid `attachment_too_large`;
    a larger object is never read (and the read itself stops one byte past the limit).
    """
    key = deps.blobs.upload_key(ctx.tenant_id, spec.upload_id)
    head = deps.blobs.head(key)
    if head is None:
        raise NotFound(
            f"upload {spec.upload_id} was not found (expired or never uploaded)", code="upload_not_found"
        )
    limit = _uploaded_limit(head.metadata)
    too_large = Invalid(
        "the uploaded file is larger than the size declared for it (25 MB at most)",
        code="attachment_too_large",
        details={"upload_id": spec.upload_id, "max_size": limit},
    )
    if head.size > limit:
        raise too_large
    data = deps.blobs.get(key, max_bytes=limit)
    if len(data) > limit:  # replaced by a larger object between the HEAD and the GET
        raise too_large
    return OutgoingAttachment(filename=spec.filename, content_type=spec.content_type, data=data)


def outgoing_attachment(
    ctx: TenantContext, spec: InlineAttachment | UploadedAttachment, deps: OutboxDeps
) -> OutgoingAttachment:
    """The bytes of one attachment of a send or a draft: inline base64 decoded, or an upload read
    from the bucket. 400 `invalid_attachment` for bad base64; upload errors as `queue_send` documents."""
    if isinstance(spec, InlineAttachment):
        try:
            data = base64.b64decode(spec.content_base64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise Invalid(
                f"attachment {spec.filename!r} is not valid base64", code="invalid_attachment"
            ) from exc
        return OutgoingAttachment(
            filename=spec.filename,
            content_type=spec.content_type,
            data=data,
            inline=spec.inline,
            content_id=spec.content_id,
        )
    return _uploaded(ctx, spec, deps)


def original_message(ctx: TenantContext, email_id: str, deps: OutboxDeps) -> OriginalMessage:
    """The stored email a reply or forward quotes (headers and bodies for RFC 5322 section 3.6.4
    threading and the quoted text); 404 `email_not_found` when the tenant has no such email, or
    the caller does not see it in full (mailbridge.access: quoting reads its body, audited)."""
    item = access_of(ctx).read_body(
        deps.emails.get_email(ctx.tenant_id, email_id),
        NotFound("the email to reply to or forward does not exist", code="email_not_found"),
    )
    sender = (item.get("from") or [None])[0]
    bodies: dict[str, Any] = deps.blobs.get_json(str(item["body_key"])) if item.get("body_key") else item
    return OriginalMessage(
        message_id=item.get("message_id"),
        references=[str(r) for r in item.get("references") or ()],
        subject=item.get("subject"),
        from_=EmailAddress.model_validate(sender) if sender else None,
        date=datetime.fromisoformat(str(item["date"])),
        text=bodies.get("text_body"),
        raw=deps.blobs.get(str(item["raw_key"])) if item.get("raw_key") else None,
    )


def _schedule_time(send_at: datetime | None, now: datetime) -> datetime | None:
    if send_at is None:
        return None
    when = send_at if send_at.tzinfo else send_at.replace(tzinfo=UTC)
    if when < now + MIN_SCHEDULE_AHEAD:
        raise Invalid("send_at must be at least a minute in the future", code="send_at_in_past")
    if when > now + MAX_SCHEDULE_AHEAD:
        raise Invalid("send_at must be within a year", code="send_at_too_far")
    return when.astimezone(UTC)


def _draft(
    ctx: TenantContext,
    request: SendRequest,
    account: Account,
    mode: Mode,
    deps: OutboxDeps,
    *,
    message_id: str | None = None,
    list_headers: Mapping[str, str] | None = None,
) -> Draft:
    """The request (validated at the boundary) and the account as a Draft; `message_id` (without
    brackets) instead of a new one, `list_headers` (`Draft.list_headers`) added.

    Draft and OutgoingAttachment check again (addresses normalized, stored values such as the
    display name). A rule that fails there is the caller's input, not a server fault: it becomes
    `Invalid(code="invalid_message")` naming the fields and rule types, never the values (a
    pydantic error carries `input_value`, which must not reach a response or a log).
    """
    domain = account.address.rpartition("@")[2]
    try:
        return Draft(
            from_=EmailAddress(name=account.display_name, address=account.address),
            to=[EmailAddress(name=r.name, address=str(r.address)) for r in request.to],
            cc=[EmailAddress(name=r.name, address=str(r.address)) for r in request.cc],
            bcc=[EmailAddress(name=r.name, address=str(r.address)) for r in request.bcc],
            subject=request.subject,
            text=request.text,
            html=request.html,
            attachments=[outgoing_attachment(ctx, a, deps) for a in request.attachments],
            mode=mode,
            forward_as=request.forward_as,
            message_id=message_id or f"{uuid.uuid4().hex}@{domain}",
            # Names outside Draft's allow-list fail its validation (`invalid_message`).
            list_headers=cast("dict[ListHeaderName, str]", dict(list_headers or {})),
        )
    except ValidationError as exc:
        details = [
            {"loc": ["from" if part == "from_" else str(part) for part in err["loc"]], "type": err["type"]}
            for err in exc.errors()
        ]
        raise Invalid(
            "the message cannot be built from this request", code="invalid_message", details=details
        ) from None


def queue_send(
    ctx: TenantContext,
    request: SendRequest,
    deps: OutboxDeps,
    *,
    automation: dict[str, Any] | None = None,
    auto_generated: bool = False,
    from_draft: dict[str, Any] | None = None,
    message_id: str | None = None,
    list_headers: Mapping[str, str] | None = None,
) -> SendAccepted:
    """Compose, store and queue (or schedule) one outbound email; 202 with its ids.

    `automation`: the chain of the automation run sending it (`{depth, rule_id, run_id}`), kept on
    the email and carried by its `email.sent` event, so rules cannot trigger each other forever.
    `auto_generated`: mail mailbridge writes itself (the notification digest) carries
    `Auto-Submitted: auto-generated` (RFC 3834 section 5); never set from a client's request.
    `from_draft`: the draft being sent (`{draft_id, provider}`, `mailbridge.drafts.service.send_draft`),
    kept on the email so the mailbox's draft copy is removed once the send succeeded.
    `message_id` and `list_headers` (campaign mail, `mailbridge.campaigns.service`; never from a
    client's request): a Message-ID chosen by the caller, so a retried send finds the email it
    stored the first time (Conflict `already_queued` with `details.email_id`), and RFC 2369/8058
    unsubscribe headers.

    Raises NotFound (account, original email or upload), Invalid (`account_cannot_send`,
    `send_at_in_past`, `send_at_too_far`, `invalid_attachment`, `attachment_too_large`,
    `invalid_message`, and every code of `compose_message`: `header_injection` when a value,
    such as the account's stored display name, cannot be written into a header), Conflict
    (`already_queued`).
    """
    ctx.require(Role.MEMBER)
    account = deps.accounts.get_account(ctx.tenant_id, request.account_id)
    if access_of(ctx).account_level(account.account_id) is not Visibility.FULL:
        # Sending from another user's mailbox is a write on it (mailbridge.access).
        raise NotFound("no such account", code="account_not_found")
    _require_sender(account)
    now = deps.now()
    send_at = _schedule_time(request.send_at, now)
    mode: Mode = "new"
    original: OriginalMessage | None = None
    if request.reply_to_email_id:
        mode, original = "reply", original_message(ctx, request.reply_to_email_id, deps)
    elif request.forward_email_id:
        mode, original = "forward", original_message(ctx, request.forward_email_id, deps)

    if request.template_id is not None:
        return _queue_templated(
            ctx,
            request,
            account,
            mode,
            original,
            send_at,
            deps,
            automation=automation,
            message_id=message_id,
            list_headers=list_headers,
        )
    draft = _draft(ctx, request, account, mode, deps, message_id=message_id, list_headers=list_headers)
    if auto_generated:
        draft = draft.model_copy(update={"auto_submitted": "auto-generated"})
    return queue_draft(
        ctx,
        account,
        draft,
        deps,
        original=original,
        send_at=send_at,
        automation=automation,
        reply_to_email_id=request.reply_to_email_id,
        tracking=request.tracking,
        from_draft=from_draft,
    )


def _queue_templated(
    ctx: TenantContext,
    request: SendRequest,
    account: Account,
    mode: Mode,
    original: OriginalMessage | None,
    send_at: datetime | None,
    deps: OutboxDeps,
    *,
    automation: dict[str, Any] | None,
    message_id: str | None = None,
    list_headers: Mapping[str, str] | None = None,
) -> SendAccepted:
    """`template_id`: render the template for every `to` recipient first (a failure queues
    nothing: 422 `template_render_failed`), then queue one email each, with the version and
    variant used stored on the email (`template`) and in the template's send records (its stats).
    """
    from mailbridge.templates.service import record_send, render_for_send

    if deps.templates is None or request.template_id is None:
        raise Invalid("templates cannot be sent from here", code="template_not_available")
    sender = {"name": account.display_name or "", "email": account.address}
    renders = render_for_send(
        ctx,
        request.template_id,
        request.template_version,
        [str(r.address) for r in request.to],
        request.variables,
        sender,
        deps.templates,
    )
    accepted: list[tuple[SendAccepted, RecipientAccepted]] = []
    for recipient, one in zip(request.to, renders, strict=True):
        rendered = one.rendered
        single = request.model_copy(
            update={
                "to": [recipient],
                "subject": rendered.subject,
                "text": rendered.text,
                "html": rendered.html,
            }
        )
        use = TemplateUse(
            template_id=rendered.template_id, version=rendered.version, variant=rendered.variant
        )
        queued = queue_draft(
            ctx,
            account,
            _draft(ctx, single, account, mode, deps, message_id=message_id, list_headers=list_headers),
            deps,
            original=original,
            send_at=send_at,
            automation=automation,
            reply_to_email_id=request.reply_to_email_id,
            tracking=request.tracking,
            template=use.model_dump(),
        )
        record_send(ctx.tenant_id, rendered, queued.email_id, deps.templates)
        accepted.append(
            (
                queued,
                RecipientAccepted(
                    address=one.address,
                    email_id=queued.email_id,
                    thread_id=queued.thread_id,
                    message_id=queued.message_id,
                    template=use,
                ),
            )
        )
    first, first_use = accepted[0]
    return first.model_copy(update={"template": first_use.template, "recipients": [r for _, r in accepted]})


def _require_sender(account: Account) -> None:
    """An IMAP account sends over its SMTP settings, a Gmail account through the Gmail API and a
    Microsoft 365 account by Graph sendMail."""
    if account.smtp is None and account.provider not in ("gmail", "graph"):
        raise Invalid("this account has no SMTP settings", code="account_cannot_send")


def queue_draft(
    ctx: TenantContext,
    account: Account,
    draft: Draft,
    deps: OutboxDeps,
    *,
    original: OriginalMessage | None = None,
    send_at: datetime | None = None,
    automation: dict[str, Any] | None = None,
    reply_to_email_id: str | None = None,
    tracking: TrackingOverride | None = None,
    template: dict[str, Any] | None = None,
    from_draft: dict[str, Any] | None = None,
) -> SendAccepted:
    """Compose, store and queue (or schedule, at `send_at`) a draft the caller built, sent from
    `account`: what `queue_send` does after reading the request, for mail mailbridge writes
    itself (an iTIP invitation or reply, `mailbridge.calendar.itip`). `draft.message_id` should
    be set (the email id is derived from the composed message). `reply_to_email_id` (kept on
    the item) lets a Gmail send name the replied-to message's Gmail thread. With
    `deps.tracking`, an HTML message gets the open pixel and tracked links (`_track`).

    Raises Invalid (`account_cannot_send`, every code of `compose_message`), Conflict
    (`already_queued`)."""
    ctx.require(Role.MEMBER)
    _require_sender(account)
    now = deps.now()
    composed, normalized = compose_and_normalize(draft, original=original, now=send_at or now)
    parsed = normalized.message
    tenant = ctx.tenant_id
    email_id = email_id_for(tenant, parsed, composed.raw)
    tracked: TrackedMessage | None = None
    if deps.tracking is not None and draft.html:
        tracked_draft, tracked = _track(tenant, email_id, draft, tracking, composed.recipients, deps.tracking)
        if tracked is not None:
            composed, normalized = compose_and_normalize(tracked_draft, original=original, now=send_at or now)
            parsed = normalized.message
    date = send_at or now
    thread_id = assign_thread(tenant, account.account_id, parsed, date, email_id, deps.emails)
    mailbox = Mailbox(tenant, account.account_id, account.address, "", 0, is_sent_folder=True)
    raw_key = deps.blobs.raw_key(tenant, account.account_id, email_id)
    deps.blobs.put(raw_key, composed.raw, "message/rfc822")
    for meta, data in normalized.attachments:
        deps.blobs.put(deps.blobs.attachment_key(tenant, email_id, meta.id), data, meta.content_type)
    item = build_email_item(mailbox, email_id, thread_id, parsed, date, raw_key, deps.blobs, ("\\Seen",))
    status: SendStatus = "scheduled" if send_at else "queued"
    item |= _outbound_fields(ctx, account, composed, draft, send_at, email_id)
    if automation:
        item["automation"] = automation
    if template:
        item["template"] = template  # {template_id, version, variant}: what it was rendered from
    if reply_to_email_id:
        item["reply_to_email_id"] = reply_to_email_id
    if from_draft:
        item["draft"] = from_draft
    if tracked is not None and deps.tracking is not None:
        item["tracking"] = {"opens": tracked.opens, "clicks": tracked.clicks}
        deps.tracking.store.put_message(tracked)  # before the email exists: no hit finds it missing
    if not deps.emails.create_email(tenant, item):
        raise Conflict(
            "this message was already queued", code="already_queued", details={"email_id": email_id}
        )
    message = OutboxMessage(tenant_id=tenant, email_id=email_id)
    if send_at:
        deps.scheduler.create(_schedule_name(email_id), send_at, message.model_dump())
    else:
        deps.queue.send(message)
    return SendAccepted(
        email_id=email_id, thread_id=thread_id, status=status, send_at=send_at, message_id=composed.message_id
    )


@dataclass(frozen=True)
class PreparedSend:
    """One message of `queue_drafts`: a new message (no reply or forward) with its Message-ID
    set, its `send_at` (None: send now), the template use kept on the email, and the message's
    tracking override."""

    draft: Draft
    send_at: datetime | None
    template: dict[str, Any] | None = None
    tracking: TrackingOverride | None = None
    first_attempt: bool = False
    """The caller holds an exclusive claim on the Message-ID and no earlier attempt stored
    anything for it (a campaign recipient this delivery claimed): stored by plain puts."""


@dataclass
class _Built:
    index: int
    send: PreparedSend
    composed: ComposedMessage
    parsed: Any
    attachments: list[Any]
    email_id: str
    tracked: TrackedMessage | None


def queue_drafts(
    ctx: TenantContext, account: Account, sends: Sequence[PreparedSend], deps: OutboxDeps
) -> list[SendAccepted | MailbridgeError]:
    """`queue_draft` for a batch of new messages from one account (a campaign chunk), with the
    requests batched: one read of the tenant's tracking flag and one batched do-not-track
    lookup (`decide_many`), one BatchGetItem of the emails that exist already and one of the
    Message-IDs' threads, the raw messages, attachments and large bodies put to S3 in the
    bounded pool of `BlobStore.put_many`, tracking link sets by BatchWriteItem, the emails by
    BatchWriteItem when `first_attempt` says no one else can be storing them
    (`EmailStore.put_new_emails`), else one conditional write each after their idempotent
    thread writes (`EmailStore.create_emails`), one conditional put per distinct subject
    (`remember_subject`), schedules created `CREATE_WORKERS` at a time and queue messages ten
    to a SendMessageBatch.

    Each message's result is in its position: its SendAccepted, or the error that refused it
    alone (every code of `compose_message`, `send_at_in_past`...). A message whose email
    exists already (a replay: the email id follows from the Message-ID, sender and subject) is
    not stored again; its queue message or schedule is put again (the outbox sends an email
    once, by its status) and it is answered accepted as stored. The threads are new
    (`thread_id_for_root` of the Message-ID, unless the Message-ID is known); a message with
    In-Reply-To or References, or a subject marking a reply or forward, goes through
    `queue_draft` alone. Raises what a store or queue raises (the caller retries the batch)."""
    ctx.require(Role.MEMBER)
    _require_sender(account)
    results: list[SendAccepted | MailbridgeError | None] = [None] * len(sends)
    built = _build(ctx, account, sends, deps, results)
    if built:
        existing = deps.emails.batch_get_emails(ctx.tenant_id, [b.email_id for b in built], projection=STORED)
        threads, created = _store(ctx, account, [b for b in built if b.email_id not in existing], deps)
        _dispatch(ctx.tenant_id, built, existing, threads, created, deps, results)
    done = [r for r in results if r is not None]
    assert len(done) == len(results), "every message has its result"
    return done


STORED = ("send_status", "send_at", "thread_id")
"""What `queue_drafts` reads of an email that exists already."""


def _build(
    ctx: TenantContext,
    account: Account,
    sends: Sequence[PreparedSend],
    deps: OutboxDeps,
    results: list[SendAccepted | MailbridgeError | None],
) -> list[_Built]:
    """Compose (and track) each message; one refused, or queued alone, has its result set."""
    from mailbridge.mime.subject import is_reply_or_forward

    tenant, now = ctx.tenant_id, deps.now()
    decisions = (
        _decide_many(tenant, sends, deps) if deps.tracking is not None else [(False, False)] * len(sends)
    )
    built: list[_Built] = []
    for index, send in enumerate(sends):
        try:
            when = _schedule_time(send.send_at, now)
            at = replace(send, send_at=when)
            if send.draft.subject and is_reply_or_forward(send.draft.subject):
                results[index] = _queue_alone(ctx, account, at, deps)
                continue
            composed, normalized = compose_and_normalize(send.draft, now=when or now)
            if (
                normalized.message.in_reply_to
                or normalized.message.references
                or not normalized.message.message_id
            ):
                results[index] = _queue_alone(ctx, account, at, deps)
                continue
            email_id = email_id_for(tenant, normalized.message, composed.raw)
            tracked: TrackedMessage | None = None
            opens, clicks = decisions[index]
            if deps.tracking is not None and send.draft.html and (opens or clicks):
                draft, tracked = _tracked(tenant, email_id, send.draft, opens, clicks, deps.tracking)
                composed, normalized = compose_and_normalize(draft, now=when or now)
        except (Invalid, NotFound) as exc:
            results[index] = exc
            continue
        parsed = normalized.message
        built.append(_Built(index, at, composed, parsed, normalized.attachments, email_id, tracked))
    return built


def _store(
    ctx: TenantContext, account: Account, fresh: list[_Built], deps: OutboxDeps
) -> tuple[dict[str, str], set[str]]:
    """Store the new emails (blobs and link sets first: the email names them); returns each
    one's thread id and the ids this call created."""
    from mailbridge.mime import base_subject
    from mailbridge.store.blobs import Upload
    from mailbridge.sync.threads import thread_id_for_root

    tenant, now = ctx.tenant_id, deps.now()
    known = deps.emails.threads_for_message_ids(tenant, [b.parsed.message_id for b in fresh])
    mailbox = Mailbox(tenant, account.account_id, account.address, "", 0, is_sent_folder=True)
    uploads: list[Upload] = []
    items: list[dict[str, Any]] = []
    threads: dict[str, str] = {}  # email id -> thread id
    subjects: dict[str, tuple[str, str]] = {}  # base subject -> (date, thread id), the newest
    for b in fresh:
        own = b.parsed.message_id
        thread_id = threads[b.email_id] = known.get(own) or thread_id_for_root(tenant, own)
        date = b.send.send_at or now
        raw_key = deps.blobs.raw_key(tenant, account.account_id, b.email_id)
        uploads.append(Upload(raw_key, b.composed.raw, "message/rfc822"))
        uploads += [
            Upload(deps.blobs.attachment_key(tenant, b.email_id, meta.id), data, meta.content_type)
            for meta, data in b.attachments
        ]
        item = build_email_item(
            mailbox, b.email_id, thread_id, b.parsed, date, raw_key, deps.blobs, ("\\Seen",), uploads
        )
        item |= _outbound_fields(ctx, account, b.composed, b.send.draft, b.send.send_at, b.email_id)
        if b.send.template:
            item["template"] = b.send.template
        if b.tracked is not None:
            item["tracking"] = {"opens": b.tracked.opens, "clicks": b.tracked.clicks}
        items.append(item)
        subject = base_subject(b.parsed.subject)
        if subject and (subject not in subjects or subjects[subject][0] < date.isoformat()):
            subjects[subject] = (date.isoformat(), thread_id)
    deps.blobs.put_many(uploads)
    if deps.tracking is not None:
        deps.tracking.store.put_messages([b.tracked for b in fresh if b.tracked is not None])
    plain = {b.email_id for b in fresh if b.send.first_attempt and b.parsed.message_id not in known}
    deps.emails.put_new_emails(tenant, [i for i in items if i["email_id"] in plain])
    created = plain | deps.emails.create_emails(tenant, [i for i in items if i["email_id"] not in plain])
    for subject, (date_iso, thread_id) in subjects.items():
        deps.emails.remember_subject(tenant, account.account_id, subject, thread_id, date_iso)
    return threads, created


def _dispatch(
    tenant: str,
    built: list[_Built],
    existing: dict[str, dict[str, Any]],
    threads: dict[str, str],
    created: set[str],
    deps: OutboxDeps,
    results: list[SendAccepted | MailbridgeError | None],
) -> None:
    """Schedule or queue each email by its status (an email stored before keeps its own
    `send_at`), and set its result."""
    stored = dict(existing)
    missing = [b.email_id for b in built if b.email_id not in created and b.email_id not in stored]
    if missing:  # lost a condition to a concurrent delivery: read what it stored
        stored |= deps.emails.batch_get_emails(tenant, missing, projection=STORED)
    schedules: list[tuple[str, datetime, dict[str, Any]]] = []
    queued: list[OutboxMessage] = []
    for b in built:
        message = OutboxMessage(tenant_id=tenant, email_id=b.email_id)
        item = {} if b.email_id in created else stored.get(b.email_id, {})
        status = str(item.get("send_status") or ("scheduled" if b.send.send_at else "queued"))
        send_at = datetime.fromisoformat(str(item["send_at"])) if item.get("send_at") else b.send.send_at
        if status == "scheduled" and send_at is not None:
            schedules.append((_schedule_name(b.email_id), send_at, message.model_dump()))
        elif status == "queued":
            queued.append(message)
        results[b.index] = SendAccepted(
            email_id=b.email_id,
            thread_id=threads.get(b.email_id) or str(item.get("thread_id") or ""),
            status="scheduled" if status == "scheduled" else "queued",
            send_at=send_at,
            message_id=b.composed.message_id,
        )
    deps.scheduler.create_many(schedules)
    deps.queue.send_many(queued)


def _decide_many(tenant: str, sends: Sequence[PreparedSend], deps: OutboxDeps) -> list[tuple[bool, bool]]:
    from mailbridge.tracking.service import decide_many

    assert deps.tracking is not None
    recipients = [[str(r.address) for r in (*s.draft.to, *s.draft.cc, *s.draft.bcc)] for s in sends]
    return decide_many(
        tenant, [(s.tracking, r) for s, r in zip(sends, recipients, strict=True)], deps.tracking
    )


def _queue_alone(
    ctx: TenantContext, account: Account, send: PreparedSend, deps: OutboxDeps
) -> SendAccepted | MailbridgeError:
    try:
        return queue_draft(
            ctx,
            account,
            send.draft,
            deps,
            send_at=send.send_at,
            tracking=send.tracking,
            template=send.template,
        )
    except Conflict as exc:
        if exc.code != "already_queued":
            raise
        return exc


def _outbound_fields(
    ctx: TenantContext,
    account: Account,
    composed: ComposedMessage,
    draft: Draft,
    send_at: datetime | None,
    email_id: str,
) -> dict[str, Any]:
    """What an outbound email item holds beyond a synced one (`queue_draft`, `queue_drafts`)."""
    status: SendStatus = "scheduled" if send_at else "queued"
    return {
        "send_status": status,
        "send_at": send_at.isoformat() if send_at else None,
        "outbox_account_id": account.account_id,
        "envelope_from": composed.envelope_from,
        "envelope_to": composed.recipients,
        "bcc": [r.model_dump() for r in draft.bcc],
        "requested_by": ctx.subject,
        "schedule_name": _schedule_name(email_id) if send_at else None,
    }


def _track(
    tenant: str,
    email_id: str,
    draft: Draft,
    override: TrackingOverride | None,
    recipients: list[str],
    deps: TrackingDeps,
) -> tuple[Draft, TrackedMessage | None]:
    """The draft with its HTML tracked, or (draft, None) when this message is not tracked.

    The email id is known before the second composition: it depends on the Message-ID, sender
    and subject, which tracking leaves as they are. The text part is kept as the first
    composition had it (the given text, or the one derived from the untracked HTML).
    """
    from mailbridge.tracking.service import decide

    opens, clicks = decide(tenant, override, recipients, deps)
    if not (opens or clicks) or draft.html is None:
        return draft, None
    return _tracked(tenant, email_id, draft, opens, clicks, deps)


def _tracked(
    tenant: str, email_id: str, draft: Draft, opens: bool, clicks: bool, deps: TrackingDeps
) -> tuple[Draft, TrackedMessage]:
    """The draft (with HTML) with its HTML tracked as decided."""
    from mailbridge.mime.html_text import html_to_text
    from mailbridge.tracking.service import track_html

    assert draft.html is not None
    html, tracked = track_html(tenant, email_id, draft.html, opens=opens, clicks=clicks, deps=deps)
    text = draft.text if draft.text is not None else html_to_text(draft.html)
    return draft.model_copy(update={"html": html, "text": text}), tracked


def _schedule_name(email_id: str) -> str:
    return f"send-{email_id}"


def cancel_schedule(ctx: TenantContext, email_id: str, deps: OutboxDeps) -> None:
    """Stop a scheduled send. The email stays listed (`status: cancelled`, `GET /emails?status=`),
    so the user sees what did not go out; only the schedule is deleted."""
    ctx.require(Role.MEMBER)
    item = deps.emails.get_email(ctx.tenant_id, email_id)
    if item is None or not item.get("send_status") or access_of(ctx).level(item) is not Visibility.FULL:
        raise NotFound("no such outbound email", code="not_found")
    if not deps.emails.transition(ctx.tenant_id, email_id, ("scheduled",), send_status="cancelled"):
        raise Conflict(f"the email is {item.get('send_status')}, not scheduled", code="not_scheduled")
    deps.scheduler.delete(_schedule_name(email_id))


# ---------------------------------------------------------------------------------- sending
@dataclass
class SendOutcome:
    status: str
    refused: dict[str, str]


def _smtp_settings(account: Account, deps: OutboxDeps) -> Any:
    if account.smtp is None:
        raise Invalid("the account has no SMTP credentials", code="account_cannot_send")
    secrets = load_secrets(deps.accounts, account)
    password = secrets.get("smtp_password") or str(secrets["imap_password"])
    return smtp_settings(account.smtp, password, allow_private=deps.allow_private_hosts)


def _send_graph(account: Account, composed: ComposedMessage) -> None:
    """sendMail with the MIME (our Message-ID kept): Graph files the Sent Items copy, which the
    sync recognises as this email (same Message-ID, sender and subject: `email_id_for`)."""
    from mailbridge.providers.graph.wiring import client_for, mime_for_send_mail

    client_for(account).send_mime(mime_for_send_mail(composed))


EMAIL_SEND_FAILED = "email.send_failed"


def fail(deps: OutboxDeps, message: OutboxMessage, exc: Exception) -> None:
    """Give up on a send: the status shows why, with the SMTP reply when there was one, and the
    call that moved it to `failed` announces `email.send_failed` (`{email_id, code}`: no reply
    text, no address; idempotency key `email.send_failed:{email_id}`) for the sender's
    notification. A PutEvents that fails after the status moved loses the announcement (the
    status stays the truth)."""
    details = getattr(exc, "details", None) or {}
    failure = {
        "code": getattr(exc, "code", "send_failed"),
        "message": getattr(exc, "message", "the send failed"),
        "smtp_code": details.get("smtp_code") if isinstance(details, dict) else None,
        # the SMTP client's errors carry the reply's text as `reply` (providers/smtp/errors.py)
        "smtp_reply": details.get("reply") if isinstance(details, dict) else None,
    }
    if not deps.emails.transition(
        message.tenant_id, message.email_id, PENDING, send_status="failed", failure=failure
    ):
        return
    deps.publisher.publish(
        [
            DomainEvent(
                detail_type=EMAIL_SEND_FAILED,
                tenant_id=message.tenant_id,
                idempotency_key=f"{EMAIL_SEND_FAILED}:{message.email_id}",
                data={"email_id": message.email_id, "code": str(failure["code"])},
            )
        ]
    )


def send_queued(message: OutboxMessage, deps: OutboxDeps) -> SendOutcome:
    """Send one queued email. Transient provider errors propagate (the caller retries with backoff);
    permanent ones mark the email failed with the server's reply."""
    tenant, email_id = message.tenant_id, message.email_id
    item = deps.emails.get_email(tenant, email_id)
    if item is None:
        return SendOutcome("missing", {})
    if item.get("send_status") not in PENDING:
        return SendOutcome(str(item.get("send_status")), {})  # sent, failed or cancelled: done
    if not deps.emails.transition(tenant, email_id, PENDING, send_status="sending"):
        return SendOutcome("raced", {})
    try:
        account = deps.accounts.get_account(tenant, str(item["outbox_account_id"]))
    except NotFound:
        fail(deps, message, Invalid("the sending account was removed", code="account_removed"))
        return SendOutcome("failed", {})
    raw = deps.blobs.get(str(item["raw_key"]))
    gmail_id: str | None = None
    try:
        if account.provider == "graph":
            result = (deps.send_graph or _send_graph)(account, _composed(item, raw))
        elif account.provider == "gmail":
            from mailbridge.outbox import gmail

            sent = gmail.send(account, item, raw, deps.emails, deps.gmail_client or gmail.default_client)
            result, gmail_id = None, sent.id
        else:
            result = _send_smtp(account, item, raw, deps)
    except (ProviderError, Invalid) as exc:  # Invalid: host_not_allowed, never retryable
        if exc.retryable:
            deps.emails.transition(tenant, email_id, ("sending",), send_status="queued")
            raise
        fail(deps, message, exc)
        details = exc.details if isinstance(exc.details, dict) else {}
        _suppress_refused(deps, tenant, email_id, details.get("refused"))  # every RCPT refused
        return SendOutcome("failed", {})
    refused = dict(getattr(result, "refused", {}) or {})
    _suppress_refused(deps, tenant, email_id, refused)  # some RCPT refused, the rest sent
    deps.emails.transition(
        tenant,
        email_id,
        ("sending",),
        send_status="sent",
        sent_at=deps.now().isoformat(),
        refused=refused or None,
    )
    if gmail_id is not None:
        _record_gmail_sent(account, raw, gmail_id, deps)
    else:
        _copy_to_sent(account, raw, email_id, deps)
    if item.get("draft"):
        from mailbridge.drafts.provider import remove_sent_draft

        remove_sent_draft(account, dict(item["draft"]), deps)
    sync_deps = SyncDeps(
        accounts=deps.accounts, emails=deps.emails, blobs=deps.blobs, publisher=deps.publisher
    )
    announce(tenant, account.account_id, [email_id], sync_deps)
    return SendOutcome("sent", refused)


def _suppress_refused(deps: OutboxDeps, tenant_id: str, email_id: str, refused: Any) -> None:
    """Recipients the SMTP server refused with 5xx (`{address: reply}`) become hard bounces
    (`mailbridge.campaigns.suppression.record_refusals`); Gmail and Graph report no recipient."""
    if deps.suppressions is not None and isinstance(refused, dict) and refused:
        from mailbridge.campaigns.suppression import record_refusals

        record_refusals(deps.suppressions, tenant_id, email_id, refused)


def _send_smtp(account: Account, item: dict[str, Any], raw: bytes, deps: OutboxDeps) -> Any:
    from mailbridge.providers.smtp import send as smtp_send

    sender = deps.send_smtp or smtp_send
    return sender(_smtp_settings(account, deps), _composed(item, raw))


def _composed(item: dict[str, Any], raw: bytes) -> ComposedMessage:
    """The stored outbound item and its raw bytes as the message the senders take."""
    return ComposedMessage(
        raw=raw,
        message_id=str(item["message_id"]),
        envelope_from=str(item["envelope_from"]),
        recipients=[str(r) for r in item["envelope_to"]],
        subject=str(item.get("subject") or ""),
    )


def _record_gmail_sent(account: Account, raw: bytes, gmail_id: str, deps: OutboxDeps) -> None:
    """Store the location Gmail gave the sent copy (its message id, `providers.gmail.locations`),
    read, on the email: the sync meets that copy in SENT as a location it already has."""
    from mailbridge.providers.gmail.locations import FOLDER, UIDVALIDITY, uid_for

    mailbox = Mailbox(
        account.tenant_id, account.account_id, account.address, FOLDER, UIDVALIDITY, is_sent_folder=True
    )
    fetched = FetchedMessage(
        uid=uid_for(gmail_id),
        flags=("\\Seen",),
        internal_date=deps.now(),
        modseq=None,
        size=len(raw),
        raw=raw,
    )
    try:
        ingest(mailbox, fetched, deps.emails, deps.blobs)
    except Conflict as exc:  # the mail is sent: the sync stores the location when it meets it
        logger.warning("sent copy not recorded", extra={"code": exc.code})


def _copy_to_sent(account: Account, raw: bytes, email_id: str, deps: OutboxDeps) -> None:
    """APPEND the sent message to the Sent folder (\\Seen) and record that location.

    The mail is already sent: a failure here is logged and left to the next sync, never retried
    by re-sending.
    """
    if account.imap is None:
        return  # an OAuth mailbox's provider files its own copy in Sent
    try:
        password = str(load_secrets(deps.accounts, account)["imap_password"])
        settings = imap_settings(account.imap, password, allow_private=deps.allow_private_hosts)
        with deps.connect_imap(settings) as imap:
            sent = imap.sent_folder()
            if sent is None:
                logger.warning("no Sent folder; sent copy not stored")
                return
            uid = imap.append(sent.name, raw, flags=["\\Seen"], internal_date=deps.now())  # type: ignore[list-item]
            status = imap.folder_status(sent.name)
        if uid is not None:
            mailbox = Mailbox(
                account.tenant_id,
                account.account_id,
                account.address,
                sent.name,
                status.uidvalidity,
                is_sent_folder=True,
            )
            fetched = FetchedMessage(
                uid=uid, flags=("\\Seen",), internal_date=deps.now(), modseq=None, size=len(raw), raw=raw
            )
            ingest(mailbox, fetched, deps.emails, deps.blobs)
    except (ProviderError, Invalid) as exc:  # Invalid: the IMAP host is now refused by the guard
        logger.warning("sent copy not stored", extra={"code": exc.code, "email_id": email_id})
