"""ImapSettings validation and TLS context defaults (no network)."""

from __future__ import annotations

import ssl

import pytest
from pydantic import ValidationError

from mailbridge.providers.imap import ImapSettings, Security, build_ssl_context


def settings(**overrides: object) -> ImapSettings:
    values: dict[str, object] = {"host": "imap.example.test", "username": "u", "password": "p"}
    values.update(overrides)
    return ImapSettings.model_validate(values)


def test_defaults_are_implicit_tls_on_993_with_verification() -> None:
    # Given / When minimal settings
    s = settings()

    # Then
    assert s.security is Security.SSL
    assert s.effective_port == 993
    assert not s.allow_insecure
    context = build_ssl_context(s)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


@pytest.mark.parametrize(("security", "port"), [(Security.STARTTLS, 143), (Security.SSL, 993)])
def test_default_port_follows_security(security: Security, port: int) -> None:
    assert settings(security=security).effective_port == port


def test_explicit_port_wins() -> None:
    assert settings(security=Security.STARTTLS, port=1143).effective_port == 1143


def test_plain_text_requires_allow_insecure() -> None:
    # Given / When security none without the opt-in
    with pytest.raises(ValidationError) as caught:
        settings(security="none")

    # Then it is rejected, and the password is not echoed
    assert "allow_insecure" in str(caught.value)
    assert settings(security="none", allow_insecure=True).effective_port == 143


def test_allow_insecure_turns_verification_off() -> None:
    context = build_ssl_context(settings(allow_insecure=True))
    assert context.verify_mode == ssl.CERT_NONE
    assert not context.check_hostname


@pytest.mark.parametrize(
    "overrides",
    [
        {"host": ""},
        {"host": "imap example"},
        {"port": 0},
        {"port": 70000},
        {"username": ""},
        {"password": ""},
        {"timeout_seconds": 0},
        {"security": "tls13"},
        {"unknown": 1},
    ],
)
def test_rejects_bad_values(overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        settings(**overrides)


def test_password_is_never_shown() -> None:
    # Given settings with a password
    s = settings(password="hunter2-secret")

    # Then neither repr nor a JSON dump reveals it
    assert "hunter2-secret" not in repr(s)
    assert "hunter2-secret" not in s.model_dump_json()
    assert s.password.get_secret_value() == "hunter2-secret"
