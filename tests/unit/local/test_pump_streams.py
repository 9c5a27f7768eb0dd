"""DynamoDB stream event sources in the local runner: a table's new records reach the function in
batches, in order, once; a reported failure is read again from that record after the retry delay."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, cast

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from local.clock import ManualClock
from local.functions import FunctionPool, Invocation
from local.pump import STREAM_RETRY_SECONDS, Pump, StreamConsumer

START = datetime(2030, 1, 3, 8, 0, tzinfo=UTC)


class Recorder:
    """A function pool whose one function records each batch's keys and answers `answers` in turn."""

    def __init__(self, answers: list[Any]) -> None:
        self.batches: list[list[str]] = []
        self.answers = answers

    def invoke(self, logical_id: str, event: Any) -> Invocation:
        self.batches.append([r["dynamodb"]["Keys"]["pk"]["S"] for r in event["Records"]])
        answer = self.answers.pop(0) if self.answers else {"batchItemFailures": []}
        return answer(event) if callable(answer) else Invocation(result=answer)


@pytest.fixture
def table() -> Iterator[tuple[Any, Any, str]]:
    """(dynamodb, dynamodbstreams, stream ARN) of a table with a NEW_IMAGE stream, under moto."""
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(
            TableName="audit",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
        )
        arn = dynamodb.describe_table(TableName="audit")["Table"]["LatestStreamArn"]
        # moto answers stream calls on the regional endpoint only (botocore would use the account's)
        streams = boto3.client(
            "dynamodbstreams", region_name="us-east-1", config=Config(account_id_endpoint_mode="disabled")
        )
        yield dynamodb, streams, arn


def _pump(streams: Any, arn: str, clock: ManualClock, pool: Recorder) -> Pump:
    consumer = StreamConsumer("Archive", arn, batch_size=10, report_batch_item_failures=True)
    sqs, scheduler = (boto3.client(name, region_name="us-east-1") for name in ("sqs", "scheduler"))
    return Pump(
        sqs,
        scheduler,
        cast("FunctionPool", pool),
        clock,
        [],
        [],
        {},
        streams=streams,
        stream_consumers=[consumer],
    )


def _put(dynamodb: Any, *keys: str) -> None:
    for key in keys:
        dynamodb.put_item(TableName="audit", Item={"pk": {"S": key}})


def test_new_records_reach_the_function_once_in_order(table: tuple[Any, Any, str]) -> None:
    # Given a table with two new items and a function that succeeds
    dynamodb, streams, arn = table
    pool = Recorder([])
    pump = _pump(streams, arn, ManualClock(START), pool)
    _put(dynamodb, "a", "b")
    # When the pump ticks, an item is added, and it ticks twice more
    pump.tick()
    _put(dynamodb, "c")
    pump.tick()
    pump.tick()
    # Then the function got a, b then c, each once, as Lambda stream records
    assert pool.batches == [["a", "b"], ["c"]]


def test_a_reported_failure_is_read_again_from_that_record_after_the_retry_delay(
    table: tuple[Any, Any, str],
) -> None:
    # Given three new items and a function that reports the second as failed the first time
    dynamodb, streams, arn = table
    _put(dynamodb, "a", "b", "c")

    def fail_b(event: Any) -> Invocation:
        return Invocation(
            result={
                "batchItemFailures": [{"itemIdentifier": event["Records"][1]["dynamodb"]["SequenceNumber"]}]
            }
        )

    clock = ManualClock(START)
    pool = Recorder([fail_b])
    pump = _pump(streams, arn, clock, pool)
    # When the pump ticks, and ticks again at once
    pump.tick()
    pump.tick()
    # Then the batch went once: the failed record waits for the retry delay
    assert pool.batches == [["a", "b", "c"]]
    # When the delay passed on the runner clock and the pump ticks twice
    clock.advance(STREAM_RETRY_SECONDS)
    pump.tick()
    pump.tick()
    # Then the batch is read again from b, and nothing after that
    assert pool.batches == [["a", "b", "c"], ["b", "c"]]
