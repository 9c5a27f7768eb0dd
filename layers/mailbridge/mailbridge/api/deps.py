"""Cached factories for what routes depend on, built from the cold-start settings.

Modules are imported inside the factories: a cold start that serves one router should not pay
for the stores and services of the others.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from mailbridge.bus import EventPublisher
from mailbridge.config import get_settings
from mailbridge.store.ratelimit import RateLimiter, RateLimitSettingsStore
from mailbridge.store.settings import DynamoFeatureStore, FeatureStore

if TYPE_CHECKING:
    from mailbridge.access import Access
    from mailbridge.accounts import AccountDeps
    from mailbridge.crm.links import LinkDeps
    from mailbridge.models.account import Account
    from mailbridge.outbox.service import OutboxDeps
    from mailbridge.queues import SyncQueue
    from mailbridge.store.accounts import AccountStore
    from mailbridge.store.blobs import BlobStore
    from mailbridge.store.crm import CrmStore
    from mailbridge.store.emails import EmailStore
    from mailbridge.store.links import LinkStore
    from mailbridge.store.policy import PolicyStore
    from mailbridge.store.visibility import DynamoPrivacyStore
    from mailbridge.tenancy import TenantContext


@lru_cache(maxsize=1)
def feature_store() -> FeatureStore:
    return DynamoFeatureStore(get_settings().tables.settings)


@lru_cache(maxsize=1)
def rate_limit_store() -> RateLimitSettingsStore:
    """The tenants' rate-limit overrides (settings table)."""
    return RateLimitSettingsStore(get_settings().tables.settings)


@lru_cache(maxsize=1)
def rate_limiter() -> RateLimiter:
    """The api entry's counters of the reads/writes classes: in the accounts table, which has TTL
    on `ttl` and already holds the AI counters."""
    return RateLimiter(get_settings().tables.accounts)


@lru_cache(maxsize=1)
def publisher() -> EventPublisher:
    return EventPublisher(get_settings().event_bus_name)


@lru_cache(maxsize=1)
def account_store() -> AccountStore:
    from mailbridge.store.accounts import AccountStore

    return AccountStore(get_settings().tables.accounts)


@lru_cache(maxsize=1)
def email_store() -> EmailStore:
    from mailbridge.store.emails import EmailStore

    return EmailStore(get_settings().tables.emails)


@lru_cache(maxsize=1)
def blob_store() -> BlobStore:
    from mailbridge.store.blobs import BlobStore

    return BlobStore(get_settings().mail_bucket)


@lru_cache(maxsize=1)
def sync_queue() -> SyncQueue:
    from mailbridge.queues import SyncQueue

    return SyncQueue(get_settings().sync_queue_url)


def _disconnect(account: Account) -> None:
    # Imported on use: only removing an OAuth mailbox needs the OAuth provider code.
    from mailbridge.oauth.disconnect import disconnect

    disconnect(account, store=account_store())


@lru_cache(maxsize=1)
def account_deps() -> AccountDeps:
    from mailbridge.accounts import AccountDeps

    settings = get_settings()
    return AccountDeps(
        store=account_store(),
        queue=sync_queue(),
        key_id=settings.data_key_id,
        allow_private_hosts=settings.allow_private_mail_hosts,
        disconnect=_disconnect,
        privacy=privacy_store(),
    )


def outbox_deps() -> OutboxDeps:
    # Imported on use: composing and normalizing mail is not needed on most API cold starts.
    from mailbridge.outbox.wiring import outbox_deps as build

    return build()


@lru_cache(maxsize=1)
def crm_store() -> CrmStore:
    from mailbridge.store.crm import CrmStore

    settings = get_settings()
    return CrmStore(settings.tables.crm, timeline_table=settings.tables.links)


@lru_cache(maxsize=1)
def link_store() -> LinkStore:
    from mailbridge.store.links import LinkStore

    return LinkStore(get_settings().tables.links)


@lru_cache(maxsize=1)
def policy_store() -> PolicyStore:
    from mailbridge.store.policy import PolicyStore

    return PolicyStore(get_settings().tables.settings)


@lru_cache(maxsize=1)
def privacy_store() -> DynamoPrivacyStore:
    from mailbridge.store.visibility import DynamoPrivacyStore

    return DynamoPrivacyStore(get_settings().tables.settings)


def access(ctx: TenantContext) -> Access:
    """What the caller may see of the tenant's mailboxes (mailbridge.access), read per request."""
    from mailbridge.access import load_access

    return load_access(ctx, account_store(), privacy_store())


@lru_cache(maxsize=1)
def link_deps() -> LinkDeps:
    from mailbridge.crm.links import LinkDeps

    return LinkDeps(
        links=link_store(),
        emails=email_store(),
        crm=crm_store(),
        features=feature_store(),
        publisher=publisher(),
    )
