"""Gmail sync, in-process on moto against the Google double with its per-user quota enforced on
real time: the initial sync of a 5,000-message mailbox (getProfile, messages.list, get_raw_many
with bounded concurrency, batched ingest) against the quota-bound minimum (the units it needs /
15,000 a minute, Gmail's per-user limit, notes.md), HTTP requests per message, then the latency
from a push to the new email stored (the incremental run a push queues: history.list, one
messages.get, ingest, announce).

Peer: Gmail's own quota, the floor no client of one mailbox can beat. No thresholds: it prints.
moto's whole-table rollback copy per TransactWriteItems action and its per-event jsonpath parsing
are taken out first (tests/fixtures/moto_transactions.py, benchmarks/sync/moto_events.py).

    .venv/bin/python benchmarks/bench_gmail.py     (BENCH_GMAIL_MESSAGES=n, default 5000;
                                                    BENCH_GMAIL_PUSHES=n, default 50)
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "layers" / "mailbridge"), str(ROOT)]
MESSAGES = int(os.environ.get("BENCH_GMAIL_MESSAGES", "5000"))
PUSHES = int(os.environ.get("BENCH_GMAIL_PUSHES", "50"))
USER = "ada@example.com"
from benchmarks.google_oauth import REDIRECT  # noqa: E402

for name, value in {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "mailbridge",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}.items():
    os.environ.setdefault(name, value)


def message(i: int) -> bytes:
    lines = [
        f"From: Sender {i % 97} <sender{i % 97}@customer.example>",
        f"To: {USER}",
        f"Subject: Order {i} update",
        f"Message-ID: <bench-{i}@customer.example>",
        "Date: Tue, 17 Nov 2026 10:00:00 +0000",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
    ]
    body = f"Hello Ada,\r\nupdate {i} on your order.\r\n" + "Some more text of a usual mail.\r\n" * 20
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def access_token(google: object) -> str:
    """An access token of the double for USER."""
    from benchmarks.google_oauth import access_token as token_of
    from local.google import GoogleDouble

    assert isinstance(google, GoogleDouble)
    return token_of(google, google.register_client([REDIRECT]))


def main() -> int:
    import boto3
    from moto import mock_aws

    from benchmarks.sync import moto_events
    from local.google import GoogleDouble
    from local.resources import create_resources
    from local.template import load_template
    from mailbridge import crypto
    from mailbridge.models.account import Account, SyncState
    from mailbridge.providers.gmail.client import GmailClient
    from mailbridge.providers.gmail.quota import USER_UNITS_PER_MINUTE, QuotaBudget, cost
    from mailbridge.store.accounts import AccountStore
    from mailbridge.sync.engine import Budget
    from mailbridge.sync.messages import SyncRequest
    from mailbridge.sync.service import run_sync
    from mailbridge.sync.wiring import service_deps
    from tests.fixtures import moto_transactions
    from tests.fixtures.aws import reset_caches

    # Two moto costs AWS does not have, taken out as bench_sync.py does (see those modules): a
    # TransactWriteItems rollback copy of the whole table per action (quadratic: 300 messages did
    # not finish in 10 minutes), and PutEvents' jsonpath parser per event with target queues
    # nobody consumes.
    moto_transactions.install()
    moto_events.install()
    with (
        mock_aws(),
        moto_events.rule_queues_consumed(),
        GoogleDouble() as google,  # real time: the quota minute is a real minute
    ):
        template = load_template([ROOT / "template.yaml"])
        deployed = create_resources(boto3.session.Session(), template)
        os.environ.update(template.functions()["SyncFunction"].environment)
        reset_caches()
        mailbox = google.add_user(USER, "Ada Lovelace")
        for i in range(MESSAGES):
            google.gmail.add_message(mailbox, message(i), ["INBOX", "UNREAD"])
        token = access_token(google)
        account = Account(
            account_id="acc_" + "0" * 20,
            tenant_id="acme",
            provider="gmail",
            address=USER,
            created_at=datetime.now(UTC),
            created_by="bench",
            sync=SyncState(),
        )
        context = {"tenant_id": "acme", "account_id": account.account_id}
        envelope = crypto.encrypt(b"{}", context, key_id=deployed.keys["DataKey"])
        AccountStore(deployed.tables["AccountsTable"]).create_account(account, envelope)
        clients: list[GmailClient] = []
        quota = QuotaBudget()  # the account's one budget, as `quota.budget_for` keeps per process

        def client_for(_account: Account) -> GmailClient:
            client = GmailClient(google.gmail_url, lambda _refresh: token, budget=quota)
            clients.append(client)
            return client

        deps = service_deps()
        deps.gmail_client = client_for
        request = SyncRequest(tenant_id="acme", account_id=account.account_id, reason="connected")

        started = time.perf_counter()
        runs = 0
        while True:
            runs += 1
            report = run_sync(request, deps, Budget(max_messages=10**9, batch_size=100))
            if report is None:
                raise RuntimeError("the sync gave no report")
            if report.complete:
                break
        seconds = time.perf_counter() - started
        requests = sum(c.requests for c in clients)
        pages = math.ceil(MESSAGES / 500)
        units = (
            cost("users.getProfile")
            + pages * cost("users.messages.list")
            + MESSAGES * cost("users.messages.get")
            + cost("users.history.list")
        )
        minimum = units / USER_UNITS_PER_MINUTE * 60

        latencies = []
        for i in range(PUSHES):
            google.gmail.add_message(mailbox, message(MESSAGES + i), ["INBOX", "UNREAD"])
            push = SyncRequest(tenant_id="acme", account_id=account.account_id, reason="push")
            at = time.perf_counter()
            report = run_sync(push, deps, Budget(max_messages=10**9, batch_size=100))
            latencies.append((time.perf_counter() - at) * 1000)
            if report is None or report.stored != 1:
                raise RuntimeError("a push did not store its one new message")
        # every page of the scan: one page stops at 1 MB (the 5,000 run printed 445 from page one)
        pages_of = (
            boto3.client("dynamodb")
            .get_paginator("scan")
            .paginate(
                TableName=deployed.tables["EmailsTable"],
                Select="COUNT",
                FilterExpression="begins_with(sk, :e)",
                ExpressionAttributeValues={":e": {"S": "EMAIL#"}},
            )
        )
        stored = sum(page["Count"] for page in pages_of)

    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, round(0.99 * len(latencies)) - 1)]
    print(f"{MESSAGES} messages, {runs} run(s), {stored} emails stored, quota units needed {units}")
    print(f"gmail initial seconds: {seconds:.1f}")
    print(f"gmail quota-bound minimum seconds: {minimum:.1f}")
    print(f"gmail initial / quota-bound minimum: {seconds / minimum:.2f}")
    print(f"gmail http requests per message: {requests / MESSAGES:.3f}")
    print(f"gmail quota refusals by the double: {google.quota.rejected}")
    print(f"gmail push to stored p50 ms: {statistics.median(latencies):.1f}")
    print(f"gmail push to stored p99 ms: {p99:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
