"""TLS in the deployed configuration verifies against the system trust store: the real Dovecot's
and the SMTP sink's self-signed certificates are refused as `tls_failed` on connect, sync and
send, and no password is sent.

The test configuration trusts those certificates only by passing them to the adapters as
`ca_bundle` (tests/fixtures/dovecot.py, tests/fixtures/smtp.py); the deployed code never sets
`ca_bundle`, and `deployed_stack` removes SSL_CERT_FILE and its kind from the environment. The
servers are reached as `localhost`, a name their certificates do cover, through a public address
(tests/integration/stub_servers.py `PublicRoute`), so the guard lets them through and an
untrusted issuer is the only thing wrong. The last test shows that: trusting the certificate
makes the same request work.
"""

from __future__ import annotations

from typing import Any

import pytest

from mailbridge.api import deps
from mailbridge.sync.wiring import service_deps
from tests.fixtures.aws import Stack
from tests.fixtures.smtp import SINK_PASSWORD, SINK_USER, SmtpSink
from tests.integration.dovecot import DovecotServer, DovecotUser
from tests.integration.queue_harness import QueueConsumer
from tests.integration.stub_servers import PublicRoute
from tests.integration.sync_harness import call_api
from tests.integration.test_api_accounts import account_items, logged_in, seed_account

pytestmark = pytest.mark.dovecot

Invoke = Any
NAME = "localhost"  # in the test certificates' subjectAltName


@pytest.fixture
def route(monkeypatch: pytest.MonkeyPatch) -> PublicRoute:
    return PublicRoute(monkeypatch, NAME)


def mailbox(server: DovecotServer, user: DovecotUser, security: str) -> dict[str, Any]:
    port = server.imaps_port if security == "ssl" else server.imap_port
    return {
        "provider": "imap",
        "address": f"{user.name}@example.com",
        "imap": {
            "host": NAME,
            "port": port,
            "security": security,
            "username": user.name,
            "password": user.password,
        },
    }


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_connecting_to_an_imap_server_with_an_untrusted_certificate_is_tls_failed(
    stack: Stack,
    invoke_api: Invoke,
    route: PublicRoute,
    dovecot_server: DovecotServer,
    dovecot_user: DovecotUser,
    security: str,
) -> None:
    # Given the real Dovecot, its certificate self-signed, reached under a name it covers
    # When a member connects the mailbox (implicit TLS or STARTTLS)
    status, answer = call_api(
        invoke_api, "create-account.json", body=mailbox(dovecot_server, dovecot_user, security)
    )
    # Then it is 422 tls_failed for the IMAP server (the connection was made; the certificate
    # was refused), and nothing is stored
    assert status == 422, answer
    assert (answer["error"]["code"], answer["error"]["details"]["server"]) == ("tls_failed", "imap")
    assert route.connects
    assert account_items(stack, "") == []


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_connecting_to_an_smtp_server_with_an_untrusted_certificate_is_tls_failed(
    stack: Stack, invoke_api: Invoke, route: PublicRoute, smtp_sink: SmtpSink, security: str
) -> None:
    # Given an IMAP server whose login works (a stand-in) and the SMTP sink, its certificate
    # self-signed, reached under a name it covers
    deps.account_deps().connect = logged_in
    port = smtp_sink.ssl_port if security == "ssl" else smtp_sink.starttls_port
    body = {
        "provider": "imap",
        "address": SINK_USER,
        "imap": {"host": "imap.example.com", "security": "ssl", "username": "u", "password": "p"},
        "smtp": {
            "host": NAME,
            "port": port,
            "security": security,
            "username": SINK_USER,
            "password": SINK_PASSWORD,
        },
    }
    # When a member connects the mailbox
    status, answer = call_api(invoke_api, "create-account.json", body=body)
    # Then it is 422 tls_failed for the SMTP server, and nothing is stored
    assert status == 422, answer
    assert (answer["error"]["code"], answer["error"]["details"]["server"]) == ("tls_failed", "smtp")
    assert route.connects
    assert account_items(stack, "") == []


def test_the_sync_refuses_an_untrusted_certificate(
    stack: Stack, invoke_api: Invoke, route: PublicRoute, dovecot_server: DovecotServer
) -> None:
    # Given an account on the real Dovecot (IMAPS), its certificate self-signed; its stored
    # password is wrong, so a connection that skipped verification would end in auth_failed
    account = seed_account(host=NAME, port=dovecot_server.imaps_port)
    service_deps().sleep = lambda seconds: None  # the retries of a transient failure, at once
    # When a sync runs
    params = {"account_id": account.account_id}
    assert call_api(invoke_api, "sync-account.json", params=params)[0] == 202
    QueueConsumer(stack, "sync", "SyncQueue").drain()
    # Then it failed with tls_failed
    status, state = call_api(invoke_api, "get-account-status.json", params=params, role="viewer")
    assert (status, state["stage"], state["reason"]) == (200, "failed", "tls_failed")
    assert route.connects


def test_the_outbox_refuses_an_untrusted_certificate_and_sends_nothing(
    stack: Stack, invoke_api: Invoke, route: PublicRoute, smtp_sink: SmtpSink
) -> None:
    # Given an account sending through the SMTP sink (implicit TLS), its certificate self-signed
    # (the IMAP side is never reached: the send comes first)
    account = seed_account(host="imap.example.com", port=smtp_sink.ssl_port, smtp_host=NAME)
    # When a message is sent from it
    status, accepted = call_api(
        invoke_api,
        "send-email.json",
        body={
            "account_id": account.account_id,
            "to": [{"address": "bob@example.org"}],
            "subject": "Hi",
            "text": "Hi",
        },
    )
    assert status == 202, accepted
    results = QueueConsumer(stack, "outbox", "OutboxQueue").drain()
    # Then the record failed (to be retried), nothing reached the sink, and it is not sent
    assert [len(r["batchItemFailures"]) for r in results] == [1]
    assert smtp_sink.messages == []
    params = {"email_id": accepted["email_id"]}
    status, view = call_api(invoke_api, "get-email.json", params=params, role="viewer")
    assert (status, view["status"]) == (200, "queued")
    assert route.connects


def test_the_same_server_is_accepted_once_its_certificate_is_trusted(
    stack: Stack,
    invoke_api: Invoke,
    route: PublicRoute,
    dovecot_server: DovecotServer,
    dovecot_user: DovecotUser,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the Dovecot certificate trusted the way a deployment could (the OpenSSL default store)
    monkeypatch.setenv("SSL_CERT_FILE", str(dovecot_server.cert_path))
    # When the same mailbox is connected as in the tls_failed test
    status, answer = call_api(
        invoke_api, "create-account.json", body=mailbox(dovecot_server, dovecot_user, "ssl")
    )
    # Then it is connected: the untrusted issuer was the only reason for tls_failed
    assert status == 201, answer
