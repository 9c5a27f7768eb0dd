"""Gmail write-back and send in-process against the Google double (issue 11 point 4): the api,
sync and outbox functions on moto, Gmail answered by `local.google`.

The Gmail sync is built elsewhere; these tests store a Gmail message the way it must (through
`ingest_batch`, at the location `mailbridge.providers.gmail.locations` defines)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from mailbridge.config import get_settings
from mailbridge.providers.gmail.connect import client_for
from mailbridge.providers.gmail.locations import FOLDER, UIDVALIDITY, uid_for
from mailbridge.providers.imap.models import FetchedMessage
from mailbridge.store.blobs import BlobStore
from mailbridge.store.emails import EmailStore
from mailbridge.store.keys import email_sk, tenant_pk
from mailbridge.sync.ingest import Mailbox, ingest_batch
from mailbridge.sync.wiring import service_deps
from tests.events import load_event
from tests.integration.gmail_harness import SUBJECT, TENANT, USER, GmailStack
from tests.integration.queue_harness import QueueConsumer

CUSTOMER = "carol@customer.example"


# ---------------------------------------------------------------------------------- helpers


def inbound(subject: str = "Renewal quote", message_id: str = "orig-1@customer.example") -> bytes:
    return (
        f"From: Carol <{CUSTOMER}>\r\nTo: Ada <{USER}>\r\nSubject: {subject}\r\n"
        f"Message-ID: <{message_id}>\r\nDate: Mon, 23 Nov 2026 09:00:00 +0000\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nCould you send the quote?\r\n"
    ).encode()


def store_as_synced(gs: GmailStack, account_id: str, gmail_id: str) -> str:
    """What the Gmail sync writes for one message: ingest_batch at its Gmail location."""
    settings = get_settings()
    raw = client_for(gs.account(account_id), settings.google).get_raw(gmail_id)
    flags = () if "UNREAD" in raw.label_ids else ("\\Seen",)
    fetched = FetchedMessage(
        uid=uid_for(raw.id),
        flags=flags,
        internal_date=raw.received_at or datetime.now(UTC),
        modseq=None,
        size=len(raw.raw),
        raw=raw.raw,
    )
    mailbox = Mailbox(TENANT, account_id, USER, FOLDER, UIDVALIDITY, is_sent_folder="SENT" in raw.label_ids)
    (result,) = ingest_batch(mailbox, [fetched], emails(), BlobStore(settings.mail_bucket))
    assert result.email_id is not None
    return result.email_id


def emails() -> EmailStore:
    return EmailStore(get_settings().tables.emails)


def email_items(gs: GmailStack) -> list[dict[str, Any]]:
    table = gs.stack.table("EmailsTable")
    items = table.query(
        KeyConditionExpression="pk = :pk AND begins_with(sk, :em)",
        ExpressionAttributeValues={":pk": tenant_pk(TENANT), ":em": "EMAIL#"},
    )["Items"]
    return list(items)


def api(gs: GmailStack, name: str, path: str | None = None, **kwargs: Any) -> tuple[int, Any]:
    kwargs.setdefault("sub", SUBJECT)  # the user who connected the mailbox (gmail_harness)
    event = load_event(f"api/{name}.json", tenant=TENANT, **kwargs)
    if path is not None:
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        event["pathParameters"] = {"email_id": path.rsplit("/", 1)[1]}
    response = gs.invoke("api", event)
    return response["statusCode"], json.loads(response.get("body") or "null")


def patch(gs: GmailStack, email_id: str, **fields: bool) -> None:
    status, body = api(gs, "patch-email", f"/emails/{email_id}", body=fields)
    assert status == 200, body


def email_view(gs: GmailStack, email_id: str) -> Any:
    status, body = api(gs, "get-email", f"/emails/{email_id}")
    assert status == 200, body
    return body


def run_sync(gs: GmailStack) -> dict[str, Any]:
    """Hand what the SyncQueue holds to the sync function (the FIFO event source's records)."""
    template = load_event("sqs/sync-renew-watches.json")["Records"][0]
    records = []
    for i, body in enumerate(gs.sync_messages()):
        record = json.loads(json.dumps(template))
        record["messageId"] = f"m-{i}"
        record["body"] = json.dumps(body)
        records.append(record)
    assert records, "nothing was queued"
    return gs.invoke("sync", {"Records": records})


@pytest.fixture
def waits() -> list[float]:
    """The sync service's sleeps, recorded instead of slept."""
    slept: list[float] = []
    service_deps().sleep = slept.append
    return slept


# ---------------------------------------------------------------------------------- write-back


def test_mark_read_and_flag_become_gmail_label_changes(gmail_stack: GmailStack, waits: list[float]) -> None:
    # Given a synced, unread Gmail message
    account_id = gmail_stack.add_account()
    gmail_id = gmail_stack.google.deliver(USER, inbound())
    email_id = store_as_synced(gmail_stack, account_id, gmail_id)
    assert "UNREAD" in gmail_stack.google.labels_of(USER, gmail_id)

    # When the user marks it read and flagged, and the sync function handles the push
    patch(gmail_stack, email_id, read=True, flagged=True)
    assert run_sync(gmail_stack) == {"batchItemFailures": []}

    # Then Gmail shows UNREAD gone and STARRED added, and the stored location agrees
    labels = gmail_stack.google.labels_of(USER, gmail_id)
    assert "UNREAD" not in labels
    assert "STARRED" in labels
    (location,) = email_view(gmail_stack, email_id)["locations"]
    assert set(location["flags"]) >= {"\\Seen", "\\Flagged"}

    # When the user marks it unread and unflagged again
    patch(gmail_stack, email_id, read=False, flagged=False)
    assert run_sync(gmail_stack) == {"batchItemFailures": []}

    # Then the labels are back as they were
    labels = gmail_stack.google.labels_of(USER, gmail_id)
    assert "UNREAD" in labels
    assert "STARRED" not in labels
    assert waits == []


def test_archive_and_trash_become_gmail_inbox_label_and_trash_calls(
    gmail_stack: GmailStack, waits: list[float]
) -> None:
    # Given a synced Gmail message in the inbox
    account_id = gmail_stack.add_account()
    gmail_id = gmail_stack.google.deliver(USER, inbound(message_id="archive-1@customer.example"))
    email_id = store_as_synced(gmail_stack, account_id, gmail_id)
    assert "INBOX" in gmail_stack.google.labels_of(USER, gmail_id)

    # When the user archives it (the sample event's body: {"archived": true})
    status, body = api(gmail_stack, "patch-email-archive", f"/emails/{email_id}")
    assert status == 200, body
    assert run_sync(gmail_stack) == {"batchItemFailures": []}

    # Then Gmail has it out of the inbox, and not in the trash
    labels = gmail_stack.google.labels_of(USER, gmail_id)
    assert "INBOX" not in labels
    assert "TRASH" not in labels

    # When the user puts it back in the inbox, then trashes it
    patch(gmail_stack, email_id, archived=False)
    assert run_sync(gmail_stack) == {"batchItemFailures": []}
    assert "INBOX" in gmail_stack.google.labels_of(USER, gmail_id)
    patch(gmail_stack, email_id, trashed=True)
    assert run_sync(gmail_stack) == {"batchItemFailures": []}

    # Then Gmail's messages.trash put it in TRASH and out of INBOX
    labels = gmail_stack.google.labels_of(USER, gmail_id)
    assert "TRASH" in labels
    assert "INBOX" not in labels

    # When the user restores it
    patch(gmail_stack, email_id, trashed=False)
    assert run_sync(gmail_stack) == {"batchItemFailures": []}

    # Then messages.untrash put it back where it was
    labels = gmail_stack.google.labels_of(USER, gmail_id)
    assert "TRASH" not in labels
    assert "INBOX" in labels
    assert waits == []


def test_archived_and_trashed_at_once_is_refused_and_nothing_is_queued(gmail_stack: GmailStack) -> None:
    # Given a synced Gmail message
    account_id = gmail_stack.add_account()
    gmail_id = gmail_stack.google.deliver(USER, inbound(message_id="both-1@customer.example"))
    email_id = store_as_synced(gmail_stack, account_id, gmail_id)

    # When the client asks for archive and trash in one request, or sends a non-boolean
    both = api(gmail_stack, "patch-email", f"/emails/{email_id}", body={"archived": True, "trashed": True})
    wrong = api(gmail_stack, "patch-email", f"/emails/{email_id}", body={"trashed": "soon"})

    # Then 400 conflicting_changes and 422, and Gmail is asked nothing
    assert both[0] == 400
    assert both[1]["error"]["code"] == "conflicting_changes"
    assert wrong[0] == 422
    assert gmail_stack.sync_messages() == []
    assert "INBOX" in gmail_stack.google.labels_of(USER, gmail_id)


def test_a_gmail_server_error_is_retried_with_backoff(gmail_stack: GmailStack, waits: list[float]) -> None:
    # Given a synced message and a Gmail that fails the next modify with a 503
    account_id = gmail_stack.add_account()
    gmail_id = gmail_stack.google.deliver(USER, inbound())
    email_id = store_as_synced(gmail_stack, account_id, gmail_id)
    gmail_stack.google.fail_next("users.messages.modify", 1, 503)

    # When the user marks it read
    patch(gmail_stack, email_id, read=True)
    result = run_sync(gmail_stack)

    # Then the push waited once (not a tight loop) and the change reached Gmail
    assert result == {"batchItemFailures": []}
    assert waits == [2.0]
    assert "UNREAD" not in gmail_stack.google.labels_of(USER, gmail_id)


def test_a_rate_limited_write_back_goes_back_to_the_queue_then_applies(
    gmail_stack: GmailStack, waits: list[float]
) -> None:
    # Given a synced message and a mailbox whose Gmail quota is spent
    account_id = gmail_stack.add_account()
    gmail_id = gmail_stack.google.deliver(USER, inbound())
    email_id = store_as_synced(gmail_stack, account_id, gmail_id)
    gmail_stack.google.quota.units_per_minute = 0

    # When the user marks it read
    patch(gmail_stack, email_id, read=True)
    queued = gmail_stack.sync_messages()
    template = load_event("sqs/sync-renew-watches.json")["Records"][0]
    record = json.loads(json.dumps(template)) | {"messageId": "m-0", "body": json.dumps(queued[0])}
    # Then the record fails (the only one of its batch: the invocation fails) for the queue to
    # redeliver, after waits of the advised delays (never zero), and Gmail is unchanged
    with pytest.raises(BatchProcessingError):
        gmail_stack.invoke("sync", {"Records": [record]})
    assert len(waits) == 2
    assert all(w > 0 for w in waits)
    assert "UNREAD" in gmail_stack.google.labels_of(USER, gmail_id)

    # When the quota is back and the queue redelivers the record
    from mailbridge.providers.gmail import quota

    gmail_stack.google.quota.units_per_minute = 15_000
    quota._budgets.clear()  # the account's blocked-until has passed
    result = gmail_stack.invoke("sync", {"Records": [record]})

    # Then the change is applied
    assert result == {"batchItemFailures": []}
    assert "UNREAD" not in gmail_stack.google.labels_of(USER, gmail_id)


def test_write_back_of_a_message_gone_from_gmail_is_skipped(
    gmail_stack: GmailStack, waits: list[float]
) -> None:
    # Given a synced message the user then deleted for good in Gmail
    account_id = gmail_stack.add_account()
    gmail_id = gmail_stack.google.deliver(USER, inbound())
    email_id = store_as_synced(gmail_stack, account_id, gmail_id)
    gmail_stack.google.delete(USER, gmail_id)

    # When the user marks it read
    patch(gmail_stack, email_id, read=True)

    # Then the push completes (404 is not retried) and the email is read in mailbridge
    assert run_sync(gmail_stack) == {"batchItemFailures": []}
    assert waits == []
    assert email_view(gmail_stack, email_id)["read"] is True


def test_write_back_of_a_revoked_account_is_dropped_and_the_account_needs_reauth(
    gmail_stack: GmailStack, waits: list[float]
) -> None:
    # Given a synced message and a user who then revoked mailbridge's access
    account_id = gmail_stack.add_account()
    gmail_id = gmail_stack.google.deliver(USER, inbound())
    email_id = store_as_synced(gmail_stack, account_id, gmail_id)
    gmail_stack.google.revoke(USER)

    # When the user marks it read
    patch(gmail_stack, email_id, read=True)

    # Then the push is dropped (nothing to retry until a reconnect) and the account says why
    assert run_sync(gmail_stack) == {"batchItemFailures": []}
    assert gmail_stack.account(account_id).sync.reason == "reauth_required"
    assert "UNREAD" in gmail_stack.google.labels_of(USER, gmail_id)


# ---------------------------------------------------------------------------------- send


def send(gs: GmailStack, account_id: str, **fields: Any) -> dict[str, Any]:
    payload = {
        "account_id": account_id,
        "to": [{"address": CUSTOMER, "name": "Carol"}],
        "subject": "Quote",
        "text": "Hi Carol, the quote is 42,000 EUR.",
    } | fields
    status, body = api(gs, "send-email", body=payload)
    assert status == 202, body
    return dict(body)


def test_a_reply_goes_through_gmail_into_the_thread_and_its_sent_copy_is_the_same_email(
    gmail_stack: GmailStack,
) -> None:
    google = gmail_stack.google
    outbox = QueueConsumer(gmail_stack.stack, "outbox", "OutboxQueue")
    # Given a synced message from a customer
    account_id = gmail_stack.add_account()
    original_gmail_id = google.deliver(USER, inbound())
    original_id = store_as_synced(gmail_stack, account_id, original_gmail_id)

    # When the user replies from the Gmail account and the outbox runs
    accepted = send(gmail_stack, account_id, reply_to_email_id=original_id, subject="Renewal quote")
    outbox.drain(expect_success=True)

    # Then Gmail sent exactly one message, our own bytes with our Message-ID, in the original's thread
    (sent,) = google.sent(USER)
    assert sent.recipients == [CUSTOMER]
    assert f"<{accepted['message_id']}>".encode() in sent.raw
    assert google.thread_of(USER, sent.message_id) == google.thread_of(USER, original_gmail_id)
    view = email_view(gmail_stack, accepted["email_id"])
    assert view["status"] == "sent"
    assert view["thread_id"] == email_view(gmail_stack, original_id)["thread_id"]
    # And the Gmail id it got is recorded as the email's location
    assert [loc["uid"] for loc in view["locations"]] == [uid_for(sent.message_id)]

    # When the sync meets the copy in SENT
    before = len(email_items(gmail_stack))
    synced_id = store_as_synced(gmail_stack, account_id, sent.message_id)

    # Then it is the same email, at the location the send recorded: nothing new is stored
    assert synced_id == accepted["email_id"]
    assert len(email_items(gmail_stack)) == before
    assert len(email_view(gmail_stack, accepted["email_id"])["locations"]) == 1


def test_a_send_retried_after_gmail_accepted_it_is_not_sent_twice(gmail_stack: GmailStack) -> None:
    outbox = QueueConsumer(gmail_stack.stack, "outbox", "OutboxQueue")
    # Given a send that reached Gmail, but whose status never moved on (a crash, a lost answer)
    account_id = gmail_stack.add_account()
    accepted = send(gmail_stack, account_id)
    records = outbox.receive()
    outbox.invoke(records)
    gmail_stack.stack.table("EmailsTable").update_item(
        Key={"pk": tenant_pk(TENANT), "sk": email_sk(accepted["email_id"])},
        UpdateExpression="SET send_status = :q",
        ExpressionAttributeValues={":q": "queued"},
    )
    # When the record is delivered again, past the function's idempotency record
    idempotency = gmail_stack.stack.table("IdempotencyTable")
    for item in idempotency.scan()["Items"]:
        idempotency.delete_item(Key={"id": item["id"]})
    result = outbox.invoke(records)

    # Then Gmail still holds one sent message and the email is sent
    assert result["batchItemFailures"] == []
    assert len(gmail_stack.google.sent(USER)) == 1
    assert email_view(gmail_stack, accepted["email_id"])["status"] == "sent"


def test_a_gmail_server_error_on_send_is_retried_then_sent_once(gmail_stack: GmailStack) -> None:
    outbox = QueueConsumer(gmail_stack.stack, "outbox", "OutboxQueue")
    account_id = gmail_stack.add_account()
    accepted = send(gmail_stack, account_id)
    gmail_stack.google.fail_next("users.messages.send", 1, 503)
    # When the first attempt meets a 503
    records = outbox.receive()
    first = outbox.invoke(records)
    # Then the record is held back for a retry and nothing was sent
    assert len(first["batchItemFailures"]) == 1
    assert email_view(gmail_stack, accepted["email_id"])["status"] == "queued"
    assert gmail_stack.google.sent(USER) == []
    # When SQS redelivers it after the backoff
    outbox.sqs.change_message_visibility(
        QueueUrl=outbox.queue_url, ReceiptHandle=records[0]["ReceiptHandle"], VisibilityTimeout=0
    )
    outbox.invoke(outbox.receive())
    # Then it is sent once
    assert email_view(gmail_stack, accepted["email_id"])["status"] == "sent"
    assert len(gmail_stack.google.sent(USER)) == 1


@pytest.mark.parametrize("how", ["marked", "revoked"])
def test_a_send_from_an_account_that_needs_reauth_fails_with_that_code(
    gmail_stack: GmailStack, how: str
) -> None:
    outbox = QueueConsumer(gmail_stack.stack, "outbox", "OutboxQueue")
    # Given a queued send from a Gmail account that is marked reauth_required (a refresh failed
    # earlier), or whose grant the user revoked at Google since
    account_id = gmail_stack.add_account()
    accepted = send(gmail_stack, account_id)
    if how == "marked":
        gmail_stack.accounts.mark_reauth_required(TENANT, account_id, gmail_stack.clock.now(), "revoked")
    else:
        gmail_stack.google.revoke(USER)
    # When the outbox runs
    result = outbox.invoke(outbox.receive())
    # Then the send fails at once with reauth_required, and nothing went out
    assert result["batchItemFailures"] == []
    view = email_view(gmail_stack, accepted["email_id"])
    assert view["status"] == "failed"
    assert view["failure"]["code"] == "reauth_required"
    assert gmail_stack.google.sent(USER) == []
