"""GDPR erase through the local runner with a real Dovecot (issue 19 point 5): mail synced from
the server, matched and linked by the runner's own functions, then `POST /privacy/erase` runs on
the TasksQueue until the address is in no table and no object of the tenant; the other sender's
mail stays. The copy on the IMAP server stays too: we erase our copy, not the user's mailbox."""

from __future__ import annotations

import json
from typing import Any

import pytest

from local.runner import Runner
from tests.e2e.conftest import call, connect_mailbox
from tests.integration.dovecot import DovecotServer, DovecotUser
from tests.integration.sync_harness import message

pytestmark = pytest.mark.dovecot

TENANT = "forgetful"
ANN, JO = "ann@example.com", "jo@example.com"


@pytest.fixture(scope="module")
def runner(mail_runner: Runner) -> Runner:
    return mail_runner


def tenant_records(runner: Runner) -> list[str]:
    """Every item of the tenant in every table, and every object version of the tenant, as text."""
    dynamodb, s3 = runner.boto3_client("dynamodb"), runner.boto3_client("s3")
    out: list[str] = []
    for table in runner.deployed.tables.values():
        for page in dynamodb.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                pk = item.get("pk", {}).get("S", "")
                if pk == f"TENANT#{TENANT}" or pk.startswith(f"TENANT#{TENANT}#"):
                    out.append(json.dumps(item, sort_keys=True, default=str))
    bucket = runner.deployed.buckets["MailBucket"]
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in page.get("Versions", []):
            if f"/{TENANT}/" in version["Key"]:
                data = s3.get_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])[
                    "Body"
                ]
                out.append(version["Key"] + "\n" + data.read().decode("latin-1"))
    return out


def test_an_erased_address_is_gone_from_every_table_and_the_bucket(
    runner: Runner, dovecot_server: DovecotServer, dovecot_user: DovecotUser
) -> None:
    admin = runner.token(tenant=TENANT, role="admin", sub="owner-1")
    server, user = dovecot_server, dovecot_user
    # Given: mail from ann and from jo, synced into the tenant through a connected mailbox
    server.append(user, "INBOX", message("Quote", msgid="q1@example.com", sender=ANN), flags=[])
    server.append(user, "INBOX", message("Hello", msgid="h1@example.com", sender=JO), flags=[])
    connect_mailbox(runner, admin, server, user)
    runner.drain()
    status, page = call(runner, "GET", "/emails", admin)
    assert status == 200, page
    assert len(page["items"]) == 2
    assert any(ANN in record for record in tenant_records(runner))

    # When: an admin erases ann and the runner works the tasks queue
    status, started = call(runner, "POST", "/privacy/erase", admin, {"email": ANN})
    assert status == 202, started
    runner.drain()

    # Then: the job is done; jo's mail is all that is listed
    status, report = call(runner, "GET", f"/privacy/jobs/{started['job_id']}", admin)
    assert status == 200, report
    assert report["state"] == "done"
    assert report["counts"]["targets"] == 1
    status, page = call(runner, "GET", "/emails", admin)
    assert [e["subject"] for e in page["items"]] == ["Hello"]
    # ... and no item of any table, no object version of the bucket names ann
    left: list[Any] = [record for record in tenant_records(runner) if ANN in record]
    assert left == []
