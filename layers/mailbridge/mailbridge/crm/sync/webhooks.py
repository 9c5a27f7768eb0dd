"""CRM changes in, in real time (issue 18 point 6): Salesforce outbound messages and HubSpot
webhooks, received by the `webhooks` function. Each is verified, deduplicated on its
notification / event id (a receipt in the idempotency table, kept `DEDUPE_SECONDS`), and turned
into targeted pulls of the records it names on the CrmSyncQueue (`ContactSync.remote_ids`), which
the sync applies through the integration's conflict policy like any pull. Never processed inline.

- Salesforce (`salesforce`): the SOAP `notifications` body (mailbridge.crm.remote.salesforce_outbound);
  its `OrganizationId` must be a connected integration's org (403 `organization_mismatch` otherwise,
  the org check the outbound-message docs ask for); answered with `NOTIFICATIONS_RESPONSE`, the exact
  Ack Salesforce requires, also for notifications seen before.
- HubSpot (`hubspot`): the v3 signature over method, URI, body and timestamp with the app's client
  secret, 5-minute window, constant-time compare (mailbridge.crm.remote.hubspot_webhooks; 401 with
  its code); `contact.*` events of portals connected here are queued, others acknowledged.

Requests: one Query per org or portal for its integrations, one conditional PutItem per
notification (the dedupe), one SendMessageBatch per ten integrations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from mailbridge import opsmetrics
from mailbridge.crm.remote.hubspot_webhooks import parse_events, verify_v3
from mailbridge.crm.remote.salesforce_outbound import organization_of, parse_outbound_message
from mailbridge.crm.sync.models import ContactSync
from mailbridge.errors import Forbidden, Invalid, Unauthorized
from mailbridge.observability import logger
from mailbridge.store.crm_integrations import IntegrationStore
from mailbridge.store.push_receipts import PushReceiptStore

DEDUPE_SECONDS = 2 * 24 * 3600
"""Salesforce retries an outbound message for 24 hours, HubSpot a webhook for about a day."""


@dataclass
class CrmWebhookDeps:
    integrations: IntegrationStore
    receipts: PushReceiptStore
    send: Callable[[Sequence[ContactSync]], None]
    hubspot_client_secret: Callable[[], str]
    now: Callable[[], datetime]


def _queue(
    provider: str, org_id: str, notes: Sequence[tuple[str, str]], deps: CrmWebhookDeps, *, strict: bool
) -> int:
    """(notification id, record id) pairs of one org: claimed, then queued per integration.
    `strict`: an org no integration connected is refused (403), else ignored."""
    targets = deps.integrations.integrations_for_org(provider, org_id)
    if not targets:
        if strict:
            raise Forbidden("no integration is connected to this org", code="organization_mismatch")
        return 0
    expires_at = int(deps.now().timestamp()) + DEDUPE_SECONDS
    claimed = [(n, r) for n, r in notes if deps.receipts.claim(f"crm-{provider}", n, expires_at)]
    if not claimed:
        return 0
    records = list(dict.fromkeys(r for _, r in claimed))
    try:
        deps.send([ContactSync(tenant_id=t, integration_id=i, remote_ids=records) for t, i in targets])
    except BaseException:
        for note, _ in claimed:
            deps.receipts.release(f"crm-{provider}", note)
        raise
    logger.info(
        "crm webhook", extra={"provider": provider, "records": len(records), "integrations": len(targets)}
    )
    return len(records)


def salesforce(body: bytes, deps: CrmWebhookDeps) -> int:
    """An outbound message: the number of records queued (0: all seen before). A refused one
    (malformed, or an org no integration connected) counts as `WebhookRejected` (mailbridge.opsmetrics)."""
    try:
        org_id = organization_of(body)
        message = parse_outbound_message(body, expected_org_id=org_id)
        notes = [
            (n.id, n.record_id)
            for n in message.notifications
            if n.sobject_type == "Contact" and n.record_id is not None
        ]
        if not notes:
            return 0
        return _queue("salesforce", message.organization_id, notes, deps, strict=True)
    except (Unauthorized, Forbidden, Invalid) as exc:
        opsmetrics.webhook_rejected("salesforce", exc.code)
        raise


def hubspot(method: str, uri: str, body: bytes, headers: Mapping[str, str], deps: CrmWebhookDeps) -> int:
    """A webhook request: the number of records queued. A refused one (signature, timestamp, body)
    counts as `WebhookRejected` (mailbridge.opsmetrics)."""
    try:
        verify_v3(
            client_secret=deps.hubspot_client_secret(),
            method=method,
            uri=uri,
            body=body,
            headers=headers,
            now=deps.now(),
        )
        parsed = parse_events(body)
    except (Unauthorized, Forbidden, Invalid) as exc:
        opsmetrics.webhook_rejected("hubspot", exc.code)
        raise
    events = [e for e in parsed if e.subscription_type.startswith("contact.")]
    queued = 0
    for portal in sorted({e.portal_id for e in events}):
        notes = [(str(e.event_id), str(e.object_id)) for e in events if e.portal_id == portal]
        queued += _queue("hubspot", str(portal), notes, deps, strict=False)
    return queued
