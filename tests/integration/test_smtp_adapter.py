"""The SMTP adapter against a real SMTP server (the aiosmtpd sink of tests/fixtures/smtp.py)."""

from __future__ import annotations

import email
import socket
from email import policy

import pytest

from mailbridge.compose import ComposedMessage, Draft, OriginalMessage, OutgoingAttachment, compose_message
from mailbridge.errors import ProviderAuthError, ProviderUnreachable
from mailbridge.mime import normalize
from mailbridge.models.email import EmailAddress
from mailbridge.providers.smtp import Security, SmtpRejectedError, SmtpTransientError, send
from mailbridge.providers.smtp.client import check_login
from tests.fixtures.smtp import SINK_USER, SINK_UTF8_PASSWORD, SmtpSettingsFactory, SmtpSink

SENDER = EmailAddress(name="Sender Ünïcode", address=SINK_USER)
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 64


def message(
    *, to: list[str] | None = None, bcc: list[str] | None = None, **overrides: object
) -> ComposedMessage:
    values: dict[str, object] = {
        "from_": SENDER,
        "to": [EmailAddress(name="Bob", address=a) for a in (to or ["bob@example.org"])],
        "bcc": [EmailAddress(address=a) for a in (bcc or [])],
        "subject": "Angebot 📎 見積もり",
        "text": "Hello Bob,\n.\n..leading dots survive\n",
        "html": "<p>Hello <b>Bob</b></p>",
        "attachments": [OutgoingAttachment(filename="Angebot.pdf", content_type="application/pdf", data=PDF)],
    }
    values.update(overrides)
    return compose_message(Draft.model_validate(values))


def free_closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("security", list(Security))
def test_sends_with_each_security_mode(
    smtp_sink: SmtpSink, smtp_settings: SmtpSettingsFactory, security: Security
) -> None:
    # Given a composed message and settings for this security mode
    composed = message()

    # When sending it
    result = send(smtp_settings(security), composed)

    # Then the sink got exactly those bytes, after AUTH, over TLS unless "none"
    assert result.accepted == ["bob@example.org"]
    assert result.refused == {}
    assert result.server_reply.startswith("250 ")
    (received,) = smtp_sink.messages
    assert received.raw == composed.raw
    assert received.mail_from == SINK_USER
    assert received.rcpt_tos == ["bob@example.org"]
    assert received.login == SINK_USER
    assert received.tls is (security is not Security.NONE)
    assert received.port == smtp_sink.port_for(security)


def test_received_message_round_trips_with_bcc_only_in_the_envelope(
    smtp_sink: SmtpSink, smtp_settings: SmtpSettingsFactory
) -> None:
    # Given a reply with cc and bcc and an attachment
    original = OriginalMessage(
        message_id="<orig@example.org>", references=["<root@example.org>"], subject="Angebot"
    )
    composed = compose_message(
        Draft(
            from_=SENDER,
            to=[EmailAddress(name="Bob", address="bob@example.org")],
            cc=[EmailAddress(address="carol@example.net")],
            bcc=[EmailAddress(address="hidden@example.net")],
            text="Thanks!\n",
            attachments=[
                OutgoingAttachment(filename="Übersicht.pdf", content_type="application/pdf", data=PDF)
            ],
            mode="reply",
        ),
        original=original,
    )

    # When sending it
    send(smtp_settings(Security.STARTTLS), composed)

    # Then the envelope has all three recipients, the headers only two
    (received,) = smtp_sink.messages
    assert received.rcpt_tos == ["bob@example.org", "carol@example.net", "hidden@example.net"]
    assert received.raw == composed.raw
    assert b"hidden@" not in received.raw
    headers = email.message_from_bytes(received.raw, policy=policy.default)
    assert headers["Bcc"] is None

    # And the parser reads back what was composed
    result = normalize(received.raw)
    parsed = result.message
    assert parsed.subject == "Re: Angebot"
    assert parsed.from_ == [SENDER]
    assert parsed.in_reply_to == "orig@example.org"
    assert parsed.references == ["root@example.org", "orig@example.org"]
    assert parsed.message_id == composed.message_id
    assert parsed.text_body is not None
    assert parsed.text_body.strip() == "Thanks!"
    ((meta, data),) = result.attachments
    assert (meta.filename, meta.content_type, data) == ("Übersicht.pdf", "application/pdf", PDF)


def test_dot_lines_and_8bit_forwarded_original_arrive_intact(
    smtp_sink: SmtpSink, smtp_settings: SmtpSettingsFactory
) -> None:
    raw_original = "From: x@example.org\r\nSubject: Grüße\r\n\r\n.\r\nGrüße aus Köln\r\n".encode()
    composed = compose_message(
        Draft(from_=SENDER, to=[EmailAddress(address="bob@example.org")], text=".\n.x\n", mode="forward"),
        original=OriginalMessage(subject="Grüße", raw=raw_original),
    )
    send(smtp_settings(Security.SSL), composed)
    (received,) = smtp_sink.messages
    assert received.raw == composed.raw
    assert raw_original in received.raw
    assert "BODY=8BITMIME" in received.mail_options


def test_bad_password_is_auth_failed(smtp_sink: SmtpSink, smtp_settings: SmtpSettingsFactory) -> None:
    with pytest.raises(ProviderAuthError) as caught:
        send(smtp_settings(Security.SSL, password="wrong-password"), message())
    assert caught.value.code == "auth_failed"
    assert caught.value.details["smtp_code"] == 535
    assert "wrong-password" not in str(caught.value.details) + caught.value.message
    assert smtp_sink.messages == []


def test_a_password_beyond_ascii_logs_in_with_auth_plain(
    smtp_sink: SmtpSink, smtp_settings: SmtpSettingsFactory
) -> None:
    # When logging in with a password that is not ASCII (smtplib encodes AUTH as ASCII)
    check_login(smtp_settings(Security.STARTTLS, password=SINK_UTF8_PASSWORD))
    # Then it is accepted (AUTH PLAIN carries UTF-8, RFC 4616 section 2)

    # And a wrong one is auth_failed, like any wrong password, not an encoding crash
    with pytest.raises(ProviderAuthError) as caught:
        check_login(smtp_settings(Security.STARTTLS, password="fälsch-\u2028"))
    assert caught.value.code == "auth_failed"
    assert caught.value.details["smtp_code"] == 535


def test_unreachable_port(smtp_settings: SmtpSettingsFactory) -> None:
    with pytest.raises(ProviderUnreachable) as caught:
        send(smtp_settings(Security.SSL, port=free_closed_port()), message())
    assert caught.value.code == "unreachable"
    assert caught.value.retryable


@pytest.mark.parametrize("security", [Security.SSL, Security.STARTTLS])
def test_untrusted_certificate_is_tls_failed(
    smtp_sink: SmtpSink, smtp_settings: SmtpSettingsFactory, security: Security
) -> None:
    with pytest.raises(ProviderUnreachable) as caught:
        send(smtp_settings(security, ca_bundle=None), message())
    assert caught.value.code == "tls_failed"
    assert smtp_sink.messages == []


def test_starttls_required_but_not_offered_is_tls_failed(
    smtp_sink: SmtpSink, smtp_settings: SmtpSettingsFactory
) -> None:
    # The plain port offers no STARTTLS: the adapter must not fall back to clear text.
    with pytest.raises(ProviderUnreachable) as caught:
        send(smtp_settings(Security.STARTTLS, port=smtp_sink.plain_port), message())
    assert caught.value.code == "tls_failed"


def test_tls_to_a_plain_port_is_tls_failed(smtp_sink: SmtpSink, smtp_settings: SmtpSettingsFactory) -> None:
    with pytest.raises(ProviderUnreachable) as caught:
        send(smtp_settings(Security.SSL, port=smtp_sink.plain_port), message())
    assert caught.value.code == "tls_failed"


@pytest.mark.parametrize("stage", ["mail", "rcpt"])
def test_greylisting_is_retryable_smtp_transient(
    smtp_sink: SmtpSink, smtp_settings: SmtpSettingsFactory, stage: str
) -> None:
    # Given the sink answers 451 to the next transaction
    smtp_sink.fail_next(1, stage=stage)  # type: ignore[arg-type]

    # When sending, it fails as retryable with the server's reply kept
    with pytest.raises(SmtpTransientError) as caught:
        send(smtp_settings(Security.NONE), message())
    assert caught.value.code == "smtp_transient"
    assert caught.value.retryable
    assert caught.value.details["smtp_code"] == 451
    assert caught.value.details["reply"] == "4.7.1 Try again later"

    # And the retry goes through
    assert send(smtp_settings(Security.NONE), message()).accepted == ["bob@example.org"]
    assert len(smtp_sink.messages) == 1


def test_one_of_two_recipients_refused_is_a_partial_result(
    smtp_sink: SmtpSink, smtp_settings: SmtpSettingsFactory
) -> None:
    smtp_sink.reject_recipient("ghost@example.org")
    result = send(smtp_settings(Security.SSL), message(to=["bob@example.org", "ghost@example.org"]))
    assert result.accepted == ["bob@example.org"]
    assert result.refused == {"ghost@example.org": "550 5.1.1 No such user"}
    (received,) = smtp_sink.messages
    assert received.rcpt_tos == ["bob@example.org"]


def test_all_recipients_refused_is_smtp_rejected(
    smtp_sink: SmtpSink, smtp_settings: SmtpSettingsFactory
) -> None:
    smtp_sink.reject_recipient("ghost@example.org")
    smtp_sink.reject_recipient("phantom@example.org")
    with pytest.raises(SmtpRejectedError) as caught:
        send(smtp_settings(Security.SSL), message(to=["ghost@example.org"], bcc=["phantom@example.org"]))
    assert caught.value.code == "smtp_rejected"
    assert not caught.value.retryable
    assert caught.value.details["refused"] == {
        "ghost@example.org": "550 5.1.1 No such user",
        "phantom@example.org": "550 5.1.1 No such user",
    }
    assert smtp_sink.messages == []


def test_554_to_data_is_smtp_rejected(smtp_sink: SmtpSink, smtp_settings: SmtpSettingsFactory) -> None:
    smtp_sink.fail_next(1, stage="data", reply="554 5.7.1 Message rejected")
    with pytest.raises(SmtpRejectedError) as caught:
        send(smtp_settings(Security.STARTTLS), message())
    assert caught.value.details["smtp_code"] == 554
    assert caught.value.details["stage"] == "data"
    assert smtp_sink.messages == []


def test_connection_dropped_mid_data_is_connection_lost(
    smtp_sink: SmtpSink, smtp_settings: SmtpSettingsFactory
) -> None:
    smtp_sink.drop_next()
    with pytest.raises(ProviderUnreachable) as caught:
        send(smtp_settings(Security.NONE), message())
    assert caught.value.code == "connection_lost"
    assert caught.value.retryable
    assert smtp_sink.messages == []

    # The sink keeps serving the next connection
    assert send(smtp_settings(Security.NONE), message()).accepted == ["bob@example.org"]


def test_retried_send_keeps_its_message_id(smtp_sink: SmtpSink, smtp_settings: SmtpSettingsFactory) -> None:
    first = message(message_id="outbox-42@example.com")
    again = message(message_id="outbox-42@example.com")
    send(smtp_settings(Security.SSL), first)
    send(smtp_settings(Security.SSL), again)
    ids = [normalize(m.raw).message.message_id for m in smtp_sink.messages]
    assert ids == ["outbox-42@example.com", "outbox-42@example.com"]


def test_utf8_recipient_is_sent_with_smtputf8(
    smtp_sink: SmtpSink, smtp_settings: SmtpSettingsFactory
) -> None:
    composed = message(to=["jörg@bücher.de"])
    result = send(smtp_settings(Security.STARTTLS), composed)
    assert result.accepted == ["jörg@bücher.de"]
    (received,) = smtp_sink.messages
    assert received.rcpt_tos == ["jörg@bücher.de"]
    assert "SMTPUTF8" in received.mail_options
    assert received.raw == composed.raw
