"""Inputs that cannot become a message raise one MimeError with a machine-readable code."""

from __future__ import annotations

import pytest

from mailbridge.errors import Invalid
from mailbridge.mime import MimeError, normalize
from mailbridge.mime import parse as parse_module


def test_empty_input_is_rejected_as_empty(eml):
    for raw in (b"", eml("empty.eml")):
        with pytest.raises(MimeError) as caught:
            normalize(raw)
        assert caught.value.code == "empty"


def test_binary_garbage_is_not_rfc822(eml):
    with pytest.raises(MimeError) as caught:
        normalize(eml("not_mime.eml"))

    assert caught.value.code == "not_rfc822"
    assert isinstance(caught.value, Invalid)


def test_an_outlook_msg_file_is_named_as_such():
    with pytest.raises(MimeError) as caught:
        normalize(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64)

    assert caught.value.code == "not_rfc822"
    assert "Outlook" in caught.value.message


def test_oversized_input_is_too_large(eml):
    with pytest.raises(MimeError) as caught:
        normalize(eml("no_date.eml"), max_size=10)

    assert caught.value.code == "too_large"


def test_deeply_nested_multiparts_are_too_complex():
    # Given 100 levels of multipart/mixed
    depth = 100
    head = "".join(f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n' for i in range(depth))
    tail = "".join(f"\r\n--b{i}--\r\n" for i in reversed(range(depth)))
    raw = (
        "From: a@example.com\r\nMIME-Version: 1.0\r\n" + head + "Content-Type: text/plain\r\n\r\nx" + tail
    ).encode()

    with pytest.raises(MimeError) as caught:
        normalize(raw)

    assert caught.value.code == "too_complex"


def test_an_unexpected_parser_failure_becomes_unparseable(eml, monkeypatch):
    # Given a bug deep inside the parser
    def explode(*_args, **_kwargs):
        raise KeyError("internal")

    monkeypatch.setattr(parse_module, "choose_bodies", explode)

    # Then it reaches the caller only as MimeError, with the type but not the text
    with pytest.raises(MimeError) as caught:
        normalize(eml("no_date.eml"))
    assert caught.value.code == "unparseable"
    assert caught.value.message == "parser failure: KeyError"


def test_obsolete_space_before_colon_headers_are_read():
    raw = b"Subject : spaced out\r\nFrom  : a@example.com\r\n\r\nbody\r\n"

    msg = normalize(raw).message

    assert msg.subject == "spaced out"
    assert msg.from_[0].address == "a@example.com"
    assert "obsolete_header_syntax" in msg.defects


def test_a_utf8_bom_before_the_headers_is_ignored():
    msg = normalize(b"\xef\xbb\xbfSubject: bom\r\n\r\nbody").message

    assert msg.subject == "bom"
