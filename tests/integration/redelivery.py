"""At-least-once delivery, three times: one SQS record handed to its consumer as the event source
mapping hands a record back (same messageId and body, `ApproximateReceiveCount` 1, 2, 3), and
what the stack holds after each delivery, comparable.

    stack_before = snapshot(stack, bus)
    deliveries = three_deliveries(handler, event, lambda: (snapshot(stack, bus), receiver.count))
    assert deliveries.once != deliveries.before      # the first delivery acted
    assert deliveries.thrice == deliveries.once      # the other two changed and sent nothing

Used by test_queue_redelivery.py (the samples on a fresh stack) and by each seeded consumer's
own module (tasks, reminders, notifier, automations, crm_activity, crmsync).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import boto3

from tests.events import load_event
from tests.fixtures.aws import BusReader, Stack


def snapshot(stack: Stack, bus: BusReader, tables: Sequence[str] | None = None) -> dict[str, Any]:
    """Everything a consumer can change, comparable: items per table (without the api entry's
    rate counters), object keys per bucket, visible+delayed messages per queue, events put.
    `tables`: only these tables (logical ids), for a consumer known to write no others."""
    dynamodb: Any = boto3.resource("dynamodb")
    items_of: dict[str, list[str]] = {}
    for logical_id, name in stack.deployed.tables.items():
        if tables is not None and logical_id not in tables:
            continue
        table = dynamodb.Table(name)
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {}
        while True:
            page: dict[str, Any] = table.scan(**kwargs)
            items.extend(page["Items"])
            if "LastEvaluatedKey" not in page:
                break
            kwargs = {"ExclusiveStartKey": page["LastEvaluatedKey"]}
        kept = [i for i in items if not str(i.get("sk", "")).startswith("RATE#")]
        items_of[logical_id] = sorted(json.dumps(i, sort_keys=True, default=str) for i in kept)
    s3 = boto3.client("s3")
    buckets = {
        name: sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))
        for name, bucket in stack.deployed.buckets.items()
    }
    sqs = boto3.client("sqs")
    queues = {}
    for name, url in stack.deployed.queue_urls.items():
        attrs = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"]
        )["Attributes"]
        queues[name] = int(attrs["ApproximateNumberOfMessages"]) + int(
            attrs.get("ApproximateNumberOfMessagesDelayed", 0)
        )
    events = sorted(json.dumps(e["detail"], sort_keys=True) for e in bus())
    return {"tables": items_of, "buckets": buckets, "queues": queues, "events": events}


def bus_seen(bus_probe: BusReader) -> BusReader:
    """Every event put on the bus since this was made (the probe's reads drain its queue)."""
    seen: list[dict[str, Any]] = []

    def read() -> list[dict[str, Any]]:
        seen.extend(bus_probe())
        return list(seen)

    return read


def sample_record(sample: str, body: Any, index: int = 0) -> dict[str, Any]:
    """An SQS event of one record: record `index` of events/sqs/<sample>.json with `body` (a model
    or a dict, sent as its JSON) in place of the sample's."""
    record = load_event(f"sqs/{sample}.json")["Records"][index]
    if hasattr(body, "model_dump_json"):
        record["body"] = body.model_dump_json(by_alias=True)
    else:
        record["body"] = body if isinstance(body, str) else json.dumps(body)
    return {"Records": [record]}


def redelivered(event: dict[str, Any], receive_count: int) -> dict[str, Any]:
    """`event` as SQS hands it back for the `receive_count`th time: the same records (messageId,
    body) with their `ApproximateReceiveCount` at that count."""
    again = copy.deepcopy(event)
    for record in again["Records"]:
        record.setdefault("attributes", {})["ApproximateReceiveCount"] = str(receive_count)
    return again


@dataclass
class Deliveries:
    """What `observe` saw before the first delivery, after it, and after the third; the handler's
    answers in order."""

    before: Any
    once: Any
    thrice: Any
    results: list[dict[str, Any]]


def three_deliveries(
    handler: Callable[[dict[str, Any]], dict[str, Any]],
    event: dict[str, Any],
    observe: Callable[[], Any],
    before: Any = None,
) -> Deliveries:
    """Deliver `event` once, then twice more (a lost acknowledgement, a visibility timeout).
    `before`: what `observe` saw last, when nothing changed since (saves a snapshot)."""
    before = observe() if before is None else before
    results = [handler(redelivered(event, 1))]
    once = observe()
    results += [handler(redelivered(event, n)) for n in (2, 3)]
    thrice = observe()
    return Deliveries(before, once, thrice, results)
