"""Header values as text: unfolding (RFC 5322 section 2.2.3), RFC 2047 encoded words, raw 8-bit.

Values come from `structure.Part` as sent: folding kept, 8-bit bytes as surrogate escapes. Decoding
happens here, only for the headers that are read, with the one charset lookup of `text.py`.

Why not `email.header.decode_header`: it splits the value at line ends, which loses the space
between plain text and an encoded word folded onto the next line ("Re:" + fold + word -> "Re:x");
it fails the whole value on one bad base64 word; and it turns raw 8-bit text into
`raw-unicode-escape` sequences. `policy.default`'s header objects decode correctly but cost most
of the normalizer's time (and hundreds of MB on a 200 KB header). The rules here are RFC 2047's:
an encoded word is `=?charset?B|Q?text?=` (section 2; an RFC 2231 `*language` suffix on the
charset is ignored), whitespace between two encoded words is not displayed (section 6.2), and
adjacent words in one charset are joined as octets before decoding, so a character split across
two words (common from real mailers) survives.
"""

from __future__ import annotations

import base64
import binascii
import re

from mailbridge.mime.text import clean_header_text, decode_bytes, unsurrogate

_SURROGATE = re.compile(r"[\udc80-\udcff]")
_ENCODED_WORD = re.compile(r"=\?([^?\s]*)\?([bBqQ])\?([^?]*)\?=")
_Q_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_FOLD = re.compile(r"\r\n|\r|\n")
_FOLDING = re.compile(r"(?:\r\n|\r|\n)(?=[ \t])")


def raw_values(part: object, name: str) -> list[str]:
    """Every `name` header of a part, raw (folding kept, 8-bit bytes as surrogate escapes)."""
    # structure.Part's index by lower-cased name (Part.header_values, without the method call:
    # this runs dozens of times per message).
    index: dict[str, list[str]] | None = getattr(part, "_index", None)
    if index is not None:
        return index.get(name.lower(), [])
    # A stdlib Message (RFC 3464 blocks read from a decoded body).
    lname = name.lower()
    headers: list[tuple[str, str]] = getattr(part, "_headers", [])
    return [str(v) for k, v in headers if k.lower() == lname]


def header_names(part: object) -> set[str]:
    """The lower-cased names of the headers a part has."""
    try:
        names: set[str] = part.header_names()  # type: ignore[attr-defined]
    except AttributeError:
        return {str(k).lower() for k, _ in getattr(part, "_headers", [])}
    return names


def unfold(value: str) -> str:
    """RFC 5322 section 2.2.3: a line end inside a field body is folding; the WSP after it stays.
    A line end without WSP after it cannot be in a parsed value except as a bare CR (RFC 5322
    section 2.2: lines end only at CRLF), which reads as a space."""
    if "\n" not in value and "\r" not in value:
        return value
    # Folding first, with a plain replacement (no per-match callback): the line ends followed by
    # WSP, which in a header value as sent are all of them. Removing one joins a WSP to what was
    # before it, so the line ends left over are exactly the others.
    value = _FOLDING.sub("", value)
    if "\n" not in value and "\r" not in value:
        return value
    return _FOLD.sub(" ", value)


def _b(text: str) -> bytes:
    """RFC 2047 section 4.1 ("B"), tolerant of missing padding and stray characters the way
    email._encoded_words.decode_b is."""
    data = text.encode("ascii", "surrogateescape")
    pad = len(data) % 4
    try:
        return base64.b64decode(data + b"==="[: 4 - pad] if pad else data, validate=True)
    except binascii.Error:
        try:
            return base64.b64decode(data + b"==", validate=False)
        except binascii.Error:
            return data


def _q(text: str) -> bytes:
    """RFC 2047 section 4.2 ("Q"): "_" is a space, "=XX" an octet; any other "=" stays."""
    data = text.encode("ascii", "surrogateescape")
    if b"=" not in data:
        return data.replace(b"_", b" ")
    if not (b"==" in data or data.endswith(b"=") or b"\r" in data or b"\n" in data):
        # binascii's quoted-printable decoder in header mode does exactly the above in C except
        # for soft line breaks ("=" at a line end or the end) and "==" (read as one "="), which
        # are excluded here.
        return binascii.a2b_qp(data, header=True)
    data = data.replace(b"_", b" ")
    return _Q_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), data)


def decode_words(value: str) -> str:
    """Decode the RFC 2047 encoded words in `value` (unfolded, raw 8-bit already decoded)."""
    if "=?" not in value:
        return value
    out: list[str] = []
    pending: list[bytes] = []
    pending_charset: str | None = None
    position = 0

    def flush() -> None:
        nonlocal pending, pending_charset
        if pending:
            text, _ = decode_bytes(b"".join(pending), pending_charset)
            out.append(text)
        pending, pending_charset = [], None

    for word in _ENCODED_WORD.finditer(value):
        between = value[position : word.start()]
        charset = word.group(1).lower().split("*", 1)[0]
        if between and not (pending and between.isspace()):
            flush()
            out.append(between)
        elif pending and charset != pending_charset:
            flush()
        octets = _b(word.group(3)) if word.group(2) in "bB" else _q(word.group(3))
        pending.append(octets)
        pending_charset = charset
        position = word.end()
    flush()
    out.append(value[position:])
    return "".join(out)


def decode_raw(value: str) -> str:
    """A raw header value as clean single-line text: unfolded, 8-bit decoded, words decoded."""
    text = unfold(value)
    if _SURROGATE.search(text):
        text = unsurrogate(text)
    return clean_header_text(decode_words(text))


def has_raw_8bit(value: str) -> bool:
    return _SURROGATE.search(value) is not None


def header_text(part: object, name: str, defects: list[str]) -> str | None:
    """The first `name` header as clean unicode text, or None when absent."""
    raws = raw_values(part, name)
    if not raws:
        return None
    if has_raw_8bit(raws[0]):
        # Unencoded 8-bit header bytes (RFC 6532 allows UTF-8; older mailers send anything):
        # the charset is detected.
        defects.append(f"header_8bit:{name.lower()}")
    return decode_raw(raws[0])


def header_texts(part: object, name: str, defects: list[str]) -> list[str]:
    raws = raw_values(part, name)
    if any(has_raw_8bit(v) for v in raws):
        defects.append(f"header_8bit:{name.lower()}")
    return [decode_raw(v) for v in raws]
