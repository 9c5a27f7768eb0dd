"""Automation rules as the API takes and returns them, their versions, and their runs.

A rule is a trigger, a condition and an ordered list of actions (the seed's rule shape):

    {"name": "Welcome New Contact",
     "trigger": {"event": "contact.created"},
     "conditions": [{"field": "contact.tags", "operator": "contains", "value": "new-lead"}],
     "actions": [{"type": "email.send", ...}, {"type": "task.create", ...}]}

The condition is either JSON-Logic (`logic`) or the seed's simple list (`conditions`,
`mailbridge.automations.compile`); a list is compiled to JSON-Logic on save and both are kept.
Neither: the rule always matches. Triggers are a domain event type (`{"event": ...}`) or an
EventBridge Scheduler cron expression with an IANA time zone (`{"cron": ..., "timezone": ...}`,
`mailbridge.automations.cron`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, JsonValue, StringConstraints, model_validator

from mailbridge.models.base import Model
from mailbridge.models.fields import MultiLine, SingleLine
from mailbridge.models.numbers import DynamoInt

RULE_ID = r"^au_[0-9a-f]{20}$"
EVENT_TYPE = r"^[a-z][a-z_]*(\.[a-z_]+)+$"  # as bus.DomainEvent.detail_type
"""As `bus.DomainEvent.detail_type`: `contact.created`, `deal.stage_changed` ..."""

MAX_CHAIN_DEPTH = 3
"""Events caused by automations carry their chain depth; beyond this no rule triggers."""


class EventTrigger(Model):
    """Run on every domain event of this type (`detail-type` on the bus)."""

    model_config = ConfigDict(extra="forbid")

    event: str = Field(pattern=EVENT_TYPE, max_length=100, examples=["contact.created"])


class CronTrigger(Model):
    """Run at the times of an EventBridge Scheduler cron expression, in an IANA time zone."""

    model_config = ConfigDict(extra="forbid")

    cron: Annotated[SingleLine, Field(min_length=1, max_length=256)] = Field(
        examples=["cron(0 9 ? * MON-FRI *)"]
    )
    timezone: Annotated[SingleLine, Field(min_length=1, max_length=64)] = Field(
        default="UTC", examples=["Europe/Berlin"]
    )


Trigger = EventTrigger | CronTrigger


class RuleFields(Model):
    """What a client writes: `POST /automations`, and `PUT` (with `version`)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Welcome New Contact",
                    "trigger": {"event": "contact.created"},
                    "conditions": [{"field": "contact.tags", "operator": "contains", "value": "new-lead"}],
                    "actions": [
                        {
                            "type": "webhook.publish",
                            "url": "https://hooks.example.com/mailbridge",
                            "secret_ref": "crm-hook",
                        }
                    ],
                }
            ]
        },
    )

    name: Annotated[SingleLine, Field(min_length=1, max_length=200)]
    description: Annotated[MultiLine, Field(max_length=2000)] | None = None
    trigger: Trigger
    logic: JsonValue = Field(default=None, description="A JSON-Logic condition (jsonlogic.com)")
    conditions: JsonValue = Field(
        default=None,
        description="The seed's `[{field, operator, value}]` list (or `{match, conditions}`), "
        "compiled to JSON-Logic on save",
    )
    actions: list[dict[str, JsonValue]] = Field(
        min_length=1, max_length=20, description="Ordered; each validated with its schema on save"
    )
    enabled: bool = True

    @model_validator(mode="after")
    def _one_condition(self) -> RuleFields:
        if self.logic is not None and self.conditions is not None:
            raise ValueError("give `logic` or `conditions`, not both")
        return self


class RuleUpdate(RuleFields):
    """`PUT /automations/{id}`: the whole rule again, and the version it was read at."""

    version: DynamoInt = Field(
        ge=1, description="The `version` the client last read (optimistic concurrency)"
    )


class Rule(Model):
    """A rule at its latest version, as the API returns it."""

    rule_id: str
    version: int = Field(description="Increases on every save; each save is kept as an immutable version")
    name: str
    description: str | None = None
    trigger: Trigger
    logic: JsonValue = Field(description="The condition as JSON-Logic (compiled when `conditions` was given)")
    conditions: JsonValue = None
    actions: list[dict[str, JsonValue]]
    enabled: bool
    paused_reason: str | None = Field(
        default=None, description="Set when the circuit breaker paused the rule (`consecutive_failures`)"
    )
    consecutive_failures: int = 0
    schedule_name: str | None = Field(default=None, description="The Scheduler schedule of a cron rule")
    owner: str
    created_at: datetime
    updated_at: datetime
    updated_by: str


class RuleVersion(Model):
    """One immutable save of a rule."""

    rule_id: str
    version: int
    name: str
    description: str | None = None
    trigger: Trigger
    logic: JsonValue
    conditions: JsonValue = None
    actions: list[dict[str, JsonValue]]
    saved_at: datetime
    saved_by: str


class RuleList(Model):
    items: list[Rule]
    next_cursor: str | None = None


class VersionList(Model):
    items: list[RuleVersion]
    next_cursor: str | None = None


class EvaluateRequest(Model):
    """`POST /automations/evaluate`: a JSON-Logic rule and the data to apply it to."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"logic": {"in": ["vip", {"var": "contact.tags"}]}, "data": {"contact": {"tags": ["vip"]}}}
            ]
        },
    )

    logic: JsonValue
    data: JsonValue = None


class EvaluateResult(Model):
    result: JsonValue


class RuleTemplate(Model):
    """A pre-built rule to start from (`GET /automations/templates`)."""

    template_id: str
    name: str
    description: str
    rule: dict[str, Any]


class TemplateList(Model):
    items: list[RuleTemplate]


# ------------------------------------------------------------------------------- runs

RunStatus = Literal["running", "succeeded", "failed", "skipped"]
StepStatus = Literal["pending", "succeeded", "failed", "skipped"]


class StepRecord(Model):
    """One action of a run: what it was given after templating and what came of it."""

    index: int
    type: str
    status: StepStatus
    idempotency_key: str
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: float | None = None
    attempts: int = 0
    input: JsonValue = Field(default=None, description="The action after templating")
    output: JsonValue = None
    error: dict[str, JsonValue] | None = Field(default=None, description="`{code, message}`")


class Run(Model):
    """One evaluation of one rule version against one event (or cron firing)."""

    run_id: str
    rule_id: str
    rule_version: int
    event_id: str
    event_type: str
    status: RunStatus
    matched: bool
    chain_depth: int = 0
    started_at: datetime
    finished_at: datetime | None = None
    steps: list[StepRecord] = Field(default_factory=list)
    error: dict[str, JsonValue] | None = None


class RunList(Model):
    items: list[Run]
    next_cursor: str | None = None


# ------------------------------------------------------------------------------- dry-run, replay


class TestRequest(Model):
    """`POST /automations/{id}/test`: sample event data (as the trigger's event carries it)."""

    __test__ = False  # not a pytest class

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "data": {
                        "contact": {
                            "name": "Ada Lovelace",
                            "emails": [{"address": "ada@example.com"}],
                            "tags": ["new-lead"],
                        }
                    }
                }
            ]
        },
    )

    data: dict[str, JsonValue] = Field(default_factory=dict)
    event_type: str | None = Field(
        default=None,
        pattern=EVENT_TYPE,
        description="Default: the rule's trigger event (`schedule.fired` for cron)",
    )


class DryStep(Model):
    """What one action would do: its input after templating (for a webhook: URL, headers with the
    signature, body) and `output.would`, or the error it would fail with."""

    index: int
    type: str
    status: Literal["would_run", "failed", "skipped"]
    input: JsonValue = None
    output: JsonValue = None
    error: dict[str, JsonValue] | None = None


class TestResult(Model):
    __test__ = False  # not a pytest class

    rule_id: str
    version: int
    matched: bool
    steps: list[DryStep]


class ReplayRequest(Model):
    """`POST /automations/{id}/replay`: a saved version and a window of archived events."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"version": 1, "from": "2026-11-01T00:00:00Z", "to": "2026-11-30T00:00:00Z"}]
        },
    )

    version: DynamoInt = Field(ge=1)
    start: datetime = Field(alias="from", description="Window start (inclusive), ISO 8601 with a zone")
    end: datetime = Field(alias="to", description="Window end (exclusive); at most 31 days after `from`")


class ReplayedEvent(Model):
    event_id: str
    event_type: str
    occurred_at: datetime
    matched: bool = Field(description="Whether the replayed version's condition matches the event")
    would_run: list[DryStep] = Field(
        description="The replayed version's actions, dry (empty when not matched)"
    )
    current_run: Run | None = Field(default=None, description="What the current version did with this event")


class ReplayResult(Model):
    rule_id: str
    version: int
    current_version: int
    events: int = Field(description="Archived events of the trigger type in the window")
    matched: int
    items: list[ReplayedEvent]
    truncated: bool = Field(description="True when the window held more than the replay limit")


class SecretRequest(Model):
    """`POST /automations/secrets`: name an endpoint's signing secret (`secret_ref` of
    `webhook.publish`). Posting an existing name rotates it (the previous secret keeps signing
    too until the next rotation)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "crm-hook"}]})

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")


class SecretCreated(Model):
    name: str
    secret: str = Field(description="Shown once: give it to the receiver to verify `Mailbridge-Signature`")


# A host name (RFC 1123 labels) or, with a leading dot, every host under a domain; stored lower case.
HOST_PATTERN = (
    r"\.?[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*"
)


class OutboundHosts(Model):
    """`PUT/GET /automations/outbound-hosts`: the tenant's allowlist for the URLs its actions call
    (`webhook.publish`, `message.post`, `http.openapi`). `api.example.com` allows that host,
    `.example.com` every host under example.com. Empty: any public https host. Every call still
    passes the SSRF guard (`providers/http.py`), whatever the list says."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"allowed_hosts": ["hooks.slack.com", ".example.com"]}]},
    )

    allowed_hosts: Annotated[
        list[Annotated[str, StringConstraints(to_lower=True, max_length=253, pattern=f"^{HOST_PATTERN}$")]],
        Field(max_length=100),
    ]


class QueueRegistration(Model):
    """`POST /automations/queues`: a name `queue.enqueue` actions use for an SQS queue of this
    deployment's AWS account (a queue of another account is refused: `queue_not_in_account`)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "new-leads",
                    "queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/new-leads",
                }
            ]
        },
    )

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,80}$")
    queue_url: Annotated[SingleLine, Field(min_length=10, max_length=1024)]


class QueueRegistered(Model):
    name: str
    queue_url: str


class OpenApiRegistration(Model):
    """`POST /automations/openapi`: an OpenAPI 3 document (JSON) whose operations `http.openapi`
    actions call by `operationId`. Its first `servers` URL is the base (https, or http to
    loopback in local mode); every call still passes the SSRF guard."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "document_id": "billing-api",
                    "document": {
                        "openapi": "3.0.3",
                        "info": {"title": "Billing", "version": "1"},
                        "servers": [{"url": "https://billing.example.com/v1"}],
                        "paths": {"/customers": {"post": {"operationId": "createCustomer"}}},
                    },
                }
            ]
        },
    )

    document_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    document: dict[str, JsonValue]


class OpenApiRegistered(Model):
    document_id: str
    operations: list[str] = Field(description="The operationIds actions can call")
