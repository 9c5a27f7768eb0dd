"""Domain events on the custom bus.

Every event has `source: mailbridge`, a `detail-type` such as `email.received`, and
`detail = {tenant_id, id, occurred_at, idempotency_key, data}`; consumers dedupe on
`idempotency_key`. PutEvents takes at most 10 entries and may reject some of them (throttling,
internal errors): rejected entries are retried with backoff, and whatever still fails raises
`EventPublishError` so the caller's queue record is retried rather than the event lost.

A publisher made with `workers` > 1 sends the PutEvents calls of one `publish` that many at a
time (the sync announces a batch of 100 emails in 10 calls: one round trip's wait instead of
ten); the entries of a call and the retry rules stay the same. EventBridge does not keep an
order between events anyway (consumers must not rely on one).
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, Field

from mailbridge import aws
from mailbridge.errors import EventPublishError, Invalid
from mailbridge.models.base import Model

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

SOURCE = "mailbridge"
MAX_ENTRIES_PER_CALL = 10
MAX_ENTRY_BYTES = 256 * 1024


def _now() -> datetime:
    return datetime.now(UTC)


class DomainEvent(Model):
    model_config = ConfigDict(frozen=True)

    detail_type: str = Field(pattern=r"^[a-z][a-z_]*(\.[a-z_]+)+$")  # follow_up.due: a word may hold _
    tenant_id: str
    data: dict[str, Any] = Field(default_factory=dict)
    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    occurred_at: datetime = Field(default_factory=_now)
    idempotency_key: str = ""

    def detail(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "id": self.id,
            "occurred_at": self.occurred_at.isoformat(),
            # Without a business key, the event id is the dedupe key: redelivery of the same
            # event is still recognised.
            "idempotency_key": self.idempotency_key or self.id,
            "data": self.data,
        }


class EventPublisher:
    def __init__(
        self,
        bus_name: str,
        *,
        client: EventBridgeClient | None = None,
        max_attempts: int = 4,
        base_delay: float = 0.1,
        sleep: Callable[[float], None] = time.sleep,
        workers: int = 1,
    ) -> None:
        self.bus_name = bus_name
        self._client = client
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self._sleep = sleep
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None

    @property
    def client(self) -> EventBridgeClient:
        if self._client is None:
            self._client = aws.events()
        return self._client

    def _entry(self, event: DomainEvent) -> PutEventsRequestEntryTypeDef:
        detail = json.dumps(event.detail(), separators=(",", ":"), default=str)
        if len(detail.encode()) > MAX_ENTRY_BYTES - 1024:
            raise Invalid(f"event {event.detail_type} is too large for the bus", code="event_too_large")
        return {
            "Source": SOURCE,
            "DetailType": event.detail_type,
            "Detail": detail,
            "EventBusName": self.bus_name,
            "Time": event.occurred_at,
        }

    def publish(self, events: Sequence[DomainEvent]) -> None:
        """Send `events` in PutEvents calls of 10, `workers` calls at a time. Returns when every
        call has finished; a call that still failed after its retries raises then
        (`EventPublishError`, or what the client raised), after the other calls completed."""
        entries = [self._entry(event) for event in events]
        calls = [entries[i : i + MAX_ENTRIES_PER_CALL] for i in range(0, len(entries), MAX_ENTRIES_PER_CALL)]
        if self.workers <= 1 or len(calls) <= 1:
            for call in calls:
                self._put_with_retries(call)
            return
        _ = self.client  # created here, not raced for by the workers
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="putevents")
        futures = [self._pool.submit(self._put_with_retries, call) for call in calls]
        wait(futures)
        for future in futures:
            future.result()

    def _put_with_retries(self, pending: list[PutEventsRequestEntryTypeDef]) -> None:
        errors: list[str] = []
        for attempt in range(self.max_attempts):
            if attempt:
                # Full jitter keeps many retrying consumers from throttling in lockstep.
                self._sleep(random.uniform(0, self.base_delay * 2**attempt))  # noqa: S311
            response = self.client.put_events(Entries=pending)
            if not response.get("FailedEntryCount"):
                return
            results = response["Entries"]
            errors = [str(r.get("ErrorCode")) for r in results if r.get("ErrorCode")]
            pending = [entry for entry, r in zip(pending, results, strict=True) if r.get("ErrorCode")]
        raise EventPublishError(
            f"{len(pending)} event(s) rejected after {self.max_attempts} attempts",
            details=sorted(set(errors)),
        )
