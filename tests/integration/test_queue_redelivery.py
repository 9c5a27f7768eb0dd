"""At-least-once delivery: a queue consumer fed the same record three times leaves the stack as
one delivery left it: the same items in every table, the same objects in every bucket, the same
messages on every queue and the same events on the bus.

Each consumer gets its sample record from events/sqs (the records the template's queues carry) on
a fresh stack. The sync and outbox consumers are left out here: their records reach a mail server
(their redelivery tests: test_sync_imap.py, test_outbox.py, test_gmail_writeback_send.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.events import load_event
from tests.fixtures.aws import BusReader, FakeLambdaContext, Stack, load_function, reset_caches
from tests.integration.redelivery import bus_seen as seen_on_bus
from tests.integration.redelivery import snapshot

# events/sqs sample -> the function folder whose queue carries it. Only samples whose first
# delivery changes the fresh stack are here (the test checks that it does): the samples of the
# automations, notifier, reminders and tasks queues refer to rules, connections, schedules and
# privacy requests a fresh stack does not hold, so their deliveries change nothing at all.
SAMPLES = {
    "calendar-email-received": "calendar",
    "categorize-backfill": "categorize",
    "categorize-email-received": "categorize",
    "match-backfill": "match",
    "match-contact": "match",
    "match-email": "match",
    "notifications": "notifications",
}


@pytest.fixture
def bus_seen(bus_probe: BusReader) -> BusReader:
    return seen_on_bus(bus_probe)


@pytest.fixture
def deliver(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """`deliver(folder, event)`: the function of functions/<folder> invoked with `event`, after a
    cold start with its own environment from the template."""
    modules: dict[str, Any] = {}
    logical_ids = {f.code_dir.name: f.logical_id for f in stack.template.functions().values()}

    def invoke(function: str, event: dict[str, Any]) -> dict[str, Any]:
        if function not in modules:
            for name, value in stack.env(logical_ids[function]).items():
                monkeypatch.setenv(name, value)
            reset_caches()
            modules[function] = load_function(function)
        result: dict[str, Any] = modules[function].lambda_handler(event, FakeLambdaContext())
        return result

    yield invoke
    reset_caches()


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_a_record_delivered_three_times_acts_once(
    stack: Stack, bus_seen: BusReader, deliver: Any, sample: str
) -> None:
    # Given the sample record of a queue and the function the template maps to it
    event = load_event(f"sqs/{sample}.json")
    before = snapshot(stack, bus_seen)
    # When SQS delivers it once
    first = deliver(SAMPLES[sample], event)
    once = snapshot(stack, bus_seen)
    # And again, twice (a lost acknowledgement, a visibility timeout)
    results = [deliver(SAMPLES[sample], event) for _ in range(2)]
    thrice = snapshot(stack, bus_seen)
    # Then each delivery succeeded and the later two changed nothing the first left
    assert [first, *results] == [{"batchItemFailures": []}] * 3
    assert once != before
    assert thrice == once
