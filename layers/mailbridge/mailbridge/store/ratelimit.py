"""Per-tenant fixed-window rate limits: the one limiter of the code base (calendar writes and ICS,
automation rule saves, AI requests).

A window is `window_seconds` long (one minute by default) and starts at a multiple of it since the
epoch. Each (tenant, bucket, window) has one counter item `pk = TENANT#{tenant}`,
`sk = RATE#{bucket}#{window number}` in the table the limiter is given (one with TTL on `ttl`: the
item expires two minutes after its window). Taking one use is a single conditional `UpdateItem`
(`ADD uses :one` while `uses < limit`), so concurrent callers can never pass the limit together and
a refused call counts nothing. A refusal is `RateLimited` (429 `rate_limited`) with `retry_after`,
the seconds to the next window, which the API sends as Retry-After (RFC 9110 section 10.2.3).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from mailbridge.errors import RateLimited
from mailbridge.store.base import DynamoRepository, is_condition_failure, tenant_pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

WINDOW_SECONDS = 60
KEEP_SECONDS = 120  # the counter outlives its window a little; TTL deletion is not instant anyway


def rate_sk(bucket: str, window: int) -> str:
    return f"RATE#{bucket}#{window}"


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
        nothing counted) when `limit` uses are already in. `what` names the calls in the message."""
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
