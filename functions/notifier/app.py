"""Notifier function: NotifierQueue consumer. Each record is a bus event the NotifierRule forwards
(`email.received`, `email.updated`, `notification.created`, `account.reauth_required`); it goes out
as one frame to its user's WebSocket connections in its tenant, and connections API Gateway
answers 410 Gone for are deleted (mailbridge.realtime.service.notify).

No idempotency record: a frame is a hint to re-read, and a second copy of it is harmless.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Json

from mailbridge.observability import logger, metrics, tracer
from mailbridge.realtime.models import BusEvent
from mailbridge.realtime.service import notify
from mailbridge.realtime.wiring import notify_deps


class NotifierRecord(SqsRecordModel):
    body: Json[BusEvent]


def record_handler(record: NotifierRecord) -> None:
    delivery = notify(record.body, notify_deps())
    metrics.add_metric(name="FramesPosted", unit=MetricUnit.Count, value=delivery.posted)
    metrics.add_metric(name="ConnectionsGone", unit=MetricUnit.Count, value=delivery.gone)
    if delivery.failed:
        metrics.add_metric(name="FramesFailed", unit=MetricUnit.Count, value=delivery.failed)


processor = BatchProcessor(event_type=EventType.SQS, model=NotifierRecord)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
