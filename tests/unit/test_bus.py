from __future__ import annotations

import json
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
