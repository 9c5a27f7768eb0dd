"""Delivers a queue's records to the real function the template maps to it (in-process, on moto),
as the SQS event source mapping would: successes deleted, reported failures left for redelivery."""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from tests.fixtures.aws import FakeLambdaContext, Stack, load_function
from tests.integration.sync_harness import _record


class QueueConsumer:
    def __init__(self, stack: Stack, function: str, queue: str) -> None:
        self.function = load_function(function)
        self.sqs: Any = boto3.client("sqs")
        self.queue_url = stack.deployed.queue_urls[queue]
        self.results: list[dict[str, Any]] = []

    def receive(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
        ).get("Messages", [])
        return messages

    def invoke(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        event = {"Records": [_record(m, self.queue_url) for m in messages]}
        try:
            result: dict[str, Any] = self.function.lambda_handler(event, FakeLambdaContext())
        except BatchProcessingError:
            # Every record failed: Powertools fails the invocation and SQS redelivers the batch.
            result = {"batchItemFailures": [{"itemIdentifier": m["MessageId"]} for m in messages]}
        failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
        for m in messages:
            if m["MessageId"] not in failed:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])
        self.results.append(result)
        return result

    def drain(self, *, max_batches: int = 50, expect_success: bool = False) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        for _ in range(max_batches):
            messages = self.receive()
            if not messages:
                return results
            result = self.invoke(messages)
            if expect_success:
                assert result["batchItemFailures"] == [], result
            results.append(result)
        raise AssertionError("the queue did not drain")
