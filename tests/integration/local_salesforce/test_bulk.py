"""Bulk API 2.0 on the Salesforce double: a 10,000-row ingest job and a query job, moved by the clock."""

from __future__ import annotations

import csv
import io

from local.clock import ManualClock
from local.salesforce import SalesforceDouble
from tests.integration.local_salesforce.conftest import HTTP, Rest

ROWS = 10_000


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_ingest_and_query_jobs_on_ten_thousand_rows(
    salesforce: SalesforceDouble, rest: Rest, clock: ManualClock
):
    # Given an insert job and 10,000 CSV rows, two of them without the required LastName
    job = rest.post("/jobs/ingest", {"object": "Contact", "operation": "insert", "lineEnding": "LF"}).json()
    assert job["state"] == "Open"
    assert job["contentUrl"] == f"services/data/v61.0/jobs/ingest/{job['id']}/batches"
    lines = ["FirstName,LastName,Email"]
    lines += [f"F{i},{'' if i in (17, 4242) else f'L{i:05d}'},p{i}@example.com" for i in range(ROWS)]
    data = ("\n".join(lines) + "\n").encode()
    # When the data is uploaded (once: a second PUT is refused) and the upload is closed
    assert rest.put_csv(f"/jobs/ingest/{job['id']}/batches", data).status_code == 201
    assert rest.put_csv(f"/jobs/ingest/{job['id']}/batches", data).status_code == 409
    closed = rest.patch(f"/jobs/ingest/{job['id']}", {"state": "UploadComplete"})
    assert closed.json()["state"] == "UploadComplete"
    early = rest.get(f"/jobs/ingest/{job['id']}/successfulResults")
    # Then the job queues, works through the rows as the clock moves, and completes
    assert early.status_code == 409
    clock.advance(3)  # 1 s queued + 2 s at 2,000 rows a second
    halfway = rest.get(f"/jobs/ingest/{job['id']}").json()
    assert (halfway["state"], halfway["numberRecordsProcessed"]) == ("InProgress", 4000)
    clock.advance(10)
    done = rest.get(f"/jobs/ingest/{job['id']}").json()
    assert (done["state"], done["numberRecordsProcessed"], done["numberRecordsFailed"]) == (
        "JobComplete",
        ROWS,
        2,
    )
    # And the results are CSV with sf__Id / sf__Created and sf__Id / sf__Error before the uploaded columns
    good = rest.get(f"/jobs/ingest/{job['id']}/successfulResults")
    bad = rest.get(f"/jobs/ingest/{job['id']}/failedResults/")
    assert good.headers["content-type"].startswith("text/csv")
    assert good.text.splitlines()[0] == '"sf__Id","sf__Created","FirstName","LastName","Email"'
    ok = rows_of(good.text)
    failed = rows_of(bad.text)
    assert len(ok) == ROWS - 2
    assert all(r["sf__Id"].startswith("003") and r["sf__Created"] == "true" for r in ok)
    assert [r["FirstName"] for r in failed] == ["F17", "F4242"]
    assert failed[0]["sf__Error"].startswith("REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]")
    assert rows_of(rest.get(f"/jobs/ingest/{job['id']}/unprocessedrecords").text) == []

    # Given a query job over the same contacts
    query = rest.post(
        "/jobs/query",
        {"operation": "query", "query": "SELECT Id, LastName, Email FROM Contact ORDER BY LastName"},
    ).json()
    assert query["state"] == "UploadComplete"
    assert rest.get(f"/jobs/query/{query['id']}/results").status_code == 409
    clock.advance(10)
    assert rest.get(f"/jobs/query/{query['id']}").json()["state"] == "JobComplete"
    # When the client pages through the results 4,000 at a time by locator
    collected: list[dict[str, str]] = []
    locator: str | None = None
    pages = 0
    while True:
        params = {"maxRecords": "4000"} | ({"locator": locator} if locator else {})
        page = HTTP.get(f"{rest.base}/jobs/query/{query['id']}/results", params=params, headers=rest.headers)
        rows = rows_of(page.text)
        assert int(page.headers["sforce-numberofrecords"]) == len(rows)
        collected += rows
        pages += 1
        locator = page.headers["sforce-locator"]
        if locator == "null":
            break
    # Then it gets every contact once, columns in the order asked, in three sets
    assert pages == 3
    assert len(collected) == ROWS - 2
    assert list(collected[0]) == ["Id", "LastName", "Email"]
    assert collected[0]["LastName"] == "L00000"
    assert len({r["Id"] for r in collected}) == ROWS - 2


def test_failed_and_aborted_jobs(rest: Rest, clock: ManualClock):
    # Given a job whose CSV names a field Contact does not have
    bad = rest.post("/jobs/ingest", {"object": "Contact", "operation": "insert"}).json()
    rest.put_csv(f"/jobs/ingest/{bad['id']}/batches", b"LastName,Nickname\nA,a\n")
    # When the upload is closed
    failed = rest.patch(f"/jobs/ingest/{bad['id']}", {"state": "UploadComplete"}).json()
    # Then the job fails with Salesforce's message
    assert failed["state"] == "Failed"
    assert failed["errorMessage"] == "InvalidBatch : Field name not found : Nickname"
    # Given a job aborted while in progress
    job = rest.post("/jobs/ingest", {"object": "Contact", "operation": "insert"}).json()
    body = "LastName\n" + "".join(f"L{i}\n" for i in range(5000))
    rest.put_csv(f"/jobs/ingest/{job['id']}/batches", body.encode())
    rest.patch(f"/jobs/ingest/{job['id']}", {"state": "UploadComplete"})
    clock.advance(2)  # 1 s queued, then 2,000 rows
    aborted = rest.patch(f"/jobs/ingest/{job['id']}", {"state": "Aborted"}).json()
    # Then the rows not reached are unprocessed, the job can be deleted, unknown jobs are 404
    assert aborted["state"] == "Aborted"
    assert aborted["numberRecordsProcessed"] == 2000
    unprocessed = rest.get(f"/jobs/ingest/{job['id']}/unprocessedrecords").text.splitlines()
    assert unprocessed[0] == '"LastName"'
    assert len(unprocessed) == 3001
    assert rest.delete(f"/jobs/ingest/{job['id']}").status_code == 204
    assert rest.get(f"/jobs/ingest/{job['id']}").status_code == 404


def test_upsert_by_external_id(salesforce: SalesforceDouble, rest: Rest, clock: ManualClock):
    # Given an external id field and one existing contact
    salesforce.add_custom_field("Contact", "Mailbridge_Id__c", external_id=True)
    existing = salesforce.create("Contact", LastName="Old", Mailbridge_Id__c="m-1")
    job = rest.post(
        "/jobs/ingest",
        {"object": "Contact", "operation": "upsert", "externalIdFieldName": "Mailbridge_Id__c"},
    ).json()
    # When two rows are upserted, one matching
    rest.put_csv(f"/jobs/ingest/{job['id']}/batches", b"Mailbridge_Id__c,LastName\nm-1,New\nm-2,Other\n")
    rest.patch(f"/jobs/ingest/{job['id']}", {"state": "UploadComplete"})
    clock.advance(5)
    ok = rows_of(rest.get(f"/jobs/ingest/{job['id']}/successfulResults").text)
    # Then the first updated the existing record and the second created one
    assert [(r["sf__Id"] == existing, r["sf__Created"]) for r in ok] == [(True, "false"), (False, "true")]
    assert salesforce.record("Contact", existing)["LastName"] == "New"
