"""Company enrichment (issue 14 point 6, `POST /ai/assist/enrich`) in-process on moto through the
api function, with the tenant's provider pointed at the local People Data Labs double
(local/enrichment): the double's request list is what reached the network."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from local.enrichment import EnrichmentDouble
from mailbridge.ai import enrich_wiring
from mailbridge.crm.matching import index_entries, mail_facts
from mailbridge.store.links import LinkStore
from tests.fixtures.aws import Stack
from tests.integration.test_ai_categorize import set_ai
from tests.integration.test_api_emails import TENANT, Seeder, api, body, rfc

Invoke = Any

SIGNED = rfc(
    msgid="enrich-1@northwind.example",
    sender="Kim Lee <kim.lee@northwind.example>",
    to="sam@shop.test",
    subject="Re: Pricing",
    date="Tue, 03 Mar 2026 10:00:00 +0000",
    text=(
        "Thanks Sam, please send the quote.\r\n\r\nBest regards,\r\nKim Lee\r\n"
        "Buyer | Northwind Traders Ltd\r\nTel: +1 206 555 0100\r\nwww.northwind.example\r\n"
    ),
)


@pytest.fixture(scope="module")
def double() -> Iterator[EnrichmentDouble]:
    with EnrichmentDouble() as running:
        yield running


@pytest.fixture
def provider(stack: Stack, double: EnrichmentDouble) -> EnrichmentDouble:
    """The double, emptied; a new cold start of the enrichment wiring."""
    double.reset()
    enrich_wiring.reset()
    return double


def seed_mail(stack: Stack, raw: bytes, tenant: str = TENANT) -> str:
    """Store an email as ingest does and index its participants as the matching consumer does."""
    seeder = Seeder(stack)
    email_id = seeder.add(raw, tenant=tenant)
    item = seeder.emails.get_email(tenant, email_id)
    assert item is not None
    LinkStore(stack.deployed.tables["LinksTable"]).index_participants(tenant, index_entries(mail_facts(item)))
    return email_id


def create(invoke_api: Invoke, name: str, values: dict[str, Any], tenant: str = TENANT) -> str:
    response = invoke_api(api(name, tenant=tenant, body=values))
    assert response["statusCode"] == 201, response
    answer = body(response)
    return str(answer.get("contact_id") or answer["company_id"])


def contact(invoke_api: Invoke, tenant: str = TENANT, **values: Any) -> str:
    fields = {"name": "Kim Lee", "emails": [{"address": "kim.lee@northwind.example"}], **values}
    return create(invoke_api, "crm-create-contact", fields, tenant)


def enrich(invoke_api: Invoke, tenant: str = TENANT, **values: Any) -> dict[str, Any]:
    return invoke_api(api("ai-enrich", tenant=tenant, body=values))  # type: ignore[no-any-return]


def put_setting(invoke_api: Invoke, role: str = "admin", **values: Any) -> dict[str, Any]:
    return invoke_api(api("ai-put-enrichment", role=role, body=values))  # type: ignore[no-any-return]


def switch_on(invoke_api: Invoke, double: EnrichmentDouble) -> None:
    response = put_setting(invoke_api, enabled=True, base_url=double.base_url, api_key=double.api_key)
    assert response["statusCode"] == 200, response


def facts(answer: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {f["field"]: (f["value"], f["source"]) for f in answer["facts"]}


def test_with_the_provider_off_facts_come_from_what_we_hold_and_nothing_is_sent(
    stack: Stack, invoke_api: Invoke, provider: EnrichmentDouble
) -> None:
    # Given ai on, a contact and a signed email from them, and no provider configured
    set_ai(invoke_api, True)
    contact_id = contact(invoke_api)
    seed_mail(stack, SIGNED)
    unconfigured = body(enrich(invoke_api, contact_id=contact_id))
    # And then a provider configured but switched off
    switch_on(invoke_api, provider)
    assert put_setting(invoke_api, enabled=False)["statusCode"] == 200
    # When the contact is enriched
    response = enrich(invoke_api, contact_id=contact_id)
    # Then the facts come from the contact's domain and the signature, each with its source
    assert response["statusCode"] == 200, response
    answer = body(response)
    assert answer["provider"] == "off"
    assert facts(answer) == {
        "name": ("Northwind Traders Ltd", "signature"),
        "domain": ("northwind.example", "crm"),
        "website": ("https://www.northwind.example", "signature"),
        "phone": ("+1 206 555 0100", "signature"),
    }
    assert all(0 < f["confidence"] <= 1 for f in answer["facts"])
    assert unconfigured == answer
    # And no request reached the provider
    assert provider.requests == []


def test_with_the_provider_on_its_facts_are_added_and_cached_per_domain(
    stack: Stack, invoke_api: Invoke, provider: EnrichmentDouble
) -> None:
    # Given ai on, the provider configured, and a company record the user named
    set_ai(invoke_api, True)
    switch_on(invoke_api, provider)
    company_id = create(
        invoke_api, "crm-create-company", {"name": "Northwind", "domains": ["northwind.example"]}
    )
    # When the company is enriched
    response = enrich(invoke_api, company_id=company_id)
    # Then the provider's facts come with source provider, the user's name stands
    assert response["statusCode"] == 200, response
    answer = body(response)
    assert answer["provider"] == "used"
    found = facts(answer)
    assert found["name"] == ("Northwind", "crm")
    assert found["industry"] == ("wholesale", "provider")
    assert found["size"] == ("201-500", "provider")
    assert found["linkedin"] == ("linkedin.com/company/northwind-traders", "provider")
    assert found["address"][1] == "provider"
    assert {f["confidence"] for f in answer["facts"] if f["source"] == "provider"} == {0.8}
    # And the request named the domain and carried the key in X-Api-Key
    (sent,) = provider.requests
    assert sent.query["website"] == ["northwind.example"]
    assert sent.headers["x-api-key"] == provider.api_key
    # When it is enriched again
    again = body(enrich(invoke_api, company_id=company_id))
    # Then the cached answer is used: the same facts, no second request
    assert again["provider"] == "cached"
    assert again["facts"] == answer["facts"]
    assert len(provider.requests) == 1


def test_a_rate_limited_provider_is_retried(
    stack: Stack, invoke_api: Invoke, provider: EnrichmentDouble
) -> None:
    # Given the provider answers 429 (Retry-After: 0) once, then the company
    set_ai(invoke_api, True)
    switch_on(invoke_api, provider)
    company_id = create(invoke_api, "crm-create-company", {"name": "Contoso", "domains": ["contoso.example"]})
    provider.fail(429, retry_after=0)
    # When the company is enriched
    answer = body(enrich(invoke_api, company_id=company_id))
    # Then the second attempt's facts are there
    assert answer["provider"] == "used"
    assert facts(answer)["industry"] == ("computer software", "provider")
    assert len(provider.requests) == 2


def test_a_failing_provider_does_not_fail_the_request(
    stack: Stack, invoke_api: Invoke, provider: EnrichmentDouble
) -> None:
    # Given the provider answers 500 to every attempt
    set_ai(invoke_api, True)
    switch_on(invoke_api, provider)
    company_id = create(invoke_api, "crm-create-company", {"name": "Contoso", "domains": ["contoso.example"]})
    provider.fail(500, times=3)
    # When the company is enriched
    response = enrich(invoke_api, company_id=company_id)
    # Then the CRM's facts stand and the answer says what failed; nothing is cached
    assert response["statusCode"] == 200, response
    answer = body(response)
    assert answer["provider"] == "failed:upstream_error"
    assert {f["source"] for f in answer["facts"]} == {"crm"}
    assert body(enrich(invoke_api, company_id=company_id))["provider"] == "used"


def test_a_domain_the_provider_does_not_know_is_not_found(
    stack: Stack, invoke_api: Invoke, provider: EnrichmentDouble
) -> None:
    set_ai(invoke_api, True)
    switch_on(invoke_api, provider)
    company_id = create(
        invoke_api, "crm-create-company", {"name": "Fabrikam", "domains": ["fabrikam.example"]}
    )
    assert body(enrich(invoke_api, company_id=company_id))["provider"] == "not_found"
    # And the miss is cached too
    assert body(enrich(invoke_api, company_id=company_id))["provider"] == "cached"
    assert len(provider.requests) == 1


@pytest.mark.parametrize(
    ("base_url", "code"),
    [
        ("https://10.0.0.7", "host_not_allowed"),
        ("https://169.254.169.254/latest", "host_not_allowed"),
        ("https://[fd00:ec2::254]", "host_not_allowed"),
        ("http://api.example.com", "insecure_url"),
        ("ftp://api.example.com", "invalid_url"),
    ],
)
def test_a_base_url_the_guard_refuses_is_400(
    stack: Stack, invoke_api: Invoke, provider: EnrichmentDouble, base_url: str, code: str
) -> None:
    set_ai(invoke_api, True)
    response = put_setting(invoke_api, enabled=True, base_url=base_url, api_key="k")
    assert response["statusCode"] == 400, response
    assert body(response)["error"]["code"] == code
    # And the setting stays off
    setting = invoke_api(api("ai-get-enrichment", role="admin"))
    assert body(setting)["enabled"] is False


def test_the_call_itself_is_guarded_outside_local_mode(provider: EnrichmentDouble) -> None:
    from mailbridge.errors import MailbridgeError
    from mailbridge.providers.enrichment import CompanyEnrichment

    # Given the adapter outside local mode, pointed at the double's loopback address
    host_port = provider.base_url.removeprefix("http://")
    for url, code in ((provider.base_url, "insecure_url"), (f"https://{host_port}", "host_not_allowed")):
        # When it is asked for a domain, then the guard refuses before anything is sent
        with pytest.raises(MailbridgeError) as refused:
            CompanyEnrichment(url, provider.api_key, local_mode=False).find("northwind.example")
        assert refused.value.code == code
    assert provider.requests == []


def test_the_setting_never_shows_the_key_and_needs_one_to_switch_on(
    stack: Stack, invoke_api: Invoke, provider: EnrichmentDouble
) -> None:
    set_ai(invoke_api, True)
    refused = put_setting(invoke_api, enabled=True, base_url=provider.base_url)
    assert refused.get("statusCode") == 400, refused
    assert body(refused)["error"]["code"] == "enrichment_not_configured"
    switch_on(invoke_api, provider)
    response = invoke_api(api("ai-get-enrichment", role="admin"))
    assert body(response) == {
        "enabled": True,
        "base_url": provider.base_url,
        "api_key_set": True,
        "version": 1,
    }
    assert provider.api_key not in response["body"]
    # And a member may not change it
    assert put_setting(invoke_api, role="member", enabled=False)["statusCode"] == 403


def test_another_tenants_records_are_404(
    stack: Stack, invoke_api: Invoke, provider: EnrichmentDouble
) -> None:
    # Given a contact and a company of tenant globex
    set_ai(invoke_api, True)
    set_ai(invoke_api, True, tenant="globex")
    contact_id = contact(invoke_api, tenant="globex")
    company_id = create(invoke_api, "crm-create-company", {"name": "G", "domains": ["g.example"]}, "globex")
    # When tenant acme asks to enrich them, then they are 404, as unknown ids are
    for values, code in (
        ({"contact_id": contact_id}, "contact_not_found"),
        ({"company_id": company_id}, "company_not_found"),
    ):
        response = enrich(invoke_api, **values)
        assert response["statusCode"] == 404, response
        assert body(response)["error"]["code"] == code


def test_apply_writes_only_what_is_missing(
    stack: Stack, invoke_api: Invoke, provider: EnrichmentDouble
) -> None:
    # Given a contact with a phone of its own and no company, and a signed email from them
    set_ai(invoke_api, True)
    switch_on(invoke_api, provider)
    contact_id = contact(invoke_api, phones=["+1 206 555 0199"])
    seed_mail(stack, SIGNED)
    # When the contact is enriched with apply
    response = enrich(invoke_api, contact_id=contact_id, apply=True)
    # Then a company of the domain is made with the merged name, and the contact linked to it
    assert response["statusCode"] == 200, response
    applied = body(response)["applied"]
    assert applied["company_created"] is True
    assert applied["written"] == ["company.created", "contact.company_id"]
    company = body(invoke_api(api("crm-get-company", path={"company_id": applied["company_id"]})))
    assert (company["name"], company["domains"]) == ("Northwind Traders Ltd", ["northwind.example"])
    stored = body(invoke_api(api("crm-get-contact", path={"contact_id": contact_id})))
    assert stored["company_id"] == applied["company_id"]
    # And the user's phone stands
    assert stored["phones"] == ["+1 206 555 0199"]
    # And a second apply writes nothing
    again = body(enrich(invoke_api, contact_id=contact_id, apply=True))["applied"]
    assert again == {"company_id": applied["company_id"], "company_created": False, "written": []}


def test_apply_gives_a_contact_without_phones_the_signatures(
    stack: Stack, invoke_api: Invoke, provider: EnrichmentDouble
) -> None:
    set_ai(invoke_api, True)
    contact_id = contact(invoke_api)
    seed_mail(stack, SIGNED)
    applied = body(enrich(invoke_api, contact_id=contact_id, apply=True))["applied"]
    assert "contact.phones" in applied["written"]
    stored = body(invoke_api(api("crm-get-contact", path={"contact_id": contact_id})))
    assert stored["phones"] == ["+1 206 555 0100"]


def test_enrich_needs_the_ai_flag_and_exactly_one_id(
    stack: Stack, invoke_api: Invoke, provider: EnrichmentDouble
) -> None:
    contact_id = contact(invoke_api)
    off = enrich(invoke_api, contact_id=contact_id)
    assert off["statusCode"] == 404
    assert body(off)["error"]["code"] == "feature_disabled"
    set_ai(invoke_api, True)
    assert enrich(invoke_api)["statusCode"] == 422
    both = enrich(invoke_api, contact_id=contact_id, company_id="co_" + "0" * 26)
    assert both["statusCode"] == 422


OLA = rfc(
    msgid="enrich-2@northwind.example",
    sender="Ola Berg <ola.berg@northwind.example>",
    to="sam@shop.test",
    subject="Invoice",
    date="Wed, 04 Mar 2026 10:00:00 +0000",
    text=(
        "Hi Sam, the invoice is attached.\r\n\r\nBest regards,\r\nOla Berg\r\n"
        "Accounts | Northwind Traders Ltd\r\nTel: +1 206 555 0142\r\nwww.northwind.example\r\n"
    ),
)


def test_a_colleagues_signature_gives_company_facts_but_not_their_phone(
    stack: Stack, invoke_api: Invoke, provider: EnrichmentDouble
) -> None:
    # Given a company with two contacts; only Ola has written, with a signature
    set_ai(invoke_api, True)
    company_id = create(
        invoke_api, "crm-create-company", {"name": "Northwind", "domains": ["northwind.example"]}
    )
    kim = contact(invoke_api, company_id=company_id)
    contact(
        invoke_api, name="Ola Berg", emails=[{"address": "ola.berg@northwind.example"}], company_id=company_id
    )
    seed_mail(stack, OLA)
    # When Kim is enriched
    answer = body(enrich(invoke_api, contact_id=kim))
    # Then the website comes from the domain's other contact, less sure than her own signature
    found = {f["field"]: f for f in answer["facts"]}
    assert (found["website"]["value"], found["website"]["source"]) == (
        "https://www.northwind.example",
        "domain_contacts",
    )
    assert found["website"]["confidence"] < 0.9
    # And the company's name is the user's, and Ola's phone is not Kim's
    assert (found["name"]["value"], found["name"]["source"]) == ("Northwind", "crm")
    assert "phone" not in found
