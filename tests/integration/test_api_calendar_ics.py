"""ICS import and export through the api handler on moto: per-event results, re-import changes
nothing, the export (and the subscription feed) reads back to the same events."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mailbridge.calendar import ics
from tests.fixtures.aws import BusReader
from tests.integration.calendar_client import Calendar, Invoke, berlin

GOOGLE = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Google Inc//Google Calendar 70.9054//EN\r\n"
    b"X-WR-TIMEZONE:Europe/Berlin\r\n"
    b"BEGIN:VEVENT\r\nUID:weekly@google.com\r\nSEQUENCE:2\r\nDTSTART:20261007T070000Z\r\n"
    b"DTEND:20261007T080000Z\r\nRRULE:FREQ=WEEKLY;COUNT=6\r\nEXDATE:20261014T070000Z\r\n"
    b"SUMMARY:Weekly sync\r\nORGANIZER;CN=Ada:mailto:ada@example.com\r\n"
    b"ATTENDEE;PARTSTAT=ACCEPTED:mailto:bob@example.org\r\nEND:VEVENT\r\n"
    b"BEGIN:VEVENT\r\nUID:weekly@google.com\r\nSEQUENCE:2\r\nRECURRENCE-ID:20261028T080000Z\r\n"
    b"DTSTART:20261028T100000Z\r\nDTEND:20261028T110000Z\r\nSUMMARY:Moved sync\r\nEND:VEVENT\r\n"
    b"BEGIN:VEVENT\r\nUID:day@google.com\r\nDTSTART;VALUE=DATE:20261102\r\nSUMMARY:Holiday\r\nEND:VEVENT\r\n"
    b"BEGIN:VEVENT\r\nUID:broken@google.com\r\nSUMMARY:No start\r\nEND:VEVENT\r\n"
    b"END:VCALENDAR\r\n"
)


@pytest.fixture
def cal(invoke_api: Invoke) -> Calendar:
    return Calendar(invoke_api)


def results(answer: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    return {e["uid"]: (e["result"], e["reason"]) for e in answer["events"]}


def test_an_import_reports_each_event_and_expands_as_written(cal: Calendar, bus_probe: BusReader) -> None:
    # When a Google export is imported
    answer = cal.import_ics(GOOGLE)
    # Then each event has its result, the broken one a reason
    assert results(answer) == {
        "weekly@google.com": ("imported", None),
        "day@google.com": ("imported", None),
        "broken@google.com": ("skipped", "no_start"),
    }
    assert (answer["imported"], answer["skipped"]) == (2, 1)
    # And the series is in Berlin time (X-WR-TIMEZONE), without 14 October, 28 October moved
    items = cal.occurrences("2026-10-01T00:00:00Z", "2026-11-03T00:00:00Z")["items"]
    assert [
        (o["start"]["date_time"] if "date_time" in o["start"] else o["start"]["date"], o["title"])
        for o in items
    ] == [
        ("2026-10-07T09:00:00+02:00", "Weekly sync"),
        ("2026-10-21T09:00:00+02:00", "Weekly sync"),
        ("2026-10-28T11:00:00+01:00", "Moved sync"),
        ("2026-11-02", "Holiday"),
    ]
    # And each new event was announced once
    assert sorted(
        e["detail"]["data"]["uid"] for e in bus_probe() if e["detail-type"] == "calendar.event_created"
    ) == [
        "day@google.com",
        "weekly@google.com",
    ]


def test_importing_the_same_file_again_changes_nothing(cal: Calendar, bus_probe: BusReader) -> None:
    first = cal.import_ics(GOOGLE)
    ids = {e["uid"]: e["event_id"] for e in first["events"] if e["event_id"]}
    versions = {uid: cal.get(event_id)["version"] for uid, event_id in ids.items()}
    bus_probe()
    # When the file is imported again
    again = cal.import_ics(GOOGLE)
    # Then nothing is imported or updated, no event changes version, nothing is announced
    assert results(again) == {
        "weekly@google.com": ("unchanged", None),
        "day@google.com": ("unchanged", None),
        "broken@google.com": ("skipped", "no_start"),
    }
    assert {uid: cal.get(event_id)["version"] for uid, event_id in ids.items()} == versions
    assert bus_probe() == []


def test_a_higher_sequence_updates_and_a_lower_one_is_stale(cal: Calendar) -> None:
    cal.import_ics(GOOGLE)
    newer = GOOGLE.replace(b"SEQUENCE:2", b"SEQUENCE:3").replace(b"Weekly sync", b"Weekly sync (new room)")
    older = GOOGLE.replace(b"SEQUENCE:2", b"SEQUENCE:1").replace(b"Weekly sync", b"Old name")
    assert results(cal.import_ics(newer))["weekly@google.com"] == ("updated", None)
    assert results(cal.import_ics(older))["weekly@google.com"] == ("skipped", "stale_sequence")
    (event_id,) = [e["event_id"] for e in cal.import_ics(newer)["events"] if e["uid"] == "weekly@google.com"]
    event = cal.get(event_id)
    assert (event["title"], event["sequence"]) == ("Weekly sync (new room)", 3)


def test_multipart_uploads_and_bad_bodies(cal: Calendar) -> None:
    boundary = "----mb"
    form = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="cal.ics"\r\n'
            f"Content-Type: text/calendar\r\n\r\n"
        ).encode()
        + GOOGLE
        + f"\r\n--{boundary}--\r\n".encode()
    )
    answer = cal.import_ics(form, content_type=f"multipart/form-data; boundary={boundary}")
    assert answer["imported"] == 2
    assert (
        cal.import_ics(b'{"a": 1}', 415, content_type="application/json")["error"]["code"]
        == "unsupported_media_type"
    )
    assert cal.import_ics(b"x" * (2 * 1024 * 1024 + 1), 413)["error"]["code"] == "payload_too_large"
    assert cal.import_ics(b"hello", 400)["error"]["code"] == "not_icalendar"
    no_file = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="other"\r\n\r\nx\r\n--{boundary}--\r\n'
    ).encode()
    assert (
        cal.import_ics(no_file, 400, content_type=f"multipart/form-data; boundary={boundary}")["error"][
            "code"
        ]
        == "no_file"
    )
    assert Calendar(cal.invoke, role="viewer").import_ics(GOOGLE, 403)["error"]["code"] == "role_required"


def test_the_export_reads_back_to_the_same_events_with_their_time_zones(cal: Calendar) -> None:
    # Given imported events and events made through the API (a zone the file had not used)
    cal.import_ics(GOOGLE)
    made = cal.create(
        title="New York call",
        start={"date_time": "2026-11-03T09:00:00", "time_zone": "America/New_York"},
        end={"date_time": "2026-11-03T09:30:00", "time_zone": "America/New_York"},
        attendees=[{"address": "bob@example.org", "partstat": "tentative"}],
        recurrence={"rrule": ["FREQ=DAILY;COUNT=3"]},
    )
    # When everything is exported
    response = cal.raw("export", query={})
    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"].startswith("text/calendar")
    data = response["body"].encode()
    # Then every TZID used has its VTIMEZONE
    used, defined = ics.tzids(data)
    assert used == {"Europe/Berlin", "America/New_York"}
    assert used <= defined
    # And the file reads back to exactly the stored events
    parsed = {e.uid: e for e in ics.parse_calendar(data).events}
    assert set(parsed) == {"weekly@google.com", "day@google.com", made["uid"]}
    stored = cal.get(made["event_id"])
    assert parsed[made["uid"]].fields.model_dump(mode="json") == {
        k: stored[k] for k in parsed[made["uid"]].fields.model_dump(mode="json")
    }
    # And importing it again changes nothing
    again = cal.import_ics(data)
    assert (again["imported"], again["updated"], again["unchanged"]) == (0, 0, 3)


def test_an_export_range_holds_the_events_that_meet_it(cal: Calendar) -> None:
    cal.create(title="October", start=berlin("2026-10-07T09:00:00"))
    cal.create(title="December", start=berlin("2026-12-07T09:00:00"))
    data = cal.raw("export", query={"from": "2026-10-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"})[
        "body"
    ].encode()
    assert [e.fields.title for e in ics.parse_calendar(data).events] == ["October"]


def test_the_subscription_feed_serves_the_calendar_until_rotated(invoke_api: Invoke, cal: Calendar) -> None:
    from urllib.parse import urlparse

    cal.create(title="Soon", start={"date_time": "2030-01-01T09:00:00Z"})  # outside the feed window
    recent = cal.create(title="Next week", start={"date_time": _days_from_now(7)})
    # Given the user's feed URL (the same when asked twice)
    info = cal.call("get-feed")
    assert cal.call("get-feed")["url"] == info["url"]
    token = urlparse(info["url"]).path.rsplit("/", 1)[1]
    # When a calendar app fetches it (no bearer token)
    feed = Calendar(invoke_api).raw("feed", path={"token": token})
    # Then it is the calendar, from 90 days ago to 400 days ahead
    assert feed["statusCode"] == 200, feed
    assert [e.uid for e in ics.parse_calendar(feed["body"].encode()).events] == [recent["uid"]]
    # And after a rotation the old URL is gone and the new one works
    rotated = cal.call("rotate-feed")
    new_token = urlparse(rotated["url"]).path.rsplit("/", 1)[1]
    assert new_token != token
    assert rotated["rotated_at"] is not None
    old = Calendar(invoke_api).raw("feed", path={"token": token})
    assert (old["statusCode"], json.loads(old["body"])["error"]["code"]) == (404, "feed_not_found")
    assert Calendar(invoke_api).raw("feed", path={"token": new_token})["statusCode"] == 200
    # And an edited token is the same 404, never a 500
    edited = new_token[:-1] + ("A" if new_token[-1] != "A" else "B")
    assert Calendar(invoke_api).raw("feed", path={"token": edited})["statusCode"] == 404
    assert Calendar(invoke_api).raw("feed", path={"token": "garbage"})["statusCode"] == 404


def _days_from_now(days: int) -> str:
    from datetime import UTC, datetime, timedelta

    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0).isoformat()
