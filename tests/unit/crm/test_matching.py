"""The matching and policy rules as pure functions over small dicts and models."""

from __future__ import annotations

from typing import Any

import pytest

from mailbridge.crm.freemail import free_domains, is_free_domain
from mailbridge.crm.matching import (
    MailFacts,
    Match,
    Participant,
    creation_candidates,
    display_name,
    mail_facts,
    person_name,
    plan_links,
)
from mailbridge.crm.models import EmailLookup
from mailbridge.crm.policy import (
    CrmPolicyUpdate,
    CrmSettings,
    Policy,
    is_automated,
    is_role_address,
    may_create_company,
    may_create_contact,
)

OWN = "acme.io"
POLICY = Policy(auto_create="sent", own_domains=frozenset({OWN}))


def item(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "email_id": "em_1",
        "date": "2026-11-17T10:00:00+00:00",
        "direction": "inbound",
        "from": [{"name": "Ann", "address": "Ann@Initech.com"}],
        "to": [{"name": None, "address": f"me@{OWN}"}],
        "cc": [],
        "list": None,
        "auto_submitted": None,
        "precedence": None,
        "bounce": None,
    }
    return {**base, **fields}


def mail(direction: str, *people: tuple[str, str], automated: bool = False) -> MailFacts:
    return MailFacts(
        email_id="em_1",
        date="2026-11-17T10:00:00+00:00",
        direction=direction,
        participants=tuple(Participant(address=a, role=r) for r, a in people),  # type: ignore[arg-type]
        automated=automated,
    )


# ------------------------------------------------------------------------------ mail facts


def test_participants_are_lower_cased_unique_and_keep_their_first_role() -> None:
    facts = mail_facts(item(to=[{"address": "ann@initech.com"}, {"address": "bob@initech.com"}]))
    assert [(p.address, p.role) for p in facts.participants] == [
        ("ann@initech.com", "from"),
        ("bob@initech.com", "to"),
    ]
    assert facts.participants[0].name == "Ann"


def test_mail_facts_carry_the_email_its_direction_and_whether_it_is_automated() -> None:
    # Given a stored item without a direction (older items) and one of bulk mail sent by the user
    plain = mail_facts(item(direction=None))
    bulk = mail_facts(item(direction="outbound", precedence="bulk"))
    # Then the first reads as received, personal mail; the second keeps its direction and is automated
    assert (plain.email_id, plain.date, plain.direction, plain.automated) == (
        "em_1",
        "2026-11-17T10:00:00+00:00",
        "inbound",
        False,
    )
    assert (bulk.direction, bulk.automated) == ("outbound", True)


@pytest.mark.parametrize(
    "fields",
    [
        {"list": {"list_id": "news.initech.com", "list_unsubscribe": []}},
        {"list": {"list_id": None, "list_unsubscribe": ["mailto:u@initech.com"]}},
        {"auto_submitted": "auto-generated"},
        {"auto_submitted": "auto-replied"},
        {"precedence": "Bulk"},
        {"precedence": "list"},
        {"precedence": "junk"},
        {"bounce": {"recipients": []}},
        {"from": [{"address": "MAILER-DAEMON@mx.initech.com"}]},
    ],
)
def test_bulk_and_automated_mail_is_recognised(fields: dict[str, Any]) -> None:
    assert is_automated(item(**fields))


@pytest.mark.parametrize("fields", [{}, {"auto_submitted": "no"}, {"precedence": "first-class"}])
def test_personal_mail_is_not_automated(fields: dict[str, Any]) -> None:
    assert not is_automated(item(**fields))


@pytest.mark.parametrize(
    "address",
    [
        "noreply@x.com",
        "no-reply@x.com",
        "No_Reply@x.com",
        "donotreply@x.com",
        "do-not-reply@x.com",
        "mailer-daemon@x.com",
        "postmaster@x.com",
        "bounce@x.com",
        "bounces+abc@x.com",
        "bounce-123@x.com",
        "notifications@x.com",
        "notifications-github@x.com",
        "info@x.com",
        "support+ticket@x.com",
        "sales@x.com",
        "admin@x.com",
        "team@x.com",
        "billing-noreply@x.com",
    ],
)
def test_role_and_noreply_addresses(address: str) -> None:
    assert is_role_address(address)


@pytest.mark.parametrize(
    "address", ["ann@x.com", "bounty.hunter@x.com", "salesforce.admin.ann@x.com", "infoline@x.com"]
)
def test_personal_addresses_are_not_role_addresses(address: str) -> None:
    assert not is_role_address(address)


# ------------------------------------------------------------------------------ free mail


@pytest.mark.parametrize(
    "domain",
    [
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "yahoo.com",
        "gmx.de",
        "gmx.net",
        "web.de",
        "icloud.com",
        "me.com",
        "protonmail.com",
        "proton.me",
        "yandex.ru",
        "mail.ru",
        "qq.com",
        "163.com",
        "aol.com",
        "GMAIL.COM.",
    ],
)
def test_free_mail_domains(domain: str) -> None:
    assert is_free_domain(domain)


def test_the_free_mail_list_is_substantial_and_business_domains_are_not_on_it() -> None:
    assert len(free_domains()) > 10_000
    assert not any(is_free_domain(d) for d in ("initech.com", "microsoft.com", "acme.io"))


# ------------------------------------------------------------------------------ policy


def test_what_may_be_created() -> None:
    blocking = Policy(
        own_domains=frozenset({OWN}),
        blocked_addresses=frozenset({"ceo@initech.com"}),
        blocked_domains=frozenset({"spam.com"}),
    )
    assert may_create_contact("ann@initech.com", blocking)
    assert not may_create_contact(f"colleague@{OWN}", blocking)
    assert not may_create_contact("ceo@initech.com", blocking)
    assert not may_create_contact("x@spam.com", blocking)
    assert not may_create_contact("noreply@initech.com", blocking)
    assert may_create_contact("joe@gmail.com", blocking)
    assert may_create_company("initech.com", blocking)
    assert not may_create_company("gmail.com", blocking)
    assert not may_create_company(OWN, blocking)
    assert not may_create_company("spam.com", blocking)


def test_the_policy_update_normalizes_its_lists_and_defaults_to_sent() -> None:
    update = CrmPolicyUpdate.model_validate(
        {"own_domains": ["Acme.IO", "acme.io"], "blocklist": {"addresses": ["A@B.com"], "domains": ["X.com"]}}
    )
    assert update.auto_create == "sent"
    assert update.own_domains == ["acme.io"]
    assert update.blocklist.addresses == ["a@b.com"]
    policy = Policy.of(CrmSettings(blocklist=update.blocklist, effective_own_domains=["acme.io"]))
    assert policy.blocked("a@b.com")
    assert policy.blocked("anyone@x.com")
    assert policy.own("ACME.io")


@pytest.mark.parametrize(
    ("auto_create", "direction", "expected"),
    [
        ("none", "outbound", []),
        ("sent", "outbound", ["jane@initech.com", "joe@gmail.com"]),
        ("sent", "inbound", []),
        ("sent_and_received", "inbound", ["ann@initech.com"]),
        ("sent_and_received", "outbound", ["jane@initech.com", "joe@gmail.com"]),
    ],
)
def test_creation_candidates_follow_the_policy(auto_create: str, direction: str, expected: list[str]) -> None:
    facts = mail(
        direction,
        ("from", "ann@initech.com" if direction == "inbound" else f"me@{OWN}"),
        ("to", "jane@initech.com"),
        ("to", f"colleague@{OWN}"),
        ("cc", "joe@gmail.com"),
        ("cc", "info@initech.com"),
    )
    policy = Policy(auto_create=auto_create, own_domains=frozenset({OWN}))  # type: ignore[arg-type]
    assert [p.address for p in creation_candidates(facts, policy, known={})] == expected


def test_no_candidates_for_automated_mail_or_known_addresses() -> None:
    facts = mail("outbound", ("from", f"me@{OWN}"), ("to", "jane@initech.com"), automated=True)
    assert creation_candidates(facts, POLICY, known={}) == []
    facts = mail("outbound", ("from", f"me@{OWN}"), ("to", "jane@initech.com"))
    assert creation_candidates(facts, POLICY, known={"jane@initech.com"}) == []


def test_display_names() -> None:
    assert display_name(Participant("jane@x.com", "to", '"Jane Roe"')) == "Jane Roe"
    assert display_name(Participant("jane.roe@x.com", "to")) == "jane.roe"


@pytest.mark.parametrize(
    ("display", "name"),
    [
        ("Carol Customer", "Carol Customer"),
        ("Xena Cox", "Xena Cox"),
        ('  "Carol   Customer" ', "Carol Customer"),
        ("Customer, Carol", "Carol Customer"),
        ("O'Neil, Mary-Jane", "Mary-Jane O'Neil"),
        ("Müller-Lüdenscheidt, Anna Maria", "Anna Maria Müller-Lüdenscheidt"),
        ("Acme, Inc.", "Acme, Inc."),
        ("Sales, Marketing, Support", "Sales, Marketing, Support"),
        ("Team 42, Berlin", "Team 42, Berlin"),
        # not a name: an address, control characters (a decoded encoded word), nothing
        ("carol@customer.example", None),
        ("<carol@customer.example>", None),
        ("'carol@customer.example'", None),
        ("Carol\r\nBcc: x@evil.example", None),
        ("Carol\u202eremmoC", None),
        ('""', None),
        (None, None),
    ],
)
def test_person_names_from_display_names(display: str | None, name: str | None) -> None:
    assert person_name(display) == name
    fallback = display_name(Participant("carol@customer.example", "to", display))
    assert fallback == (name or "carol")


# ------------------------------------------------------------------------------ links


def lookup(address: str, contact_id: str, company_id: str | None = None) -> EmailLookup:
    return EmailLookup(address=address, contact_id=contact_id, company_id=company_id)


def test_contacts_companies_and_the_latest_deals_are_linked_with_their_reason() -> None:
    facts = mail("inbound", ("from", "ann@initech.com"), ("to", f"me@{OWN}"), ("cc", "bob@globex.com"))
    contacts = {"ann@initech.com": lookup("ann@initech.com", "ct_a", "co_i")}
    companies = {"initech.com": "co_i", "globex.com": "co_g", OWN: "co_own"}
    deals = {"ct_a": "dl_1", "co_g": "dl_2"}
    assert plan_links(facts, POLICY, contacts, companies, deals) == [
        Match("company", "co_g", "domain", "globex.com"),
        Match("company", "co_i", "participant", "ann@initech.com"),
        Match("contact", "ct_a", "participant", "ann@initech.com"),
        Match("deal", "dl_1", "deal_rule", "ct_a"),
        Match("deal", "dl_2", "deal_rule", "co_g"),
    ]


def test_blocked_participants_are_never_linked() -> None:
    policy = Policy(
        blocked_addresses=frozenset({"ann@initech.com"}), blocked_domains=frozenset({"globex.com"})
    )
    facts = mail("inbound", ("from", "ann@initech.com"), ("cc", "bob@globex.com"))
    contacts = {
        "ann@initech.com": lookup("ann@initech.com", "ct_a"),
        "bob@globex.com": lookup("bob@globex.com", "ct_b"),
    }
    assert plan_links(facts, policy, contacts, {"globex.com": "co_g"}, {}) == []


def test_one_link_per_record_with_the_strongest_reason() -> None:
    facts = mail("inbound", ("from", "ann@initech.com"), ("to", "bob@initech.com"))
    contacts = {
        "ann@initech.com": lookup("ann@initech.com", "ct_a", "co_i"),
        "bob@initech.com": lookup("bob@initech.com", "ct_b", "co_i"),
    }
    deals = {"ct_a": "dl_1", "ct_b": "dl_1", "co_i": "dl_1"}
    matches = plan_links(facts, POLICY, contacts, {"initech.com": "co_i"}, deals)
    # Of equally strong reasons the first found stays: the first participant, the first record
    assert matches == [
        Match("company", "co_i", "participant", "ann@initech.com"),
        Match("contact", "ct_a", "participant", "ann@initech.com"),
        Match("contact", "ct_b", "participant", "bob@initech.com"),
        Match("deal", "dl_1", "deal_rule", "ct_a"),
    ]
