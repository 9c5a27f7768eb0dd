"""Move work along on the runner clock: SQS and DynamoDB stream event source mappings, scheduled
rules, Scheduler.

`Pump.tick()` does one pass and returns how much it did; `Pump.drain()` ticks until a pass does
nothing (nothing visible, nothing due). Messages are received with a long real visibility
timeout; a message that was not deleted becomes visible again once the runner clock passes
its queue's VisibilityTimeout (moto then moves it to the DLQ after maxReceiveCount).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from local.clock import Clock
from local.functions import FunctionPool
from local.schedule_expressions import ScheduleExpressionError, next_fire_time
from local.template import ACCOUNT_ID, REGION, ScheduledRule, Target

log = logging.getLogger(__name__)

REAL_VISIBILITY_SECONDS = 43200  # SQS maximum: the runner clock decides when it comes back
HIDDEN_RETRY_SECONDS = 60


@dataclass(frozen=True)
class QueueConsumer:
    """A queue pumped into a function: an SQS event source mapping or a hidden bus-rule queue."""

    function: str
    queue_url: str
    queue_arn: str
    visibility_timeout: int
    batch_size: int = 10
    report_batch_item_failures: bool = False
    raw_events: bool = False  # hidden queue: invoke with the EventBridge event itself, one by one
    input: str | None = None


@dataclass(frozen=True)
class StreamConsumer:
    """A DynamoDB stream pumped into a function (a SAM `DynamoDB` event)."""

    function: str
    stream_arn: str
    batch_size: int = 100
    report_batch_item_failures: bool = False
    starting_position: str = "TRIM_HORIZON"


STREAM_RETRY_SECONDS = 30  # runner clock; Lambda retries a failed stream batch at once, then backs off


def stream_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """One Lambda DynamoDB stream event record from a GetRecords record: the same fields, with
    `ApproximateCreationDateTime` as epoch seconds (as Lambda sends it) and the stream's ARN."""
    change = dict(record.get("dynamodb") or {})
    created = change.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        change["ApproximateCreationDateTime"] = created.timestamp()
    return {
        "eventID": record.get("eventID", ""),
        "eventName": record.get("eventName", ""),
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "dynamodb": change,
        "eventSourceARN": stream_arn,
    }


def sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """One Lambda SQS event record from a ReceiveMessage message, as AWS builds it."""
    attributes = message.get("Attributes") or {}
    wanted = (
        "ApproximateReceiveCount",
        "AWSTraceHeader",
        "SentTimestamp",
        "SequenceNumber",
        "MessageGroupId",
        "SenderId",
        "MessageDeduplicationId",
        "ApproximateFirstReceiveTimestamp",
    )
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": {k: str(attributes[k]) for k in wanted if k in attributes},
        "messageAttributes": {
            name: {
                **({"stringValue": value["StringValue"]} if "StringValue" in value else {}),
                **({"binaryValue": _b64(value["BinaryValue"])} if "BinaryValue" in value else {}),
                "stringListValues": value.get("StringListValues", []),
                "binaryListValues": [_b64(v) for v in value.get("BinaryListValues", [])],
                "dataType": value["DataType"],
            }
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    record.update(
        {
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": REGION,
        }
    )
    return record


def _b64(value: bytes | str) -> str:
    return base64.b64encode(value if isinstance(value, bytes) else value.encode()).decode()


def scheduled_event(rule_arn: str, when: datetime) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [rule_arn],
        "detail": {},
    }


@dataclass
class _ScheduleState:
    signature: tuple[Any, ...]
    next_at: datetime | None


@dataclass
class Pump:
    sqs: Any
    scheduler: Any
    functions: FunctionPool
    clock: Clock
    consumers: list[QueueConsumer]
    scheduled_rules: list[ScheduledRule]
    queue_url_by_arn: dict[str, str]
    fifo_content_dedup: dict[str, bool] = field(default_factory=dict)  # URL -> ContentBasedDeduplication
    streams: Any = None  # a dynamodbstreams client, when there are stream consumers
    stream_consumers: list[StreamConsumer] = field(default_factory=list)
    # (stream ARN, shard id) -> (the iterator to read from next, runner time it may be read)
    _shard_positions: dict[tuple[str, str], tuple[str, datetime]] = field(default_factory=dict)
    _in_flight: dict[tuple[str, str], datetime] = field(default_factory=dict)
    _rule_next: dict[str, datetime | None] = field(default_factory=dict)
    _schedules: dict[tuple[str, str], _ScheduleState] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        now = self.clock.now()
        for rule in self.scheduled_rules:
            self._rule_next[rule.name] = (
                self._next(rule.expression, now, rule.timezone) if rule.enabled else None
            )

    # ------------------------------------------------------------------------------ driving

    def tick(self) -> int:
        """One pass over everything; returns the number of things done."""
        with self._lock:
            done = self._release_due()
            done += self._fire_rules()
            done += self._fire_scheduler()
            for consumer in self.consumers:
                done += self._consume(consumer)
            for stream in self.stream_consumers:
                done += self._consume_stream(stream)
            return done

    def drain(self, timeout: float = 60.0) -> None:
        """Tick until quiescent: nothing visible, nothing due. Raises TimeoutError (real seconds)."""
        deadline = time.monotonic() + timeout
        while self.tick():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the runner did not settle within {timeout} s")

    # ----------------------------------------------------------------------------- queues

    def _release_due(self) -> int:
        now = self.clock.now()
        due = [key for key, visible_at in self._in_flight.items() if visible_at <= now]
        for url, receipt in due:
            del self._in_flight[url, receipt]
            try:
                self.sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=receipt, VisibilityTimeout=0)
            except ClientError as exc:  # deleted or moved meanwhile
                log.debug("could not release %s: %s", receipt[:12], exc)
        return len(due)

    def _receive(self, consumer: QueueConsumer) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while len(messages) < consumer.batch_size:
            got = self.sqs.receive_message(
                QueueUrl=consumer.queue_url,
                MaxNumberOfMessages=min(10, consumer.batch_size - len(messages)),
                VisibilityTimeout=REAL_VISIBILITY_SECONDS,
                WaitTimeSeconds=0,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not got:
                break
            messages.extend(got)
        return messages

    def _consume(self, consumer: QueueConsumer) -> int:
        messages = self._receive(consumer)
        if not messages:
            return 0
        if consumer.raw_events:
            for message in messages:
                event = json.loads(consumer.input) if consumer.input else json.loads(message["Body"])
                outcome = self.functions.invoke(consumer.function, event)
                self._settle(consumer, [message], failed_ids=set() if outcome.ok else {message["MessageId"]})
            return len(messages)
        records = [sqs_record(m, consumer.queue_arn) for m in messages]
        outcome = self.functions.invoke(consumer.function, {"Records": records})
        all_ids = {m["MessageId"] for m in messages}
        if not outcome.ok:
            log.warning(
                "%s failed on a batch of %d: %s: %s",
                consumer.function,
                len(messages),
                outcome.error_type,
                outcome.error_message,
            )
            failed = all_ids
        elif consumer.report_batch_item_failures and isinstance(outcome.result, dict):
            failed = self._reported_failures(outcome.result, all_ids)
        else:
            failed = set()
        self._settle(consumer, messages, failed)
        return len(messages)

    @staticmethod
    def _reported_failures(result: dict[str, Any], all_ids: set[str]) -> set[str]:
        items = result.get("batchItemFailures") or []
        failed = {str(item.get("itemIdentifier") or "") for item in items if isinstance(item, dict)}
        if len(failed) != len(items) or not failed <= all_ids:
            log.warning("invalid batchItemFailures %r: the whole batch is retried, as in AWS", items)
            return all_ids
        return failed

    def _settle(self, consumer: QueueConsumer, messages: list[dict[str, Any]], failed_ids: set[str]) -> None:
        retry_at = self.clock.now() + timedelta(seconds=consumer.visibility_timeout)
        done = [m for m in messages if m["MessageId"] not in failed_ids]
        for message in messages:
            if message["MessageId"] in failed_ids:
                self._in_flight[consumer.queue_url, message["ReceiptHandle"]] = retry_at
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self.sqs.delete_message_batch(
                QueueUrl=consumer.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )

    # ---------------------------------------------------------------------------- streams

    def _consume_stream(self, consumer: StreamConsumer) -> int:
        """One batch per shard: from where the last successful batch ended; a failed batch (or the
        reported first failed record) is read again once STREAM_RETRY_SECONDS passed on the clock."""
        description = self.streams.describe_stream(StreamArn=consumer.stream_arn)["StreamDescription"]
        done = 0
        now = self.clock.now()
        for shard in description.get("Shards", []):
            key = (consumer.stream_arn, shard["ShardId"])
            position = self._shard_positions.get(key)
            if position is None:
                iterator = self.streams.get_shard_iterator(
                    StreamArn=consumer.stream_arn,
                    ShardId=shard["ShardId"],
                    ShardIteratorType=consumer.starting_position,
                )["ShardIterator"]
                position = (iterator, now)
            iterator, ready_at = position
            if ready_at > now:
                continue
            got = self.streams.get_records(ShardIterator=iterator, Limit=consumer.batch_size)
            records = got.get("Records", [])
            following = got.get("NextShardIterator") or iterator
            if not records:
                self._shard_positions[key] = (following, now)
                continue
            event = {"Records": [stream_record(r, consumer.stream_arn) for r in records]}
            outcome = self.functions.invoke(consumer.function, event)
            failed = self._stream_failure(consumer, outcome, records)
            if failed is None:
                self._shard_positions[key] = (following, now)
            else:
                retry = self.streams.get_shard_iterator(
                    StreamArn=consumer.stream_arn,
                    ShardId=shard["ShardId"],
                    ShardIteratorType="AT_SEQUENCE_NUMBER",
                    SequenceNumber=failed,
                )["ShardIterator"]
                self._shard_positions[key] = (retry, now + timedelta(seconds=STREAM_RETRY_SECONDS))
            done += len(records)
        return done

    @staticmethod
    def _stream_failure(consumer: StreamConsumer, outcome: Any, records: list[dict[str, Any]]) -> str | None:
        """The sequence number to read again from (None: the batch is done)."""
        first = str(records[0]["dynamodb"]["SequenceNumber"])
        if not outcome.ok:
            log.warning("%s failed on a stream batch: %s", consumer.function, outcome.error_type)
            return first
        if not (consumer.report_batch_item_failures and isinstance(outcome.result, dict)):
            return None
        items = outcome.result.get("batchItemFailures") or []
        sequences = {str(r["dynamodb"]["SequenceNumber"]) for r in records}
        named = [str(i.get("itemIdentifier") or "") for i in items if isinstance(i, dict)]
        if not named:
            return None
        if not set(named) <= sequences:
            log.warning("invalid batchItemFailures %r: the whole batch is retried, as in AWS", items)
            return first
        return min(named, key=int)

    # -------------------------------------------------------------------------- schedules

    @staticmethod
    def _next(expression: str, after: datetime, timezone: str = "UTC") -> datetime | None:
        try:
            return next_fire_time(expression, after, timezone)
        except ScheduleExpressionError:
            log.exception("schedule %r ignored", expression)
            return None

    def _latest_due(
        self, expression: str, due: datetime, limit: datetime, timezone: str
    ) -> tuple[datetime, datetime | None]:
        """(the latest run at or before `limit`, from `due` on; the run after it). Several missed
        runs (a big clock jump) fire once, as the latest of them: EventBridge does not back-fill
        missed runs, the run that happens is the one due at or before now."""
        following = self._next(expression, due, timezone)
        while following is not None and following <= limit:
            due, following = following, self._next(expression, following, timezone)
        return due, following

    def _fire_rules(self) -> int:
        """Scheduled rules; several missed runs fire once, with the latest due time (`_latest_due`)."""
        now = self.clock.now()
        fired = 0
        for rule in self.scheduled_rules:
            due = self._rule_next.get(rule.name)
            if due is None or due > now:
                continue
            due, following = self._latest_due(rule.expression, due, now, rule.timezone)
            arn = f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{rule.name}"
            for target in rule.targets:
                payload = target.input if target.input is not None else json.dumps(scheduled_event(arn, due))
                self._deliver(target, payload, rule.name)
            self._rule_next[rule.name] = following
            fired += 1
        return fired

    def _fire_scheduler(self) -> int:
        now = self.clock.now()
        fired = 0
        seen: set[tuple[str, str]] = set()
        for summary in _all_schedules(self.scheduler):
            key = (summary.get("GroupName", "default"), summary["Name"])
            seen.add(key)
            if summary.get("State") == "DISABLED":
                continue
            schedule = self.scheduler.get_schedule(Name=key[1], GroupName=key[0])
            expression = schedule["ScheduleExpression"]
            timezone = schedule.get("ScheduleExpressionTimezone") or "UTC"
            signature = (expression, timezone, schedule.get("CreationDate"), schedule.get("StartDate"))
            state = self._schedules.get(key)
            if state is None or state.signature != signature:
                state = _ScheduleState(signature, self._first_run(schedule, now))
                self._schedules[key] = state
            if state.next_at is None or state.next_at > now:
                continue
            end = schedule.get("EndDate")
            if end is not None and state.next_at > _aware(end):
                state.next_at = None
                continue
            following: datetime | None = None
            if not expression.startswith("at("):
                limit = min(now, _aware(end)) if end is not None else now
                state.next_at, following = self._latest_due(expression, state.next_at, limit, timezone)
            target = schedule["Target"]
            self._deliver(
                Target(
                    arn=target["Arn"],
                    input=target.get("Input"),
                    message_group_id=(target.get("SqsParameters") or {}).get("MessageGroupId"),
                ),
                scheduler_context(target.get("Input") or "{}", state.next_at),
                f"schedule {key[0]}/{key[1]}",
            )
            fired += 1
            if expression.startswith("at("):
                state.next_at = None
                if schedule.get("ActionAfterCompletion") == "DELETE":
                    self.scheduler.delete_schedule(Name=key[1], GroupName=key[0])
                    del self._schedules[key]
            else:
                state.next_at = following
        for gone in set(self._schedules) - seen:
            del self._schedules[gone]
        return fired

    def _first_run(self, schedule: dict[str, Any], now: datetime) -> datetime | None:
        expression = schedule["ScheduleExpression"]
        timezone = schedule.get("ScheduleExpressionTimezone") or "UTC"
        if expression.startswith("at("):
            return self._next(expression, datetime.min.replace(tzinfo=now.tzinfo), timezone)
        start = schedule.get("StartDate")
        after = max(now, _aware(start)) if start is not None else now
        return self._next(expression, after, timezone)

    def _deliver(self, target: Target, payload: str, what: str) -> None:
        if target.arn.startswith("arn:aws:sqs:"):
            url = self.queue_url_by_arn.get(target.arn)
            if url is None:
                log.warning("%s targets unknown queue %s", what, target.arn)
                return
            args: dict[str, Any] = {"QueueUrl": url, "MessageBody": payload}
            if url.endswith(".fifo"):
                args["MessageGroupId"] = target.message_group_id or "default"
                if not self.fifo_content_dedup.get(url):
                    args["MessageDeduplicationId"] = uuid.uuid4().hex
            self.sqs.send_message(**args)
            return
        function = self.functions.logical_id_for_arn(target.arn)
        if function is None:
            log.warning("%s targets %s, which the local runner cannot deliver to", what, target.arn)
            return
        outcome = self.functions.invoke(function, json.loads(payload))
        if not outcome.ok:
            log.warning("%s: %s failed: %s: %s", what, function, outcome.error_type, outcome.error_message)


def scheduler_context(payload: str, scheduled: datetime) -> str:
    """The target input with EventBridge Scheduler's `<aws.scheduler.scheduled-time>` context
    attribute filled in (EventBridge Scheduler User Guide, "Adding context attributes"): the time
    the schedule was due, ISO 8601 in UTC, as Scheduler writes it."""
    when = scheduled.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return payload.replace("<aws.scheduler.scheduled-time>", when)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _all_schedules(scheduler: Any) -> list[dict[str, Any]]:
    schedules: list[dict[str, Any]] = []
    for page in scheduler.get_paginator("list_schedules").paginate():
        schedules.extend(page.get("Schedules", []))
    return schedules
