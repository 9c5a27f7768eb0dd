"""Notifications function: NotificationsQueue consumer. The NotificationsRule puts the source events
here (nudge.created, follow_up.due, email.unsnoozed, email.send_failed, account.reauth_required,
automation.failed); each becomes a notification per user who should see it
(mailbridge.notifications.service.on_event), announced as `notification.created`. The daily
DigestSchedule puts a `DigestRun` here too: it sends the users' digest emails
(mailbridge.notifications.digest.run_digests; idempotent per user and period on its own).

No Powertools idempotency record here: a notification's id is derived from its source event's
idempotency key and written only if absent, which also covers a replay past any record's expiry.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Json

from mailbridge.notifications.digest import run_digests
from mailbridge.notifications.models import DigestRun, SourceEvent
from mailbridge.notifications.service import on_event
from mailbridge.notifications.wiring import notification_deps
from mailbridge.observability import logger, metrics, tracer


class NotificationsRecord(SqsRecordModel):
    body: Json[SourceEvent | DigestRun]


def record_handler(record: NotificationsRecord) -> None:
    if isinstance(record.body, DigestRun):
        result = run_digests(notification_deps(), record.body.scheduled_time)
        metrics.add_metric(name="DigestsSent", unit=MetricUnit.Count, value=result.sent)
        logger.info("digest run", extra={"digests_sent": result.sent, "digests_skipped": result.skipped})
        return
    created = on_event(record.body, notification_deps())
    metrics.add_metric(name="NotificationsCreated", unit=MetricUnit.Count, value=len(created))
    logger.info(
        "notifications", extra={"source": record.body.detail_type, "notifications_created": len(created)}
    )


processor = BatchProcessor(event_type=EventType.SQS, model=NotificationsRecord)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
