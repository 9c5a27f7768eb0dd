"""Backfill of a new contact: link every stored email of its address (mailbridge.crm.matching).

10,000 ingest-shaped emails from one address (plus their participant index rows) are written
through the stores into DynamoDB on a ThreadedMotoServer (real HTTP calls), then a contact with
that address is created and the backfill runs, continuation by continuation through the real
MatchQueue, until all links exist. DynamoDB calls are counted with a botocore event hook.

Peer, measured in the same run: the naive approach without a participant index, a paginated
Scan of the emails table for the address, then the same link writes.
`BENCH_BACKFILL_EMAILS` overrides the email count for a quick run.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "layers" / "mailbridge"), str(ROOT)]

EMAILS = int(os.environ.get("BENCH_BACKFILL_EMAILS", "10000"))
ADDRESS = "kim@initech-industries.com"
ME = "me@acme-corp.io"
TENANT = "bench"
READS = {"GetItem", "BatchGetItem", "Query", "Scan"}
WRITES = {"PutItem", "BatchWriteItem", "TransactWriteItems", "UpdateItem", "DeleteItem"}


def start_moto() -> Any:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request lines
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": f"http://{host}:{port}",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
        }
    )
    return server


def deploy() -> Any:
    import boto3

    from local.resources import create_resources
    from local.template import load_template

    template = load_template([ROOT / "template.yaml"])
    deployed = create_resources(boto3.session.Session(), template)
    env = template.functions()["MatchFunction"].environment
    os.environ.update(env)
    return deployed


class CallCounter:
    """DynamoDB calls by operation (before-call) and items read (after-call: what a read returned
    or, for Query/Scan, examined; the capacity a real table would bill)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.items = 0

    def __call__(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1

    def after(self, parsed: Any, model: Any, **_: Any) -> None:
        if model.name in {"Query", "Scan"}:
            self.items += int(parsed.get("ScannedCount") or 0)
        elif model.name == "BatchGetItem":
            self.items += sum(len(v) for v in (parsed.get("Responses") or {}).values())
        elif model.name == "GetItem":
            self.items += 1 if parsed.get("Item") else 0

    def clear(self) -> None:
        self.calls.clear()
        self.items = 0

    def reads(self) -> int:
        return sum(n for op, n in self.calls.items() if op in READS)

    def writes(self) -> int:
        return sum(n for op, n in self.calls.items() if op in WRITES)


def email_item(i: int) -> dict[str, Any]:
    date = (datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=i)).isoformat()
    email_id = f"em_{i:026x}"
    inbound = i % 2 == 0
    sender, recipient = (ADDRESS, ME) if inbound else (ME, ADDRESS)
    return {
        "pk": f"TENANT#{TENANT}",
        "sk": f"EMAIL#{email_id}",
        "email_id": email_id,
        "thread_id": f"th_{i // 4:024x}",
        "date": date,
        "subject": f"Mail {i}",
        "from": [{"name": "Kim", "address": sender}],
        "to": [{"name": None, "address": recipient}],
        "cc": [],
        "snippet": "Hello.",
        "direction": "inbound" if inbound else "outbound",
        "list": None,
        "auto_submitted": None,
        "precedence": None,
        "bounce": None,
        "deleted": False,
        "gsi1pk": f"TENANT#{TENANT}",
        "gsi1sk": f"{date}#{email_id}",
    }


def seed() -> None:
    from mailbridge import aws
    from mailbridge.config import get_settings
    from mailbridge.crm.matching import index_entries, mail_facts
    from mailbridge.store.links import LinkStore

    settings = get_settings()
    emails = aws.dynamodb().Table(settings.tables.emails)
    links = LinkStore(settings.tables.links)
    entries = []
    with emails.batch_writer() as batch:
        for i in range(EMAILS):
            item = email_item(i)
            batch.put_item(Item=item)
            entries += index_entries(mail_facts(item))
    links.index_participants(TENANT, entries)


def count_links(record_id: str) -> int:
    from mailbridge import aws
    from mailbridge.config import get_settings

    table = aws.dynamodb().Table(get_settings().tables.links)
    kwargs: dict[str, Any] = {
        "IndexName": "gsi1",
        "KeyConditionExpression": "gsi1pk = :p",
        "ExpressionAttributeValues": {":p": f"TENANT#{TENANT}#contact#{record_id}"},
        "Select": "COUNT",
    }
    total = 0
    while True:
        response = table.query(**kwargs)
        total += response["Count"]
        if "LastEvaluatedKey" not in response:
            return total
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def ours(counter: CallCounter) -> tuple[float, int, str]:
    import json

    from mailbridge import aws
    from mailbridge.crm import service
    from mailbridge.crm.matching import MatchWork, handle_work, on_contact_event
    from mailbridge.crm.models import ContactCreate
    from mailbridge.crm.wiring import match_deps, match_settings
    from mailbridge.tenancy import Role, TenantContext

    deps = match_deps()
    ctx = TenantContext(tenant_id=TENANT, role=Role.MEMBER, subject="bench")
    contact = service.create_contact(
        ctx, ContactCreate.model_validate({"name": "Kim", "emails": [{"address": ADDRESS}]}), deps.crm
    )
    sqs, url = aws.sqs(), match_settings().match_queue_url
    counter.clear()
    started = time.perf_counter()
    on_contact_event("contact.created", TENANT, {"contact": contact.model_dump(mode="json")}, deps)
    steps = 1
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            handle_work(MatchWork.model_validate(json.loads(message["Body"])), deps)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            steps += 1
    return time.perf_counter() - started, steps, contact.contact_id


def naive(counter: CallCounter) -> tuple[float, str]:
    """Scan the emails table for the address, then write the same links."""
    import boto3
    from botocore.config import Config

    from mailbridge.config import get_settings
    from mailbridge.crm.matching import SYSTEM_SUBJECT, mail_facts
    from mailbridge.store.links import LinkRecord, LinkStore

    settings = get_settings()
    # moto answers a 1 MB Scan page far slower than DynamoDB: wait for it instead of retrying.
    resource = boto3.resource("dynamodb", config=Config(read_timeout=600, retries={"max_attempts": 1}))
    resource.meta.client.meta.events.register("before-call.dynamodb.*", counter)
    resource.meta.client.meta.events.register("after-call.dynamodb.*", counter.after)
    table = resource.Table(settings.tables.emails)
    links = LinkStore(settings.tables.links)
    record_id = "ct_" + "f" * 26
    counter.clear()
    started = time.perf_counter()
    kwargs: dict[str, Any] = {}
    while True:
        response = table.scan(**kwargs)
        records = []
        for item in response.get("Items", []):
            if not str(item.get("sk", "")).startswith("EMAIL#"):
                continue
            facts = mail_facts(item)
            if any(p.address == ADDRESS for p in facts.participants):
                records.append(
                    LinkRecord(
                        email_id=facts.email_id,
                        kind="contact",
                        record_id=record_id,
                        reason="participant",
                        via=ADDRESS,
                        date=facts.date,
                        direction=facts.direction,
                        created_at=datetime.now(UTC).isoformat(),
                        created_by=SYSTEM_SUBJECT,
                    )
                )
        links.put_auto_links(TENANT, records)
        if "LastEvaluatedKey" not in response:
            break
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
    return time.perf_counter() - started, record_id


def main() -> int:
    server = start_moto()
    try:
        deploy()
        from mailbridge import aws

        counter = CallCounter()
        events = aws.dynamodb().meta.client.meta.events
        events.register("before-call.dynamodb.*", counter)
        events.register("after-call.dynamodb.*", counter.after)
        t0 = time.perf_counter()
        seed()
        print(f"seeded {EMAILS} emails + participant index in {time.perf_counter() - t0:.1f} s")

        peer_s, peer_id = naive(counter)
        peer_reads, peer_writes, peer_items = counter.reads(), counter.writes(), counter.items
        assert count_links(peer_id) == EMAILS, "the naive peer missed links"

        our_s, steps, contact_id = ours(counter)
        our_reads, our_writes, our_items = counter.reads(), counter.writes(), counter.items
        linked = count_links(contact_id)
        assert linked == EMAILS, f"backfill linked {linked} of {EMAILS}"

        print(f"backfill (participant index): {our_s:.2f} s for {linked} links in {steps} steps")
        print(
            f"  DynamoDB read calls {our_reads} ({our_reads / linked:.4f} per linked email), "
            f"items read {our_items} ({our_items / linked:.2f} per linked email), write calls {our_writes}"
        )
        print(f"peer (scan the emails table): {peer_s:.2f} s")
        print(
            f"  DynamoDB read calls {peer_reads} ({peer_reads / EMAILS:.4f} per linked email), "
            f"items read {peer_items} ({peer_items / EMAILS:.2f} per linked email), write calls {peer_writes}"
        )
        print(
            f"ratio: ours {our_s / peer_s:.2f}x the peer's time, {our_reads / max(peer_reads, 1):.2f}x its "
            f"read calls; the peer's items are whole emails, ours index rows and link keys"
        )
        print("note: every stored email matches here, the best case for the scan; it grows with the table")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
