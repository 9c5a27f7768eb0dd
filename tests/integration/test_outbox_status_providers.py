"""The outbox's status machine (tests/unit/test_outbox_status.py) for the two senders that are not
SMTP: a Microsoft 365 account sends by Graph sendMail, a Gmail account by users.messages.send. The
sends go to the local doubles (`local.microsoft`, `local.google`, one of each per module) as the
integration tests of those providers do; the stores are the unit module's (moto), through its World.
A test checks what a send returns, what the double received, what is stored and what reached the bus.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import pytest

from local.clock import ManualClock
from local.google import GoogleDouble
from local.microsoft import MicrosoftDouble
from mailbridge.models.account import Account
from mailbridge.outbox.models import SendRequest
from mailbridge.outbox.service import SendOutcome, queue_send
from mailbridge.providers.gmail.client import GmailClient
from mailbridge.providers.gmail.locations import FOLDER, UIDVALIDITY, gmail_message_id, uid_for
from mailbridge.providers.graph.wiring import mime_for_send_mail
from mailbridge.providers.imap.models import FetchedMessage
from mailbridge.sync.ingest import Mailbox, ingest
from tests.fixtures.accounts import seed_account
from tests.integration.graph_adapter_harness import Tokens as GraphTokens
from tests.integration.graph_adapter_harness import graph_client
from tests.integration.local_google import conftest as google_conftest
from tests.integration.local_microsoft.conftest import USER as GRAPH_USER
from tests.unit.test_outbox_status import NOW, World, aws_stack, world

__all__ = ["aws_stack", "world"]  # the unit module's fixtures, used here as they are

GMAIL_USER = google_conftest.USER


@dataclass
class Graph:
    """The Microsoft double and a Graph client per connected mailbox (by address)."""

    double: MicrosoftDouble
    clients: dict[str, Any]

    def send(self, account: Account, composed: Any) -> None:
        """What the outbox's sendMail does, through the client of `account`'s mailbox."""
        self.clients[account.address].send_mime(mime_for_send_mail(composed))


@dataclass
class Google:
    """The Google double and a Gmail client per connected mailbox (by address)."""

    double: GoogleDouble
    clients: dict[str, GmailClient]

    def client(self, account: Account) -> GmailClient:
        return self.clients[account.address]


@pytest.fixture(scope="module")
def graph() -> Iterator[Graph]:
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    with MicrosoftDouble(clock=clock, seed=17) as double:
        double.add_user(GRAPH_USER, "Ada Lovelace")
        yield Graph(double, {GRAPH_USER: graph_client(double, GraphTokens(double))})


@pytest.fixture(scope="module")
def google() -> Iterator[Google]:
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    with GoogleDouble(clock=clock, seed=17) as double:
        double.add_user(GMAIL_USER, "Ada Lovelace")
        token = str(
            google_conftest.connect(double, double.register_client([google_conftest.REDIRECT]))[
                "access_token"
            ]
        )
        yield Google(double, {GMAIL_USER: GmailClient(double.gmail_url, lambda _force: token)})


def oauth_account(world: World, provider: Literal["gmail", "graph"], address: str) -> str:
    """A connected Microsoft 365 or Gmail account of the world's tenant (its sealed grant unused:
    the doubles' clients are given to the outbox)."""
    return seed_account(
        world.deps.accounts.table_name,
        world.key_id,
        tenant=world.tenant,
        provider=provider,
        address=address,
        created_at=NOW,
    ).account_id


def test_a_graph_account_sends_once_by_send_mail_with_our_message_id(world: World, graph: Graph) -> None:
    # Given a queued email of a Microsoft 365 account, with a blind copy
    world.deps.send_graph = graph.send
    account_id = oauth_account(world, "graph", GRAPH_USER)
    request = SendRequest.model_validate(
        {
            "account_id": account_id,
            "to": [{"address": "bob@example.org"}],
            "bcc": [{"address": "carol@example.org"}],
            "subject": "Quote",
            "text": "Hello",
        }
    )
    email_id = queue_send(world.member, request, world.deps).email_id
    before = len(graph.double.sent(GRAPH_USER))
    # When the outbox sends it (and its record comes again)
    outcome = world.send(email_id)
    again = world.send(email_id)
    # Then Graph sent it once, with our Message-ID, to the visible and the blind recipient
    assert (outcome, again) == (SendOutcome("sent", {}), SendOutcome("sent", {}))
    item = world.item(email_id)
    (sent,) = graph.double.sent(GRAPH_USER)[before:]
    assert sent.internet_message_id == f"<{item['message_id']}>"
    assert sorted(sent.recipients) == ["bob@example.org", "carol@example.org"]
    # And it is stored as sent at the send time, nobody refused
    assert (item["send_status"], item["sent_at"], item.get("refused")) == ("sent", NOW.isoformat(), None)
    # And neither SMTP nor IMAP was used (Graph files its own copy in Sent Items)
    assert (world.smtp.calls, world.imap.settings) == ([], [])
    # And email.sent was announced once, for this account
    assert [(e.detail_type, e.data["email_id"], e.data["account_id"]) for e in world.publisher.events] == [
        ("email.sent", email_id, account_id)
    ]


def test_a_gmail_reply_goes_into_the_thread_and_records_gmails_sent_copy(
    world: World, google: Google
) -> None:
    # Given a Gmail account whose mailbox holds a customer's message, stored at its Gmail location
    world.deps.gmail_client = google.client
    account_id = oauth_account(world, "gmail", GMAIL_USER)
    original_raw = google_conftest.rfc5322(
        subject=f"Renewal {world.tenant}", message_id=f"<r-{world.tenant}@customer.example>"
    )
    original_gmail_id = google.double.deliver(GMAIL_USER, original_raw)
    mailbox = Mailbox(world.tenant, account_id, GMAIL_USER, FOLDER, UIDVALIDITY)
    fetched = FetchedMessage(
        uid=uid_for(original_gmail_id),
        flags=(),
        internal_date=NOW,
        modseq=None,
        size=len(original_raw),
        raw=original_raw,
    )
    original_id = ingest(mailbox, fetched, world.deps.emails, world.deps.blobs).email_id
    # And a reply to it, queued
    request = SendRequest.model_validate(
        {
            "account_id": account_id,
            "to": [{"address": "carol@customer.example"}],
            "text": "Here it is",
            "reply_to_email_id": original_id,
        }
    )
    email_id = queue_send(world.member, request, world.deps).email_id
    raw = world.deps.blobs.get(str(world.item(email_id)["raw_key"]))
    before = len(google.double.sent(GMAIL_USER))
    # When the outbox sends it
    outcome = world.send(email_id)
    # Then Gmail sent the stored bytes once, into the customer's thread
    assert outcome == SendOutcome("sent", {})
    (sent,) = google.double.sent(GMAIL_USER)[before:]
    assert sent.raw == raw
    assert sent.recipients == ["carol@customer.example"]
    assert google.double.thread_of(GMAIL_USER, sent.message_id) == google.double.thread_of(
        GMAIL_USER, original_gmail_id
    )
    # And the email is sent, and located at Gmail's id of the sent copy, read
    item = world.item(email_id)
    assert (item["send_status"], item["sent_at"], item.get("refused")) == ("sent", NOW.isoformat(), None)
    locations = world.deps.emails.batch_get_sks(world.tenant, sorted(item["loc_keys"]))
    assert [(gmail_message_id(loc), loc["account_id"]) for loc in locations] == [
        (sent.message_id, account_id)
    ]
    assert (world.smtp.calls, world.imap.settings) == ([], [])
    # And email.sent was announced once, for this account
    assert [(e.detail_type, e.data["email_id"], e.data["account_id"]) for e in world.publisher.events] == [
        ("email.sent", email_id, account_id)
    ]
    # And a second delivery of the record sends nothing more
    assert world.send(email_id) == SendOutcome("sent", {})
    assert len(google.double.sent(GMAIL_USER)) == before + 1
