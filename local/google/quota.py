"""Per-user quota units and injectable faults.

Costs: Gmail "Usage limits" page (developers.google.com/workspace/gmail/api/reference/quota) as
copied into notes.md [D] (getProfile 1, labels.get/list 1, history.list 2, messages.get/list/
attachments.get/modify 5, messages.import/insert 25, messages.batchModify 50, messages.send 100);
the rest from the same page read from memory [R] (watch 100, stop 50, threads.get/list 10,
messages.delete 10, messages.trash/untrash 5, labels.create 5). The per-user limit is 15,000 units
per user per minute [D], counted here over a rolling minute of the double's clock.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from local.google.errors import backend_error, user_rate_limited

COSTS: dict[str, int] = {
    "users.getProfile": 1,
    "users.watch": 100,
    "users.stop": 50,
    "users.history.list": 2,
    "users.labels.list": 1,
    "users.labels.get": 1,
    "users.labels.create": 5,
    "users.messages.list": 5,
    "users.messages.get": 5,
    "users.messages.attachments.get": 5,
    "users.messages.modify": 5,
    "users.messages.batchModify": 50,
    "users.messages.trash": 5,
    "users.messages.untrash": 5,
    "users.messages.delete": 10,
    "users.messages.send": 100,
    "users.messages.insert": 25,
    "users.messages.import": 25,
    "users.threads.get": 10,
    "users.drafts.create": 10,
    "users.drafts.update": 15,
    "users.drafts.delete": 10,
    "users.drafts.get": 5,
    "users.drafts.list": 5,
    "users.drafts.send": 100,
}
USER_UNITS_PER_MINUTE = 15_000
WINDOW = timedelta(minutes=1)


@dataclass
class Quota:
    """Rolling-minute quota per user; `status` picks Google's 403 or 429 per-user answer."""

    units_per_minute: int = USER_UNITS_PER_MINUTE
    status: int = 403
    enabled: bool = True
    _spent: dict[str, deque[tuple[datetime, int]]] = field(default_factory=lambda: defaultdict(deque))
    rejected: int = 0

    def used(self, user: str, now: datetime) -> int:
        spent = self._spent[user]
        while spent and spent[0][0] <= now - WINDOW:
            spent.popleft()
        return sum(units for _, units in spent)

    def charge(self, user: str, method: str, now: datetime) -> None:
        """Count the call's units, or raise the per-user rate-limit error (nothing is counted then)."""
        units = COSTS.get(method, 5)
        if self.enabled and self.used(user, now) + units > self.units_per_minute:
            self.rejected += 1
            raise user_rate_limited(self.status)
        self._spent[user].append((now, units))


@dataclass
class Faults:
    """The next N calls of a method fail with a 5xx `backendError` (Gmail "Resolve errors" [D])."""

    _pending: dict[str, deque[int]] = field(default_factory=lambda: defaultdict(deque))

    def fail_next(self, method: str, count: int = 1, status: int = 500) -> None:
        if status not in (500, 502, 503, 504):
            raise ValueError("faults are server errors: 500, 502, 503 or 504")
        self._pending[method].extend([status] * count)

    def check(self, method: str) -> None:
        pending = self._pending.get(method)
        if pending:
            raise backend_error(pending.popleft())

    def clear(self) -> None:
        self._pending.clear()
