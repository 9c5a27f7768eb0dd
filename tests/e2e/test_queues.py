"""Bus events reach queues through the template's rules; queue records retry on the runner clock."""

from __future__ import annotations

import json

from local.runner import Runner
from tests.e2e.conftest import probe_items


def test_bus_event_is_routed_by_the_template_rule_to_the_probe(runner: Runner) -> None:
    # Given
    events = runner.boto3_client("events")
    # When a domain event is published on the template's bus
    events.put_events(
        Entries=[
            {
                "EventBusName": runner.physical_name("EventBus"),
                "Source": "mailbridge",
                "DetailType": "probe.ping",
                "Detail": json.dumps({"tenant_id": "acme", "id": "ping-1"}),
            }
        ]
    )
    runner.drain()
    # Then the probe received it through ProbeQueue as an SQS record
    pings = [i for i in probe_items(runner) if i["body"].get("detail-type") == "probe.ping"]
    assert len(pings) == 1
    assert pings[0]["body"]["detail"]["id"] == "ping-1"
    record = pings[0]["record"]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"].endswith(":" + runner.queue_url("ProbeQueue").rsplit("/", 1)[1])
    assert record["attributes"]["ApproximateReceiveCount"] == "1"


def test_failed_record_retries_after_visibility_timeout_then_goes_to_the_dlq(runner: Runner) -> None:
    # Given a batch with three good records and one that always fails
    sqs = runner.boto3_client("sqs")
    queue = runner.queue_url("ProbeQueue")
    entries = [{"Id": str(n), "MessageBody": json.dumps({"batch": "retry", "n": n})} for n in range(3)]
    entries.append({"Id": "bad", "MessageBody": json.dumps({"batch": "retry", "fail": True})})
    sqs.send_message_batch(QueueUrl=queue, Entries=entries)

    # When the batch is processed
    runner.drain()
    # Then the good records are done and the bad one waits for its visibility timeout
    mine = [i for i in probe_items(runner) if i["body"].get("batch") == "retry"]
    assert sorted(i["outcome"] for i in mine) == ["fail", "ok", "ok", "ok"]

    # When less than the visibility timeout (60 s) passes, nothing is redelivered
    runner.advance(59)
    runner.drain()
    assert len([i for i in probe_items(runner) if i["body"].get("batch") == "retry"]) == 4

    # When the visibility timeout passes, the bad record is retried once more (maxReceiveCount 2)
    runner.advance(2)
    runner.drain()
    runner.advance(61)
    runner.drain()

    # Then the good records were processed exactly once, the bad one twice, and it is in the DLQ
    mine = [i for i in probe_items(runner) if i["body"].get("batch") == "retry"]
    good = [i for i in mine if i["outcome"] == "ok"]
    bad = [i for i in mine if i["outcome"] == "fail"]
    assert len(good) == 3
    assert len({i["message_id"] for i in good}) == 3
    assert sorted(i["receive_count"] for i in bad) == [1, 2]
    dlq = sqs.receive_message(QueueUrl=runner.queue_url("ProbeDeadLetterQueue"), MaxNumberOfMessages=10)
    bodies = [json.loads(m["Body"]) for m in dlq.get("Messages", [])]
    assert bodies == [{"batch": "retry", "fail": True}]
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
