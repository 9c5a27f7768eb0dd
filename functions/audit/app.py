"""Audit archive function: the AuditTable stream's consumer. Each batch's new entries become
JSON Lines objects in the Object Lock bucket, one per tenant and day (mailbridge.audit.archive,
which says why the batch is grouped here rather than processed record by record)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecordEventName
from aws_lambda_powertools.utilities.typing import LambdaContext

from mailbridge.audit.archive import StreamItem, archive
from mailbridge.audit.wiring import archive_deps
from mailbridge.config import get_audit_archive_settings
from mailbridge.observability import logger, metrics, tracer

get_audit_archive_settings()  # fail the cold start, not the first batch, on a bad environment


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Lambda calls with the context; the decorators read it
    items = [
        StreamItem(sequence_number=str(record.dynamodb.sequence_number), item=dict(record.dynamodb.new_image))
        for record in DynamoDBStreamEvent(event).records
        if record.event_name == DynamoDBRecordEventName.INSERT
        and record.dynamodb
        and record.dynamodb.new_image
    ]
    failed = archive(items, archive_deps())
    metrics.add_metric(name="AuditEntriesArchived", unit=MetricUnit.Count, value=len(items))
    return {"batchItemFailures": [{"itemIdentifier": sequence} for sequence in failed]}
