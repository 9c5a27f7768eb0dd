"""WebSocket connections and the notifier's fan-out (issue 15 point 5).

`connect` checks the `$connect` token (mailbridge.realtime.tokens) and records the connection under
the tenant and user (`sub`) of its claims; `disconnect` forgets it. `notify` sends one bus event to
its user's open connections as a text frame `{"type": <detail-type>, "detail": {id, occurred_at,
**data}}` and deletes the connections API Gateway answers 410 Gone for (@connections API,
PostToConnection). The user is `data.user_id` where the event names one (`notification.created`),
else the owner (`created_by`) of the mailbox `data.account_id` (`email.received`, `email.updated`,
`account.reauth_required`, `account.sync_status_changed`). Connections are read under the event's
own `tenant_id` only.

Frames are hints that something changed, not the record: a client re-reads through the HTTP API.
A failed post other than Gone is logged and skipped (the next change sends a fresh hint), so one
bad connection never holds back the others. The fan-out runs once per `delivery_key` when the
caller passes a `guard` (the notifier: a Powertools idempotency record), so a redelivered event
posts nothing again (at-least-once delivery; DESIGN: consumers dedupe on `idempotency_key`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from mailbridge.errors import NotFound, Unauthorized
from mailbridge.realtime.models import BusEvent, Delivery, PostOutcome
from mailbridge.realtime.tokens import KeySource, verify
from mailbridge.tenancy import TenantContext, tenant_from_claims


class Connections(Protocol):
    def add(self, tenant_id: str, user_id: str, connection_id: str, connected_at: datetime) -> None: ...
    def connections(self, tenant_id: str, user_id: str, now: datetime) -> list[str]: ...
    def remove(self, tenant_id: str, user_id: str, connection_id: str) -> None: ...
    def remove_by_id(self, connection_id: str) -> None: ...


class Owners(Protocol):
    def owner(self, tenant_id: str, account_id: str) -> str: ...


class Poster(Protocol):
    def post(self, connection_id: str, data: bytes) -> PostOutcome:
        """Send `data` as one frame: `gone` when API Gateway answers 410."""
        ...


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ConnectDeps:
    connections: Connections
    keys: KeySource
    issuer: str
    audience: Sequence[str]
    now: Callable[[], datetime] = _now


@dataclass(frozen=True)
class NotifyDeps:
    connections: Connections
    owners: Owners
    poster: Poster
    now: Callable[[], datetime] = _now


def connect(connection_id: str, token: str | None, deps: ConnectDeps) -> TenantContext:
    """Record `connection_id` for the token's tenant and user.

    Errors: `Unauthorized` `missing_token` (no bearer header, no `token` parameter) or
    `invalid_token`; `Forbidden` `no_tenant` / `no_role` (claims the HTTP API refuses too)."""
    if token is None:
        raise Unauthorized("a bearer token is required", code="missing_token")
    ctx = tenant_from_claims(verify(token, deps.issuer, deps.audience, deps.keys))
    deps.connections.add(ctx.tenant_id, ctx.subject, connection_id, deps.now())
    return ctx


def disconnect(connection_id: str, deps: ConnectDeps) -> None:
    deps.connections.remove_by_id(connection_id)


def recipient(event: BusEvent, owners: Owners) -> str | None:
    """The user the event is for, or None (no user named, or the mailbox is gone)."""
    data = event.detail.data
    user_id = data.get("user_id")
    if isinstance(user_id, str) and user_id:
        return user_id
    account_id = data.get("account_id")
    if not isinstance(account_id, str) or not account_id:
        return None
    try:
        return owners.owner(event.detail.tenant_id, account_id)
    except NotFound:
        return None


def frame(event: BusEvent) -> bytes:
    detail: dict[str, Any] = {"id": event.detail.id, "occurred_at": event.detail.occurred_at}
    detail.update(event.detail.data)
    return json.dumps(
        {"type": event.detail_type, "detail": detail}, separators=(",", ":"), default=str
    ).encode()


Guard = Callable[[str, Callable[[], Delivery]], Delivery]
"""`guard(key, fan_out)`: runs `fan_out` the first time `key` is seen and answers its Delivery;
for a key seen before it posts nothing and answers an empty Delivery."""


def delivery_key(event: BusEvent, user_id: str) -> str | None:
    """What makes one fan-out: tenant, user, detail-type and the event's `idempotency_key` (its
    `id` without one); None for an event with neither. The user is part of it: the same email
    received by two users' mailboxes is one `email.received:{email_id}` key announced twice, one
    for each owner."""
    business_key = event.detail.idempotency_key or event.detail.id
    if not business_key:
        return None
    return "\n".join((event.detail.tenant_id, user_id, event.detail_type, business_key))


def notify(event: BusEvent, deps: NotifyDeps, guard: Guard | None = None) -> Delivery:
    """Post the event to its user's connections in its tenant, once per `delivery_key` with a
    `guard`; delete the connections that are gone."""
    user_id = recipient(event, deps.owners)
    if user_id is None:
        return Delivery()
    key = delivery_key(event, user_id)
    if guard is None or key is None:
        return _fan_out(event, user_id, deps)
    return guard(key, lambda: _fan_out(event, user_id, deps))


def _fan_out(event: BusEvent, user_id: str, deps: NotifyDeps) -> Delivery:
    tenant_id = event.detail.tenant_id
    data = frame(event)
    delivery = Delivery()
    for connection_id in deps.connections.connections(tenant_id, user_id, deps.now()):
        outcome = deps.poster.post(connection_id, data)
        if outcome == "gone":
            deps.connections.remove(tenant_id, user_id, connection_id)
            delivery.gone += 1
        elif outcome == "posted":
            delivery.posted += 1
        else:
            delivery.failed += 1
    return delivery
