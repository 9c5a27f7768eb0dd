"""Attachment metadata: file names (RFC 2183 `filename`, RFC 2045 `name`, RFC 2231 and the
RFC 2047 words mailers put in parameters anyway), Content-ID, disposition."""

from __future__ import annotations

import hashlib
import re

from mailbridge.mime.headers import decode_raw, raw_values, unfold
from mailbridge.mime.identifiers import normalize_id
from mailbridge.mime.params import param
from mailbridge.mime.structure import Part
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


def filename(part: Part, defects: list[str]) -> str | None:
    """Content-Disposition `filename`, else Content-Type `name` (what `Message.get_filename` reads)."""
    name = param(part, "Content-Disposition", "filename", defects)
    if name is None:
        name = param(part, "Content-Type", "name", defects)
    return clean_filename(name.strip()) if name is not None else None


def content_id(part: Part) -> str | None:
    values = raw_values(part, "Content-ID")
    return normalize_id(decode_raw(values[0])) if values else None


def disposition(part: Part) -> str | None:
    """RFC 2183 disposition type, lower-cased (`inline`, `attachment`, ...), or None."""
    values = raw_values(part, "Content-Disposition")
    if not values:
        return None
    return unfold(values[0]).split(";", 1)[0].strip().lower()


def is_inline(part: Part, cid: str | None) -> bool:
    value = disposition(part)
    if value is not None:
        return value == "inline"
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
