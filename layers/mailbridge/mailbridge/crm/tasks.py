"""CRM tasks: create, read, list, change, complete and delete; and the hourly due-soon scan.

Plain functions over the models in `mailbridge.crm.models` (re-exported here: `TaskCreate`,
`Task`), like contacts and deals in `mailbridge.crm.service`: members write, viewers read, every
related id must name a record of the tenant (400 `unknown_contact` / `unknown_company` /
`unknown_deal` / `unknown_email`).

Events (`detail.data` in brackets):
- `task.created` {task}: once per task; a create repeated with the same `idempotency_key`
  returns the first task and publishes nothing.
- `task.completed` {task, completed_at}: when `status` goes from `open` to `done` (a repeated
  `done` changes nothing and publishes nothing). A task about a contact or deal also gets a
  `task_done` activity on their logs, written in the same transaction as the task.
- `activity.due_soon` {task, due}: once per task and due time, by `announce_due_soon` (hourly
  schedule) for open tasks due in the next 24 hours; a new due time is announced again.
  Consumers dedupe on the idempotency key `activity.due_soon:{task_id}:{due}`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from mailbridge.bus import DomainEvent, EventPublisher
from mailbridge.crm.models import (
    TASK_ID,
    TASK_PREFIX,
    Activity,
    Task,
    TaskCreate,
    TaskFields,
    TaskPatch,
    new_id,
)
from mailbridge.crm.service import (
    Clock,
    _check_company,
    _event,
    _merged,
    _meta,
    _not_found,
    _publish,
    _require_changes,
    _utcnow,
    update_with_retry,
)
from mailbridge.errors import Conflict, Invalid
from mailbridge.store.crm import CrmStore
from mailbridge.store.pagination import Page
from mailbridge.tenancy import Role, TenantContext

__all__ = [
    "DUE_SOON_WINDOW",
    "EmailExists",
    "Task",
    "TaskCreate",
    "TaskPatch",
    "announce_due_soon",
    "create_task",
    "delete_task",
    "get_task",
    "list_tasks",
    "task_id_for_key",
    "update_task",
]

DUE_SOON_WINDOW = timedelta(hours=24)
MAX_IDEMPOTENCY_KEY = 512

EmailExists = Callable[[str, str], bool]
"""(tenant_id, email_id) -> whether the tenant has that email (the emails table)."""


def task_id_for_key(tenant_id: str, key: str) -> str:
    """The task id an idempotency key stands for: the same key in the same tenant is the same
    task, so a retried create finds the first one (a conditional put on this id)."""
    digest = hashlib.sha256(f"{tenant_id}\x00{key}".encode()).hexdigest()
    return f"{TASK_PREFIX}{digest[:26]}"


def check_related(
    ctx: TenantContext, store: CrmStore, fields: dict[str, Any], email_exists: EmailExists | None
) -> None:
    """Every related id the caller set names a record of the tenant (400 otherwise)."""
    if fields.get("company_id"):
        _check_company(ctx, store, fields["company_id"])
    contact_id = fields.get("contact_id")
    if contact_id and store.get_contact(ctx.tenant_id, contact_id) is None:
        raise Invalid(
            "contact_id names no contact", code="unknown_contact", details={"contact_id": contact_id}
        )
    deal_id = fields.get("deal_id")
    if deal_id and store.get_deal(ctx.tenant_id, deal_id) is None:
        raise Invalid("deal_id names no deal", code="unknown_deal", details={"deal_id": deal_id})
    email_id = fields.get("email_id")
    if email_id and email_exists is not None and not email_exists(ctx.tenant_id, email_id):
        raise Invalid("email_id names no email", code="unknown_email", details={"email_id": email_id})


def _task_data(task: Task) -> dict[str, Any]:
    return {"task": task.model_dump(mode="json", exclude={"due_soon_for"})}


def create_task(
    ctx: TenantContext,
    body: TaskCreate,
    store: CrmStore,
    publisher: EventPublisher | None = None,
    now: Clock = _utcnow,
    *,
    idempotency_key: str | None = None,
    email_exists: EmailExists | None = None,
) -> Task:
    """A new open task (assignee: the caller, unless set), and `task.created`.

    `idempotency_key` (1-512 characters): the same key in the same tenant returns the task created
    the first time and publishes nothing again (the task id is derived from the key, the create
    is conditional on it). A key whose task was deleted since creates it again.
    `email_exists` checks `email_id` (without it, only the id's shape is checked)."""
    ctx.require(Role.MEMBER)
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
        raise Invalid("the idempotency key must be 1-512 characters", code="invalid_idempotency_key")
    task_id = task_id_for_key(ctx.tenant_id, idempotency_key) if idempotency_key else new_id(TASK_PREFIX)
    if idempotency_key is not None:
        # A retry answers with the first task even if a related record went away since.
        first = store.get_task(ctx.tenant_id, task_id)
        if first is not None:
            return first
    fields = body.model_dump()
    check_related(ctx, store, fields, email_exists)
    fields["assignee"] = fields["assignee"] or ctx.subject
    task = Task.model_validate({**fields, "task_id": task_id, "status": "open", **_meta(ctx, now())})
    try:
        store.create_task(ctx.tenant_id, task)
    except Conflict as exc:
        if idempotency_key is None or exc.code != "exists":
            raise
        first = store.get_task(ctx.tenant_id, task_id)  # a concurrent create with the key won
        if first is None:  # and its task was deleted since
            raise
        return first
    _publish(publisher, [_event(ctx, "task.created", f"task.created:{task_id}", _task_data(task))])
    return task


def get_task(ctx: TenantContext, task_id: str, store: CrmStore) -> Task:
    task = store.get_task(ctx.tenant_id, task_id) if TASK_ID.fullmatch(task_id) else None
    if task is None:
        raise _not_found("task")
    return task


def list_tasks(
    ctx: TenantContext,
    store: CrmStore,
    *,
    status: str | None = None,
    assignee: str | None = None,
    due_before: datetime | None = None,
    contact_id: str | None = None,
    deal_id: str | None = None,
    cursor: str | None = None,
    limit: int,
) -> Page[Task]:
    """Soonest due first, tasks without a due date last; `due_before` (exclusive) leaves those out."""
    from mailbridge.store.conditions import Attr

    conditions = [
        Attr(name).eq(value)
        for name, value in (
            ("status", status),
            ("assignee", assignee),
            ("contact_id", contact_id),
            ("deal_id", deal_id),
        )
        if value
    ]
    if due_before is not None:
        try:
            due_before = due_before.astimezone(UTC)
        except OverflowError:  # a year-1 or year-9999 bound: before or after every stored date
            latest, earliest = datetime.max.replace(tzinfo=UTC), datetime.min.replace(tzinfo=UTC)
            due_before = latest if due_before.year > 1 else earliest
    combined = None
    for condition in conditions:
        combined = condition if combined is None else combined & condition
    items, next_cursor = store.list_tasks(
        ctx.tenant_id, due_before=due_before, filters=combined, cursor=cursor, limit=limit
    )
    return Page[Task](items=items, next_cursor=next_cursor)


def _task_done_activity(ctx: TenantContext, task: Task) -> Activity | None:
    """The `task_done` activity of a completion (a deterministic id per task version), or None
    for a task about no contact or deal."""
    if not (task.contact_id or task.deal_id) or task.completed_at is None:
        return None
    digest = hashlib.sha256(f"task_done\x00{task.task_id}\x00{task.version}".encode()).hexdigest()
    return Activity(
        activity_id=f"ac_{digest[:26]}",
        kind="task_done",
        body=task.title,
        occurred_at=task.completed_at,
        contact_id=task.contact_id,
        deal_id=task.deal_id,
        company_id=task.company_id,
        task_id=task.task_id,
        created_at=task.completed_at,
        created_by=ctx.subject,
    )


def update_task(
    ctx: TenantContext,
    task_id: str,
    patch: TaskPatch,
    store: CrmStore,
    publisher: EventPublisher | None = None,
    now: Clock = _utcnow,
    *,
    email_exists: EmailExists | None = None,
) -> Task:
    """Change a task; `status: done` completes it (`completed_at`, `task.completed` once, a
    `task_done` activity), `status: open` reopens it. A changed due time may be announced again."""
    ctx.require(Role.MEMBER)
    changes = _require_changes(patch.changes())
    status = changes.pop("status", None) if "status" in changes else None
    if "status" in patch.model_fields_set and status is None:
        raise Invalid("status cannot be cleared; set open or done", code="invalid_record")
    check_related(ctx, store, changes, email_exists)

    def apply(current: Task) -> Task | None:
        fields = _merged(current, TaskFields, changes) if changes else None
        new_status = status or current.status
        if fields is None and new_status == current.status:
            return None
        merged = fields.model_dump() if fields else current.model_dump(include=set(TaskFields.model_fields))
        at = now()
        completed_at = current.completed_at
        if new_status != current.status:
            completed_at = at if new_status == "done" else None
        return Task.model_validate(
            {
                **merged,
                "task_id": task_id,
                "status": new_status,
                "completed_at": completed_at,
                "due_soon_for": current.due_soon_for,  # a new due time differs from it: announced again
                **_meta(ctx, at, current),
            }
        )

    def save(new: Task, old: Task) -> None:
        completing = old.status == "open" and new.status == "done"
        store.update_task(ctx.tenant_id, new, old, _task_done_activity(ctx, new) if completing else None)

    before, after = update_with_retry(
        lambda: get_task(ctx, task_id, store), apply, save, expected_version=patch.version
    )
    if after is before:
        return after
    events = [
        _event(
            ctx,
            "task.updated",
            f"task.updated:{task_id}:{after.version}",
            {**_task_data(after), "changed": sorted(_changed_fields(before, after))},
        )
    ]
    if before.status == "open" and after.status == "done":
        events.append(
            _event(
                ctx,
                "task.completed",
                f"task.completed:{task_id}:{after.version}",
                {**_task_data(after), "completed_at": after.model_dump(mode="json")["completed_at"]},
            )
        )
    _publish(publisher, events)
    return after


def _changed_fields(before: Task, after: Task) -> set[str]:
    names = {*TaskFields.model_fields, "status"}
    return {n for n in names if getattr(before, n) != getattr(after, n)}


def delete_task(ctx: TenantContext, task_id: str, store: CrmStore) -> None:
    ctx.require(Role.MEMBER)
    store.delete_task(ctx.tenant_id, get_task(ctx, task_id, store))


# ---------------------------------------------------------------------------------- due soon


def announce_due_soon(store: CrmStore, publisher: EventPublisher, now: Clock = _utcnow) -> int:
    """Publish `activity.due_soon` for every open task (all tenants) due within the next
    `DUE_SOON_WINDOW`, then mark it so the next run skips it. Returns how many were announced.

    Publish first, mark second: a run that stops in between announces again on the next run, with
    the same idempotency key (`activity.due_soon:{task_id}:{due}`), which consumers dedupe on.
    A task whose due time changed since it was read is not marked (the next run sees the new one).
    """
    start = now()
    announced = 0
    for tenant_id, task in store.tasks_coming_due(start, start + DUE_SOON_WINDOW):
        assert task.due is not None
        data = _task_data(task)
        event = DomainEvent(
            detail_type="activity.due_soon",
            tenant_id=tenant_id,
            idempotency_key=f"activity.due_soon:{task.task_id}:{task.due.isoformat()}",
            data={**data, "due": data["task"]["due"]},
        )
        publisher.publish([event])
        store.mark_due_soon(tenant_id, task)
        announced += 1
    return announced
