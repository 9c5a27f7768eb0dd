"""The REST API under /services/data/vXX.X: sObject rows and describe, SOQL query and queryAll with
paging, composite sObject collections, limits.

Sources [D unless marked]: REST API Developer Guide: "sObject Rows", "sObject Describe",
"Describe Global", "Query" / "QueryAll" (`totalSize`, `done`, `nextRecordsUrl`, `records` with
`attributes`; batches of 2,000 by default, `Sforce-Query-Options: batchSize=N` with N from 200 to
2,000), "sObject Collections" (`/composite/sobjects`: at most 200 records, `allOrNone`),
"Limits", "Limit Info Header" (`Sforce-Limit-Info: api-usage=N/M` on every REST answer except the
versions list), "Status Codes and Error Responses". Query cursors expire after 15 minutes without
use and a user keeps at most 10 open (the oldest is dropped) [R]. The org's API request allocation
is counted over a rolling 24 hours [D, "API Request Limits and Allocations"]; past it every call
answers 403 REQUEST_LIMIT_EXCEEDED until old requests age out of the window.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from local.double_server import Call, Response, Route, route
from local.salesforce import soql
from local.salesforce.errors import (
    RestError,
    SaveError,
    invalid_session,
    json_parser_error,
    no_such_column,
    not_found,
    request_limit_exceeded,
)
from local.salesforce.ids import to18
from local.salesforce.oauth import AccessToken
from local.salesforce.schema import SObjectType

if TYPE_CHECKING:
    from local.salesforce.double import SalesforceDouble

VERSION = re.compile(r"(\d{2})\.0")
MIN_VERSION, MAX_VERSION = 31, 62
DEFAULT_BATCH, MIN_BATCH, MAX_BATCH = 2000, 200, 2000
CURSOR_IDLE = timedelta(minutes=15)
MAX_CURSORS = 10
COLLECTION_LIMIT = 200
DAY = timedelta(hours=24)


@dataclass
class ApiLimits:
    """The org's daily API request allocation over a rolling 24 hours."""

    daily: int = 100_000
    _calls: deque[datetime] = field(default_factory=deque)
    rejected: int = 0

    def used(self, now: datetime) -> int:
        while self._calls and self._calls[0] <= now - DAY:
            self._calls.popleft()
        return len(self._calls)

    def charge(self, now: datetime) -> None:
        if self.used(now) >= self.daily:
            self.rejected += 1
            raise request_limit_exceeded()
        self._calls.append(now)

    def header(self, now: datetime) -> str:
        return f"api-usage={self.used(now)}/{self.daily}"

    def spend(self, count: int, now: datetime) -> None:
        """Calls made elsewhere (another integration) count against the same allocation."""
        self._calls.extend([now] * count)


@dataclass
class Cursor:
    id: str
    user_id: str
    type_name: str
    fields: list[str]
    ids: list[str]
    version: str
    all_rows: bool
    last_used: datetime


@dataclass
class Context:
    """What a REST handler needs: the session and the API version of the request."""

    session: AccessToken
    version: str


RestHandler = Callable[[Call, Context], Response]


class RestApi:
    def __init__(self, double: SalesforceDouble) -> None:
        self.double = double
        self.org = double.org
        self.cursors: dict[str, Cursor] = {}

    def routes(self) -> list[Route]:
        base = "/services/data/v{version}"
        g = self.guarded
        return [
            route("GET", "/services/data", self.versions),
            route("GET", "/services/data/", self.versions),
            route("GET", base, g(self.resources)),
            route("GET", base + "/limits", g(self.limits)),
            route("GET", base + "/sobjects", g(self.describe_global)),
            route("GET", base + "/sobjects/{sobject}", g(self.sobject_info)),
            route("POST", base + "/sobjects/{sobject}", g(self.create)),
            route("GET", base + "/sobjects/{sobject}/describe", g(self.describe)),
            route("GET", base + "/sobjects/{sobject}/{id}", g(self.read)),
            route("PATCH", base + "/sobjects/{sobject}/{id}", g(self.update)),
            route("DELETE", base + "/sobjects/{sobject}/{id}", g(self.delete)),
            route("PATCH", base + "/sobjects/{sobject}/{field}/{value}", g(self.upsert)),
            route("GET", base + "/query", g(self.query)),
            route("GET", base + "/query/", g(self.query)),
            route("GET", base + "/query/{locator}", g(self.more)),
            route("GET", base + "/queryAll", g(self.query_all)),
            route("GET", base + "/queryAll/", g(self.query_all)),
            route("GET", base + "/queryAll/{locator}", g(self.more)),
            route("POST", base + "/composite/sobjects", g(self.collection_create)),
            route("PATCH", base + "/composite/sobjects", g(self.collection_update)),
            route("DELETE", base + "/composite/sobjects", g(self.collection_delete)),
        ]

    # ------------------------------------------------------------------ plumbing

    def guarded(self, handler: RestHandler) -> Callable[[Call], Response]:
        """Version check, session check, the API allocation, and the Sforce-Limit-Info header."""

        def run(call: Call) -> Response:
            version = call.params.get("version", "")
            match = VERSION.fullmatch(version)
            if match is None or not MIN_VERSION <= int(match.group(1)) <= MAX_VERSION:
                raise not_found()
            with self.double.lock:
                session = self.double.oauth.session(call.bearer())
                if session is None:
                    raise invalid_session()
                now = self.double.now()
                self.double.bulk.tick()
                self.double.faults.check(call.path)
                try:
                    self.double.limits.charge(now)
                    response = handler(call, Context(session, version))
                except RestError as error:
                    response = error.response()
                response.headers["Sforce-Limit-Info"] = self.double.limits.header(now)
                return response

        return run

    def _sobject(self, name: str) -> SObjectType:
        sobject = self.org.sobject(name)
        if sobject is None:
            raise not_found()
        return sobject

    def _body(self, call: Call) -> Any:
        try:
            return call.json()
        except (UnicodeDecodeError, ValueError):
            raise json_parser_error() from None

    # ------------------------------------------------------------------ discovery

    def versions(self, _call: Call) -> Response:
        return Response.json(
            200,
            [
                {"label": f"v{v}.0", "url": f"/services/data/v{v}.0", "version": f"{v}.0"}
                for v in range(MIN_VERSION, MAX_VERSION + 1)
            ],
        )

    def resources(self, _call: Call, ctx: Context) -> Response:
        base = f"/services/data/v{ctx.version}"
        names = ("sobjects", "query", "queryAll", "composite", "limits", "jobs")
        return Response.json(200, {name: f"{base}/{name}" for name in names})

    def limits(self, _call: Call, _ctx: Context) -> Response:
        now = self.double.now()
        daily = self.double.limits.daily
        return Response.json(
            200,
            {"DailyApiRequests": {"Max": daily, "Remaining": max(0, daily - self.double.limits.used(now))}},
        )

    def describe_global(self, _call: Call, ctx: Context) -> Response:
        return Response.json(
            200,
            {
                "encoding": "UTF-8",
                "maxBatchSize": COLLECTION_LIMIT,
                "sobjects": [t.summary(ctx.version) for t in self.org.types.values()],
            },
        )

    def sobject_info(self, call: Call, ctx: Context) -> Response:
        sobject = self._sobject(call.params["sobject"])
        return Response.json(200, {"objectDescribe": sobject.summary(ctx.version), "recentItems": []})

    def describe(self, call: Call, ctx: Context) -> Response:
        return Response.json(200, self._sobject(call.params["sobject"]).describe(ctx.version))

    # ------------------------------------------------------------------ rows

    def create(self, call: Call, _ctx: Context) -> Response:
        sobject = self._sobject(call.params["sobject"])
        body = self._body(call)
        if not isinstance(body, dict):
            raise json_parser_error("Cannot deserialize instance of sObject from a non-object value")
        if any(k.lower() == "id" for k in body):
            raise RestError(400, "INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
        try:
            record = self.org.create(sobject.name, body)
        except SaveError as error:
            raise error.rest() from None
        return Response.json(201, {"id": record["Id"], "success": True, "errors": []})

    def _record(self, sobject: SObjectType, record_id: str) -> dict[str, Any]:
        full = to18(record_id)
        if full is None:
            raise not_found(f"Provided external ID field does not exist or is not accessible: {record_id}")
        record = self.org.records[sobject.name].get(full)
        if record is None:
            raise not_found()
        if record["IsDeleted"]:
            raise RestError(404, "ENTITY_IS_DELETED", "entity is deleted", [])
        return record

    def read(self, call: Call, ctx: Context) -> Response:
        sobject = self._sobject(call.params["sobject"])
        record = self._record(sobject, call.params["id"])
        names: list[str] | None = None
        if call.one("fields"):
            names = []
            for name in call.many("fields"):
                spec = sobject.field(name)
                if spec is None:
                    raise RestError(400, "INVALID_FIELD", no_such_column(name, sobject.name))
                names.append(spec.name)
        return Response.json(200, self.org.json(sobject.name, record, ctx.version, names))

    def update(self, call: Call, _ctx: Context) -> Response:
        sobject = self._sobject(call.params["sobject"])
        record = self._record(sobject, call.params["id"])
        body = self._body(call)
        if not isinstance(body, dict):
            raise json_parser_error("Cannot deserialize instance of sObject from a non-object value")
        try:
            self.org.update(sobject.name, record["Id"], body)
        except SaveError as error:
            raise error.rest() from None
        return Response.empty(204)

    def delete(self, call: Call, _ctx: Context) -> Response:
        sobject = self._sobject(call.params["sobject"])
        record = self._record(sobject, call.params["id"])
        self.org.delete(sobject.name, record["Id"])
        return Response.empty(204)

    def upsert(self, call: Call, _ctx: Context) -> Response:
        sobject = self._sobject(call.params["sobject"])
        spec = sobject.field(call.params["field"])
        if spec is None or not spec.external_id:
            raise not_found(
                f"Provided external ID field does not exist or is not accessible: {call.params['field']}"
            )
        body = self._body(call)
        if not isinstance(body, dict):
            raise json_parser_error("Cannot deserialize instance of sObject from a non-object value")
        try:
            record, created = self.org.upsert(
                sobject.name, spec.name, {**body, spec.name: call.params["value"]}
            )
        except SaveError as error:
            raise error.rest() from None
        return Response.json(
            201 if created else 200, {"id": record["Id"], "success": True, "errors": [], "created": created}
        )

    # ------------------------------------------------------------------ SOQL

    def query(self, call: Call, ctx: Context) -> Response:
        return self._query(call, ctx, all_rows=False)

    def query_all(self, call: Call, ctx: Context) -> Response:
        return self._query(call, ctx, all_rows=True)

    def _batch_size(self, call: Call) -> int:
        options = call.headers.get("sforce-query-options", "")
        match = re.search(r"batchSize\s*=\s*(\d+)", options)
        if match is None:
            return DEFAULT_BATCH
        return max(MIN_BATCH, min(MAX_BATCH, int(match.group(1))))

    def _query(self, call: Call, ctx: Context, all_rows: bool) -> Response:
        text = call.one("q")
        if not text:
            raise RestError(400, "MALFORMED_QUERY", "A query string has to be specified")
        query = soql.parse(text, self.org.sobject)
        rows = list(self.org.records[query.sobject.name].values())
        if not all_rows:
            rows = [r for r in rows if not r["IsDeleted"]]
        found = soql.run(query, rows)
        if query.count:
            return Response.json(200, {"totalSize": len(found), "done": True, "records": []})
        fields = query.fields
        cursor = Cursor(
            id=self.double.ids.record("01g"),
            user_id=ctx.session.user_id,
            type_name=query.sobject.name,
            fields=fields,
            ids=[r["Id"] for r in found],
            version=ctx.version,
            all_rows=all_rows,
            last_used=self.double.now(),
        )
        return self._page(cursor, 0, self._batch_size(call))

    def _page(self, cursor: Cursor, offset: int, size: int) -> Response:
        chosen = cursor.ids[offset : offset + size]
        records = []
        for record_id in chosen:
            record = self.org.records[cursor.type_name].get(record_id)
            if record is not None:
                records.append(self.org.json(cursor.type_name, record, cursor.version, cursor.fields))
        done = offset + size >= len(cursor.ids)
        body: dict[str, Any] = {"totalSize": len(cursor.ids), "done": done}
        if not done:
            self._keep(cursor)
            resource = "queryAll" if cursor.all_rows else "query"
            body["nextRecordsUrl"] = (
                f"/services/data/v{cursor.version}/{resource}/{cursor.id[:15]}-{offset + size}"
            )
        else:
            self.cursors.pop(cursor.id[:15], None)
        body["records"] = records
        return Response.json(200, body)

    def _keep(self, cursor: Cursor) -> None:
        mine = sorted(
            (c for c in self.cursors.values() if c.user_id == cursor.user_id and c.id != cursor.id),
            key=lambda c: c.last_used,
        )
        while len(mine) >= MAX_CURSORS:
            self.cursors.pop(mine.pop(0).id[:15], None)
        self.cursors[cursor.id[:15]] = cursor

    def more(self, call: Call, _ctx: Context) -> Response:
        locator, _, offset_text = call.params["locator"].partition("-")
        cursor = self.cursors.get(locator)
        now = self.double.now()
        if cursor is None or now - cursor.last_used > CURSOR_IDLE or not offset_text.isdigit():
            self.cursors.pop(locator, None)
            raise RestError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        cursor.last_used = now
        return self._page(cursor, int(offset_text), self._batch_size(call))

    # ------------------------------------------------------------------ sObject collections

    def _collection(self, call: Call) -> tuple[bool, list[Any]]:
        body = self._body(call)
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise json_parser_error("Cannot deserialize instance of collection request")
        records = body["records"]
        if len(records) > COLLECTION_LIMIT:
            raise RestError(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {COLLECTION_LIMIT} records into this call",
            )
        for record in records:
            if not isinstance(record, dict) or not isinstance(record.get("attributes"), dict):
                raise RestError(400, "INVALID_TYPE", "Must send a concrete entity type.")
            if self.org.sobject(str(record["attributes"].get("type", ""))) is None:
                raise RestError(400, "INVALID_TYPE", "Must send a concrete entity type.")
        return bool(body.get("allOrNone", False)), records

    def collection_create(self, call: Call, _ctx: Context) -> Response:
        all_or_none, records = self._collection(call)

        def save(record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
            sobject = self.org.sobject(record["attributes"]["type"])
            assert sobject is not None
            if any(k.lower() == "id" for k in record):
                raise SaveError("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
            return sobject.name, self.org.create(sobject.name, record, notify=False)

        return Response.json(200, self._apply(records, all_or_none, save, "created"))

    def collection_update(self, call: Call, _ctx: Context) -> Response:
        all_or_none, records = self._collection(call)

        def save(record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
            sobject = self.org.sobject(record["attributes"]["type"])
            assert sobject is not None
            record_id = next((str(v) for k, v in record.items() if k.lower() == "id"), None)
            if not record_id:
                raise SaveError("MISSING_ARGUMENT", "Id not specified in an update call", [])
            return sobject.name, self.org.update(sobject.name, record_id, record, notify=False)

        return Response.json(200, self._apply(records, all_or_none, save, "updated"))

    def collection_delete(self, call: Call, _ctx: Context) -> Response:
        ids = call.many("ids")
        if len(ids) > COLLECTION_LIMIT:
            raise RestError(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {COLLECTION_LIMIT} records into this call",
            )
        all_or_none = (call.one("allOrNone") or "false").lower() == "true"

        def save(record_id: str) -> tuple[str, dict[str, Any]]:
            found = self.org.find(record_id)
            if found is None:
                raise SaveError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
            return found[0], self.org.delete(found[0], found[1]["Id"], notify=False)

        return Response.json(200, self._apply(ids, all_or_none, save, "deleted"))

    def _apply(
        self,
        items: list[Any],
        all_or_none: bool,
        save: Callable[[Any], tuple[str, dict[str, Any]]],
        kind: str,
    ) -> list[dict[str, Any]]:
        """Save each item; with allOrNone, one failure rolls every save back [D]. Outbound messages
        fire only for what was committed."""
        snapshot = self._snapshot() if all_or_none else None
        results: list[dict[str, Any]] = []
        saved: list[tuple[str, dict[str, Any]]] = []
        failed = False
        for item in items:
            try:
                type_name, record = save(item)
            except SaveError as error:
                failed = True
                results.append({"success": False, "errors": [error.save_result()]})
                continue
            saved.append((type_name, record))
            results.append({"id": record["Id"], "success": True, "errors": []})
        if failed and snapshot is not None:
            self._restore(snapshot)
            rolled = {
                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "message": "Record rolled back because not all records were valid and the request was using "
                "AllOrNone header",
                "fields": [],
            }
            return [
                r if not r["success"] else {"id": r["id"], "success": False, "errors": [rolled]}
                for r in results
            ]
        for type_name, record in saved:
            self.org._notify(type_name, record, kind)
        return results

    def _snapshot(self) -> dict[str, dict[str, dict[str, Any]]]:
        return {name: {k: dict(v) for k, v in rows.items()} for name, rows in self.org.records.items()}

    def _restore(self, snapshot: dict[str, dict[str, dict[str, Any]]]) -> None:
        for name, rows in snapshot.items():
            self.org.records[name] = rows
        self.org.reindex()
