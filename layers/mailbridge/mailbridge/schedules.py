"""One-time EventBridge Scheduler schedules (scheduled send, later: snooze wake-ups, cron rules).

A schedule puts its input on a queue at `at(...)` and deletes itself afterwards. Names are
derived from the business id, so creating twice is a Conflict and cancelling needs no lookup.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mailbridge import aws
from mailbridge.errors import Conflict

if TYPE_CHECKING:
    from mypy_boto3_scheduler import EventBridgeSchedulerClient

CREATE_WORKERS = 8
"""Concurrent CreateSchedule calls of `create_many`. EventBridge Scheduler has no batch create;
its CreateSchedule quota is 50 requests a second per account and Region (EventBridge Scheduler
User Guide, "Quotas"), far above what 8 workers of one function reach."""


class SchedulerTarget:
    """EventBridge Scheduler schedules in `group` that put their input on `target_arn` (a queue),
    assuming `role_arn`; the client is made on first use (cold start)."""

    def __init__(
        self,
        target_arn: str,
        role_arn: str,
        group: str = "default",
        client: EventBridgeSchedulerClient | None = None,
    ) -> None:
        self.target_arn = target_arn
        self.role_arn = role_arn
        self.group = group
        self._client = client

    @property
    def client(self) -> EventBridgeSchedulerClient:
        if self._client is None:
            self._client = aws.scheduler()
        return self._client


class OneTimeScheduler(SchedulerTarget):
    """`at(...)` schedules that delete themselves once they fired."""

    def create(self, name: str, at: datetime, payload: dict[str, Any]) -> None:
        when = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        try:
            self.client.create_schedule(
                Name=name,
                GroupName=self.group,
                ScheduleExpression=f"at({when})",
                ScheduleExpressionTimezone="UTC",
                FlexibleTimeWindow={"Mode": "OFF"},
                ActionAfterCompletion="DELETE",
                Target={
                    "Arn": self.target_arn,
                    "RoleArn": self.role_arn,
                    "Input": json.dumps(payload),
                    "RetryPolicy": {"MaximumRetryAttempts": 10, "MaximumEventAgeInSeconds": 3600},
                },
            )
        except Exception as exc:
            if getattr(exc, "response", {}).get("Error", {}).get("Code") == "ConflictException":
                raise Conflict("a schedule with this name exists", code="already_scheduled") from exc
            raise

    def create_many(self, schedules: Sequence[tuple[str, datetime, dict[str, Any]]]) -> None:
        """`create` for each (name, at, payload), CREATE_WORKERS at a time (boto3 clients are
        thread-safe); a schedule that exists already (a replay: names are derived from the
        business id) is left as it is. Returns when all have finished; the first other failure
        is raised then."""
        if len(schedules) <= 1:
            for name, at, payload in schedules:
                with contextlib.suppress(Conflict):
                    self.create(name, at, payload)
            return
        _ = self.client  # made here, not raced for by the workers

        def one(schedule: tuple[str, datetime, dict[str, Any]]) -> None:
            with contextlib.suppress(Conflict):
                self.create(*schedule)

        with ThreadPoolExecutor(max_workers=CREATE_WORKERS, thread_name_prefix="schedule") as pool:
            futures = [pool.submit(one, schedule) for schedule in schedules]
        for future in futures:
            future.result()

    def delete(self, name: str) -> bool:
        """False when it was already gone (fired, or never created)."""
        try:
            self.client.delete_schedule(Name=name, GroupName=self.group)
        except Exception as exc:
            if getattr(exc, "response", {}).get("Error", {}).get("Code") == "ResourceNotFoundException":
                return False
            raise
        return True
