"""Categorize function: CategorizeQueue consumer; categorizes new mail (mailbridge.ai.service).

The queue carries `email.received` bus events (through the template's CategorizeRule) and the
steps of categorize backfills (`{"kind": "categorize_backfill", ...}`, each queueing the next). Idempotent
on the event's idempotency key with Powertools idempotency, on top of a conditional update that
stores each run once and announces `email.categorized` once. Skips every email while the tenant's
`ai` flag is off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
from pydantic import BaseModel, Field, Json

from mailbridge.ai.service import BackfillStep, on_email_received, run_backfill_step
from mailbridge.ai.wiring import categorize_deps
from mailbridge.config import get_settings
from mailbridge.observability import logger, metrics, tracer

settings = get_settings()
persistence = DynamoDBPersistenceLayer(table_name=settings.tables.idempotency)
idempotency = IdempotencyConfig(event_key_jmespath="key", expires_after_seconds=24 * 3600)


class MailData(BaseModel):
    email_id: str


class BusDetail(BaseModel):
    tenant_id: str
    idempotency_key: str
    data: MailData


class BusEvent(BaseModel):
    """The EventBridge envelope the rule puts on the queue (only what categorizing reads)."""

    id: str
    source: str
    detail_type: str = Field(alias="detail-type")
    detail: BusDetail


class CategorizeRecord(SqsRecordModel):
    body: Json[BusEvent | BackfillStep]


class CategorizeTask(BaseModel):
    key: str
    tenant_id: str
    email_id: str = ""
    step: BackfillStep | None = None


@dataclass
class Outcome:
    action: str
    category: str | None = None


@idempotent_function(  # type: ignore[untyped-decorator]
    data_keyword_argument="task",
    persistence_store=persistence,
    config=idempotency,
    output_serializer=DataclassSerializer(Outcome),
)
def run_once(task: CategorizeTask) -> Outcome:
    if task.step is not None:
        result = run_backfill_step(task.step, categorize_deps())
    else:
        result = on_email_received(task.tenant_id, task.email_id, task.key, categorize_deps())
    return Outcome(result.action, result.category)


def record_handler(record: CategorizeRecord) -> None:
    body = record.body
    if isinstance(body, BackfillStep):
        task = CategorizeTask(
            key=f"categorize-backfill:{body.job_id}:{body.step}", tenant_id=body.tenant_id, step=body
        )
    else:
        detail = body.detail
        task = CategorizeTask(
            key=f"categorize:{detail.idempotency_key}",
            tenant_id=detail.tenant_id,
            email_id=detail.data.email_id,
        )
    outcome = run_once(task=task)
    logger.info("categorize", extra={"action": outcome.action, "category": outcome.category})


processor = BatchProcessor(event_type=EventType.SQS, model=CategorizeRecord)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    idempotency.register_lambda_context(context)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
