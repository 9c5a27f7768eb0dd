"""The calendar's per-tenant rate limits through the api handler on moto (issue 16 point 7):
20 event writes and 5 ICS imports/exports a minute, then 429 `rate_limited` with Retry-After.
The limits' clock is fixed by the test (no wall clock)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mailbridge.calendar.wiring import calendar_deps
from tests.integration.calendar_client import OTHER, Calendar, Invoke

ICS = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:one@test\r\n"
    b"DTSTAMP:20261101T000000Z\r\nDTSTART:20261102T090000Z\r\nSUMMARY:One\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(invoke_api: Invoke) -> Clock:
    """The limits read this clock: 09:00:05, five seconds into a minute."""
    clock = Clock(datetime(2026, 11, 2, 9, 0, 5, tzinfo=UTC))
    limits = calendar_deps().limits
    assert limits is not None
    limits.now = clock
    return clock


def _refused(response: dict[str, Any]) -> tuple[int, str, str | None]:
    code = json.loads(response["body"])["error"]["code"]
    return response["statusCode"], code, response["headers"].get("Retry-After")


def test_twenty_event_writes_a_minute_then_429_with_retry_after(invoke_api: Invoke, clock: Clock) -> None:
    cal, other = Calendar(invoke_api), Calendar(invoke_api, tenant=OTHER)
    # Given 19 creates and one replace in this minute (every write counts)
    first = cal.create(title="e0", start={"date": "2026-11-02"})
    for n in range(1, 19):
        cal.create(title=f"e{n}", start={"date": "2026-11-02"})
    cal.put(first["event_id"], title="e0 renamed", start={"date": "2026-11-02"})
    # When a 21st write comes in the same minute
    refused = cal.raw("create-event", body={"title": "late", "start": {"date": "2026-11-02"}})
    # Then it is 429 with the seconds left in the minute, and nothing is written
    assert _refused(refused) == (429, "rate_limited", "55")
    assert _refused(cal.raw("delete-event", path={"event_id": first["event_id"]}))[:2] == (
        429,
        "rate_limited",
    )
    assert cal.get(first["event_id"])["title"] == "e0 renamed"
    # And another tenant is not held back
    other.create(title="theirs", start={"date": "2026-11-02"})
    # When the next minute starts, the tenant may write again
    clock.now += timedelta(seconds=55)
    cal.create(title="next minute", start={"date": "2026-11-02"})


def test_five_ics_imports_or_exports_a_minute_then_429(invoke_api: Invoke, clock: Clock) -> None:
    cal = Calendar(invoke_api)
    # Given three imports and two exports in this minute
    for _ in range(3):
        cal.import_ics(ICS)
    cal.export()
    cal.call("export", query={"from": "2026-11-01T00:00:00Z", "to": "2026-11-30T00:00:00Z"})
    # When a sixth import or export comes
    # Then both are 429, and event reads are not limited
    assert _refused(cal.raw("import", raw_body=ICS, content_type="text/calendar"))[:2] == (
        429,
        "rate_limited",
    )
    assert _refused(cal.raw("export", query={}))[:2] == (429, "rate_limited")
    cal.occurrences("2026-11-01T00:00:00Z", "2026-11-30T00:00:00Z")
    # And a minute later they work again
    clock.now += timedelta(minutes=1)
    assert cal.import_ics(ICS)["unchanged"] == 1
