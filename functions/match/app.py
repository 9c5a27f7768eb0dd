"""Match function: MatchQueue consumer; links mail to CRM records (mailbridge.crm.matching).

The queue carries bus events (`email.received`, `email.sent`, `contact.created|updated|deleted`,
through the template's rule) and the continuations a long backfill queues for itself. Idempotent
on the event's idempotency key (or the continuation's cursor) with Powertools idempotency, on
top of links that are conditional creates with deterministic keys.
"""

from __future__ import annotations

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

from mailbridge.config import get_settings
from mailbridge.crm.matching import MatchOutcome, MatchWork, handle_event, handle_work
from mailbridge.crm.wiring import match_deps
from mailbridge.observability import logger, metrics, tracer

settings = get_settings()
persistence = DynamoDBPersistenceLayer(table_name=settings.tables.idempotency)
idempotency = IdempotencyConfig(event_key_jmespath="key", expires_after_seconds=24 * 3600)


class BusDetail(BaseModel):
    tenant_id: str
    idempotency_key: str
    data: dict[str, Any] = {}


class BusEvent(BaseModel):
    """The EventBridge envelope the rule puts on the queue (only what matching reads)."""

    id: str
    source: str
    detail_type: str = Field(alias="detail-type")
    detail: BusDetail


class MatchRecord(SqsRecordModel):
    body: Json[BusEvent | MatchWork]


class MatchTask(BaseModel):
    key: str
    event: BusEvent | None = None
    work: MatchWork | None = None


@idempotent_function(  # type: ignore[untyped-decorator]
    data_keyword_argument="task",
    persistence_store=persistence,
    config=idempotency,
    output_serializer=DataclassSerializer(MatchOutcome),
)
def run_once(task: MatchTask) -> MatchOutcome:
    if task.work is not None:
        return handle_work(task.work, match_deps())
    assert task.event is not None
    detail = task.event.detail
    return handle_event(task.event.detail_type, detail.tenant_id, detail.data, match_deps())


def record_handler(record: MatchRecord) -> None:
    body = record.body
    if isinstance(body, MatchWork):
        task = MatchTask(key=body.key, work=body)
    else:
        task = MatchTask(key=body.detail.idempotency_key, event=body)
    outcome = run_once(task=task)
    logger.info("matched", extra={"action": outcome.action, "linked": outcome.linked})


processor = BatchProcessor(event_type=EventType.SQS, model=MatchRecord)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    idempotency.register_lambda_context(context)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
