"""Follow-up flags (issue 15 point 2) in-process: sample events -> api handler -> moto, and the
reminders function fed what the one-time schedule puts on its queue at `due_at`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from mailbridge.followups.service import schedule_name
from mailbridge.store.flags import FlagStore
from tests.events import load_event
from tests.fixtures.aws import BusReader, FakeLambdaContext, Stack
from tests.integration.queue_harness import QueueConsumer
from tests.integration.redelivery import bus_seen, sample_record, snapshot, three_deliveries
from tests.integration.test_api_emails import TENANT, Invoke, _drain, api, body, mail
from tests.integration.test_api_snooze import email, fire, snooze
from tests.integration.test_api_snooze import schedule_of as snooze_schedule_of

__all__ = ["mail"]  # the seeded mail fixture of test_api_emails

FLAGGED = "\\Flagged"


def in_hours(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).replace(microsecond=0).isoformat()


def put(invoke_api: Invoke, email_id: str, payload: Any, **kwargs: Any) -> dict[str, Any]:
    return invoke_api(api("put-follow-up", path={"email_id": email_id}, body=payload, **kwargs))


def listed(invoke_api: Invoke, **query: str) -> dict[str, Any]:
    response = invoke_api(api("list-follow-ups", query=query))
    assert response["statusCode"] == 200, response
    return dict(body(response))


def ids(page: dict[str, Any]) -> list[str]:
    return [f["email_id"] for f in page["items"]]


def schedule_of(email_id: str) -> dict[str, Any]:
    return dict(boto3.client("scheduler").get_schedule(Name=schedule_name(TENANT, email_id)))


def due_events(bus: BusReader) -> list[dict[str, Any]]:
    return [e for e in bus() if e["detail-type"] == "follow_up.due"]


def test_a_follow_up_flags_the_email_everywhere_and_reminds_once_when_due(
    invoke_api: Invoke, stack: Stack, mail: dict[str, str], bus_probe: BusReader
) -> None:
    # Given m2 (held by accounts A and B, not flagged)
    due_at = in_hours(3)
    # When a member sets a follow-up on it
    response = put(invoke_api, mail["m2"], {"due_at": due_at, "priority": "high", "note": "Chase the quote"})
    # Then it is open and due, the email is flagged here and \Flagged is pushed to both mailboxes
    assert response["statusCode"] == 200, response
    assert (body(response)["state"], body(response)["priority"]) == ("open", "high")
    assert email(invoke_api, mail["m2"])["flagged"] is True
    pushes = _drain(stack.deployed.queue_urls["SyncQueue"])
    assert sorted((p["account_id"], p["add"], p["remove"]) for p in pushes) == [
        ("acc_aaaaaaaaaaaaaaaaaaaa", [FLAGGED], []),
        ("acc_bbbbbbbbbbbbbbbbbbbb", [FLAGGED], []),
    ]
    assert ids(listed(invoke_api, state="due")) == [mail["m2"]]
    assert ids(listed(invoke_api, state="overdue")) == []
    schedule = schedule_of(mail["m2"])
    assert schedule["ScheduleExpression"] == f"at({due_at[:19]})"

    # When the schedule fires at due_at
    fire(stack, schedule)
    # Then follow_up.due is announced for automations
    [event] = due_events(bus_probe)
    assert event["detail"]["data"]["email_id"] == mail["m2"]
    assert event["detail"]["data"]["priority"] == "high"
    # And a replayed reminder announces nothing again
    fire(stack, schedule)
    assert due_events(bus_probe) == []


def test_completing_clears_the_flag_cancels_the_reminder_and_lists_it_as_done(
    invoke_api: Invoke, stack: Stack, mail: dict[str, str], bus_probe: BusReader
) -> None:
    # Given a follow-up on m4 (flagged already on the server)
    assert put(invoke_api, mail["m4"], {"due_at": in_hours(2)})["statusCode"] == 200
    schedule = schedule_of(mail["m4"])
    _drain(stack.deployed.queue_urls["SyncQueue"])
    # When it is completed
    response = invoke_api(api("complete-follow-up", path={"email_id": mail["m4"]}))
    # Then it is done, the flag is cleared here and on the mailbox, the reminder is gone
    assert response["statusCode"] == 200, response
    assert body(response)["state"] == "done"
    assert email(invoke_api, mail["m4"])["flagged"] is False
    [push] = _drain(stack.deployed.queue_urls["SyncQueue"])
    assert (push["add"], push["remove"]) == ([], [FLAGGED])
    with pytest.raises(boto3.client("scheduler").exceptions.ResourceNotFoundException):
        schedule_of(mail["m4"])
    assert ids(listed(invoke_api, state="done")) == [mail["m4"]]
    assert ids(listed(invoke_api, state="due")) == []
    # And a reminder already on its way announces nothing
    fire(stack, schedule)
    assert due_events(bus_probe) == []
    # And completing again, or deleting twice, is a 404 with a code
    again = invoke_api(api("complete-follow-up", path={"email_id": mail["m4"]}))
    assert (again["statusCode"], body(again)["error"]["code"]) == (404, "follow_up_not_found")
    assert invoke_api(api("delete-follow-up", path={"email_id": mail["m4"]}))["statusCode"] == 200
    gone = invoke_api(api("delete-follow-up", path={"email_id": mail["m4"]}))
    assert (gone["statusCode"], body(gone)["error"]["code"]) == (404, "follow_up_not_found")


def test_overdue_pages_fill_and_follow_their_cursor(
    invoke_api: Invoke, stack: Stack, mail: dict[str, str]
) -> None:
    # Given five follow-ups: three past their due time, two still ahead, interleaved by email id
    flags = FlagStore(stack.deployed.tables["FlagsTable"])
    now = datetime.now(UTC)
    chosen = sorted(mail[k] for k in ("m1", "m2", "m3", "m4", "m5"))
    for n, email_id in enumerate(chosen):
        due = now + timedelta(hours=-1 if n % 2 == 0 else 5)
        flags.put_flag(
            TENANT,
            email_id,
            {
                "email_id": email_id,
                "thread_id": "th_000000000000000000000000",
                "due_at": due.isoformat(),
                "priority": "normal",
                "note": None,
                "state": "open",
                "created_at": (now - timedelta(days=1)).isoformat(),
            },
        )
    overdue = [chosen[0], chosen[2], chosen[4]]
    # When overdue follow-ups are listed two at a time
    first = listed(invoke_api, state="overdue", limit="2")
    second = listed(invoke_api, state="overdue", limit="2", cursor=first["next_cursor"])
    # Then the first page is full, the second holds the rest
    assert ids(first) == overdue[:2]
    assert ids(second) == overdue[2:]
    assert ids(listed(invoke_api, state="due")) == [chosen[1], chosen[3]]


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"due_at": "2020-01-01T00:00:00Z"}, "follow_up_in_past"),
        ({"due_at": "2099-01-01T00:00:00Z"}, "follow_up_too_far"),
        ({"due_at": "2030-01-01T00:00:00"}, "validation_error"),
        ({"due_at": "2030-01-01T00:00:00Z", "priority": "urgent"}, "validation_error"),
    ],
)
def test_a_follow_up_that_cannot_be_kept_is_a_422_with_a_code(
    invoke_api: Invoke, mail: dict[str, str], payload: dict[str, Any], code: str
) -> None:
    # When a follow-up is set with a time or priority that cannot be kept
    response = put(invoke_api, mail["m5"], payload)
    # Then 422 names the reason and nothing is listed
    assert (response["statusCode"], body(response)["error"]["code"]) == (422, code)
    assert ids(listed(invoke_api, state="due")) == []


def test_viewers_and_other_tenants_cannot_set_follow_ups(invoke_api: Invoke, mail: dict[str, str]) -> None:
    # When a viewer sets one on acme's m5, and acme on globex's b1
    viewer = put(invoke_api, mail["m5"], {"due_at": in_hours(2)}, role="viewer")
    foreign = put(invoke_api, mail["b1"], {"due_at": in_hours(2)})
    # Then 403 and 404, and nothing is listed
    assert (viewer["statusCode"], body(viewer)["error"]["code"]) == (403, "role_required")
    assert (foreign["statusCode"], body(foreign)["error"]["code"]) == (404, "not_found")
    assert ids(listed(invoke_api, state="due")) == []


@pytest.mark.parametrize("kind", ["snooze", "follow_up", "reply"])
def test_a_due_reminder_delivered_three_times_wakes_or_reminds_once(
    invoke_api: Invoke, stack: Stack, mail: dict[str, str], bus_probe: BusReader, kind: str
) -> None:
    # Given m2 snoozed for two hours, or flagged for a follow-up in three: the record its one-time
    # schedule puts on the RemindersQueue when it is due; or m2 snoozed until a reply, and the
    # email.received of a new email in its thread that the RemindersRule delivers
    if kind == "snooze":
        response = snooze(invoke_api, "email", mail["m2"], {"until": in_hours(2)})
        body_of, index, announced = snooze_schedule_of(mail["m2"])["Target"]["Input"], 0, "email.unsnoozed"
    elif kind == "follow_up":
        response = put(invoke_api, mail["m2"], {"due_at": in_hours(3)})
        body_of, index, announced = schedule_of(mail["m2"])["Target"]["Input"], 1, "follow_up.due"
    else:
        response = snooze(invoke_api, "email", mail["m2"], {"until": in_hours(48), "wake_on_reply": True})
        received = json.loads(load_event("sqs/reminders.json")["Records"][2]["body"])
        received["detail"] |= {"tenant_id": TENANT}
        thread_id = email(invoke_api, mail["m2"])["thread_id"]
        received["detail"]["data"] |= {"thread_id": thread_id, "email_id": "em_0123456789abcdef0123456789"}
        body_of, index, announced = received, 2, "email.unsnoozed"
    assert response["statusCode"] == 200, response
    _drain(stack.deployed.queue_urls["SyncQueue"])
    event = sample_record("reminders", body_of, index)
    reminders = QueueConsumer(stack, "reminders", "RemindersQueue").function
    bus = bus_seen(bus_probe)

    def observe() -> tuple[dict[str, Any], int]:
        return snapshot(stack, bus), sum(e["detail-type"] == announced for e in bus())

    # When SQS hands the record to the reminders function three times
    deliveries = three_deliveries(lambda e: reminders.lambda_handler(e, FakeLambdaContext()), event, observe)

    # Then the first delivery announced it once (a wake-up also showed the email again, unread,
    # with \Seen removed on both mailboxes) ...
    assert deliveries.results == [{"batchItemFailures": []}] * 3
    (stored_before, announced_before), (stored_once, announced_once) = deliveries.before, deliveries.once
    assert (announced_before, announced_once) == (0, 1)
    assert stored_once != stored_before
    if kind != "follow_up":
        assert stored_once["queues"]["SyncQueue"] == 2
        assert email(invoke_api, mail["m2"])["snoozed_until"] is None
    # ... and the other two announced nothing, pushed nothing and stored nothing
    assert deliveries.thrice[1] == announced_once
    assert deliveries.thrice == deliveries.once
