"""Cold start of the api handler: `python -X importtime` of functions/api/app.py.

Peer: a bare one-route Powertools resolver (benchmarks/peers/bare_powertools_api.py) measured in
the same run. The import time is the median of several fresh interpreters; the issue's goal is
under 300 ms on this machine.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("BENCH_RUNS", "9"))
GOAL_MS = 300.0

ENV = {
    "STAGE": "dev",
    "DOCS_ENABLED": "true",
    "POWERTOOLS_SERVICE_NAME": "api",
    "POWERTOOLS_METRICS_NAMESPACE": "mailbridge",
    "AWS_DEFAULT_REGION": "us-east-1",
    "MAIL_BUCKET": "bench-bucket",
    "EVENT_BUS_NAME": "bench-bus",
    "DATA_KEY_ID": "bench-key",
    "SYNC_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/bench.fifo",
    "OUTBOX_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/bench-outbox",
    "OUTBOX_QUEUE_ARN": "arn:aws:sqs:us-east-1:123456789012:bench-outbox",
    "SCHEDULER_ROLE_ARN": "arn:aws:iam::123456789012:role/bench-scheduler",
    "CURSOR_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:bench-cursor",
    **{
        f"{t}_TABLE": f"bench-{t.lower()}"
        for t in ("ACCOUNTS", "EMAILS", "LINKS", "FLAGS", "SNOOZES", "CRM", "SETTINGS", "IDEMPOTENCY")
    },
}


def import_ms(module: str, path: list[Path]) -> float:
    env = {**os.environ, **ENV, "PYTHONPATH": os.pathsep.join(str(p) for p in path)}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    # The last line is the module itself; its cumulative column (µs) includes everything it pulled in.
    last = [line for line in proc.stderr.splitlines() if re.search(rf"\|\s+{module}$", line)][-1]
    return int(last.split("|")[1]) / 1000


def median_ms(module: str, path: list[Path]) -> float:
    import_ms(module, path)  # warm the .pyc cache so compilation is not measured
    return statistics.median(import_ms(module, path) for _ in range(RUNS))


def full_load_ms(path: list[Path]) -> float:
    """Import plus loading every router: what the first requests to all route groups pay together."""
    env = {**os.environ, **ENV, "PYTHONPATH": os.pathsep.join(str(p) for p in path)}
    code = (
        "import time; t = time.perf_counter(); import app; app.app.load_all(); "
        "print((time.perf_counter() - t) * 1000)"
    )
    runs = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=ROOT
            ).stdout
        )
        for _ in range(RUNS)
    ]
    return statistics.median(runs)


def main() -> None:
    ours = median_ms("app", [ROOT / "layers/mailbridge", ROOT / "functions/api"])
    peer = median_ms("bare_powertools_api", [ROOT / "benchmarks/peers"])
    print(f"cold start (python -X importtime, median of {RUNS})")
    print(
        f"  mailbridge api handler        {ours:8.1f} ms   (goal < {GOAL_MS:.0f} ms: "
        f"{'met' if ours < GOAL_MS else 'NOT met'})"
    )
    print(f"  peer: bare Powertools resolver {peer:7.1f} ms")
    print(f"  ratio ours/peer               {ours / peer:8.2f}x")
    full = full_load_ms([ROOT / "layers/mailbridge", ROOT / "functions/api"])
    print(
        f"  routers load per request group on first use; all of them loaded: {full:.1f} ms "
        "(wall clock, not importtime)"
    )


if __name__ == "__main__":
    main()
