"""Business-day arithmetic in a tenant's IANA time zone (zoneinfo, PEP 615).

`add_business_days(start, n, ...)` is the instant `n` business days after `start`: a business day
is a local date whose weekday is a working day (ISO 8601 weekday numbers, Monday = 1) and that is
not one of the tenant's holidays. The count keeps the local wall-clock time, so a DST change in
between moves the UTC offset, not the hour the user sees:

- a start on a business day: the same local time on the `n`-th business day after its date;
- a start on a non-business day (weekend, holiday): counted from 00:00 local of the next business
  day, so no hour of a weekend counts ("sent Saturday, 1 business day" is Tuesday 00:00, after
  all of Monday);
- a wall-clock time that does not exist that day (skipped by a DST change) moves forward by the
  gap; one that exists twice (DST fall-back) is the first of the two (`fold=0`, PEP 495).

Plain stdlib: `holidays`/`workalendar` compute national calendars (the tenant lists its own dates),
and numpy's `busday_offset` counts dates only, would add numpy to the layer and still leave the
time-zone and wall-clock part to us.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# ISO 8601 weekday numbers (date.isoweekday()): Monday = 1 ... Sunday = 7.
MONDAY_TO_FRIDAY: frozenset[int] = frozenset({1, 2, 3, 4, 5})


def is_business_day(day: date, working_days: Collection[int], holidays: Collection[date]) -> bool:
    return day.isoweekday() in working_days and day not in holidays


def add_business_days(
    start: datetime,
    n: int,
    tz: ZoneInfo,
    *,
    working_days: Collection[int] = MONDAY_TO_FRIDAY,
    holidays: Collection[date] = (),
) -> datetime:
    """The UTC instant `n` (>= 0) business days after `start` (timezone-aware), counted in `tz`.

    Raises ValueError when `start` is naive, `n` is negative, or `working_days` holds no ISO
    weekday (1-7): with at least one working weekday the walk ends, since holidays are finite.
    """
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    if n < 0:
        raise ValueError("n must not be negative")
    working = frozenset(working_days) & {1, 2, 3, 4, 5, 6, 7}
    if not working:
        raise ValueError("working_days must name at least one ISO weekday (1-7)")
    off = frozenset(holidays)
    local = start.astimezone(tz)
    day, clock = local.date(), local.time().replace(fold=0)
    if not is_business_day(day, working, off):
        day, clock = _next_business_day(day, working, off), time(0)
    for _ in range(n):
        day = _next_business_day(day, working, off)
    # The round trip through UTC normalizes a nonexistent local time (zoneinfo keeps it as given).
    return datetime.combine(day, clock, tzinfo=tz).astimezone(UTC)


def _next_business_day(day: date, working: frozenset[int], holidays: frozenset[date]) -> date:
    day += timedelta(days=1)
    while not is_business_day(day, working, holidays):
        day += timedelta(days=1)
    return day
