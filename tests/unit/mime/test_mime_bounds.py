"""What one message may expand to is bounded; past a bound it is quarantined with a reason code
(MimeError.code), except an oversized winmail.dat, which is kept unopened."""

from __future__ import annotations

import pytest

from mailbridge.mime import MimeError, normalize
from mailbridge.mime import parse as parse_module
from mailbridge.mime.structure import MAX_PARTS as MAX_STRUCTURE_PARTS


def multipart(parts: list[bytes]) -> bytes:
    body = b"".join(b"--b\r\n" + part + b"\r\n" for part in parts)
    return b'From: a@example.com\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n' + body + b"--b--\r\n"


def code_of(raw: bytes) -> str:
    with pytest.raises(MimeError) as caught:
        normalize(raw)
    return caught.value.code


def test_an_html_body_past_the_bound_is_too_large():
    html = b"<p>" + b"x" * parse_module.MAX_HTML_CHARS + b"</p>"
    raw = b"From: a@example.com\r\nContent-Type: text/html\r\n\r\n" + html

    assert code_of(raw) == "too_large"


def test_an_html_body_within_the_bound_is_read():
    html = b"<p>" + b"x" * (parse_module.MAX_HTML_CHARS - 10) + b"</p>"
    raw = b"From: a@example.com\r\nContent-Type: text/html\r\n\r\n" + html

    assert normalize(raw).message.snippet.startswith("xxx")


def test_decoded_text_past_the_bound_is_too_large():
    # Given text parts that together decode to more characters than allowed
    half = b"Content-Type: text/plain\r\n\r\n" + b"y" * (parse_module.MAX_TEXT_CHARS // 2 + 1)

    assert code_of(multipart([half, half])) == "too_large"


def test_an_address_field_past_the_bound_is_too_large():
    many = ", ".join(f"p{i}@example.com" for i in range(parse_module.MAX_ADDRESS_CHARS // 15 + 1))

    assert code_of(f"From: a@example.com\r\nTo: {many}\r\n\r\nx".encode()) == "too_large"


def test_decoded_parts_past_the_bound_are_too_large(monkeypatch):
    # Given attachments that decode to more octets than allowed (the bound lowered for the test)
    monkeypatch.setattr(parse_module, "MAX_DECODED_BYTES", 1000)
    part = b"Content-Type: application/octet-stream\r\n\r\n" + b"z" * 600

    assert len(normalize(multipart([part])).attachments) == 1
    assert code_of(multipart([part, part])) == "too_large"


def test_more_parts_than_the_structure_bound_are_too_complex():
    # Given a forwarded message with many parts (the walk does not count an embedded message's)
    def forwarding(count: int) -> bytes:
        inner = multipart([b"\r\nx"] * count).replace(b'boundary="b"', b'boundary="i"')
        inner = inner.replace(b"--b", b"--i")
        return multipart(
            [b"Content-Type: text/plain\r\n\r\nsee below", b"Content-Type: message/rfc822\r\n\r\n" + inner]
        )

    # Then a few thousand parts are read, past the bound the message is too complex
    assert normalize(forwarding(3000)).attachments[0][0].content_type == "message/rfc822"
    assert code_of(forwarding(MAX_STRUCTURE_PARTS)) == "too_complex"


def test_more_read_parts_than_the_walk_bound_are_too_complex():
    part = b"Content-Type: application/octet-stream\r\n\r\nz"

    normalize(multipart([part] * (parse_module.MAX_PARTS - 1)))
    assert code_of(multipart([part] * parse_module.MAX_PARTS)) == "too_complex"


def test_an_oversized_winmail_dat_is_kept_unopened(eml, monkeypatch):
    # Given an Outlook message whose winmail.dat is larger than the unpacking bound
    monkeypatch.setattr(parse_module, "MAX_TNEF_BYTES", 10)

    # When it is normalized
    msg = normalize(eml("tnef_winmail.eml")).message

    # Then winmail.dat is one opaque attachment and the defect says why
    assert [(a.filename, a.from_tnef) for a in msg.attachments] == [("winmail.dat", False)]
    assert "tnef_too_large" in msg.defects
