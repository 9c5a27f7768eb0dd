"""Shared field types: every piece of text a client sends passes one of these at the boundary.

Validate once, where the value enters (request models), with the same rule everywhere:

- `SingleLine`: a name, a title, a subject. No control characters at all: C0 (U+0000-U+001F,
  CR and LF included), DEL, C1 (U+0080-U+009F), the Unicode line and paragraph separators
  (U+2028, U+2029), and the bidirectional overrides and isolates (U+202A-U+202E, U+2066-U+2069)
  that make text display differently from what it says ("Trojan Source", CVE-2021-42574).
- `MultiLine`: a body, a note, a description. Tab, LF and CR allowed; every other control
  character refused as above.
- `HeaderText`: a value that ends up in a mail header (subject, display name, file name).
  `SingleLine`, and in addition the RFC 2047 decoded form (RFC 2047 section 6, decoded up to
  `MAX_DECODE_ROUNDS` times, so an encoded word inside an encoded word is seen too) must be
  single-line: `=?utf-8?b?SGkNCkJjYzogeEBldmlsLmV4YW1wbGU=?=` decodes to a CR LF and a second
  header, and a MIME library that decodes on parse would write it out as one.
- `FolderName`: an IMAP mailbox name (RFC 3501 section 5.1): 1-200 characters, no control
  characters, no leading or trailing space, not only dots or slashes.

Identifiers checked in Python use `re.fullmatch` (a `$` also matches before a trailing newline);
pydantic's `pattern` (a Rust regex, where `$` is the end of the text) is safe as it is.

Every refusal is a pydantic error whose `type` says which rule (`control_characters`,
`header_injection`, `invalid_folder_name`), so the API answers 422 with
machine-readable details and never echoes the value back.
"""

from __future__ import annotations

import re
from email.errors import HeaderParseError
from email.header import decode_header
from typing import Annotated

from pydantic import AfterValidator, StringConstraints
from pydantic_core import PydanticCustomError

MAX_DECODE_ROUNDS = 3

# C0 except TAB/LF/CR, DEL, C1, line/paragraph separators, bidi embeddings/overrides/isolates.
_CONTROL_MULTI = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_CONTROL_SINGLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


def has_control(value: str, *, allow_newlines: bool = False) -> bool:
    """True when `value` holds a character the field rules above refuse."""
    pattern = _CONTROL_MULTI if allow_newlines else _CONTROL_SINGLE
    return pattern.search(value) is not None


def decoded_header_value(value: str) -> str:
    """`value` with RFC 2047 encoded words decoded (unknown charsets: replacement characters).

    Decodes up to MAX_DECODE_ROUNDS times: what a lenient reader could end up showing or
    writing back. Never raises.
    """
    current = value
    for _ in range(MAX_DECODE_ROUNDS):
        if not _ENCODED_WORD.search(current):
            break
        try:
            parts = decode_header(current)
        except (HeaderParseError, ValueError, LookupError):
            break
        decoded = "".join(
            chunk.decode(_charset(charset), "replace") if isinstance(chunk, bytes) else chunk
            for chunk, charset in parts
        )
        if decoded == current:
            break
        current = decoded
    return current


def _charset(name: str | None) -> str:
    import codecs

    try:
        return codecs.lookup(name or "ascii").name
    except LookupError:
        return "ascii"


def _no_control_single(value: str) -> str:
    if has_control(value):
        raise PydanticCustomError("control_characters", "control characters are not allowed here")
    return value


def _no_control_multi(value: str) -> str:
    if has_control(value, allow_newlines=True):
        raise PydanticCustomError(
            "control_characters", "control characters other than tab and line breaks are not allowed"
        )
    return value


def check_header_value(value: str) -> str:
    """The `header_text` rule as a plain function (ValueError-compatible pydantic error)."""
    _no_control_single(value)
    if has_control(decoded_header_value(value)):
        raise PydanticCustomError(
            "header_injection", "the value decodes (RFC 2047) to control characters or line breaks"
        )
    return value


# Lengths are per use: `Annotated[SingleLine, Field(max_length=200)]`.
SingleLine = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(_no_control_single)]
"""Stripped; no control characters (a name, a title, a tag)."""

MultiLine = Annotated[str, AfterValidator(_no_control_multi)]
"""Tab, LF and CR allowed; other control characters refused (a body, a note)."""

HeaderText = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(check_header_value)]
"""Written into a mail header: single-line before and after RFC 2047 decoding."""


_FOLDER_ONLY_SEPARATORS = re.compile(r"[./\s]+")


def _folder_name(value: str) -> str:
    _no_control_single(value)
    if value != value.strip():
        raise PydanticCustomError("invalid_folder_name", "a folder name cannot start or end with a space")
    if _FOLDER_ONLY_SEPARATORS.fullmatch(value):
        raise PydanticCustomError("invalid_folder_name", "a folder name needs more than separators")
    return value


FolderName = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_folder_name)]
