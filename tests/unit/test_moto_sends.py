"""tests/fixtures/moto_sends.py: a send to a queue no longer counts the queue's messages, and
sends, deduplication, validation and GetQueueAttributes answer as moto does without the patch."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from tests.fixtures import moto_sends


@pytest.fixture
def sqs() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")


def _scenario(sqs: Any) -> dict[str, Any]:
    """Sends to a FIFO queue with content deduplication and one without, and what they leave."""
    content = sqs.create_queue(
        QueueName="content.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    )["QueueUrl"]
    plain = sqs.create_queue(QueueName="plain.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    entries = [
        {"Id": str(n), "MessageBody": f"sync {n % 3}", "MessageGroupId": f"g{n % 2}"} for n in range(6)
    ]
    sent = sqs.send_message_batch(QueueUrl=content, Entries=entries)
    again = sqs.send_message(QueueUrl=content, MessageBody="sync 1", MessageGroupId="g1")
    with pytest.raises(ClientError) as refused:  # no deduplication id, no content deduplication
        sqs.send_message(QueueUrl=plain, MessageBody="x", MessageGroupId="g")
    received = sqs.receive_message(QueueUrl=content, MaxNumberOfMessages=10)["Messages"]
    counts = sqs.get_queue_attributes(QueueUrl=content, AttributeNames=["All"])["Attributes"]
    return {
        "sent": len(sent["Successful"]),
        "duplicate_id": again["MessageId"] in {s["MessageId"] for s in sent["Successful"]},
        "refused": refused.value.response["Error"]["Code"],
        "received": sorted(m["Body"] for m in received),
        "visible": counts["ApproximateNumberOfMessages"],
        "in_flight": counts["ApproximateNumberOfMessagesNotVisible"],
    }


def test_sends_answer_as_moto_does_without_the_patch(sqs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given moto's own outcome: six entries, three bodies (content deduplication keeps three)
    expected = _scenario(sqs)
    assert expected["received"] == ["sync 0", "sync 1", "sync 2"][: len(expected["received"])]
    assert (
        expected["visible"] + expected["in_flight"] == "3"
        or int(expected["visible"]) + int(expected["in_flight"]) == 3
    )
    for queue in ("content.fifo", "plain.fifo"):
        sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=queue)["QueueUrl"])
    # When the same happens with the patch installed, Then the outcome is the same, counts included
    moto_sends.install(partial(monkeypatch.setattr, raising=False))
    assert _scenario(sqs) == expected


def listings_with_the_patch(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Install the patch; the names of the queues whose messages are listed from then on."""
    from moto.sqs.models import Queue

    moto_sends.install(partial(monkeypatch.setattr, raising=False))
    passes: list[str] = []
    listing: Any = Queue.messages

    def messages(queue: Any) -> Any:
        passes.append(queue.name)
        return listing.fget(queue)

    monkeypatch.setattr(Queue, "messages", property(messages))
    return passes


def test_a_send_does_not_count_the_queue(sqs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    passes = listings_with_the_patch(monkeypatch)
    url = sqs.create_queue(QueueName="depth.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    # When ten records are sent
    sqs.send_message_batch(
        QueueUrl=url,
        Entries=[
            {"Id": str(n), "MessageBody": "b", "MessageGroupId": f"g{n}", "MessageDeduplicationId": f"d{n}"}
            for n in range(10)
        ],
    )
    # Then no send listed the queue's messages; GetQueueAttributes still counts them
    assert passes == []
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert counts["Attributes"]["ApproximateNumberOfMessages"] == "10"
    assert passes
    assert set(passes) == {"depth.fifo"}


def test_a_rule_delivering_to_a_fifo_queue_does_not_count_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """EventBridge's delivery reads `ContentBasedDeduplication` (moto's get_queue_attributes) before
    it sends to a FIFO target: with the patch it lists no messages, and still delivers."""
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        events = boto3.client("events", region_name="us-east-1")
        url = sqs.create_queue(
            QueueName="rule.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"}
        )["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="r", EventPattern='{"source": ["mailbridge"]}')
        events.put_targets(
            Rule="r", Targets=[{"Id": "q", "Arn": arn, "SqsParameters": {"MessageGroupId": "g"}}]
        )
        passes = listings_with_the_patch(monkeypatch)
        # When two events match the rule
        events.put_events(
            Entries=[
                {"Source": "mailbridge", "DetailType": "email.received", "Detail": f'{{"n": {n}}}'}
                for n in range(2)
            ]
        )
        # Then the deliveries listed no messages, and both arrived
        assert passes == []
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        assert sorted(m["Body"].count('"n"') for m in received) == [1, 1]
