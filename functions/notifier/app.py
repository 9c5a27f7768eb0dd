"""Notifier function: NotifierQueue consumer. Each record is a bus event the NotifierRule forwards
(`email.received`, `email.updated`, `notification.created`, `account.reauth_required`); it goes out
as one frame to its user's WebSocket connections in its tenant, and connections API Gateway
answers 410 Gone for are deleted (mailbridge.realtime.service.notify).

Each event's fan-out to a user runs once (mailbridge.realtime.service.delivery_key: tenant,
user, detail-type, the event's `idempotency_key`), guarded by Powertools idempotency: recorded
before the posts, completed after; a redelivered record finds it and posts nothing. A failure
before the record completes (the accounts table unreadable) deletes it, and the redelivery posts.
"""

from __future__ import annotations

from collections.abc import Callable
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
from mailbridge.observability import logger, metrics, tracer
from mailbridge.realtime.models import BusEvent, Delivery
from mailbridge.realtime.service import notify
from mailbridge.realtime.wiring import notify_deps

# A day: far past the queue's redeliveries (visibility timeout x maxReceiveCount); a copy replayed
# later only sends a stale hint to re-read.
persistence = DynamoDBPersistenceLayer(table_name=get_settings().tables.idempotency)
idempotency = IdempotencyConfig(event_key_jmespath="key", expires_after_seconds=24 * 3600)


class NotifierRecord(SqsRecordModel):
    body: Json[BusEvent]


@idempotent_function(  # type: ignore[untyped-decorator]
    data_keyword_argument="fan_out",
    persistence_store=persistence,
    config=idempotency,
)
def post_once(fan_out: dict[str, str], post: Callable[[], dict[str, int]]) -> dict[str, int]:  # noqa: ARG001 - `fan_out` is the idempotency key Powertools reads
    return post()


def guard(key: str, fan_out: Callable[[], Delivery]) -> Delivery:
    """The fan-out the first time `key` is seen; an empty Delivery (nothing posted) after."""
    ran: list[Delivery] = []

    def post() -> dict[str, int]:
        ran.append(fan_out())
        return ran[0].model_dump()

    post_once(fan_out={"key": key}, post=post)
    return ran[0] if ran else Delivery()


def record_handler(record: NotifierRecord) -> None:
    delivery = notify(record.body, notify_deps(), guard)
    metrics.add_metric(name="FramesPosted", unit=MetricUnit.Count, value=delivery.posted)
    metrics.add_metric(name="ConnectionsGone", unit=MetricUnit.Count, value=delivery.gone)
    if delivery.failed:
        metrics.add_metric(name="FramesFailed", unit=MetricUnit.Count, value=delivery.failed)


processor = BatchProcessor(event_type=EventType.SQS, model=NotifierRecord)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    idempotency.register_lambda_context(context)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
