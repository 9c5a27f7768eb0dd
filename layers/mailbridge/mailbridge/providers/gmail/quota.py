"""A per-account budget of Gmail quota units, spent before each call.

Gmail counts 15,000 quota units per user per minute (`userRateLimitExceeded` beyond it) and
charges each method a fixed number of units (the "Usage limits" page as copied into notes.md
[D]: getProfile 1, labels.list 1, history.list 2, messages.list/get/modify 5, batchModify 50,
send 100; [R] watch 100, stop 50). The budget counts over a rolling minute, like the double and
like a moving average would, and refuses a call that would go over with ProviderRateLimited
whose `retry_after` is the time until enough units have left the window: no call is made that
Google would refuse, and the caller (the sync) puts its work back with that delay instead of
looping.

When Google refuses anyway (429, or 403 `userRateLimitExceeded` / `rateLimitExceeded`: another
client of the same user spends from the same quota), the budget blocks every call of the
account until `Retry-After` when Google sends one, else for a truncated exponential backoff:
min(2**(n-1) s + up to 1 s of jitter, 64 s) after the n-th refusal in a row (Google Cloud's
"truncated exponential backoff" retry strategy, maximum_backoff 64 s; the Gmail guide says to
retry 429/403 rate-limit errors with exponential backoff). A successful call resets n.

One budget per account per process (`budget_for`); an account's sync runs in one SyncQueue
message group at a time, so one process spends an account's quota at any moment in practice.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable

from mailbridge import opsmetrics
from mailbridge.errors import ProviderRateLimited

USER_UNITS_PER_MINUTE = 15_000
WINDOW_SECONDS = 60.0
BACKOFF_CAP_SECONDS = 64.0
DEFAULT_UNITS = 5  # a method the table does not list: the common cost

UNITS: dict[str, int] = {
    "users.getProfile": 1,
    "users.labels.list": 1,
    "users.labels.get": 1,
    "users.history.list": 2,
    "users.messages.list": 5,
    "users.messages.get": 5,
    "users.messages.attachments.get": 5,
    "users.messages.modify": 5,
    "users.messages.batchModify": 50,
    "users.messages.trash": 5,
    "users.messages.untrash": 5,
    "users.messages.send": 100,
    "users.messages.insert": 25,
    "users.messages.import": 25,
    "users.watch": 100,
    "users.stop": 50,
    "users.drafts.create": 10,
    "users.drafts.update": 15,
    "users.drafts.delete": 10,
    "users.drafts.send": 100,
}


def cost(method: str) -> int:
    return UNITS.get(method, DEFAULT_UNITS)


class QuotaBudget:
    """Rolling-minute quota units of one Gmail user, thread-safe."""

    def __init__(
        self,
        units_per_minute: int = USER_UNITS_PER_MINUTE,
        *,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.units_per_minute = units_per_minute
        self._clock = clock
        self._jitter = jitter
        self._lock = threading.Lock()
        self._spent: deque[tuple[float, int]] = deque()
        self._blocked_until = 0.0
        self._refusals = 0

    def _expire(self, now: float) -> None:
        while self._spent and self._spent[0][0] <= now - WINDOW_SECONDS:
            self._spent.popleft()

    def used(self) -> int:
        """Units spent in the last minute."""
        with self._lock:
            self._expire(self._clock())
            return sum(units for _, units in self._spent)

    def spend(self, method: str) -> None:
        """Count `method`'s units now, or raise ProviderRateLimited(retry_after) without counting."""
        units = cost(method)
        with self._lock:
            now = self._clock()
            if now < self._blocked_until:
                raise ProviderRateLimited(
                    "Gmail asked us to slow down for this mailbox", retry_after=self._blocked_until - now
                )
            self._expire(now)
            used = sum(spent for _, spent in self._spent)
            if used + units > self.units_per_minute:
                opsmetrics.provider_throttled("gmail", "budget")
                raise ProviderRateLimited(
                    "the mailbox's Gmail quota for this minute is spent",
                    retry_after=self._wait_for(units, used, now),
                )
            self._spent.append((now, units))

    def _wait_for(self, units: int, used: int, now: float) -> float:
        """Seconds until `units` fit: the oldest spends leave the window one by one."""
        for at, spent in self._spent:
            used -= spent
            if used + units <= self.units_per_minute:
                return max(0.0, at + WINDOW_SECONDS - now)
        return WINDOW_SECONDS

    def refused(self, retry_after: float | None) -> float:
        """Google refused a call for rate: block the account's calls; returns the delay chosen."""
        with self._lock:
            self._refusals += 1
            if retry_after is None:
                retry_after = min(2.0 ** (self._refusals - 1) + self._jitter(), BACKOFF_CAP_SECONDS)
            self._blocked_until = max(self._blocked_until, self._clock() + retry_after)
            return retry_after

    def succeeded(self) -> None:
        with self._lock:
            self._refusals = 0


_budgets: dict[str, QuotaBudget] = {}
_budgets_lock = threading.Lock()


def budget_for(key: str) -> QuotaBudget:
    """The process's budget of one account (`key`: tenant and account id)."""
    with _budgets_lock:
        budget = _budgets.get(key)
        if budget is None:
            budget = _budgets[key] = QuotaBudget()
        return budget
