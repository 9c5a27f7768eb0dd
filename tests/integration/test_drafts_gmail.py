"""Drafts of a Gmail mailbox in-process against the Google double (`local.google`, users.drafts):
the api and outbox functions on moto."""

from __future__ import annotations

import email
import email.policy
import json
from typing import Any

from tests.events import load_event
from tests.integration.gmail_harness import SUBJECT, TENANT, USER, GmailStack
from tests.integration.queue_harness import QueueConsumer

CUSTOMER = "carol@customer.example"


def call(
    gs: GmailStack, name: str, *, draft_id: str | None = None, body: Any = None, if_match: str | None = None
) -> tuple[int, Any]:
    event = load_event(f"api/{name}", tenant=TENANT, body=body, sub=SUBJECT)
    event["headers"].pop("if-match", None)
    if if_match is not None:
        event["headers"]["if-match"] = if_match
    if draft_id is not None:
        sample = event["pathParameters"]["draft_id"]
        event["pathParameters"] = {"draft_id": draft_id}
        event["rawPath"] = event["requestContext"]["http"]["path"] = event["rawPath"].replace(
            sample, draft_id
        )
    response = gs.invoke("api", event)
    return response["statusCode"], json.loads(response.get("body") or "null")


def body(account_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "to": [{"address": CUSTOMER, "name": "Carol"}],
        "subject": "Quote",
        "text": "Hi Carol, first words",
    } | fields


def text_of(raw: bytes) -> str:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content()).strip()


def test_a_draft_is_a_gmail_draft_updated_in_place_and_sent_by_drafts_send(gmail_stack: GmailStack) -> None:
    google = gmail_stack.google
    outbox = QueueConsumer(gmail_stack.stack, "outbox", "OutboxQueue")
    account_id = gmail_stack.add_account()
    # Given a draft saved here, when the outbox runs
    status, created = call(gmail_stack, "drafts-create.json", body=body(account_id))
    assert status == 201, created
    outbox.drain(expect_success=True)
    # Then Gmail holds it as a draft (drafts.create)
    [(gmail_draft_id, raw)] = google.drafts(USER).items()
    assert text_of(raw) == "Hi Carol, first words"
    # When it is edited here
    status, edited = call(
        gmail_stack,
        "drafts-update.json",
        draft_id=created["draft_id"],
        body=body(account_id, text="Hi Carol, second words"),
        if_match='"1"',
    )
    assert status == 200, edited
    outbox.drain(expect_success=True)
    # Then the same Gmail draft holds the new text (drafts.update), one draft only
    [(same_id, raw)] = google.drafts(USER).items()
    assert same_id == gmail_draft_id
    assert text_of(raw) == "Hi Carol, second words"
    # When it is sent
    status, accepted = call(gmail_stack, "drafts-send.json", draft_id=created["draft_id"], body={})
    assert status == 202, accepted
    outbox.drain(expect_success=True)
    # Then Gmail sent it once, from the draft (drafts.send removed it), with our Message-ID
    (sent,) = google.sent(USER)
    assert sent.recipients == [CUSTOMER]
    assert f"<{accepted['message_id']}>".encode() in sent.raw
    assert google.drafts(USER) == {}
    status, _ = call(gmail_stack, "drafts-get.json", draft_id=created["draft_id"])
    assert status == 404


def test_deleting_a_draft_deletes_the_gmail_draft(gmail_stack: GmailStack) -> None:
    google = gmail_stack.google
    outbox = QueueConsumer(gmail_stack.stack, "outbox", "OutboxQueue")
    account_id = gmail_stack.add_account()
    # Given a draft kept as a Gmail draft
    _, created = call(gmail_stack, "drafts-create.json", body=body(account_id))
    outbox.drain(expect_success=True)
    assert len(google.drafts(USER)) == 1
    # When it is deleted here and the outbox runs
    status, _ = call(gmail_stack, "drafts-delete.json", draft_id=created["draft_id"])
    assert status == 200
    outbox.drain(expect_success=True)
    # Then Gmail has no draft left (drafts.delete)
    assert google.drafts(USER) == {}


def sync(gs: GmailStack, account_id: str) -> None:
    """Queue a sync of the account and hand the SyncQueue's records to the sync function."""
    response = gs.api("sync-account", account_id=account_id)
    assert response["statusCode"] == 202, response
    template = load_event("sqs/sync-renew-watches.json")["Records"][0]
    records = []
    for i, message in enumerate(gs.sync_messages()):
        record = json.loads(json.dumps(template))
        record["messageId"] = f"m-{i}"
        record["body"] = json.dumps(message)
        records.append(record)
    assert gs.invoke("sync", {"Records": records}) == {"batchItemFailures": []}


def test_a_draft_written_in_gmail_is_listed_editable_here_and_forgotten_once_discarded_there(
    gmail_stack: GmailStack,
) -> None:
    google = gmail_stack.google
    outbox = QueueConsumer(gmail_stack.stack, "outbox", "OutboxQueue")
    account_id = gmail_stack.add_account()
    # Given a draft the user saved in Gmail
    raw = (
        f"From: {USER}\r\nTo: Dan <dan@customer.example>\r\nSubject: From Gmail\r\n"
        "Message-ID: <g-1@mail.gmail.com>\r\nDate: Mon, 23 Nov 2026 09:00:00 +0000\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nWritten in Gmail\r\n"
    ).encode()
    gmail_draft_id = google.add_draft(USER, raw)
    # When the mailbox syncs (twice: nothing is stored twice)
    sync(gmail_stack, account_id)
    sync(gmail_stack, account_id)
    # Then it is listed, in step, with its body
    status, listed = call(gmail_stack, "drafts-list.json")
    assert status == 200, listed
    [summary] = listed["items"]
    assert (summary["subject"], summary["to"], summary["synced"]) == (
        "From Gmail",
        ["dan@customer.example"],
        True,
    )
    _, read = call(gmail_stack, "drafts-get.json", draft_id=summary["draft_id"])
    assert (read["origin"], read["text"].strip()) == ("provider", "Written in Gmail")
    # When it is finished here and the outbox runs
    status, edited = call(
        gmail_stack,
        "drafts-update.json",
        draft_id=summary["draft_id"],
        body={k: read[k] for k in ("account_id", "to", "subject")} | {"text": "Finished here"},
        if_match='"1"',
    )
    assert status == 200, edited
    outbox.drain(expect_success=True)
    # Then the same Gmail draft holds the new text
    [(same_id, copy)] = google.drafts(USER).items()
    assert same_id == gmail_draft_id
    assert text_of(copy) == "Finished here"
    # When the user discards it in Gmail and the mailbox syncs
    google.delete_draft(USER, gmail_draft_id)
    sync(gmail_stack, account_id)
    # Then it is gone here too
    _, listed = call(gmail_stack, "drafts-list.json")
    assert listed["items"] == []
