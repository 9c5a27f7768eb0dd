"""The tenant's matching policy: read with defaults (own domains from the connected mailboxes)
and replace it (admins), with optimistic concurrency on the stored revision."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from mailbridge.crm.policy import CrmPolicyUpdate, CrmSettings, Policy, account_domains
from mailbridge.errors import Conflict
from mailbridge.store.accounts import AccountStore
from mailbridge.store.policy import PolicyStore
from mailbridge.tenancy import Role, TenantContext

ACCOUNT_PAGE = 100
MAX_ACCOUNT_PAGES = 20


def connected_domains(tenant_id: str, accounts: AccountStore) -> list[str]:
    addresses: list[str] = []
    cursor: str | None = None
    for _ in range(MAX_ACCOUNT_PAGES):
        page, cursor = accounts.list_accounts(tenant_id, cursor=cursor, limit=ACCOUNT_PAGE)
        addresses.extend(a.address for a in page)
        if cursor is None:
            break
    return account_domains(addresses)


def load_settings(tenant_id: str, policies: PolicyStore, accounts: AccountStore) -> CrmSettings:
    stored = policies.get_policy(tenant_id) or CrmSettings()
    own = stored.own_domains if stored.own_domains is not None else connected_domains(tenant_id, accounts)
    return stored.model_copy(update={"effective_own_domains": sorted(own)})


def load_policy(tenant_id: str, policies: PolicyStore, accounts: AccountStore) -> Policy:
    return Policy.of(load_settings(tenant_id, policies, accounts))


def get_crm_settings(ctx: TenantContext, policies: PolicyStore, accounts: AccountStore) -> CrmSettings:
    return load_settings(ctx.tenant_id, policies, accounts)


def update_crm_settings(
    ctx: TenantContext,
    update: CrmPolicyUpdate,
    policies: PolicyStore,
    accounts: AccountStore,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> CrmSettings:
    ctx.require(Role.ADMIN)
    current = policies.get_policy(ctx.tenant_id) or CrmSettings()
    if update.version is not None and update.version != current.version:
        raise Conflict("the settings were changed by someone else", code="version_conflict")
    candidate = CrmSettings(
        auto_create=update.auto_create,
        own_domains=update.own_domains,
        blocklist=update.blocklist,
        version=current.version,
        updated_at=now(),
        updated_by=ctx.subject,
    )
    try:
        policies.save_policy(ctx.tenant_id, candidate, expected_version=current.version or None)
    except Conflict as exc:
        raise Conflict("the settings were changed by someone else", code="version_conflict") from exc
    return load_settings(ctx.tenant_id, policies, accounts)
