"""IMAP sync against mbsync (isync): initial sync, incremental sync, peak memory.

Run from the repo root: `.venv/bin/python benchmarks/bench_sync.py`. `BENCH_SYNC_MESSAGES`
(default 5000) sets the mailbox size.

A real Dovecot (tests/integration/dovecot.py) gets one user whose INBOX is filled in one IMAP
session with the shared MIME corpus (files up to 200 KB, cycled, a fresh Message-ID per copy) or,
without the corpus, generated multipart messages. Then:

  ours    benchmarks/sync/ours.py in its own process: connect the account through the service
          layer, then `run_sync` until complete: IMAP fetch, MIME normalization, S3 + DynamoDB
          writes and bus events on moto (a ThreadedMotoServer in this process, over HTTP loopback,
          so our child's peak RSS is the sync's, not moto's copy of the mail).
  mbsync  `mbsync -a` pulling the same INBOX into a Maildir on tmpfs (Sync Pull, FSync no:
          neither side writes to disk, Dovecot runs with mail_fsync=never too).

Both read the same Dovecot over the plain port. After both initial syncs one message is appended
and each side syncs again (ours warm in the same process, like a warm Lambda; mbsync as a fresh
process, as it always runs). Peak memory is each child's max RSS from wait4(). No thresholds.

Where moto runs, and what each ratio means. moto is a ThreadedMotoServer in this (the parent)
process and our sync is benchmarks/sync/ours.py in a child, so moto's CPU never holds our GIL;
mbsync runs after our initial sync, so the two are not timed against each other's CPU. moto still
answers far slower than AWS: its per-request CPU (TransactWriteItems of 100 actions about 70 ms,
PutEvents of 10 events about 11 ms, PutObject about 1 ms, with the six costs below taken out;
`BENCH_SYNC_PROFILE=1` prints them) is Python under moto's own GIL, one request at a time, while
DynamoDB answers a batch write in about 10 ms and S3 a put in 20-50 ms. So two ratios are printed, and
neither is faked:
  `sync initial ours/mbsync`  wall clock of our initial sync on moto over wall clock of mbsync:
          what this machine measured, dominated by moto's answers.
  `sync initial ours/mbsync without aws wait`  the same wall clock minus the seconds during which
          at least one AWS request of ours was out (botocore's before-send until the response is
          read, the union over threads) and no IMAP fetch or normalizing of ours ran
          (benchmarks/sync/ours.py), over mbsync's: our process's own work and IMAP, i.e. the
          ratio if AWS answered instantly. The sync fetches and normalizes the next batch in a
          worker thread while it stores the current one (sync/engine.py), so that work often
          runs while moto answers: those seconds stay in our time, as they would if AWS
          answered at once. What else overlaps a wait is the storing thread's own request
          building and the S3 puts' (a pool) and PutEvents' (5 at a time) building, next to none
          of our work; against AWS the request latencies add back (the request counts per
          operation below, each at AWS's latency).
Six moto costs that AWS does not have are taken out before measuring, and said so in the
header, each in a module that names its measurement and has a test that the outcome is moto's:
a TransactWriteItems rollback copy of whole tables (tests/fixtures/moto_transactions.py);
PutEvents' per-event jsonpath parsing and unconsumed target queues (benchmarks/sync/moto_events.py);
an item's size summed over every attribute before it each time moto stores one more attribute,
quadratic in the attributes (benchmarks/sync/moto_items.py: 44% of moto's transaction CPU for
corpus mail); a Query that lists and sorts the whole table (tests/fixtures/moto_queries.py); every
message of a queue counted on each send to it, EventBridge's deliveries included
(tests/fixtures/moto_sends.py); and werkzeug's server closing every connection after one answer
and listing moto's package directory on every request (benchmarks/sync/moto_http.py).

The peer. mbsync's initial sync is timed PEER_RUNS times, each into an empty Maildir in memory
(/dev/shm where there is one), and the median is its figure. Our sync writes to moto's memory; on
this machine's ext4 mbsync's time followed the disk's writeback, 0.36 to 3.7 s for the same pull
(isync 1.4.4, Dovecot 2.3, 2 cores), which flattered our ratio; on tmpfs it is 0.16 s every time.
Our process's CPU seconds are printed too, and are the steadier figure between runs.
`BENCH_SYNC_PROFILE=1` adds moto's server CPU per operation and our process's cProfile (its main
thread); `BENCH_SYNC_YAPPI_OUT=path` (with `pip install yappi`) saves a CPU profile of every
thread of our process in pstats format.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.dovecot import (  # noqa: E402
    DovecotServer,
    DovecotUser,
    dovecot_version,
    find_dovecot,
    make_server_root,
)

MESSAGES = int(os.environ.get("BENCH_SYNC_MESSAGES", "5000"))
PEER_RUNS = 3  # mbsync's initial sync is timed this many times; its median is the peer's figure
MAX_CORPUS_FILE = 200_000
OURS = ROOT / "benchmarks" / "sync" / "ours.py"
INSTALL_MBSYNC = "apt-get install -y isync (Debian/Ubuntu), brew install isync (macOS)"


# --------------------------------------------------------------------------------- the mailbox


def corpus_dir() -> Path | None:
    configured = os.environ.get("MAILBRIDGE_CORPUS")
    base = Path(configured) if configured else ROOT.parent / "shared" / "data"
    return base / "mime" if (base / "mime").is_dir() else None


_HEADER_END = re.compile(rb"\r?\n\r?\n")
_MESSAGE_ID = re.compile(rb"^message-id[ \t]*:.*(?:\r?\n[ \t].*)*\r?\n", re.IGNORECASE | re.MULTILINE)


def with_message_id(raw: bytes, message_id: str) -> bytes:
    """`raw` with its Message-ID header(s) replaced by `message_id` (headers only, body untouched)."""
    end = _HEADER_END.search(raw)
    split = end.start() if end else len(raw)
    head, body = raw[:split], raw[split:]
    if not head.endswith(b"\n"):
        head += b"\n"
    head = _MESSAGE_ID.sub(b"", head).rstrip(b"\r\n")
    return f"Message-ID: <{message_id}>\r\n".encode() + head + body


def generated_message(i: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Customer {i % 97} <customer{i % 97}@example.net>"
    msg["To"] = "sales@example.com"
    msg["Subject"] = f"Order {i}: quote request"
    msg["Date"] = "Tue, 17 Nov 2026 10:00:00 +0000"
    msg["Message-ID"] = f"<gen-{i}@bench.example>"
    text = f"Hello,\n\nplease send a quote for order {i}.\n\n" + "Details follow. " * 40
    msg.set_content(text)
    msg.add_alternative(f"<html><body><p>{text}</p></body></html>", subtype="html")
    msg.add_attachment(bytes(range(256)) * 16, maintype="application", subtype="pdf", filename="q.pdf")
    return msg.as_bytes()


def corpus_messages(mime: Path) -> list[bytes]:
    return [
        p.read_bytes()
        for p in sorted(mime.rglob("*.eml"))
        if p.is_file() and p.stat().st_size <= MAX_CORPUS_FILE
    ]


@dataclass
class Seeded:
    appended: int
    bytes_total: int
    refused: int  # corpus files Dovecot would not APPEND (dropped from the cycle)


def seed(server: DovecotServer, user: DovecotUser, count: int, sources: list[bytes] | None) -> Seeded:
    """APPEND `count` distinct messages to INBOX in one session, then read them all once, so
    Dovecot's index and cache and the page cache are warm for whichever client goes first."""
    cycle = list(sources) if sources else []
    total = refused = 0
    with server.session(user) as conn:
        i = 0
        while i < count:
            if cycle:
                raw = with_message_id(cycle[i % len(cycle)], f"bench-{i}@mailbridge.bench")
            else:
                raw = generated_message(i)
            typ, data = conn.append("INBOX", "", None, raw)
            if typ != "OK":
                if not cycle:
                    raise RuntimeError(f"APPEND of a generated message failed: {data!r}")
                refused += 1
                del cycle[i % len(cycle)]
                continue
            total += len(raw)
            i += 1
        conn.select("INBOX", readonly=True)
        conn.uid("FETCH", "1:*", "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])")
    return Seeded(count, total, refused)


def append_one(server: DovecotServer, user: DovecotUser) -> None:
    server.append(user, "INBOX", generated_message(MESSAGES + 1))


# ------------------------------------------------------------------------------------- mbsync


@dataclass
class Run:
    seconds: float
    maxrss_mb: float
    returncode: int
    output: str


def memory_dir() -> str | None:
    """A tmpfs directory for mbsync's Maildirs (Linux's /dev/shm), or None: the system temp dir."""
    shm = Path("/dev/shm")  # a private mkdtemp goes inside it
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def gnu_time() -> str | None:
    binary = shutil.which("time") or ("/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None)
    if binary is None:
        return None
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10, check=False)
    return binary if "GNU" in out.stdout + out.stderr else None


def _vm_hwm_mb(pid: int) -> float | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def timed_child(argv: list[str], workdir: Path) -> Run:
    """Run to completion and take the child's own peak RSS.

    Not getrusage(RUSAGE_CHILDREN) or wait4() here: on Linux a child's ru_maxrss starts at the
    forking parent's high-water mark, and this process holds moto and the seeded mail. GNU time
    forks from a small process, so its %M is the command's own; without it, /proc's VmHWM (reset
    at exec) is sampled until the process exits.
    """
    timer = gnu_time()
    report = workdir / "time.out"
    command = [timer, "-f", "%M", "-o", str(report), *argv] if timer else argv
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak: list[float] = [0.0]

    def sample() -> None:
        while proc.poll() is None:
            hwm = _vm_hwm_mb(proc.pid)
            if hwm is not None:
                peak[0] = max(peak[0], hwm)
            time.sleep(0.002)

    sampler = None if timer else threading.Thread(target=sample, daemon=True)
    if sampler is not None:
        sampler.start()
    assert proc.stdout is not None
    output = proc.stdout.read().decode(errors="replace")
    proc.wait()
    seconds = time.perf_counter() - start
    if sampler is not None:
        sampler.join()
    if timer:
        lines = report.read_text().strip().splitlines()
        peak[0] = int(lines[-1]) / 1024 if lines and lines[-1].isdigit() else 0.0
    return Run(seconds, peak[0], proc.returncode, output)


def mbsync_version(binary: str) -> tuple[str, tuple[int, ...]]:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10, check=False)
    text = (out.stdout or out.stderr).strip()
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    numbers = tuple(int(g) for g in match.groups() if g is not None) if match else (0,)
    return text, numbers


def write_mbsyncrc(
    directory: Path, server: DovecotServer, user: DovecotUser, version: tuple[int, ...]
) -> Path:
    # isync 1.4 renamed Master/Slave to Far/Near; 1.5 renamed SSLType to TLSType.
    maildir = directory / "Maildir"
    maildir.mkdir()
    tls = "TLSType None" if version >= (1, 5) else "SSLType None"
    far, near = ("Far", "Near") if version >= (1, 4) else ("Master", "Slave")
    rc = directory / "mbsyncrc"
    rc.write_text(
        f"""FSync no

IMAPAccount bench
Host {server.host}
Port {server.imap_port}
User {user.name}
Pass {user.password}
{tls}
AuthMechs LOGIN PLAIN

IMAPStore bench-remote
Account bench

MaildirStore bench-local
Path {maildir}/
Inbox {maildir}/INBOX

Channel bench
{far} :bench-remote:
{near} :bench-local:
Patterns INBOX
Create {near}
Sync Pull
SyncState *
"""
    )
    rc.chmod(0o600)
    return rc


def maildir_count(directory: Path) -> int:
    inbox = directory / "Maildir" / "INBOX"
    return sum(1 for sub in ("cur", "new") if (inbox / sub).is_dir() for _ in (inbox / sub).iterdir())


# --------------------------------------------------------------------------------------- ours


class Ours:
    """benchmarks/sync/ours.py as a child process, one JSON result line per phase."""

    def __init__(self, endpoint: str, server: DovecotServer, user: DovecotUser, log: Path) -> None:
        read_fd, write_fd = os.pipe()
        config = {
            "result_fd": write_fd,
            "host": server.host,
            "port": server.imap_port,
            "user": user.name,
            "password": user.password,
        }
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
        }
        self.log = log
        self._log_file = log.open("wb")
        diagnostics = "1" in (os.environ.get("BENCH_SYNC_PROFILE"), os.environ.get("BENCH_SYNC_TRACEMALLOC"))
        self.start = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, str(OURS), json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=self._log_file,
            stderr=None if diagnostics else self._log_file,
            pass_fds=(write_fd,),
            env=env,
            cwd=ROOT,
        )
        os.close(write_fd)
        self.results: IO[str] = os.fdopen(read_fd)

    def result(self) -> dict[str, Any]:
        line = self.results.readline()
        if not line:
            self.finish()
            raise RuntimeError(f"our sync process failed; its log ({self.log}):\n{self.log_tail()}")
        parsed: dict[str, Any] = json.loads(line)
        return parsed

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def finish(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=30)
        self.results.close()
        self._log_file.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.finish()

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class ServerClock:
    """CPU seconds moto's server threads spend per operation (a WSGI wrapper: the thread's own CPU
    time per request, keyed by X-Amz-Target or, for S3, the HTTP method)."""

    def __init__(self) -> None:
        import threading

        self.totals: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def install(self) -> None:
        import time

        from moto.moto_server.werkzeug_app import DomainDispatcherApplication

        original = DomainDispatcherApplication.__call__
        clock = self

        def timed(app: Any, environ: dict[str, Any], start_response: Any) -> Any:
            started = time.thread_time()
            try:
                return original(app, environ, start_response)
            finally:
                target = environ.get("HTTP_X_AMZ_TARGET") or f"s3/other {environ.get('REQUEST_METHOD')}"
                with clock._lock:
                    entry = clock.totals.setdefault(str(target).split(".")[-1], [0, 0.0])
                    entry[0] += 1
                    entry[1] += time.thread_time() - started

        DomainDispatcherApplication.__call__ = timed  # type: ignore[method-assign,assignment]

    def report(self) -> str:
        lines = [f"  {'moto server operation':<34}{'requests':>9}{'CPU s':>8}{'ms/req':>8}"]
        for name, (calls, cpu) in sorted(self.totals.items(), key=lambda kv: -kv[1][1]):
            lines.append(f"  {name:<34}{int(calls):>9}{cpu:>8.1f}{1000 * cpu / max(calls, 1):>8.1f}")
        return "\n".join(lines)


# Set when BENCH_SYNC_PROFILE=1: moto's server CPU per operation (this process serves moto).
SERVER_CLOCK: list[Any] = []


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    import logging

    from moto.server import ThreadedMotoServer

    from benchmarks.sync import moto_events, moto_http, moto_items
    from tests.fixtures import moto_queries, moto_sends, moto_transactions

    moto_transactions.install()  # TransactWriteItems at AWS's cost (see that module)
    moto_events.install()  # PutEvents without a jsonpath parser built per event (see that module)
    moto_items.install()  # an item's size checked once, not once per attribute (see that module)
    moto_queries.install()  # a Query reads its partition, not the sorted table (see that module)
    moto_sends.install()  # an SQS send does not count the queue's messages (see that module)
    moto_http.install()  # connections kept alive, a host's backend found once (see that module)
    if os.environ.get("BENCH_SYNC_PROFILE") == "1":
        SERVER_CLOCK.append(ServerClock())
        SERVER_CLOCK[0].install()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        with moto_events.rule_queues_consumed(interval=0.05):
            yield f"http://{host}:{port}"
    finally:
        server.stop()


# --------------------------------------------------------------------------------------- main


def print_requests(phase: str, requests: dict[str, int], stored: int) -> float:
    """The phase's AWS requests by service and operation, per stored message; returns the total per
    stored message (every request of our process during the phase: IMAP-side work is not AWS)."""
    total = sum(requests.values())
    per = total / stored if stored else float(total)
    print(f"AWS requests, {phase} ({stored} stored message(s)):")
    print(f"  {'service.operation':<34}{'requests':>9}{'per msg':>9}")
    for name, calls in sorted(requests.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {name:<34}{calls:>9}{calls / max(stored, 1):>9.3f}")
    by_service: dict[str, int] = {}
    for name, calls in requests.items():
        service = name.split(".", 1)[0]
        by_service[service] = by_service.get(service, 0) + calls
    for service, calls in sorted(by_service.items(), key=lambda kv: -kv[1]):
        print(f"  {service + ' (all)':<34}{calls:>9}{calls / max(stored, 1):>9.3f}")
    print(f"  {'total':<34}{total:>9}{per:>9.3f}")
    return per


def fmt_ratio(ours: float, peer: float | None) -> str:
    return f"{ours / peer:8.2f}x" if peer else "       -"


def main() -> int:
    wall = time.perf_counter()
    binary = find_dovecot()
    if binary is None:
        print("skipped: dovecot is not installed (scripts/ensure-dovecot installs it)")
        return 0
    mime = corpus_dir()
    sources = corpus_messages(mime) if mime else None
    mbsync = shutil.which("mbsync")
    mb_text, mb_version = mbsync_version(mbsync) if mbsync else ("", (0,))

    root = make_server_root("mailbridge-bench-dovecot-")
    work = Path(tempfile.mkdtemp(prefix="mailbridge-bench-sync-"))
    # mbsync's Maildirs go to memory, as our writes go to moto's: on this machine's ext4 its time
    # followed the disk's writeback (0.36 to 3.7 s for the same pull), on tmpfs 0.16 s every time.
    maildirs = Path(tempfile.mkdtemp(prefix="mailbridge-bench-mbsync-", dir=memory_dir()))
    server = DovecotServer(root=root, binary=binary)
    ours: Ours | None = None
    try:
        server.start()
        user = server.add_user()
        start = time.perf_counter()
        seeded = seed(server, user, MESSAGES, sources)
        seed_s = time.perf_counter() - start
        origin = (
            f"shared MIME corpus ({len(sources)} files <= 200 KB, cycled, fresh Message-ID per copy)"
            if sources
            else "generated multipart messages (corpus not found: set $MAILBRIDGE_CORPUS)"
        )
        print(f"Dovecot {dovecot_version(binary)}, INBOX of {seeded.appended} messages")
        print(f"  {seeded.bytes_total / 1e6:.1f} MB from {origin}")
        if seeded.refused:
            print(f"  {seeded.refused} corpus file(s) refused by Dovecot's APPEND and left out")
        print(f"  seeded in {seed_s:.1f} s (one IMAP session)")
        print(
            "moto: TransactWriteItems snapshots only the items it writes "
            "(tests/fixtures/moto_transactions.py)"
        )
        print(
            "moto: PutEvents parses each rule target's input paths once, and the rules' queues are "
            "emptied every 50 ms as their consumers would (benchmarks/sync/moto_events.py)"
        )
        print(
            "moto: an item's 400 KB size is checked once when moto builds it, not once per attribute "
            "(benchmarks/sync/moto_items.py)"
        )
        print(
            "moto: a Query reads its partition, not the whole table sorted (tests/fixtures/moto_queries.py)"
        )
        print(
            "moto: a send to a queue, EventBridge's included, does not count the queue's messages "
            "(tests/fixtures/moto_sends.py)"
        )
        print(
            "moto: connections are kept alive and a host's backend is found once, not per request "
            "(benchmarks/sync/moto_http.py)"
        )
        if mbsync:
            print(f"peer: {mb_text} ({mbsync}), Maildirs under {maildirs.parent}")
        else:
            print(f"peer: mbsync not found; install it with: {INSTALL_MBSYNC}. Only our figures follow.")
        print()

        with moto_server() as endpoint:
            moto_cpu = time.process_time()  # this process only serves moto while ours runs
            ours = Ours(endpoint, server, user, work / "ours.log")
            initial = ours.result()
            moto_cpu = time.process_time() - moto_cpu

            mb_initial = mb_incremental = None
            mb_dir = work / "mbsync"
            mb_runs: list[tuple[float, Path, Run]] = []
            if mbsync:
                # The median of PEER_RUNS initial syncs, each into an empty Maildir (in memory).
                for attempt in range(PEER_RUNS):
                    run_dir = maildirs / f"mbsync-{attempt}"
                    run_dir.mkdir()
                    rc = write_mbsyncrc(run_dir, server, user, mb_version)
                    run = timed_child([mbsync, "-c", str(rc), "-a"], run_dir)
                    if run.returncode != 0:
                        print(f"mbsync failed (exit {run.returncode}):\n{run.output.strip()}\n")
                        break
                    mb_runs.append((run.seconds, run_dir, run))
                if len(mb_runs) == PEER_RUNS:
                    _, mb_dir, mb_initial = sorted(mb_runs, key=lambda r: r[0])[PEER_RUNS // 2]
                    print(
                        "mbsync initial runs: "
                        + ", ".join(f"{seconds:.2f} s" for seconds, _, _ in mb_runs)
                        + f" (the median, {mb_initial.seconds:.2f} s, is the peer's figure)"
                    )
            mb_initial_count = maildir_count(mb_dir) if mb_initial else 0
            mb_done = time.monotonic()

            append_one(server, user)
            ours.go()
            incremental = ours.result()
            ours.finish()
            if mbsync and mb_initial:
                # mbsync waits out the current second when its Maildir changed within it (mtime-based
                # change detection); a poll interval is minutes, so do not time that wait.
                time.sleep(max(0.0, mb_done + 1.1 - time.monotonic()))
                mb_incremental = timed_child([mbsync, "-c", str(mb_dir / "mbsyncrc"), "-a"], mb_dir)
                if mb_incremental.returncode != 0:
                    print(f"mbsync incremental run failed:\n{mb_incremental.output.strip()}\n")
                    mb_incremental = None

        n = seeded.appended
        expected = n - initial["quarantined"]
        print(f"{'':<16}{'ours':>10}{'msg/s':>9}{'mbsync':>10}{'msg/s':>9}{'ours/mbsync':>13}")
        mb_s = mb_initial.seconds if mb_initial else None
        print(
            f"{'initial sync':<16}{initial['seconds']:>9.2f}s{n / initial['seconds']:>9.0f}"
            + (f"{mb_s:>9.2f}s{n / mb_s:>9.0f}" if mb_s else f"{'-':>10}{'-':>9}")
            + f"   {fmt_ratio(initial['seconds'], mb_s)}"
        )
        mb_s = mb_incremental.seconds if mb_incremental else None
        print(
            f"{'incremental +1':<16}{incremental['seconds']:>9.3f}s{'':>9}"
            + (f"{mb_s:>9.3f}s{'':>9}" if mb_s else f"{'-':>10}{'':>9}")
            + f"   {fmt_ratio(incremental['seconds'], mb_s)}"
        )
        mb_mem = (
            max(mb_initial.maxrss_mb, mb_incremental.maxrss_mb) if mb_initial and mb_incremental else None
        )
        ours_mem = float(incremental["maxrss_mb"])
        print(
            f"{'peak memory':<16}{ours_mem:>8.0f}MB{'':>9}"
            + (f"{mb_mem:>8.1f}MB{'':>9}" if mb_mem else f"{'-':>10}{'':>9}")
            + f"   {fmt_ratio(ours_mem, mb_mem)}"
        )
        print()
        print(
            f"ours: {initial['emails']} stored emails after the initial sync (expected {expected}: "
            f"{n} minus {initial['quarantined']} quarantined), {initial['runs']} run_sync call(s); "
            f"+{incremental['stored']} incremental -> {incremental['emails']}"
        )
        if initial["emails"] != expected or incremental["emails"] != expected + 1:
            print("WARNING: our stored email count does not match the mailbox")
        print(
            f"ours: initial sync used {initial['cpu_seconds']:.1f} s CPU in our process "
            f"({100 * initial['cpu_seconds'] / initial['seconds']:.0f}% of its wall time); moto's server "
            f"thread used {moto_cpu:.1f} s CPU meanwhile"
        )
        waiting = float(initial["aws_waiting_seconds"])
        without_aws = initial["seconds"] - waiting
        print(
            f"ours: {waiting:.1f} s of the initial sync had an AWS request out (moto answering); "
            f"the other {without_aws:.1f} s ({n / max(without_aws, 1e-9):.0f} msg/s) are ours and IMAP"
        )
        print(f"ours: peak RSS {initial['maxrss_mb']:.0f} MB after the initial sync", end="")
        if initial.get("tracemalloc_peak_mb") is not None:
            print(f", tracemalloc peak {initial['tracemalloc_peak_mb']:.0f} MB", end="")
        print(" (VmHWM: Python + boto3 + Powertools included)")
        seconds = sorted(initial.get("batch_seconds") or [0.0])
        sizes = initial.get("batch_messages") or [0]
        p99 = seconds[min(len(seconds) - 1, int(0.99 * len(seconds)))]
        print(
            f"ours: {len(initial.get('batch_seconds') or [])} fetch batches of up to {max(sizes)} "
            f"messages, each stored in {sum(seconds) / len(seconds):.2f} s mean, {p99:.2f} s p99, "
            f"{seconds[-1]:.2f} s max"
        )
        if mb_initial:
            counted = maildir_count(mb_dir)
            skipped = len(re.findall(r"incomplete header; skipping", mb_initial.output))
            print(
                f"mbsync: Maildir holds {mb_initial_count} after the initial run, {counted} after +1; "
                f"it skipped {skipped} message(s) ('incomplete header': no blank line after the header)"
            )
            if mb_initial_count != n - skipped or counted != mb_initial_count + 1:
                print("WARNING: the Maildir does not hold the mailbox")
            print(f"mbsync: peak RSS via {'GNU time %M' if gnu_time() else '/proc VmHWM sampling'}")
        print()
        per_message = print_requests("initial sync", initial["requests"], initial["stored"])
        print_requests("incremental +1", incremental["requests"], incremental["stored"])
        if SERVER_CLOCK:
            print("moto server CPU (both phases and the setup):")
            print(SERVER_CLOCK[0].report())
        print()
        print(
            "note: ours writes raw MIME, attachments and items to moto (S3/DynamoDB/EventBridge) over "
            "HTTP loopback,\n      mbsync writes Maildir files: the comparison includes that storage "
            "cost. Our incremental\n      run is warm (same process); mbsync's includes its process start."
        )
        print()
        print(f"sync aws requests per stored message: {per_message:.2f}")
        if mb_initial:
            print(f"sync initial ours/mbsync: {initial['seconds'] / mb_initial.seconds:.1f}")
            # The same run without the seconds spent waiting on moto: a lower bound of the ratio
            # against AWS, whose answers cost milliseconds (see ours: ... had an AWS request out).
            print(f"sync initial ours/mbsync without aws wait: {without_aws / mb_initial.seconds:.1f}")
        print(f"\nbenchmark wall time {time.perf_counter() - wall:.0f} s")
        return 0
    finally:
        if ours is not None:
            ours.kill()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(maildirs, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
