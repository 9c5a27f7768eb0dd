"""DNS rebinding at connect time, in the deployed configuration: a host name is resolved once,
its addresses are checked, and the connection goes to a checked address. A name that answers a
public address first and a loopback one afterwards (tests/integration/stub_servers.py
`Rebinding`) never gets a connection to the loopback canary, whoever connects: the API's login
check, the sync, or the outbox.
"""

from __future__ import annotations

from typing import Any

import pytest

from mailbridge.errors import ProviderUnreachable
from mailbridge.sync.wiring import service_deps
from tests.deployed.test_mail_host_guard import log_in
from tests.fixtures.aws import Stack
from tests.integration.queue_harness import QueueConsumer
from tests.integration.stub_servers import PUBLIC_ADDRESS, Canary, Rebinding
from tests.integration.sync_harness import call_api
from tests.integration.test_api_accounts import account_items, new_account, seed_account

Invoke = Any
NAME = "mail.rebind.test"


def test_connecting_never_reaches_what_the_host_name_rebinds_to(
    stack: Stack, invoke_api: Invoke, monkeypatch: pytest.MonkeyPatch, canary: Canary
) -> None:
    # Given a host name that resolves to a public address, then to a loopback server
    dns = Rebinding(monkeypatch, NAME)
    # When a mailbox on it is connected
    body = new_account(host=NAME, port=canary.port)
    status, answer = call_api(invoke_api, "create-account.json", body=body)
    # Then only the checked public address was tried (refused here: there is no network)
    assert status == 422, answer
    assert answer["error"]["code"] == "unreachable"
    assert dns.lookups == [NAME]
    assert dns.connects_to(canary.port) == [(PUBLIC_ADDRESS, canary.port)]
    assert canary.accepted == 0
    assert account_items(stack, "") == []


def test_the_sync_never_reaches_what_the_host_name_rebinds_to(
    stack: Stack, invoke_api: Invoke, monkeypatch: pytest.MonkeyPatch, canary: Canary
) -> None:
    # Given an account on a host name that resolves to a public address, then to a loopback server
    account = seed_account(host=NAME, port=canary.port)
    dns = Rebinding(monkeypatch, NAME)
    service_deps().sleep = lambda seconds: None  # its retries of the refused connection, at once
    # When a sync runs (and retries the unreachable server)
    params = {"account_id": account.account_id}
    assert call_api(invoke_api, "sync-account.json", params=params)[0] == 202
    QueueConsumer(stack, "sync", "SyncQueue").drain()
    # Then the first attempt connected to the public address it checked (refused: no network);
    # the retry resolved again, got the loopback answer and was refused by the guard
    status, state = call_api(invoke_api, "get-account-status.json", params=params, role="viewer")
    assert (status, state["stage"], state["reason"]) == (200, "failed", "host_not_allowed")
    assert dns.lookups == [NAME, NAME]
    assert dns.connects_to(canary.port) == [(PUBLIC_ADDRESS, canary.port)]
    assert canary.accepted == 0


@pytest.mark.parametrize("protocol", ["imap", "smtp"])
def test_the_adapters_connect_to_the_address_they_checked_not_to_a_second_answer(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, canary: Canary, protocol: str
) -> None:
    # Given the adapter settings the deployed stack builds for a host name that resolves to a
    # public address, then to a loopback server
    account = seed_account(host=NAME, port=canary.port, smtp_host=NAME)
    dns = Rebinding(monkeypatch, NAME)
    # When the adapter connects
    with pytest.raises(ProviderUnreachable) as caught:
        log_in(protocol, account)
    # Then it resolved once and tried exactly the checked public address (refused here)
    assert caught.value.code == "unreachable"
    assert dns.lookups == [NAME]
    assert dns.connects_to(canary.port) == [(PUBLIC_ADDRESS, canary.port)]
    assert canary.accepted == 0
