"""Calendar function: CalendarQueue consumer; applies iTIP in synced mail (mailbridge.calendar.itip).

The queue carries `email.received` bus events (through the template's CalendarRule). Idempotent
on the event's idempotency key with Powertools idempotency, on top of changes that find nothing
left to do when a message is applied twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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

from mailbridge.calendar.itip import on_email
from mailbridge.calendar.wiring import itip_deps
from mailbridge.config import get_settings
from mailbridge.observability import logger, metrics, tracer

settings = get_settings()
persistence = DynamoDBPersistenceLayer(table_name=settings.tables.idempotency)
idempotency = IdempotencyConfig(event_key_jmespath="key", expires_after_seconds=24 * 3600)


class MailData(BaseModel):
    email_id: str
    account_id: str


class BusDetail(BaseModel):
    tenant_id: str
    idempotency_key: str
    data: MailData


class BusEvent(BaseModel):
    """The EventBridge envelope the rule puts on the queue (only what the calendar reads)."""

    id: str
    source: str
    detail_type: str = Field(alias="detail-type")
    detail: BusDetail


class CalendarRecord(SqsRecordModel):
    body: Json[BusEvent]


class CalendarTask(BaseModel):
    key: str
    tenant_id: str
    email_id: str
    account_id: str


@dataclass
class Outcome:
    action: str
    changed: list[str] = field(default_factory=list)


@idempotent_function(  # type: ignore[untyped-decorator]
    data_keyword_argument="task",
    persistence_store=persistence,
    config=idempotency,
    output_serializer=DataclassSerializer(Outcome),
)
def run_once(task: CalendarTask) -> Outcome:
    result = on_email(task.tenant_id, task.email_id, task.account_id, itip_deps())
    return Outcome(result.action, result.changed)


def record_handler(record: CalendarRecord) -> None:
    detail = record.body.detail
    task = CalendarTask(
        key=f"calendar:{detail.idempotency_key}",
        tenant_id=detail.tenant_id,
        email_id=detail.data.email_id,
        account_id=detail.data.account_id,
    )
    outcome = run_once(task=task)
    logger.info("itip", extra={"action": outcome.action, "changed": outcome.changed})


processor = BatchProcessor(event_type=EventType.SQS, model=CalendarRecord)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    idempotency.register_lambda_context(context)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
