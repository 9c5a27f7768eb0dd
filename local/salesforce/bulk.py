"""Bulk API 2.0: ingest jobs (CSV upload, state machine, per-record results) and query jobs (CSV
results paged by locator), advanced by the double's clock.

Sources [D unless marked]: Bulk API 2.0 and Bulk API Developer Guide: "Create a Job", "Upload Job
Data", "Upload Complete", "Get Job Info", "Get Job Successful Record Results" (`sf__Id`,
`sf__Created`, then the uploaded columns), "Get Job Failed Record Results" (`sf__Id`, `sf__Error`,
then the uploaded columns), "Get Job Unprocessed Record Results", "Delete a Job", "Abort a Job",
"Job States" (Open -> UploadComplete -> InProgress -> JobComplete | Failed, or Aborted),
"Get Results for a Query Job" (`locator` / `maxRecords` parameters, `Sforce-Locator` header that
reads the string "null" on the last set, `Sforce-NumberOfRecords`; columns in the order the query
names them from API 50.0 on), "Prepare CSV Files" (an empty cell leaves a field as it is, `#N/A`
sets it to null; LF or CRLF line endings; COMMA, TAB, PIPE, SEMICOLON, CARET, BACKQUOTE column
delimiters). Every result cell is quoted [R], and locators are opaque strings such as "MTAwMDA"
(base 64 of an offset, here) [D, example]. A second upload to the same job answers "Found multiple
contents for job" [R]; results of a job that has not finished answer 409 [R]; a CSV header naming
an unknown field fails the job with "InvalidBatch : Field name not found : X" [R].

Timing: a job waits `queue_seconds` after UploadComplete, is InProgress while it works through
`records_per_second` rows of the clock's time, then completes; everything happens lazily when the
double is asked (any request, or `SalesforceDouble.tick()`), so tests move jobs with the clock.
Uploaded CSV is kept as bytes and parsed row by row; results are kept as CSV lines, so memory grows
with the data, not with Python objects per cell.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from local.double_server import Call, Response, Route, route
from local.salesforce import soql
from local.salesforce.errors import RestError, SaveError, not_found
from local.salesforce.schema import format_datetime, to_text

if TYPE_CHECKING:
    from local.salesforce.double import SalesforceDouble
    from local.salesforce.rest import Context

OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}
LINE_ENDINGS = ("LF", "CRLF")
TERMINAL = ("JobComplete", "Failed", "Aborted")
DEFAULT_MAX_RECORDS = 50_000
MAX_UPLOAD = 150 * 1024 * 1024


@dataclass
class BulkSettings:
    queue_seconds: float = 1.0
    records_per_second: float = 2000.0


def _csv_line(values: list[str], delimiter: str = ",") -> str:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, quoting=csv.QUOTE_ALL, lineterminator="\n").writerow(values)
    return out.getvalue()


@dataclass
class IngestJob:
    id: str
    object: str
    operation: str
    external_id: str | None
    delimiter: str
    line_ending: str
    created_by: str
    created: datetime
    version: str
    state: str = "Open"
    modstamp: datetime | None = None
    data: bytes = b""
    ready_at: datetime | None = None  # UploadComplete + queue delay
    header: list[str] = field(default_factory=list)
    rows: Iterator[list[str]] | None = None
    total: int = 0
    processed: int = 0
    failed: int = 0
    successful_lines: list[str] = field(default_factory=list)
    failed_lines: list[str] = field(default_factory=list)
    unprocessed_lines: list[str] = field(default_factory=list)
    error_message: str | None = None
    processing_ms: int = 0

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": self.created_by,
            "createdDate": format_datetime(self.created),
            "systemModstamp": format_datetime(self.modstamp or self.created),
            "state": self.state,
            "externalIdFieldName": self.external_id,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.version),
            "jobType": "V2Ingest",
            "lineEnding": self.line_ending,
            "columnDelimiter": next(k for k, v in DELIMITERS.items() if v == self.delimiter),
            "numberRecordsProcessed": self.processed,
            "numberRecordsFailed": self.failed,
            "retries": 0,
            "totalProcessingTime": self.processing_ms,
            "apiActiveProcessingTime": self.processing_ms,
            "apexProcessingTime": 0,
        }
        if self.state == "Open":
            out["contentUrl"] = f"services/data/v{self.version}/jobs/ingest/{self.id}/batches"
        if self.error_message:
            out["errorMessage"] = self.error_message
        return out


@dataclass
class QueryJob:
    id: str
    query_text: str
    query: soql.Query
    operation: str
    delimiter: str
    line_ending: str
    created_by: str
    created: datetime
    version: str
    ready_at: datetime
    state: str = "UploadComplete"
    modstamp: datetime | None = None
    ids: list[str] = field(default_factory=list)
    done_at: datetime | None = None

    def info(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "operation": self.operation,
            "object": self.query.sobject.name,
            "createdById": self.created_by,
            "createdDate": format_datetime(self.created),
            "systemModstamp": format_datetime(self.modstamp or self.created),
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.version),
            "jobType": "V2Query",
            "lineEnding": self.line_ending,
            "columnDelimiter": next(k for k, v in DELIMITERS.items() if v == self.delimiter),
            "numberRecordsProcessed": len(self.ids) if self.state == "JobComplete" else 0,
            "retries": 0,
            "totalProcessingTime": 0,
        }


def _state_error(message: str) -> RestError:
    return RestError(409, "INVALIDJOBSTATE", message)


class BulkApi:
    def __init__(
        self, double: SalesforceDouble, guarded: Callable[[Any], Callable[[Call], Response]]
    ) -> None:
        self.double = double
        self.org = double.org
        self.guarded = guarded
        self.settings = double.bulk_settings
        self.ingest: dict[str, IngestJob] = {}
        self.queries: dict[str, QueryJob] = {}

    def routes(self) -> list[Route]:
        base = "/services/data/v{version}/jobs"
        g = self.guarded
        return [
            route("POST", base + "/ingest", g(self.create_ingest)),
            route("POST", base + "/ingest/", g(self.create_ingest)),
            route("GET", base + "/ingest", g(self.list_ingest)),
            route("GET", base + "/ingest/", g(self.list_ingest)),
            route("PUT", base + "/ingest/{job}/batches", g(self.upload)),
            route("PUT", base + "/ingest/{job}/batches/", g(self.upload)),
            route("PATCH", base + "/ingest/{job}", g(self.patch_ingest)),
            route("PATCH", base + "/ingest/{job}/", g(self.patch_ingest)),
            route("GET", base + "/ingest/{job}", g(self.get_ingest)),
            route("GET", base + "/ingest/{job}/", g(self.get_ingest)),
            route("DELETE", base + "/ingest/{job}", g(self.delete_ingest)),
            route("DELETE", base + "/ingest/{job}/", g(self.delete_ingest)),
            route("GET", base + "/ingest/{job}/successfulResults", g(self.successful)),
            route("GET", base + "/ingest/{job}/successfulResults/", g(self.successful)),
            route("GET", base + "/ingest/{job}/failedResults", g(self.failed)),
            route("GET", base + "/ingest/{job}/failedResults/", g(self.failed)),
            route("GET", base + "/ingest/{job}/unprocessedrecords", g(self.unprocessed)),
            route("GET", base + "/ingest/{job}/unprocessedrecords/", g(self.unprocessed)),
            route("POST", base + "/query", g(self.create_query)),
            route("POST", base + "/query/", g(self.create_query)),
            route("GET", base + "/query", g(self.list_query)),
            route("GET", base + "/query/", g(self.list_query)),
            route("GET", base + "/query/{job}", g(self.get_query)),
            route("GET", base + "/query/{job}/", g(self.get_query)),
            route("PATCH", base + "/query/{job}", g(self.patch_query)),
            route("PATCH", base + "/query/{job}/", g(self.patch_query)),
            route("DELETE", base + "/query/{job}", g(self.delete_query)),
            route("DELETE", base + "/query/{job}/", g(self.delete_query)),
            route("GET", base + "/query/{job}/results", g(self.results)),
            route("GET", base + "/query/{job}/results/", g(self.results)),
        ]

    # ------------------------------------------------------------------ clock

    def tick(self) -> None:
        """Move every job on to where the clock says it is."""
        now = self.double.now()
        for job in self.ingest.values():
            self._advance_ingest(job, now)
        for query in self.queries.values():
            self._advance_query(query, now)

    def _advance_ingest(self, job: IngestJob, now: datetime) -> None:
        if job.state not in ("UploadComplete", "InProgress") or job.ready_at is None or now < job.ready_at:
            return
        if job.state == "UploadComplete":
            job.state, job.modstamp = "InProgress", job.ready_at
        elapsed = (now - job.ready_at).total_seconds()
        due = min(job.total, int(elapsed * self.settings.records_per_second))
        rows = job.rows
        while job.processed < due and rows is not None:
            row = next(rows, None)
            if row is None:
                break
            self._ingest_row(job, row)
        job.processing_ms = int(job.processed / self.settings.records_per_second * 1000)
        if job.processed >= job.total:
            job.state = "JobComplete"
            job.rows = None
            job.data = b""
            job.modstamp = job.ready_at + timedelta(seconds=job.total / self.settings.records_per_second)

    def _ingest_row(self, job: IngestJob, row: list[str]) -> None:
        values: dict[str, Any] = {}
        for name, cell in zip(job.header, row, strict=False):
            if cell == "":
                continue
            values[name] = None if cell == "#N/A" else cell
        record_id = ""
        created = False
        try:
            if len(row) != len(job.header):
                raise SaveError("INVALID_FIELD", "Wrong number of columns in row")
            if job.operation == "insert":
                record = self.org.create(job.object, values, from_text=True)
                record_id, created = record["Id"], True
            elif job.operation == "upsert":
                record, created = self.org.upsert(job.object, job.external_id or "Id", values, from_text=True)
                record_id = record["Id"]
            else:
                record_id = str(next((v for k, v in values.items() if k.lower() == "id"), "") or "")
                if not record_id:
                    raise SaveError("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
                if job.operation == "update":
                    rest = {k: v for k, v in values.items() if k.lower() != "id"}
                    record_id = self.org.update(job.object, record_id, rest, from_text=True)["Id"]
                else:
                    found = self.org.find(record_id)
                    if found is None or found[0] != job.object:
                        raise SaveError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
                    self.org.delete(job.object, found[1]["Id"], hard=job.operation == "hardDelete")
                    record_id = found[1]["Id"]
        except SaveError as error:
            job.failed += 1
            job.failed_lines.append(_csv_line([record_id, error.bulk(), *row]))
        else:
            job.successful_lines.append(_csv_line([record_id, "true" if created else "false", *row]))
        job.processed += 1

    def _advance_query(self, job: QueryJob, now: datetime) -> None:
        if job.state not in ("UploadComplete", "InProgress") or now < job.ready_at:
            return
        if job.state == "UploadComplete":
            job.state, job.modstamp = "InProgress", job.ready_at
            rows = list(self.org.records[job.query.sobject.name].values())
            if job.operation == "query":
                rows = [r for r in rows if not r["IsDeleted"]]
            job.ids = [r["Id"] for r in soql.run(job.query, rows)]
            job.done_at = job.ready_at + timedelta(seconds=len(job.ids) / self.settings.records_per_second)
        if job.done_at is not None and now >= job.done_at:
            job.state, job.modstamp = "JobComplete", job.done_at

    # ------------------------------------------------------------------ ingest

    def _body(self, call: Call) -> dict[str, Any]:
        try:
            body = call.json()
        except (UnicodeDecodeError, ValueError):
            raise RestError(400, "JSON_PARSER_ERROR", "Unexpected character at [line:1, column:1]") from None
        if not isinstance(body, dict):
            raise RestError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of job info")
        return body

    def _options(self, body: dict[str, Any]) -> tuple[str, str]:
        delimiter_name = str(body.get("columnDelimiter") or "COMMA")
        line_ending = str(body.get("lineEnding") or "LF")
        if delimiter_name not in DELIMITERS or line_ending not in LINE_ENDINGS:
            raise RestError(400, "INVALIDJOB", "Invalid columnDelimiter or lineEnding")
        if str(body.get("contentType") or "CSV") != "CSV":
            raise RestError(400, "INVALIDJOB", "Invalid contentType: only CSV is supported")
        return DELIMITERS[delimiter_name], line_ending

    def create_ingest(self, call: Call, ctx: Context) -> Response:
        body = self._body(call)
        sobject = self.org.sobject(str(body.get("object") or ""))
        if sobject is None:
            raise RestError(400, "INVALIDJOB", f"Unable to find object: {body.get('object')}")
        operation = str(body.get("operation") or "")
        if operation not in OPERATIONS:
            raise RestError(400, "INVALIDJOB", f"Invalid operation: {operation}")
        external_id = body.get("externalIdFieldName")
        if operation == "upsert":
            spec = sobject.field(str(external_id or ""))
            if spec is None or not (spec.external_id or spec.name == "Id"):
                raise RestError(400, "INVALIDJOB", f"Invalid external ID field name: {external_id}")
            external_id = spec.name
        delimiter, line_ending = self._options(body)
        now = self.double.now()
        job = IngestJob(
            id=self.double.ids.record("750"),
            object=sobject.name,
            operation=operation,
            external_id=external_id if operation == "upsert" else None,
            delimiter=delimiter,
            line_ending=line_ending,
            created_by=ctx.session.user_id,
            created=now,
            version=ctx.version,
        )
        self.ingest[job.id] = job
        return Response.json(200, {k: v for k, v in job.info().items() if not k.startswith("number")})

    def _job(self, call: Call) -> IngestJob:
        job = self.ingest.get(call.params["job"])
        if job is None:
            raise not_found()
        return job

    def list_ingest(self, _call: Call, _ctx: Context) -> Response:
        return Response.json(
            200, {"done": True, "records": [j.info() for j in self.ingest.values()], "nextRecordsUrl": None}
        )

    def get_ingest(self, call: Call, _ctx: Context) -> Response:
        return Response.json(200, self._job(call).info())

    def upload(self, call: Call, _ctx: Context) -> Response:
        job = self._job(call)
        if job.state != "Open":
            raise _state_error(f"Job {job.id} is not in the Open state")
        if job.data:
            raise _state_error(
                f"Found multiple contents for job: <{job.id}>, please 'Close' / 'Abort' / 'Delete' the "
                "current Job "
                "then create a new Job and make sure you only do 'PUT' once on a given Job."
            )
        if "csv" not in call.headers.get("content-type", "").lower():
            raise RestError(400, "INVALIDJOB", "Content-Type must be text/csv")
        if len(call.body) > MAX_UPLOAD:
            raise RestError(400, "INVALIDJOB", "Upload exceeds 150 MB")
        job.data = call.body
        return Response.empty(201)

    def patch_ingest(self, call: Call, _ctx: Context) -> Response:
        job = self._job(call)
        wanted = str(self._body(call).get("state") or "")
        now = self.double.now()
        if wanted == "UploadComplete":
            if job.state != "Open":
                raise _state_error(f"Job {job.id} is not in the Open state")
            self._close(job, now)
        elif wanted == "Aborted":
            if job.state in TERMINAL:
                raise _state_error(f"Job {job.id} is already {job.state}")
            self._abort(job, now)
        else:
            raise RestError(400, "INVALIDJOB", f"Invalid state: {wanted}")
        return Response.json(200, job.info())

    def _close(self, job: IngestJob, now: datetime) -> None:
        job.modstamp = now
        text = job.data.decode("utf-8-sig", "replace")
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=job.delimiter)
        header = next(reader, None)
        if not header or not text.strip():
            job.state, job.error_message = "Failed", "InvalidBatch : Failed to parse CSV. Found no data"
            return
        names: list[str] = []
        sobject = self.org.types[job.object]
        for column in header:
            spec = sobject.field(column.strip())
            if spec is None:
                job.state, job.error_message = "Failed", f"InvalidBatch : Field name not found : {column}"
                return
            names.append(spec.name)
        if job.operation in ("update", "delete", "hardDelete") and "Id" not in names:
            job.state, job.error_message = "Failed", "InvalidBatch : Field name not found : Id"
            return
        if job.operation == "upsert" and job.external_id not in names:
            job.state, job.error_message = (
                "Failed",
                f"InvalidBatch : Field name not found : {job.external_id}",
            )
            return
        job.header = names
        job.total = sum(1 for _ in csv.reader(io.StringIO(text, newline=""), delimiter=job.delimiter)) - 1
        job.rows = reader
        job.state = "UploadComplete"
        job.ready_at = now + timedelta(seconds=self.settings.queue_seconds)

    def _abort(self, job: IngestJob, now: datetime) -> None:
        self._advance_ingest(job, now)
        if job.state in TERMINAL:
            return
        if job.rows is not None:
            job.unprocessed_lines = [_csv_line(row) for row in job.rows]
        job.rows = None
        job.state, job.modstamp = "Aborted", now

    def delete_ingest(self, call: Call, _ctx: Context) -> Response:
        job = self._job(call)
        if job.state in ("Open", "InProgress"):
            raise _state_error(f"Job {job.id} is {job.state}: abort it first")
        del self.ingest[job.id]
        return Response.empty(204)

    def _results(self, call: Call, first: list[str], lines: list[str]) -> Response:
        job = self._job(call)
        if job.state not in TERMINAL:
            raise _state_error(f"Job {job.id} has not finished processing")
        header = _csv_line([*first, *job.header])
        return Response(200, (header + "".join(lines)).encode(), {"Content-Type": "text/csv"})

    def successful(self, call: Call, _ctx: Context) -> Response:
        job = self._job(call)
        return self._results(call, ["sf__Id", "sf__Created"], job.successful_lines)

    def failed(self, call: Call, _ctx: Context) -> Response:
        job = self._job(call)
        return self._results(call, ["sf__Id", "sf__Error"], job.failed_lines)

    def unprocessed(self, call: Call, _ctx: Context) -> Response:
        job = self._job(call)
        return self._results(call, [], job.unprocessed_lines)

    # ------------------------------------------------------------------ query jobs

    def create_query(self, call: Call, ctx: Context) -> Response:
        body = self._body(call)
        operation = str(body.get("operation") or "")
        if operation not in ("query", "queryAll"):
            raise RestError(400, "INVALIDJOB", f"Invalid operation: {operation}")
        text = str(body.get("query") or "")
        query = soql.parse(text, self.org.sobject)
        if query.count:
            raise RestError(
                400, "API_ERROR", "Aggregate queries are not supported by Bulk API 2.0 query jobs"
            )
        delimiter, line_ending = self._options(body)
        now = self.double.now()
        job = QueryJob(
            id=self.double.ids.record("750"),
            query_text=text,
            query=query,
            operation=operation,
            delimiter=delimiter,
            line_ending=line_ending,
            created_by=ctx.session.user_id,
            created=now,
            version=ctx.version,
            ready_at=now + timedelta(seconds=self.settings.queue_seconds),
        )
        self.queries[job.id] = job
        info = job.info()
        return Response.json(
            200, {k: v for k, v in info.items() if not k.startswith("number") and k != "retries"}
        )

    def _query_job(self, call: Call) -> QueryJob:
        job = self.queries.get(call.params["job"])
        if job is None:
            raise not_found()
        return job

    def list_query(self, _call: Call, _ctx: Context) -> Response:
        return Response.json(
            200, {"done": True, "records": [j.info() for j in self.queries.values()], "nextRecordsUrl": None}
        )

    def get_query(self, call: Call, _ctx: Context) -> Response:
        return Response.json(200, self._query_job(call).info())

    def patch_query(self, call: Call, _ctx: Context) -> Response:
        job = self._query_job(call)
        if str(self._body(call).get("state") or "") != "Aborted":
            raise RestError(400, "INVALIDJOB", "Only Aborted can be set on a query job")
        if job.state in TERMINAL:
            raise _state_error(f"Job {job.id} is already {job.state}")
        job.state, job.modstamp = "Aborted", self.double.now()
        return Response.json(200, job.info())

    def delete_query(self, call: Call, _ctx: Context) -> Response:
        job = self._query_job(call)
        if job.state not in TERMINAL:
            raise _state_error(f"Job {job.id} is {job.state}: abort it first")
        del self.queries[job.id]
        return Response.empty(204)

    def results(self, call: Call, ctx: Context) -> Response:
        job = self._query_job(call)
        if job.version != ctx.version:
            raise RestError(409, "INVALIDJOBSTATE", "Use the API version the query job was created with")
        if job.state != "JobComplete":
            raise _state_error(f"Job {job.id} is {job.state}: results are available once it is JobComplete")
        offset = 0
        if (locator := call.one("locator")) is not None:
            try:
                offset = int(base64.b64decode(locator + "=" * (-len(locator) % 4)).decode())
            except (binascii.Error, UnicodeDecodeError, ValueError):
                raise RestError(400, "INVALID_LOCATOR", f"Invalid locator: {locator}") from None
        size_text = call.one("maxRecords")
        if size_text is not None and (not size_text.isdigit() or int(size_text) < 1):
            raise RestError(400, "INVALIDJOB", f"Invalid maxRecords: {size_text}")
        size = int(size_text) if size_text else DEFAULT_MAX_RECORDS
        chosen = job.ids[offset : offset + size]
        fields = job.query.fields
        ending = "\r\n" if job.line_ending == "CRLF" else "\n"
        out = io.StringIO()
        writer = csv.writer(out, delimiter=job.delimiter, quoting=csv.QUOTE_ALL, lineterminator=ending)
        writer.writerow(fields)
        rows = self.org.records[job.query.sobject.name]
        written = 0
        for record_id in chosen:
            record = rows.get(record_id)
            if record is None:
                continue
            writer.writerow([to_text(record.get(name)) for name in fields])
            written += 1
        next_offset = offset + size
        locator_out = (
            base64.b64encode(str(next_offset).encode()).decode().rstrip("=")
            if next_offset < len(job.ids)
            else "null"
        )
        return Response(
            200,
            out.getvalue().encode(),
            {
                "Content-Type": "text/csv",
                "Sforce-Locator": locator_out,
                "Sforce-NumberOfRecords": str(written),
            },
        )
