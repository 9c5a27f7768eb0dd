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
import requests

from mailbridge import aws
from mailbridge.store.accounts import account_sk
from mailbridge.store.keys import tenant_pk
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
    assert [e["email_id"] for e in listed(mail, status="sent")] == [accepted["email_id"]]
    assert listed(mail, status="queued") == listed(mail, status="sending") == []
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


def listed(h: SyncHarness, **query: str) -> list[dict[str, Any]]:
    event = load_event("api/list-emails.json", tenant=TENANT, role="viewer", query=query)
    response = h.invoke_api(event)
    assert response["statusCode"] == 200, response
    return list(json.loads(response["body"])["items"])


def test_a_cancelled_send_stays_listed_and_each_status_is_a_filter(mail: SyncHarness, stack: Stack) -> None:
    # Given two scheduled sends
    when = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0).isoformat()
    first, second = (send(mail, send_at=when, subject=s)[1]["email_id"] for s in ("One", "Two"))
    scheduled = mail.invoke_api(load_event("api/list-emails-scheduled.json", tenant=TENANT))
    assert {e["email_id"] for e in json.loads(scheduled["body"])["items"]} == {first, second}
    # When one is cancelled
    assert mail.api("cancel-schedule.json", params={"email_id": first})[0] == 200
    # Then it is still in the mailbox listing, with its status, not deleted
    [row] = [e for e in listed(mail) if e["email_id"] == first]
    assert (row["status"], row["deleted"], row["subject"]) == ("cancelled", False, "One")
    # And each status lists its own outbound mail only
    assert [e["email_id"] for e in listed(mail, status="cancelled")] == [first]
    assert [e["email_id"] for e in listed(mail, status="scheduled")] == [second]
    assert listed(mail, status="sent") == []
    # And an unknown status is refused
    event = load_event("api/list-emails.json", tenant=TENANT, query={"status": "lost"})
    assert mail.invoke_api(event)["statusCode"] == 422


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
        ({"subject": "line\r\nBcc: victim@example.com"}, 422),
    ]
    for fields, expected in cases:
        status, body = send(mail, **fields)
        assert status == expected, (fields, body)
    assert outbox.receive() == []


def upload(h: SyncHarness, size: int, content_type: str = "application/pdf") -> dict[str, Any]:
    status, ticket = h.api(
        "create-upload.json", body={"filename": "contract.pdf", "content_type": content_type, "size": size}
    )
    assert status == 201, ticket
    return dict(ticket)


def test_an_uploaded_attachment_is_sent(mail: SyncHarness, stack: Stack, smtp_sink: Any) -> None:
    outbox = QueueConsumer(stack, "outbox", "OutboxQueue")
    # Given a ticket for 11 bytes, used as a client would: a form POST of its fields, then the file
    ticket = upload(mail, size=11)
    assert ticket["method"] == "POST"
    posted = requests.post(
        ticket["url"], data=ticket["fields"], files={"file": ("contract.pdf", b"%PDF-1.7 ok")}, timeout=10
    )
    assert posted.status_code == 204, posted.text
    # When the upload is attached to a send
    status, accepted = send(
        mail,
        attachments=[
            {"upload_id": ticket["upload_id"], "filename": "contract.pdf", "content_type": "application/pdf"}
        ],
    )
    # Then the file goes out as the attachment
    assert status == 202, accepted
    outbox.drain()
    parsed = email.message_from_bytes(smtp_sink.messages[0].raw, policy=email.policy.default)
    attachment = next(parsed.iter_attachments())
    assert attachment.get_filename() == "contract.pdf"
    assert attachment.get_content() == b"%PDF-1.7 ok"


def test_the_upload_policy_binds_key_type_and_declared_size(mail: SyncHarness, stack: Stack) -> None:
    # Given a member asks to upload 10 bytes of PDF
    before = datetime.now(UTC).replace(microsecond=0)
    # When the ticket comes back
    ticket = upload(mail, size=10)
    # Then it is a presigned POST (the old PUT shape is gone) whose signed policy S3 enforces:
    assert set(ticket) == {"upload_id", "method", "url", "fields", "expires_in", "max_size"}
    assert ticket["max_size"] == 10
    key = f"uploads/{TENANT}/{ticket['upload_id']}"
    fields = ticket["fields"]
    assert fields["key"] == key
    assert fields["Content-Type"] == "application/pdf"
    policy = json.loads(base64.b64decode(fields["policy"]))
    conditions = policy["conditions"]
    # the file is 1..10 bytes (moto does not enforce POST policies, so the policy itself is checked)
    assert ["content-length-range", 1, 10] in conditions
    # the key, the bucket, the Content-Type and the declared size are fixed
    assert {"key": key} in conditions
    assert {"bucket": stack.deployed.buckets["MailBucket"]} in conditions
    assert {"Content-Type": "application/pdf"} in conditions
    assert {"x-amz-meta-declared-size": "10"} in conditions
    # and every form field the client sends is covered by a condition (nothing left free)
    signed = {name.lower() for c in conditions if isinstance(c, dict) for name in c}
    unsigned = {"policy", "x-amz-signature", "signature", "awsaccesskeyid"}
    assert {name.lower() for name in fields} - unsigned <= signed
    # and the policy expires when the ticket says
    expiration = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    assert before < expiration <= datetime.now(UTC) + timedelta(seconds=ticket["expires_in"])


def test_an_upload_larger_than_declared_is_refused_without_being_read(
    mail: SyncHarness, stack: Stack
) -> None:
    outbox = QueueConsumer(stack, "outbox", "OutboxQueue")
    bucket = stack.deployed.buckets["MailBucket"]
    s3 = boto3.client("s3")
    # Given an upload declared as 10 bytes whose object holds 30 (put straight into the bucket),
    # and one with no declared size that holds a byte more than 25 MB
    small = upload(mail, size=10)
    s3.put_object(
        Bucket=bucket,
        Key=f"uploads/{TENANT}/{small['upload_id']}",
        Body=b"x" * 30,
        Metadata={"declared-size": "10"},
    )
    huge = upload(mail, size=1)
    s3.put_object(Bucket=bucket, Key=f"uploads/{TENANT}/{huge['upload_id']}", Body=b"x" * (25 * 2**20 + 1))
    reads: list[str] = []
    aws.s3().meta.events.register(
        "provide-client-params.s3.GetObject", lambda params, **_: reads.append(params["Key"])
    )
    for ticket in (small, huge):
        # When a send attaches it
        status, body = send(mail, attachments=[{"upload_id": ticket["upload_id"], "filename": "big.pdf"}])
        # Then it is refused with a code, nothing is queued, and the object was never read
        assert status == 400, body
        assert body["error"]["code"] == "attachment_too_large"
    assert reads == []
    assert outbox.receive() == []


# -- header safety (issue 8 points 1 and 3) --------------------------------------------------------

# Decodes (RFC 2047) to "Hi" CR LF "Bcc: x@evil.example"
EVIL = "=?utf-8?b?SGkNCkJjYzogeEBldmlsLmV4YW1wbGU=?="
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()


def _types(body: Any) -> set[str]:
    return {str(d["type"]) for d in body["error"]["details"]}


@pytest.mark.parametrize(
    ("fields", "rule"),
    [
        ({"subject": EVIL}, "header_injection"),
        ({"subject": "Hi\r\nBcc: x@evil.example"}, "control_characters"),
        ({"to": [{"address": "carol@customer.example", "name": EVIL}]}, "header_injection"),
        ({"bcc": [{"address": "b@customer.example", "name": "B\nX-Injected: 1"}]}, "control_characters"),
        ({"attachments": [{"filename": EVIL, "content_base64": "eA=="}]}, "header_injection"),
        ({"attachments": [{"upload_id": "up_" + "0" * 24, "filename": EVIL}]}, "header_injection"),
        ({"text": "nul \x00 byte"}, "control_characters"),
        ({"text": None, "html": "<p>\x1b[31m</p>"}, "control_characters"),
    ],
)
def test_header_text_that_is_or_decodes_to_a_line_break_is_a_422(
    mail: SyncHarness, stack: Stack, fields: dict[str, Any], rule: str
) -> None:
    outbox = QueueConsumer(stack, "outbox", "OutboxQueue")
    # Given a send whose header text carries (or RFC 2047 decodes to) control characters
    status, body = send(mail, **fields)
    # Then the API answers 422 naming the rule, and nothing is queued
    assert status == 422, body
    assert rule in _types(body)
    assert outbox.receive() == []


def test_an_upload_file_name_that_decodes_to_a_line_break_is_a_422(mail: SyncHarness) -> None:
    status, body = mail.api("create-upload.json", body={"filename": EVIL, "size": 10})
    assert status == 422, body
    assert "header_injection" in _types(body)


@pytest.mark.parametrize(
    ("attachment", "rule"),
    [
        ({"content_id": "MARK7f3a>x@example.com", "inline": True}, "invalid_content_id"),
        ({"content_id": "MARK7f3a@example.com\r\nX-Injected: 1", "inline": True}, "invalid_content_id"),
        ({"content_id": "MARK7f3a x@example.com", "inline": True}, "invalid_content_id"),
        ({"content_type": "multipart/mixed; boundary=MARK7f3a"}, "invalid_content_type"),
        ({"content_type": "multipart/mixed"}, "invalid_content_type"),
        ({"content_type": "message/partial"}, "invalid_content_type"),
        ({"content_type": "text/MARK7f3a\r\n"}, "invalid_content_type"),
    ],
)
def test_attachment_fields_that_broke_compose_are_a_4xx_and_never_logged(
    mail: SyncHarness,
    stack: Stack,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    attachment: dict[str, Any],
    rule: str,
) -> None:
    outbox = QueueConsumer(stack, "outbox", "OutboxQueue")
    capfd.readouterr()  # forget what connecting the mailbox logged
    # Given an inline attachment whose content_id or content_type a message cannot carry
    spec = {"filename": "logo.png", "content_type": "image/png", "content_base64": PNG} | attachment
    # When sending it
    status, body = send(mail, html='<img src="cid:logo">', attachments=[spec])
    # Then the API answers 422 with the rule, nothing is queued
    assert status == 422, body
    assert rule in _types(body)
    assert outbox.receive() == []
    # And no log line carries the value
    out, err = capfd.readouterr()
    assert "MARK7f3a" not in out + err + caplog.text
    assert "input_value" not in out + err + caplog.text


def test_a_literal_encoded_word_is_sent_as_the_text_typed(
    mail: SyncHarness, stack: Stack, smtp_sink: Any
) -> None:
    outbox = QueueConsumer(stack, "outbox", "OutboxQueue")
    # Given a subject and a name that look like encoded words but decode to harmless text
    subject = "How =?utf-8?q?this?= looks"
    status, accepted = send(
        mail, subject=subject, to=[{"address": "carol@customer.example", "name": "=?utf-8?q?Carol?="}]
    )
    assert status == 202, accepted
    # When the outbox sends it
    outbox.drain()
    # Then the recipient's reader shows exactly the text typed
    parsed = email.message_from_bytes(smtp_sink.messages[0].raw, policy=email.policy.default)
    assert parsed["Subject"] == subject
    assert parsed["To"].addresses[0].display_name == "=?utf-8?q?Carol?="
    assert email_view(mail, accepted["email_id"])["subject"] == subject


@pytest.mark.parametrize(
    "inbound_subject",
    [
        EVIL,
        # Encoded twice: the stored subject is the literal encoded word, which the stdlib's header
        # registry decoded again when the reply's Subject was assigned.
        "=?utf-8?b?" + base64.b64encode(EVIL.encode()).decode() + "?=",
    ],
)
def test_a_reply_to_a_hostile_inbound_subject_sends_no_extra_header(
    mail: SyncHarness, stack: Stack, smtp_sink: Any, inbound_subject: str
) -> None:
    outbox = QueueConsumer(stack, "outbox", "OutboxQueue")
    # Given an inbound mail whose Subject decodes to CR LF "Bcc: x@evil.example", synced
    mail.server.append(mail.user, "INBOX", message(inbound_subject, msgid="evil-1@customer.example"))
    mail.api("sync-account.json", params={"account_id": mail.account_id})
    mail.drain()
    stored = next(e for e in mail.emails() if e["message_id"] == "evil-1@customer.example")
    # When the user replies without typing a subject
    status, accepted = send(mail, subject="", reply_to_email_id=stored["email_id"])
    assert status == 202, accepted
    outbox.drain()
    # Then what went out has one Subject, no Bcc, and only the intended recipient
    (sent,) = smtp_sink.messages
    parsed = email.message_from_bytes(sent.raw, policy=email.policy.default)
    names = [name.lower() for name in parsed]
    assert "bcc" not in names
    assert names.count("subject") == 1
    assert str(parsed["Subject"]) == "Re: " + " ".join(str(stored["subject"]).split())
    assert sent.rcpt_tos == ["carol@customer.example"]


def _set_account(mail: SyncHarness, stack: Stack, field: str, value: str) -> None:
    """Write a value into the stored account as an older version could have stored it."""
    stack.table("AccountsTable").update_item(
        Key={"pk": tenant_pk(TENANT), "sk": account_sk(mail.account_id)},
        UpdateExpression="SET #a.#f = :v",
        ExpressionAttributeNames={"#a": "account", "#f": field},
        ExpressionAttributeValues={":v": value},
    )


@pytest.mark.parametrize("display_name", ["Alice\r\nBcc: x@evil.example", EVIL])
def test_a_stored_display_name_that_breaks_the_header_rule_is_a_400_not_a_500(
    mail: SyncHarness, stack: Stack, display_name: str
) -> None:
    outbox = QueueConsumer(stack, "outbox", "OutboxQueue")
    # Given an account whose display name was stored before it was validated
    _set_account(mail, stack, "display_name", display_name)
    # When sending from it
    status, body = send(mail)
    # Then the send is refused at request time with the typed code, naming the From field
    assert status == 400, body
    assert body["error"]["code"] == "header_injection"
    assert body["error"]["details"] == {"field": "from"}
    assert outbox.receive() == []


def test_a_draft_rule_that_fails_inside_the_send_is_a_400_without_the_value(
    mail: SyncHarness, stack: Stack, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # Given an account whose stored address no longer passes the address rules
    _set_account(mail, stack, "address", "MARK7f3a-not-an-address")
    capfd.readouterr()
    # When sending from it
    status, body = send(mail)
    # Then it is a 400 naming the field and the rule, with no value in the answer or the logs
    assert status == 400, body
    assert body["error"]["code"] == "invalid_message"
    assert ["from"] in [d["loc"] for d in body["error"]["details"]]
    out, err = capfd.readouterr()
    assert "MARK7f3a" not in json.dumps(body) + out + err + caplog.text


def test_the_inline_image_sample_sends_two_quoted_names_and_a_cid_image(
    mail: SyncHarness, stack: Stack, smtp_sink: Any
) -> None:
    outbox = QueueConsumer(stack, "outbox", "OutboxQueue")
    # Given the sample request: two names that need quoting and encoding, an inline image
    sample = json.loads(load_event("api/send-email-inline-image.json")["body"])
    status, accepted = mail.api("send-email-inline-image.json", body=sample | {"account_id": mail.account_id})
    assert status == 202, accepted
    # When the outbox sends it
    outbox.drain()
    # Then the server received two mailboxes in To (real-world case 14 through the API)
    parsed = email.message_from_bytes(smtp_sink.messages[0].raw, policy=email.policy.default)
    assert [(a.display_name, a.addr_spec) for a in parsed["To"].addresses] == [
        ("Löstname, Firstname - COMPANY", "f.loestname@customer.example"),
        ("Smith, Ann", "ann@customer.example"),
    ]
    assert sorted(smtp_sink.messages[0].rcpt_tos) == ["ann@customer.example", "f.loestname@customer.example"]
    # And the image is in multipart/related with its Content-ID, the CSV keeps its name
    image = next(p for p in parsed.walk() if p.get_content_type() == "image/png")
    assert image["Content-ID"] == "<logo@mail.example.com>"
    assert [p.get_filename() for p in parsed.iter_attachments()] == ["Übersicht Q3.csv"]
