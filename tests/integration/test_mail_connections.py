"""The IMAP and SMTP adapters verify TLS against the host name and give up at their deadline,
against real loopback servers. That they connect only to the addresses they checked (DNS
rebinding) is tested in the deployed configuration: tests/deployed/test_dns_rebinding.py."""

from __future__ import annotations

import time
from typing import Any, Literal

import pytest

from mailbridge.errors import ProviderUnreachable
from mailbridge.providers.imap import ImapSettings, Security, connect
from mailbridge.providers.smtp import SmtpSettings
from mailbridge.providers.smtp.client import check_login
from tests.fixtures.dovecot import ImapSettingsFactory
from tests.integration.stub_servers import Rebinding, StallingServer

Mode = Literal["silent", "trickle"]


def _imap(port: int, **overrides: Any) -> ImapSettings:
    values: dict[str, Any] = {
        "host": "mail.rebind.test",
        "port": port,
        "security": Security.SSL,
        "username": "alice",
        "password": "secret",
        "timeout_seconds": 60,
    } | overrides
    return ImapSettings.model_validate(values)


def _smtp(port: int, **overrides: Any) -> SmtpSettings:
    values: dict[str, Any] = {
        "host": "mail.rebind.test",
        "port": port,
        "security": Security.SSL,
        "username": "alice",
        "password": "secret",
        "timeout_seconds": 60,
    } | overrides
    return SmtpSettings.model_validate(values)


@pytest.mark.dovecot
def test_tls_is_verified_against_the_host_name_not_the_address_connected_to(
    monkeypatch: pytest.MonkeyPatch, imap_settings: ImapSettingsFactory
) -> None:
    # Given Dovecot's certificate, valid for "localhost" and 127.0.0.1 but not "mail.rebind.test",
    # and both names resolving to 127.0.0.1
    Rebinding(monkeypatch, "mail.rebind.test", first="127.0.0.1")
    # When connecting under the name the certificate does not cover
    with pytest.raises(ProviderUnreachable) as caught:
        connect(imap_settings(Security.SSL, host="mail.rebind.test"))
    # Then verification fails, although the checked address is one the certificate names
    assert caught.value.code == "tls_failed"
    # And under the name it covers, the same address works
    with connect(imap_settings(Security.SSL, host="localhost")) as mailbox:
        assert "IMAP4REV1" in mailbox.capabilities()


@pytest.mark.parametrize("mode", ["silent", "trickle"])
def test_imap_gives_up_at_its_deadline_on_a_stalling_server(mode: Mode) -> None:
    # Given a server that accepts and stalls (no per-socket timeout will fire: 60 s, and a
    # trickle resets it), and a deadline two seconds away
    server = StallingServer("imap", mode)
    try:
        settings = _imap(
            server.port,
            host="127.0.0.1",
            security=Security.NONE,
            allow_insecure=True,
            allow_private=True,
            deadline=time.monotonic() + 2.0,
        )
        # When connecting
        with pytest.raises(ProviderUnreachable) as caught:
            connect(settings)
    finally:
        server.wait_accepted(1)
        server.close()
    # Then it is a timeout (waiting the server out would have ended in its refusal instead)
    assert caught.value.code == "timeout"
    assert server.accepted == 1


@pytest.mark.parametrize("mode", ["silent", "trickle"])
def test_smtp_gives_up_at_its_deadline_on_a_stalling_server(mode: Mode) -> None:
    server = StallingServer("smtp", mode)
    try:
        settings = _smtp(
            server.port,
            host="127.0.0.1",
            security=Security.NONE,
            allow_insecure=True,
            allow_private=True,
            deadline=time.monotonic() + 2.0,
        )
        with pytest.raises(ProviderUnreachable) as caught:
            check_login(settings)
    finally:
        server.wait_accepted(1)
        server.close()
    assert caught.value.code == "timeout"
    assert server.accepted == 1
