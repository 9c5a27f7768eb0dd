"""Matching against the stores (moto, the template's own tables, created once per module): what
`match_email`, `backfill`, `prune` and the event entry points store. The fast tier for
`make mutate MODULES=crm/matching.py`; tests/integration/test_matching.py drives the same rules
through the bus, the MatchQueue and the match function."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from pydantic import BaseModel

from local.resources import create_table
from local.template import load_template
from mailbridge import aws
from mailbridge.bus import DomainEvent, EventPublisher
from mailbridge.crm import matching, service
from mailbridge.crm.matching import (
    SYSTEM_SUBJECT,
    MatchDeps,
    MatchOutcome,
    MatchWork,
    backfill,
    handle_event,
    handle_work,
    match_email,
    on_contact_event,
    prune,
)
from mailbridge.crm.models import (
    CompanyCreate,
    Contact,
    ContactCreate,
    ContactPatch,
    DealCreate,
    EmailLookup,
)
from mailbridge.crm.policy import CrmPolicyUpdate
from mailbridge.crm.settings import update_crm_settings
from mailbridge.crypto import Envelope
from mailbridge.models.account import Account
from mailbridge.models.features import FeatureFlags, FeatureSettings
from mailbridge.queues import MatchQueue
from mailbridge.store import pagination
from mailbridge.store.accounts import AccountStore
from mailbridge.store.crm import ContactFilter, CrmStore
from mailbridge.store.emails import EmailStore
from mailbridge.store.links import IndexEntry, LinkRecord, LinkStore
from mailbridge.store.policy import PolicyStore
from mailbridge.store.settings import DynamoFeatureStore
from mailbridge.tenancy import Role, TenantContext

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = load_template([ROOT / "template.yaml"])
TABLES = ("EmailsTable", "LinksTable", "CrmTable", "SettingsTable", "AccountsTable")
NOW = datetime(2026, 11, 18, 9, 30, tzinfo=UTC)
OWN = "acme-corp.io"
ME = f"me@{OWN}"
CUSTOMER = "initech-industries.com"


class RecordingPublisher(EventPublisher):
    """What would reach the bus: every event, in order."""

    def __init__(self) -> None:
        super().__init__("unused")
        self.events: list[DomainEvent] = []

    def publish(self, events: Sequence[DomainEvent]) -> None:
        self.events.extend(events)

    def types(self) -> list[str]:
        return [e.detail_type for e in self.events]


class RecordingQueue(MatchQueue):
    def __init__(self) -> None:
        super().__init__("unused")
        self.sent: list[MatchWork] = []

    def send(self, body: BaseModel) -> None:
        """What would reach the queue: the message as its JSON reads back."""
        self.sent.append(MatchWork.model_validate_json(body.model_dump_json()))


@pytest.fixture(scope="module")
def tables() -> Iterator[dict[str, str]]:
    """The five tables matching reads and writes, once per module (creating them is the slow part)."""
    with mock_aws(), pytest.MonkeyPatch.context() as patch:
        aws.reset_clients()
        patch.setattr(pagination, "signing_key", lambda: b"k" * 64)
        TEMPLATE.physical_ids["DataKey"] = boto3.client("kms", region_name="us-east-1").create_key()[
            "KeyMetadata"
        ]["KeyId"]
        client = boto3.client("dynamodb", region_name="us-east-1")
        yield {lid: create_table(client, TEMPLATE, lid) for lid in TABLES}
        aws.reset_clients()


@dataclass
class World:
    tenant: str
    deps: MatchDeps
    queue: RecordingQueue
    publisher: RecordingPublisher

    @property
    def member(self) -> TenantContext:
        return TenantContext(tenant_id=self.tenant, role=Role.MEMBER, subject="user-1")

    # ------------------------------------------------------------------ given
    def policy(self, **fields: Any) -> None:
        admin = TenantContext(tenant_id=self.tenant, role=Role.ADMIN, subject="admin-1")
        update = CrmPolicyUpdate.model_validate({"own_domains": [OWN], **fields})
        update_crm_settings(admin, update, self.deps.policies, self.deps.accounts)

    def email(
        self,
        email_id: str,
        *,
        sender: str | tuple[str, str],
        to: Sequence[str | tuple[str, str]] = (),
        cc: Sequence[str | tuple[str, str]] = (),
        direction: str = "inbound",
        date: str = "2026-11-17T10:00:00+00:00",
        **extra: Any,
    ) -> str:
        def people(values: Iterable[str | tuple[str, str]]) -> list[dict[str, Any]]:
            return [
                {"name": v[0], "address": v[1]} if isinstance(v, tuple) else {"name": None, "address": v}
                for v in values
            ]

        item = {
            "email_id": email_id,
            "thread_id": "th_" + email_id,
            "date": date,
            "direction": direction,
            "subject": "Hello",
            "from": people([sender]),
            "to": people(to),
            "cc": people(cc),
            **extra,
        }
        assert self.deps.emails.create_email(self.tenant, item)
        return email_id

    def contact(self, name: str, *addresses: str, company_id: str | None = None, **fields: Any) -> str:
        body = ContactCreate.model_validate(
            {"name": name, "emails": [{"address": a} for a in addresses], "company_id": company_id, **fields}
        )
        return service.create_contact(self.member, body, self.deps.crm).contact_id

    def company(self, name: str, *domains: str) -> str:
        body = CompanyCreate(name=name, domains=list(domains))
        return service.create_company(self.member, body, self.deps.crm).company_id

    def deal(
        self, name: str, *, contact_ids: Sequence[str] = (), company_id: str | None = None, **f: Any
    ) -> str:
        body = DealCreate.model_validate(
            {"name": name, "contact_ids": list(contact_ids), "company_id": company_id, **f}
        )
        return service.create_deal(self.member, body, self.deps.crm).deal_id

    def match(self, email_id: str) -> MatchOutcome:
        return match_email(self.tenant, email_id, self.deps)

    # ------------------------------------------------------------------ then
    def links(self, email_id: str) -> dict[str, str]:
        """record_id -> reason"""
        return {link.record_id: link.reason for link in self.deps.links.email_links(self.tenant, email_id)}

    def records(self, email_id: str) -> dict[str, LinkRecord]:
        return {link.record_id: link for link in self.deps.links.email_links(self.tenant, email_id)}

    def contacts(self) -> dict[str, Any]:
        return {c.addresses[0]: c for c in self.deps.crm.get_contacts(self.tenant, self._contact_ids())}

    def _contact_ids(self) -> list[str]:
        items, _ = self.deps.crm.list_contacts(self.tenant, ContactFilter(), cursor=None, limit=100)
        return [c.contact_id for c in items]

    def companies(self) -> dict[str, Any]:
        items, _ = self.deps.crm.list_companies(self.tenant, q=None, cursor=None, limit=100)
        return {c.domains[0]: c for c in items if c.domains}


def new_world(tables: dict[str, str], *, budget: int = matching.BACKFILL_BUDGET) -> World:
    queue, publisher = RecordingQueue(), RecordingPublisher()
    deps = MatchDeps(
        emails=EmailStore(tables["EmailsTable"]),
        links=LinkStore(tables["LinksTable"]),
        crm=CrmStore(tables["CrmTable"]),
        policies=PolicyStore(tables["SettingsTable"]),
        accounts=AccountStore(tables["AccountsTable"]),
        features=DynamoFeatureStore(tables["SettingsTable"]),
        publisher=publisher,
        queue=queue,
        budget=budget,
        now=lambda: NOW,
    )
    return World("t" + uuid.uuid4().hex[:12], deps, queue, publisher)


@pytest.fixture
def w(tables: dict[str, str]) -> World:
    return new_world(tables)


# ------------------------------------------------------------------------------ new mail


def test_a_missing_email_is_answered_as_missing_and_writes_nothing(w: World) -> None:
    # Given no stored email
    # When an event names one
    outcome = w.match("em_gone")
    # Then nothing is matched
    assert outcome == MatchOutcome("email_missing")


def test_received_mail_links_contact_company_and_latest_deals_with_their_provenance(w: World) -> None:
    # Given a company, a contact at it, and open deals of each (the newer ones updated last)
    w.policy()
    company = w.company("Initech", CUSTOMER)
    peter = w.contact("Peter", f"peter@{CUSTOMER}", company_id=company)
    w.deal("Old", contact_ids=[peter])
    newer = w.deal("New", contact_ids=[peter])
    w.deal("Company old", company_id=company)
    company_deal = w.deal("Company new", company_id=company)
    w.deal("Won", contact_ids=[peter], stage="won")
    w.email("em_1", sender=("Peter", f"Peter@{CUSTOMER.upper()}"), to=[ME], cc=[f"bill@{CUSTOMER}"])
    # When it is matched
    outcome = w.match("em_1")
    # Then the contact, its company and the newest open deal of each are linked
    assert w.links("em_1") == {
        peter: "participant",
        company: "participant",
        newer: "deal_rule",
        company_deal: "deal_rule",
    }
    assert outcome == MatchOutcome("matched", linked=4)
    # And each link says what it came from, when, and that matching made it
    records = w.records("em_1")
    assert records[peter].via == f"peter@{CUSTOMER}"
    assert records[company].via == f"peter@{CUSTOMER}"
    assert records[newer].via == peter
    assert records[company_deal].via == company
    assert {(r.kind, r.date, r.direction, r.created_at, r.created_by) for r in records.values()} == {
        (kind, "2026-11-17T10:00:00+00:00", "inbound", NOW.isoformat(), SYSTEM_SUBJECT)
        for kind in ("contact", "company", "deal")
    }
    # And every participant is in the participant index under its role
    for address, role in ((f"peter@{CUSTOMER}", "from"), (ME, "to"), (f"bill@{CUSTOMER}", "cc")):
        entries = w.deps.links.address_emails(w.tenant, address, limit=5)
        assert [(e.email_id, e.role, e.direction, e.date) for e in entries] == [
            ("em_1", role, "inbound", "2026-11-17T10:00:00+00:00")
        ]


def test_a_company_is_linked_by_domain_but_never_by_an_own_domain(w: World) -> None:
    # Given a company at the customer's domain and one holding the tenant's own domain
    w.policy(auto_create="none")
    customer = w.company("Initech", CUSTOMER)
    w.company("Us", OWN)
    w.email("em_1", sender=f"stranger@{CUSTOMER}", to=[ME])
    # When mail from a stranger at the customer arrives
    outcome = w.match("em_1")
    # Then only the customer is linked, by domain
    assert w.links("em_1") == {customer: "domain"}
    assert w.records("em_1")[customer].via == CUSTOMER
    assert outcome == MatchOutcome("matched", linked=1)
    # And no contact was linked, so nothing is announced for CRM activity logging
    assert "email.linked" not in w.publisher.types()


def test_sent_mail_creates_a_company_and_contacts_named_from_the_mail(w: World) -> None:
    # Given the default policy and an existing company for one recipient's domain
    w.policy()
    known_company = w.company("Globex", "globex-corp.com")
    w.email(
        "em_1",
        sender=ME,
        to=[("Jane Roe", f"jane@{CUSTOMER}"), "hank@globex-corp.com"],
        direction="outbound",
    )
    # When the sent mail is matched
    outcome = w.match("em_1")
    # Then a company is created for the new domain (named after it) and each recipient gets a contact
    companies = w.companies()
    assert set(companies) == {CUSTOMER, "globex-corp.com"}
    assert companies[CUSTOMER].name == CUSTOMER
    contacts = w.contacts()
    jane, hank = contacts[f"jane@{CUSTOMER}"], contacts["hank@globex-corp.com"]
    assert (jane.name, jane.company_id, jane.tags) == (
        "Jane Roe",
        companies[CUSTOMER].company_id,
        ["auto-created"],
    )
    assert (hank.name, hank.company_id) == ("hank", known_company)
    # And the contacts were created by matching, and the mail linked to all four records
    assert jane.created_by == SYSTEM_SUBJECT
    # (the companies as the contacts' companies, not only by their domains)
    assert w.links("em_1") == {
        jane.contact_id: "participant",
        hank.contact_id: "participant",
        known_company: "participant",
        companies[CUSTOMER].company_id: "participant",
    }
    assert outcome == MatchOutcome("matched", linked=4, contacts_created=2, companies_created=1)
    # And the creations were announced on the bus, as matching's own, and then the contacts the
    # mail is linked to, once (for CRM activity logging), companies left out
    assert sorted(w.publisher.types()) == [
        "company.created",
        "contact.created",
        "contact.created",
        "email.linked",
    ]
    linked = [e for e in w.publisher.events if e.detail_type == "email.linked"]
    assert linked[0].data == {"email_id": "em_1", "contact_ids": sorted([jane.contact_id, hank.contact_id])}
    assert {e.tenant_id for e in w.publisher.events} == {w.tenant}


def test_an_address_at_a_host_that_is_no_public_domain_creates_nothing(w: World) -> None:
    # Given the default policy
    w.policy()
    w.email("em_1", sender=ME, to=["jo@mailhost", f"jane@{CUSTOMER}"], direction="outbound")
    # When mail to an address at a single-label host and to a customer is matched
    outcome = w.match("em_1")
    # Then neither a company nor a contact is made for the host, and the customer's are
    assert set(w.companies()) == {CUSTOMER}
    assert set(w.contacts()) == {f"jane@{CUSTOMER}"}
    assert (outcome.contacts_created, outcome.companies_created) == (1, 1)


class StaleCrm(CrmStore):
    """A CRM whose address and domain lookups miss what was created meanwhile (a concurrent match)."""

    def find_emails(self, tenant_id: str, addresses: Iterable[str]) -> dict[str, EmailLookup]:
        return {}

    def find_domains(self, tenant_id: str, domains: Iterable[str]) -> dict[str, str]:
        return {}


def test_a_contact_created_meanwhile_is_linked_not_duplicated(w: World) -> None:
    # Given a contact and its company that the lookups of this match do not see yet
    w.policy()
    company = w.company("Initech", CUSTOMER)
    jane = w.contact("Jane", f"jane@{CUSTOMER}", company_id=company)
    w.deps.crm = StaleCrm(w.deps.crm.table_name)
    w.email("em_1", sender=ME, to=[f"jane@{CUSTOMER}"], direction="outbound")
    # When the sent mail is matched
    outcome = w.match("em_1")
    # Then the existing contact and company are linked, and nothing new was created
    assert set(w.contacts()) == {f"jane@{CUSTOMER}"}
    assert set(w.companies()) == {CUSTOMER}
    assert w.links("em_1") == {jane: "participant", company: "participant"}
    assert outcome.linked == 2


def test_a_company_created_meanwhile_gets_the_new_contact(w: World) -> None:
    # Given a company that the lookups of this match do not see yet
    w.policy()
    company = w.company("Initech", CUSTOMER)
    w.deps.crm = StaleCrm(w.deps.crm.table_name)
    w.email("em_1", sender=ME, to=[f"jane@{CUSTOMER}"], direction="outbound")
    # When mail to a new person at its domain is matched
    w.match("em_1")
    # Then her contact is created at that company, and no second company is made
    assert set(w.companies()) == {CUSTOMER}
    jane = w.contacts()[f"jane@{CUSTOMER}"]
    assert jane.company_id == company
    assert w.links("em_1") == {jane.contact_id: "participant", company: "participant"}


def test_sent_mail_is_linked_and_indexed_as_sent(w: World) -> None:
    # Given a known contact
    w.policy(auto_create="none")
    kim = w.contact("Kim", f"kim@{CUSTOMER}")
    # When mail the user sent to her is matched
    w.email("em_out", sender=ME, to=[f"kim@{CUSTOMER}"], direction="outbound")
    w.match("em_out")
    # Then the link and both participants' index rows say the mail was sent, not received
    assert w.records("em_out")[kim].direction == "outbound"
    for address in (ME, f"kim@{CUSTOMER}"):
        [entry] = w.deps.links.address_emails(w.tenant, address, limit=5)
        assert (entry.email_id, entry.direction) == ("em_out", "outbound")


def test_recipients_at_one_new_domain_share_the_one_company_created_for_it(w: World) -> None:
    # Given the default policy and no company yet
    w.policy()
    w.email(
        "em_1",
        sender=ME,
        to=[f"jane@{CUSTOMER}", f"joe@{CUSTOMER}", "kay@globex-corp.com"],
        direction="outbound",
    )
    # When the sent mail is matched
    outcome = w.match("em_1")
    # Then one company is created per new domain, and both colleagues are at the same one
    companies = w.companies()
    assert set(companies) == {CUSTOMER, "globex-corp.com"}
    contacts = w.contacts()
    assert {a: c.company_id for a, c in contacts.items()} == {
        f"jane@{CUSTOMER}": companies[CUSTOMER].company_id,
        f"joe@{CUSTOMER}": companies[CUSTOMER].company_id,
        "kay@globex-corp.com": companies["globex-corp.com"].company_id,
    }
    # And the outcome counts each creation once
    assert outcome == MatchOutcome("matched", linked=5, contacts_created=3, companies_created=2)
    assert sorted(w.publisher.types()) == ["company.created"] * 2 + ["contact.created"] * 3 + ["email.linked"]


def test_without_a_stored_policy_the_connected_mailboxes_domains_are_the_own_ones(w: World) -> None:
    # Given no CRM policy saved, a mailbox connected at the tenant's domain, and a company holding it
    account = Account(
        account_id="acc_1",
        tenant_id=w.tenant,
        provider="imap",
        address=ME,
        created_at=NOW,
        created_by="seed",
    )
    w.deps.accounts.create_account(account, Envelope(encrypted_key="k", nonce="n", ciphertext="c"))
    us = w.company("Us", OWN)
    # When the user's mail to a colleague and to a customer is matched
    w.email("em_1", sender=ME, to=[f"bob@{OWN}", f"jane@{CUSTOMER}"], direction="outbound")
    outcome = w.match("em_1")
    # Then the colleague is treated as own: no contact for him, and the own company is not linked
    assert set(w.contacts()) == {f"jane@{CUSTOMER}"}
    assert us not in w.links("em_1")
    assert set(w.companies()) == {OWN, CUSTOMER}
    assert (outcome.contacts_created, outcome.companies_created) == (1, 1)


def test_an_auto_created_contact_takes_a_name_from_earlier_mail(w: World) -> None:
    # Given received mail from "Carol Customer" (nobody created for it), among newer mail without a name
    w.policy()
    w.email("em_1", sender=("Carol Customer", f"carol@{CUSTOMER}"), to=[ME], date="2026-11-10T10:00:00+00:00")
    w.email(
        "em_2",
        sender=f"carol@{CUSTOMER}",
        to=[ME],
        cc=[("Ann", "ann@x-corp.com")],
        date="2026-11-11T10:00:00+00:00",
    )
    w.match("em_1")
    w.match("em_2")
    assert w.contacts() == {}
    # When the user writes to her without a name
    w.email(
        "em_3", sender=ME, to=[f"carol@{CUSTOMER}"], direction="outbound", date="2026-11-12T10:00:00+00:00"
    )
    w.match("em_3")
    # Then her contact has the name her own earlier mail carried
    assert w.contacts()[f"carol@{CUSTOMER}"].name == "Carol Customer"


def test_names_seen_on_recipients_of_earlier_mail_are_taken(w: World) -> None:
    # Given received mail that named carol as a recipient and dan in copy (nobody created for it)
    w.policy()
    w.email(
        "em_1",
        sender=f"ann@{CUSTOMER}",
        to=[ME, ("Carol Customer", f"carol@{CUSTOMER}")],
        cc=[("Dan Dee", f"dan@{CUSTOMER}")],
    )
    w.match("em_1")
    # When the user writes to both without names
    w.email("em_2", sender=ME, to=[f"carol@{CUSTOMER}", f"dan@{CUSTOMER}"], direction="outbound")
    w.match("em_2")
    # Then both contacts have the names that mail gave them
    contacts = w.contacts()
    assert (contacts[f"carol@{CUSTOMER}"].name, contacts[f"dan@{CUSTOMER}"].name) == (
        "Carol Customer",
        "Dan Dee",
    )


def test_the_display_name_of_the_mail_at_hand_wins_however_old_it_is(w: World) -> None:
    # Given an address with more newer mail than the name lookback reads
    w.policy()
    newer = [
        IndexEntry(f"carol@{CUSTOMER}", f"em_new{i}", f"2026-11-2{i}T10:00:00+00:00", "inbound", "from")
        for i in range(matching.NAME_LOOKBACK)
    ]
    w.deps.links.index_participants(w.tenant, newer)
    # When an older sent mail naming her is matched
    w.email("em_old", sender=ME, to=[("Carol Customer", f"carol@{CUSTOMER}")], direction="outbound")
    w.match("em_old")
    # Then her contact takes that name
    assert w.contacts()[f"carol@{CUSTOMER}"].name == "Carol Customer"


def test_a_later_display_name_renames_only_contacts_matching_named_after_their_address(w: World) -> None:
    # Given auto-created contacts named after their local part, one renamed by hand since, and a
    # contact a person created with a local-part name
    w.policy()
    w.email("em_1", sender=ME, to=[f"carol@{CUSTOMER}", f"dave@{CUSTOMER}"], direction="outbound")
    w.match("em_1")
    contacts = w.contacts()
    carol, dave = contacts[f"carol@{CUSTOMER}"], contacts[f"dave@{CUSTOMER}"]
    assert (carol.name, dave.name) == ("carol", "dave")
    service.update_contact(w.member, dave.contact_id, ContactPatch(name="David"), w.deps.crm)
    erin = w.contact("erin", f"erin@{CUSTOMER}")
    # When all three reply with display names
    w.email(
        "em_2",
        sender=("Customer, Carol", f"carol@{CUSTOMER}"),
        to=[ME],
        cc=[("Dave Dee", f"dave@{CUSTOMER}"), ("Erin E", f"erin@{CUSTOMER}")],
    )
    w.match("em_2")
    # Then only carol's contact takes the name, in "First Last" order, updated by matching
    contacts = w.contacts()
    assert contacts[f"carol@{CUSTOMER}"].name == "Carol Customer"
    assert w.publisher.types().count("contact.updated") == 1
    assert contacts[f"dave@{CUSTOMER}"].name == "David"
    assert w.deps.crm.get_contact(w.tenant, erin).name == "erin"  # type: ignore[union-attr]


def test_contacts_a_display_name_may_not_rename_do_not_stop_the_others(w: World) -> None:
    # Given a contact a person created, an auto-created one renamed by hand since, and one still
    # named after its address, in that order on the reply
    w.policy()
    w.email("em_1", sender=ME, to=[f"dave@{CUSTOMER}", f"carol@{CUSTOMER}"], direction="outbound")
    w.match("em_1")
    dave = w.contacts()[f"dave@{CUSTOMER}"]
    service.update_contact(w.member, dave.contact_id, ContactPatch(name="David"), w.deps.crm)
    w.contact("erin", f"erin@{CUSTOMER}")
    w.email(
        "em_2",
        sender=("Erin E", f"erin@{CUSTOMER}"),
        to=[ME],
        cc=[("Dave Dee", f"dave@{CUSTOMER}"), ("Carol Customer", f"carol@{CUSTOMER}")],
    )
    # When the reply is matched
    w.match("em_2")
    # Then the last one still takes its display name, and the other two keep theirs
    contacts = w.contacts()
    names = {a: contacts[f"{a}@{CUSTOMER}"].name for a in ("erin", "dave", "carol")}
    assert names == {"erin": "erin", "dave": "David", "carol": "Carol Customer"}


class StaleContactsCrm(CrmStore):
    """A CRM whose contact reads answer a snapshot taken earlier (a change made meanwhile unseen)."""

    def __init__(self, table_name: str, snapshot: Iterable[Contact]) -> None:
        super().__init__(table_name)
        self.snapshot = {c.contact_id: c for c in snapshot}

    def get_contacts(self, tenant_id: str, contact_ids: Sequence[str]) -> list[Contact]:
        return [self.snapshot[c] for c in contact_ids if c in self.snapshot]


def test_a_name_set_by_a_person_meanwhile_wins_and_the_other_contacts_are_still_named(w: World) -> None:
    # Given two contacts matching created (named after their addresses), read by this match
    # before a person renamed the first
    w.policy()
    w.email("em_1", sender=ME, to=[f"carol@{CUSTOMER}", f"dave@{CUSTOMER}"], direction="outbound")
    w.match("em_1")
    before = w.contacts()
    carol, dave = before[f"carol@{CUSTOMER}"], before[f"dave@{CUSTOMER}"]
    service.update_contact(w.member, carol.contact_id, ContactPatch(name="Caroline"), w.deps.crm)
    w.deps.crm = StaleContactsCrm(w.deps.crm.table_name, [carol, dave])
    # When their reply with display names is matched
    w.email(
        "em_2",
        sender=("Carol Customer", f"carol@{CUSTOMER}"),
        to=[ME],
        cc=[("Dave Dee", f"dave@{CUSTOMER}")],
    )
    w.match("em_2")
    # Then the person's name stays, and the second contact takes its display name all the same
    w.deps.crm = CrmStore(w.deps.crm.table_name)
    after = w.contacts()
    assert (after[f"carol@{CUSTOMER}"].name, after[f"dave@{CUSTOMER}"].name) == ("Caroline", "Dave Dee")


class StaleLookupCrm(CrmStore):
    """A CRM whose address lookups answer what they answered before an address changed."""

    def __init__(self, table_name: str, stale: dict[str, EmailLookup]) -> None:
        super().__init__(table_name)
        self.stale = stale

    def find_emails(self, tenant_id: str, addresses: Iterable[str]) -> dict[str, EmailLookup]:
        wanted = list(addresses)
        return {
            **super().find_emails(tenant_id, wanted),
            **{a: self.stale[a] for a in wanted if a in self.stale},
        }


def test_a_contact_whose_address_changed_since_the_lookup_is_not_renamed(w: World) -> None:
    # Given a contact matching created for an address, moved by a person to another address,
    # and a lookup that still gives it for the old one
    w.policy()
    w.email("em_1", sender=ME, to=[f"kim@{CUSTOMER}"], direction="outbound")
    w.match("em_1")
    kim = w.contacts()[f"kim@{CUSTOMER}"]
    patch = ContactPatch.model_validate({"emails": [{"address": "kim@home-mail.org"}]})
    service.update_contact(w.member, kim.contact_id, patch, w.deps.crm)
    stale = EmailLookup(address=f"kim@{CUSTOMER}", contact_id=kim.contact_id, company_id=kim.company_id)
    w.deps.crm = StaleLookupCrm(w.deps.crm.table_name, {f"kim@{CUSTOMER}": stale})
    # When mail naming the old address is matched
    w.email("em_2", sender=("Kim Kay", f"kim@{CUSTOMER}"), to=[ME])
    outcome = w.match("em_2")
    # Then matching goes on and the contact keeps its name
    assert outcome.action == "matched"
    assert w.deps.crm.get_contact(w.tenant, kim.contact_id).name == "kim"  # type: ignore[union-attr]


# ------------------------------------------------------------------------------ re-matching


def _indexed(w: World, count: int, address: str) -> list[str]:
    """`count` emails from `address`, matched (so indexed) while nobody knew it."""
    ids = []
    for i in range(count):
        email_id = w.email(f"em_{i}", sender=address, to=[ME], date=f"2026-11-17T1{i}:00:00+00:00")
        w.match(email_id)
        ids.append(email_id)
    return ids


def test_a_new_contact_is_backfilled_in_resumable_steps(tables: dict[str, str]) -> None:
    # Given five indexed emails of an address nobody knew, and a budget of two index rows a step
    w = new_world(tables, budget=2)
    w.policy(auto_create="none")
    ids = _indexed(w, 5, f"kim@{CUSTOMER}")
    company = w.company("Initech", CUSTOMER)
    kim = w.contact("Kim", "kim@home-mail.org", f"kim@{CUSTOMER}", company_id=company)
    deal = w.deal("Renewal", contact_ids=[kim])
    # When the contact's creation is handled, then each queued continuation
    outcomes = [on_contact_event("contact.created", w.tenant, {"contact": {"contact_id": kim}}, w.deps)]
    while w.queue.sent:
        outcomes.append(handle_work(w.queue.sent.pop(0), w.deps))
    # Then every email is linked to the contact, its company and its deal
    for email_id in ids:
        assert w.links(email_id) == {kim: "participant", company: "participant", deal: "deal_rule"}
        assert w.records(email_id)[kim].via == f"kim@{CUSTOMER}"
    # And that took three steps of at most two rows (2 + 2 + 1 emails, three links each)
    assert outcomes == [
        MatchOutcome("backfilled", 6, continued=True),
        MatchOutcome("backfilled", 6, continued=True),
        MatchOutcome("backfilled", 3),
    ]


def test_a_continuation_names_where_to_resume(tables: dict[str, str]) -> None:
    # Given three indexed emails of a contact's second address and a budget of two rows
    w = new_world(tables, budget=2)
    w.policy(auto_create="none")
    _indexed(w, 3, f"kim@{CUSTOMER}")
    kim = w.contact("Kim", "kim@home-mail.org", f"kim@{CUSTOMER}")
    # When the backfill runs
    work = MatchWork(kind="backfill", tenant_id=w.tenant, contact_id=kim, step=4)
    outcome = backfill(work, w.deps)
    # Then it stops after two rows and queues the next step at the second address, past them
    assert outcome == MatchOutcome("backfilled", 2, continued=True)
    [queued] = w.queue.sent
    assert (queued.kind, queued.contact_id, queued.address_index, queued.step) == ("backfill", kim, 1, 5)
    assert queued.cursor is not None
    # And the continuation links the third email only
    assert backfill(queued, w.deps) == MatchOutcome("backfilled", 1)


def test_a_step_reads_only_the_rows_its_budget_leaves_across_addresses(tables: dict[str, str]) -> None:
    # Given a contact with two addresses (two emails each) and a budget of three rows a step
    w = new_world(tables, budget=3)
    w.policy(auto_create="none")
    _indexed(w, 2, "kim@home-mail.org")
    for email_id, date in (("em_x", "2026-11-18T10:00:00+00:00"), ("em_y", "2026-11-19T10:00:00+00:00")):
        w.email(email_id, sender=f"kim@{CUSTOMER}", to=[ME], date=date)
        w.match(email_id)
    kim = w.contact("Kim", "kim@home-mail.org", f"kim@{CUSTOMER}")
    # When the backfill runs
    outcome = backfill(MatchWork(kind="backfill", tenant_id=w.tenant, contact_id=kim), w.deps)
    # Then it links the first address's two and the second's oldest, and continues at the second
    assert outcome == MatchOutcome("backfilled", 3, continued=True)
    assert (w.links("em_x"), w.links("em_y")) == ({kim: "participant"}, {})
    [queued] = w.queue.sent
    assert (queued.address_index, queued.step) == (1, 1)
    assert queued.cursor is not None
    # And the continuation links the rest
    assert handle_work(queued, w.deps) == MatchOutcome("backfilled", 1)
    assert w.links("em_y") == {kim: "participant"}


def test_a_backfilled_link_keeps_the_mails_date_and_direction_and_takes_the_companys_deal(
    w: World,
) -> None:
    # Given mail the user sent to an address nobody knew, then a contact for it at a company with
    # an open deal of the company's own
    w.policy(auto_create="none")
    w.email(
        "em_out", sender=ME, to=[f"kim@{CUSTOMER}"], direction="outbound", date="2026-11-03T08:15:00+00:00"
    )
    w.match("em_out")
    company = w.company("Initech", CUSTOMER)
    kim = w.contact("Kim", f"kim@{CUSTOMER}", company_id=company)
    deal = w.deal("Company renewal", company_id=company)
    # When the contact is backfilled
    backfill(MatchWork(kind="backfill", tenant_id=w.tenant, contact_id=kim), w.deps)
    # Then the mail is linked to the contact, its company and the company's deal
    assert w.links("em_out") == {kim: "participant", company: "participant", deal: "deal_rule"}
    assert w.records("em_out")[deal].via == company
    # And each link has the mail's date and direction (what the timelines show and sort by)
    assert {(r.date, r.direction) for r in w.records("em_out").values()} == {
        ("2026-11-03T08:15:00+00:00", "outbound")
    }


def test_a_backfill_whose_last_page_fills_its_budget_queues_no_further_step(tables: dict[str, str]) -> None:
    # Given two indexed emails of a contact's only address and a budget of two rows a step
    w = new_world(tables, budget=2)
    w.policy(auto_create="none")
    ids = _indexed(w, 2, f"kim@{CUSTOMER}")
    kim = w.contact("Kim", f"kim@{CUSTOMER}")
    # When the backfill reads both and the index says there are no more
    outcome = backfill(MatchWork(kind="backfill", tenant_id=w.tenant, contact_id=kim), w.deps)
    # Then it is done: nothing is queued
    assert outcome == MatchOutcome("backfilled", 2)
    assert w.queue.sent == []
    assert [w.links(i) for i in ids] == [{kim: "participant"}] * 2


def test_a_blocklisted_address_of_a_contact_is_not_backfilled(w: World) -> None:
    # Given mail of two addresses, one of them blocklisted
    w.policy(auto_create="none", blocklist={"addresses": ["kim@home-mail.org"]})
    w.email("em_1", sender="kim@home-mail.org", to=[ME])
    w.email("em_2", sender=f"kim@{CUSTOMER}", to=[ME])
    w.match("em_1")
    w.match("em_2")
    kim = w.contact("Kim", "kim@home-mail.org", f"kim@{CUSTOMER}")
    # When the contact is backfilled
    outcome = backfill(MatchWork(kind="backfill", tenant_id=w.tenant, contact_id=kim), w.deps)
    # Then only the other address's mail is linked
    assert w.links("em_1") == {}
    assert w.links("em_2") == {kim: "participant"}
    assert outcome == MatchOutcome("backfilled", 1)


def test_a_backfill_or_prune_for_a_missing_contact_does_nothing(w: World) -> None:
    w.policy()
    outcome = backfill(MatchWork(kind="backfill", tenant_id=w.tenant, contact_id="ct_gone"), w.deps)
    assert outcome == MatchOutcome("contact_missing")
    assert prune(MatchWork(kind="prune", tenant_id=w.tenant, contact_id="ct_gone"), w.deps) == MatchOutcome(
        "pruned"
    )


def _linked_contact(w: World, count: int) -> tuple[str, list[str]]:
    w.policy(auto_create="none")
    ids = _indexed(w, count, f"kim@{CUSTOMER}")
    kim = w.contact("Kim", f"kim@{CUSTOMER}")
    backfill(MatchWork(kind="backfill", tenant_id=w.tenant, contact_id=kim), w.deps)
    assert all(w.links(i) == {kim: "participant"} for i in ids)
    return kim, ids


def test_deleting_a_contact_removes_its_automatic_links_and_keeps_manual_ones(w: World) -> None:
    # Given a contact linked automatically to two emails, and by hand to a third
    kim, ids = _linked_contact(w, 2)
    w.email("em_hand", sender="other@else-corp.com", to=[ME])
    manual = LinkRecord(
        "em_hand", "contact", kim, "manual", None, "2026-11-17T10:00:00+00:00", "inbound", "x", "u"
    )
    w.deps.links.put_manual_link(w.tenant, manual)
    # When its deletion is handled
    outcome = on_contact_event("contact.deleted", w.tenant, {"contact": {"contact_id": kim}}, w.deps)
    # Then the automatic links are gone and the manual one stays
    assert [w.links(i) for i in ids] == [{}, {}]
    assert w.links("em_hand") == {kim: "manual"}
    assert outcome == MatchOutcome("pruned", removed=2)


def test_a_prune_past_its_budget_continues_from_its_cursor(tables: dict[str, str]) -> None:
    # Given a contact linked to three emails and a budget of two links a step
    w = new_world(tables)
    kim, ids = _linked_contact(w, 3)
    w.deps.budget = 2
    # When its deletion is handled, then the queued continuation
    first = on_contact_event("contact.deleted", w.tenant, {"contact_id": kim}, w.deps)
    [queued] = w.queue.sent
    # Then the first step removed two and queued the rest, which the next step removes
    assert first == MatchOutcome("pruned", removed=2, continued=True)
    assert (queued.kind, queued.contact_id, queued.address_index, queued.step) == ("prune", kim, 0, 1)
    assert queued.cursor is not None
    assert handle_work(queued, w.deps) == MatchOutcome("pruned", removed=1)
    assert [w.links(i) for i in ids] == [{}, {}, {}]


def _auto_links(w: World, contact_id: str, count: int, *, reason: str = "participant") -> None:
    """`count` links of the contact to emails (newest first by date), as matching or a person stores them."""
    w.deps.links.put_auto_links(
        w.tenant,
        [
            LinkRecord(
                f"em_{i:03}", "contact", contact_id, reason, f"kim@{CUSTOMER}",
                f"2026-11-17T10:{i // 60:02}:{i % 60:02}+00:00", "inbound", NOW.isoformat(), SYSTEM_SUBJECT,
            )
            for i in range(count)
        ],
    )  # fmt: skip


def test_a_prune_step_resumes_past_the_manual_links_it_already_read(tables: dict[str, str]) -> None:
    # Given a contact's two newest links made by hand, two older ones automatic, two links a step
    w = new_world(tables, budget=2)
    _auto_links(w, "ct_kim", 2)
    for i in (8, 9):
        manual = LinkRecord(
            f"em_hand{i}",
            "contact",
            "ct_kim",
            "manual",
            None,
            f"2026-11-2{i}T10:00:00+00:00",
            "inbound",
            "x",
            "u",
        )
        w.deps.links.put_manual_link(w.tenant, manual)
    # When the contact's deletion is pruned step by step
    first = prune(MatchWork(kind="prune", tenant_id=w.tenant, contact_id="ct_kim"), w.deps)
    [queued] = w.queue.sent
    second = handle_work(queued, w.deps)
    # Then the first step read the manual links and removed nothing, the second removed the rest
    assert first == MatchOutcome("pruned", removed=0, continued=True)
    assert second == MatchOutcome("pruned", removed=2)
    assert w.links("em_hand8") == {"ct_kim": "manual"}


def test_a_prune_step_reads_one_link_with_a_budget_of_one(tables: dict[str, str]) -> None:
    w = new_world(tables, budget=1)
    _auto_links(w, "ct_kim", 3)
    outcome = prune(MatchWork(kind="prune", tenant_id=w.tenant, contact_id="ct_kim"), w.deps)
    assert outcome == MatchOutcome("pruned", removed=1, continued=True)


def test_a_prune_step_past_a_full_page_reads_only_what_its_budget_leaves(tables: dict[str, str]) -> None:
    # Given 120 automatic links of a contact and a budget of 110 a step (pages hold 100)
    w = new_world(tables, budget=110)
    _auto_links(w, "ct_kim", 120)
    # When the contact is pruned
    first = prune(MatchWork(kind="prune", tenant_id=w.tenant, contact_id="ct_kim"), w.deps)
    # Then the step removes a page and ten more, and its continuation the last ten
    assert first == MatchOutcome("pruned", removed=110, continued=True)
    assert handle_work(w.queue.sent[0], w.deps) == MatchOutcome("pruned", removed=10)


def test_an_address_swap_backfills_the_new_one_and_unlinks_the_old(w: World) -> None:
    # Given a contact linked to mail of its address, and mail of another address
    kim, ids = _linked_contact(w, 1)
    w.email("em_home", sender="Kim@Home-Mail.org", to=[ME])
    w.match("em_home")
    patch = ContactPatch.model_validate({"emails": [{"address": "kim@home-mail.org"}]})
    after = service.update_contact(w.member, kim, patch, w.deps.crm)
    # When the update naming the emails as changed is handled
    data = {"contact": after.model_dump(mode="json"), "changed": ["emails"]}
    outcome = on_contact_event("contact.updated", w.tenant, data, w.deps)
    # Then the new address's mail is linked and the old one's link is gone
    assert w.links("em_home") == {kim: "participant"}
    assert w.links(ids[0]) == {}
    assert outcome == MatchOutcome("rematched", 1, removed=1)


def test_an_added_address_with_more_mail_than_a_step_holds_continues_the_rematch(
    tables: dict[str, str],
) -> None:
    # Given a contact linked to mail of its address, two more emails of another address, and a
    # budget of two index rows a step
    w = new_world(tables)
    kim, ids = _linked_contact(w, 1)
    home = []
    for i in range(2):
        w.email(f"em_h{i}", sender="kim@home-mail.org", to=[ME], date=f"2026-11-18T1{i}:00:00+00:00")
        w.match(f"em_h{i}")
        home.append(f"em_h{i}")
    patch = ContactPatch.model_validate(
        {"emails": [{"address": f"kim@{CUSTOMER}"}, {"address": "kim@home-mail.org"}]}
    )
    after = service.update_contact(w.member, kim, patch, w.deps.crm)
    w.deps.budget = 2
    # When the update adding the address is handled (its prune fits in one step, its backfill not)
    data = {"contact": after.model_dump(mode="json"), "changed": ["emails"]}
    outcome = on_contact_event("contact.updated", w.tenant, data, w.deps)
    # Then the outcome says the re-match continues, and the queued step links the rest
    assert (outcome.action, outcome.removed, outcome.continued) == ("rematched", 0, True)
    [queued] = w.queue.sent
    assert queued.kind == "backfill"
    handle_work(queued, w.deps)
    assert [w.links(i) for i in [*ids, *home]] == [{kim: "participant"}] * 3


def test_a_tenant_without_a_saved_policy_is_backfilled_under_the_defaults(w: World) -> None:
    # Given mail of an address nobody knew, in a tenant that never saved a CRM policy
    ids = _indexed(w, 2, f"kim@{CUSTOMER}")
    kim = w.contact("Kim", f"kim@{CUSTOMER}")
    # When the contact is backfilled
    outcome = backfill(MatchWork(kind="backfill", tenant_id=w.tenant, contact_id=kim), w.deps)
    # Then its mail is linked
    assert [w.links(i) for i in ids] == [{kim: "participant"}] * 2
    assert outcome == MatchOutcome("backfilled", 2)


def test_an_update_of_an_address_kept_in_another_case_keeps_its_links(w: World) -> None:
    # Given a contact linked to mail of its address
    kim, ids = _linked_contact(w, 1)
    # When an update lists the same address in capitals among its changed emails
    data = {
        "contact": {"contact_id": kim, "emails": [{"address": f"KIM@{CUSTOMER.upper()}"}]},
        "changed": ["emails"],
    }
    outcome = on_contact_event("contact.updated", w.tenant, data, w.deps)
    # Then the link stays
    assert w.links(ids[0]) == {kim: "participant"}
    assert outcome == MatchOutcome("rematched", 0, removed=0)


def test_an_update_that_leaves_the_addresses_alone_changes_no_link(w: World) -> None:
    kim, ids = _linked_contact(w, 1)
    for changed in ({"changed": ["name"]}, {}):
        outcome = on_contact_event(
            "contact.updated", w.tenant, {"contact": {"contact_id": kim, "emails": []}, **changed}, w.deps
        )
        assert outcome == MatchOutcome("unchanged")
    assert w.links(ids[0]) == {kim: "participant"}


def test_a_contact_event_without_a_contact_is_ignored(w: World) -> None:
    assert on_contact_event("contact.deleted", w.tenant, {"contact": {}}, w.deps) == MatchOutcome("ignored")


# ------------------------------------------------------------------------------ entry points


def test_events_run_the_matching_they_name(w: World) -> None:
    # Given a contact and its mail, in both directions
    w.policy(auto_create="none")
    kim = w.contact("Kim", f"kim@{CUSTOMER}")
    w.email("em_in", sender=f"kim@{CUSTOMER}", to=[ME])
    w.email("em_out", sender=ME, to=[f"kim@{CUSTOMER}"], direction="outbound")
    # When the events are handled
    received = handle_event("email.received", w.tenant, {"email_id": "em_in"}, w.deps)
    sent = handle_event("email.sent", w.tenant, {"email_id": "em_out"}, w.deps)
    deleted = handle_event("contact.deleted", w.tenant, {"contact": {"contact_id": kim}}, w.deps)
    other = handle_event("deal.created", w.tenant, {"deal": {}}, w.deps)
    # Then each ran what it names
    assert (received, sent) == (MatchOutcome("matched", 1), MatchOutcome("matched", 1))
    assert deleted == MatchOutcome("pruned", removed=2)
    assert other == MatchOutcome("ignored")


def test_with_the_crm_flag_off_nothing_runs(w: World) -> None:
    # Given a contact, its mail, and the crm flag switched off
    w.policy(auto_create="none")
    kim = w.contact("Kim", f"kim@{CUSTOMER}")
    w.email("em_in", sender=f"kim@{CUSTOMER}", to=[ME])
    w.deps.features.save_features(
        w.tenant, FeatureSettings(flags=FeatureFlags(crm=False), version=1), expected_version=None
    )
    # When an email event and a backfill step are handled
    event = handle_event("email.received", w.tenant, {"email_id": "em_in"}, w.deps)
    work = handle_work(MatchWork(kind="backfill", tenant_id=w.tenant, contact_id=kim), w.deps)
    # Then neither ran
    assert (event, work) == (MatchOutcome("crm_disabled"), MatchOutcome("crm_disabled"))
    assert w.links("em_in") == {}
    assert w.deps.links.address_emails(w.tenant, f"kim@{CUSTOMER}", limit=5) == []


def test_a_continuation_without_a_queue_is_an_error(tables: dict[str, str]) -> None:
    w = new_world(tables, budget=1)
    w.deps.queue = None
    w.policy(auto_create="none")
    _indexed(w, 2, f"kim@{CUSTOMER}")
    kim = w.contact("Kim", f"kim@{CUSTOMER}")
    with pytest.raises(RuntimeError):
        backfill(MatchWork(kind="backfill", tenant_id=w.tenant, contact_id=kim), w.deps)
