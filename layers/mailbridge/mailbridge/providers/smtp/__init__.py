"""SMTP adapter: the only code in mailbridge that speaks SMTP.

result = send(SmtpSettings(host=..., username=..., password=...), compose_message(draft))
if result.refused: ...  # some recipients were turned down, the rest got the message
"""

from typing import TYPE_CHECKING, Any

from mailbridge.providers.imap.settings import Security
from mailbridge.providers.smtp.errors import (
    Code,
    SmtpRejectedError,
    SmtpTransientError,
    Stage,
    map_exception,
    reply_error,
)
from mailbridge.providers.smtp.models import SendResult
from mailbridge.providers.smtp.protocol import MailSender
from mailbridge.providers.smtp.settings import DEFAULT_PORTS, SmtpSettings

if TYPE_CHECKING:
    from mailbridge.providers.smtp.client import SmtpClient, build_ssl_context, send

_CLIENT_NAMES = {"SmtpClient", "build_ssl_context", "send"}


def __getattr__(name: str) -> Any:
    # The client pulls in observability (Powertools); code that only needs the settings should not.
    if name in _CLIENT_NAMES:
        from mailbridge.providers.smtp import client

        return getattr(client, name)
    raise AttributeError(name)


__all__ = [
    "DEFAULT_PORTS",
    "Code",
    "MailSender",
    "Security",
    "SendResult",
    "SmtpClient",
    "SmtpRejectedError",
    "SmtpSettings",
    "SmtpTransientError",
    "Stage",
    "build_ssl_context",
    "map_exception",
    "reply_error",
    "send",
]
