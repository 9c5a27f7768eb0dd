"""Real-world MIME reports (../shared/cases/real-world-reports, inputs copied to
tests/fixtures/mime/real-world): each expected value, then the kind of input it stands for."""

from __future__ import annotations

import base64

import pytest

from mailbridge.mime import normalize
from mailbridge.mime.params import MAX_SECTIONS
from mailbridge.models.email import EmailAddress

# ----------------------------------------------------------------------------- 01 charset alias


def test_01_windows_874_subject_decodes_like_the_body(eml):
    # Given an encoded-word Subject in windows-874, a label Python only knows as cp874
    msg = normalize(eml("real-world/01-windows874-encoded-subject.eml")).message

    # Then it decodes to the Thai text the report expects, with no fallback
    assert msg.subject == "ใบเสนอราคา สัปดาห์นี้"
    assert "charset_fallback" not in msg.defects


@pytest.mark.parametrize(
    ("label", "codec", "text"),
    [
        ("windows-874", "cp874", "ใบเสนอราคา"),
        ("ks_c_5601-1987", "cp949", "견적서 보내드립니다"),
        ("gb2312", "gb18030", "报价单"),
        ("iso-8859-8-i", "iso-8859-8", "הצעת מחיר"),
        ("x-cp1251", "cp1251", "Коммерческое предложение"),
        ("x-mac-cyrillic", "mac_cyrillic", "Коммерческое предложение"),
        ("win-1250", "cp1250", "Nabídka zboží"),
    ],
)
def test_a_charset_label_means_the_same_in_a_header_word_and_in_the_body(label, codec, text):
    # Given a label mailers use that Python does not know as such, in a Subject word and the body
    octets = text.encode(codec)
    word = f"=?{label}?B?{base64.b64encode(octets).decode()}?="
    raw = (
        f"From: a@example.com\r\nSubject: {word}\r\nContent-Type: text/plain; charset={label}\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    ).encode() + octets

    # When it is normalized
    msg = normalize(raw).message

    # Then one charset lookup decodes both to the same text
    assert msg.subject == text
    assert msg.text_body == text
    assert "charset_fallback" not in msg.defects


@pytest.mark.parametrize("label", ["base64", "rot13", "zlib"])
def test_a_python_codec_that_is_no_charset_is_an_unknown_label_not_a_failure(label):
    # Given a charset label naming a bytes-to-bytes Python codec (bytes.decode refuses those)
    raw = (
        f"From: a@example.com\r\nSubject: =?{label}?q?hi?=\r\n"
        f"Content-Type: text/plain; charset={label}\r\n\r\nhello\r\n"
    )

    # When it is normalized, Then it is read as an unknown charset (it used to quarantine the mail)
    msg = normalize(raw.encode()).message

    assert (msg.subject, msg.text_body) == ("hi", "hello\n")


# ----------------------------------------------------------------- 02 RFC 2231 in a stateful charset


def test_02_rfc2231_sections_in_iso_2022_jp_are_joined_as_octets(eml):
    # Given a file name split into three RFC 2231 sections in ISO-2022-JP (escapes span sections)
    result = normalize(eml("real-world/02-rfc2231-iso2022jp-split-filename.eml"))

    # Then the message is not quarantined and the name is decoded whole
    msg = result.message
    assert msg.text_body is not None
    assert msg.text_body.startswith("Photo attached.")
    (attachment,) = msg.attachments
    assert attachment.content_type == "image/png"
    assert attachment.filename == "あいうえおあいうえおあいうえおあいうえお.png"


def test_a_utf8_character_split_across_name_sections_survives():
    # Given "€" (E2 82 AC) split between two sections of Content-Type `name`
    raw = (
        b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n"
        b"Content-Type: text/plain\r\n\r\nhi\r\n--x\r\n"
        b"Content-Type: application/octet-stream; name*0*=utf-8''%E2%82; name*1*=%AC.txt\r\n"
        b"\r\nx\r\n--x--\r\n"
    )

    (attachment,) = normalize(raw).message.attachments

    assert attachment.filename == "€.txt"


def test_one_unreadable_parameter_is_left_out_and_the_message_kept():
    # Given a file name in more RFC 2231 sections than any sender writes
    sections = "; ".join(f"filename*{i}=a" for i in range(MAX_SECTIONS + 1))
    raw = (
        "From: a@example.com\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n"
        "Content-Type: text/plain\r\n\r\nhi\r\n--x\r\n"
        f"Content-Type: application/pdf\r\nContent-Disposition: attachment; {sections}\r\n"
        "\r\n%PDF\r\n--x--\r\n"
    ).encode()

    # When it is normalized
    msg = normalize(raw).message

    # Then the attachment is kept without a name, and the parameter is named as a defect
    (attachment,) = msg.attachments
    assert (attachment.content_type, attachment.filename) == ("application/pdf", None)
    assert "parameter_unreadable:filename" in msg.defects
    assert msg.text_body == "hi"


# ------------------------------------------------------------ 07 an address used as display name


def test_07_the_mailbox_is_what_stands_between_the_angle_brackets(eml):
    msg = normalize(eml("real-world/07-unquoted-address-as-display-name.eml")).message

    assert [a.address for a in msg.from_] == ["ann.smith@mail.example.test"]
    assert msg.from_[0].name == "ann@example.test"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # quoted, the usual way to write it
        ('"ann@example.test" <ann.smith@example.test>', [("ann@example.test", "ann.smith@example.test")]),
        # CVE-2023-27043's shape: the mailbox is bob's, whatever the text before "<" says
        ("alice@example.org)<bob@example.com>", [("alice@example.org)", "bob@example.com")]),
        # a second angle address without a comma is not turned into a second person
        ("Ann <ann@example.test> <eve@example.test>", [("Ann", "ann@example.test")]),
        # an address inside a comment is no mailbox
        ("bob@example.com (ann@example.test)", [(None, "bob@example.com")]),
        # two addresses with the comma missing are two mailboxes, never one made of both
        ("ann@example.test bob@example.com", [(None, "ann@example.test"), (None, "bob@example.com")]),
        # more than one @ outside quotes: no usable mailbox
        ("ann@example.test@evil.example", []),
    ],
)
def test_malformed_address_lists_are_never_attributed_to_someone_else(value, expected):
    raw = f"From: {value}\r\nTo: {value}\r\nCc: x@example.net, {value}\r\n\r\nbody\r\n".encode()

    msg = normalize(raw).message

    assert [(a.name, a.address) for a in msg.from_] == expected
    assert [(a.name, a.address) for a in msg.to] == expected
    assert msg.cc == [
        EmailAddress(address="x@example.net"),
        *(EmailAddress(name=n, address=a) for n, a in expected),
    ]


# ---------------------------------------------------------------------- 08 bare CR in a header


def test_08_a_bare_cr_does_not_start_a_header_no_server_saw(eml):
    msg = normalize(eml("real-world/08-bare-cr-in-subject.eml")).message

    assert msg.cc == []
    assert msg.to == [EmailAddress(address="b@example.test")]
    assert msg.subject == "Invoice 42 Cc: intruder@example.test"
    assert "bare_cr_in_header" in msg.defects


@pytest.mark.parametrize(
    "header",
    [
        b"To: b@example.test\rBcc: intruder@example.test",
        b"To: b@example.test\rReply-To: intruder@example.test",
    ],
)
def test_no_bare_cr_in_the_header_block_adds_a_recipient_or_reply_target(header):
    raw = b"From: a@example.test\r\n" + header + b"\r\nSubject: s\r\n\r\nhello\r\n"

    msg = normalize(raw).message

    assert [a.address for a in msg.to] == ["b@example.test"]
    assert msg.bcc == []
    assert msg.reply_to == []


def test_mail_with_only_cr_line_ends_is_still_read_line_by_line():
    # Given old Mac mail: CR alone ends every line, no LF anywhere
    raw = b"From: a@example.test\rTo: b@example.test\rSubject: old mac\r\rhello\r"

    msg = normalize(raw).message

    assert (msg.subject, [a.address for a in msg.to]) == ("old mac", ["b@example.test"])
    assert msg.text_body == "hello\n"
