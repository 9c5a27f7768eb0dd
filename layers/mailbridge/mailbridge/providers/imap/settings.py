"""Connection settings of one IMAP account."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import ConfigDict, Field, SecretStr, model_validator

from mailbridge.models.base import Model


class Security(StrEnum):
    SSL = "ssl"  # implicit TLS (IMAPS, usually port 993)
    STARTTLS = "starttls"  # plain connect, then STARTTLS before LOGIN (usually port 143)
    NONE = "none"  # plain text: loopback test servers only, needs allow_insecure


DEFAULT_PORTS: dict[Security, int] = {Security.SSL: 993, Security.STARTTLS: 143, Security.NONE: 143}


class ImapSettings(Model):
    """What the adapter needs to reach and log in to one mailbox.

    TLS certificates are verified against the system trust store, or `ca_bundle` when given.
    `allow_insecure` switches verification off and is also required for `security="none"`,
    so a plain-text password can never be sent by accident.

    `allow_private` lets the host resolve to private, loopback or link-local addresses (local
    development only; see `mailbridge.providers.netguard`). `timeout_seconds` bounds each socket
    operation; `deadline`, a `time.monotonic()` instant, bounds the whole session (connect,
    TLS, greeting, LOGIN and every command after): an API request passes one so a slow or
    trickling server is cut off with `timeout` well inside the function's own timeout.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    host: str = Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9._:\[\]-]+$")
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Security = Security.SSL
    username: str = Field(min_length=1, max_length=320)
    password: SecretStr = Field(min_length=1, max_length=1024)
    timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    ca_bundle: Path | None = None
    allow_insecure: bool = False
    allow_private: bool = False
    deadline: float | None = None

    @model_validator(mode="after")
    def _plain_text_needs_opt_in(self) -> ImapSettings:
        if self.security is Security.NONE and not self.allow_insecure:
            raise ValueError("security 'none' sends the password in clear text; set allow_insecure")
        return self

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else DEFAULT_PORTS[self.security]
