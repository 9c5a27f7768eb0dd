"""The interface the outbox service depends on; fakes implement it too."""

from __future__ import annotations

from typing import Protocol

from mailbridge.compose.models import ComposedMessage
from mailbridge.providers.smtp.models import SendResult
from mailbridge.providers.smtp.settings import SmtpSettings


class MailSender(Protocol):
    """`mailbridge.providers.smtp.send` has this shape.

    Raises `mailbridge.errors.ProviderError` subclasses only: `ProviderAuthError` (auth_failed,
    auth_unsupported), `ProviderUnreachable` (unreachable, tls_failed, timeout, connection_lost),
    `SmtpTransientError` (smtp_transient, retryable) and `SmtpRejectedError` (smtp_rejected,
    smtputf8_unsupported, 8bitmime_unsupported), or `ProviderError` (protocol_error).
    """

    def __call__(self, settings: SmtpSettings, composed: ComposedMessage) -> SendResult: ...
