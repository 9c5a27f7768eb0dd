"""CRM record rules without AWS: normalization, bounds, the primary address, pipeline rules, ids."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from mailbridge.crm.models import (
    CONTACT_ID,
    CONTACT_PREFIX,
    CompanyCreate,
    ContactCreate,
    ContactPatch,
    DealCreate,
    PipelineUpdate,
    default_pipeline,
    is_open,
    new_id,
    normalize_domain,
)


def contact(**fields: Any) -> ContactCreate:
    return ContactCreate.model_validate({"name": "Ada", "emails": [{"address": "ada@example.com"}], **fields})


def test_addresses_are_lower_cased_and_the_first_is_primary_by_default() -> None:
    created = contact(emails=[{"address": "Ada@Example.COM"}, {"address": "ADA@home.example.org"}])
    assert [(e.address, e.primary) for e in created.emails] == [
        ("ada@example.com", True),
        ("ada@home.example.org", False),
    ]


def test_an_explicit_primary_is_kept() -> None:
    created = contact(emails=[{"address": "a@example.com"}, {"address": "b@example.com", "primary": True}])
    assert [e.primary for e in created.emails] == [False, True]


@pytest.mark.parametrize(
    "emails",
    [
        [],
        [{"address": "a@example.com", "primary": True}, {"address": "b@example.com", "primary": True}],
        [{"address": "a@example.com"}, {"address": "A@EXAMPLE.com"}],
        [{"address": f"p{i}@example.com"} for i in range(11)],
    ],
)
def test_address_lists_that_break_the_rules(emails: list[dict[str, Any]]) -> None:
    with pytest.raises(ValidationError):
        contact(emails=emails)


def test_custom_fields_keep_their_types_and_are_bounded() -> None:
    assert contact(custom={"score": 42, "ratio": 0.5, "vip": True, "src": "fair"}).custom == {
        "score": 42,
        "ratio": 0.5,
        "vip": True,
        "src": "fair",
    }
    for bad in (
        {"k": [1]},
        {"k": None},
        {"bad key": "x"},
        {"k": "x" * 1001},
        {f"k{i}": 1 for i in range(51)},
    ):
        with pytest.raises(ValidationError):
            contact(custom=bad)


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError):
        contact(nickname="x")
    with pytest.raises(ValidationError):
        ContactPatch.model_validate({"tenant_id": "other"})


def test_a_patch_reports_only_what_was_sent() -> None:
    patch = ContactPatch.model_validate({"title": None, "tags": ["a"], "version": 3})
    assert patch.changes() == {"title": None, "tags": ["a"]}
    assert patch.version == 3


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("Example.COM", "example.com"),
        (" example.co.uk. ", "example.co.uk"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
    ],
)
def test_domains_are_normalized(raw: str, normalized: str) -> None:
    assert normalize_domain(raw) == normalized


@pytest.mark.parametrize(
    "bad", ["localhost", "exa mple.com", "-x.com", "x-.com", "a..com", "1.2.3.4", "x" * 64 + ".com"]
)
def test_invalid_domains(bad: str) -> None:
    with pytest.raises(ValueError, match="not a valid domain"):
        normalize_domain(bad)


def test_a_company_lists_a_domain_once() -> None:
    with pytest.raises(ValidationError):
        CompanyCreate.model_validate({"name": "X", "domains": ["example.com", "EXAMPLE.com"]})


def test_deal_amounts_and_currencies() -> None:
    deal = DealCreate.model_validate({"name": "X", "amount": "12500.50", "currency": "eur"})
    assert deal.amount == Decimal("12500.5")
    assert str(deal.amount) == "12500.5"
    assert str(DealCreate.model_validate({"name": "X", "amount": 1000, "currency": "USD"}).amount) == "1000"
    assert deal.currency == "EUR"
    for bad in (
        {"amount": "-0.01", "currency": "EUR"},
        {"amount": "1"},
        {"amount": "1", "currency": "EURO"},
        {"amount": "1.00001", "currency": "EUR"},
    ):
        with pytest.raises(ValidationError):
            DealCreate.model_validate({"name": "X", **bad})


def test_pipeline_rules() -> None:
    assert default_pipeline().stages == ["lead", "qualified", "proposal", "negotiation", "won", "lost"]
    assert PipelineUpdate.model_validate({"stages": [" Intro", "won", "lost"]}).stages == [
        "intro",
        "won",
        "lost",
    ]
    for bad in (["a", "b", "won"], ["a", "a", "won", "lost"], ["won", "lost"], ["has space", "won", "lost"]):
        with pytest.raises(ValidationError):
            PipelineUpdate.model_validate({"stages": bad})
    assert is_open("lead")
    assert not is_open("won")
    assert not is_open("lost")


def test_ids_are_well_formed_and_sort_by_creation_time() -> None:
    now = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)
    first, second = new_id(CONTACT_PREFIX, now), new_id(CONTACT_PREFIX, now + 1)
    assert CONTACT_ID.match(first)
    assert first < second
