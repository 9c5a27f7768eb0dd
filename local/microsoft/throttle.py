"""Outlook's per-app, per-mailbox limits, injectable faults, and holds for concurrency tests.

Limits [D: graph/throttling-limits "Outlook service limits", as copied into notes.md]: per app ID
and mailbox, 10,000 API requests in a 10 minute period, 4 concurrent requests, 150 MB of upload
(PATCH, POST, PUT) in 5 minutes. "Avoid immediate retries, because all requests accrue against
your usage limits" [D: graph/throttling], so refused requests count too.

Answers:
* over the request rate: `429` with `Retry-After` (seconds until the window has room again) and
  the body of providers/msgraph/throttling_429.http (`TooManyRequests`, innerError with `code`
  "429", `status` "429", "Please retry after") [D/R];
* over the concurrency or upload limit: `429`, `{"error": {"code": "ApplicationThrottled",
  "message": "Application is over its MailboxConcurrency limit."}}` (or "IncomingBytes") with no
  innerError and no Retry-After, as clients report them [R: alcionai/corso #3695,
  magodo/terraform-provider-outlook #21, O365/python-o365 #500]; a client then backs off on its own.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from local.microsoft.errors import GraphError, service_unavailable

REQUESTS_PER_WINDOW = 10_000
REQUEST_WINDOW = timedelta(minutes=10)
CONCURRENT_REQUESTS = 4
UPLOAD_BYTES = 150 * 1024 * 1024
UPLOAD_WINDOW = timedelta(minutes=5)
HOLD_TIMEOUT = 30.0  # a held request gives up after this long (real seconds) so a broken test cannot hang


def rate_limited(retry_after: int) -> GraphError:
    return GraphError(
        429,
        "TooManyRequests",
        "Please retry again later.",
        headers={"Retry-After": str(retry_after)},
        inner={"code": "429", "message": "Please retry after", "status": "429"},
    )


def application_throttled(limit: str) -> GraphError:
    return GraphError(
        429, "ApplicationThrottled", f"Application is over its {limit} limit.", with_inner=False
    )


@dataclass
class Hold:
    """Requests to one mailbox wait (holding their concurrency slot) until `release()`."""

    event: threading.Event = field(default_factory=threading.Event)
    waiting: int = 0
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def release(self) -> None:
        self.event.set()

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Block until `count` requests are being held (for a test to line them up)."""
        with self.arrived:
            return self.arrived.wait_for(lambda: self.waiting >= count, timeout=timeout)


@dataclass
class Throttle:
    requests_per_window: int = REQUESTS_PER_WINDOW
    window: timedelta = REQUEST_WINDOW
    concurrent: int = CONCURRENT_REQUESTS
    upload_bytes: int = UPLOAD_BYTES
    upload_window: timedelta = UPLOAD_WINDOW
    enabled: bool = True
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _requests: dict[tuple[str, str], deque[datetime]] = field(default_factory=lambda: defaultdict(deque))
    _uploads: dict[tuple[str, str], deque[tuple[datetime, int]]] = field(
        default_factory=lambda: defaultdict(deque)
    )
    _in_flight: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    holds: dict[str, Hold] = field(default_factory=dict)
    throttled: int = 0

    def enter(self, app: str, mailbox: str, now: datetime, upload: int) -> None:
        """Take a slot for one request, or raise the 429 Outlook answers (the request still counts)."""
        key = (app, mailbox.lower())
        with self._lock:
            requests = self._requests[key]
            while requests and requests[0] <= now - self.window:
                requests.popleft()
            requests.append(now)
            if not self.enabled:
                self._in_flight[key] += 1
                return
            if len(requests) > self.requests_per_window:
                self.throttled += 1
                # Room again once the oldest (len - limit) requests have left the window.
                opens = requests[len(requests) - self.requests_per_window - 1] + self.window
                raise rate_limited(max(1, math.ceil((opens - now).total_seconds())))
            if self._in_flight[key] >= self.concurrent:
                self.throttled += 1
                raise application_throttled("MailboxConcurrency")
            if upload:
                uploads = self._uploads[key]
                while uploads and uploads[0][0] <= now - self.upload_window:
                    uploads.popleft()
                if sum(size for _, size in uploads) + upload > self.upload_bytes:
                    self.throttled += 1
                    raise application_throttled("IncomingBytes")
                uploads.append((now, upload))
            self._in_flight[key] += 1

    def leave(self, app: str, mailbox: str) -> None:
        key = (app, mailbox.lower())
        with self._lock:
            self._in_flight[key] = max(0, self._in_flight[key] - 1)

    def in_flight(self, app: str, mailbox: str) -> int:
        with self._lock:
            return self._in_flight[(app, mailbox.lower())]

    def hold(self, mailbox: str) -> Hold:
        with self._lock:
            hold = self.holds[mailbox.lower()] = Hold()
            return hold

    def wait_if_held(self, mailbox: str) -> None:
        with self._lock:
            hold = self.holds.get(mailbox.lower())
        if hold is None or hold.event.is_set():
            return
        with hold.arrived:
            hold.waiting += 1
            hold.arrived.notify_all()
        hold.event.wait(HOLD_TIMEOUT)
        with hold.arrived:
            hold.waiting -= 1

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._uploads.clear()


@dataclass
class Faults:
    """The next N Graph requests (optionally only those whose path contains `match`) fail with a 5xx."""

    _pending: deque[tuple[int, str | None]] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, count: int = 1, status: int = 503, match: str | None = None) -> None:
        if status not in (500, 502, 503, 504):
            raise ValueError("faults are server errors: 500, 502, 503 or 504")
        with self._lock:
            self._pending.extend([(status, match)] * count)

    def check(self, path: str) -> None:
        with self._lock:
            for index, (status, match) in enumerate(self._pending):
                if match is None or match.lower() in path.lower():
                    del self._pending[index]
                    raise service_unavailable(status)

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()
