"""The notification digest email (issue 15 point 4) in-process: the template's DigestSchedule fires
(its deployed target and input, as EventBridge Scheduler would deliver them), the notifications
function drains its queue and queues the digest through the outbox; what is checked is what the
outbox would send (the OutboxQueue record and the raw message stored for it) and what
`GET /notifications/settings` answers."""

from __future__ import annotations

import email
import json
from datetime import datetime
from email.message import Message
from typing import Any

import boto3
import pytest

from local.pump import scheduler_context
from mailbridge.store.accounts import AccountStore
from mailbridge.store.emails import EmailStore
from mailbridge.store.notifications import NotificationStore
from tests.fixtures.aws import Stack
from tests.integration.test_api_emails import TENANT, Invoke, body
from tests.integration.test_notifications import ADA, BOB, call, deliver, emit, make_account, world

__all__ = ["world"]  # the fixture, used by name

TUESDAY, TUESDAY_LATER, WEDNESDAY = "2026-12-01T06:00:00Z", "2026-12-01T18:00:00Z", "2026-12-02T06:00:00Z"
MONDAY = "2026-12-07T06:00:00Z"
NUDGE_TITLE = "Still no reply to an email you sent"


def fire_digest_schedule(stack: Stack, when: str) -> None:
    """Deliver the deployed DigestSchedule's input to its target queue at `when`, then let the
    notifications function drain that queue."""
    schedule = boto3.client("scheduler").get_schedule(Name=stack.deployed.schedules["DigestSchedule"])
    target = schedule["Target"]
    boto3.client("sqs").send_message(
        QueueUrl=stack.deployed.queue_url_by_arn[target["Arn"]],
        MessageBody=scheduler_context(target["Input"], datetime.fromisoformat(when)),
    )
    deliver(stack)


def queued_emails(stack: Stack) -> list[Message]:
    """The messages the outbox was asked to send since the last call (its queue drained here)."""
    sqs: Any = boto3.client("sqs")
    url = stack.deployed.queue_urls["OutboxQueue"]
    emails = EmailStore(stack.env("ApiFunction")["EMAILS_TABLE"])
    bucket = stack.env("ApiFunction")["MAIL_BUCKET"]
    found: list[Message] = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for m in messages:
            record = json.loads(m["Body"])
            item = emails.get_email(record["tenant_id"], record["email_id"])
            assert item is not None
            raw = boto3.client("s3").get_object(Bucket=bucket, Key=item["raw_key"])["Body"].read()
            found.append(email.message_from_bytes(raw))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return found


def text_of(message: Message) -> str:
    part = next(p for p in message.walk() if p.get_content_type() == "text/plain")
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


def prefer_digest(invoke_api: Invoke, user: str, frequency: str = "daily") -> None:
    response = call(
        invoke_api,
        "put-notification-preferences",
        user,
        body={"types": {"nudge": "email_digest"}, "digest_frequency": frequency},
    )
    assert response["statusCode"] == 200, response


def set_sender(invoke_api: Invoke, account_id: str | None) -> None:
    response = call(
        invoke_api,
        "put-notification-settings",
        ADA,
        role="admin",
        body={"digest_sender_account_id": account_id},
    )
    assert response["statusCode"] == 200, response


def nudge(stack: Stack, email_id: str, key: str) -> None:
    emit(stack, "nudge-created", key=key, email_id=email_id, kind="awaiting_reply")


def settings(invoke_api: Invoke) -> Any:
    return body(call(invoke_api, "get-notification-settings", BOB))


def test_a_daily_digest_goes_once_per_day_from_the_sender_to_the_users_own_mailbox(
    stack: Stack, invoke_api: Invoke, world: dict[str, str]
) -> None:
    # Given Ada wants nudges in a daily digest, Bob's mailbox sends the tenant's digests,
    # and two nudges about the email in Ada's mailbox reached her digest
    prefer_digest(invoke_api, ADA)
    set_sender(invoke_api, world["bob_account"])
    nudge(stack, world["email_id"], "nudge-1")
    nudge(stack, world["email_id"], "nudge-2")
    # When the DigestSchedule fires on Tuesday
    fire_digest_schedule(stack, TUESDAY)
    # Then one email is queued, from Bob's mailbox to Ada's, listing the two titles and nothing
    # of the email itself (its sender's address or subject)
    [digest] = queued_emails(stack)
    assert (digest["From"], digest["To"]) == (f"{BOB}@example.com", f"{ADA}@example.com")
    assert "2 new notifications" in str(digest["Subject"])
    # ... marked as written by a process (RFC 3834), so no nudge waits for a reply to it
    assert digest["Auto-Submitted"] == "auto-generated"
    text = text_of(digest)
    assert text.count(NUDGE_TITLE) == 2
    assert "carol" not in digest.as_string().lower()
    assert "Quote" not in text
    assert settings(invoke_api)["digest_status"] == "ok"
    assert settings(invoke_api)["digest_last_run_at"].startswith("2026-12-01T06:00:00")
    # When another nudge arrives and the schedule fires again the same day
    nudge(stack, world["email_id"], "nudge-3")
    fire_digest_schedule(stack, TUESDAY_LATER)
    # Then no second digest goes out that day
    assert queued_emails(stack) == []
    # When it fires the next day, the next digest lists only the nudge not sent yet
    fire_digest_schedule(stack, WEDNESDAY)
    [next_day] = queued_emails(stack)
    assert "1 new notification" in str(next_day["Subject"])
    assert text_of(next_day).count(NUDGE_TITLE) == 1
    # And with nothing new, the day after sends nothing
    fire_digest_schedule(stack, "2026-12-03T06:00:00Z")
    assert queued_emails(stack) == []


@pytest.mark.parametrize(
    ("working_week", "not_due", "due"),
    [
        (None, TUESDAY, MONDAY),  # no nudge settings saved: Monday
        ({"working_days": [3, 4, 5, 6, 7], "time_zone": "UTC"}, TUESDAY, WEDNESDAY),
        # 23:30 UTC on Tuesday is already Wednesday in Tokyo
        ({"working_days": [3, 4, 5, 6, 7], "time_zone": "Asia/Tokyo"}, TUESDAY, "2026-12-01T23:30:00Z"),
    ],
)
def test_a_weekly_digest_waits_for_the_tenants_first_working_day(
    stack: Stack,
    invoke_api: Invoke,
    world: dict[str, str],
    working_week: dict[str, Any] | None,
    not_due: str,
    due: str,
) -> None:
    # Given the tenant's working week, Ada wants a weekly digest and has a nudge in it
    if working_week is not None:
        saved = call(invoke_api, "put-nudge-settings", ADA, role="admin", body=working_week)
        assert saved["statusCode"] == 200, saved
    prefer_digest(invoke_api, ADA, "weekly")
    set_sender(invoke_api, world["bob_account"])
    nudge(stack, world["email_id"], "nudge-1")
    # When the schedule fires on another day, then nothing is sent
    fire_digest_schedule(stack, not_due)
    assert queued_emails(stack) == []
    # When it fires on the first working day, then the week's digest goes out
    fire_digest_schedule(stack, due)
    [digest] = queued_emails(stack)
    assert text_of(digest).count(NUDGE_TITLE) == 1


@pytest.mark.parametrize("sender", ["none", "removed"])
def test_without_a_usable_sender_nothing_is_sent_and_the_settings_say_why(
    stack: Stack, invoke_api: Invoke, world: dict[str, str], sender: str
) -> None:
    # Given Ada has a nudge in her daily digest, and no sender is set, or the sender was removed
    prefer_digest(invoke_api, ADA)
    if sender == "removed":
        gone = make_account(stack, "carl-9d8e7f6a")
        set_sender(invoke_api, gone)
        AccountStore(stack.env("ApiFunction")["ACCOUNTS_TABLE"]).delete_account(TENANT, gone)
    nudge(stack, world["email_id"], "nudge-1")
    # When the schedule fires
    fire_digest_schedule(stack, TUESDAY)
    # Then no email is queued and the settings show the reason and the run's time
    assert queued_emails(stack) == []
    got = settings(invoke_api)
    assert got["digest_status"] == ("no_sender" if sender == "none" else "sender_not_found")
    assert got["digest_last_run_at"].startswith("2026-12-01T06:00:00")
    # When an admin sets a sender that exists, the next run sends the nudge kept for it
    set_sender(invoke_api, world["bob_account"])
    assert settings(invoke_api)["digest_status"] is None  # not run with this sender yet
    fire_digest_schedule(stack, WEDNESDAY)
    [digest] = queued_emails(stack)
    assert text_of(digest).count(NUDGE_TITLE) == 1
    assert settings(invoke_api)["digest_status"] == "ok"


def test_a_digest_item_written_while_the_run_reads_keeps_its_user_pending(stack: Stack) -> None:
    # Given Ada has one digest item, and the run read her marker
    store = NotificationStore(stack.env("NotificationsFunction")["NOTIFICATIONS_TABLE"])

    def item(nid: str, channel: str = "email_digest") -> dict[str, Any]:
        return {"notification_id": nid, "channel": channel, "created_at": "2026-12-01T05:00:00+00:00"}

    store.create_notification(TENANT, ADA, item("nt_" + "1" * 26), ttl=1)
    store.create_notification(TENANT, BOB, item("nt_" + "2" * 26, "in_app"), ttl=1)
    [marker] = list(store.pending_digests())
    # When another digest item arrives before the run clears the marker
    store.create_notification(TENANT, ADA, item("nt_" + "3" * 26), ttl=1)
    cleared = store.clear_pending(TENANT, ADA, int(marker["pending"]))
    # Then the marker stays, so the next run still finds Ada (and Bob, in-app only, was never listed)
    assert cleared is False
    assert [(m["tenant_id"], m["user_id"]) for m in store.pending_digests()] == [(TENANT, ADA)]
    # And once the run saw both, it clears
    assert store.clear_pending(TENANT, ADA, 2) is True
    assert list(store.pending_digests()) == []
