"""Access tokens of OAuth accounts: cached per process, refreshed before they expire.

`access_token(account)` is what adapters call (the Gmail client's TokenSource). A cached token
is used until `REFRESH_MARGIN_SECONDS` before its `expires_in` ends; then (or when an API
answered 401 and the adapter asks with `force_refresh`) the sealed refresh token is opened
(KMS, context {tenant_id, account_id}) and exchanged at the provider's token endpoint. A
refresh token the provider rotates is sealed and stored again.

A refresh answered `invalid_grant` (the user revoked access, changed the password with Gmail
scopes, or the grant expired) is not retried: the account is failed with reason
`reauth_required`, taken out of the poll, `account.reauth_required` goes on the bus once, and
ProviderAuthError(`reauth_required`) is raised. Reconnecting through `/oauth/{provider}/start`
with the account's id seals a new grant and resumes from the saved cursor.

Providers that keep a whole token cache (Microsoft: msal's cache, `TokenCacheProvider`) rotate
the refresh token on every refresh, and several Lambda invocations may refresh the same account
at once. The sealed cache is read with its `credentials_version`, msal refreshes from it, and the
changed cache is written only if the version is unchanged (a conditional write); a writer that
loses re-reads the newer cache and takes its token from there (msal serves the access token the
winner cached), so the stored cache always holds the newest refresh token the winner received.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Protocol, runtime_checkable

from mailbridge import accounts as account_service
from mailbridge import crypto, opsmetrics
from mailbridge.bus import DomainEvent, EventPublisher
from mailbridge.config import Settings, get_settings
from mailbridge.errors import MailbridgeError, ProviderAuthError, ProviderError
from mailbridge.models.account import REAUTH_REQUIRED, Account
from mailbridge.oauth.http import GrantRevoked
from mailbridge.oauth.providers import OAuthProvider, TokenGrant, provider_for_account
from mailbridge.observability import logger
from mailbridge.store.accounts import AccountStore

REFRESH_MARGIN_SECONDS = 300.0
CACHE_WRITE_ATTEMPTS = 3
ACCOUNT_REAUTH_REQUIRED = "account.reauth_required"
"""Bus detail-type: `data = {account_id, provider, reason}` when an OAuth grant stops working."""


@runtime_checkable
class TokenCacheProvider(Protocol):
    """A provider whose sealed credentials are a token cache (`{"token_cache": ...}`)."""

    def acquire(self, token_cache: str, *, force_refresh: bool) -> tuple[TokenGrant, str | None]:
        """A token from the cache, and the cache serialized again when it changed (else None)."""
        ...


@dataclass
class _Cached:
    token: str = field(repr=False)
    expires_at: float  # monotonic seconds


class AccessTokens:
    """Per-process cache of access tokens, one refresh at a time per account."""

    def __init__(
        self,
        store: AccountStore,
        publisher: EventPublisher,
        *,
        key_id: str,
        providers: Callable[[str], OAuthProvider],
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.key_id = key_id
        self._providers = providers
        self._clock = clock
        self._now = now
        self._cache: dict[tuple[str, str], _Cached] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()
        self.refreshes = 0

    def _lock(self, key: tuple[str, str]) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def forget(self, account: Account) -> None:
        """Drop the cached token (the account was reconnected or removed)."""
        self._cache.pop((account.tenant_id, account.account_id), None)

    def remember(self, account: Account, token: str, expires_in: int) -> None:
        """Cache a token just obtained (the callback's exchange) so the first calls reuse it."""
        key = (account.tenant_id, account.account_id)
        self._cache[key] = _Cached(token, self._clock() + expires_in - REFRESH_MARGIN_SECONDS)

    def get(self, account: Account, *, force_refresh: bool = False) -> str:
        """A usable access token; raises ProviderAuthError(reauth_required) when the grant is gone."""
        key = (account.tenant_id, account.account_id)
        cached = self._cache.get(key)
        if cached is not None and not force_refresh and self._clock() < cached.expires_at:
            return cached.token
        with self._lock(key):
            again = self._cache.get(key)
            if again is not None and again is not cached and self._clock() < again.expires_at:
                return again.token  # another thread refreshed while this one waited
            return self._refresh(account, key, force_refresh=force_refresh)

    def _refresh(self, account: Account, key: tuple[str, str], *, force_refresh: bool = False) -> str:
        provider = self._providers(account.provider)
        if isinstance(provider, TokenCacheProvider):
            return self._from_cache(account, key, provider, force_refresh=force_refresh)
        secrets = account_service.load_secrets(self.store, account)
        refresh_token = secrets.get("refresh_token")
        if not refresh_token:
            opsmetrics.token_refresh_failed(account.provider, "no_refresh_token")
            raise self._revoked(account, "no refresh token is stored")
        try:
            grant = provider.refresh(refresh_token)
        except GrantRevoked:
            opsmetrics.token_refresh_failed(account.provider, "revoked")
            raise self._revoked(account, "the provider refused the refresh token") from None
        except MailbridgeError as exc:  # the token endpoint failed, timed out or rate limited us
            opsmetrics.token_refresh_failed(account.provider, exc.code)
            raise
        self.refreshes += 1
        if grant.refresh_token and grant.refresh_token != refresh_token:
            sealed = account_service.seal_secrets(
                {**secrets, "refresh_token": grant.refresh_token},
                account.tenant_id,
                account.account_id,
                key_id=self.key_id,
            )
            self.store.replace_credentials(account.tenant_id, account.account_id, sealed)
        self._cache[key] = _Cached(
            grant.access_token, self._clock() + grant.expires_in - REFRESH_MARGIN_SECONDS
        )
        return grant.access_token

    def _from_cache(
        self, account: Account, key: tuple[str, str], provider: TokenCacheProvider, *, force_refresh: bool
    ) -> str:
        """The token-cache path with optimistic concurrency (see the module docstring)."""
        context = account_service.credentials_context(account.tenant_id, account.account_id)
        for _attempt in range(CACHE_WRITE_ATTEMPTS):
            envelope, version = self.store.get_versioned_credentials(account.tenant_id, account.account_id)
            if envelope is None:
                opsmetrics.token_refresh_failed(account.provider, "no_refresh_token")
                raise self._revoked(account, "no token cache is stored")
            secrets: dict[str, str | None] = json.loads(crypto.decrypt(envelope, context))
            token_cache = secrets.get("token_cache")
            if not token_cache:
                opsmetrics.token_refresh_failed(account.provider, "no_refresh_token")
                raise self._revoked(account, "no token cache is stored")
            try:
                grant, changed = provider.acquire(token_cache, force_refresh=force_refresh)
            except GrantRevoked:
                opsmetrics.token_refresh_failed(account.provider, "revoked")
                raise self._revoked(account, "the provider refused the refresh token") from None
            except MailbridgeError as exc:
                opsmetrics.token_refresh_failed(account.provider, exc.code)
                raise
            if changed is not None:
                self.refreshes += 1
                sealed = account_service.seal_secrets(
                    {**secrets, "token_cache": changed},
                    account.tenant_id,
                    account.account_id,
                    key_id=self.key_id,
                )
                if not self.store.swap_credentials(account.tenant_id, account.account_id, sealed, version):
                    force_refresh = False  # another invocation refreshed: use the cache it wrote
                    continue
            self._cache[key] = _Cached(
                grant.access_token, self._clock() + grant.expires_in - REFRESH_MARGIN_SECONDS
            )
            return grant.access_token
        raise ProviderError("the token cache kept changing under us", code="token_cache_conflict")

    def _revoked(self, account: Account, message: str) -> ProviderAuthError:
        self.forget(account)
        at = self._now()
        if self.store.mark_reauth_required(account.tenant_id, account.account_id, at, message):
            self.publisher.publish(
                [
                    DomainEvent(
                        detail_type=ACCOUNT_REAUTH_REQUIRED,
                        tenant_id=account.tenant_id,
                        occurred_at=at,
                        idempotency_key=f"{ACCOUNT_REAUTH_REQUIRED}:{account.account_id}:{at.isoformat()}",
                        data={
                            "account_id": account.account_id,
                            "provider": account.provider,
                            "reason": REAUTH_REQUIRED,
                        },
                    )
                ]
            )
            logger.warning(
                "oauth grant revoked", extra={"code": REAUTH_REQUIRED, "provider": account.provider}
            )
        return ProviderAuthError("the mailbox must be reconnected", code=REAUTH_REQUIRED)


@lru_cache(maxsize=1)
def default_tokens() -> AccessTokens:
    settings: Settings = get_settings()
    return AccessTokens(
        AccountStore(settings.tables.accounts),
        EventPublisher(settings.event_bus_name),
        key_id=settings.data_key_id,
        providers=lambda name: provider_for_account(name, settings),
    )


def access_token(account: Account, *, force_refresh: bool = False) -> str:
    """A bearer token for `account` (see the module docstring); what adapters call."""
    return default_tokens().get(account, force_refresh=force_refresh)


def token_source(account: Account, tokens: AccessTokens | None = None) -> Callable[[bool], str]:
    """The account's TokenSource for an adapter (`GmailClient(url, token_source(account))`)."""
    source = tokens or default_tokens()
    return lambda force_refresh: source.get(account, force_refresh=force_refresh)
