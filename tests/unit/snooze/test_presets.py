"""Snooze presets resolve in the user's time zone, on wall-clock times across DST changes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailbridge.errors import Invalid
from mailbridge.snooze.presets import resolve, zone

BERLIN = zone("Europe/Berlin")  # CET/CEST: DST starts 2026-03-29, ends 2026-10-25
NEW_YORK = zone("America/New_York")  # EST/EDT: DST ends 2026-11-01
KOLKATA = zone("Asia/Kolkata")  # UTC+05:30, no DST


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.mark.parametrize(
    ("preset", "now", "tz", "expected"),
    [
        # tomorrow 08:00 local: on the night DST starts, 08:00 CEST is 06:00 UTC (07:00 the day before)
        ("tomorrow", "2026-03-28T20:00:00+01:00", BERLIN, "2026-03-29T06:00:00+00:00"),
        ("tomorrow", "2026-03-27T20:00:00+01:00", BERLIN, "2026-03-28T07:00:00+00:00"),
        # ... and on the night it ends in New York, 08:00 EST is 13:00 UTC
        ("tomorrow", "2026-10-31T22:00:00-04:00", NEW_YORK, "2026-11-01T13:00:00+00:00"),
        # late evening in UTC is already "tomorrow" in Kolkata: the local date decides
        ("tomorrow", "2026-06-10T20:00:00+00:00", KOLKATA, "2026-06-12T02:30:00+00:00"),
        # later_today: 18:00 local while at least an hour is left
        ("later_today", "2026-03-29T09:15:00+02:00", BERLIN, "2026-03-29T16:00:00+00:00"),
        ("later_today", "2026-06-10T16:59:00+05:30", KOLKATA, "2026-06-10T12:30:00+00:00"),
        # ... later, three hours ahead rounded up to the full local hour (in Kolkata, :30 UTC)
        ("later_today", "2026-06-10T17:10:00+05:30", KOLKATA, "2026-06-10T15:30:00+00:00"),
        ("later_today", "2026-03-28T23:30:00+01:00", BERLIN, "2026-03-29T02:00:00+00:00"),
        # next_week: the next Monday 08:00 local; a week ahead on a Monday; the day after on a Sunday
        ("next_week", "2026-03-25T12:00:00+01:00", BERLIN, "2026-03-30T06:00:00+00:00"),
        ("next_week", "2026-03-23T07:00:00+01:00", BERLIN, "2026-03-30T06:00:00+00:00"),
        ("next_week", "2026-10-25T12:00:00+01:00", BERLIN, "2026-10-26T07:00:00+00:00"),
        # someday: 08:00 local 90 days on, in winter time though it is summer now
        ("someday", "2026-09-01T12:00:00+02:00", BERLIN, "2026-11-30T07:00:00+00:00"),
    ],
)
def test_a_preset_is_a_wall_clock_time_in_the_users_zone(
    preset: str, now: str, tz: object, expected: str
) -> None:
    # Given the time now and the user's zone
    # When the preset is resolved
    when = resolve(preset, utc(now), tz)  # type: ignore[arg-type]
    # Then it is the expected instant, in UTC
    assert when == utc(expected)
    assert when.tzinfo == UTC


def test_later_today_in_the_repeated_hour_rounds_to_the_next_full_hour_that_comes() -> None:
    # Given a user in Berlin at 23:20 CEST on the night the clocks go back from 03:00 to 02:00
    now = utc("2026-10-24T23:20:00+02:00")
    # When "later today" is three hours ahead: 00:20 UTC, 02:20 in the first of the two 02:xx hours
    when = resolve("later_today", now, BERLIN)
    # Then it is the next full hour that comes, 02:00 CET (01:00 UTC), not 03:00 CET an hour later
    assert when == utc("2026-10-25T02:00:00+01:00")


def test_an_unknown_time_zone_is_a_400_reason() -> None:
    # Given a name that is not an IANA zone
    # When it is looked up
    with pytest.raises(Invalid) as caught:
        zone("Mars/Olympus_Mons")
    # Then the reason is machine-readable
    assert caught.value.code == "invalid_time_zone"
