"""Sync against a server without CONDSTORE/QRESYNC (RFC 7162): expunges are found by diffing the
folder's UIDs (UID SEARCH ALL) against the stored locations when the message count says something
went away. The real api and sync handlers on moto, against a Dovecot that offers neither extension.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mailbridge.sync.wiring import service_deps
from tests.fixtures.aws import Stack
from tests.integration.dovecot import DovecotServer
from tests.integration.sync_harness import SyncHarness, message

pytestmark = pytest.mark.dovecot

Invoke = Callable[[dict[str, Any]], dict[str, Any]]


@pytest.fixture
def harness(stack: Stack, invoke_api: Invoke, dovecot_server_without_condstore: DovecotServer) -> SyncHarness:
    server = dovecot_server_without_condstore
    h = SyncHarness(stack, invoke_api, server, server.add_user())
    service_deps().sleep = lambda _s: None
    return h


def sync_now(h: SyncHarness) -> None:
    status, body = h.api("sync-account.json", params={"account_id": h.account_id})
    assert status == 202, body
    h.drain()


def inbox(h: SyncHarness) -> dict[str, Any]:
    return next(f for f in h.status()["folders"] if f["name"] == "INBOX")


def deleted(h: SyncHarness) -> dict[str, bool]:
    return {str(e["subject"]): bool(e["deleted"]) for e in h.emails()}


def test_an_expunge_is_found_by_uid_diff(harness: SyncHarness) -> None:
    # Given three synced messages on a server without CONDSTORE (so no modseq is kept)
    uids = [
        harness.server.append(harness.user, "INBOX", message(f"M{i}", msgid=f"m{i}@x.example"))
        for i in range(3)
    ]
    assert harness.connect()[0] == 201
    harness.drain()
    assert inbox(harness)["highestmodseq"] is None
    # When the server expunges one and the account syncs
    harness.server.expunge(harness.user, "INBOX", uids[1])
    sync_now(harness)
    # Then that email is deleted, the others stay, and the counts agree with the server
    assert deleted(harness) == {"M0": False, "M1": True, "M2": False}
    state = inbox(harness)
    assert state["messages_stored"] == state["messages_on_server"] == 2


def test_an_expunge_hidden_by_new_mail_is_found_in_the_same_run(harness: SyncHarness) -> None:
    # Given two synced messages
    uids = [
        harness.server.append(harness.user, "INBOX", message(f"M{i}", msgid=f"m{i}@x.example"))
        for i in range(2)
    ]
    assert harness.connect()[0] == 201
    harness.drain()
    # When one is expunged and a new one arrives before the next sync (the count stays at two)
    harness.server.expunge(harness.user, "INBOX", uids[0])
    harness.server.append(harness.user, "INBOX", message("New", msgid="new@x.example"))
    sync_now(harness)
    # Then the same run stores the new mail and finds the expunge (the count checked after the fetch)
    assert deleted(harness) == {"M0": True, "M1": False, "New": False}
    state = inbox(harness)
    assert state["messages_stored"] == state["messages_on_server"] == 2
