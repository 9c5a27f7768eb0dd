"""The audit log through the local runner (`make run`): an audited request is in the AuditTable
(GET /audit reads it), and draining the runner pumps the table's stream into the archive function,
which writes it to the Object Lock bucket."""

from __future__ import annotations

import json
import urllib.request

from local.runner import Runner
from tests.e2e.conftest import http

TENANT = "audit-e2e"


def test_an_audited_request_reaches_the_table_and_through_the_stream_the_locked_archive(
    runner: Runner,
) -> None:
    # Given an admin of a tenant of its own
    admin = runner.token(tenant=TENANT, role="admin", sub="audit-admin")
    # When the admin changes the tenant's features through the runner
    request = urllib.request.Request(
        runner.url + "/features",
        data=json.dumps({"campaigns": True}).encode(),
        method="PUT",
        headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 200
    # Then GET /audit lists the write
    listed = http(runner, "GET", "/audit", admin).json()["items"]
    assert [(e["actor"], e["action"], e["status"]) for e in listed] == [
        ("audit-admin", "put_features_features_put", 200)
    ]
    # And once the runner drains, the stream consumer put it in the archive bucket, locked
    runner.drain()
    s3 = runner.boto3_client("s3")
    bucket = runner.deployed.buckets["AuditBucket"]
    keys = [
        o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"audit/{TENANT}/").get("Contents", [])
    ]
    assert len(keys) == 1
    stored = s3.get_object(Bucket=bucket, Key=keys[0])
    lines = [json.loads(line) for line in stored["Body"].read().decode().splitlines()]
    assert [line["request_id"] for line in lines] == [listed[0]["request_id"]]
    assert stored["ObjectLockMode"] == "COMPLIANCE"
