"""`python -m mailbridge.calendar FILE...`: one JSON line per iCalendar file, as an import reads it.

Each line: `{"file", "method", "events": [{uid, summary, start, end, recurrence, overrides,
notes}], "skipped": [{uid, summary, reason}]}`, or `{"file", "error": {"code", "message"}}` for a
file that is not iCalendar (`not_icalendar`, `too_deep`, `too_many_events`) or cannot be read
(`unreadable`). Exit status 1 when any file could not be read or is not iCalendar.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

from mailbridge.calendar.ics import IcsError, ParsedEvent, parse_calendar

USAGE = "usage: python -m mailbridge.calendar FILE..."
MAX_FILE_BYTES = 20 * 1024 * 1024


def _event(event: ParsedEvent) -> dict[str, Any]:
    fields = event.fields
    recurrence = fields.recurrence.model_dump(mode="json") if fields.recurrence else None
    return {
        "uid": event.uid,
        "summary": fields.title,
        "start": fields.start.model_dump(mode="json"),
        "end": fields.end.model_dump(mode="json") if fields.end else None,
        "recurrence": recurrence,
        "overrides": len(fields.overrides),
        "sequence": event.sequence,
        "notes": event.notes,
    }


def describe(path: str) -> tuple[dict[str, Any], bool]:
    """The JSON record for one file and whether it was read as iCalendar."""
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return {"file": path, "error": {"code": "unreadable", "message": type(exc).__name__}}, False
    if len(data) > MAX_FILE_BYTES:
        return {"file": path, "error": {"code": "too_large", "message": "over 20 MB"}}, False
    try:
        parsed = parse_calendar(data)
    except IcsError as exc:
        return {"file": path, "error": {"code": exc.code, "message": exc.message}}, False
    return {
        "file": path,
        "method": parsed.method,
        "events": [_event(e) for e in parsed.events],
        "skipped": [{"uid": s.uid, "summary": s.title, "reason": s.reason} for s in parsed.skipped],
    }, True


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    stream = out if out is not None else sys.stdout
    if not args or any(arg in ("-h", "--help") for arg in args):
        stream.write(json.dumps({"error": {"code": "usage", "message": USAGE}}) + "\n")
        return 1
    all_read = True
    for path in args:
        record, was_read = describe(path)
        all_read = all_read and was_read
        stream.write(json.dumps(record, ensure_ascii=False) + "\n")
    return 0 if all_read else 1
