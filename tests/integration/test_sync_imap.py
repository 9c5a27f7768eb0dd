"""IMAP sync end to end in-process: the real api and sync handlers, moto, and a real Dovecot."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from mailbridge.sync import ingest as ingest_module
from mailbridge.sync.wiring import service_deps
from tests.fixtures.aws import Stack
from tests.integration.dovecot import DovecotServer, DovecotUser
from tests.integration.sync_harness import TENANT, SyncHarness, message

pytestmark = pytest.mark.dovecot

Invoke = Callable[[dict[str, Any]], dict[str, Any]]


@pytest.fixture
def harness(
    stack: Stack, invoke_api: Invoke, dovecot_server: DovecotServer, dovecot_user: DovecotUser
) -> SyncHarness:
    h = SyncHarness(stack, invoke_api, dovecot_server, dovecot_user)
    service_deps().sleep = lambda _s: None  # transient retries back off in real time otherwise
    return h


def _seed_thread(h: SyncHarness) -> None:
    h.server.append(h.user, "INBOX", message("Pricing for 2027", msgid="p1@customer.example"))
    h.server.append(
        h.user,
        "INBOX",
        message(
            "Re: Pricing for 2027",
            msgid="p2@customer.example",
            refs=["p1@customer.example"],
            date="Tue, 17 Nov 2026 11:00:00 +0000",
        ),
    )
    h.server.append(
        h.user,
        "Sent",
        message(
            "Re: Pricing for 2027",
            msgid="p3@example.com",
            sender=f"{h.user.name}@example.com",
            to="carol@customer.example",
            refs=["p1@customer.example", "p2@customer.example"],
            date="Tue, 17 Nov 2026 12:00:00 +0000",
        ),
        flags=["\\Seen"],
    )


def sync_status(events: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    """(stage, reason) of each `account.sync_status_changed` among `events`, in order."""
    return [
        (e["detail"]["data"]["stage"], e["detail"]["data"]["reason"])
        for e in events
        if e["detail-type"] == "account.sync_status_changed"
    ]


def test_connect_then_sync_stores_threaded_mail_and_announces_it_once(
    harness: SyncHarness, bus_probe: Callable[[], list[dict[str, Any]]]
) -> None:
    # Given a mailbox with a three-message conversation across INBOX and Sent
    _seed_thread(harness)
    # When the user connects it and the queued sync runs
    status, account = harness.connect()
    assert status == 201, account
    assert "password" not in json.dumps(account)
    harness.drain()
    # Then three emails exist, one thread, Sent mail is outbound and read
    emails = harness.emails()
    assert len(emails) == 3
    assert len({e["thread_id"] for e in emails}) == 1
    by_id = {e["message_id"]: e for e in emails}
    assert by_id["p3@example.com"]["direction"] == "outbound"
    assert by_id["p3@example.com"]["read"] is True
    assert by_id["p1@customer.example"]["read"] is False
    # And the status shows idle with per-folder cursors and counts
    state = harness.status()
    assert state["stage"] == "idle"
    assert state["last_success_at"]
    folders = {f["name"]: f for f in state["folders"]}
    assert folders["INBOX"]["messages_stored"] == 2
    assert folders["INBOX"]["messages_on_server"] == 2
    assert folders["Sent"]["messages_stored"] == 1
    assert folders["INBOX"]["last_uid"] == 2
    # And each message was announced exactly once
    events = bus_probe()
    received = [e for e in events if e["detail-type"] == "email.received"]
    sent = [e for e in events if e["detail-type"] == "email.sent"]
    assert len(received) == 2
    assert len(sent) == 1
    assert {e["detail"]["idempotency_key"] for e in received} == {
        f"email.received:{e['email_id']}" for e in emails if e["direction"] == "inbound"
    }
    # And the first sync's progress was announced for real-time clients: started, then done
    assert sync_status(events) == [("syncing", None), ("idle", None)]


def test_the_credentials_are_stored_encrypted(harness: SyncHarness, stack: Stack) -> None:
    harness.connect()
    item = stack.table("AccountsTable").get_item(
        Key={"pk": f"TENANT#{TENANT}", "sk": f"ACCOUNT#{harness.account_id}"}
    )["Item"]
    assert harness.user.password not in json.dumps(item, default=str)
    assert set(item["credentials"]) == {"v", "encrypted_key", "nonce", "ciphertext"}


@pytest.mark.parametrize(
    ("overrides", "code"),
    [({"password": "wrong-password"}, "auth_failed"), ({"port": 1}, "unreachable")],
)
def test_connecting_with_bad_settings_is_a_clear_4xx_and_saves_nothing(
    harness: SyncHarness, stack: Stack, overrides: dict[str, Any], code: str
) -> None:
    status, body = harness.connect(**overrides)
    assert status == 422
    assert body["error"]["code"] == code
    stored = stack.table("AccountsTable").scan()["Items"]
    assert [
        i for i in stored if not str(i["sk"]).startswith("RATE#")
    ] == []  # (the api entry's counters aside)


def test_the_same_sync_message_twice_stores_nothing_twice(
    harness: SyncHarness, bus_probe: Callable[[], list[dict[str, Any]]]
) -> None:
    _seed_thread(harness)
    harness.connect()
    harness.drain()
    before = (len(harness.emails()), len(harness.locations()), len(bus_probe()))
    # When the same record arrives again (at-least-once delivery)
    result = harness.deliver_raw({"kind": "sync", "tenant_id": TENANT, "account_id": harness.account_id})
    assert result["batchItemFailures"] == []
    # Then nothing new is stored or announced
    assert (len(harness.emails()), len(harness.locations()), len(bus_probe())) == (before[0], before[1], 0)


def test_a_crash_mid_batch_resumes_with_nothing_missing_or_duplicated(
    harness: SyncHarness, monkeypatch: pytest.MonkeyPatch, bus_probe: Callable[[], list[dict[str, Any]]]
) -> None:
    # Given 6 messages fetched 3 at a time and an ingest that dies on the 4th (the second batch)
    for i in range(6):
        harness.server.append(harness.user, "INBOX", message(f"Order {i}", msgid=f"o{i}@customer.example"))
    monkeypatch.setattr("mailbridge.sync.wiring.BATCH_SIZE", 3)
    real_ingest = ingest_module.ingest_batch
    calls = {"n": 0}

    def crashing(mailbox: Any, batch: Any, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += len(batch)
        if calls["n"] >= 4:
            raise RuntimeError("lambda died")
        return real_ingest(mailbox, batch, *args, **kwargs)

    monkeypatch.setattr("mailbridge.sync.engine.ingest_batch", crashing)
    harness.connect()
    # When the first delivery dies mid-batch
    first = harness.deliver_next()
    # Then the record is reported failed (it comes back), with part of the batch stored
    assert first is not None
    assert len(first["batchItemFailures"]) == 1
    assert len(harness.emails()) == 3
    # When it is delivered again, with the crash gone
    monkeypatch.setattr("mailbridge.sync.engine.ingest_batch", real_ingest)
    harness.drain()
    # Then all six are stored once and announced once
    subjects = sorted(e["subject"] for e in harness.emails())
    assert subjects == [f"Order {i}" for i in range(6)]
    assert len(harness.locations()) == 6
    keys = [e["detail"]["idempotency_key"] for e in bus_probe() if e["detail-type"] == "email.received"]
    assert len(keys) == len(set(keys)) == 6


def test_server_side_flags_expunges_and_new_mail_follow(harness: SyncHarness) -> None:
    uids = [
        harness.server.append(harness.user, "INBOX", message(f"M{i}", msgid=f"m{i}@x.example"))
        for i in range(3)
    ]
    harness.connect()
    harness.drain()
    # When the server marks one read, expunges another and receives a new one
    harness.server.set_flags(harness.user, "INBOX", uids[0], add=["\\Seen"])
    harness.server.expunge(harness.user, "INBOX", uids[1])
    harness.server.append(harness.user, "INBOX", message("M3", msgid="m3@x.example"))
    harness.api("sync-account.json", params={"account_id": harness.account_id})
    harness.drain()
    # Then the store follows
    by_subject = {e["subject"]: e for e in harness.emails()}
    assert by_subject["M0"]["read"] is True
    assert by_subject["M1"]["deleted"] is True
    assert by_subject["M3"]["deleted"] is False
    inbox = {f["name"]: f for f in harness.status()["folders"]}["INBOX"]
    assert inbox["messages_stored"] == inbox["messages_on_server"] == 3


def updated(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The `data` of each `email.updated` among `events`."""
    return [e["detail"]["data"] for e in events if e["detail-type"] == "email.updated"]


def test_a_flag_another_client_sets_is_announced_once_as_email_updated(
    harness: SyncHarness, bus_probe: Callable[[], list[dict[str, Any]]]
) -> None:
    # Given two synced messages (Dovecot has CONDSTORE) and the first sync's events read
    uids = [
        harness.server.append(harness.user, "INBOX", message(f"F{i}", msgid=f"f{i}@x.example"))
        for i in range(2)
    ]
    harness.connect()
    harness.drain()
    bus_probe()
    by_subject = {e["subject"]: e for e in harness.emails()}
    # When another client marks F0 read and flagged, and sets only \Answered on F1
    harness.server.set_flags(harness.user, "INBOX", uids[0], add=["\\Seen", "\\Flagged"])
    harness.server.set_flags(harness.user, "INBOX", uids[1], add=["\\Answered"])
    harness.api("sync-account.json", params={"account_id": harness.account_id})
    harness.drain()
    # Then one email.updated went out, for F0, with the detail PATCH /emails/{id} announces
    first = by_subject["F0"]
    assert updated(bus_probe()) == [
        {
            "email_id": first["email_id"],
            "account_id": harness.account_id,
            "thread_id": first["thread_id"],
            "changes": {"read": True, "flagged": True},
        }
    ]
    # When the sync runs again with nothing changed on the server
    harness.api("sync-account.json", params={"account_id": harness.account_id})
    harness.drain()
    # Then nothing is announced again
    assert updated(bus_probe()) == []
    # When the user marks F1 read through the API (pushed to the server), and the sync runs
    status, _ = harness.api(
        "patch-email.json", params={"email_id": by_subject["F1"]["email_id"]}, body={"read": True}
    )
    assert status == 200
    harness.drain()
    harness.api("sync-account.json", params={"account_id": harness.account_id})
    harness.drain()
    # Then only the API's own email.updated went out: the server's echo of it is no new change
    assert [(d["email_id"], d["changes"]) for d in updated(bus_probe())] == [
        (by_subject["F1"]["email_id"], {"read": True})
    ]


def test_a_uidvalidity_change_resyncs_without_duplicates(harness: SyncHarness) -> None:
    for i in range(3):
        harness.server.append(harness.user, "INBOX", message(f"V{i}", msgid=f"v{i}@x.example"))
    harness.server.create_folder(harness.user, "Projects")
    for i in range(2):
        harness.server.append(harness.user, "Projects", message(f"P{i}", msgid=f"proj{i}@x.example"))
    harness.connect(folders=["Projects"])
    harness.drain()
    ids_before = {e["email_id"] for e in harness.emails()}
    # When the server renumbers the folder (recreated with the same mail)
    harness.server.recreate_folder(harness.user, "Projects")
    for i in range(2):
        harness.server.append(harness.user, "Projects", message(f"P{i}", msgid=f"proj{i}@x.example"))
    harness.api("sync-account.json", params={"account_id": harness.account_id})
    harness.drain()
    # Then the same emails remain, none duplicated, and the folder counts are right
    assert {e["email_id"] for e in harness.emails()} == ids_before
    assert all(e["deleted"] is False for e in harness.emails())
    projects = {f["name"]: f for f in harness.status()["folders"]}["Projects"]
    assert projects["messages_stored"] == 2


def test_wrong_credentials_fail_the_account_and_stop_polling(
    harness: SyncHarness, stack: Stack, bus_probe: Callable[[], list[dict[str, Any]]]
) -> None:
    # Given a connected account whose password then changes on the server
    harness.connect()
    harness.drain()
    bus_probe()
    harness.server.set_password(harness.user, "a-new-password")
    # When the next sync runs
    harness.api("sync-account.json", params={"account_id": harness.account_id})
    results = harness.drain()
    # Then the record is not retried, the status says why, and polls skip the account
    assert all(r["batchItemFailures"] == [] for r in results)
    state = harness.status()
    assert state["stage"] == "failed"
    assert state["reason"] == "auth_failed"
    # And the failure was announced (a routine poll's syncing and idle are not)
    assert sync_status(bus_probe()) == [("failed", "auth_failed")]
    harness.deliver_raw({"kind": "poll", "provider": "imap"})
    assert harness.receive() == []


def test_the_connection_dropping_mid_fetch_is_retried(harness: SyncHarness, cuttable_proxy: Any) -> None:
    # Given a mailbox with a few large messages behind a relay that will drop the connection
    for i in range(4):
        harness.server.append(
            harness.user, "INBOX", message(f"Big {i}", msgid=f"big{i}@x.example", body="x" * 20000)
        )
    status, _ = harness.connect(port=cuttable_proxy.port)
    assert status == 201
    cuttable_proxy.cut_after(30_000)
    # When the sync runs
    results = harness.drain()
    # Then it retried and stored everything
    assert all(r["batchItemFailures"] == [] for r in results)
    assert sorted(e["subject"] for e in harness.emails()) == [f"Big {i}" for i in range(4)]
    assert harness.status()["stage"] == "idle"


def test_a_large_mailbox_syncs_across_continuations(
    harness: SyncHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(25):
        harness.server.append(harness.user, "INBOX", message(f"Bulk {i}", msgid=f"bulk{i}@x.example"))
    monkeypatch.setattr("mailbridge.sync.wiring.MAX_MESSAGES_PER_RUN", 10)
    harness.connect()
    results = harness.drain()
    assert len(results) >= 3  # the first run and at least two continuations
    assert len(harness.emails()) == 25
    assert harness.status()["stage"] == "idle"


def test_unparseable_mail_is_quarantined_and_the_sync_goes_on(harness: SyncHarness, stack: Stack) -> None:
    harness.server.append(harness.user, "INBOX", b"\x00\x01 this is not a message at all \xff\xfe")
    harness.server.append(harness.user, "INBOX", message("Fine", msgid="fine@x.example"))
    harness.connect()
    harness.drain()
    assert [e["subject"] for e in harness.emails()] == ["Fine"]
    quarantined = stack.table("EmailsTable").query(
        KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
        ExpressionAttributeValues={":p": f"TENANT#{TENANT}", ":s": "QUAR#"},
    )["Items"]
    assert len(quarantined) == 1
    assert quarantined[0]["reason"]
    raw = boto3.client("s3").get_object(
        Bucket=stack.deployed.buckets["MailBucket"], Key=quarantined[0]["raw_key"]
    )
    assert b"not a message" in raw["Body"].read()


def test_poll_queues_every_active_account(harness: SyncHarness) -> None:
    harness.connect()
    harness.drain()
    harness.deliver_raw({"kind": "poll", "provider": "imap"})
    queued = [json.loads(m["Body"]) for m in harness.receive()]
    assert [(q["kind"], q["account_id"], q["reason"]) for q in queued] == [
        ("sync", harness.account_id, "poll")
    ]


def test_archive_and_trash_move_the_message_and_the_stored_location_follows(harness: SyncHarness) -> None:
    # Given a synced INBOX message (Dovecot marks Archive and Trash with RFC 6154 SPECIAL-USE)
    harness.server.append(harness.user, "INBOX", message("Move me", msgid="move-1@x.example"))
    harness.connect()
    harness.drain()
    (email,) = harness.emails()
    email_id = email["sk"].removeprefix("EMAIL#")

    # When the user archives it and the sync function handles the push
    status, body = harness.api(
        "patch-email-archive.json", params={"email_id": email_id}, body={"archived": True}
    )
    assert status == 200, body
    harness.drain()

    # Then Dovecot holds it in Archive, not INBOX, and the stored location is that Archive UID
    assert harness.server.mailbox_status(harness.user, "INBOX").messages == 0
    archive = harness.server.mailbox_status(harness.user, "Archive")
    assert archive.messages == 1
    (location,) = harness.locations()
    assert (location["folder"], int(location["uid"])) == ("Archive", archive.uidnext - 1)

    # When it is trashed, then a sync runs
    status, body = harness.api("patch-email.json", params={"email_id": email_id}, body={"trashed": True})
    assert status == 200, body
    harness.drain()
    harness.api("sync-account.json", params={"account_id": harness.account_id})
    harness.drain()

    # Then it is in Trash, still one email, not deleted, and nothing was stored twice
    assert harness.server.mailbox_status(harness.user, "Archive").messages == 0
    assert harness.server.mailbox_status(harness.user, "Trash").messages == 1
    ((location,), (email,)) = harness.locations(), harness.emails()
    assert location["folder"] == "Trash"
    assert email["deleted"] is False

    # When it is restored from the trash
    harness.api("patch-email.json", params={"email_id": email_id}, body={"trashed": False})
    harness.drain()

    # Then it is back in INBOX
    assert harness.server.mailbox_status(harness.user, "Trash").messages == 0
    assert harness.server.mailbox_status(harness.user, "INBOX").messages == 1
    assert [loc["folder"] for loc in harness.locations()] == ["INBOX"]
