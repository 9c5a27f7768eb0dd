from __future__ import annotations

from datetime import UTC, datetime

import pytest

from local.schedule_expressions import (
    ScheduleExpressionError,
    at_time,
    eventbridge_cron_to_croniter,
    next_fire_time,
    rate_seconds,
)

JAN_1_2030 = datetime(2030, 1, 1, tzinfo=UTC)  # a Tuesday


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("cron(0 12 ? * 2-6 *)", "0 12 * * 1-5 0 *"),  # MON-FRI
        ("cron(0 8 ? * 1,7 *)", "0 8 * * 0,6 0 *"),  # SUN,SAT
        ("cron(0 8 ? * 6#3 *)", "0 8 * * 5#3 0 *"),  # third Friday
        ("cron(0/15 * ? * MON-FRI 2031)", "0/15 * * * MON-FRI 0 2031"),
        ("cron(0 8 L * ? *)", "0 8 L * * 0 *"),
    ],
)
def test_cron_conversion(expression: str, expected: str) -> None:
    assert eventbridge_cron_to_croniter(expression) == expected


def test_day_of_week_numbering_is_sunday_one() -> None:
    # cron(... ? * 2 *) is Monday in EventBridge; 2030-01-07 is the first Monday after Jan 1
    assert next_fire_time("cron(0 12 ? * 2 *)", JAN_1_2030) == datetime(2030, 1, 7, 12, tzinfo=UTC)
    assert next_fire_time("cron(0 12 ? * 1 *)", JAN_1_2030) == datetime(2030, 1, 6, 12, tzinfo=UTC)
    assert next_fire_time("cron(0 8 ? * 6#3 *)", JAN_1_2030) == datetime(2030, 1, 18, 8, tzinfo=UTC)


def test_year_and_timezone() -> None:
    assert next_fire_time("cron(0 9 1 1 ? 2032)", JAN_1_2030) == datetime(2032, 1, 1, 9, tzinfo=UTC)
    # 09:00 in Paris (UTC+1 in winter) is 08:00 UTC
    assert next_fire_time("cron(0 9 * * ? *)", JAN_1_2030, "Europe/Paris") == datetime(
        2030, 1, 1, 8, tzinfo=UTC
    )


@pytest.mark.parametrize(
    "bad", ["cron(0 12 * * * *)", "cron(0 12 ? * ? *)", "cron(0 12 * *)", "cron(0 8 15W * ? *)"]
)
def test_invalid_cron_is_rejected(bad: str) -> None:
    with pytest.raises(ScheduleExpressionError):
        eventbridge_cron_to_croniter(bad)


def test_rate_and_at() -> None:
    assert rate_seconds("rate(1 minute)") == 60
    assert rate_seconds("rate(5 minutes)") == 300
    assert rate_seconds("rate(2 days)") == 172800
    with pytest.raises(ScheduleExpressionError):
        rate_seconds("rate(1 minutes)")
    assert at_time("at(2030-01-01T10:00:00)", "Europe/Paris") == datetime(2030, 1, 1, 9, tzinfo=UTC)
    assert next_fire_time("at(2029-12-31T00:00:00)", JAN_1_2030) is None
