"""Outbound MIME: a `Draft` (plus the original, for a reply or forward) -> `ComposedMessage`.

composed = compose_message(Draft(from_=..., to=[...], subject="Hi", text="..."))
result = mailbridge.providers.smtp.send(settings, composed)
"""

from mailbridge.compose.build import (
    MAX_MESSAGE_BYTES,
    MESSAGE_TOO_LARGE,
    ORIGINAL_REQUIRED,
    compose_and_normalize,
    compose_message,
)
from mailbridge.compose.models import (
    MAX_RECIPIENTS,
    MAX_REFERENCES,
    CalendarBody,
    ComposedMessage,
    Draft,
    ForwardAs,
    Mode,
    OriginalMessage,
    OutgoingAttachment,
)
from mailbridge.compose.subject import forward_subject, reply_subject
from mailbridge.compose.verify import HEADER_INJECTION

__all__ = [
    "HEADER_INJECTION",
    "MAX_MESSAGE_BYTES",
    "MAX_RECIPIENTS",
    "MAX_REFERENCES",
    "MESSAGE_TOO_LARGE",
    "ORIGINAL_REQUIRED",
    "CalendarBody",
    "ComposedMessage",
    "Draft",
    "ForwardAs",
    "Mode",
    "OriginalMessage",
    "OutgoingAttachment",
    "compose_and_normalize",
    "compose_message",
    "forward_subject",
    "reply_subject",
]
