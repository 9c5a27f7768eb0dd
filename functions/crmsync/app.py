"""CrmSync function: CrmSyncQueue consumer. A message with a tenant runs (or continues, by its
`run_id`) one integration's two-way contact sync (mailbridge.crm.sync.service.run); the
schedule's message without one is fanned out to a run per connected integration of every tenant
that connected a CRM (`fan_out`). A retryable provider error (rate limit, unreachable CRM) fails
the record, so SQS redelivers it and the run continues; the DLQ takes it after five tries.

A message naming a run (`run_id`, from the API's start) is guarded by the run's own state (a run
no longer `running` is not run again), and every write of a run is keyed. A message without one
(the schedule's fan-out, a webhook's targeted pull) starts new runs when it is handled, so it is
handled once per SQS message: Powertools idempotency on its `messageId` (the same on every
redelivery), recorded before and completed after; a retryable error deletes the record, so the
redelivery runs it. Either way a redelivery never doubles anything.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Json

from mailbridge.config import get_settings
from mailbridge.crm.sync.models import ContactSync
from mailbridge.crm.sync.service import fan_out, run
from mailbridge.crm.sync.wiring import sync_deps
from mailbridge.observability import logger, metrics, tracer

# A day: past every redelivery (visibility timeout x maxReceiveCount 5) of the FIFO queue.
persistence = DynamoDBPersistenceLayer(table_name=get_settings().tables.idempotency)
idempotency = IdempotencyConfig(event_key_jmespath="message_id", expires_after_seconds=24 * 3600)


class CrmSyncRecord(SqsRecordModel):
    body: Json[ContactSync]


def record_handler(record: CrmSyncRecord) -> None:
    if record.body.run_id is not None:
        handle(record.body)
        return
    handle_once(sqs={"message_id": record.messageId}, message=record.body)


@idempotent_function(  # type: ignore[untyped-decorator]
    data_keyword_argument="sqs",
    persistence_store=persistence,
    config=idempotency,
)
def handle_once(sqs: dict[str, str], message: ContactSync) -> dict[str, str]:  # noqa: ARG001 - `sqs` is the idempotency key Powertools reads
    handle(message)
    return {}


def handle(message: ContactSync) -> None:
    deps = sync_deps()
    if message.tenant_id is None:
        queued = fan_out(deps, deps.integrations.store.tenants())
        logger.info("crm sync fan-out", extra={"runs_queued": queued})
        return
    result = run(message, deps)
    if result is None:
        return
    metrics.add_metric(name="CrmContactsSynced", unit=MetricUnit.Count, value=result.succeeded)
    metrics.add_metric(name="CrmSyncConflicts", unit=MetricUnit.Count, value=result.conflicts)
    logger.info(
        "crm sync run",
        extra={
            "integration_id": result.integration_id,
            "run_id": result.run_id,
            "state": result.state,
            "total": result.total,
            "failed": result.failed,
            "conflicts": result.conflicts,
        },
    )


processor = BatchProcessor(event_type=EventType.SQS, model=CrmSyncRecord)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    idempotency.register_lambda_context(context)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
