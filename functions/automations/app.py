"""Automations function: AutomationsQueue consumer; runs the rules bus events and cron schedules
trigger (mailbridge.automations.execution).

The queue carries bus events (through the template's `AutomationsRule`) and cron rules' firings
(`{"kind": "cron", tenant_id, rule_id}` from their Scheduler schedules). Each action of a run is
guarded by Powertools idempotency on its key `{rule}:{version}:{event}:{index}` (recorded
before the call, completed after), so a redelivered event never sends or posts twice. A
transient failure that outlasts the in-run retries comes back after an exponential delay
(visibility timeout); the last attempt records the run as failed, and SQS moves the record to
the DLQ after `maxReceiveCount`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field, Json

from mailbridge.automations.execution import RetryLater, Trigger, handle_trigger
from mailbridge.automations.wiring import execution_deps
from mailbridge.config import get_settings
from mailbridge.observability import logger, metrics, tracer
from mailbridge.queues import StandardQueue

MAX_ATTEMPTS = 6  # the queue's maxReceiveCount
BASE_DELAY_SECONDS = 30

settings = get_settings()
persistence = DynamoDBPersistenceLayer(table_name=settings.tables.idempotency)
idempotency = IdempotencyConfig(event_key_jmespath="key", expires_after_seconds=7 * 24 * 3600)
queue = StandardQueue(settings.automations_queue_url)


class BusDetail(BaseModel):
    tenant_id: str
    idempotency_key: str
    occurred_at: datetime
    data: dict[str, Any] = {}


class BusEvent(BaseModel):
    """The EventBridge envelope the rule puts on the queue."""

    id: str
    source: str
    detail_type: str = Field(alias="detail-type")
    detail: BusDetail


class CronFiring(BaseModel):
    kind: Literal["cron"]
    tenant_id: str
    rule_id: str


class AutomationRecord(SqsRecordModel):
    body: Json[BusEvent | CronFiring]


@idempotent_function(  # type: ignore[untyped-decorator]
    data_keyword_argument="step",
    persistence_store=persistence,
    config=idempotency,
)
def perform_once(step: dict[str, str], perform: Callable[[], dict[str, Any]]) -> dict[str, Any]:  # noqa: ARG001 - `step` is the idempotency key Powertools reads
    return perform()


def guard(key: str, perform: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = perform_once(step={"key": key}, perform=perform)
    return result


def trigger_of(record: AutomationRecord) -> Trigger:
    body = record.body
    if isinstance(body, CronFiring):
        sent = int(record.attributes.SentTimestamp.timestamp()) if record.attributes.SentTimestamp else 0
        return Trigger(
            tenant_id=body.tenant_id,
            event_id=f"cron:{record.messageId}",
            event_type="schedule.fired",
            occurred_at=datetime.fromtimestamp(sent, UTC) if sent else datetime.now(UTC),
            data={"rule_id": body.rule_id},
            rule_id=body.rule_id,
        )
    detail = body.detail
    return Trigger(
        tenant_id=detail.tenant_id,
        event_id=detail.idempotency_key,
        event_type=body.detail_type,
        occurred_at=detail.occurred_at,
        data=detail.data,
    )


def record_handler(record: AutomationRecord) -> None:
    attempt = int(record.attributes.ApproximateReceiveCount)
    deps = execution_deps()
    deps.guard = guard
    try:
        runs = handle_trigger(trigger_of(record), deps, final_attempt=attempt >= MAX_ATTEMPTS)
    except RetryLater as exc:
        logger.warning("automation run will be retried", extra={"error_code": exc.code, "attempt": attempt})
        queue.retry_later(record.receiptHandle, BASE_DELAY_SECONDS * 2 ** (attempt - 1))
        raise
    logger.info("automations ran", extra={"runs": len(runs), "matched": sum(r.matched for r in runs)})


processor = BatchProcessor(event_type=EventType.SQS, model=AutomationRecord)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    idempotency.register_lambda_context(context)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
