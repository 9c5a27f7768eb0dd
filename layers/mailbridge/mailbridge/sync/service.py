"""What the sync function does with each SyncQueue message."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mailbridge import opsmetrics
from mailbridge.accounts import Connector, imap_connect, imap_settings, load_secrets
from mailbridge.errors import (
    Invalid,
    MailbridgeError,
    NotFound,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
)
from mailbridge.models.account import REAUTH_REQUIRED, Account, SyncStage, SyncState
from mailbridge.observability import logger
from mailbridge.queues import SyncQueue
from mailbridge.store.blobs import BlobStore
from mailbridge.store.emails import EmailStore
from mailbridge.store.keys import email_sk, tenant_pk
from mailbridge.sync.engine import Budget, SyncDeps, SyncReport, sync_account
from mailbridge.sync.messages import (
    ImportContacts,
    PollAll,
    PurgeAccount,
    PushCalendar,
    PushFlags,
    Reconcile,
    RenewWatches,
    SyncCalendar,
    SyncRequest,
)

if TYPE_CHECKING:
    from mailbridge.providers.gmail.client import GmailClient
    from mailbridge.providers.graph.client import GraphClient
    from mailbridge.providers.imap.protocol import MailFolderSource
    from mailbridge.sync.gmail import GmailReport

POLL_WINDOW_SECONDS = 300
TRANSIENT_ATTEMPTS = 3
GMAIL_POLL_INTERVAL = timedelta(minutes=15)
"""A Gmail poll finds nothing to do for an account synced this recently (by a push)."""
RATE_LIMIT_WAIT_MAX_SECONDS = 64.0
"""A rate limit this short is waited out in the run (when the run's deadline allows); a longer one
puts the record back on the queue for that long (the caller, `functions/sync/app.py`). 64 s is
the cap of the truncated exponential backoff Google asks for (`providers/gmail/quota.py`), so a
quota storm is waited out within a run that has the time."""


@dataclass
class SyncServiceDeps:
    sync: SyncDeps
    queue: SyncQueue
    allow_private_hosts: bool = False
    connect: Connector = imap_connect
    sleep: Callable[[float], None] = time.sleep
    graph_client: Callable[[Account], GraphClient] | None = None  # None: from the settings
    gmail_client: Callable[[Account], GmailClient] | None = None  # None: the settings' Gmail API


def handle(
    message: SyncRequest
    | PollAll
    | PushFlags
    | PurgeAccount
    | RenewWatches
    | ImportContacts
    | SyncCalendar
    | PushCalendar
    | Reconcile,
    deps: SyncServiceDeps,
    budget: Budget,
) -> None:
    if isinstance(message, Reconcile):
        from mailbridge.sync.reconcile import handle_reconcile

        handle_reconcile(message, deps, budget)
    elif isinstance(message, SyncRequest):
        run_sync(message, deps, budget)
    elif isinstance(message, PollAll):
        poll_all(message, deps)
    elif isinstance(message, PushFlags):
        push_flags(message, deps)
    elif isinstance(message, RenewWatches) and message.provider == "graph":
        from mailbridge.webhooks.graph_subscriptions import handle_renewal

        handle_renewal(message, deps.sync.accounts, deps.queue)
    elif isinstance(message, RenewWatches):
        from mailbridge.config import get_settings
        from mailbridge.providers.gmail.connect import renew_watches

        renew_watches(message, deps.sync.accounts, deps.queue, get_settings().google)
    elif isinstance(message, ImportContacts):
        from mailbridge.crm.contact_import import handle_import

        handle_import(message, deps.sync.accounts, deps.queue)
    elif isinstance(message, SyncCalendar):
        from mailbridge.calendar.provider_sync import handle_calendar

        handle_calendar(message, deps.sync.accounts, deps.queue)
    elif isinstance(message, PushCalendar):
        from mailbridge.calendar.provider_sync import handle_push

        handle_push(message, deps.sync.accounts)
    else:
        purge_account(message, deps)


def _password(account: Account, deps: SyncServiceDeps) -> str:
    return str(load_secrets(deps.sync.accounts, account)["imap_password"])


SYNC_STATUS_CHANGED = "account.sync_status_changed"
_ROUTINE = {SyncStage.IDLE, SyncStage.SYNCING}


def _state(account: Account, deps: SyncServiceDeps, **changes: object) -> SyncState:
    """Save the account's sync state; announce `account.sync_status_changed` `{account_id, stage,
    reason}` when the stage or reason differs from the one the run started from, except the
    routine idle <-> syncing of every poll (a UI shows a first sync, a failure and a recovery;
    two events per poll per account would be most of the bus traffic). Best effort: a bus
    failure is logged, the sync goes on (the state is saved and `GET /accounts/{id}` shows it)."""
    state = account.sync.model_copy(update=changes)
    deps.sync.accounts.set_sync_state(
        account.tenant_id,
        account.account_id,
        state,
        pollable=state.reason not in ("auth_failed", REAUTH_REQUIRED),
        provider=account.provider,
    )
    before = account.sync
    routine = {before.stage, state.stage} <= _ROUTINE and state.reason in (None, "rate_limited")
    if (before.stage, before.reason) != (state.stage, state.reason) and not routine:
        _announce_status(account, state, deps)
    return state


def _announce_status(account: Account, state: SyncState, deps: SyncServiceDeps) -> None:
    from mailbridge.bus import DomainEvent

    at = deps.sync.now().isoformat()
    event = DomainEvent(
        detail_type=SYNC_STATUS_CHANGED,
        tenant_id=account.tenant_id,
        data={"account_id": account.account_id, "stage": str(state.stage), "reason": state.reason},
        idempotency_key=f"{SYNC_STATUS_CHANGED}:{account.account_id}:{state.stage}:{state.reason}:{at}",
    )
    try:
        deps.sync.publisher.publish([event])
    except MailbridgeError as exc:
        logger.warning("sync status not announced", extra={"code": exc.code})


def _failed(account: Account, deps: SyncServiceDeps, exc: MailbridgeError) -> None:
    _state(
        account,
        deps,
        stage=SyncStage.FAILED,
        reason=exc.code,
        last_error=exc.message,
        last_error_at=deps.sync.now(),
    )


def run_sync(request: SyncRequest, deps: SyncServiceDeps, budget: Budget) -> SyncReport | GmailReport | None:
    try:
        account = deps.sync.accounts.get_account(request.tenant_id, request.account_id)
    except NotFound:
        logger.info("sync for a removed account dropped")
        return None
    if request.reason == "push":
        deps.sync.accounts.note_push(account.tenant_id, account.account_id, request.requested_at)
    report: SyncReport | GmailReport | None
    if account.provider == "graph":
        from mailbridge.sync.graph import run_graph_sync

        report = run_graph_sync(request, account, deps, budget)
    elif account.provider == "gmail":
        report = run_gmail_sync(request, account, deps, budget)
    else:
        report = run_imap_sync(request, account, deps, budget)
    if report is not None:
        # The alarms' sync lag: queue wait + run, per provider (`mailbridge.opsmetrics`).
        opsmetrics.sync_lag(account.provider, (deps.sync.now() - request.requested_at).total_seconds())
    return report


def _pick_up_drafts(source: Any, account: Account, deps: SyncServiceDeps) -> None:
    """Drafts written in the mail client become drafts here (`mailbridge.drafts.pickup`); a
    failure there never fails the mail sync (the next run tries again)."""
    from mailbridge.drafts.pickup import pick_up_drafts
    from mailbridge.store.drafts import DraftStore

    try:
        pick_up_drafts(
            source, account, DraftStore(deps.sync.emails.table_name), deps.sync.blobs, deps.sync.now
        )
    except ProviderError as exc:
        logger.warning("client drafts not picked up", extra={"code": exc.code})


def _pick_up_gmail_drafts(client: Any, account: Account, deps: SyncServiceDeps) -> None:
    """Gmail drafts written in Gmail become drafts here (`mailbridge.drafts.pickup`); a failure
    there never fails the mail sync."""
    from mailbridge.drafts.pickup import pick_up_gmail_drafts
    from mailbridge.store.drafts import DraftStore

    try:
        pick_up_gmail_drafts(
            client, account, DraftStore(deps.sync.emails.table_name), deps.sync.blobs, deps.sync.now
        )
    except ProviderError as exc:
        logger.warning("gmail drafts not picked up", extra={"code": exc.code})


def run_imap_sync(
    request: SyncRequest, account: Account, deps: SyncServiceDeps, budget: Budget
) -> SyncReport | None:
    accounts = deps.sync.accounts
    # An auth_failed account waits for the user (polling would only hammer the server with bad
    # logins).
    imap = account.imap
    if imap is None or (account.sync.reason == "auth_failed" and request.reason == "poll"):
        accounts.clear_sync_queued(account.tenant_id, account.account_id, request.requested_at)
        return None

    # A run that starts clears the last failure's reason: a SYNCING state that kept `auth_failed`
    # would take the account (made pollable again by POST /accounts/{id}/sync) out of the poll.
    _state(account, deps, stage=SyncStage.SYNCING, reason=None)
    accounts.clear_sync_queued(account.tenant_id, account.account_id, request.requested_at)
    now = deps.sync.now
    for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
        try:
            settings = imap_settings(
                imap,
                _password(account, deps),
                allow_private=deps.allow_private_hosts,
                deadline=budget.session_deadline,
            )
            with deps.connect(settings) as source:
                report = sync_account(source, account, deps.sync, budget)
                _pick_up_drafts(source, account, deps)
            break
        except Invalid as exc:
            # The host now resolves to an address the guard refuses (host_not_allowed), or the
            # account is plain text on a stack that refuses it (insecure_not_allowed): no login
            # was attempted. Failed until the DNS or the settings change; polls try again.
            _failed(account, deps, exc)
            logger.warning("sync refused", extra={"code": exc.code})
            return None
        except ProviderAuthError as exc:
            # Stop here: no retry, no polling, until the user asks for a sync again.
            _failed(account, deps, exc)
            logger.warning("sync stopped: credentials rejected", extra={"code": exc.code})
            return None
        except ProviderError as exc:
            if budget.cut_off() and budget.spent:
                # The run's own deadline ended the IMAP session (a slow or trickling server) after
                # some progress: what was stored is durable and the cursor says where; hand over
                # in time. Without progress it is a failure like any other (retried, then the DLQ).
                logger.info("sync cut off at its deadline; continuing", extra={"code": exc.code})
                report = SyncReport(cut_off=True)
                break
            if not exc.retryable:
                _failed(account, deps, exc)
                return None
            if attempt == TRANSIENT_ATTEMPTS or budget.exhausted():
                _failed(account, deps, exc)
                raise  # the queue redelivers later; the cursor keeps what was stored
            logger.info("transient provider error; retrying", extra={"code": exc.code, "attempt": attempt})
            deps.sleep(2.0**attempt)

    if report.complete:
        _state(account, deps, stage=SyncStage.IDLE, reason=None, last_success_at=now())
    else:
        deps.queue.send(continuation_of(request))
    logger.info("sync run", extra={"stored": report.stored, "complete": report.complete})
    return report


def _gmail_client(account: Account, deps: SyncServiceDeps) -> GmailClient:
    if deps.gmail_client is not None:
        return deps.gmail_client(account)
    from mailbridge.config import get_settings
    from mailbridge.providers.gmail.connect import client_for

    return client_for(account, get_settings().google)


def run_gmail_sync(
    request: SyncRequest, account: Account, deps: SyncServiceDeps, budget: Budget
) -> GmailReport | None:
    """Sync a Gmail account (`mailbridge.sync.gmail`): `pending`/`idle` -> `syncing` -> `idle`
    with `last_success_at`, or `failed` with the error's code.

    A revoked grant (`reauth_required`, set by `mailbridge.oauth.tokens`) waits for the user:
    polls and pushes are dropped until a reconnect, which resumes from the saved cursor. A poll
    finds nothing to do for an account synced in the last 15 minutes (a push did it). A rate
    limit (ProviderRateLimited) of at most RATE_LIMIT_WAIT_MAX_SECONDS that ends before the run's
    deadline is waited out and the run carries on from its cursor; a longer one is raised for the
    caller to put the record back on the queue for `retry_after` seconds. Other errors: retryable
    ones are retried by the queue, the others fail the account.
    """
    from mailbridge.sync.gmail import sync_gmail

    accounts, now = deps.sync.accounts, deps.sync.now
    tenant_id, account_id = account.tenant_id, account.account_id
    last = account.sync.last_success_at
    if (account.sync.reason == REAUTH_REQUIRED and request.reason in ("poll", "push")) or (
        request.reason == "poll" and last is not None and now() - last < GMAIL_POLL_INTERVAL
    ):
        accounts.clear_sync_queued(tenant_id, account_id, request.requested_at)
        return None
    _state(account, deps, stage=SyncStage.SYNCING, reason=None)
    accounts.clear_sync_queued(tenant_id, account_id, request.requested_at)
    client = _gmail_client(account, deps)
    while True:
        try:
            report = sync_gmail(client, account, deps.sync, budget)
            _pick_up_gmail_drafts(client, account, deps)
            break
        except ProviderRateLimited as exc:
            wait = exc.retry_after if exc.retry_after is not None else RATE_LIMIT_WAIT_MAX_SECONDS
            if wait <= RATE_LIMIT_WAIT_MAX_SECONDS and time.monotonic() + wait < budget.deadline:
                logger.info("gmail rate limited; waiting", extra={"retry_after": wait})
                deps.sleep(wait)
                continue
            logger.info("gmail rate limited; back on the queue", extra={"retry_after": wait})
            raise
        except ProviderAuthError as exc:
            # reauth_required (the grant is gone) or insufficient_scope: the user must reconnect.
            _failed(account, deps, exc)
            logger.warning("gmail sync stopped: the grant does not work", extra={"code": exc.code})
            return None
        except ProviderError as exc:
            _failed(account, deps, exc)
            if exc.retryable:
                raise  # the queue redelivers later; the cursor keeps what was stored
            return None
    if report.complete:
        _state(account, deps, stage=SyncStage.IDLE, reason=None, last_success_at=now())
    else:
        deps.queue.send(continuation_of(request))
    logger.info("gmail sync run", extra={"stored": report.stored, "complete": report.complete})
    return report


def continuation_of(request: SyncRequest) -> SyncRequest:
    return SyncRequest(tenant_id=request.tenant_id, account_id=request.account_id, reason="continuation")


def poll_all(message: PollAll, deps: SyncServiceDeps) -> int:
    """Queue a sync per active account; a stable dedupe id per 5-minute window collapses repeats."""
    window = int(datetime.now(UTC).timestamp()) // POLL_WINDOW_SECONDS
    requests, ids = [], []
    for tenant_id, account_id in deps.sync.accounts.pollable(message.provider):
        request = SyncRequest(tenant_id=tenant_id, account_id=account_id, reason="poll")
        if not deps.sync.accounts.mark_sync_queued(tenant_id, account_id, request.requested_at):
            continue  # removed since the index was read
        requests.append(request)
        ids.append(f"poll-{tenant_id}-{account_id}-{window}"[:128])
    if requests:
        deps.queue.send_many(requests, ids)
    return len(requests)


def push_flags(message: PushFlags, deps: SyncServiceDeps) -> None:
    from mailbridge.providers.imap.models import Flag

    try:
        account = deps.sync.accounts.get_account(message.tenant_id, message.account_id)
    except NotFound:
        return
    if account.provider == "gmail":
        from mailbridge.sync.writeback_gmail import push_labels

        push_labels(message, account, deps.sync.emails, sleep=deps.sleep)
        return
    item = deps.sync.emails.get_email(message.tenant_id, message.email_id)
    if item is None:
        return
    locations = [
        loc
        for loc in deps.sync.emails.batch_get_sks(message.tenant_id, sorted(item.get("loc_keys") or []))
        if loc.get("account_id") == message.account_id
    ]
    if locations and account.provider == "graph":
        from mailbridge.sync.graph import push_graph_flags

        push_graph_flags(message, account, locations, deps)
        return
    if not locations or account.imap is None:
        return
    add = [Flag(f) for f in message.add]
    remove = [Flag(f) for f in message.remove]
    try:
        settings = imap_settings(
            account.imap, _password(account, deps), allow_private=deps.allow_private_hosts
        )
        with deps.connect(settings) as source:
            for loc in locations:
                if add or remove:
                    source.set_flags(str(loc["folder"]), int(loc["uid"]), add=add, remove=remove)
                    flags = (set(loc.get("flags") or []) | set(message.add)) - set(message.remove)
                    deps.sync.emails.set_location_flags(
                        message.tenant_id, str(loc["sk"]), sorted(flags), None
                    )
            if message.archived is not None or message.trashed is not None:
                _move_imap(message, locations, source, deps)
    except Invalid as exc:  # host_not_allowed, insecure_not_allowed: the next sync reports it
        logger.warning("flag push dropped", extra={"code": exc.code})


def _move_imap(
    message: PushFlags, locations: list[dict[str, Any]], source: MailFolderSource, deps: SyncServiceDeps
) -> None:
    """Archive/trash on IMAP: move each location between INBOX and the account's RFC 6154
    `\\Archive` / `\\Trash` folder (found by SPECIAL-USE, else by its usual name), then re-key the
    stored location to the folder and UID the server gave it (COPYUID), so the next sync finds it
    where it is instead of seeing a deletion and a new message.

    archived true: INBOX -> Archive; false: Archive -> INBOX. trashed true: any folder but Trash
    -> Trash; false: Trash -> INBOX. A mailbox without the folder is logged and left alone."""
    from mailbridge.providers.imap.folders import find_special_folder
    from mailbridge.providers.imap.models import SpecialUse
    from mailbridge.store.keys import location_sk

    use = SpecialUse.TRASH if message.trashed is not None else SpecialUse.ARCHIVE
    special = find_special_folder(source.list_folders(), use)
    if special is None:
        logger.warning("imap move skipped", extra={"code": "special_folder_not_found", "use": use.value})
        return
    into = message.trashed if message.trashed is not None else message.archived
    emails = deps.sync.emails
    for loc in locations:
        folder = str(loc["folder"])
        if into:
            moving = folder != special.name and (use is SpecialUse.TRASH or folder.upper() == "INBOX")
            target = special.name
        else:
            moving, target = folder == special.name, "INBOX"
        if not moving:
            continue
        placed = source.move(folder, int(loc["uid"]), target)
        emails.delete_location(message.tenant_id, str(loc["sk"]))
        if placed is None:  # no COPYUID: the next sync of the target folder finds it by Message-ID
            emails.detach_location(message.tenant_id, message.email_id, str(loc["sk"]))
            continue
        uidvalidity, uid = placed
        new_sk = location_sk(message.account_id, target, uidvalidity, uid)
        kept = {k: v for k, v in loc.items() if k not in ("pk", "sk")}
        emails.create_location(
            message.tenant_id, new_sk, {**kept, "folder": target, "uidvalidity": uidvalidity, "uid": uid}
        )
        emails.attach_location(message.tenant_id, message.email_id, new_sk, message.account_id, target)
        emails.detach_location(message.tenant_id, message.email_id, str(loc["sk"]))


def purge_account(message: PurgeAccount, deps: SyncServiceDeps) -> int:
    """Remove a deleted account's synced mail: its locations, and emails no other mailbox holds."""
    emails, blobs = deps.sync.emails, deps.sync.blobs
    removed = 0
    cursor: str | None = None
    while True:
        locations, cursor = emails.list_account_locations(
            message.tenant_id, message.account_id, cursor=cursor, limit=100
        )
        for loc in locations:
            emails.delete_location(message.tenant_id, str(loc["sk"]))
            if emails.detach_location(message.tenant_id, str(loc["email_id"]), str(loc["sk"])):
                _delete_email(message.tenant_id, str(loc["email_id"]), emails, blobs)
                removed += 1
        if cursor is None:
            break
    for item in emails.list_quarantine(message.tenant_id, message.account_id):
        blobs.client.delete_object(Bucket=blobs.bucket, Key=str(item["raw_key"]))
        emails.delete(str(item["pk"]), str(item["sk"]))
    return removed


def _delete_email(tenant_id: str, email_id: str, emails: EmailStore, blobs: BlobStore) -> None:
    item = emails.get_email(tenant_id, email_id)
    if item is None:
        return
    keys = [str(item["raw_key"])] + [
        blobs.attachment_key(tenant_id, email_id, str(a["id"])) for a in item.get("attachments") or []
    ]
    if item.get("body_key"):
        keys.append(str(item["body_key"]))
    for key in keys:
        blobs.client.delete_object(Bucket=blobs.bucket, Key=key)
    emails.delete(tenant_pk(tenant_id), email_sk(email_id))
