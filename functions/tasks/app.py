"""Tasks function: the hourly schedule's target; publishes `activity.due_soon` for CRM tasks due
within the next 24 hours, once per task and due time (`mailbridge.crm.tasks.announce_due_soon`).

The scheduler delivers a fixed, trusted input; the window starts at the function's own clock.
A failed run is retried by the schedule's RetryPolicy; what it already announced is marked.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from mailbridge.crm.tasks import announce_due_soon
from mailbridge.crm.wiring import task_deps
from mailbridge.observability import logger, metrics, tracer


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(_event: dict[str, Any], _context: LambdaContext) -> dict[str, int]:
    store, publisher = task_deps()
    announced = announce_due_soon(store, publisher)
    metrics.add_metric(name="TasksDueSoonAnnounced", unit=MetricUnit.Count, value=announced)
    logger.info("due-soon scan", extra={"announced": announced})
    return {"announced": announced}
