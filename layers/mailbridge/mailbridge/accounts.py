"""Connected mailboxes: connect (log in before saving), list, read, change, delete, request a sync,
status.

Every login made while an API request waits (connecting, changing credentials) runs under one
deadline (`login_deadline`): `login_check_seconds` from now, and never later than the Lambda's
remaining time less `response_margin_seconds`. A server that accepts and never answers, or
trickles its answer, is cut off at the deadline and the request answers 422 `timeout`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from mailbridge import crypto
from mailbridge.access import Access, Mailbox, PrivacySettings, PrivacyStore, Visibility
from mailbridge.errors import (
    Conflict,
    Forbidden,
    Invalid,
    MailbridgeError,
    NotFound,
    ProviderAuthError,
    ProviderUnreachable,
)
from mailbridge.models.account import (
    OAUTH_PROVIDERS,
    REAUTH_REQUIRED,
    Account,
    AccountCreate,
    AccountOut,
    AccountPatch,
    AccountStatus,
    FolderPresence,
    FolderState,
    FolderStatus,
    PublicServerSettings,
    ServerSettings,
    SmtpChange,
    SyncStage,
    SyncState,
    Verdict,
    calendar_access,
)
from mailbridge.providers.imap.protocol import MailFolderSource
from mailbridge.providers.imap.settings import ImapSettings, Security
from mailbridge.queues import SyncQueue
from mailbridge.store.accounts import AccountStore
from mailbridge.store.pagination import Page
from mailbridge.sync.messages import PurgeAccount, Reconcile, SyncRequest
from mailbridge.tenancy import Role, TenantContext

if TYPE_CHECKING:
    from mailbridge.providers.smtp.settings import SmtpSettings

Connector = Callable[[ImapSettings], MailFolderSource]
SmtpLoginCheck = Callable[["SmtpSettings"], None]
Disconnect = Callable[[Account], None]
"""Best-effort goodbye to an OAuth provider before the account is deleted (stop push, revoke)."""

# Per socket operation. The sync and the outbox have the whole function's time; an API request
# is bounded by `login_deadline` on top.
IMAP_TIMEOUT_SECONDS = 20.0
SMTP_TIMEOUT_SECONDS = 30.0


def imap_connect(settings: ImapSettings) -> MailFolderSource:
    # Imported on use: the IMAP client library is not needed on most API cold starts.
    from mailbridge.providers.imap.client import connect

    return connect(settings)


def smtp_check_login(settings: SmtpSettings) -> None:
    from mailbridge.providers.smtp.client import check_login

    check_login(settings)


@dataclass
class AccountDeps:
    store: AccountStore
    queue: SyncQueue
    key_id: str
    allow_private_hosts: bool = False
    connect: Connector = imap_connect
    check_smtp: SmtpLoginCheck = smtp_check_login
    disconnect: Disconnect | None = None
    privacy: PrivacyStore | None = None
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    # The API function's timeout is 29 s (template.yaml): logins get at most 20 s of it, and at
    # least 4 s stay for sealing the credentials, the store and the queue.
    login_check_seconds: float = 20.0
    response_margin_seconds: float = 4.0


def _public(server: ServerSettings) -> PublicServerSettings:
    return PublicServerSettings(
        host=server.host, port=server.port, security=server.security, username=server.username
    )


def require_encryption(security: Security, *, allow_private: bool) -> None:
    """Plain text (`security: none`) is for local development only (`allow_private`): it sends the
    password and the mail readable by anyone on the path.

    Raises Invalid(insecure_not_allowed) (400) otherwise.
    """
    if security is Security.NONE and not allow_private:
        raise Invalid(
            "unencrypted connections are not allowed; use ssl or starttls", code="insecure_not_allowed"
        )


def imap_settings(
    server: PublicServerSettings | ServerSettings,
    password: str,
    *,
    allow_private: bool,
    deadline: float | None = None,
) -> ImapSettings:
    """The adapter's settings for an account's IMAP server. `allow_private` (local development)
    also allows `security: none`; `deadline` is a `time.monotonic()` instant (API requests).

    Raises Invalid(insecure_not_allowed) for `security: none` without `allow_private`: an account
    connected while the stack allowed plain text is refused by a stack that does not.
    """
    require_encryption(server.security, allow_private=allow_private)
    return ImapSettings(
        host=server.host,
        port=server.port,
        security=server.security,
        username=server.username,
        password=password,  # type: ignore[arg-type]  # pydantic coerces str to SecretStr
        allow_insecure=allow_private and server.security is Security.NONE,
        allow_private=allow_private,
        timeout_seconds=IMAP_TIMEOUT_SECONDS,
        deadline=deadline,
    )


def smtp_settings(
    server: PublicServerSettings | ServerSettings,
    password: str,
    *,
    allow_private: bool,
    deadline: float | None = None,
) -> SmtpSettings:
    """The same for the account's SMTP server (same refusal of `security: none`)."""
    from mailbridge.providers.smtp.settings import SmtpSettings

    require_encryption(server.security, allow_private=allow_private)
    return SmtpSettings(
        host=server.host,
        port=server.port,
        security=server.security,
        username=server.username,
        password=password,  # type: ignore[arg-type]  # pydantic coerces str to SecretStr
        allow_insecure=allow_private and server.security is Security.NONE,
        allow_private=allow_private,
        timeout_seconds=SMTP_TIMEOUT_SECONDS,
        deadline=deadline,
    )


def credentials_context(tenant_id: str, account_id: str) -> dict[str, str]:
    return {"tenant_id": tenant_id, "account_id": account_id}


def load_secrets(store: AccountStore, account: Account) -> dict[str, str | None]:
    """The account's decrypted secrets; never log the result.

    IMAP accounts: `{imap_password, smtp_password}`; OAuth accounts: `{refresh_token}`
    (mailbridge.oauth). Raises ProviderAuthError(auth_failed) when none are stored.
    """
    envelope = store.get_credentials(account.tenant_id, account.account_id)
    if envelope is None:
        raise ProviderAuthError("no credentials stored", code="auth_failed")
    context = credentials_context(account.tenant_id, account.account_id)
    secrets: dict[str, str | None] = json.loads(crypto.decrypt(envelope, context))
    return secrets


def seal_secrets(
    secrets: dict[str, str | None], tenant_id: str, account_id: str, *, key_id: str
) -> crypto.Envelope:
    """Encrypt under a fresh data key, bound to this tenant and account (KMS encryption context):
    what `load_secrets` opens."""
    return crypto.encrypt(
        json.dumps(secrets).encode(), credentials_context(tenant_id, account_id), key_id=key_id
    )


def _seal(
    secrets: dict[str, str | None], tenant_id: str, account_id: str, deps: AccountDeps
) -> crypto.Envelope:
    return seal_secrets(secrets, tenant_id, account_id, key_id=deps.key_id)


def to_out(account: Account) -> AccountOut:
    return AccountOut(
        account_id=account.account_id,
        provider=account.provider,
        address=account.address,
        display_name=account.display_name,
        imap=account.imap,
        smtp=account.smtp,
        oauth=account.oauth,
        calendar=calendar_access(account.provider, account.oauth.scopes if account.oauth else None),
        folders=account.folders,
        created_at=account.created_at,
        owner=account.created_by,
        visibility=account.visibility,
        sync=account.sync,
        version=account.version,
    )


def _policy(ctx: TenantContext, deps: AccountDeps) -> PrivacySettings:
    stored = deps.privacy.get_privacy(ctx.tenant_id) if deps.privacy is not None else None
    return stored or PrivacySettings()


def visible_account(ctx: TenantContext, account_id: str, deps: AccountDeps) -> Account:
    """The account, unless it is another user's private mailbox (mailbridge.access): then, as for
    an account that does not exist, NotFound(account_not_found), so its id does not leak."""
    account = deps.store.get_account(ctx.tenant_id, account_id)
    access = Access(
        ctx=ctx,
        policy=_policy(ctx, deps),
        mailboxes={account_id: Mailbox(owner=account.created_by, visibility=account.visibility)},
    )
    if access.account_level(account_id) is Visibility.PRIVATE:
        raise NotFound("no such account", code="account_not_found")
    return account


def _check_server(server: ServerSettings, deps: AccountDeps) -> None:
    require_encryption(server.security, allow_private=deps.allow_private_hosts)


def login_deadline(deps: AccountDeps, remaining_ms: int | None) -> float:
    """The `time.monotonic()` instant by which an API request's logins must be over.

    Raises ProviderUnreachable(timeout) when the function has no time left for one.
    """
    budget = deps.login_check_seconds
    if remaining_ms is not None:
        budget = min(budget, remaining_ms / 1000 - deps.response_margin_seconds)
    if budget <= 0:
        raise ProviderUnreachable("no time left to check the login; try again", code="timeout")
    return time.monotonic() + budget


def _on(server: str, exc: MailbridgeError) -> MailbridgeError:
    """Say which server an error came from (`details.server`: imap or smtp)."""
    if exc.details is None or isinstance(exc.details, dict):
        exc.details = {**(exc.details or {}), "server": server}
    return exc


def _check_logins(deps: AccountDeps, imap: ImapSettings | None, smtp: SmtpSettings | None) -> str | None:
    """Log in where settings are given, before anything is saved; returns the name of the Sent
    folder (SPECIAL-USE, RFC 6154) when the IMAP login was checked and the server names one.

    Bad credentials, unreachable or private hosts, TLS failures and timeouts answer now, as the
    typed error with `details.server`, not in a failed background sync or send.
    """
    sent: str | None = None
    if imap is not None:
        try:
            with deps.connect(imap) as session:
                folder = session.sent_folder()
                sent = folder.name if folder is not None else None
        except MailbridgeError as exc:
            raise _on("imap", exc) from None
    if smtp is not None:
        try:
            deps.check_smtp(smtp)
        except MailbridgeError as exc:
            raise _on("smtp", exc) from None
    return sent


def _queue_sync(account: Account, deps: AccountDeps) -> None:
    """Queue a sync the user asked for and show it as queued (`queued_at`) until it starts."""
    request = SyncRequest(tenant_id=account.tenant_id, account_id=account.account_id, reason="manual")
    deps.store.mark_sync_queued(account.tenant_id, account.account_id, request.requested_at)
    deps.queue.send(request)


def connect_account(
    ctx: TenantContext, body: AccountCreate, deps: AccountDeps, *, remaining_ms: int | None = None
) -> AccountOut:
    """Log in (IMAP, and SMTP when given), then save the account and queue its first sync.

    `remaining_ms` is the Lambda's remaining time (the login deadline is derived from it).
    Raises Conflict(account_exists, details.field address | login), Invalid(insecure_not_allowed
    | host_not_allowed), ProviderAuthError(auth_failed) or ProviderUnreachable(unreachable |
    tls_failed | timeout | connection_lost), the last two with `details.server`.
    """
    ctx.require(Role.MEMBER)
    for server in (body.imap, body.smtp):
        if server is not None:
            _check_server(server, deps)
    deps.store.check_unique(ctx.tenant_id, str(body.address), body.imap.host, body.imap.username)

    deadline = login_deadline(deps, remaining_ms)
    allow_private = deps.allow_private_hosts
    imap_password = body.imap.password.get_secret_value()
    smtp_password = body.smtp.password.get_secret_value() if body.smtp else None
    sent = _check_logins(
        deps,
        imap_settings(body.imap, imap_password, allow_private=allow_private, deadline=deadline),
        smtp_settings(body.smtp, smtp_password, allow_private=allow_private, deadline=deadline)
        if body.smtp and smtp_password
        else None,
    )

    account_id = "acc_" + uuid.uuid4().hex[:20]
    request = SyncRequest(tenant_id=ctx.tenant_id, account_id=account_id, reason="connected")
    account = Account(
        account_id=account_id,
        tenant_id=ctx.tenant_id,
        provider="imap",
        address=str(body.address),
        display_name=body.display_name,
        imap=_public(body.imap),
        smtp=_public(body.smtp) if body.smtp else None,
        folders=[name for name in body.folders if name != sent],  # Sent is synced anyway
        created_at=deps.now(),
        created_by=ctx.subject,
        sync=SyncState(stage=SyncStage.PENDING, queued_at=request.requested_at),
        version=1,
    )
    secrets = {"imap_password": imap_password, "smtp_password": smtp_password}
    deps.store.create_account(account, _seal(secrets, ctx.tenant_id, account_id, deps))
    deps.queue.send(request)
    return to_out(account)


def _merged_smtp(
    current: PublicServerSettings | None, password: str | None, change: SmtpChange
) -> ServerSettings:
    """The SMTP settings after `change`; a first SMTP setup must name host, username and password."""
    host = change.host or (current.host if current else None)
    username = change.username or (current.username if current else None)
    secret = change.password.get_secret_value() if change.password else password
    if host is None or username is None or not secret:
        raise Invalid(
            "the account has no SMTP settings yet: give host, username and password",
            code="smtp_incomplete",
        )
    security = change.security or (current.security if current else Security.SSL)
    if "port" in change.model_fields_set:
        port = change.port
    elif current is not None and security is current.security:
        port = current.port
    else:
        port = None  # the security mode changed: its default port
    return ServerSettings.model_validate(
        {"host": host, "port": port, "security": security, "username": username, "password": secret}
    )


def _server_settings(
    account: Account, body: AccountPatch, sent_fields: set[str]
) -> PublicServerSettings | None:
    """The account's IMAP settings; an OAuth account has none, so a change of them is refused."""
    if account.imap is None and (body.imap is not None or "smtp" in sent_fields):
        raise Invalid(
            "this mailbox is connected through OAuth: it has no IMAP password or SMTP settings",
            code="oauth_account",
        )
    return account.imap


def _visibility_change(
    ctx: TenantContext, account: Account, visibility: Visibility | None
) -> Visibility | None:
    """Only the mailbox's owner, or a tenant admin or owner, decides what others see of it:
    Forbidden(not_mailbox_owner) for anyone else (who sees the account: it is not private)."""
    if account.created_by != ctx.subject and not ctx.role.at_least(Role.ADMIN):
        raise Forbidden(
            "only the mailbox's owner or a tenant admin can change what others see of it",
            code="not_mailbox_owner",
        )
    return visibility


def _plain_changes(
    ctx: TenantContext, account: Account, body: AccountPatch, sent_fields: set[str]
) -> dict[str, object]:
    """The changes that need no login: the display name and the visibility."""
    changes: dict[str, object] = {}
    if "display_name" in sent_fields:
        changes["display_name"] = body.display_name
    if "visibility" in sent_fields:
        changes["visibility"] = _visibility_change(ctx, account, body.visibility)
    return changes


def update_account(
    ctx: TenantContext,
    account_id: str,
    body: AccountPatch,
    deps: AccountDeps,
    *,
    remaining_ms: int | None = None,
) -> AccountOut:
    """Change the display name, the folders, the IMAP password or the SMTP settings.

    A new IMAP password and changed SMTP settings are tried with a login first (same checks,
    guard and deadline as `connect_account`), then sealed again under KMS with the account's
    `{tenant_id, account_id}` context. A successful IMAP login clears an `auth_failed` failure:
    the account goes back into the poll rotation and a sync is queued (as after a folder change).
    `visibility` (mailbridge.access) is the owner's or a tenant admin's to set.
    Raises NotFound(account_not_found; also for another user's private mailbox),
    Forbidden(not_mailbox_owner), Conflict(version_conflict), Invalid(smtp_incomplete |
    insecure_not_allowed | host_not_allowed) and the login errors of `connect_account`.
    """
    ctx.require(Role.MEMBER)
    account = visible_account(ctx, account_id, deps)
    expected = body.version if body.version is not None else account.version
    if expected != account.version:
        raise Conflict("the account was changed by someone else", code="version_conflict")
    sent_fields = body.model_fields_set - {"version"}
    imap = _server_settings(account, body, sent_fields)
    changes = _plain_changes(ctx, account, body, sent_fields)

    secrets: dict[str, str | None] | None = None
    if body.imap is not None or "smtp" in sent_fields:
        secrets = load_secrets(deps.store, account)
    allow_private = deps.allow_private_hosts
    check_imap: ImapSettings | None = None
    check_smtp: SmtpSettings | None = None
    deadline: float | None = None
    if body.imap is not None or body.smtp is not None:
        deadline = login_deadline(deps, remaining_ms)
    if secrets is not None and body.imap is not None and imap is not None:
        new_password = body.imap.password.get_secret_value()
        secrets["imap_password"] = new_password
        check_imap = imap_settings(imap, new_password, allow_private=allow_private, deadline=deadline)
    if secrets is not None and "smtp" in sent_fields:
        if body.smtp is None:
            changes["smtp"], secrets["smtp_password"] = None, None
        else:
            stored = secrets.get("smtp_password") or secrets.get("imap_password")
            server = _merged_smtp(account.smtp, stored, body.smtp)
            _check_server(server, deps)
            password = server.password.get_secret_value()
            changes["smtp"], secrets["smtp_password"] = _public(server), password
            check_smtp = smtp_settings(server, password, allow_private=allow_private, deadline=deadline)

    sent = _check_logins(deps, check_imap, check_smtp)
    if body.folders is not None:
        changes["folders"] = [name for name in body.folders if name != sent]
    if not changes and secrets is None:
        return to_out(account)

    updated = deps.store.update_account(
        account.model_copy(update=changes),
        fields=changes.keys(),
        expected_version=expected,
        credentials=_seal(secrets, ctx.tenant_id, account_id, deps) if secrets is not None else None,
    )
    removed = set(account.folders) - set(updated.folders)
    deps.store.delete_folder_states(ctx.tenant_id, account_id, sorted(removed))
    recovered = check_imap is not None and account.sync.reason == "auth_failed"
    if recovered:
        state = updated.sync.model_copy(update={"stage": SyncStage.PENDING, "reason": None})
        deps.store.set_sync_state(ctx.tenant_id, account_id, state)
        deps.store.make_pollable(ctx.tenant_id, account_id, account.provider)
    if recovered or set(updated.folders) - set(account.folders):
        _queue_sync(updated, deps)
    return to_out(deps.store.get_account(ctx.tenant_id, account_id))


def list_accounts(
    ctx: TenantContext, deps: AccountDeps, *, cursor: str | None, limit: int
) -> Page[AccountOut]:
    """The tenant's mailboxes but those private to the caller (other users' `private` ones, unless
    the caller sees all: mailbridge.access), filtered in the query, pages filled."""
    access = Access(ctx=ctx, policy=_policy(ctx, deps))
    if access.sees_all:
        accounts, next_cursor = deps.store.list_accounts(ctx.tenant_id, cursor=cursor, limit=limit)
    else:
        accounts, next_cursor = deps.store.list_shared_accounts(
            ctx.tenant_id, ctx.subject, access.policy.default_visibility, cursor=cursor, limit=limit
        )
    return Page[AccountOut](items=[to_out(a) for a in accounts], next_cursor=next_cursor)


def get_account(ctx: TenantContext, account_id: str, deps: AccountDeps) -> AccountOut:
    return to_out(visible_account(ctx, account_id, deps))


def delete_account(ctx: TenantContext, account_id: str, deps: AccountDeps, *, purge: bool) -> None:
    """Credentials go at once with the account item; synced mail stays unless `purge`.

    An OAuth account first says goodbye to its provider (`deps.disconnect`: stop the push watch,
    revoke the grant), best effort: a provider that is down never keeps an account connected.
    """
    ctx.require(Role.MEMBER)
    account = visible_account(ctx, account_id, deps)
    if deps.disconnect is not None and account.provider in OAUTH_PROVIDERS:
        deps.disconnect(account)
    deps.store.delete_account(ctx.tenant_id, account_id)
    if purge:
        deps.queue.send(PurgeAccount(tenant_id=ctx.tenant_id, account_id=account_id))


def request_sync(ctx: TenantContext, account_id: str, deps: AccountDeps) -> AccountStatus:
    ctx.require(Role.MEMBER)
    account = visible_account(ctx, account_id, deps)
    if account.sync.reason == REAUTH_REQUIRED:
        raise Conflict(
            "the provider revoked this mailbox's access: reconnect it through /oauth/{provider}/start "
            "with its account_id",
            code=REAUTH_REQUIRED,
        )
    if account.sync.stage is SyncStage.FAILED:
        # The user asks again (perhaps after fixing the server side): back into the poll rotation.
        deps.store.make_pollable(ctx.tenant_id, account_id, account.provider)
    _queue_sync(account, deps)
    return account_status(ctx, account_id, deps)


LAGGING_AFTER = timedelta(hours=1)
"""A folder whose cursor has not moved for this long is `lagging`: 12 missed IMAP polls (every
5 minutes), 4 missed Gmail polls (every 15 minutes), or an hour of Graph pushes and polls."""
RECONCILE_STALE_AFTER = timedelta(hours=6)
"""A queued reconcile older than this no longer holds back a new request (its record was lost)."""
AUTH_REASONS = frozenset({REAUTH_REQUIRED, "auth_failed"})


def folder_verdict(account: Account, state: FolderState, now: datetime) -> Verdict:
    """The health of one folder, the first rule that holds:

    1. `reauth_required`: the mailbox's credentials no longer work (`sync.reason` is
       `reauth_required`, an OAuth grant revoked, or `auth_failed`, an IMAP password refused):
       nothing syncs until the user reconnects or changes the password;
    2. `failed`: the account's last sync failed (`sync.stage` `failed`, another reason), the
       selected folder is `missing` on the server, or the folder's last reconcile stopped with
       an error (`reconcile.error`);
    3. `gap_found`: the folder's last reconcile found messages the server has that we had not
       stored (`reconcile.missing`) or stored ones the server no longer has (`reconcile.extra`);
       `reconcile.repaired` says how many it repaired. The next reconcile that finds none clears
       it, so a sync that loses mail shows until it is proven whole again;
    4. `lagging`: the folder's cursor has not moved for LAGGING_AFTER (1 hour) or the folder was
       never synced;
    5. `healthy`: none of these.
    """
    if account.sync.reason in AUTH_REASONS:
        return "reauth_required"
    findings = state.reconcile
    if (
        account.sync.stage is SyncStage.FAILED
        or state.state is FolderPresence.MISSING
        or (findings is not None and findings.error is not None)
    ):
        return "failed"
    if findings is not None and (findings.missing or findings.extra):
        return "gap_found"
    if state.last_synced_at is None or now - state.last_synced_at > LAGGING_AFTER:
        return "lagging"
    return "healthy"


def _seconds_since(then: datetime | None, now: datetime) -> float | None:
    return None if then is None else max(0.0, (now - then).total_seconds())


def folder_status(account: Account, state: FolderState, now: datetime) -> FolderStatus:
    findings = state.reconcile
    return FolderStatus(
        **state.model_dump(exclude={"delta_link"}),
        server_count=state.messages_on_server,
        stored_count=state.messages_stored,
        last_reconcile_at=findings.at if findings is not None else None,
        cursor_age_seconds=_seconds_since(state.last_synced_at, now),
        since_last_push_seconds=_seconds_since(account.sync.last_push_at, now),
        verdict=folder_verdict(account, state, now),
    )


def _gmail_cursor_on_labels(states: list[FolderState]) -> list[FolderState]:
    """A Gmail account has one cursor, All Mail's (`mailbridge.sync.gmail`): each label's folder
    (written by the reconcile) shows its last move, so a label lags only when the account does."""
    from mailbridge.providers.gmail.locations import FOLDER

    anchor = next((state for state in states if state.name == FOLDER), None)
    moved = anchor.last_synced_at if anchor is not None else None
    return [
        state if state.name == FOLDER else state.model_copy(update={"last_synced_at": moved})
        for state in states
    ]


def account_status(ctx: TenantContext, account_id: str, deps: AccountDeps) -> AccountStatus:
    """The account's sync state and per folder its counts, last reconcile, cursor age, time
    since the last push and verdict (`folder_verdict`); each figure is also a metric."""
    from aws_lambda_powertools.metrics import MetricUnit

    from mailbridge.observability import metrics

    account = visible_account(ctx, account_id, deps)
    sync = account.sync
    now = deps.now()
    states = deps.store.folder_states(ctx.tenant_id, account_id)
    if account.provider == "gmail":
        states = _gmail_cursor_on_labels(states)
    folders = [folder_status(account, state, now) for state in states]
    for folder in folders:
        metrics.add_metric(name=f"FolderVerdict_{folder.verdict}", unit=MetricUnit.Count, value=1)
        if folder.cursor_age_seconds is not None:
            metrics.add_metric(
                name="FolderCursorAge", unit=MetricUnit.Seconds, value=folder.cursor_age_seconds
            )
    return AccountStatus(
        account_id=account_id,
        stage=sync.stage,
        reason=sync.reason,
        last_success_at=sync.last_success_at,
        last_error=sync.last_error,
        last_error_at=sync.last_error_at,
        queued_at=sync.queued_at,
        reconcile_queued_at=sync.reconcile_queued_at,
        folders=folders,
    )


def request_reconcile(ctx: TenantContext, account_id: str, deps: AccountDeps) -> tuple[AccountStatus, bool]:
    """Queue a reconcile of the account (`mailbridge.sync.reconcile`), unless one is queued or
    running (then that one stands: the request is idempotent while it runs). The status, and
    whether this request queued it. Conflict(`reauth_required`) when the grant is revoked."""
    ctx.require(Role.MEMBER)
    account = visible_account(ctx, account_id, deps)
    if account.sync.reason == REAUTH_REQUIRED:
        raise Conflict(
            "the provider revoked this mailbox's access: reconnect it through /oauth/{provider}/start "
            "with its account_id",
            code=REAUTH_REQUIRED,
        )
    message = Reconcile(
        tenant_id=ctx.tenant_id, account_id=account_id, reason="manual", requested_at=deps.now()
    )
    queued = deps.store.mark_reconcile_queued(
        ctx.tenant_id, account_id, message.requested_at, message.requested_at - RECONCILE_STALE_AFTER
    )
    if queued:
        try:
            deps.queue.send(message)
        except Exception:
            deps.store.clear_reconcile_queued(ctx.tenant_id, account_id)  # nothing runs: a retry may queue
            raise
    return account_status(ctx, account_id, deps), queued
