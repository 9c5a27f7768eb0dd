"""Mapping socket/TLS/IMAP failures to typed errors (fake exceptions, no network)."""

from __future__ import annotations

import errno
import imaplib
import socket
import ssl

import pytest
from imapclient import exceptions as imap_exc  # type: ignore[import-untyped]

from mailbridge.errors import ProviderAuthError, ProviderError, ProviderUnreachable
from mailbridge.providers.imap import Stage, map_exception


def mapped(exc: BaseException, stage: Stage = Stage.CONNECT) -> ProviderError:
    return map_exception(exc, stage=stage, host="imap.example.test", port=993)


@pytest.mark.parametrize(
    ("exc", "stage", "code"),
    [
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), Stage.CONNECT, "unreachable"),
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), Stage.CONNECT, "unreachable"),
        (OSError(errno.ENETUNREACH, "unreachable"), Stage.CONNECT, "unreachable"),
        (OSError(errno.EHOSTUNREACH, "no route"), Stage.SESSION, "unreachable"),
        (TimeoutError("timed out"), Stage.CONNECT, "timeout"),
        (TimeoutError("timed out"), Stage.SESSION, "timeout"),
        (ssl.SSLCertVerificationError(1, "certificate verify failed"), Stage.CONNECT, "tls_failed"),
        (ssl.SSLError(1, "wrong version number"), Stage.CONNECT, "tls_failed"),
        (ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), Stage.CONNECT, "tls_failed"),
        (ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), Stage.SESSION, "connection_lost"),
        (ConnectionResetError(errno.ECONNRESET, "reset"), Stage.SESSION, "connection_lost"),
        (BrokenPipeError(errno.EPIPE, "broken pipe"), Stage.SESSION, "connection_lost"),
        (imaplib.IMAP4.abort("socket error: EOF"), Stage.SESSION, "connection_lost"),
        (imap_exc.CapabilityError("Server does not support STARTTLS"), Stage.CONNECT, "tls_failed"),
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


@pytest.mark.parametrize(
    "text",
    ["login failed: [AUTHENTICATIONFAILED] Authentication failed.", "login failed: bad password", "x"],
)
def test_rejected_login_is_auth_failed_and_not_retryable(text: str) -> None:
    # Given a LOGIN refused by the server (with or without a response code)
    error = mapped(imap_exc.LoginError(text), Stage.LOGIN)

    # Then
    assert isinstance(error, ProviderAuthError)
    assert error.code == "auth_failed"
    assert not error.retryable


def test_temporary_login_failure_is_retryable_not_auth() -> None:
    # Given a LOGIN refused with [UNAVAILABLE] (e.g. the server's user database is down)
    error = mapped(imap_exc.LoginError("login failed: [UNAVAILABLE] Temporary failure"), Stage.LOGIN)

    # Then the user is not asked to reconnect: it is a retryable provider error
    assert not isinstance(error, ProviderAuthError)
    assert error.code == "unavailable"
    assert error.retryable


def test_missing_folder_response_code_is_folder_not_found() -> None:
    error = mapped(imap_exc.IMAPClientError("select failed: [NONEXISTENT] No such"), Stage.SESSION)
    assert error.code == "folder_not_found"
    assert not error.retryable


def test_other_command_failures_are_protocol_errors() -> None:
    error = mapped(imap_exc.IMAPClientError("fetch failed: BAD syntax"), Stage.SESSION)
    assert type(error) is ProviderError
    assert error.code == "protocol_error"


def test_messages_never_carry_server_text_or_credentials() -> None:
    # Given a server reply echoing the user's address and password
    exc = imap_exc.LoginError("login failed: user alice@example.test password hunter2 rejected")

    # When mapped
    error = mapped(exc, Stage.LOGIN)

    # Then neither reaches the message nor the details
    rendered = f"{error} {error.details}"
    assert "alice@example.test" not in rendered
    assert "hunter2" not in rendered


def test_provider_errors_pass_through_unchanged() -> None:
    original = ProviderUnreachable("x", code="timeout")
    assert mapped(original) is original
