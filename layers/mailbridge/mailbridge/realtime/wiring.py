"""Builds the realtime dependencies once per cold start (the realtime and notifier functions)."""

from __future__ import annotations

from functools import lru_cache

from mailbridge.config import get_realtime_settings, get_settings
from mailbridge.providers.oidc import OidcKeys
from mailbridge.realtime.service import ConnectDeps, NotifyDeps
from mailbridge.store.connections import ConnectionStore


@lru_cache(maxsize=1)
def connect_deps() -> ConnectDeps:
    settings = get_realtime_settings()
    return ConnectDeps(
        connections=ConnectionStore(settings.connections_table),
        keys=OidcKeys(settings.jwt_issuer),
        issuer=settings.jwt_issuer,
        audience=settings.audiences,
    )


@lru_cache(maxsize=1)
def notify_deps() -> NotifyDeps:
    # The accounts store and its models only in the notifier: $connect never reads a mailbox.
    from mailbridge.realtime.gateway import AccountOwners, ConnectionsApi
    from mailbridge.store.accounts import AccountStore

    settings = get_realtime_settings()
    return NotifyDeps(
        connections=ConnectionStore(settings.connections_table),
        owners=AccountOwners(AccountStore(get_settings().tables.accounts)),
        poster=ConnectionsApi(settings.endpoint_url),
    )
