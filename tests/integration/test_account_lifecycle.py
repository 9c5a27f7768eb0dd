"""An account's life through the API only: disconnect (with and without purging its mail), fail on
rejected credentials, stay out of the poll, and come back with `POST /accounts/{id}/sync`.

The real api and sync handlers run in-process on moto against a real Dovecot; what a test checks
is what the API answers, what is stored (DynamoDB, S3) and how often the server is logged in to.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from mailbridge.sync.wiring import service_deps
from tests.fixtures.accounts import CALLER
from tests.fixtures.aws import Stack
from tests.integration.dovecot import CuttableProxy, DovecotServer, DovecotUser
from tests.integration.sync_harness import TENANT, SyncHarness, message, without_ages

pytestmark = pytest.mark.dovecot

Invoke = Callable[[dict[str, Any]], dict[str, Any]]


@pytest.fixture
def harness(
    stack: Stack, invoke_api: Invoke, dovecot_server: DovecotServer, dovecot_user: DovecotUser
) -> SyncHarness:
    h = SyncHarness(stack, invoke_api, dovecot_server, dovecot_user)
    service_deps().sleep = lambda _s: None
    return h


def account_items(stack: Stack, account_id: str) -> list[dict[str, Any]]:
    """Every accounts-table item of the account: the account (with its credentials) and folder states."""
    items: list[dict[str, Any]] = stack.table("AccountsTable").scan()["Items"]
    return [i for i in items if account_id in str(i["sk"])]


def s3_has(stack: Stack, key: str) -> bool:
    try:
        boto3.client("s3").head_object(Bucket=stack.deployed.buckets["MailBucket"], Key=key)
    except ClientError:
        return False
    return True


def email_status(h: SyncHarness, email_id: str) -> tuple[int, Any]:
    return h.api("get-email.json", role="viewer", params={"email_id": email_id})


def delete(h: SyncHarness, account_id: str, *, purge: bool) -> tuple[int, Any]:
    return h.api(
        "delete-account.json",
        params={"account_id": account_id},
        query={"purge": "true" if purge else "false"},
    )


# ---------------------------------------------------------------------------------- disconnect


def test_delete_removes_the_account_and_its_credentials_and_keeps_the_mail(
    harness: SyncHarness, stack: Stack
) -> None:
    # Given a connected, synced mailbox
    harness.server.append(harness.user, "INBOX", message("Kept", msgid="kept@x.example"))
    assert harness.connect()[0] == 201
    harness.drain()
    account_id = harness.account_id
    assert account_items(stack, account_id)
    # When the user disconnects it without purge
    status, answer = delete(harness, account_id, purge=False)
    # Then it is gone from the API and the table (credentials included) ...
    assert (status, answer) == (200, {"account_id": account_id, "purge_queued": False})
    assert harness.api("get-account.json", params={"account_id": account_id})[0] == 404
    assert harness.api("list-accounts.json")[1]["items"] == []
    # ... but for its ownership record: the mail kept stays its owner's (mailbridge.access)
    assert [(i["sk"], i["owner"]) for i in account_items(stack, account_id)] == [
        (f"OWNER#{account_id}", CALLER)
    ]
    # ... a second delete finds nothing, and the synced mail stays
    assert delete(harness, account_id, purge=False)[0] == 404
    harness.drain()
    [kept] = harness.emails()
    assert email_status(harness, kept["email_id"])[0] == 200
    assert s3_has(stack, kept["raw_key"])


def test_delete_with_purge_removes_the_mail_only_this_mailbox_held(
    stack: Stack,
    invoke_api: Invoke,
    dovecot_server: DovecotServer,
    make_dovecot_user: Callable[[], DovecotUser],
) -> None:
    # Given two mailboxes of one tenant: A holds its own mail, a message B holds too, and junk
    a = SyncHarness(stack, invoke_api, dovecot_server, make_dovecot_user())
    b = SyncHarness(stack, invoke_api, dovecot_server, make_dovecot_user())
    shared = message("Shared", msgid="shared@x.example")
    a.server.append(a.user, "INBOX", message("Only in A", msgid="only-a@x.example"))
    a.server.append(a.user, "INBOX", shared)
    a.server.append(a.user, "INBOX", b"\x00\x01 not a message \xff")
    b.server.append(b.user, "INBOX", shared)
    for h in (a, b):
        assert h.connect()[0] == 201
        h.drain()
    by_subject = {e["subject"]: e for e in a.emails()}
    only_a, both = by_subject["Only in A"], by_subject["Shared"]
    quarantined = [i for i in stack.table("EmailsTable").scan()["Items"] if str(i["sk"]).startswith("QUAR#")]
    assert len(quarantined) == 1
    # When A is deleted with purge=true and the queued purge runs
    status, answer = delete(a, a.account_id, purge=True)
    assert (status, answer) == (200, {"account_id": a.account_id, "purge_queued": True})
    a.drain()
    # Then A's own mail is gone, from the API, the table and S3, its quarantine record too
    assert email_status(a, only_a["email_id"])[0] == 404
    assert not s3_has(stack, only_a["raw_key"])
    assert a.locations() == []
    assert not any(str(i["sk"]).startswith("QUAR#") for i in stack.table("EmailsTable").scan()["Items"])
    assert not s3_has(stack, quarantined[0]["raw_key"])
    # And the message B still holds stays, with only B's location
    code, view = email_status(b, both["email_id"])
    assert code == 200
    assert view["deleted"] is False
    assert {loc["account_id"] for loc in view["locations"]} == {b.account_id}


# ---------------------------------------------------------------------------------- failed logins


def test_rejected_credentials_keep_the_account_out_of_every_poll(
    harness: SyncHarness, cuttable_proxy: CuttableProxy
) -> None:
    # Given a mailbox connected through a relay that counts logins, whose password then changed
    assert harness.connect(port=cuttable_proxy.port)[0] == 201
    harness.drain()
    harness.server.set_password(harness.user, "changed-on-the-server")
    harness.api("sync-account.json", params={"account_id": harness.account_id})
    harness.drain()
    failed = harness.status()
    assert (failed["stage"], failed["reason"]) == ("failed", "auth_failed")
    logins = cuttable_proxy.connections
    # When the 5-minute poll runs, and a poll request queued before the failure arrives
    harness.deliver_raw({"kind": "poll", "provider": "imap"})
    assert harness.receive() == []
    harness.deliver_raw(
        {"kind": "sync", "tenant_id": TENANT, "account_id": harness.account_id, "reason": "poll"}
    )
    # Then the server saw no further login, and the status still shows the first failure
    assert cuttable_proxy.connections == logins
    assert without_ages(harness.status()) == without_ages(failed)


def test_a_manual_sync_puts_a_failed_account_back_into_the_poll(harness: SyncHarness) -> None:
    # Given an account that failed on rejected credentials (so the poll skips it)
    assert harness.connect()[0] == 201
    harness.drain()
    password = harness.user.password
    harness.server.set_password(harness.user, "changed-on-the-server")
    harness.api("sync-account.json", params={"account_id": harness.account_id})
    harness.drain()
    assert harness.status()["reason"] == "auth_failed"
    # When the user fixes the server side and asks for a sync
    harness.server.set_password(harness.user, password)
    harness.server.append(harness.user, "INBOX", message("After the fix", msgid="fix@x.example"))
    status, queued = harness.api("sync-account.json", params={"account_id": harness.account_id})
    assert status == 202, queued
    harness.drain()
    # Then the sync runs and succeeds ...
    assert harness.status()["stage"] == "idle"
    assert [e["subject"] for e in harness.emails()] == ["After the fix"]
    # ... and the next poll queues the account again
    harness.deliver_raw({"kind": "poll", "provider": "imap"})
    queued_syncs = [json.loads(m["Body"]) for m in harness.receive()]
    assert [(q["kind"], q["account_id"], q["reason"]) for q in queued_syncs] == [
        ("sync", harness.account_id, "poll")
    ]


def test_a_sync_that_succeeds_after_a_failure_puts_the_account_back_into_the_poll(
    harness: SyncHarness,
) -> None:
    # Given an account that failed on rejected credentials (so the poll skips it)
    assert harness.connect()[0] == 201
    harness.drain()
    password = harness.user.password
    harness.server.set_password(harness.user, "changed-on-the-server")
    harness.api("sync-account.json", params={"account_id": harness.account_id})
    harness.drain()
    assert harness.status()["reason"] == "auth_failed"
    # When the server side is fixed and a sync arrives that did not come through POST /sync
    # (a retry, or later a provider push): nothing made the account pollable first
    harness.server.set_password(harness.user, password)
    harness.deliver_raw(
        {"kind": "sync", "tenant_id": TENANT, "account_id": harness.account_id, "reason": "retry"}
    )
    assert harness.status()["stage"] == "idle"
    # Then the next poll queues the account again
    harness.deliver_raw({"kind": "poll", "provider": "imap"})
    queued = [json.loads(m["Body"]) for m in harness.receive()]
    assert [(q["kind"], q["account_id"], q["reason"]) for q in queued] == [
        ("sync", harness.account_id, "poll")
    ]
