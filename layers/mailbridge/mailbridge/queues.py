"""Sending to the SyncQueue (FIFO): one message group per account keeps an account's work in order."""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel

from mailbridge import aws
from mailbridge.errors import QueueSendError
from mailbridge.sync.messages import (
    ImportContacts,
    PollAll,
    PurgeAccount,
    PushCalendar,
    PushFlags,
    Reconcile,
    RenewWatches,
    SyncCalendar,
    SyncRequest,
)

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

    from mailbridge.crm.sync.models import ContactSync as CrmSyncMessage

POLL_GROUP = "poll"


def _group(message: BaseModel) -> str:
    if isinstance(message, SyncRequest | PushFlags | PurgeAccount | PushCalendar):
        return f"{message.tenant_id}:{message.account_id}"
    if (
        isinstance(message, RenewWatches | ImportContacts | Reconcile | SyncCalendar)
        and message.tenant_id
        and message.account_id
    ):
        return f"{message.tenant_id}:{message.account_id}"
    return POLL_GROUP


SyncMessage = (
    SyncRequest
    | PollAll
    | PushFlags
    | PurgeAccount
    | RenewWatches
    | ImportContacts
    | SyncCalendar
    | PushCalendar
    | Reconcile
)


class SyncQueue:
    def __init__(self, queue_url: str, client: SQSClient | None = None) -> None:
        self.queue_url = queue_url
        self._client = client

    @property
    def client(self) -> SQSClient:
        if self._client is None:
            self._client = aws.sqs()
        return self._client

    def send(self, message: SyncMessage, dedupe_id: str | None = None) -> None:
        self.send_many([message], [dedupe_id] if dedupe_id else None)

    def send_many(
        self,
        messages: Sequence[SyncMessage],
        dedupe_ids: Sequence[str] | None = None,
    ) -> None:
        """Dedupe ids default to random (every send counts); pass stable ones to collapse repeats."""
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            entries: list[SendMessageBatchRequestEntryTypeDef] = [
                {
                    "Id": str(i),
                    "MessageBody": m.model_dump_json(),
                    "MessageGroupId": _group(m),
                    "MessageDeduplicationId": (dedupe_ids[start + i] if dedupe_ids else uuid.uuid4().hex),
                }
                for i, m in enumerate(chunk)
            ]
            response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            if response.get("Failed"):
                codes = sorted({f.get("Code", "?") for f in response["Failed"]})
                raise QueueSendError(f"{len(response['Failed'])} sync message(s) not queued: {codes}")

    def retry_later(self, receipt_handle: str, delay_seconds: float) -> None:
        """Hold a record back for `delay_seconds` (a provider's Retry-After) before SQS delivers
        it again. FIFO queues take no per-message DelaySeconds; a record held back also holds
        back its message group, so the account's later work waits behind it, in order."""
        self.client.change_message_visibility(
            QueueUrl=self.queue_url,
            ReceiptHandle=receipt_handle,
            VisibilityTimeout=min(max(1, math.ceil(delay_seconds)), 43_200),
        )


class StandardQueue:
    """A standard SQS queue that takes one JSON message per piece of work."""

    def __init__(self, queue_url: str, client: SQSClient | None = None) -> None:
        self.queue_url = queue_url
        self._client = client

    @property
    def client(self) -> SQSClient:
        if self._client is None:
            self._client = aws.sqs()
        return self._client

    def send(self, body: BaseModel) -> None:
        try:
            self.client.send_message(QueueUrl=self.queue_url, MessageBody=body.model_dump_json())
        except Exception as exc:  # botocore errors: the caller's request or record is retried
            raise QueueSendError("the work could not be queued") from exc

    def send_many(self, bodies: Sequence[BaseModel]) -> None:
        """One message per body, ten per SendMessageBatch call; QueueSendError when any is not queued."""
        for start in range(0, len(bodies), 10):
            entries: list[SendMessageBatchRequestEntryTypeDef] = [
                {"Id": str(i), "MessageBody": body.model_dump_json()}
                for i, body in enumerate(bodies[start : start + 10])
            ]
            try:
                response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except Exception as exc:  # botocore errors: the caller's record is retried
                raise QueueSendError("the work could not be queued") from exc
            if response.get("Failed"):
                raise QueueSendError(f"{len(response['Failed'])} message(s) not queued")

    def retry_later(self, receipt_handle: str, delay_seconds: int) -> None:
        """Hold a failed record back for `delay_seconds` before SQS redelivers it."""
        self.client.change_message_visibility(
            QueueUrl=self.queue_url,
            ReceiptHandle=receipt_handle,
            VisibilityTimeout=min(delay_seconds, 43_200),
        )


class OutboxQueue(StandardQueue):
    """The OutboxQueue: one message per outbound email; retries back off per attempt."""


class RemindersQueue(StandardQueue):
    """The RemindersQueue: the daily nudge run's per-tenant scans (`mailbridge.nudges.service.fan_out`)."""


class MatchQueue(StandardQueue):
    """The MatchQueue: matching work, and the continuations of backfills that spent their budget."""


class CrmActivityQueue(StandardQueue):
    """The CrmActivityQueue: `email.linked` announcements (from the bus) for CRM activity logging."""


class CrmSyncQueue(StandardQueue):
    """The CrmSyncQueue (FIFO): one message group per CRM integration, so two syncs of one
    integration never run at once; a run's message is deduplicated on its run id (5 minutes)."""

    def send_syncs(self, messages: Sequence[CrmSyncMessage]) -> None:
        for start in range(0, len(messages), 10):
            entries: list[SendMessageBatchRequestEntryTypeDef] = [
                {
                    "Id": str(i),
                    "MessageBody": message.model_dump_json(),
                    "MessageGroupId": message.integration_id or "fanout",
                    "MessageDeduplicationId": message.run_id or uuid.uuid4().hex,
                }
                for i, message in enumerate(messages[start : start + 10])
            ]
            try:
                response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except Exception as exc:  # botocore errors: the caller's request or record is retried
                raise QueueSendError("the work could not be queued") from exc
            if response.get("Failed"):
                raise QueueSendError(f"{len(response['Failed'])} message(s) not queued")
