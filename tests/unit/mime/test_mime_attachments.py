"""Attachments: names (RFC 2231, RFC 2047 in parameters), bytes, TNEF, calendar, DSN."""

from __future__ import annotations

import base64
import hashlib

from mailbridge.mime import normalize


def test_rfc2231_continuations_and_charsets_are_decoded(eml):
    # Given filename*0*/filename*1* in UTF-8, an RFC 2047 word in a quoted name, and ISO-8859-1 2231
    msg = normalize(eml("rfc2231_filenames.eml")).message

    # Then all three names decode
    assert [a.filename for a in msg.attachments] == ["Übersicht Q1 2026.pdf", "naïve notes.txt", "résumé.bin"]
    assert msg.text_body == "See attached."


def test_attachment_bytes_come_back_separately_with_matching_metadata(eml):
    result = normalize(eml("rfc2231_filenames.eml"))

    for meta, data in result.attachments:
        assert meta.size == len(data)
        assert meta.sha256 == hashlib.sha256(data).hexdigest()
    assert [meta.id for meta, _ in result.attachments] == ["att-0", "att-1", "att-2"]
    assert result.attachments[2][1] == b"AAAA"
    assert result.message.attachments == [meta for meta, _ in result.attachments]


def test_tnef_winmail_dat_is_unpacked_into_its_files(eml):
    # Given an Outlook message whose attachments sit inside winmail.dat
    result = normalize(eml("tnef_winmail.eml"))

    # Then the files inside are the attachments, and winmail.dat itself is not
    names = [(meta.filename, meta.from_tnef) for meta, _ in result.attachments]
    assert names == [("budget.xlsx", True), ("notes.txt", True)]
    assert result.attachments[1][1] == b"meeting notes\n"
    assert result.message.text_body == "Please see the attached budget."


def test_calendar_invite_is_captured_with_its_method(eml):
    msg = normalize(eml("calendar_invite.eml")).message

    assert msg.calendar is not None
    assert msg.calendar.method == "REQUEST"
    assert msg.calendar.ics.startswith("BEGIN:VCALENDAR\nVERSION:2.0")
    assert "UID:planning-1@example.com" in msg.calendar.ics
    assert msg.text_body == "You have been invited to Planning."
    assert msg.attachments == []


def test_delivery_status_report_is_captured(eml):
    # Given a multipart/report DSN for two recipients
    msg = normalize(eml("dsn_bounce.eml")).message

    # Then per-recipient action and status are read, types stripped, plus the bounced message id
    bounce = msg.bounce
    assert bounce is not None
    assert bounce.reporting_mta == "mx.example.net"
    assert bounce.original_envelope_id == "ENV-77"
    assert bounce.original_message_id == "original.7@example.com"
    failed, delayed = bounce.recipients
    assert (failed.final_recipient, failed.action, failed.status) == ("gone@example.org", "failed", "5.1.1")
    assert failed.original_recipient == "Gone@Example.org"
    assert failed.remote_mta == "mx.example.org"
    assert failed.diagnostic_code is not None
    assert failed.diagnostic_code.startswith("smtp; 550 5.1.1")
    assert (delayed.final_recipient, delayed.action, delayed.status) == (
        "slow@example.org",
        "delayed",
        "4.4.1",
    )
    assert msg.auto_submitted == "auto-replied"
    assert msg.text_body == "Your message could not be delivered to one or more recipients."


def test_a_base64_encoded_delivery_status_is_read_from_its_decoded_text():
    # Given a DSN whose message/delivery-status body an MTA base64-encoded
    status = (
        b"Reporting-MTA: dns; mx.example.net\r\n\r\n"
        b"Final-Recipient: rfc822; gone@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
    )
    raw = (
        b"From: MAILER-DAEMON@mx.example.net\r\n"
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        b"--b\r\nContent-Type: message/delivery-status\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(status)
        + b"--b--\r\n"
    )

    # When it is normalized
    bounce = normalize(raw).message.bounce

    # Then the report is the decoded one (it used to come out empty)
    assert bounce is not None
    assert bounce.reporting_mta == "mx.example.net"
    assert [(r.final_recipient, r.action, r.status) for r in bounce.recipients] == [
        ("gone@example.org", "failed", "5.1.1")
    ]


def test_quoted_pairs_in_a_quoted_file_name_stand_for_the_character_after_the_backslash():
    # Given a file name in a quoted string with quoted pairs (RFC 5322 3.2.4, RFC 2045 5.1)
    raw = (
        b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
        b'--b\r\nContent-Type: application/pdf; name="plain.pdf"\r\n'
        b'Content-Disposition: attachment; filename="the \\"final\\" \\v2.pdf"\r\n\r\nPDF\r\n--b--\r\n'
    )

    # Then the name holds the characters themselves
    assert [a.filename for a in normalize(raw).message.attachments] == ['the "final" v2.pdf']


def test_a_semicolon_inside_a_quoted_file_name_does_not_end_the_parameter():
    # Given file names with ";" inside quotes (RFC 2045 5.1: a quoted-string may hold tspecials),
    # one of them with its closing quote missing (it then runs to the end of the header)
    def attachment(disposition: bytes) -> bytes:
        return (
            b"--b\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Disposition: " + disposition + b"\r\n\r\nDATA\r\n"
        )

    raw = (
        b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        + attachment(b'attachment; filename="report; final.pdf"; size=4')
        + attachment(b'attachment; filename="draft; v2.pdf')
        + b"--b--\r\n"
    )

    # Then each name is the whole quoted string
    assert [a.filename for a in normalize(raw).message.attachments] == ["report; final.pdf", "draft; v2.pdf"]
