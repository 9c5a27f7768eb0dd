"""One EventBridge Scheduler schedule per cron rule, created, updated and deleted with the rule.

The schedule puts `{"kind": "cron", "tenant_id", "rule_id"}` on the AutomationsQueue at each
fire time of the rule's cron expression in its time zone (CreateSchedule / UpdateSchedule,
docs.aws.amazon.com/scheduler/latest/APIReference). Names are derived from the tenant and the
rule, so nothing needs to be looked up to change or remove one. Locally, the runner fires the
schedules moto stores (`local/pump.py`), so a cron rule fires when the runner's clock passes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from mailbridge.automations.cron import scheduler_arguments
from mailbridge.schedules import SchedulerTarget


def schedule_name(tenant_id: str, rule_id: str) -> str:
    """`au-{16 hex of the tenant}-{rule_id}`: within Scheduler's 64 characters."""
    return f"au-{hashlib.sha256(tenant_id.encode()).hexdigest()[:16]}-{rule_id}"


class CronScheduler(SchedulerTarget):
    """One schedule per cron rule (names from `schedule_name`)."""

    def put(self, tenant_id: str, rule_id: str, expression: str, time_zone: str, *, enabled: bool) -> str:
        """Create the rule's schedule, or update it when it exists; returns its name."""
        name = schedule_name(tenant_id, rule_id)
        args: dict[str, Any] = {
            "Name": name,
            "GroupName": self.group,
            **scheduler_arguments(expression, time_zone),
            "State": "ENABLED" if enabled else "DISABLED",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "Target": {
                "Arn": self.target_arn,
                "RoleArn": self.role_arn,
                "Input": json.dumps({"kind": "cron", "tenant_id": tenant_id, "rule_id": rule_id}),
                "RetryPolicy": {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 3600},
            },
        }
        try:
            self.client.create_schedule(**args)
        except Exception as exc:
            if getattr(exc, "response", {}).get("Error", {}).get("Code") != "ConflictException":
                raise
            self.client.update_schedule(**args)
        return name

    def delete(self, tenant_id: str, rule_id: str) -> bool:
        """False when there was no schedule."""
        try:
            self.client.delete_schedule(Name=schedule_name(tenant_id, rule_id), GroupName=self.group)
        except Exception as exc:
            if getattr(exc, "response", {}).get("Error", {}).get("Code") == "ResourceNotFoundException":
                return False
            raise
        return True
