"""Connecting CRMs, their tokens, and the adapter for one integration (issue 18 points 2 and 7).

Connecting: `start` (web server flow; an admin) makes an integration in state `pending` and a
single-use OAuth state (the mailbox flow's store and rules: 10 minutes, PKCE S256; RFC 6749
section 10.12, RFC 7636) naming it; the provider redirects to `/oauth/{provider}/callback` (the
oauth function), which calls `finish_consent`. `start_device` (Salesforce only; a member) starts
RFC 8628's device flow and `poll_device` exchanges once the user approved: `authorization_pending`
and `slow_down` (the interval grows by 5 seconds, RFC 8628 section 3.5, and a poll earlier than
the interval allows is answered `slow_down` without asking Salesforce), `access_denied` and an
expired code (`expired_token`) fail the integration with that reason.

Connected: the org (Salesforce org id from the identity URL `id`, HubSpot `hub_id`) is unique per
tenant (409 `already_connected`); the tokens `{refresh_token, access_token}` are sealed with KMS
under `{tenant_id, integration_id}`.

Tokens (`access_token`): the stored access token until `REFRESH_MARGIN` before it expires (or a
forced refresh after a 401); then one caller per integration takes the refresh lease (a
conditional write), refreshes and stores the new tokens; the others wait for the new version.
A refresh refused with `invalid_grant` / `BAD_REFRESH_TOKEN` moves the integration to
`reauth_required` and puts `crm.integration.reauth_required` on the bus once. `reconnect` takes
such an integration (or a failed one) through the consent again in place.

Errors: Forbidden(`role_required`), NotFound(`integration_not_found`, `provider_not_found`,
`provider_not_configured`), Invalid(`device_flow_unsupported`), Conflict(`already_connected`,
`not_reconnectable`, `org_mismatch`),
ProviderAuthError(`reauth_required`), ProviderError(`refresh_in_progress`, retryable).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mailbridge import crypto, opsmetrics
from mailbridge.bus import DomainEvent, EventPublisher
from mailbridge.config import Settings
from mailbridge.crm.integrations.models import (
    INTEGRATION_ID,
    INTEGRATION_REAUTH_REQUIRED,
    ActivityLogging,
    DevicePoll,
    DeviceStart,
    Integration,
    IntegrationCreate,
    IntegrationStart,
    Org,
    Orgs,
    SyncRun,
    SyncStatus,
)
from mailbridge.crm.integrations.oauth import CrmGrant, CrmOAuth, DevicePending, SalesforceOAuth
from mailbridge.errors import (
    Conflict,
    Invalid,
    MailbridgeError,
    NotFound,
    ProviderAuthError,
    ProviderError,
)
from mailbridge.oauth.http import GrantRevoked
from mailbridge.oauth.pkce import new_state, new_verifier, s256_challenge
from mailbridge.observability import logger
from mailbridge.store.crm_activity import LoggedEmailStore
from mailbridge.store.crm_campaigns import RemoteCampaignStore
from mailbridge.store.crm_integrations import IntegrationNotFound, IntegrationStore
from mailbridge.store.crm_remote_ids import RemoteIdStore
from mailbridge.store.crm_sync import SyncLogStore
from mailbridge.store.oauth_states import OAuthState, OAuthStateStore
from mailbridge.tenancy import Role, TenantContext

if TYPE_CHECKING:
    from mailbridge.crm.remote.protocol import CrmProvider
    from mailbridge.oauth.service import CallbackOutcome

STATE_TTL = timedelta(minutes=10)
REFRESH_MARGIN = 300
LEASE_SECONDS = 30
LEASE_WAITS = 20
LEASE_WAIT_SECONDS = 0.5
SLOW_DOWN_STEP = 5  # RFC 8628 section 3.5
REAUTH_REQUIRED = "reauth_required"


@dataclass
class IntegrationDeps:
    settings: Settings
    store: IntegrationStore
    logs: SyncLogStore
    remote_ids: RemoteIdStore
    states: OAuthStateStore
    publisher: EventPublisher
    oauth: Callable[[str], CrmOAuth]
    logged: LoggedEmailStore | None = None  # what activity logging logged (removed with the integration)
    remote_campaigns: RemoteCampaignStore | None = None  # our campaigns there (removed with it too)
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    sleep: Callable[[float], None] = time.sleep


class NotConfigured(NotFound):
    code = "provider_not_configured"


def _context(tenant_id: str, integration_id: str) -> dict[str, str]:
    return {"tenant_id": tenant_id, "integration_id": integration_id}


def _seal(secrets: dict[str, str | None], tenant_id: str, integration_id: str, deps: IntegrationDeps) -> Any:
    envelope = crypto.encrypt(
        json.dumps(secrets).encode(), _context(tenant_id, integration_id), key_id=deps.settings.data_key_id
    )
    return envelope.model_dump(mode="json")


def _open(envelope: crypto.Envelope, tenant_id: str, integration_id: str) -> dict[str, str | None]:
    opened: dict[str, str | None] = json.loads(crypto.decrypt(envelope, _context(tenant_id, integration_id)))
    return opened


def _client(provider: str, deps: IntegrationDeps) -> CrmOAuth:
    client = deps.oauth(provider)
    if not client.configured:
        raise NotConfigured(f"{provider} is not set up on this deployment")
    return client


def _new(ctx: TenantContext, body: IntegrationCreate, flow: str, deps: IntegrationDeps) -> Integration:
    now = deps.now()
    return Integration(
        integration_id="int_" + uuid.uuid4().hex[:20],
        tenant_id=ctx.tenant_id,
        provider=body.provider,
        name=body.name,
        state="pending",
        flow="device" if flow == "device" else "web",
        created_at=now,
        created_by=ctx.subject,
        updated_at=now,
    )


# ---------------------------------------------------------------------------------- web server flow


def start(
    ctx: TenantContext, body: IntegrationCreate, deps: IntegrationDeps, *, callback_base_url: str
) -> IntegrationStart:
    """A pending integration and the provider's consent URL (admin)."""
    ctx.require(Role.ADMIN)
    client = _client(body.provider, deps)
    integration = _new(ctx, body, "web", deps)
    deps.store.create_integration(integration)
    return _consent(ctx, integration, client, deps, callback_base_url)


def _consent(
    ctx: TenantContext,
    integration: Integration,
    client: CrmOAuth,
    deps: IntegrationDeps,
    callback_base_url: str,
) -> IntegrationStart:
    """The single-use OAuth state naming the (pending) integration, and the consent URL."""
    state, verifier = new_state(), new_verifier()
    redirect_uri = f"{callback_base_url.rstrip('/')}/oauth/{integration.provider}/callback"
    expires_at = deps.now() + STATE_TTL
    deps.states.put(
        state,
        OAuthState(
            tenant_id=ctx.tenant_id,
            subject=ctx.subject,
            provider=integration.provider,
            account_id=integration.integration_id,
            code_verifier=verifier,
            redirect_uri=redirect_uri,
            expires_at=expires_at,
        ),
    )
    url = client.authorization_url(
        state=state, code_challenge=s256_challenge(verifier), redirect_uri=redirect_uri
    )
    return IntegrationStart(integration=integration, authorization_url=url, expires_at=expires_at)


RECONNECTABLE: tuple[str, ...] = (REAUTH_REQUIRED, "failed")


def reconnect(
    ctx: TenantContext, integration_id: str, deps: IntegrationDeps, *, callback_base_url: str
) -> IntegrationStart:
    """Connect an integration again in place (admin), keeping its id, field mapping, remote-id
    links, logged activities and sync logs: one in `reauth_required` (the refresh token was
    revoked or expired) or `failed` goes back to `pending` with a new consent URL (the web server
    flow, as `start`). The consent must be given for the org the integration had (the callback
    fails it with `org_mismatch` otherwise, so one integration's records never mix two orgs).
    NotFound(`integration_not_found`); Conflict(`not_reconnectable`) when it is connected or
    connecting; Conflict(`conflict`) when it changed state meanwhile."""
    ctx.require(Role.ADMIN)
    integration = get(ctx, integration_id, deps)
    if integration.state not in RECONNECTABLE:
        raise Conflict(
            f"the integration is {integration.state}; only one in reauth_required or failed is reconnected",
            code="not_reconnectable",
        )
    client = _client(integration.provider, deps)
    pending = integration.model_copy(
        update={"state": "pending", "reason": None, "flow": "web", "updated_at": deps.now()}
    )
    if not deps.store.set_state(pending, expected=integration.state):
        raise Conflict("the integration changed meanwhile; read it again", code="conflict")
    return _consent(ctx, pending, client, deps, callback_base_url)


def finish_consent(  # noqa: PLR0911 - one outcome per way the consent can end
    state: OAuthState, code: str | None, error: str | None, deps: IntegrationDeps
) -> CallbackOutcome:
    """The callback for a CRM state (already taken and checked for expiry by the oauth flow).
    Outcome codes: `access_denied`, `consent_failed`, `missing_code`, `exchange_failed`,
    `no_refresh_token`, `identity_unavailable`, `already_connected`, `integration_not_found`,
    `provider_not_configured` (the client id or secret was removed since the start)."""
    from mailbridge.oauth.service import CallbackOutcome

    integration_id = state.account_id or ""
    try:
        integration = deps.store.get_integration(state.tenant_id, integration_id, consistent=True)
    except IntegrationNotFound:
        return CallbackOutcome(outcome="error", code="integration_not_found")

    def failed(reason: str) -> CallbackOutcome:
        _fail(integration, reason, deps)
        return CallbackOutcome(outcome="error", code=reason, integration_id=integration_id)

    if integration.state != "pending":
        return CallbackOutcome(outcome="error", code="invalid_state", integration_id=integration_id)
    if error:
        return failed("access_denied" if error == "access_denied" else "consent_failed")
    if not code:
        return failed("missing_code")
    try:
        client = _client(integration.provider, deps)
    except NotConfigured:
        return failed(NotConfigured.code)
    try:
        grant = client.exchange_code(
            code=code, code_verifier=state.code_verifier, redirect_uri=state.redirect_uri
        )
    except GrantRevoked:
        return failed("exchange_failed")
    try:
        _connect(integration, grant, client, deps)
    except Conflict as exc:
        return failed(exc.code)
    return CallbackOutcome(outcome="connected", integration_id=integration_id)


def _fail(integration: Integration, reason: str, deps: IntegrationDeps) -> Integration:
    failed = integration.model_copy(update={"state": "failed", "reason": reason, "updated_at": deps.now()})
    deps.store.set_state(failed, expected=integration.state)
    return failed


def _connect(
    integration: Integration, grant: CrmGrant, client: CrmOAuth, deps: IntegrationDeps
) -> Integration:
    """Store the grant and the org; Conflict(`no_refresh_token` | `identity_unavailable` |
    `org_mismatch` (a reconnect to another org) | `already_connected` | `conflict`) otherwise (the
    new grant is then revoked)."""
    if not grant.refresh_token:
        raise Conflict("the provider issued no refresh token", code="no_refresh_token")
    if not grant.org_id or (integration.provider == "salesforce" and not grant.instance_url):
        _revoke_quietly(client, grant.refresh_token)
        raise Conflict("the token answer names no org", code="identity_unavailable")
    if integration.org_id is not None and grant.org_id != integration.org_id:  # a reconnect
        _revoke_quietly(client, grant.refresh_token)
        raise Conflict("the consent was given for another org than the integration's", code="org_mismatch")
    now = deps.now()
    connected = integration.model_copy(
        update={
            "state": "connected",
            "reason": None,
            "org_id": grant.org_id,
            "org_name": grant.org_name,
            "instance_url": grant.instance_url,
            "remote_user_id": grant.user_id,
            "scopes": sorted(grant.scopes),
            "connected_at": now,
            "updated_at": now,
        }
    )
    sealed = _seal(
        {"refresh_token": grant.refresh_token, "access_token": grant.access_token},
        integration.tenant_id,
        integration.integration_id,
        deps,
    )
    try:
        deps.store.connect(
            connected, {"credentials": sealed, "expires_at": int(now.timestamp()) + grant.expires_in}
        )
    except Conflict:
        _revoke_quietly(client, grant.refresh_token)
        raise
    return connected


def _revoke_quietly(client: CrmOAuth, token: str) -> None:
    try:
        client.revoke(token)
    except MailbridgeError as exc:
        logger.info("crm revoke failed", extra={"code": exc.code})


# ---------------------------------------------------------------------------------- device flow


def start_device(ctx: TenantContext, body: IntegrationCreate, deps: IntegrationDeps) -> DeviceStart:
    """RFC 8628 section 3.1/3.2 for Salesforce (member); the integration waits in `pending`."""
    ctx.require(Role.MEMBER)
    if body.provider != "salesforce":
        raise Invalid("only Salesforce offers the device flow", code="device_flow_unsupported")
    client = _client(body.provider, deps)
    assert isinstance(client, SalesforceOAuth)
    device = client.start_device()
    integration = _new(ctx, body, "device", deps)
    now = int(deps.now().timestamp())
    deps.store.create_integration(
        integration,
        tokens={
            "credentials": _seal(
                {"device_code": device.device_code}, ctx.tenant_id, integration.integration_id, deps
            ),
            "interval": device.interval,
            "poll_after": now,
            "device_expires": now + device.expires_in,
        },
    )
    return DeviceStart(
        integration=integration,
        user_code=device.user_code,
        verification_uri=device.verification_uri,
        interval=device.interval,
        expires_in=device.expires_in,
    )


def poll_device(  # noqa: PLR0911 - one answer per RFC 8628 poll outcome
    ctx: TenantContext, integration_id: str, deps: IntegrationDeps
) -> DevicePoll:
    """One poll of a pending device authorization (member); see the module docstring."""
    ctx.require(Role.MEMBER)
    integration = get(ctx, integration_id, deps)
    if integration.flow != "device":
        raise Invalid("this integration is not connecting by the device flow", code="device_flow_unsupported")
    if integration.state != "pending":
        if integration.state == "connected":
            return DevicePoll(integration=integration, status="connected")
        return DevicePoll(integration=integration, status="failed")
    tokens = deps.store.get_tokens(ctx.tenant_id, integration_id)
    now = int(deps.now().timestamp())
    if tokens is None or tokens.envelope is None or now >= tokens.device_expires:
        return DevicePoll(integration=_fail(integration, "expired_token", deps), status="failed")
    if now < tokens.poll_after:
        return DevicePoll(integration=integration, status="slow_down", interval=tokens.interval)
    client = _client(integration.provider, deps)
    assert isinstance(client, SalesforceOAuth)
    device_code = _open(tokens.envelope, ctx.tenant_id, integration_id).get("device_code") or ""
    try:
        grant = client.poll_device(device_code)
    except DevicePending as pending:
        if pending.status in ("access_denied", "expired_token"):
            return DevicePoll(integration=_fail(integration, pending.status, deps), status="failed")
        slow = pending.status == "slow_down"
        interval = tokens.interval + (SLOW_DOWN_STEP if slow else 0)
        deps.store.set_poll_after(ctx.tenant_id, integration_id, poll_after=now + interval, interval=interval)
        return DevicePoll(
            integration=integration,
            status="slow_down" if slow else "authorization_pending",
            interval=interval,
        )
    try:
        connected = _connect(integration, grant, client, deps)
    except Conflict as exc:
        failed = _fail(integration, exc.code, deps)
        if exc.code == "already_connected":
            raise Conflict("this org is connected in the tenant already", code="already_connected") from None
        return DevicePoll(integration=failed, status="failed")
    return DevicePoll(integration=connected, status="connected")


# ---------------------------------------------------------------------------------- reads, removal


def get(ctx: TenantContext, integration_id: str, deps: IntegrationDeps) -> Integration:
    """The integration (member); another tenant's id or a malformed one is 404."""
    ctx.require(Role.MEMBER)
    if not INTEGRATION_ID.fullmatch(integration_id):
        raise IntegrationNotFound("no such integration")
    return deps.store.get_integration(ctx.tenant_id, integration_id)


def list_integrations(
    ctx: TenantContext, deps: IntegrationDeps, *, cursor: str | None, limit: int
) -> tuple[list[Integration], str | None]:
    ctx.require(Role.MEMBER)
    return deps.store.list_integrations(ctx.tenant_id, cursor=cursor, limit=limit)


def orgs(ctx: TenantContext, deps: IntegrationDeps) -> Orgs:
    """The tenant's connected orgs and portals (integrations that have one)."""
    ctx.require(Role.MEMBER)
    return Orgs(
        items=[
            Org(
                integration_id=i.integration_id,
                provider=i.provider,
                org_id=i.org_id,
                instance_url=i.instance_url,
                name=i.org_name or i.name,
                state=i.state,
            )
            for i in deps.store.all_integrations(ctx.tenant_id)
            if i.org_id is not None
        ]
    )


def delete(ctx: TenantContext, integration_id: str, deps: IntegrationDeps) -> None:
    """Revoke the refresh token at the provider (best effort: a failure is logged by its code),
    then delete the integration, its sealed tokens, its org lookup, its sync logs, its contact
    links, its record of logged emails and of our campaigns there (admin)."""
    ctx.require(Role.ADMIN)
    integration = get(ctx, integration_id, deps)
    tokens = deps.store.get_tokens(ctx.tenant_id, integration_id)
    if integration.org_id is not None and tokens is not None and tokens.envelope is not None:
        try:
            refresh = _open(tokens.envelope, ctx.tenant_id, integration_id).get("refresh_token")
            if refresh:
                deps.oauth(integration.provider).revoke(refresh)
        except MailbridgeError as exc:
            logger.warning("crm integration: grant not revoked", extra={"code": exc.code})
    deps.store.delete_integration(integration)
    deps.logs.delete_all(ctx.tenant_id, integration_id)
    deps.remote_ids.delete_all(ctx.tenant_id, integration_id)
    if deps.logged is not None:
        deps.logged.delete_all(ctx.tenant_id, integration_id)
    if deps.remote_campaigns is not None:
        deps.remote_campaigns.delete_all(ctx.tenant_id, integration_id)


def set_activity_logging(
    ctx: TenantContext, integration_id: str, body: ActivityLogging, deps: IntegrationDeps
) -> Integration:
    """Switch activity logging and bodies for one integration (admin); 404 for another tenant's."""
    ctx.require(Role.ADMIN)
    get(ctx, integration_id, deps)
    return deps.store.set_activity_settings(
        ctx.tenant_id, integration_id, log_activity=body.log_activity, log_body=body.log_body
    )


def logs(
    ctx: TenantContext, integration_id: str, deps: IntegrationDeps, *, cursor: str | None, limit: int
) -> tuple[list[SyncRun], str | None]:
    """The integration's sync runs, newest first (member)."""
    get(ctx, integration_id, deps)
    return deps.logs.runs(ctx.tenant_id, integration_id, cursor=cursor, limit=limit)


def status(ctx: TenantContext, integration_id: str, deps: IntegrationDeps) -> SyncStatus:
    get(ctx, integration_id, deps)
    return deps.logs.status(ctx.tenant_id, integration_id)


# ---------------------------------------------------------------------------------- tokens


def access_token(integration: Integration, deps: IntegrationDeps, *, force_refresh: bool = False) -> str:
    """A usable access token for a connected integration (see the module docstring). Never log it."""
    tenant_id, integration_id = integration.tenant_id, integration.integration_id
    item = deps.store.get_tokens(tenant_id, integration_id)
    if integration.state != "connected" or item is None or item.envelope is None:
        raise ProviderAuthError("the integration must be connected again", code=REAUTH_REQUIRED)
    now = int(deps.now().timestamp())
    if not force_refresh and now < item.expires_at - REFRESH_MARGIN:
        return _open(item.envelope, tenant_id, integration_id).get("access_token") or ""
    seen = item.version
    for _attempt in range(LEASE_WAITS):
        if deps.store.take_lease(
            tenant_id, integration_id, now=int(deps.now().timestamp()), seconds=LEASE_SECONDS
        ):
            return _refresh(integration, deps)
        deps.sleep(LEASE_WAIT_SECONDS)
        again = deps.store.get_tokens(tenant_id, integration_id)
        if again is None or again.envelope is None:
            raise ProviderAuthError("the integration must be connected again", code=REAUTH_REQUIRED)
        if again.version != seen:  # the lease holder stored a fresh token
            return _open(again.envelope, tenant_id, integration_id).get("access_token") or ""
    failure = ProviderError("another refresh of this integration is in progress", code="refresh_in_progress")
    failure.retryable = True
    raise failure


def _refresh(integration: Integration, deps: IntegrationDeps) -> str:
    tenant_id, integration_id = integration.tenant_id, integration.integration_id
    try:
        item = deps.store.get_tokens(tenant_id, integration_id)
        secrets = _open(item.envelope, tenant_id, integration_id) if item and item.envelope else {}
        refresh_token = secrets.get("refresh_token")
        if not refresh_token:
            opsmetrics.token_refresh_failed(integration.provider, "no_refresh_token")
            raise _reauth(integration, deps)
        try:
            grant = deps.oauth(integration.provider).refresh(refresh_token)
        except GrantRevoked:
            opsmetrics.token_refresh_failed(integration.provider, "revoked")
            raise _reauth(integration, deps) from None
        except ProviderError as exc:
            opsmetrics.token_refresh_failed(integration.provider, exc.code)
            raise
    except BaseException:
        deps.store.release_lease(tenant_id, integration_id)
        raise
    sealed = crypto.Envelope.model_validate(
        _seal(
            {"refresh_token": grant.refresh_token or refresh_token, "access_token": grant.access_token},
            tenant_id,
            integration_id,
            deps,
        )
    )
    deps.store.store_tokens(tenant_id, integration_id, sealed, int(deps.now().timestamp()) + grant.expires_in)
    return grant.access_token


def _reauth(integration: Integration, deps: IntegrationDeps) -> ProviderAuthError:
    """Mark `reauth_required` and announce it once (only the writer that moved the state publishes)."""
    at = deps.now()
    moved = integration.model_copy(
        update={"state": REAUTH_REQUIRED, "reason": "invalid_grant", "updated_at": at}
    )
    if deps.store.set_state(moved, expected="connected"):
        deps.publisher.publish(
            [
                DomainEvent(
                    detail_type=INTEGRATION_REAUTH_REQUIRED,
                    tenant_id=integration.tenant_id,
                    occurred_at=at,
                    idempotency_key=f"{INTEGRATION_REAUTH_REQUIRED}:{integration.integration_id}:{at.isoformat()}",
                    data={
                        "integration_id": integration.integration_id,
                        "provider": integration.provider,
                        "org_id": integration.org_id,
                        "reason": REAUTH_REQUIRED,
                    },
                )
            ]
        )
        logger.warning("crm grant revoked", extra={"code": REAUTH_REQUIRED, "provider": integration.provider})
    return ProviderAuthError("the integration must be connected again", code=REAUTH_REQUIRED)


def provider_for(
    deps: IntegrationDeps,
    tenant_id: str,
    integration_id: str,
    *,
    sleep: Callable[[float], None] | None = None,
) -> CrmProvider:
    """The `CrmProvider` adapter for one connected integration, its `refresh` callback wired to
    `access_token(force_refresh=True)`; `sleep` waits between bulk polls and retries (default
    `time.sleep`; tests move a double's clock instead). Raises NotFound(`integration_not_found`),
    ProviderAuthError(`reauth_required`)."""
    from mailbridge.providers.http import HttpPolicy

    if not INTEGRATION_ID.fullmatch(integration_id):
        raise IntegrationNotFound("no such integration")
    integration = deps.store.get_integration(tenant_id, integration_id)
    token = access_token(integration, deps)
    policy = HttpPolicy(local_mode=deps.settings.allow_private_mail_hosts)
    if integration.provider == "salesforce":
        from mailbridge.crm.remote.salesforce import SalesforceProvider, SalesforceSession, SalesforceSettings

        instance_url = integration.instance_url or ""
        return SalesforceProvider(
            SalesforceSession(access_token=token, instance_url=instance_url),
            lambda: SalesforceSession(
                access_token=access_token(integration, deps, force_refresh=True), instance_url=instance_url
            ),
            settings=SalesforceSettings(login_url=deps.settings.crm_oauth.salesforce_login_url),
            policy=policy,
            sleep=sleep or time.sleep,
        )
    from mailbridge.crm.remote.hubspot import HubSpotProvider, HubSpotSettings

    return HubSpotProvider(
        token,
        lambda: access_token(integration, deps, force_refresh=True),
        HubSpotSettings(api_url=deps.settings.crm_oauth.hubspot_api_url),
        policy=policy,
        sleep=sleep or time.sleep,
    )
