"""The Gmail schedules through the sync function: the daily watch renewal (fanned out to one
message per account, then users.watch at the double) and the 15-minute Gmail poll."""

from __future__ import annotations

import json
from typing import Any

from tests.events import load_event
from tests.integration.gmail_harness import TENANT, USER, GmailStack


def run_sync_function(gmail_stack: GmailStack, bodies: list[dict[str, Any]]) -> None:
    """Deliver `bodies` to the sync function as SQS records (the template's FIFO queue)."""
    event = load_event("sqs/sync-renew-watches.json")
    template = event["Records"][0]
    records = []
    for i, body in enumerate(bodies):
        record = json.loads(json.dumps(template))
        record["messageId"] = f"m-{i}"
        record["body"] = json.dumps(body)
        records.append(record)
    result = gmail_stack.invoke("sync", {"Records": records})
    assert result == {"batchItemFailures": []}, result


def test_the_daily_renewal_fans_out_and_watches_each_gmail_account(gmail_stack: GmailStack) -> None:
    # Given two Gmail accounts whose watches lapsed, one of them waiting for a reconnect
    account_id = gmail_stack.add_account()
    revoked = gmail_stack.add_account(tenant_id="globex", account_id="acc_" + "b" * 20)
    gmail_stack.accounts.mark_reauth_required("globex", revoked, gmail_stack.clock.now(), "revoked")
    gmail_stack.google.gmail.mailbox(USER).watch = None

    # When the schedule's message reaches the sync function
    run_sync_function(gmail_stack, [load_event("scheduler/gmail-watch-renew.json")])
    fanned = gmail_stack.sync_messages()

    # Then one renewal per active account is queued in that account's group (none for the revoked)
    assert fanned == [
        {
            "kind": "renew_watches",
            "provider": "gmail",
            "tenant_id": TENANT,
            "account_id": account_id,
            "action": "renew",
            "force": False,
        }
    ]

    # When that message is handled
    run_sync_function(gmail_stack, fanned)

    # Then the mailbox is watched again on the configured topic
    watch = gmail_stack.google.gmail.mailbox(USER).watch
    assert watch is not None
    assert watch.topic_name == "projects/mailbridge-local/topics/gmail"


def test_the_gmail_poll_queues_a_sync_per_active_gmail_account(gmail_stack: GmailStack) -> None:
    account_id = gmail_stack.add_account()
    run_sync_function(gmail_stack, [{"kind": "poll", "provider": "gmail"}])
    assert [(m["kind"], m["account_id"], m["reason"]) for m in gmail_stack.sync_messages()] == [
        ("sync", account_id, "poll")
    ]
