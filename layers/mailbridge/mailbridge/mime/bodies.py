"""Text and HTML bodies: which parts they are, their octets, and their text under a trustworthy
charset."""

from __future__ import annotations

import base64
import binascii
import quopri
from collections.abc import Iterable, Iterator
from email.message import Message

from mailbridge.mime.attachments import disposition
from mailbridge.mime.headers import raw_values, unfold
from mailbridge.mime.params import param
from mailbridge.mime.structure import Part
from mailbridge.mime.text import clean_body_text, decode_bytes

SNIPPET_LENGTH = 200
_UUENCODE = {"x-uuencode", "uuencode", "uue", "x-uue"}


def transfer_encoding(part: Part) -> str:
    """RFC 2045 section 6.1 Content-Transfer-Encoding, lower-cased ("" when absent)."""
    values = raw_values(part, "Content-Transfer-Encoding")
    return unfold(values[0]).strip().lower() if values else ""


def _base64(data: bytes, defects: list[str]) -> bytes:
    """RFC 2045 section 6.8, as leniently as the stdlib (email._encoded_words.decode_b): missing
    padding added, characters outside the alphabet skipped, and the input kept when nothing
    decodes; each repair named in `defects` with the stdlib's defect names."""
    encoded = data.translate(None, b"\r\n")  # the line ends out (bytes lines end only at CR, LF)
    pad = len(encoded) % 4
    try:
        decoded = base64.b64decode(encoded + b"==="[: 4 - pad] if pad else encoded, validate=True)
    except binascii.Error:
        pass
    else:
        if pad:
            defects.append("InvalidBase64PaddingDefect")
        return decoded
    try:
        decoded = base64.b64decode(encoded, validate=False)
    except binascii.Error:
        pass
    else:
        defects.append("InvalidBase64CharactersDefect")
        return decoded
    try:
        decoded = base64.b64decode(encoded + b"==", validate=False)
    except binascii.Error:
        defects.append("InvalidBase64LengthDefect")
        return encoded
    defects.extend(("InvalidBase64CharactersDefect", "InvalidBase64PaddingDefect"))
    return decoded


def _uudecode(data: bytes) -> bytes:
    """uuencode bodies go through the stdlib's own reader (rare: not worth a copy of it)."""
    carrier = Message()
    carrier["Content-Transfer-Encoding"] = "x-uuencode"
    carrier.set_payload(data.decode("ascii", "surrogateescape"))
    decoded = carrier.get_payload(decode=True)
    return decoded if isinstance(decoded, bytes) else data


def decode_transfer(data: bytes, encoding: str, defects: list[str]) -> bytes:
    """Octets of a body in `encoding` (base64, quoted-printable, uuencode; anything else is
    taken as it is, like 7bit/8bit/binary)."""
    if encoding == "base64":
        return _base64(data, defects)
    if encoding == "quoted-printable":
        return quopri.decodestring(data)
    if encoding in _UUENCODE:
        return _uudecode(data)
    return data


def part_bytes(part: Part, defects: list[str]) -> bytes:
    """The decoded octets of a leaf part (multiparts and embedded messages have none here)."""
    if part.is_multipart():
        return b""
    return decode_transfer(part.body, transfer_encoding(part), defects)


def embedded_message(part: Part, defects: list[str]) -> bytes:
    """A `message/*` part's message as sent (a transfer encoding, if a sender used one against
    RFC 2046 section 5.2.1, removed)."""
    return decode_transfer(part.embedded(), transfer_encoding(part), defects)


def charset(part: Part, defects: list[str]) -> str | None:
    value = param(part, "Content-Type", "charset", defects)
    if not value or not value.isascii():
        return None
    return value.lower()


def part_text(part: Part, defects: list[str]) -> str:
    text, fell_back = decode_bytes(part_bytes(part, defects), charset(part, defects))
    if fell_back:
        defects.append("charset_fallback")
    return clean_body_text(text)


def is_attachment_disposition(part: Part) -> bool:
    return disposition(part) == "attachment"


def _find_body(part: Part, subtype: str, defects: list[str]) -> Iterator[Part]:
    """email.message.MIMEPart._find_body (RFC 2046 and RFC 2387 rules) for one subtype."""
    if is_attachment_disposition(part):
        return
    maintype, _, sub = part.ctype.partition("/")
    if maintype == "text":
        if sub == subtype:
            yield part
        return
    if maintype != "multipart" or not part.is_multipart():
        return
    if sub != "related":
        for child in part.children:
            yield from _find_body(child, subtype, defects)
        return
    # multipart/related: only its root part (RFC 2387 section 3.2: `start`, else the first).
    start = param(part, "Content-Type", "start", defects)
    candidate = None
    if start:
        candidate = next(
            (
                c
                for c in part.children
                if [unfold(v).strip() for v in raw_values(c, "Content-ID")][:1] == [start]
            ),
            None,
        )
    if candidate is None and part.children:
        candidate = part.children[0]
    if candidate is not None:
        yield from _find_body(candidate, subtype, defects)


def choose_bodies(msg: Part, defects: list[str]) -> tuple[Part | None, Part | None]:
    """The text/plain and text/html parts a mail client would display: the first of each subtype
    outside attachments, alternatives and related parts read as RFC 2046/2387 say (what
    `EmailMessage.get_body(("plain",))` and `(("html",))` return)."""
    text = next(_find_body(msg, "plain", defects), None)
    html = next(_find_body(msg, "html", defects), None)
    return text, html


def _words_prefix(lines: Iterable[str], limit: int) -> str:
    """`collapse_ws("\\n".join(lines))`, but only as far as the first `limit` characters need (a
    body can be megabytes; a snippet is 200 characters)."""
    words: list[str] = []
    length = -1
    for line in lines:
        for word in line.split():
            words.append(word)
            length += len(word) + 1
            if length > limit:
                return " ".join(words)
    return " ".join(words)


def snippet(text: str | None) -> str:
    """The first SNIPPET_LENGTH characters of the text without quoted (`>`) lines, whitespace
    collapsed, cut at a word when one ends in the second half, with an ellipsis when cut."""
    if not text:
        return ""
    lines = (line for line in text.splitlines() if not line.lstrip().startswith(">"))
    collapsed = _words_prefix(lines, SNIPPET_LENGTH) or _words_prefix([text], SNIPPET_LENGTH)
    if len(collapsed) <= SNIPPET_LENGTH:
        return collapsed
    cut = collapsed[:SNIPPET_LENGTH]
    space = cut.rfind(" ")
    return (cut[:space] if space > SNIPPET_LENGTH // 2 else cut).rstrip() + "\u2026"
