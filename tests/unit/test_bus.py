from __future__ import annotations

import contextlib
import json
import threading
import time
from typing import Any

import pytest

from mailbridge.bus import DomainEvent, EventPublisher
from mailbridge.errors import EventPublishError, Invalid


class FlakyEventBridge:
    """Rejects the first `fail_times` attempts of every entry whose data has `flaky`."""

    def __init__(self, fail_times: int = 1) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.fail_times = fail_times
        self.attempts: dict[str, int] = {}

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        self.calls.append(Entries)
        results = []
        for entry in Entries:
            detail = json.loads(entry["Detail"])
            seen = self.attempts.get(detail["id"], 0)
            self.attempts[detail["id"]] = seen + 1
            if detail["data"].get("flaky") and seen < self.fail_times:
                results.append({"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"})
            else:
                results.append({"EventId": detail["id"]})
        failed = sum(1 for r in results if "ErrorCode" in r)
        return {"FailedEntryCount": failed, "Entries": results}


def _events(n: int, **data: Any) -> list[DomainEvent]:
    return [DomainEvent(detail_type="probe.ping", tenant_id="acme", data={"n": i, **data}) for i in range(n)]


def test_events_go_out_in_chunks_of_ten() -> None:
    # Given 23 events
    client = FlakyEventBridge()
    publisher = EventPublisher("bus", client=client, sleep=lambda _: None)  # type: ignore[arg-type]
    # When they are published
    publisher.publish(_events(23))
    # Then three PutEvents calls carry 10, 10 and 3 entries with the documented detail shape
    assert [len(c) for c in client.calls] == [10, 10, 3]
    detail = json.loads(client.calls[0][0]["Detail"])
    assert set(detail) == {"tenant_id", "id", "occurred_at", "idempotency_key", "data"}
    assert client.calls[0][0]["Source"] == "mailbridge"
    assert client.calls[0][0]["EventBusName"] == "bus"


def test_rejected_entries_alone_are_retried() -> None:
    # Given a bus that throttles some entries once
    client = FlakyEventBridge(fail_times=1)
    sleeps: list[float] = []
    publisher = EventPublisher("bus", client=client, sleep=sleeps.append)  # type: ignore[arg-type]
    events = _events(3) + _events(2, flaky=True)
    # When published
    publisher.publish(events)
    # Then the second call resends only the two rejected entries, after a backoff pause
    assert [len(c) for c in client.calls] == [5, 2]
    assert len(sleeps) == 1
    assert all(n == 1 for eid, n in client.attempts.items() if eid in {e.id for e in events[:3]})


def test_entries_still_failing_after_the_retries_raise() -> None:
    client = FlakyEventBridge(fail_times=99)
    publisher = EventPublisher("bus", client=client, max_attempts=3, sleep=lambda _: None)  # type: ignore[arg-type]
    with pytest.raises(EventPublishError) as raised:
        publisher.publish(_events(1, flaky=True))
    assert raised.value.details == ["ThrottlingException"]
    assert len(client.calls) == 3


def test_idempotency_key_defaults_to_the_event_id() -> None:
    event = DomainEvent(detail_type="email.received", tenant_id="acme")
    assert event.detail()["idempotency_key"] == event.id
    keyed = DomainEvent(detail_type="email.received", tenant_id="acme", idempotency_key="acme:a1:77")
    assert keyed.detail()["idempotency_key"] == "acme:a1:77"


def test_an_event_too_large_for_the_bus_is_refused_before_sending() -> None:
    client = FlakyEventBridge()
    publisher = EventPublisher("bus", client=client)  # type: ignore[arg-type]
    with pytest.raises(Invalid):
        publisher.publish(_events(1, blob="x" * 300_000))
    assert client.calls == []


class GatheringEventBridge(FlakyEventBridge):
    """Holds each call until `together` calls are in flight at once (or `timeout` passes), and
    notes the most that were."""

    def __init__(self, together: int, timeout: float = 10.0) -> None:
        super().__init__()
        self.barrier = threading.Barrier(together, timeout=timeout)
        self.lock = threading.Lock()
        self.in_flight = self.most_in_flight = 0

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            with contextlib.suppress(threading.BrokenBarrierError):
                self.barrier.wait()
            with self.lock:
                return super().put_events(Entries)
        finally:
            with self.lock:
                self.in_flight -= 1


def test_a_publisher_with_workers_sends_its_calls_that_many_at_a_time() -> None:
    # Given a publisher with three workers and 30 events (three calls)
    client = GatheringEventBridge(together=3)
    publisher = EventPublisher("bus", client=client, sleep=lambda _: None, workers=3)  # type: ignore[arg-type]
    # When they are published
    publisher.publish(_events(30))
    # Then the three calls were out at the same time, ten entries each, every event sent once
    assert client.most_in_flight == 3
    assert sorted(len(c) for c in client.calls) == [10, 10, 10]
    assert sorted(json.loads(e["Detail"])["data"]["n"] for c in client.calls for e in c) == list(range(30))


def test_without_workers_the_calls_go_one_after_another() -> None:
    client = GatheringEventBridge(together=2, timeout=0.01)
    publisher = EventPublisher("bus", client=client, sleep=lambda _: None)  # type: ignore[arg-type]
    publisher.publish(_events(30))
    assert client.most_in_flight == 1
    assert [len(c) for c in client.calls] == [10, 10, 10]


class SlowUnlessFlakyEventBridge(FlakyEventBridge):
    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        if not any(json.loads(e["Detail"])["data"].get("flaky") for e in Entries):
            time.sleep(0.2)
        return super().put_events(Entries)


def test_a_call_that_keeps_failing_raises_once_the_other_calls_have_finished() -> None:
    # Given four workers, 40 events and a bus that keeps rejecting those of the first call at
    # once and takes its time over the others
    client = SlowUnlessFlakyEventBridge(fail_times=99)
    publisher = EventPublisher("bus", client=client, max_attempts=2, sleep=lambda _: None, workers=4)  # type: ignore[arg-type]
    events = _events(10, flaky=True) + _events(30)
    # When they are published, it raises
    with pytest.raises(EventPublishError):
        publisher.publish(events)
    # And the other three calls were sent in full before it did
    sent = {json.loads(e["Detail"])["id"] for c in client.calls for e in c}
    assert {e.id for e in events[10:]} <= sent
