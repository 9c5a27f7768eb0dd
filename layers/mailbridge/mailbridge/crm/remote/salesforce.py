"""`SalesforceProvider`: the `CrmProvider` protocol over the Salesforce REST API and Bulk API 2.0.

Every call goes through `mailbridge.providers.http.request` (SSRF guard, per-phase timeouts and a
deadline, retries of 429/5xx with backoff and Retry-After). The org's `instance_url` comes from the
OAuth token answer: it must be `https://` (`http://` only in local mode, and then only to a
loopback address, which the guard checks when it connects) with no path.

Sources (REST API Developer Guide unless marked):
- Auth: a 401 with `INVALID_SESSION_ID` means the access token expired or was revoked; the adapter
  calls its `refresh()` callback once and retries; a second 401 or a refused refresh raises
  `ProviderAuthError` with code `reauth_required` ("Status Codes and Error Responses").
- Limits: 403 `REQUEST_LIMIT_EXCEEDED` when the org's rolling 24-hour allocation is spent ("API
  Request Limits and Allocations"). Salesforce sends no Retry-After: the adapter raises
  `ProviderRateLimited` with `settings.request_limit_retry_after` seconds.
- Records: "sObject Rows" (`GET/PATCH/DELETE /sobjects/Contact/{id}`, `POST /sobjects/Contact`;
  404 `NOT_FOUND` / `ENTITY_IS_DELETED` for a gone record), "sObject Describe" for the fields,
  "sObject Collections" (`/composite/sobjects`, at most 200 records, `allOrNone`).
- SOQL: string literals in single quotes with `\\`, `\\'`, `\\"`, `\\n`, `\\r`, `\\t`, `\\b`, `\\f`
  escaped (SOQL and SOSL Reference, "Quoted String Escape Sequences"); `queryAll` returns deleted
  records with `IsDeleted = true`; pages follow `nextRecordsUrl`; `Sforce-Query-Options:
  batchSize=N` (200..2,000) sizes them.
- Bulk API 2.0 (Bulk API 2.0 and Bulk API Developer Guide): ingest job `POST /jobs/ingest`, one
  `PUT .../batches` of CSV per job (150 MB at most, 100 MB of raw data recommended), `PATCH state
  UploadComplete`, poll `GET /jobs/ingest/{id}` until `JobComplete`, `Failed` or `Aborted`, then
  `successfulResults` (`sf__Id`, `sf__Created`, the uploaded columns), `failedResults` (`sf__Id`,
  `sf__Error`, the uploaded columns) and `unprocessedrecords` (the uploaded columns). "The order of
  records in the response is not guaranteed to match the ordering of records in the original job
  data", so results are matched back by a column: the `Id` for updates, the external-id column for
  upserts (`settings.key_field` carries our key), and for plain inserts the uploaded cells
  themselves (two identical rows are interchangeable). An empty CSV cell leaves a field as it is
  and `#N/A` clears it ("Prepare CSV Files"). Query jobs (`POST /jobs/query`, operation `queryAll`)
  are read with `maxRecords` and the `Sforce-Locator` header, which reads "null" on the last set.

Memory stays flat in the number of records: the input is cut into jobs of at most
`bulk_job_max_records` rows and `bulk_job_max_bytes` bytes of CSV (far below the 100 MB guidance,
because a job's results come back as one unpaged CSV), each job's CSV is built and its results
read before the next job starts, and query results are read a `maxRecords` page at a time.

Watermarks (`changed_contacts`, `bulk_changed_contacts`) are `"<SystemModstamp>|<Id>"`: the query
is `WHERE SystemModstamp > T OR (SystemModstamp = T AND Id > 'I') ORDER BY SystemModstamp, Id`, so
records sharing a modstamp across a page boundary are neither lost nor repeated: the next run
starts right after the last (modstamp, Id) pair delivered. A run first reads the newest
SystemModstamp (one `queryAll ... ORDER BY SystemModstamp DESC LIMIT 1`) as its ceiling and
queries only up to it; a record changed while the pages are read comes back with its new, later
stamp and does not move the watermark (see `_advance`), so the next run delivers it again instead
of skipping what changed in between.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote, urlencode

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
from mailbridge.providers import http

RECORD_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")
FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,79}")
MODSTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
NEXT_RECORDS = re.compile(r"/services/data/v\d{2}\.\d/(?:query|queryAll)/[A-Za-z0-9]+-\d+")
COLLECTION_LIMIT = 200
TERMINAL_STATES = ("JobComplete", "Failed", "Aborted")
_SOQL_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}
_TYPES: dict[str, FieldType] = {
    "string": "string",
    "textarea": "textarea",
    "email": "email",
    "phone": "phone",
    "url": "url",
    "double": "number",
    "currency": "number",
    "percent": "number",
    "int": "number",
    "long": "number",
    "boolean": "boolean",
    "date": "date",
    "datetime": "datetime",
    "picklist": "picklist",
    "multipicklist": "multipicklist",
    "reference": "reference",
}


class SalesforceRequestRejected(ProviderError):
    """Salesforce refused the request itself (an unknown field, a malformed query, a missing
    custom field): a setup or programming fault, not retryable. `details`: `{"status",
    "remote_code"}`."""

    code = "salesforce_request_rejected"
    retryable = False


class BulkJobFailed(ProviderError):
    """A Bulk API 2.0 query job ended `Failed` or `Aborted`; `details["state"]`."""

    code = "salesforce_bulk_job_failed"


@dataclass(frozen=True, slots=True)
class SalesforceSession:
    """The part of an OAuth token answer the adapter uses (the integrations service stores the
    refresh token, sealed with KMS, and hands the adapter a `refresh()` that returns a new one)."""

    access_token: str
    instance_url: str


@dataclass(frozen=True, slots=True)
class SalesforceSettings:
    """Every URL and limit of the adapter; defaults are the real service's (times in seconds)."""

    api_version: str = "61.0"
    login_url: str = "https://login.salesforce.com"
    """Where the OAuth flows start (`/services/oauth2/authorize`, `/token`, `/revoke`); the
    integrations service uses it, the adapter only talks to the token answer's instance_url."""
    page_size: int = 2000
    """SOQL batch size (`Sforce-Query-Options: batchSize`, 200..2,000)."""
    key_field: str | None = None
    """An External ID field on Contact holding our contact id (e.g. `Mailbridge_Id__c`): when set,
    new contacts are upserted on it, so a retried create never makes a duplicate."""
    message_id_field: str = "Mailbridge_Message_Id__c"
    """Text(255) custom field on Task that holds the RFC 5322 Message-ID (mark it External ID,
    not Unique, so the lookup is indexed and one email can log a Task per contact)."""
    request_limit_retry_after: float = 3600.0
    bulk_job_max_records: int = 10_000
    bulk_job_max_bytes: int = 10 * 1024 * 1024
    bulk_query_page_records: int = 10_000
    """`maxRecords` per query-job results request."""
    bulk_max_response_bytes: int = 64 * 1024 * 1024
    bulk_poll_initial: float = 0.5
    bulk_poll_max: float = 10.0
    bulk_max_wait: float = 1800.0
    """Abort a job still running after this long: an ingest job's rest is reported unprocessed, a
    query job raises `BulkJobFailed`."""


def soql_string(value: str) -> str:
    """`value` as a SOQL string literal, quotes included (SOQL and SOSL Reference, "Quoted String
    Escape Sequences")."""
    return "'" + "".join(_SOQL_ESCAPES.get(ch, ch) for ch in value) + "'"


def soql_select(fields: list[str], sobject: str, where: str = "", tail: str = "") -> str:
    """`SELECT fields FROM sobject [WHERE (where)] [tail]`. Every caller passes field names checked
    against `FIELD_NAME` and literals made by `soql_string` or `format_modstamp`."""
    text = f"SELECT {', '.join(fields)} FROM {sobject}"  # noqa: S608 (names checked, literals escaped)
    if where:
        text += f" WHERE ({where})"
    return f"{text} {tail}" if tail else text


def format_modstamp(value: datetime) -> str:
    """A SOQL date-time literal to the millisecond, in UTC (`2030-01-01T09:00:00.000Z`)."""
    moment = value.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_datetime(text: str) -> datetime:
    """Salesforce's date-times: JSON `2030-01-01T09:00:00.000+0000`, CSV `...000Z`."""
    value = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text.strip().replace("Z", "+00:00"))
    parsed = datetime.fromisoformat(value)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


class SalesforceProvider:
    """One Salesforce org (see the module doc). `sleep` waits between bulk polls and HTTP retries
    (injectable so tests move a manual clock instead)."""

    name: CrmName = "salesforce"

    def __init__(
        self,
        session: SalesforceSession,
        refresh: Callable[[], SalesforceSession],
        *,
        settings: SalesforceSettings | None = None,
        policy: http.HttpPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings or SalesforceSettings()
        self._policy = policy or http.HttpPolicy()
        self._bulk_policy = replace(
            self._policy,
            max_response_bytes=max(self._policy.max_response_bytes, self.settings.bulk_max_response_bytes),
        )
        self._refresh = refresh
        self._sleep = sleep
        self._jitter = jitter
        self._session = self._checked(session)
        self._field_types: dict[str, FieldType] | None = None
        self._last_watermark: str | None = None

    # ------------------------------------------------------------------ protocol

    def features(self) -> frozenset[Feature]:
        return frozenset(Feature)

    def contact_fields(self) -> list[FieldInfo]:
        """`GET /sobjects/Contact/describe`: every field, active picklist values only."""
        body = self._json(self._call("GET", "/sobjects/Contact/describe"))
        out: list[FieldInfo] = []
        for raw in body.get("fields", []):
            kind = _TYPES.get(str(raw.get("type")), "other")
            text = kind in ("string", "textarea", "email", "phone", "url", "picklist", "multipicklist")
            out.append(
                FieldInfo(
                    name=str(raw["name"]),
                    label=str(raw.get("label") or raw["name"]),
                    type=kind,
                    custom=bool(raw.get("custom")),
                    updateable=bool(raw.get("updateable")),
                    required=bool(raw.get("createable"))
                    and not raw.get("nillable", True)
                    and not raw.get("defaultedOnCreate", False),
                    length=int(raw["length"]) if text and raw.get("length") else None,
                    options=[
                        str(p["value"]) for p in raw.get("picklistValues") or [] if p.get("active", True)
                    ],
                )
            )
        self._field_types = {f.name.lower(): f.type for f in out}
        return out

    def get_contact(self, remote_id: str, fields: Iterable[str]) -> RemoteContact | None:
        if not RECORD_ID.fullmatch(remote_id):
            return None
        names = self._select(fields)
        response = self._call("GET", f"/sobjects/Contact/{remote_id}", params={"fields": ",".join(names)})
        if response.status == 404:
            return None
        return self._contact(self._json(response), names)

    def find_contact_by_email(self, email: str, fields: Iterable[str]) -> RemoteContact | None:
        names = self._select(fields)
        soql = soql_select(
            names, "Contact", f"Email = {soql_string(email)}", "ORDER BY CreatedDate, Id LIMIT 1"
        )
        records = self._json(self._call("GET", "/query", params={"q": soql})).get("records", [])
        return self._contact(records[0], names) if records else None

    def save_contact(self, contact: ContactWrite) -> RecordResult:
        bad = _bad_field(contact.fields)
        if bad is not None:
            return _failed(contact.key, "INVALID_FIELD", [bad])
        body = {k: v for k, v in contact.fields.items() if k.lower() != "id"}
        if contact.remote_id is not None:
            if not RECORD_ID.fullmatch(contact.remote_id):
                return _failed(contact.key, "MALFORMED_ID", ["Id"])
            response = self._call("PATCH", f"/sobjects/Contact/{contact.remote_id}", json_body=body)
            if response.status == 204:
                return RecordResult(key=contact.key, state="succeeded", remote_id=contact.remote_id)
            return self._refused(contact.key, response)
        key_field = self.settings.key_field
        if key_field is not None:
            body.pop(key_field, None)
            path = f"/sobjects/Contact/{key_field}/{_path_value(contact.key)}"
            response = self._call("PATCH", path, json_body=body)
        else:
            response = self._call("POST", "/sobjects/Contact", json_body=body)
        if response.status in (200, 201):
            answer = self._json(response)
            created = bool(answer.get("created", response.status == 201))
            return RecordResult(
                key=contact.key, state="succeeded", remote_id=str(answer["id"]), created=created
            )
        return self._refused(contact.key, response)

    def delete_contact(self, remote_id: str) -> bool:
        if not RECORD_ID.fullmatch(remote_id):
            return False
        response = self._call("DELETE", f"/sobjects/Contact/{remote_id}")
        if response.status == 204:
            return True
        if response.status == 404:
            return False
        raise self._rejected(response)

    def changed_contacts(
        self, since: str | None, fields: Iterable[str], page: str | None = None
    ) -> ContactPage:
        names = self._select(fields)
        if since is not None:
            _parse_watermark(since)
        options = {"Sforce-Query-Options": f"batchSize={self.settings.page_size}"}
        if page is None:
            ceiling = self._ceiling()
            if ceiling is None:
                return ContactPage(contacts=[], watermark=since)
            soql = self._changes_soql(since, names, ceiling)
            response = self._call("GET", "/queryAll", params={"q": soql}, headers=options)
            watermark = since
        else:
            url, watermark, ceiling = _parse_page(page)
            response = self._call("GET", url, headers=options, absolute_path=True)
        body = self._json(response)
        contacts = [self._contact(r, names) for r in body.get("records", [])]
        watermark = _advance(watermark, contacts, ceiling)
        next_url = body.get("nextRecordsUrl")
        next_page = None
        if not body.get("done", True) and isinstance(next_url, str):
            next_page = json.dumps({"url": next_url, "watermark": watermark, "ceiling": ceiling})
        return ContactPage(contacts=contacts, next_page=next_page, watermark=watermark)

    def bulk_save_contacts(self, contacts: Iterable[ContactWrite]) -> Iterator[RecordResult]:
        chunk: list[ContactWrite] = []
        size = 0
        for contact in contacts:
            bad = _bad_field(contact.fields)
            if bad is not None:
                yield _failed(contact.key, "INVALID_FIELD", [bad])
                continue
            row_bytes = sum(len(str(k)) + len(str(v)) + 4 for k, v in contact.fields.items()) + 40
            if chunk and (
                len(chunk) >= self.settings.bulk_job_max_records
                or size + row_bytes > self.settings.bulk_job_max_bytes
            ):
                yield from self._ingest_chunk(chunk)
                chunk, size = [], 0
            chunk.append(contact)
            size += row_bytes
        if chunk:
            yield from self._ingest_chunk(chunk)

    def bulk_changed_contacts(self, since: str | None, fields: Iterable[str]) -> Iterator[RemoteContact]:
        names = self._select(fields)
        types = self._types()
        if since is not None:
            _parse_watermark(since)
        self._last_watermark = since
        ceiling = self._ceiling()
        if ceiling is None:
            return
        job = self._json(
            self._call(
                "POST",
                "/jobs/query",
                json_body={
                    "operation": "queryAll",
                    "query": self._changes_soql(since, names, ceiling),
                    "contentType": "CSV",
                    "columnDelimiter": "COMMA",
                    "lineEnding": "LF",
                },
            )
        )
        job_id = str(job["id"])
        state = self._wait(f"/jobs/query/{job_id}", abort_after=self.settings.bulk_max_wait)
        if state != "JobComplete":
            raise BulkJobFailed("the Salesforce query job did not complete", details={"state": state})
        locator: str | None = None
        while True:
            params = {"maxRecords": str(self.settings.bulk_query_page_records)}
            if locator is not None:
                params["locator"] = locator
            response = self._call("GET", f"/jobs/query/{job_id}/results", params=params, bulk=True)
            self._expect(response, 200)
            reader = csv.reader(io.StringIO(response.body.decode("utf-8-sig"), newline=""))
            header = next(reader, [])
            for row in reader:
                record: dict[str, Any] = dict(zip(header, row, strict=False))
                contact = RemoteContact(
                    remote_id=record["Id"],
                    fields={
                        n: _from_text(record.get(n, ""), types.get(n.lower(), "string"))
                        for n in names
                        if n not in ("Id", "IsDeleted", "SystemModstamp")
                    },
                    modified_at=parse_datetime(record["SystemModstamp"]),
                    deleted=record.get("IsDeleted", "").lower() == "true",
                )
                self._last_watermark = _advance(self._last_watermark, [contact], ceiling)
                yield contact
            locator = response.headers.get("sforce-locator")
            if not locator or locator == "null":
                break

    @property
    def last_watermark(self) -> str | None:
        return self._last_watermark

    def save_campaign(self, campaign: CampaignWrite) -> RecordResult:
        body: dict[str, RemoteValue] = {"Name": campaign.name}
        if campaign.status is not None:
            body["Status"] = campaign.status
        if campaign.start_date is not None:
            body["StartDate"] = campaign.start_date
        if campaign.end_date is not None:
            body["EndDate"] = campaign.end_date
        if campaign.remote_id is not None:
            if not RECORD_ID.fullmatch(campaign.remote_id):
                return _failed(campaign.key, "MALFORMED_ID", ["Id"])
            response = self._call("PATCH", f"/sobjects/Campaign/{campaign.remote_id}", json_body=body)
            if response.status == 204:
                return RecordResult(key=campaign.key, state="succeeded", remote_id=campaign.remote_id)
            return self._refused(campaign.key, response)
        response = self._call("POST", "/sobjects/Campaign", json_body=body)
        if response.status == 201:
            answer = self._json(response)
            return RecordResult(
                key=campaign.key, state="succeeded", remote_id=str(answer["id"]), created=True
            )
        return self._refused(campaign.key, response)

    def set_campaign_members(
        self, remote_campaign_id: str, add: Iterable[str], remove: Iterable[str]
    ) -> MembershipResult:
        """CampaignMember rows created and deleted through `/composite/sobjects` (200 per call,
        `allOrNone=false`); `DUPLICATE_VALUE` on create ("Already a campaign member.") counts as
        added."""
        if not RECORD_ID.fullmatch(remote_campaign_id):
            raise Invalid("not a Salesforce record id", code="invalid_remote_id")
        result = MembershipResult()
        for batch in _batches(_ids(add, result), COLLECTION_LIMIT):
            records = [
                {"attributes": {"type": "CampaignMember"}, "CampaignId": remote_campaign_id, "ContactId": cid}
                for cid in batch
            ]
            answer = self._json(
                self._call("POST", "/composite/sobjects", json_body={"allOrNone": False, "records": records})
            )
            for contact_id, item in zip(batch, answer, strict=True):
                errors = item.get("errors") or []
                code = str(errors[0].get("statusCode", "")) if errors else ""
                if item.get("success") or code == "DUPLICATE_VALUE":
                    result.added.append(contact_id)
                else:
                    result.failed.append(_failed(contact_id, code or "UNKNOWN", _fields_of(errors)))
        for batch in _batches(_ids(remove, result), COLLECTION_LIMIT):
            soql = soql_select(
                ["Id", "ContactId"],
                "CampaignMember",
                f"CampaignId = {soql_string(remote_campaign_id)} "
                f"AND ContactId IN ({', '.join(map(soql_string, batch))})",
            )
            members = {str(r["Id"]): str(r["ContactId"]) for r in self._query_all_pages(soql)}
            if not members:
                continue
            response = self._call(
                "DELETE",
                "/composite/sobjects",
                params={"ids": ",".join(members), "allOrNone": "false"},
            )
            for item in self._json(response):
                member = str(item.get("id") or "")
                if item.get("success") and member in members:
                    result.removed.append(members[member])
        return result

    def log_email(self, activity: EmailActivity) -> ActivityResult:
        """One completed Task (`TaskSubtype = 'Email'`) per contact (a Task has one `WhoId`),
        each carrying the Message-ID in `settings.message_id_field`. One SOQL query finds the
        Tasks already logged for this Message-ID; only the missing contacts get one (one
        composite call per 200), so a retry or a second mailbox logs nothing twice. Requests: 1
        when already logged, 2 otherwise."""
        marker = _message_marker(activity.message_id)
        mid_field = self._field_name(self.settings.message_id_field)
        soql = soql_select(
            ["Id", "WhoId"], "Task", f"{mid_field} = {soql_string(marker)}", "ORDER BY CreatedDate, Id"
        )
        existing = {str(r.get("WhoId") or ""): str(r["Id"]) for r in self._query_all_pages(soql)}
        wanted = [c for c in dict.fromkeys(activity.remote_contact_ids) if RECORD_ID.fullmatch(c)]
        missing = [c for c in wanted if c[:15] not in {w[:15] for w in existing}]
        first_existing = next(iter(existing.values()), None)
        if not missing and first_existing is not None:
            return ActivityResult(remote_id=first_existing, created=False)
        direction = "Inbound" if activity.direction == "incoming" else "Outbound"
        description = "\n".join(
            [
                f"{direction} email",
                f"From: {activity.from_address}",
                f"To: {', '.join(activity.to_addresses)}",
                f"Message-ID: {activity.message_id}",
                "",
                activity.body_preview,
            ]
        )
        created_ids: list[str] = []
        refused: list[dict[str, Any]] = []
        for batch in _batches(missing, COLLECTION_LIMIT):
            records = [
                {
                    "attributes": {"type": "Task"},
                    "WhoId": contact_id,
                    "Subject": activity.subject or "(no subject)",
                    "ActivityDate": activity.sent_at.astimezone(UTC).date().isoformat(),
                    "Status": "Completed",
                    "Priority": "Normal",
                    "TaskSubtype": "Email",
                    "Type": "Email",
                    "Description": description,
                    mid_field: marker,
                }
                for contact_id in batch
            ]
            answer = self._json(
                self._call("POST", "/composite/sobjects", json_body={"allOrNone": False, "records": records})
            )
            for item in answer:
                if item.get("success"):
                    created_ids.append(str(item["id"]))
                else:
                    refused.extend(item.get("errors") or [])
        if refused:
            raise CrmRecordRejected(
                "Salesforce refused the email activity",
                details={"remote_code": str(refused[0].get("statusCode", "")), "fields": _fields_of(refused)},
            )
        remote_id = first_existing or (created_ids[0] if created_ids else None)
        if remote_id is None:
            raise Invalid("no valid Salesforce contact id to log the email against", code="invalid_remote_id")
        return ActivityResult(remote_id=remote_id, created=bool(created_ids))

    # ------------------------------------------------------------------ bulk ingest

    def _ingest_chunk(self, chunk: list[ContactWrite]) -> Iterator[RecordResult]:
        updates = [c for c in chunk if c.remote_id is not None]
        creates = [c for c in chunk if c.remote_id is None]
        bad_ids = [c for c in updates if not RECORD_ID.fullmatch(c.remote_id or "")]
        for contact in bad_ids:
            yield _failed(contact.key, "MALFORMED_ID", ["Id"])
        updates = [c for c in updates if c not in bad_ids]
        if updates:
            yield from self._ingest_job("update", updates)
        if creates:
            yield from self._ingest_job("upsert" if self.settings.key_field else "insert", creates)

    def _ingest_job(
        self, operation: Literal["insert", "update", "upsert"], rows: list[ContactWrite]
    ) -> Iterator[RecordResult]:
        key_field = self.settings.key_field
        first = (
            ["Id"] if operation == "update" else [key_field] if operation == "upsert" and key_field else []
        )
        columns = list(first)
        seen = {c.lower() for c in columns}
        for row in rows:
            for name in row.fields:
                if name.lower() not in seen:
                    seen.add(name.lower())
                    columns.append(name)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        pending: dict[Any, deque[str]] = {}
        for row in rows:
            by_name = {k.lower(): v for k, v in row.fields.items()}
            cells = [_to_text(by_name[c.lower()]) if c.lower() in by_name else "" for c in columns]
            if operation == "update":
                cells[0] = row.remote_id or ""
            elif operation == "upsert":
                cells[0] = row.key
            writer.writerow(cells)
            pending.setdefault(_match(operation, cells), deque()).append(row.key)
        data = out.getvalue().encode()
        del out
        job = self._json(
            self._call(
                "POST",
                "/jobs/ingest",
                json_body={
                    "object": "Contact",
                    "operation": operation,
                    **({"externalIdFieldName": key_field} if operation == "upsert" else {}),
                    "contentType": "CSV",
                    "columnDelimiter": "COMMA",
                    "lineEnding": "LF",
                },
            )
        )
        job_id = str(job["id"])
        self._expect(
            self._call("PUT", f"/jobs/ingest/{job_id}/batches", content=data, content_type="text/csv"), 201
        )
        del data
        self._expect(
            self._call("PATCH", f"/jobs/ingest/{job_id}", json_body={"state": "UploadComplete"}), 200
        )
        state = self._wait(f"/jobs/ingest/{job_id}", abort_after=self.settings.bulk_max_wait)
        yield from self._ingest_results(job_id, operation, pending, state)

    def _ingest_results(
        self, job_id: str, operation: str, pending: dict[Any, deque[str]], state: str
    ) -> Iterator[RecordResult]:
        """The job's three result CSVs matched back to our keys; a key found in none of them is
        reported `unprocessed`, so every input record gets exactly one result."""
        failure = None if state == "JobComplete" else f"job_{state.lower()}"
        for kind in ("successfulResults", "failedResults", "unprocessedrecords"):
            response = self._call("GET", f"/jobs/ingest/{job_id}/{kind}", bulk=True)
            if failure is not None and response.status != 200:
                continue  # a Failed job may have no results: its rows are reported unprocessed below
            self._expect(response, 200)
            reader = csv.reader(io.StringIO(response.body.decode("utf-8-sig"), newline=""))
            next(reader, None)
            for result_row in reader:
                cells = result_row if kind == "unprocessedrecords" else result_row[2:]
                keys = pending.get(_match(operation, cells))
                if not keys:
                    continue
                key = keys.popleft()
                if kind == "successfulResults":
                    yield RecordResult(
                        key=key,
                        state="succeeded",
                        remote_id=result_row[0] or None,
                        created=result_row[1].lower() == "true",
                    )
                elif kind == "failedResults":
                    code, fields = _bulk_error(result_row[1])
                    yield _failed(key, code, fields, remote_id=result_row[0] or None)
                else:
                    yield RecordResult(key=key, state="unprocessed", error_code=failure)
        for keys in pending.values():
            for key in keys:
                yield RecordResult(key=key, state="unprocessed", error_code=failure or "not_in_results")

    def _wait(self, path: str, abort_after: float | None = None) -> str:
        """Poll a job until it reaches a terminal state, the wait growing by half each time (from
        `bulk_poll_initial` up to `bulk_poll_max`), so a finished job waits at most half again as
        long as it ran."""
        delay = self.settings.bulk_poll_initial
        waited = 0.0
        while True:
            info = self._json(self._call("GET", path))
            state = str(info.get("state", ""))
            if state in TERMINAL_STATES:
                return state
            if abort_after is not None and waited >= abort_after:
                self._call("PATCH", path, json_body={"state": "Aborted"})
                abort_after = None
                continue
            self._sleep(delay)
            waited += delay
            delay = min(self.settings.bulk_poll_max, delay * 1.5)

    # ------------------------------------------------------------------ SOQL helpers

    def _changes_soql(self, since: str | None, names: list[str], ceiling: str) -> str:
        where = f"SystemModstamp <= {ceiling}"
        if since is not None:
            stamp, record_id = _parse_watermark(since)
            after = f"Id > {soql_string(record_id)}"
            where += f" AND (SystemModstamp > {stamp} OR (SystemModstamp = {stamp} AND {after}))"
        return soql_select(names, "Contact", where, "ORDER BY SystemModstamp, Id")

    def _ceiling(self) -> str | None:
        """The newest `SystemModstamp` among the org's contacts (deleted ones included) before a
        changes query runs, or None when there are none. See `_advance`."""
        soql = soql_select(["Id", "SystemModstamp"], "Contact", "", "ORDER BY SystemModstamp DESC LIMIT 1")
        records = self._json(self._call("GET", "/queryAll", params={"q": soql})).get("records", [])
        return format_modstamp(parse_datetime(str(records[0]["SystemModstamp"]))) if records else None

    def _query_all_pages(self, soql: str) -> Iterator[dict[str, Any]]:
        body = self._json(self._call("GET", "/query", params={"q": soql}))
        while True:
            yield from body.get("records", [])
            next_url = body.get("nextRecordsUrl")
            if (
                body.get("done", True)
                or not isinstance(next_url, str)
                or not NEXT_RECORDS.fullmatch(next_url)
            ):
                return
            body = self._json(self._call("GET", next_url, absolute_path=True))

    def _select(self, fields: Iterable[str]) -> list[str]:
        names = ["Id", "IsDeleted", "SystemModstamp"]
        seen = {n.lower() for n in names}
        for name in fields:
            checked = self._field_name(name)
            if checked.lower() not in seen:
                seen.add(checked.lower())
                names.append(checked)
        return names

    @staticmethod
    def _field_name(name: str) -> str:
        if not FIELD_NAME.fullmatch(name):
            raise Invalid("not a Salesforce field API name", code="invalid_field_name")
        return name

    def _types(self) -> dict[str, FieldType]:
        if self._field_types is None:
            self.contact_fields()
        return self._field_types or {}

    def _contact(self, record: dict[str, Any], names: list[str]) -> RemoteContact:
        fields: RemoteRecord = {}
        for name in names:
            if name in ("Id", "IsDeleted", "SystemModstamp"):
                continue
            value = next((v for k, v in record.items() if k.lower() == name.lower()), None)
            fields[name] = _from_json(value)
        return RemoteContact(
            remote_id=str(record["Id"]),
            fields=fields,
            modified_at=parse_datetime(str(record["SystemModstamp"])),
            deleted=bool(record.get("IsDeleted", False)),
        )

    # ------------------------------------------------------------------ HTTP

    def _checked(self, session: SalesforceSession) -> SalesforceSession:
        url = http.check_url(session.instance_url, self._policy)
        if url.path not in ("", "/") or url.query or url.fragment:
            raise Invalid("the instance URL must be an origin", code="invalid_url")
        origin = f"{url.scheme}://{url.netloc.decode('ascii')}"
        return SalesforceSession(access_token=session.access_token, instance_url=origin)

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json_body: Any = None,
        content: bytes | None = None,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
        absolute_path: bool = False,
        bulk: bool = False,
    ) -> http.HttpResponse:
        """One REST call, refreshing the session once on 401. Returns 2xx, 400 and 404 answers;
        raises for auth, the request limit, and other refusals."""
        if json_body is not None:
            content = json.dumps(json_body, separators=(",", ":")).encode()
            content_type = "application/json"
        refreshed = False
        while True:
            base = self._session.instance_url
            url = base + path if absolute_path else f"{base}/services/data/v{self.settings.api_version}{path}"
            if params:
                url += "?" + urlencode(params)
            sent = {"Authorization": f"Bearer {self._session.access_token}", "Accept": "application/json"}
            if content_type is not None:
                sent["Content-Type"] = content_type
            sent.update(headers or {})
            response = http.request(
                method,
                url,
                policy=self._bulk_policy if bulk else self._policy,
                headers=sent,
                content=content,
                sleep=self._sleep,
                jitter=self._jitter,
            )
            if response.status == 401:
                if refreshed:
                    raise ProviderAuthError(
                        "Salesforce refused the refreshed session", code="reauth_required"
                    )
                refreshed = True
                try:
                    self._session = self._checked(self._refresh())
                except ProviderAuthError:
                    raise ProviderAuthError(
                        "the Salesforce session cannot be refreshed", code="reauth_required"
                    ) from None
                continue
            if response.status == 403 and "REQUEST_LIMIT_EXCEEDED" in _codes(response):
                opsmetrics.provider_throttled("salesforce", "request_limit_exceeded")
                raise ProviderRateLimited(
                    "the Salesforce org has used its API request allocation",
                    retry_after=self.settings.request_limit_retry_after,
                )
            if response.status < 300 or response.status in (400, 404):
                return response
            raise self._rejected(response)

    def _rejected(self, response: http.HttpResponse) -> SalesforceRequestRejected:
        codes = _codes(response)
        return SalesforceRequestRejected(
            "Salesforce refused the request",
            details={"status": response.status, "remote_code": codes[0] if codes else None},
        )

    def _expect(self, response: http.HttpResponse, status: int) -> None:
        if response.status != status:
            raise self._rejected(response)

    def _json(self, response: http.HttpResponse) -> Any:
        if response.status >= 300:
            raise self._rejected(response)
        if not response.body:
            return {}
        try:
            return json.loads(response.body)
        except ValueError:
            raise ProviderError("Salesforce answered with something other than JSON") from None

    def _refused(self, key: str, response: http.HttpResponse) -> RecordResult:
        errors = _error_items(response)
        if not errors:
            raise self._rejected(response)
        code = str(errors[0].get("errorCode") or errors[0].get("statusCode") or "UNKNOWN")
        return _failed(key, code, _fields_of(errors))


# ---------------------------------------------------------------------- helpers


def _error_items(response: http.HttpResponse) -> list[dict[str, Any]]:
    try:
        body = json.loads(response.body) if response.body else None
    except ValueError:
        return []
    if isinstance(body, list):
        return [item for item in body if isinstance(item, dict)]
    return []


def _codes(response: http.HttpResponse) -> list[str]:
    return [str(item.get("errorCode", "")) for item in _error_items(response)]


def _fields_of(errors: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for item in errors:
        for name in item.get("fields") or []:
            if isinstance(name, str) and name not in out:
                out.append(name)
    return out


def _failed(key: str, code: str, fields: list[str], remote_id: str | None = None) -> RecordResult:
    """A refused record; the message names the code and fields, never Salesforce's text (which
    can quote the value)."""
    where = f" on {', '.join(fields)}" if fields else ""
    return RecordResult(
        key=key,
        state="failed",
        remote_id=remote_id,
        error_code=code,
        error_message=f"Salesforce refused the record: {code}{where}"[:500],
    )


def _bulk_error(cell: str) -> tuple[str, list[str]]:
    """`sf__Error`: `CODE:message:Field1,Field2 --`."""
    code = cell.split(":", 1)[0].strip() or "UNKNOWN"
    tail = cell.rstrip().removesuffix("--").rstrip()
    fields = tail.rsplit(":", 1)[1] if tail.count(":") >= 2 else ""
    return code, [f for f in fields.split(",") if FIELD_NAME.fullmatch(f.strip() or "-")]


def _bad_field(fields: RemoteRecord) -> str | None:
    return next((name for name in fields if not FIELD_NAME.fullmatch(name)), None)


def _ids(values: Iterable[str], result: MembershipResult) -> list[str]:
    out: list[str] = []
    for value in dict.fromkeys(values):
        if RECORD_ID.fullmatch(value):
            out.append(value)
        else:
            result.failed.append(_failed(value, "MALFORMED_ID", ["ContactId"]))
    return out


def _batches(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _match(operation: str, cells: list[str]) -> Any:
    return tuple(cells) if operation == "insert" else (cells[0] if cells else "")


def _to_text(value: RemoteValue) -> str:
    """A value as a Bulk API CSV cell: `#N/A` clears the field (an empty cell would leave it)."""
    if value is None or value == "":
        return "#N/A"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _from_text(cell: str, kind: FieldType) -> RemoteValue:
    """A Bulk API CSV cell as the REST API's JSON would have typed it."""
    if cell == "":
        return None
    if kind == "boolean":
        return cell.lower() == "true"
    if kind == "number":
        number = float(cell)
        return int(number) if number.is_integer() and "." not in cell else number
    if kind == "datetime":
        return format_modstamp(parse_datetime(cell))
    return cell


def _from_json(value: Any) -> RemoteValue:
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000", value):
        return format_modstamp(parse_datetime(value))
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return json.dumps(value)


def _watermark(contact: RemoteContact) -> str:
    return f"{format_modstamp(contact.modified_at)}|{contact.remote_id}"


def _parse_watermark(value: str) -> tuple[str, str]:
    stamp, _, record_id = value.partition("|")
    if not MODSTAMP.fullmatch(stamp) or not RECORD_ID.fullmatch(record_id):
        raise Invalid("not a Salesforce watermark", code="invalid_watermark")
    return stamp, record_id


def _advance(watermark: str | None, contacts: list[RemoteContact], ceiling: str) -> str | None:
    """The watermark after `contacts` (in the order Salesforce delivered them): the last one whose
    `SystemModstamp` is not after the `ceiling` read before the query. A record changed while the
    pages are read is delivered with its new, later stamp (out of order); letting it move the
    watermark would skip records changed between the ceiling and that stamp, so it does not: it is
    delivered again by the next run instead (at least once, never lost)."""
    for contact in contacts:
        if format_modstamp(contact.modified_at) <= ceiling:
            watermark = _watermark(contact)
    return watermark


def _parse_page(page: str) -> tuple[str, str | None, str]:
    try:
        token = json.loads(page)
        url, watermark, ceiling = token["url"], token["watermark"], token["ceiling"]
    except (ValueError, TypeError, KeyError):
        raise Invalid("not a Salesforce page token", code="invalid_page") from None
    if not isinstance(url, str) or not NEXT_RECORDS.fullmatch(url):
        raise Invalid("not a Salesforce page token", code="invalid_page")
    if not isinstance(ceiling, str) or not MODSTAMP.fullmatch(ceiling):
        raise Invalid("not a Salesforce page token", code="invalid_page")
    if watermark is not None:
        _parse_watermark(str(watermark))
    return url, watermark, ceiling


def _path_value(value: str) -> str:
    return quote(value, safe="")


def _message_marker(message_id: str) -> str:
    """The Message-ID as stored on the Task: as it is up to 255 characters (the field's length),
    else `sha256:` and its hex digest."""
    if len(message_id) <= 255:
        return message_id
    return "sha256:" + hashlib.sha256(message_id.encode()).hexdigest()
