"""Tasks function: long or periodic work that is nobody's request.

- The hourly schedule's input (`{"kind": "due_soon"}`): publishes `activity.due_soon` for CRM tasks
  due within the next 24 hours, once per task and due time (`mailbridge.crm.tasks.announce_due_soon`).
  The window starts at the function's own clock; a failed run is retried by the schedule's
  RetryPolicy; what it already announced is marked.
- The daily RetentionSweep's input (`{"kind": "retention_run"}`): a `retention` job per tenant
  with a retention setting (`mailbridge.privacy.service.start_retention_sweeps`), run in steps
  like the others.
- TasksQueue records (`PrivacyStep`): one step of a GDPR erase or export job
  (`mailbridge.privacy.service.run_step`). A failed step is reported as a batch item failure and
  comes back; the job's own step counter makes a repeated or duplicated record harmless, so no
  Powertools idempotency record is needed.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Json

from mailbridge.crm.tasks import announce_due_soon
from mailbridge.crm.wiring import task_deps
from mailbridge.observability import logger, metrics, tracer
from mailbridge.privacy.models import PrivacyStep


class TasksRecord(SqsRecordModel):
    body: Json[PrivacyStep]


def record_handler(record: TasksRecord) -> None:
    from mailbridge.privacy.service import run_step
    from mailbridge.privacy.wiring import privacy_deps

    ran = run_step(record.body, privacy_deps())
    metrics.add_metric(name="PrivacyStepsRun", unit=MetricUnit.Count, value=int(ran))
    logger.info("privacy step", extra={"job_id": record.body.job_id, "step": record.body.step, "ran": ran})


processor = BatchProcessor(event_type=EventType.SQS, model=TasksRecord)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    if "Records" in event:
        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    if event.get("kind") == "retention_run":
        from mailbridge.privacy.service import start_retention_sweeps
        from mailbridge.privacy.wiring import privacy_deps

        started = start_retention_sweeps(privacy_deps())
        logger.info("retention run", extra={"jobs_started": started})
        return {"started": started}
    store, publisher = task_deps()
    announced = announce_due_soon(store, publisher)
    metrics.add_metric(name="TasksDueSoonAnnounced", unit=MetricUnit.Count, value=announced)
    logger.info("due-soon scan", extra={"announced": announced})
    return {"announced": announced}
