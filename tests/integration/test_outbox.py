"""Sending end to end in-process: the api and outbox handlers on moto, a real Dovecot for the
mailbox (Sent folder) and a real SMTP server (aiosmtpd sink) receiving the mail."""

from __future__ import annotations

import base64
import email
import email.policy
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from mailbridge.sync.wiring import service_deps
from tests.events import load_event
from tests.fixtures.aws import BusReader, Stack
from tests.fixtures.smtp import SINK_PASSWORD, SINK_USER
from tests.integration.dovecot import DovecotServer, DovecotUser
from tests.integration.queue_harness import QueueConsumer
from tests.integration.sync_harness import TENANT, SyncHarness, message

pytestmark = pytest.mark.dovecot

Invoke = Callable[[dict[str, Any]], dict[str, Any]]


@pytest.fixture
def mail(
    stack: Stack, invoke_api: Invoke, dovecot_server: DovecotServer, dovecot_user: DovecotUser, smtp_sink: Any
) -> SyncHarness:
    """A connected, synced mailbox that can send through the SMTP sink."""
    h = SyncHarness(stack, invoke_api, dovecot_server, dovecot_user)
    service_deps().sleep = lambda _s: None
    h.server.append(
        h.user,
        "INBOX",
        message("Renewal quote", msgid="orig-1@customer.example", refs=["root-0@customer.example"]),
    )
    status, body = h.connect(
        smtp={
            "host": smtp_sink.host,
            "port": smtp_sink.plain_port,
            "security": "none",
            "username": SINK_USER,
            "password": SINK_PASSWORD,
        }
    )
    assert status == 201, body
    h.drain()
    return h


def send(h: SyncHarness, **fields: Any) -> tuple[int, Any]:
    payload = {
        "account_id": h.account_id,
        "to": [{"address": "carol@customer.example", "name": "Carol"}],
        "subject": "Quote",
        "text": "Hi Carol",
    } | fields
    return h.api("send-email.json", body=payload)


def original_id(h: SyncHarness) -> str:
    return str(next(e["email_id"] for e in h.emails() if e["message_id"] == "orig-1@customer.example"))


def email_view(h: SyncHarness, email_id: str) -> Any:
    event = load_event("api/get-email.json", tenant=TENANT, role="viewer")
    event["pathParameters"] = {"email_id": email_id}
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/emails/{email_id}"
    response = h.invoke_api(event)
    return json.loads(response["body"])


def test_a_reply_is_sent_threaded_filed_in_sent_and_announced_once(
    mail: SyncHarness, stack: Stack, smtp_sink: Any, bus_probe: BusReader
) -> None:
    outbox = QueueConsumer(stack, "outbox", "OutboxQueue")
    bus_probe()  # forget what the initial sync announced
    # Given a synced message, when the user replies with an attachment and a Bcc
    status, accepted = send(
        mail,
        reply_to_email_id=original_id(mail),
        subject="Renewal quote",
        bcc=[{"address": "archive@example.com"}],
        attachments=[
            {
                "filename": "quote.txt",
                "content_type": "text/plain",
                "content_base64": base64.b64encode(b"42,000 EUR").decode(),
            }
        ],
    )
    assert status == 202, accepted
    assert accepted["status"] == "queued"
    # When the outbox runs
    outbox.drain()
    # Then the SMTP server received exactly one message, threaded, with the attachment
    assert len(smtp_sink.messages) == 1
    received = smtp_sink.messages[0]
    parsed = email.message_from_bytes(received.raw, policy=email.policy.default)
    assert parsed["Subject"] == "Re: Renewal quote"
    assert parsed["In-Reply-To"] == "<orig-1@customer.example>"
    assert parsed["References"].split() == ["<root-0@customer.example>", "<orig-1@customer.example>"]
    assert "archive@example.com" in received.rcpt_tos
    assert parsed["Bcc"] is None
    attachment = next(p for p in parsed.iter_attachments())
    assert attachment.get_filename() == "quote.txt"
    assert attachment.get_content() in ("42,000 EUR", b"42,000 EUR")
    # And the mailbox's Sent folder holds it, read
    sent = mail.server.mailbox_status(mail.user, "Sent")
    assert sent.messages == 1
    # And the API shows it sent, in the original's thread, with one location in Sent
    view = email_view(mail, accepted["email_id"])
    assert view["status"] == "sent"
    assert view["thread_id"] == email_view(mail, original_id(mail))["thread_id"]
    assert [loc["folder"] for loc in view["locations"]] == ["Sent"]
    # And a later sync of Sent does not create a second email
    mail.api("sync-account.json", params={"account_id": mail.account_id})
    mail.drain()
    assert sum(1 for e in mail.emails() if e["subject"] == "Re: Renewal quote") == 1
    sent_state = {f["name"]: f for f in mail.status()["folders"]}["Sent"]
    assert sent_state["messages_stored"] == sent_state["messages_on_server"] == 1
    # And email.sent went out exactly once, through the send and the later sync alike
    announced = [e for e in bus_probe() if e["detail-type"] == "email.sent"]
    assert [e["detail"]["data"]["email_id"] for e in announced] == [accepted["email_id"]]


def test_the_same_record_delivered_twice_sends_once(mail: SyncHarness, stack: Stack, smtp_sink: Any) -> None:
    outbox = QueueConsumer(stack, "outbox", "OutboxQueue")
    send(mail)
    records = outbox.receive()
    assert len(records) == 1
    outbox.invoke(records)
    # When the very same record arrives again (at-least-once delivery)
    result = outbox.invoke(records)
    assert result["batchItemFailures"] == []
    assert len(smtp_sink.messages) == 1


def test_a_transient_smtp_failure_is_retried_then_sent(
    mail: SyncHarness, stack: Stack, smtp_sink: Any
) -> None:
    outbox = QueueConsumer(stack, "outbox", "OutboxQueue")
    _status, accepted = send(mail)
    smtp_sink.fail_next(1, reply="451 4.7.1 Try again later")
    # When the first attempt meets greylisting
    records = outbox.receive()
    first = outbox.invoke(records)
    # Then the record is held back for a retry and the email is still queued
    assert len(first["batchItemFailures"]) == 1
    assert email_view(mail, accepted["email_id"])["status"] == "queued"
    assert outbox.receive() == []  # invisible during the backoff
    # When the backoff is over and SQS redelivers the same record
    outbox.sqs.change_message_visibility(
        QueueUrl=outbox.queue_url, ReceiptHandle=records[0]["ReceiptHandle"], VisibilityTimeout=0
    )
    again = outbox.receive()
    assert again[0]["Attributes"]["ApproximateReceiveCount"] == "2"
    outbox.invoke(again)
    # Then it is sent once
    assert email_view(mail, accepted["email_id"])["status"] == "sent"
    assert len(smtp_sink.messages) == 1


def test_a_send_that_keeps_failing_transiently_gives_up_after_the_last_attempt(
    mail: SyncHarness, stack: Stack, smtp_sink: Any
) -> None:
    outbox = QueueConsumer(stack, "outbox", "OutboxQueue")
    _status, accepted = send(mail)
    smtp_sink.fail_next(50, reply="451 4.7.1 Try again later")
    # When every delivery of the record meets a transient failure
    for attempt in range(1, 6):
        records = outbox.receive()
        assert [r["Attributes"]["ApproximateReceiveCount"] for r in records] == [str(attempt)]
        result = outbox.invoke(records)
        view = email_view(mail, accepted["email_id"])
        if attempt < 5:
            # Then the first four are held back for a retry, the email still queued
            assert len(result["batchItemFailures"]) == 1
            assert view["status"] == "queued"
            outbox.sqs.change_message_visibility(
                QueueUrl=outbox.queue_url, ReceiptHandle=records[0]["ReceiptHandle"], VisibilityTimeout=0
            )
    # And the fifth gives up: the email is failed with the server's reply and the record is gone
    assert result["batchItemFailures"] == []
    assert view["status"] == "failed"
    assert view["failure"]["smtp_code"] == 451
    assert outbox.receive() == []
    assert smtp_sink.messages == []


def test_a_permanent_rejection_fails_at_once_with_the_servers_reply(
    mail: SyncHarness, stack: Stack, smtp_sink: Any
) -> None:
    outbox = QueueConsumer(stack, "outbox", "OutboxQueue")
    smtp_sink.reject_recipient("carol@customer.example", reply="550 5.1.1 No such user")
    _status, accepted = send(mail)
    result = outbox.invoke(outbox.receive())
    assert result["batchItemFailures"] == []  # no retry
    view = email_view(mail, accepted["email_id"])
    assert view["status"] == "failed"
    assert view["failure"]["code"] == "smtp_rejected"
    assert smtp_sink.messages == []


def test_scheduled_send_creates_a_schedule_and_can_be_cancelled(mail: SyncHarness, stack: Stack) -> None:
    when = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    status, accepted = send(mail, send_at=when.isoformat())
    assert status == 202, accepted
    assert accepted["status"] == "scheduled"
    scheduler = boto3.client("scheduler")
    schedule = scheduler.get_schedule(Name=f"send-{accepted['email_id']}")
    assert schedule["ScheduleExpression"] == f"at({when.strftime('%Y-%m-%dT%H:%M:%S')})"
    assert json.loads(schedule["Target"]["Input"])["email_id"] == accepted["email_id"]
    # When it is cancelled
    event_status, body = mail.api("cancel-schedule.json", params={"email_id": accepted["email_id"]})
    assert event_status == 200, body
    assert email_view(mail, accepted["email_id"])["status"] == "cancelled"
    with pytest.raises(scheduler.exceptions.ResourceNotFoundException):
        scheduler.get_schedule(Name=f"send-{accepted['email_id']}")
    # And cancelling again is a conflict
    assert mail.api("cancel-schedule.json", params={"email_id": accepted["email_id"]})[0] == 409


@pytest.mark.parametrize(
    ("delta", "code"), [(timedelta(minutes=-5), "send_at_in_past"), (timedelta(days=400), "send_at_too_far")]
)
def test_send_times_out_of_range_are_a_clear_400(mail: SyncHarness, delta: timedelta, code: str) -> None:
    status, body = send(mail, send_at=(datetime.now(UTC) + delta).isoformat())
    assert status == 400
    assert body["error"]["code"] == code


def test_bad_send_requests_are_rejected_and_nothing_is_queued(mail: SyncHarness, stack: Stack) -> None:
    outbox = QueueConsumer(stack, "outbox", "OutboxQueue")
    cases: list[tuple[dict[str, Any], int]] = [
        ({"to": []}, 422),
        ({"to": [{"address": "not-an-address"}]}, 422),
        ({"text": None}, 422),
        ({"to": [{"address": f"r{i}@example.com"} for i in range(101)]}, 422),
        ({"reply_to_email_id": "em_" + "0" * 26}, 404),
        ({"attachments": [{"filename": "x.bin", "content_base64": "!!!notbase64"}]}, 400),
        ({"attachments": [{"upload_id": "up_" + "0" * 24, "filename": "big.pdf"}]}, 404),
        ({"subject": "line\r\nBcc: victim@example.com"}, 400),
    ]
    for fields, expected in cases:
        status, body = send(mail, **fields)
        assert status == expected, (fields, body)
    assert outbox.receive() == []


def test_an_uploaded_attachment_is_sent(mail: SyncHarness, stack: Stack, smtp_sink: Any) -> None:
    outbox = QueueConsumer(stack, "outbox", "OutboxQueue")
    status, ticket = mail.api(
        "create-upload.json", body={"filename": "contract.pdf", "content_type": "application/pdf", "size": 11}
    )
    assert status == 201, ticket
    # The client PUTs the bytes to the presigned URL; here, straight to the key it names.
    key = f"uploads/{TENANT}/{ticket['upload_id']}"
    assert key in ticket["url"]
    boto3.client("s3").put_object(Bucket=stack.deployed.buckets["MailBucket"], Key=key, Body=b"%PDF-1.7 ok")
    status, accepted = send(
        mail,
        attachments=[
            {"upload_id": ticket["upload_id"], "filename": "contract.pdf", "content_type": "application/pdf"}
        ],
    )
    assert status == 202, accepted
    outbox.drain()
    parsed = email.message_from_bytes(smtp_sink.messages[0].raw, policy=email.policy.default)
    attachment = next(parsed.iter_attachments())
    assert attachment.get_filename() == "contract.pdf"
    assert attachment.get_content() == b"%PDF-1.7 ok"
