"""HubSpot's API rate limits and the headers that report them.

Sources: HubSpot "API usage guidelines and limits" [D: limits per app per account, 429 when
exceeded]; changelog "Rate limit headers will now appear for OAuth authenticated calls" [D:
OAuth-authenticated calls get X-HubSpot-RateLimit-* headers but not X-HubSpot-RateLimit-Daily /
-Daily-Remaining, "because there is no daily limit for these calls"]; changelog 2018-11-06 [D:
the header names]. Numbers [R]: a public (OAuth) app gets 110 requests every 10 seconds per
installed account; a private app on a Free/Starter account 100 per 10 s and 250,000 a day; the
CRM search endpoints allow 5 requests per second per account and their answers carry no
rate-limit headers. HubSpot documents no Retry-After on its API 429s, so none is sent. Daily
limits reset at midnight (UTC here; HubSpot uses the account's time zone [R]).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from local.hubspot.errors import RateLimited

PUBLIC_APP_PER_10S = 110
PRIVATE_APP_PER_10S = 100
PRIVATE_APP_DAILY = 250_000
SEARCH_PER_SECOND = 5
INTERVAL = timedelta(seconds=10)


@dataclass
class RateLimits:
    per_interval: int = PUBLIC_APP_PER_10S
    daily: int | None = None  # None: an OAuth (public) app, no daily limit and no daily headers
    search_per_second: int = SEARCH_PER_SECOND
    interval: timedelta = INTERVAL
    _recent: deque[datetime] = field(default_factory=deque)
    _search: deque[datetime] = field(default_factory=deque)
    _day: tuple[object, int] = (None, 0)
    rejected: int = 0

    def _used(self, now: datetime) -> int:
        while self._recent and self._recent[0] <= now - self.interval:
            self._recent.popleft()
        return len(self._recent)

    def _daily_used(self, now: datetime) -> int:
        day, count = self._day
        return count if day == now.date() else 0

    def headers(self, now: datetime) -> dict[str, str]:
        out = {
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self.interval.total_seconds() * 1000)),
            "X-HubSpot-RateLimit-Max": str(self.per_interval),
            "X-HubSpot-RateLimit-Remaining": str(max(0, self.per_interval - self._used(now))),
        }
        if self.daily is not None:
            out["X-HubSpot-RateLimit-Daily"] = str(self.daily)
            out["X-HubSpot-RateLimit-Daily-Remaining"] = str(max(0, self.daily - self._daily_used(now)))
        return out

    def charge(self, now: datetime, search: bool = False) -> dict[str, str]:
        """Count one request or raise the 429; returns the headers for the answer (none for search)."""
        if search:
            while self._search and self._search[0] <= now - timedelta(seconds=1):
                self._search.popleft()
            if len(self._search) >= self.search_per_second:
                self.rejected += 1
                raise RateLimited("SECONDLY")
            self._search.append(now)
            return {}
        if self.daily is not None and self._daily_used(now) >= self.daily:
            self.rejected += 1
            raise RateLimited("DAILY", self.headers(now))
        if self._used(now) >= self.per_interval:
            self.rejected += 1
            raise RateLimited("TEN_SECONDLY_ROLLING", self.headers(now))
        self._recent.append(now)
        self._day = (now.date(), self._daily_used(now) + 1)
        return self.headers(now)
