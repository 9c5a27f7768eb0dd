"""Issue 13 acceptance through the local runner: the seed's welcome rule sends its email when a
tagged contact is created, a webhook reaches a local receiver once when the bus delivers the
event twice, dry-run and replay answer, and a cron rule fires when the runner's clock passes."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from local.runner import Runner
from mailbridge.automations.signing import verify_webhook
from tests.e2e.conftest import call, connect_mailbox
from tests.integration.dovecot import DovecotServer, DovecotUser

pytestmark = pytest.mark.dovecot

TAGGED = {"name": "Ada Lovelace", "emails": [{"address": "ada@customer.example"}], "tags": ["new-lead"]}


@pytest.fixture(scope="module")
def runner(mail_runner: Runner) -> Runner:
    return mail_runner


class Receiver:
    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                outer.requests.append((dict(self.headers.items()), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.server.shutdown()
    server.server.server_close()


def _tenant(runner: Runner, tenant: str) -> str:
    admin = runner.token(tenant=tenant, role="admin", sub=f"{tenant}-owner")
    assert call(runner, "PUT", "/features", admin, {"automations": True})[0] == 200
    return admin


def _runs(runner: Runner, token: str, rule_id: str) -> list[dict[str, Any]]:
    status, page = call(runner, "GET", f"/automations/{rule_id}/runs", token)
    assert status == 200, page
    return page["items"]  # type: ignore[no-any-return]


def test_the_welcome_rule_sends_its_email_when_a_tagged_contact_is_created(
    runner: Runner, dovecot_server: DovecotServer, dovecot_user: DovecotUser, smtp_sink: Any
) -> None:
    from tests.fixtures.smtp import SINK_PASSWORD, SINK_USER

    # Given a mailbox that sends through the SMTP sink, and the seed's welcome template saved for it
    token = _tenant(runner, "welcome")
    smtp = {
        "host": smtp_sink.host,
        "port": smtp_sink.plain_port,
        "security": "none",
        "username": SINK_USER,
        "password": SINK_PASSWORD,
    }
    account_id = connect_mailbox(runner, token, dovecot_server, dovecot_user, smtp)
    runner.drain()
    templates = call(runner, "GET", "/automations/templates", token)[1]["items"]
    welcome = next(t for t in templates if t["name"] == "Welcome New Contact")
    body = json.loads(json.dumps(welcome["rule"]).replace("acc_00000000000000000000", account_id))
    status, rule = call(runner, "POST", "/automations", token, body)
    assert status == 201, rule
    # When an untagged and a tagged contact are created
    assert (
        call(
            runner,
            "POST",
            "/crm/contacts",
            token,
            {**TAGGED, "tags": [], "emails": [{"address": "bob@customer.example"}], "name": "Bob"},
        )[0]
        == 201
    )
    assert call(runner, "POST", "/crm/contacts", token, TAGGED)[0] == 201
    runner.drain()
    # Then the tagged contact got the welcome email, through the outbox and SMTP
    welcome_mail = [m for m in smtp_sink.messages if b"Subject: Welcome, Ada" in m.raw]
    assert len(welcome_mail) == 1
    assert b"Hi Ada, thanks for getting in touch." in welcome_mail[0].raw
    assert all(b"bob@customer.example" not in m.raw for m in smtp_sink.messages)
    # And the run history shows both steps, and the task exists once
    runs = _runs(runner, token, rule["rule_id"])
    matched = [r for r in runs if r["matched"]]
    assert len(matched) == 1
    assert len(runs) == 2
    email_step, task_step = matched[0]["steps"]
    assert email_step["status"] == "succeeded"
    assert email_step["input"]["to"] == [{"address": "ada@customer.example", "name": "Ada Lovelace"}]
    assert task_step["status"] == "succeeded", task_step.get("error")
    status, tasks = call(runner, "GET", "/crm/tasks", token)
    assert status == 200
    assert len(tasks["items"]) == 1


def test_a_webhook_is_delivered_once_when_the_bus_delivers_the_event_twice(
    runner: Runner, receiver: Receiver
) -> None:
    # Given a rule posting a signed body to a local receiver
    token = _tenant(runner, "hooks")
    secret = call(runner, "POST", "/automations/secrets", token, {"name": "hook"})[1]["secret"]
    rule = {
        "name": "Hook",
        "trigger": {"event": "contact.created"},
        "actions": [
            {
                "type": "webhook.publish",
                "url": receiver.url,
                "secret_ref": "hook",
                "payload": {"email": "{{contact.email}}"},
            }
        ],
    }
    status, saved = call(runner, "POST", "/automations", token, rule)
    assert status == 201, saved
    # When the same contact.created event reaches the bus twice
    detail = {
        "tenant_id": "hooks",
        "id": "e1",
        "occurred_at": runner.clock.now().isoformat(),
        "idempotency_key": "contact.created:ct_1",
        "data": {"contact": TAGGED},
    }
    events = runner.boto3_client("events")
    bus = runner.physical_name("EventBus")
    for _ in range(2):
        events.put_events(
            Entries=[
                {
                    "Source": "mailbridge",
                    "DetailType": "contact.created",
                    "Detail": json.dumps(detail),
                    "EventBusName": bus,
                }
            ]
        )
    runner.drain()
    # Then the receiver got one delivery, which verifies with the secret
    assert len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    verify_webhook(body=body, headers=headers, secret=secret, now=int(datetime.now(UTC).timestamp()))
    assert json.loads(body) == {"email": "ada@customer.example"}
    # And dry-run and replay answer for the same rule
    path = f"/automations/{saved['rule_id']}"
    status, dry = call(runner, "POST", f"{path}/test", token, {"data": {"contact": TAGGED}})
    assert status == 200, dry
    assert dry["steps"][0]["status"] == "would_run"
    assert len(receiver.requests) == 1
    now = runner.clock.now()
    window = {
        "version": 1,
        "from": (now - timedelta(hours=1)).isoformat(),
        "to": (now + timedelta(hours=1)).isoformat(),
    }
    status, replayed = call(runner, "POST", f"{path}/replay", token, window)
    assert status == 200, replayed
    assert (replayed["events"], replayed["matched"]) == (1, 1)
    assert replayed["items"][0]["current_run"]["status"] == "succeeded"


def test_a_cron_rule_fires_when_the_runner_clock_passes_its_time(runner: Runner) -> None:
    # Given a rule every 10 minutes that records a metric
    token = _tenant(runner, "cron")
    rule = {
        "name": "Tick",
        "trigger": {"cron": "cron(0/10 * * * ? *)", "timezone": "Europe/Berlin"},
        "actions": [{"type": "analytics.track", "metric": "ticks"}],
    }
    status, saved = call(runner, "POST", "/automations", token, rule)
    assert status == 201, saved
    runner.drain()
    before = _runs(runner, token, saved["rule_id"])
    # When eleven minutes pass on the runner's clock
    runner.advance(11 * 60)
    runner.drain()
    # Then the rule ran once more, from its schedule
    after = _runs(runner, token, saved["rule_id"])
    assert len(after) == len(before) + 1
    assert (after[0]["event_type"], after[0]["status"]) == ("schedule.fired", "succeeded")
