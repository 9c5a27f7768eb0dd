"""Integration fixtures: a real Dovecot IMAP server (see tests/integration/dovecot.py).

Without a dovecot binary the Dovecot tests are skipped, except with CI=true where they fail:
`scripts/ensure-dovecot` installs it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator

import pytest

from mailbridge.providers.imap import ImapSettings, Security
from tests.integration.dovecot import (
    CuttableProxy,
    DovecotServer,
    DovecotUser,
    dovecot_version,
    find_dovecot,
    make_server_root,
)


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: nothing may be skipped; run scripts/ensure-dovecot)")
    pytest.skip(f"{reason}; run scripts/ensure-dovecot to install it")


@pytest.fixture(scope="session")
def dovecot_server() -> Iterator[DovecotServer]:
    """One Dovecot process for the session, on free 127.0.0.1 ports (IMAP+STARTTLS, IMAPS)."""
    binary = find_dovecot()
    if binary is None:
        _missing("dovecot is not installed")
        raise AssertionError("unreachable")  # for type checkers: skip/fail raise
    version = dovecot_version(binary)
    if not version.startswith("2.3"):
        _missing(f"the test config is written for Dovecot 2.3, found {version}")
    root = make_server_root()
    server = DovecotServer(root=root, binary=binary)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def make_dovecot_user(dovecot_server: DovecotServer) -> Callable[[], DovecotUser]:
    """Factory for fresh users with empty mailboxes, so tests never see each other's mail."""
    return dovecot_server.add_user


@pytest.fixture
def dovecot_user(make_dovecot_user: Callable[[], DovecotUser]) -> DovecotUser:
    return make_dovecot_user()


ImapSettingsFactory = Callable[..., ImapSettings]


@pytest.fixture
def imap_settings(dovecot_server: DovecotServer, dovecot_user: DovecotUser) -> ImapSettingsFactory:
    """`imap_settings(security=Security.SSL, **overrides)`: settings for `dovecot_user`.

    The port follows the security mode, and the fixture's self-signed certificate is the CA.
    """

    def build(security: Security = Security.SSL, **overrides: object) -> ImapSettings:
        values: dict[str, object] = {
            "host": dovecot_server.host,
            "port": dovecot_server.imaps_port if security is Security.SSL else dovecot_server.imap_port,
            "security": security,
            "username": dovecot_user.name,
            "password": dovecot_user.password,
            "timeout_seconds": 10,
            "ca_bundle": dovecot_server.cert_path,
            "allow_insecure": security is Security.NONE,
        }
        values.update(overrides)
        return ImapSettings.model_validate(values)

    return build


@pytest.fixture
def cuttable_proxy(dovecot_server: DovecotServer) -> Iterator[CuttableProxy]:
    """A relay to Dovecot's plain IMAP port that a test can cut (`cut()`, `cut_after(n)`)."""
    proxy = CuttableProxy(dovecot_server.imap_port)
    try:
        yield proxy
    finally:
        proxy.close()
