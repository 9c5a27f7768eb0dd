"""The action library: one pydantic schema per action type, validated on save, and pure builders.

A rule's actions are a list of `Action` (a union discriminated by `type`). Saving validates the
shape and checks every template (`mailbridge.automations.templating.check_template`), so a saved
rule never fails on syntax; running renders the templates against the event and builds what the
action sends, through the same models the rest of the system validates with:

| type | builder | result |
|---|---|---|
| `email.send` | `build_email` | `outbox.models.SendRequest` (HeaderText subject, EmailStr addresses) |
| `task.create` | `build_task` | `TaskDraft` |
| `deal.update` | `build_deal_update` | `(deal_id, crm.models.DealPatch)` |
| `webhook.publish` | `build_webhook` | `signing.SignedRequest` (signed JSON body) |
| `http.openapi` | `build_openapi_call` | `OpenApiCall` (parameters and body, rendered) |
| `queue.enqueue` | `build_queue_message` | `QueueMessage` (JSON body within SQS's 256 KiB) |
| `message.post` | `build_message_post` | `OutboundPost` (`{"text": ...}`: Slack and Teams webhooks) |
| `analytics.track` | `build_metric` | `MetricPoint` (CloudWatch's name, unit and dimension limits) |
| `ai.generate` | `build_ai_generate` | `AiGenerateRequest` (task, the rendered email id) |

URLs are not templated (the host is fixed when the rule is saved, so the tenant's allowlist can
be checked then and the SSRF guard of `mailbridge.providers.http` checks it again on every
call): `https://` only, or `http://` to a loopback literal (`127.0.0.1`, `[::1]`, `localhost`)
for local development, which the HTTP client itself still refuses outside local mode.

Errors: `parse_action` / `parse_actions` raise ActionError `invalid_action` (or
`action_not_available`) with the pydantic locations and types in `details` (never the values);
a builder raises ActionError `invalid_action` when the rendered values do not make a valid
request (an empty address, a subject with a line break from the data ...) and TemplateError
when a template fails (`undefined_variable` ...).
"""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    JsonValue,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from mailbridge.automations.errors import ActionError, TemplateError
from mailbridge.automations.signing import SignedRequest, build_webhook_request
from mailbridge.automations.templating import check_template, render, render_value, template_strings
from mailbridge.crm.models import CONTACT_ID, DEAL_ID, DealPatch
from mailbridge.models.base import Model
from mailbridge.models.fields import MultiLine, SingleLine, has_control
from mailbridge.outbox.models import MAX_RECIPIENTS, SendRequest

MAX_ACTIONS = 20
MAX_PAYLOAD_CHARS = 65_536
"""Largest payload template (as JSON) of `webhook.publish`, `queue.enqueue`, `http.openapi`."""
SQS_MAX_BYTES = 262_144
ACCOUNT_ID = r"^acc_[0-9a-f]{20}$"  # as outbox.models.SendRequest.account_id
_M = TypeVar("_M", bound=Model)


@dataclass(frozen=True, slots=True)
class RenderContext:
    """What a run renders against: the event data, its clock and the rule's time zone."""

    data: Mapping[str, Any]
    now: datetime
    time_zone: str = "UTC"

    def text(self, source: str, *, autoescape: bool = False) -> str:
        return render(source, self.data, now=self.now, time_zone=self.time_zone, autoescape=autoescape)

    def optional(self, source: str | None) -> str | None:
        return None if source is None else self.text(source)

    def value(self, template: Any) -> Any:
        return render_value(template, self.data, now=self.now, time_zone=self.time_zone)


# ------------------------------------------------------------------------------- field types


def _template(value: str) -> str:
    try:
        check_template(value)
    except TemplateError as exc:
        raise PydanticCustomError(exc.code, "the template is not valid") from None
    return value


def _template_line(value: str) -> str:
    if has_control(value):
        raise PydanticCustomError("control_characters", "control characters are not allowed here")
    return _template(value)


def _payload(value: Any) -> Any:
    if len(json.dumps(value)) > MAX_PAYLOAD_CHARS:
        raise PydanticCustomError("payload_too_large", "the payload template is too large")
    for source in template_strings(value):
        _template(source)
    return value


def _url(value: str) -> str:
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise PydanticCustomError("invalid_url", "not a URL") from None
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host or parts.username or parts.password:
        raise PydanticCustomError("invalid_url", "an https URL with a host and no user name is required")
    if parts.scheme == "http" and not _is_loopback(host):
        raise PydanticCustomError("insecure_url", "only https URLs are allowed")
    if has_control(value) or " " in value or (port is not None and not 0 < port < 65536):
        raise PydanticCustomError("invalid_url", "not a URL")
    return value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


TemplateLine = Annotated[str, AfterValidator(_template_line)]
"""A single-line template (subject, title, address, id)."""
TemplateText = Annotated[MultiLine, AfterValidator(_template)]
"""A template that may span lines (a body, a description)."""
PayloadTemplate = Annotated[JsonValue, AfterValidator(_payload)]
"""A JSON value whose strings are templates."""
OutboundUrl = Annotated[str, Field(max_length=2048), AfterValidator(_url)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class _Action(Model):
    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------------------- email.send


class RecipientTemplate(Model):
    model_config = ConfigDict(extra="forbid")

    address: Annotated[TemplateLine, Field(min_length=1, max_length=500)] = Field(
        examples=["{{contact.email}}"]
    )
    name: Annotated[TemplateLine, Field(max_length=500)] | None = Field(
        default=None, examples=["{{contact.first_name}}"]
    )


class EmailSendAction(_Action):
    """Send an email through the outbox from one of the tenant's connected accounts."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "type": "email.send",
                    "account_id": "acc_5f0c1d2e3a4b5c6d7e8f",
                    "to": [{"address": "{{contact.email}}", "name": "{{contact.first_name}}"}],
                    "subject": "Welcome, {{contact.first_name | default('there')}}",
                    "text": "Hi {{contact.first_name | default('there')}}, thanks for signing up.",
                }
            ]
        },
    )

    type: Literal["email.send"]
    account_id: str = Field(pattern=ACCOUNT_ID, description="The connected account that sends")
    to: list[RecipientTemplate] = Field(default_factory=list, max_length=MAX_RECIPIENTS)
    cc: list[RecipientTemplate] = Field(default_factory=list, max_length=MAX_RECIPIENTS)
    bcc: list[RecipientTemplate] = Field(default_factory=list, max_length=MAX_RECIPIENTS)
    subject: Annotated[TemplateLine, Field(max_length=2000)] = ""
    text: Annotated[TemplateText, Field(max_length=100_000)] | None = None
    html: Annotated[TemplateText, Field(max_length=200_000)] | None = Field(
        default=None, description="Values are HTML-escaped when rendered"
    )

    @model_validator(mode="after")
    def _complete(self) -> EmailSendAction:
        if not (self.to or self.cc or self.bcc):
            raise ValueError("at least one recipient (to, cc or bcc) is required")
        if len(self.to) + len(self.cc) + len(self.bcc) > MAX_RECIPIENTS:
            raise ValueError(f"at most {MAX_RECIPIENTS} recipients in total")
        if not (self.text or self.html):
            raise ValueError("text or html is required")
        return self


def build_email(action: EmailSendAction, context: RenderContext) -> SendRequest:
    """The outbox request the action sends (validated as `POST /emails/send` validates it)."""

    def recipients(templates: list[RecipientTemplate]) -> list[dict[str, Any]]:
        return [
            {"address": context.text(r.address).strip(), "name": context.optional(r.name) or None}
            for r in templates
        ]

    return _validated(
        SendRequest,
        {
            "account_id": action.account_id,
            "to": recipients(action.to),
            "cc": recipients(action.cc),
            "bcc": recipients(action.bcc),
            "subject": context.text(action.subject),
            "text": context.optional(action.text),
            "html": None if action.html is None else context.text(action.html, autoescape=True),
        },
    )


# ------------------------------------------------------------------------------- task.create

TaskPriority = Literal["low", "normal", "high", "urgent"]


class TaskCreateAction(_Action):
    """Create a CRM task, optionally related to the event's contact, deal or email."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "type": "task.create",
                    "title": "Call {{contact.first_name}}",
                    "due": "{{date_add_days:7}}",
                    "priority": "high",
                    "contact_id": "{{contact.contact_id}}",
                }
            ]
        },
    )

    type: Literal["task.create"]
    title: Annotated[TemplateLine, Field(min_length=1, max_length=1000)]
    description: Annotated[TemplateText, Field(max_length=20_000)] | None = None
    due: Annotated[TemplateLine, Field(max_length=200)] | None = Field(
        default=None, description="Renders to an ISO date or date-time, e.g. `{{date_add_days:7}}`"
    )
    priority: TaskPriority = "normal"
    assignee: Annotated[TemplateLine, Field(max_length=500)] | None = Field(
        default=None, description="The user (`sub`) to assign; default: the rule's owner"
    )
    contact_id: Annotated[TemplateLine, Field(max_length=200)] | None = None
    deal_id: Annotated[TemplateLine, Field(max_length=200)] | None = None
    email_id: Annotated[TemplateLine, Field(max_length=200)] | None = None


class TaskDraft(Model):
    """A task as the action would create it (the CRM tasks issue turns it into a record)."""

    model_config = ConfigDict(extra="forbid")

    title: Annotated[SingleLine, Field(min_length=1, max_length=200)]
    description: Annotated[MultiLine, Field(max_length=10_000)] | None = None
    due: date | datetime | None = None
    priority: TaskPriority = "normal"
    assignee: Annotated[SingleLine, Field(min_length=1, max_length=200)] | None = None
    contact_id: str | None = Field(default=None, pattern=CONTACT_ID.pattern)
    deal_id: str | None = Field(default=None, pattern=DEAL_ID.pattern)
    email_id: str | None = Field(default=None, pattern=r"^em_[0-9a-f]{26}$")


def build_task(action: TaskCreateAction, context: RenderContext) -> TaskDraft:
    def blank_is_none(source: str | None) -> str | None:
        return (context.optional(source) or "").strip() or None

    return _validated(
        TaskDraft,
        {
            "title": context.text(action.title),
            "description": blank_is_none(action.description),
            "due": blank_is_none(action.due),
            "priority": action.priority,
            "assignee": blank_is_none(action.assignee),
            "contact_id": blank_is_none(action.contact_id),
            "deal_id": blank_is_none(action.deal_id),
            "email_id": blank_is_none(action.email_id),
        },
    )


# ------------------------------------------------------------------------------- deal.update


class DealUpdateAction(_Action):
    """Change fields of a deal (`PATCH /crm/deals/{id}` semantics, without a version check)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"type": "deal.update", "deal_id": "{{deal.deal_id}}", "fields": {"stage": "qualified"}}
            ]
        },
    )

    type: Literal["deal.update"]
    deal_id: Annotated[TemplateLine, Field(max_length=200)] = "{{deal.deal_id}}"
    fields: dict[
        Literal["name", "stage", "amount", "currency", "owner", "close_date"],
        Annotated[TemplateLine, Field(max_length=1000)],
    ] = Field(min_length=1, description="Field -> template; an empty rendering clears the field")


def build_deal_update(action: DealUpdateAction, context: RenderContext) -> tuple[str, DealPatch]:
    deal_id = context.text(action.deal_id).strip()
    if not DEAL_ID.fullmatch(deal_id):
        raise ActionError(
            "the deal id does not name a deal", details=[{"loc": ["deal_id"], "type": "pattern"}]
        )
    changes: dict[str, Any] = {
        name: (context.text(source).strip() or None) for name, source in action.fields.items()
    }
    return deal_id, _validated(DealPatch, changes)


# ------------------------------------------------------------------------------- webhook.publish


class WebhookPublishAction(_Action):
    """POST a signed JSON body to an endpoint (see `mailbridge.automations.signing`)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "type": "webhook.publish",
                    "url": "https://hooks.example.com/mailbridge",
                    "secret_ref": "crm-hook",
                    "payload": {"email": "{{contact.email}}", "tags": "{{contact.tags | join(',')}}"},
                }
            ]
        },
    )

    type: Literal["webhook.publish"]
    url: OutboundUrl
    secret_ref: Name = Field(description="The name of the endpoint's stored signing secret")
    payload: PayloadTemplate = Field(
        default=None, description="JSON whose strings are templates; null sends the event data"
    )


def build_webhook(
    action: WebhookPublishAction,
    context: RenderContext,
    *,
    endpoint_secrets: Sequence[str],
    delivery_id: str,
    event_type: str | None,
) -> SignedRequest:
    """The signed request; `delivery_id` is the action's idempotency key, stable across retries."""
    payload = dict(context.data) if action.payload is None else context.value(action.payload)
    return build_webhook_request(
        url=action.url,
        payload=payload,
        endpoint_secrets=endpoint_secrets,
        delivery_id=delivery_id,
        timestamp=int(context.now.timestamp()),
        event_type=event_type,
    )


# ------------------------------------------------------------------------------- http.openapi


class HttpOpenApiAction(_Action):
    """Call one operation of an OpenAPI document the tenant registered."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "type": "http.openapi",
                    "document_id": "billing-api",
                    "operation_id": "createCustomer",
                    "parameters": {"email": "{{contact.email}}"},
                    "body": {"name": "{{contact.first_name}}"},
                }
            ]
        },
    )

    type: Literal["http.openapi"]
    document_id: Name
    operation_id: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")
    parameters: dict[
        Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\[\]-]{1,128}$")],
        Annotated[TemplateLine, Field(max_length=2000)],
    ] = Field(
        default_factory=dict, max_length=50, description="Parameter name (path, query, header) -> template"
    )
    body: PayloadTemplate = None


class OpenApiCall(Model):
    document_id: str
    operation_id: str
    parameters: dict[str, str]
    body: JsonValue = None


def build_openapi_call(action: HttpOpenApiAction, context: RenderContext) -> OpenApiCall:
    return OpenApiCall(
        document_id=action.document_id,
        operation_id=action.operation_id,
        parameters={name: context.text(source) for name, source in action.parameters.items()},
        body=None if action.body is None else context.value(action.body),
    )


# ------------------------------------------------------------------------------- queue.enqueue


class QueueEnqueueAction(_Action):
    """Send a JSON message to an SQS queue the tenant registered (by its registered name)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"type": "queue.enqueue", "queue": "new-leads", "message": {"email": "{{contact.email}}"}}
            ]
        },
    )

    type: Literal["queue.enqueue"]
    queue: str = Field(pattern=r"^[A-Za-z0-9_-]{1,80}$", description="A queue name the tenant registered")
    message: PayloadTemplate = Field(
        default=None, description="JSON whose strings are templates; null: the event"
    )
    message_group_id: Annotated[TemplateLine, Field(max_length=500)] | None = Field(
        default=None, description="For a FIFO queue"
    )


class QueueMessage(Model):
    queue: str
    body: str
    message_group_id: str | None = None


def build_queue_message(action: QueueEnqueueAction, context: RenderContext) -> QueueMessage:
    message = dict(context.data) if action.message is None else context.value(action.message)
    body = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    group = context.optional(action.message_group_id)
    if len(body.encode()) > SQS_MAX_BYTES:
        raise ActionError(
            "the message is larger than SQS's 256 KiB", details=[{"loc": ["message"], "type": "too_large"}]
        )
    if group is not None and not (1 <= len(group) <= 128 and group.isascii() and group.isprintable()):
        raise ActionError(
            "a message group id is 1-128 printable ASCII characters",
            details=[{"loc": ["message_group_id"], "type": "invalid"}],
        )
    return QueueMessage(queue=action.queue, body=body, message_group_id=group)


# ------------------------------------------------------------------------------- message.post


class MessagePostAction(_Action):
    """Post a text message to a Slack or Microsoft Teams incoming webhook (`{"text": ...}`)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "type": "message.post",
                    "url": "https://hooks.slack.com/services/T000/B000/XXXX",
                    "text": "New lead: {{contact.email}}",
                }
            ]
        },
    )

    type: Literal["message.post"]
    url: OutboundUrl
    text: Annotated[TemplateText, Field(min_length=1, max_length=40_000)]


class OutboundPost(Model):
    url: str
    body: bytes
    content_type: str = "application/json"


def build_message_post(action: MessagePostAction, context: RenderContext) -> OutboundPost:
    text = context.text(action.text)
    if not text.strip():
        raise ActionError("the message is empty", details=[{"loc": ["text"], "type": "empty"}])
    return OutboundPost(url=action.url, body=json.dumps({"text": text}, ensure_ascii=False).encode())


# ------------------------------------------------------------------------------- analytics.track

MetricUnit = Literal["Count", "None", "Percent", "Seconds", "Milliseconds", "Bytes"]


class AnalyticsTrackAction(_Action):
    """Record a point of a tenant metric (CloudWatch: name <= 255, <= 30 dimensions)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "type": "analytics.track",
                    "metric": "leads.created",
                    "value": 1,
                    "dimensions": {"source": "{{contact.source}}"},
                }
            ]
        },
    )

    type: Literal["analytics.track"]
    metric: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,254}$")
    value: float | Annotated[TemplateLine, Field(max_length=500)] = 1
    unit: MetricUnit = "Count"
    dimensions: dict[
        Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,254}$")],
        Annotated[TemplateLine, Field(max_length=500)],
    ] = Field(default_factory=dict, max_length=30)


class MetricPoint(Model):
    metric: str
    value: float
    unit: MetricUnit
    dimensions: dict[str, str]


def build_metric(action: AnalyticsTrackAction, context: RenderContext) -> MetricPoint:
    raw = action.value if isinstance(action.value, float | int) else context.text(action.value)
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ActionError(
            "the metric value is not a number", details=[{"loc": ["value"], "type": "float_parsing"}]
        )
    dimensions = {name: context.text(source).strip() for name, source in action.dimensions.items()}
    if any(not 1 <= len(v) <= 1024 for v in dimensions.values()):
        raise ActionError(
            "a dimension value is 1-1024 characters",
            details=[{"loc": ["dimensions"], "type": "string_length"}],
        )
    return MetricPoint(metric=action.metric, value=value, unit=action.unit, dimensions=dimensions)


# ------------------------------------------------------------------------------- ai.generate


class AiGenerateAction(_Action):
    """Generate text for an email with the tenant's local AI (`mailbridge.ai.suggest`):
    `reply_suggestions` (up to three short replies, none for mail nobody answers) or `summary`
    (an extractive summary). The result is the step's output in the run record. Needs the
    tenant's `ai` flag (`feature_disabled` otherwise)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"type": "ai.generate", "task": "reply_suggestions"},
                {"type": "ai.generate", "task": "summary", "email_id": "{{email_id}}"},
            ]
        },
    )

    type: Literal["ai.generate"]
    task: Literal["reply_suggestions", "summary"] = "reply_suggestions"
    email_id: Annotated[TemplateLine, Field(min_length=1, max_length=500)] = Field(
        default="{{email_id}}", description="The email (default: the triggering email event's `email_id`)"
    )


class AiGenerateRequest(Model):
    task: Literal["reply_suggestions", "summary"]
    email_id: str


def build_ai_generate(action: AiGenerateAction, context: RenderContext) -> AiGenerateRequest:
    """The email id rendered; ActionError `invalid_action` when it is not an email id."""
    from mailbridge.emails import EMAIL_ID

    email_id = context.text(action.email_id).strip()
    if not EMAIL_ID.fullmatch(email_id):
        raise ActionError("the email id is not valid", details=[{"loc": ["email_id"], "type": "email_id"}])
    return AiGenerateRequest(task=action.task, email_id=email_id)


# ------------------------------------------------------------------------------- the union

Action = Annotated[
    EmailSendAction
    | TaskCreateAction
    | DealUpdateAction
    | WebhookPublishAction
    | HttpOpenApiAction
    | QueueEnqueueAction
    | MessagePostAction
    | AnalyticsTrackAction
    | AiGenerateAction,
    Field(discriminator="type"),
]

ACTION_MODELS: dict[str, type[_Action]] = {
    "email.send": EmailSendAction,
    "task.create": TaskCreateAction,
    "deal.update": DealUpdateAction,
    "webhook.publish": WebhookPublishAction,
    "http.openapi": HttpOpenApiAction,
    "queue.enqueue": QueueEnqueueAction,
    "message.post": MessagePostAction,
    "analytics.track": AnalyticsTrackAction,
    "ai.generate": AiGenerateAction,
}
AVAILABLE = dict.fromkeys(ACTION_MODELS, True)

_ACTIONS: TypeAdapter[list[Action]] = TypeAdapter(Annotated[list[Action], Field(max_length=MAX_ACTIONS)])


def parse_actions(raw: Any) -> list[Action]:
    """Validate a rule's action list on save; raises ActionError (see the module doc)."""
    try:
        return _ACTIONS.validate_python(raw)
    except ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "type": e["type"]} for e in exc.errors(include_input=False)]
        unavailable = any(e["type"] == "action_not_available" for e in errors)
        raise ActionError(
            "an action is not available" if unavailable else "the actions are not valid",
            code="action_not_available" if unavailable else "invalid_action",
            details=errors,
        ) from None


def action_schemas() -> dict[str, dict[str, Any]]:
    """Each action type's JSON Schema for the rule builder, with `x-available`."""
    return {
        name: {**model.model_json_schema(), "x-available": AVAILABLE[name]}
        for name, model in ACTION_MODELS.items()
    }


def _validated(model: type[_M], values: dict[str, Any]) -> _M:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "type": e["type"]} for e in exc.errors(include_input=False)]
        raise ActionError("the rendered action is not valid", details=errors) from None


BUILDERS: dict[str, Callable[..., Any]] = {
    "email.send": build_email,
    "task.create": build_task,
    "deal.update": build_deal_update,
    "webhook.publish": build_webhook,
    "http.openapi": build_openapi_call,
    "queue.enqueue": build_queue_message,
    "message.post": build_message_post,
    "analytics.track": build_metric,
    "ai.generate": build_ai_generate,
}
