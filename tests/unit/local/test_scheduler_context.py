"""The runner fills EventBridge Scheduler's context attributes into a schedule's input when it fires."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from local.pump import scheduler_context


def test_the_scheduled_time_is_filled_in_as_utc() -> None:
    # Given the NudgeSchedule's input and a due time given in UTC+2
    template_input = '{"kind": "nudge_scan", "scheduled_time": "<aws.scheduler.scheduled-time>"}'
    due = datetime(2030, 1, 3, 8, 30, tzinfo=timezone(timedelta(hours=2)))
    # When the runner delivers it
    delivered = json.loads(scheduler_context(template_input, due))
    # Then the attribute is the due time in UTC, as Scheduler writes it
    assert delivered == {"kind": "nudge_scan", "scheduled_time": "2030-01-03T06:30:00Z"}


def test_an_input_without_attributes_is_delivered_as_it_is() -> None:
    payload = '{"kind": "poll", "provider": "imap"}'
    assert scheduler_context(payload, datetime(2030, 1, 3, tzinfo=UTC)) == payload
