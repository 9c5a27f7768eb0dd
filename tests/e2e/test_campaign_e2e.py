"""Issue 17 point 4 through the local runner: a campaign of 20 contacts sent from a Dovecot
mailbox over SMTP, chunked on the OutboxQueue, each email scheduled in its throttle slot and
fired by the runner's clock: every contact receives one email, and the mailbox files one copy
of each in Sent."""

from __future__ import annotations

import email
import email.policy
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from local.runner import Runner
from tests.e2e.conftest import call, connect_mailbox
from tests.integration.dovecot import DovecotServer, DovecotUser

pytestmark = pytest.mark.dovecot

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE: dict[str, Any] = json.loads(
    json.loads((ROOT / "events" / "api" / "templates-create.json").read_text())["body"]
)
CONTACTS = 20
THROTTLE = 500  # an IMAP account's ceiling: one send every 8 s
AHEAD = 3600  # the campaign's schedule_at: later than any drain of its chunk, however busy the machine


@pytest.fixture(scope="module")
def runner(mail_runner: Runner) -> Runner:
    return mail_runner


def _sent_message_ids(server: DovecotServer, user: DovecotUser) -> list[str]:
    with server.session(user, "Sent") as conn:
        _typ, data = conn.uid("SEARCH", "ALL")
        uids = data[0].split() if data and data[0] else []
        ids = []
        for uid in uids:
            _typ, parts = conn.uid("FETCH", uid, "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            header = next(p[1] for p in parts if isinstance(p, tuple))
            ids.append(header.decode().split(":", 1)[1].strip())
    return ids


def test_a_campaign_of_20_contacts_reaches_each_once(
    runner: Runner, dovecot_server: DovecotServer, dovecot_user: DovecotUser, smtp_sink: Any
) -> None:
    from tests.fixtures.smtp import SINK_PASSWORD, SINK_USER

    admin = runner.token(tenant="campaigns-e2e", role="admin")
    token = runner.token(tenant="campaigns-e2e", role="member")
    assert call(runner, "PUT", "/features", admin, {"campaigns": True})[0] == 200
    smtp = {
        "host": smtp_sink.host,
        "port": smtp_sink.plain_port,
        "security": "none",
        "username": SINK_USER,
        "password": SINK_PASSWORD,
    }
    account_id = connect_mailbox(runner, token, dovecot_server, dovecot_user, smtp)
    runner.drain()
    before = len(smtp_sink.messages)
    # Given 20 contacts tagged `launch`, a template and a campaign to them from the mailbox
    for n in range(CONTACTS):
        body = {
            "name": f"Person {n}",
            "emails": [{"address": f"person{n}@customer.example"}],
            "tags": ["launch"],
        }
        assert call(runner, "POST", "/crm/contacts", token, body)[0] == 201
    template_id = call(runner, "POST", "/templates", token, TEMPLATE)[1]["template_id"]
    campaign_id = call(runner, "POST", "/crm/campaigns", token, {"name": "Launch"})[1]["campaign_id"]
    fields = {
        "template_id": template_id,
        "audience": {"tags": ["launch"]},
        "account_id": account_id,
        "throttle_per_hour": THROTTLE,
        "variables": {"offer": "20% off"},
        "schedule_at": (datetime.now(UTC) + timedelta(seconds=AHEAD)).isoformat(),
    }
    assert call(runner, "PATCH", f"/crm/campaigns/{campaign_id}", token, fields)[0] == 200
    # When it is sent, its chunk queued, and the clock passes every throttle slot
    status, started = call(runner, "POST", f"/crm/campaigns/{campaign_id}/send", token)
    runner.drain(timeout=300)
    queued = call(runner, "GET", f"/crm/campaigns/{campaign_id}/send-status", token)[1]
    assert smtp_sink.messages[before:] == []  # scheduled: nothing goes before its slot
    # (the slots count from the real time, which the runner's clock may be behind)
    behind = max(0, int((datetime.now(UTC) - runner.clock.now()).total_seconds()))
    runner.advance(behind + AHEAD + 2 * 60 + CONTACTS * 3600 // THROTTLE + 60)
    runner.drain(timeout=900)  # 20 sends, each filed in Sent, synced, matched: slow on a busy machine
    # Then each contact received exactly one email, and Sent holds one copy of each
    assert (status, started["state"]) == (202, "sending")
    assert (queued["state"], queued["counts"]["queued"]) == ("done", CONTACTS)
    received = smtp_sink.messages[before:]
    assert Counter(r for m in received for r in m.rcpt_tos) == {
        f"person{n}@customer.example": 1 for n in range(CONTACTS)
    }
    message_ids = [
        email.message_from_bytes(m.raw, policy=email.policy.default)["Message-ID"] for m in received
    ]
    assert sorted(_sent_message_ids(dovecot_server, dovecot_user)) == sorted(message_ids)
    final = call(runner, "GET", f"/crm/campaigns/{campaign_id}/send-status", token)[1]
    assert (final["counts"]["sent"], final["counts"]["failed"]) == (CONTACTS, 0)
