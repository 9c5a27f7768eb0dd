"""Loop protection through the mail: an email an automation run sends carries the run's chain to
its `email.sent` event, so a rule triggered by `email.sent` that sends mail stops at the depth
limit like any other chain (issue 13 point 5)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from mailbridge.automations.actions import RenderContext, parse_actions
from mailbridge.automations.execution import ChainPublisher, StepContext
from mailbridge.automations.executors import ExecutorDeps, Executors
from mailbridge.bus import DomainEvent, EventPublisher
from mailbridge.sync import engine
from mailbridge.tenancy import Role, TenantContext
from tests.unit.automations.test_actions import NOW, WELCOME

OWNER = TenantContext(tenant_id="acme", role=Role.MEMBER, subject="user-1")


class Recording(EventPublisher):
    def __init__(self) -> None:
        super().__init__("bus")
        self.events: list[DomainEvent] = []

    def publish(self, events: Any) -> None:
        self.events.extend(events)


def test_an_email_an_automation_sends_is_queued_with_the_runs_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a run two steps deep whose first action sends the welcome email
    seen: dict[str, Any] = {}

    def queue_send(ctx: Any, request: Any, deps: Any, *, automation: Any = None) -> Any:
        seen["automation"] = automation
        return type("Accepted", (), {"email_id": "em_1", "status": "queued"})()

    monkeypatch.setattr("mailbridge.outbox.service.queue_send", queue_send)
    action = parse_actions(WELCOME)[0]
    chain = ChainPublisher(Recording(), depth=3, rule_id="au_1", run_id="run_1")
    step = StepContext(
        ctx=OWNER,
        render=RenderContext(data={"contact": {"email": "ada@example.com", "first_name": "Ada"}}, now=NOW),
        idempotency_key="k",
        event_type="email.sent",
        publisher=chain,
    )
    # When the action runs
    Executors(ExecutorDeps(store=None, outbox=object)).email_send(action, step)  # type: ignore[arg-type]
    # Then the outbox is given the run's chain, one step deeper than the event that caused it
    assert seen["automation"] == {"depth": 3, "rule_id": "au_1", "run_id": "run_1"}


class Emails:
    def __init__(self, items: dict[str, dict[str, Any]]) -> None:
        self.items = items
        self.announced: list[str] = []

    def batch_get_emails(self, tenant_id: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        return {i: self.items[i] for i in ids if i in self.items}

    def mark_announced(self, tenant_id: str, ids: list[str]) -> None:
        self.announced += ids


def test_email_sent_carries_the_chain_kept_on_the_email_and_nothing_for_other_mail() -> None:
    # Given an email an automation sent (its chain as DynamoDB returns it) and one a user sent
    items: dict[str, dict[str, Any]] = {
        "em_auto": {
            "direction": "outbound",
            "automation": {"depth": Decimal(3), "rule_id": "au_1", "run_id": "run_1"},
        },
        "em_user": {"direction": "outbound"},
    }
    publisher = Recording()
    deps = type("Deps", (), {"emails": Emails(items), "publisher": publisher})()
    # When both are announced
    engine.announce("acme", "acc_1", ["em_auto", "em_user"], deps)
    # Then the automation's email.sent says how deep its chain is (an int, as the rules read it)
    by_id = {e.data["email_id"]: e for e in publisher.events}
    assert by_id["em_auto"].detail_type == "email.sent"
    assert by_id["em_auto"].data["automation"] == {"depth": 3, "rule_id": "au_1", "run_id": "run_1"}
    assert type(by_id["em_auto"].data["automation"]["depth"]) is int
    assert "automation" not in by_id["em_user"].data
