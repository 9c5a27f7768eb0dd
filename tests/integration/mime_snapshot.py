"""A compact summary of what `mailbridge.mime.normalize` makes of each message of the shared corpus,
and the committed snapshot of those summaries that tests/integration/test_mime_corpus.py compares
against.

Per message (keyed by its path relative to the corpus' mime/ folder): subject, from/to/cc as
"name <address>", date (ISO 8601, UTC), attachments as [filename, size], the first 16 hex digits of
the sha256 of the text and HTML bodies (null when absent); or, when normalize raises MimeError,
only {"quarantined": code}. To keep the file small, a text longer than 120 characters keeps its
first 80 and a digest of the whole, and a list longer than 12 entries its first 10 and a digest
of the whole: any change still shows.

Regenerate after a deliberate change to the normalizer, then review the diff like code (one line
per message):
    MAILBRIDGE_CORPUS=../shared/data PYTHONPATH=layers/mailbridge:. \\
        .venv/bin/python -m tests.integration.mime_snapshot
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from mailbridge.mime import MimeError, normalize
from mailbridge.models.email import EmailAddress

REPO_ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = Path(__file__).resolve().parent / "snapshots" / "mime_corpus.json"


def corpus_root() -> Path | None:
    """$MAILBRIDGE_CORPUS, else ../shared/data next to the checkout; None when it has no mime/."""
    configured = os.environ.get("MAILBRIDGE_CORPUS")
    candidate = Path(configured) if configured else REPO_ROOT.parent / "shared" / "data"
    return candidate if (candidate / "mime").is_dir() else None


def corpus_messages(mime: Path) -> list[Path]:
    return sorted(mime.rglob("*.eml"))


def key(mime: Path, path: Path) -> str:
    return path.relative_to(mime).as_posix()


MAX_TEXT, KEPT_TEXT = 120, 80
MAX_ITEMS, KEPT_ITEMS = 12, 10


def _digest(body: str | None) -> str | None:
    return (
        hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()[:16] if body is not None else None
    )


def _text(value: str | None) -> str | None:
    if value is None or len(value) <= MAX_TEXT:
        return value
    return f"{value[:KEPT_TEXT]}... ({len(value)} chars, sha256 {_digest(value)})"


def _items(values: list[Any]) -> list[Any]:
    if len(values) <= MAX_ITEMS:
        return values
    whole = json.dumps(values, ensure_ascii=False)
    return [*values[:KEPT_ITEMS], f"... ({len(values)} in all, sha256 {_digest(whole)})"]


def _addresses(values: list[EmailAddress]) -> list[Any]:
    return _items([_text(f"{a.name} <{a.address}>" if a.name else f"<{a.address}>") for a in values])


def summarize(raw: bytes) -> dict[str, Any]:
    try:
        message = normalize(raw).message
    except MimeError as exc:
        return {"quarantined": exc.code}
    return {
        "subject": _text(message.subject),
        "from": _addresses(message.from_),
        "to": _addresses(message.to),
        "cc": _addresses(message.cc),
        "date": message.date.isoformat() if message.date else None,
        "attachments": _items([[_text(a.filename), a.size] for a in message.attachments]),
        "text": _digest(message.text_body),
        "html": _digest(message.html_body),
    }


def render(summaries: dict[str, dict[str, Any]]) -> str:
    """One message per line, in path order, so a change to the snapshot reads as a short diff."""
    lines = [
        f"  {json.dumps(k)}: {json.dumps(summaries[k], sort_keys=True, ensure_ascii=False)}"
        for k in sorted(summaries)
    ]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def load() -> dict[str, dict[str, Any]]:
    loaded: dict[str, dict[str, Any]] = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    return loaded


def main() -> int:
    root = corpus_root()
    if root is None:
        sys.stderr.write(
            "corpus not found: set $MAILBRIDGE_CORPUS or put the shared data at ../shared/data\n"
        )
        return 1
    mime = root / "mime"
    summaries = {key(mime, p): summarize(p.read_bytes()) for p in corpus_messages(mime)}
    SNAPSHOT.parent.mkdir(exist_ok=True)
    SNAPSHOT.write_text(render(summaries), encoding="utf-8")
    quarantined = sum(1 for s in summaries.values() if "quarantined" in s)
    sys.stdout.write(f"{SNAPSHOT}: {len(summaries)} messages, {quarantined} quarantined\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
