"""Issue 12 acceptance for the reconciler through the local runner: a Dovecot mailbox connected
over the HTTP API and synced, then a message added on the server that no poll has seen; `POST
/accounts/{id}/reconcile` queues the reconcile on the SyncQueue, the sync function finds and
stores the message, and `GET /accounts/{id}/status` shows the gap it repaired."""

from __future__ import annotations

import pytest

from local.runner import Runner
from tests.e2e.conftest import call, connect_mailbox
from tests.integration.dovecot import DovecotServer, DovecotUser
from tests.integration.sync_harness import message

pytestmark = pytest.mark.dovecot


def test_a_reconcile_through_the_runner_finds_and_repairs_unseen_mail(
    mail_runner: Runner, dovecot_server: DovecotServer, dovecot_user: DovecotUser
) -> None:
    runner, server, user = mail_runner, dovecot_server, dovecot_user
    token = runner.token(tenant="reconcile-e2e", role="member", sub="alice")
    # Given a connected, synced mailbox of two messages
    for n in range(2):
        server.append(user, "INBOX", message(f"Order {n}", msgid=f"o{n}@customer.example"))
    account_id = connect_mailbox(runner, token, server, user)
    runner.drain()
    # ... and a third message that arrives while no poll runs (the runner's clock stands still)
    server.append(user, "INBOX", message("Order 2", msgid="o2@customer.example"))

    # When a reconcile is requested and the queues are drained
    status, queued = call(runner, "POST", f"/accounts/{account_id}/reconcile", token)
    assert status == 202, queued
    assert queued["reconcile_queued_at"] is not None
    runner.drain()

    # Then the message is listed, and the INBOX's verdict shows the gap, repaired
    status, page = call(runner, "GET", f"/emails?account_id={account_id}", token)
    assert status == 200, page
    assert sorted(e["subject"] for e in page["items"]) == ["Order 0", "Order 1", "Order 2"]
    status, state = call(runner, "GET", f"/accounts/{account_id}/status", token)
    assert status == 200, state
    assert state["reconcile_queued_at"] is None
    (inbox,) = [f for f in state["folders"] if f["name"] == "INBOX"]
    assert inbox["verdict"] == "gap_found"
    assert (inbox["reconcile"]["missing"], inbox["reconcile"]["repaired"]) == (1, 1)
    assert inbox["server_count"] == inbox["stored_count"] == 3
