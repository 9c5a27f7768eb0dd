"""Running rules: an event (or a cron firing) in, the matching rules' actions run once each, a run
record per (rule version, event) out.

For one trigger (`Trigger`: a bus event, or a cron rule's firing):

1. Loop protection: events caused by an automation carry `data.automation.depth` (stamped by
   `ChainPublisher` on everything an action publishes); at a depth of `MAX_CHAIN_DEPTH` or more
   no rule triggers, so an action's own events never re-trigger rules endlessly.
2. The tenant's enabled rules for the event type: one Query on the sparse trigger index.
3. Per rule: the run id is derived from (rule, version, event), so a redelivered event finds its
   run; a finished run is not run again (exactly once per rule version and event). The condition
   (stored JSON-Logic) decides; a non-matching event leaves a `skipped` run.
4. Actions run in order. Each has an idempotency key `{rule}:{version}:{event}:{index}` that the
   `ActionGuard` records before and after the call (Powertools idempotency in the function), so
   a retried run never sends or posts twice; a step that already succeeded is not repeated.
5. A transient failure (a `retryable` error) is retried in the run with exponential backoff
   (`in_run_attempts`), then handed back to the queue (`RetryLater`: SQS redelivers after a
   growing visibility timeout, then the DLQ). A permanent failure (a typed non-retryable error:
   a template the data cannot fill, a 4xx from a webhook ...) fails the run and stops it.
6. A failed run announces `automation.failed` (rule, run, owner, error code) for its owner.
7. Circuit breaker: `breaker_threshold` failed runs of a rule in a row pause it (out of the
   trigger index, `paused_reason` set) and publish `automation.paused` for its owner; a
   successful run resets the count; enabling the rule again clears the pause.

Run records hold the tenant's own data (rendered inputs, outputs); logs never do.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from mailbridge.automations.actions import RenderContext, parse_actions
from mailbridge.automations.conditions import compile_logic
from mailbridge.automations.models import MAX_CHAIN_DEPTH, CronTrigger, Rule, Run, StepRecord
from mailbridge.bus import DomainEvent, EventPublisher
from mailbridge.errors import Conflict, MailbridgeError
from mailbridge.features import get_features
from mailbridge.observability import logger
from mailbridge.store.automations import AutomationStore
from mailbridge.store.settings import FeatureStore
from mailbridge.tenancy import Role, TenantContext


class RetryLater(Exception):
    """A transient failure outlasted the in-run retries: let the queue deliver the event again."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class Trigger:
    """What a run starts from: a bus event, or a cron rule's firing (`rule_id` set)."""

    tenant_id: str
    event_id: str
    event_type: str
    occurred_at: datetime
    data: Mapping[str, Any]
    rule_id: str | None = None

    @property
    def chain_depth(self) -> int:
        chain = self.data.get("automation")
        depth = chain.get("depth", 0) if isinstance(chain, Mapping) else 0
        return depth if isinstance(depth, int) and not isinstance(depth, bool) else 0


@dataclass(frozen=True)
class StepContext:
    """What an executor gets besides its action."""

    ctx: TenantContext
    """The rule owner's context (tenant, member role, owner's subject)."""
    render: RenderContext
    idempotency_key: str
    event_type: str
    publisher: EventPublisher | None
    dry_run: bool = False


Executor = Callable[[Any, StepContext], tuple[Any, Any]]
"""`(action, step) -> (input after templating, output)`, both JSON-shaped; raises typed errors."""


class ActionGuard(Protocol):
    """Runs `perform` at most once per key (records before and after); returns its output."""

    def __call__(self, key: str, perform: Callable[[], dict[str, Any]]) -> dict[str, Any]: ...


def unguarded(key: str, perform: Callable[[], dict[str, Any]]) -> dict[str, Any]:  # noqa: ARG001 - no guard
    return perform()


@dataclass
class ExecutionDeps:
    store: AutomationStore
    features: FeatureStore
    publisher: EventPublisher | None
    executors: Mapping[str, Executor]
    guard: ActionGuard = unguarded
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.perf_counter
    in_run_attempts: int = 3
    base_delay: float = 0.2
    breaker_threshold: int = 5


class ChainPublisher(EventPublisher):
    """Publishes through `inner`, stamping every event with the automation chain it came from."""

    def __init__(self, inner: EventPublisher, *, depth: int, rule_id: str, run_id: str) -> None:
        super().__init__(inner.bus_name, client=inner._client)
        self.inner = inner
        self.chain = {"depth": depth, "rule_id": rule_id, "run_id": run_id}

    def publish(self, events: Sequence[DomainEvent]) -> None:
        stamped = [e.model_copy(update={"data": {**e.data, "automation": self.chain}}) for e in events]
        self.inner.publish(stamped)


def run_digest(rule: Rule, trigger: Trigger) -> str:
    """Names (rule, version, event): what a run is unique for."""
    return hashlib.sha256(f"{rule.rule_id}\n{rule.version}\n{trigger.event_id}".encode()).hexdigest()[:16]


def run_id_for(rule: Rule, trigger: Trigger) -> str:
    """Sorts by the event's time, then names (rule, version, event)."""
    return f"ru_{trigger.occurred_at.astimezone(UTC).strftime('%Y%m%d%H%M%S%f')}_{run_digest(rule, trigger)}"


def event_view(trigger: Trigger) -> dict[str, Any]:
    """The data conditions and templates see: the event's data, `event` (type, id, time), and for
    a contact its primary `email` and `first_name` (the seed's `{{contact.email}}`)."""
    data: dict[str, Any] = {k: v for k, v in trigger.data.items() if k != "automation"}
    contact = data.get("contact")
    if isinstance(contact, dict):
        contact = dict(contact)
        emails = contact.get("emails") or []
        primary = next((e for e in emails if isinstance(e, dict) and e.get("primary")), None)
        if "email" not in contact and (primary or emails):
            contact["email"] = (primary or emails[0]).get("address")
        name = contact.get("name")
        if "first_name" not in contact and isinstance(name, str) and name.strip():
            contact["first_name"] = name.split()[0]
        data["contact"] = contact
    data["event"] = {
        "type": trigger.event_type,
        "id": trigger.event_id,
        "occurred_at": trigger.occurred_at.isoformat(),
    }
    return data


def handle_trigger(trigger: Trigger, deps: ExecutionDeps, *, final_attempt: bool = False) -> list[Run]:
    """Run every rule the trigger starts (see the module doc); raises RetryLater."""
    settings = get_features(_system(trigger.tenant_id), deps.features)
    if not settings.flags.automations:
        return []
    if trigger.chain_depth >= MAX_CHAIN_DEPTH:
        logger.info("automation chain too deep", extra={"depth": trigger.chain_depth})
        return []
    if trigger.rule_id is None:
        # The event archive replay reads (90 days; also an EventBridge archive in AWS).
        deps.store.archive_event(
            trigger.tenant_id,
            trigger.event_type,
            trigger.event_id,
            trigger.occurred_at,
            json.dumps(dict(trigger.data), separators=(",", ":"), default=str),
        )
    if trigger.rule_id is not None:
        rule = deps.store.get_rule(trigger.tenant_id, trigger.rule_id)
        rules = [rule] if rule and rule.enabled and not rule.paused_reason else []
        rules = [r for r in rules if isinstance(r.trigger, CronTrigger)]
    else:
        rules = deps.store.rules_for_event(trigger.tenant_id, trigger.event_type)
    view = event_view(trigger)
    runs: list[Run] = []
    retry: RetryLater | None = None
    for rule in rules:
        try:
            runs.append(run_rule(rule, trigger, view, deps, final_attempt=final_attempt))
        except RetryLater as exc:
            retry = exc  # the other rules still run; this one runs again on redelivery
    if retry is not None:
        raise retry
    return runs


def _system(tenant_id: str) -> TenantContext:
    return TenantContext(tenant_id=tenant_id, role=Role.MEMBER, subject="automations")


def run_rule(
    rule: Rule, trigger: Trigger, view: dict[str, Any], deps: ExecutionDeps, *, final_attempt: bool
) -> Run:
    run_id = deps.store.claim_run_id(
        trigger.tenant_id, rule.rule_id, run_digest(rule, trigger), run_id_for(rule, trigger)
    )
    existing = deps.store.get_run(trigger.tenant_id, rule.rule_id, run_id)
    if existing is not None and existing.status != "running":
        return existing  # exactly once per (rule version, event)
    now = deps.now()
    matched = compile_logic(rule.logic).matches(view)
    actions = parse_actions(rule.actions)
    run = existing or Run(
        run_id=run_id,
        rule_id=rule.rule_id,
        rule_version=rule.version,
        event_id=trigger.event_id,
        event_type=trigger.event_type,
        status="running" if matched else "skipped",
        matched=matched,
        chain_depth=trigger.chain_depth,
        started_at=now,
        steps=[
            StepRecord(
                index=i,
                type=action.type,
                status="pending" if matched else "skipped",
                idempotency_key=f"{rule.rule_id}:{rule.version}:{trigger.event_id}:{i}",
            )
            for i, action in enumerate(actions)
        ],
    )
    if not matched:
        run = run.model_copy(update={"finished_at": now})
        deps.store.put_run(trigger.tenant_id, run)
        return run
    deps.store.put_run(trigger.tenant_id, run)
    owner = TenantContext(tenant_id=trigger.tenant_id, role=Role.MEMBER, subject=rule.owner)
    time_zone = rule.trigger.timezone if isinstance(rule.trigger, CronTrigger) else "UTC"
    render = RenderContext(data=view, now=now, time_zone=time_zone)
    publisher = (
        ChainPublisher(deps.publisher, depth=trigger.chain_depth + 1, rule_id=rule.rule_id, run_id=run_id)
        if deps.publisher is not None
        else None
    )
    steps = list(run.steps)
    status: str = "succeeded"
    for i, action in enumerate(actions):
        if steps[i].status == "succeeded":
            continue
        step = StepContext(
            ctx=owner,
            render=render,
            idempotency_key=steps[i].idempotency_key,
            event_type=trigger.event_type,
            publisher=publisher,
        )
        steps[i], outcome = _run_step(action, step, steps[i], deps)
        run = run.model_copy(update={"steps": steps})
        if outcome == "retry" and not final_attempt:
            deps.store.put_run(trigger.tenant_id, run)
            raise RetryLater(str((steps[i].error or {}).get("code", "transient")))
        if steps[i].status == "failed":
            status = "failed"
            for later in range(i + 1, len(steps)):
                steps[later] = steps[later].model_copy(update={"status": "skipped"})
            break
        deps.store.put_run(trigger.tenant_id, run)
    run = run.model_copy(
        update={
            "steps": steps,
            "status": status,
            "finished_at": deps.now(),
            "error": next((s.error for s in steps if s.status == "failed"), None),
        }
    )
    deps.store.put_run(trigger.tenant_id, run)
    if status == "failed":
        _announce_failure(trigger.tenant_id, rule, run, deps)
    _breaker(trigger.tenant_id, rule, failed=status == "failed", deps=deps)
    return run


def _announce_failure(tenant_id: str, rule: Rule, run: Run, deps: ExecutionDeps) -> None:
    """`automation.failed` for the rule's owner's notification: ids and the error code only (the
    run record keeps the rest); one per run (`automation.failed:{run_id}`). Not a trigger of
    rules (not in the AutomationsRule), so a failing rule cannot feed itself."""
    if deps.publisher is None:
        return
    deps.publisher.publish(
        [
            DomainEvent(
                detail_type="automation.failed",
                tenant_id=tenant_id,
                idempotency_key=f"automation.failed:{run.run_id}",
                data={
                    "rule_id": rule.rule_id,
                    "run_id": run.run_id,
                    "owner": rule.owner,
                    "code": str((run.error or {}).get("code") or "action_failed"),
                },
            )
        ]
    )


def _run_step(
    action: Any, step: StepContext, record: StepRecord, deps: ExecutionDeps
) -> tuple[StepRecord, str]:
    """Run one action with in-run retries; returns the updated record and `done` or `retry`."""
    executor = deps.executors.get(action.type)
    started = deps.now()
    begun = deps.clock()
    attempts = record.attempts
    rendered: dict[str, Any] = {}

    def perform() -> dict[str, Any]:
        if executor is None:
            from mailbridge.automations.errors import ActionError

            raise ActionError("this action cannot run here", code="action_not_available")
        given, output = executor(action, step)
        rendered["input"] = given
        return {"input": given, "output": output}

    for attempt in range(deps.in_run_attempts):
        attempts += 1
        try:
            result = deps.guard(step.idempotency_key, perform)
        except MailbridgeError as exc:
            error = {"code": exc.code, "message": exc.message}
            retryable = exc.retryable
        except RetryLater:
            raise
        except Exception as exc:  # noqa: BLE001 - unknown failures are treated as transient
            error = {"code": "action_error", "message": type(exc).__name__}
            retryable = True
        else:
            return record.model_copy(
                update={
                    "status": "succeeded",
                    "started_at": started,
                    "finished_at": deps.now(),
                    "duration_ms": round((deps.clock() - begun) * 1000, 3),
                    "attempts": attempts,
                    "input": result.get("input"),
                    "output": result.get("output"),
                    "error": None,
                }
            ), "done"
        if not retryable:
            break
        if attempt + 1 < deps.in_run_attempts:
            deps.sleep(deps.base_delay * 2**attempt)
    failed = record.model_copy(
        update={
            "status": "failed",
            "started_at": started,
            "finished_at": deps.now(),
            "duration_ms": round((deps.clock() - begun) * 1000, 3),
            "attempts": attempts,
            "input": rendered.get("input"),
            "error": error,
        }
    )
    return failed, "retry" if retryable else "done"


def _breaker(tenant_id: str, rule: Rule, *, failed: bool, deps: ExecutionDeps) -> None:
    """Count failed runs in a row; pause the rule at the threshold and tell its owner."""
    current = deps.store.get_rule(tenant_id, rule.rule_id)
    if current is None:
        return
    if not failed:
        if current.consecutive_failures:
            _put_state(tenant_id, current.model_copy(update={"consecutive_failures": 0}), deps)
        return
    failures = current.consecutive_failures + 1
    pause = failures >= deps.breaker_threshold and current.paused_reason is None
    reason = f"{failures} failed runs in a row" if pause else current.paused_reason
    if not _put_state(
        tenant_id,
        current.model_copy(update={"consecutive_failures": failures, "paused_reason": reason}),
        deps,
    ):
        return
    if pause and deps.publisher is not None:
        deps.publisher.publish(
            [
                DomainEvent(
                    detail_type="automation.paused",
                    tenant_id=tenant_id,
                    idempotency_key=f"automation.paused:{rule.rule_id}:{current.version}:{failures}",
                    data={
                        "rule_id": rule.rule_id,
                        "version": current.version,
                        "owner": current.owner,
                        "reason": reason,
                        "consecutive_failures": failures,
                    },
                )
            ]
        )


def _put_state(tenant_id: str, rule: Rule, deps: ExecutionDeps) -> bool:
    try:
        deps.store.put_state(tenant_id, rule)
    except Conflict:
        return False  # saved in between: the new version starts with its own count
    return True
