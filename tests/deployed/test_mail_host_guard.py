"""The mail-host guard in the deployed configuration: a mail host that is, or resolves to, a
loopback, private, link-local, metadata or IPv4-mapped IPv6 address is refused on every path that
would connect to it (create, PATCH, sync, flag push, send, filing the Sent copy), through the API
and the queue handlers, and nothing is connected to.

Each test covers every kind of address on one path, one stack: `<kind>.inside.test` resolves to
the address of that kind (tests/integration/stub_servers.py `ScriptedDns`), and a canary listener
on loopback counts the connections that get through (none).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from mailbridge import accounts, crypto
from mailbridge.api import deps
from mailbridge.config import get_settings
from mailbridge.models.account import Account
from mailbridge.outbox.wiring import outbox_deps
from mailbridge.providers.imap import connect
from mailbridge.providers.netguard import HostNotAllowed
from mailbridge.providers.smtp.client import check_login
from mailbridge.providers.smtp.models import SendResult
from mailbridge.store.accounts import AccountStore
from tests.fixtures.aws import Stack
from tests.integration.queue_harness import QueueConsumer
from tests.integration.stub_servers import Canary, ScriptedDns
from tests.integration.sync_harness import TENANT, call_api, message
from tests.integration.test_api_accounts import account_items, logged_in, new_account, seed_account
from tests.integration.test_api_emails import Seeder

Invoke = Any

# One address of each kind the guard exists for (RFC 6890 special-purpose ranges).
REFUSED = {
    "loopback": "127.0.0.1",
    "private": "10.0.0.8",
    "link-local": "fe80::1",
    "metadata": "169.254.169.254",  # the instance metadata service
    "ipv4-mapped": "::ffff:127.0.0.1",  # loopback dressed as IPv6
}
# More of them, for the cheapest path (create).
ALSO_REFUSED = {
    "private-172": "172.16.5.4",
    "private-192": "192.168.1.20",
    "loopback-v6": "::1",
    "metadata-v6": "fd00:ec2::254",  # the metadata service over IPv6 (a unique local address)
    "ipv4-mapped-metadata": "::ffff:169.254.169.254",
    "unspecified": "0.0.0.0",
}


def host(kind: str) -> str:
    return f"{kind}.inside.test"


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> ScriptedDns:
    """`<kind>.inside.test` resolves to the address of that kind."""
    return ScriptedDns(monkeypatch, {host(kind): a for kind, a in (REFUSED | ALSO_REFUSED).items()})


def seed(kind: str, canary: Canary, *, imap: str | None = None, smtp: str | None = None) -> Account:
    """An account as an earlier create left it, on the canary's port."""
    return seed_account(
        host=imap or host(kind),
        port=canary.port,
        address=f"{kind}@example.com",
        smtp_host=smtp,
    )


def send(invoke_api: Invoke, account_id: str) -> str:
    status, accepted = call_api(
        invoke_api,
        "send-email.json",
        body={
            "account_id": account_id,
            "to": [{"address": "bob@example.org"}],
            "subject": "Hi",
            "text": "Hi",
        },
    )
    assert status == 202, accepted
    return str(accepted["email_id"])


def stored_password(account_id: str) -> str | None:
    envelope = AccountStore(get_settings().tables.accounts).get_credentials(TENANT, account_id)
    assert envelope is not None
    secrets = json.loads(crypto.decrypt(envelope, accounts.credentials_context(TENANT, account_id)))
    return secrets["imap_password"]  # type: ignore[no-any-return]


def log_in(protocol: str, account: Account) -> None:
    """Log in with the adapter settings the running stack builds for the account (IMAP or SMTP)."""
    allow_private = get_settings().allow_private_mail_hosts
    if protocol == "imap":
        assert account.imap is not None
        connect(accounts.imap_settings(account.imap, "pw", allow_private=allow_private))
    else:
        assert account.smtp is not None
        check_login(accounts.smtp_settings(account.smtp, "pw", allow_private=allow_private))


def nothing_reached(dns: ScriptedDns, canary: Canary) -> None:
    assert dns.connects == []
    assert canary.accepted == 0


# ------------------------------------------------------------------------------ create


def test_connecting_a_mailbox_whose_host_resolves_to_a_refused_address_is_400(
    stack: Stack, invoke_api: Invoke, dns: ScriptedDns, canary: Canary
) -> None:
    for kind in REFUSED | ALSO_REFUSED:
        # Given an IMAP host name that resolves to an address of this kind
        # When a member connects a mailbox on it
        body = new_account(f"{kind}@example.com", host=host(kind), port=canary.port)
        status, answer = call_api(invoke_api, "create-account.json", body=body)
        # Then it is 400 host_not_allowed for the IMAP server
        assert (status, answer["error"]["code"]) == (400, "host_not_allowed"), kind
        assert answer["error"]["details"] == {"server": "imap"}, kind
    # And each name was looked up, nothing was connected to, and nothing is stored
    assert sorted(dns.lookups) == sorted(host(k) for k in REFUSED | ALSO_REFUSED)
    nothing_reached(dns, canary)
    assert account_items(stack, "") == []


def test_an_address_given_as_the_host_is_refused_too(
    stack: Stack, invoke_api: Invoke, canary: Canary
) -> None:
    for literal in ("127.0.0.1", "169.254.169.254", "10.0.0.8", "0.0.0.0"):
        # Given an IPv4 literal as the host (no DNS involved) / When it is connected
        body = new_account(f"x{literal.replace('.', '')}@example.com", host=literal, port=canary.port)
        status, answer = call_api(invoke_api, "create-account.json", body=body)
        # Then it is refused
        assert (status, answer["error"]["code"]) == (400, "host_not_allowed"), literal
    # And nothing was connected to or stored
    assert canary.accepted == 0
    assert account_items(stack, "") == []


def test_an_smtp_host_that_resolves_to_a_refused_address_is_400(
    stack: Stack, invoke_api: Invoke, dns: ScriptedDns, canary: Canary
) -> None:
    # Given an IMAP server whose login works (a stand-in)
    deps.account_deps().connect = logged_in
    for kind in REFUSED:
        # And an SMTP host resolving to an address of this kind
        body = new_account(f"{kind}@example.com")
        body["smtp"] = body["imap"] | {"host": host(kind), "port": canary.port}
        # When the mailbox is connected
        status, answer = call_api(invoke_api, "create-account.json", body=body)
        # Then it is 400 host_not_allowed for the SMTP server
        assert (status, answer["error"]["code"]) == (400, "host_not_allowed"), kind
        assert answer["error"]["details"] == {"server": "smtp"}, kind
    # And nothing was connected to or stored
    nothing_reached(dns, canary)
    assert account_items(stack, "") == []


# ------------------------------------------------------------------------------ PATCH


def test_a_new_password_is_not_tried_against_a_host_that_now_resolves_to_a_refused_address(
    stack: Stack, invoke_api: Invoke, dns: ScriptedDns, canary: Canary
) -> None:
    for kind in REFUSED:
        # Given an account whose IMAP host now resolves to an address of this kind
        account = seed(kind, canary)
        # When its password is changed
        params = {"account_id": account.account_id}
        change = {"imap": {"password": "new-password"}}
        status, answer = call_api(invoke_api, "patch-account.json", params=params, body=change)
        # Then it is 400 host_not_allowed, and the stored password is still the old one
        assert (status, answer["error"]["code"]) == (400, "host_not_allowed"), kind
        assert answer["error"]["details"] == {"server": "imap"}, kind
        assert stored_password(account.account_id) == "app-password", kind
    # And nothing was connected to
    nothing_reached(dns, canary)


def test_an_smtp_host_changed_to_a_refused_address_is_400_and_not_saved(
    stack: Stack, invoke_api: Invoke, dns: ScriptedDns, canary: Canary
) -> None:
    for kind in REFUSED:
        # Given an account that sends through smtp.example.com
        account = seed(kind, canary, imap="imap.example.com", smtp="smtp.example.com")
        # When its SMTP host is changed to a name resolving to an address of this kind
        params = {"account_id": account.account_id}
        change = {"smtp": {"host": host(kind), "port": canary.port}}
        status, answer = call_api(invoke_api, "patch-account.json", params=params, body=change)
        # Then it is 400 host_not_allowed, and the account is unchanged
        assert (status, answer["error"]["code"]) == (400, "host_not_allowed"), kind
        assert answer["error"]["details"] == {"server": "smtp"}, kind
        status, stored = call_api(invoke_api, "get-account.json", params=params, role="viewer")
        assert (status, stored["smtp"]["host"], stored["version"]) == (200, "smtp.example.com", 1), kind
    # And nothing was connected to
    nothing_reached(dns, canary)


# ------------------------------------------------------------------------------ the handlers


def test_the_sync_checks_the_host_again_and_never_connects_to_a_refused_address(
    stack: Stack, invoke_api: Invoke, dns: ScriptedDns, canary: Canary
) -> None:
    # Given accounts whose hosts now resolve to refused addresses (rebound after creation)
    seeded = {kind: seed(kind, canary) for kind in REFUSED}
    # When a sync of each runs
    for account in seeded.values():
        assert call_api(invoke_api, "sync-account.json", params={"account_id": account.account_id})[0] == 202
    QueueConsumer(stack, "sync", "SyncQueue").drain(expect_success=True)
    # Then each failed with host_not_allowed
    for kind, account in seeded.items():
        params = {"account_id": account.account_id}
        status, state = call_api(invoke_api, "get-account-status.json", params=params, role="viewer")
        assert (status, state["stage"], state["reason"]) == (200, "failed", "host_not_allowed"), kind
    # And nothing was connected to
    assert sorted(dns.lookups) == sorted(host(k) for k in REFUSED)
    nothing_reached(dns, canary)


def test_a_flag_push_never_connects_to_a_refused_address(
    stack: Stack, invoke_api: Invoke, dns: ScriptedDns, canary: Canary
) -> None:
    # Given a synced email in each of accounts whose hosts now resolve to refused addresses
    seeder = Seeder(stack)
    for kind in REFUSED:
        account = seed(kind, canary)
        email_id = seeder.add(
            message(kind, msgid=f"{kind}@example.com"), account=account.account_id, flags=()
        )
        # When the user marks it read (a flag push to the mailbox is queued)
        status, answer = call_api(
            invoke_api, "patch-email.json", params={"email_id": email_id}, body={"read": True}
        )
        assert status == 200, answer
    # Then every push is dropped (not retried), having looked the host up but connected to nothing
    QueueConsumer(stack, "sync", "SyncQueue").drain(expect_success=True)
    assert sorted(dns.lookups) == sorted(host(k) for k in REFUSED)
    nothing_reached(dns, canary)


def test_the_outbox_checks_the_smtp_host_again_and_never_connects_to_a_refused_address(
    stack: Stack, invoke_api: Invoke, dns: ScriptedDns, canary: Canary
) -> None:
    # Given accounts whose SMTP hosts now resolve to refused addresses
    sent = {
        kind: send(invoke_api, seed(kind, canary, imap="imap.example.com", smtp=host(kind)).account_id)
        for kind in REFUSED
    }
    # When the messages sent from them are processed
    QueueConsumer(stack, "outbox", "OutboxQueue").drain(expect_success=True)
    # Then each send failed for good with host_not_allowed
    for kind, email_id in sent.items():
        status, view = call_api(invoke_api, "get-email.json", params={"email_id": email_id}, role="viewer")
        assert (status, view["status"], view["failure"]["code"]) == (200, "failed", "host_not_allowed"), kind
    # And nothing was connected to
    nothing_reached(dns, canary)


def test_filing_the_sent_copy_checks_the_imap_host_again(
    stack: Stack, invoke_api: Invoke, dns: ScriptedDns, canary: Canary
) -> None:
    # Given accounts whose IMAP hosts now resolve to refused addresses, and an SMTP server that
    # takes every message (a stand-in: the point is the IMAP connection that follows)
    sent_with: list[Any] = []

    def smtp_accepts(settings: Any, composed: Any) -> SendResult:
        sent_with.append(settings)
        return SendResult(accepted=list(composed.recipients), server_reply="250 2.0.0 queued")

    outbox_deps().send_smtp = smtp_accepts
    # When a message is sent from each
    sent = {
        kind: send(invoke_api, seed(kind, canary, smtp="smtp.example.com").account_id) for kind in REFUSED
    }
    QueueConsumer(stack, "outbox", "OutboxQueue").drain(expect_success=True)
    # Then each is sent, the SMTP connections were made under the guard, and no Sent copy was
    # filed: the IMAP hosts were refused without connecting
    for kind, email_id in sent.items():
        status, view = call_api(invoke_api, "get-email.json", params={"email_id": email_id}, role="viewer")
        assert (status, view["status"], view["locations"]) == (200, "sent", []), kind
    assert [s.allow_private for s in sent_with] == [False] * len(REFUSED)
    nothing_reached(dns, canary)


# ------------------------------------------------------------------------------ the adapters


@pytest.mark.parametrize("protocol", ["imap", "smtp"])
def test_the_adapters_given_the_deployed_settings_refuse_before_any_connection(
    stack: Stack, dns: ScriptedDns, canary: Canary, protocol: str
) -> None:
    for kind in REFUSED | ALSO_REFUSED:
        # Given the adapter settings the deployed stack builds for a host of this kind
        account = seed(kind, canary, smtp=host(kind))
        # When / Then the adapter refuses to connect
        with pytest.raises(HostNotAllowed):
            log_in(protocol, account)
    # And nothing was connected to
    nothing_reached(dns, canary)
