"""A `graph` account's change-notification subscriptions: made on connect, renewed before they
expire, recreated when Graph removes one, deleted with the account.

One subscription per synced folder (`FOLDERS`, Graph's well-known folder names), each with the
account's `clientState` (a random secret: sealed with KMS under {tenant_id, account_id} on the
account's GRAPHSUBS item, and only its SHA-256 on each subscription's lookup item, which is what
`webhooks/graph.py` compares) and the same URL as `notificationUrl` and
`lifecycleNotificationUrl` (`GRAPH_WEBHOOK_URL`, the public URL of `POST /webhooks/graph`;
empty: no subscriptions, the poll still syncs). Graph validates both URLs before it answers.

Renewal (Graph "Update subscription"): the `GraphSubscriptionRenewSchedule` queues
`renew_watches(provider=graph)`; without an account it walks every subscription and queues one
renewal per account that has one expiring within `RENEW_MARGIN` of now (by the
`expirationDateTime` Graph returned, never an assumed lifetime), and one per active account that
has none (its subscriptions could not be made on connect); with an account, each such
subscription is PATCHed (all of them with `force`, as after `reauthorizationRequired`, or
`action="recreate"`, after `subscriptionRemoved`); one Graph no longer has (404) is made again,
as is any synced folder without one. A revoked grant leaves the account to `reauth_required`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from mailbridge import accounts as account_service
from mailbridge import crypto
from mailbridge.config import MicrosoftSettings, get_settings
from mailbridge.errors import MailbridgeError, NotFound, ProviderAuthError
from mailbridge.models.account import Account
from mailbridge.observability import logger
from mailbridge.providers.graph.subscriptions import SubscriptionClient
from mailbridge.queues import SyncQueue
from mailbridge.store.accounts import AccountStore
from mailbridge.store.graph_subscriptions import GraphSubscriptionStore, SubscriptionRecord
from mailbridge.sync.messages import RenewWatches
from mailbridge.webhooks.graph import client_state_digest

PROVIDER: Final = "graph"
FOLDERS = ("inbox", "sentitems")
# The schedule runs hourly; a day's margin leaves room for a day of failed attempts.
RENEW_MARGIN = timedelta(hours=24)


def _client(account: Account, settings: MicrosoftSettings) -> SubscriptionClient:
    from mailbridge.oauth.tokens import token_source

    return SubscriptionClient(settings.graph_url, token_source(account), ca_bundle=settings.ca_bundle)


@dataclass
class SubscriptionDeps:
    store: GraphSubscriptionStore
    settings: MicrosoftSettings
    key_id: str
    client: Callable[[Account], SubscriptionClient]
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


def default_deps() -> SubscriptionDeps:
    settings = get_settings()
    return SubscriptionDeps(
        store=GraphSubscriptionStore(settings.tables.accounts),
        settings=settings.microsoft,
        key_id=settings.data_key_id,
        client=lambda account: _client(account, settings.microsoft),
    )


def _client_state(account: Account, deps: SubscriptionDeps) -> str | None:
    sealed, _ = deps.store.account_state(account.tenant_id, account.account_id)
    if sealed is None:
        return None
    context = account_service.credentials_context(account.tenant_id, account.account_id)
    return crypto.decrypt(sealed, context).decode()


def _create(account: Account, folder: str, client_state: str, deps: SubscriptionDeps) -> SubscriptionRecord:
    url = deps.settings.webhook_url
    created = deps.client(account).create(
        folder=folder, notification_url=url, lifecycle_url=url, client_state=client_state, now=deps.now()
    )
    record = SubscriptionRecord(
        subscription_id=created.subscription_id,
        tenant_id=account.tenant_id,
        account_id=account.account_id,
        folder=folder,
        client_state_hash=client_state_digest(client_state),
        expires_at=created.expires_at,
    )
    deps.store.put(record)
    return record


def subscribe(account: Account, deps: SubscriptionDeps | None = None) -> list[SubscriptionRecord]:
    """On connect and reconnect: a new clientState, the old subscriptions deleted, one new per folder."""
    deps = deps or default_deps()
    if not deps.settings.webhook_url:
        return []
    unsubscribe(account, deps)
    client_state = secrets.token_urlsafe(48)  # 64 characters; Graph allows 128
    context = account_service.credentials_context(account.tenant_id, account.account_id)
    deps.store.put_client_state(
        account.tenant_id,
        account.account_id,
        crypto.encrypt(client_state.encode(), context, key_id=deps.key_id),
    )
    made = [_create(account, folder, client_state, deps) for folder in FOLDERS]
    logger.info("graph subscriptions created", extra={"count": len(made)})
    return made


def unsubscribe(account: Account, deps: SubscriptionDeps | None = None) -> None:
    """Delete the account's subscriptions at Graph (best effort) and forget them."""
    deps = deps or default_deps()
    _, folders = deps.store.account_state(account.tenant_id, account.account_id)
    for subscription_id in folders.values():
        try:
            deps.client(account).delete(subscription_id)
        except MailbridgeError as exc:
            logger.warning("graph subscription not deleted", extra={"code": exc.code})
    deps.store.delete_account(account.tenant_id, account.account_id)


def renew_account(
    account: Account, deps: SubscriptionDeps, *, force: bool = False, recreate: bool = False
) -> int:
    """Renew what is due (everything with `force`), make missing folders' subscriptions again
    (with `recreate`, or when Graph answers 404). Returns how many were renewed or made."""
    _, folders = deps.store.account_state(account.tenant_id, account.account_id)
    records = deps.store.get_many(folders.values())
    client_state = _client_state(account, deps)
    if client_state is None:
        return len(subscribe(account, deps))
    done = 0
    now = deps.now()
    for folder in FOLDERS:
        record = records.get(folders.get(folder, ""))
        if record is None:
            _create(account, folder, client_state, deps)
            done += 1
            continue
        # A removed subscription is found by renewing it: Graph answers 404, and it is made again.
        if not (force or recreate) and record.expires_at - now > RENEW_MARGIN:
            continue
        try:
            expires_at = deps.client(account).renew(record.subscription_id, now=now)
        except NotFound:
            deps.store.delete_subscription(record)
            _create(account, folder, client_state, deps)
            done += 1
            continue
        deps.store.put(
            SubscriptionRecord(
                subscription_id=record.subscription_id,
                tenant_id=record.tenant_id,
                account_id=record.account_id,
                folder=record.folder,
                client_state_hash=record.client_state_hash,
                expires_at=expires_at,
            )
        )
        done += 1
    return done


def handle_renewal(
    message: RenewWatches, accounts: AccountStore, queue: SyncQueue, deps: SubscriptionDeps | None = None
) -> int:
    """The `renew_watches(provider=graph)` message (see the module docstring)."""
    deps = deps or default_deps()
    if not deps.settings.webhook_url:
        return 0
    if message.tenant_id is None or message.account_id is None:
        limit = deps.now() + RENEW_MARGIN
        records = list(deps.store.all())
        subscribed = {(r.tenant_id, r.account_id) for r in records}
        due = {(r.tenant_id, r.account_id) for r in records if r.expires_at <= limit}
        # Active accounts with no subscription at all (the one made on connect failed): made now.
        due |= {key for key in accounts.pollable(PROVIDER) if key not in subscribed}
        ordered = sorted(due)
        hour = deps.now().strftime("%Y%m%d%H")
        requests = [RenewWatches(provider=PROVIDER, tenant_id=t, account_id=a) for t, a in ordered]
        if requests:
            queue.send_many(requests, [f"graph-renew-{t}-{a}-{hour}"[:128] for t, a in ordered])
        return len(requests)
    try:
        account = accounts.get_account(message.tenant_id, message.account_id)
    except NotFound:
        return 0
    try:
        return renew_account(account, deps, force=message.force, recreate=message.action == "recreate")
    except ProviderAuthError as exc:
        logger.warning("graph subscriptions not renewed: the grant is gone", extra={"code": exc.code})
        return 0
