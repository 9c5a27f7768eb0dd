"""Our campaigns to Salesforce Campaigns + CampaignMembers and HubSpot static lists (issue 18
point 5).

`request_sync` (`POST /crm/sync/campaigns`, admin) queues one `CampaignSyncMessage` per
(connected integration, campaign) on the CrmActivityQueue, which the CRM activity function also
consumes (a `kind` of its own; one queue and one consumer for everything mailbridge pushes to a
CRM besides contacts). `sync_campaign` then, for one pair:

1. reads the campaign, the contacts its email was queued for (`queued` recipients of its send
   run), their CRM records (one `RemoteIdStore.by_contacts`: only synced contacts become
   members) and what the integration holds already (`store/crm_campaigns.py`);
2. creates the Salesforce Campaign / HubSpot list, or updates its name and status only when they
   changed since the last sync (`CrmProvider.save_campaign`);
3. adds the members that are new and removes the ones that are gone
   (`CrmProvider.set_campaign_members`: CampaignMember rows, HubSpot list memberships), so a
   second sync writes nothing and no member is added twice;
4. stores the remote id, the written fields' digest and the member set, and records the run in
   the sync log (`kind` `campaigns`, direction `push`).

Salesforce `Campaign.Status` from our status (its standard picklist): draft -> `Planned`,
active and paused -> `In Progress`, done -> `Completed`. HubSpot lists have no status.

Errors: `ProviderRateLimited` and other retryable provider errors propagate (the consumer puts
the message back with a delay); `ProviderAuthError` (`reauth_required`) and a refused campaign end
the run `failed` with that code and are not retried. A member the CRM refused is a failed record
and is tried again by the next sync (it is not stored as a member).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mailbridge.crm.integrations.models import (
    ERROR_CODE,
    INTEGRATION_ID,
    CampaignSyncMessage,
    CampaignSyncQueued,
    CampaignSyncRequest,
    SyncRecord,
)
from mailbridge.crm.integrations.service import IntegrationDeps, provider_for
from mailbridge.crm.models import CAMPAIGN_ID, Campaign, CampaignStatus
from mailbridge.crm.remote.protocol import CampaignWrite, CrmProvider, Feature
from mailbridge.errors import NotFound, ProviderAuthError
from mailbridge.queues import CrmActivityQueue
from mailbridge.store.campaigns import CampaignRunStore
from mailbridge.store.crm import CrmStore
from mailbridge.store.crm_campaigns import RemoteCampaign, RemoteCampaignStore
from mailbridge.store.crm_integrations import IntegrationNotFound
from mailbridge.store.pagination import MAX_PAGE_SIZE
from mailbridge.tenancy import Role, TenantContext

SALESFORCE_STATUS = {
    CampaignStatus.DRAFT: "Planned",
    CampaignStatus.ACTIVE: "In Progress",
    CampaignStatus.PAUSED: "In Progress",
    CampaignStatus.DONE: "Completed",
}


@dataclass
class CampaignSyncDeps:
    integrations: IntegrationDeps
    crm: CrmStore
    runs: CampaignRunStore
    remote: RemoteCampaignStore
    provider: Callable[[IntegrationDeps, str, str], CrmProvider] = provider_for
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


def request_sync(
    ctx: TenantContext, body: CampaignSyncRequest, deps: CampaignSyncDeps, queue: CrmActivityQueue
) -> CampaignSyncQueued:
    """Queue the syncs (admin): to the named integration, or to every connected one. 404
    `integration_not_found`, `campaign_not_found`. A sync finds its integration not connected
    (still pending, or waiting for `reauth_required` to be fixed) is skipped when it runs."""
    ctx.require(Role.ADMIN)
    tenant_id = ctx.tenant_id
    if body.integration_id is not None:
        if not INTEGRATION_ID.fullmatch(body.integration_id):
            raise IntegrationNotFound("no such integration")
        integration = deps.integrations.store.get_integration(tenant_id, body.integration_id)
        integration_ids = [integration.integration_id]
    else:
        integration_ids = [
            i.integration_id
            for i in deps.integrations.store.all_integrations(tenant_id)
            if i.state == "connected"
        ]
    if body.campaign_id is not None:
        found = CAMPAIGN_ID.fullmatch(body.campaign_id)
        campaign = deps.crm.get_campaign(tenant_id, body.campaign_id) if found else None
        if campaign is None:
            raise NotFound("no such campaign", code="campaign_not_found")
        campaign_ids = [campaign.campaign_id]
    else:
        campaign_ids = _all_campaigns(tenant_id, deps.crm)
    messages = [
        CampaignSyncMessage(tenant_id=tenant_id, integration_id=i, campaign_id=c)
        for i in integration_ids
        for c in campaign_ids
    ]
    queue.send_many(messages)
    return CampaignSyncQueued(
        queued=len(messages), integration_ids=integration_ids, campaign_ids=campaign_ids
    )


def _all_campaigns(tenant_id: str, crm: CrmStore) -> list[str]:
    ids: list[str] = []
    cursor: str | None = None
    while True:
        page, cursor = crm.list_campaigns(tenant_id, cursor=cursor, limit=MAX_PAGE_SIZE)
        ids += [c.campaign_id for c in page]
        if cursor is None:
            return ids


def fields_hash(write: CampaignWrite) -> str:
    """sha256 hex of what `save_campaign` writes (name, status, dates), to skip an unchanged one."""
    basis = "\n".join(str(v or "") for v in (write.name, write.status, write.start_date, write.end_date))
    return hashlib.sha256(basis.encode()).hexdigest()


def campaign_write(campaign: Campaign, provider: str, remote_id: str | None) -> CampaignWrite:
    return CampaignWrite(
        key=campaign.campaign_id,
        remote_id=remote_id,
        name=campaign.name,
        status=SALESFORCE_STATUS.get(campaign.status) if provider == "salesforce" else None,
    )


def sync_campaign(message: CampaignSyncMessage, deps: CampaignSyncDeps) -> str:  # noqa: PLR0911
    """Sync one campaign to one integration (see the module docstring); returns what happened:
    `synced`, `unchanged`, `integration_missing`, `not_connected`, `campaign_missing`, or the
    error code the run failed with."""
    tenant_id, integration_id = message.tenant_id, message.integration_id
    logs = deps.integrations.logs
    try:
        integration = deps.integrations.store.get_integration(tenant_id, integration_id)
    except IntegrationNotFound:
        return "integration_missing"
    if integration.state != "connected":
        return "not_connected"
    campaign = deps.crm.get_campaign(tenant_id, message.campaign_id)
    if campaign is None:
        return "campaign_missing"
    contacts = list(deps.runs.queued_contacts(tenant_id, campaign.campaign_id))
    links = deps.integrations.remote_ids.by_contacts(tenant_id, integration_id, contacts) if contacts else {}
    wanted = frozenset(link.remote_id for link in links.values())
    stored = deps.remote.get_remote(tenant_id, integration_id, campaign.campaign_id)
    write = campaign_write(campaign, integration.provider, stored.remote_id if stored else None)
    digest = fields_hash(write)
    if stored is not None and stored.fields_hash == digest and stored.members == wanted:
        return "unchanged"
    run = logs.start_run(tenant_id, integration_id, "campaigns", "push", now=deps.now())
    try:
        provider = deps.provider(deps.integrations, tenant_id, integration_id)
    except ProviderAuthError as exc:
        logs.finish_run(tenant_id, run, error_code=exc.code, now=deps.now())
        return exc.code
    if not {Feature.CAMPAIGNS, Feature.LISTS} & provider.features():
        logs.finish_run(tenant_id, run, error_code="campaigns_unsupported", now=deps.now())
        return "campaigns_unsupported"
    try:
        remote_id, entries, members = _push(provider, write, stored, digest, wanted)
    except ProviderAuthError as exc:
        logs.finish_run(tenant_id, run, error_code=exc.code, now=deps.now())
        return exc.code
    if remote_id is None:
        logs.record(tenant_id, run, entries)
        logs.finish_run(tenant_id, run, error_code=entries[0].error_code, now=deps.now())
        return entries[0].error_code or "failed"
    deps.remote.put_remote(
        tenant_id,
        integration_id,
        campaign.campaign_id,
        RemoteCampaign(remote_id=remote_id, fields_hash=digest, members=members),
        deps.now(),
    )
    logs.record(tenant_id, run, entries)
    logs.finish_run(tenant_id, run, now=deps.now())
    return "synced"


def _push(
    provider: CrmProvider,
    write: CampaignWrite,
    stored: RemoteCampaign | None,
    digest: str,
    wanted: frozenset[str],
) -> tuple[str | None, list[SyncRecord], frozenset[str]]:
    """Save the campaign if it changed, then its member changes: (the remote id, None when the
    campaign was refused; the records; the members now, the refused changes left undone)."""
    entries: list[SyncRecord] = []
    remote_id = stored.remote_id if stored else None
    if stored is None or stored.fields_hash != digest:
        result = provider.save_campaign(write)
        if result.state != "succeeded" or result.remote_id is None:
            code = (result.error_code or "crm_record_rejected").lower()
            entry = SyncRecord(
                remote_id=f"campaign_{write.key}"[:64],
                local_id=write.key,
                direction="push",
                state="failed",
                error_code=code if ERROR_CODE.fullmatch(code) else "crm_record_rejected",
            )
            return None, [entry], frozenset()
        remote_id = result.remote_id
        entries.append(
            SyncRecord(remote_id=remote_id, local_id=write.key, direction="push", state="succeeded")
        )
    assert remote_id is not None
    before = stored.members if stored else frozenset()
    add, remove = sorted(wanted - before), sorted(before - wanted)
    members = before
    if add or remove:
        result_members = provider.set_campaign_members(remote_id, add, remove)
        for member in [*result_members.added, *result_members.removed]:
            entries.append(SyncRecord(remote_id=member, direction="push", state="succeeded"))
        for failure in result_members.failed:
            entries.append(
                SyncRecord(
                    remote_id=failure.key[:64] or "unknown",
                    direction="push",
                    state="failed",
                    error_code="crm_record_rejected",
                )
            )
        refused = {f.key for f in result_members.failed}
        members = (before | (set(add) - refused)) - (set(remove) - refused)
    return remote_id, entries, frozenset(members)
