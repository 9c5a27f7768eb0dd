"""A recurring rule or schedule that missed several runs (the runner clock jumped) fires once, with
the latest due time: EventBridge does not back-fill missed runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import boto3
import pytest
from moto import mock_aws

from local.clock import ManualClock
from local.functions import FunctionPool
from local.pump import Pump
from local.template import ScheduledRule, Target

START = datetime(2030, 1, 3, 8, 0, tzinfo=UTC)


@pytest.fixture
def aws() -> Iterator[tuple[Any, Any, str, str]]:
    """SQS and Scheduler under moto, and one queue the schedules deliver to: (sqs, scheduler, url, arn)."""
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="probe")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        yield sqs, boto3.client("scheduler", region_name="us-east-1"), url, arn


def _pump(aws: tuple[Any, Any, str, str], clock: ManualClock, rules: list[ScheduledRule]) -> Pump:
    sqs, scheduler, url, arn = aws
    # No function targets here: every delivery goes to the queue.
    return Pump(sqs, scheduler, cast("FunctionPool", None), clock, [], rules, {arn: url})


def _bodies(sqs: Any, url: str) -> list[dict[str, Any]]:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_a_rule_that_missed_runs_fires_once_with_the_latest_due_time(
    aws: tuple[Any, Any, str, str],
) -> None:
    # Given a rate(5 minutes) rule on a runner started at 08:00 (first run due 08:05)
    sqs, _, url, arn = aws
    clock = ManualClock(START)
    pump = _pump(aws, clock, [ScheduledRule("Poll", "rate(5 minutes)", (Target(arn),))])
    # When the clock jumps to 08:17, past the 08:05, 08:10 and 08:15 runs
    clock.advance(17 * 60)
    pump.tick()
    # Then one scheduled event arrives, carrying 08:15, the run at or before now
    assert [b["time"] for b in _bodies(sqs, url)] == ["2030-01-03T08:15:00Z"]
    # And the next run is 08:20, not one of the missed ones
    clock.advance(2 * 60)
    pump.tick()
    assert _bodies(sqs, url) == []
    clock.advance(60)
    pump.tick()
    assert [b["time"] for b in _bodies(sqs, url)] == ["2030-01-03T08:20:00Z"]


def test_a_recurring_schedule_that_missed_runs_fires_once_with_the_latest_due_time(
    aws: tuple[Any, Any, str, str],
) -> None:
    # Given a Scheduler rate(1 hour) schedule whose input asks for the scheduled time
    sqs, scheduler, url, arn = aws
    clock = ManualClock(START)
    pump = _pump(aws, clock, [])
    scheduler.create_schedule(
        Name="hourly",
        ScheduleExpression="rate(1 hour)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={
            "Arn": arn,
            "RoleArn": "arn:aws:iam::123456789012:role/local",
            "Input": json.dumps({"scheduled_time": "<aws.scheduler.scheduled-time>"}),
        },
    )
    pump.tick()
    # When the clock jumps three and a half hours, past three runs
    clock.advance(int(timedelta(hours=3, minutes=30).total_seconds()))
    pump.tick()
    # Then it fires once, as the latest of them
    assert _bodies(sqs, url) == [{"scheduled_time": "2030-01-03T11:00:00Z"}]


def test_a_schedule_that_ended_fires_once_with_its_last_run_before_the_end(
    aws: tuple[Any, Any, str, str],
) -> None:
    # Given a rate(1 hour) schedule that ends at 10:30
    sqs, scheduler, url, arn = aws
    clock = ManualClock(START)
    pump = _pump(aws, clock, [])
    scheduler.create_schedule(
        Name="ending",
        ScheduleExpression="rate(1 hour)",
        EndDate=START + timedelta(hours=2, minutes=30),
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={
            "Arn": arn,
            "RoleArn": "arn:aws:iam::123456789012:role/local",
            "Input": json.dumps({"scheduled_time": "<aws.scheduler.scheduled-time>"}),
        },
    )
    pump.tick()
    # When the clock jumps to 13:00, past the end
    clock.advance(5 * 3600)
    pump.tick()
    pump.tick()
    # Then it fired once, with 10:00, its last run before the end, and not again
    assert _bodies(sqs, url) == [{"scheduled_time": "2030-01-03T10:00:00Z"}]
