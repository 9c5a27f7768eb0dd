"""Per-tenant rate limits of the calendar (the seed's figures): 20 event writes and 5 ICS imports
or exports a minute.

A fixed one-minute window per tenant and bucket: one conditional counter update in the calendar
table (`CalendarStore.count`), which expires by TTL after its window. A refused call is
`RateLimited` 429 `rate_limited` with `retry_after` (seconds to the next window), which the API
sends as Retry-After (RFC 9110 section 10.2.3). The refused call counts nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from mailbridge.errors import RateLimited
from mailbridge.store.calendar import CalendarStore

Bucket = Literal["event_writes", "ics"]
LIMITS: dict[Bucket, int] = {"event_writes": 20, "ics": 5}
WINDOW_SECONDS = 60
_KEEP_SECONDS = 120  # the counter outlives its window a little; TTL deletion is not instant anyway


@dataclass
class RateLimits:
    store: CalendarStore
    now: Callable[[], datetime]
    limits: dict[Bucket, int] | None = None

    def check(self, tenant_id: str, bucket: Bucket) -> None:
        """Count one call; `RateLimited` when the tenant used the bucket up in this minute."""
        limit = (self.limits or LIMITS)[bucket]
        moment = self.now().timestamp()
        window = int(moment // WINDOW_SECONDS)
        expires = (window + 1) * WINDOW_SECONDS + _KEEP_SECONDS
        if not self.store.count(tenant_id, bucket, window, limit=limit, expires_at=expires):
            retry_after = (window + 1) * WINDOW_SECONDS - moment
            raise RateLimited(
                f"at most {limit} of these calls a minute per tenant; try again shortly",
                retry_after=max(1.0, retry_after),
                details={"limit": limit, "window_seconds": WINDOW_SECONDS},
            )
