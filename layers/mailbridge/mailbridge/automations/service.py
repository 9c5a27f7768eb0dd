"""Automation rules: create, read, change (each save a new immutable version), enable, disable,
delete; the rule builder's evaluator; the pre-built templates; run history reads.

Plain functions over pydantic models; the store, the feature flags and the cron scheduler come in
`AutomationDeps`. Errors: NotFound `automation_not_found` / `version_not_found` /
`run_not_found`; Conflict `version_conflict` (PUT with a stale `version`); Invalid (400) with the
codes of `mailbridge.automations.errors` (`invalid_logic`, `unknown_operator`,
`invalid_condition`, `unknown_condition_operator`, `invalid_action`, `action_not_available`,
`invalid_template`..., `invalid_cron`, `invalid_timezone`, `cron_never_fires`); RateLimited
`rate_limited` (429, Retry-After) beyond `SAVES_PER_MINUTE` saves a minute per tenant (the seed's
figure).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mailbridge.automations.actions import parse_actions
from mailbridge.automations.compile import compile_conditions
from mailbridge.automations.conditions import check_logic, compile_logic, evaluate
from mailbridge.automations.cron import validate_trigger
from mailbridge.automations.models import (
    RULE_ID,
    CronTrigger,
    EvaluateRequest,
    EvaluateResult,
    OpenApiRegistered,
    OpenApiRegistration,
    OutboundHosts,
    QueueRegistered,
    QueueRegistration,
    Rule,
    RuleFields,
    RuleList,
    RuleTemplate,
    RuleUpdate,
    RuleVersion,
    Run,
    RunList,
    SecretCreated,
    SecretRequest,
    TemplateList,
    VersionList,
)
from mailbridge.automations.scheduling import CronScheduler
from mailbridge.errors import Conflict, Invalid, NotFound
from mailbridge.features import require_feature
from mailbridge.store.automations import AutomationStore
from mailbridge.store.ratelimit import RateLimiter
from mailbridge.store.settings import FeatureStore
from mailbridge.tenancy import Role, TenantContext

SAVES_PER_MINUTE = 20
_RULE_ID = re.compile(RULE_ID.removeprefix("^").removesuffix("$"))
FEATURE = "automations"


@dataclass
class AutomationDeps:
    store: AutomationStore
    features: FeatureStore
    scheduler: CronScheduler
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    home_queue_url: str = ""
    """A queue URL of this deployment (the AutomationsQueue): its account is the only one
    `POST /automations/queues` accepts."""
    limiter: RateLimiter | None = None
    """The save limiter (default: the shared limiter on the automations table)."""


def new_rule_id() -> str:
    return "au_" + secrets.token_hex(10)


def _enabled(ctx: TenantContext, deps: AutomationDeps) -> None:
    require_feature(ctx, deps.features, FEATURE)


def _rule_id(rule_id: str) -> str:
    if not _RULE_ID.fullmatch(rule_id):
        raise NotFound("no such automation", code="automation_not_found")
    return rule_id


def _limit_saves(ctx: TenantContext, deps: AutomationDeps, now: datetime) -> None:
    """`SAVES_PER_MINUTE` per tenant on the shared limiter (`store.ratelimit`, counters in the
    automations table); 429 `rate_limited` with Retry-After past it."""
    limiter = deps.limiter or RateLimiter(deps.store.table_name)
    limiter.take(ctx.tenant_id, "automation_saves", SAVES_PER_MINUTE, now, what="rule saves")


def _compiled(body: RuleFields, now: datetime) -> tuple[Any, Any, list[dict[str, Any]]]:
    """The condition as JSON-Logic, the condition list as given, the actions as given (checked)."""
    if isinstance(body.trigger, CronTrigger):
        validate_trigger(body.trigger.cron, body.trigger.timezone, now=now)
    if body.conditions is not None:
        logic = compile_conditions(body.conditions)
    elif body.logic is not None:
        check_logic(body.logic)
        compile_logic(body.logic)
        logic = body.logic
    else:
        logic = True
    parse_actions(body.actions)
    return logic, body.conditions, body.actions


def _save(
    ctx: TenantContext, body: RuleFields, deps: AutomationDeps, current: Rule | None, rule_id: str
) -> Rule:
    now = deps.now()
    logic, conditions, actions = _compiled(body, now)
    _limit_saves(ctx, deps, now)
    version = 1 if current is None else current.version + 1
    rule = Rule(
        rule_id=rule_id,
        version=version,
        name=body.name,
        description=body.description,
        trigger=body.trigger,
        logic=logic,
        conditions=conditions,
        actions=actions,
        enabled=body.enabled,
        owner=current.owner if current else ctx.subject,
        created_at=current.created_at if current else now,
        updated_at=now,
        updated_by=ctx.subject,
    )
    saved = RuleVersion(
        rule_id=rule_id,
        version=version,
        name=rule.name,
        description=rule.description,
        trigger=rule.trigger,
        logic=logic,
        conditions=conditions,
        actions=actions,
        saved_at=now,
        saved_by=ctx.subject,
    )
    rule = _sync_schedule(ctx, rule, deps, previous=current)
    deps.store.save_rule(ctx.tenant_id, rule, saved, expected=None if current is None else current.version)
    return rule


def _sync_schedule(ctx: TenantContext, rule: Rule, deps: AutomationDeps, *, previous: Rule | None) -> Rule:
    """Create, update or delete the rule's Scheduler schedule to match its trigger and state."""
    if isinstance(rule.trigger, CronTrigger):
        name = deps.scheduler.put(
            ctx.tenant_id,
            rule.rule_id,
            rule.trigger.cron,
            rule.trigger.timezone,
            enabled=rule.enabled and rule.paused_reason is None,
        )
        return rule.model_copy(update={"schedule_name": name})
    if previous is not None and previous.schedule_name:
        deps.scheduler.delete(ctx.tenant_id, rule.rule_id)
    return rule.model_copy(update={"schedule_name": None})


# ------------------------------------------------------------------------------- rules


def create_rule(ctx: TenantContext, body: RuleFields, deps: AutomationDeps) -> Rule:
    ctx.require(Role.MEMBER)
    _enabled(ctx, deps)
    return _save(ctx, body, deps, None, new_rule_id())


def update_rule(ctx: TenantContext, rule_id: str, body: RuleUpdate, deps: AutomationDeps) -> Rule:
    """Save a new version; Conflict `version_conflict` unless `body.version` is the current one."""
    ctx.require(Role.MEMBER)
    _enabled(ctx, deps)
    current = deps.store.require_rule(ctx.tenant_id, _rule_id(rule_id))
    if body.version != current.version:
        raise Conflict(
            "the rule was changed since it was read",
            code="version_conflict",
            details={"current_version": current.version},
        )
    fields = RuleFields.model_validate(body.model_dump(exclude={"version"}))
    return _save(ctx, fields, deps, current, current.rule_id)


def get_rule(ctx: TenantContext, rule_id: str, deps: AutomationDeps) -> Rule:
    _enabled(ctx, deps)
    return deps.store.require_rule(ctx.tenant_id, _rule_id(rule_id))


def list_rules(ctx: TenantContext, deps: AutomationDeps, *, cursor: str | None, limit: int) -> RuleList:
    _enabled(ctx, deps)
    items, next_cursor = deps.store.list_rules(ctx.tenant_id, cursor=cursor, limit=limit)
    return RuleList(items=items, next_cursor=next_cursor)


def delete_rule(ctx: TenantContext, rule_id: str, deps: AutomationDeps) -> None:
    """Delete the rule and its schedule (its versions and runs stay readable to nobody)."""
    ctx.require(Role.MEMBER)
    _enabled(ctx, deps)
    rule = deps.store.require_rule(ctx.tenant_id, _rule_id(rule_id))
    if rule.schedule_name:
        deps.scheduler.delete(ctx.tenant_id, rule.rule_id)
    deps.store.delete_rule(ctx.tenant_id, rule.rule_id)


def set_enabled(ctx: TenantContext, rule_id: str, enabled: bool, deps: AutomationDeps) -> Rule:
    """Switch a rule on or off without a new version; enabling clears a circuit-breaker pause."""
    ctx.require(Role.MEMBER)
    _enabled(ctx, deps)
    current = deps.store.require_rule(ctx.tenant_id, _rule_id(rule_id))
    rule = current.model_copy(
        update={
            "enabled": enabled,
            "paused_reason": None if enabled else current.paused_reason,
            "consecutive_failures": 0 if enabled else current.consecutive_failures,
            "updated_at": deps.now(),
            "updated_by": ctx.subject,
        }
    )
    rule = _sync_schedule(ctx, rule, deps, previous=current)
    deps.store.put_state(ctx.tenant_id, rule)
    return rule


def list_versions(
    ctx: TenantContext, rule_id: str, deps: AutomationDeps, *, cursor: str | None, limit: int
) -> VersionList:
    _enabled(ctx, deps)
    rule = deps.store.require_rule(ctx.tenant_id, _rule_id(rule_id))
    items, next_cursor = deps.store.list_versions(ctx.tenant_id, rule.rule_id, cursor=cursor, limit=limit)
    return VersionList(items=items, next_cursor=next_cursor)


def get_version(ctx: TenantContext, rule_id: str, version: int, deps: AutomationDeps) -> RuleVersion:
    _enabled(ctx, deps)
    rule = deps.store.require_rule(ctx.tenant_id, _rule_id(rule_id))
    found = deps.store.get_version(ctx.tenant_id, rule.rule_id, version) if version >= 1 else None
    if found is None:
        raise NotFound("no such version of this automation", code="version_not_found")
    return found


# ------------------------------------------------------------------------------- runs


def list_runs(
    ctx: TenantContext, rule_id: str, deps: AutomationDeps, *, cursor: str | None, limit: int
) -> RunList:
    _enabled(ctx, deps)
    rule = deps.store.require_rule(ctx.tenant_id, _rule_id(rule_id))
    items, next_cursor = deps.store.list_runs(ctx.tenant_id, rule.rule_id, cursor=cursor, limit=limit)
    return RunList(items=items, next_cursor=next_cursor)


def get_run(ctx: TenantContext, rule_id: str, run_id: str, deps: AutomationDeps) -> Run:
    _enabled(ctx, deps)
    rule = deps.store.require_rule(ctx.tenant_id, _rule_id(rule_id))
    found = deps.store.get_run(ctx.tenant_id, rule.rule_id, run_id) if len(run_id) <= 100 else None
    if found is None:
        raise NotFound("no such run of this automation", code="run_not_found")
    return found


# ------------------------------------------------------------------------------- builder


def evaluate_logic(ctx: TenantContext, body: EvaluateRequest, deps: AutomationDeps) -> EvaluateResult:
    """The rule builder's evaluator: LogicError (400) with its code for a rule or data refused."""
    _enabled(ctx, deps)
    return EvaluateResult(result=evaluate(body.logic, body.data))


_ACCOUNT = "acc_00000000000000000000"
TEMPLATES: tuple[RuleTemplate, ...] = (
    RuleTemplate(
        template_id="welcome-new-contact",
        name="Welcome New Contact",
        description="Email a new contact tagged new-lead and create a follow-up task for a week later.",
        rule={
            "name": "Welcome New Contact",
            "trigger": {"event": "contact.created"},
            "conditions": [{"field": "contact.tags", "operator": "contains", "value": "new-lead"}],
            "actions": [
                {
                    "type": "email.send",
                    "account_id": _ACCOUNT,
                    "to": [{"address": "{{contact.email}}", "name": "{{contact.name}}"}],
                    "subject": "Welcome, {{contact.first_name | default('there')}}",
                    "text": "Hi {{contact.first_name | default('there')}}, thanks for getting in touch.",
                },
                {
                    "type": "task.create",
                    "title": "Follow up with {{contact.name}}",
                    "due": "{{date_add_days:7}}",
                    "priority": "normal",
                    "contact_id": "{{contact.contact_id}}",
                },
            ],
        },
    ),
    RuleTemplate(
        template_id="deal-won-celebration",
        name="Deal Won Notification",
        description="Post to the team channel and create an onboarding task when a deal is won.",
        rule={
            "name": "Deal Won Notification",
            "trigger": {"event": "deal.stage_changed"},
            "conditions": [{"field": "deal.stage", "operator": "equals", "value": "won"}],
            "actions": [
                {
                    "type": "message.post",
                    "url": "https://hooks.slack.com/services/T000/B000/XXXX",
                    "text": "Deal won: {{deal.name}} ({{deal.amount}} {{deal.currency}})",
                },
                {
                    "type": "task.create",
                    "title": "Start onboarding for {{deal.name}}",
                    "due": "{{date_add_days:2}}",
                    "priority": "high",
                    "deal_id": "{{deal.deal_id}}",
                },
            ],
        },
    ),
    RuleTemplate(
        template_id="inbound-email-webhook",
        name="Forward Inbound Email Events",
        description="Publish a signed webhook for every email received.",
        rule={
            "name": "Forward Inbound Email Events",
            "trigger": {"event": "email.received"},
            "actions": [
                {
                    "type": "webhook.publish",
                    "url": "https://hooks.example.com/mailbridge",
                    "secret_ref": "inbound-hook",
                }
            ],
        },
    ),
    RuleTemplate(
        template_id="weekly-pipeline-digest",
        name="Weekly Pipeline Digest",
        description="Every Monday at 09:00 (Europe/Berlin), post a reminder to review the pipeline.",
        rule={
            "name": "Weekly Pipeline Digest",
            "trigger": {"cron": "cron(0 9 ? * MON *)", "timezone": "Europe/Berlin"},
            "actions": [
                {
                    "type": "message.post",
                    "url": "https://hooks.slack.com/services/T000/B000/XXXX",
                    "text": "Pipeline review today ({{today}}).",
                }
            ],
        },
    ),
)


def templates(ctx: TenantContext, deps: AutomationDeps) -> TemplateList:
    _enabled(ctx, deps)
    return TemplateList(items=list(TEMPLATES))


def create_secret(ctx: TenantContext, body: SecretRequest, deps: AutomationDeps) -> SecretCreated:
    """A fresh webhook signing secret under `body.name` (rotation keeps the previous one)."""
    from mailbridge.automations.signing import new_secret

    ctx.require(Role.ADMIN)
    _enabled(ctx, deps)
    secret = new_secret()
    deps.store.put_secret(ctx.tenant_id, body.name, secret)
    return SecretCreated(name=body.name, secret=secret)


_QUEUE_URL = re.compile(r"https?://[A-Za-z0-9.:-]+/(\d{12})/[A-Za-z0-9_-]{1,80}(\.fifo)?")


def register_queue(ctx: TenantContext, body: QueueRegistration, deps: AutomationDeps) -> QueueRegistered:
    """Name an SQS queue for `queue.enqueue`: Invalid `invalid_queue_url` (not an SQS queue URL,
    `https://sqs.{region}.amazonaws.com/{account}/{name}`), `queue_not_in_account` (another
    AWS account than this deployment's)."""
    ctx.require(Role.ADMIN)
    _enabled(ctx, deps)
    found = _QUEUE_URL.fullmatch(body.queue_url)
    home = _QUEUE_URL.fullmatch(deps.home_queue_url)
    if found is None:
        raise Invalid("not an SQS queue URL", code="invalid_queue_url")
    if home is None or found.group(1) != home.group(1):
        raise Invalid("the queue is not in this deployment's AWS account", code="queue_not_in_account")
    deps.store.put_queue(ctx.tenant_id, body.name, body.queue_url)
    return QueueRegistered(name=body.name, queue_url=body.queue_url)


def register_openapi(
    ctx: TenantContext, body: OpenApiRegistration, deps: AutomationDeps
) -> OpenApiRegistered:
    """Store an OpenAPI document for `http.openapi` (ActionError `invalid_openapi`, 400)."""
    import json

    from mailbridge.automations.openapi import check_document

    ctx.require(Role.ADMIN)
    _enabled(ctx, deps)
    operations = check_document(body.document)
    deps.store.put_openapi(ctx.tenant_id, body.document_id, json.dumps(body.document, separators=(",", ":")))
    return OpenApiRegistered(document_id=body.document_id, operations=operations)


def get_outbound_hosts(ctx: TenantContext, deps: AutomationDeps) -> OutboundHosts:
    """The tenant's allowlist of hosts actions may call (empty: any public https host)."""
    ctx.require(Role.VIEWER)
    _enabled(ctx, deps)
    return OutboundHosts(allowed_hosts=deps.store.get_outbound_hosts(ctx.tenant_id))


def put_outbound_hosts(ctx: TenantContext, body: OutboundHosts, deps: AutomationDeps) -> OutboundHosts:
    """Replace the tenant's allowlist (admins). From the next action on, `webhook.publish`,
    `message.post` and `http.openapi` call only these hosts (`host_not_allowed` otherwise);
    duplicates are dropped, the order kept."""
    ctx.require(Role.ADMIN)
    _enabled(ctx, deps)
    hosts = list(dict.fromkeys(body.allowed_hosts))
    deps.store.put_outbound_hosts(ctx.tenant_id, hosts)
    return OutboundHosts(allowed_hosts=hosts)
