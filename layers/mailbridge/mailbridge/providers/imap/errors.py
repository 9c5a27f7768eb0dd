"""Maps socket, TLS and IMAP failures to the typed errors of `mailbridge.errors`.

Callers decide by type and `code`, never by message. Messages here are fixed texts plus the
exception class name: no server response text (it can echo user names or folder names), no
credentials, no addresses.
"""

from __future__ import annotations

import errno
import imaplib
import re
import socket
import ssl
from enum import StrEnum

from mailbridge.errors import ProviderAuthError, ProviderError, ProviderUnreachable


class Stage(StrEnum):
    CONNECT = "connect"  # TCP connect, TLS handshake, STARTTLS, greeting
    LOGIN = "login"
    SESSION = "session"  # any command after login


class Code(StrEnum):
    AUTH_FAILED = "auth_failed"
    UNREACHABLE = "unreachable"
    TLS_FAILED = "tls_failed"
    TIMEOUT = "timeout"
    CONNECTION_LOST = "connection_lost"
    UNAVAILABLE = "unavailable"
    FOLDER_NOT_FOUND = "folder_not_found"
    PROTOCOL_ERROR = "protocol_error"


_UNREACHABLE_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ENETUNREACH,
        errno.EHOSTUNREACH,
        errno.EHOSTDOWN,
        errno.ENETDOWN,
        errno.EADDRNOTAVAIL,
    }
)
_RESPONSE_CODE = re.compile(r"\[([A-Z][A-Z0-9-]*)")
# RFC 5530 response codes meaning "try again later", not "wrong credentials".
_TEMPORARY_LOGIN_CODES = frozenset({"UNAVAILABLE", "SERVERBUG", "CONTACTADMIN", "LIMIT", "INUSE"})
_MISSING_FOLDER_CODES = frozenset({"NONEXISTENT", "TRYCREATE"})


def response_code(exc: BaseException) -> str | None:
    """The bracketed IMAP response code (RFC 5530) in a server's NO/BAD reply, if any."""
    match = _RESPONSE_CODE.search(str(exc))
    return match.group(1) if match else None


def _is_login_error(exc: BaseException) -> bool:
    # imapclient.exceptions.LoginError, matched by name so this module needs no imapclient import.
    return isinstance(exc, imaplib.IMAP4.error) and type(exc).__name__ == "LoginError"


def map_exception(  # noqa: PLR0911, PLR0912 - one flat decision table reads best
    exc: BaseException, *, stage: Stage, host: str, port: int
) -> ProviderError:
    """The typed error for `exc`, raised while doing `stage` against host:port."""
    if isinstance(exc, ProviderError):
        return exc
    details = {"host": host, "port": port, "stage": stage.value, "cause": type(exc).__name__}
    lost = stage is Stage.SESSION

    def unreachable(code: Code, what: str) -> ProviderUnreachable:
        return ProviderUnreachable(f"IMAP server {host}:{port}: {what}", code=code, details=details)

    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError
        return unreachable(Code.TIMEOUT, "timed out")
    if isinstance(exc, ssl.SSLError):  # includes SSLCertVerificationError
        if lost and not isinstance(exc, ssl.SSLCertVerificationError):
            return unreachable(Code.CONNECTION_LOST, "connection lost")
        return unreachable(Code.TLS_FAILED, "TLS handshake or certificate verification failed")
    if isinstance(exc, socket.gaierror):
        return unreachable(Code.UNREACHABLE, "host name could not be resolved")
    if isinstance(exc, OSError):
        if exc.errno in _UNREACHABLE_ERRNOS or isinstance(exc, ConnectionRefusedError):
            return unreachable(Code.UNREACHABLE, "connection refused or host unreachable")
        if stage is Stage.CONNECT:
            return unreachable(Code.UNREACHABLE, "could not connect")
        return unreachable(Code.CONNECTION_LOST, "connection lost")
    if isinstance(exc, imaplib.IMAP4.abort):
        # The server hung up or sent garbage: the session is gone, a retry may work.
        return unreachable(Code.CONNECTION_LOST, "connection lost")
    if _is_login_error(exc):
        code = response_code(exc)
        if code in _TEMPORARY_LOGIN_CODES:
            return ProviderError(
                f"IMAP server {host}:{port}: login temporarily unavailable",
                code=Code.UNAVAILABLE,
                details={**details, "response_code": code},
            )
        return ProviderAuthError(
            f"IMAP server {host}:{port}: login rejected",
            code=Code.AUTH_FAILED,
            details={**details, "response_code": code},
        )
    if isinstance(exc, imaplib.IMAP4.error):
        code = response_code(exc)
        if code in _MISSING_FOLDER_CODES:
            error = ProviderError(
                f"IMAP server {host}:{port}: folder does not exist",
                code=Code.FOLDER_NOT_FOUND,
                details={**details, "response_code": code},
            )
            error.retryable = False
            return error
        if stage is Stage.CONNECT and type(exc).__name__ == "CapabilityError":
            return unreachable(Code.TLS_FAILED, "server does not offer STARTTLS")
        return ProviderError(
            f"IMAP server {host}:{port}: command failed",
            code=Code.PROTOCOL_ERROR,
            details={**details, "response_code": code},
        )
    return ProviderError(
        f"IMAP server {host}:{port}: unexpected failure", code=Code.PROTOCOL_ERROR, details=details
    )
