"""Bytes and strings from untrusted mail turned into clean `str`, whatever the declared charset says."""

from __future__ import annotations

import codecs
import re

from charset_normalizer import from_bytes

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATES = re.compile(r"[\ud800-\udfff]")
_WS = re.compile(r"\s+")
_WESTERN = {"cp1252", "latin_1", "iso8859_15"}
_TIE = 0.1

# Labels mailers send that Python does not know or knows under another name.
_ALIASES = {
    "unknown-8bit": "",
    "x-unknown": "",
    "unknown": "",
    "x-user-defined": "",
    "default": "",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "iso-8859-8-i": "iso-8859-8",
    "x-mac-roman": "mac_roman",
    "macintosh": "mac_roman",
    "windows-874": "cp874",
    "shift-jis": "shift_jis",
    "x-sjis": "shift_jis",
    "cp-850": "cp850",
}


def known_codec(label: str | None) -> str | None:
    if not label:
        return None
    name = label.strip().strip("\"'").lower()
    name = _ALIASES.get(name, name)
    if not name:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def decode_bytes(data: bytes, declared: str | None) -> tuple[str, bool]:
    """Decode `data`; returns the text and whether we had to ignore the declared charset.

    Order: the declared charset (strictly), UTF-8 (the most common mislabel target), the charset
    charset-normalizer detects, then cp1252 with replacement, which never fails.
    """
    codec = known_codec(declared)
    if codec is not None:
        try:
            return data.decode(codec), False
        except (UnicodeDecodeError, ValueError):
            pass
    if data.isascii():
        return data.decode("ascii"), codec is None and declared is not None
    try:
        return data.decode("utf-8"), True
    except UnicodeDecodeError:
        pass
    detected = _detect(data)
    if detected is not None:
        return detected, True
    return data.decode("cp1252", errors="replace"), True


def _detect(data: bytes) -> str | None:
    results = from_bytes(data)
    best = results.best()
    if best is None:
        return None
    # On short Western text the detector cannot tell cp1252 from cp1257/cp1250 (same chaos within
    # noise); cp1252 is by far the most common mislabel in real mail, so it wins such ties.
    western = next((m for m in results if _WESTERN & set(m.could_be_from_charset)), None)
    chosen = western if western is not None and western.chaos <= best.chaos + _TIE else best
    try:
        return str(chosen)
    except (UnicodeDecodeError, LookupError, ValueError):
        return None


def unsurrogate(value: str) -> str:
    """Undo the surrogateescape the stdlib parser applies to raw 8-bit header bytes."""
    if not _SURROGATES.search(value):
        return value
    raw = value.encode("utf-8", errors="surrogateescape")
    try:
        text, _ = decode_bytes(raw, None)
    except UnicodeEncodeError:
        text = _SURROGATES.sub("\ufffd", value)
    return _SURROGATES.sub("\ufffd", text)


def clean_header_text(value: str) -> str:
    """Single-line, printable, JSON-safe header text."""
    value = unsurrogate(value)
    value = _CONTROL.sub("", value)
    return _WS.sub(" ", value).strip()


def clean_body_text(value: str) -> str:
    value = unsurrogate(value)
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", value)


def collapse_ws(value: str) -> str:
    return _WS.sub(" ", value).strip()
