"""Connection settings of one SMTP submission account."""

from __future__ import annotations

from pathlib import Path

from pydantic import ConfigDict, Field, SecretStr, model_validator

from mailbridge.models.base import Model
from mailbridge.providers.imap.settings import Security

DEFAULT_PORTS: dict[Security, int] = {Security.SSL: 465, Security.STARTTLS: 587, Security.NONE: 25}


class SmtpSettings(Model):
    """What the adapter needs to reach, and log in to, one submission server.

    TLS certificates are verified against the system trust store, or `ca_bundle` when given.
    `allow_insecure` switches verification off and is also required for `security="none"`, so
    a password or a message can never travel in clear text by accident. `username` and
    `password` come together or not at all (a relay that trusts the network needs no AUTH).
    `helo_name` is what EHLO announces (the default avoids a reverse DNS lookup per send).
    `allow_private` and `deadline` work as in `ImapSettings`: private addresses only for local
    development, and a `time.monotonic()` instant by which the whole exchange must end.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    host: str = Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9._:\[\]-]+$")
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Security = Security.SSL
    username: str | None = Field(default=None, min_length=1, max_length=320)
    password: SecretStr | None = Field(default=None, min_length=1, max_length=1024)
    timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    ca_bundle: Path | None = None
    allow_insecure: bool = False
    allow_private: bool = False
    deadline: float | None = None
    helo_name: str = Field(
        default="localhost", min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.\[\]:-]+$"
    )

    @model_validator(mode="after")
    def _checks(self) -> SmtpSettings:
        if self.security is Security.NONE and not self.allow_insecure:
            raise ValueError("security 'none' sends the password and mail in clear text; set allow_insecure")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password come together")
        return self

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else DEFAULT_PORTS[self.security]
