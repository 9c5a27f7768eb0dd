"""The iCalendar reader and writer over the 258 real .ics files in the shared corpus (Google,
Exchange, iCloud, Mozilla, Zimbra ... from the icalendar and recurring-ical-events test suites).

Every file is either refused as a whole with a code (it is not a calendar), or each of its VEVENTs
is read into an event or skipped with a reason; nothing raises. What is read and written again
reads back as the same events, with a VTIMEZONE for every TZID the written file uses.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailbridge.calendar import ics

pytestmark = pytest.mark.corpus

REPO_ROOT = Path(__file__).resolve().parents[3]
NO_CORPUS = "corpus not found: set $MAILBRIDGE_CORPUS or put the shared data at ../shared/data"


def corpus_ics() -> Path | None:
    configured = os.environ.get("MAILBRIDGE_CORPUS")
    root = Path(configured) if configured else REPO_ROOT.parent / "shared" / "data"
    return root / "ics" if (root / "ics").is_dir() else None


ICS = corpus_ics()
FILES = sorted(ICS.rglob("*.ics")) if ICS else []
PARAMS = (
    [pytest.param(p, id=str(p.relative_to(ICS))) for p in FILES]
    if ICS
    else [pytest.param(None, marks=pytest.mark.skip(reason=NO_CORPUS))]
)
STAMP = datetime(2026, 1, 1, tzinfo=UTC)


def read(data: bytes) -> tuple[ics.ParsedFile | None, str | None]:
    try:
        return ics.parse_calendar(data), None
    except ics.IcsError as exc:
        return None, exc.code


@pytest.mark.skipif(ICS is None, reason=NO_CORPUS)
def test_the_corpus_is_all_there() -> None:
    assert len(FILES) == 258


@pytest.mark.parametrize("path", PARAMS)
def test_every_file_reads_and_writes_back_the_same_events(path: Path) -> None:
    # Given a real calendar file
    data = path.read_bytes()
    # When it is read
    parsed, refused = read(data)
    # Then either it is refused as a whole with a code (a bare component, fuzzer output) ...
    if parsed is None:
        assert refused in {"not_icalendar", "too_deep", "too_many_events"}
        return
    # ... or every VEVENT is an event (or one of its overrides) or skipped with a reason
    assert all(s.reason for s in parsed.skipped)
    found = sum((0 if e.partial else 1) + len(e.fields.overrides) for e in parsed.events)
    assert found + len(parsed.skipped) >= data.upper().count(b"BEGIN:VEVENT") - sum(
        s.reason in {"unparseable"} for s in parsed.skipped
    )
    # And the events written out read back the same, with a VTIMEZONE for every TZID used
    written = ics.build_calendar([ics.Outgoing(e.uid, e.sequence, e.fields, STAMP) for e in parsed.events])
    again = ics.parse_calendar(written)
    assert again.skipped == []
    assert [(e.uid, e.sequence, e.fields) for e in again.events] == [
        (e.uid, e.sequence, e.fields) for e in parsed.events
    ]
    used, defined = ics.tzids(written)
    assert used <= defined
