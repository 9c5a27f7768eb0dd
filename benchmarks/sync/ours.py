"""Our side of benchmarks/bench_sync.py, run in its own process so its peak memory is its own.

The parent starts moto (ThreadedMotoServer) and Dovecot, then runs this script with the moto
endpoint and the mailbox in a JSON argument. This process creates the template's resources in
moto, connects the account through the service layer (mailbridge.accounts.connect_account, which
logs in first and stores the KMS-encrypted password), and times `run_sync` (IMAP fetch, MIME
normalization, S3 + DynamoDB writes, bus events) until the report is complete. It writes one JSON
line per phase to the result file descriptor, then waits for a line on stdin ("go") before the
incremental run, so the parent can append a message in between.

`BENCH_SYNC_PROFILE=1` prints a cProfile top list of the initial sync to stderr (and with
`BENCH_SYNC_PROFILE_OUT=path` dumps the whole profile there, for pstats or snakeviz);
`BENCH_SYNC_TRACEMALLOC=1` adds the tracemalloc peak (slows the run down noticeably);
`BENCH_SYNC_YAPPI_OUT=path` saves a CPU profile of every thread of the initial sync there in
pstats format (cProfile sees only the main thread, not the fetch worker or the S3 pool; yappi is
not a dependency: `pip install yappi` first).
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import json
import os
import pstats
import resource
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TENANT = "bench"


def _maxrss_mb() -> float:
    """This process's own peak RSS since exec.

    Not getrusage(): on Linux its ru_maxrss also counts the parent's peak that the child inherited
    when it was forked (exec keeps the old mm's high-water mark), and the parent holds moto.
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # elsewhere: the best there is


class OperationClock:
    """Requests and wall time per AWS operation, from botocore's before-call/after-call events.

    Counted at before-call, so concurrent calls of one operation (the S3 put pool) all count; the
    start times are per thread for the same reason.
    """

    def __init__(self) -> None:
        self.totals: dict[str, list[float]] = {}
        self._started = threading.local()
        self._lock = threading.Lock()

        # (start, end) of every HTTP exchange with AWS (moto here), from any thread
        self.exchanges: list[tuple[float, float]] = []
        self._sent = threading.local()
        # (start, end) of every IMAP fetch of new mail (`fetch_new`) and of every batch normalized
        # ahead (`engine.prepare_batch`), from any thread: our work that may run while a request
        # of the storing thread is out
        self.fetching: list[tuple[float, float]] = []

    def attach(self, session: Any) -> None:
        session.register("before-call", self._before)
        session.register("after-call", self._after)
        session.register("before-send", self._send)
        session.register("response-received", self._received)

    def _send(self, **_: Any) -> None:
        self._sent.at = time.perf_counter()

    def _received(self, **_: Any) -> None:
        start = getattr(self._sent, "at", None)
        if start is not None:
            self._sent.at = None
            with self._lock:
                self.exchanges.append((start, time.perf_counter()))

    def waiting_seconds(self) -> float:
        """Seconds during which at least one AWS request was out (botocore's before-send until its
        response is parsed; the union of the intervals, so concurrent S3 puts count once) and no
        IMAP fetch or normalizing of ours was running (`fetching`: the sync fetches and
        normalizes the next batch in a worker thread while it stores the current one, and that
        work must not hide in the seconds taken out): the time moto took to answer while we had
        nothing else to do, which a deployed function spends waiting on AWS instead."""
        return max(0.0, _union(self.exchanges) - _overlap(_merged(self.exchanges), _merged(self.fetching)))

    def _before(self, model: Any, **_: Any) -> None:
        with self._lock:
            entry = self.totals.setdefault(f"{model.service_model.service_name}.{model.name}", [0, 0.0])
            entry[0] += 1
        self._started.at = time.perf_counter()

    def _after(self, model: Any, **_: Any) -> None:
        start = getattr(self._started, "at", None)
        if start is not None:
            self._started.at = None
            with self._lock:
                self.totals[f"{model.service_model.service_name}.{model.name}"][1] += (
                    time.perf_counter() - start
                )

    def counts(self) -> dict[str, int]:
        return {name: int(calls) for name, (calls, _) in self.totals.items()}

    def report(self) -> str:
        lines = [f"{'AWS operation':<34}{'calls':>7}{'total s':>9}{'ms/call':>9}"]
        for name, (calls, total) in sorted(self.totals.items(), key=lambda kv: -kv[1][1]):
            lines.append(f"{name:<34}{calls:>7}{total:>9.2f}{1000 * total / calls:>9.2f}")
        return "\n".join(lines)


def _merged(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The union of `intervals` as disjoint, sorted intervals."""
    out: list[tuple[float, float]] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _union(intervals: list[tuple[float, float]]) -> float:
    return sum(end - start for start, end in _merged(intervals))


def _overlap(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    """Seconds two lists of disjoint sorted intervals share."""
    total, i, j = 0.0, 0, 0
    while i < len(a) and j < len(b):
        total += max(0.0, min(a[i][1], b[j][1]) - max(a[i][0], b[j][0]))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def main() -> int:
    config: dict[str, Any] = json.loads(sys.argv[1])
    out = os.fdopen(int(config["result_fd"]), "w", buffering=1)
    sys.path[:0] = [str(ROOT / "layers" / "mailbridge"), str(ROOT)]

    import boto3
    from botocore.config import Config

    from local.resources import create_resources
    from local.template import load_template

    template = load_template([ROOT / "template.yaml"], parameters={"AllowPrivateMailHosts": "true"})
    create_resources(boto3.session.Session(), template)
    os.environ.update(template.functions()["SyncFunction"].environment)
    os.environ["POWERTOOLS_TRACE_DISABLED"] = "true"
    os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"  # one INFO line per run is all it would add

    from mailbridge import aws

    # moto over HTTP on a loaded machine can take longer than the clients' 10-s read timeout for a
    # transaction of 100 actions (DynamoDB answers those in milliseconds): give the benchmark 120 s.
    make_config = aws._config
    aws._config = lambda **extra: make_config(**extra).merge(Config(read_timeout=120))
    from mailbridge.accounts import AccountDeps, connect_account
    from mailbridge.config import get_settings
    from mailbridge.models.account import AccountCreate
    from mailbridge.sync import engine
    from mailbridge.sync.engine import Budget, SyncReport
    from mailbridge.sync.messages import SyncRequest
    from mailbridge.sync.service import run_sync
    from mailbridge.sync.wiring import BATCH_BYTES, BATCH_SIZE, service_deps
    from mailbridge.tenancy import Role, TenantContext

    # Every AWS request our process makes, by service.operation (botocore before/after-call);
    # clients copy the session's event hooks when created, so register before the first one.
    clock = OperationClock()
    clock.attach(aws._session().events)
    settings = get_settings()
    deps = service_deps()
    account = connect_account(
        TenantContext(tenant_id=TENANT, role=Role.MEMBER, subject="bench"),
        AccountCreate.model_validate(
            {
                "provider": "imap",
                "address": f"{config['user']}@example.com",
                "imap": {
                    "host": config["host"],
                    "port": config["port"],
                    "security": "none",
                    "username": config["user"],
                    "password": config["password"],
                },
            }
        ),
        AccountDeps(
            store=deps.sync.accounts,
            queue=deps.queue,
            key_id=settings.data_key_id,
            allow_private_hosts=settings.allow_private_mail_hosts,
        ),
    )
    request = SyncRequest(tenant_id=TENANT, account_id=account.account_id, reason="manual")

    cpu_seconds: list[float] = []
    # Seconds and messages of each stored fetch batch (normalize, S3, DynamoDB, events, cursor):
    # what template.yaml's SyncFunction sizing is derived from.
    batches: list[tuple[float, int]] = []
    store_batch = engine._store_batch

    def timed_store_batch(batch: Any, *args: Any) -> None:
        started = time.perf_counter()
        store_batch(batch, *args)
        batches.append((time.perf_counter() - started, len(batch.messages)))

    engine._store_batch = timed_store_batch  # type: ignore[assignment]

    # When each IMAP fetch of new mail ran (any thread): `OperationClock.waiting_seconds` leaves
    # those seconds in our time, whether or not an AWS request was out meanwhile.
    from mailbridge.providers.imap.client import ImapConnection

    fetch_new = ImapConnection.fetch_new

    def timed_fetch_new(self: ImapConnection, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fetch_new(self, *args, **kwargs)
        finally:
            with clock._lock:
                clock.fetching.append((started, time.perf_counter()))

    ImapConnection.fetch_new = timed_fetch_new  # type: ignore[method-assign]

    # The same for each batch the worker normalizes ahead (engine._fetch_ahead's prepare_batch).
    prepare_batch = getattr(engine, "prepare_batch")  # noqa: B009 - imported there, patched there

    def timed_prepare_batch(*args: Any) -> Any:
        started = time.perf_counter()
        try:
            return prepare_batch(*args)
        finally:
            with clock._lock:
                clock.fetching.append((started, time.perf_counter()))

    setattr(engine, "prepare_batch", timed_prepare_batch)  # noqa: B010 - as above

    def sync_until_complete() -> tuple[float, int, int, int]:
        """Seconds, stored, quarantined, runs: continuations are run here instead of queued.
        The operation counts start from zero, so they are this phase's requests only."""
        clock.totals.clear()
        clock.exchanges.clear()
        clock.fetching.clear()
        batches.clear()
        stored = quarantined = runs = 0
        start, cpu = time.perf_counter(), time.process_time()
        while True:
            runs += 1
            # The sync function's batch sizes (sync/wiring.py); no time limit: continuations of a
            # deployed run are what a run cut short hands over, here the loop runs them.
            budget = Budget(max_messages=10**9, batch_size=BATCH_SIZE, batch_bytes=BATCH_BYTES)
            report = run_sync(request, deps, budget)
            if not isinstance(report, SyncReport):
                raise RuntimeError("run_sync gave no report (account removed or credentials rejected)")
            stored += report.stored
            quarantined += sum(f.quarantined for f in report.folders)
            if report.complete:
                cpu_seconds.append(time.process_time() - cpu)
                return time.perf_counter() - start, stored, quarantined, runs

    def count(prefix: str) -> int:
        table: Any = boto3.resource("dynamodb").Table(settings.tables.emails)
        total, kwargs = 0, dict[str, Any]()
        while True:
            page = table.query(
                KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
                ExpressionAttributeValues={":p": f"TENANT#{TENANT}", ":s": prefix},
                Select="COUNT",
                **kwargs,
            )
            total += int(page["Count"])
            if "LastEvaluatedKey" not in page:
                return total
            kwargs = {"ExclusiveStartKey": page["LastEvaluatedKey"]}

    profile = cProfile.Profile() if os.environ.get("BENCH_SYNC_PROFILE") == "1" else None
    traced = os.environ.get("BENCH_SYNC_TRACEMALLOC") == "1"
    if traced:
        tracemalloc.start(6)
    yappi_out = os.environ.get("BENCH_SYNC_YAPPI_OUT")
    if yappi_out:
        import yappi  # type: ignore[import-untyped,import-not-found,unused-ignore]

        yappi.set_clock_type("cpu")
        yappi.start()
    if profile is not None:
        profile.enable()
    seconds, stored, quarantined, runs = sync_until_complete()
    if yappi_out:
        yappi.stop()
        yappi.get_func_stats().save(yappi_out, type="pstat")
    aws_waiting = clock.waiting_seconds()
    if profile is not None:
        profile.disable()
        if dump := os.environ.get("BENCH_SYNC_PROFILE_OUT"):
            profile.dump_stats(dump)
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(25)
        text.write("\n--- by own time ---\n")
        pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(15)
        print(text.getvalue(), file=sys.stderr)
        print(clock.report(), file=sys.stderr)
    peak_traced = tracemalloc.get_traced_memory()[1] / 2**20 if traced else None
    if traced:
        snapshot = tracemalloc.take_snapshot()
        print("--- memory still held after the initial sync, by allocation site ---", file=sys.stderr)
        for stat in snapshot.statistics("traceback")[:12]:
            print(f"{stat.size / 2**20:8.1f} MB {stat.count:>8} blocks", file=sys.stderr)
            for line in stat.traceback.format(limit=6):
                print("    " + line, file=sys.stderr)
    out.write(
        json.dumps(
            {
                "phase": "initial",
                "seconds": seconds,
                "aws_waiting_seconds": aws_waiting,
                "cpu_seconds": cpu_seconds[-1],
                "stored": stored,
                "quarantined": quarantined,
                "runs": runs,
                "emails": count("EMAIL#"),
                "maxrss_mb": _maxrss_mb(),
                "tracemalloc_peak_mb": peak_traced,
                "requests": clock.counts(),
                "batch_seconds": [b[0] for b in batches],
                "batch_messages": [b[1] for b in batches],
            }
        )
        + "\n"
    )

    if sys.stdin.readline().strip() != "go":
        return 0
    seconds, stored, quarantined, runs = sync_until_complete()
    out.write(
        json.dumps(
            {
                "phase": "incremental",
                "seconds": seconds,
                "cpu_seconds": cpu_seconds[-1],
                "stored": stored,
                "quarantined": quarantined,
                "runs": runs,
                "emails": count("EMAIL#"),
                "maxrss_mb": _maxrss_mb(),
                "requests": clock.counts(),
            }
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
