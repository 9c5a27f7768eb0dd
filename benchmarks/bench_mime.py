"""mailbridge.mime.normalize against mail-parser over the shared MIME corpus: speed and memory.

Run from the repo root: `.venv/bin/python benchmarks/bench_mime.py [ROUNDS]` (default 3).

Speed: both parsers see the same bytes in the same process, interleaved message by message, and
each message counts with its fastest of ROUNDS runs per parser, so a neighbour's load spike on a
shared machine lands on both or is dropped, not on whichever parser ran at that moment. A
"failure" is any exception (for us: MimeError, the quarantine path; anything else would be a bug
and is reported separately).

Memory: a fresh process imports the normalizer and warms it up on a few small messages (charset
detection, HTML, TNEF: the modules and tables loaded on first use), then normalizes each corpus
message in a forked child: the child's peak resident set (VmHWM, which a fork starts at the
child's current size) minus its resident set before normalizing, after handing free heap back to
the system (malloc_trim) so that memory reused from earlier work is counted, is that message's
peak above the process baseline.

No thresholds: it prints tables and, each on a line of its own, the headline figures
`mime ours/mail-parser: X` and `mime peak rss above baseline MB: X`.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "layers" / "mailbridge"))

import mailparser  # noqa: E402

from mailbridge.mime import MimeError, normalize  # noqa: E402


def corpus_dir() -> Path | None:
    configured = os.environ.get("MAILBRIDGE_CORPUS")
    base = Path(configured) if configured else ROOT.parent / "shared" / "data"
    return base / "mime" if (base / "mime").is_dir() else None


def ours(raw: bytes) -> None:
    normalize(raw)


def theirs(raw: bytes) -> None:
    mailparser.parse_from_bytes(raw)


def timed(parse: Callable[[bytes], None], raw: bytes) -> tuple[float, bool, bool]:
    """(seconds, failed, failed with something other than MimeError)."""
    start = time.perf_counter()
    try:
        parse(raw)
    except MimeError:
        return time.perf_counter() - start, True, False
    except Exception:  # noqa: BLE001 - counting the peer's failures is the point
        return time.perf_counter() - start, True, True
    return time.perf_counter() - start, False, False


def speed(messages: list[bytes], rounds: int) -> dict[str, tuple[float, int, int]]:
    """Per parser: (sum of per-message best times, failures, non-MimeError failures)."""
    best = {"ours": [float("inf")] * len(messages), "theirs": [float("inf")] * len(messages)}
    failed = {"ours": [False] * len(messages), "theirs": [False] * len(messages)}
    crashed = {"ours": [False] * len(messages), "theirs": [False] * len(messages)}
    for _ in range(rounds):
        for index, raw in enumerate(messages):
            for name, parse in (("ours", ours), ("theirs", theirs)):
                seconds, fail, crash = timed(parse, raw)
                best[name][index] = min(best[name][index], seconds)
                failed[name][index] = fail
                crashed[name][index] = crash
    return {name: (sum(best[name]), sum(failed[name]), sum(crashed[name])) for name in best}


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


_WARM_UP = [
    b"From: a@example.com\r\nContent-Type: text/plain; charset=x-unknown\r\n\r\nna\xefve caf\xe9\r\n",
    b"From: a@example.com\r\nContent-Type: text/html\r\n\r\n<p>Hi <b>there</b> &amp; <img src=http://x/a.png></p>",
    b"From: =?utf-8?q?J=C3=BCrgen?= <j@example.com>\r\nSubject: =?iso-8859-1?q?caf=E9?=\r\n\r\nx",
]


def _peak_in_child(raw: bytes) -> float:
    """Peak RSS of normalize(raw) above the resident set before it, in a forked child (MB)."""
    gc.collect()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: measure, report, leave without running the parent's cleanup
        os.close(read_end)
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        baseline = _status_kb("VmRSS:")
        with contextlib.suppress(MimeError):
            normalize(raw)
        os.write(write_end, f"{_status_kb('VmHWM:') - baseline}".encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as reader:
        kilobytes = int(reader.read())
    os.waitpid(pid, 0)
    return kilobytes / 1024


def memory(mime: Path) -> list[tuple[float, str]]:
    """Per message, worst first: (peak MB above baseline, path), measured in a fresh process."""
    output = subprocess.run(
        [sys.executable, __file__, "--memory", str(mime)], capture_output=True, text=True, check=True
    ).stdout
    rows = [line.split("\t", 1) for line in output.splitlines() if "\t" in line]
    return sorted(((float(peak), path) for peak, path in rows), reverse=True)


def memory_child(mime: Path) -> int:
    tnef = mime / "mimekit" / "tnef__rich-text.eml"
    for raw in [*_WARM_UP, *([tnef.read_bytes()] if tnef.exists() else [])]:
        with contextlib.suppress(MimeError):
            normalize(raw)
    for path in sorted(mime.rglob("*.eml")):
        print(f"{_peak_in_child(path.read_bytes()):.2f}\t{path.relative_to(mime)}", flush=True)
    return 0


def main() -> int:
    if sys.argv[1:2] == ["--memory"]:
        return memory_child(Path(sys.argv[2]))
    mime = corpus_dir()
    if mime is None:
        print("skipped: corpus not found (set $MAILBRIDGE_CORPUS or put the shared data at ../shared/data)")
        return 0
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    # mail-parser logs every defect it meets at WARNING; that would dominate its timing.
    logging.disable(logging.CRITICAL)
    paths = sorted(mime.rglob("*.eml"))
    messages = [p.read_bytes() for p in paths]
    size_mb = sum(map(len, messages)) / 1e6

    results = speed(messages, rounds)
    ours_time, ours_failed, ours_crashed = results["ours"]
    theirs_time, theirs_failed, _ = results["theirs"]
    print(f"{len(messages)} messages, {size_mb:.1f} MB, best of {rounds} round(s) per message\n")
    print(f"{'parser':<28}{'msgs/s':>10}{'failed':>9}")
    print(f"{'mailbridge.mime.normalize':<28}{len(messages) / ours_time:>10.1f}{ours_failed:>9}")
    print(
        f"{'mail-parser ' + mailparser_version():<28}{len(messages) / theirs_time:>10.1f}{theirs_failed:>9}"
    )
    if ours_crashed:
        print(f"WARNING: {ours_crashed} non-MimeError exceptions escaped normalize()")

    peaks = memory(mime)
    print(f"\n{'peak RSS above baseline (MB)':<30}message")
    for peak, name in peaks[:5]:
        print(f"{peak:<30.1f}{name}")

    print(f"\nmime ours/mail-parser: {theirs_time / ours_time:.2f}")
    print(f"mime peak rss above baseline MB: {peaks[0][0]:.1f}")
    return 0


def mailparser_version() -> str:
    from importlib.metadata import version

    return version("mail-parser")


if __name__ == "__main__":
    sys.exit(main())
