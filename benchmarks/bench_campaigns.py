"""Campaign enqueue rate, in-process on moto: `POST /crm/campaigns/{id}/send` and the outbox
function working through its chunks until every recipient's email is rendered, composed, stored,
scheduled in its throttle slot and linked to the campaign (recipients per second), and the AWS
requests it made per recipient (botocore `before-call` on the functions' clients: DynamoDB, S3,
SQS, EventBridge Scheduler, EventBridge).

Peer, in the same run: the same recipients queued by one `POST /emails/send` with `template_id`
per recipient (what a client would do without campaigns, and what the campaign path did per
recipient before it was batched: about 1 recipient/s and 15 requests per recipient on this
machine). No thresholds: it prints both rates, both request counts and the ratios.

    .venv/bin/python benchmarks/bench_campaigns.py        (BENCH_RECIPIENTS=n, default 200)
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "layers" / "mailbridge"), str(ROOT)]
RECIPIENTS = int(os.environ.get("BENCH_RECIPIENTS", "200"))

for name, value in {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "mailbridge",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}.items():
    os.environ.setdefault(name, value)


def _call(handler: Any, name: str, *, body: Any = None, path: dict[str, str] | None = None) -> Any:
    from tests.events import load_event
    from tests.fixtures.aws import FakeLambdaContext

    event = load_event(f"api/{name}.json", tenant="acme", role="admin", body=body)
    event["headers"].pop("idempotency-key", None)
    if path:
        raw = event["routeKey"].split(" ", 1)[1]
        for key, value in path.items():
            raw = raw.replace("{" + key + "}", value)
        event["pathParameters"] = dict(path)
        event["rawPath"] = event["requestContext"]["http"]["path"] = raw
    response = handler(event, FakeLambdaContext())
    assert response["statusCode"] < 300, response
    return json.loads(response["body"])


def _seed(env: dict[str, str]) -> tuple[str, list[str]]:
    """An IMAP account and RECIPIENTS contacts tagged `bench`; their addresses."""
    from mailbridge import accounts, crypto
    from mailbridge.crm.models import Contact
    from mailbridge.models.account import Account, PublicServerSettings
    from mailbridge.providers.imap.settings import Security
    from mailbridge.store.accounts import AccountStore
    from mailbridge.store.crm import CrmStore

    account_id = "acc_" + uuid.uuid4().hex[:20]
    server = PublicServerSettings(host="smtp.example.com", port=465, security=Security.SSL, username="a")
    now = datetime.now(UTC)
    account = Account(
        account_id=account_id,
        tenant_id="acme",
        provider="imap",
        address="alice@example.com",
        display_name="Alice",
        imap=server,
        smtp=server,
        created_at=now,
        created_by="bench",
    )
    envelope = crypto.encrypt(
        b'{"imap_password": "pw"}',
        accounts.credentials_context("acme", account_id),
        key_id=env["DATA_KEY_ID"],
    )
    AccountStore(env["ACCOUNTS_TABLE"]).create_account(account, envelope)
    store, addresses = CrmStore(env["CRM_TABLE"]), []
    for n in range(RECIPIENTS):
        address = f"person{n}@customer.example"
        contact = {
            "contact_id": f"ct_{n:012x}{uuid.uuid4().hex[:14]}",
            "name": f"Person {n}",
            "emails": [{"address": address, "primary": True}],
            "tags": ["bench"],
            "created_at": now,
            "updated_at": now,
            "created_by": "bench",
            "version": 1,
        }
        store.create_contact("acme", Contact.model_validate(contact))
        addresses.append(address)
    return account_id, addresses


def main() -> int:
    import boto3
    from moto import mock_aws

    from local.resources import create_resources
    from local.template import load_template
    from tests.fixtures.aws import load_function, reset_caches
    from tests.integration.queue_harness import QueueConsumer

    with mock_aws():
        template = load_template([ROOT / "template.yaml"])
        deployed = create_resources(boto3.session.Session(), template)
        env = template.functions()["ApiFunction"].environment
        os.environ.update(env)
        reset_caches()
        api = load_function("api").lambda_handler
        _call(api, "put-features", body={"campaigns": True})
        template_body = json.loads(json.dumps(_template_body()))
        template_id = _call(api, "templates-create", body=template_body)["template_id"]
        account_id, addresses = _seed(env)

        requests = _Requests()
        requests.register()
        # Peer: one POST /emails/send with template_id per recipient.
        started = time.perf_counter()
        requests.count = 0
        for address in addresses:
            _call(
                api,
                "send-email",
                body={"account_id": account_id, "to": [{"address": address}], "template_id": template_id},
            )
        peer = len(addresses) / (time.perf_counter() - started)
        peer_requests = requests.count / len(addresses)

        campaign_id = _call(api, "crm-create-campaign", body={"name": "Bench"})["campaign_id"]
        fields = {
            "template_id": template_id,
            "audience": {"tags": ["bench"]},
            "account_id": account_id,
            "throttle_per_hour": 500,
        }
        _call(api, "crm-patch-campaign", body=fields, path={"campaign_id": campaign_id})
        stack = _Stack(deployed)
        outbox = QueueConsumer(stack, "outbox", "OutboxQueue")  # type: ignore[arg-type]
        _drain_sends(outbox)  # the peer's queued sends are not campaign work
        started = time.perf_counter()
        requests.count = 0
        _call(api, "crm-send-campaign", path={"campaign_id": campaign_id})
        outbox.drain(max_batches=10_000, expect_success=True)
        elapsed = time.perf_counter() - started
        per_recipient = requests.count / len(addresses)
        status = _call(api, "crm-get-campaign-send-status", path={"campaign_id": campaign_id})
        assert status["counts"]["queued"] == len(addresses), status
        rate = len(addresses) / elapsed
        print(f"recipients: {len(addresses)}")
        print(f"campaign enqueue recipients/s: {rate:.1f}")
        print(f"campaign aws requests per recipient: {per_recipient:.2f}")
        print(f"peer (one POST /emails/send with template_id per recipient) recipients/s: {peer:.1f}")
        print(f"peer aws requests per recipient: {peer_requests:.2f}")
        print(f"campaign / peer rate: {rate / peer:.2f}")
        print(f"peer / campaign requests: {peer_requests / per_recipient:.2f}")
    return 0


def _template_body() -> dict[str, Any]:
    from tests.events import load_event

    body: dict[str, Any] = json.loads(load_event("api/templates-create.json")["body"])
    return body


class _Requests:
    """AWS requests made by the functions' clients (botocore `before-call`)."""

    def __init__(self) -> None:
        self.count = 0

    def before(self, **_: Any) -> None:
        self.count += 1

    def register(self) -> None:
        from mailbridge import aws

        for client in (aws.dynamodb().meta.client, aws.s3(), aws.sqs(), aws.scheduler(), aws.events()):
            client.meta.events.register("before-call", self.before)


class _Stack:
    """What QueueConsumer reads of tests.fixtures.aws.Stack."""

    def __init__(self, deployed: Any) -> None:
        self.deployed = deployed


def _drain_sends(outbox: Any) -> None:
    sqs = boto3_client()
    while messages := outbox.receive():
        for message in messages:
            sqs.delete_message(QueueUrl=outbox.queue_url, ReceiptHandle=message["ReceiptHandle"])


def boto3_client() -> Any:
    import boto3

    return boto3.client("sqs")


if __name__ == "__main__":
    sys.exit(main())
