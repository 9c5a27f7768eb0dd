"""Issue acceptance for email <-> CRM matching through the local runner: a real Dovecot mailbox
with a realistic mix of mail is connected over the HTTP API, synced, announced on the bus, and
matched by the match function from the MatchQueue under each auto-creation policy."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from local.runner import Runner
from tests.e2e.conftest import call, connect_mailbox
from tests.integration.dovecot import DovecotServer, DovecotUser

pytestmark = pytest.mark.dovecot


@pytest.fixture(scope="module")
def runner(mail_runner: Runner) -> Runner:
    return mail_runner


ROOT = Path(__file__).resolve().parents[2]
CUSTOMER, NEW_CUSTOMER = "initech-industries.com", "globex-systems.com"


def mail(
    sender: str, to: str, subject: str, msgid: str, *, hour: int, extra: list[str] | None = None
) -> bytes:
    headers = [
        f"From: {sender}",
        f"To: {to}",
        f"Subject: {subject}",
        f"Message-ID: <{msgid}>",
        f"Date: Tue, 17 Nov 2026 {hour:02d}:00:00 +0000",
        "MIME-Version: 1.0",
        *(extra or []),
    ]
    if not any(h.lower().startswith("content-type") for h in headers):
        headers.append("Content-Type: text/plain; charset=utf-8")
    return ("\r\n".join(headers) + "\r\n\r\nHello.\r\n").encode()


def bounce(me: str, hour: int) -> bytes:
    boundary = "dsn-boundary"
    parts = [
        f"From: Mail Delivery System <MAILER-DAEMON@mx.{CUSTOMER}>",
        f"To: {me}",
        "Subject: Undelivered Mail Returned to Sender",
        f"Message-ID: <dsn-{hour}@mx.{CUSTOMER}>",
        f"Date: Tue, 17 Nov 2026 {hour:02d}:00:00 +0000",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        "",
        f"--{boundary}",
        "Content-Type: text/plain",
        "",
        "Your message could not be delivered.",
        f"--{boundary}",
        "Content-Type: message/delivery-status",
        "",
        f"Reporting-MTA: dns; mx.{CUSTOMER}",
        "",
        f"Final-Recipient: rfc822; gone@{CUSTOMER}",
        "Action: failed",
        "Status: 5.1.1",
        f"--{boundary}--",
        "",
    ]
    return "\r\n".join(parts).encode()


def seed(server: DovecotServer, user: DovecotUser) -> str:
    """The realistic mix; returns the mailbox address (its domain is the tenant's own)."""
    me = f"{user.name}@example.com"
    inbox = [
        mail("Colleague <colleague@example.com>", me, "Lunch?", "c1@example.com", hour=8),
        mail(f"Alice Customer <alice@{CUSTOMER}>", me, "Renewal quote", "a1@initech", hour=9),
        mail(
            "Weekly Digest <digest@newsletters-weekly.com>",
            me,
            "This week",
            "n1@newsletters",
            hour=10,
            extra=[
                "List-Id: Weekly Digest <digest.newsletters-weekly.com>",
                "List-Unsubscribe: <mailto:unsubscribe@newsletters-weekly.com>",
                "Precedence: bulk",
            ],
        ),
        bounce(me, 11),
        mail("Bob <bob.private@gmail.com>", me, "Personal note", "b1@gmail", hour=12),
    ]
    for raw in inbox:
        server.append(user, "INBOX", raw)
    server.append(
        user, "Sent", mail(me, f"Carol New <carol@{NEW_CUSTOMER}>", "Intro", "s1@example.com", hour=13)
    )
    return me


def connect(runner: Runner, token: str, server: DovecotServer, user: DovecotUser) -> str:
    return connect_mailbox(runner, token, server, user)


def state(runner: Runner, token: str) -> tuple[dict[str, Any], set[str], dict[str, dict[str, str]]]:
    """contacts by address, company domains, and each email's links (subject -> record -> reason)."""
    contacts = {
        c["emails"][0]["address"]: c
        for c in call(runner, "GET", "/crm/contacts?limit=100", token)[1]["items"]
    }
    companies = {
        d for c in call(runner, "GET", "/crm/companies?limit=100", token)[1]["items"] for d in c["domains"]
    }
    links: dict[str, dict[str, str]] = {}
    for email in call(runner, "GET", "/emails?limit=100", token)[1]["items"]:
        status, items = call(runner, "GET", f"/emails/{email['email_id']}/links", token)
        assert status == 200, items
        links[email["subject"]] = {i["record_id"]: i["reason"] for i in items}
    return contacts, companies, links


@pytest.mark.parametrize(
    ("policy", "contacts_expected", "companies_expected"),
    [
        ("none", set(), set()),
        ("sent", {f"carol@{NEW_CUSTOMER}"}, {NEW_CUSTOMER}),
        (
            "sent_and_received",
            {f"carol@{NEW_CUSTOMER}", f"alice@{CUSTOMER}", "bob.private@gmail.com"},
            {NEW_CUSTOMER, CUSTOMER},
        ),
    ],
)
def test_each_policy_creates_and_links_exactly_what_it_allows(
    runner: Runner,
    dovecot_server: DovecotServer,
    make_dovecot_user: Callable[[], DovecotUser],
    policy: str,
    contacts_expected: set[str],
    companies_expected: set[str],
) -> None:
    token = runner.token(tenant=f"policy-{policy.replace('_', '-')}", role="admin", sub="alice")
    user = make_dovecot_user()
    # Given a mailbox with colleagues, a customer, a newsletter, a bounce, a gmail sender and a
    # sent intro to a new customer, and the tenant's auto-creation policy (own domains: default)
    seed(dovecot_server, user)
    status, settings = call(runner, "PUT", "/crm/settings", token, {"auto_create": policy})
    assert status == 200, settings
    # When the mailbox is connected and synced, and the mail matched
    connect(runner, token, dovecot_server, user)
    runner.drain()
    # Then the own domain is the connected mailbox's
    assert call(runner, "GET", "/crm/settings", token)[1]["effective_own_domains"] == ["example.com"]
    # And exactly the allowed contacts and companies exist
    contacts, companies, links = state(runner, token)
    assert set(contacts) == contacts_expected
    assert companies == companies_expected
    # And each email links exactly its matched records, as participant
    expected: dict[str, dict[str, str]] = {s: {} for s in links}
    for address, contact in contacts.items():
        subject = {
            f"carol@{NEW_CUSTOMER}": "Intro",
            f"alice@{CUSTOMER}": "Renewal quote",
            "bob.private@gmail.com": "Personal note",
        }[address]
        expected[subject][contact["contact_id"]] = "participant"
        if contact["company_id"]:
            expected[subject][contact["company_id"]] = "participant"
    assert links == expected
    assert len(links) == 6
    # And the free-mail contact has no company
    if "bob.private@gmail.com" in contacts:
        assert contacts["bob.private@gmail.com"]["company_id"] is None


def test_a_contact_created_later_gets_its_timeline_and_context_and_tenants_stay_apart(
    runner: Runner, dovecot_server: DovecotServer, dovecot_user: DovecotUser
) -> None:
    token = runner.token(tenant="timeline", role="member", sub="alice")
    # Given a synced mailbox under the default policy
    seed(dovecot_server, dovecot_user)
    connect(runner, token, dovecot_server, dovecot_user)
    runner.drain()
    # When a contact is created for the customer who wrote, with a deal
    status, contact = call(
        runner,
        "POST",
        "/crm/contacts",
        token,
        {"name": "Alice", "emails": [{"address": f"Alice@{CUSTOMER}"}]},
    )
    assert status == 201, contact
    cid = contact["contact_id"]
    status, deal = call(runner, "POST", "/crm/deals", token, {"name": "Renewal", "contact_ids": [cid]})
    assert status == 201, deal
    runner.drain()
    # Then the contact's timeline lists the mail
    status, timeline = call(runner, "GET", f"/crm/contacts/{cid}/timeline", token)
    assert status == 200, timeline
    assert [e["subject"] for e in timeline["items"]] == ["Renewal quote"]
    email_id = timeline["items"][0]["email_id"]
    # And the by-email lookup returns the contact, its open deal and its last emails
    status, view = call(
        runner, "GET", f"/crm/contacts/by-email/{urllib.parse.quote(f'alice@{CUSTOMER}')}", token
    )
    assert status == 200, view
    assert view["contact"]["contact_id"] == cid
    assert [d["deal_id"] for d in view["open_deals"]] == [deal["deal_id"]]
    assert [e["email_id"] for e in view["last_emails"]] == [email_id]
    # When new mail from the contact arrives, it is linked to the contact and its deal
    dovecot_server.append(
        dovecot_user,
        "INBOX",
        mail(f"alice@{CUSTOMER}", f"{dovecot_user.name}@example.com", "Signed", "a2@initech", hour=14),
    )
    status, accounts = call(runner, "GET", "/accounts", token)
    call(runner, "POST", f"/accounts/{accounts['items'][0]['account_id']}/sync", token)
    runner.drain()
    status, timeline = call(runner, "GET", f"/crm/deals/{deal['deal_id']}/timeline", token)
    # (the earlier mail too: the backfill ran once the deal existed)
    assert [e["subject"] for e in timeline["items"]] == ["Signed", "Renewal quote"]
    # And tenant B can neither read nor link tenant A's records and mail
    other = runner.token(tenant="intruder", role="owner")
    assert call(runner, "GET", f"/crm/contacts/{cid}/timeline", other)[0] == 404
    assert call(runner, "GET", f"/crm/deals/{deal['deal_id']}/timeline", other)[0] == 404
    assert call(runner, "GET", f"/emails/{email_id}/links", other)[0] == 404
    assert call(runner, "GET", f"/crm/contacts/by-email/alice@{CUSTOMER}", other)[0] == 404
    body = {"kind": "contact", "record_id": cid}
    assert call(runner, "POST", f"/emails/{email_id}/links", other, body)[0] == 404
    assert call(runner, "DELETE", f"/emails/{email_id}/links/{cid}", other)[0] == 404
