"""Maps socket, TLS and SMTP failures to the typed errors of `mailbridge.errors`.

Callers decide by type and `code`, never by message. Messages are fixed texts with the host and
the SMTP reply code; the server's reply text (it can name a recipient) is kept in `details` for
the caller, truncated, and never logged. No credentials, no addresses in messages.
"""

from __future__ import annotations

import errno
import smtplib
import socket
import ssl
from enum import StrEnum
from typing import Any

from mailbridge.errors import ProviderAuthError, ProviderError, ProviderUnreachable

MAX_REPLY_CHARS = 500


class Stage(StrEnum):
    CONNECT = "connect"  # TCP connect, implicit TLS handshake, greeting, EHLO
    STARTTLS = "starttls"
    AUTH = "auth"
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"  # DATA command, the message bytes and the final reply


class Code(StrEnum):
    AUTH_FAILED = "auth_failed"
    AUTH_UNSUPPORTED = "auth_unsupported"
    UNREACHABLE = "unreachable"
    TLS_FAILED = "tls_failed"
    TIMEOUT = "timeout"
    CONNECTION_LOST = "connection_lost"
    SMTP_TRANSIENT = "smtp_transient"
    SMTP_REJECTED = "smtp_rejected"
    SMTPUTF8_UNSUPPORTED = "smtputf8_unsupported"
    EIGHTBITMIME_UNSUPPORTED = "8bitmime_unsupported"
    PROTOCOL_ERROR = "protocol_error"


class SmtpTransientError(ProviderError):
    """A 4xx reply (greylisting 451, 421 closing, 452 storage): the same send may work later."""

    code = Code.SMTP_TRANSIENT.value
    retryable = True


class SmtpRejectedError(ProviderError):
    """A 5xx reply, or every recipient refused: sending the same message again will not help."""

    code = Code.SMTP_REJECTED.value
    retryable = False


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


def reply_text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    text = " ".join(text.split())
    return text[:MAX_REPLY_CHARS]


def format_reply(code: int, reply: bytes | str) -> str:
    """`550 5.1.1 No such user`: the reply as one line, bounded."""
    return f"{code} {reply_text(reply)}".strip()[:MAX_REPLY_CHARS]


def _base(host: str, port: int, stage: Stage, **extra: Any) -> dict[str, Any]:
    return {"host": host, "port": port, "stage": stage.value, **extra}


def reply_error(
    smtp_code: int,
    reply: bytes | str,
    *,
    stage: Stage,
    host: str,
    port: int,
    refused: dict[str, str] | None = None,
) -> ProviderError:
    """The typed error for an SMTP reply the transaction cannot go on with."""
    details = _base(host, port, stage, smtp_code=smtp_code, reply=reply_text(reply))
    if refused is not None:
        details["refused"] = refused
    where = f"SMTP server {host}:{port}"
    if 400 <= smtp_code < 500:
        return SmtpTransientError(f"{where}: temporary failure {smtp_code} at {stage.value}", details=details)
    if 500 <= smtp_code < 600:
        return SmtpRejectedError(f"{where}: rejected with {smtp_code} at {stage.value}", details=details)
    return ProviderError(
        f"{where}: unexpected reply at {stage.value}", code=Code.PROTOCOL_ERROR, details=details
    )


def all_refused(refused: dict[str, tuple[int, bytes]], *, host: str, port: int) -> ProviderError:
    """Every recipient refused: transient when every refusal was a 4xx, else rejected."""
    replies = {address: format_reply(code, text) for address, (code, text) in refused.items()}
    permanent = [reply for reply in refused.values() if not 400 <= reply[0] < 500]
    code, text = (permanent or list(refused.values()) or [(550, b"")])[0]
    return reply_error(code, text, stage=Stage.RCPT, host=host, port=port, refused=replies)


def map_exception(  # noqa: PLR0911, PLR0912 - one flat decision table reads best
    exc: BaseException, *, stage: Stage, host: str, port: int
) -> ProviderError:
    """The typed error for `exc`, raised while doing `stage` against host:port."""
    if isinstance(exc, ProviderError):
        return exc
    details = _base(host, port, stage, cause=type(exc).__name__)
    where = f"SMTP server {host}:{port}"

    def unreachable(code: Code, what: str) -> ProviderUnreachable:
        return ProviderUnreachable(f"{where}: {what}", code=code, details=details)

    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError
        return unreachable(Code.TIMEOUT, "timed out")
    if isinstance(exc, ssl.SSLError):  # includes SSLCertVerificationError
        if stage in (Stage.CONNECT, Stage.STARTTLS) or isinstance(exc, ssl.SSLCertVerificationError):
            return unreachable(Code.TLS_FAILED, "TLS handshake or certificate verification failed")
        return unreachable(Code.CONNECTION_LOST, "connection lost")
    if isinstance(exc, socket.gaierror):
        return unreachable(Code.UNREACHABLE, "host name could not be resolved")
    # smtplib's exceptions are OSErrors too: look at them before the socket errors.
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        if stage is Stage.CONNECT:
            return unreachable(Code.UNREACHABLE, "server closed the connection")
        return unreachable(Code.CONNECTION_LOST, "connection lost")
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        if stage is Stage.STARTTLS:
            return unreachable(Code.TLS_FAILED, "server does not offer STARTTLS")
        if stage is Stage.AUTH:
            return ProviderAuthError(
                f"{where}: server offers no AUTH", code=Code.AUTH_UNSUPPORTED, details=details
            )
        error = ProviderError(f"{where}: extension not supported", code=Code.PROTOCOL_ERROR, details=details)
        error.retryable = False
        return error
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all_refused(exc.recipients, host=host, port=port)
    if isinstance(exc, smtplib.SMTPResponseException):
        smtp_code, reply = exc.smtp_code, exc.smtp_error
        if stage is Stage.STARTTLS:
            return ProviderUnreachable(
                f"{where}: STARTTLS refused",
                code=Code.TLS_FAILED,
                details={**details, "smtp_code": smtp_code, "reply": reply_text(reply)},
            )
        if isinstance(exc, smtplib.SMTPAuthenticationError) and not 400 <= smtp_code < 500:
            # Any 5xx to AUTH (535 bad credentials, 534 app password needed ...) needs the user.
            return ProviderAuthError(
                f"{where}: login rejected ({smtp_code})",
                code=Code.AUTH_FAILED,
                details={**details, "smtp_code": smtp_code, "reply": reply_text(reply)},
            )
        return reply_error(smtp_code, reply, stage=stage, host=host, port=port)
    if isinstance(exc, smtplib.SMTPException):
        if stage is Stage.AUTH:  # "No suitable authentication method found."
            return ProviderAuthError(
                f"{where}: no usable AUTH mechanism", code=Code.AUTH_UNSUPPORTED, details=details
            )
        return ProviderError(f"{where}: protocol error", code=Code.PROTOCOL_ERROR, details=details)
    if isinstance(exc, OSError):
        if exc.errno in _UNREACHABLE_ERRNOS or isinstance(exc, ConnectionRefusedError):
            return unreachable(Code.UNREACHABLE, "connection refused or host unreachable")
        if stage is Stage.CONNECT:
            return unreachable(Code.UNREACHABLE, "could not connect")
        return unreachable(Code.CONNECTION_LOST, "connection lost")
    return ProviderError(f"{where}: unexpected failure", code=Code.PROTOCOL_ERROR, details=details)
