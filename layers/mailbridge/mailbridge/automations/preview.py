"""Dry-run and replay: what a rule (version) would do, without side effects.

`POST /automations/{id}/test` runs the current version against sample data: the condition, then
every action's builder and executor in dry mode (nothing is sent, stored or published; a webhook
shows its URL, signature headers and body). `POST /automations/{id}/replay` evaluates a saved
version against the archived events of its trigger type in a window (the automations function
archives every event it receives for 90 days; in AWS the bus also has an EventBridge archive)
and puts beside each event what the current version did (its run, from run history).

Errors: NotFound `automation_not_found` / `version_not_found`; Invalid `invalid_window` (end not
after start, or longer than `MAX_WINDOW`), `not_replayable` (a cron rule: its firings are not
events). An action that would fail shows `status: failed` with the error's code.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from mailbridge.automations.actions import RenderContext, parse_actions
from mailbridge.automations.conditions import compile_logic
from mailbridge.automations.execution import StepContext, Trigger, event_view, run_digest
from mailbridge.automations.executors import ExecutorDeps, default_executors
from mailbridge.automations.models import (
    CronTrigger,
    DryStep,
    ReplayedEvent,
    ReplayRequest,
    ReplayResult,
    Rule,
    RuleVersion,
    TestRequest,
    TestResult,
)
from mailbridge.automations.service import AutomationDeps, _enabled, _rule_id
from mailbridge.errors import Invalid, MailbridgeError, NotFound
from mailbridge.tenancy import Role, TenantContext

MAX_WINDOW = timedelta(days=31)
MAX_REPLAY_EVENTS = 500


def dry_steps(
    rule: Rule | RuleVersion, owner: str, trigger: Trigger, deps: AutomationDeps
) -> tuple[bool, list[DryStep]]:
    """Whether the condition matches `trigger`, and what each action would do."""
    view = event_view(trigger)
    matched = compile_logic(rule.logic).matches(view)
    actions = parse_actions(rule.actions)
    if not matched:
        return False, [DryStep(index=i, type=a.type, status="skipped") for i, a in enumerate(actions)]
    executors = default_executors(ExecutorDeps(store=deps.store))
    time_zone = rule.trigger.timezone if isinstance(rule.trigger, CronTrigger) else "UTC"
    step = StepContext(
        ctx=TenantContext(tenant_id=trigger.tenant_id, role=Role.MEMBER, subject=owner),
        render=RenderContext(data=view, now=deps.now(), time_zone=time_zone),
        idempotency_key="",
        event_type=trigger.event_type,
        publisher=None,
        dry_run=True,
    )
    steps: list[DryStep] = []
    for i, action in enumerate(actions):
        keyed = StepContext(
            **{**step.__dict__, "idempotency_key": f"{rule.rule_id}:{rule.version}:{trigger.event_id}:{i}"}
        )
        executor = executors.get(action.type)
        try:
            if executor is None:
                raise Invalid("this action cannot run yet", code="action_not_available")
            given, output = executor(action, keyed)
        except MailbridgeError as exc:
            steps.append(
                DryStep(
                    index=i,
                    type=action.type,
                    status="failed",
                    error={"code": exc.code, "message": exc.message},
                )
            )
            continue
        steps.append(DryStep(index=i, type=action.type, status="would_run", input=given, output=output))
    return True, steps


def test_rule(ctx: TenantContext, rule_id: str, body: TestRequest, deps: AutomationDeps) -> TestResult:
    _enabled(ctx, deps)
    rule = deps.store.require_rule(ctx.tenant_id, _rule_id(rule_id))
    default_type = "schedule.fired" if isinstance(rule.trigger, CronTrigger) else rule.trigger.event
    trigger = Trigger(
        tenant_id=ctx.tenant_id,
        event_id="test",
        event_type=body.event_type or default_type,
        occurred_at=deps.now(),
        data=body.data,
    )
    matched, steps = dry_steps(rule, rule.owner, trigger, deps)
    return TestResult(rule_id=rule.rule_id, version=rule.version, matched=matched, steps=steps)


def replay(ctx: TenantContext, rule_id: str, body: ReplayRequest, deps: AutomationDeps) -> ReplayResult:
    _enabled(ctx, deps)
    rule = deps.store.require_rule(ctx.tenant_id, _rule_id(rule_id))
    if not body.end > body.start or body.end - body.start > MAX_WINDOW:
        raise Invalid("`to` must be after `from`, at most 31 days later", code="invalid_window")
    version = deps.store.get_version(ctx.tenant_id, rule.rule_id, body.version)
    if version is None:
        raise NotFound("no such version of this automation", code="version_not_found")
    if isinstance(version.trigger, CronTrigger):
        raise Invalid("a cron rule's firings are not archived events", code="not_replayable")
    items, truncated = deps.store.archived_events(
        ctx.tenant_id, version.trigger.event, body.start, body.end, limit=MAX_REPLAY_EVENTS
    )
    replayed: list[ReplayedEvent] = []
    for item in items:
        trigger = Trigger(
            tenant_id=ctx.tenant_id,
            event_id=str(item["event_id"]),
            event_type=str(item["event_type"]),
            occurred_at=datetime.fromisoformat(str(item["occurred_at"])),
            data=json.loads(str(item["data"])),
        )
        matched, steps = dry_steps(version, rule.owner, trigger, deps)
        replayed.append(
            ReplayedEvent(
                event_id=trigger.event_id,
                event_type=trigger.event_type,
                occurred_at=trigger.occurred_at,
                matched=matched,
                would_run=steps if matched else [],
                current_run=deps.store.find_run(ctx.tenant_id, rule.rule_id, run_digest(rule, trigger)),
            )
        )
    return ReplayResult(
        rule_id=rule.rule_id,
        version=version.version,
        current_version=rule.version,
        events=len(replayed),
        matched=sum(e.matched for e in replayed),
        items=replayed,
        truncated=truncated,
    )
