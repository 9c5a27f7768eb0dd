"""Connected mailboxes: connect (log in before saving), list, read, delete, request a sync, status."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from mailbridge import crypto
from mailbridge.errors import Conflict, Invalid, ProviderAuthError
from mailbridge.models.account import (
    Account,
    AccountCreate,
    AccountOut,
    AccountStatus,
    PublicServerSettings,
    ServerSettings,
    SyncStage,
    SyncState,
)
from mailbridge.providers.imap.protocol import MailFolderSource
from mailbridge.providers.imap.settings import ImapSettings, Security
from mailbridge.providers.netguard import check_mail_host
from mailbridge.queues import SyncQueue
from mailbridge.store.accounts import AccountStore
from mailbridge.store.pagination import Page
from mailbridge.sync.messages import PurgeAccount, SyncRequest
from mailbridge.tenancy import Role, TenantContext

Connector = Callable[[ImapSettings], MailFolderSource]


def imap_connect(settings: ImapSettings) -> MailFolderSource:
    # Imported on use: the IMAP client library is not needed on most API cold starts.
    from mailbridge.providers.imap.client import connect

    return connect(settings)


@dataclass
class AccountDeps:
    store: AccountStore
    queue: SyncQueue
    key_id: str
    allow_private_hosts: bool = False
    connect: Connector = imap_connect
    now: Callable[[], datetime] = lambda: datetime.now(UTC)


def _public(server: ServerSettings) -> PublicServerSettings:
    return PublicServerSettings(
        host=server.host, port=server.port, security=server.security, username=server.username
    )


def imap_settings(
    server: PublicServerSettings | ServerSettings, password: str, *, allow_insecure: bool
) -> ImapSettings:
    return ImapSettings(
        host=server.host,
        port=server.port,
        security=server.security,
        username=server.username,
        password=password,  # type: ignore[arg-type]  # pydantic coerces str to SecretStr
        allow_insecure=allow_insecure and server.security is Security.NONE,
        timeout_seconds=20,
    )


def credentials_context(tenant_id: str, account_id: str) -> dict[str, str]:
    return {"tenant_id": tenant_id, "account_id": account_id}


def load_secrets(store: AccountStore, account: Account) -> dict[str, str | None]:
    """The account's decrypted passwords ({imap_password, smtp_password}); never log the result."""
    envelope = store.get_credentials(account.tenant_id, account.account_id)
    if envelope is None:
        raise ProviderAuthError("no credentials stored", code="auth_failed")
    context = credentials_context(account.tenant_id, account.account_id)
    secrets: dict[str, str | None] = json.loads(crypto.decrypt(envelope, context))
    return secrets


def to_out(account: Account) -> AccountOut:
    return AccountOut(
        account_id=account.account_id,
        provider=account.provider,
        address=account.address,
        display_name=account.display_name,
        imap=account.imap,
        smtp=account.smtp,
        folders=account.folders,
        created_at=account.created_at,
        sync=account.sync,
    )


def _check_server(server: ServerSettings, deps: AccountDeps) -> None:
    if server.security is Security.NONE and not deps.allow_private_hosts:
        raise Invalid(
            "unencrypted connections are not allowed; use ssl or starttls", code="insecure_not_allowed"
        )
    port = server.port or (993 if server.security is Security.SSL else 143)
    check_mail_host(server.host, port, allow_private=deps.allow_private_hosts)


def connect_account(ctx: TenantContext, body: AccountCreate, deps: AccountDeps) -> AccountOut:
    ctx.require(Role.MEMBER)
    for server in (body.imap, body.smtp):
        if server is not None:
            _check_server(server, deps)
    existing = list_accounts(ctx, deps, cursor=None, limit=100).items
    if any(a.address.lower() == body.address.lower() for a in existing):
        raise Conflict("this mailbox is already connected", code="account_exists")

    # Log in before saving: bad credentials, unreachable hosts, TLS failures and timeouts answer
    # now (typed ProviderError -> 422), not in a failed background sync.
    with deps.connect(
        imap_settings(
            body.imap, body.imap.password.get_secret_value(), allow_insecure=deps.allow_private_hosts
        )
    ) as session:
        session.capabilities()

    account_id = "acc_" + uuid.uuid4().hex[:20]
    secrets = {
        "imap_password": body.imap.password.get_secret_value(),
        "smtp_password": body.smtp.password.get_secret_value() if body.smtp else None,
    }
    envelope = crypto.encrypt(
        json.dumps(secrets).encode(), credentials_context(ctx.tenant_id, account_id), key_id=deps.key_id
    )
    account = Account(
        account_id=account_id,
        tenant_id=ctx.tenant_id,
        provider="imap",
        address=str(body.address),
        display_name=body.display_name,
        imap=_public(body.imap),
        smtp=_public(body.smtp) if body.smtp else None,
        folders=body.folders,
        created_at=deps.now(),
        created_by=ctx.subject,
        sync=SyncState(stage=SyncStage.PENDING),
    )
    deps.store.create_account(account, envelope)
    deps.queue.send(SyncRequest(tenant_id=ctx.tenant_id, account_id=account_id, reason="connected"))
    return to_out(account)


def list_accounts(
    ctx: TenantContext, deps: AccountDeps, *, cursor: str | None, limit: int
) -> Page[AccountOut]:
    accounts, next_cursor = deps.store.list_accounts(ctx.tenant_id, cursor=cursor, limit=limit)
    return Page[AccountOut](items=[to_out(a) for a in accounts], next_cursor=next_cursor)


def get_account(ctx: TenantContext, account_id: str, deps: AccountDeps) -> AccountOut:
    return to_out(deps.store.get_account(ctx.tenant_id, account_id))


def delete_account(ctx: TenantContext, account_id: str, deps: AccountDeps, *, purge: bool) -> None:
    """Credentials go at once with the account item; synced mail stays unless `purge`."""
    ctx.require(Role.MEMBER)
    deps.store.delete_account(ctx.tenant_id, account_id)
    if purge:
        deps.queue.send(PurgeAccount(tenant_id=ctx.tenant_id, account_id=account_id))


def request_sync(ctx: TenantContext, account_id: str, deps: AccountDeps) -> AccountStatus:
    ctx.require(Role.MEMBER)
    account = deps.store.get_account(ctx.tenant_id, account_id)
    if account.sync.stage is SyncStage.FAILED:
        # The user asks again (perhaps after fixing the server side): back into the poll rotation.
        deps.store.make_pollable(ctx.tenant_id, account_id, account.provider)
    deps.queue.send(SyncRequest(tenant_id=ctx.tenant_id, account_id=account_id, reason="manual"))
    return account_status(ctx, account_id, deps)


def account_status(ctx: TenantContext, account_id: str, deps: AccountDeps) -> AccountStatus:
    account = deps.store.get_account(ctx.tenant_id, account_id)
    sync = account.sync
    return AccountStatus(
        account_id=account_id,
        stage=sync.stage,
        reason=sync.reason,
        last_success_at=sync.last_success_at,
        last_error=sync.last_error,
        last_error_at=sync.last_error_at,
        folders=deps.store.folder_states(ctx.tenant_id, account_id),
    )
