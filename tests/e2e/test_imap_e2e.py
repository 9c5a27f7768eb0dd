"""Issue acceptance through the local runner: a real Dovecot mailbox connected over the HTTP API,
synced by the sync function from the SyncQueue, read back through /emails and /threads, a flag
written back to the server, and new mail picked up by the template's 5-minute poll schedule."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from local.runner import Runner
from tests.e2e.conftest import call, connect_mailbox
from tests.e2e.log_scan import BODY_CANARY
from tests.integration.dovecot import DovecotServer, DovecotUser
from tests.integration.sync_harness import message

pytestmark = pytest.mark.dovecot


@pytest.fixture(scope="module")
def runner(mail_runner: Runner) -> Runner:
    return mail_runner


ROOT = Path(__file__).resolve().parents[2]
BODY = f"Hello there, {BODY_CANARY}."  # the log scan (conftest.py) fails the module if it is printed


def server_flags(server: DovecotServer, user: DovecotUser, uid: int) -> str:
    with server.session(user, "INBOX") as conn:
        _typ, data = conn.uid("FETCH", str(uid), "(FLAGS)")
    return repr(data)


def test_a_mailbox_connected_through_the_api_syncs_threads_and_writes_flags_back(
    runner: Runner, dovecot_server: DovecotServer, dovecot_user: DovecotUser
) -> None:
    token = runner.token(tenant="acme", role="member", sub="alice")
    server, user = dovecot_server, dovecot_user
    # Given a mailbox holding a conversation
    first_uid = server.append(user, "INBOX", message("Renewal quote", msgid="q1@customer.example", body=BODY))
    server.append(
        user,
        "INBOX",
        message(
            "Re: Renewal quote",
            msgid="q2@customer.example",
            body=BODY,
            refs=["q1@customer.example"],
            date="Tue, 17 Nov 2026 11:00:00 +0000",
        ),
    )
    # When the user connects it through the API
    account_id = connect_mailbox(runner, token, server, user)
    runner.drain()
    # Then the sync ran and the mail shows up, threaded
    status, sync_state = call(runner, "GET", f"/accounts/{account_id}/status", token)
    assert sync_state["stage"] == "idle", sync_state
    status, page = call(runner, "GET", "/emails", token)
    assert status == 200, page
    subjects = [e["subject"] for e in page["items"]]
    assert subjects == ["Re: Renewal quote", "Renewal quote"]  # newest first
    thread_id = page["items"][0]["thread_id"]
    status, thread = call(runner, "GET", f"/threads/{thread_id}", token)
    assert status == 200, thread
    assert [m["subject"] for m in thread["messages"]] == ["Renewal quote", "Re: Renewal quote"]
    # And GET /threads lists the conversation once, both messages counted
    status, threads = call(runner, "GET", "/threads", token)
    assert status == 200, threads
    assert [(t["thread_id"], t["message_count"]) for t in threads["items"]] == [(thread_id, 2)]
    # When the first message is marked read through the API
    first = next(e for e in page["items"] if e["subject"] == "Renewal quote")
    status, patched = call(runner, "PATCH", f"/emails/{first['email_id']}", token, {"read": True})
    assert status == 200, patched
    runner.drain()
    # Then the IMAP server has \Seen on it
    assert "\\\\Seen" in server_flags(server, user, first_uid)
    # When a new message arrives and the poll schedule's 5 minutes pass
    server.append(
        user,
        "INBOX",
        message(
            "Signed contract", msgid="q3@customer.example", body=BODY, date="Tue, 17 Nov 2026 12:00:00 +0000"
        ),
    )
    runner.advance(5 * 60)
    runner.drain()
    # Then it is listed too
    status, page = call(runner, "GET", "/emails", token)
    assert page["items"][0]["subject"] == "Signed contract"
    # And another tenant sees none of it
    other = runner.token(tenant="globex", role="owner")
    assert call(runner, "GET", "/emails", other)[1]["items"] == []
    assert call(runner, "GET", f"/threads/{thread_id}", other)[0] == 404


def test_a_scheduled_send_fires_when_the_clock_passes_and_a_cancelled_one_never_does(
    runner: Runner, dovecot_server: DovecotServer, dovecot_user: DovecotUser, smtp_sink: Any
) -> None:
    from tests.fixtures.smtp import SINK_PASSWORD, SINK_USER

    token = runner.token(tenant="sched", role="member")
    server, user = dovecot_server, dovecot_user
    smtp = {
        "host": smtp_sink.host,
        "port": smtp_sink.plain_port,
        "security": "none",
        "username": SINK_USER,
        "password": SINK_PASSWORD,
    }
    account = {"account_id": connect_mailbox(runner, token, server, user, smtp)}
    runner.drain()
    # Given two sends scheduled ten minutes ahead on the runner's clock, one of them cancelled
    send_at = (runner.clock.now() + timedelta(minutes=10)).isoformat()
    kept = call(
        runner,
        "POST",
        "/emails/send",
        token,
        {
            "account_id": account["account_id"],
            "to": [{"address": "carol@customer.example"}],
            "subject": "Scheduled hello",
            "text": "See you soon",
            "send_at": send_at,
        },
    )[1]
    dropped = call(
        runner,
        "POST",
        "/emails/send",
        token,
        {
            "account_id": account["account_id"],
            "to": [{"address": "carol@customer.example"}],
            "subject": "Never mind",
            "text": "Cancelled",
            "send_at": send_at,
        },
    )[1]
    assert kept["status"] == dropped["status"] == "scheduled"
    assert call(runner, "DELETE", f"/emails/{dropped['email_id']}/schedule", token)[0] == 200
    # When five minutes pass, nothing is sent yet
    runner.advance(5 * 60)
    runner.drain()
    assert smtp_sink.messages == []
    # When the send time passes, the kept one is sent and the cancelled one never is
    runner.advance(6 * 60)
    runner.drain()
    subjects = [m.raw.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0] for m in smtp_sink.messages]
    assert subjects == [b"Scheduled hello"]
    assert call(runner, "GET", f"/emails/{kept['email_id']}", token)[1]["status"] == "sent"
    assert call(runner, "GET", f"/emails/{dropped['email_id']}", token)[1]["status"] == "cancelled"
    # And the cancelled one stays listed under its status
    cancelled = call(runner, "GET", "/emails?status=cancelled", token)[1]["items"]
    assert [e["email_id"] for e in cancelled] == [dropped["email_id"]]
