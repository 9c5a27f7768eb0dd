"""A per-account budget of Outlook requests, taken before each call.

Outlook's limits per app ID and mailbox (graph/throttling-limits "Outlook service limits", as
copied into notes.md [D]): 10,000 API requests in a 10 minute period and 4 concurrent requests;
requests inside a JSON batch count one by one, and a batch reaches Outlook at most 4 at a time.
The budget keeps both: `take(n)` counts `n` requests over a rolling 10 minutes and holds up to
4 concurrency slots until the `Slot` is released. A request that would go over the window is
refused with ProviderRateLimited whose `retry_after` is the time until the window has room, so
no call is sent that Graph would refuse and the caller (the sync) puts its work back with that
delay instead of looping. The concurrency slots are waited for (the adapter's own threads are
the only contenders in one process), for at most `slot_wait` seconds.

When Graph refuses anyway (429: another client of the same mailbox spends from the same limit)
the budget blocks every call of the account until `Retry-After` when Graph sends one, else for a
truncated exponential backoff min(2**(n-1) s + up to 1 s of jitter, 64 s) after the n-th refusal
in a row (notes.md: "If the header is missing, back off exponentially"). A success resets n.

One budget per account per process (`budget_for`); an account's sync runs in one SyncQueue
message group at a time.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType

from mailbridge import opsmetrics
from mailbridge.errors import ProviderRateLimited

REQUESTS_PER_WINDOW = 10_000
WINDOW_SECONDS = 600.0
CONCURRENT_REQUESTS = 4
BACKOFF_CAP_SECONDS = 64.0
SLOT_WAIT_SECONDS = 30.0


class Slot:
    """Concurrency slots held for one call (or one batch); release them when it answered."""

    def __init__(self, budget: RequestBudget, count: int) -> None:
        self._budget, self._count = budget, count

    def release(self) -> None:
        if self._count:
            self._budget._release(self._count)
            self._count = 0

    def __enter__(self) -> Slot:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class RequestBudget:
    """Rolling-window request count and concurrency slots of one Outlook mailbox, thread-safe."""

    def __init__(
        self,
        requests_per_window: int = REQUESTS_PER_WINDOW,
        *,
        window: float = WINDOW_SECONDS,
        concurrent: int = CONCURRENT_REQUESTS,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
        slot_wait: float = SLOT_WAIT_SECONDS,
    ) -> None:
        self.requests_per_window = requests_per_window
        self.window = window
        self.concurrent = concurrent
        self.slot_wait = slot_wait
        self._clock = clock
        self._jitter = jitter
        self._lock = threading.Condition()
        self._sent: deque[float] = deque()
        self._in_flight = 0
        self._blocked_until = 0.0
        self._refusals = 0
        self.peak_in_flight = 0

    def _expire(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - self.window:
            self._sent.popleft()

    def used(self) -> int:
        """Requests counted in the current window."""
        with self._lock:
            self._expire(self._clock())
            return len(self._sent)

    def take(self, requests: int = 1) -> Slot:
        """Count `requests` now and hold min(requests, 4) concurrency slots, or raise
        ProviderRateLimited(retry_after) without counting anything."""
        slots = min(max(requests, 1), self.concurrent)
        with self._lock:
            now = self._clock()
            if now < self._blocked_until:
                raise ProviderRateLimited(
                    "Graph asked us to slow down for this mailbox", retry_after=self._blocked_until - now
                )
            self._expire(now)
            if len(self._sent) + requests > self.requests_per_window:
                opsmetrics.provider_throttled("graph", "budget")
                raise ProviderRateLimited(
                    "the mailbox's Graph requests for this 10-minute window are spent",
                    retry_after=self._wait_for(requests, now),
                )
            if not self._lock.wait_for(
                lambda: self._in_flight + slots <= self.concurrent, timeout=self.slot_wait
            ):
                raise ProviderRateLimited(
                    "every Graph request slot of this mailbox stayed busy", retry_after=1.0
                )
            self._sent.extend([now] * requests)
            self._in_flight += slots
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
            return Slot(self, slots)

    def _release(self, count: int) -> None:
        with self._lock:
            self._in_flight -= count
            self._lock.notify_all()

    def _wait_for(self, requests: int, now: float) -> float:
        """Seconds until `requests` fit: the oldest leave the window first."""
        leaving = len(self._sent) + requests - self.requests_per_window
        if leaving > len(self._sent):
            return self.window
        return max(0.0, self._sent[leaving - 1] + self.window - now)

    def refused(self, retry_after: float | None) -> float:
        """Graph refused a call for rate: block the account's calls; returns the delay chosen."""
        with self._lock:
            self._refusals += 1
            if retry_after is None:
                retry_after = min(2.0 ** (self._refusals - 1) + self._jitter(), BACKOFF_CAP_SECONDS)
            self._blocked_until = max(self._blocked_until, self._clock() + retry_after)
            return retry_after

    def succeeded(self) -> None:
        with self._lock:
            self._refusals = 0


_budgets: dict[str, RequestBudget] = {}
_budgets_lock = threading.Lock()


def budget_for(key: str) -> RequestBudget:
    """The process's budget of one account (`key`: tenant and account id)."""
    with _budgets_lock:
        budget = _budgets.get(key)
        if budget is None:
            budget = _budgets[key] = RequestBudget()
        return budget
