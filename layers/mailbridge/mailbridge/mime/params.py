"""MIME header parameters: RFC 2045 section 5.1 (`type/sub; name=value`), RFC 2231 (charsets,
languages and continuations), read leniently and one parameter at a time.

- Parameters are split at `;` outside quoted strings; names are case-insensitive; a quoted value
  loses its quotes and quoted pairs.
- RFC 2231: `name*=charset'lang'%XX...` is extended; `name*0`, `name*1*` ... are sections. The
  sections are put in order and joined as octets before anything is decoded (RFC 2231 section
  4.1: a stateful charset such as ISO-2022-JP spans sections, so decoding each on its own breaks
  its escape sequences); the charset of section 0 then decodes the whole, through the same charset
  lookup as bodies and RFC 2047 words (`text.known_codec`).
- The first occurrence of a name wins (as the stdlib's `get_param` does).
- One parameter that cannot be read (more than MAX_SECTIONS sections, anything that fails) is
  left out and named in `defects` (`parameter_unreadable:<name>`); it never costs the message.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from mailbridge.mime.headers import raw_values, unfold
from mailbridge.mime.text import decode_bytes, unsurrogate

_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
# One parameter: quoted strings (a `;` inside does not end it; unterminated runs to the end) and
# anything else but `;`. Runs are taken whole and never given back (possessive): the same match
# as one character at a time, with a fraction of the engine's steps and no backtracking.
_PIECE = re.compile(r'(?:"(?:[^"\\]++|\\.)*+(?:"|\Z)|[^;"]++)*+', re.DOTALL)
# More sections than this in one parameter is no file name a sender wrote: left out.
MAX_SECTIONS = 100


def _split(value: str) -> list[str]:
    """email.message._parseparam: `;`-separated pieces, a `;` inside quotes not counting."""
    if '"' not in value:
        return value.split(";")
    pieces: list[str] = []
    position = 0
    while True:
        piece = _PIECE.match(value, position)
        end = piece.end() if piece else position
        pieces.append(value[position:end])
        if end >= len(value):
            return pieces
        position = end + 1


def _unquote(value: str) -> str:
    value = value.strip()
    if not value.startswith('"'):
        return value
    inner = value[1:-1] if len(value) > 1 and value.endswith('"') else value[1:]
    return _QUOTED_PAIR.sub(r"\1", inner) if "\\" in inner else inner


def _octets(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _rfc2231(sections: list[tuple[int, bool, str]]) -> str:
    """Join the sections (number, extended, raw value) as octets, then decode with one charset."""
    if len(sections) > MAX_SECTIONS:
        raise ValueError("too many RFC 2231 sections")
    sections.sort(key=lambda s: s[0])
    charset: str | None = None
    octets: list[bytes] = []
    for index, (_, extended, raw) in enumerate(sections):
        text = _unquote(raw)  # quotes are not allowed around extended values; some mailers add them
        if extended:
            if index == 0 and text.count("'") >= 2:
                charset, _, encoded = text.split("'", 2)
            else:
                encoded = text
            # Raw 8-bit octets among the %XX escapes (surrogate escapes here) stay those octets.
            octets.append(unquote_to_bytes(encoded.encode("ascii", "surrogateescape")))
        else:
            octets.append(_octets(text))
    decoded, _ = decode_bytes(b"".join(octets), charset or None)
    return decoded


def parameters(value: str, defects: list[str], *, raw_8bit: bool = False) -> dict[str, str]:
    """The parameters of one header value (the part before the first `;` is not one).

    Raw 8-bit octets in a plain value are decoded as text unless `raw_8bit` (then they stay
    surrogate escapes, as a boundary must, to be compared with the body's octets)."""
    plain: dict[str, str] = {}
    extended: dict[str, list[tuple[int, bool, str]]] = {}
    for piece in _split(unfold(value))[1:]:
        name, sep, raw = piece.partition("=")
        name = name.strip().lower()
        if not name:
            continue
        if "*" not in name:
            if name not in extended:
                plain.setdefault(name, _unquote(raw) if sep else "")
            continue
        base, _, rest = name.partition("*")
        number = rest.rstrip("*")
        section = int(number) if number.isdigit() else 0
        if base not in plain:
            extended.setdefault(base, []).append((section, rest.endswith("*") or rest == "", raw.strip()))
    out: dict[str, str] = {}
    for name, text in plain.items():
        out[name] = text if raw_8bit else unsurrogate(text)
    for name, sections in extended.items():
        try:
            out[name] = _rfc2231(sections)
        except Exception:  # noqa: BLE001 - one unreadable parameter is left out, never the message
            defects.append(f"parameter_unreadable:{name}")
    return out


def param(part: object, header: str, name: str, defects: list[str], *, raw_8bit: bool = False) -> str | None:
    """Parameter `name` of the first `header` header of a part, or None."""
    # structure.Part keeps what it has read (param_cache, None until then); a stdlib Message
    # (no such attribute) is read every time.
    cache: dict[tuple[str, bool], dict[str, str]] | None = None
    if hasattr(part, "param_cache"):
        cache = part.param_cache
        if cache is None:
            cache = part.param_cache = {}
    key = (header.lower(), raw_8bit)
    parsed = cache.get(key) if cache is not None else None
    if parsed is None:
        values = raw_values(part, header)
        if not values:
            return None
        parsed = parameters(values[0], defects, raw_8bit=raw_8bit)
        if cache is not None:
            cache[key] = parsed
    return parsed.get(name.lower())
