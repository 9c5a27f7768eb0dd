"""The MatchQueue (standard): where a backfill that spent its budget queues its continuation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel

from mailbridge import aws
from mailbridge.errors import QueueSendError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


class MatchQueue:
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
        except Exception as exc:  # botocore errors: the record is retried, the work not lost
            raise QueueSendError("the continuation could not be queued") from exc
