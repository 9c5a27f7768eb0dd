"""Scale simulation (issue 20 point 6): many Gmail mailboxes synced through the real sync function
on moto, with the Google double's latency raised to a real provider's, every AWS request counted
by (table or queue, partition key); prints the hottest partition key's share, the request mix and
the AWS cost per 10,000 emails synced.

What runs is what Lambda would run: `functions/sync/app.py`'s handler on SyncQueue records, fed
by a pump that does what the SQS event source mapping does (ReceiveMessage up to 10, one record
per invocation as the template's BatchSize 1, DeleteMessageBatch of the successes), with
`BENCH_WORKERS` invocations side by side standing for Lambda's concurrency, each in a sandbox of
its own (the function's module imported once per sandbox, reused warm: Powertools' batch
processor keeps the batch it works on, so sandboxes never share one). A record that fails is
not deleted and comes back after its VisibilityTimeout (SyncQueue: 1,800 s); when nothing else is
left the pump moves to that moment, as the runner's clock does, and prints how many came back.

In-process handlers on moto, not the local runner (`local/`, `make run`), measured:
  - the runner pumps one batch at a time for the whole stack (`Pump.tick` walks every consumer
    under one lock and waits for each `FunctionPool.invoke`), and every email's bus events go
    to categorize, match, automations and the rest, one event per invocation; its functions run
    in subprocesses, whose AWS requests a botocore hook here cannot count (a meter would have to
    sit in the moto server), and the Google double has no latency setting.
  - benchmarks/sim_runner_probe.py: 10 Gmail accounts of 5 messages connected through the
    runner's OAuth routes, then `runner.drain()` (their first syncs and all that their events
    trigger; the Google double without latency; the shared 2-core machine at load 7-9): 51.5 s
    and 34.4 s in two runs, 3.4 to 5.2 s per account. 1,000 accounts' first syncs alone would
    take 57 minutes or more, before the pushes; in-process, 1,000 accounts' first syncs took
    273 s (0.27 s an account, with 60 ms a Gmail call) and their pushes 170 s.
  Going through the runner needs a concurrent pump (Lambda's concurrency per event source,
  batch sizes from template.yaml, which it already reads) and a request meter in its moto server:
  a change to the runner and its e2e tests that is not made here.

moto costs that AWS does not have, taken out (each module's header has its measurement; none
changes an answer: tests/unit/test_moto_*.py compare with moto's own):
  - tests/fixtures/moto_queries.py: a Query on a table lists and sorts the whole table in moto.
    Query on the emails table: 31.9 ms of moto CPU each at 100 accounts, 3.1 ms patched.
  - tests/fixtures/moto_sends.py: a send counts every message of the queue three times, several
    times per message. SendMessageBatch to SyncQueue: 46 ms at 100 accounts, 139 at 300, 454 at
    1,000; 5.4 ms at 100 patched.
  - tests/fixtures/moto_transactions.py (TransactWriteItems' whole-table rollback copies) and
    benchmarks/sync/moto_events.py (PutEvents' jsonpath parsers, unconsumed rule queues), as in
    bench_sync.
  Before these (and the two pump fixes above), 100 accounts took 1.5 minutes, a 300-account run
  sat idle in its pump after 18 minutes with a record invisible for its 1,800 s, and 1,000 had
  not finished after 33 minutes. With the Query patch, 300 accounts took 3.2 minutes and 1,000
  16.2; with both patches 1,000 took 11.9 minutes (setup 160 s; load ~10 on the shared 2-core
  machine). What is left grows with the data as moto does:
  a Query still reads its whole partition (moto compares each item's sort key; DynamoDB seeks
  the range): 3.4 ms at 100 accounts, 18.7 ms at 1,000 (20 accounts a tenant).
  `BENCH_SIM_PROFILE=1` prints moto's CPU per operation and per DynamoDB table;
  `BENCH_SIM_MOTO_AS_IS=1` leaves moto's Query and send unpatched, to measure them.

Phases, per account (`BENCH_ACCOUNTS`, spread over `BENCH_TENANTS` tenants, default 50):
  initial  the account's `connected` sync of a mailbox of `BENCH_MESSAGES` messages
  pushes   `BENCH_PUSHES` times: one new message, then the push's sync request (queued as the
           webhooks function queues it: SendMessageBatch to SyncQueue), then its sync.
Accounts are stored directly with their sealed (empty) credentials and a token from the double's
OAuth flow: connecting (the oauth function) is not simulated. Every Gmail HTTP call waits
`BENCH_PROVIDER_LATENCY_MS` (default 60 ms, a Gmail API round trip from us-east-1) before the
double answers, so runs overlap as they would against Google.

Counted (botocore's before-parameter-build and after-call on mailbridge's session, and on the
pump's client): every request by service.operation; every DynamoDB item touched by (table or
index, partition key value); every SQS message by (queue, message group); S3 objects by (bucket,
first key segment); events by bus. Cost: benchmarks/simcost.py prices: DynamoDB request units
from item sizes (written) and returned sizes (read), SQS FIFO requests, S3 PUT/GET, PutEvents
entries, KMS requests, Lambda invocations, and Lambda GB-seconds at the sync function's 1,024 MB
for a billed duration estimated per invocation as our own CPU seconds (the thread's CPU time with
moto's, in-process, taken out: timed from before moto's botocore stubber answers, so this
machine's load and moto's slowness stay out of it) + every
provider call's injected latency (an upper bound: a batch's fetches overlap) + 10 ms per AWS
request (an in-region round trip).
Not counted: the bus rules' targets (categorize, match, automations consume the events), CloudWatch
logs and metrics, storage per month. No thresholds: it prints.

    .venv/bin/python benchmarks/bench_simulation.py   (BENCH_ACCOUNTS=n, default 1000; BENCH_TENANTS=n
        BENCH_MESSAGES=n BENCH_PUSHES=n BENCH_PROVIDER_LATENCY_MS=ms BENCH_WORKERS=n
        BENCH_SIM_PROFILE=1 BENCH_SIM_MOTO_AS_IS=1)   or   make bench simulation
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "layers" / "mailbridge"), str(ROOT)]
ACCOUNTS = int(os.environ.get("BENCH_ACCOUNTS", "1000"))
TENANTS = max(1, int(os.environ.get("BENCH_TENANTS", "50")))
MESSAGES = int(os.environ.get("BENCH_MESSAGES", "5"))
PUSHES = int(os.environ.get("BENCH_PUSHES", "1"))
LATENCY_MS = float(os.environ.get("BENCH_PROVIDER_LATENCY_MS", "60"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "16"))
PROFILE = os.environ.get("BENCH_SIM_PROFILE") == "1"
SYNC_MEMORY_GB = 1.0  # template.yaml SyncFunction MemorySize 1024
AWS_LATENCY_S = 0.010  # a DynamoDB/SQS/S3 request's in-region round trip, for the billed duration

for name, value in {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "mailbridge",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "POWERTOOLS_METRICS_DISABLED": "true",  # EMF lines on stdout would drown the figures
}.items():
    os.environ.setdefault(name, value)

from benchmarks.google_oauth import REDIRECT  # noqa: E402
from benchmarks.simcost import (  # noqa: E402
    PRICES_AS_OF,
    Usage,
    cost_usd,
    per_emails,
    read_units,
    write_units,
)


def message(account: int, i: int, address: str) -> bytes:
    lines = [
        f"From: Customer {i % 13} <buyer{i % 13}@customer{account % 97}.example>",
        f"To: {address}",
        f"Subject: Order {i} update",
        f"Message-ID: <sim-{account}-{i}@customer.example>",
        "Date: Tue, 17 Nov 2026 10:00:00 +0000",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
    ]
    body = f"Hello,\r\nupdate {i} on your order.\r\n" + "Some more text of a usual mail.\r\n" * 20
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def _plain(value: Any) -> str:
    """A DynamoDB attribute value as text ({"S": "x"} or "x")."""
    if isinstance(value, dict) and len(value) == 1:
        return str(next(iter(value.values())))
    return str(value)


def _size(item: Any) -> int:
    return len(json.dumps(item, default=str))


class Meter:
    """Every AWS request of the simulation: by operation, by (resource, partition key), in units."""

    def __init__(self, key_names: dict[str, dict[str, str]]) -> None:
        self.key_names = key_names  # table name -> {"": pk attr, index name: its hash attr}
        self.labels: dict[str, str] = {}  # physical name -> logical id, for the printout
        self.operations: Counter[str] = Counter()
        self.keys: Counter[tuple[str, str]] = Counter()
        self.usage = Usage()
        self.op_cpu: Counter[str] = Counter()  # service.operation -> CPU seconds inside the request
        self.target_cpu: Counter[str] = Counter()  # "Operation Table[/index]" -> the same (profile)
        self.target_calls: Counter[str] = Counter()
        self.aws_seconds = threading.local()
        self.aws_cpu = threading.local()
        self._lock = threading.Lock()
        self._calls = threading.local()

    def attach(self, events: Any) -> None:
        events.register("before-parameter-build", self._before)
        events.register_first("before-send", self._send)  # before moto's stubber: its answer is timed
        events.register("after-call", self._after)

    def waited(self) -> float:
        return float(getattr(self.aws_seconds, "total", 0.0))

    def moto_cpu(self) -> float:
        """CPU seconds this thread spent inside AWS requests (moto answering, in-process)."""
        return float(getattr(self.aws_cpu, "total", 0.0))

    def reset_wait(self) -> None:
        self.aws_seconds.total = 0.0
        self.aws_cpu.total = 0.0

    def _send(self, **_: Any) -> None:
        self._calls.sent = time.perf_counter()
        self._calls.cpu = time.thread_time()

    def _touch(self, resource: str, key: str, count: int = 1) -> None:
        table, _, index = resource.partition("/")
        label = self.labels.get(table, table) + (f"/{index}" if index else "")
        self.keys[(label, key)] += count

    def clear(self) -> None:
        """Forget the setup's requests: what follows is the simulation's."""
        self.operations.clear()
        self.keys.clear()
        self.op_cpu.clear()
        self.target_cpu.clear()
        self.target_calls.clear()
        self.usage = Usage()

    def _write(self, table: str, item: dict[str, Any], *, transactional: bool = False) -> None:
        """WRUs of writing `item`: the table's, plus one standard write per GSI whose key the item
        has (its projection taken at the item's size: an upper bound for KEYS_ONLY/INCLUDE)."""
        size = _size(item)
        self.usage.add("dynamodb.wru", write_units(size, transactional=transactional))
        for index, attr in self.key_names.get(table, {}).items():
            if index and attr in item:
                self.usage.add("dynamodb.wru", write_units(size))

    def _table_key(self, table: str, item: dict[str, Any]) -> str:
        attr = self.key_names.get(table, {}).get("", "pk")
        return _plain(item.get(attr, "?"))

    def _before(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        service, op = model.service_model.service_name, model.name
        if PROFILE and service == "dynamodb" and params.get("TableName"):
            table = self.labels.get(params["TableName"], params["TableName"])
            index = params.get("IndexName")
            self._calls.target = f" {table}" + (f"/{index}" if index else "")
        else:
            self._calls.target = ""
        with self._lock:
            self.operations[f"{service}.{op}"] += 1
            handler = getattr(self, f"_{service}", None)
            if handler is not None:
                handler(op, params)

    def _dynamodb(self, op: str, params: dict[str, Any]) -> None:
        table = params.get("TableName", "")
        if op in ("PutItem", "UpdateItem", "DeleteItem"):
            item = params.get("Item") or params.get("Key") or {}
            self._touch(table, self._table_key(table, item))
            self._write(
                table, params.get("Item") or {**item, **(params.get("ExpressionAttributeValues") or {})}
            )
        elif op == "GetItem":
            self._touch(table, self._table_key(table, params["Key"]))
        elif op == "Query":
            index = params.get("IndexName") or ""
            attr = self.key_names.get(table, {}).get(index, "pk")
            values = params.get("ExpressionAttributeValues") or {}
            expression = params.get("KeyConditionExpression", "")
            names = params.get("ExpressionAttributeNames") or {}
            key = f"?{expression}"
            for name, placeholder in re.findall(r"([#\w]+)\s*=\s*(:\w+)", expression):
                if names.get(name, name) == attr and placeholder in values:
                    key = _plain(values[placeholder])
                    break
            self._touch(f"{table}/{index}" if index else table, key)
        elif op == "BatchGetItem":
            for name, request in params["RequestItems"].items():
                for k in request["Keys"]:
                    self._touch(name, self._table_key(name, k))
        elif op == "BatchWriteItem":
            for name, requests in params["RequestItems"].items():
                for request in requests:
                    body = request.get("PutRequest", {}).get("Item") or request.get("DeleteRequest", {}).get(
                        "Key"
                    )
                    self._touch(name, self._table_key(name, body or {}))
                    self._write(name, body or {})
        elif op in ("TransactWriteItems", "TransactGetItems"):
            for entry in params["TransactItems"]:
                [(kind, action)] = entry.items()
                name = action["TableName"]
                self._touch(name, self._table_key(name, action.get("Item") or action.get("Key") or {}))
                if op == "TransactWriteItems" and kind == "ConditionCheck":  # a transactional read
                    self.usage.add("dynamodb.rru", read_units(_size(action), transactional=True))
                elif op == "TransactWriteItems":
                    self._write(name, action.get("Item") or action.get("Key") or {}, transactional=True)
        elif op == "Scan":
            self._touch(table, "(scan)")

    def _sqs(self, op: str, params: dict[str, Any]) -> None:
        queue = params.get("QueueUrl", "").rsplit("/", 1)[-1]
        fifo = queue.endswith(".fifo")
        self.usage.add("sqs.fifo_request" if fifo else "sqs.request", 1)
        if op == "SendMessageBatch":
            for entry in params["Entries"]:
                self._touch(queue, entry.get("MessageGroupId", "(no group)"))
        elif op == "SendMessage":
            self._touch(queue, params.get("MessageGroupId", "(no group)"))
        # receives and deletes name no message group: queue-level, not tallied by key

    def _s3(self, op: str, params: dict[str, Any]) -> None:
        self.usage.add("s3.get" if op in ("GetObject", "HeadObject") else "s3.put", 1)
        prefix = "/".join(str(params.get("Key", "")).split("/", 2)[:2])
        self._touch(params.get("Bucket", ""), prefix)

    def _events(self, _op: str, params: dict[str, Any]) -> None:
        # A bus has no partition key (its limit is the account's PutEvents rate): not tallied.
        self.usage.add("events.put", len(params.get("Entries", [])))

    def _kms(self, _op: str, _params: dict[str, Any]) -> None:
        self.usage.add("kms.request", 1)

    def _after(self, model: Any, parsed: dict[str, Any], **_: Any) -> None:
        sent = getattr(self._calls, "sent", None)
        if sent is not None:
            cpu = time.thread_time() - self._calls.cpu
            self.aws_seconds.total = self.waited() + time.perf_counter() - sent
            self.aws_cpu.total = self.moto_cpu() + cpu
            self._calls.sent = None
            with self._lock:
                self.op_cpu[f"{model.service_model.service_name}.{model.name}"] += cpu
                if getattr(self._calls, "target", ""):
                    self.target_cpu[f"{model.name}{self._calls.target}"] += cpu
                    self.target_calls[f"{model.name}{self._calls.target}"] += 1
        if model.service_model.service_name != "dynamodb":
            return
        with self._lock:
            if model.name in ("GetItem", "Query", "Scan"):
                items = parsed.get("Items") or ([parsed["Item"]] if parsed.get("Item") else [])
                self.usage.add("dynamodb.rru", read_units(sum(_size(i) for i in items)))
            elif model.name == "BatchGetItem":
                for items in (parsed.get("Responses") or {}).values():
                    for item in items:
                        self.usage.add("dynamodb.rru", read_units(_size(item)))


def access_token(google: Any, address: str, client: Any) -> str:
    """An access token of the double for `address`."""
    from benchmarks.google_oauth import access_token as token_of

    return token_of(google, client, login_hint=address)


class _Context:
    function_name = "mailbridge-sim-sync"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:mailbridge-sim-sync"
    aws_request_id = "sim"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000  # the template's SyncFunction Timeout


def main() -> int:
    import boto3
    import httpx
    from moto import mock_aws

    from benchmarks.sync import moto_events
    from local.google import GoogleDouble
    from local.resources import create_resources
    from local.template import load_template
    from mailbridge import aws, crypto, opsmetrics
    from mailbridge.models.account import Account, SyncState
    from mailbridge.providers.gmail.client import GmailClient
    from mailbridge.providers.gmail.quota import QuotaBudget
    from mailbridge.store.accounts import AccountStore
    from mailbridge.sync.messages import SyncRequest
    from mailbridge.sync.wiring import service_deps
    from tests.fixtures import moto_queries, moto_sends, moto_transactions
    from tests.fixtures.aws import load_function, reset_caches

    moto_transactions.install()
    moto_events.install()
    if os.environ.get("BENCH_SIM_MOTO_AS_IS") != "1":  # 1: moto's own Query and send, to measure them
        moto_queries.install()
        moto_sends.install()

    provider_calls = [0]

    class Latency(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            provider_calls[0] += 1
            time.sleep(LATENCY_MS / 1000)
            return super().handle_request(request)

    provider_http = httpx.Client(transport=Latency(), timeout=30)
    with mock_aws(), moto_events.rule_queues_consumed(), GoogleDouble() as google:
        template = load_template([ROOT / "template.yaml"])
        deployed = create_resources(boto3.session.Session(), template)
        os.environ.update(template.functions()["SyncFunction"].environment)
        reset_caches()
        key_names: dict[str, dict[str, str]] = {}
        for lid, name in deployed.tables.items():
            props = template.resources[lid]["Properties"]
            names = {"": next(k["AttributeName"] for k in props["KeySchema"] if k["KeyType"] == "HASH")}
            for index in props.get("GlobalSecondaryIndexes") or []:
                names[index["IndexName"]] = next(
                    k["AttributeName"] for k in index["KeySchema"] if k["KeyType"] == "HASH"
                )
            key_names[name] = names
        meter = Meter(key_names)
        for kind in ("tables", "queue_urls", "buckets", "buses"):
            for lid, physical in getattr(deployed, kind, {}).items():
                meter.labels[str(physical).rsplit("/", 1)[-1]] = lid
        meter.attach(aws._session().events)  # before the first client: clients copy the hooks
        sync_app = load_function("sync")
        deps = service_deps()
        queue_url = deps.queue.queue_url
        sqs = aws._session().client("sqs")
        control = boto3.client("sqs")  # not metered: empty polls and the pumps' stop condition

        # ---- accounts: a Google user each, a token, the account stored with sealed credentials
        setup = time.perf_counter()
        oauth_client = google.register_client([REDIRECT])
        tokens: dict[str, str] = {}
        budgets: dict[str, QuotaBudget] = {}
        accounts: list[Account] = []
        store = AccountStore(deployed.tables["AccountsTable"])
        for n in range(ACCOUNTS):
            address = f"user{n}@tenant{n % TENANTS}.example"
            mailbox = google.add_user(address, f"User {n}")
            for i in range(MESSAGES):
                google.gmail.add_message(mailbox, message(n, i, address), ["INBOX", "UNREAD"])
            account = Account(
                account_id=f"acc_{n:020d}",
                tenant_id=f"t{n % TENANTS:04d}",
                provider="gmail",
                address=address,
                created_at=datetime.now(UTC),
                created_by="sim",
                sync=SyncState(),
            )
            context = {"tenant_id": account.tenant_id, "account_id": account.account_id}
            store.create_account(account, crypto.encrypt(b"{}", context, key_id=deployed.keys["DataKey"]))
            tokens[account.account_id] = access_token(google, address, oauth_client)
            budgets[account.account_id] = QuotaBudget()
            accounts.append(account)
        setup_s = time.perf_counter() - setup
        meter.clear()

        def client_for(account: Account) -> GmailClient:
            token = tokens[account.account_id]
            return GmailClient(
                google.gmail_url,
                lambda _refresh: token,
                budget=budgets[account.account_id],
                http=provider_http,
            )

        lock = threading.Lock()
        deps.gmail_client = client_for
        lags: list[float] = []
        throttled = Counter[str]()

        def captured(name: str, _unit: Any, value: float, _provider: str, reason: str | None = None) -> None:
            with lock:
                if name == opsmetrics.SYNC_LAG:
                    lags.append(value)
                else:
                    throttled[f"{name}:{reason}"] += int(value)

        opsmetrics._emit = captured  # type: ignore[assignment]  # counted here, not printed as EMF
        invocations: list[float] = []  # per invocation: CPU seconds of our code (moto's taken out)
        failures = Counter[str]()
        retried = [0]  # failed records that came back after their visibility timeout
        template_record = json.loads((ROOT / "events" / "sqs" / "sync-request.json").read_text())["Records"][
            0
        ]

        idle_sandboxes: list[Any] = []  # warm sandboxes: each a module of its own, as Lambda's are
        sandboxes_started = [0]
        held: dict[str, str] = {}  # message id -> receipt handle of a record that failed (comes back)

        def started_sandbox(app: Any) -> Any:
            """`app` (a fresh import of the function's module) with its failed records counted."""
            original = app.record_handler

            def record_handler(record: Any) -> None:
                try:
                    original(record)
                except Exception as exc:  # counted by type and printed; the processor reports it
                    with lock:
                        failures[type(exc).__name__] += 1
                    raise

            app.record_handler = record_handler
            sandboxes_started[0] += 1
            return app

        def sandbox() -> Any:
            """A warm sandbox, or a cold start: the function's module imported again, with its own
            batch processor (Powertools' processor keeps the batch it works on: one per sandbox)."""
            with lock:
                if idle_sandboxes:
                    return idle_sandboxes.pop()
                return started_sandbox(load_function("sync"))

        idle_sandboxes.append(started_sandbox(sync_app))

        def invoke(m: Any) -> None:
            """One invocation of the sync function with one record (BatchSize 1), in a sandbox of
            its own, then the delete the event source mapping makes for a record that succeeded."""
            record = dict(template_record)
            record.update(
                messageId=m["MessageId"],
                receiptHandle=m["ReceiptHandle"],
                body=m["Body"],
                attributes={**template_record["attributes"], **m.get("Attributes", {})},
            )
            meter.reset_wait()
            app = sandbox()
            started = time.thread_time()
            try:
                answer = app.lambda_handler({"Records": [record]}, _Context())
                ok = not answer.get("batchItemFailures")
            except Exception as exc:  # noqa: BLE001 - counted and printed; the record comes back
                ok = False
                with lock:
                    failures[f"invocation {type(exc).__name__}"] += 1
            own = time.thread_time() - started - meter.moto_cpu()  # our CPU, moto's taken out
            with lock:
                invocations.append(max(own, 0.0))
                idle_sandboxes.append(app)
                if not ok:
                    held[m["MessageId"]] = m["ReceiptHandle"]
            if ok:
                sqs.delete_message_batch(
                    QueueUrl=queue_url, Entries=[{"Id": "0", "ReceiptHandle": m["ReceiptHandle"]}]
                )

        def left() -> int:
            attributes = control.get_queue_attributes(
                QueueUrl=queue_url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            return sum(int(v) for v in attributes.values())

        def drain() -> None:
            """The event source mapping: receive up to 10 records (one message group each at a
            time: FIFO), invoke each in its own concurrent invocation, up to WORKERS at once."""
            in_flight: set[Any] = set()
            with ThreadPoolExecutor(max_workers=WORKERS) as pool:
                while True:
                    in_flight = {f for f in in_flight if not f.done()}
                    if len(in_flight) >= WORKERS:
                        time.sleep(0.01)
                        continue
                    got = control.receive_message(
                        QueueUrl=queue_url,
                        MaxNumberOfMessages=min(10, WORKERS - len(in_flight)),
                        AttributeNames=["All"],
                        WaitTimeSeconds=0,
                    ).get("Messages", [])
                    if got:  # a receive that brought work (idle long polls: docs/scale.md)
                        with meter._lock:
                            meter.operations["sqs.ReceiveMessage"] += 1
                            meter.usage.add("sqs.fifo_request", 1)
                        in_flight |= {pool.submit(invoke, m) for m in got}
                        continue
                    if not in_flight and left() == 0:
                        return
                    if not in_flight and held:
                        come_back()
                        continue
                    time.sleep(0.05)

        def come_back() -> None:
            """A failed record is visible again once its VisibilityTimeout (SyncQueue: 1,800 s) or
            the provider's retry-after has passed. With nothing else left to run, the simulation
            moves to that moment, as the runner's clock does: the records are made visible now
            (not a request of ours: AWS needs none to bring them back)."""
            with lock:
                receipts = list(held.values())
                held.clear()
            retried[0] += len(receipts)
            for receipt in receipts:
                control.change_message_visibility(
                    QueueUrl=queue_url, ReceiptHandle=receipt, VisibilityTimeout=0
                )

        def queue(reason: Literal["connected", "push"]) -> None:
            requests = [
                SyncRequest(tenant_id=a.tenant_id, account_id=a.account_id, reason=reason) for a in accounts
            ]
            deps.queue.send_many(requests)

        phases: dict[str, tuple[float, int]] = {}

        def stored() -> int:
            pages = (
                boto3.client("dynamodb")
                .get_paginator("scan")
                .paginate(
                    TableName=deployed.tables["EmailsTable"],
                    Select="COUNT",
                    FilterExpression="begins_with(sk, :e)",
                    ExpressionAttributeValues={":e": {"S": "EMAIL#"}},
                )
            )
            return sum(page["Count"] for page in pages)

        started = time.perf_counter()
        queue("connected")
        drain()
        phases["initial"] = (time.perf_counter() - started, stored())
        for round_ in range(PUSHES):
            for n, account in enumerate(accounts):
                mailbox = google.gmail.mailbox(account.address)
                google.gmail.add_message(
                    mailbox, message(n, MESSAGES + round_, account.address), ["INBOX", "UNREAD"]
                )
            started = time.perf_counter()
            queue("push")
            drain()
            phases[f"push {round_ + 1}"] = (time.perf_counter() - started, stored())

    emails = stored_total = phases[list(phases)[-1]][1]
    usage = meter.usage
    usage.add("lambda.request", len(invocations))
    aws_requests = sum(meter.operations.values())
    billed_seconds = sum(invocations) + provider_calls[0] * LATENCY_MS / 1000 + aws_requests * AWS_LATENCY_S
    usage.add("lambda.gb_second", billed_seconds * SYNC_MEMORY_GB)
    costs = cost_usd(usage)
    tables = {meter.labels.get(name, name) for name in key_names}
    dynamo = {k: v for k, v in meter.keys.items() if k[0].split("/")[0] in tables}
    hottest = meter.keys.most_common(1)[0] if meter.keys else (("-", "-"), 0)
    total_touches = sum(meter.keys.values())
    hottest_dynamo = max(dynamo.items(), key=lambda kv: kv[1]) if dynamo else (("-", "-"), 0)

    print(
        f"{ACCOUNTS} Gmail accounts over {TENANTS} tenants, {MESSAGES} messages each then {PUSHES} push(es) "
        f"of one; provider latency {LATENCY_MS:.0f} ms; {WORKERS} concurrent pumps; setup {setup_s:.0f} s"
    )
    for phase, (seconds, count) in phases.items():
        print(f"simulation {phase} seconds: {seconds:.1f} (emails stored so far {count})")
    print(f"simulation emails stored: {stored_total}")
    lags.sort()
    if lags:
        print(f"simulation sync lag p50 seconds: {lags[len(lags) // 2]:.1f}")
        print(f"simulation sync lag max seconds: {lags[-1]:.1f}")
    print(f"simulation provider throttling: {dict(throttled) or 0}")
    print(
        f"simulation sync invocations: {len(invocations)} in {sandboxes_started[0]} sandboxes "
        f"(failed records: {dict(failures) or 0}; came back after their visibility timeout: {retried[0]})"
    )
    runs = max(len(invocations), 1)
    print(
        f"simulation lambda seconds per invocation: {billed_seconds / runs:.3f} (our CPU "
        f"{sum(invocations) / runs:.3f} + {provider_calls[0] / runs:.1f} provider calls x "
        f"{LATENCY_MS:.0f} ms + AWS requests x {AWS_LATENCY_S * 1000:.0f} ms)"
    )
    print("simulation request mix (requests per stored email):")
    for op, calls in sorted(meter.operations.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {op:<36}{calls:>9}{calls / max(emails, 1):>9.3f}")
    if PROFILE:
        print("simulation moto CPU per operation (requests, seconds, ms each):")
        for op, seconds in meter.op_cpu.most_common():
            calls = max(meter.operations[op], 1)
            print(f"  {op:<36}{calls:>9}{seconds:>10.1f}{seconds * 1000 / calls:>10.2f}")
        print("simulation moto CPU per DynamoDB operation and table (requests, seconds, ms each):")
        for target, seconds in meter.target_cpu.most_common():
            calls = max(meter.target_calls[target], 1)
            print(f"  {target:<48}{calls:>9}{seconds:>10.1f}{seconds * 1000 / calls:>10.2f}")
    print(f"simulation aws requests per stored email: {sum(meter.operations.values()) / max(emails, 1):.2f}")
    print("simulation hottest keys (resource, partition key: share of all counted touches):")
    for (resource, key), count in meter.keys.most_common(8):
        print(f"  {resource:<28} {key:<44} {count / total_touches:.3f}")
    print(f"simulation hottest partition key share: {hottest[1] / max(total_touches, 1):.4f}")
    share = hottest_dynamo[1] / max(sum(dynamo.values()), 1)
    print(
        f"simulation hottest dynamodb partition key share: {share:.4f} ({hottest_dynamo[0][1]}; "
        f"even spread over {TENANTS} tenants would be {1 / TENANTS:.4f})"
    )
    print(f"simulation cost ({PRICES_AS_OF}) per 10,000 emails by unit:")
    for unit, usd in sorted(costs.items(), key=lambda kv: -kv[1]):
        if unit != "total":
            units = usage.counts[unit] * 10_000 / max(emails, 1)
            print(f"  {unit:<24}{units:>14.1f} units {per_emails(usd, emails):>10.4f} USD")
    print(f"simulation cost per 10,000 emails USD: {per_emails(costs['total'], emails):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
