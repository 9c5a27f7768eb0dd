"""Scheduled rules and EventBridge Scheduler schedules fire on the runner clock."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta

import pytest

from local.clock import ManualClock
from local.runner import Runner
from tests.e2e.conftest import PROBE_TEMPLATE, ROOT, START, Reply, http, probe_items


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


# ------------------------------------------------- the runner's clock control (`make advance`)


def _post_advance(runner: Runner, body: bytes) -> Reply:
    request = urllib.request.Request(
        runner.url + "/_local/clock/advance",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return Reply(response.status, dict(response.headers.items()), response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, dict(error.headers.items()), error.read())


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"", "invalid_json"),
        (b"{seconds: 60}", "invalid_json"),
        (b"[60]", "invalid_seconds"),
        (b"{}", "invalid_seconds"),
        (b'{"seconds": "60"}', "invalid_seconds"),
        (b'{"seconds": true}', "invalid_seconds"),
        (b'{"seconds": 0}', "invalid_seconds"),
        (b'{"seconds": -60}', "invalid_seconds"),
        (b'{"seconds": 31622401}', "invalid_seconds"),
        (b'{"seconds": 1e400}', "invalid_seconds"),
        (b'{"seconds": NaN}', "invalid_seconds"),
    ],
)
def test_clock_advance_refuses_bad_input_with_a_code(runner: Runner, body: bytes, code: str) -> None:
    # Given the runner clock at some time
    before = runner.clock.now()
    # When the control is asked to move it with a bad body
    reply = _post_advance(runner, body)
    # Then a 400 with a machine-readable code, and the clock has not moved
    assert (reply.status, reply.json()["code"]) == (400, code)
    assert runner.clock.now() == before


def test_clock_advance_answers_only_post(runner: Runner) -> None:
    # When the advance path is read instead of posted to
    reply = http(runner, "GET", "/_local/clock/advance")
    # Then 405 with a code, naming the method to use
    assert (reply.status, reply.json()["code"], reply.headers.get("allow")) == (
        405,
        "method_not_allowed",
        "POST",
    )


def test_clock_advance_moves_the_runner_clock_and_answers_the_new_time(runner: Runner) -> None:
    # Given the runner clock at some time
    before = runner.clock.now()
    # When the control moves it forward by 90 s
    reply = _post_advance(runner, b'{"seconds": 90}')
    # Then it answers the new time, and the clock (as GET /_local/clock reads it) is there
    expected = (before + timedelta(seconds=90)).isoformat().replace("+00:00", "Z")
    assert (reply.status, reply.json()) == (200, {"now": expected})
    assert http(runner, "GET", "/_local/clock").json() == {"now": expected}
    assert runner.clock.now() == before + timedelta(seconds=90)


def test_a_schedule_due_in_the_span_the_control_skips_fires(runner: Runner) -> None:
    # Given a one-time schedule an hour ahead
    queue_arn = runner.boto3_client("sqs").get_queue_attributes(
        QueueUrl=runner.queue_url("ProbeQueue"), AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    when = (runner.clock.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    runner.boto3_client("scheduler").create_schedule(
        Name="skipped-over",
        ScheduleExpression=f"at({when})",
        ScheduleExpressionTimezone="UTC",
        FlexibleTimeWindow={"Mode": "OFF"},
        ActionAfterCompletion="DELETE",
        Target={
            "Arn": queue_arn,
            "RoleArn": "arn:aws:iam::123456789012:role/local",
            "Input": json.dumps({"kind": "skipped-over"}),
        },
    )
    runner.drain()
    assert "skipped-over" not in _kinds(runner)
    # When the control jumps a whole day, well past it
    assert _post_advance(runner, b'{"seconds": 86400}').status == 200
    runner.drain()
    # Then the schedule fired, once
    assert [k for k in _kinds(runner) if k == "skipped-over"] == ["skipped-over"]
