"""The sync function's sizing (template.yaml) and how one run spends its time (sync/wiring.py)
must agree: a run of the deployed timeout hands over with its full margins, and the queue does
not redeliver a message while a run may still hold it."""

from __future__ import annotations

import time
from pathlib import Path

from local.template import load_template
from mailbridge.sync import wiring

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template([ROOT / "template.yaml"])
# KMS key ids only exist once created; any id will do to resolve the functions' environment.
TEMPLATE.physical_ids["DataKey"] = "00000000-0000-4000-8000-000000000000"


def test_a_deployed_run_stops_fetching_and_cuts_the_session_off_with_the_full_margins() -> None:
    # Given the sync function's timeout, as deployed
    timeout = TEMPLATE.functions()["SyncFunction"].timeout
    # When a run starts with all of it left
    before = time.monotonic()
    budget = wiring.budget_for(timeout * 1000)
    after = time.monotonic()
    # Then the IMAP session is cut off in time to store a batch and hand over before the timeout
    reserve = wiring.STORE_SECONDS + wiring.HANDOFF_SECONDS
    assert budget.session_deadline is not None
    assert before + timeout - reserve <= budget.session_deadline <= after + timeout - reserve
    # And no batch starts within FETCH_SECONDS of that cut-off
    assert abs(budget.session_deadline - budget.deadline - wiring.FETCH_SECONDS) < 1e-6
    # And a batch is bounded by the wiring's count and bytes
    assert (budget.batch_size, budget.batch_bytes) == (wiring.BATCH_SIZE, wiring.BATCH_BYTES)


def test_the_sync_queue_hides_a_message_for_six_times_the_function_timeout() -> None:
    # Given the sync function and its queue, as deployed
    timeout = TEMPLATE.functions()["SyncFunction"].timeout
    queue = TEMPLATE.resources["SyncQueue"]["Properties"]
    # Then a message being synced is not handed to a second run meanwhile (STYLE.md 6)
    assert int(queue["VisibilityTimeout"]) == 6 * timeout
