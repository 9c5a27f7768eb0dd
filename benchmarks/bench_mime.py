"""Throughput of mailbridge.mime.normalize against mail-parser over the shared MIME corpus.

Run from the repo root: `.venv/bin/python benchmarks/bench_mime.py [ROUNDS]`. Both parsers see the
same bytes in the same process; a "failure" is any exception (for us: MimeError, the quarantine
path; anything else would be a bug and is counted separately). No thresholds: it prints a table.
"""

from __future__ import annotations

import logging
import os
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


def measure(parse: Callable[[bytes], None], messages: list[bytes], rounds: int) -> tuple[float, int, int]:
    failed = crashed = 0
    start = time.perf_counter()
    for _ in range(rounds):
        failed = crashed = 0
        for raw in messages:
            try:
                parse(raw)
            except MimeError:
                failed += 1
            except Exception:  # noqa: BLE001 - counting the peer's failures is the point
                failed += 1
                crashed += 1
    elapsed = time.perf_counter() - start
    return len(messages) * rounds / elapsed, failed, crashed


def main() -> int:
    mime = corpus_dir()
    if mime is None:
        print("skipped: corpus not found (set $MAILBRIDGE_CORPUS or put the shared data at ../shared/data)")
        return 0
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    # mail-parser logs every defect it meets at WARNING; that would dominate its timing.
    logging.disable(logging.CRITICAL)
    messages = [p.read_bytes() for p in sorted(mime.rglob("*.eml"))]
    size_mb = sum(map(len, messages)) / 1e6
    ours_rate, ours_failed, ours_crashed = measure(ours, messages, rounds)
    theirs_rate, theirs_failed, _ = measure(theirs, messages, rounds)
    print(f"{len(messages)} messages, {size_mb:.1f} MB, {rounds} round(s)\n")
    print(f"{'parser':<28}{'msgs/s':>10}{'failed':>9}")
    print(f"{'mailbridge.mime.normalize':<28}{ours_rate:>10.1f}{ours_failed:>9}")
    print(f"{'mail-parser ' + mailparser_version():<28}{theirs_rate:>10.1f}{theirs_failed:>9}")
    print(f"\nratio ours/theirs: {ours_rate / theirs_rate:.2f}x")
    if ours_crashed:
        print(f"WARNING: {ours_crashed} non-MimeError exceptions escaped normalize()")
    return 0


def mailparser_version() -> str:
    from importlib.metadata import version

    return version("mail-parser")


if __name__ == "__main__":
    sys.exit(main())
