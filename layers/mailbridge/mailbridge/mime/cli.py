"""`python -m mailbridge.mime FILE...`: one JSON line per file, for looking at real mail by hand."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

from mailbridge.mime.errors import MimeError
from mailbridge.mime.parse import normalize

TRUNCATE_AT = 500
USAGE = "usage: python -m mailbridge.mime FILE..."


def _truncate(value: Any) -> Any:
    if isinstance(value, str) and len(value) > TRUNCATE_AT:
        return value[:TRUNCATE_AT] + "\u2026"
    return value


def describe(path: str) -> tuple[dict[str, Any], bool]:
    """The JSON record for one file and whether the file could be read at all."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        return {"file": path, "error": "unreadable", "detail": type(exc).__name__}, False
    try:
        result = normalize(raw)
    except MimeError as exc:
        return {"file": path, "error": exc.code, "detail": exc.message}, True
    record: dict[str, Any] = {"file": path}
    dumped = result.message.model_dump(mode="json", by_alias=True)
    for key in ("text_body", "html_body"):
        dumped[key] = _truncate(dumped[key])
    if dumped.get("calendar"):
        dumped["calendar"]["ics"] = _truncate(dumped["calendar"]["ics"])
    record.update(dumped)
    return record, True


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    stream = out if out is not None else sys.stdout
    if not args or any(arg in ("-h", "--help") for arg in args):
        stream.write(json.dumps({"error": "usage", "detail": USAGE}) + "\n")
        return 1
    all_read = True
    for path in args:
        record, was_read = describe(path)
        all_read = all_read and was_read
        stream.write(json.dumps(record, ensure_ascii=False) + "\n")
    return 0 if all_read else 1
