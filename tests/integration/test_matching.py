"""Email <-> CRM matching through the real match function (in-process, moto built from template.yaml).

Mail is stored as the sync's ingest stores it (raw MIME -> normalize -> build_email_item), its
`email.received` / `email.sent` event goes onto the template's bus, the MatchRule routes it to
the MatchQueue, and the harness hands the queue's records to functions/match/app.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from mailbridge.bus import DomainEvent, EventPublisher
from mailbridge.crm.wiring import match_deps
from mailbridge.mime import normalize
from mailbridge.store.blobs import BlobStore
from mailbridge.store.emails import EmailStore
from mailbridge.sync.ingest import Mailbox, build_email_item, email_id_for
from tests.events import load_event
from tests.fixtures.aws import Stack, reset_caches
from tests.integration.queue_harness import QueueConsumer

Invoke = Callable[[dict[str, Any]], dict[str, Any]]
TENANT, OTHER = "acme", "globex"
ME = "me@acme-corp.io"
OWN = "acme-corp.io"
CUSTOMER = "initech-industries.com"


def raw_mail(
    subject: str,
    *,
    sender: str,
    to: str,
    cc: str = "",
    msgid: str,
    date: str = "Tue, 17 Nov 2026 10:00:00 +0000",
    extra: str = "",
) -> bytes:
    headers = [
        f"From: {sender}",
        f"To: {to}",
        *([f"Cc: {cc}"] if cc else []),
        f"Subject: {subject}",
        f"Message-ID: <{msgid}>",
        f"Date: {date}",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        *([extra] if extra else []),
    ]
    return ("\r\n".join(headers) + "\r\n\r\nHello.\r\n").encode()


class Matching:
    """Stores mail like the sync does, announces it on the bus, and drains the MatchQueue."""

    def __init__(self, stack: Stack, invoke_api: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
        for name, value in stack.env("MatchFunction").items():
            monkeypatch.setenv(name, value)
        reset_caches()
        self.stack = stack
        self.invoke_api = invoke_api
        self.consumer = QueueConsumer(stack, "match", "MatchQueue")
        self.sqs: Any = self.consumer.sqs
        self.queue_url = self.consumer.queue_url
        self.emails = EmailStore(stack.deployed.tables["EmailsTable"])
        self.blobs = BlobStore(stack.deployed.buckets["MailBucket"])
        self.publisher = EventPublisher(stack.deployed.buses["EventBus"])

    # ------------------------------------------------------------------ mail
    def store(self, raw: bytes, *, sent: bool = False, tenant: str = TENANT, announce: bool = True) -> str:
        result = normalize(raw)
        message = result.message
        folder = "Sent" if sent else "INBOX"
        mailbox = Mailbox(tenant, "acc_1", ME, folder, 1, is_sent_folder=sent)
        email_id = email_id_for(tenant, message, raw)
        date = message.date or datetime.now(UTC)
        item = build_email_item(
            mailbox, email_id, "th_" + email_id[3:27], message, date, "raw/x", self.blobs, ()
        )
        item["accounts"], item["folders"] = {"acc_1"}, {f"acc_1:{folder}"}
        self.emails.create_email(tenant, item)
        if announce:
            self.announce(tenant, item)
        return email_id

    def announce(self, tenant: str, item: dict[str, Any]) -> None:
        detail_type = "email.sent" if item["direction"] == "outbound" else "email.received"
        self.publisher.publish(
            [
                DomainEvent(
                    detail_type=detail_type,
                    tenant_id=tenant,
                    idempotency_key=f"{detail_type}:{item['email_id']}",
                    data={
                        "email_id": item["email_id"],
                        "account_id": "acc_1",
                        "direction": item["direction"],
                        "date": item["date"],
                    },
                )
            ]
        )

    # ------------------------------------------------------------------ queue
    @property
    def results(self) -> list[dict[str, Any]]:
        return self.consumer.results

    def receive(self) -> list[dict[str, Any]]:
        return self.consumer.receive()

    def invoke(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return self.consumer.invoke(messages)

    def drain(self, *, max_batches: int = 50) -> None:
        self.consumer.drain(max_batches=max_batches, expect_success=True)

    # ------------------------------------------------------------------ api
    def api(
        self,
        name: str,
        status: int = 200,
        *,
        tenant: str = TENANT,
        role: str = "member",
        path: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        event = load_event(f"api/{name}.json", tenant=tenant, role=role, **kwargs)
        if path is not None:
            raw = event["routeKey"].split(" ", 1)[1]
            for key, value in path.items():
                raw = raw.replace("{" + key + "}", value)
            event["pathParameters"] = dict(path)
            event["rawPath"] = event["requestContext"]["http"]["path"] = raw
        if "query" not in kwargs:
            event.pop("queryStringParameters", None)
            event["rawQueryString"] = ""
        response = self.invoke_api(event)
        assert response["statusCode"] == status, response
        return json.loads(response["body"]) if response.get("body") else None

    def policy(self, tenant: str = TENANT, **fields: Any) -> Any:
        body = {"own_domains": [OWN], **fields}
        return self.api("crm-put-settings", tenant=tenant, role="admin", body=body)

    def contact(self, name: str, *addresses: str, tenant: str = TENANT, **fields: Any) -> dict[str, Any]:
        body = {"name": name, "emails": [{"address": a} for a in addresses], **fields}
        return self.api("crm-create-contact", 201, tenant=tenant, body=body)  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ reads
    def links(self, email_id: str, tenant: str = TENANT) -> dict[str, str]:
        """record_id -> reason"""
        items = self.api("links-list", tenant=tenant, path={"email_id": email_id})
        return {i["record_id"]: i["reason"] for i in items}

    def contacts(self, tenant: str = TENANT) -> dict[str, dict[str, Any]]:
        items = self.api("crm-list-contacts", tenant=tenant, query={"limit": "100"})["items"]
        return {c["emails"][0]["address"]: c for c in items}

    def companies(self, tenant: str = TENANT) -> dict[str, dict[str, Any]]:
        items = self.api("crm-list-companies", tenant=tenant, query={"limit": "100"})["items"]
        return {c["domains"][0]: c for c in items if c["domains"]}

    def index(self, address: str, tenant: str = TENANT) -> list[str]:
        table: Any = self.stack.table("LinksTable")
        items = table.query(
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": f"TENANT#{tenant}#ADDR#{address}"},
        )["Items"]
        return [str(i["email_id"]) for i in items]


@pytest.fixture
def m(stack: Stack, invoke_api: Invoke, monkeypatch: pytest.MonkeyPatch) -> Matching:
    return Matching(stack, invoke_api, monkeypatch)


# ------------------------------------------------------------------------------ new mail


def test_received_mail_links_the_contact_its_company_and_the_latest_open_deal(m: Matching) -> None:
    # Given a company, a contact at it and two open deals (the second updated last) and a won one
    m.policy()
    company = m.api("crm-create-company", 201, body={"name": "Initech", "domains": [CUSTOMER]})
    cid = m.contact("Peter", f"peter@{CUSTOMER}", company_id=company["company_id"])["contact_id"]
    older = m.api("crm-create-deal", 201, body={"name": "Old", "contact_ids": [cid]})["deal_id"]
    newer = m.api("crm-create-deal", 201, body={"name": "New", "contact_ids": [cid]})["deal_id"]
    m.api("crm-create-deal", 201, body={"name": "Won", "contact_ids": [cid], "stage": "won"})
    m.drain()  # contact.created: nothing stored yet to backfill
    # When mail from the contact (address in another case) arrives, with a colleague at the company in cc
    email_id = m.store(
        raw_mail(
            "Renewal",
            sender=f"Peter <Peter@{CUSTOMER.upper()}>",
            to=ME,
            cc=f"Bill <bill@{CUSTOMER}>",
            msgid="r1@initech",
        )
    )
    m.drain()
    # Then the contact is linked as a participant, the company through the contact, and only the
    # most recently updated open deal of the contact and of the company
    assert m.links(email_id) == {cid: "participant", company["company_id"]: "participant", newer: "deal_rule"}
    assert older not in m.links(email_id)
    # And under the default policy (`sent`) nobody was created for received mail
    assert set(m.contacts()) == {f"peter@{CUSTOMER}"}
    # And every participant is in the participant index, matched or not
    for address in (f"peter@{CUSTOMER}", f"bill@{CUSTOMER}", ME):
        assert m.index(address) == [email_id]


def test_a_company_domain_alone_links_the_company(m: Matching) -> None:
    # Given a company with a domain and no contacts
    m.policy(auto_create="none")
    company = m.api("crm-create-company", 201, body={"name": "Initech", "domains": [CUSTOMER]})
    # When a stranger at that domain writes
    email_id = m.store(raw_mail("Hi", sender=f"stranger@{CUSTOMER}", to=ME, msgid="d1@initech"))
    m.drain()
    # Then the company is linked by domain and no contact is created
    assert m.links(email_id) == {company["company_id"]: "domain"}
    assert m.contacts() == {}


def test_sent_mail_creates_contacts_and_companies_under_the_default_policy(m: Matching) -> None:
    # Given the default policy (`sent`) with the tenant's own domain set
    m.policy()
    # When the user writes to a new customer, a gmail user, a colleague and a role address
    email_id = m.store(
        raw_mail(
            "Proposal",
            sender=ME,
            to=f"Jane Roe <jane@{CUSTOMER}>, Joe <joe.private@gmail.com>",
            cc=f"colleague@{OWN}, sales@{CUSTOMER}",
            msgid="s1@acme",
        ),
        sent=True,
    )
    m.drain()
    # Then contacts exist for the customer and the gmail user only
    contacts = m.contacts()
    assert set(contacts) == {f"jane@{CUSTOMER}", "joe.private@gmail.com"}
    assert contacts[f"jane@{CUSTOMER}"]["name"] == "Jane Roe"
    # And a company for the customer's domain, none for gmail or the own domain
    companies = m.companies()
    assert set(companies) == {CUSTOMER}
    assert contacts[f"jane@{CUSTOMER}"]["company_id"] == companies[CUSTOMER]["company_id"]
    assert contacts["joe.private@gmail.com"]["company_id"] is None
    # And the mail is linked to both contacts and the company
    jane, joe = contacts[f"jane@{CUSTOMER}"]["contact_id"], contacts["joe.private@gmail.com"]["contact_id"]
    assert m.links(email_id) == {
        jane: "participant",
        joe: "participant",
        companies[CUSTOMER]["company_id"]: "participant",
    }


def test_an_auto_created_contact_takes_the_display_name_seen_in_earlier_mail(m: Matching) -> None:
    # Given received mail from "Carol Customer" (the default policy creates nobody for it)
    m.policy()
    m.store(raw_mail("Renewal", sender=f"Carol Customer <carol@{CUSTOMER}>", to=ME, msgid="c1@initech"))
    m.drain()
    assert m.contacts() == {}
    # When the user writes to her address without a name
    m.store(raw_mail("Re: Renewal", sender=ME, to=f"carol@{CUSTOMER}", msgid="c2@acme"), sent=True)
    m.drain()
    # Then her contact has her name, not the local part of her address
    assert m.contacts()[f"carol@{CUSTOMER}"]["name"] == "Carol Customer"


def test_a_later_display_name_renames_an_auto_created_contact_once(m: Matching) -> None:
    # Given contacts auto-created from nameless recipients (one display name is only an address)
    m.policy()
    m.store(
        raw_mail(
            "Hello", sender=ME, to=f'carol@{CUSTOMER}, "dave@{CUSTOMER}" <dave@{CUSTOMER}>', msgid="n1@acme"
        ),
        sent=True,
    )
    m.drain()
    contacts = m.contacts()
    assert (contacts[f"carol@{CUSTOMER}"]["name"], contacts[f"dave@{CUSTOMER}"]["name"]) == ("carol", "dave")
    # And the user renames dave by hand
    dave = contacts[f"dave@{CUSTOMER}"]["contact_id"]
    m.api("crm-patch-contact", path={"contact_id": dave}, body={"name": "David (purchasing)"})
    # When both reply with display names, carol's in directory order
    for sender, msgid in (
        (f'"Customer, Carol" <carol@{CUSTOMER}>', "n2"),
        (f"Dave Dee <dave@{CUSTOMER}>", "n3"),
    ):
        m.store(raw_mail("Re: Hello", sender=sender, to=ME, msgid=f"{msgid}@initech"))
    m.drain()
    # Then carol's contact takes her name, and the name the user gave dave stays
    contacts = m.contacts()
    assert contacts[f"carol@{CUSTOMER}"]["name"] == "Carol Customer"
    assert contacts[f"dave@{CUSTOMER}"]["name"] == "David (purchasing)"
    # And a later mail with another display name changes nothing any more
    m.store(raw_mail("Again", sender=f"CC <carol@{CUSTOMER}>", to=ME, msgid="n4@initech"))
    m.drain()
    assert m.contacts()[f"carol@{CUSTOMER}"]["name"] == "Carol Customer"


@pytest.mark.parametrize(
    ("extra", "sender"),
    [
        ("List-Id: <news.initech-industries.com>", f"news@{CUSTOMER}"),
        ("List-Unsubscribe: <mailto:unsub@initech-industries.com>", f"offers@{CUSTOMER}"),
        ("Auto-Submitted: auto-replied", f"vacation@{CUSTOMER}"),
        ("Precedence: bulk", f"blast@{CUSTOMER}"),
        ("", f"noreply@{CUSTOMER}"),
        ("", f"MAILER-DAEMON@{CUSTOMER}"),
        ("", f"support@{CUSTOMER}"),
    ],
)
def test_automated_and_role_mail_never_creates_contacts(m: Matching, extra: str, sender: str) -> None:
    # Given a policy that creates contacts for received mail too
    m.policy(auto_create="sent_and_received")
    # When bulk, automated or role mail arrives
    email_id = m.store(raw_mail("Update", sender=sender, to=ME, msgid=f"{sender}-a", extra=extra))
    m.drain()
    # Then nothing is created or linked, but the mail is indexed
    assert m.contacts() == {}
    assert m.companies() == {}
    assert m.links(email_id) == {}
    assert m.index(sender.lower()) == [email_id]


def test_sent_and_received_creates_the_sender_of_received_mail(m: Matching) -> None:
    m.policy(auto_create="sent_and_received")
    email_id = m.store(raw_mail("Question", sender=f"Ann <ann@{CUSTOMER}>", to=ME, msgid="q1@initech"))
    m.drain()
    assert set(m.contacts()) == {f"ann@{CUSTOMER}"}
    assert set(m.companies()) == {CUSTOMER}
    assert len(m.links(email_id)) == 2


def test_blocklisted_addresses_and_domains_are_never_linked_or_created(m: Matching) -> None:
    # Given a contact whose address is blocklisted, a blocklisted domain with a company
    m.policy(blocklist={"addresses": [f"peter@{CUSTOMER}"], "domains": ["blocked-corp.io"]})
    m.contact("Peter", f"peter@{CUSTOMER}")
    m.api("crm-create-company", 201, body={"name": "Blocked", "domains": ["blocked-corp.io"]})
    m.drain()
    # When the user writes to both
    email_id = m.store(
        raw_mail("Hi", sender=ME, to=f"peter@{CUSTOMER}, eve@blocked-corp.io", msgid="b1@acme"), sent=True
    )
    m.drain()
    # Then nothing is linked and no contact is created for the blocked domain
    assert m.links(email_id) == {}
    assert set(m.contacts()) == {f"peter@{CUSTOMER}"}


def test_with_the_crm_flag_off_the_consumer_acks_without_linking(m: Matching) -> None:
    # Given a contact, then the crm feature switched off
    m.policy()
    m.contact("Peter", f"peter@{CUSTOMER}")
    m.drain()
    m.api("put-features", role="admin", body={"crm": False})
    # When mail from the contact arrives
    email_id = m.store(raw_mail("Hi", sender=f"peter@{CUSTOMER}", to=ME, msgid="f1@initech"))
    m.drain()
    # Then the record was acknowledged and nothing was linked or indexed
    assert m.results[-1] == {"batchItemFailures": []}
    assert m.index(f"peter@{CUSTOMER}") == []
    m.api("put-features", role="admin", body={"crm": True})
    assert m.links(email_id) == {}


def test_a_redelivered_event_links_nothing_twice(m: Matching) -> None:
    m.policy()
    email_id = m.store(raw_mail("P", sender=ME, to=f"jane@{CUSTOMER}", msgid="dup@acme"), sent=True)
    messages = m.receive()
    m.invoke(messages)
    # When the same record comes again (and the same event is published again)
    m.invoke(messages)
    item = m.emails.get_email(TENANT, email_id)
    assert item is not None
    m.announce(TENANT, item)
    m.drain()
    # Then there is still one contact, one company and one link each
    assert len(m.contacts()) == 1
    assert len(m.companies()) == 1
    assert len(m.links(email_id)) == 2


# ------------------------------------------------------------------------------ re-matching


def test_a_new_contact_is_backfilled_in_resumable_steps(m: Matching) -> None:
    # Given seven stored emails from an address nobody knows, in both directions
    m.policy(auto_create="none")
    ids = [
        m.store(
            raw_mail(
                f"Mail {i}",
                sender=f"kim@{CUSTOMER}" if i % 2 else ME,
                to=ME if i % 2 else f"KIM@{CUSTOMER}",
                msgid=f"k{i}@x",
                date=f"Tue, 17 Nov 2026 1{i}:00:00 +0000",
            ),
            sent=not i % 2,
        )
        for i in range(7)
    ]
    m.drain()
    assert all(m.links(i) == {} for i in ids)
    # And a backfill budget of three index rows per message
    match_deps().budget = 3
    m.results.clear()
    # When a contact with that address is created
    contact = m.contact("Kim", f"kim@{CUSTOMER}")
    m.drain()
    # Then all seven emails are linked, in three steps: the event and two continuations (3 + 3 + 1)
    assert all(m.links(i) == {contact["contact_id"]: "participant"} for i in ids)
    assert len(m.results) == 3
    # And the contact's timeline lists them newest first, in pages
    page = m.api("crm-get-contact-timeline", path={"contact_id": contact["contact_id"]}, query={"limit": "4"})
    rest = m.api(
        "crm-get-contact-timeline",
        path={"contact_id": contact["contact_id"]},
        query={"limit": "4", "cursor": page["next_cursor"]},
    )
    assert [e["subject"] for e in page["items"] + rest["items"]] == [f"Mail {i}" for i in reversed(range(7))]
    assert rest["next_cursor"] is None
    assert {e["direction"] for e in page["items"]} == {"inbound", "outbound"}


def test_a_new_address_backfills_and_a_removed_one_unlinks(m: Matching) -> None:
    m.policy(auto_create="none")
    first = m.store(raw_mail("A", sender=f"kim@{CUSTOMER}", to=ME, msgid="a@x"))
    second = m.store(raw_mail("B", sender="kim.home@gmail.com", to=ME, msgid="b@x"))
    contact = m.contact("Kim", f"kim@{CUSTOMER}")
    m.drain()
    cid = contact["contact_id"]
    assert m.links(first) == {cid: "participant"}
    # When the contact's address is swapped for another one
    m.api(
        "crm-patch-contact",
        path={"contact_id": cid},
        body={"emails": [{"address": "kim.home@gmail.com"}]},
    )
    m.drain()
    # Then mail of the new address is linked and the old address's automatic link is gone
    assert m.links(second) == {cid: "participant"}
    assert m.links(first) == {}


def test_deleting_a_contact_removes_its_automatic_links_and_keeps_manual_ones(m: Matching) -> None:
    m.policy(auto_create="none")
    auto = m.store(raw_mail("A", sender=f"kim@{CUSTOMER}", to=ME, msgid="a@x"))
    by_hand = m.store(raw_mail("B", sender="someone@else.io", to=ME, msgid="b@x"))
    cid = m.contact("Kim", f"kim@{CUSTOMER}")["contact_id"]
    m.drain()
    m.api("links-create", 201, path={"email_id": by_hand}, body={"kind": "contact", "record_id": cid})
    # When the contact is deleted
    m.api("crm-delete-contact", path={"contact_id": cid})
    m.drain()
    # Then its automatic link is gone and the manual one stays
    assert m.links(auto) == {}
    assert m.links(by_hand) == {cid: "manual"}


# ------------------------------------------------------------------------------ api


def test_manual_links_by_email_context_and_tenant_isolation(m: Matching) -> None:
    m.policy(auto_create="none")
    email_id = m.store(raw_mail("Hello", sender=f"kim@{CUSTOMER}", to=ME, msgid="h@x"))
    m.drain()
    cid = m.contact("Kim", f"kim@{CUSTOMER}")["contact_id"]
    deal = m.api("crm-create-deal", 201, body={"name": "Big", "contact_ids": [cid]})
    m.drain()
    # The backfill linked the contact and its deal
    assert m.links(email_id) == {cid: "participant", deal["deal_id"]: "deal_rule"}
    # by-email returns the context with the newest emails
    view = m.api("crm-get-contact-by-email", path={"address": f"KIM@{CUSTOMER}"})
    assert [e["email_id"] for e in view["last_emails"]] == [email_id]
    assert [d["deal_id"] for d in view["open_deals"]] == [deal["deal_id"]]
    # The deal's timeline has the mail
    timeline = m.api("crm-get-deal-timeline", path={"deal_id": deal["deal_id"]})
    assert [e["email_id"] for e in timeline["items"]] == [email_id]
    # A manual link to a company, listed with its reason; then removed
    company = m.api("crm-create-company", 201, body={"name": "Other", "domains": ["other-corp.io"]})
    link = m.api(
        "links-create",
        201,
        path={"email_id": email_id},
        body={"kind": "company", "record_id": company["company_id"]},
    )
    assert link["reason"] == "manual"
    assert link["link_id"] == company["company_id"]
    assert m.links(email_id)[company["company_id"]] == "manual"
    m.api("links-delete", path={"email_id": email_id, "link_id": company["company_id"]})
    m.api("links-delete", 404, path={"email_id": email_id, "link_id": company["company_id"]})
    # An automatic link made manual survives re-matching as manual
    m.api("links-create", 201, path={"email_id": email_id}, body={"kind": "contact", "record_id": cid})
    m.api(
        "crm-patch-contact",
        path={"contact_id": cid},
        body={"emails": [{"address": f"kim@{CUSTOMER}"}, {"address": "k@x-corp.io"}]},
    )
    m.drain()
    assert m.links(email_id)[cid] == "manual"
    # Unknown records and emails are 404; viewers cannot link
    missing = "ct_" + "0" * 26
    body = {"kind": "contact", "record_id": missing}
    assert (
        m.api("links-create", 404, path={"email_id": email_id}, body=body)["error"]["code"]
        == "contact_not_found"
    )
    body = {"kind": "contact", "record_id": cid}
    assert m.api("links-create", 404, path={"email_id": "em_" + "0" * 26}, body=body)["error"]["code"] == (
        "email_not_found"
    )
    m.api("links-create", 403, role="viewer", path={"email_id": email_id}, body=body)
    # Campaign links need the campaigns flag
    body = {"kind": "campaign", "record_id": "cp_" + "0" * 26}
    assert (
        m.api("links-create", 404, path={"email_id": email_id}, body=body)["error"]["code"]
        == "feature_disabled"
    )
    m.api("put-features", role="admin", body={"campaigns": True})
    campaign = m.api("crm-create-campaign", 201, body={"name": "Spring"})
    body = {"kind": "campaign", "record_id": campaign["campaign_id"]}
    m.api("links-create", 201, path={"email_id": email_id}, body=body)
    # Tenant B can neither read nor link tenant A's email and records
    other = {"tenant": OTHER}
    m.api("links-list", 404, path={"email_id": email_id}, **other)
    m.api("crm-get-contact-timeline", 404, path={"contact_id": cid}, **other)
    m.api("crm-get-deal-timeline", 404, path={"deal_id": deal["deal_id"]}, **other)
    m.api("crm-get-contact-by-email", 404, path={"address": f"kim@{CUSTOMER}"}, **other)
    own = m.store(raw_mail("Mine", sender=f"kim@{CUSTOMER}", to=ME, msgid="mine@x"), tenant=OTHER)
    m.drain()
    m.api("links-create", 404, path={"email_id": own}, body={"kind": "contact", "record_id": cid}, **other)
    m.api("links-delete", 404, path={"email_id": email_id, "link_id": cid}, **other)
    # With crm off, the routes are gone
    m.api("put-features", role="admin", body={"crm": False})
    m.api("links-list", 404, path={"email_id": email_id})
    m.api("crm-get-settings", 404)


def test_settings_default_to_sent_and_only_admins_change_them(m: Matching) -> None:
    settings = m.api("crm-get-settings", role="viewer")
    assert settings["auto_create"] == "sent"
    assert settings["own_domains"] is None
    assert settings["version"] == 0
    m.api("crm-put-settings", 403, role="member", body={"auto_create": "none"})
    saved = m.api(
        "crm-put-settings", role="admin", body={"auto_create": "none", "own_domains": ["Acme-Corp.io"]}
    )
    assert saved["effective_own_domains"] == [OWN]
    assert saved["version"] == 1
    stale = m.api("crm-put-settings", 409, role="admin", body={"auto_create": "sent", "version": 0})
    assert stale["error"]["code"] == "version_conflict"
    m.api("crm-put-settings", 422, role="admin", body={"auto_create": "always"})


def test_the_issue_paths_for_timelines_answer_like_the_crm_ones(invoke_api: Any) -> None:
    """`GET /contacts/{id}/timeline` and `/deals/{id}/timeline` are aliases of the /crm/... routes."""
    from tests.events import load_event

    for alias, canonical in (
        ("api/contact-timeline.json", "api/crm-get-contact-timeline.json"),
        ("api/deal-timeline.json", "api/crm-get-deal-timeline.json"),
    ):
        # Given a record id this tenant does not have, both paths give the same answer
        answers = [
            invoke_api(load_event(name, tenant="nobody-here", role="viewer")) for name in (alias, canonical)
        ]
        assert [a["statusCode"] for a in answers] == [404, 404]
        assert json.loads(answers[0]["body"]) == json.loads(answers[1]["body"])
