"""Mapping socket/TLS/SMTP failures to typed errors (fake exceptions, no network)."""

from __future__ import annotations

import errno
import smtplib
import socket
import ssl

import pytest

from mailbridge.errors import ProviderAuthError, ProviderError, ProviderUnreachable
from mailbridge.providers.smtp import SmtpRejectedError, SmtpTransientError, Stage, map_exception, reply_error


def mapped(exc: BaseException, stage: Stage = Stage.CONNECT) -> ProviderError:
    return map_exception(exc, stage=stage, host="smtp.example.test", port=465)


@pytest.mark.parametrize(
    ("exc", "stage", "code"),
    [
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), Stage.CONNECT, "unreachable"),
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), Stage.CONNECT, "unreachable"),
        (OSError(errno.ENETUNREACH, "unreachable"), Stage.CONNECT, "unreachable"),
        (OSError(errno.EPERM, "odd"), Stage.CONNECT, "unreachable"),
        (TimeoutError("timed out"), Stage.CONNECT, "timeout"),
        (TimeoutError("timed out"), Stage.DATA, "timeout"),
        (ssl.SSLCertVerificationError(1, "certificate verify failed"), Stage.CONNECT, "tls_failed"),
        (ssl.SSLCertVerificationError(1, "certificate verify failed"), Stage.STARTTLS, "tls_failed"),
        (ssl.SSLError(1, "wrong version number"), Stage.CONNECT, "tls_failed"),
        (ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), Stage.DATA, "connection_lost"),
        (
            smtplib.SMTPNotSupportedError("STARTTLS extension not supported by server."),
            Stage.STARTTLS,
            "tls_failed",
        ),
        (smtplib.SMTPResponseException(454, b"4.7.0 TLS not available"), Stage.STARTTLS, "tls_failed"),
        (smtplib.SMTPServerDisconnected("Connection unexpectedly closed"), Stage.CONNECT, "unreachable"),
        (smtplib.SMTPServerDisconnected("Connection unexpectedly closed"), Stage.DATA, "connection_lost"),
        (smtplib.SMTPServerDisconnected("Server not connected"), Stage.RCPT, "connection_lost"),
        (ConnectionResetError(errno.ECONNRESET, "reset"), Stage.DATA, "connection_lost"),
        (BrokenPipeError(errno.EPIPE, "broken pipe"), Stage.MAIL, "connection_lost"),
    ],
)
def test_network_failures_are_unreachable_with_a_code(exc: BaseException, stage: Stage, code: str) -> None:
    # Given / When a low-level failure
    error = mapped(exc, stage)

    # Then it is a retryable ProviderUnreachable with the machine-readable code
    assert isinstance(error, ProviderUnreachable)
    assert error.code == code
    assert error.retryable
    assert error.details["cause"] == type(exc).__name__
    assert error.details["stage"] == stage.value


@pytest.mark.parametrize("smtp_code", [535, 534, 530, 538])
def test_auth_rejections_are_auth_failed(smtp_code: int) -> None:
    error = mapped(
        smtplib.SMTPAuthenticationError(smtp_code, b"5.7.8 Authentication credentials invalid"), Stage.AUTH
    )
    assert isinstance(error, ProviderAuthError)
    assert error.code == "auth_failed"
    assert not error.retryable
    assert error.details["smtp_code"] == smtp_code
    assert "credentials invalid" not in error.message


def test_temporary_auth_failure_is_transient() -> None:
    error = mapped(
        smtplib.SMTPAuthenticationError(454, b"4.7.0 Temporary authentication failure"), Stage.AUTH
    )
    assert isinstance(error, SmtpTransientError)
    assert error.code == "smtp_transient"
    assert error.retryable


def test_no_auth_offered_is_auth_unsupported() -> None:
    error = mapped(smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported by server."), Stage.AUTH)
    assert isinstance(error, ProviderAuthError)
    assert error.code == "auth_unsupported"
    error = mapped(smtplib.SMTPException("No suitable authentication method found."), Stage.AUTH)
    assert isinstance(error, ProviderAuthError)
    assert error.code == "auth_unsupported"


@pytest.mark.parametrize(
    ("exc", "stage", "smtp_code"),
    [
        (smtplib.SMTPSenderRefused(451, b"4.7.1 Try again later", "a@example.com"), Stage.MAIL, 451),
        (smtplib.SMTPConnectError(421, b"4.3.2 Service shutting down"), Stage.CONNECT, 421),
        (smtplib.SMTPDataError(452, b"4.3.1 Insufficient system storage"), Stage.DATA, 452),
        (smtplib.SMTPHeloError(421, b"busy"), Stage.CONNECT, 421),
    ],
)
def test_4xx_replies_are_retryable_smtp_transient(exc: BaseException, stage: Stage, smtp_code: int) -> None:
    error = mapped(exc, stage)
    assert isinstance(error, SmtpTransientError)
    assert error.code == "smtp_transient"
    assert error.retryable
    assert error.details["smtp_code"] == smtp_code
    assert error.details["reply"]


@pytest.mark.parametrize(
    ("exc", "stage", "smtp_code"),
    [
        (smtplib.SMTPSenderRefused(553, b"5.7.1 Sender not owned by user", "a@example.com"), Stage.MAIL, 553),
        (smtplib.SMTPDataError(554, b"5.7.1 Message rejected as spam"), Stage.DATA, 554),
        (smtplib.SMTPDataError(552, b"5.3.4 Message size exceeds limit"), Stage.DATA, 552),
    ],
)
def test_5xx_replies_are_final_smtp_rejected(exc: BaseException, stage: Stage, smtp_code: int) -> None:
    error = mapped(exc, stage)
    assert isinstance(error, SmtpRejectedError)
    assert error.code == "smtp_rejected"
    assert not error.retryable
    assert error.details["smtp_code"] == smtp_code


def test_reply_text_is_kept_truncated_and_out_of_the_message() -> None:
    error = reply_error(550, b"5.1.1 <bob@example.org>: " + b"x" * 2000, stage=Stage.RCPT, host="h", port=25)
    assert len(error.details["reply"]) == 500
    assert "bob@example.org" in error.details["reply"]
    assert "bob@" not in error.message


def test_all_recipients_refused_keeps_each_refusal() -> None:
    exc = smtplib.SMTPRecipientsRefused(
        {"a@example.org": (550, b"5.1.1 No such user"), "b@example.org": (451, b"4.7.1 Try again later")}
    )
    error = mapped(exc, Stage.RCPT)
    assert isinstance(error, SmtpRejectedError)
    assert error.details["smtp_code"] == 550
    assert error.details["refused"] == {
        "a@example.org": "550 5.1.1 No such user",
        "b@example.org": "451 4.7.1 Try again later",
    }


def test_all_recipients_refused_temporarily_is_transient() -> None:
    exc = smtplib.SMTPRecipientsRefused({"a@example.org": (451, b"4.7.1 Greylisted")})
    error = mapped(exc, Stage.RCPT)
    assert isinstance(error, SmtpTransientError)
    assert error.retryable


def test_garbage_and_unknown_failures_are_protocol_errors() -> None:
    assert mapped(smtplib.SMTPResponseException(-1, b"garbage"), Stage.MAIL).code == "protocol_error"
    assert mapped(ValueError("boom"), Stage.DATA).code == "protocol_error"
    assert mapped(smtplib.SMTPNotSupportedError("SMTPUTF8 not supported"), Stage.MAIL).retryable is False


def test_typed_errors_pass_through() -> None:
    original = SmtpRejectedError("x")
    assert mapped(original) is original
