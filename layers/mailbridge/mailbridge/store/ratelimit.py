"""Per-tenant fixed-window rate limits: the one limiter of the code base (calendar writes and ICS,
automation rule saves, AI requests).

A window is `window_seconds` long (one minute by default) and starts at a multiple of it since the
epoch. Each (tenant, bucket, window) has one counter item `pk = TENANT#{tenant}`,
`sk = RATE#{bucket}#{window number}` in the table the limiter is given (one with TTL on `ttl`: the
item expires two minutes after its window). Taking one use is a single conditional `UpdateItem`
(`ADD uses :one` while `uses < limit`), so concurrent callers can never pass the limit together and
a refused call counts nothing. A refusal is `RateLimited` (429 `rate_limited`) with `retry_after`,
the seconds to the next window, which the API sends as Retry-After (RFC 9110 section 10.2.3).

A tenant's overrides (settings table, `sk = RATELIMITS`, `RateLimitSettingsStore`) replace the
figure a caller passes for a bucket: the api function reads them once per request and holds them
for that request (`use_overrides`), so every limiter the request reaches (the route class the api
entry counts, or the calendar/AI/automation limits a service counts) applies the tenant's figure.
Outside an API request (queue consumers) the callers' figures apply.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING

from mailbridge.errors import RateLimited
from mailbridge.store.base import DynamoRepository, is_condition_failure, tenant_pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

WINDOW_SECONDS = 60
KEEP_SECONDS = 120  # the counter outlives its window a little; TTL deletion is not instant anyway


OVERRIDES_SK = "RATELIMITS"

# (tenant, bucket -> uses a minute) of the request being served; None outside an API request.
_OVERRIDES: ContextVar[tuple[str, Mapping[str, int]] | None] = ContextVar("rate_overrides", default=None)


def rate_sk(bucket: str, window: int) -> str:
    return f"RATE#{bucket}#{window}"


def use_overrides(tenant_id: str | None, overrides: Mapping[str, int]) -> None:
    """Hold `tenant_id`'s overrides for the request being served (None: no tenant, no overrides)."""
    _OVERRIDES.set((tenant_id, dict(overrides)) if tenant_id is not None else None)


def effective_limit(tenant_id: str, bucket: str, limit: int) -> int:
    """`limit`, or the tenant's override of `bucket` held for this request."""
    held = _OVERRIDES.get()
    if held is None or held[0] != tenant_id:
        return limit
    return held[1].get(bucket, limit)


OVERRIDES_CACHE_SECONDS = 30.0
"""How long a container keeps a tenant's overrides before reading them again: one GetItem per
tenant per container every 30 s instead of one per request. A `PUT /settings/rate-limits` served
by the same container applies at once; other containers see it within this time."""
OVERRIDES_CACHE_TENANTS = 1024
"""Tenants a container keeps overrides for; past it the cache starts again (bounded memory)."""


class RateLimitSettingsStore(DynamoRepository):
    """A tenant's rate-limit overrides: one item `sk = RATELIMITS` in the settings table,
    `limits` = bucket -> uses a minute. `cached_overrides` keeps them per container for
    `OVERRIDES_CACHE_SECONDS` (the api entry reads them on every request)."""

    def __init__(
        self,
        table_name: str,
        table: Table | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(table_name, table)
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, dict[str, int]]] = {}

    def get_overrides(self, tenant_id: str) -> dict[str, int]:
        item = self.get(tenant_pk(tenant_id), OVERRIDES_SK)
        limits = (item or {}).get("limits") or {}
        return {str(bucket): int(value) for bucket, value in limits.items()}

    def cached_overrides(self, tenant_id: str) -> dict[str, int]:
        """`get_overrides`, read at most once per `OVERRIDES_CACHE_SECONDS` per tenant."""
        now = self._monotonic()
        held = self._cache.get(tenant_id)
        if held is not None and now - held[0] < OVERRIDES_CACHE_SECONDS:
            return held[1]
        overrides = self.get_overrides(tenant_id)
        self._remember(tenant_id, overrides, now)
        return overrides

    def _remember(self, tenant_id: str, overrides: dict[str, int], now: float) -> None:
        if len(self._cache) >= OVERRIDES_CACHE_TENANTS and tenant_id not in self._cache:
            self._cache.clear()
        self._cache[tenant_id] = (now, dict(overrides))

    def save_overrides(
        self, tenant_id: str, limits: Mapping[str, int], *, updated_by: str, now: datetime
    ) -> None:
        self.table.put_item(
            Item={
                "pk": tenant_pk(tenant_id),
                "sk": OVERRIDES_SK,
                "limits": dict(limits),
                "updated_by": updated_by,
                "updated_at": now.isoformat(),
            }
        )
        self._remember(tenant_id, dict(limits), self._monotonic())


class RateLimiter(DynamoRepository):
    def __init__(self, table_name: str, table: Table | None = None) -> None:
        super().__init__(table_name, table)

    def take(
        self,
        tenant_id: str,
        bucket: str,
        limit: int,
        now: datetime,
        *,
        window_seconds: int = WINDOW_SECONDS,
        what: str = "of these calls",
    ) -> None:
        """Count one use of `bucket` by the tenant in the window holding `now`; `RateLimited` (and
        nothing counted) when `limit` uses (or the tenant's override, see `use_overrides`) are
        already in. `what` names the calls in the message."""
        limit = effective_limit(tenant_id, bucket, limit)
        moment = now.timestamp()
        window = int(moment // window_seconds)
        expires = (window + 1) * window_seconds + KEEP_SECONDS
        try:
            self.table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": rate_sk(bucket, window)},
                UpdateExpression="ADD uses :one SET #ttl = :ttl",
                ConditionExpression="attribute_not_exists(uses) OR uses < :limit",
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues={":one": 1, ":limit": limit, ":ttl": expires},
            )
        except Exception as exc:
            if not is_condition_failure(exc):
                raise
            retry_after = (window + 1) * window_seconds - moment
            raise RateLimited(
                f"at most {limit} {what} a minute per tenant; try again shortly",
                retry_after=max(1.0, retry_after),
                details={"limit": limit, "window_seconds": window_seconds},
            ) from exc
