"""What each action does when a run reaches it: `(action, step) -> (input after templating, output)`.

Every executor builds its request with the pure builder of `mailbridge.automations.actions`,
then, unless `step.dry_run`, performs it through the part of the system that owns it:

| type | performed by | output |
|---|---|---|
| `email.send` | `outbox.service.queue_send` from the chosen account, as the owner | `{email_id, status}` |
| `deal.update` | `crm.service.update_deal` (its events carry the automation chain) | `{deal_id, version}` |
| `task.create` | `crm.tasks.create_task` (injectable; imported on use) | `{task_id}` |
| `webhook.publish` | `providers.http.request`, signed (`signing.py`; delivery id: the key) | `{status}` |
| `message.post` | `providers.http.request` (`{"text": ...}`) | `{status}` |
| `analytics.track` | a per tenant/day metric item, and an `analytics.tracked` event | `{metric, value}` |
| `http.openapi` | `providers.http.request` to the operation of the registered document | `{status, body}` |
| `queue.enqueue` | SQS SendMessage to the queue the tenant registered under that name | `{message_id}` |
| `ai.generate` | `ai.suggest.suggest_replies` / `summarize_email` (`ai` flag on) | `{..., suggestions}` |

An endpoint answering 4xx (other than 429) fails the action for good
(`webhook_rejected`); 429, 5xx and connection failures are retryable (`providers.http`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from mailbridge.automations import actions as a
from mailbridge.automations.errors import ActionError
from mailbridge.automations.execution import ChainPublisher, Executor, StepContext
from mailbridge.bus import DomainEvent
from mailbridge.store.automations import AutomationStore

TaskCreator = Callable[..., Any]
"""`create_task(ctx, body: TaskCreate, store, publisher, *, idempotency_key)` (crm.tasks)."""


@dataclass
class ExecutorDeps:
    store: AutomationStore
    outbox: Callable[[], Any] | None = None
    """Returns `OutboxDeps` (built on first use)."""
    crm_store: Callable[[], Any] | None = None
    create_task: TaskCreator | None = None
    task_store: Callable[[], Any] | None = None
    http_request: Callable[..., Any] | None = None
    local_mode: bool = False
    sqs: Callable[[], Any] | None = None
    """Returns the SQS client `queue.enqueue` sends with (default: `aws.sqs()`)."""
    ai: Callable[[], Any] | None = None
    """Returns `(SuggestDeps, FeatureStore)` for `ai.generate` (built on first use)."""


class Executors:
    """The executor of each action type over `deps`; `table()` maps type -> executor."""

    def __init__(self, deps: ExecutorDeps) -> None:
        self.deps = deps

    def table(self) -> dict[str, Executor]:
        return {
            "email.send": self.email_send,
            "deal.update": self.deal_update,
            "task.create": self.task_create,
            "webhook.publish": self.webhook_publish,
            "message.post": self.message_post,
            "analytics.track": self.analytics_track,
            "queue.enqueue": self.queue_enqueue,
            "http.openapi": self.http_openapi,
            "ai.generate": self.ai_generate,
        }

    def email_send(self, action: a.EmailSendAction, step: StepContext) -> tuple[Any, Any]:
        request = a.build_email(action, step.render)
        given = request.model_dump(mode="json", exclude_none=True)
        if step.dry_run:
            return given, {"would": "queue the email in the outbox"}
        from mailbridge.outbox.service import queue_send

        assert self.deps.outbox is not None
        # The run's chain rides on the email to its email.sent event (loop protection)
        chain = step.publisher.chain if isinstance(step.publisher, ChainPublisher) else None
        accepted = queue_send(step.ctx, request, self.deps.outbox(), automation=chain)
        return given, {"email_id": accepted.email_id, "status": accepted.status}

    def deal_update(self, action: a.DealUpdateAction, step: StepContext) -> tuple[Any, Any]:
        deal_id, patch = a.build_deal_update(action, step.render)
        given = {"deal_id": deal_id, "changes": patch.model_dump(mode="json", exclude_unset=True)}
        if step.dry_run:
            return given, {"would": "update the deal"}
        from mailbridge.crm.service import update_deal

        assert self.deps.crm_store is not None
        deal = update_deal(step.ctx, deal_id, patch, self.deps.crm_store(), step.publisher)
        return given, {"deal_id": deal.deal_id, "version": deal.version, "stage": deal.stage}

    def task_create(self, action: a.TaskCreateAction, step: StepContext) -> tuple[Any, Any]:
        draft = a.build_task(action, step.render)
        if draft.assignee is None:
            draft = draft.model_copy(update={"assignee": step.ctx.subject})
        given = draft.model_dump(mode="json", exclude_none=True)
        if step.dry_run:
            return given, {"would": "create the task"}
        create = self.deps.create_task or _crm_create_task()
        store = self.deps.crm_store() if self.deps.crm_store else None
        task = create(step.ctx, draft, store, step.publisher, idempotency_key=step.idempotency_key)
        return given, {"task_id": getattr(task, "task_id", None)}

    def webhook_publish(self, action: a.WebhookPublishAction, step: StepContext) -> tuple[Any, Any]:
        secrets = self.deps.store.get_secrets(step.ctx.tenant_id, action.secret_ref)
        if not secrets:
            raise ActionError("the webhook's signing secret is not registered", code="secret_not_found")
        request = a.build_webhook(
            action,
            step.render,
            endpoint_secrets=secrets,
            delivery_id=step.idempotency_key,
            event_type=step.event_type,
        )
        given = {"url": request.url, "headers": request.headers, "body": request.body.decode()}
        if step.dry_run:
            return given, {"would": "POST the signed body"}
        return given, self._post(step, request.url, request.body, request.headers)

    def message_post(self, action: a.MessagePostAction, step: StepContext) -> tuple[Any, Any]:
        post = a.build_message_post(action, step.render)
        given = {"url": post.url, "body": post.body.decode()}
        if step.dry_run:
            return given, {"would": "POST the message"}
        return given, self._post(step, post.url, post.body, {"Content-Type": post.content_type})

    def analytics_track(self, action: a.AnalyticsTrackAction, step: StepContext) -> tuple[Any, Any]:
        point = a.build_metric(action, step.render)
        given = point.model_dump(mode="json")
        if step.dry_run:
            return given, {"would": "record the metric point"}
        day = step.render.now.date().isoformat()
        self.deps.store.add_metric(step.ctx.tenant_id, day, point.metric, point.value)
        if step.publisher is not None:
            step.publisher.publish(
                [
                    DomainEvent(
                        detail_type="analytics.tracked",
                        tenant_id=step.ctx.tenant_id,
                        idempotency_key=f"analytics.tracked:{step.idempotency_key}",
                        data=given,
                    )
                ]
            )
        return given, {"metric": point.metric, "value": point.value, "day": day}

    def queue_enqueue(self, action: a.QueueEnqueueAction, step: StepContext) -> tuple[Any, Any]:
        message = a.build_queue_message(action, step.render)
        url = self.deps.store.get_queue(step.ctx.tenant_id, message.queue)
        if url is None:
            raise ActionError("no queue is registered under this name", code="queue_not_registered")
        given = {"queue": message.queue, "queue_url": url, "body": message.body}
        if message.message_group_id is not None:
            given["message_group_id"] = message.message_group_id
        if step.dry_run:
            return given, {"would": "send the message"}
        from mailbridge import aws
        from mailbridge.errors import QueueSendError

        client = self.deps.sqs() if self.deps.sqs else aws.sqs()
        args: dict[str, Any] = {"QueueUrl": url, "MessageBody": message.body}
        if message.message_group_id is not None:
            # FIFO: the action's key dedupes a retried send within SQS's 5-minute window.
            args |= {"MessageGroupId": message.message_group_id, "MessageDeduplicationId": _dedupe_id(step)}
        try:
            sent = client.send_message(**args)
        except Exception as exc:
            raise QueueSendError("the message could not be queued") from exc
        return given, {"message_id": sent["MessageId"]}

    def http_openapi(self, action: a.HttpOpenApiAction, step: StepContext) -> tuple[Any, Any]:
        from mailbridge.automations.openapi import build_operation

        call = a.build_openapi_call(action, step.render)
        document = self.deps.store.get_openapi(step.ctx.tenant_id, call.document_id)
        if document is None:
            raise ActionError("no OpenAPI document is registered under this id", code="openapi_not_found")
        request = build_operation(document, call.operation_id, call.parameters, call.body)
        given = {
            "method": request.method,
            "url": request.url,
            "headers": request.headers,
            "body": None if request.body is None else request.body.decode(),
        }
        if step.dry_run:
            return given, {"would": "call the operation"}
        response = self._send(step, request.method, request.url, request.body, request.headers)
        text = response.body[:10_000].decode(errors="replace")
        try:
            answer: Any = json.loads(text)
        except ValueError:
            answer = text
        return given, {"status": response.status, "body": answer}

    def ai_generate(self, action: a.AiGenerateAction, step: StepContext) -> tuple[Any, Any]:
        request = a.build_ai_generate(action, step.render)
        given = request.model_dump(mode="json")
        if step.dry_run:
            return given, {"would": f"generate the {request.task.replace('_', ' ')}"}
        from mailbridge.ai.service import ai_enabled
        from mailbridge.ai.suggest import suggest_replies, summarize_email
        from mailbridge.errors import NotFound

        if self.deps.ai is None:
            raise ActionError("AI is not available here", code="action_not_available")
        deps, features = self.deps.ai()
        if not ai_enabled(step.ctx.tenant_id, features):
            raise ActionError("the ai feature is switched off for this tenant", code="feature_disabled")
        try:
            if request.task == "summary":
                return given, {**given, "summary": summarize_email(step.ctx, request.email_id, deps)}
            return given, {**given, "suggestions": suggest_replies(step.ctx, request.email_id, deps)}
        except NotFound:
            raise ActionError("the email does not exist", code="email_not_found") from None

    def _post(self, step: StepContext, url: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
        return {"status": self._send(step, "POST", url, body, headers).status}

    def _send(
        self, step: StepContext, method: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> Any:
        """One guarded call (`providers.http`): https only, public addresses only, and only the
        tenant's allowed hosts when it set any (`PUT /automations/outbound-hosts`)."""
        from mailbridge.providers.http import HttpPolicy, request

        send = self.deps.http_request or request
        hosts = self.deps.store.get_outbound_hosts(step.ctx.tenant_id)
        policy = HttpPolicy(allowed_hosts=frozenset(hosts) or None, local_mode=self.deps.local_mode)
        response = send(method, url, policy=policy, headers=headers, content=body)
        if response.status >= 400:
            raise ActionError(
                "the endpoint refused the request",
                code="webhook_rejected",
                details={"status": response.status},
            )
        return response


def default_executors(deps: ExecutorDeps) -> dict[str, Executor]:
    return Executors(deps).table()


def _crm_create_task() -> TaskCreator:
    """`mailbridge.crm.tasks.create_task`, adapted to take the action's TaskDraft (imported on
    first use: the CRM service is not needed by rules without a task action)."""
    from mailbridge.crm import tasks

    def create(ctx: Any, draft: a.TaskDraft, store: Any, publisher: Any, *, idempotency_key: str) -> Any:
        fields = draft.model_dump(exclude_none=True)
        fields["due"] = _task_due(draft.due)
        body = tasks.TaskCreate.model_validate({k: v for k, v in fields.items() if v is not None})
        return tasks.create_task(ctx, body, store, publisher, idempotency_key=idempotency_key)

    return create


def _task_due(due: date | datetime | None) -> datetime | None:
    """A task's due instant from the action's rendered `due`: a date (`{{date_add_days:7}}`) is
    due at the start of that day in UTC, a time without an offset is read as UTC (tasks store
    aware UTC instants)."""
    if due is None:
        return None
    if not isinstance(due, datetime):
        return datetime(due.year, due.month, due.day, tzinfo=UTC)
    return due if due.tzinfo is not None else due.replace(tzinfo=UTC)


def _dedupe_id(step: StepContext) -> str:
    import hashlib

    return hashlib.sha256(step.idempotency_key.encode()).hexdigest()
