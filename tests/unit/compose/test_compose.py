"""compose_message, checked by parsing the output back with mailbridge.mime.normalize."""

from __future__ import annotations

import datetime as dt
import email
from email import policy
from email.message import EmailMessage

import pytest
from pydantic import ValidationError

from mailbridge.compose import (
    MAX_MESSAGE_BYTES,
    MAX_RECIPIENTS,
    ComposedMessage,
    Draft,
    OriginalMessage,
    OutgoingAttachment,
    compose_message,
)
from mailbridge.errors import Invalid
from mailbridge.mime import normalize
from mailbridge.models.email import EmailAddress

ALICE = EmailAddress(name="Alice Example", address="alice@example.com")
BOB = EmailAddress(name="Bob", address="bob@example.org")
CAROL = EmailAddress(address="carol@example.net")
DAVE = EmailAddress(address="dave@example.net")


def draft(**overrides: object) -> Draft:
    values: dict[str, object] = {"from_": ALICE, "to": [BOB], "subject": "Hello", "text": "Hi Bob\n"}
    values.update(overrides)
    return Draft.model_validate(values)


def headers(composed: ComposedMessage) -> EmailMessage:
    msg = email.message_from_bytes(composed.raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


ORIGINAL = OriginalMessage(
    message_id="<orig-3@example.org>",
    references=["<root@example.org>", "orig-2@example.org"],
    subject="Quarterly numbers",
    from_=BOB,
    to=[ALICE],
    date=dt.datetime(2024, 3, 1, 9, 30, tzinfo=dt.UTC),
    text="The numbers are in.\nSee attached.\n",
    raw=(
        b"From: Bob <bob@example.org>\r\nTo: alice@example.com\r\nSubject: Quarterly numbers\r\n"
        b"Message-ID: <orig-3@example.org>\r\n\r\nThe numbers are in.\r\n"
    ),
)


def test_plain_text_message_round_trips() -> None:
    # Given a simple draft
    composed = compose_message(draft(cc=[CAROL]), now=dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC))

    # When parsing it back
    parsed = normalize(composed.raw).message

    # Then every field survives
    assert parsed.subject == "Hello"
    assert parsed.from_ == [ALICE]
    assert parsed.to == [BOB]
    assert parsed.cc == [CAROL]
    assert parsed.text_body is not None
    assert parsed.text_body.strip() == "Hi Bob"
    assert parsed.html_body is None
    assert parsed.date == dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
    assert parsed.message_id == composed.message_id
    assert parsed.defects == []
    assert composed.raw.isascii()
    assert b"\r\n" in composed.raw
    assert b"\n" not in composed.raw.replace(b"\r\n", b"")


def test_message_id_is_in_the_sender_domain_and_reusable() -> None:
    first = compose_message(draft(from_=EmailAddress(address="Alice@Mail.Example.COM")))
    assert first.message_id.endswith("@mail.example.com")
    assert first.envelope_from == "Alice@mail.example.com"

    again = compose_message(draft(message_id="<fixed-1@example.com>"))
    assert again.message_id == "fixed-1@example.com"
    assert normalize(again.raw).message.message_id == "fixed-1@example.com"
    assert compose_message(draft()).message_id != compose_message(draft()).message_id


def test_html_only_gets_a_derived_text_alternative() -> None:
    composed = compose_message(draft(text=None, html="<h1>Title</h1><p>Para <b>bold</b></p>"))
    msg = headers(composed)
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    parsed = normalize(composed.raw).message
    assert parsed.text_body is not None
    assert "Title" in parsed.text_body
    assert "Para bold" in parsed.text_body
    assert parsed.html_body is not None
    assert "<b>bold</b>" in parsed.html_body


def test_attachments_and_inline_images_round_trip() -> None:
    # Given text, html with a cid image, and two files (one with a non-ASCII name)
    pdf = bytes(range(256)) * 40
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100
    composed = compose_message(
        draft(
            html='<p>Logo: <img src="cid:logo@x"></p>',
            attachments=[
                OutgoingAttachment(filename="report.pdf", content_type="application/pdf", data=pdf),
                OutgoingAttachment(
                    filename="Übersicht 報告 📈.csv", content_type="text/csv", data=b"a,b\n1,2\n"
                ),
                OutgoingAttachment(
                    filename="logo.png", content_type="image/png", data=png, inline=True, content_id="logo@x"
                ),
            ],
        )
    )

    # Then the structure is mixed(alternative(text, related(html, image)), files)
    msg = headers(composed)
    assert msg.get_content_type() == "multipart/mixed"
    alternative, *files = list(msg.iter_parts())
    assert alternative.get_content_type() == "multipart/alternative"
    _text, related = list(alternative.iter_parts())
    assert related.get_content_type() == "multipart/related"
    assert [p.get_content_type() for p in related.iter_parts()] == ["text/html", "image/png"]
    assert [f.get_content_type() for f in files] == ["application/pdf", "text/csv"]
    assert b"*=utf-8''" in composed.raw  # RFC 2231

    # And the parser gets names, types and bytes back
    result = normalize(composed.raw)
    found = {meta.filename: (meta, data) for meta, data in result.attachments}
    assert found["report.pdf"][1] == pdf
    assert found["Übersicht 報告 📈.csv"][0].content_type == "text/csv"
    assert found["Übersicht 報告 📈.csv"][1] == b"a,b\n1,2\n"
    logo_meta, logo_data = found["logo.png"]
    assert logo_data == png
    assert logo_meta.inline
    assert logo_meta.content_id == "logo@x"
    assert result.message.text_body is not None
    assert "Hi Bob" in result.message.text_body


@pytest.mark.parametrize(
    ("name", "subject"),
    [
        ("山田 太郎", "会議の件について"),
        ("Γιώργος Παπαδόπουλος", "Καλημέρα σας"),
        ("Party 🎉 Bot", "Launch 🚀 today ✨"),
        ('Doe, "Jr." <x>', 'Commas, quotes " and <brackets>'),
        ("Ελληνικά Name", "long " * 40 + "日本語" * 30),
    ],
)
def test_non_ascii_names_and_subjects_are_encoded(name: str, subject: str) -> None:
    sender = EmailAddress(name=name, address="sender@example.com")
    composed = compose_message(
        draft(from_=sender, to=[EmailAddress(name=name, address="x@example.org")], subject=subject)
    )
    assert composed.raw.isascii()  # RFC 2047 encoded words, 7-bit bodies
    parsed = normalize(composed.raw).message
    assert parsed.subject == subject
    assert parsed.from_ == [sender]
    assert parsed.to[0].name == name
    assert composed.subject == subject


def test_non_ascii_body_is_7bit_encoded() -> None:
    text = "こんにちは、世界。Γειά σας κόσμε 👋\n" * 20
    composed = compose_message(draft(text=text, html=f"<p>{text}</p>"))
    assert composed.raw.isascii()
    parsed = normalize(composed.raw).message
    assert parsed.text_body is not None
    assert parsed.text_body.replace("\r\n", "\n") == text
    assert parsed.html_body is not None
    assert "Γειά σας κόσμε 👋" in parsed.html_body


def test_bcc_is_in_the_envelope_only() -> None:
    composed = compose_message(draft(cc=[CAROL], bcc=[DAVE, EmailAddress(address="Hidden@Example.NET")]))
    assert composed.recipients == [
        "bob@example.org",
        "carol@example.net",
        "dave@example.net",
        "Hidden@example.net",
    ]
    assert b"dave@" not in composed.raw
    assert b"Hidden" not in composed.raw
    assert headers(composed)["Bcc"] is None
    assert normalize(composed.raw).message.bcc == []


def test_recipients_are_deduplicated_with_lowercase_domains() -> None:
    composed = compose_message(
        draft(
            to=[EmailAddress(address="bob@EXAMPLE.org")],
            cc=[EmailAddress(address="bob@example.org")],
            bcc=[EmailAddress(address="Bob@example.org")],
        )
    )
    assert composed.recipients == ["bob@example.org", "Bob@example.org"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("subject", "Hi\r\nBcc: victim@example.org"),
        ("subject", "Hi\nX-Injected: 1"),
        ("subject", "Hi\rX: 1"),
        ("subject", "Hi\u2028X: 1"),
        ("from", EmailAddress(name="Eve\r\nBcc: x@example.org", address="eve@example.com")),
        ("to", [EmailAddress(name="Bob\nX: 1", address="bob@example.org")]),
        ("reply_to", [EmailAddress(name="R\r\n", address="r@example.org")]),
        ("attachments", [OutgoingAttachment(filename="a\r\nX: 1.txt", content_type="text/plain", data=b"x")]),
    ],
)
def test_line_breaks_in_header_values_are_rejected(field: str, value: object) -> None:
    key = "from_" if field == "from" else field
    with pytest.raises(Invalid) as caught:
        compose_message(draft(**{key: value}))
    assert caught.value.code == "header_injection"
    assert "victim" not in caught.value.message
    assert "\n" not in caught.value.message


def test_line_breaks_in_the_original_subject_become_spaces() -> None:
    # Given an original whose stored subject carries a line break (from someone else's mail)
    original = ORIGINAL.model_copy(update={"subject": "x\r\nBcc: a@example.org\u2028y"})
    # When replying without a subject of our own
    composed = compose_message(draft(subject="", mode="reply"), original=original)
    # Then the reply goes out with the text on one line and no extra header
    msg = headers(composed)
    assert msg["Subject"] == "Re: x Bcc: a@example.org y"
    assert msg["Bcc"] is None
    assert composed.subject == "Re: x Bcc: a@example.org y"


def test_addresses_are_validated() -> None:
    with pytest.raises(ValidationError):
        draft(to=[EmailAddress(address="not an address")])
    with pytest.raises(ValidationError):
        draft(to=[EmailAddress(address="bob@example.org\r\nBcc: x@example.org")])


def test_recipient_count_is_bounded() -> None:
    many = [EmailAddress(address=f"user{i}@example.org") for i in range(MAX_RECIPIENTS)]
    assert len(compose_message(draft(to=many[:50], cc=many[50:])).recipients) == MAX_RECIPIENTS
    with pytest.raises(ValidationError, match="at most 100"):
        draft(to=many, bcc=[CAROL])
    with pytest.raises(ValidationError, match="at least one recipient"):
        draft(to=[])


def test_a_body_is_required() -> None:
    with pytest.raises(ValidationError, match="text or an html body"):
        draft(text=None, html=None)


def test_too_large_is_rejected() -> None:
    big = OutgoingAttachment(filename="big.bin", data=b"\x00" * (MAX_MESSAGE_BYTES + 1))
    with pytest.raises(Invalid) as caught:
        compose_message(draft(attachments=[big]))
    assert caught.value.code == "message_too_large"

    # base64 grows 19 MB of data past 25 MB encoded
    encoded_too_big = OutgoingAttachment(filename="b.bin", data=b"\x00" * (19 * 1024 * 1024 + 512 * 1024))
    with pytest.raises(Invalid) as caught:
        compose_message(draft(attachments=[encoded_too_big]))
    assert caught.value.code == "message_too_large"
    assert caught.value.details["size"] > MAX_MESSAGE_BYTES


def test_reply_sets_threading_headers_and_subject() -> None:
    composed = compose_message(draft(subject="", mode="reply"), original=ORIGINAL)
    parsed = normalize(composed.raw).message
    assert parsed.subject == "Re: Quarterly numbers"
    assert parsed.in_reply_to == "orig-3@example.org"
    assert parsed.references == ["root@example.org", "orig-2@example.org", "orig-3@example.org"]
    msg = headers(composed)
    assert msg["In-Reply-To"] == "<orig-3@example.org>"


def test_reply_keeps_long_message_ids_intact_and_bounds_references() -> None:
    long_ids = [f"CAH{i:03d}{'x' * 90}@mail.gmail.com" for i in range(40)]
    original = OriginalMessage(message_id=long_ids[-1], references=long_ids[:-1], subject="x")
    composed = compose_message(draft(mode="reply"), original=original)
    parsed = normalize(composed.raw).message
    assert parsed.in_reply_to == long_ids[-1]
    assert len(parsed.references) == 20
    assert parsed.references[0] == long_ids[0]  # the thread root stays
    assert parsed.references[-19:] == long_ids[-19:]
    assert b"=?utf-8?" not in composed.raw  # no encoded words in the ids
    assert all(len(line) <= 998 for line in composed.raw.split(b"\r\n"))


def test_reply_without_message_id_still_gets_re() -> None:
    composed = compose_message(draft(subject="", mode="reply"), original=OriginalMessage(subject="Hi"))
    msg = headers(composed)
    assert msg["Subject"] == "Re: Hi"
    assert msg["In-Reply-To"] is None
    assert msg["References"] is None


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Lunch", "Re: Lunch"),
        ("Re: Lunch", "Re: Lunch"),
        ("RE: Lunch", "Re: Lunch"),
        ("Re: Re: RE: Lunch", "Re: Lunch"),
        ("Aw: Lunch", "Re: Lunch"),
        ("AW: Re: Lunch", "Re: Lunch"),
        ("Re[2]: Lunch", "Re: Lunch"),
        ("SV: Lunch", "Re: Lunch"),
        ("回复\uff1a午餐", "Re: 午餐"),
        ("Fwd: Lunch", "Re: Fwd: Lunch"),
        ("[team] Re: Lunch", "[team] Re: Lunch"),
        ("", "Re:"),
        ("Review: draft", "Re: Review: draft"),
    ],
)
def test_reply_subject_gets_re_once(subject: str, expected: str) -> None:
    composed = compose_message(draft(subject=subject, mode="reply"), original=OriginalMessage())
    assert composed.subject == expected
    assert normalize(composed.raw).message.subject == expected


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Lunch", "Fwd: Lunch"),
        ("Fwd: Lunch", "Fwd: Lunch"),
        ("FW: Lunch", "Fwd: Lunch"),
        ("WG: Fwd: Lunch", "Fwd: Lunch"),
        ("Re: Lunch", "Fwd: Re: Lunch"),
    ],
)
def test_forward_subject_gets_fwd_once(subject: str, expected: str) -> None:
    composed = compose_message(draft(subject=subject, mode="forward"), original=ORIGINAL)
    assert composed.subject == expected


def test_reply_and_forward_need_the_original() -> None:
    for mode in ("reply", "forward"):
        with pytest.raises(Invalid) as caught:
            compose_message(draft(mode=mode))
        assert caught.value.code == "original_required"
    with pytest.raises(Invalid) as caught:
        compose_message(draft(mode="forward"), original=ORIGINAL.model_copy(update={"raw": None}))
    assert caught.value.code == "original_required"


def test_forward_as_attachment_embeds_the_original_verbatim() -> None:
    composed = compose_message(draft(subject="", text="FYI\n", mode="forward"), original=ORIGINAL)
    assert composed.subject == "Fwd: Quarterly numbers"
    assert ORIGINAL.raw is not None
    assert ORIGINAL.raw in composed.raw
    msg = headers(composed)
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "message/rfc822"]
    assert parts[1].get_content_disposition() == "attachment"

    result = normalize(composed.raw)
    ((meta, data),) = result.attachments
    assert meta.content_type == "message/rfc822"
    assert meta.filename == "Quarterly numbers.eml"
    inner = normalize(data).message
    assert inner.message_id == "orig-3@example.org"
    assert inner.text_body is not None
    assert "The numbers are in." in inner.text_body


def test_forward_keeps_8bit_originals_and_fixes_line_ends() -> None:
    raw = "From: b@example.org\nSubject: Grüße\n\nGrüße aus Köln\n".encode()
    original = OriginalMessage(subject="Grüße", raw=raw)
    composed = compose_message(draft(mode="forward"), original=original)
    assert raw.replace(b"\n", b"\r\n") in composed.raw
    assert b"Content-Transfer-Encoding: 8bit" in composed.raw
    ((_, data),) = normalize(composed.raw).attachments
    assert "Grüße aus Köln" in (normalize(data).message.text_body or "")


def test_forward_inline_quotes_headers_and_text() -> None:
    composed = compose_message(
        draft(
            subject="",
            text="See below.\n",
            html="<html><body><p>See below.</p></body></html>",
            mode="forward",
            forward_as="inline",
        ),
        original=ORIGINAL,
    )
    parsed = normalize(composed.raw)
    assert parsed.attachments == []
    text = parsed.message.text_body or ""
    assert text.startswith("See below.")
    assert "---------- Forwarded message ---------" in text
    assert "From: Bob <bob@example.org>" in text
    assert "Subject: Quarterly numbers" in text
    assert "Date: Fri, 01 Mar 2024 09:30:00 +0000" in text
    assert "The numbers are in." in text
    html = parsed.message.html_body or ""
    assert "Bob &lt;bob@example.org&gt;" in html
    assert html.index("The numbers are in.") < html.index("</body>") if "</body>" in html else True


def test_reply_to_header_and_attached_eml() -> None:
    eml = b"From: x@example.org\r\nSubject: inner\r\n\r\nbody\r\n"
    composed = compose_message(
        draft(
            reply_to=[EmailAddress(name="Support", address="support@example.com")],
            attachments=[OutgoingAttachment(filename="inner.eml", content_type="message/rfc822", data=eml)],
        )
    )
    parsed = normalize(composed.raw)
    assert parsed.message.reply_to == [EmailAddress(name="Support", address="support@example.com")]
    ((meta, _),) = parsed.attachments
    assert (meta.filename, meta.content_type) == ("inner.eml", "message/rfc822")
    assert eml in composed.raw


def test_original_from_parsed() -> None:
    parsed = normalize(ORIGINAL.raw or b"").message
    original = OriginalMessage.from_parsed(parsed, ORIGINAL.raw)
    composed = compose_message(draft(subject="", mode="reply"), original=original)
    assert normalize(composed.raw).message.in_reply_to == "orig-3@example.org"
    assert composed.subject == "Re: Quarterly numbers"


def test_internationalized_addresses() -> None:
    # Given a UTF-8 local part (needs SMTPUTF8) and an IDN domain with an ASCII local part
    composed = compose_message(
        draft(to=[EmailAddress(name="Jörg", address="jörg@bücher.de"), EmailAddress(address="x@bücher.de")])
    )

    # Then the IDN domain becomes its A-label, the UTF-8 address is written as UTF-8
    assert composed.recipients == ["jörg@bücher.de", "x@xn--bcher-kva.de"]
    assert "jörg@bücher.de".encode() in composed.raw
    parsed = normalize(composed.raw).message
    assert parsed.to == [
        EmailAddress(name="Jörg", address="jörg@bücher.de"),
        EmailAddress(address="x@xn--bcher-kva.de"),
    ]
