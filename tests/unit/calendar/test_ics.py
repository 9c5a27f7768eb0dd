"""iCalendar -> events and back (mailbridge.calendar.ics), on small files written for each rule."""

from __future__ import annotations

import datetime as dt
import json
from io import StringIO
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mailbridge.calendar import ics
from mailbridge.calendar.cli import main

BERLIN = ZoneInfo("Europe/Berlin")
STAMP = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def calendar(*lines: str, head: tuple[str, ...] = ()) -> bytes:
    return ("\r\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", *head, *lines, "END:VCALENDAR"]) + "\r\n").encode()


def vevent(*lines: str) -> list[str]:
    return ["BEGIN:VEVENT", *lines, "END:VEVENT"]


def only(data: bytes) -> ics.ParsedEvent:
    parsed = ics.parse_calendar(data)
    assert parsed.skipped == []
    (event,) = parsed.events
    return event


def round_trip(events: list[ics.ParsedEvent]) -> list[ics.ParsedEvent]:
    out = ics.build_calendar([ics.Outgoing(e.uid, e.sequence, e.fields, STAMP) for e in events])
    return ics.parse_calendar(out).events


def test_duration_instead_of_dtend_is_read_as_an_end() -> None:
    timed = only(calendar(*vevent("UID:a", "DTSTART;TZID=Europe/Berlin:20261025T013000", "DURATION:PT2H")))
    all_day = only(calendar(*vevent("UID:b", "DTSTART;VALUE=DATE:20261101", "DURATION:P2D")))
    # 01:30 CEST + 2 hours (exact time) is 02:30 CET: the clocks went back at 03:00
    assert timed.fields.end is not None
    assert timed.fields.end.date_time == dt.datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN)
    assert timed.fields.duration == dt.timedelta(hours=2)
    assert all_day.fields.end is not None
    assert all_day.fields.end.date == dt.date(2026, 11, 3)


def test_floating_and_date_only_times_stay_what_they_are() -> None:
    floating = only(calendar(*vevent("UID:a", "DTSTART:20261101T100000", "DTEND:20261101T110000")))
    day = only(calendar(*vevent("UID:b", "DTSTART;VALUE=DATE:20261101")))
    assert floating.fields.start.date_time == dt.datetime(2026, 11, 1, 10)
    assert floating.fields.start.floating
    assert day.fields.start.date == dt.date(2026, 11, 1)
    assert day.fields.end is not None
    assert day.fields.end.date == dt.date(2026, 11, 2)  # RFC 5545 3.6.1: a DATE lasts its day


def test_x_wr_timezone_moves_utc_times_into_the_calendars_zone() -> None:
    # Google Calendar writes times in UTC and names the calendar's zone in X-WR-TIMEZONE
    data = calendar(
        *vevent("UID:g", "DTSTART:20261007T070000Z", "DTEND:20261007T080000Z", "RRULE:FREQ=WEEKLY;COUNT=4"),
        head=("X-WR-TIMEZONE:Europe/Berlin",),
    )
    event = only(data)
    assert event.fields.start.time_zone == "Europe/Berlin"
    assert event.fields.start.date_time == dt.datetime(2026, 10, 7, 9, 0, tzinfo=BERLIN)


def test_vtimezone_names_map_to_iana_zones_or_fall_back_to_utc_with_a_note() -> None:
    zone = [
        "BEGIN:VTIMEZONE", "TZID:{name}", "BEGIN:STANDARD", "DTSTART:19701025T030000",
        "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU", "TZOFFSETFROM:+0200", "TZOFFSETTO:+0100", "END:STANDARD",
        "BEGIN:DAYLIGHT", "DTSTART:19700329T020000", "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
        "TZOFFSETFROM:+0100", "TZOFFSETTO:+0200", "END:DAYLIGHT", "END:VTIMEZONE",
    ]  # fmt: skip
    windows = "\r\n".join(zone).format(name="W. Europe Standard Time").split("\r\n")
    custom = "\r\n".join(zone).format(name="My Office").split("\r\n")
    mapped = only(
        calendar(*windows, *vevent("UID:w", "DTSTART;TZID=W. Europe Standard Time:20261014T090000"))
    )
    unknown = only(calendar(*custom, *vevent("UID:m", "DTSTART;TZID=My Office:20261014T090000")))
    assert (mapped.fields.start.time_zone, mapped.notes) == ("Europe/Berlin", [])
    assert mapped.fields.start.date_time == dt.datetime(2026, 10, 14, 9, tzinfo=BERLIN)
    # The instant is kept (09:00 at +02:00 is 07:00 UTC), the zone's rules are not
    assert unknown.fields.start.time_zone == "UTC"
    assert unknown.fields.start.date_time == dt.datetime(2026, 10, 14, 7, tzinfo=dt.UTC)
    assert unknown.notes == ["time_zone_replaced_by_utc"]


def test_overrides_join_their_series_and_lone_overrides_make_one() -> None:
    data = calendar(
        *vevent(
            "UID:s",
            "DTSTART;TZID=Europe/Berlin:20261007T090000",
            "DTEND;TZID=Europe/Berlin:20261007T100000",
            "RRULE:FREQ=WEEKLY;COUNT=4",
            "EXDATE;TZID=Europe/Berlin:20261014T090000",
            "SUMMARY:Sync",
        ),
        *vevent(
            "UID:s",
            "RECURRENCE-ID;TZID=Europe/Berlin:20261021T090000",
            "DTSTART;TZID=Europe/Berlin:20261021T110000",
            "DTEND;TZID=Europe/Berlin:20261021T120000",
            "SUMMARY:Sync",
        ),
        *vevent(
            "UID:lone",
            "RECURRENCE-ID:20261101T100000Z",
            "DTSTART:20261101T100000Z",
            "DTEND:20261101T110000Z",
            "SUMMARY:One",
        ),
        *vevent(
            "UID:lone",
            "RECURRENCE-ID:20261108T100000Z",
            "DTSTART:20261108T120000Z",
            "DTEND:20261108T130000Z",
            "SUMMARY:Two",
        ),
    )
    series, lone = ics.parse_calendar(data).events
    assert series.fields.recurrence is not None
    assert series.fields.recurrence.exdate == [dt.datetime(2026, 10, 14, 9, tzinfo=BERLIN)]
    (moved,) = series.fields.overrides
    # Only what differs from the series is kept: the new start (the length is the series')
    assert moved.recurrence_id == dt.datetime(2026, 10, 21, 9, tzinfo=BERLIN)
    assert moved.start is not None
    assert moved.start.date_time == dt.datetime(2026, 10, 21, 11, tzinfo=BERLIN)
    assert (moved.end, moved.title) == (None, None)
    # Occurrences without their series: a series of exactly those occurrences
    assert lone.partial
    assert lone.fields.recurrence is not None
    assert lone.fields.recurrence.rdate == [dt.datetime(2026, 11, 8, 10, tzinfo=dt.UTC)]
    assert [o.title for o in lone.fields.overrides] == [None, "Two"]


def test_each_unreadable_event_is_skipped_with_its_reason() -> None:
    data = calendar(
        *vevent("UID:no-start", "SUMMARY:Nothing"),
        *vevent("UID:bad-rule", "DTSTART:20261101T100000Z", "RRULE:FREQ=FORTNIGHTLY"),
        *vevent("UID:too-fast", "DTSTART:20261101T100000Z", "RRULE:FREQ=SECONDLY"),
        *vevent("UID:dup", "SEQUENCE:1", "DTSTART:20261101T100000Z", "SUMMARY:New"),
        *vevent("UID:dup", "SEQUENCE:0", "DTSTART:20261101T100000Z", "SUMMARY:Old"),
        *vevent("UID:good", "DTSTART:20261101T100000Z"),
    )
    parsed = ics.parse_calendar(data)
    assert [e.uid for e in parsed.events] == ["dup", "good"]
    assert parsed.events[0].fields.title == "New"
    assert sorted((s.uid, s.reason) for s in parsed.skipped) == [
        ("bad-rule", "invalid_rrule"),
        ("dup", "duplicate_uid"),
        ("no-start", "no_start"),
        ("too-fast", "invalid_rrule"),
    ]


def test_what_real_exporters_get_wrong_is_repaired_and_noted() -> None:
    data = calendar(
        *vevent("DTSTART;VALUE=DATE:20261101", "RRULE:", "SUMMARY:No UID"),
        *vevent(
            "UID:r",
            "DTSTART:20261101T080000Z",
            "RRULE:FREQ=DAILY;UNTIL=20261110T080000Z;COUNT=-1;BYDAY=MO, TU",
        ),
        *vevent("UID:e", "DTSTART:20261101T100000Z", "DTEND:20261101T090000Z", "ATTENDEE:urn:uuid:x"),
    )
    no_uid, rule, backwards = ics.parse_calendar(data).events
    # No UID: one derived from the content, the same on every import of the same file
    assert no_uid.uid.startswith("import-")
    assert no_uid.uid == ics.parse_calendar(data).events[0].uid
    assert set(no_uid.notes) == {"uid_generated", "rrule_dropped"}
    assert no_uid.fields.recurrence is None
    assert rule.fields.recurrence is not None
    assert rule.fields.recurrence.rrule == ["FREQ=DAILY;UNTIL=20261110T080000Z;BYDAY=MO,TU"]
    assert rule.notes == ["rrule_repaired"]
    assert backwards.fields.end == backwards.fields.start
    assert set(backwards.notes) == {"end_before_start", "attendee_dropped"}


def test_a_broken_line_costs_one_event_not_the_file() -> None:
    data = calendar(
        *vevent("UID:ok", "DTSTART:20261101T100000Z", "SUMMARY:Kept"),
        "X",  # outside any component: the parser refuses the whole file
        *vevent("UID:ok2", "DTSTART:20261102T100000Z"),
    )
    assert [e.uid for e in ics.parse_calendar(data).events] == ["ok", "ok2"]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"hello world", "not_icalendar"),
        (b"BEGIN:VCALENDAR\r\n" + b"BEGIN:X\r\n" * 20, "too_deep"),
        (calendar(*vevent("UID:x", "DTSTART:20261101T100000Z") * 1001), "too_many_events"),
    ],
)
def test_input_that_is_not_icalendar_is_refused_as_a_whole(data: bytes, code: str) -> None:
    with pytest.raises(ics.IcsError) as caught:
        ics.parse_calendar(data)
    assert caught.value.code == code


def test_written_events_read_back_the_same_with_a_vtimezone_per_tzid() -> None:
    data = calendar(
        *vevent(
            "UID:a",
            "SEQUENCE:3",
            "DTSTART;TZID=America/New_York:20261101T090000",
            "DURATION:PT45M",
            "RRULE:FREQ=WEEKLY;UNTIL=20261201T000000Z",
            "RDATE;TZID=Europe/Berlin:20261225T150000",
            "ORGANIZER;CN=Ada:mailto:ada@example.com",
            "SUMMARY:Line\\, comma\\; semi\\n next",
            'ATTENDEE;CN="Bob, B.";PARTSTAT=ACCEPTED;RSVP=TRUE:mailto:Bob@Example.COM',
            "STATUS:TENTATIVE",
        ),
        *vevent(
            "UID:b", "DTSTART;VALUE=DATE:20261224", "DTEND;VALUE=DATE:20261227", "DESCRIPTION:Two\\nlines"
        ),
    )
    events = ics.parse_calendar(data).events
    again = round_trip(events)
    assert [(e.uid, e.sequence, e.fields) for e in again] == [(e.uid, e.sequence, e.fields) for e in events]
    first = events[0].fields
    assert first.attendees[0].address == "bob@example.com"
    assert (first.attendees[0].name, first.attendees[0].partstat) == ("Bob, B.", "accepted")
    assert first.title == "Line, comma; semi next"  # a title is one line
    assert events[1].fields.description == "Two\nlines"
    # The RDATE in Berlin time is kept as that instant in the series' zone
    assert first.recurrence is not None
    assert first.recurrence.rdate == [dt.datetime(2026, 12, 25, 9, tzinfo=ZoneInfo("America/New_York"))]
    used, defined = ics.tzids(
        ics.build_calendar([ics.Outgoing(e.uid, e.sequence, e.fields, STAMP) for e in events])
    )
    assert used == {"America/New_York"}
    assert used <= defined


def test_the_cli_prints_one_json_object_per_file(tmp_path: Path) -> None:
    good = tmp_path / "good.ics"
    good.write_bytes(
        calendar(*vevent("UID:a", "DTSTART:20261101T100000Z", "RRULE:FREQ=DAILY;COUNT=2", "SUMMARY:Hi"))
    )
    bad = tmp_path / "bad.ics"
    bad.write_bytes(b"not a calendar")
    out = StringIO()
    status = main([str(good), str(bad), str(tmp_path / "missing.ics")], out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert status == 1
    assert [line["file"] for line in lines] == [str(good), str(bad), str(tmp_path / "missing.ics")]
    (event,) = lines[0]["events"]
    assert (event["uid"], event["summary"], event["recurrence"]["rrule"]) == (
        "a",
        "Hi",
        ["FREQ=DAILY;COUNT=2"],
    )
    assert event["start"] == {"date_time": "2026-11-01T10:00:00Z", "time_zone": "UTC"}
    assert lines[1]["error"]["code"] == "not_icalendar"
    assert lines[2]["error"]["code"] == "unreadable"
