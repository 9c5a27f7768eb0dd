"""Drives the real api and sync handlers against moto's SyncQueue and a real Dovecot user."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from tests.events import load_event
from tests.fixtures.aws import FakeLambdaContext, Stack, load_function
from tests.integration.dovecot import DovecotServer, DovecotUser

Invoke = Callable[[dict[str, Any]], dict[str, Any]]
TENANT = "acme"
SAMPLE_ACCOUNT = "acc_5f0c1d2e3a4b5c6d7e8f"


def message(
    subject: str,
    *,
    msgid: str,
    body: str = "Hello there.",
    sender: str = "carol@customer.example",
    to: str = "user@example.com",
    refs: list[str] | None = None,
    date: str = "Tue, 17 Nov 2026 10:00:00 +0000",
    extra: str = "",
) -> bytes:
    headers = [
        f"From: Carol Customer <{sender}>",
        f"To: {to}",
        f"Subject: {subject}",
        f"Message-ID: <{msgid}>",
        f"Date: {date}",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
    ]
    if refs:
        headers.append(f"In-Reply-To: <{refs[-1]}>")
        headers.append("References: " + " ".join(f"<{r}>" for r in refs))
    if extra:
        headers.append(extra)
    return ("\r\n".join(headers) + "\r\n\r\n" + body + "\r\n").encode()


def call_api(
    invoke_api: Invoke,
    name: str,
    *,
    role: str = "member",
    tenant: str = TENANT,
    body: Any = None,
    params: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """Invoke the api function with events/api/<name>; (status, decoded body)."""
    event = load_event(f"api/{name}", tenant=tenant, role=role, body=body, query=query)
    if params:
        # The sample events name sample ids; point the path at the ones under test.
        path = event["rawPath"]
        for key, value in params.items():
            path = path.replace(str((event.get("pathParameters") or {}).get(key, value)), value)
        event["pathParameters"] = params
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
    response = invoke_api(event)
    return response["statusCode"], json.loads(response["body"]) if response.get("body") else None


class SyncHarness:
    def __init__(self, stack: Stack, invoke_api: Invoke, server: DovecotServer, user: DovecotUser) -> None:
        self.stack = stack
        self.invoke_api = invoke_api
        self.server = server
        self.user = user
        self.sync = load_function("sync")
        self.sqs: Any = boto3.client("sqs")
        self.queue_url = stack.deployed.queue_urls["SyncQueue"]
        self.account_id = ""

    def api(
        self,
        name: str,
        *,
        role: str = "member",
        tenant: str = TENANT,
        body: Any = None,
        params: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        return call_api(
            self.invoke_api, name, role=role, tenant=tenant, body=body, params=params, query=query
        )

    def connect(
        self,
        *,
        port: int | None = None,
        password: str | None = None,
        folders: list[str] | None = None,
        tenant: str = TENANT,
        smtp: dict[str, Any] | None = None,
    ) -> tuple[int, Any]:
        body = {
            "provider": "imap",
            "address": f"{self.user.name}@example.com",
            "imap": {
                "host": self.server.host,
                "port": port or self.server.imap_port,
                "security": "none",
                "username": self.user.name,
                "password": password or self.user.password,
            },
            "folders": folders or [],
            "smtp": smtp,
        }
        status, data = self.api("create-account.json", body=body, tenant=tenant)
        if status == 201:
            self.account_id = data["account_id"]
        return status, data

    def status(self) -> dict[str, Any]:
        code, data = self.api(
            "get-account-status.json", params={"account_id": self.account_id}, role="viewer"
        )
        assert code == 200, data
        return data  # type: ignore[no-any-return]

    def receive(self, limit: int = 10) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=limit, AttributeNames=["All"], VisibilityTimeout=0
        ).get("Messages", [])
        return messages

    def deliver_next(self) -> dict[str, Any] | None:
        """Deliver the next SyncQueue record to the sync function, as the event source mapping would:
        deleted on success, visible again (redelivered) when reported as failed."""
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=1, AttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            return None
        msg = messages[0]
        try:
            result: dict[str, Any] = self.sync.lambda_handler(
                {"Records": [_record(msg, self.queue_url)]}, FakeLambdaContext()
            )
        except BatchProcessingError:
            # Every record failed: Powertools fails the invocation, and SQS redelivers the batch.
            result = {"batchItemFailures": [{"itemIdentifier": msg["MessageId"]}]}
        if result["batchItemFailures"]:
            self.sqs.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=msg["ReceiptHandle"], VisibilityTimeout=0
            )
        else:
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=msg["ReceiptHandle"])
        return result

    def drain(self, *, max_records: int = 200) -> list[dict[str, Any]]:
        """Deliver records until the queue is empty; returns the function's results."""
        results: list[dict[str, Any]] = []
        for _ in range(max_records):
            result = self.deliver_next()
            if result is None:
                return results
            results.append(result)
        raise AssertionError("the sync queue did not drain")

    def deliver_raw(self, body: dict[str, Any]) -> dict[str, Any]:
        """Invoke the sync function with one hand-made record (a duplicate delivery, say)."""
        msg = {
            "MessageId": "dup-1",
            "ReceiptHandle": "rh",
            "Body": json.dumps(body),
            "MD5OfBody": "x",
            "Attributes": {
                "ApproximateReceiveCount": "2",
                "SentTimestamp": "1",
                "MessageGroupId": "g",
                "SenderId": "x",
                "ApproximateFirstReceiveTimestamp": "1",
                "SequenceNumber": "1",
                "MessageDeduplicationId": "d",
            },
        }
        return self.sync.lambda_handler({"Records": [_record(msg, self.queue_url)]}, FakeLambdaContext())  # type: ignore[no-any-return]

    def _items(self, prefix: str) -> list[dict[str, Any]]:
        table: Any = self.stack.table("EmailsTable")
        items: list[dict[str, Any]] = table.query(
            KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
            ExpressionAttributeValues={":p": f"TENANT#{TENANT}", ":s": prefix},
        )["Items"]
        return items

    def emails(self) -> list[dict[str, Any]]:
        return self._items("EMAIL#")

    def locations(self) -> list[dict[str, Any]]:
        return self._items(f"LOC#{self.account_id}#")


def without_ages(state: dict[str, Any]) -> dict[str, Any]:
    """An account status without the figures that grow with the clock (each folder's cursor age
    and time since the last push), to compare two statuses taken apart in time."""
    ages = ("cursor_age_seconds", "since_last_push_seconds")
    return state | {"folders": [{k: v for k, v in f.items() if k not in ages} for f in state["folders"]]}


def _record(msg: dict[str, Any], queue_url: str) -> dict[str, Any]:
    name = queue_url.rsplit("/", 1)[-1]
    return {
        "messageId": msg["MessageId"],
        "receiptHandle": msg["ReceiptHandle"],
        "body": msg["Body"],
        "attributes": msg.get("Attributes", {}),
        "messageAttributes": {},
        "md5OfBody": msg.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{name}",
        "awsRegion": "us-east-1",
    }
