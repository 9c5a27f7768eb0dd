"""Outlook personal contacts (the default contact folder) for contact import.

Shape of the v1.0 `contact` resource [D: graph/api/resources/contact]: id, displayName, givenName,
surname, emailAddresses [{name, address}], companyName, jobTitle, businessPhones, mobilePhone,
createdDateTime, lastModifiedDateTime, changeKey, parentFolderId, categories. `GET /me/contacts`
pages with `$top` (default 10) and `@odata.nextLink`; `/me/contacts/delta` tracks changes like
message delta [D: api/contact-delta].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from local.microsoft.delta import Books, BookSource
from local.microsoft.errors import item_not_found
from local.microsoft.ids import Ids
from local.microsoft.render import iso

PROPERTIES = (
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "parentFolderId",
    "displayName",
    "givenName",
    "surname",
    "emailAddresses",
    "companyName",
    "jobTitle",
    "businessPhones",
    "mobilePhone",
)
ALL_PROPERTIES = frozenset(p.lower() for p in (*PROPERTIES, "id"))


@dataclass
class Contact:
    id: str
    folder_id: str
    fields: dict[str, Any]
    created: datetime
    modified: datetime
    change_key: str
    seq: int
    entered_seq: int


@dataclass
class ContactBook:
    folder_id: str
    contacts: dict[str, Contact] = field(default_factory=dict)
    removals: list[tuple[int, str]] = field(default_factory=list)


class ContactSource(BookSource[ContactBook]):
    def current(self) -> dict[str, tuple[int, int]]:
        return {c.id: (c.seq, c.entered_seq) for c in self.book.contacts.values()}


class Contacts(Books[ContactBook]):
    def __init__(
        self, ids: Ids, now: Callable[[], datetime], seq: Callable[[], int], next_seq: Callable[[], int]
    ) -> None:
        super().__init__(ids, now, seq, next_seq)
        self.listeners: list[Callable[[str, str, Contact], None]] = []

    def new_book(self) -> ContactBook:
        return ContactBook(self.ids.folder_id())

    def upsert(
        self,
        address: str,
        name: str | None = None,
        emails: list[str] | None = None,
        company: str | None = None,
        title: str | None = None,
        phones: list[str] | None = None,
        contact_id: str | None = None,
    ) -> Contact:
        book = self.book(address)
        now = self.now()
        given, _, surname = (name or "").partition(" ")
        fields = {
            "displayName": name or (emails or [""])[0],
            "givenName": given or None,
            "surname": surname or None,
            "emailAddresses": [{"name": name or e, "address": e} for e in emails or []],
            "companyName": company,
            "jobTitle": title,
            "businessPhones": list(phones or []),
            "mobilePhone": None,
            "categories": [],
        }
        seq = self.next_seq()
        if contact_id is not None:
            contact = book.contacts.get(contact_id)
            if contact is None:
                raise item_not_found()
            contact.fields = fields
            contact.modified, contact.change_key, contact.seq = now, self.ids.change_key(), seq
            kind = "updated"
        else:
            contact = Contact(
                self.ids.contact_id(), book.folder_id, fields, now, now, self.ids.change_key(), seq, seq
            )
            book.contacts[contact.id] = contact
            kind = "created"
        for listener in self.listeners:
            listener(address, kind, contact)
        return contact

    def delete(self, address: str, contact_id: str) -> None:
        book = self.book(address)
        contact = book.contacts.pop(contact_id, None)
        if contact is None:
            raise item_not_found()
        self.record_removal(book, contact_id)
        for listener in self.listeners:
            listener(address, "deleted", contact)

    def find(self, address: str, contact_id: str) -> Contact:
        contact = self.book(address).contacts.get(contact_id)
        if contact is None:
            raise item_not_found()
        return contact

    def render(self, contact: Contact, select: list[str] | None, delta: bool = False) -> dict[str, Any]:
        values = {
            **contact.fields,
            "createdDateTime": iso(contact.created),
            "lastModifiedDateTime": iso(contact.modified),
            "changeKey": contact.change_key,
            "parentFolderId": contact.folder_id,
        }
        out: dict[str, Any] = {}
        if delta:
            out["@odata.type"] = "#microsoft.graph.contact"
        out["@odata.etag"] = f'W/"{contact.change_key}"'
        out["id"] = contact.id
        by_lower = {k.lower(): k for k in values}
        for name in select if select is not None else PROPERTIES:
            key = by_lower.get(name.lower())
            if key is not None:
                out[key] = values[key]
        return out
