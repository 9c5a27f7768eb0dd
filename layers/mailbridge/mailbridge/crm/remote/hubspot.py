"""HubSpot as a `CrmProvider`: CRM v3 contacts, batch, search, properties, lists v3 and email
engagements, over the shared outbound path (`mailbridge.providers.http`: SSRF guard, per-phase
timeouts and one deadline, retries of 5xx and failed connects with backoff).

Sources (HubSpot developer docs, "CRM API | Contacts", "Batch", "Search the CRM", "Properties",
"Associations v4", "Lists v3", "Email engagements", "API usage guidelines and limits", FAQ "How
should timestamps be formatted"); the local double `local/hubspot` follows the same pages.

Tokens: the adapter holds an access token and a `refresh()` callback (the integrations service
owns the refresh token and its KMS sealing). A 401 calls `refresh()` once and retries; a second
401, or a `refresh()` that raises `ProviderAuthError` (HubSpot answers `BAD_REFRESH_TOKEN` once
the app is uninstalled), raises `ProviderAuthError` code `reauth_required`. A 403
`MISSING_SCOPES` is `reauth_required` too (the user must grant the scope again).

Rate limits: HubSpot sends no `Retry-After` on its 429s; the body's `policyName` and the
`X-HubSpot-RateLimit-*` headers say which limit was hit. `SECONDLY` (search, 5 a second) waits
1 s, `TEN_SECONDLY_ROLLING` waits `X-HubSpot-RateLimit-Interval-Milliseconds` (10 s), a
`Retry-After` when present wins; after `rate_limit_retries` waits (or at once for `DAILY`,
which resets at midnight) `ProviderRateLimited` is raised with that `retry_after` in seconds.

Values: HubSpot sends every property as a string. Read values are converted by the property's
`type` (from the properties API, read once per adapter): `number` -> int or float, `bool` ->
bool, `date` -> `YYYY-MM-DD`, `datetime` -> ISO 8601 UTC with milliseconds and `Z`, empty ->
None. Written values go back as strings: dates as midnight-UTC epoch milliseconds and
date-times as epoch milliseconds (the timestamp FAQ: "Date properties ... must be set to
midnight UTC"), booleans as `true`/`false`, None as `""` (clears the property). A value that
cannot be converted is a failed record (`INVALID_NUMBER`, `INVALID_BOOLEAN`, `INVALID_DATE`)
without a request.

Changes since a watermark: see `changed_contacts`. Email activity: see `log_email`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote, urlencode

from pydantic import Field, ValidationError

from mailbridge import opsmetrics
from mailbridge.crm.remote.protocol import (
    ActivityResult,
    CampaignWrite,
    ContactPage,
    ContactWrite,
    CrmName,
    CrmRecordRejected,
    EmailActivity,
    Feature,
    FieldInfo,
    FieldType,
    MembershipResult,
    RecordResult,
    RemoteContact,
    RemoteRecord,
    RemoteValue,
)
from mailbridge.errors import Invalid, ProviderAuthError, ProviderError, ProviderRateLimited
from mailbridge.models.base import Model
from mailbridge.providers.http import HttpPolicy, HttpResponse, parse_retry_after, request

DEFAULT_API_URL = "https://api.hubapi.com"
CONTACTS = "/crm/v3/objects/contacts"
EMAILS = "/crm/v3/objects/emails"
CONTACT_TYPE_ID = "0-1"
EMAIL_TO_CONTACT = 198  # HUBSPOT_DEFINED association type id [D: Associations v4 type ids]
MAX_BATCH = 100  # inputs per batch call [D: Batch]
MAX_SEARCH_LIMIT = 200  # results per search page [D: Search the CRM]
LIVE_TIMESTAMP = "lastmodifieddate"
OBJECT_ID = "hs_object_id"
_NAME = re.compile(r"[A-Za-z0-9_]{1,100}")
_RECORD_ID = re.compile(r"[0-9]{1,20}")
_EXISTING = re.compile(r"Contact already exists\. Existing ID: ([0-9]{1,20})")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DIRECTIONS = {"outgoing": "EMAIL", "incoming": "INCOMING_EMAIL"}


class HubSpotSettings(Model):
    """Deployment settings (every URL a setting whose default is the real endpoint)."""

    api_url: str = Field(default=DEFAULT_API_URL, description="api.hubapi.com, or the local double")
    batch_size: int = Field(default=MAX_BATCH, ge=1, le=MAX_BATCH, description="Inputs per batch call")
    page_size: int = Field(default=100, ge=2, le=MAX_SEARCH_LIMIT, description="Contacts per search page")
    rate_limit_retries: int = Field(default=3, ge=0, le=10, description="429 waits before giving up")
    max_rate_limit_wait: float = Field(default=60.0, ge=0, description="Seconds; longer waits raise at once")
    message_id_property: str = Field(
        default="mailbridge_message_id",
        pattern=r"[a-z][a-z0-9_]{0,99}",
        description="A unique-value email engagement property holding the RFC 5322 Message-ID",
    )


class HubSpotError(ProviderError):
    """HubSpot answered in a way the adapter cannot act on; `details`: status and category."""

    code = "hubspot_error"
    retryable = False


class _BadValue(Exception):
    def __init__(self, code: str, name: str) -> None:
        super().__init__(code)
        self.code = code
        self.name = name


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: Any
    headers: dict[str, str]


class _Cursor(Model):
    """The opaque `next_page` of `changed_contacts` (base64url JSON)."""

    phase: Literal["live", "archived"] = "live"
    live: int = Field(default=0, ge=0, description="Every contact modified at or before (ms) was emitted")
    tie: int | None = Field(default=None, ge=0, description="Draining `tie_at` by id: the last id emitted")
    tie_at: int | None = Field(default=None, ge=0, description="The timestamp (ms) a full page shared")
    since_archived: int = Field(default=0, ge=0)
    archived_after: str | None = Field(default=None, max_length=40)
    archived_seen: int = Field(default=0, ge=0)


class HubSpotProvider:
    """One HubSpot portal through one app install (see the module doc for tokens, limits and values).

    `policy`: the outbound HTTP policy (tests and `make run` pass `local_mode=True` to reach the
    double on loopback); the adapter turns off its 429 retries to read HubSpot's own headers.
    `sleep` and `now` are injectable so tests drive the double's clock.
    """

    name: CrmName = "hubspot"

    def __init__(
        self,
        access_token: str,
        refresh: Callable[[], str],
        settings: HubSpotSettings | None = None,
        *,
        policy: HttpPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._token = access_token
        self._refresh = refresh
        self.settings = settings or HubSpotSettings()
        self._base = self.settings.api_url.rstrip("/")
        self._policy = replace(policy or HttpPolicy(), retry_rate_limited=False)
        self._sleep = sleep
        self._now = now
        self._types: dict[str, FieldType] | None = None
        self._message_id_ready = False
        self._last_watermark: str | None = None
        self.requests = 0
        """Requests sent (retries included): the bench's requests-per-operation figures."""

    # ------------------------------------------------------------------ features and fields

    def features(self) -> frozenset[Feature]:
        """HubSpot: batch endpoints, lists (no campaign object in CRM v3), custom properties,
        email engagements, webhooks v3; no device flow (authorization code only)."""
        return frozenset(
            {Feature.BULK, Feature.LISTS, Feature.CUSTOM_FIELDS, Feature.EMAIL_ACTIVITY, Feature.WEBHOOKS}
        )

    def contact_fields(self) -> list[FieldInfo]:
        """`GET /crm/v3/properties/contacts` as FieldInfo: `type`/`fieldType` mapped (see
        `_field_type`), `hubspotDefined` -> not custom, `modificationMetadata.readOnlyValue` or
        `calculated` -> not updateable, enumeration options that are not hidden."""
        answer = self._expect(self._call("GET", "/crm/v3/properties/contacts"), 200)
        fields: list[FieldInfo] = []
        for raw in _list(answer.body, "results"):
            if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
                continue
            meta = raw.get("modificationMetadata")
            read_only = bool(meta.get("readOnlyValue")) if isinstance(meta, dict) else False
            options = [
                str(o["value"])
                for o in raw.get("options") or []
                if isinstance(o, dict) and "value" in o and not o.get("hidden")
            ]
            fields.append(
                FieldInfo(
                    name=raw["name"],
                    label=str(raw.get("label") or raw["name"]),
                    type=_field_type(raw),
                    custom=not raw.get("hubspotDefined", False),
                    updateable=not read_only and not raw.get("calculated", False),
                    options=options,
                )
            )
        self._types = {f.name: f.type for f in fields}
        return fields

    def _field_types(self) -> dict[str, FieldType]:
        if self._types is None:
            self.contact_fields()
        assert self._types is not None
        return self._types

    # ------------------------------------------------------------------ one contact

    def get_contact(self, remote_id: str, fields: Iterable[str]) -> RemoteContact | None:
        """`GET /crm/v3/objects/contacts/{id}`; None when absent or archived (404)."""
        names = _names(fields)
        if not _RECORD_ID.fullmatch(remote_id):
            return None
        answer = self._call("GET", f"{CONTACTS}/{remote_id}", query={"properties": ",".join(names)})
        if answer.status == 404:
            return None
        return self._contact(self._expect(answer, 200).body, names)

    def find_contact_by_email(self, email: str, fields: Iterable[str]) -> RemoteContact | None:
        """`GET /crm/v3/objects/contacts/{email}?idProperty=email`: HubSpot keeps one contact per
        primary email (lower-cased), so the match is exact and case-insensitive, and unlike
        search it reads the record itself, not an index that lags behind writes."""
        names = _names(fields)
        if not email.strip():
            return None
        answer = self._call(
            "GET",
            f"{CONTACTS}/{quote(email.strip(), safe='')}",
            query={"idProperty": "email", "properties": ",".join(names)},
        )
        if answer.status == 404:
            return None
        return self._contact(self._expect(answer, 200).body, names)

    def save_contact(self, contact: ContactWrite) -> RecordResult:
        """Create (`POST /crm/v3/objects/contacts`) or update (`PATCH .../{id}`). Refusals are
        failed results: 400 `VALIDATION_ERROR` with HubSpot's error code (`INVALID_EMAIL`, ...)
        and the property names; 409 `CONFLICT` for a taken email, with the existing contact's id
        as `remote_id`; 404 `OBJECT_NOT_FOUND` for an update of a missing contact."""
        try:
            props = self._wire(contact.fields)
        except _BadValue as bad:
            return _failed(contact.key, bad.code, f"{bad.code}: {bad.name}")
        if contact.remote_id is None:
            answer = self._call("POST", CONTACTS, body={"properties": props})
            if answer.status in (200, 201):
                return RecordResult(
                    key=contact.key, state="succeeded", remote_id=_id(answer.body), created=True
                )
        else:
            if not _RECORD_ID.fullmatch(contact.remote_id):
                return _failed(contact.key, "OBJECT_NOT_FOUND", "no contact with this id")
            answer = self._call("PATCH", f"{CONTACTS}/{contact.remote_id}", body={"properties": props})
            if answer.status == 200:
                return RecordResult(key=contact.key, state="succeeded", remote_id=contact.remote_id)
            if answer.status == 404:
                return _failed(contact.key, "OBJECT_NOT_FOUND", "no contact with this id")
        if answer.status in (400, 409):
            return _rejected(contact.key, answer.body)
        raise _unexpected(answer)

    def delete_contact(self, remote_id: str) -> bool:
        """Archive (`DELETE /crm/v3/objects/contacts/{id}`). HubSpot answers 204 whether or not
        the contact existed, so a read first tells "already gone" (404) apart: False then."""
        if not _RECORD_ID.fullmatch(remote_id):
            return False
        seen = self._call("GET", f"{CONTACTS}/{remote_id}", query={"properties": OBJECT_ID})
        if seen.status == 404:
            return False
        self._expect(seen, 200)
        self._expect(self._call("DELETE", f"{CONTACTS}/{remote_id}"), 204, 200, 404)
        return True

    # ------------------------------------------------------------------ changes

    def changed_contacts(
        self, since: str | None, fields: Iterable[str], page: str | None = None
    ) -> ContactPage:
        """Contacts modified after `since`, oldest first, then the contacts archived after it.

        Live contacts: `POST /crm/v3/objects/contacts/search` with `lastmodifieddate GT t`,
        sorted ascending, `page_size` a page. Search stops at 10,000 results per query, so the
        adapter never pages with `after`: every page is a new query from a keyset cursor.
        A full page whose last timestamp is T is emitted only up to the contacts older than T
        (all of those are on this page, since the sort is ascending); the cursor moves to the
        last emitted timestamp and the next query (`GT` it) starts with the T group, whole.
        When a whole page shares one timestamp T (a batch import), the T group is drained by
        id instead: `lastmodifieddate EQ T AND hs_object_id GT last id`, sorted by
        `hs_object_id`, until a short page; then the cursor is T. So no contact is lost or
        repeated at a restart, ties included, and edits made during the pull move a contact
        later instead of shifting offsets.

        Deletions: `GET /crm/v3/objects/contacts?archived=true` pages (HubSpot has no filter on
        `archivedAt`), kept when `archivedAt` is after the watermark's archived part.

        Watermark: `"<live ms>:<archived ms>"`, and while a T group is being drained by id
        `"<live ms>:<archived ms>:<T ms>:<last id>"`, so a run stopped inside a group resumes after
        the last contact it emitted (an ISO 8601 date-time or epoch ms is also taken as `since`,
        for both parts). Invalid `since` or `page`: `Invalid` (`invalid_watermark`,
        `invalid_page_token`).
        """
        names = _names(fields)
        if page is None:
            live, archived, tie_at, tie = _parse_watermark(since)
            cursor = _Cursor(live=live, since_archived=archived, tie_at=tie_at, tie=tie)
        else:
            cursor = _decode_cursor(page)
        if cursor.phase == "live":
            contacts, cursor = self._live_page(cursor, names)
        else:
            contacts, cursor = self._archived_page(cursor, names)
        done = cursor.phase == "archived" and cursor.archived_after == "" and cursor.tie is None
        archived_mark = max(cursor.since_archived, cursor.archived_seen) if done else cursor.since_archived
        watermark = f"{cursor.live}:{archived_mark}"
        if cursor.tie is not None and cursor.tie_at is not None:
            watermark += f":{cursor.tie_at}:{cursor.tie}"
        return ContactPage(
            contacts=contacts,
            next_page=None if done else _encode_cursor(cursor),
            watermark=watermark,
        )

    def _live_page(self, cursor: _Cursor, names: list[str]) -> tuple[list[RemoteContact], _Cursor]:
        size = self.settings.page_size
        wanted = sorted({*names, LIVE_TIMESTAMP, OBJECT_ID})
        if cursor.tie is not None and cursor.tie_at is not None:
            rows = self._search(
                [
                    {"propertyName": LIVE_TIMESTAMP, "operator": "EQ", "value": str(cursor.tie_at)},
                    {"propertyName": OBJECT_ID, "operator": "GT", "value": str(cursor.tie)},
                ],
                OBJECT_ID,
                wanted,
                size,
            )
            contacts = [self._contact(r, names) for r in rows]
            if len(rows) == size:
                return contacts, cursor.model_copy(update={"tie": int(contacts[-1].remote_id)})
            return contacts, cursor.model_copy(update={"tie": None, "tie_at": None, "live": cursor.tie_at})
        filters = (
            [{"propertyName": LIVE_TIMESTAMP, "operator": "GT", "value": str(cursor.live)}]
            if cursor.live
            else []
        )
        rows = self._search(filters, LIVE_TIMESTAMP, wanted, size)
        contacts = [self._contact(r, names) for r in rows]
        stamps = [_ms(c.modified_at) for c in contacts]
        if len(rows) < size:
            live = max([cursor.live, *stamps])
            return contacts, cursor.model_copy(update={"live": live, "phase": "archived"})
        last = stamps[-1]
        head = [c for c, s in zip(contacts, stamps, strict=True) if s < last]
        if head:
            return head, cursor.model_copy(update={"live": _ms(head[-1].modified_at)})
        # The whole page shares one timestamp: drain that group by id.
        return self._live_page(cursor.model_copy(update={"tie": 0, "tie_at": last}), names)

    def _archived_page(self, cursor: _Cursor, names: list[str]) -> tuple[list[RemoteContact], _Cursor]:
        query: dict[str, str] = {
            "archived": "true",
            "limit": str(min(self.settings.page_size, 100)),
            "properties": ",".join(names),
        }
        if cursor.archived_after:
            query["after"] = cursor.archived_after
        answer = self._expect(self._call("GET", CONTACTS, query=query), 200)
        contacts: list[RemoteContact] = []
        seen = cursor.archived_seen
        for raw in _list(answer.body, "results"):
            contact = self._contact(raw, names, deleted=True)
            stamp = _ms(contact.modified_at)
            if stamp > cursor.since_archived:
                contacts.append(contact)
                seen = max(seen, stamp)
        after = _next_after(answer.body)
        return contacts, cursor.model_copy(update={"archived_after": after or "", "archived_seen": seen})

    def _search(
        self, filters: list[dict[str, str]], sort: str, properties: list[str], limit: int
    ) -> list[Any]:
        body: dict[str, Any] = {
            "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
            "properties": properties,
            "limit": limit,
        }
        if filters:
            body["filterGroups"] = [{"filters": filters}]
        answer = self._expect(self._call("POST", f"{CONTACTS}/search", body=body), 200)
        return _list(answer.body, "results")

    def bulk_changed_contacts(self, since: str | None, fields: Iterable[str]) -> Iterator[RemoteContact]:
        """`changed_contacts` page after page, streamed; `last_watermark` moves with each page."""
        names = _names(fields)
        page: str | None = None
        while True:
            result = self.changed_contacts(since, names, page)
            yield from result.contacts
            self._last_watermark = result.watermark
            if result.next_page is None:
                return
            page = result.next_page

    @property
    def last_watermark(self) -> str | None:
        return self._last_watermark

    # ------------------------------------------------------------------ bulk writes

    def bulk_save_contacts(self, contacts: Iterable[ContactWrite]) -> Iterator[RecordResult]:
        """`batch/create` and `batch/update` of `batch_size`, streamed (one chunk in memory),
        one result per input in input order. Results are matched back by `objectWriteTraceId`
        (sent as the input's position; HubSpot echoes it), else by email for creates and by id
        for updates, since batch answers promise no order. HubSpot refuses a whole batch for one
        bad input (400, or 409 for a taken email): the batch is then split in halves until the
        bad inputs stand alone, each reported failed with its code; a 207 reports the missing
        ids of an update as `OBJECT_NOT_FOUND`."""
        chunk: list[ContactWrite] = []
        for contact in contacts:
            chunk.append(contact)
            if len(chunk) == self.settings.batch_size:
                yield from self._save_chunk(chunk)
                chunk = []
        if chunk:
            yield from self._save_chunk(chunk)

    def _save_chunk(self, chunk: list[ContactWrite]) -> list[RecordResult]:
        results: dict[int, RecordResult] = {}
        creates: list[tuple[int, ContactWrite, dict[str, str]]] = []
        updates: list[tuple[int, ContactWrite, dict[str, str]]] = []
        for index, contact in enumerate(chunk):
            try:
                props = self._wire(contact.fields)
            except _BadValue as bad:
                results[index] = _failed(contact.key, bad.code, f"{bad.code}: {bad.name}")
                continue
            if contact.remote_id is None:
                creates.append((index, contact, props))
            elif not _RECORD_ID.fullmatch(contact.remote_id):
                results[index] = _failed(contact.key, "OBJECT_NOT_FOUND", "no contact with this id")
            else:
                updates.append((index, contact, props))
        results.update(self._batch_write("create", creates))
        results.update(self._batch_write("update", updates))
        return [results[i] for i in range(len(chunk))]

    def _batch_write(
        self, verb: Literal["create", "update"], items: list[tuple[int, ContactWrite, dict[str, str]]]
    ) -> dict[int, RecordResult]:
        if not items:
            return {}
        inputs: list[dict[str, Any]] = []
        for index, contact, props in items:
            item: dict[str, Any] = {"properties": props, "objectWriteTraceId": str(index)}
            if verb == "update":
                item["id"] = contact.remote_id
            inputs.append(item)
        answer = self._call("POST", f"{CONTACTS}/batch/{verb}", body={"inputs": inputs})
        if answer.status in (400, 409):
            if len(items) == 1:
                index, contact, _props = items[0]
                return {index: _rejected(contact.key, answer.body)}
            half = len(items) // 2
            return self._batch_write(verb, items[:half]) | self._batch_write(verb, items[half:])
        self._expect(answer, 200, 201, 207)
        return _match_batch(verb, items, answer.body)

    # ------------------------------------------------------------------ campaigns (lists)

    def save_campaign(self, campaign: CampaignWrite) -> RecordResult:
        """A static contact list (lists v3 `POST /crm/v3/lists` with `objectTypeId` 0-1 and
        `processingType: MANUAL`); with a `remote_id`, the list is read (`GET /crm/v3/lists/{id}`;
        404 -> failed `OBJECT_NOT_FOUND`) and renamed when its name differs
        (`PUT /crm/v3/lists/{id}/update-list-name?listName=`). A refused list (400, a name
        already taken) is a failed result. Our campaign's status and dates have no place on a
        HubSpot list and are not sent."""
        if campaign.remote_id is not None:
            if not _RECORD_ID.fullmatch(campaign.remote_id):
                return _failed(campaign.key, "OBJECT_NOT_FOUND", "no list with this id")
            path = f"/crm/v3/lists/{campaign.remote_id}"
            answer = self._call("GET", path)
            if answer.status == 404:
                return _failed(campaign.key, "OBJECT_NOT_FOUND", "no list with this id")
            current = self._expect(answer, 200).body
            hub_list = current.get("list") if isinstance(current, dict) else None
            if not isinstance(hub_list, dict) or hub_list.get("name") != campaign.name:
                renamed = self._call("PUT", f"{path}/update-list-name", query={"listName": campaign.name})
                if renamed.status in (400, 409):
                    return _rejected(campaign.key, renamed.body)
                self._expect(renamed, 200)
            return RecordResult(key=campaign.key, state="succeeded", remote_id=campaign.remote_id)
        body = {"name": campaign.name, "objectTypeId": CONTACT_TYPE_ID, "processingType": "MANUAL"}
        answer = self._call("POST", "/crm/v3/lists", body=body)
        if answer.status in (400, 409):
            return _rejected(campaign.key, answer.body)
        made = self._expect(answer, 200, 201).body
        hub_list = made.get("list") if isinstance(made, dict) else None
        list_id = hub_list.get("listId") if isinstance(hub_list, dict) else None
        if not isinstance(list_id, str | int):
            raise HubSpotError("HubSpot answered without a list id", code="hubspot_bad_response")
        return RecordResult(key=campaign.key, state="succeeded", remote_id=str(list_id), created=True)

    def set_campaign_members(
        self, remote_campaign_id: str, add: Iterable[str], remove: Iterable[str]
    ) -> MembershipResult:
        """`PUT /crm/v3/lists/{id}/memberships/add` and `/remove` with record ids, 100 a call.
        Idempotent: a contact already in the list counts as added (HubSpot lists it in neither
        `recordIdsAdded` nor `recordIdsMissing`); `removed` holds only the ids HubSpot reports in
        `recordIdsRemoved` (one not in the list is no error and not reported removed); ids
        HubSpot reports missing from `add` (no such contact) are failed `OBJECT_NOT_FOUND`. An
        unknown list raises `HubSpotError` (`list_not_found`)."""
        if not _RECORD_ID.fullmatch(remote_campaign_id):
            raise HubSpotError("no such HubSpot list", code="list_not_found")
        result = MembershipResult()
        for verb, ids in (("add", list(dict.fromkeys(add))), ("remove", list(dict.fromkeys(remove)))):
            good = [i for i in ids if _RECORD_ID.fullmatch(i)]
            result.failed += [
                _failed(i, "OBJECT_NOT_FOUND", "no contact with this id") for i in ids if i not in good
            ]
            for start in range(0, len(good), MAX_BATCH):
                part = good[start : start + MAX_BATCH]
                answer = self._call(
                    "PUT", f"/crm/v3/lists/{remote_campaign_id}/memberships/{verb}", body=part
                )
                if answer.status == 404:
                    raise HubSpotError("no such HubSpot list", code="list_not_found")
                body = self._expect(answer, 200).body
                missing = {str(i) for i in _list(body, "recordIdsMissing")}
                if verb == "add":
                    result.added += [i for i in part if i not in missing]
                    result.failed += [
                        _failed(i, "OBJECT_NOT_FOUND", "no contact with this id")
                        for i in part
                        if i in missing
                    ]
                else:
                    gone = {str(i) for i in _list(body, "recordIdsRemoved")}
                    result.removed += [i for i in part if i in gone]
        return result

    # ------------------------------------------------------------------ email activity

    def log_email(self, activity: EmailActivity) -> ActivityResult:
        """An email engagement (`POST /crm/v3/objects/emails`: `hs_timestamp` in epoch ms,
        `hs_email_direction` `EMAIL` (outgoing) or `INCOMING_EMAIL`, `hs_email_status` `SENT`
        for outgoing, `hs_email_subject`, `hs_email_text`, `hs_email_headers` as the JSON
        string of from/to/cc/bcc), associated to each contact with type id 198
        (email-to-contact).

        Deduplicated on the Message-ID through a unique-value email property
        (`message_id_property`, created on first use through the properties API with
        `hasUniqueValue: true`): the adapter reads `GET /crm/v3/objects/emails/{message-id}?
        idProperty=...` first (a read of the record, not the search index, which lags behind
        writes) and creates only on a 404; two writers racing both reach the create, HubSpot
        answers the second with 409 and the adapter returns the first one's id. So a logged
        email costs two requests. A refused engagement (a contact id that does not exist)
        raises `CrmRecordRejected`."""
        message_id = activity.message_id.strip()
        if not message_id:
            raise Invalid("the Message-ID is empty", code="invalid_message_id")
        contacts = list(dict.fromkeys(activity.remote_contact_ids))
        if not all(_RECORD_ID.fullmatch(c) for c in contacts):
            raise CrmRecordRejected(
                "a contact id is not a HubSpot record id",
                details={"remote_code": "OBJECT_NOT_FOUND", "fields": []},
            )
        self._ensure_message_id_property()
        existing = self._find_email(message_id)
        if existing is not None:
            return ActivityResult(remote_id=existing, created=False)
        headers = {
            "from": {"email": activity.from_address},
            "to": [{"email": a} for a in activity.to_addresses],
            "cc": [],
            "bcc": [],
        }
        props = {
            "hs_timestamp": str(_ms(activity.sent_at)),
            "hs_email_direction": _DIRECTIONS[activity.direction],
            "hs_email_subject": activity.subject,
            "hs_email_text": activity.body_preview,
            "hs_email_headers": json.dumps(headers, separators=(",", ":")),
            self.settings.message_id_property: message_id,
        }
        if activity.direction == "outgoing":
            props["hs_email_status"] = "SENT"
        associations = [
            {
                "to": {"id": c},
                "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": EMAIL_TO_CONTACT}],
            }
            for c in contacts
        ]
        answer = self._call("POST", EMAILS, body={"properties": props, "associations": associations})
        if answer.status in (200, 201):
            return ActivityResult(remote_id=_id(answer.body), created=True)
        if answer.status == 409:
            raced = self._find_email(message_id)
            if raced is not None:
                return ActivityResult(remote_id=raced, created=False)
        if answer.status in (400, 409):
            code, fields = _problems(answer.body)
            raise CrmRecordRejected(
                "HubSpot refused the email engagement", details={"remote_code": code, "fields": fields}
            )
        raise _unexpected(answer)

    def _find_email(self, message_id: str) -> str | None:
        answer = self._call(
            "GET",
            f"{EMAILS}/{quote(message_id, safe='')}",
            query={"idProperty": self.settings.message_id_property, "properties": OBJECT_ID},
        )
        if answer.status == 404:
            return None
        return _id(self._expect(answer, 200).body)

    def _ensure_message_id_property(self) -> None:
        if self._message_id_ready:
            return
        name = self.settings.message_id_property
        answer = self._call("GET", f"/crm/v3/properties/emails/{name}")
        if answer.status == 404:
            made = self._call(
                "POST",
                "/crm/v3/properties/emails",
                body={
                    "name": name,
                    "label": "Message-ID (mailbridge)",
                    "type": "string",
                    "fieldType": "text",
                    "groupName": "emailinformation",
                    "hasUniqueValue": True,
                    "description": "The RFC 5322 Message-ID; mailbridge logs each email once.",
                },
            )
            self._expect(made, 200, 201, 409)
        else:
            self._expect(answer, 200)
        self._message_id_ready = True

    # ------------------------------------------------------------------ values

    def _contact(self, raw: Any, names: list[str], deleted: bool = False) -> RemoteContact:
        if not isinstance(raw, dict):
            raise HubSpotError("HubSpot answered an unexpected shape", code="hubspot_bad_response")
        props = raw.get("properties") if isinstance(raw.get("properties"), dict) else {}
        assert isinstance(props, dict)
        types = self._field_types()
        fields: RemoteRecord = {n: _from_wire(props.get(n), types.get(n, "string")) for n in names}
        when_text = raw.get("archivedAt") if deleted else props.get(LIVE_TIMESTAMP) or raw.get("updatedAt")
        when = _instant(str(when_text or raw.get("updatedAt") or ""))
        if when is None:
            raise HubSpotError("HubSpot answered a record without a date", code="hubspot_bad_response")
        return RemoteContact(remote_id=_id(raw), fields=fields, modified_at=when, deleted=deleted)

    def _wire(self, fields: RemoteRecord) -> dict[str, str]:
        types = self._field_types()
        out: dict[str, str] = {}
        for name, value in fields.items():
            if not _NAME.fullmatch(name):
                raise _BadValue("PROPERTY_DOESNT_EXIST", "?")
            out[name] = _to_wire(name, value, types.get(name, "string"))
        return out

    # ------------------------------------------------------------------ HTTP

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: Any = None,
    ) -> _Answer:
        url = self._base + path + (f"?{urlencode(query)}" if query else "")
        content = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        refreshed = False
        waits = 0
        while True:
            headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
            if content is not None:
                headers["Content-Type"] = "application/json"
            self.requests += 1
            response = request(
                method, url, policy=self._policy, headers=headers, content=content, sleep=self._sleep
            )
            parsed = _json(response)
            if response.status == 401:
                if refreshed:
                    raise ProviderAuthError("HubSpot refused the refreshed token", code="reauth_required")
                try:
                    self._token = self._refresh()
                except ProviderAuthError:
                    raise ProviderAuthError(
                        "the HubSpot grant is gone; reconnect the integration", code="reauth_required"
                    ) from None
                refreshed = True
                continue
            if response.status == 403:
                raise ProviderAuthError(
                    "the HubSpot app lacks a scope this call needs; reconnect the integration",
                    code="reauth_required",
                    details={"category": _category(parsed)},
                )
            if response.status == 429:
                opsmetrics.provider_throttled("hubspot", "http_429")
                wait, retry = self._rate_limit_wait(response, parsed)
                if (
                    not retry
                    or waits >= self.settings.rate_limit_retries
                    or wait > self.settings.max_rate_limit_wait
                ):
                    raise ProviderRateLimited("HubSpot is rate limiting this app", retry_after=wait)
                waits += 1
                self._sleep(wait)
                continue
            return _Answer(response.status, parsed, response.headers)

    def _rate_limit_wait(self, response: HttpResponse, body: Any) -> tuple[float, bool]:
        """(seconds to wait, whether to wait at all) from a 429 (see the module doc)."""
        policy = body.get("policyName") if isinstance(body, dict) else None
        if policy == "DAILY":
            now = self._now().astimezone(UTC)
            midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
            return (midnight - now).total_seconds(), False
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if retry_after is not None:
            return retry_after, True
        if policy == "SECONDLY":
            return 1.0, True
        interval = response.headers.get("x-hubspot-ratelimit-interval-milliseconds", "")
        return (int(interval) / 1000 if interval.isdigit() else 10.0), True

    def _expect(self, answer: _Answer, *statuses: int) -> _Answer:
        if answer.status not in statuses:
            raise _unexpected(answer)
        return answer


# ------------------------------------------------------------------------------ helpers


def _json(response: HttpResponse) -> Any:
    if not response.body.strip():
        return None
    try:
        return json.loads(response.body)
    except (UnicodeDecodeError, ValueError):
        if response.status < 300:
            raise HubSpotError(
                "HubSpot answered something that is not JSON", code="hubspot_bad_response"
            ) from None
        return None


def _category(body: Any) -> str | None:
    value = body.get("category") if isinstance(body, dict) else None
    return value if isinstance(value, str) else None


def _unexpected(answer: _Answer) -> HubSpotError:
    return HubSpotError(
        "HubSpot refused the request", details={"status": answer.status, "category": _category(answer.body)}
    )


def _list(body: Any, key: str) -> list[Any]:
    value = body.get(key) if isinstance(body, dict) else None
    return value if isinstance(value, list) else []


def _next_after(body: Any) -> str | None:
    paging = body.get("paging") if isinstance(body, dict) else None
    following = paging.get("next") if isinstance(paging, dict) else None
    after = following.get("after") if isinstance(following, dict) else None
    return str(after) if isinstance(after, str | int) and str(after) else None


def _id(body: Any) -> str:
    value = body.get("id") if isinstance(body, dict) else None
    if not isinstance(value, str | int) or not _RECORD_ID.fullmatch(str(value)):
        raise HubSpotError("HubSpot answered without a record id", code="hubspot_bad_response")
    return str(value)


def _names(fields: Iterable[str]) -> list[str]:
    names = list(dict.fromkeys(fields))
    for name in names:
        if not _NAME.fullmatch(name):
            raise Invalid(
                "a HubSpot property name is letters, digits and underscores", code="invalid_field_name"
            )
    return names


def _failed(key: str, code: str, message: str | None) -> RecordResult:
    return RecordResult(key=key, state="failed", error_code=code, error_message=message)


def _problems(body: Any) -> tuple[str, list[str]]:
    """(HubSpot's error code, the property names) of a refusal, never its values.

    HubSpot's 400 message is `Property values were not valid: [{"isValid": false, "message",
    "error": "INVALID_EMAIL", "name": "email"}]`; the JSON part is read, the messages (which
    quote the values) are not kept."""
    category = _category(body) or "VALIDATION_ERROR"
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, str) or "[" not in message:
        return category, []
    try:
        problems = json.loads(message[message.index("[") :])
    except ValueError:
        return category, []
    if not isinstance(problems, list):
        return category, []
    codes = [str(p.get("error")) for p in problems if isinstance(p, dict) and p.get("error")]
    names = [str(p.get("name")) for p in problems if isinstance(p, dict) and p.get("name")]
    return (codes[0] if codes else category), names


def _rejected(key: str, body: Any) -> RecordResult:
    category = _category(body)
    message = body.get("message") if isinstance(body, dict) else None
    if category == "CONFLICT":
        found = _EXISTING.fullmatch(message) if isinstance(message, str) else None
        return RecordResult(
            key=key,
            state="failed",
            remote_id=found.group(1) if found else None,
            error_code="CONFLICT",
            error_message="a contact with this email already exists",
        )
    code, names = _problems(body)
    return _failed(key, code, f"{code}: {', '.join(names)}" if names else code)


def _match_batch(
    verb: Literal["create", "update"], items: list[tuple[int, ContactWrite, dict[str, str]]], body: Any
) -> dict[int, RecordResult]:
    """Results of a batch call back onto its inputs: objectWriteTraceId, then email (create) or
    id (update); inputs left without a result are failed with the 207's error category."""
    results = [r for r in _list(body, "results") if isinstance(r, dict)]
    by_trace: dict[str, dict[str, Any]] = {}
    by_key: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        trace = result.get("objectWriteTraceId")
        if isinstance(trace, str):
            by_trace[trace] = result
        values = result.get("properties")
        email = values.get("email") if isinstance(values, dict) else None
        key = str(result.get("id")) if verb == "update" else str(email or "").lower()
        if key:
            by_key.setdefault(key, []).append(result)
    used: set[int] = set()
    out: dict[int, RecordResult] = {}
    unmatched: list[tuple[int, ContactWrite]] = []
    for index, contact, props in items:
        row: dict[str, Any] | None = by_trace.get(str(index))
        if row is None or id(row) in used:
            key = str(contact.remote_id) if verb == "update" else str(props.get("email") or "").lower()
            candidates = [r for r in by_key.get(key, []) if id(r) not in used] if key else []
            row = candidates[0] if candidates else None
        if row is None:
            unmatched.append((index, contact))
            continue
        used.add(id(row))
        out[index] = RecordResult(
            key=contact.key, state="succeeded", remote_id=_id(row), created=verb == "create"
        )
    leftovers = [r for r in results if id(r) not in used]
    errors = [e for e in _list(body, "errors") if isinstance(e, dict)]
    if unmatched and not errors and len(leftovers) == len(unmatched):
        # No trace ids and no emails to go by: an all-succeeded batch, in the order HubSpot kept.
        for (index, contact), row in zip(unmatched, leftovers, strict=True):
            out[index] = RecordResult(
                key=contact.key, state="succeeded", remote_id=_id(row), created=verb == "create"
            )
        return out
    code = str(errors[0].get("category") or "ERROR") if errors else "UNPROCESSED"
    for index, contact in unmatched:
        out[index] = (
            _failed(contact.key, code, "HubSpot did not write this record")
            if errors
            else RecordResult(key=contact.key, state="unprocessed", error_code=code)
        )
    return out


_STRING_FIELDS: dict[str, FieldType] = {"textarea": "textarea", "phonenumber": "phone"}
_TYPES: dict[str, FieldType] = {"number": "number", "bool": "boolean", "date": "date", "datetime": "datetime"}


def _field_type(raw: dict[str, Any]) -> FieldType:
    """HubSpot `type`/`fieldType` -> FieldType [D: Properties, "Property type and fieldType
    values"]: string+text -> string (the `email` property: email), textarea, phonenumber ->
    phone; number; bool (booleancheckbox) -> boolean; date; datetime; enumeration+checkbox ->
    multipicklist, other enumerations (select, radio) -> picklist; anything else -> other."""
    kind, field = str(raw.get("type") or ""), str(raw.get("fieldType") or "")
    if kind == "string":
        return "email" if raw.get("name") == "email" else _STRING_FIELDS.get(field, "string")
    if kind == "enumeration":
        return (
            "boolean"
            if field == "booleancheckbox"
            else "multipicklist"
            if field == "checkbox"
            else "picklist"
        )
    return _TYPES.get(kind, "other")


def _ms(moment: datetime) -> int:
    return (moment.astimezone(UTC) - _EPOCH) // timedelta(milliseconds=1)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _instant(text: str) -> datetime | None:
    """An epoch-ms or ISO 8601 value as an aware UTC datetime (naive ISO is read as UTC)."""
    text = text.strip()
    if re.fullmatch(r"-?[0-9]{1,16}", text):
        return _EPOCH + timedelta(milliseconds=int(text))
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _from_wire(value: Any, kind: FieldType) -> RemoteValue:
    """One HubSpot property string as the Python value the service gets (see the module doc);
    a string that does not parse as its type is handed on as it is."""
    if value is None or value == "":
        return None
    text = str(value)
    reader = _READERS.get(kind)
    return reader(text) if reader else text


def _read_number(text: str) -> RemoteValue:
    if re.fullmatch(r"-?[0-9]{1,18}", text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


def _read_bool(text: str) -> RemoteValue:
    return {"true": True, "false": False}.get(text.lower(), text)


def _read_date(text: str) -> RemoteValue:
    moment = _instant(text)
    return moment.date().isoformat() if moment else text


def _read_datetime(text: str) -> RemoteValue:
    moment = _instant(text)
    return _iso(moment) if moment else text


_READERS: dict[str, Callable[[str], RemoteValue]] = {
    "number": _read_number,
    "boolean": _read_bool,
    "date": _read_date,
    "datetime": _read_datetime,
}


def _to_wire(name: str, value: RemoteValue, kind: FieldType) -> str:
    """One value as the string HubSpot takes (see the module doc); `_BadValue` when it cannot be."""
    if value is None:
        return ""
    writer = _WRITERS.get(kind)
    if writer is not None:
        text = writer(value)
        if text is None:
            raise _BadValue(
                "INVALID_DATE" if kind in ("date", "datetime") else f"INVALID_{kind.upper()}", name
            )
        return text
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _write_number(value: RemoteValue) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    try:
        float(str(value))
    except ValueError:
        return None
    return str(value).strip()


def _write_bool(value: RemoteValue) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).strip().lower()
    return text if text in ("true", "false") else None


def _write_date(value: RemoteValue) -> str | None:
    """`YYYY-MM-DD` -> midnight UTC in epoch ms (the timestamp FAQ: date properties "must be set
    to midnight UTC")."""
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value.strip()):
        return None
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        return None
    return str(_ms(datetime.combine(day, datetime.min.time(), UTC)))


def _write_datetime(value: RemoteValue) -> str | None:
    """ISO 8601 (naive = UTC) or epoch ms -> epoch ms."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    moment = _instant(value) if isinstance(value, str) else None
    return str(_ms(moment)) if moment else None


_WRITERS: dict[str, Callable[[RemoteValue], str | None]] = {
    "number": _write_number,
    "boolean": _write_bool,
    "date": _write_date,
    "datetime": _write_datetime,
}


def _parse_watermark(since: str | None) -> tuple[int, int, int | None, int | None]:
    """`(live ms, archived ms, tie ms, last tie id)` from a watermark (see `changed_contacts`)."""
    if since is None or not since.strip():
        return 0, 0, None, None
    text = since.strip()
    parts = re.fullmatch(r"([0-9]{1,16}):([0-9]{1,16})(?::([0-9]{1,16}):([0-9]{1,20}))?", text)
    if parts:
        tie_at, tie = parts.group(3), parts.group(4)
        return (
            int(parts.group(1)),
            int(parts.group(2)),
            None if tie_at is None else int(tie_at),
            None if tie is None else int(tie),
        )
    moment = _instant(text)
    if moment is None or moment < _EPOCH:
        raise Invalid("not a HubSpot watermark", code="invalid_watermark")
    return _ms(moment), _ms(moment), None, None


def _encode_cursor(cursor: _Cursor) -> str:
    return (
        base64.urlsafe_b64encode(cursor.model_dump_json(exclude_defaults=True).encode()).decode().rstrip("=")
    )


def _decode_cursor(page: str) -> _Cursor:
    try:
        raw = base64.urlsafe_b64decode(page + "=" * (-len(page) % 4))
        return _Cursor.model_validate_json(raw)
    except (binascii.Error, ValueError, ValidationError):
        raise Invalid("not a page token of this adapter", code="invalid_page_token") from None
