"""Gmail write-back, send and contact import through the local runner with the Google double, as
`make run` wires them: connect by the OAuth redirect chain with contact import on, then mark a
message read, reply to it, and see the double.

The Gmail sync is built elsewhere: the one message read and replied to is stored the way the
sync must store it (`ingest_batch` at the location `mailbridge.providers.gmail.locations`
defines), straight into the runner's moto.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import urlsplit

import boto3
import pytest

from local.google import GoogleDouble
from local.runner import Runner
from mailbridge.providers.gmail.locations import FOLDER, UIDVALIDITY, uid_for
from mailbridge.providers.imap.models import FetchedMessage
from mailbridge.store.blobs import BlobStore
from mailbridge.store.emails import EmailStore
from mailbridge.sync.ingest import Mailbox, ingest_batch
from tests.e2e.conftest import GmailRunner, call
from tests.e2e.test_gmail_e2e import get

USER = "ada.send@example.com"  # its own Google user: the double is shared (tests/e2e/conftest.py)
TENANT = "gmail-send-e2e"
CUSTOMER = "carol@customer.example"


@pytest.fixture(scope="module")
def google(gmail_runner: GmailRunner) -> GoogleDouble:
    """The shared runner's Google double (tests/e2e/conftest.py), with this module's user."""
    gmail_runner.double.add_user(USER, "Ada Lovelace")
    return gmail_runner.double


def connect(runner: Runner, token: str) -> str:
    """The OAuth redirect chain through the runner; the new account's id."""
    status, started = call(runner, "GET", f"/oauth/gmail/start?login_hint={USER}", token)
    assert status == 200, started
    status, headers, _ = get(started["authorization_url"])
    assert status == 302
    assert urlsplit(headers["Location"]).netloc == urlsplit(runner.url).netloc
    status, _, body = get(headers["Location"])
    assert status == 200, body
    outcome = json.loads(body)
    assert outcome["outcome"] == "connected", outcome
    return str(outcome["account_id"])


def store_as_synced(runner: Runner, google: GoogleDouble, account_id: str, gmail_id: str) -> str:
    """What the Gmail sync writes for one message, into the runner's moto."""
    message = google.gmail.find(google.gmail.mailbox(USER), gmail_id)
    resource = boto3.resource(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url=runner.endpoint_url,
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    table = runner.physical_name("EmailsTable")
    emails = EmailStore(table, table=resource.Table(table))
    blobs = BlobStore(runner.physical_name("MailBucket"), client=runner.boto3_client("s3"))
    fetched = FetchedMessage(
        uid=uid_for(gmail_id),
        flags=(),
        internal_date=datetime.fromtimestamp(message.internal_date / 1000, UTC),
        modseq=None,
        size=len(message.raw),
        raw=message.raw,
    )
    (result,) = ingest_batch(Mailbox(TENANT, account_id, USER, FOLDER, UIDVALIDITY), [fetched], emails, blobs)
    assert result.email_id is not None
    return result.email_id


def inbound() -> bytes:
    return (
        f"From: Carol <{CUSTOMER}>\r\nTo: Ada <{USER}>\r\nSubject: Renewal quote\r\n"
        "Message-ID: <quote-1@customer.example>\r\nDate: Mon, 23 Nov 2026 09:00:00 +0000\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nCould you send the quote?\r\n"
    ).encode()


def test_contacts_import_then_mark_read_and_reply_reach_gmail(
    gmail_runner: Runner, google: GoogleDouble
) -> None:
    admin = gmail_runner.token(tenant=TENANT, role="admin", sub="ada-user")
    # Given Google contacts, one of them at a domain the tenant blocks, and contact import on
    google.add_contact(USER, "Carol Customer", [CUSTOMER], "Customer Ltd", "Buyer")
    google.add_contact(USER, "Sam Spammer", ["sam@spam.example"])
    status, body = call(
        gmail_runner,
        "PUT",
        "/crm/settings",
        admin,
        {"auto_create": "sent", "blocklist": {"domains": ["spam.example"]}},
    )
    assert status == 200, body
    status, body = call(gmail_runner, "PUT", "/features", admin, {"contact_import": True})
    assert status == 200, body

    # When the mailbox is connected and the runner drains its queues
    account_id = connect(gmail_runner, admin)
    gmail_runner.drain()

    # Then the customer is a CRM contact and the blocklisted one is not
    status, listed = call(gmail_runner, "GET", "/crm/contacts?limit=100", admin)
    assert status == 200, listed
    assert [c["emails"][0]["address"] for c in listed["items"]] == [CUSTOMER]

    # Given a message from the customer, unread in Gmail, synced
    gmail_id = google.deliver(USER, inbound())
    email_id = store_as_synced(gmail_runner, google, account_id, gmail_id)
    assert "UNREAD" in google.labels_of(USER, gmail_id)

    # When the user marks it read
    status, body = call(gmail_runner, "PATCH", f"/emails/{email_id}", admin, {"read": True})
    assert status == 200, body
    gmail_runner.drain()

    # Then the double shows UNREAD gone
    assert "UNREAD" not in google.labels_of(USER, gmail_id)

    # When the user replies from the Gmail account
    reply = {
        "account_id": account_id,
        "to": [{"address": CUSTOMER}],
        "subject": "Renewal quote",
        "text": "The quote is 42,000 EUR.",
        "reply_to_email_id": email_id,
    }
    status, accepted = call(gmail_runner, "POST", "/emails/send", admin, reply)
    assert status == 202, accepted
    gmail_runner.drain()

    # Then Gmail sent it once, into the customer's thread, and the API shows it sent
    (sent,) = google.sent(USER)
    assert google.thread_of(USER, sent.message_id) == google.thread_of(USER, gmail_id)
    status, view = call(gmail_runner, "GET", f"/emails/{accepted['email_id']}", admin)
    assert status == 200, view
    assert view["status"] == "sent"
