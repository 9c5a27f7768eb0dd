"""CRM service rules without AWS: merging patches, retrying lost races, the item mapping."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from mailbridge.crm import service
from mailbridge.crm.models import Contact, ContactFields, ContactPatch, Deal
from mailbridge.errors import Conflict, Forbidden, Invalid
from mailbridge.store.crm import (
    contact_item,
    deal_contact_item,
    deal_item,
    to_contact,
    to_deal,
)
from mailbridge.tenancy import Role, TenantContext

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CT = "ct_" + "1" * 26
CO = "co_" + "2" * 26
DL = "dl_" + "3" * 26


def make_contact(**fields: object) -> Contact:
    base: dict[str, object] = {
        "contact_id": CT,
        "name": "Ada Lovelace",
        "emails": [{"address": "ada@example.com", "primary": True}],
        "created_at": NOW,
        "updated_at": NOW,
        "created_by": "u-1",
        "version": 1,
    }
    return Contact.model_validate({**base, **fields})


def make_deal(**fields: object) -> Deal:
    base: dict[str, object] = {
        "deal_id": DL,
        "name": "Big",
        "stage": "lead",
        "open": True,
        "amount": Decimal("10.5"),
        "currency": "EUR",
        "contact_ids": [CT],
        "company_id": CO,
        "created_at": NOW,
        "updated_at": NOW,
        "created_by": "u-1",
        "version": 1,
    }
    return Deal.model_validate({**base, **fields})


def test_merge_applies_only_the_sent_fields_and_revalidates() -> None:
    current = make_contact(title="CTO", tags=["vip"])
    patch = ContactPatch.model_validate({"title": None, "emails": [{"address": "NEW@example.com"}]})
    merged = service.merge(current, ContactFields, patch.changes())
    assert merged.title is None
    assert merged.tags == ["vip"]
    assert [(e.address, e.primary) for e in merged.emails] == [("new@example.com", True)]
    with pytest.raises(Invalid) as info:
        service.merge(current, ContactFields, {"name": None})
    assert info.value.code == "invalid_record"


def test_a_lost_race_without_a_version_is_merged_again() -> None:
    stored = [make_contact(version=1), make_contact(version=2)]
    saves: list[int] = []

    def save(new: Contact, old: Contact) -> None:
        saves.append(old.version)
        if old.version == 1:
            raise Conflict("lost", code="version_conflict")

    before, after = service.update_with_retry(
        lambda: stored.pop(0),
        lambda c: c.model_copy(update={"version": c.version + 1, "title": "x"}),
        save,
        expected_version=None,
    )
    assert saves == [1, 2]
    assert (before.version, after.version) == (2, 3)


def test_a_lost_race_with_a_version_is_a_conflict() -> None:
    def save(new: Contact, old: Contact) -> None:
        raise Conflict("lost", code="version_conflict")

    with pytest.raises(Conflict):
        service.update_with_retry(make_contact, lambda c: c, save, expected_version=1)
    with pytest.raises(Conflict) as info:
        service.update_with_retry(make_contact, lambda c: c, save, expected_version=7)
    assert info.value.code == "version_conflict"


def test_other_conflicts_are_not_retried() -> None:
    calls = []

    def save(new: Contact, old: Contact) -> None:
        calls.append(1)
        raise Conflict("taken", code="email_in_use")

    with pytest.raises(Conflict):
        service.update_with_retry(make_contact, lambda c: c, save, expected_version=None)
    assert len(calls) == 1


def test_nothing_to_change_writes_nothing() -> None:
    def save(new: Contact, old: Contact) -> None:
        raise AssertionError("no write expected")

    before, after = service.update_with_retry(make_contact, lambda c: None, save, expected_version=None)
    assert before is after


def test_viewers_cannot_write() -> None:
    viewer = TenantContext(tenant_id="acme", role=Role.VIEWER, subject="u")
    with pytest.raises(Forbidden):
        service.update_contact(viewer, CT, ContactPatch(title="x"), store=None)  # type: ignore[arg-type]


def test_contact_items_round_trip_and_are_searchable() -> None:
    contact = make_contact(custom={"score": 4.5, "n": 3, "vip": True}, tags=["a"])
    item = contact_item("acme", contact)
    assert (item["pk"], item["sk"]) == ("TENANT#acme", f"CONTACT#{CT}")
    assert item["custom"]["score"] == Decimal("4.5")
    assert item["search"] == "ada lovelace ada@example.com"
    item["version"] = Decimal(1)
    assert to_contact(item) == contact


def test_deals_are_indexed_under_company_and_contacts_open_first() -> None:
    deal = make_deal()
    item = deal_item("acme", deal)
    assert item["gsi1pk"] == f"TENANT#acme#COMPANY#{CO}#DEALS"
    assert item["gsi1sk"] == f"OPEN#{NOW.isoformat()}#{DL}"
    link = deal_contact_item("acme", make_deal(stage="won", open=False), CT)
    assert link["sk"] == f"DEALCONTACT#{DL}#{CT}"
    assert link["gsi1pk"] == f"TENANT#acme#CONTACT#{CT}#DEALS"
    assert link["gsi1sk"].startswith("CLOSED#")
    assert "gsi1pk" not in deal_item("acme", make_deal(company_id=None))
    assert to_deal(item) == deal
