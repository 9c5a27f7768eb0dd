"""Cron triggers in EventBridge Scheduler's syntax, with a time zone: validate, compute fire times,
and produce what `CreateSchedule` takes.

Syntax (docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html#cron-based, the
Quartz-derived six fields): `cron(minutes hours day-of-month month day-of-week year)` or the
six fields alone.

| field | values | wildcards |
|---|---|---|
| minutes | 0-59 | `,` `-` `*` `/` |
| hours | 0-23 | `,` `-` `*` `/` |
| day-of-month | 1-31 | `,` `-` `*` `?` `/` `L` `W` |
| month | 1-12 or JAN-DEC | `,` `-` `*` `/` |
| day-of-week | 1-7 or SUN-SAT (1 = Sunday) | `,` `-` `*` `?` `L` `#` |
| year | 1970-2199 | `,` `-` `*` `/` |

Exactly one of day-of-month and day-of-week is `?`. `L` alone is the last day of the month
(day-of-month) or Saturday (day-of-week, as in Quartz); `LW` the month's last weekday; `15W`
the weekday nearest the 15th within the month (none if the month has no 15th); `6L` the last
Friday of the month; `6#3` its third Friday. Ranges go upwards (`MON-FRI`, not `FRI-MON`).

Time zones are IANA names (`Europe/Paris`); fire times are wall-clock times there. Daylight
saving follows the Scheduler's documented rule: a time the clocks skip in spring does not fire,
a time repeated in autumn fires once (at its first occurrence).

croniter (dev-only here) is not used: it has no `LW` nor `6L`, numbers days 0-6 and accepts
fields AWS refuses; the local runner's `local/schedule_expressions.py` translates to croniter
and refuses `W`. This module is the one the rule builder, the save path and (later) the runner
share. Errors: CronError `invalid_cron` (details: the field), `invalid_timezone`,
`cron_never_fires`.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from mailbridge.automations.errors import CronError

MAX_FIRE_TIMES = 100
YEARS = (1970, 2199)
_MONTH_NAMES = {
    name: number
    for number, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1
    )
}
_DAY_NAMES = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
_FIELDS = ("minutes", "hours", "day-of-month", "month", "day-of-week", "year")
_WRAPPED = re.compile(r"^\s*cron\((.*)\)\s*$")
_ZONE = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}")


@dataclass(frozen=True, slots=True)
class DaySpec:
    """One of the day fields: a set of numbers, or one of the special forms."""

    kind: str  # "any" (?), "set", "last" (L), "last_weekday" (LW), "nearest_weekday" (nW),
    # "last_of_week" (nL), "nth_of_week" (n#k)
    values: frozenset[int] = frozenset()
    number: int = 0
    nth: int = 0


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A parsed expression; `expression` is its canonical `cron(...)` form."""

    expression: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    day_of_month: DaySpec
    months: tuple[int, ...]
    day_of_week: DaySpec
    years: tuple[int, ...]

    def days(self, year: int, month: int) -> list[int]:
        """The days of `month` that match, ascending."""
        length = calendar.monthrange(year, month)[1]
        spec = self.day_of_week if self.day_of_month.kind == "any" else self.day_of_month
        if spec is self.day_of_month:
            return _month_days(spec, year, month, length)
        return _week_days(spec, year, month, length)

    def fire_times(self, after: datetime, count: int, time_zone: str = "UTC") -> list[datetime]:
        """The next `count` (<= MAX_FIRE_TIMES) fire times strictly after `after`, in UTC."""
        if after.tzinfo is None:
            raise ValueError("after must be timezone-aware")
        zone = zone_info(time_zone)
        count = max(0, min(count, MAX_FIRE_TIMES))
        found: list[datetime] = []
        start = after.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0) + timedelta(minutes=1)
        for year in (y for y in self.years if y >= start.year):
            for month in (m for m in self.months if (year, m) >= (start.year, start.month)):
                for day in self.days(year, month):
                    today = date(year, month, day)
                    if today < start.date():
                        continue
                    for hour in self.hours:
                        for minute in self.minutes:
                            wall = datetime(year, month, day, hour, minute)  # noqa: DTZ001 (wall clock)
                            if wall < start:
                                continue
                            moment = wall.replace(tzinfo=zone).astimezone(UTC)
                            if moment.astimezone(zone).replace(tzinfo=None) != wall or moment <= after:
                                continue  # skipped by a spring-forward, or before `after`
                            found.append(moment)
                            if len(found) >= count:
                                return found
        return found


def zone_info(name: str) -> ZoneInfo:
    """The IANA time zone `name`; CronError `invalid_timezone` when unknown."""
    if not _ZONE.fullmatch(name or ""):
        raise CronError("unknown time zone", code="invalid_timezone")
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
        raise CronError("unknown time zone", code="invalid_timezone") from None


def parse_cron(expression: str) -> CronSchedule:
    """Parse and validate (CronError `invalid_cron` with `details["field"]`)."""
    wrapped = _WRAPPED.match(expression or "")
    fields = (wrapped.group(1) if wrapped else expression or "").split()
    if len(fields) != 6:
        raise CronError("a cron expression has six fields", details={"field": None})
    minute, hour, dom, month, dow, year = (f.upper() for f in fields)
    if (dom == "?") == (dow == "?"):
        raise CronError(
            "exactly one of day-of-month and day-of-week must be ?", details={"field": "day-of-month"}
        )
    return CronSchedule(
        expression=f"cron({' '.join(fields)})",
        minutes=_numbers(minute, 0, 59, "minutes"),
        hours=_numbers(hour, 0, 23, "hours"),
        day_of_month=_day_of_month(dom),
        months=_numbers(month, 1, 12, "month", _MONTH_NAMES),
        day_of_week=_day_of_week(dow),
        years=_numbers(year, *YEARS, "year"),
    )


def validate_trigger(expression: str, time_zone: str, *, now: datetime) -> CronSchedule:
    """What saving a cron trigger checks: syntax, zone, and that it fires again after `now`."""
    schedule = parse_cron(expression)
    zone_info(time_zone)
    if not schedule.fire_times(now, 1, time_zone):
        raise CronError("the expression never fires again", code="cron_never_fires")
    return schedule


def scheduler_arguments(expression: str, time_zone: str) -> dict[str, str]:
    """`ScheduleExpression` and `ScheduleExpressionTimezone` for Scheduler's CreateSchedule."""
    schedule = parse_cron(expression)
    zone_info(time_zone)
    return {"ScheduleExpression": schedule.expression, "ScheduleExpressionTimezone": time_zone}


# ------------------------------------------------------------------------------- fields


def _value(token: str, low: int, high: int, name: str, names: dict[str, int] | None) -> int:
    if names and token in names:
        return names[token]
    if not token.isascii() or not token.isdigit() or len(token) > 4:
        raise CronError(f"not a valid {name} value", details={"field": name})
    number = int(token)
    if not low <= number <= high:
        raise CronError(f"{name} values are {low}-{high}", details={"field": name})
    return number


def _numbers(
    field: str, low: int, high: int, name: str, names: dict[str, int] | None = None
) -> tuple[int, ...]:
    values: set[int] = set()
    for part in field.split(","):
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            step = _value(step_text, 1, high, name, None)
        if base == "*":
            first, last = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = _value(a, low, high, name, names), _value(b, low, high, name, names)
            if first > last:
                raise CronError(f"a {name} range goes upwards", details={"field": name})
        else:
            first = _value(base, low, high, name, names)
            last = high if step_text else first
        values.update(range(first, last + 1, step))
    return tuple(sorted(values))


def _day_of_month(field: str) -> DaySpec:
    if field == "?":
        return DaySpec("any")
    if field == "L":
        return DaySpec("last")
    if field == "LW":
        return DaySpec("last_weekday")
    if field.endswith("W"):
        return DaySpec("nearest_weekday", number=_value(field[:-1], 1, 31, "day-of-month", None))
    return DaySpec("set", values=frozenset(_numbers(field, 1, 31, "day-of-month")))


def _day_of_week(field: str) -> DaySpec:
    name = "day-of-week"
    if field == "?":
        return DaySpec("any")
    if field == "L":
        return DaySpec("set", values=frozenset({7}))
    if field.endswith("L"):
        return DaySpec("last_of_week", number=_value(field[:-1], 1, 7, name, _DAY_NAMES))
    if "#" in field:
        day, _, nth = field.partition("#")
        return DaySpec(
            "nth_of_week", number=_value(day, 1, 7, name, _DAY_NAMES), nth=_value(nth, 1, 5, name, None)
        )
    return DaySpec("set", values=frozenset(_numbers(field, 1, 7, name, _DAY_NAMES)))


def _aws_weekday(year: int, month: int, day: int) -> int:
    """1 = Sunday ... 7 = Saturday."""
    return (calendar.weekday(year, month, day) + 1) % 7 + 1


def _month_days(spec: DaySpec, year: int, month: int, length: int) -> list[int]:
    if spec.kind == "last":
        return [length]
    if spec.kind == "last_weekday":
        day = length
        while _aws_weekday(year, month, day) in (1, 7):
            day -= 1
        return [day]
    if spec.kind == "nearest_weekday":
        return _nearest_weekday(spec.number, year, month, length)
    return [d for d in sorted(spec.values) if d <= length]


def _nearest_weekday(day: int, year: int, month: int, length: int) -> list[int]:
    if day > length:
        return []
    weekday = _aws_weekday(year, month, day)
    if weekday == 7:  # Saturday: the Friday before, or the Monday after on the 1st
        return [day - 1] if day > 1 else [day + 2]
    if weekday == 1:  # Sunday: the Monday after, or the Friday before at the month's end
        return [day + 1] if day < length else [day - 2]
    return [day]


def _week_days(spec: DaySpec, year: int, month: int, length: int) -> list[int]:
    matching = [d for d in range(1, length + 1) if _aws_weekday(year, month, d) == spec.number]
    if spec.kind == "last_of_week":
        return matching[-1:]
    if spec.kind == "nth_of_week":
        return matching[spec.nth - 1 : spec.nth]
    return [d for d in range(1, length + 1) if _aws_weekday(year, month, d) in spec.values]
