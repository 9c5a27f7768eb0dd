"""`make bench` (crm_activity): CRM activity logging end to end, requests per logged email.

On moto built from template.yaml, with the Salesforce double (in-process) as the org: an
integration connected by the device flow, `EMAILS` contacts synced (their `RemoteLink`s written),
one stored email each, and one `email.linked` announcement per email on the CrmActivityQueue.
functions/crm_activity consumes the queue ten records a batch, as the event source mapping does.
Counted while the function runs: every DynamoDB request (botocore calls to the DynamoDB service,
batches counted once), every Salesforce API request (the double's own API usage counter) and the
KMS and SQS calls, per logged email. Then the same announcements again (a redelivery, or the
second mailbox holding the same mail): the figure for a repeat.

Peer: the adapter alone, `SalesforceProvider.log_email` (bench_crm.py: 2.0 Salesforce requests
per logged email, 1.0 for a repeat, no storage). The ratio shows what the consumer adds on top
(integrations, emails, links and logged Message-IDs read once per batch, the sync-log run) and
what our record of logged Message-IDs saves on a repeat.

    .venv/bin/python benchmarks/bench_crm_activity.py        (BENCH_ACTIVITY_EMAILS=n, default 50)
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "layers" / "mailbridge"), str(ROOT)]
EMAILS = int(os.environ.get("BENCH_ACTIVITY_EMAILS", "50"))
TENANT = "acme"
ADAPTER_FIRST = 2.0  # bench_crm.py, SalesforceProvider.log_email alone
ADAPTER_REPEAT = 1.0

for name, value in {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "mailbridge",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}.items():
    os.environ.setdefault(name, value)


@contextmanager
def counting_aws() -> Iterator[Counter[str]]:
    """Count botocore API calls by service while the block runs."""
    from botocore.client import BaseClient

    counts: Counter[str] = Counter()
    original = getattr(BaseClient, "_make_api_call")  # noqa: B009 - private, so mypy cannot see it

    def counted(self: Any, operation: str, params: Any) -> Any:
        counts[self.meta.service_model.service_name] += 1
        return original(self, operation, params)

    setattr(BaseClient, "_make_api_call", counted)  # noqa: B010
    try:
        yield counts
    finally:
        setattr(BaseClient, "_make_api_call", original)  # noqa: B010


def main() -> int:
    import boto3
    from moto import mock_aws

    from local.resources import create_resources
    from local.salesforce import SalesforceDouble
    from local.template import load_template
    from mailbridge.crm.integrations.models import IntegrationCreate, RemoteLink
    from mailbridge.crm.integrations.service import poll_device, start_device
    from mailbridge.crm.integrations.wiring import activity_deps, integration_deps
    from mailbridge.store.base import tenant_pk
    from mailbridge.store.crm_remote_ids import RemoteIdStore
    from mailbridge.store.emails import EmailStore
    from mailbridge.store.keys import email_sk
    from mailbridge.tenancy import Role, TenantContext
    from tests.fixtures.aws import FakeLambdaContext, load_function, reset_caches
    from tests.integration.crm_integrations_harness import reset_crm_caches
    from tests.integration.sync_harness import _record

    with mock_aws(), SalesforceDouble(seed=5) as salesforce:
        template = load_template([ROOT / "template.yaml"])
        deployed = create_resources(boto3.session.Session(), template)
        os.environ.update(template.functions()["CrmActivityFunction"].environment)
        app = salesforce.register_app(["https://api.mailbridge.test/oauth/salesforce/callback"])
        secret_arn = deployed.secrets["SalesforceClientSecret"]
        boto3.client("secretsmanager").put_secret_value(SecretId=secret_arn, SecretString=app.client_secret)
        os.environ.update(
            {
                "SALESFORCE_CLIENT_ID": app.client_id,
                "SALESFORCE_CLIENT_SECRET_ARN": secret_arn,
                "SALESFORCE_LOGIN_URL": salesforce.login_url,
                "ALLOW_PRIVATE_MAIL_HOSTS": "true",  # the double listens on http://127.0.0.1
            }
        )
        reset_caches()
        reset_crm_caches()
        salesforce.add_custom_field("Task", "Mailbridge_Message_Id__c", "text", 255)

        # A connected org (device flow), EMAILS synced contacts with one email each.
        ctx = TenantContext(tenant_id=TENANT, role=Role.ADMIN, subject="bench")
        started = start_device(ctx, IntegrationCreate(provider="salesforce"), integration_deps())
        salesforce.approve_device(started.user_code)
        integration_id = started.integration.integration_id
        assert poll_device(ctx, integration_id, integration_deps()).status == "connected"
        links, announcements = [], []
        emails = EmailStore(deployed.tables["EmailsTable"])
        for i in range(EMAILS):
            remote_id = salesforce.create("Contact", LastName=f"Mail{i}", Email=f"m{i}@example.com")
            contact_id = f"ct_{i:024d}"
            links.append(
                RemoteLink(
                    integration_id=integration_id,
                    contact_id=contact_id,
                    remote_id=remote_id,
                    synced_at=datetime.now(UTC),
                )
            )
            email_id = f"em_{i:026d}"
            emails.table.put_item(
                Item={
                    "pk": tenant_pk(TENANT),
                    "sk": email_sk(email_id),
                    "email_id": email_id,
                    "message_id": f"<bench.{i}@mail.example.com>",
                    "subject": "Proposal",
                    "date": "2030-01-01T09:00:00+00:00",
                    "direction": "inbound",
                    "from": [{"address": f"m{i}@example.com", "name": None}],
                    "to": [{"address": "me@acme.example", "name": None}],
                    "snippet": "Hello.",
                }
            )
            announcements.append(
                {
                    "source": "mailbridge",
                    "detail-type": "email.linked",
                    "detail": {
                        "tenant_id": TENANT,
                        "data": {"email_id": email_id, "contact_ids": [contact_id]},
                    },
                }
            )
        RemoteIdStore(deployed.tables["CrmTable"]).put(TENANT, links)
        activity_deps()  # built before counting, as a warm container has it
        handler = load_function("crm_activity").lambda_handler
        sqs: Any = boto3.client("sqs")
        queue_url = deployed.queue_urls["CrmActivityQueue"]

        def run() -> tuple[Counter[str], int, int]:
            for start in range(0, len(announcements), 10):
                entries = [
                    {"Id": str(n), "MessageBody": json.dumps(a)}
                    for n, a in enumerate(announcements[start : start + 10])
                ]
                sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
            used_before = salesforce.api_usage()[0]
            total: Counter[str] = Counter()
            failures = 0
            while True:
                messages = sqs.receive_message(
                    QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
                ).get("Messages", [])
                if not messages:
                    break
                event = {"Records": [_record(m, queue_url) for m in messages]}
                with counting_aws() as counts:
                    result = handler(event, FakeLambdaContext())
                total.update(counts)
                failures += len(result["batchItemFailures"])
                for m in messages:
                    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
            return total, salesforce.api_usage()[0] - used_before, failures

        first, first_sf, first_failed = run()
        tasks = len(salesforce.records("Task"))
        again, again_sf, again_failed = run()
        tasks_after = len(salesforce.records("Task"))

    def line(label: str, counts: Counter[str], provider: int, peer: float) -> None:
        dynamodb = counts["dynamodb"]
        per_email = (dynamodb + provider) / EMAILS
        print(
            f"   {label}: DynamoDB {dynamodb / EMAILS:.2f} + Salesforce {provider / EMAILS:.2f}"
            f" (KMS {counts['kms'] / EMAILS:.2f}, SQS {counts['sqs'] / EMAILS:.2f}, other"
            f" {sum(v for k, v in counts.items() if k not in {'dynamodb', 'kms', 'sqs'}) / EMAILS:.2f})"
        )
        print(f"crm activity requests per logged email{label_suffix(label)}: {per_email:.2f}")
        print(f"   vs the adapter alone ({peer:.1f} Salesforce requests): {per_email / peer:.2f}x")

    def label_suffix(label: str) -> str:
        return " for a repeat" if label == "repeat" else ""

    print(f"{EMAILS} emails to synced contacts, announced once each, consumed 10 to a batch")
    print(
        f"   tasks created: {tasks} (then {tasks_after} after the repeat); failed records: "
        f"{first_failed} + {again_failed}"
    )
    line("first", first, first_sf, ADAPTER_FIRST)
    line("repeat", again, again_sf, ADAPTER_REPEAT)
    return 0 if tasks == tasks_after == EMAILS and not first_failed + again_failed else 1


if __name__ == "__main__":
    sys.exit(main())
