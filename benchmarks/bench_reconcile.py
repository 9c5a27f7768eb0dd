"""Reconcile of a 5,000-message folder (issue 12 figures), on the Microsoft double.

The Graph double is the cheapest provider to seed (in-process, no IMAP APPENDs, no quota
units). An Inbox of `BENCH_RECONCILE_MESSAGES` (default 5,000) messages whose store lacks
`BENCH_RECONCILE_GAP` (default 10) of them and holds as many the server no longer has is
reconciled by `reconcile_graph`: the id listing (`$select`, `$top=1000`) through the real adapter
over HTTPS, the missing ones downloaded by `$batch` and handed to the ingest, the extra ones
removed. The store is an in-memory stand-in holding the folder's locations and the ingest a
counting one (`bench_sync.py` measures the ingest on its own), so what is measured is the
reconciler's own work: listing, comparing, repairing.

Printed (`label: value`, no thresholds):
  seconds                 wall time of the reconcile
  http_requests           HTTP requests the adapter made (listing pages, folder lookups, batches)
  graph_requests          requests Outlook counts (batch items one by one)
  missing / extra / repaired   what it found and repaired

    .venv/bin/python benchmarks/bench_reconcile.py
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "layers" / "mailbridge"), str(ROOT)]
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "mailbridge")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")  # the figures only
MESSAGES = int(os.environ.get("BENCH_RECONCILE_MESSAGES", "5000"))
GAP = int(os.environ.get("BENCH_RECONCILE_GAP", "10"))

from local.clock import RealClock  # noqa: E402
from local.microsoft import MicrosoftDouble  # noqa: E402
from mailbridge.models.account import Account, FolderState  # noqa: E402
from mailbridge.store.keys import location_prefix, location_sk  # noqa: E402
from mailbridge.sync import graph as graph_sync  # noqa: E402
from mailbridge.sync.engine import Budget  # noqa: E402
from mailbridge.sync.ingest import Ingested  # noqa: E402
from mailbridge.sync.reconcile import reconcile_graph  # noqa: E402
from tests.integration.graph_adapter_harness import Tokens, graph_client  # noqa: E402
from tests.integration.local_microsoft.conftest import USER, rfc5322  # noqa: E402

ACCOUNT = "acc_bench0000000000000"


class Accounts:
    def __init__(self) -> None:
        now = datetime.now(UTC)
        self.states = {n: FolderState(name=n, last_synced_at=now) for n in ("inbox", "sentitems")}

    def folder_state(self, _tenant: str, _account: str, name: str) -> FolderState:
        return self.states.get(name, FolderState(name=name)).model_copy()

    def save_folder_state(self, _tenant: str, _account: str, state: FolderState) -> None:
        self.states[state.name] = state.model_copy()


class Emails:
    """A folder's locations, keyed by sort key."""

    def __init__(self) -> None:
        self.locations: dict[str, dict[str, Any]] = {}

    def folder_locations(
        self, _tenant: str, account_id: str, folder: str, uidvalidity: int
    ) -> Iterator[dict[str, Any]]:
        prefix = location_prefix(account_id, folder, uidvalidity)
        return iter([loc for sk, loc in sorted(self.locations.items()) if sk.startswith(prefix)])

    def batch_get_sks(self, _tenant: str, keys: Iterable[str], **_: Any) -> list[dict[str, Any]]:
        return [self.locations[k] for k in keys if k in self.locations]

    def delete_location(self, _tenant: str, sk: str) -> None:
        self.locations.pop(sk, None)

    def detach_location(self, _tenant: str, _email_id: str, _sk: str) -> bool:
        return True


class Deps:
    def __init__(self) -> None:
        self.accounts = Accounts()
        self.emails = Emails()
        self.blobs = None
        self.stored = 0

    def now(self) -> datetime:
        return datetime.now(UTC)


def main() -> None:
    deps = Deps()

    def ingest_stand_in(_mailbox: Any, batch: Any, *_: Any, **__: Any) -> list[Ingested]:
        deps.stored += len(batch)
        return [Ingested(None, new_location=True, needs_announcement=False) for _ in batch]

    setattr(graph_sync, "ingest_batch", ingest_stand_in)  # noqa: B010 - the stand-in, see the docstring
    setattr(graph_sync, "announce_ingested", lambda *_a, **_k: None)  # noqa: B010
    with MicrosoftDouble(clock=RealClock(), seed=1) as ms:
        ms.add_user(USER, "Ada Lovelace")
        ids = []
        for n in range(MESSAGES):
            body = f"Order {n}\r\n" + "Lorem ipsum dolor sit amet. " * 40 + "\r\n"
            raw = rfc5322(subject=f"Order {n}", message_id=f"<o{n}@customer.example>", body=body)
            ids.append(ms.deliver(USER, raw).immutable_id)
        # Stored: every message but the first GAP, and GAP the server does not have.
        for message_id in ids[GAP:] + [f"gone-{n}" for n in range(GAP)]:
            sk = location_sk(ACCOUNT, "inbox", 0, message_id)
            deps.emails.locations[sk] = {"sk": sk, "email_id": f"e-{message_id}", "uid": 0, "flags": []}
        client = graph_client(ms, Tokens(ms), page_size=100)
        account = Account(
            account_id=ACCOUNT,
            tenant_id="bench",
            provider="graph",
            address=USER,
            created_at=datetime.now(UTC),
            created_by="bench",
        )
        ms.throttle.reset()
        client.budget = type(client.budget)()
        client.requests = 0

        started = time.perf_counter()
        tallies = reconcile_graph(client, account, deps, Budget(max_messages=10**9))  # type: ignore[arg-type]
        seconds = time.perf_counter() - started
        graph_requests = client.budget.used()

    (inbox,) = [t for t in tallies if t.name == "inbox"]
    assert inbox.error is None, inbox.error
    assert (inbox.missing, inbox.extra, inbox.repaired) == (GAP, GAP, 2 * GAP), inbox
    assert deps.stored == GAP, f"stored {deps.stored} of {GAP}"
    print(f"messages: {MESSAGES}")
    print(f"seconds: {seconds:.2f}")
    print(f"http_requests: {client.requests}")
    print(f"graph_requests: {graph_requests}")
    print(f"missing: {inbox.missing}")
    print(f"extra: {inbox.extra}")
    print(f"repaired: {inbox.repaired}")


if __name__ == "__main__":
    main()
