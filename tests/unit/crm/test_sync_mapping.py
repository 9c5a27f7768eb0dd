"""The field mapping's conversions (mailbridge.crm.sync.mapping), no network: names split and
joined, values converted to the CRM field's type or refused, the hash equal exactly when the
mapped values agree."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from mailbridge.crm.models import Contact
from mailbridge.crm.remote.protocol import FieldInfo, RemoteRecord
from mailbridge.crm.sync import mapping as fm
from mailbridge.crm.sync.models import FieldMapping

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def field(name: str, kind: str, **extra: Any) -> FieldInfo:
    return FieldInfo.model_validate(
        {
            "name": name,
            "label": name,
            "type": kind,
            "custom": name.endswith("__c"),
            "updateable": True,
            **extra,
        }
    )


FIELDS = [
    field("FirstName", "string"),
    field("LastName", "string"),
    field("Email", "email"),
    field("Region__c", "picklist", options=["EMEA", "APAC"]),
    field("Score__c", "number"),
    field("Vip__c", "boolean"),
]
MAPPING = fm.resolved(
    [
        FieldMapping(local="first_name", remote="FirstName"),
        FieldMapping(local="last_name", remote="LastName"),
        FieldMapping(local="email", remote="Email"),
        FieldMapping(local="custom.region", remote="Region__c"),
        FieldMapping(local="custom.score", remote="Score__c"),
        FieldMapping(local="custom.vip", remote="Vip__c"),
    ],
    FIELDS,
)


def contact(name: str = "Ada King Lovelace", **custom: Any) -> Contact:
    return Contact.model_validate(
        {
            "contact_id": "ct_0123456789abcdef0123456789",
            "name": name,
            "emails": [{"address": "ada@example.com"}],
            "custom": custom,
            "created_at": NOW,
            "updated_at": NOW,
            "created_by": "u",
            "version": 1,
        }
    )


def test_the_name_splits_at_its_last_space_and_a_single_word_is_a_last_name() -> None:
    assert fm.split_name("Ada King Lovelace") == ("Ada King", "Lovelace")
    assert fm.split_name("Cher") == (None, "Cher")


def test_our_contact_in_the_crms_field_names_and_types() -> None:
    record = fm.to_remote(contact(region="EMEA", score="42", vip="true"), MAPPING)
    assert record == {
        "FirstName": "Ada King",
        "LastName": "Lovelace",
        "Email": "ada@example.com",
        "Region__c": "EMEA",
        "Score__c": 42,
        "Vip__c": True,
    }


@pytest.mark.parametrize("custom", [{"region": "Mars"}, {"score": "many"}, {"score": True}, {"vip": "maybe"}])
def test_a_value_the_field_cannot_hold_is_refused(custom: dict[str, Any]) -> None:
    with pytest.raises(fm.ValueNotConvertible):
        fm.to_remote(contact(**custom), MAPPING)


def test_the_hash_ignores_case_of_email_spaces_and_integral_floats_but_not_a_changed_value() -> None:
    ours = fm.fields_hash(fm.to_remote(contact(score=3), MAPPING), MAPPING)
    theirs: RemoteRecord = {
        "FirstName": " Ada King ",
        "LastName": "Lovelace",
        "Email": "ADA@example.com",
        "Score__c": 3.0,
    }
    assert fm.fields_hash(theirs, MAPPING) == ours
    assert fm.fields_hash({**theirs, "Score__c": 4.0}, MAPPING) != ours


def test_a_crm_record_back_into_our_fields_keeps_what_is_not_mapped() -> None:
    current = contact(region="EMEA", note="kept")
    fields = fm.from_remote(
        {"FirstName": "Augusta Ada", "LastName": "King", "Email": "ADA@Example.com", "Region__c": None},
        MAPPING,
        current,
    )
    assert fields["name"] == "Augusta Ada King"
    assert fields["emails"][0] == {"address": "ada@example.com", "primary": True}
    assert fields["custom"] == {"note": "kept"}
