"""Graph initial sync from the Microsoft double, under Outlook's limits.

The double enforces what Outlook enforces per app and mailbox (10,000 requests per 10 minutes, 4
concurrent requests, requests inside a JSON batch counted one by one), and the adapter's
per-account budget keeps the same limits on our side. An Inbox of `BENCH_GRAPH_MESSAGES` (default
5,000) messages is synced by `sync_graph_account`: delta pages (`odata.maxpagesize=100`) and the
MIME by `$batch` of 20, through the real adapter over HTTPS. What is measured is the transfer
path: the shared ingest (normalize, S3, DynamoDB) is replaced by a counting stand-in, since
`bench_sync.py` measures it on its own.

Printed (`label: value`, no thresholds):
  seconds                      wall time of the initial sync
  limit_bound_minimum_seconds  what Outlook's limits allow at best: max(the request window's
                               bound, the requests at 4 in flight x one request's median latency
                               at the double, measured here)
  ratio_to_limit_bound         seconds / limit_bound_minimum_seconds
  http_requests_per_message    HTTP requests we made / messages
  graph_requests_per_message   requests Outlook counts (batch items one by one) / messages
  throttled_by_graph           429s the double answered (0: the budget kept the limits)

    .venv/bin/python benchmarks/bench_graph.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "layers" / "mailbridge"), str(ROOT)]
MESSAGES = int(os.environ.get("BENCH_GRAPH_MESSAGES", "5000"))
WINDOW_REQUESTS, WINDOW_SECONDS, CONCURRENT = 10_000, 600.0, 4

from local.clock import RealClock  # noqa: E402
from local.microsoft import MicrosoftDouble  # noqa: E402
from mailbridge.models.account import Account, FolderState  # noqa: E402
from mailbridge.sync import graph as graph_sync  # noqa: E402
from mailbridge.sync.engine import Budget  # noqa: E402
from mailbridge.sync.ingest import Ingested  # noqa: E402
from tests.integration.graph_adapter_harness import Tokens, graph_client  # noqa: E402
from tests.integration.local_microsoft.conftest import USER, rfc5322  # noqa: E402


class Accounts:
    def __init__(self) -> None:
        self.states: dict[str, FolderState] = {}

    def folder_state(self, _tenant: str, _account: str, name: str) -> FolderState:
        return self.states.get(name, FolderState(name=name))

    def save_folder_state(self, _tenant: str, _account: str, state: FolderState) -> None:
        self.states[state.name] = state.model_copy()


class Emails:
    def batch_get_sks(self, _tenant: str, _keys: Any) -> list[dict[str, Any]]:
        return []


class Deps:
    def __init__(self) -> None:
        self.accounts = Accounts()
        self.emails = Emails()
        self.blobs = None
        self.stored = 0


def main() -> None:
    deps = Deps()

    def ingest_stand_in(_mailbox: Any, batch: Any, *_: Any, **__: Any) -> list[Ingested]:
        deps.stored += len(batch)
        return [Ingested(None, new_location=True, needs_announcement=False) for _ in batch]

    setattr(graph_sync, "ingest_batch", ingest_stand_in)  # noqa: B010 - the stand-in, see the docstring
    setattr(graph_sync, "announce_ingested", lambda *_a, **_k: None)  # noqa: B010
    with MicrosoftDouble(clock=RealClock(), seed=1) as ms:
        ms.add_user(USER, "Ada Lovelace")
        for n in range(MESSAGES):
            body = f"Order {n}\r\n" + "Lorem ipsum dolor sit amet. " * 40 + "\r\n"
            ms.deliver(USER, rfc5322(subject=f"Order {n}", message_id=f"<o{n}@customer.example>", body=body))
        client = graph_client(ms, Tokens(ms), page_size=100)
        account = Account(
            account_id="acc_bench0000000000000",
            tenant_id="bench",
            provider="graph",
            address=USER,
            created_at=datetime.now(UTC),
            created_by="bench",
        )
        # One request's latency at the double (a $value GET), for the concurrency bound.
        first = next(iter(ms.mailbox(USER).messages.values())).immutable_id
        samples = []
        for _ in range(50):
            started = time.perf_counter()
            client.get_mime(first)
            samples.append(time.perf_counter() - started)
        latency = statistics.median(samples)
        ms.throttle.reset()
        client.budget = type(client.budget)()
        client.requests = 0

        started = time.perf_counter()
        report = graph_sync.sync_graph_account(client, account, deps, Budget(max_messages=10**9))  # type: ignore[arg-type]
        seconds = time.perf_counter() - started
        graph_requests = client.budget.used()
        throttled = ms.throttle.throttled

    assert report.complete, "the sync did not complete"
    assert deps.stored == MESSAGES, f"stored {deps.stored} of {MESSAGES}"
    window_bound = max(0, -(-graph_requests // WINDOW_REQUESTS) - 1) * WINDOW_SECONDS
    minimum = max(window_bound, graph_requests * latency / CONCURRENT)
    print(f"messages: {MESSAGES}")
    print(f"seconds: {seconds:.2f}")
    print(f"request_latency_ms: {latency * 1000:.2f}")
    print(f"limit_bound_minimum_seconds: {minimum:.2f}")
    print(f"ratio_to_limit_bound: {seconds / minimum:.2f}")
    print(f"http_requests: {client.requests}")
    print(f"http_requests_per_message: {client.requests / MESSAGES:.4f}")
    print(f"graph_requests_per_message: {graph_requests / MESSAGES:.4f}")
    print(f"throttled_by_graph: {throttled}")


if __name__ == "__main__":
    main()
