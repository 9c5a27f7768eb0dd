"""The SMTP adapter: one connection per send over smtplib, with typed results and errors."""

from __future__ import annotations

import base64
import contextlib
import functools
import logging
import smtplib
import socket
import ssl
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from mailbridge.compose.models import ComposedMessage
from mailbridge.errors import ProviderError, ProviderUnreachable
from mailbridge.observability import redact_address
from mailbridge.providers.imap.settings import Security
from mailbridge.providers.netguard import Deadline, open_connection
from mailbridge.providers.smtp.errors import (
    Code,
    SmtpRejectedError,
    Stage,
    all_refused,
    format_reply,
    map_exception,
    reply_error,
)
from mailbridge.providers.smtp.models import SendResult
from mailbridge.providers.smtp.settings import SmtpSettings

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_ACCEPTED_RCPT = (250, 251)
_HEADER_END = b"\r\n\r\n"


class SmtpClient(Protocol):
    """The part of `smtplib.SMTP` a send uses; unit tests drive `transact` with a fake."""

    def ehlo_or_helo_if_needed(self) -> None: ...

    def has_extn(self, opt: str) -> bool: ...

    def starttls(self, *, context: ssl.SSLContext | None = None) -> tuple[int, bytes]: ...

    def login(self, user: str, password: str, *, initial_response_ok: bool = True) -> tuple[int, bytes]: ...

    def mail(self, sender: str, options: Sequence[str] = ()) -> tuple[int, bytes]: ...

    def rcpt(self, recip: str, options: Sequence[str] = ()) -> tuple[int, bytes]: ...

    def data(self, msg: bytes | str) -> tuple[int, bytes]: ...

    def rset(self) -> tuple[int, bytes]: ...

    def quit(self) -> tuple[int, bytes]: ...

    def close(self) -> None: ...


Connector = Callable[[SmtpSettings, ssl.SSLContext], SmtpClient]


def build_ssl_context(settings: SmtpSettings) -> ssl.SSLContext:
    """Verifying by default (system store or `ca_bundle`); `allow_insecure` turns checks off."""
    context = ssl.create_default_context(
        cafile=str(settings.ca_bundle) if settings.ca_bundle is not None else None
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.allow_insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _login_utf8(client: smtplib.SMTP, user: str, password: str) -> tuple[int, bytes]:
    """AUTH PLAIN with a user name or password beyond ASCII.

    smtplib encodes every SASL response as ASCII (`SMTP.auth`), so such a login raised
    UnicodeEncodeError; PLAIN carries UTF-8 (RFC 4616 section 2; AUTH in RFC 4954 section 4).
    Fails as `SMTP.login` does: SMTPNotSupportedError without AUTH, SMTPException without PLAIN,
    SMTPAuthenticationError when the server refuses.
    """
    client.ehlo_or_helo_if_needed()
    if not client.has_extn("auth"):
        raise smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
    if "PLAIN" not in client.esmtp_features["auth"].upper().split():
        raise smtplib.SMTPException("No suitable authentication method found.")
    response = base64.b64encode(f"\0{user}\0{password}".encode()).decode("ascii")
    code, reply = client.docmd("AUTH", f"PLAIN {response}")
    if code in (235, 503):  # 503: already authenticated, as SMTP.login accepts
        return code, reply
    raise smtplib.SMTPAuthenticationError(code, reply)


class _CheckedSMTP(smtplib.SMTP):
    """smtplib over a socket `netguard` opened to a checked address (smtplib would resolve the
    host name again in `_get_socket`). STARTTLS verifies the certificate against the host name."""

    def __init__(self, settings: SmtpSettings, open_socket: Callable[[], socket.socket]) -> None:
        self._open_socket = open_socket
        super().__init__(
            settings.host,
            settings.effective_port,
            local_hostname=settings.helo_name,
            timeout=settings.timeout_seconds,
        )

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:  # noqa: ARG002
        # host, port and timeout are what the settings gave `open_socket` already.
        return self._open_socket()

    def login(self, user: str, password: str, *, initial_response_ok: bool = True) -> tuple[int, bytes]:
        if user.isascii() and password.isascii():
            return super().login(user, password, initial_response_ok=initial_response_ok)
        return _login_utf8(self, user, password)


class _CheckedSMTPSSL(smtplib.SMTP_SSL):
    """The same with implicit TLS: the checked socket is wrapped with `server_hostname=host`."""

    def __init__(
        self, settings: SmtpSettings, context: ssl.SSLContext, open_socket: Callable[[], socket.socket]
    ) -> None:
        self._open_socket = open_socket
        super().__init__(
            settings.host,
            settings.effective_port,
            local_hostname=settings.helo_name,
            timeout=settings.timeout_seconds,
            context=context,
        )

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:  # noqa: ARG002
        sock = self._open_socket()
        try:
            return self.context.wrap_socket(sock, server_hostname=self._host)  # type: ignore[attr-defined]
        except BaseException:
            sock.close()
            raise

    def login(self, user: str, password: str, *, initial_response_ok: bool = True) -> tuple[int, bytes]:
        if user.isascii() and password.isascii():
            return super().login(user, password, initial_response_ok=initial_response_ok)
        return _login_utf8(self, user, password)


def _open(settings: SmtpSettings, context: ssl.SSLContext, *, deadline: Deadline) -> SmtpClient:
    def open_socket() -> socket.socket:
        return open_connection(
            settings.host,
            settings.effective_port,
            allow_private=settings.allow_private,
            timeout=settings.timeout_seconds,
            deadline=deadline,
        )

    if settings.security is Security.SSL:
        return _CheckedSMTPSSL(settings, context, open_socket)
    return _CheckedSMTP(settings, open_socket)


def _deadline_error(attempt: _Send) -> ProviderUnreachable:
    return ProviderUnreachable(
        f"SMTP server {attempt.host}:{attempt.port}: no complete answer within the time allowed",
        code=Code.TIMEOUT,
        details={
            "host": attempt.host,
            "port": attempt.port,
            "stage": attempt.stage.value,
            "cause": "deadline",
        },
    )


def _needs_smtputf8(composed: ComposedMessage) -> bool:
    head = composed.raw.split(_HEADER_END, 1)[0]
    addresses = [composed.envelope_from, *composed.recipients]
    return not head.isascii() or not all(address.isascii() for address in addresses)


class _Send:
    """One transaction; `stage` says where a failure happened."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self.host = settings.host
        self.port = settings.effective_port
        self.stage = Stage.CONNECT

    def open(self, connector: Connector) -> SmtpClient:
        context = build_ssl_context(self.settings)
        client = connector(self.settings, context)
        try:
            client.ehlo_or_helo_if_needed()
            if self.settings.security is Security.STARTTLS:
                self.stage = Stage.STARTTLS
                client.starttls(context=context)  # raises SMTPNotSupportedError without STARTTLS
                client.ehlo_or_helo_if_needed()
            if self.settings.username is not None and self.settings.password is not None:
                self.stage = Stage.AUTH
                client.login(self.settings.username, self.settings.password.get_secret_value())
        except BaseException:
            _close_quietly(client)
            raise
        return client

    def mail_options(self, client: SmtpClient, composed: ComposedMessage) -> list[str]:
        options: list[str] = []
        if client.has_extn("size"):
            options.append(f"SIZE={len(composed.raw)}")
        if _needs_smtputf8(composed):
            if not client.has_extn("smtputf8"):
                raise SmtpRejectedError(
                    f"SMTP server {self.host}:{self.port}: SMTPUTF8 needed but not offered",
                    code=Code.SMTPUTF8_UNSUPPORTED,
                    details={"host": self.host, "port": self.port, "stage": Stage.MAIL.value},
                )
            options.append("SMTPUTF8")
        if not composed.raw.isascii():
            if not client.has_extn("8bitmime"):
                raise SmtpRejectedError(
                    f"SMTP server {self.host}:{self.port}: 8-bit message but no 8BITMIME",
                    code=Code.EIGHTBITMIME_UNSUPPORTED,
                    details={"host": self.host, "port": self.port, "stage": Stage.MAIL.value},
                )
            options.append("BODY=8BITMIME")
        return options

    def transact(self, client: SmtpClient, composed: ComposedMessage) -> SendResult:
        """MAIL, RCPT for each recipient, DATA; on an SMTP refusal raise the typed error."""
        self.stage = Stage.MAIL
        client.ehlo_or_helo_if_needed()
        code, reply = client.mail(composed.envelope_from, self.mail_options(client, composed))
        if code != 250:
            raise reply_error(code, reply, stage=self.stage, host=self.host, port=self.port)

        self.stage = Stage.RCPT
        accepted: list[str] = []
        refused: dict[str, tuple[int, bytes]] = {}
        for recipient in composed.recipients:
            code, reply = client.rcpt(recipient)
            if code in _ACCEPTED_RCPT:
                accepted.append(recipient)
                continue
            refused[recipient] = (code, reply)
            if code == 421:  # the server is closing the channel: nothing more will be accepted
                raise reply_error(code, reply, stage=self.stage, host=self.host, port=self.port)
        if not accepted:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                client.rset()
            raise all_refused(refused, host=self.host, port=self.port)

        self.stage = Stage.DATA
        code, reply = client.data(composed.raw)  # raises SMTPDataError when DATA itself is refused
        if code != 250:
            raise reply_error(code, reply, stage=self.stage, host=self.host, port=self.port)
        return SendResult(
            accepted=accepted,
            refused={address: format_reply(c, text) for address, (c, text) in refused.items()},
            server_reply=format_reply(code, reply),
        )


def _close_quietly(client: SmtpClient) -> None:
    with contextlib.suppress(Exception):
        client.close()


def _exchange(
    settings: SmtpSettings,
    connector: Connector | None,
    work: Callable[[_Send, SmtpClient], _T],
    *,
    what: str,
) -> _T:
    """Open (connect, EHLO, STARTTLS, AUTH), run `work`, QUIT; failures become typed errors."""
    attempt = _Send(settings)
    client: SmtpClient | None = None
    with Deadline(settings.deadline) as deadline:
        try:
            client = attempt.open(connector or functools.partial(_open, deadline=deadline))
            result = work(attempt, client)
        except (OSError, ProviderError) as exc:  # smtplib and ssl errors are OSErrors
            if client is not None:
                _close_quietly(client)
            error: ProviderError
            if deadline.fired and isinstance(exc, OSError):
                error = _deadline_error(attempt)
            else:
                error = map_exception(exc, stage=attempt.stage, host=attempt.host, port=attempt.port)
            logger.warning(
                f"smtp {what} failed",
                extra={
                    "host": attempt.host,
                    "port": attempt.port,
                    "stage": attempt.stage.value,
                    "code": error.code,
                    "smtp_code": (error.details or {}).get("smtp_code"),
                },
            )
            raise error from None
        except BaseException:
            if client is not None:
                _close_quietly(client)
            raise
        with contextlib.suppress(Exception):
            client.quit()
    return result


def send(
    settings: SmtpSettings, composed: ComposedMessage, *, connector: Connector | None = None
) -> SendResult:
    """Send `composed.raw` from `composed.envelope_from` to `composed.recipients`.

    Returns the accepted recipients and the refused ones with the server's reply (a partial
    refusal is not an error). Raises ProviderAuthError (auth_failed, auth_unsupported),
    ProviderUnreachable (unreachable, tls_failed, timeout, connection_lost), SmtpTransientError
    (smtp_transient, retryable), SmtpRejectedError (smtp_rejected, smtputf8_unsupported,
    8bitmime_unsupported), ProviderError (protocol_error) or HostNotAllowed (the host resolves
    to a private address; see `netguard`). After connection_lost or a timeout during DATA the
    message may have been delivered: resend with the same Message-ID.
    """
    result = _exchange(
        settings, connector, lambda attempt, client: attempt.transact(client, composed), what="send"
    )
    logger.info(
        "smtp sent",
        extra={
            "host": settings.host,
            "port": settings.effective_port,
            "sender": redact_address(composed.envelope_from),
            "accepted": len(result.accepted),
            "refused": len(result.refused),
        },
    )
    return result


def check_login(settings: SmtpSettings, *, connector: Connector | None = None) -> None:
    """Connect, secure the channel, AUTH (when credentials are set) and QUIT, sending nothing.

    What connecting an account uses to prove the submission settings work before saving them.
    Raises what `send` raises up to the AUTH stage.
    """
    _exchange(settings, connector, lambda _attempt, _client: None, what="login check")
