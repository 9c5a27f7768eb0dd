"""The webhooks function's dependencies, built once per cold start from the settings.

The dedupe is Powertools idempotency (`idempotent_function`) around `queue_syncs`, keyed by
the Pub/Sub `messageId`: a redelivered or replayed push finds the completed record and queues
nothing; a failed one leaves no record, so Pub/Sub's retry runs it again.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from mailbridge.config import get_settings
from mailbridge.queues import SyncQueue
from mailbridge.store.accounts import AccountStore
from mailbridge.webhooks.gmail import PushNotice, PushResult, WebhookDeps, queue_syncs
from mailbridge.webhooks.graph import GraphWebhookDeps
from mailbridge.webhooks.verify import PushVerifier

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

DEDUPE_SECONDS = 7 * 24 * 3600  # Pub/Sub keeps an unacknowledged message 7 days by default [D]


@lru_cache(maxsize=1)
def idempotency_config() -> IdempotencyConfig:
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

    return IdempotencyConfig(event_key_jmespath="message_id", expires_after_seconds=DEDUPE_SECONDS)


@lru_cache(maxsize=1)
def gmail_deps() -> WebhookDeps:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, idempotent_function
    from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import PydanticSerializer

    settings = get_settings()
    google = settings.google
    accounts = AccountStore(settings.tables.accounts)
    queue = SyncQueue(settings.sync_queue_url)

    def queue_push(notice: PushNotice) -> PushResult:
        return queue_syncs(notice, accounts, queue)

    once = idempotent_function(
        data_keyword_argument="notice",
        persistence_store=DynamoDBPersistenceLayer(table_name=settings.tables.idempotency),
        config=idempotency_config(),
        output_serializer=PydanticSerializer(PushResult),
    )(queue_push)
    verifier = (
        PushVerifier(
            certs_url=google.certs_url,
            audience=google.push_audience,
            service_account=google.push_service_account,
        )
        if google.push_configured
        else None
    )
    return WebhookDeps(verifier=verifier, once=once)


@lru_cache(maxsize=1)
def graph_deps() -> GraphWebhookDeps:
    from mailbridge.store.graph_subscriptions import GraphSubscriptionStore

    settings = get_settings()
    return GraphWebhookDeps(
        subscriptions=GraphSubscriptionStore(settings.tables.accounts),
        queue=SyncQueue(settings.sync_queue_url),
    )
