"""Our contact <-> the CRM's contact fields, by an integration's field mapping.

Standard fields (Salesforce `Contact` describe; HubSpot contact properties):

| ours         | Salesforce  | HubSpot     |
|--------------|-------------|-------------|
| `first_name` | `FirstName` | `firstname` |
| `last_name`  | `LastName`  | `lastname`  |
| `email`      | `Email`     | `email`     |
| `phone`      | `Phone`     | `phone`     |
| `title`      | `Title`     | `jobtitle`  |

Our `name` is one string: `first_name` is everything before its last space, `last_name` the
rest (Salesforce requires `LastName`, so a one-word name is a last name); back, the two are joined
with a space. `email` is the primary address, `phone` the first phone. `custom.<key>` maps our
custom field `key` to any CRM field of a scalar type.

Checked on save (`check`, against `CrmProvider.contact_fields()`), each 422 with `details.field`:
`unknown_remote_field`, `field_not_updateable` (the sync writes every mapped field both ways),
`field_type_mismatch` (a standard field to a CRM field of another type, a custom field to a
reference, multi-select or compound field), `duplicate_field_mapping`, `email_not_mapped`.

Values converted per CRM field type (`to_remote`): numbers to `number`, `true`/`false` to
`boolean`, text to the rest; a value that cannot be converted, or a picklist value the CRM does
not list, fails that record (`invalid_value`), never the run.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from mailbridge.crm.models import Contact
from mailbridge.crm.remote.protocol import FieldInfo, FieldType, RemoteRecord, RemoteValue
from mailbridge.crm.sync.models import FieldMapping
from mailbridge.errors import Unprocessable

DEFAULTS: dict[str, dict[str, str]] = {
    "salesforce": {
        "first_name": "FirstName",
        "last_name": "LastName",
        "email": "Email",
        "phone": "Phone",
        "title": "Title",
    },
    "hubspot": {
        "first_name": "firstname",
        "last_name": "lastname",
        "email": "email",
        "phone": "phone",
        "title": "jobtitle",
    },
}
TEXT_TYPES: frozenset[FieldType] = frozenset({"string", "textarea", "picklist"})
ALLOWED: dict[str, frozenset[FieldType]] = {
    "first_name": TEXT_TYPES,
    "last_name": TEXT_TYPES,
    "title": TEXT_TYPES,
    "email": frozenset({"email", "string"}),
    "phone": frozenset({"phone", "string"}),
}
CUSTOM_TYPES: frozenset[FieldType] = frozenset(
    {"string", "textarea", "email", "phone", "url", "number", "boolean", "date", "datetime", "picklist"}
)


class ValueNotConvertible(ValueError):
    """A value the CRM field cannot hold (the record fails with `invalid_value`)."""


def default_mapping(provider: str) -> list[FieldMapping]:
    return [FieldMapping(local=k, remote=v) for k, v in DEFAULTS[provider].items()]


def _refuse(code: str, message: str, field: str) -> Unprocessable:
    return Unprocessable(message, code=code, details={"field": field})


def check(mapping: Sequence[FieldMapping], fields: Sequence[FieldInfo]) -> None:
    """Raise Unprocessable (see the module docstring) unless every mapping entry is usable."""
    by_name = {f.name.lower(): f for f in fields}
    seen_local: set[str] = set()
    seen_remote: set[str] = set()
    for entry in mapping:
        if entry.local in seen_local or entry.remote.lower() in seen_remote:
            raise _refuse("duplicate_field_mapping", "a field is mapped twice", entry.remote)
        seen_local.add(entry.local)
        seen_remote.add(entry.remote.lower())
        info = by_name.get(entry.remote.lower())
        if info is None:
            raise _refuse("unknown_remote_field", "the CRM has no such contact field", entry.remote)
        if not info.updateable:
            raise _refuse("field_not_updateable", "the CRM does not let this field be written", entry.remote)
        allowed = ALLOWED.get(entry.local, CUSTOM_TYPES)
        if info.type not in allowed:
            raise _refuse(
                "field_type_mismatch", f"a {info.type} field cannot hold {entry.local}", entry.remote
            )
    if "email" not in seen_local:
        raise _refuse("email_not_mapped", "the primary email must be mapped", "email")


def resolved(
    mapping: Sequence[FieldMapping], fields: Sequence[FieldInfo]
) -> list[tuple[FieldMapping, FieldInfo]]:
    """Each mapping entry with the CRM's field (its exact API name), for entries still valid."""
    by_name = {f.name.lower(): f for f in fields}
    out = []
    for entry in mapping:
        info = by_name.get(entry.remote.lower())
        if info is not None:
            out.append((entry.model_copy(update={"remote": info.name}), info))
    return out


def split_name(name: str) -> tuple[str | None, str]:
    first, _, last = name.strip().rpartition(" ")
    return (first.strip() or None, last)


def _local_value(contact: Contact, local: str) -> Any:
    first, last = split_name(contact.name)
    if local == "first_name":
        return first
    if local == "last_name":
        return last
    if local == "email":
        return next((e.address for e in contact.emails if e.primary), contact.emails[0].address)
    if local == "phone":
        return contact.phones[0] if contact.phones else None
    if local == "title":
        return contact.title
    return contact.custom.get(local.removeprefix("custom."))


def convert(value: Any, info: FieldInfo) -> RemoteValue:
    """Our value in the CRM field's wire form; ValueNotConvertible when it cannot be."""
    if value is None or value == "":
        return None
    if info.type == "number":
        if isinstance(value, bool):
            raise ValueNotConvertible(info.name)
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValueNotConvertible(info.name) from None
        if not number.is_finite():
            raise ValueNotConvertible(info.name)
        return int(number) if number == number.to_integral_value() else float(number)
    if info.type == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "false"):
            return text == "true"
        raise ValueNotConvertible(info.name)
    text = value if isinstance(value, str) else _text(value)
    if info.type == "picklist" and info.options and text not in info.options:
        raise ValueNotConvertible(info.name)
    if info.length is not None and len(text) > info.length:
        raise ValueNotConvertible(info.name)
    return text


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def to_remote(contact: Contact, mapping: Sequence[tuple[FieldMapping, FieldInfo]]) -> RemoteRecord:
    """Our contact in the CRM's field names (ValueNotConvertible names the failing field)."""
    return {entry.remote: convert(_local_value(contact, entry.local), info) for entry, info in mapping}


def _normal(value: RemoteValue, info: FieldInfo) -> RemoteValue:
    if isinstance(value, str):
        value = value.strip()
        if value == "":
            return None
        return value.lower() if info.type == "email" else value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def fields_hash(record: Mapping[str, RemoteValue], mapping: Sequence[tuple[FieldMapping, FieldInfo]]) -> str:
    """sha256 hex of the mapped values in the CRM's wire form, normalized (text stripped, empty as
    null, email lower-case, integral floats as integers): equal for our contact and the CRM record
    when the two agree on every mapped field."""
    canonical = {
        entry.remote: _normal(
            next((v for k, v in record.items() if k.lower() == entry.remote.lower()), None), info
        )
        for entry, info in mapping
    }
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, default=str).encode()).hexdigest()


def from_remote(
    record: Mapping[str, RemoteValue],
    mapping: Sequence[tuple[FieldMapping, FieldInfo]],
    current: Contact | None,
) -> dict[str, Any]:
    """The CRM record as our contact's fields (a `ContactFields` dict: `name`, `emails`, `phones`,
    `title`, `custom`), starting from `current` (None: a new contact). Unmapped fields are kept;
    a mapped field the CRM cleared is cleared (the name and email are required, so kept)."""
    base: dict[str, Any] = (
        current.model_dump(
            include={
                "name",
                "emails",
                "phones",
                "title",
                "company_id",
                "tags",
                "owner",
                "custom",
                "do_not_track",
            }
        )
        if current is not None
        else {"name": "", "emails": [], "phones": [], "custom": {}}
    )
    values = {
        entry.local: _normal(
            next((v for k, v in record.items() if k.lower() == entry.remote.lower()), None), info
        )
        for entry, info in mapping
    }
    if "first_name" in values or "last_name" in values:
        old_first, old_last = split_name(base["name"]) if base["name"] else (None, "")
        first = values.get("first_name", old_first) if "first_name" in values else old_first
        last = values.get("last_name", old_last) if "last_name" in values else old_last
        name = " ".join(str(p) for p in (first, last) if p)
        if name:
            base["name"] = name
    email = values.get("email")
    if isinstance(email, str) and email:
        others = [e for e in base["emails"] if e["address"] != email and not e.get("primary")]
        base["emails"] = [{"address": email, "primary": True}, *[{**e, "primary": False} for e in others]]
    if not base["name"] and base["emails"]:
        base["name"] = base["emails"][0]["address"].split("@")[0]
    if "phone" in values:
        rest = list(base["phones"][1:])
        base["phones"] = [str(values["phone"]), *rest] if values["phone"] is not None else rest
    if "title" in values:
        base["title"] = None if values["title"] is None else str(values["title"])
    custom = dict(base.get("custom") or {})
    for local, value in values.items():
        if local.startswith("custom."):
            key = local.removeprefix("custom.")
            if value is None:
                custom.pop(key, None)
            else:
                custom[key] = value
    base["custom"] = custom
    return base
