"""Drafts of a Microsoft 365 mailbox in-process against the Microsoft double (`local.microsoft`):
the api and outbox functions on moto, Graph draft messages made from the MIME."""

from __future__ import annotations

import email
import email.policy
import json
from typing import Any

from tests.events import load_event
from tests.integration.graph_harness import USER, GraphStack
from tests.integration.queue_harness import QueueConsumer
from tests.integration.sync_harness import TENANT

CUSTOMER = "carol@customer.example"


def call(
    gs: GraphStack, name: str, *, draft_id: str | None = None, body: Any = None, if_match: str | None = None
) -> tuple[int, Any]:
    event = load_event(f"api/{name}", tenant=TENANT, body=body)
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
