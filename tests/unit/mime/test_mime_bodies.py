"""Bodies: structure, charsets, HTML-only mail, snippets."""

from __future__ import annotations

from mailbridge.mime import normalize


def test_nested_mixed_alternative_related_picks_both_bodies_and_keeps_the_rest(eml):
    # Given mixed[alternative[plain, related[html, cid image]], pdf]
    result = normalize(eml("nested_multipart.eml"))
    msg = result.message

    # Then plain and html bodies are the alternative's, and the image and pdf are attachments
    assert msg.text_body == "Plain version of the report."
    assert msg.html_body == '<p>HTML version <img src="cid:logo@example.com" alt="logo"></p>'
    image, pdf = msg.attachments
    assert (image.content_type, image.content_id, image.inline, image.filename) == (
        "image/png",
        "logo@example.com",
        True,
        None,
    )
    assert (pdf.filename, pdf.content_type, pdf.inline, pdf.size) == (
        "report.pdf",
        "application/pdf",
        False,
        15,
    )
    assert result.attachments[1][1] == b"%PDF-1.4\n%%EOF\n"


def test_html_only_mail_gets_a_text_body_derived_from_the_html(eml):
    msg = normalize(eml("html_only_hostile.eml")).message

    assert msg.text_body is not None
    assert msg.text_body.splitlines()[0] == "Big Sale"
    assert "Everything must go!" in msg.text_body
    # Script and style content never leak into the text
    assert "document.cookie" not in msg.text_body
    assert "track.example" not in msg.text_body


def test_latin1_bytes_declared_utf8_are_decoded_as_latin1(eml):
    # Given a body and an unencoded subject in ISO-8859-1 while the part says utf-8
    msg = normalize(eml("latin1_declared_utf8.eml")).message

    # Then the text reads as the sender wrote it, and the fallback is recorded
    assert msg.text_body is not None
    assert msg.text_body.startswith("Voilà le café crème")
    assert "Montréal" in msg.text_body
    assert msg.subject == "Café crème"
    assert "charset_fallback" in msg.defects


def test_undeclared_8bit_utf8_is_decoded(eml):
    msg = normalize(eml("undeclared_8bit.eml")).message

    assert msg.subject == "Señor Muñoz"
    assert msg.from_[0].name == "José"
    assert msg.text_body == "Hola, señor Muñoz: mañana a las 10.\n"


def test_inline_plain_parts_of_a_mixed_message_are_appended_to_the_text_body(eml):
    msg = normalize(eml("mailing_list.eml")).message

    assert msg.text_body == "This week: the release plan.\n\n--\nYou are subscribed to dev-list."
    assert msg.attachments == []


def test_snippet_is_short_and_whitespace_collapsed():
    # Given a long body with blank lines and quoted text
    body = "Hello   there,\n\n" + "word " * 100 + "\n> quoted reply\n"
    raw = f"From: a@example.com\r\nSubject: s\r\n\r\n{body}".encode()

    msg = normalize(raw).message

    assert msg.snippet.startswith("Hello there, word word")
    assert len(msg.snippet) <= 201
    assert msg.snippet.endswith("\u2026")
    assert "quoted" not in msg.snippet
    assert "\n" not in msg.snippet
