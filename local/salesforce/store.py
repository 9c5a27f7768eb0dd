"""One org's records: create, update, upsert, delete with Salesforce's save rules and audit fields.

Rules [R unless marked]: unknown fields answer INVALID_FIELD "No such column 'X' on sobject of
type T"; read-only fields INVALID_FIELD_FOR_INSERT_UPDATE; missing required fields
REQUIRED_FIELD_MISSING "Required fields are missing: [F]"; a reference to a record that does not
exist INVALID_CROSS_REFERENCE_KEY "invalid cross reference id"; a second CampaignMember for the
same campaign and person DUPLICATE_VALUE "Already a campaign member."; a unique or external-id
field DUPLICATE_VALUE "duplicate value found: F duplicates value on record with id: X".
CreatedDate, LastModifiedDate and SystemModstamp are set by the platform on every save, to the
millisecond [D, Object Reference "System Fields"]. Deleted records stay in the Recycle Bin with
IsDeleted = true, visible to queryAll only [D, REST API "QueryAll"]; deleting a contact or lead
deletes its campaign memberships [R].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from local.salesforce.errors import SaveError
from local.salesforce.ids import Ids, to18
from local.salesforce.schema import AUDIT_FIELDS, SObjectType, convert, standard_objects, to_json

Record = dict[str, Any]
Listener = Callable[[str, Record, str], None]  # (sObject type, record, "created" | "updated" | "deleted")


@dataclass
class Org:
    """An org (one per double): its schema, its records, and who made them."""

    ids: Ids
    now: Callable[[], datetime]
    org_id: str = ""
    user_id: str = ""
    types: dict[str, SObjectType] = field(default_factory=standard_objects)
    records: dict[str, dict[str, Record]] = field(default_factory=dict)
    listeners: list[Listener] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.org_id = self.org_id or self.ids.record("00D")
        self.user_id = self.user_id or self.ids.record("005")
        for name in self.types:
            self.records.setdefault(name, {})
        self._by_id: dict[str, str] = {}
        self._unique: dict[tuple[str, str], dict[str, str]] = {}

    def reindex(self) -> None:
        self._by_id = {record_id: name for name, rows in self.records.items() for record_id in rows}
        self._unique = {}

    def _unique_index(self, type_name: str, field_name: str) -> dict[str, str]:
        """Live records by the lower-cased value of a unique field (built on first use, then kept)."""
        key = (type_name, field_name)
        index = self._unique.get(key)
        if index is None:
            index = {
                str(r[field_name]).lower(): r["Id"]
                for r in self.live(type_name)
                if r.get(field_name) is not None
            }
            self._unique[key] = index
        return index

    def _index(self, type_name: str, before: Record | None, after: Record | None) -> None:
        for (indexed_type, field_name), index in self._unique.items():
            if indexed_type != type_name:
                continue
            if before is not None and before.get(field_name) is not None:
                index.pop(str(before[field_name]).lower(), None)
            if after is not None and after.get(field_name) is not None and not after["IsDeleted"]:
                index[str(after[field_name]).lower()] = after["Id"]

    # ------------------------------------------------------------------ lookups

    def sobject(self, name: str) -> SObjectType | None:
        lowered = name.lower()
        return next((t for n, t in self.types.items() if n.lower() == lowered), None)

    def find(self, record_id: str) -> tuple[str, Record] | None:
        full = to18(record_id)
        if full is None:
            return None
        type_name = self._by_id.get(full)
        if type_name is None:
            return None
        return type_name, self.records[type_name][full]

    def live(self, type_name: str) -> list[Record]:
        return [r for r in self.records[type_name].values() if not r["IsDeleted"]]

    def stamp(self) -> datetime:
        now = self.now()
        return now.replace(microsecond=now.microsecond // 1000 * 1000)

    # ------------------------------------------------------------------ saves

    def _values(
        self, sobject: SObjectType, values: dict[str, Any], creating: bool, from_text: bool
    ) -> Record:
        out: Record = {}
        for key, value in values.items():
            if key == "attributes":
                continue
            spec = sobject.field(key)
            if spec is None:
                raise SaveError("INVALID_FIELD", f"No such column '{key}' on sobject of type {sobject.name}")
            if spec.name == "Id":
                continue
            if not (spec.createable if creating else spec.updateable):
                raise SaveError(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {spec.name}. Please check the security settings of "
                    "this field and verify that it is read/write for your profile or permission set.",
                    [spec.name],
                )
            converted = convert(spec, value, from_text)
            if spec.type == "reference" and converted is not None:
                converted = self._reference(spec.name, spec.reference_to, str(converted))
            if converted is None and not spec.nillable:
                raise SaveError(
                    "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{spec.name}]", [spec.name]
                )
            out[spec.name] = converted
        return out

    def _reference(self, name: str, targets: tuple[str, ...], value: str) -> str:
        full = to18(value)
        if full is None:
            raise SaveError("MALFORMED_ID", f"{name}: id value of incorrect type: {value}", [name])
        modelled = [t for t in targets if t in self.types]
        if full == self.user_id or not modelled:
            return full
        found = self.find(full)
        if found is None or found[0] not in modelled or found[1]["IsDeleted"]:
            raise SaveError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [name])
        return full

    def _check(self, sobject: SObjectType, record: Record, record_id: str | None) -> None:
        missing = [f.name for f in sobject.fields.values() if f.required and record.get(f.name) in (None, "")]
        if missing:
            raise SaveError(
                "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing
            )
        for spec in sobject.fields.values():
            if not spec.unique or record.get(spec.name) is None:
                continue
            other_id = self._unique_index(sobject.name, spec.name).get(str(record[spec.name]).lower())
            if other_id is not None and other_id != record_id:
                raise SaveError(
                    "DUPLICATE_VALUE",
                    f"duplicate value found: {spec.name} duplicates value on record with id: {other_id}",
                )
        if sobject.name == "CampaignMember":
            person = record.get("ContactId") or record.get("LeadId")
            if person is None:
                raise SaveError(
                    "REQUIRED_FIELD_MISSING", "Required fields are missing: [ContactId]", ["ContactId"]
                )
            for other in self.live("CampaignMember"):
                if (
                    other["Id"] != record_id
                    and other["CampaignId"] == record["CampaignId"]
                    and ((other.get("ContactId") or other.get("LeadId")) == person)
                ):
                    raise SaveError("DUPLICATE_VALUE", "Already a campaign member.")

    def _derive(self, sobject: SObjectType, record: Record) -> None:
        if "Name" in sobject.fields and sobject.fields["Name"].calculated:
            record["Name"] = (
                " ".join(p for p in (record.get("FirstName"), record.get("LastName")) if p) or None
            )
        if sobject.name == "CampaignMember":
            person = self.find(record.get("ContactId") or record.get("LeadId") or "")
            record["Email"] = person[1].get("Email") if person else None
        if sobject.name == "Task":
            record["IsClosed"] = record.get("Status") == "Completed"

    def create(
        self, type_name: str, values: dict[str, Any], from_text: bool = False, notify: bool = True
    ) -> Record:
        sobject = self.types[type_name]
        given = self._values(sobject, values, True, from_text)
        record: Record = {f.name: f.default for f in sobject.fields.values()}
        if "OwnerId" in sobject.fields:
            record["OwnerId"] = self.user_id
        record.update(given)
        self._check(sobject, record, None)
        self._derive(sobject, record)
        now = self.stamp()
        record_id = self.ids.record(sobject.prefix)
        record.update(
            Id=record_id,
            IsDeleted=False,
            CreatedDate=now,
            CreatedById=self.user_id,
            LastModifiedDate=now,
            LastModifiedById=self.user_id,
            SystemModstamp=now,
        )
        self.records[type_name][record_id] = record
        self._by_id[record_id] = type_name
        self._index(type_name, None, record)
        if notify:
            self._notify(type_name, record, "created")
        return record

    def update(
        self,
        type_name: str,
        record_id: str,
        values: dict[str, Any],
        from_text: bool = False,
        notify: bool = True,
    ) -> Record:
        sobject = self.types[type_name]
        record = self.existing(type_name, record_id)
        given = self._values(sobject, values, False, from_text)
        candidate = {**record, **given}
        self._check(sobject, candidate, record["Id"])
        self._derive(sobject, candidate)
        now = self.stamp()
        candidate.update(LastModifiedDate=now, LastModifiedById=self.user_id, SystemModstamp=now)
        self._index(type_name, record, candidate)
        record.clear()
        record.update(candidate)
        if notify:
            self._notify(type_name, record, "updated")
        return record

    def upsert(
        self, type_name: str, key_field: str, values: dict[str, Any], from_text: bool = False
    ) -> tuple[Record, bool]:
        """Create or update by an external-id field; (record, created)."""
        sobject = self.types[type_name]
        spec = sobject.field(key_field)
        if spec is None or not (spec.external_id or spec.name == "Id"):
            raise SaveError("INVALID_FIELD", f"Field {key_field} is not an external id field on {type_name}")
        key = next((v for k, v in values.items() if k.lower() == spec.name.lower()), None)
        if key in (None, ""):
            raise SaveError("MISSING_ARGUMENT", f"{spec.name} not specified", [spec.name])
        rest = {k: v for k, v in values.items() if k.lower() not in ("id", spec.name.lower())}
        if spec.name == "Id":
            return self.update(type_name, str(key), rest, from_text), False
        match = self._unique_index(type_name, spec.name).get(str(key).lower())
        if match is not None:
            return self.update(type_name, match, rest, from_text), False
        return self.create(type_name, {**rest, spec.name: key}, from_text), True

    def existing(self, type_name: str, record_id: str) -> Record:
        full = to18(record_id)
        if full is None:
            raise SaveError(
                "MALFORMED_ID", f"{type_name} ID: id value of incorrect type: {record_id}", ["Id"]
            )
        record = self.records[type_name].get(full)
        if record is None:
            raise SaveError("NOT_FOUND", "The requested resource does not exist")
        if record["IsDeleted"]:
            raise SaveError("ENTITY_IS_DELETED", "entity is deleted")
        return record

    def delete(self, type_name: str, record_id: str, hard: bool = False, notify: bool = True) -> Record:
        record = self.existing(type_name, record_id)
        if type_name in ("Contact", "Lead"):
            for member in self.live("CampaignMember"):
                if record["Id"] in (member.get("ContactId"), member.get("LeadId")):
                    self.delete("CampaignMember", member["Id"], hard, notify)
        self._index(type_name, record, None)
        record["IsDeleted"] = True
        record["SystemModstamp"] = self.stamp()
        if hard:
            del self.records[type_name][record["Id"]]
            del self._by_id[record["Id"]]
        if notify:
            self._notify(type_name, record, "deleted")
        return record

    def _notify(self, type_name: str, record: Record, kind: str) -> None:
        for listener in self.listeners:
            listener(type_name, record, kind)

    # ------------------------------------------------------------------ answers

    def json(
        self, type_name: str, record: Record, version: str, fields: list[str] | None = None
    ) -> dict[str, Any]:
        sobject = self.types[type_name]
        names = [f.name for f in sobject.fields.values()] if fields is None else fields
        out: dict[str, Any] = {
            "attributes": {
                "type": type_name,
                "url": f"/services/data/v{version}/sobjects/{type_name}/{record['Id']}",
            }
        }
        for name in names:
            out[name] = to_json(record.get(name))
        return out


__all__ = ["AUDIT_FIELDS", "Org", "Record"]
