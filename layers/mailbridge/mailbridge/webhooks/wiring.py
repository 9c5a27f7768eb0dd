"""The webhooks function's dependencies, built once per cold start from the settings."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING

from mailbridge.config import get_settings
from mailbridge.queues import SyncQueue
from mailbridge.store.accounts import AccountStore
from mailbridge.store.push_receipts import PushReceiptStore
from mailbridge.webhooks.gmail import WebhookDeps
from mailbridge.webhooks.graph import GraphWebhookDeps
from mailbridge.webhooks.verify import PushVerifier

if TYPE_CHECKING:
    from mailbridge.crm.sync.webhooks import CrmWebhookDeps


@lru_cache(maxsize=1)
def gmail_deps() -> WebhookDeps:
    settings = get_settings()
    google = settings.google
    verifier = (
        PushVerifier(
            certs_url=google.certs_url,
            audience=google.push_audience,
            service_account=google.push_service_account,
        )
        if google.push_configured
        else None
    )
    return WebhookDeps(
        verifier=verifier,
        receipts=PushReceiptStore(settings.tables.idempotency),
        accounts=AccountStore(settings.tables.accounts),
        queue=SyncQueue(settings.sync_queue_url),
        now=lambda: datetime.now(UTC),
    )


@lru_cache(maxsize=1)
def graph_deps() -> GraphWebhookDeps:
    from mailbridge.store.graph_subscriptions import GraphSubscriptionStore

    settings = get_settings()
    return GraphWebhookDeps(
        subscriptions=GraphSubscriptionStore(settings.tables.accounts),
        queue=SyncQueue(settings.sync_queue_url),
    )


@lru_cache(maxsize=1)
def crm_webhook_deps() -> CrmWebhookDeps:
    from mailbridge.crm.sync.webhooks import CrmWebhookDeps
    from mailbridge.oauth.providers import ClientSecret
    from mailbridge.queues import CrmSyncQueue
    from mailbridge.store.crm_integrations import IntegrationStore

    settings = get_settings()
    secret = ClientSecret(settings.crm_oauth.hubspot_client_secret_arn)
    return CrmWebhookDeps(
        integrations=IntegrationStore(settings.tables.crm),
        receipts=PushReceiptStore(settings.tables.idempotency),
        send=CrmSyncQueue(settings.crm_sync_queue_url).send_syncs,
        hubspot_client_secret=secret,
        now=lambda: datetime.now(UTC),
    )
