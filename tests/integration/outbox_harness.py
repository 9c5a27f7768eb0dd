"""Delivers OutboxQueue records to the real outbox function (in-process, on moto)."""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from tests.fixtures.aws import FakeLambdaContext, Stack, load_function
from tests.integration.sync_harness import _record


class OutboxHarness:
    def __init__(self, stack: Stack) -> None:
        self.function = load_function("outbox")
        self.sqs: Any = boto3.client("sqs")
        self.queue_url = stack.deployed.queue_urls["OutboxQueue"]

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
            result = {"batchItemFailures": [{"itemIdentifier": m["MessageId"]} for m in messages]}
        failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
        for m in messages:
            if m["MessageId"] not in failed:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])
        return result

    def drain(self) -> list[dict[str, Any]]:
        results = []
        while messages := self.receive():
            results.append(self.invoke(messages))
        return results
