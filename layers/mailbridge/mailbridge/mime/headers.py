"""Defensive header access.

`policy.default` parses structured headers lazily, on first access, and a few malformed values
still make it raise. Every read goes through here: the parsed value when it works, otherwise the
raw value decoded the compat32 way (`email.header.decode_header`), recording a defect either way.
"""

from __future__ import annotations

import re
from email.header import decode_header
from email.message import Message

from mailbridge.mime.text import clean_header_text, decode_bytes

_SURROGATE = re.compile(r"[\udc80-\udcff]")
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


def raw_values(msg: Message, name: str) -> list[str]:
    lname = name.lower()
    return [str(v) for k, v in msg.raw_items() if k.lower() == lname]


def decode_raw(value: str) -> str:
    """RFC 2047 decoding that never raises: each chunk decoded on its own, charset or not."""
    if not _ENCODED_WORD.search(value):
        return clean_header_text(value)
    try:
        chunks = decode_header(value)
    except Exception:  # noqa: BLE001 - email.header raises assorted errors on junk; keep the raw text
        return clean_header_text(value)
    out: list[str] = []
    for chunk, charset in chunks:
        if isinstance(chunk, bytes):
            text, _ = decode_bytes(chunk, charset)
            out.append(text)
        else:
            out.append(chunk)
    return clean_header_text("".join(out))


def _has_raw_8bit(values: list[str]) -> bool:
    return any(_SURROGATE.search(v) for v in values)


def header_text(msg: Message, name: str, defects: list[str]) -> str | None:
    """The first `name` header as clean unicode text, or None when absent."""
    raws = raw_values(msg, name)
    if not raws:
        return None
    if _has_raw_8bit(raws[:1]):
        # Unencoded 8-bit header bytes: the stdlib would decode them as UTF-8 with U+FFFD for
        # anything else; we detect the charset instead.
        defects.append(f"header_8bit:{name.lower()}")
        return decode_raw(raws[0])
    try:
        value = msg.get(name)
    except Exception:  # noqa: BLE001 - see module docstring
        defects.append(f"header_fallback:{name.lower()}")
        return decode_raw(raws[0])
    if value is None:
        return None
    return clean_header_text(str(value))


def header_texts(msg: Message, name: str, defects: list[str]) -> list[str]:
    raws = raw_values(msg, name)
    if _has_raw_8bit(raws):
        defects.append(f"header_8bit:{name.lower()}")
        return [decode_raw(v) for v in raws]
    try:
        values = msg.get_all(name) or []
        return [clean_header_text(str(v)) for v in values]
    except Exception:  # noqa: BLE001 - see module docstring
        defects.append(f"header_fallback:{name.lower()}")
        return [decode_raw(v) for v in raw_values(msg, name)]
