"""The completeness reconciler (sync/reconcile.py) per provider: a gap made on purpose (a message
deleted from our store; a message added on the server with its push dropped; one removed on the
server unseen) is found, repaired through the sync's own storing code, and the folder's verdict
in `GET /accounts/{id}/status` says so; the next reconcile finds the folder whole. IMAP against a
real Dovecot, Gmail and Graph against their local doubles, all on moto."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from mailbridge.store.keys import location_sk
from mailbridge.sync.wiring import service_deps
from tests.events import load_event
from tests.fixtures.aws import Stack
from tests.integration.dovecot import DovecotServer, DovecotUser
from tests.integration.sync_harness import TENANT, SyncHarness, message

Invoke = Callable[[dict[str, Any]], dict[str, Any]]


def lose_location(sk: str) -> None:
    """Our store loses a message's location (the email item stays, as after a partial failure)."""
    emails = service_deps().sync.emails
    location = emails.get_location(TENANT, sk)
    assert location is not None, sk
    emails.delete_location(TENANT, sk)
    emails.detach_location(TENANT, str(location["email_id"]), sk)


def post_reconcile(invoke_api: Invoke, account_id: str) -> dict[str, Any]:
    event = load_event("api/reconcile-account.json", tenant=TENANT, role="member")
    event["pathParameters"] = {"account_id": account_id}
    path = f"/accounts/{account_id}/reconcile"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    return invoke_api(event)


def folder(status: dict[str, Any], name: str) -> dict[str, Any]:
    found = [f for f in status["folders"] if f["name"] == name]
    assert found, [f["name"] for f in status["folders"]]
    return found[0]


# ---------------------------------------------------------------------- IMAP


@pytest.fixture
def imap(
    stack: Stack, invoke_api: Invoke, dovecot_server: DovecotServer, dovecot_user: DovecotUser
) -> SyncHarness:
    h = SyncHarness(stack, invoke_api, dovecot_server, dovecot_user)
    service_deps().sleep = lambda _s: None
    return h


@pytest.mark.dovecot
def test_imap_gaps_are_found_repaired_and_shown_by_the_verdict(imap: SyncHarness, invoke_api: Invoke) -> None:
    # Given a synced INBOX of three messages
    for n in range(3):
        imap.server.append(imap.user, "INBOX", message(f"Quote {n}", msgid=f"q{n}@customer.example"))
    status, _ = imap.connect()
    assert status == 201
    imap.drain()
    inbox = folder(imap.status(), "INBOX")
    assert inbox["verdict"] == "healthy"
    assert inbox["stored_count"] == 3
    # ... whose second message our store then loses, a fourth arriving unseen (no poll ran),
    # and the third expunged on the server unseen
    uidvalidity = inbox["uidvalidity"]
    lose_location(location_sk(imap.account_id, "INBOX", uidvalidity, 2))
    imap.server.append(imap.user, "INBOX", message("Quote 3", msgid="q3@customer.example"))
    imap.server.expunge(imap.user, "INBOX", 3)

    # When a reconcile is requested twice and the queue is drained
    first = post_reconcile(invoke_api, imap.account_id)
    second = post_reconcile(invoke_api, imap.account_id)
    queued = [json.loads(m["Body"]) for m in imap.receive()]
    imap.drain()

    # Then both requests answer 202 with the status location, and one reconcile was queued
    assert first["statusCode"] == second["statusCode"] == 202
    assert first["headers"]["Location"] == f"/accounts/{imap.account_id}/status"
    assert json.loads(first["body"])["reconcile_queued_at"] is not None
    assert [m["kind"] for m in queued] == ["reconcile"]
    # ... the lost and the unseen message are stored again, the expunged one is gone
    uids = sorted(int(loc["uid"]) for loc in imap.locations() if loc["folder"] == "INBOX")
    assert uids == [1, 2, 4]
    # ... and the status shows what was found and repaired, and the gap in the verdict
    after = imap.status()
    inbox = folder(after, "INBOX")
    assert after["reconcile_queued_at"] is None
    assert inbox["verdict"] == "gap_found"
    assert inbox["reconcile"]["missing"] == 2
    assert inbox["reconcile"]["extra"] == 1
    assert inbox["reconcile"]["repaired"] == 3
    assert inbox["server_count"] == inbox["stored_count"] == 3

    # When it is reconciled again
    assert post_reconcile(invoke_api, imap.account_id)["statusCode"] == 202
    imap.drain()

    # Then it finds the folder whole: healthy, and the sync stores nothing twice
    inbox = folder(imap.status(), "INBOX")
    assert inbox["verdict"] == "healthy"
    assert (inbox["reconcile"]["missing"], inbox["reconcile"]["extra"]) == (0, 0)
    assert imap.api("sync-account.json", params={"account_id": imap.account_id})[0] == 202
    imap.drain()
    assert sorted(int(loc["uid"]) for loc in imap.locations() if loc["folder"] == "INBOX") == [1, 2, 4]
    assert len(imap.emails()) == 4  # the expunged message's email stays (marked deleted)
