"""`python -m mailbridge.ai.categorize`: categorize files, or score sentences from stdin.

    python -m mailbridge.ai.categorize FILE...     one JSON object per file:
        {"file", "category", "is_spam", "is_bulk", "is_automated", "needs_reply",
         "action_requested", "is_lead", "confidence", "reasons"}
        or {"file", "error", "detail"} (error: `unreadable` or the MimeError code)
    python -m mailbridge.ai.categorize --sentences  one JSON object per stdin line:
        {"text", "action_requested", "score"}

Exit status: 0, 1 when a file could not be read or parsed, 2 on a usage error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

USAGE = "usage: python -m mailbridge.ai.categorize FILE... | --sentences < lines"


def describe(path: str) -> tuple[dict[str, Any], bool]:
    """The JSON record for one file and whether it could be categorized."""
    from mailbridge.ai.categorize import categorize
    from mailbridge.mime import MimeError, normalize

    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        return {"file": path, "error": "unreadable", "detail": type(exc).__name__}, False
    try:
        message = normalize(raw).message
    except MimeError as exc:
        return {"file": path, "error": exc.code, "detail": exc.message}, False
    return {"file": path, **categorize(message).model_dump(mode="json")}, True


def sentences(stdin: TextIO, stdout: TextIO) -> None:
    from mailbridge.ai.categorize import sentence_action

    for line in stdin:
        text = line.rstrip("\r\n")
        if not text.strip():
            continue
        score = sentence_action(text)
        record = {"text": text, "action_requested": score.positive, "score": round(score.probability, 4)}
        stdout.write(json.dumps(record, ensure_ascii=False) + "\n")


def run(argv: list[str] | None = None, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    if args == ["--sentences"]:
        sentences(stdin, stdout)
        return 0
    if not args or any(arg.startswith("-") for arg in args):
        sys.stderr.write(USAGE + "\n")
        return 2
    ok = True
    for path in args:
        record, good = describe(path)
        ok = ok and good
        stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    return 0 if ok else 1
