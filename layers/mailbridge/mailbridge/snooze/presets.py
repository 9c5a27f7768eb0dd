"""Snooze presets resolved in the user's time zone (wall-clock times, so DST changes are honoured).

The presets follow Gmail's snooze menu ("Later today", "Tomorrow", "This weekend"/"Next week",
Gmail Help "Snooze emails until later"), with fixed local times:

- `later_today`: today at 18:00 local; from 17:00 on (less than an hour left), three hours from
  now rounded up to the full local hour (which may be tomorrow).
- `tomorrow`: tomorrow at 08:00 local.
- `next_week`: the next Monday at 08:00 local (a week ahead when today is Monday).
- `someday`: 08:00 local, 90 days from today.

A wall-clock time that does not exist (skipped by a DST change) moves forward by the gap; one that
exists twice (a DST fall-back) is the first of the two (`fold=0`, PEP 495). "Three hours ahead"
counts elapsed time and rounds up to the next instant whose local minute is 0.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailbridge.errors import Invalid

Preset = Literal["later_today", "tomorrow", "next_week", "someday"]

EVENING = time(18)
MORNING = time(8)
LATER_TODAY_MIN_AHEAD = timedelta(hours=1)
LATER_TODAY_STEP = timedelta(hours=3)
SOMEDAY_DAYS = 90


def zone(name: str) -> ZoneInfo:
    """An IANA time zone by name; 400 `invalid_time_zone` when the name is not one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise Invalid("time_zone is not an IANA time zone name", code="invalid_time_zone") from exc


def _at(day: date, clock: time, tz: ZoneInfo) -> datetime:
    """`clock` on `day` in `tz`, as UTC; a skipped wall time comes out shifted by the gap."""
    local = datetime.combine(day, clock, tzinfo=tz)
    # The round trip through UTC normalizes a nonexistent local time (zoneinfo keeps it as given).
    return local.astimezone(UTC)


def resolve(preset: Preset, now: datetime, tz: ZoneInfo) -> datetime:
    """The UTC instant `preset` names at `now` (timezone-aware) for a user in `tz`."""
    local = now.astimezone(tz)
    today = local.date()
    if preset == "later_today":
        evening = _at(today, EVENING, tz)
        if evening - now >= LATER_TODAY_MIN_AHEAD:
            return evening
        later = (now + LATER_TODAY_STEP).astimezone(UTC)
        # The next instant whose local minute is 0, counted in elapsed time: a repeated or
        # skipped wall hour (DST) neither adds nor removes an hour.
        past_hour = timedelta(
            minutes=later.astimezone(tz).minute, seconds=later.second, microseconds=later.microsecond
        )
        return later if not past_hour else later - past_hour + timedelta(hours=1)
    if preset == "tomorrow":
        return _at(today + timedelta(days=1), MORNING, tz)
    if preset == "next_week":
        return _at(today + timedelta(days=7 - today.weekday()), MORNING, tz)
    return _at(today + timedelta(days=SOMEDAY_DAYS), MORNING, tz)
