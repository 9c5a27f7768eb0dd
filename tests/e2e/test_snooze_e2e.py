"""Snooze through the local runner with a real Dovecot (issue 15 point 1): snooze a read message,
advance the runner's clock past `until`, and the message is listed again and unread on the server
(the one-time schedule fired into the RemindersQueue, the reminders function pushed `\\Seen` off
through the SyncQueue, the sync function wrote it to IMAP)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from local.runner import Runner
from tests.e2e.conftest import call, connect_mailbox
from tests.e2e.test_imap_e2e import server_flags
from tests.integration.dovecot import DovecotServer, DovecotUser
from tests.integration.sync_harness import message

pytestmark = pytest.mark.dovecot


@pytest.fixture(scope="module")
def runner(mail_runner: Runner) -> Runner:
    return mail_runner


def listed(runner: Runner, token: str, query: str = "") -> list[str]:
    status, page = call(runner, "GET", f"/emails{query}", token)
    assert status == 200, page
    return [e["email_id"] for e in page["items"]]


def test_a_snoozed_message_comes_back_unread_on_the_server_when_the_clock_passes_its_time(
    runner: Runner, dovecot_server: DovecotServer, dovecot_user: DovecotUser
) -> None:
    token = runner.token(tenant="snoozer", role="member", sub="alice")
    server, user = dovecot_server, dovecot_user
    # Given a read message in a mailbox connected through the API
    uid = server.append(
        user, "INBOX", message("Call me next week", msgid="nw@customer.example"), flags=["\\Seen"]
    )
    connect_mailbox(runner, token, server, user)
    runner.drain()
    [email_id] = listed(runner, token)
    assert "\\\\Seen" in server_flags(server, user, uid)
    # When it is snoozed for ten minutes on the runner's clock
    until = (runner.clock.now() + timedelta(minutes=10)).isoformat()
    status, snoozed = call(runner, "PUT", f"/emails/{email_id}/snooze", token, {"until": until})
    assert status == 200, snoozed
    # Then it is hidden, and still hidden five minutes later
    assert listed(runner, token) == []
    runner.advance(5 * 60)
    runner.drain()
    assert listed(runner, token) == []
    assert listed(runner, token, "?snoozed=true") == [email_id]
    # When the clock passes its time
    runner.advance(6 * 60)
    runner.drain()
    # Then it is back in the listing, unread here and on the IMAP server
    assert listed(runner, token) == [email_id]
    assert call(runner, "GET", f"/emails/{email_id}", token)[1]["read"] is False
    assert "\\\\Seen" not in server_flags(server, user, uid)
