"""Per-tenant rate limits of the calendar (the seed's figures): 20 event writes and 5 ICS imports
or exports a minute.

A fixed one-minute window per tenant and bucket on the shared limiter (`store.ratelimit`: one
conditional counter update in the calendar table, which expires by TTL after its window). A refused
call is `RateLimited` 429 `rate_limited` with `retry_after` (seconds to the next window), which the
API sends as Retry-After (RFC 9110 section 10.2.3). The refused call counts nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from mailbridge.store.ratelimit import WINDOW_SECONDS, RateLimiter

Bucket = Literal["event_writes", "ics"]
LIMITS: dict[Bucket, int] = {"event_writes": 20, "ics": 5}
__all__ = ["LIMITS", "WINDOW_SECONDS", "Bucket", "RateLimits"]


@dataclass
class RateLimits:
    limiter: RateLimiter
    now: Callable[[], datetime]
    limits: dict[Bucket, int] | None = None

    def check(self, tenant_id: str, bucket: Bucket) -> None:
        """Count one call; `RateLimited` when the tenant used the bucket up in this minute."""
        limit = (self.limits or LIMITS)[bucket]
        self.limiter.take(tenant_id, bucket, limit, self.now())
