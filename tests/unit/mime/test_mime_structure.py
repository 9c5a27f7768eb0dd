"""The structure parser splits messages exactly as the stdlib feed parser (compat32) does.

The property builds messages from the pieces malformed mail is made of (missing or repeated
delimiters, delimiters that prefix each other, header lines without a colon, continuation and
mbox "From " lines, bare CR and LF line ends, digests, delivery-status blocks) and compares the
part trees: headers as sent, content types, the defects the stdlib records, bodies.
"""

from __future__ import annotations

import re
from email.parser import BytesParser
from email.policy import compat32
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbridge.mime import normalize
from mailbridge.mime.parse import _repair
from mailbridge.mime.structure import MAX_DEPTH, Part, TooComplex, parse_structure

EOLS = [b"\r\n", b"\n", b"\r"]
BOUNDARIES = [b"b", b"b1", b"bb", b"=_x", b"b 2"]
HEADER_LINES = [
    b"Subject: hello",
    b"X-Thing: a;b",
    b" continued",
    b"\tcontinued",
    b"From someone",
    b"Not a header",
    b":no name",
    b"Content-Transfer-Encoding: base64",
    b"Content-Disposition: attachment; filename=a.txt",
    b"X-Empty:",
    b"X-Spaces: \t a  ",
    b"X-8bit: \xe9t\xe9",
    b" ",
]
BODY_LINES = [b"text", b"", b"--", b"--b", b"--b--", b"--b1", b"- b", b"From x", b"Key: value", b"\xe9t\xe9"]
LEAF_TYPES = [b"text/plain", b"text/html", b"application/pdf", b"message/delivery-status", None]


@st.composite
def contents(draw: st.DrawFn, depth: int) -> tuple[bytes | None, bytes]:
    """(its own Content-Type line or None, the body), lines joined by "\\x01"."""
    lines = draw(st.lists(st.sampled_from(BODY_LINES), max_size=4))
    if depth < 3 and draw(st.booleans()):
        boundary = draw(st.sampled_from(BOUNDARIES))
        kind = draw(st.sampled_from([b"mixed", b"alternative", b"digest"]))
        parts = draw(st.lists(entities(depth + 1), max_size=3))
        out = [*lines]
        for part in parts:
            out.append(b"--" + boundary + draw(st.sampled_from([b"", b" ", b"\t ", b"--x"])))
            if draw(st.integers(0, 5)) == 0:
                out.append(b"--" + boundary)  # a repeated delimiter
            out.append(part)
        if draw(st.integers(0, 3)):
            out.append(b"--" + boundary + b"--")
        out.extend(draw(st.lists(st.sampled_from(BODY_LINES), max_size=2)))
        return b"Content-Type: multipart/" + kind + b'; boundary="' + boundary + b'"', b"\x01".join(out)
    if draw(st.integers(0, 6)) == 0:
        return b"Content-Type: message/rfc822", draw(entities(depth + 1))
    return None, b"\x01".join(lines)


@st.composite
def entities(draw: st.DrawFn, depth: int = 0) -> bytes:
    """One entity, "\\x01" standing for its line ends."""
    headers = draw(st.lists(st.sampled_from(HEADER_LINES), max_size=4))
    own_type, body = draw(contents(depth))
    leaf = draw(st.sampled_from(LEAF_TYPES))
    if own_type is not None:
        # Last: a continuation line after it would fold it, and folded values are unfolded first
        # on purpose (a boundary folded onto the next line is still the boundary).
        headers.append(own_type)
    elif leaf is not None:
        headers.append(b"Content-Type: " + leaf)
    # No blank line after the headers of a leaf: MissingHeaderBodySeparatorDefect.
    separator = draw(st.sampled_from([b"\x01", b""])) if own_type is None else b"\x01"
    return b"\x01".join(headers) + b"\x01" + separator + body


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    raw = draw(entities())
    eol = draw(st.sampled_from(EOLS))
    mixed = draw(st.booleans())
    pieces = raw.split(b"\x01")
    if not mixed:
        return eol.join(pieces)
    ends = draw(st.lists(st.sampled_from(EOLS), min_size=len(pieces), max_size=len(pieces)))
    # A bare CR before an empty line ended by LF would read as one CRLF: the empty line (the end
    # of a header block) would vanish and a Content-Type meant to end its block could be folded
    # by the next entity's continuation line, which the parsers unfold differently on purpose
    # (see `entities`). Such a CR is written as CRLF, so every empty line stays one.
    for i in range(len(pieces) - 1):
        if ends[i] == b"\r" and pieces[i + 1] == b"" and ends[i + 1].startswith(b"\n"):
            ends[i] = b"\r\n"
    return b"".join(piece + end for piece, end in zip(pieces, ends, strict=True))


def stdlib_tree(raw: bytes) -> list[Any]:
    out = []
    for part in BytesParser(policy=compat32).parsebytes(raw).walk():
        if part.is_multipart():
            body = None
        else:
            payload = vars(part)["_payload"]  # as parsed (get_payload() would decode 8-bit text)
            body = payload.encode("ascii", "surrogateescape") if isinstance(payload, str) else b""
        defects = [type(d).__name__ for d in part.defects]
        out.append((part.items(), part.get_content_type(), defects, body, part.get_default_type()))
    return out


def our_tree(raw: bytes) -> list[Any]:
    out = []
    for part in parse_structure(raw).walk():
        assert isinstance(part, Part)
        body = None if part.is_multipart() else part.body
        out.append((part.items(), part.ctype, part.defect_names, body, part.get_default_type()))
    return out


@settings(
    max_examples=300,
    database=None,
    deadline=None,  # no wall-clock limit in a unit test (a loaded machine exceeded the default)
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(messages())
def test_parts_headers_defects_and_bodies_are_the_feed_parsers(raw):
    # Given any message built from well-formed and malformed pieces
    # When both parsers split it, Then they agree part by part
    assert our_tree(raw) == stdlib_tree(raw)


def test_an_embedded_message_is_kept_byte_for_byte():
    # Given a forwarded message with folded headers and CRLF line ends inside a multipart
    inner = (
        b"From: a@example.com\r\nSubject: a long subject that\r\n was folded by the sender\r\n"
        b"Content-Type: text/plain\r\n\r\nbody line\r\n"
    )
    raw = (
        b'From: b@example.com\r\nContent-Type: multipart/mixed; boundary="x"\r\n\r\n'
        b"--x\r\nContent-Type: text/plain\r\n\r\nsee below\r\n"
        b"--x\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"\r\n--x--\r\n"
    )

    # When it is normalized
    result = normalize(raw)

    # Then the attachment is the inner message exactly as sent (not re-serialized)
    ((meta, data),) = result.attachments
    assert meta.content_type == "message/rfc822"
    assert data == inner


def test_nesting_deeper_than_the_bound_is_too_complex():
    # Given message/rfc822 parts nested MAX_DEPTH levels deep, and one level more
    def nested(levels: int) -> bytes:
        return b"Content-Type: message/rfc822\n\n" * levels + b"Subject: innermost\n\nx"

    # Then the first is read to the innermost part and the second refused (normalize: too_complex)
    innermost = list(parse_structure(nested(MAX_DEPTH)).walk())[-1]
    assert innermost["Subject"] == "innermost"
    with pytest.raises(TooComplex):
        parse_structure(nested(MAX_DEPTH + 1))


_REFERENCE_HEADER_END = re.compile(rb"\r?\n\r?\n")
_REFERENCE_OBS_FIELD = re.compile(rb"(?m)^([!-9;-~]+)[ \t]+:")
_REFERENCE_BARE_CR = re.compile(rb"\r(?!\n)")


def _reference_repair(raw: bytes) -> tuple[bytes, list[str]]:
    """parse._repair written with the patterns as RFC 5322 states them (slower to search)."""
    defects: list[str] = []
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
        defects.append("utf8_bom")
    end = _REFERENCE_HEADER_END.search(raw)
    head = raw[: end.start()] if end else raw
    fixed = head
    if b"\r" in fixed and b"\n" in raw and _REFERENCE_BARE_CR.search(fixed):
        fixed = _REFERENCE_BARE_CR.sub(b" ", fixed)
        defects.append("bare_cr_in_header")
    if _REFERENCE_OBS_FIELD.search(fixed):
        fixed = _REFERENCE_OBS_FIELD.sub(rb"\1:", fixed)
        defects.append("obsolete_header_syntax")
    return fixed + raw[len(head) :], defects


@settings(max_examples=500, database=None, deadline=None)  # no wall-clock limit in a unit test
@given(
    st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b"A", b"Subject", b" ", b"\t", b":", b"x"]), max_size=24)
)
def test_the_header_block_repair_finds_the_blank_line_and_obsolete_fields_as_rfc_5322_says(pieces):
    # Given any run of header-ish bytes and line ends (CR, LF, CRLF, blanks before colons)
    raw = b"".join(pieces)
    # When the header block is repaired, Then the result and the defects are those of the
    # patterns written as RFC 5322 states them
    defects: list[str] = []
    assert (_repair(raw, defects), defects) == _reference_repair(raw)
