"""Sync function: SyncQueue (FIFO) consumer; the work lives in mailbridge.sync.

No Powertools idempotency layer here: every effect of a sync is keyed by provider ids and written
with conditional creates, so a redelivered record re-runs harmlessly and a legitimately repeated
"sync now" must not be swallowed as a duplicate.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Json

from mailbridge.config import get_settings
from mailbridge.errors import ProviderRateLimited
from mailbridge.observability import logger, metrics, tracer
from mailbridge.sync.messages import SyncMessage
from mailbridge.sync.service import RATE_LIMIT_WAIT_MAX_SECONDS, handle
from mailbridge.sync.wiring import budget_for, service_deps

get_settings()  # fail the cold start, not the first record, on a bad environment


class SyncRecord(SqsRecordModel):
    body: Json[SyncMessage]


processor = SqsFifoPartialProcessor(model=SyncRecord, skip_group_on_error=True)
_context: dict[str, LambdaContext] = {}


def record_handler(record: SyncRecord) -> None:
    remaining = _context["current"].get_remaining_time_in_millis()
    deps = service_deps()
    try:
        handle(record.body, deps, budget_for(remaining))
    except ProviderRateLimited as exc:
        # Back on the queue for as long as the provider asked (the record fails below).
        deps.queue.retry_later(record.receiptHandle, exc.retry_after or RATE_LIMIT_WAIT_MAX_SECONDS)
        raise


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    _context["current"] = context
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
