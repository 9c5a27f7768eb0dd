"""Drafts of a Microsoft 365 mailbox in-process against the Microsoft double (`local.microsoft`):
the api and outbox functions on moto, Graph draft messages made from the MIME."""

from __future__ import annotations

import email
import email.policy
import json
from typing import Any

from tests.events import load_event
from tests.integration.graph_harness import SUBJECT, USER, GraphStack
from tests.integration.queue_harness import QueueConsumer
from tests.integration.sync_harness import TENANT

CUSTOMER = "carol@customer.example"


def call(
    gs: GraphStack, name: str, *, draft_id: str | None = None, body: Any = None, if_match: str | None = None
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


def drafts_texts(gs: GraphStack) -> list[str]:
    texts = []
    for message in gs.ms.folder_contents(USER, "drafts"):
        assert message.is_draft
        parsed = email.message_from_bytes(message.raw, policy=email.policy.default)
        part = parsed.get_body(preferencelist=("plain",))
        assert part is not None
        texts.append(str(part.get_content()).strip())
    return texts


def test_a_draft_is_a_graph_draft_message_replaced_on_edit_and_removed_after_the_send(
    graph_stack: GraphStack,
) -> None:
    outbox = QueueConsumer(graph_stack.stack, "outbox", "OutboxQueue")
    account_id = graph_stack.connect()
    # Given a draft saved here, when the outbox runs
    status, created = call(graph_stack, "drafts-create.json", body=body(account_id))
    assert status == 201, created
    outbox.drain(expect_success=True)
    # Then the mailbox's Drafts folder holds it as a draft message
    assert drafts_texts(graph_stack) == ["Hi Carol, first words"]
    # When it is edited here and the outbox runs
    status, edited = call(
        graph_stack,
        "drafts-update.json",
        draft_id=created["draft_id"],
        body=body(account_id, text="Hi Carol, second words"),
        if_match='"1"',
    )
    assert status == 200, edited
    outbox.drain(expect_success=True)
    # Then Drafts holds one draft, the edited one
    assert drafts_texts(graph_stack) == ["Hi Carol, second words"]
    # When it is sent and the outbox runs
    status, accepted = call(graph_stack, "drafts-send.json", draft_id=created["draft_id"], body={})
    assert status == 202, accepted
    outbox.drain(expect_success=True)
    # Then Graph sent it once with our Message-ID, and no draft is left
    (sent,) = graph_stack.ms.sent(USER)
    assert f"<{accepted['message_id']}>".encode() in sent.raw
    assert drafts_texts(graph_stack) == []


def test_deleting_a_draft_deletes_the_graph_draft_message(graph_stack: GraphStack) -> None:
    outbox = QueueConsumer(graph_stack.stack, "outbox", "OutboxQueue")
    account_id = graph_stack.connect()
    _, created = call(graph_stack, "drafts-create.json", body=body(account_id))
    outbox.drain(expect_success=True)
    assert len(drafts_texts(graph_stack)) == 1
    # When it is deleted here and the outbox runs
    status, _ = call(graph_stack, "drafts-delete.json", draft_id=created["draft_id"])
    assert status == 200
    outbox.drain(expect_success=True)
    # Then the Drafts folder is empty
    assert drafts_texts(graph_stack) == []


def sync(gs: GraphStack, account_id: str) -> None:
    """Queue a sync of the account and hand the SyncQueue's records to the sync function."""
    event = load_event("api/sync-account.json", tenant=TENANT, sub=SUBJECT)
    sample = event["pathParameters"]["account_id"]
    event["pathParameters"]["account_id"] = account_id
    event["rawPath"] = event["requestContext"]["http"]["path"] = event["rawPath"].replace(sample, account_id)
    assert gs.invoke("api", event)["statusCode"] == 202
    template = load_event("sqs/sync-renew-watches.json")["Records"][0]
    records = []
    for i, message in enumerate(gs.sync_messages()):
        record = json.loads(json.dumps(template))
        record["messageId"] = f"m-{i}"
        record["body"] = json.dumps(message)
        records.append(record)
    assert gs.invoke("sync", {"Records": records}) == {"batchItemFailures": []}


def test_a_draft_written_in_outlook_is_listed_editable_here_and_forgotten_once_deleted_there(
    graph_stack: GraphStack,
) -> None:
    ms = graph_stack.ms
    outbox = QueueConsumer(graph_stack.stack, "outbox", "OutboxQueue")
    account_id = graph_stack.connect()
    graph_stack.sync_messages()  # the first sync's record: not under test
    # Given a draft the user saved in Outlook
    raw = (
        f"From: {USER}\r\nTo: Dan <dan@customer.example>\r\nSubject: From Outlook\r\n"
        "Message-ID: <o-1@contoso.example>\r\nDate: Mon, 23 Nov 2026 09:00:00 +0000\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nWritten in Outlook\r\n"
    ).encode()
    with ms.lock:
        outlook_draft = ms.mail.create_draft(ms.mail.mailbox(USER), None, raw)
    # When the mailbox syncs (twice: nothing is stored twice)
    sync(graph_stack, account_id)
    sync(graph_stack, account_id)
    # Then it is listed, in step, with its body
    _, listed = call(graph_stack, "drafts-list.json")
    [summary] = listed["items"]
    assert (summary["subject"], summary["to"], summary["synced"]) == (
        "From Outlook",
        ["dan@customer.example"],
        True,
    )
    _, read = call(graph_stack, "drafts-get.json", draft_id=summary["draft_id"])
    assert (read["origin"], read["text"].strip()) == ("provider", "Written in Outlook")
    # When it is finished here and the outbox runs
    status, edited = call(
        graph_stack,
        "drafts-update.json",
        draft_id=summary["draft_id"],
        body={k: read[k] for k in ("account_id", "to", "subject")} | {"text": "Finished here"},
        if_match='"1"',
    )
    assert status == 200, edited
    outbox.drain(expect_success=True)
    # Then Drafts holds one draft, the edited one, which the next sync does not take for another
    assert drafts_texts(graph_stack) == ["Finished here"]
    sync(graph_stack, account_id)
    _, listed = call(graph_stack, "drafts-list.json")
    assert [(d["draft_id"], d["version"]) for d in listed["items"]] == [(summary["draft_id"], 2)]
    # When the user deletes it in Outlook and the mailbox syncs
    [current] = ms.folder_contents(USER, "drafts")
    assert current.immutable_id != outlook_draft.immutable_id
    ms.delete(USER, current.immutable_id)
    sync(graph_stack, account_id)
    # Then it is gone here too
    _, listed = call(graph_stack, "drafts-list.json")
    assert listed["items"] == []
