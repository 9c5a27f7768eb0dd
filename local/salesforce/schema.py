"""The sObjects the double serves, their fields, describe answers, and value conversion.

Field names, types, lengths and create/update rights follow the Object Reference for the Salesforce
Platform (Contact, Lead, Campaign, CampaignMember, Task, EmailMessage) [R: from memory of the
reference, a subset of each object's fields]. Describe answers carry the keys of the REST API's
"sObject Describe" resource that clients read (`name`, `label`, `type`, `length`, `createable`,
`updateable`, `nillable`, `custom`, `picklistValues`, `referenceTo`, `externalId`, `unique`, ...)
[D, REST API Developer Guide, sObject Describe]. Custom fields (`Name__c`) are added by the
control API. JSON dates are `YYYY-MM-DD`, date-times `YYYY-MM-DDTHH:MM:SS.sss+0000` [D, the REST
examples].
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from local.salesforce.errors import SaveError

TYPES = (
    "id",
    "string",
    "textarea",
    "email",
    "phone",
    "url",
    "picklist",
    "boolean",
    "date",
    "datetime",
    "double",
    "int",
    "currency",
    "reference",
)
SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
    "double": "xsd:double",
    "currency": "xsd:double",
    "int": "xsd:int",
}
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
CUSTOM_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*__c")


@dataclass
class Field:
    name: str
    type: str
    label: str = ""
    length: int = 0
    createable: bool = True
    updateable: bool = True
    nillable: bool = True
    required: bool = False  # must be given on create (not nillable and no default)
    custom: bool = False
    default: Any = None
    picklist: tuple[str, ...] = ()
    reference_to: tuple[str, ...] = ()
    external_id: bool = False
    unique: bool = False
    calculated: bool = False

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label or self.name.removesuffix("__c").replace("_", " "),
            "type": self.type,
            "soapType": SOAP_TYPES.get(self.type, "xsd:string"),
            "length": self.length,
            "byteLength": self.length * 3,
            "precision": 18 if self.type in ("double", "currency") else 0,
            "scale": 2 if self.type == "currency" else 0,
            "digits": 9 if self.type == "int" else 0,
            "createable": self.createable,
            "updateable": self.updateable,
            "nillable": self.nillable,
            # OwnerId defaults to the creating user (store.py sets it), as Salesforce's describe says
            "defaultedOnCreate": self.default is not None or self.name in (*AUDIT_FIELDS, "OwnerId"),
            "defaultValue": self.default,
            "custom": self.custom,
            "calculated": self.calculated,
            "externalId": self.external_id,
            "unique": self.unique,
            "idLookup": self.name in ("Id", "Email") or self.external_id,
            "filterable": self.type != "textarea",
            "sortable": self.type != "textarea",
            "picklistValues": [
                {
                    "active": True,
                    "defaultValue": value == self.default,
                    "label": value,
                    "validFor": None,
                    "value": value,
                }
                for value in self.picklist
            ],
            "referenceTo": list(self.reference_to),
            "relationshipName": self.name[:-2]
            if self.type == "reference" and self.name.endswith("Id")
            else None,
        }


AUDIT_FIELDS = (
    "Id",
    "IsDeleted",
    "CreatedDate",
    "CreatedById",
    "LastModifiedDate",
    "LastModifiedById",
    "SystemModstamp",
)


def _audit() -> list[Field]:
    return [
        Field("Id", "id", "Record ID", 18, createable=False, updateable=False, nillable=False),
        Field(
            "IsDeleted",
            "boolean",
            "Deleted",
            createable=False,
            updateable=False,
            nillable=False,
            default=False,
        ),
        Field("CreatedDate", "datetime", "Created Date", createable=False, updateable=False, nillable=False),
        Field("CreatedById", "reference", "Created By ID", 18, False, False, False, reference_to=("User",)),
        Field(
            "LastModifiedDate",
            "datetime",
            "Last Modified Date",
            createable=False,
            updateable=False,
            nillable=False,
        ),
        Field(
            "LastModifiedById",
            "reference",
            "Last Modified By ID",
            18,
            False,
            False,
            False,
            reference_to=("User",),
        ),
        Field(
            "SystemModstamp",
            "datetime",
            "System Modstamp",
            createable=False,
            updateable=False,
            nillable=False,
        ),
    ]


def _owner() -> Field:
    return Field("OwnerId", "reference", "Owner ID", 18, nillable=False, reference_to=("User",))


def _name() -> Field:
    return Field("Name", "string", "Full Name", 121, createable=False, updateable=False, calculated=True)


LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")
SALUTATIONS = ("Mr.", "Ms.", "Mrs.", "Dr.", "Prof.")


@dataclass
class SObjectType:
    name: str
    label: str
    plural: str
    prefix: str
    fields: dict[str, Field] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lower = {name.lower(): f for name, f in self.fields.items()}

    def add(self, new: Field) -> None:
        self.fields[new.name] = new
        self._lower[new.name.lower()] = new

    def field(self, name: str) -> Field | None:
        """Field names are case-insensitive in the API, canonical in every answer."""
        return self._lower.get(name.lower())

    def describe(self, version: str) -> dict[str, Any]:
        return {
            **self.summary(version),
            "fields": [f.describe() for f in self.fields.values()],
            "childRelationships": [],
            "recordTypeInfos": [],
        }

    def summary(self, version: str) -> dict[str, Any]:
        base = f"/services/data/v{version}/sobjects/{self.name}"
        return {
            "name": self.name,
            "label": self.label,
            "labelPlural": self.plural,
            "keyPrefix": self.prefix,
            "custom": False,
            "createable": True,
            "updateable": True,
            "deletable": True,
            "queryable": True,
            "retrieveable": True,
            "searchable": True,
            "urls": {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"},
        }


def _type(name: str, label: str, plural: str, prefix: str, own: list[Field]) -> SObjectType:
    return SObjectType(name, label, plural, prefix, {f.name: f for f in [*_audit(), *own]})


def standard_objects() -> dict[str, SObjectType]:
    """A fresh copy of the standard objects (each org has its own: custom fields are per org)."""
    types = [
        _type(
            "Contact",
            "Contact",
            "Contacts",
            "003",
            [
                _owner(),
                Field("Salutation", "picklist", "Salutation", 40, picklist=SALUTATIONS),
                Field("FirstName", "string", "First Name", 40),
                Field("LastName", "string", "Last Name", 80, nillable=False, required=True),
                _name(),
                Field("AccountId", "reference", "Account ID", 18, reference_to=("Account",)),
                Field("Email", "email", "Email", 80),
                Field("Phone", "phone", "Business Phone", 40),
                Field("MobilePhone", "phone", "Mobile Phone", 40),
                Field("Title", "string", "Title", 128),
                Field("Department", "string", "Department", 80),
                Field("LeadSource", "picklist", "Lead Source", 255, picklist=LEAD_SOURCES),
                Field("MailingCity", "string", "Mailing City", 40),
                Field("MailingCountry", "string", "Mailing Country", 80),
                Field("Description", "textarea", "Contact Description", 32000),
                Field("HasOptedOutOfEmail", "boolean", "Email Opt Out", nillable=False, default=False),
                Field("LastActivityDate", "date", "Last Activity", createable=False, updateable=False),
            ],
        ),
        _type(
            "Lead",
            "Lead",
            "Leads",
            "00Q",
            [
                _owner(),
                Field("Salutation", "picklist", "Salutation", 40, picklist=SALUTATIONS),
                Field("FirstName", "string", "First Name", 40),
                Field("LastName", "string", "Last Name", 80, nillable=False, required=True),
                _name(),
                Field("Company", "string", "Company", 255, nillable=False, required=True),
                Field("Email", "email", "Email", 80),
                Field("Phone", "phone", "Phone", 40),
                Field("Title", "string", "Title", 128),
                Field(
                    "Status",
                    "picklist",
                    "Status",
                    255,
                    nillable=False,
                    default="Open - Not Contacted",
                    picklist=(
                        "Open - Not Contacted",
                        "Working - Contacted",
                        "Closed - Converted",
                        "Closed - Not Converted",
                    ),
                ),
                Field("LeadSource", "picklist", "Lead Source", 255, picklist=LEAD_SOURCES),
                Field("HasOptedOutOfEmail", "boolean", "Email Opt Out", nillable=False, default=False),
                Field(
                    "IsConverted",
                    "boolean",
                    "Converted",
                    createable=False,
                    updateable=False,
                    nillable=False,
                    default=False,
                ),
                Field("Description", "textarea", "Description", 32000),
            ],
        ),
        _type(
            "Campaign",
            "Campaign",
            "Campaigns",
            "701",
            [
                _owner(),
                Field("Name", "string", "Campaign Name", 80, nillable=False, required=True),
                Field(
                    "Type",
                    "picklist",
                    "Type",
                    255,
                    picklist=("Email", "Webinar", "Conference", "Advertisement", "Other"),
                ),
                Field(
                    "Status",
                    "picklist",
                    "Status",
                    255,
                    default="Planned",
                    picklist=("Planned", "In Progress", "Completed", "Aborted"),
                ),
                Field("StartDate", "date", "Start Date"),
                Field("EndDate", "date", "End Date"),
                Field("IsActive", "boolean", "Active", nillable=False, default=False),
                Field("Description", "textarea", "Description", 32000),
            ],
        ),
        _type(
            "CampaignMember",
            "Campaign Member",
            "Campaign Members",
            "00v",
            [
                Field(
                    "CampaignId",
                    "reference",
                    "Campaign ID",
                    18,
                    updateable=False,
                    nillable=False,
                    required=True,
                    reference_to=("Campaign",),
                ),
                Field(
                    "ContactId", "reference", "Contact ID", 18, updateable=False, reference_to=("Contact",)
                ),
                Field("LeadId", "reference", "Lead ID", 18, updateable=False, reference_to=("Lead",)),
                Field(
                    "Status",
                    "picklist",
                    "Status",
                    40,
                    default="Sent",
                    picklist=("Planned", "Sent", "Received", "Responded"),
                ),
                Field(
                    "HasResponded",
                    "boolean",
                    "Responded",
                    createable=False,
                    updateable=False,
                    nillable=False,
                    default=False,
                ),
                Field("Email", "email", "Email", 80, createable=False, updateable=False),
            ],
        ),
        _type(
            "Task",
            "Task",
            "Tasks",
            "00T",
            [
                _owner(),
                Field("WhoId", "reference", "Name ID", 18, reference_to=("Contact", "Lead")),
                Field("WhatId", "reference", "Related To ID", 18, reference_to=("Campaign",)),
                Field("Subject", "string", "Subject", 255),
                Field("ActivityDate", "date", "Due Date Only"),
                Field(
                    "Status",
                    "picklist",
                    "Status",
                    40,
                    nillable=False,
                    default="Not Started",
                    picklist=(
                        "Not Started",
                        "In Progress",
                        "Completed",
                        "Waiting on someone else",
                        "Deferred",
                    ),
                ),
                Field(
                    "Priority",
                    "picklist",
                    "Priority",
                    40,
                    nillable=False,
                    default="Normal",
                    picklist=("High", "Normal", "Low"),
                ),
                Field(
                    "TaskSubtype",
                    "picklist",
                    "Task Subtype",
                    40,
                    updateable=False,
                    picklist=("Task", "Email", "Call", "ListEmail"),
                ),
                Field("Type", "picklist", "Type", 40, picklist=("Call", "Email", "Meeting", "Other")),
                Field("Description", "textarea", "Comments", 32000),
                Field(
                    "IsClosed",
                    "boolean",
                    "Closed",
                    createable=False,
                    updateable=False,
                    nillable=False,
                    default=False,
                ),
            ],
        ),
        _type(
            "EmailMessage",
            "Email Message",
            "Email Messages",
            "02s",
            [
                Field("ParentId", "reference", "Case ID", 18, reference_to=("Case",)),
                Field(
                    "ActivityId",
                    "reference",
                    "Activity ID",
                    18,
                    createable=False,
                    updateable=False,
                    reference_to=("Task",),
                ),
                Field("RelatedToId", "reference", "Related To ID", 18, reference_to=("Campaign", "Contact")),
                Field("Subject", "string", "Subject", 3000),
                Field("TextBody", "textarea", "Text Body", 131072),
                Field("HtmlBody", "textarea", "HTML Body", 131072),
                Field("Headers", "textarea", "Headers", 32000),
                Field("FromAddress", "email", "From Address", 1000),
                Field("FromName", "string", "From Name", 1000),
                Field("ToAddress", "textarea", "To Address", 4000),
                Field("CcAddress", "textarea", "CC Address", 4000),
                Field("BccAddress", "textarea", "BCC Address", 4000),
                Field("MessageDate", "datetime", "Message Date"),
                Field("MessageIdentifier", "string", "Message ID", 255),
                Field("ThreadIdentifier", "string", "Thread ID", 255),
                Field("Incoming", "boolean", "Is Incoming", updateable=False, nillable=False, default=False),
                Field(
                    "Status",
                    "picklist",
                    "Status",
                    40,
                    nillable=False,
                    required=True,
                    picklist=("0", "1", "2", "3", "4", "5"),
                ),
            ],
        ),
    ]
    return {t.name: t for t in types}


CUSTOM_TYPES = {
    "text": ("string", 255),
    "textarea": ("textarea", 32768),
    "email": ("email", 80),
    "phone": ("phone", 40),
    "url": ("url", 255),
    "number": ("double", 0),
    "checkbox": ("boolean", 0),
    "date": ("date", 0),
    "datetime": ("datetime", 0),
    "picklist": ("picklist", 255),
}


def custom_field(
    name: str,
    kind: str = "text",
    length: int | None = None,
    label: str | None = None,
    external_id: bool = False,
    unique: bool = False,
    picklist: tuple[str, ...] = (),
) -> Field:
    """A custom field as Setup would create it (`kind`: one of CUSTOM_TYPES)."""
    if not CUSTOM_NAME.fullmatch(name):
        raise ValueError(
            "a custom field name ends in __c and is made of letters, digits and single underscores"
        )
    if kind not in CUSTOM_TYPES:
        raise ValueError(f"custom field kind must be one of {sorted(CUSTOM_TYPES)}")
    api_type, default_length = CUSTOM_TYPES[kind]
    return Field(
        name,
        api_type,
        label or name.removesuffix("__c").replace("_", " "),
        length if length is not None else default_length,
        custom=True,
        nillable=kind != "checkbox",
        default=False if kind == "checkbox" else None,
        external_id=external_id,
        unique=unique or external_id,
        picklist=picklist,
    )


# ---------------------------------------------------------------------- values


def format_datetime(value: datetime) -> str:
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def to_json(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def to_text(value: Any) -> str:
    """A value as CSV (Bulk API) and SOAP render it: ISO date-times with Z, lower-case booleans."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        moment = value.astimezone(UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def parse_datetime(text: str) -> datetime | None:
    value = text.strip()
    if not value:
        return None
    value = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", value.replace("Z", "+00:00"))
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def convert(spec: Field, value: Any, from_text: bool = False) -> Any:
    """A JSON (or, with `from_text`, CSV) value as stored for `spec`; raises SaveError when it does
    not fit (the codes and texts are Salesforce's [R])."""
    if value is None or (from_text and value == ""):
        return None
    label = spec.label or spec.name
    kind = spec.type
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if from_text and str(value).lower() in ("true", "false", "1", "0", "yes", "no"):
            return str(value).lower() in ("true", "1", "yes")
        raise SaveError(
            "JSON_PARSER_ERROR",
            f"Cannot deserialize instance of boolean from VALUE_STRING value {value} or request may be "
            "missing a required field",
            [spec.name],
        )
    if kind in ("double", "currency", "int"):
        if isinstance(value, bool):
            value = str(value)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise SaveError(
                "INVALID_TYPE_ON_FIELD_IN_RECORD",
                f"{label}: value not of required type: {value}",
                [spec.name],
            ) from None
        return int(number) if kind == "int" else number
    if kind == "date":
        try:
            return date.fromisoformat(str(value)[:10])
        except ValueError:
            raise SaveError(
                "INVALID_TYPE_ON_FIELD_IN_RECORD",
                f"{label}: value not of required type: {value}",
                [spec.name],
            ) from None
    if kind == "datetime":
        parsed = parse_datetime(str(value))
        if parsed is None:
            raise SaveError(
                "INVALID_TYPE_ON_FIELD_IN_RECORD",
                f"{label}: value not of required type: {value}",
                [spec.name],
            )
        return parsed.replace(microsecond=parsed.microsecond // 1000 * 1000)
    if isinstance(value, (dict, list)):
        raise SaveError(
            "JSON_PARSER_ERROR",
            "Cannot deserialize instance of string from START_OBJECT value { or request may be missing a "
            "required field",
            [spec.name],
        )
    text = str(value) if not isinstance(value, bool) else ("true" if value else "false")
    if spec.length and len(text) > spec.length:
        raise SaveError(
            "STRING_TOO_LONG",
            f"{label}: data value too large: {text[:40]} (max length={spec.length})",
            [spec.name],
        )
    if kind == "email" and not EMAIL.fullmatch(text):
        raise SaveError("INVALID_EMAIL_ADDRESS", f"{label}: invalid email address: {text}", [spec.name])
    return text
