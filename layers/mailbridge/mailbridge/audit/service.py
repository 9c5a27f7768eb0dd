"""Write and read the audit log.

`record(deps, entry)` is the one writer: the API's audit hook calls it after every audited
request, and services call it for actions of their own (a read of another user's message body:
`record(audit_deps(), AuditEntry(...))`). It never raises: the audit write comes after the work is
done, so a failed write must not turn a done request into an error. It is logged (ids and the
error type only) and counted as the `AuditWriteFailed` metric (no alarm on it yet); the
request's answer stands. One PutItem per call, conditional on the key being new (append-only).

The key is `{at}#{request_id}`: a service entry written during a request the hook also audits
(GET /emails/{id} is an audited read) gives its own `request_id`, e.g. `f"{request_id}:body-read"`,
or the two could take the same key within one millisecond.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mailbridge.audit.models import AuditEntry, AuditPage, AuditRecord, Outcome, iso_ms
from mailbridge.errors import Invalid
from mailbridge.observability import logger, metrics
from mailbridge.store.base import tenant_pk

if TYPE_CHECKING:
    from mailbridge.store.audit import AuditStore
    from mailbridge.tenancy import TenantContext

WRITE_FAILED_METRIC = "AuditWriteFailed"


@dataclass(frozen=True)
class AuditDeps:
    store: AuditStore


def to_item(entry: AuditEntry) -> dict[str, Any]:
    """The table item of an entry (store/audit.py documents the shape); empty values are left out."""
    from mailbridge.store.audit import audit_sk

    at = entry.at_iso()
    item: dict[str, Any] = {
        "pk": tenant_pk(entry.tenant_id),
        "sk": audit_sk(at, entry.request_id),
        "tenant_id": entry.tenant_id,
        "at": at,
        "actor": entry.actor,
        "action": entry.action,
        "kind": entry.kind,
        "status": entry.status,
        "outcome": entry.outcome,
        "request_id": entry.request_id,
        "user_agent_family": entry.user_agent_family,
    }
    if entry.resource_ids:
        item["resource_ids"] = dict(entry.resource_ids)
        item["resource_list"] = sorted(set(entry.resource_ids.values()))
    for name in ("role", "error_code", "network"):
        value = getattr(entry, name)
        if value:
            item[name] = value
    return item


def record(deps: AuditDeps, entry: AuditEntry) -> bool:
    """Append `entry`; True when stored. Never raises (see the module docstring)."""
    try:
        deps.store.append(to_item(entry))
    except Exception as exc:  # noqa: BLE001 - the request's work is done; the failure is counted
        from aws_lambda_powertools.metrics import MetricUnit

        logger.error(
            "audit write failed",
            extra={
                "tenant_id": entry.tenant_id,
                "audit_action": entry.action,
                "request_id": entry.request_id,
                "error_type": type(exc).__name__,
            },
        )
        metrics.add_metric(name=WRITE_FAILED_METRIC, unit=MetricUnit.Count, value=1)
        return False
    return True


def _record_of(item: dict[str, Any]) -> AuditRecord:
    return AuditRecord(
        at=str(item["at"]),
        actor=str(item["actor"]),
        role=item.get("role"),
        action=str(item["action"]),
        kind=item["kind"],
        resource_ids={str(k): str(v) for k, v in (item.get("resource_ids") or {}).items()},
        outcome=item["outcome"],
        status=int(item["status"]),
        error_code=item.get("error_code"),
        network=item.get("network"),
        user_agent_family=str(item.get("user_agent_family") or "none"),
        request_id=str(item["request_id"]),
    )


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return iso_ms(value if value.tzinfo else value.replace(tzinfo=UTC))


def list_entries(
    ctx: TenantContext,
    deps: AuditDeps,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
    resource_id: str | None = None,
    outcome: Outcome | None = None,
    cursor: str | None = None,
    limit: int,
) -> AuditPage:
    """The caller's tenant's entries, newest first, filtered (a time without offset is UTC);
    400 `invalid_time_range` when `since` is after `until`, 400 `invalid_cursor`."""
    low, high = _iso(since), _iso(until)
    if low is not None and high is not None and low > high:
        raise Invalid("`since` is after `until`", code="invalid_time_range")
    items, next_cursor = deps.store.page(
        ctx.tenant_id,
        since=low,
        until=high,
        actor=actor,
        action=action,
        resource_id=resource_id,
        outcome=outcome,
        cursor=cursor,
        limit=limit,
    )
    return AuditPage(items=[_record_of(item) for item in items], next_cursor=next_cursor)
