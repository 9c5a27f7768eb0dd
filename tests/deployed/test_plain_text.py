"""Plain-text mail servers (`security: none`) in the deployed configuration: refused with 400
`insecure_not_allowed` when connected or changed to, and never spoken to by the sync, a flag push
or the outbox for an account connected while the stack allowed them (local mode).

Mail hosts here resolve to a public address that reaches a loopback canary
(tests/integration/stub_servers.py `PublicRoute`): the mail-host guard lets them through, so
plain text is the only reason left to refuse them, and a connection would be counted.
"""

from __future__ import annotations

from typing import Any

import pytest

from mailbridge.api import deps
from mailbridge.providers.imap.settings import Security
from tests.fixtures.aws import Stack
from tests.integration.queue_harness import QueueConsumer
from tests.integration.stub_servers import Canary, PublicRoute
from tests.integration.sync_harness import call_api, message
from tests.integration.test_api_accounts import account_items, logged_in, new_account, seed_account
from tests.integration.test_api_emails import Seeder

Invoke = Any
IMAP, SMTP = "imap.public.test", "smtp.public.test"


@pytest.fixture
def route(monkeypatch: pytest.MonkeyPatch) -> PublicRoute:
    return PublicRoute(monkeypatch, IMAP, SMTP)


def plain_account(canary: Canary, *, smtp: bool = False) -> str:
    """An account connected while the stack allowed plain text (IMAP, and SMTP when asked)."""
    account = seed_account(
        host=IMAP, port=canary.port, smtp_host=SMTP if smtp else None, security=Security.NONE
    )
    return account.account_id


def refused(status: int, answer: Any) -> bool:
    return (status, answer["error"]["code"]) == (400, "insecure_not_allowed")


# ------------------------------------------------------------------------------ the API


@pytest.mark.parametrize("server", ["imap", "smtp"])
def test_connecting_a_plain_text_server_is_400_insecure_not_allowed(
    stack: Stack, invoke_api: Invoke, route: PublicRoute, canary: Canary, server: str
) -> None:
    # Given a mailbox whose IMAP or SMTP server is plain text (the other one TLS), on public hosts
    deps.account_deps().connect = logged_in
    body = new_account(host=IMAP, port=canary.port, security="ssl")
    body["smtp"] = body["imap"] | {"host": SMTP}
    body[server]["security"] = "none"
    # When a member connects it
    status, answer = call_api(invoke_api, "create-account.json", body=body)
    # Then it is 400 insecure_not_allowed, nothing was connected to, and nothing is stored
    assert refused(status, answer), answer
    assert route.connects == []
    assert canary.accepted == 0
    assert account_items(stack, "") == []


def test_changing_the_smtp_server_to_plain_text_is_400_and_not_saved(
    stack: Stack, invoke_api: Invoke, route: PublicRoute, canary: Canary
) -> None:
    # Given an account that sends over TLS
    account = seed_account(host=IMAP, port=canary.port, smtp_host=SMTP)
    params = {"account_id": account.account_id}
    # When its SMTP server is changed to plain text
    change = {"smtp": {"security": "none", "port": canary.port}}
    status, answer = call_api(invoke_api, "patch-account.json", params=params, body=change)
    # Then it is 400 insecure_not_allowed, nothing was connected to, and the account is unchanged
    assert refused(status, answer), answer
    assert canary.accepted == 0
    status, stored = call_api(invoke_api, "get-account.json", params=params, role="viewer")
    assert (status, stored["smtp"]["security"], stored["version"]) == (200, "ssl", 1)


def test_a_new_password_for_a_plain_text_account_is_400_and_not_sent(
    stack: Stack, invoke_api: Invoke, route: PublicRoute, canary: Canary
) -> None:
    # Given an account connected in plain text while the stack allowed it
    account_id = plain_account(canary)
    # When its password is changed (which would be tried with a login)
    params = {"account_id": account_id}
    change = {"imap": {"password": "new-password"}}
    status, answer = call_api(invoke_api, "patch-account.json", params=params, body=change)
    # Then it is 400 insecure_not_allowed and the password went nowhere
    assert refused(status, answer), answer
    assert route.connects == []
    assert canary.accepted == 0


# ------------------------------------------------------------------------------ the handlers


def test_the_sync_of_a_plain_text_account_fails_for_good_without_connecting(
    stack: Stack, invoke_api: Invoke, route: PublicRoute, canary: Canary
) -> None:
    # Given an account connected in plain text while the stack allowed it
    account_id = plain_account(canary)
    params = {"account_id": account_id}
    # When a sync runs
    assert call_api(invoke_api, "sync-account.json", params=params)[0] == 202
    QueueConsumer(stack, "sync", "SyncQueue").drain(expect_success=True)
    # Then it failed with insecure_not_allowed (not retried: the record succeeded) and the
    # password was sent nowhere
    status, state = call_api(invoke_api, "get-account-status.json", params=params, role="viewer")
    assert (status, state["stage"], state["reason"]) == (200, "failed", "insecure_not_allowed")
    assert route.connects == []
    assert canary.accepted == 0


def test_a_flag_push_to_a_plain_text_account_is_dropped_without_connecting(
    stack: Stack, invoke_api: Invoke, route: PublicRoute, canary: Canary
) -> None:
    # Given a synced email of an account connected in plain text
    account_id = plain_account(canary)
    email_id = Seeder(stack).add(message("Hi", msgid="plain@example.com"), account=account_id, flags=())
    # When the user marks it read
    status, answer = call_api(
        invoke_api, "patch-email.json", params={"email_id": email_id}, body={"read": True}
    )
    assert status == 200, answer
    # Then the flag push is dropped (the record succeeds, no retry) without connecting
    QueueConsumer(stack, "sync", "SyncQueue").drain(expect_success=True)
    assert route.connects == []
    assert canary.accepted == 0


def test_the_outbox_never_sends_through_a_plain_text_server(
    stack: Stack, invoke_api: Invoke, route: PublicRoute, canary: Canary
) -> None:
    # Given an account whose SMTP server is plain text (connected while the stack allowed it)
    account_id = plain_account(canary, smtp=True)
    # When a message is sent from it
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
    QueueConsumer(stack, "outbox", "OutboxQueue").drain(expect_success=True)
    # Then the send failed for good with insecure_not_allowed, and nothing was connected to
    params = {"email_id": accepted["email_id"]}
    status, view = call_api(invoke_api, "get-email.json", params=params, role="viewer")
    assert (status, view["status"], view["failure"]["code"]) == (200, "failed", "insecure_not_allowed")
    assert route.connects == []
    assert canary.accepted == 0
