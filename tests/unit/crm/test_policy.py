"""The CRM policy's pure rules (mailbridge.crm.policy) that matching and the settings build on:
the own domains of connected mailboxes, address domains and local parts, the policy in force,
and the senders that mark mail as machine mail."""

from __future__ import annotations

from mailbridge.crm.policy import (
    Blocklist,
    CrmSettings,
    Policy,
    account_domains,
    domain_of,
    is_automated,
    local_part,
)


def test_the_own_domains_of_connected_mailboxes_are_their_lower_cased_domains_once() -> None:
    # Given the addresses of a tenant's mailboxes, one without a domain
    addresses = ["Alice@Example.com", "bob@example.com", "not-an-address", "carol@Other.ORG"]
    # When their domains are taken (the default own domains, GET /crm/settings)
    # Then each domain is there once, lower case, sorted, and the bad entry adds none
    assert account_domains(addresses) == ["example.com", "other.org"]
    assert account_domains(["not-an-address"]) == []


def test_an_address_domain_is_lower_case_without_the_root_dot() -> None:
    # RFC 1034 3.1: "example.com." is the same domain as "example.com"
    assert domain_of("Alice@Mail.Example.COM.") == "mail.example.com"
    # RFC 5322 3.4.1: a quoted local part may hold "@"; the domain follows the last one
    assert domain_of('"a@b"@example.com') == "example.com"


def test_a_local_part_is_lower_case_without_its_plus_tag() -> None:
    # Everything from the first "+" is a sub-address tag (RFC 5233)
    assert local_part("Info+sales+eu@example.com") == "info"
    # A quoted local part may hold "@": it ends at the last one
    assert local_part('"Info@desk"@example.com') == '"info@desk"'


def test_the_policy_in_force_takes_every_setting() -> None:
    # Given stored settings that differ from every default
    settings = CrmSettings(
        auto_create="none",
        effective_own_domains=["acme.io"],
        blocklist=Blocklist(addresses=["ceo@partner.example"], domains=["spam.example"]),
    )
    # When matching takes the policy from them
    policy = Policy.of(settings)
    # Then it has each of them
    assert policy == Policy(
        auto_create="none",
        own_domains=frozenset({"acme.io"}),
        blocked_addresses=frozenset({"ceo@partner.example"}),
        blocked_domains=frozenset({"spam.example"}),
    )


def test_mail_from_a_postmaster_or_mailer_daemon_is_machine_mail() -> None:
    for sender in ("postmaster@example.com", "MAILER-DAEMON@example.com"):
        assert is_automated({"from": [{"address": sender}]}), sender
    assert not is_automated({"from": [{"address": "alice@example.com"}]})
