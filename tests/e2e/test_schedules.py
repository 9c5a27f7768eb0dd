"""Scheduled rules and EventBridge Scheduler schedules fire on the runner clock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest

from local.clock import ManualClock
from local.runner import Runner
from tests.e2e.conftest import PROBE_TEMPLATE, ROOT, START, probe_items


@pytest.fixture(scope="module")
def runner() -> Iterator[Runner]:
    """A runner of its own, not the shared probe runner: the rate rule's first run counts from the
    runner's start, and the tests here read the clock from there."""
    with Runner(templates=[ROOT / "template.yaml", PROBE_TEMPLATE], port=0, clock=ManualClock(START)) as r:
        yield r


def _kinds(runner: Runner) -> list[str]:
    return sorted(str(i["body"].get("kind")) for i in probe_items(runner) if "kind" in i["body"])


def test_rate_rule_fires_when_the_clock_passes(runner: Runner) -> None:
    # Given the overlay's rate(5 minutes) rule, nothing has fired at start
    runner.drain()
    assert _kinds(runner) == []
    # When four minutes pass, then still nothing
    runner.advance(240)
    runner.drain()
    assert _kinds(runner) == []
    # When the fifth minute passes
    runner.advance(61)
    runner.drain()
    # Then one tick reached the probe through ProbeQueue
    assert _kinds(runner) == ["tick"]


def test_scheduler_at_schedule_fires_once_and_a_deleted_one_never(runner: Runner) -> None:
    # Given two one-time schedules ten minutes ahead; one of them is deleted again
    scheduler = runner.boto3_client("scheduler")
    queue_arn = runner.boto3_client("sqs").get_queue_attributes(
        QueueUrl=runner.queue_url("ProbeQueue"), AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    when = (runner.clock.now() + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S")
    for name, kind in (("wake-up", "at"), ("cancelled", "cancelled")):
        scheduler.create_schedule(
            Name=name,
            ScheduleExpression=f"at({when})",
            ScheduleExpressionTimezone="UTC",
            FlexibleTimeWindow={"Mode": "OFF"},
            ActionAfterCompletion="DELETE",
            Target={
                "Arn": queue_arn,
                "RoleArn": "arn:aws:iam::123456789012:role/local",
                "Input": json.dumps({"kind": kind}),
            },
        )
    scheduler.delete_schedule(Name="cancelled")
    already = _kinds(runner)

    # When nine minutes pass, then nothing new
    runner.advance(540)
    runner.drain()
    assert [k for k in _kinds(runner) if k in ("at", "cancelled")] == []

    # When the schedule's time passes
    runner.advance(61)
    runner.drain()

    # Then the kept schedule fired once, the deleted one never, and the fired one deleted itself
    new = _kinds(runner)
    assert [k for k in new if k in ("at", "cancelled")] == ["at"]
    assert len(new) >= len(already)
    with pytest.raises(scheduler.exceptions.ResourceNotFoundException):
        scheduler.get_schedule(Name="wake-up")
    runner.advance(3600)
    runner.drain()
    assert [k for k in _kinds(runner) if k in ("at", "cancelled")] == ["at"]
