"""People API v1 `people.connections.list` over each account's contacts.

Source: developers.google.com/people/api/rest/v1/people.connections/list [D]: `resourceName` must
be ``people/me``; `personFields` is required; `pageSize` 1..1000, default 100; `requestSyncToken`
returns `nextSyncToken` on the last page; a `syncToken` returns what changed since, deleted
contacts as a person with ``metadata.deleted = true``; with `pageToken` or `syncToken` every other
parameter must match the first call; sync tokens expire 7 days after the full sync and an expired
one gets an error carrying a google.rpc.ErrorInfo with reason EXPIRED_SYNC_TOKEN. Its HTTP status
is not documented: clients report 400 FAILED_PRECONDITION [R] (410 can be chosen with
`expired_status`). Field shapes from the Person resource reference [D]; values are made up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from local.google.errors import ApiError
from local.google.ids import Ids

PERSON_FIELDS = frozenset(
    {
        "addresses", "ageRanges", "biographies", "birthdays", "calendarUrls", "clientData", "coverPhotos",
        "emailAddresses", "events", "externalIds", "genders", "imClients", "interests", "locales",
        "locations", "memberships", "metadata", "miscKeywords", "names", "nicknames", "occupations",
        "organizations", "phoneNumbers", "photos", "relations", "sipAddresses", "skills", "urls",
        "userDefined",
    }
)  # fmt: skip
SYNC_TOKEN_LIFETIME = timedelta(days=7)
MAX_PAGE = 1000
DEFAULT_PAGE = 100


def people_error(code: int, message: str, status: str, reason: str | None = None) -> ApiError:
    details = None
    if reason:
        details = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "people.googleapis.com",
            }
        ]
    return ApiError(
        code, message, reason or "badRequest", status=status, details=details, legacy_errors=False
    )


@dataclass
class Contact:
    resource_name: str
    source_id: str
    etag: str
    changed: int  # change sequence number
    updated: datetime
    names: list[dict[str, Any]] = field(default_factory=list)
    email_addresses: list[dict[str, Any]] = field(default_factory=list)
    organizations: list[dict[str, Any]] = field(default_factory=list)
    phone_numbers: list[dict[str, Any]] = field(default_factory=list)
    deleted: bool = False

    def render(self, fields: set[str]) -> dict[str, Any]:
        source = {"type": "CONTACT", "id": self.source_id}
        out: dict[str, Any] = {"resourceName": self.resource_name, "etag": self.etag}
        if self.deleted:
            out["metadata"] = {"sources": [source], "deleted": True}
            return out
        if "metadata" in fields:
            out["metadata"] = {
                "sources": [{**source, "updateTime": _rfc3339(self.updated)}],
                "objectType": "PERSON",
            }
        for name, values in (
            ("names", self.names),
            ("emailAddresses", self.email_addresses),
            ("organizations", self.organizations),
            ("phoneNumbers", self.phone_numbers),
        ):
            if name in fields and values:
                out[name] = [
                    {"metadata": {"primary": i == 0, "source": source}, **value}
                    for i, value in enumerate(values)
                ]
        return out


@dataclass
class _SyncState:
    full_sync_at: datetime
    position: int  # change sequence the token covers
    fingerprint: str


class People:
    def __init__(self, ids: Ids, now: Callable[[], datetime], expired_status: int = 400) -> None:
        self.ids = ids
        self.now = now
        self.expired_status = expired_status
        self.contacts: dict[str, dict[str, Contact]] = {}
        self._sequence = 0
        self._sync_tokens: dict[str, _SyncState] = {}
        self._page_tokens: dict[str, tuple[str, int, _SyncState | None, int]] = {}

    # ------------------------------------------------------------------ changes (control surface)

    def upsert(
        self,
        owner: str,
        name: str | None = None,
        emails: list[str] | None = None,
        organization: str | None = None,
        title: str | None = None,
        phones: list[str] | None = None,
        resource_name: str | None = None,
    ) -> Contact:
        book = self.contacts.setdefault(owner.lower(), {})
        self._sequence += 1
        resource = resource_name or f"people/c{self.ids.digits(19)}"
        contact = book.get(resource) or Contact(
            resource_name=resource, source_id=self.ids.hex(16), etag="", changed=0, updated=self.now()
        )
        contact.etag = "%" + self.ids.token(28)
        contact.changed = self._sequence
        contact.updated = self.now()
        if name is not None:
            given, _, family = name.partition(" ")
            contact.names = [
                {"displayName": name, "givenName": given, "familyName": family, "unstructuredName": name}
                | ({"displayNameLastFirst": f"{family}, {given}"} if family else {})
            ]
        if emails is not None:
            contact.email_addresses = [{"value": e, "type": "work", "formattedType": "Work"} for e in emails]
        if organization is not None or title is not None:
            contact.organizations = [{k: v for k, v in (("name", organization), ("title", title)) if v}]
        if phones is not None:
            contact.phone_numbers = [
                {"value": p, "canonicalForm": p.replace(" ", ""), "type": "work"} for p in phones
            ]
        book[resource] = contact
        return contact

    def delete(self, owner: str, resource_name: str) -> None:
        contact = self.contacts[owner.lower()][resource_name]
        self._sequence += 1
        contact.deleted, contact.changed, contact.updated = True, self._sequence, self.now()

    def expire_sync_tokens(self) -> None:
        """Make every sync token handed out so far stale (as seven days passing would)."""
        for state in self._sync_tokens.values():
            state.full_sync_at -= SYNC_TOKEN_LIFETIME

    # ------------------------------------------------------------------ connections.list

    def list_connections(self, owner: str, query: dict[str, list[str]]) -> dict[str, Any]:
        def one(name: str) -> str | None:
            values = query.get(name)
            return values[-1] if values else None

        raw_fields = one("personFields") or one("requestMask.includeField")
        if not raw_fields:
            raise people_error(
                400,
                "personFields mask is required. Please specify one or more valid paths. Valid paths are "
                "documented at https://developers.google.com/people/api/rest/v1/people.connections/list.",
                "INVALID_ARGUMENT",
            )
        fields = {f.strip().removeprefix("person.") for f in raw_fields.split(",") if f.strip()}
        unknown = sorted(fields - PERSON_FIELDS)
        if unknown:
            raise people_error(400, f'Invalid personFields mask path: "{unknown[0]}".', "INVALID_ARGUMENT")
        size_text = one("pageSize") or "0"
        if not size_text.lstrip("-").isdigit() or not 0 <= int(size_text) <= MAX_PAGE:
            raise people_error(400, "Page size must be between 1 and 1000.", "INVALID_ARGUMENT")
        size = int(size_text) or DEFAULT_PAGE
        request_sync = one("requestSyncToken") == "true"
        fingerprint = repr((sorted(fields), request_sync, one("sortOrder"), size))
        sync_token, page_token = one("syncToken"), one("pageToken")
        state: _SyncState | None = None
        offset = 0
        if page_token:
            stored = self._page_tokens.get(page_token)
            if stored is None or stored[0] != fingerprint:
                raise people_error(400, "Request must match the first call.", "INVALID_ARGUMENT")
            _, offset, state, horizon = stored
        else:
            horizon = self._sequence
            if sync_token:
                state = self._sync_tokens.get(sync_token)
                if state is None or state.fingerprint != fingerprint:
                    raise people_error(400, "Sync token is invalid.", "INVALID_ARGUMENT")
        if state is not None and self.now() - state.full_sync_at >= SYNC_TOKEN_LIFETIME:
            raise people_error(
                self.expired_status,
                "Sync token is expired. Clear local cache and retry call without the sync token.",
                "FAILED_PRECONDITION" if self.expired_status == 400 else "GONE",
                reason="EXPIRED_SYNC_TOKEN",
            )
        book = self.contacts.get(owner.lower(), {})
        if state is None:
            chosen = [c for c in book.values() if not c.deleted and c.changed <= horizon]
        else:
            chosen = [c for c in book.values() if state.position < c.changed <= horizon]
        chosen.sort(key=lambda c: (c.changed, c.resource_name))
        if one("sortOrder") == "LAST_MODIFIED_DESCENDING":
            chosen.reverse()
        page = chosen[offset : offset + size]
        out: dict[str, Any] = {}
        if page:
            out["connections"] = [c.render(fields) for c in page]
        if offset + size < len(chosen):
            token = self.ids.token(32)
            self._page_tokens[token] = (fingerprint, offset + size, state, horizon)
            out["nextPageToken"] = token
        elif request_sync or state is not None:
            full_sync_at = state.full_sync_at if state is not None else self.now()
            token = self.ids.token(40)
            self._sync_tokens[token] = _SyncState(full_sync_at, horizon, fingerprint)
            out["nextSyncToken"] = token
        live = sum(1 for c in book.values() if not c.deleted)
        out["totalPeople"] = live
        out["totalItems"] = live
        return out


def _rfc3339(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"
