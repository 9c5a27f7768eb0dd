"""`make bench`: run every benchmark script in turn; each prints ratios against a named peer.

Usage: benchmarks/run.py [NAME ...]
(names: cold_start, mime, sync, graph, reads, backfill, automations, ai, calendar, webhooks, gmail,
reconcile, tracking, crm, crm_hubspot, crm_activity, campaigns, simulation; default all)
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ORDER = [
    "cold_start",
    "mime",
    "sync",
    "graph",
    "reads",
    "backfill",
    "automations",
    "ai",
    "calendar",
    "webhooks",
    "gmail",
    "reconcile",
    "tracking",
    "crm",
    "crm_hubspot",
    "crm_activity",
    "campaigns",
    "simulation",
]


def main(argv: list[str]) -> int:
    names = argv or ORDER
    failed = []
    for name in names:
        script = HERE / f"bench_{name}.py"
        if not script.exists():
            print(f"== {name}: no such benchmark ({script.name})")
            failed.append(name)
            continue
        print(f"== {name}")
        started = time.monotonic()
        code = subprocess.call([sys.executable, str(script)], cwd=ROOT)
        print(f"   ({time.monotonic() - started:.0f} s)\n")
        if code:
            failed.append(name)
    if failed:
        print(f"benchmarks that failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
