"""Backfill of a new contact: link every stored email of its address (mailbridge.crm.matching).

10,000 ingest-shaped emails from one address are written into DynamoDB on a ThreadedMotoServer
(real HTTP calls); then ours writes the participant index it keeps for every ingested email, a
contact with that address is created and the backfill runs, continuation by continuation through
the real MatchQueue, until all links exist.

Peer, measured in the same run: what a competent implementation without a participant index does.
It queries the tenant's own emails (the gsi1 partition every listing uses, not a Scan across
tenants and item types), asks only for the attributes it needs, and writes the same links through
the same link writer. Both sides use the same client settings, except a longer read timeout for the
peer's large pages, which moto is slow to answer.

Honest counts: every DynamoDB and SQS request each side makes is counted by botocore event hooks,
including the index rows ours must write at ingest (the peer needs no such writes), and printed
beside the times. moto's per-request cost is not DynamoDB's, so the request counts are the figure
to compare across systems; the times only compare the two sides of this run.
`BENCH_BACKFILL_EMAILS` overrides the email count for a quick run.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
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
    """Requests by service and operation (before-call) and DynamoDB items read (after-call: what a
    read returned or, for Query/Scan, examined; the capacity a real table would bill)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.items = 0

    def __call__(self, model: Any, **_: Any) -> None:
        self.calls[f"{model.service_model.service_name}.{model.name}"] += 1

    def after(self, parsed: Any, model: Any, **_: Any) -> None:
        if model.name in {"Query", "Scan"}:
            self.items += int(parsed.get("ScannedCount") or 0)
        elif model.name == "BatchGetItem":
            self.items += sum(len(v) for v in (parsed.get("Responses") or {}).values())
        elif model.name == "GetItem":
            self.items += 1 if parsed.get("Item") else 0

    def watch(self, client: Any) -> None:
        events = client.meta.events
        events.register("before-call.*.*", self)
        events.register("after-call.dynamodb.*", self.after)

    def clear(self) -> None:
        self.calls.clear()
        self.items = 0

    def snapshot(self) -> Tally:
        def total(service: str, ops: set[str] | None = None) -> int:
            return sum(
                n
                for key, n in self.calls.items()
                if key.startswith(f"{service}.") and (ops is None or key.split(".", 1)[1] in ops)
            )

        return Tally(
            reads=total("dynamodb", READS),
            writes=total("dynamodb", WRITES),
            sqs=total("sqs"),
            items=self.items,
        )


@dataclass(frozen=True)
class Tally:
    reads: int = 0
    writes: int = 0
    sqs: int = 0
    items: int = 0
    seconds: float = 0.0

    @property
    def requests(self) -> int:
        return self.reads + self.writes + self.sqs


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


def seed_emails() -> None:
    """The stored emails both sides read (their writes are the same for both: not counted)."""
    from mailbridge import aws
    from mailbridge.config import get_settings

    emails = aws.dynamodb().Table(get_settings().tables.emails)
    with emails.batch_writer() as batch:
        for i in range(EMAILS):
            batch.put_item(Item=email_item(i))


def index_at_ingest(counter: CallCounter) -> Tally:
    """The participant index rows ours writes for every ingested email (match_email's first step),
    written as match_email writes them: one index_participants call per email."""
    from mailbridge.config import get_settings
    from mailbridge.crm.matching import index_entries, mail_facts
    from mailbridge.store.links import LinkStore

    links = LinkStore(get_settings().tables.links)
    counter.clear()
    started = time.perf_counter()
    for i in range(EMAILS):
        links.index_participants(TENANT, index_entries(mail_facts(email_item(i))))
    return replace(counter.snapshot(), seconds=time.perf_counter() - started)


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


def ours(counter: CallCounter) -> tuple[Tally, int, str]:
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
    tally = replace(counter.snapshot(), seconds=time.perf_counter() - started)
    return tally, steps, contact.contact_id


def peer(counter: CallCounter) -> tuple[Tally, str]:
    """No participant index: query the tenant's emails (gsi1), keep those the address took part in,
    and write the same links with the same link writer."""
    from boto3.dynamodb.conditions import Key
    from botocore.config import Config

    from mailbridge import aws
    from mailbridge.config import get_settings
    from mailbridge.crm.matching import SYSTEM_SUBJECT, mail_facts
    from mailbridge.store.links import LinkRecord, LinkStore

    settings = get_settings()
    # moto takes seconds to answer a 1 MB page (DynamoDB does not): wait for it instead of retrying.
    resource = aws._session().resource("dynamodb", config=aws._config().merge(Config(read_timeout=600)))
    counter.watch(resource.meta.client)
    table = resource.Table(settings.tables.emails)
    links = LinkStore(settings.tables.links)
    record_id = "ct_" + "f" * 26
    counter.clear()
    started = time.perf_counter()
    kwargs: dict[str, Any] = {
        "IndexName": "gsi1",
        "KeyConditionExpression": Key("gsi1pk").eq(f"TENANT#{TENANT}"),
        "ProjectionExpression": "email_id, #d, direction, #f, #t, cc",
        "ExpressionAttributeNames": {"#d": "date", "#f": "from", "#t": "to"},
    }
    while True:
        response = table.query(**kwargs)
        records = []
        for item in response.get("Items", []):
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
    return replace(counter.snapshot(), seconds=time.perf_counter() - started), record_id


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def report(index: Tally, backfill: Tally, steps: int, theirs: Tally) -> None:
    with_index = Tally(
        reads=backfill.reads + index.reads,
        writes=backfill.writes + index.writes,
        sqs=backfill.sqs + index.sqs,
        items=backfill.items + index.items,
        seconds=backfill.seconds + index.seconds,
    )
    rows = [
        ("time (s)", f"{backfill.seconds:.2f}", f"{with_index.seconds:.2f}", f"{theirs.seconds:.2f}"),
        ("DynamoDB read requests", backfill.reads, with_index.reads, theirs.reads),
        ("DynamoDB items read", backfill.items, with_index.items, theirs.items),
        ("DynamoDB write requests", backfill.writes, with_index.writes, theirs.writes),
        ("SQS requests (continuations)", backfill.sqs, with_index.sqs, theirs.sqs),
        ("all requests", backfill.requests, with_index.requests, theirs.requests),
    ]
    print(f"{EMAILS} emails of {ADDRESS}, all linked by both sides; ours took {steps} steps")
    print(f"{'':30} {'ours: backfill':>16} {'+ index writes':>16} {'peer':>10}")
    for label, a, b, c in rows:
        print(f"{label:30} {a!s:>16} {b!s:>16} {c!s:>10}")
    print(
        f"index writes at ingest (ours only): {index.writes} requests, {index.seconds:.2f} s for "
        f"{EMAILS} emails; paid once per email, whatever the number of contacts later backfilled"
    )
    print(
        f"ratio ours/peer, backfill alone: time {ratio(backfill.seconds, theirs.seconds)}, "
        f"requests {ratio(backfill.requests, theirs.requests)}, "
        f"reads {ratio(backfill.reads, theirs.reads)}, items read {ratio(backfill.items, theirs.items)}"
    )
    print(
        f"ratio ours/peer, with the index writes: time {ratio(with_index.seconds, theirs.seconds)}, "
        f"requests {ratio(with_index.requests, theirs.requests)}"
    )
    print(
        "note: every stored email of the tenant matches here, the peer's best case; its reads grow with "
        "the tenant's mail, ours with the contact's"
    )


def main() -> int:
    server = start_moto()
    try:
        deploy()
        from mailbridge import aws

        counter = CallCounter()
        for client in aws.dynamodb_clients():
            counter.watch(client)
        counter.watch(aws.sqs())
        t0 = time.perf_counter()
        seed_emails()
        print(f"seeded {EMAILS} emails in {time.perf_counter() - t0:.1f} s")

        theirs, peer_id = peer(counter)
        assert count_links(peer_id) == EMAILS, "the peer missed links"

        index = index_at_ingest(counter)
        backfill, steps, contact_id = ours(counter)
        linked = count_links(contact_id)
        assert linked == EMAILS, f"backfill linked {linked} of {EMAILS}"

        report(index, backfill, steps, theirs)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
