"""TNEF (winmail.dat, application/ms-tnef) unpacked with `tnefparse` into plain attachments."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tnefparse import TNEF  # type: ignore[import-untyped]

from mailbridge.mime.text import clean_header_text, decode_bytes

TNEF_SIGNATURE = b"\x78\x9f\x3e\x22"
_MAX_EMBED_DEPTH = 5


@dataclass(frozen=True)
class TnefFile:
    filename: str | None
    data: bytes


@dataclass
class TnefContent:
    files: list[TnefFile] = field(default_factory=list)
    text_body: str | None = None
    html_body: str | None = None


def _as_text(value: object) -> str | None:
    if isinstance(value, bytes):
        text, _ = decode_bytes(value.rstrip(b"\x00"), None)
        return text
    if isinstance(value, str):
        return value.rstrip("\x00")
    return None


def _filename(attachment: object) -> str | None:
    try:
        name = attachment.long_filename()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - tnefparse decodes names lazily and can fail on odd codepages
        name = None
    text = _as_text(name)
    if not text:
        return None
    return clean_header_text(text) or None


def unpack_tnef(data: bytes) -> TnefContent:
    """Raises ValueError (or whatever tnefparse raises) on a broken container; callers catch."""
    if not data.startswith(TNEF_SIGNATURE):
        raise ValueError("not a TNEF container")
    # The checksum is often wrong in real winmail.dat files; Outlook itself ignores it.
    parsed = TNEF(data, do_checksum=False)
    content = TnefContent(text_body=_as_text(parsed.body), html_body=_as_text(parsed.htmlbody))
    _collect(parsed, content.files, depth=0)
    return content


def _collect(parsed: Any, files: list[TnefFile], depth: int) -> None:
    for attachment in parsed.attachments:
        payload = attachment.data
        if isinstance(payload, str):
            payload = payload.encode("utf-8", errors="surrogateescape")
        if isinstance(payload, bytes):
            files.append(TnefFile(filename=_filename(attachment), data=payload))
        # An attached Outlook item is itself TNEF; its files are what the user wants to see.
        embedded = getattr(attachment, "embed", None)
        if embedded is not None and depth < _MAX_EMBED_DEPTH:
            _collect(embedded, files, depth + 1)
