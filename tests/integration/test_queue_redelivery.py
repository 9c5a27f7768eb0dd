"""At-least-once delivery: a queue consumer fed the same record three times leaves the stack as
one delivery left it: the same items in every table, the same objects in every bucket, the same
messages on every queue and the same events on the bus.

Here each consumer gets its sample record from events/sqs (the records the template's queues
carry) on a fresh stack. The consumers whose records act only on state a fresh stack does not
hold have the same three-times test (tests/integration/redelivery.py: snapshot after one delivery
== snapshot after three, outside effects counted at the double or receiver, and the first
delivery shown to act) in their own module, on the state their tests seed:

  tasks         test_privacy.py: test_every_step_of_a_job_delivered_three_times_runs_once
                (every step of an erase and of an export)
  reminders     test_api_followups.py: test_a_due_reminder_delivered_three_times_wakes_or_reminds_once
                (a due snooze wake-up, a due follow-up, a reply waking a snooze);
                test_api_nudges.py: test_a_tenant_scan_delivered_three_times_nudges_once
  notifier      test_realtime.py:
                test_an_event_delivered_three_times_posts_one_frame_to_each_connection
                (frames posted to the WebSocket connections)
  automations   test_automations_execution.py:
                test_a_record_delivered_three_times_runs_the_rule_once_and_posts_once
                (an event record and a cron firing; webhook POSTs at a local receiver)
  crm_activity  test_crm_activity.py:
                test_a_linked_email_delivered_three_times_is_logged_once_and_asks_salesforce_once,
                test_a_campaign_sync_delivered_three_times_writes_the_campaign_once
                (Tasks, Campaigns, members and requests at the Salesforce double)
  crmsync       test_crm_contact_sync.py:
                test_a_record_delivered_three_times_to_the_function_syncs_once
                (a started run, a targeted pull, the schedule's fan-out; contacts and requests
                at the Salesforce double)

The sync and outbox consumers reach a mail server (their redelivery tests: test_sync_imap.py,
test_outbox.py, test_gmail_writeback_send.py).
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
# automations, notifier, reminders, tasks, crm-activity and crm-sync queues refer to rules,
# connections, schedules, privacy requests and CRM integrations a fresh stack does not hold, so
# their deliveries change nothing at all (their seeded tests: the module docstring).
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
