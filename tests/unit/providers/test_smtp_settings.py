"""SmtpSettings validation and defaults."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from mailbridge.providers.smtp import Security, SmtpSettings


@pytest.mark.parametrize(("security", "port"), [(Security.SSL, 465), (Security.STARTTLS, 587)])
def test_port_defaults_follow_security(security: Security, port: int) -> None:
    settings = SmtpSettings(host="smtp.example.com", security=security, username="u", password=SecretStr("p"))
    assert settings.effective_port == port


def test_plain_text_needs_opt_in() -> None:
    with pytest.raises(ValidationError, match="allow_insecure"):
        SmtpSettings(host="smtp.example.com", security=Security.NONE)
    settings = SmtpSettings(host="smtp.example.com", security=Security.NONE, allow_insecure=True)
    assert settings.effective_port == 25
    assert (
        SmtpSettings(host="h", port=2525, security=Security.NONE, allow_insecure=True).effective_port == 2525
    )


def test_username_and_password_come_together() -> None:
    with pytest.raises(ValidationError, match="together"):
        SmtpSettings(host="smtp.example.com", username="u")
    assert SmtpSettings(host="smtp.example.com").username is None


def test_password_is_secret_and_host_is_checked() -> None:
    settings = SmtpSettings(host="smtp.example.com", username="u", password=SecretStr("hunter2"))
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.model_dump())
    with pytest.raises(ValidationError):
        SmtpSettings(host="smtp.example.com\r\nX", username="u", password=SecretStr("p"))
