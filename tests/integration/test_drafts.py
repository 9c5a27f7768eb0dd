"""Drafts end to end in-process: the api and outbox handlers on moto, a real Dovecot mailbox whose
Drafts folder (SPECIAL-USE \\Drafts) holds the copies, and the SMTP sink receiving sent drafts."""

from __future__ import annotations

import email
import email.policy
import json
import re
from typing import Any

import pytest

from mailbridge.sync.wiring import service_deps
from tests.events import load_event
from tests.fixtures.aws import Stack
from tests.fixtures.smtp import SINK_PASSWORD, SINK_USER
from tests.integration.dovecot import DovecotServer, DovecotUser
from tests.integration.queue_harness import QueueConsumer
from tests.integration.sync_harness import TENANT, Invoke, SyncHarness

pytestmark = pytest.mark.dovecot


@pytest.fixture
def mail(
    stack: Stack, invoke_api: Invoke, dovecot_server: DovecotServer, dovecot_user: DovecotUser, smtp_sink: Any
) -> SyncHarness:
    """A connected, synced mailbox that can send through the SMTP sink."""
    h = SyncHarness(stack, invoke_api, dovecot_server, dovecot_user)
    service_deps().sleep = lambda _s: None
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


@pytest.fixture
def outbox(stack: Stack) -> QueueConsumer:
    return QueueConsumer(stack, "outbox", "OutboxQueue")


def call(
    h: SyncHarness,
    name: str,
    *,
    draft_id: str | None = None,
    body: Any = None,
    if_match: str | None = None,
    query: dict[str, str] | None = None,
    role: str = "member",
) -> tuple[int, Any]:
    event = load_event(f"api/{name}", tenant=TENANT, role=role, body=body, query=query)
    event["headers"].pop("if-match", None)
    if if_match is not None:
        event["headers"]["if-match"] = if_match
    if draft_id is not None:
        sample = event["pathParameters"]["draft_id"]
        event["pathParameters"] = {"draft_id": draft_id}
        path = event["rawPath"].replace(sample, draft_id)
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
    response = h.invoke_api(event)
    return response["statusCode"], json.loads(response["body"]) if response.get("body") else None


def draft_body(h: SyncHarness, **fields: Any) -> dict[str, Any]:
    return {
        "account_id": h.account_id,
        "to": [{"address": "carol@customer.example", "name": "Carol"}],
        "subject": "Quote",
        "text": "Hi Carol, first words",
    } | fields


def drafts_folder(h: SyncHarness) -> list[tuple[set[str], email.message.EmailMessage]]:
    """What Dovecot's Drafts folder holds (flags, message), read with plain imaplib."""
    found = []
    with h.server.session(h.user, "Drafts") as conn:
        typ, data = conn.uid("SEARCH", "ALL")
        assert typ == "OK"
        for uid in data[0].split():
            typ, fetched = conn.uid("FETCH", uid, "(FLAGS BODY.PEEK[])")
            assert typ == "OK"
            meta, raw = fetched[0]
            flags_text = re.search(rb"FLAGS \(([^)]*)\)", meta)
            flags = set(flags_text.group(1).decode().split()) if flags_text else set()
            message = email.message_from_bytes(raw, policy=email.policy.default)
            found.append((flags, message))
    return found


def stored_drafts(h: SyncHarness) -> list[dict[str, Any]]:
    """The draft items the emails table holds for the tenant."""
    from boto3.dynamodb.conditions import Key

    table = h.stack.table("EmailsTable")
    response = table.query(
        KeyConditionExpression=Key("pk").eq(f"TENANT#{TENANT}") & Key("sk").begins_with("DRAFT#")
    )
    return list(response["Items"])


def text_of(message: email.message.EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def test_a_draft_saved_here_lands_in_the_drafts_folder_and_an_edit_replaces_it(
    mail: SyncHarness, outbox: QueueConsumer
) -> None:
    # Given a draft saved through the API
    status, created = call(mail, "drafts-create.json", body=draft_body(mail))
    assert status == 201, created
    assert created["version"] == 1
    assert created["synced"] is False
    # When the outbox runs the queued sync
    outbox.drain(expect_success=True)
    # Then Dovecot's Drafts folder holds it, flagged \Draft and \Seen
    [(flags, copy)] = drafts_folder(mail)
    assert {"\\Draft", "\\Seen"} <= flags
    assert copy["Subject"] == "Quote"
    assert text_of(copy).strip() == "Hi Carol, first words"
    _, read = call(mail, "drafts-get.json", draft_id=created["draft_id"], role="viewer")
    assert read["synced"] is True
    # When the draft is edited at the version read and the outbox runs again
    status, edited = call(
        mail,
        "drafts-update.json",
        draft_id=created["draft_id"],
        body=draft_body(mail, text="Hi Carol, second words"),
        if_match='"1"',
    )
    assert status == 200, edited
    assert edited["version"] == 2
    outbox.drain(expect_success=True)
    # Then the folder holds one copy only, the edited one
    [(flags, copy)] = drafts_folder(mail)
    assert "\\Draft" in flags
    assert text_of(copy).strip() == "Hi Carol, second words"
    # And the same record delivered again changes nothing
    status, _ = call(
        mail,
        "drafts-update.json",
        draft_id=created["draft_id"],
        body=draft_body(mail, text="Hi Carol, second words"),
        if_match="2",
    )
    assert status == 200
    outbox.drain(expect_success=True)
    outbox.drain(expect_success=True)
    assert len(drafts_folder(mail)) == 1
    # And the listing shows it at its current version
    _, listed = call(mail, "drafts-list.json", role="viewer")
    assert [(d["draft_id"], d["version"], d["synced"]) for d in listed["items"]] == [
        (created["draft_id"], 3, True)
    ]


def test_a_stale_version_is_refused_and_nothing_is_overwritten(mail: SyncHarness) -> None:
    # Given a draft two editors read at version 1
    _, created = call(mail, "drafts-create.json", body=draft_body(mail))
    draft_id = created["draft_id"]
    # When the first saves at version 1
    status, first = call(
        mail, "drafts-update.json", draft_id=draft_id, body=draft_body(mail, text="A"), if_match='"1"'
    )
    assert status == 200, first
    # Then the second, still at version 1, gets 412 and the first one's text stays
    status, refused = call(
        mail, "drafts-update.json", draft_id=draft_id, body=draft_body(mail, text="B"), if_match='"1"'
    )
    assert status == 412, refused
    assert refused["error"]["code"] == "version_conflict"
    _, read = call(mail, "drafts-get.json", draft_id=draft_id, role="viewer")
    assert (read["version"], read["text"]) == (2, "A")
    # And a delete at the stale version is refused too
    status, refused = call(mail, "drafts-delete.json", draft_id=draft_id, if_match="1")
    assert (status, refused["error"]["code"]) == (412, "version_conflict")


@pytest.mark.parametrize(
    ("if_match", "status", "code"),
    [
        (None, 428, "precondition_required"),
        ("", 428, "precondition_required"),
        ("*", 400, "invalid_if_match"),
        ('W/"1"', 400, "invalid_if_match"),
        ('"1", "2"', 400, "invalid_if_match"),
        ("0", 400, "invalid_if_match"),
        ("9" * 400, 400, "invalid_if_match"),
        ("1\r\nX: y", 400, "invalid_if_match"),
    ],
)
def test_a_put_without_a_usable_if_match_is_refused(
    mail: SyncHarness, if_match: str | None, status: int, code: str
) -> None:
    _, created = call(mail, "drafts-create.json", body=draft_body(mail))
    answered, body = call(
        mail,
        "drafts-update.json",
        draft_id=created["draft_id"],
        body=draft_body(mail, text="B"),
        if_match=if_match,
    )
    assert (answered, body["error"]["code"]) == (status, code)
    _, read = call(mail, "drafts-get.json", draft_id=created["draft_id"], role="viewer")
    assert read["version"] == 1


def test_sending_a_draft_sends_it_once_and_removes_it_here_and_in_the_mailbox(
    mail: SyncHarness, outbox: QueueConsumer, smtp_sink: Any
) -> None:
    # Given a draft whose copy is in Dovecot's Drafts folder
    _, created = call(mail, "drafts-create.json", body=draft_body(mail))
    outbox.drain(expect_success=True)
    assert len(drafts_folder(mail)) == 1
    # When it is sent
    status, accepted = call(mail, "drafts-send.json", draft_id=created["draft_id"], body={}, if_match='"1"')
    assert status == 202, accepted
    assert accepted["status"] == "queued"
    # Then it is no longer a draft
    _, listed = call(mail, "drafts-list.json", role="viewer")
    assert listed["items"] == []
    status, _ = call(mail, "drafts-get.json", draft_id=created["draft_id"], role="viewer")
    assert status == 404
    # When the outbox runs
    outbox.drain(expect_success=True)
    # Then the SMTP server got it once, and the Drafts folder is empty
    assert len(smtp_sink.messages) == 1
    sent = email.message_from_bytes(smtp_sink.messages[0].raw, policy=email.policy.default)
    assert sent["Subject"] == "Quote"
    assert "carol@customer.example" in smtp_sink.messages[0].rcpt_tos
    assert drafts_folder(mail) == []
    # And the draft is no longer stored
    assert stored_drafts(mail) == []
    # And the outbound email is listed as sent, like any send
    event = load_event("api/get-email.json", tenant=TENANT, role="viewer")
    event["pathParameters"] = {"email_id": accepted["email_id"]}
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/emails/{accepted['email_id']}"
    assert json.loads(mail.invoke_api(event)["body"])["status"] == "sent"


def test_an_unfinished_draft_is_not_sent_and_stays_as_it_was(mail: SyncHarness, smtp_sink: Any) -> None:
    # Given a draft without a recipient
    _, created = call(mail, "drafts-create.json", body=draft_body(mail, to=[]))
    # When it is sent
    status, refused = call(mail, "drafts-send.json", draft_id=created["draft_id"], body={})
    # Then 422 draft_incomplete, and the draft is still listed at its version
    assert (status, refused["error"]["code"]) == (422, "draft_incomplete")
    _, read = call(mail, "drafts-get.json", draft_id=created["draft_id"], role="viewer")
    assert read["version"] == 1
    # And a send the outbox refuses (a schedule in the past) gives the draft back unchanged too
    _, completed = call(
        mail, "drafts-update.json", draft_id=created["draft_id"], body=draft_body(mail), if_match="1"
    )
    status, refused = call(
        mail, "drafts-send.json", draft_id=created["draft_id"], body={"send_at": "2020-01-01T00:00:00Z"}
    )
    assert (status, refused["error"]["code"]) == (400, "send_at_in_past")
    _, read = call(mail, "drafts-get.json", draft_id=created["draft_id"], role="viewer")
    assert read["version"] == completed["version"] == 2
    assert smtp_sink.messages == []


def test_deleting_a_draft_removes_its_copy_from_the_mailbox(mail: SyncHarness, outbox: QueueConsumer) -> None:
    # Given a draft whose copy is in the Drafts folder, and a message of the user's own there
    _, created = call(mail, "drafts-create.json", body=draft_body(mail))
    outbox.drain(expect_success=True)
    own = b"From: user@example.com\r\nSubject: mine\r\nMessage-ID: <mine@example.com>\r\n\r\nkeep me\r\n"
    mail.server.append(mail.user, "Drafts", own, flags=["\\Draft", "\\Deleted"])
    # When it is deleted and the outbox runs
    status, deleted = call(mail, "drafts-delete.json", draft_id=created["draft_id"])
    assert (status, deleted["status"]) == (200, "deleted")
    status, _ = call(mail, "drafts-get.json", draft_id=created["draft_id"], role="viewer")
    assert status == 404
    outbox.drain(expect_success=True)
    # Then only the user's own message is left (UID EXPUNGE touched nothing else marked \Deleted)
    assert [m["Subject"] for _, m in drafts_folder(mail)] == ["mine"]
    # And the draft is no longer stored
    assert stored_drafts(mail) == []


def test_bad_input_gets_a_4xx(mail: SyncHarness) -> None:
    # A header injection in the subject, an unknown account, an unknown draft, a forged cursor
    status, body = call(
        mail, "drafts-create.json", body=draft_body(mail, subject="Hi\r\nBcc: x@evil.example")
    )
    assert status == 422, body
    status, body = call(
        mail, "drafts-create.json", body=draft_body(mail, account_id="acc_00000000000000000000")
    )
    assert (status, body["error"]["code"]) == (404, "account_not_found")
    status, body = call(mail, "drafts-get.json", draft_id="dr_not-an-id", role="viewer")
    assert (status, body["error"]["code"]) == (404, "draft_not_found")
    for _ in range(2):
        call(mail, "drafts-create.json", body=draft_body(mail))
    _, page = call(mail, "drafts-list.json", role="viewer", query={"limit": "1"})
    assert len(page["items"]) == 1
    assert page["next_cursor"]
    forged = page["next_cursor"][:-2] + ("AA" if not page["next_cursor"].endswith("AA") else "BB")
    status, body = call(mail, "drafts-list.json", role="viewer", query={"limit": "1", "cursor": forged})
    assert (status, body["error"]["code"]) == (400, "invalid_cursor")
    # And a viewer cannot write
    status, body = call(mail, "drafts-create.json", body=draft_body(mail), role="viewer")
    assert status == 403


def sync(h: SyncHarness) -> None:
    status, body = h.api("sync-account.json", params={"account_id": h.account_id})
    assert status == 202, body
    h.drain()


def drafts_uids(h: SyncHarness) -> list[int]:
    with h.server.session(h.user, "Drafts") as conn:
        typ, data = conn.uid("SEARCH", "ALL")
        assert typ == "OK"
    return [int(uid) for uid in data[0].split()]


def test_a_draft_written_in_another_mail_client_is_listed_and_editable_here(
    mail: SyncHarness, outbox: QueueConsumer
) -> None:
    # Given a draft another IMAP client saved in the Drafts folder
    raw = (
        b"From: user@example.com\r\nTo: Dan <dan@customer.example>\r\nSubject: From my phone\r\n"
        b"Message-ID: <phone-1@example.com>\r\nDate: Tue, 17 Nov 2026 10:00:00 +0000\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nWritten on the phone\r\n"
    )
    mail.server.append(mail.user, "Drafts", raw, flags=["\\Draft", "\\Seen"])
    # When the mailbox syncs (twice: a repeated run stores nothing twice)
    sync(mail)
    sync(mail)
    # Then it is listed, in step with its copy, and readable with its body
    _, listed = call(mail, "drafts-list.json", role="viewer")
    [summary] = listed["items"]
    assert (summary["subject"], summary["to"], summary["version"], summary["synced"]) == (
        "From my phone",
        ["dan@customer.example"],
        1,
        True,
    )
    _, read = call(mail, "drafts-get.json", draft_id=summary["draft_id"], role="viewer")
    assert read["origin"] == "provider"
    assert read["text"].strip() == "Written on the phone"
    # When it is finished here and the outbox runs
    status, edited = call(
        mail,
        "drafts-update.json",
        draft_id=summary["draft_id"],
        body={k: read[k] for k in ("account_id", "to", "subject")} | {"text": "Finished here"},
        if_match='"1"',
    )
    assert status == 200, edited
    outbox.drain(expect_success=True)
    # Then the Drafts folder holds one copy, the edited one, which the next sync does not take
    # for another client draft
    [(flags, copy)] = drafts_folder(mail)
    assert "\\Draft" in flags
    assert text_of(copy).strip() == "Finished here"
    sync(mail)
    _, listed = call(mail, "drafts-list.json", role="viewer")
    assert [(d["draft_id"], d["version"]) for d in listed["items"]] == [(summary["draft_id"], 2)]
    # When the user deletes it in the mail client
    for uid in drafts_uids(mail):
        mail.server.expunge(mail.user, "Drafts", uid)
    sync(mail)
    # Then it is gone here too
    _, listed = call(mail, "drafts-list.json", role="viewer")
    assert listed["items"] == []


def test_a_copy_written_by_mailbridge_is_never_picked_up_as_a_client_draft(mail: SyncHarness) -> None:
    # Given a copy of a draft of ours in the Drafts folder that no draft records (its APPEND was
    # done but the record of it lost, e.g. the outbox stopped in between)
    raw = (
        b"From: user@example.com\r\nTo: carol@customer.example\r\nSubject: Quote\r\n"
        b"Message-ID: <dr_0193a4b2c5d6e7f8091a2b3c4d.3@example.com>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHi Carol\r\n"
    )
    mail.server.append(mail.user, "Drafts", raw, flags=["\\Draft", "\\Seen"])
    # When the mailbox syncs
    sync(mail)
    # Then no draft is made of it
    _, listed = call(mail, "drafts-list.json", role="viewer")
    assert listed["items"] == []


def test_a_large_draft_is_stored_and_an_oversized_one_refused(mail: SyncHarness) -> None:
    # Given a draft body far past DynamoDB's 400 KB item limit (the body lives in S3)
    large = "x" * 1_500_000
    # When it is saved, then read
    status, created = call(mail, "drafts-create.json", body=draft_body(mail, text=large))
    assert status == 201, created
    _, read = call(mail, "drafts-get.json", draft_id=created["draft_id"], role="viewer")
    # Then it comes back whole
    assert read["text"] == large
    # And a text over the send body's limit is 422, not a server error
    status, refused = call(mail, "drafts-create.json", body=draft_body(mail, text="x" * 2_000_001))
    assert (status, refused["error"]["code"]) == (422, "validation_error")


def test_a_draft_can_be_scheduled_like_any_send(mail: SyncHarness, smtp_sink: Any) -> None:
    from datetime import UTC, datetime, timedelta

    # Given a draft
    _, created = call(mail, "drafts-create.json", body=draft_body(mail))
    send_at = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    # When it is sent at a later time
    status, accepted = call(
        mail, "drafts-send.json", draft_id=created["draft_id"], body={"send_at": send_at.isoformat()}
    )
    # Then it is scheduled, as POST /emails/send with send_at would be, and no longer a draft
    assert status == 202, accepted
    assert accepted["status"] == "scheduled"
    assert datetime.fromisoformat(accepted["send_at"]) == send_at
    _, listed = call(mail, "drafts-list.json", role="viewer")
    assert listed["items"] == []
    assert smtp_sink.messages == []
