"""Business-day arithmetic (mailbridge.nudges.business_days): weekends, holidays, time zones, DST."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from mailbridge.nudges.business_days import add_business_days

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
TOKYO = ZoneInfo("Asia/Tokyo")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_three_business_days_after_a_tuesday_is_the_friday_at_the_same_local_time() -> None:
    # Given Tuesday 2026-03-03 10:00 UTC (11:00 in Berlin)
    # When three business days are added in Berlin
    due = add_business_days(utc(2026, 3, 3, 10), 3, BERLIN)
    # Then it is Friday 11:00 Berlin
    assert due == utc(2026, 3, 6, 10)


def test_a_weekend_in_between_is_skipped() -> None:
    # Given Thursday 2026-03-05 09:00 UTC
    # When three business days are added
    due = add_business_days(utc(2026, 3, 5, 9), 3, BERLIN)
    # Then Saturday and Sunday do not count: Tuesday
    assert due == utc(2026, 3, 10, 9)


def test_a_start_on_the_weekend_counts_from_the_next_business_morning() -> None:
    # Given Saturday 2026-03-07 14:00 Berlin
    start = datetime(2026, 3, 7, 14, tzinfo=BERLIN)
    # When one business day is added
    due = add_business_days(start, 1, BERLIN)
    # Then all of Monday counts: Tuesday 00:00 Berlin
    assert due == datetime(2026, 3, 10, 0, tzinfo=BERLIN)


def test_zero_business_days_from_a_business_day_is_the_start() -> None:
    start = utc(2026, 3, 4, 12)
    assert add_business_days(start, 0, BERLIN) == start


def test_holidays_do_not_count() -> None:
    # Given Thursday 2026-04-02 10:00 Berlin, with Good Friday and Easter Monday as holidays
    start = datetime(2026, 4, 2, 10, tzinfo=BERLIN)
    holidays = {date(2026, 4, 3), date(2026, 4, 6)}
    # When two business days are added
    due = add_business_days(start, 2, BERLIN, holidays=holidays)
    # Then Friday, the weekend and Monday are skipped: Wednesday 10:00
    assert due == datetime(2026, 4, 8, 10, tzinfo=BERLIN)


def test_a_start_on_a_holiday_counts_from_the_next_business_morning() -> None:
    start = datetime(2026, 12, 25, 9, tzinfo=BERLIN)
    due = add_business_days(start, 1, BERLIN, holidays={date(2026, 12, 25)})
    # Friday 25th is off, the weekend too: Monday counts whole, due Tuesday 00:00
    assert due == datetime(2026, 12, 29, 0, tzinfo=BERLIN)


def test_the_working_week_is_the_tenants() -> None:
    # Given a Sunday-to-Thursday working week (ISO 7, 1-4) and Thursday 2026-03-05 10:00 UTC
    # When two business days are added
    due = add_business_days(utc(2026, 3, 5, 10), 2, BERLIN, working_days={7, 1, 2, 3, 4})
    # Then Friday and Saturday are off: Sunday counts, then Monday
    assert due == utc(2026, 3, 9, 10)


def test_the_local_date_decides_not_the_utc_date() -> None:
    # Given Friday 2026-03-06 20:00 UTC, which is already Saturday 05:00 in Tokyo
    start = utc(2026, 3, 6, 20)
    # When one business day is added in Tokyo
    due = add_business_days(start, 1, TOKYO)
    # Then the start is a weekend there: Monday counts whole, due Tuesday 00:00 Tokyo
    assert due == datetime(2026, 3, 10, 0, tzinfo=TOKYO)
    # And in Berlin the same instant is Friday 21:00: due Monday 21:00 Berlin
    assert add_business_days(start, 1, BERLIN) == datetime(2026, 3, 9, 21, tzinfo=BERLIN)


def test_spring_forward_keeps_the_local_hour() -> None:
    # Given Friday 2026-03-06 10:00 New York (EST, UTC-5); clocks go forward on Sunday 03-08
    start = datetime(2026, 3, 6, 10, tzinfo=NEW_YORK)
    assert start.astimezone(UTC) == utc(2026, 3, 6, 15)
    # When one business day is added
    due = add_business_days(start, 1, NEW_YORK)
    # Then it is Monday 10:00 EDT (UTC-4), 14:00 UTC: 71 elapsed hours, not 72
    assert due == utc(2026, 3, 9, 14)


def test_fall_back_keeps_the_local_hour() -> None:
    # Given Friday 2026-10-23 09:00 Berlin (CEST, UTC+2); clocks go back on Sunday 10-25
    start = datetime(2026, 10, 23, 9, tzinfo=BERLIN)
    # When one business day is added
    due = add_business_days(start, 1, BERLIN)
    # Then it is Monday 09:00 CET (UTC+1), 08:00 UTC
    assert due == utc(2026, 10, 26, 8)


def test_a_wall_time_skipped_by_dst_moves_forward_by_the_gap() -> None:
    # Given a Sunday-working tenant, Saturday 2026-03-07 02:30 New York; 02:30 on Sunday 03-08 does not exist
    start = datetime(2026, 3, 7, 2, 30, tzinfo=NEW_YORK)
    # When one business day is added with every day working
    due = add_business_days(start, 1, NEW_YORK, working_days=range(1, 8))
    # Then it is 03:30 EDT on Sunday (07:30 UTC)
    assert due == utc(2026, 3, 8, 7, 30)


def test_a_repeated_wall_time_is_the_first_of_the_two() -> None:
    # Given Saturday 2026-10-31 01:30 New York; on Sunday 11-01 01:30 happens twice (EDT, then EST)
    start = datetime(2026, 10, 31, 1, 30, tzinfo=NEW_YORK)
    due = add_business_days(start, 1, NEW_YORK, working_days=range(1, 8))
    # Then it is the first, 01:30 EDT = 05:30 UTC
    assert due == utc(2026, 11, 1, 5, 30)


@pytest.mark.parametrize(
    ("start", "n", "working_days"),
    [
        (datetime(2026, 3, 3, 10), 1, {1, 2, 3, 4, 5}),
        (utc(2026, 3, 3, 10), -1, {1, 2, 3, 4, 5}),
        (utc(2026, 3, 3, 10), 1, set()),
        (utc(2026, 3, 3, 10), 1, {0, 8}),
    ],
)
def test_impossible_questions_are_refused(start: datetime, n: int, working_days: set[int]) -> None:
    with pytest.raises(ValueError):
        add_business_days(start, n, BERLIN, working_days=working_days)
