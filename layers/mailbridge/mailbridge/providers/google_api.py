"""What every Google API adapter shares (Gmail, Google Calendar, People).

- `TokenSource`: `force_refresh -> bearer access token` (`mailbridge.oauth.tokens.token_source`).
- `http_client()`: one pooled httpx client per process (30 s read, 5 s connect, no proxies from
  the environment); the hosts are deployment settings, never tenant input, so the SSRF-guarded
  client of `providers/http.py` is not needed.
- `error_reason(body)`: the reason of a Google JSON error body (`error.errors[0].reason`, else
  `error.status`; developers.google.com/workspace/gmail/api/guides/handle-errors), "" when none.
- `RATE_LIMIT_REASONS`: the 403 reasons that mean "rate limited" (`rateLimitExceeded`,
  `userRateLimitExceeded`; same guide), handled like a 429.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import httpx

TokenSource = Callable[[bool], str]
"""force_refresh -> a bearer access token."""

TIMEOUT = httpx.Timeout(30.0, connect=5.0)
RATE_LIMIT_REASONS = frozenset({"userRateLimitExceeded", "rateLimitExceeded"})


@lru_cache(maxsize=1)
def http_client() -> httpx.Client:
    """One pooled client per process, shared by every account's adapter (thread-safe)."""
    return httpx.Client(
        timeout=TIMEOUT,
        trust_env=False,
        limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
    )


def error_reason(body: dict[str, Any]) -> str:
    """`error.errors[0].reason`, else `error.status`, else "" (a Google JSON error body)."""
    error = body.get("error")
    if not isinstance(error, dict):
        return ""
    errors = error.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("reason") or "")
    return str(error.get("status") or "")
