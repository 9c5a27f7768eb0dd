"""Outbox function: OutboxQueue consumer; sends each queued email exactly once, and brings the
mailbox's copy of a changed draft in step (`mailbridge.drafts.provider`: idempotent by itself, it
reads the draft's current state on every run), and queues campaign send runs one chunk per
message (`mailbridge.campaigns.service.run_chunk`: exactly once per recipient by itself; a failed
chunk comes back and resumes).

Idempotent on the outbound email id (Powertools idempotency on the DynamoDB table) on top of
the email's own status machine: two deliveries of one record racing each other send once.
Transient failures come back after an exponential delay; the last attempt marks the email failed.
"""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.serialization.dataclass import DataclassSerializer
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field, Json

from mailbridge.campaigns.models import CampaignChunkMessage
from mailbridge.config import get_settings
from mailbridge.errors import ProviderError
from mailbridge.observability import logger, metrics, tracer
from mailbridge.outbox.models import DraftSyncMessage, OutboxMessage
from mailbridge.outbox.service import SendOutcome, fail, send_queued
from mailbridge.outbox.wiring import outbox_deps

MAX_ATTEMPTS = 5
BASE_DELAY_SECONDS = 30

settings = get_settings()
persistence = DynamoDBPersistenceLayer(table_name=settings.tables.idempotency)
idempotency = IdempotencyConfig(event_key_jmespath="email_id", expires_after_seconds=24 * 3600)


class OutboxRecord(SqsRecordModel):
    body: Json[
        Annotated[OutboxMessage | DraftSyncMessage | CampaignChunkMessage, Field(discriminator="kind")]
    ]


@idempotent_function(  # type: ignore[untyped-decorator]
    data_keyword_argument="message",
    persistence_store=persistence,
    config=idempotency,
    output_serializer=DataclassSerializer(SendOutcome),
)
def send_once(message: OutboxMessage) -> SendOutcome:
    return send_queued(message, outbox_deps())


def sync_draft(record: OutboxRecord, message: DraftSyncMessage) -> None:
    from mailbridge.drafts.provider import sync_draft as sync
    from mailbridge.drafts.wiring import draft_store

    attempt = int(record.attributes.ApproximateReceiveCount)
    try:
        sync(message, outbox_deps(), draft_store())
    except ProviderError as exc:
        if not exc.retryable or attempt >= MAX_ATTEMPTS:
            logger.warning(
                "draft copy not kept in step", extra={"code": exc.code, "draft_id": message.draft_id}
            )
            return
        outbox_deps().queue.retry_later(record.receiptHandle, BASE_DELAY_SECONDS * 2 ** (attempt - 1))
        raise


def campaign_chunk(message: CampaignChunkMessage) -> None:
    from mailbridge.campaigns.service import run_chunk
    from mailbridge.campaigns.wiring import campaign_deps

    outcome = run_chunk(message, campaign_deps())
    logger.info("campaign chunk", extra={"campaign_id": message.campaign_id, "outcome": outcome})


def record_handler(record: OutboxRecord) -> None:
    if isinstance(record.body, DraftSyncMessage):
        sync_draft(record, record.body)
        return
    if isinstance(record.body, CampaignChunkMessage):
        campaign_chunk(record.body)
        return
    attempt = int(record.attributes.ApproximateReceiveCount)
    try:
        send_once(message=record.body)
    except ProviderError as exc:
        if not exc.retryable or attempt >= MAX_ATTEMPTS:
            fail(outbox_deps(), record.body, exc)
            return
        outbox_deps().queue.retry_later(record.receiptHandle, BASE_DELAY_SECONDS * 2 ** (attempt - 1))
        raise


processor = BatchProcessor(event_type=EventType.SQS, model=OutboxRecord)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    idempotency.register_lambda_context(context)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
