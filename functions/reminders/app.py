"""Reminders function: RemindersQueue consumer. It takes what one-time schedules put there at their
time (`WakeSnooze` of a snooze, `FollowUpDue` of a follow-up flag: mailbridge.followups.service),
the daily NudgeSchedule's `NudgeScan` (fanned out to one per tenant with nudges on, each a record of
its own: mailbridge.nudges.service.fan_out, scan), and the `email.received` /
`email.sent` bus events (the RemindersRule): a received one wakes `wake_on_reply` snoozes of the
thread early (mailbridge.snooze.service); both record the thread's latest message for nudges,
which clears the thread's nudge (mailbridge.nudges.service.on_thread_mail).

No Powertools idempotency record here: a wake-up is guarded by the snooze record's own state
(`snoozed` at that `until` -> `woken`, closed last), a reminder by the flag's `reminded_at`, a nudge by
its own conditional create; that also covers a replay days later, past any idempotency record's
expiry.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Json

from mailbridge.followups.models import FollowUpDue
from mailbridge.followups.service import remind
from mailbridge.followups.wiring import follow_up_deps
from mailbridge.nudges.models import EmailSent, NudgeScan
from mailbridge.nudges.service import fan_out, on_thread_mail, scan
from mailbridge.nudges.wiring import nudge_deps
from mailbridge.observability import logger, metrics, tracer
from mailbridge.snooze.models import EmailReceived, WakeSnooze
from mailbridge.snooze.service import on_reply, wake
from mailbridge.snooze.wiring import snooze_deps


class RemindersRecord(SqsRecordModel):
    body: Json[WakeSnooze | FollowUpDue | NudgeScan | EmailReceived | EmailSent]


def record_handler(record: RemindersRecord) -> None:
    message = record.body
    if isinstance(message, FollowUpDue):
        reminded = remind(message, follow_up_deps())
        metrics.add_metric(name="FollowUpsDue", unit=MetricUnit.Count, value=int(reminded))
        return
    if isinstance(message, WakeSnooze):
        woke = wake(message, snooze_deps())
        metrics.add_metric(name="SnoozesWoken", unit=MetricUnit.Count, value=int(woke))
        logger.info("snooze wake-up", extra={"woke": woke, "reason": message.reason})
        return
    if isinstance(message, NudgeScan):
        if message.tenant_id is None:
            queued = fan_out(nudge_deps(), message.scheduled_time)
            logger.info("nudge run", extra={"tenants_queued": queued})
            return
        created = scan(message.tenant_id, nudge_deps(), message.scheduled_time)
        metrics.add_metric(name="NudgesCreated", unit=MetricUnit.Count, value=created)
        logger.info("nudge scan", extra={"nudges_created": created})
        return
    if isinstance(message, EmailSent):
        on_thread_mail(message.detail.tenant_id, message.detail.data.email_id, nudge_deps())
        return
    detail = message.detail
    on_thread_mail(detail.tenant_id, detail.data.email_id, nudge_deps())
    woken = on_reply(detail.tenant_id, detail.data.thread_id, detail.data.email_id, snooze_deps())
    if woken:
        metrics.add_metric(name="SnoozesWokenByReply", unit=MetricUnit.Count, value=woken)


processor = BatchProcessor(event_type=EventType.SQS, model=RemindersRecord)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
