"""The calendar's ICS import against parsing alone with `icalendar`, and recurrence expansion.

Run from the repo root: `.venv/bin/python benchmarks/bench_calendar.py [ROUNDS]` (default 3).

Import: every .ics file of the shared corpus (`$MAILBRIDGE_CORPUS/ics` or `../shared/data/ics`),
read as `POST /calendar/import` reads it, minus the DynamoDB writes: `ics.parse_calendar` (which
parses with icalendar, applies X-WR-TIMEZONE, maps time zones, groups overrides), then each
event built (`service.new_event`) with its stored span (`expand.span`, which runs
recurring-ical-events for series). The peer is `icalendar.Calendar.from_ical` alone on the same
bytes, the floor of any importer built on it. Both run interleaved file by file, each file
counting with its fastest of ROUNDS runs, so load spikes of a shared machine land on both.

Expansion: a daily 09:00 Europe/Berlin event over a year (across both DST changes), with 20
EXDATEs and 20 overridden occurrences, expanded for the whole year by `expand.occurrences`
(what `GET /calendar/events?from=&to=` runs per event).

No thresholds: it prints, each on a line of its own, `calendar import events/s: X`,
`calendar import ours/icalendar-parse: X` (time ratio: 1.0 = as fast as parsing alone) and
`calendar expansion occurrences/s: X`.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "layers" / "mailbridge"))

from icalendar import Calendar  # noqa: E402

from mailbridge.calendar import expand, ics, service  # noqa: E402
from mailbridge.calendar.models import Event, EventFields, EventLinks  # noqa: E402
from mailbridge.errors import Invalid  # noqa: E402
from mailbridge.tenancy import Role, TenantContext  # noqa: E402

CTX = TenantContext(tenant_id="bench", role=Role.MEMBER, subject="bench")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def corpus_dir() -> Path | None:
    configured = os.environ.get("MAILBRIDGE_CORPUS")
    base = Path(configured) if configured else ROOT.parent / "shared" / "data"
    return base / "ics" if (base / "ics").is_dir() else None


def ours(data: bytes) -> int:
    """Events an import would write for this file (0 for a file refused as a whole)."""
    try:
        parsed = ics.parse_calendar(data)
    except Invalid:
        return 0
    written = 0
    for item in parsed.events:
        event = service.new_event(
            CTX, item.fields, EventLinks(), NOW, uid=item.uid, sequence=item.sequence, source="import"
        )
        try:
            expand.span(event.uid, event)
        except Invalid:
            continue  # skipped as invalid_recurrence
        written += 1
    return written


def theirs(data: bytes) -> int:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return sum(len(c.walk("VEVENT")) for c in Calendar.from_ical(data, multiple=True))
    except Exception:  # noqa: BLE001 - the peer refusing a file is its answer
        return 0


def fastest(run: Callable[[bytes], int], data: bytes, rounds: int) -> tuple[float, int]:
    best, result = float("inf"), 0
    for _ in range(rounds):
        start = time.perf_counter()
        result = run(data)
        best = min(best, time.perf_counter() - start)
    return best, result


def bench_import(rounds: int) -> None:
    folder = corpus_dir()
    if folder is None:
        print("calendar import: corpus not found (set MAILBRIDGE_CORPUS)")
        return
    files = sorted(folder.rglob("*.ics"))
    ours(files[0].read_bytes())  # imports and first-use tables out of the figures
    ours_s = theirs_s = 0.0
    events = components = 0
    for path in files:
        data = path.read_bytes()
        seconds, found = fastest(ours, data, rounds)
        ours_s, events = ours_s + seconds, events + found
        seconds, found = fastest(theirs, data, rounds)
        theirs_s, components = theirs_s + seconds, components + found
    print(f"files: {len(files)}; events imported: {events} (VEVENTs icalendar parsed: {components})")
    print(f"ours: {ours_s:.2f} s; icalendar parse alone: {theirs_s:.2f} s")
    print(f"calendar import events/s: {events / ours_s:.0f}")
    print(f"calendar import ours/icalendar-parse: {ours_s / theirs_s:.2f}")


def daily_year() -> tuple[Event, int]:
    berlin = ZoneInfo("Europe/Berlin")
    first = datetime(2026, 1, 1, 9, 0, tzinfo=berlin)
    exdates = [(first + timedelta(days=d)).isoformat() for d in range(5, 365, 18)][:20]
    overrides = [
        {
            "recurrence_id": (first + timedelta(days=d)).isoformat(),
            "start": {
                "date_time": (first + timedelta(days=d, hours=2)).replace(tzinfo=None).isoformat(),
                "time_zone": "Europe/Berlin",
            },
            "title": "Moved stand-up",
        }
        for d in range(11, 365, 18)
    ][:20]
    fields = EventFields.model_validate(
        {
            "title": "Stand-up",
            "start": {"date_time": first.replace(tzinfo=None).isoformat(), "time_zone": "Europe/Berlin"},
            "end": {
                "date_time": (first + timedelta(minutes=15)).replace(tzinfo=None).isoformat(),
                "time_zone": "Europe/Berlin",
            },
            "recurrence": {
                "rrule": ["FREQ=DAILY;UNTIL=20261231T235959Z"],
                "exdate": exdates,
            },
            "overrides": overrides,
        }
    )
    event = service.new_event(CTX, fields, EventLinks(), NOW, source="import")
    return event, 365 - len(exdates)


def bench_expansion(rounds: int) -> None:
    event, expected = daily_year()
    start = datetime.combine(date(2026, 1, 1), datetime.min.time(), UTC) - timedelta(days=1)
    end = datetime.combine(date(2027, 1, 1), datetime.min.time(), UTC) + timedelta(days=1)
    best, found = float("inf"), 0
    for _ in range(max(rounds, 3)):
        began = time.perf_counter()
        found = len(expand.occurrences(event, start, end))
        best = min(best, time.perf_counter() - began)
    print(f"daily event over 2026, 20 EXDATEs, 20 overrides: {found} occurrences (expected {expected})")
    print(f"calendar expansion occurrences/s: {found / best:.0f}")


def main(argv: list[str]) -> int:
    rounds = int(argv[0]) if argv else 3
    bench_import(rounds)
    bench_expansion(rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
