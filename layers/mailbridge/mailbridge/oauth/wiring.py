"""The OAuth flow's dependencies, built once per cold start from the settings."""

from __future__ import annotations

from functools import lru_cache

from mailbridge.config import get_settings
from mailbridge.models.account import Account
from mailbridge.oauth.providers import OAuthProvider, get_provider
from mailbridge.oauth.service import OAuthDeps
from mailbridge.oauth.tokens import default_tokens
from mailbridge.queues import SyncQueue
from mailbridge.store.accounts import AccountStore
from mailbridge.store.oauth_states import OAuthStateStore
from mailbridge.store.settings import DynamoFeatureStore


def _watch(account: Account) -> None:
    if account.provider == "gmail":
        from mailbridge.providers.gmail.connect import start_watch

        start_watch(account, get_settings().google)
    elif account.provider == "graph":
        from mailbridge.webhooks.graph_subscriptions import subscribe

        subscribe(account)


def _provider(name: str) -> OAuthProvider:
    return get_provider(name, get_settings())


@lru_cache(maxsize=1)
def oauth_deps() -> OAuthDeps:
    settings = get_settings()
    return OAuthDeps(
        settings=settings,
        states=OAuthStateStore(settings.tables.accounts),
        accounts=AccountStore(settings.tables.accounts),
        features=DynamoFeatureStore(settings.tables.settings),
        queue=SyncQueue(settings.sync_queue_url),
        tokens=default_tokens(),
        providers=_provider,
        watch=_watch,
    )
