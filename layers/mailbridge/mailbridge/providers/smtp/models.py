"""What one send returns."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from mailbridge.models.base import Model


class SendResult(Model):
    """The server took the message for `accepted`.

    `refused` maps each recipient the server turned down at RCPT to its reply (`"550 5.1.1 ..."`);
    the message went to the others and the caller decides what to tell the user. `server_reply`
    is the final reply to DATA (usually carries the queue id).
    """

    model_config = ConfigDict(frozen=True)

    accepted: list[str]
    refused: dict[str, str] = Field(default_factory=dict)
    server_reply: str
