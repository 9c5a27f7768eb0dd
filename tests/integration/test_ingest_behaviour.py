"""What ingest promises, seen through the API: replies without references thread by subject, and a
location is written exactly once even when two runs race for the same message.

Mail goes through the real ingest path (raw RFC 5322 -> normalize -> S3 + DynamoDB on moto) and is
read back with `GET /emails/{id}`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from mailbridge.providers.imap.models import FetchedMessage
from mailbridge.store.base import Item
from mailbridge.store.blobs import BlobStore
from mailbridge.store.emails import EmailStore
from mailbridge.store.keys import location_sk
from mailbridge.sync.ingest import Ingested, Mailbox, ingest
from tests.events import load_event
from tests.fixtures.aws import Stack

Invoke = Callable[[dict[str, Any]], dict[str, Any]]
TENANT, ACCOUNT = "acme", "acc_aaaaaaaaaaaaaaaaaaaa"


def rfc(subject: str, msgid: str, date: str, extra: str = "") -> bytes:
    headers = [
        "From: Carol Customer <carol@customer.example>",
        "To: bob@acme.test",
        f"Subject: {subject}",
        f"Message-ID: <{msgid}>",
        f"Date: {date}",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
    ]
    if extra:
        headers.append(extra)
    return ("\r\n".join(headers) + "\r\n\r\nHello.\r\n").encode()


class Mail:
    """Ingests fetched messages into one mailbox folder, as the sync engine does."""

    def __init__(self, stack: Stack, invoke_api: Invoke) -> None:
        self.emails = EmailStore(stack.deployed.tables["EmailsTable"])
        self.blobs = BlobStore(stack.deployed.buckets["MailBucket"])
        self.invoke_api = invoke_api
        self.uid = 0

    def fetched(self, raw: bytes, *, uid: int | None = None, flags: tuple[str, ...] = ()) -> FetchedMessage:
        if uid is None:
            self.uid += 1
            uid = self.uid
        return FetchedMessage(
            uid=uid,
            flags=flags,
            internal_date=datetime(2026, 11, 20, tzinfo=UTC),
            modseq=None,
            size=len(raw),
            raw=raw,
        )

    def ingest(self, fetched: FetchedMessage, emails: EmailStore | None = None) -> Ingested:
        mailbox = Mailbox(TENANT, ACCOUNT, "bob@acme.test", "INBOX", uidvalidity=7)
        return ingest(mailbox, fetched, emails or self.emails, self.blobs)

    def add(self, raw: bytes) -> str:
        result = self.ingest(self.fetched(raw))
        assert result.email_id is not None, result
        return result.email_id

    def view(self, email_id: str) -> Any:
        event = load_event("api/get-email.json", tenant=TENANT, role="viewer")
        event["pathParameters"] = {"email_id": email_id}
        event["rawPath"] = event["requestContext"]["http"]["path"] = f"/emails/{email_id}"
        response = self.invoke_api(event)
        assert response["statusCode"] == 200, response
        return json.loads(response["body"])

    def thread(self, email_id: str) -> str:
        return str(self.view(email_id)["thread_id"])


@pytest.fixture
def mail(stack: Stack, invoke_api: Invoke) -> Mail:
    return Mail(stack, invoke_api)


# ---------------------------------------------------------------------------------- threading


def test_a_reply_without_references_joins_the_thread_of_its_subject(mail: Mail) -> None:
    # Given a message, and a reply to it from a client that writes no References/In-Reply-To
    first = mail.add(rfc("Pricing for 2027", "p1@customer.example", "Tue, 17 Nov 2026 10:00:00 +0000"))
    reply = mail.add(rfc("Re: Pricing for 2027", "p2@customer.example", "Wed, 18 Nov 2026 10:00:00 +0000"))
    forward = mail.add(
        rfc("Fwd: RE: pricing  for 2027", "p3@customer.example", "Thu, 19 Nov 2026 10:00:00 +0000")
    )
    # Then the reply and the forward join the first message's thread (same base subject, same mailbox)
    assert mail.thread(reply) == mail.thread(first)
    assert mail.thread(forward) == mail.thread(first)


def test_a_new_message_with_the_same_subject_starts_its_own_thread(mail: Mail) -> None:
    # Given a conversation about "Weekly report"
    first = mail.add(rfc("Weekly report", "w1@customer.example", "Mon, 16 Nov 2026 10:00:00 +0000"))
    # When next week's report arrives: same subject, but not a reply
    second = mail.add(rfc("Weekly report", "w2@customer.example", "Mon, 23 Nov 2026 10:00:00 +0000"))
    # Then it is a new conversation
    assert mail.thread(second) != mail.thread(first)


def test_a_reply_long_after_the_last_message_of_its_subject_starts_a_new_thread(mail: Mail) -> None:
    # Given a message, and a reference-less reply more than 30 days later
    first = mail.add(rfc("Renewal", "r1@customer.example", "Thu, 01 Jan 2026 10:00:00 +0000"))
    late = mail.add(rfc("Re: Renewal", "r2@customer.example", "Mon, 16 Feb 2026 10:00:00 +0000"))
    # Then the subject alone does not join them
    assert mail.thread(late) != mail.thread(first)


# ---------------------------------------------------------------------------------- exactly once


class StaleReads(EmailStore):
    """The view of a second sync run that looked for the location before the first run wrote it
    (a redelivered SQS record racing the run still working on it)."""

    def get_location(self, tenant_id: str, sk: str) -> Item | None:
        return None


def test_a_racing_second_run_does_not_write_the_location_again(mail: Mail, stack: Stack) -> None:
    # Given run A stored a message at INBOX UID 1, and the flags changed on the server since
    fetched = mail.fetched(rfc("Order 1", "o1@customer.example", "Tue, 17 Nov 2026 10:00:00 +0000"))
    first = mail.ingest(fetched)
    assert first.new_location
    assert first.email_id is not None
    sk = location_sk(ACCOUNT, "INBOX", 7, fetched.uid)
    mail.emails.set_location_flags(TENANT, sk, ["\\Flagged", "\\Seen"], modseq=9)
    # When run B, which looked before A wrote, stores the same UID with the flags it fetched then
    second = mail.ingest(fetched, emails=StaleReads(stack.deployed.tables["EmailsTable"]))
    # Then B did not create the location: it is counted once and keeps the newer flags
    assert second.new_location is False
    assert second.email_id == first.email_id
    locations = mail.view(first.email_id)["locations"]
    assert [(loc["uid"], loc["flags"], loc["modseq"]) for loc in locations] == [
        (1, ["\\Flagged", "\\Seen"], 9)
    ]
