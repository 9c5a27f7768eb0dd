"""No-code automations: rules (each save an immutable version), enable/disable, run history,
the rule builder's evaluator and the pre-built templates.

Every route answers 404 `feature_disabled` while the tenant's `automations` flag is off. Reads
need any role; changes need member or higher. Enabling and disabling are
`POST /automations/{id}/enable` and `/disable` (no body, no new version: state, not content).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from mailbridge.api import deps
from mailbridge.api.context import RouteGuard, current_tenant, require_role
from mailbridge.api.schemas import BEARER, errors
from mailbridge.automations.models import (
    EvaluateRequest,
    EvaluateResult,
    OpenApiRegistered,
    OpenApiRegistration,
    OutboundHosts,
    QueueRegistered,
    QueueRegistration,
    ReplayRequest,
    ReplayResult,
    Rule,
    RuleFields,
    RuleList,
    RuleUpdate,
    RuleVersion,
    Run,
    RunList,
    SecretCreated,
    SecretRequest,
    TemplateList,
    TestRequest,
    TestResult,
    VersionList,
)
from mailbridge.models.base import Model
from mailbridge.store.pagination import MAX_PAGE_SIZE
from mailbridge.tenancy import Role

if TYPE_CHECKING:
    from mailbridge.automations.service import AutomationDeps

router = Router()


def _automations_on(app: Any) -> None:
    from mailbridge.features import require_feature

    require_feature(current_tenant(app), deps.feature_store(), "automations")


# First in every route's list: a switched-off capability is 404 before any role check.
AUTOMATIONS = RouteGuard("require_automations", _automations_on, {404: ["feature_disabled"]})
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size")]
Cursor = Annotated[str | None, Query(max_length=4096, description="`next_cursor` of the previous page")]

_SAVE_ERRORS = {
    400: [
        "invalid_logic",
        "unknown_operator",
        "logic_too_deep",
        "logic_too_costly",
        "invalid_condition",
        "unknown_condition_operator",
        "invalid_action",
        "action_not_available",
        "invalid_cron",
        "invalid_timezone",
        "cron_never_fires",
    ],
    429: ["rate_limited"],
}


class Deleted(Model):
    rule_id: str
    deleted: bool = True


def _deps() -> AutomationDeps:
    from mailbridge.automations.wiring import automation_deps

    return automation_deps()


@router.post(
    "/automations",
    summary="Create a rule (trigger, condition, ordered actions); version 1",
    description=(
        "`conditions` (the seed's `{field, operator, value}` list) is compiled to JSON-Logic and "
        "both are kept; or give `logic` directly. Actions are validated with their schemas and "
        "templates checked. A cron trigger creates one EventBridge Scheduler schedule. At most 20 "
        "saves a minute per tenant (429 `rate_limited` with Retry-After)."
    ),
    tags=["automations"],
    security=BEARER,
    status_code=201,
    middlewares=[AUTOMATIONS, require_role(Role.ADMIN)],
    responses=errors(_SAVE_ERRORS),
)
def create_rule(body: Annotated[RuleFields, Body()]) -> Rule:
    from mailbridge.automations import service

    return service.create_rule(current_tenant(router), body, _deps())


@router.get(
    "/automations",
    summary="The tenant's rules, at their latest version",
    tags=["automations"],
    security=BEARER,
    middlewares=[AUTOMATIONS, require_role(Role.VIEWER)],
    responses=errors({}),
)
def list_rules(cursor: Cursor = None, limit: Limit = 25) -> RuleList:
    from mailbridge.automations import service

    return service.list_rules(current_tenant(router), _deps(), cursor=cursor, limit=limit)


@router.get(
    "/automations/templates",
    summary="The pre-built rules to start from (POST one's `rule` after filling in its ids)",
    tags=["automations"],
    security=BEARER,
    middlewares=[AUTOMATIONS, require_role(Role.VIEWER)],
    responses=errors({}),
)
def list_templates() -> TemplateList:
    from mailbridge.automations import service

    return service.templates(current_tenant(router), _deps())


@router.post(
    "/automations/evaluate",
    summary="Evaluate a JSON-Logic rule against data (the rule builder's preview)",
    tags=["automations"],
    security=BEARER,
    middlewares=[AUTOMATIONS, require_role(Role.VIEWER)],
    responses=errors(
        {
            400: [
                "invalid_logic",
                "unknown_operator",
                "logic_too_deep",
                "logic_too_costly",
                "invalid_data",
                "logic_evaluation_failed",
            ]
        }
    ),
)
def evaluate(body: Annotated[EvaluateRequest, Body()]) -> EvaluateResult:
    from mailbridge.automations import service

    return service.evaluate_logic(current_tenant(router), body, _deps())


@router.get(
    "/automations/<rule_id>",
    summary="One rule at its latest version",
    tags=["automations"],
    security=BEARER,
    middlewares=[AUTOMATIONS, require_role(Role.VIEWER)],
    responses=errors({404: ["automation_not_found"]}),
)
def get_rule(rule_id: str) -> Rule:
    from mailbridge.automations import service

    return service.get_rule(current_tenant(router), rule_id, _deps())


@router.put(
    "/automations/<rule_id>",
    summary="Save a new version of a rule (send the `version` you read)",
    tags=["automations"],
    security=BEARER,
    middlewares=[AUTOMATIONS, require_role(Role.ADMIN)],
    responses=errors({**_SAVE_ERRORS, 404: ["automation_not_found"], 409: ["version_conflict"]}),
)
def put_rule(rule_id: str, body: Annotated[RuleUpdate, Body()]) -> Rule:
    from mailbridge.automations import service

    return service.update_rule(current_tenant(router), rule_id, body, _deps())


@router.delete(
    "/automations/<rule_id>",
    summary="Delete a rule and its schedule",
    tags=["automations"],
    security=BEARER,
    middlewares=[AUTOMATIONS, require_role(Role.ADMIN)],
    responses=errors({404: ["automation_not_found"]}),
)
def delete_rule(rule_id: str) -> Deleted:
    from mailbridge.automations import service

    service.delete_rule(current_tenant(router), rule_id, _deps())
    return Deleted(rule_id=rule_id)


@router.post(
    "/automations/<rule_id>/enable",
    summary="Switch a rule on (clears a circuit-breaker pause); no new version",
    tags=["automations"],
    security=BEARER,
    middlewares=[AUTOMATIONS, require_role(Role.ADMIN)],
    responses=errors({404: ["automation_not_found"], 409: ["version_conflict"]}),
)
def enable_rule(rule_id: str) -> Rule:
    from mailbridge.automations import service

    return service.set_enabled(current_tenant(router), rule_id, True, _deps())


@router.post(
    "/automations/<rule_id>/disable",
    summary="Switch a rule off; no new version",
    tags=["automations"],
    security=BEARER,
    middlewares=[AUTOMATIONS, require_role(Role.ADMIN)],
    responses=errors({404: ["automation_not_found"], 409: ["version_conflict"]}),
)
def disable_rule(rule_id: str) -> Rule:
    from mailbridge.automations import service

    return service.set_enabled(current_tenant(router), rule_id, False, _deps())


@router.get(
    "/automations/<rule_id>/versions",
    summary="Every saved version of a rule, newest first",
    tags=["automations"],
    security=BEARER,
    middlewares=[AUTOMATIONS, require_role(Role.VIEWER)],
    responses=errors({404: ["automation_not_found"]}),
)
def list_versions(rule_id: str, cursor: Cursor = None, limit: Limit = 25) -> VersionList:
    from mailbridge.automations import service

    return service.list_versions(current_tenant(router), rule_id, _deps(), cursor=cursor, limit=limit)


@router.get(
    "/automations/<rule_id>/versions/<version>",
    summary="One saved version of a rule",
    tags=["automations"],
    security=BEARER,
    middlewares=[AUTOMATIONS, require_role(Role.VIEWER)],
    responses=errors({404: ["automation_not_found", "version_not_found"]}),
)
def get_version(rule_id: str, version: int) -> RuleVersion:
    from mailbridge.automations import service

    return service.get_version(current_tenant(router), rule_id, version, _deps())


@router.get(
    "/automations/<rule_id>/runs",
    summary="The rule's runs, newest event first, with per-action status",
    tags=["automations"],
    security=BEARER,
    middlewares=[AUTOMATIONS, require_role(Role.VIEWER)],
    responses=errors({404: ["automation_not_found"]}),
)
def list_runs(rule_id: str, cursor: Cursor = None, limit: Limit = 25) -> RunList:
    from mailbridge.automations import service

    return service.list_runs(current_tenant(router), rule_id, _deps(), cursor=cursor, limit=limit)


@router.get(
    "/automations/<rule_id>/runs/<run_id>",
    summary="One run: per-action status, timing, inputs after templating, output or error",
    tags=["automations"],
    security=BEARER,
    middlewares=[AUTOMATIONS, require_role(Role.VIEWER)],
    responses=errors({404: ["automation_not_found", "run_not_found"]}),
)
def get_run(rule_id: str, run_id: str) -> Run:
    from mailbridge.automations import service

    return service.get_run(current_tenant(router), rule_id, run_id, _deps())


@router.post(
    "/automations/secrets",
    summary="Create (or rotate) a webhook signing secret; the secret is shown once",
    tags=["automations"],
    security=BEARER,
    status_code=201,
    middlewares=[AUTOMATIONS, require_role(Role.ADMIN)],
    responses=errors({}),
)
def create_secret(body: Annotated[SecretRequest, Body()]) -> SecretCreated:
    from mailbridge.automations import service

    return service.create_secret(current_tenant(router), body, _deps())


@router.post(
    "/automations/<rule_id>/test",
    summary="Dry-run the rule on sample event data: the condition and what each action would do",
    description=(
        "Nothing is sent, stored or published. Each step shows its input after templating (a "
        "webhook: URL, signature headers, body) and `output.would`, or `status: failed` with the "
        "error code it would fail with."
    ),
    tags=["automations"],
    security=BEARER,
    middlewares=[AUTOMATIONS, require_role(Role.MEMBER)],
    responses=errors({400: ["invalid_logic", "logic_evaluation_failed"], 404: ["automation_not_found"]}),
)
def test_rule(rule_id: str, body: Annotated[TestRequest, Body()]) -> TestResult:
    from mailbridge.automations import preview

    return preview.test_rule(current_tenant(router), rule_id, body, _deps())


@router.post(
    "/automations/<rule_id>/replay",
    summary="Replay a saved version over the archived events of a window (at most 31 days)",
    description=(
        "Per archived event of the version's trigger type: whether the version matches, the "
        "actions it would run (dry), and the current version's run for that event."
    ),
    tags=["automations"],
    security=BEARER,
    middlewares=[AUTOMATIONS, require_role(Role.MEMBER)],
    responses=errors(
        {400: ["invalid_window", "not_replayable"], 404: ["automation_not_found", "version_not_found"]}
    ),
)
def replay_rule(rule_id: str, body: Annotated[ReplayRequest, Body()]) -> ReplayResult:
    from mailbridge.automations import preview

    return preview.replay(current_tenant(router), rule_id, body, _deps())


@router.post(
    "/automations/queues",
    summary="Name an SQS queue of this deployment's account for queue.enqueue actions",
    tags=["automations"],
    security=BEARER,
    status_code=201,
    middlewares=[AUTOMATIONS, require_role(Role.ADMIN)],
    responses=errors({400: ["invalid_queue_url", "queue_not_in_account"]}),
)
def register_queue(body: Annotated[QueueRegistration, Body()]) -> QueueRegistered:
    from mailbridge.automations import service

    return service.register_queue(current_tenant(router), body, _deps())


@router.get(
    "/automations/outbound-hosts",
    summary="The hosts the tenant's actions may call (empty: any public https host)",
    tags=["automations"],
    security=BEARER,
    middlewares=[AUTOMATIONS, require_role(Role.VIEWER)],
    responses=errors({}),
)
def get_outbound_hosts() -> OutboundHosts:
    from mailbridge.automations import service

    return service.get_outbound_hosts(current_tenant(router), _deps())


@router.put(
    "/automations/outbound-hosts",
    summary="Replace the allowlist of hosts webhook.publish, message.post and http.openapi call",
    tags=["automations"],
    security=BEARER,
    middlewares=[AUTOMATIONS, require_role(Role.ADMIN)],
    responses=errors({}),
)
def put_outbound_hosts(body: Annotated[OutboundHosts, Body()]) -> OutboundHosts:
    from mailbridge.automations import service

    return service.put_outbound_hosts(current_tenant(router), body, _deps())


@router.post(
    "/automations/openapi",
    summary="Register an OpenAPI 3 document whose operations http.openapi actions call",
    tags=["automations"],
    security=BEARER,
    status_code=201,
    middlewares=[AUTOMATIONS, require_role(Role.ADMIN)],
    responses=errors({400: ["invalid_openapi"]}),
)
def register_openapi(body: Annotated[OpenApiRegistration, Body()]) -> OpenApiRegistered:
    from mailbridge.automations import service

    return service.register_openapi(current_tenant(router), body, _deps())
