"""The SMTP transaction driven through a fake smtplib client (no sockets)."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from mailbridge.compose import ComposedMessage
from mailbridge.errors import ProviderAuthError, ProviderUnreachable
from mailbridge.providers.smtp import (
    Security,
    SendResult,
    SmtpRejectedError,
    SmtpSettings,
    SmtpTransientError,
    send,
)

RAW = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: x\r\n\r\nbody\r\n"


def composed(
    raw: bytes = RAW, recipients: Sequence[str] = ("b@example.org",), sender: str = "a@example.com"
) -> ComposedMessage:
    return ComposedMessage(
        raw=raw, message_id="m@example.com", envelope_from=sender, recipients=list(recipients), subject="x"
    )


@dataclass
class FakeSmtp:
    extensions: set[str] = field(default_factory=lambda: {"size", "8bitmime", "smtputf8", "auth", "starttls"})
    mail_reply: tuple[int, bytes] = (250, b"2.1.0 OK")
    rcpt_replies: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    data_reply: tuple[int, bytes] = (250, b"2.0.0 Ok: queued as ABC")
    data_error: BaseException | None = None
    login_error: BaseException | None = None
    calls: list[tuple[str, object]] = field(default_factory=list)
    closed: bool = False

    def ehlo_or_helo_if_needed(self) -> None:
        self.calls.append(("ehlo", None))

    def has_extn(self, opt: str) -> bool:
        return opt.lower() in self.extensions

    def starttls(self, *, context: ssl.SSLContext | None = None) -> tuple[int, bytes]:
        if "starttls" not in self.extensions:
            raise smtplib.SMTPNotSupportedError("STARTTLS extension not supported by server.")
        self.calls.append(("starttls", context))
        return 220, b"go ahead"

    def login(self, user: str, password: str, *, initial_response_ok: bool = True) -> tuple[int, bytes]:
        self.calls.append(("login", user))
        if self.login_error is not None:
            raise self.login_error
        return 235, b"ok"

    def mail(self, sender: str, options: Sequence[str] = ()) -> tuple[int, bytes]:
        self.calls.append(("mail", (sender, list(options))))
        return self.mail_reply

    def rcpt(self, recip: str, options: Sequence[str] = ()) -> tuple[int, bytes]:
        self.calls.append(("rcpt", recip))
        return self.rcpt_replies.get(recip, (250, b"2.1.5 OK"))

    def data(self, msg: bytes | str) -> tuple[int, bytes]:
        self.calls.append(("data", msg))
        if self.data_error is not None:
            raise self.data_error
        return self.data_reply

    def rset(self) -> tuple[int, bytes]:
        self.calls.append(("rset", None))
        return 250, b"ok"

    def quit(self) -> tuple[int, bytes]:
        self.calls.append(("quit", None))
        self.closed = True
        return 221, b"bye"

    def close(self) -> None:
        self.closed = True

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def mail_options(self) -> list[str]:
        (args,) = [args for name, args in self.calls if name == "mail"]
        assert isinstance(args, tuple)
        return list(args[1])


def settings(**overrides: object) -> SmtpSettings:
    values: dict[str, object] = {
        "host": "smtp.example.test",
        "username": "u",
        "password": "secret-pw",
    }
    values.update(overrides)
    return SmtpSettings.model_validate(values)


def run(fake: FakeSmtp, message: ComposedMessage | None = None, **overrides: object) -> SendResult:
    values: dict[str, object] = {"security": Security.STARTTLS, **overrides}
    return send(settings(**values), message or composed(), connector=lambda s, ctx: fake)


def test_successful_send_runs_the_whole_transaction() -> None:
    fake = FakeSmtp()
    result = run(fake)
    assert result.accepted == ["b@example.org"]
    assert result.refused == {}
    assert result.server_reply == "250 2.0.0 Ok: queued as ABC"
    assert fake.names() == ["ehlo", "starttls", "ehlo", "login", "ehlo", "mail", "rcpt", "data", "quit"]
    assert ("mail", ("a@example.com", [f"SIZE={len(RAW)}"])) in fake.calls
    assert ("data", RAW) in fake.calls


def test_no_login_without_credentials() -> None:
    fake = FakeSmtp()
    run(fake, security=Security.SSL, username=None, password=None)
    assert "login" not in fake.names()
    assert "starttls" not in fake.names()


def test_starttls_not_offered_is_tls_failed_before_any_password() -> None:
    fake = FakeSmtp(extensions={"auth"})
    with pytest.raises(ProviderUnreachable) as caught:
        run(fake)
    assert caught.value.code == "tls_failed"
    assert "login" not in fake.names()
    assert fake.closed


def test_bad_password_is_auth_failed() -> None:
    fake = FakeSmtp(login_error=smtplib.SMTPAuthenticationError(535, b"5.7.8 Bad credentials"))
    with pytest.raises(ProviderAuthError) as caught:
        run(fake)
    assert caught.value.code == "auth_failed"
    assert "secret-pw" not in str(caught.value.details)
    assert fake.closed


def test_partial_refusal_sends_to_the_rest() -> None:
    fake = FakeSmtp(rcpt_replies={"x@example.org": (550, b"5.1.1 No such user")})
    result = run(fake, composed(recipients=["b@example.org", "x@example.org"]))
    assert result.accepted == ["b@example.org"]
    assert result.refused == {"x@example.org": "550 5.1.1 No such user"}
    assert "data" in fake.names()


def test_all_refused_is_smtp_rejected_and_resets() -> None:
    fake = FakeSmtp(rcpt_replies={"b@example.org": (550, b"5.1.1 No such user")})
    with pytest.raises(SmtpRejectedError) as caught:
        run(fake)
    assert caught.value.details["refused"] == {"b@example.org": "550 5.1.1 No such user"}
    assert "rset" in fake.names()
    assert "data" not in fake.names()


def test_421_at_rcpt_stops_the_transaction() -> None:
    fake = FakeSmtp(rcpt_replies={"b@example.org": (421, b"4.3.2 closing")})
    with pytest.raises(SmtpTransientError):
        run(fake, composed(recipients=["b@example.org", "c@example.org"]))
    assert fake.names().count("rcpt") == 1


def test_greylisting_at_mail_is_transient() -> None:
    fake = FakeSmtp(mail_reply=(451, b"4.7.1 Try again later"))
    with pytest.raises(SmtpTransientError) as caught:
        run(fake)
    assert caught.value.details["stage"] == "mail"
    assert caught.value.details["smtp_code"] == 451


def test_data_rejection_and_disconnect() -> None:
    with pytest.raises(SmtpRejectedError) as rejected:
        run(FakeSmtp(data_reply=(554, b"5.7.1 Spam")))
    assert rejected.value.details["stage"] == "data"
    with pytest.raises(SmtpRejectedError):
        run(FakeSmtp(data_error=smtplib.SMTPDataError(554, b"5.5.1 no DATA for you")))
    with pytest.raises(ProviderUnreachable) as lost:
        run(FakeSmtp(data_error=smtplib.SMTPServerDisconnected("Connection unexpectedly closed")))
    assert lost.value.code == "connection_lost"


def test_8bit_message_asks_for_8bitmime() -> None:
    fake = FakeSmtp()
    raw = RAW + "Grüße\r\n".encode()
    run(fake, composed(raw=raw))
    options = fake.mail_options()
    assert "BODY=8BITMIME" in options
    assert "SMTPUTF8" not in options
    with pytest.raises(SmtpRejectedError) as caught:
        run(FakeSmtp(extensions={"auth", "starttls"}), composed(raw=raw))
    assert caught.value.code == "8bitmime_unsupported"


def test_non_ascii_address_asks_for_smtputf8() -> None:
    fake = FakeSmtp()
    run(fake, composed(recipients=["ü@example.org"]))
    options = fake.mail_options()
    assert "SMTPUTF8" in options
    with pytest.raises(SmtpRejectedError) as caught:
        run(FakeSmtp(extensions={"auth", "starttls"}), composed(recipients=["ü@example.org"]))
    assert caught.value.code == "smtputf8_unsupported"
    assert not caught.value.retryable
