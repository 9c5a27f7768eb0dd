"""CRM activity function: CrmActivityQueue consumer; logs linked email to Salesforce and HubSpot
(`mailbridge.crm.integrations.activity`) and syncs campaigns to them
(`mailbridge.crm.integrations.campaigns`).

The queue carries `email.linked` bus events (through the CrmActivityRule) and
`{"kind": "campaign_sync", ...}` messages (from `POST /crm/sync/campaigns`). Campaign syncs run
one record at a time; a retryable provider error (a rate limit) holds the record back and
reports it failed. The `email.linked` records of a batch go to `log_linked` at once, so the
integrations, emails, contact links and logged Message-IDs are each read once per batch; the
records it wants back later are held back with their delay (`retry_later`) and reported as batch
item failures, the rest are done. Idempotent without Powertools idempotency: the per-integration
record of logged Message-IDs (and the adapters' own lookup at the provider) make a redelivered
record log nothing twice; a campaign sync compares with what it stored last time.
"""

from __future__ import annotations

from typing import Any, Literal

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field, Json, ValidationError

from mailbridge.crm.integrations.activity import ActivityOutcome, LinkedEmail, log_linked, retry_delay
from mailbridge.crm.integrations.campaigns import sync_campaign
from mailbridge.crm.integrations.models import CampaignSyncMessage
from mailbridge.crm.integrations.wiring import activity_deps, activity_queue, campaign_sync_deps
from mailbridge.errors import ProviderError
from mailbridge.observability import logger, metrics, tracer


class LinkedData(BaseModel):
    email_id: str = Field(min_length=1, max_length=64)
    contact_ids: list[str] = Field(min_length=1, max_length=1000)


class LinkedDetail(BaseModel):
    tenant_id: str = Field(min_length=1, max_length=64)
    data: LinkedData


class LinkedEvent(BaseModel):
    """The EventBridge envelope the CrmActivityRule puts on the queue (what the logger reads)."""

    detail_type: Literal["email.linked"] = Field(alias="detail-type")
    detail: LinkedDetail


class ActivityRecord(SqsRecordModel):
    body: Json[LinkedEvent | CampaignSyncMessage]


class RetryLater(Exception):
    """This record is held back (visibility set to its delay) and reported as failed."""


def linked(record: ActivityRecord) -> LinkedEmail:
    assert isinstance(record.body, LinkedEvent)
    detail = record.body.detail
    return LinkedEmail(
        key=record.messageId,
        tenant_id=detail.tenant_id,
        email_id=detail.data.email_id,
        contact_ids=detail.data.contact_ids,
        attempt=int(record.attributes.ApproximateReceiveCount),
    )


def campaign(record: ActivityRecord, message: CampaignSyncMessage) -> int | None:
    """Sync one campaign; the seconds to hold the record back when the provider asks for a pause
    or failed transiently, else None (done, whatever the outcome: the sync log has it)."""
    try:
        result = sync_campaign(message, campaign_sync_deps())
    except ProviderError as exc:
        if not exc.retryable:
            logger.warning("campaign sync dropped", extra={"code": exc.code})
            return None
        attempt = int(record.attributes.ApproximateReceiveCount)
        return retry_delay(attempt, getattr(exc, "retry_after", None))
    logger.info("campaign sync", extra={"campaign_id": message.campaign_id, "outcome": result})
    return None


def run_batch(records: list[dict[str, Any]]) -> ActivityOutcome:
    """Parse what parses (the processor fails the rest) and log the batch in one go."""
    parsed: list[ActivityRecord] = []
    for raw in records:
        try:
            parsed.append(ActivityRecord.model_validate(raw))
        except ValidationError:
            continue
    events = [r for r in parsed if isinstance(r.body, LinkedEvent)]
    outcome = log_linked([linked(r) for r in events], activity_deps()) if events else ActivityOutcome()
    for record in parsed:
        if isinstance(record.body, CampaignSyncMessage):
            delay = campaign(record, record.body)
            if delay is not None:
                outcome.retry[record.messageId] = delay
    receipts = {r.messageId: r.receiptHandle for r in parsed}
    for key, delay in outcome.retry.items():
        activity_queue().retry_later(receipts[key], delay)
    logger.info(
        "crm activity batch",
        extra={
            "logged": outcome.logged,
            "already": outcome.already,
            "dropped": outcome.dropped,
            "retried": len(outcome.retry),
        },
    )
    return outcome


processor = BatchProcessor(event_type=EventType.SQS, model=ActivityRecord)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    outcome = run_batch(event.get("Records") or [])

    def record_handler(record: ActivityRecord) -> None:
        if record.messageId in outcome.retry:
            raise RetryLater(record.messageId)

    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
