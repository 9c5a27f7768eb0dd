"""The merge of enrichment facts and their sources (mailbridge.ai.enrich), and the request's shape."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mailbridge.ai.enrich import EnrichRequest, Fact, merge_facts
from mailbridge.providers.enrichment import CompanyProfile


def fact(field: str, value: str, source: str, confidence: float) -> Fact:
    return Fact.model_validate({"field": field, "value": value, "source": source, "confidence": confidence})


def test_a_crm_value_wins_over_a_more_confident_one() -> None:
    # Given the user's company name and a provider's, more confident
    candidates = [fact("name", "Provider Name", "provider", 1.0), fact("name", "Northwind", "crm", 0.9)]
    # When merged, then the user's value stands
    assert merge_facts(candidates) == [fact("name", "Northwind", "crm", 0.9)]


def test_otherwise_the_most_confident_value_wins() -> None:
    candidates = [
        fact("website", "https://a.example", "provider", 0.6),
        fact("website", "https://b.example", "signature", 0.9),
        fact("website", "https://c.example", "domain_contacts", 0.72),
    ]
    assert merge_facts(candidates) == [fact("website", "https://b.example", "signature", 0.9)]


def test_a_tie_goes_to_the_earlier_source() -> None:
    candidates = [
        fact("website", "https://p.example", "provider", 0.8),
        fact("website", "https://d.example", "domain_contacts", 0.8),
        fact("website", "https://s.example", "signature", 0.8),
    ]
    assert merge_facts(candidates) == [fact("website", "https://s.example", "signature", 0.8)]


def test_one_fact_per_field_in_a_fixed_order() -> None:
    candidates = [
        fact("industry", "wholesale", "provider", 0.8),
        fact("phone", "+1 206 555 0100", "signature", 0.9),
        fact("name", "Northwind", "crm", 1.0),
        fact("domain", "northwind.example", "crm", 1.0),
    ]
    merged = merge_facts(candidates)
    assert [f.field for f in merged] == ["name", "domain", "phone", "industry"]
    assert {f.source for f in merged} == {"crm", "signature", "provider"}


def test_a_provider_profile_becomes_provider_facts_with_its_likelihood() -> None:
    from mailbridge.ai.enrich import _profile_facts

    profile = CompanyProfile.model_validate(
        {
            "name": "northwind traders",
            "display_name": "Northwind Traders",
            "website": "northwind.example",
            "size": "201-500",
            "industry": "wholesale",
            "founded": 1998,
            "location": {"name": "seattle, washington, united states"},
            "linkedin_url": "linkedin.com/company/northwind",
            "facebook_url": None,
            "likelihood": 7,
            "ticker": "NWND",
        }
    )
    found = {f.field: (f.value, f.source, f.confidence) for f in _profile_facts(profile)}
    assert found == {
        "name": ("Northwind Traders", "provider", 0.7),
        "website": ("northwind.example", "provider", 0.7),
        "address": ("seattle, washington, united states", "provider", 0.7),
        "industry": ("wholesale", "provider", 0.7),
        "size": ("201-500", "provider", 0.7),
        "founded": ("1998", "provider", 0.7),
        "linkedin": ("linkedin.com/company/northwind", "provider", 0.7),
    }


def test_a_provider_value_with_control_characters_is_dropped() -> None:
    from mailbridge.ai.enrich import _profile_facts

    profile = CompanyProfile.model_validate(
        {"name": "Evil\r\nBcc: x@evil.example", "industry": "  wholesale ", "size": "", "likelihood": 5}
    )
    assert [(f.field, f.value) for f in _profile_facts(profile)] == [("industry", "wholesale")]


@pytest.mark.parametrize(
    "values",
    [{}, {"contact_id": "ct_" + "0" * 26, "company_id": "co_" + "0" * 26}, {"contact_id": "ct_1"}],
)
def test_the_request_names_exactly_one_valid_record(values: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        EnrichRequest.model_validate(values)
