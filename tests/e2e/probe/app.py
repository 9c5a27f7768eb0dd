"""Test-only probe: records every SQS record it sees in PROBE_TABLE; echoes HTTP events back."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import boto3
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

processor = BatchProcessor(event_type=EventType.SQS)
table = boto3.resource("dynamodb").Table(os.environ["PROBE_TABLE"])


class ProbeFailure(Exception):
    """The record asked to fail."""


def record_handler(record: SQSRecord) -> None:
    body = json.loads(record.body)
    failing = bool(body.get("fail") or (body.get("detail") or {}).get("fail"))
    count = record.attributes.approximate_receive_count
    table.put_item(
        Item={
            "pk": f"{record.message_id}#{count}",
            "message_id": record.message_id,
            "receive_count": int(count),
            "body": record.body,
            "outcome": "fail" if failing else "ok",
            "record": json.dumps(record.raw_event),
        }
    )
    if failing:
        raise ProbeFailure(record.message_id)


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if "Records" in event:
        return dict(
            process_partial_response(
                event=event, record_handler=record_handler, processor=processor, context=context
            )
        )
    what = (event.get("pathParameters") or {}).get("what")
    if what == "boom":
        raise ProbeFailure("boom")
    if what == "big":  # a response over Lambda's 6 MB limit
        return {"statusCode": 200, "body": "x" * (7 * 1024 * 1024)}
    if "size_only" in (event.get("queryStringParameters") or {}):
        return {"statusCode": 200, "body": json.dumps({"body_length": len(event.get("body") or "")})}
    started = time.time()
    if os.environ.get("POWERTOOLS_SERVICE_NAME") == "probe-long":  # tell the tests it is busy now
        table.put_item(Item={"pk": f"busy#{context.aws_request_id}", "pid": os.getpid()})
    if what is not None:
        time.sleep(float(what))
    # pid and times tell the tests which sandbox served the request, and when
    sandbox = {"pid": os.getpid(), "started": started, "ended": time.time()}
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({"event": event, "function_name": context.function_name, "sandbox": sandbox}),
    }
