"""Nudges through the local runner with a real Dovecot (issue 15 point 3 acceptance): a sent email
with no reply appears in `GET /nudges` once the runner's clock passes 3 business days (the sync
announced `email.sent`, the RemindersRule recorded the thread as waiting, the daily NudgeSchedule
fired into the RemindersQueue with its scheduled time), its notification arrives live on the
user's WebSocket client (issue 15 acceptance: "the notification arrives on a connected
WebSocket") and on no other tenant's, and a reply in the thread clears it."""

from __future__ import annotations

import json
from datetime import UTC, timedelta
from email.utils import format_datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from websockets.sync.client import ClientConnection

from local.runner import Runner
from mailbridge.nudges.business_days import add_business_days
from tests.e2e.conftest import call, connect_mailbox
from tests.e2e.test_realtime_e2e import MARKER, connection_ids, open_socket, post
from tests.integration.dovecot import DovecotServer, DovecotUser
from tests.integration.sync_harness import message

pytestmark = pytest.mark.dovecot

DAY = 24 * 60 * 60


@pytest.fixture(scope="module")
def runner(mail_runner: Runner) -> Runner:
    return mail_runner


def received_until_marker(runner: Runner, socket: ClientConnection, connections: list[str]) -> list[Any]:
    """The frames a client received before a marker posted to it now (frames on one connection
    arrive in order), decoded."""
    [connection] = connections
    post(runner, connection, MARKER)
    frames: list[Any] = []
    while (frame := socket.recv(timeout=60)) != MARKER.decode():
        frames.append(json.loads(frame))
    return frames


def listed(runner: Runner, token: str) -> list[tuple[str, str]]:
    status, page = call(runner, "GET", "/nudges", token)
    assert status == 200, page
    return [(n["id"], n["kind"]) for n in page["items"]]


def test_a_sent_email_with_no_reply_is_nudged_after_three_business_days_and_a_reply_clears_it(
    runner: Runner, dovecot_server: DovecotServer, dovecot_user: DovecotUser
) -> None:
    server, user = dovecot_server, dovecot_user
    admin = runner.token(tenant="nudger", role="admin", sub="nadia")
    # Given nudges switched on with the defaults (3 business days, Monday to Friday, UTC)
    status, settings = call(runner, "PUT", "/nudges/settings", admin, {"enabled": True})
    assert (status, settings["business_days"]) == (200, 3), settings
    # And an email the user sent just now (runner time), in a mailbox connected through the API
    sent_at = runner.clock.now()
    address = f"{user.name}@example.com"
    server.append(
        user,
        "INBOX",
        message(
            "Our proposal",
            msgid="proposal@nudger.example",
            sender=address,
            to="carol@customer.example",
            date=format_datetime(sent_at),
        ),
    )
    connect_mailbox(runner, admin, server, user)
    runner.drain()
    status, page = call(runner, "GET", "/emails", admin)
    assert status == 200, page
    [email] = page["items"]
    assert email["direction"] == "outbound"
    due = add_business_days(sent_at, 3, ZoneInfo("UTC"))
    # And the user's WebSocket client connected through the runner, and a client of another tenant
    # (as a user of the same name) with nudges on too
    other = runner.token(tenant="nudger-other", role="owner", sub="nadia")
    status, _ = call(runner, "PUT", "/nudges/settings", other, {"enabled": True})
    assert status == 200
    with open_socket(runner, admin, header=True) as mine, open_socket(runner, other, header=False) as theirs:
        [elsewhere] = connection_ids(runner, "nudger-other", "nadia")
        # When the clock moves to a second before it is due (the daily schedule, `rate(1 day)`,
        # fires once for the days it missed, with the latest time it was due, as EventBridge
        # Scheduler does)
        runner.advance((due - runner.clock.now()).total_seconds() - 1)
        runner.drain()
        # Then nothing shows before three business days have passed
        assert listed(runner, admin) == [], (runner.clock.now(), due)
        # When it moves one more day, so that one daily run falls after the due time
        runner.advance(DAY)
        runner.drain()
        # Then the email shows as awaiting_reply, within a day of its due time
        assert due <= runner.clock.now() < due + timedelta(days=1, seconds=1)
        assert listed(runner, admin) == [(email["email_id"], "awaiting_reply")]
        # And its notification reached the user's client live, as the one notification.created
        # frame (nudge.created -> notifications -> notification.created -> notifier -> socket)
        status, notes = call(runner, "GET", "/notifications", admin)
        assert status == 200, notes
        [note] = notes["items"]
        assert (note["type"], note["subject_id"]) == ("nudge", email["email_id"]), note
        frames = received_until_marker(runner, mine, connection_ids(runner, "nudger", "nadia"))
        created = [f["detail"] for f in frames if f["type"] == "notification.created"]
        assert [(f["notification_id"], f["type"]) for f in created] == [(note["notification_id"], "nudge")], (
            frames
        )
        # And the other tenant's client received nothing before a marker posted after the drain
        post(runner, elsewhere, MARKER)
        assert theirs.recv(timeout=60) == MARKER.decode()
    # And another tenant sees none of it
    assert listed(runner, other) == []

    # When the customer's reply arrives in the thread and is synced
    server.append(
        user,
        "INBOX",
        message(
            "Re: Our proposal",
            msgid="re-proposal@customer.example",
            to=address,
            refs=["proposal@nudger.example"],
            date=format_datetime(runner.clock.now().astimezone(UTC)),
        ),
    )
    runner.advance(5 * 60)  # the next IMAP poll
    runner.drain()
    # Then the nudge is gone at once, with no daily run in between
    status, page = call(runner, "GET", "/emails", admin)
    assert len(page["items"]) == 2, page
    assert listed(runner, admin) == []
