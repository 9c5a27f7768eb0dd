"""Attachment metadata: decoded file names (RFC 2231 and the RFC 2047 that mailers use anyway)."""

from __future__ import annotations

import hashlib
import re
from email.message import Message

from mailbridge.mime.headers import decode_raw
from mailbridge.mime.identifiers import normalize_id
from mailbridge.mime.text import clean_header_text
from mailbridge.models.email import AttachmentMeta

_PATH_SEPARATORS = re.compile(r"[\\/]")


def clean_filename(name: str | None) -> str | None:
    if not name:
        return None
    text = decode_raw(name) if "=?" in name else clean_header_text(name)
    # Senders sometimes include their local path ("C:\\Users\\x\\a.pdf"); keep only the name.
    text = _PATH_SEPARATORS.split(text)[-1].strip().strip("\"'")
    return text or None


def filename(part: Message, defects: list[str]) -> str | None:
    try:
        return clean_filename(part.get_filename())
    except Exception:  # noqa: BLE001 - policy.default's parameter parser has edge cases that raise
        defects.append("filename_unreadable")
        return None


def content_id(part: Message) -> str | None:
    try:
        value = part.get("Content-ID")
    except Exception:  # noqa: BLE001 - an unparseable Content-ID is as good as none
        return None
    return normalize_id(clean_header_text(str(value))) if value is not None else None


def content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:  # noqa: BLE001 - fall back to the RFC 2045 default
        return "application/octet-stream"


def is_inline(part: Message, cid: str | None) -> bool:
    disposition = part.get_content_disposition()
    if disposition is not None:
        return disposition == "inline"
    return cid is not None


def make_meta(
    index: int,
    data: bytes,
    *,
    name: str | None,
    ctype: str,
    cid: str | None,
    inline: bool,
    from_tnef: bool = False,
) -> AttachmentMeta:
    return AttachmentMeta(
        id=f"att-{index}",
        filename=name,
        content_type=ctype,
        size=len(data),
        content_id=cid,
        inline=inline,
        sha256=hashlib.sha256(data).hexdigest(),
        from_tnef=from_tnef,
    )
