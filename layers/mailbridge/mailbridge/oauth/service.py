"""The OAuth connect flow, for any provider of the registry (RFC 6749 section 4.1 with PKCE,
RFC 7636; state as RFC 6749 section 10.12 asks).

`start` (an authenticated member): a fresh single-use `state` bound to the tenant, the user, the
provider and (to reconnect) an account id, stored with the PKCE verifier and the redirect URI for
`STATE_TTL`; answers the provider's authorization URL.

`callback` (no JWT: the state is the proof): takes the state (deleting it), exchanges the code
with the stored verifier, checks the granted scopes, learns the mailbox address, then creates
the account (its refresh token sealed under KMS with {tenant_id, account_id}, its first sync
queued, its push watch started) or reconnects the one the state names (new sealed grant, the
`reauth_required` failure cleared, back in the poll, a sync queued: the cursor is kept, so the
sync resumes where it stopped). Every way it can go wrong is an outcome with a code, never an
exception: `CallbackOutcome(outcome="error", code=...)`, which the route turns into a redirect.

Error codes: `invalid_state` (missing, unknown, already used, or made for another provider),
`state_expired`, `access_denied` (the user declined), `consent_failed` (any other error the
provider redirected with), `missing_code`, `exchange_failed` (the code was refused),
`scope_missing` (a required scope was not granted; the partial grant is revoked),
`no_refresh_token`, `identity_unavailable` (no usable address), `account_exists` (the address is
connected in this tenant already; its `account_id` is given), `account_not_found` (the account
to reconnect is gone), `account_mismatch` (reconnecting signed in as another mailbox),
`provider_unavailable` (the provider failed or timed out), `provider_not_configured`, `internal`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import Field

from mailbridge import accounts as account_service
from mailbridge.config import Settings
from mailbridge.errors import Conflict, Invalid, MailbridgeError, NotFound, ProviderError
from mailbridge.models.account import (
    REAUTH_REQUIRED,
    Account,
    OAuthGrant,
    SyncStage,
    SyncState,
)
from mailbridge.models.base import Model
from mailbridge.oauth.http import GrantRevoked
from mailbridge.oauth.pkce import new_state, new_verifier, s256_challenge
from mailbridge.oauth.providers import OAuthProvider, TokenGrant
from mailbridge.oauth.tokens import AccessTokens
from mailbridge.observability import logger
from mailbridge.queues import SyncQueue
from mailbridge.store.accounts import AccountStore
from mailbridge.store.oauth_states import OAuthState, OAuthStateStore, expired
from mailbridge.store.settings import FeatureStore
from mailbridge.sync.messages import SyncRequest
from mailbridge.tenancy import Role, TenantContext

STATE_TTL = timedelta(minutes=10)
_ACCOUNT_ID = re.compile(r"acc_[0-9a-f]{20}")
# Errors a provider may redirect with (RFC 6749 section 4.1.2.1) that mean "the user said no".
_DECLINED = frozenset({"access_denied", "consent_required", "interaction_required"})


class NotConfigured(NotFound):
    """The deployment has no client id/secret for this provider: its routes behave as absent."""

    code = "provider_not_configured"


class AuthorizationStart(Model):
    """`GET /oauth/{provider}/start`: open `authorization_url` in the user's browser."""

    authorization_url: str = Field(description="The provider's consent page, with state and PKCE challenge")
    expires_at: datetime = Field(description="The state is single-use and expires at this time (10 minutes)")


class CallbackParams(Model):
    """What the provider appends to the redirect URI (RFC 6749 sections 4.1.2 and 4.1.2.1)."""

    state: str | None = None
    code: str | None = None
    error: str | None = None


class CallbackOutcome(Model):
    outcome: Literal["connected", "reconnected", "error"]
    code: str | None = None
    account_id: str | None = None
    integration_id: str | None = Field(default=None, description="The CRM integration (salesforce, hubspot)")


@dataclass
class OAuthDeps:
    settings: Settings
    states: OAuthStateStore
    accounts: AccountStore
    features: FeatureStore
    queue: SyncQueue
    tokens: AccessTokens
    providers: Callable[[str], OAuthProvider]
    watch: Callable[[Account], None]
    now: Callable[[], datetime] = lambda: datetime.now(UTC)


class _Failed(Exception):
    """A callback step failed: the outcome's code (and the account it concerns, if any)."""

    def __init__(self, code: str, account_id: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.account_id = account_id


def _options(tenant_id: str, deps: OAuthDeps) -> set[str]:
    """Optional scopes the tenant switched on (`contact_import`: the provider's contacts;
    `calendar`: its calendar)."""
    stored = deps.features.get_features(tenant_id)
    if stored is None:
        return set()
    return {name for name in ("contact_import", "calendar") if getattr(stored.flags, name)}


def start(
    ctx: TenantContext,
    provider_name: str,
    deps: OAuthDeps,
    *,
    callback_base_url: str,
    account_id: str | None = None,
    login_hint: str | None = None,
) -> AuthorizationStart:
    """The provider's authorization URL for a new connection, or to reconnect `account_id`.

    Raises Forbidden(role_required), NotFound(provider_not_found | provider_not_configured |
    account_not_found), Invalid(provider_mismatch: the account is of another provider).
    """
    ctx.require(Role.MEMBER)
    provider = deps.providers(provider_name)
    if not provider.configured:
        raise NotConfigured(f"{provider_name} is not set up on this deployment")
    if account_id is not None:
        if not _ACCOUNT_ID.fullmatch(account_id):
            raise NotFound("no such account", code="account_not_found")
        account = deps.accounts.get_account(ctx.tenant_id, account_id)
        if account.provider != provider.account_provider:
            raise Invalid("the account is not connected through this provider", code="provider_mismatch")
        login_hint = login_hint or account.address
    state, verifier = new_state(), new_verifier()
    redirect_uri = f"{callback_base_url.rstrip('/')}/oauth/{provider_name}/callback"
    expires_at = deps.now() + STATE_TTL
    deps.states.put(
        state,
        OAuthState(
            tenant_id=ctx.tenant_id,
            subject=ctx.subject,
            provider=provider_name,
            account_id=account_id,
            code_verifier=verifier,
            redirect_uri=redirect_uri,
            expires_at=expires_at,
        ),
    )
    url = provider.authorization_url(
        state=state,
        code_challenge=s256_challenge(verifier),
        redirect_uri=redirect_uri,
        scopes=provider.scopes(_options(ctx.tenant_id, deps)),
        login_hint=login_hint,
    )
    return AuthorizationStart(authorization_url=url, expires_at=expires_at)


def callback(provider_name: str, params: CallbackParams, deps: OAuthDeps) -> CallbackOutcome:
    """Finish the flow; never raises (see the module docstring for the outcome codes)."""
    return finish(provider_name, params, deps)[0]


def finish(
    provider_name: str, params: CallbackParams, deps: OAuthDeps
) -> tuple[CallbackOutcome, OAuthState | None]:
    """`callback`, with the state it took (None when none was valid: `invalid_state`), whose
    tenant and user the audit entry of the callback is filed under. Never raises."""
    taken: list[OAuthState] = []
    try:
        outcome = _callback(provider_name, params, deps, taken)
    except _Failed as failed:
        outcome = CallbackOutcome(outcome="error", code=failed.code, account_id=failed.account_id)
    except NotConfigured:
        outcome = CallbackOutcome(outcome="error", code="provider_not_configured")
    except ProviderError as exc:
        logger.warning("oauth callback: provider failed", extra={"code": exc.code})
        outcome = CallbackOutcome(outcome="error", code="provider_unavailable")
    except Exception as exc:  # noqa: BLE001 - a callback answers a redirect whatever happens
        from mailbridge.api.errors import error_summary

        logger.error("oauth callback failed", extra=error_summary(exc))
        outcome = CallbackOutcome(outcome="error", code="internal")
    logger.info("oauth callback", extra={"outcome": outcome.outcome, "code": outcome.code})
    return outcome, (taken[0] if taken else None)


def _take_state(
    provider_name: str, params: CallbackParams, deps: OAuthDeps, taken: list[OAuthState]
) -> OAuthState:
    if not params.state:
        raise _Failed("invalid_state")
    state = deps.states.take(params.state)
    if state is None or state.provider != provider_name:
        raise _Failed("invalid_state")
    taken.append(state)  # deleted: from here on the callback acts for the state's user
    if expired(state, deps.now()):
        raise _Failed("state_expired")
    return state


def _callback(
    provider_name: str, params: CallbackParams, deps: OAuthDeps, taken: list[OAuthState]
) -> CallbackOutcome:
    from mailbridge.crm.integrations.wiring import CRM_PROVIDERS

    if provider_name in CRM_PROVIDERS:  # a CRM integration (mailbridge.crm.integrations), not a mailbox
        from mailbridge.crm.integrations.service import finish_consent
        from mailbridge.crm.integrations.wiring import integration_deps

        state = _take_state(provider_name, params, deps, taken)
        return finish_consent(state, params.code, params.error, integration_deps())
    try:
        provider = deps.providers(provider_name)
    except NotFound:
        raise _Failed("invalid_state") from None
    state = _take_state(provider_name, params, deps, taken)
    if params.error:
        raise _Failed("access_denied" if params.error in _DECLINED else "consent_failed", state.account_id)
    if not params.code:
        raise _Failed("missing_code", state.account_id)
    if not provider.configured:
        raise NotConfigured(f"{provider_name} is not set up on this deployment")
    try:
        grant = provider.exchange_code(
            code=params.code, code_verifier=state.code_verifier, redirect_uri=state.redirect_uri
        )
    except GrantRevoked:
        raise _Failed("exchange_failed", state.account_id) from None
    if provider.missing_scopes(grant.scopes):
        _revoke_quietly(provider, grant)
        raise _Failed("scope_missing", state.account_id)
    if not grant.refresh_token:
        raise _Failed("no_refresh_token", state.account_id)
    try:
        identity = provider.identify(grant)
    except ProviderError as exc:
        logger.warning("oauth callback: identity unavailable", extra={"code": exc.code})
        raise _Failed("identity_unavailable", state.account_id) from None
    oauth = OAuthGrant(scopes=sorted(grant.scopes), subject=identity.subject, connected_at=deps.now())
    if state.account_id is not None:
        return _reconnect(provider, state, grant, identity.address, oauth, deps)
    return _connect(provider, state, grant, identity.address, oauth, deps)


def _revoke_quietly(provider: OAuthProvider, grant: TokenGrant) -> None:
    try:
        provider.revoke(grant.refresh_token or grant.access_token)
    except MailbridgeError as exc:
        logger.info("oauth revoke failed", extra={"code": exc.code})


def _secrets(grant: TokenGrant) -> dict[str, str | None]:
    """What to seal: the provider's own secrets (Microsoft: msal's token cache) or the refresh token."""
    return dict(grant.secrets) if grant.secrets else {"refresh_token": grant.refresh_token}


def _existing(tenant_id: str, address: str, deps: OAuthDeps) -> str | None:
    from mailbridge.store.accounts import address_sk
    from mailbridge.store.keys import tenant_pk

    held = deps.accounts.get(tenant_pk(tenant_id), address_sk(address), consistent=True)
    return str(held["account_id"]) if held else None


def _connect(
    provider: OAuthProvider,
    state: OAuthState,
    grant: TokenGrant,
    address: str,
    oauth: OAuthGrant,
    deps: OAuthDeps,
) -> CallbackOutcome:
    existing = _existing(state.tenant_id, address, deps)
    if existing is not None:
        raise _Failed("account_exists", existing)
    account_id = "acc_" + uuid.uuid4().hex[:20]
    request = SyncRequest(tenant_id=state.tenant_id, account_id=account_id, reason="connected")
    account = Account(
        account_id=account_id,
        tenant_id=state.tenant_id,
        provider=provider.account_provider,
        address=address,
        oauth=oauth,
        created_at=deps.now(),
        created_by=state.subject,
        sync=SyncState(stage=SyncStage.PENDING, queued_at=request.requested_at),
        version=1,
    )
    sealed = account_service.seal_secrets(
        _secrets(grant), state.tenant_id, account_id, key_id=deps.settings.data_key_id
    )
    try:
        deps.accounts.create_account(account, sealed)
    except Conflict:
        raise _Failed("account_exists", _existing(state.tenant_id, address, deps)) from None
    deps.tokens.remember(account, grant.access_token, grant.expires_in)
    deps.queue.send(request)
    _import_contacts_after_connect(account, deps)
    _watch_quietly(account, deps)
    return CallbackOutcome(outcome="connected", account_id=account_id)


def _reconnect(
    provider: OAuthProvider,
    state: OAuthState,
    grant: TokenGrant,
    address: str,
    oauth: OAuthGrant,
    deps: OAuthDeps,
) -> CallbackOutcome:
    assert state.account_id is not None
    try:
        account = deps.accounts.get_account(state.tenant_id, state.account_id)
    except NotFound:
        _revoke_quietly(provider, grant)
        raise _Failed("account_not_found", state.account_id) from None
    if account.provider != provider.account_provider or account.address.lower() != address.lower():
        _revoke_quietly(provider, grant)
        raise _Failed("account_mismatch", state.account_id)
    sealed = account_service.seal_secrets(
        _secrets(grant),
        state.tenant_id,
        state.account_id,
        key_id=deps.settings.data_key_id,
    )
    updated = deps.accounts.update_account(
        account.model_copy(update={"oauth": oauth}),
        fields=["oauth"],
        expected_version=account.version,
        credentials=sealed,
    )
    deps.tokens.forget(updated)
    deps.tokens.remember(updated, grant.access_token, grant.expires_in)
    if updated.sync.reason == REAUTH_REQUIRED or updated.sync.stage is SyncStage.FAILED:
        cleared = updated.sync.model_copy(update={"stage": SyncStage.PENDING, "reason": None})
        deps.accounts.set_sync_state(state.tenant_id, state.account_id, cleared)
    deps.accounts.make_pollable(state.tenant_id, state.account_id, account.provider)
    request = SyncRequest(tenant_id=state.tenant_id, account_id=state.account_id, reason="connected")
    deps.accounts.mark_sync_queued(state.tenant_id, state.account_id, request.requested_at)
    deps.queue.send(request)
    _import_contacts_after_connect(updated, deps)
    _watch_quietly(updated, deps)
    return CallbackOutcome(outcome="reconnected", account_id=state.account_id)


def _import_contacts_after_connect(account: Account, deps: OAuthDeps) -> None:
    """Queue the first contact import of an account that granted contacts.readonly."""
    from mailbridge.crm.contact_import import wants_import
    from mailbridge.sync.messages import ImportContacts

    if wants_import(account):
        deps.queue.send(ImportContacts(tenant_id=account.tenant_id, account_id=account.account_id))
    _pull_calendar_after_connect(account, deps)


def _pull_calendar_after_connect(account: Account, deps: OAuthDeps) -> None:
    """Queue the first calendar pull of a Gmail or Graph account that granted its calendar scope."""
    from mailbridge.models.account import calendar_access
    from mailbridge.sync.messages import SyncCalendar

    scopes = account.oauth.scopes if account.oauth else None
    if account.provider in ("gmail", "graph") and calendar_access(account.provider, scopes) == "granted":
        deps.queue.send(
            SyncCalendar(
                provider=account.provider, tenant_id=account.tenant_id, account_id=account.account_id
            )
        )


def _watch_quietly(account: Account, deps: OAuthDeps) -> None:
    """Start push for the new grant; a failure leaves the account to the poll and the daily renewal."""
    try:
        deps.watch(account)
    except MailbridgeError as exc:
        logger.warning("watch after connect failed", extra={"code": exc.code})
