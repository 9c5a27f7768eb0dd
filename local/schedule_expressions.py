"""EventBridge / Scheduler schedule expressions: `rate(...)`, `cron(...)` and `at(...)`."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_CRON = re.compile(r"^cron\((.+)\)$")
_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


class ScheduleExpressionError(ValueError):
    """The expression is not one EventBridge accepts (or uses a feature the runner lacks)."""


def rate_seconds(expression: str) -> int:
    match = _RATE.fullmatch(expression.strip())
    if not match:
        raise ScheduleExpressionError(f"not a rate expression: {expression!r}")
    value, unit = int(match.group(1)), match.group(2).rstrip("s")
    if value <= 0:
        raise ScheduleExpressionError(f"rate must be positive: {expression!r}")
    if (value == 1) != (match.group(2) == unit):
        raise ScheduleExpressionError(f"use '1 {unit}' / 'N {unit}s': {expression!r}")
    return value * _UNIT_SECONDS[unit]


def _shift_day_of_week(field: str) -> str:
    """EventBridge numbers days 1-7 = SUN-SAT; croniter 0-6 = SUN-SAT. Names pass through."""

    def shift(match: re.Match[str]) -> str:
        number = int(match.group(0))
        if not 1 <= number <= 7:
            raise ScheduleExpressionError(f"day-of-week {number} is outside 1-7")
        return str(number - 1)

    if "#" in field:
        day, nth = field.split("#", 1)
        return re.sub(r"\d+", shift, day) + "#" + nth
    return re.sub(r"(?<![/#])\b\d+\b", shift, field)


def eventbridge_cron_to_croniter(expression: str) -> str:
    """`cron(m h dom mon dow year)` -> croniter's 7-field form `m h dom mon dow second year`."""
    match = _CRON.fullmatch(expression.strip())
    if not match:
        raise ScheduleExpressionError(f"not a cron expression: {expression!r}")
    fields = match.group(1).split()
    if len(fields) != 6:
        raise ScheduleExpressionError(f"EventBridge cron needs 6 fields, got {len(fields)}: {expression!r}")
    minute, hour, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        raise ScheduleExpressionError(
            f"exactly one of day-of-month and day-of-week must be '?': {expression!r}"
        )
    if "W" in dom.upper() and dom.upper() != "L":
        raise ScheduleExpressionError(
            f"the 'W' (nearest weekday) wildcard is not supported locally: {expression!r}"
        )
    dom = "*" if dom == "?" else dom
    dow = "*" if dow == "?" else _shift_day_of_week(dow.upper())
    return f"{minute} {hour} {dom} {month} {dow} 0 {year}"


def next_cron_time(expression: str, after: datetime, timezone: str = "UTC") -> datetime:
    """The first cron time strictly after `after` (evaluated in `timezone`, returned in `after`'s tz)."""
    local_after = after.astimezone(ZoneInfo(timezone))
    following = croniter(eventbridge_cron_to_croniter(expression), local_after).get_next(datetime)
    assert isinstance(following, datetime)
    return following.astimezone(after.tzinfo)


def at_time(expression: str, timezone: str = "UTC") -> datetime:
    match = _AT.fullmatch(expression.strip())
    if not match:
        raise ScheduleExpressionError(f"not an at() expression: {expression!r}")
    return datetime.fromisoformat(match.group(1)).replace(tzinfo=ZoneInfo(timezone))


def next_fire_time(expression: str, after: datetime, timezone: str = "UTC") -> datetime | None:
    """When a recurring/one-time expression fires next after `after` (None: never again)."""
    expression = expression.strip()
    if expression.startswith("rate("):
        return after + timedelta(seconds=rate_seconds(expression))
    if expression.startswith("cron("):
        return next_cron_time(expression, after, timezone)
    if expression.startswith("at("):
        when = at_time(expression, timezone)
        return when if when > after else None
    raise ScheduleExpressionError(f"unsupported schedule expression: {expression!r}")
