"""CRM v3 objects (contacts, companies, email engagements), search, batch, properties, associations
v4 and lists v3: the state and its rules.

Sources [D unless marked]: HubSpot API reference and guides: "Contacts" (v3 objects: `{"id",
"properties", "createdAt", "updatedAt", "archived"}`, paging `{"next": {"after", "link"}}`, at most
100 per page), "Search the CRM" (filterGroups OR'ed, filters AND'ed, operators EQ NEQ LT LTE GT GTE
BETWEEN IN NOT_IN HAS_PROPERTY NOT_HAS_PROPERTY CONTAINS_TOKEN NOT_CONTAINS_TOKEN, `sorts`,
`query`, `limit` up to 200, `after`; default contact properties createdate, email, firstname,
hs_object_id, lastmodifieddate, lastname; at most 10,000 results per query (400 beyond [D, AWS
Glue's HubSpot connector notes]); since August 2024 five filterGroups, ten filters per group and
25 in all [D, changelog]), "Batch" endpoints (100 inputs per call [D]), "Properties", "Associations
v4" (default and labelled associations, HUBSPOT_DEFINED type ids: contact->company 279,
company->contact 280, email->contact 198, contact->email 197, email->company 186, company->email
185 [R]), "Email engagements" (`hs_timestamp` required, `hs_email_direction`, `hs_email_headers` a
JSON string [D]), "Lists v3" (the legacy v1 contact lists API is sunset [R]; MANUAL lists with
`memberships/add` and `/remove` taking record ids).
Contacts are unique by email: a second one answers 409 "Contact already exists. Existing ID: N"
[R]. Property values are strings in and out; date-times are ISO 8601 with milliseconds and Z.
Contacts carry `lastmodifieddate`, the other objects `hs_lastmodifieddate` [R].
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from local.hubspot.errors import ApiError, not_found, validation

EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
MAX_BATCH = 100
MAX_PAGE = 100
MAX_SEARCH_PAGE = 200
MAX_SEARCH_RESULTS = 10_000
MAX_GROUPS, MAX_FILTERS_PER_GROUP, MAX_FILTERS = 5, 10, 25
OPERATORS = (
    "EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN",
    "HAS_PROPERTY", "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN",
)  # fmt: skip


def stamp(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@lru_cache(maxsize=1 << 16)  # search filters and sorts parse every row's date-time on each query
def parse_instant(value: str) -> datetime | None:
    text = value.strip()
    if re.fullmatch(r"-?\d+", text):
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class Property:
    name: str
    label: str
    type: str  # string | number | date | datetime | enumeration | bool
    field_type: str  # text | textarea | number | date | select | radio | booleancheckbox | phonenumber | ...
    group: str
    read_only: bool = False
    options: list[str] = field(default_factory=list)
    unique: bool = False
    hubspot_defined: bool = True
    description: str = ""
    created: str = "2019-08-06T02:41:08.000Z"

    def json(self) -> dict[str, Any]:
        return {
            "updatedAt": self.created,
            "createdAt": self.created,
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "description": self.description,
            "groupName": self.group,
            "options": [
                {"label": o, "value": o, "displayOrder": i, "hidden": False}
                for i, o in enumerate(self.options)
            ],
            "displayOrder": -1,
            "calculated": False,
            "externalOptions": False,
            "hasUniqueValue": self.unique,
            "hidden": False,
            "hubspotDefined": self.hubspot_defined,
            "modificationMetadata": {
                "archivable": not self.hubspot_defined,
                "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.read_only,
            },
            "formField": not self.read_only,
            "dataSensitivity": "non_sensitive",
        }


def _p(name: str, label: str, kind: str = "string", ftype: str = "text", group: str = "contactinformation",
       **extra: Any) -> Property:  # fmt: skip
    return Property(name, label, kind, ftype, group, **extra)


def standard_properties() -> dict[str, dict[str, Property]]:
    read_only: dict[str, Any] = {"read_only": True}
    contacts = [
        _p("email", "Email", unique=True),
        _p("firstname", "First Name"),
        _p("lastname", "Last Name"),
        _p("phone", "Phone Number", ftype="phonenumber"),
        _p("mobilephone", "Mobile Phone Number", ftype="phonenumber"),
        _p("company", "Company Name"),
        _p("jobtitle", "Job Title"),
        _p("website", "Website URL"),
        _p("city", "City"),
        _p("country", "Country/Region"),
        _p(
            "lifecyclestage", "Lifecycle Stage", "enumeration", "radio",
            options=["subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity",
                     "customer", "evangelist", "other"],
        ),
        _p("hs_lead_status", "Lead Status", "enumeration", "radio",
           options=["NEW", "OPEN", "IN_PROGRESS", "OPEN_DEAL", "UNQUALIFIED", "ATTEMPTED_TO_CONTACT",
                    "CONNECTED", "BAD_TIMING"]),
        _p("hubspot_owner_id", "Contact owner", "enumeration", "select"),
        _p("createdate", "Create Date", "datetime", "date", **read_only),
        _p("lastmodifieddate", "Last Modified Date", "datetime", "date", **read_only),
        _p("hs_object_id", "Record ID", "number", "number", **read_only),
    ]  # fmt: skip
    companies = [
        _p("name", "Company name", group="companyinformation"),
        _p("domain", "Company Domain Name", group="companyinformation"),
        _p("industry", "Industry", group="companyinformation"),
        _p("phone", "Phone Number", ftype="phonenumber", group="companyinformation"),
        _p("city", "City", group="companyinformation"),
        _p("country", "Country/Region", group="companyinformation"),
        _p("createdate", "Create Date", "datetime", "date", "companyinformation", **read_only),
        _p(
            "hs_lastmodifieddate", "Last Modified Date", "datetime", "date", "companyinformation", **read_only
        ),
        _p("hs_object_id", "Record ID", "number", "number", "companyinformation", **read_only),
    ]
    emails = [
        _p("hs_timestamp", "Activity date", "datetime", "date", "email"),
        _p("hs_email_direction", "Email direction", "enumeration", "select", "email",
           options=["EMAIL", "INCOMING_EMAIL", "FORWARDED_EMAIL"]),
        _p("hs_email_status", "Email send status", "enumeration", "select", "email",
           options=["BOUNCED", "FAILED", "SCHEDULED", "SENDING", "SENT"]),
        _p("hs_email_subject", "Email subject", group="email"),
        _p("hs_email_text", "Email body", ftype="textarea", group="email"),
        _p("hs_email_html", "Email HTML body", ftype="textarea", group="email"),
        _p("hs_email_headers", "Email headers", ftype="textarea", group="email"),
        _p("hubspot_owner_id", "Activity assigned to", "enumeration", "select", "email"),
        _p("hs_createdate", "Create date", "datetime", "date", "email", **read_only),
        _p("hs_lastmodifieddate", "Last modified date", "datetime", "date", "email", **read_only),
        _p("hs_object_id", "Record ID", "number", "number", "email", **read_only),
    ]  # fmt: skip
    return {
        "contacts": {p.name: p for p in contacts},
        "companies": {p.name: p for p in companies},
        "emails": {p.name: p for p in emails},
    }


@dataclass(frozen=True)
class ObjectType:
    name: str  # plural, as in v3 paths
    singular: str
    type_id: str
    created: str
    modified: str
    defaults: tuple[str, ...]
    search_text: tuple[str, ...]


TYPES = {
    "contacts": ObjectType(
        "contacts", "contact", "0-1", "createdate", "lastmodifieddate",
        ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
        ("firstname", "lastname", "email", "phone", "company"),
    ),
    "companies": ObjectType(
        "companies", "company", "0-2", "createdate", "hs_lastmodifieddate",
        ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
        ("name", "domain", "phone"),
    ),
    "emails": ObjectType(
        "emails", "email", "0-49", "hs_createdate", "hs_lastmodifieddate",
        ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
        ("hs_email_subject", "hs_email_text"),
    ),
}  # fmt: skip
# (from, to) -> HUBSPOT_DEFINED default association type id, and its label-less name in v3 answers.
ASSOCIATION_TYPES: dict[tuple[str, str], int] = {
    ("contacts", "companies"): 279,
    ("companies", "contacts"): 280,
    ("emails", "contacts"): 198,
    ("contacts", "emails"): 197,
    ("emails", "companies"): 186,
    ("companies", "emails"): 185,
}


def object_type(name: str) -> ObjectType:
    lowered = name.lower()
    for kind in TYPES.values():
        if lowered in (kind.name, kind.singular, kind.type_id):
            return kind
    raise ApiError(400, f"Unable to infer object type from: {name}", "VALIDATION_ERROR")


@dataclass
class CrmObject:
    id: int
    kind: str
    properties: dict[str, str]
    created: datetime
    updated: datetime
    archived_at: datetime | None = None


@dataclass
class HubList:
    id: int
    name: str
    object_type_id: str
    processing_type: str
    created: datetime
    updated: datetime
    version: int = 1
    members: dict[int, datetime] = field(default_factory=dict)

    def json(self) -> dict[str, Any]:
        return {
            "listId": str(self.id),
            "listVersion": self.version,
            "name": self.name,
            "objectTypeId": self.object_type_id,
            "processingStatus": "COMPLETE",
            "processingType": self.processing_type,
            "createdAt": stamp(self.created),
            "updatedAt": stamp(self.updated),
            "additionalProperties": {"hs_list_size": str(len(self.members))},
        }


ChangeListener = Callable[[str, int, str, dict[str, str | None], str], None]


class Crm:
    """Every object, property, association and list of the portal."""

    def __init__(self, now: Callable[[], datetime], next_id: Callable[[], int]) -> None:
        self.now = now
        self.next_id = next_id
        self.properties = standard_properties()
        self.objects: dict[str, dict[int, CrmObject]] = {name: {} for name in TYPES}
        self.associations: set[tuple[str, int, str, int, int]] = set()  # (from, id, to, id, typeId)
        self.lists: dict[int, HubList] = {}
        self.listeners: list[ChangeListener] = []
        # (object type, unique property) -> lower-cased value -> the id last given that value; built
        # on first use, kept by create/apply, checked against the object on each lookup.
        self._unique_index: dict[tuple[str, str], dict[str, int]] = {}

    # ------------------------------------------------------------------ properties

    def add_property(
        self, kind: str, name: str, label: str, type_: str = "string", field_type: str = "text",
        options: list[str] | None = None, group: str | None = None, unique: bool = False,
    ) -> Property:  # fmt: skip
        props = self.properties[object_type(kind).name]
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise validation("Property names must be lowercase letters, digits and underscores")
        if name in props:
            raise ApiError(409, f"Property named '{name}' already exists.", "OBJECT_ALREADY_EXISTS")
        if type_ not in ("string", "number", "date", "datetime", "enumeration", "bool"):
            raise validation(f"Invalid property type: {type_}")
        prop = Property(
            name, label, type_, field_type, group or "contactinformation", options=list(options or []),
            unique=unique, hubspot_defined=False, created=stamp(self.now()),
        )  # fmt: skip
        props[name] = prop
        return prop

    # ------------------------------------------------------------------ values

    def _clean(self, kind: ObjectType, values: Any, creating: bool) -> dict[str, str]:
        if not isinstance(values, dict):
            raise validation("Invalid input JSON: properties must be an object")
        props = self.properties[kind.name]
        problems: list[dict[str, Any]] = []
        out: dict[str, str] = {}
        for name, raw in values.items():
            prop = props.get(name)
            text = (
                "" if raw is None else (("true" if raw else "false") if isinstance(raw, bool) else str(raw))
            )
            error = self._problem(prop, name, text)
            if error is not None:
                problems.append({"isValid": False, "message": error[1], "error": error[0], "name": name})
                continue
            if prop is not None and prop.type == "datetime" and text:
                moment = parse_instant(text)
                text = stamp(moment) if moment else text
            out[name] = text
        if kind.name == "emails" and creating and not out.get("hs_timestamp"):
            problems.append({"isValid": False, "message": "hs_timestamp is required",
                             "error": "REQUIRED_FIELD",
                             "name": "hs_timestamp"})  # fmt: skip
        if problems:
            raise validation(f"Property values were not valid: {json.dumps(problems)}")
        return out

    @staticmethod
    def _problem(prop: Property | None, name: str, text: str) -> tuple[str, str] | None:
        if prop is None:
            return "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'
        if prop.read_only:
            return "READ_ONLY_VALUE", f"{name} is a read only property; its value cannot be set."
        if not text:
            return None
        if prop.type == "number":
            try:
                float(text)
            except ValueError:
                return "INVALID_INTEGER", f"{text} was not a valid number."
        elif prop.type in ("date", "datetime") and parse_instant(text) is None:
            return "INVALID_DATE", f"{text} was not a valid date."
        elif prop.type == "bool" and text not in ("true", "false"):
            return "INVALID_BOOLEAN", f"{text} was not a valid boolean."
        elif prop.type == "enumeration" and prop.options and text not in prop.options:
            return "INVALID_OPTION", f"{text} was not one of the allowed options: {prop.options}"
        elif name == "email" and not EMAIL.fullmatch(text):
            return "INVALID_EMAIL", f"Email address {text} is invalid"
        return None

    def _unique(self, kind: ObjectType, values: dict[str, str], own: int | None) -> None:
        for name, prop in self.properties[kind.name].items():
            value = values.get(name)
            if not prop.unique or not value:
                continue
            holder = self._unique_values(kind.name, name).get(value.lower())
            other = self.objects[kind.name].get(holder) if holder is not None else None
            if (
                other is not None
                and other.archived_at is None
                and other.id != own
                and other.properties.get(name, "").lower() == value.lower()
            ):
                if kind.name == "contacts" and name == "email":
                    raise ApiError(409, f"Contact already exists. Existing ID: {other.id}", "CONFLICT")
                raise ApiError(
                    409,
                    f"A {kind.singular} with the unique value {value} for {name} already exists.",
                    "CONFLICT",
                )

    def _unique_values(self, kind: str, name: str) -> dict[str, int]:
        index = self._unique_index.get((kind, name))
        if index is None:
            index = {
                o.properties[name].lower(): o.id
                for o in self.objects[kind].values()
                if o.archived_at is None and o.properties.get(name)
            }
            self._unique_index[(kind, name)] = index
        return index

    def _remember(self, obj: CrmObject) -> None:
        for (kind, name), index in self._unique_index.items():
            value = obj.properties.get(name)
            if kind == obj.kind and value:
                index[value.lower()] = obj.id

    # ------------------------------------------------------------------ objects

    def get(
        self, kind: ObjectType, object_id: str, id_property: str | None = None, archived: bool = False
    ) -> CrmObject:
        if id_property and id_property != "hs_object_id":
            for candidate in self.objects[kind.name].values():
                if candidate.properties.get(id_property, "").lower() == object_id.lower() and (
                    (candidate.archived_at is not None) == archived
                ):
                    return candidate
            raise not_found()
        found = self.objects[kind.name].get(int(object_id)) if object_id.isdigit() else None
        if found is None or (found.archived_at is not None) != archived:
            raise not_found()
        return found

    def validate_create(
        self, kind: ObjectType, body: Any
    ) -> tuple[dict[str, str], list[tuple[str, int, int]]]:
        if not isinstance(body, dict):
            raise validation("Invalid input JSON on line 1, column 1")
        values = self._clean(kind, body.get("properties") or {}, creating=True)
        self._unique(kind, values, None)
        return values, self._association_inputs(kind, body.get("associations") or [])

    def create(
        self, kind: ObjectType, values: dict[str, str], links: list[tuple[str, int, int]], source: str
    ) -> CrmObject:
        now = self.now()
        object_id = self.next_id()
        props = {k: v for k, v in values.items() if v != ""}
        props |= {kind.created: stamp(now), kind.modified: stamp(now), "hs_object_id": str(object_id)}
        obj = CrmObject(object_id, kind.name, props, now, now)
        self.objects[kind.name][object_id] = obj
        self._remember(obj)
        for to_kind, to_id, type_id in links:
            self.associate(kind.name, object_id, to_kind, to_id, type_id)
        self._notify(kind.name, object_id, "creation", dict(props), source)
        return obj

    def update(self, kind: ObjectType, obj: CrmObject, body: Any, source: str) -> CrmObject:
        if not isinstance(body, dict):
            raise validation("Invalid input JSON on line 1, column 1")
        values = self._clean(kind, body.get("properties") or {}, creating=False)
        self._unique(kind, values, obj.id)
        return self.apply(kind, obj, values, source)

    def apply(self, kind: ObjectType, obj: CrmObject, values: dict[str, str], source: str) -> CrmObject:
        changed: dict[str, str | None] = {}
        for name, value in values.items():
            before = obj.properties.get(name)
            after = value or None
            if before != after:
                changed[name] = after
                if after is None:
                    obj.properties.pop(name, None)
                else:
                    obj.properties[name] = after
        if changed:
            now = self.now()
            obj.updated = now
            obj.properties[kind.modified] = stamp(now)
            self._remember(obj)
            self._notify(kind.name, obj.id, "propertyChange", changed, source)
        return obj

    def archive(self, kind: ObjectType, obj: CrmObject, source: str) -> None:
        obj.archived_at = self.now()
        obj.updated = obj.archived_at
        self.associations = {a for a in self.associations if not _touches(a, kind.name, obj.id)}
        for hub_list in self.lists.values():
            hub_list.members.pop(obj.id, None)
        self._notify(kind.name, obj.id, "deletion", {}, source)

    def _notify(
        self, kind: str, object_id: int, change: str, values: dict[str, str | None], source: str
    ) -> None:
        for listener in self.listeners:
            listener(TYPES[kind].singular, object_id, change, values, source)

    def json(
        self, obj: CrmObject, properties: list[str] | None, associations: list[str] | None = None
    ) -> dict[str, Any]:
        kind = TYPES[obj.kind]
        names = properties if properties else list(kind.defaults)
        out: dict[str, Any] = {
            "id": str(obj.id),
            "properties": {name: obj.properties.get(name) for name in names},
            "createdAt": stamp(obj.created),
            "updatedAt": stamp(obj.updated),
            "archived": obj.archived_at is not None,
        }
        if obj.archived_at is not None:
            out["archivedAt"] = stamp(obj.archived_at)
        if associations:
            linked: dict[str, Any] = {}
            for name in associations:
                other = object_type(name)
                results = [
                    {"id": str(a[3]), "type": f"{kind.singular}_to_{other.singular}"}
                    for a in sorted(self.associations)
                    if a[0] == obj.kind and a[1] == obj.id and a[2] == other.name
                ]
                if results:
                    linked[other.name] = {"results": results}
            if linked:
                out["associations"] = linked
        return out

    def page(
        self, kind: ObjectType, after: str | None, limit: int, archived: bool
    ) -> tuple[list[CrmObject], str | None]:
        start = int(after) if after and after.isdigit() else 0
        rows = sorted(
            (
                o
                for o in self.objects[kind.name].values()
                if (o.archived_at is not None) == archived and o.id >= start
            ),
            key=lambda o: o.id,
        )
        chosen = rows[:limit]
        following = str(rows[limit].id) if len(rows) > limit else None
        return chosen, following

    # ------------------------------------------------------------------ search

    def search(self, kind: ObjectType, body: Any) -> tuple[list[CrmObject], int, int]:
        """(page, total, next offset or -1) for a search request body."""
        if not isinstance(body, dict):
            raise validation("Invalid input JSON on line 1, column 1")
        groups = body.get("filterGroups") or []
        if not isinstance(groups, list) or len(groups) > MAX_GROUPS:
            raise validation(f"Too many filter groups: {len(groups)}. The maximum is {MAX_GROUPS}.")
        total_filters = 0
        for group in groups:
            filters = group.get("filters") if isinstance(group, dict) else None
            if not isinstance(filters, list):
                raise validation("Each filter group needs a filters array")
            if len(filters) > MAX_FILTERS_PER_GROUP:
                raise validation(
                    f"Too many filters in a filter group: {len(filters)}. "
                    f"The maximum is {MAX_FILTERS_PER_GROUP}."
                )
            total_filters += len(filters)
            for item in filters:
                self._check_filter(kind, item)
        if total_filters > MAX_FILTERS:
            raise validation(f"Too many filters: {total_filters}. The maximum is {MAX_FILTERS}.")
        limit = body.get("limit", 10)
        if not isinstance(limit, int) or not 0 < limit <= MAX_SEARCH_PAGE:
            raise validation(f"limit must be between 1 and {MAX_SEARCH_PAGE}")
        after_raw = body.get("after") or "0"
        if not str(after_raw).isdigit():
            raise validation(f"after must be a number: {after_raw}")
        after = int(str(after_raw))
        if after + limit > MAX_SEARCH_RESULTS:
            raise validation(
                f"Paging through more than {MAX_SEARCH_RESULTS} results is not supported. Narrow the search "
                "(for example by a lastmodifieddate range) and page again."
            )
        query = str(body.get("query") or "").lower()
        rows = [o for o in self.objects[kind.name].values() if o.archived_at is None]
        if groups:
            rows = [o for o in rows if any(all(self._matches(o, f) for f in g["filters"]) for g in groups)]
        if query:
            rows = [
                o for o in rows if any(query in o.properties.get(p, "").lower() for p in kind.search_text)
            ]
        rows.sort(key=lambda o: o.id)
        sorts = body.get("sorts") or []
        if len(sorts) > 1:
            raise validation("Only one sort is allowed")
        for item in sorts:
            if isinstance(item, str):
                name, descending = item.lstrip("-"), item.startswith("-")
            elif isinstance(item, dict):
                name, descending = (
                    str(item.get("propertyName")),
                    str(item.get("direction", "ASCENDING")) == "DESCENDING",
                )
            else:
                raise validation("Invalid sort")
            prop = self.properties[kind.name].get(name)
            if prop is None:
                raise validation(f'Property "{name}" does not exist')
            rows.sort(key=_by_property(prop), reverse=descending)
        page = rows[after : after + limit]
        following = after + limit if after + limit < len(rows) else -1
        return page, len(rows), following

    def _check_filter(self, kind: ObjectType, item: Any) -> None:
        if not isinstance(item, dict):
            raise validation("Invalid filter")
        name = str(item.get("propertyName") or "")
        if name not in self.properties[kind.name]:
            raise validation(f'Property "{name}" does not exist')
        operator = str(item.get("operator") or "")
        if operator not in OPERATORS:
            raise validation(f"Invalid operator: {operator}")

    def _matches(self, obj: CrmObject, item: dict[str, Any]) -> bool:
        prop = self.properties[obj.kind][item["propertyName"]]
        have = obj.properties.get(prop.name)
        operator = str(item["operator"])
        if operator == "HAS_PROPERTY":
            return have is not None
        if operator == "NOT_HAS_PROPERTY":
            return have is None
        if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            token = str(item.get("value", "")).lower().strip("*")
            found = have is not None and token in have.lower()
            return found if operator == "CONTAINS_TOKEN" else not found
        if operator in ("IN", "NOT_IN"):
            values = [_sortable(prop, str(v)) for v in item.get("values") or []]
            member = have is not None and bool(_sortable(prop, have) in values)
            return member if operator == "IN" else not member
        if have is None:
            return operator == "NEQ"
        left, right = _sortable(prop, have), _sortable(prop, str(item.get("value", "")))
        try:
            if operator == "BETWEEN":
                return bool(right <= left <= _sortable(prop, str(item.get("highValue", ""))))
            comparisons: dict[str, Callable[[], Any]] = {
                "EQ": lambda: left == right,
                "NEQ": lambda: left != right,
                "LT": lambda: left < right,
                "LTE": lambda: left <= right,
                "GT": lambda: left > right,
                "GTE": lambda: left >= right,
            }
            return bool(comparisons[operator]())
        except TypeError:
            return False

    # ------------------------------------------------------------------ associations

    def _association_inputs(self, kind: ObjectType, items: Any) -> list[tuple[str, int, int]]:
        out: list[tuple[str, int, int]] = []
        if not isinstance(items, list):
            raise validation("associations must be an array")
        for item in items:
            try:
                to_id = int(str(item["to"]["id"]))
                types = item["types"]
                type_id = int(types[0]["associationTypeId"])
            except (KeyError, TypeError, ValueError, IndexError):
                raise validation(
                    "Invalid association input: to.id and types[].associationTypeId are required"
                ) from None
            to_kind = next(
                (t for (f, t), i in ASSOCIATION_TYPES.items() if f == kind.name and i == type_id), None
            )
            if to_kind is None:
                raise validation(f"{type_id} is not a valid association type id for {kind.singular}")
            target = self.objects[to_kind].get(to_id)
            if target is None or target.archived_at is not None:
                raise validation(f"No {TYPES[to_kind].singular} with ID {to_id} exists")
            out.append((to_kind, to_id, type_id))
        return out

    def associate(
        self, from_kind: str, from_id: int, to_kind: str, to_id: int, type_id: int | None = None
    ) -> int:
        forward = ASSOCIATION_TYPES.get((from_kind, to_kind))
        backward = ASSOCIATION_TYPES.get((to_kind, from_kind))
        if forward is None or backward is None:
            raise validation(f"{from_kind} cannot be associated with {to_kind}")
        if type_id is not None and type_id != forward:
            raise validation(f"{type_id} is not a valid association type id from {from_kind} to {to_kind}")
        for kind, object_id in ((from_kind, from_id), (to_kind, to_id)):
            found = self.objects[kind].get(object_id)
            if found is None or found.archived_at is not None:
                raise not_found(f"No {TYPES[kind].singular} with ID {object_id} exists")
        self.associations.add((from_kind, from_id, to_kind, to_id, forward))
        self.associations.add((to_kind, to_id, from_kind, from_id, backward))
        return forward

    def dissociate(self, from_kind: str, from_id: int, to_kind: str, to_id: int) -> None:
        self.associations = {
            a for a in self.associations
            if {(a[0], a[1]), (a[2], a[3])} != {(from_kind, from_id), (to_kind, to_id)}
        }  # fmt: skip

    def associated(self, from_kind: str, from_id: int, to_kind: str) -> list[tuple[int, int]]:
        return sorted(
            (a[3], a[4])
            for a in self.associations
            if a[0] == from_kind and a[1] == from_id and a[2] == to_kind
        )


def _touches(association: tuple[str, int, str, int, int], kind: str, object_id: int) -> bool:
    return (association[0], association[1]) == (kind, object_id) or (association[2], association[3]) == (
        kind,
        object_id,
    )


def _by_property(prop: Property) -> Callable[[CrmObject], Any]:
    return lambda obj: _sortable(prop, obj.properties.get(prop.name))


def _sortable(prop: Property, value: str | None) -> Any:
    if value is None:
        return ""
    if prop.type == "number":
        try:
            return float(value)
        except ValueError:
            return value
    if prop.type in ("date", "datetime"):
        moment = parse_instant(value)
        return moment.timestamp() if moment else value
    return value.lower()
