"""Times as RFC 5545 has them (section 3.3.4 DATE, 3.3.5 DATE-TIME) and IANA time zones.

An event time is one of three forms (RFC 5545 section 3.3.5):
- a DATE-TIME with a time zone: an aware `datetime` whose tzinfo is a `zoneinfo.ZoneInfo`
  (the IANA database; "UTC" for times written with a "Z");
- a floating DATE-TIME: a naive `datetime`, the same wall-clock time wherever it is read;
- a DATE (all-day): a `date`.

Instants (what ranges, ordering and index keys compare) are UTC; a floating time and a date
count as if they were UTC, and the stores widen their ranges by `FLOATING_MARGIN` for them.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Area/Location names (RFC 6557 section 2, the IANA database's naming rules), plus "UTC".
_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+-]{0,30}(?:/[A-Za-z0-9][A-Za-z0-9_+-]{0,30}){0,3}")
# The largest UTC offsets in use are -12:00 and +14:00.
FLOATING_MARGIN = timedelta(hours=14)
END_OF_TIME = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
START_OF_TIME = datetime(1, 1, 2, tzinfo=UTC)

DateOrTime = date | datetime


@lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    import zoneinfo

    return frozenset(zoneinfo.available_timezones())


def is_zone_name(name: str) -> bool:
    """True for a name of the IANA time zone database (e.g. `Europe/Berlin`, `UTC`)."""
    return bool(_ZONE_NAME.fullmatch(name)) and (name == "UTC" or name in _known_zones())


def zone(name: str) -> ZoneInfo:
    """The IANA zone `name`; ValueError (without echoing the name) when there is none."""
    if not is_zone_name(name):
        raise ValueError("not a time zone of the IANA database (such as Europe/Berlin or UTC)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("not a time zone of the IANA database (such as Europe/Berlin or UTC)") from None


def zone_name(value: datetime) -> str | None:
    """The IANA name of an aware datetime's zone (None when floating or not a ZoneInfo)."""
    tz = value.tzinfo
    if isinstance(tz, ZoneInfo):
        return tz.key
    if tz is not None and value.utcoffset() == timedelta(0) and tz.tzname(value) in {"UTC", "Z"}:
        return "UTC"
    return None


def is_datetime(value: DateOrTime) -> bool:
    return isinstance(value, datetime)


def instant(value: DateOrTime) -> datetime:
    """The UTC instant of a time; floating times and dates are read as UTC."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
    return datetime.combine(value, time(0), tzinfo=UTC)


def in_zone(value: DateOrTime, tz: ZoneInfo | None, *, all_day: bool) -> DateOrTime:
    """`value` in the form of an event whose start is in `tz` (None: floating) or all-day.

    All-day: a date (a date-time's own calendar day). Zoned: an aware time in `tz` (a
    floating value is read as a wall-clock time there). Floating: a naive wall-clock time (an
    aware value is read in UTC)."""
    if all_day:
        return value.date() if isinstance(value, datetime) else value
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(0))
    if tz is None:
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    if value.tzinfo is None:
        return value.replace(tzinfo=tz)
    return value.astimezone(tz)


def add_exact(value: datetime, delta: timedelta) -> datetime:
    """`value` + an exact duration (RFC 5545 section 3.3.6: the time part of a DURATION is exact):
    across a DST change the wall-clock time moves, the elapsed time does not."""
    if value.tzinfo is None:
        return value + delta
    return (value.astimezone(UTC) + delta).astimezone(value.tzinfo)


def order_key(value: DateOrTime) -> str:
    """A sortable key: the UTC instant as ISO 8601 (`datetime.isoformat`, like stored mail dates)."""
    return instant(value).isoformat()
